"""Import a skill's `scripts/` from the verified archive bytes, never from files on disk.

A skill's code is checked (digest, signature) as bytes and then run from those same bytes: a file
changed on disk after the check cannot run. Each archive's `scripts/` becomes a package of its own,
`_fleetplane_skill_<digest prefix>`, so two versions of a skill (or two skills with a `utils.py`) never
share a module; inside it, modules import each other relatively (`from .words import split_words`).
Skills run in this process: isolating untrusted code is the runtime wing's sandbox, not this loader.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import linecache
import sys
import threading
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

_PREFIX = "_fleetplane_skill_"


class _ArchiveImporter(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self) -> None:
        self._roots: dict[str, tuple[str, dict[str, bytes]]] = {}
        self._lock = threading.Lock()

    def add(self, root: str, label: str, scripts: dict[str, bytes]) -> None:
        with self._lock:
            self._roots.setdefault(root, (label, scripts))

    def _source(self, fullname: str) -> tuple[str, str | None, bool] | None:
        """(shown file name, source path in scripts/ or None for a folder, is a package) for a module."""
        root, _, rest = fullname.partition(".")
        entry = self._roots.get(root)
        if entry is None:
            return None
        label, scripts = entry
        if not rest:
            return f"{label}/scripts", "__init__.py" if "__init__.py" in scripts else None, True
        rel = rest.replace(".", "/")
        if f"{rel}/__init__.py" in scripts:
            return f"{label}/scripts/{rel}/__init__.py", f"{rel}/__init__.py", True
        if f"{rel}.py" in scripts:
            return f"{label}/scripts/{rel}.py", f"{rel}.py", False
        if any(path.startswith(rel + "/") for path in scripts):
            return f"{label}/scripts/{rel}", None, True
        return None

    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(_PREFIX):
            return None
        found = self._source(fullname)
        if found is None:
            return None
        shown, _, package = found
        return importlib.util.spec_from_loader(fullname, self, origin=shown, is_package=package)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        found = self._source(module.__name__)
        if found is None:
            raise ImportError(f"no module {module.__name__} in the skill", name=module.__name__)
        shown, rel, _ = found
        module.__file__ = shown
        if rel is None:
            return
        root = module.__name__.partition(".")[0]
        source = self._roots[root][1][rel].decode("utf-8")
        # Tracebacks show the skill's own lines, though no such file exists on disk.
        linecache.cache[shown] = (len(source), None, source.splitlines(keepends=True), shown)
        exec(compile(source, shown, "exec"), module.__dict__)


_IMPORTER = _ArchiveImporter()
sys.meta_path.append(_IMPORTER)


def package_for(digest: str, label: str, files: Mapping[str, bytes]) -> str:
    """Register the archive's scripts/ and return the name of the package holding them."""
    root = _PREFIX + digest.removeprefix("sha256:")[:24]
    scripts = {p.removeprefix("scripts/"): data for p, data in files.items() if p.startswith("scripts/")}
    _IMPORTER.add(root, label, scripts)
    return root


def load_callable(package: str, target: str) -> Callable[..., Any]:
    """The function named by `module:function` under the package; ImportError/AttributeError if absent."""
    module_name, _, function = target.partition(":")
    module = importlib.import_module(f"{package}.{module_name}")
    found = getattr(module, function)
    if not callable(found):
        raise AttributeError(f"{module_name}.{function} is not callable")
    return found
