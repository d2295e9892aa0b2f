"""Building the C runtime (``npuc emit-runtime``) and the fake etnaviv device for tests.

The fake device is an LD_PRELOAD library (``tests/fake_etnaviv``) that answers the
etnaviv ioctls as the kernel does for the A311D's NPU (or the identity its
``FAKE_ETNAVIV_*`` variables give) and hands every submit to npuc's simulator.
``conftest.py`` builds both once per test session.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from npuc.hw.target import VIPNANO_QI
from npuc.runtime import etnaviv_uapi as uapi
from npuc.hw.kernel_abi import SOFTPIN_START_ADDRESS

FAKE = Path(__file__).resolve().parent / "fake_etnaviv"
STRICT = "-std=c11 -O2 -Wall -Wextra -Werror"
NODES = "/dev/dri/renderD128=panfrost,/dev/dri/renderD129=etnaviv"


def npuc_cli(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from npuc.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


def make(directory: Path, cflags: str = STRICT, ldflags: str = "", cc: str = "gcc") -> None:
    p = subprocess.run(["make", "-s", f"CC={cc}", f"CFLAGS={cflags}", f"LDFLAGS={ldflags}"], cwd=directory,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and not p.stderr.strip(), p.stdout + p.stderr


def emit(directory: Path, *extra: str) -> Path:
    p = npuc_cli("emit-runtime", "-o", str(directory), *extra)
    assert p.returncode == 0, p.stderr
    return directory


def build_fake(sources: Path, out: Path) -> Path:
    """The fake etnaviv library, with the A311D's identity from npuc's target."""
    i = VIPNANO_QI.identity
    major, minor = uapi.IDENTITY_PARAMS_SINCE
    defines = {"FAKE_MODEL": i.model, "FAKE_REVISION": i.revision, "FAKE_PRODUCT_ID": i.product_id,
               "FAKE_CUSTOMER_ID": i.customer_id, "FAKE_ECO_ID": i.eco_id, "FAKE_SOFTPIN_START": SOFTPIN_START_ADDRESS,
               "FAKE_DRIVER_MAJOR": major, "FAKE_DRIVER_MINOR": minor}
    cmd = ["gcc", *STRICT.split(), "-shared", "-fPIC", "-I", str(sources),
           *(f"-D{k}={v:#x}" for k, v in defines.items()), "-o", str(out), str(FAKE / "fake_etnaviv.c"), "-ldl"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and not p.stderr.strip(), p.stderr
    return out


def fake_env(fake: Path, preload: str = "", nodes: str = NODES, **extra: str) -> dict[str, str]:
    """The environment that runs a C program on the fake device."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_ETNAVIV", "LD_PRELOAD"))}
    env.update(FAKE_ETNAVIV_NODES=nodes, FAKE_ETNAVIV_PYTHON=sys.executable,
               FAKE_ETNAVIV_SERVER=str(FAKE / "sim_server.py"), LD_PRELOAD=f"{preload}{fake}", **extra)
    return env
