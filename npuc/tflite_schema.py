"""The ``tflite`` package's generated schema classes, loaded one module at a time.

``import tflite`` (or of any ``tflite.X``) first runs the package's
``__init__``, which imports all of its ~190 generated modules: 30-40 ms, a
tenth of a whole ``npuc compile``, for a model that needs a dozen of them.
:func:`schema_class` instead loads only the module of the class asked for,
``tflite/<Name>.py``, under its usual name ``tflite.<Name>`` in
``sys.modules``, without the package's ``__init__``.  It is the same file and,
once loaded, the same module object an ordinary import uses: code that
imports the whole package later (the tests, a program using npuc as a library)
runs the package's ``from tflite.Model import *``, which finds ``tflite.Model``
in ``sys.modules``, so both hold the same classes.  Once the package itself has
been imported, :func:`schema_class` is a plain import.

The generated table classes import one another inside their accessors
(``Model.Subgraphs`` runs ``from tflite.SubGraph import SubGraph``); such an
import of a module not loaded yet imports the whole package, which is correct,
only slower.  The frontend therefore loads the tables it walks up front.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from functools import lru_cache
from pathlib import Path

_PACKAGE = "tflite"


@lru_cache(maxsize=None)
def _package_dir() -> Path | None:
    """Where the ``tflite`` package lives (finding it does not import it), or None if it is not a plain directory."""
    spec = importlib.util.find_spec(_PACKAGE)
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    return Path(locations[0]) if len(locations) == 1 else None


def schema_class(name: str) -> type:
    """The generated class ``name`` (``"Model"``, ``"Padding"`` ...) of module ``tflite.<name>``."""
    module_name = f"{_PACKAGE}.{name}"
    module = sys.modules.get(module_name)
    if module is None:
        directory = None if _PACKAGE in sys.modules else _package_dir()
        path = directory / f"{name}.py" if directory is not None else None
        module = _load(module_name, path) if path is not None and path.is_file() \
            else importlib.import_module(module_name)
    return getattr(module, name)


def _load(module_name: str, path: Path):
    """Execute one generated module from its file, registered under ``module_name`` as an import would."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module
