"""The numpy host kernels, bit-exact with TFLite's reference kernels.

A kernel ``run(inputs, outputs, params)`` reads NHWC arrays of the tensors' IR
shapes and dtypes (constants such as weights and biases included, None for an
absent optional input) and writes into the preallocated ``outputs`` in place.
Its ``params`` are what the operator's fold (:mod:`npuc.host.ops`) computes at
compile time, checked against the operator's declaration.
"""
