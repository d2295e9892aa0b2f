"""npuc: ahead-of-time compiler for the VeriSilicon VIPNano NPUs."""
__version__ = "0.1.0"
