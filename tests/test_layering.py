"""The pipeline's layering is a contract (pyproject.toml [tool.importlinter]): nothing imports upward.

``lint-imports`` (import-linter) checks every contract: the stages' layers
from the CLI down to the hardware package, the simulator importing only the
hardware package, the runtime importing only the .vipbin format, the hardware
package and the host operators, the compiler never importing the runtime or
the simulator, and no import cycle between the modules of any package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports(root: Path = ROOT) -> subprocess.CompletedProcess:
    """``lint-imports`` over the ``npuc`` package found under ``root``."""
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    return subprocess.run([exe, str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root)})


def test_import_contracts_are_kept():
    result = _lint_imports()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert result.stdout.count(" KEPT") == len(contracts) >= 5


def test_the_contract_catches_an_upward_import(tmp_path):
    """A module of the hardware package importing the scheduler breaks the layers contract (the check can fail)."""
    shutil.copytree(ROOT / "npuc", tmp_path / "npuc", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "npuc" / "hw" / "_upward_probe.py").write_text("from ..scheduler import schedule  # noqa: F401\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert "npuc.hw is not allowed to import npuc.scheduler" in result.stdout
