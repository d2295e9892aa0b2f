"""The user's files that commands write or read besides models and blobs: outputs written atomically, labels.

Kept out of :mod:`npuc.driver` so that the commands that only write a file
(``npuc report``, ``npuc emit-runtime``) or read labels (``npuc run``) do not
import the compiler with it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import InputError


def read_labels_text(path: str | Path) -> str:
    """A labels file (one label per line, UTF-8) as text."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such labels file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: labels file is not UTF-8 text") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read labels ({e.strerror})") from None


def write_atomically(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so no partial file is ever left."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise InputError(f"{path}: cannot write output ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise InputError(f"{path}: cannot write output ({e.strerror})") from None
        raise
