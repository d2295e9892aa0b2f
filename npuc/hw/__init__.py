"""The hardware package: every fact about the VIPNano NPUs and the kernel that drives them, declared once.

Targets, descriptor and register layouts, command words, fp21, the coefficient formats' layouts, the
cost model and the etnaviv submit model.  It imports nothing of npuc but ``npuc.errors``, so that every
other layer (compiler, simulator, runtime, tools) can lean on it.
"""
