"""Error classes shared by every npuc stage.

Every error a user can cause (a bad model, a bad blob, a bad image, an operator
npuc cannot run) is raised as a subclass of :class:`NpucError` with a one-line
message that names the file, operator or field at fault.  The CLI catches
``NpucError`` and prints ``npuc: <message>`` with the class's exit code; any
other exception is a bug in npuc and keeps its traceback.
"""

from __future__ import annotations


class NpucError(Exception):
    """Base of all user-facing errors; ``exit_code`` is what the CLI returns."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        # One line only: a multi-line message would break the CLI contract.
        super().__init__(" ".join(str(message).split()))


class UsageError(NpucError):
    """Bad command-line usage (wrong flags, missing arguments)."""

    exit_code = 2


class ModelError(NpucError):
    """The input model file is not a valid TFLite model."""


class GraphError(NpucError):
    """The model parses but its graph is inconsistent (dangling tensors, bad shapes)."""


class UnsupportedError(NpucError):
    """The model is valid but uses something npuc cannot compile yet."""


class BlobError(NpucError):
    """A .vipbin file is malformed, corrupted or from an incompatible version."""


class InputError(NpucError):
    """An input given to npu-run (image, .npy, labels) is unusable."""


class LimitError(NpucError):
    """A size or count exceeds what npuc, the machine or the NPU can handle."""


class DeviceError(NpucError):
    """The device (simulator or real NPU) refused or failed a submit."""


class SimError(DeviceError):
    """The simulator met something the hardware would not accept; names the job."""


class CoefficientError(NpucError):
    """A coefficient buffer is malformed or does not fit the NN descriptor that reads it; names the job."""
