"""Model inputs from files and outputs to files, for ``npu-run``.

Inputs come as ``NAME=FILE.npy`` (any dtype and shape the model takes, checked
exactly) or, for a model with one image input, as an image file; outputs are
written as one ``.npy`` per output tensor.  Everything a user can get wrong is
an InputError naming the file or the tensor.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..vipbin import TensorInfo


def parse_input_arg(arg: str, infos: list[TensorInfo]) -> tuple[int, Path]:
    """Which graph input ``NAME=FILE`` names (by tensor name, or by position as ``0=FILE``) and the file."""
    for k, info in enumerate(infos):
        for name in (info.name, str(k)):
            if arg.startswith(name + "="):
                return k, Path(arg[len(name) + 1:])
    names = ", ".join(repr(i.name) for i in infos)
    raise InputError(f"--input {arg!r}: expected NAME=FILE.npy with NAME one of {names} (or its position)")


def load_npy(path: Path, info: TensorInfo) -> np.ndarray:
    """A .npy file as the value of input ``info``; dtype and shape must match exactly."""
    try:
        value = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a .npy file") from None
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{path}: not a readable .npy file ({e})") from None
    if not isinstance(value, np.ndarray):
        raise InputError(f"{path}: holds several arrays; give one .npy per input")
    if value.dtype != np.dtype(info.dtype) or tuple(value.shape) != tuple(info.shape):
        raise InputError(f"{path}: input {info.name!r} expects {info.dtype}{list(info.shape)}, "
                         f"the file holds {value.dtype}{list(value.shape)}")
    return value


def output_file_names(infos: list[TensorInfo]) -> list[str]:
    """A distinct, file-system-safe .npy name per output, from the tensor names."""
    names, used = [], set()
    for k, info in enumerate(infos):
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", info.name).strip("._") or f"output{k}"
        name = base if base not in used else f"{base}_{k}"
        used.add(name)
        names.append(f"{name}.npy")
    return names


def save_outputs(directory: Path, infos: list[TensorInfo], values: list[np.ndarray]) -> list[Path]:
    """Write every output as a .npy file in ``directory`` (created if needed)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, value in zip(output_file_names(infos), values):
            path = directory / name
            np.save(path, value)
            paths.append(path)
        return paths
    except OSError as e:
        raise InputError(f"{directory}: cannot write outputs ({e.strerror})") from None
