"""Test-session setup shared by every test module."""

import os

# The kernels and the simulator multiply many small matrices; OpenBLAS's worker
# threads make those slower, not faster, on the 2-core machines tests run on.
# Must be set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


import pytest  # noqa: E402  (after the environment above)


@pytest.fixture(scope="session")
def c_sources(tmp_path_factory):
    """The C runtime's sources, emitted once per session."""
    from c_build import emit

    return emit(tmp_path_factory.mktemp("c") / "runtime")


@pytest.fixture(scope="session")
def c_npu_run(c_sources):
    """The C runtime's npu-run, built with -Wall -Wextra -Werror."""
    from c_build import make

    make(c_sources)
    return c_sources / "npu-run"


@pytest.fixture(scope="session")
def c_fake(c_sources, tmp_path_factory):
    """The fake etnaviv device library (A311D identity)."""
    from c_build import build_fake

    return build_fake(c_sources, tmp_path_factory.mktemp("fake") / "fake_etnaviv.so")
