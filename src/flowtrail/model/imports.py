"""Import the Python code a workflow's function blocks name, per workflow folder.

A module that lives in the workflow file's folder (``blocks.py``, or a package ``pkg/``
with an ``__init__.py``) is imported as a submodule of a private package made for that
folder, so two folders that each hold a ``blocks.py`` never see each other's functions in
one process, and ``sys.path`` is left alone. A module the folder does not hold is
imported normally (the standard library, installed packages).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from flowtrail.model.limits import clip

_ROOT = "flowtrail_workflow_code"
_lock = threading.RLock()  # the package modules are made once, whichever thread asks


def _package(name: str, path: list[str]) -> ModuleType:
    found = sys.modules.get(name)
    if found is None:
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = path
        found = importlib.util.module_from_spec(spec)
        sys.modules[name] = found
    return found


def _in_folder(module_name: str, folder: Path) -> bool:
    top = module_name.partition(".")[0]
    return (folder / f"{top}.py").is_file() or (folder / top / "__init__.py").is_file()


def _from_file_in(module: ModuleType | None, folder: Path) -> bool:
    file = getattr(module, "__file__", None)
    return file is not None and Path(file).resolve().is_relative_to(folder.resolve())


def load_module(module_name: str, folder: Path | None) -> ModuleType:
    """The module ``module_name`` as the workflow in ``folder`` sees it (imported once per
    folder). A module that code already imported by its plain name from this very folder
    is shared, not loaded twice."""
    if folder is None or not _in_folder(module_name, folder):
        return importlib.import_module(module_name)
    existing = sys.modules.get(module_name)
    if _from_file_in(existing, folder):
        assert existing is not None
        return existing
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    with _lock:
        _package(_ROOT, [])
        package = _package(f"{_ROOT}.f{digest}", [str(folder.resolve())])
        return importlib.import_module(f"{package.__name__}.{module_name}")


def resolve_call(target: str, search: Path | None = None) -> Callable[..., Any]:
    """:func:`find_call`, remembered per (target, folder) once it succeeds: a workflow of
    10,000 blocks calling one function checks the folder and imports once, not 10,000
    times (modules are imported once per process anyway)."""
    key = (target, search)
    found = _resolved.get(key)
    if found is None:
        found = find_call(target, search)
        with _lock:
            if len(_resolved) >= _RESOLVED_MAX:
                _resolved.clear()
            _resolved[key] = found
    return found


_resolved: dict[tuple[str, Path | None], Callable[..., Any]] = {}
_RESOLVED_MAX = 4096


def find_call(target: str, search: Path | None = None) -> Callable[..., Any]:
    """Import ``module:attr`` (looked up first in the workflow file's folder, ``search``).
    Raises ``ValueError`` saying what is wrong, also when importing the module raised
    ``SystemExit`` or ``KeyboardInterrupt``: that is a broken module, not a request to stop."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"`call: {clip(target)}` must look like 'package.module:function'")
    try:
        module = load_module(module_name, search)
    except (Exception, SystemExit, KeyboardInterrupt) as exc:
        reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, Exception) else str(exc)
        raise ValueError(
            f"cannot import module '{clip(module_name)}': {clip(reason, 300)}"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"module '{clip(module_name)}' has no attribute '{clip(attr)}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"'{clip(target)}' is not callable")
    return obj  # type: ignore[no-any-return]
