"""Test-session setup shared by every test module."""

import os

# The kernels and the simulator multiply many small matrices; OpenBLAS's worker
# threads make those slower, not faster, on the 2-core machines tests run on.
# Must be set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
