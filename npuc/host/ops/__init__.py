"""The host operators' declarations, one module per family; each module lists its kernels in ``OPS``."""
