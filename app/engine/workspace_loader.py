"""Import a workspace folder of workflow files and report what it defines.

Runs inside worker processes only (and the one-shot ``--scan``): imports only
the stdlib, ``bifrost`` and the workspace itself.

How files become modules:

* every ``*.py`` under the folder is imported as ``workspace.<dotted relative
  path>`` (``billing/invoices.py`` → ``workspace.billing.invoices``), so
  ``logging.getLogger(__name__)`` names the file and no workspace file can
  shadow a stdlib or installed module by accident;
* files and folders whose name starts with ``_`` or ``.`` are not imported on
  their own (they may still be imported by other files), nor are
  ``__pycache__``, ``node_modules`` and virtualenv folders;
* files import each other as if the workspace root were on ``sys.path``
  (``import helpers``, ``from billing.invoices import x``): an import hook
  resolves those names to the same ``workspace.*`` module objects, so a file is
  never executed twice under two names. Installed packages win over workspace
  files of the same name;
* bytecode caches are neither read nor written for workspace files: an edit
  saved twice in the same second (same size) must still be seen after a reload.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import CodeType, FrameType, ModuleType
from typing import TYPE_CHECKING, Any

from app.engine.protocol import ScanResult
from bifrost import _registry

if TYPE_CHECKING:
    from bifrost.decorators import WorkflowDefinition

PACKAGE = "workspace"
"""Name of the package every workspace module lives in."""

_SKIPPED_DIRS = {"__pycache__", "node_modules", "site-packages"}

_state: dict[str, Any] = {"root": None, "finders": [], "hook": None}
_available: dict[tuple[str, str], WorkflowDefinition] = {}


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compile from source every time (no ``__pycache__`` read or write).

    CPython validates ``.pyc`` files by whole-second mtime and size, which
    misses quick same-size edits; workspace files are small, so compiling
    them is cheap.
    """

    def get_code(self, fullname: str) -> CodeType:
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)


class _AliasLoader(importlib.abc.Loader):
    """Make ``import helpers`` return the module ``workspace.helpers``."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        # Already executed under its canonical name by create_module.
        return None


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Resolve workspace-relative imports to the canonical ``workspace.*`` modules.

    Two instances are installed: one at the end of ``sys.meta_path`` for
    top-level names (so installed packages keep priority), one at the front for
    submodules of an already aliased package (so ``billing.invoices`` is not
    found a second time by the normal path finder through the alias' ``__path__``).
    """

    def __init__(self, root: Path, *, submodules: bool) -> None:
        self.root = root
        self.submodules = submodules

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        top, dot, _ = fullname.partition(".")
        if top == PACKAGE:
            return None
        if self.submodules:
            parent = sys.modules.get(top)
            if not dot or parent is None or getattr(parent, "__name__", None) != f"{PACKAGE}.{top}":
                return None
        elif dot or not ((self.root / f"{top}.py").is_file() or (self.root / top).is_dir()):
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(f"{PACKAGE}.{fullname}"))


def _path_hook(root: Path) -> Any:
    file_finder_hook = importlib.machinery.FileFinder.path_hook((_SourceOnlyLoader, [".py"]))
    root_str = str(root)

    def hook(entry: str) -> Any:
        if entry == root_str or entry.startswith(root_str + os.sep):
            return file_finder_hook(entry)
        raise ImportError("not a workspace folder")

    return hook


def module_name_for(relpath: Path | str) -> str:
    """Return the module name of a workspace file.

    Args:
        relpath: Path of the file relative to the workspace root.

    Returns:
        ``workspace.a.b`` for ``a/b.py``; ``workspace.a`` for ``a/__init__.py``.
    """
    parts = list(Path(relpath).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def discover_files(root: Path) -> list[Path]:
    """List the workspace files to import, relative to ``root``, in a stable order.

    Args:
        root: The workspace folder.

    Returns:
        Relative paths; packages' ``__init__.py`` come before their modules.
    """
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        current = Path(dirpath)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(("_", ".")) and d not in _SKIPPED_DIRS and not (current / d / "pyvenv.cfg").exists()
        )
        names = sorted(
            f for f in filenames if f.endswith(".py") and (f == "__init__.py" or not f.startswith(("_", ".")))
        )
        # __init__ first so a package is initialised before its modules.
        names.sort(key=lambda f: f != "__init__.py")
        found.extend((current / f).relative_to(root) for f in names)
    return found


def unload_workspace() -> None:
    """Forget a previously loaded workspace: modules, import hooks and registrations."""
    for name in [n for n, m in sys.modules.items() if n == PACKAGE or n.startswith(PACKAGE + ".") or _is_alias(m)]:
        del sys.modules[name]
    for finder in _state["finders"]:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)
    if _state["hook"] is not None:
        with contextlib.suppress(ValueError):
            sys.path_hooks.remove(_state["hook"])
    root = _state["root"]
    if root is not None:
        for entry in [e for e in sys.path_importer_cache if e == str(root) or e.startswith(str(root) + os.sep)]:
            del sys.path_importer_cache[entry]
    _state.update(root=None, finders=[], hook=None)
    _available.clear()
    _registry.clear()


def _is_alias(module: Any) -> bool:
    name = getattr(module, "__name__", None)
    return isinstance(name, str) and name.startswith(PACKAGE + ".")


def get_definition(kind: str, name: str) -> WorkflowDefinition | None:
    """Return the runnable definition of ``kind`` named ``name`` from the last load.

    Definitions of broken files and duplicated names are not runnable.
    """
    return _available.get((kind, name))


def load_workspace(
    path: Path | str,
    *,
    import_timeout: float | None = None,
    skip: set[str] | frozenset[str] = frozenset(),
    on_file: Callable[[str], None] | None = None,
) -> ScanResult:
    """Import every workflow file of a workspace and report what it defines.

    A file that fails to import is reported and the others still load. Two
    definitions of the same kind and name are reported and neither is
    available.

    Args:
        path: The workspace folder.
        import_timeout: Seconds one file may take to import before it is
            reported as an error (uses SIGALRM; only honoured in the main
            thread). None for no limit.
        skip: Relative paths (POSIX) of files not to import: a probe found that they end or hang
            the importing process (their errors are reported by whoever probed them).
        on_file: Called with each file's relative path right before it is imported.

    Returns:
        Metadata of the available workflows and data providers, and the errors.
    """
    root = Path(path).resolve()
    unload_workspace()
    importlib.invalidate_caches()
    hook = _path_hook(root)
    sys.path_hooks.insert(0, hook)
    finders = [_AliasFinder(root, submodules=True), _AliasFinder(root, submodules=False)]
    sys.meta_path.insert(0, finders[0])
    sys.meta_path.append(finders[1])
    _state.update(root=root, finders=finders, hook=hook)

    errors: list[dict[str, Any]] = []
    failed_files: set[str] = set()
    recorded: list[WorkflowDefinition] = []
    original_register = _registry.register

    def record(definition: WorkflowDefinition) -> None:
        recorded.append(definition)
        original_register(definition)

    _registry.register = record  # type: ignore[assignment]
    try:
        _create_package(root, errors, failed_files, import_timeout, skip, on_file)
        for relpath in discover_files(root):
            if relpath == Path("__init__.py"):
                continue
            name = module_name_for(relpath)
            if name in sys.modules or relpath.as_posix() in skip:  # imported by another file, or known bad
                continue
            if on_file is not None:
                on_file(relpath.as_posix())
            try:
                if any("." in part for part in relpath.with_suffix("").parts):
                    raise ImportError("file and folder names must not contain dots to be importable")
                with _time_limit(import_timeout, relpath):
                    importlib.import_module(name)
            except BaseException as exc:  # a workspace file may raise anything, even SystemExit or
                # KeyboardInterrupt (workers ignore Ctrl+C: one raised at import is the file's own)
                errors.append(_error_entry(relpath, exc))
                failed_files.add(str(root / relpath))
    finally:
        _registry.register = original_register  # type: ignore[assignment]

    return _collect(root, recorded, failed_files, errors)


def _create_package(
    root: Path,
    errors: list[dict[str, Any]],
    failed: set[str],
    import_timeout: float | None,
    skip: set[str] | frozenset[str],
    on_file: Callable[[str], None] | None,
) -> None:
    # The package whose __path__ is the workspace root; a root __init__.py, if
    # any, is its body.
    init = root / "__init__.py"
    loader = _SourceOnlyLoader(PACKAGE, str(init)) if init.is_file() and "__init__.py" not in skip else None
    spec = importlib.machinery.ModuleSpec(PACKAGE, loader, origin=str(init) if loader else None, is_package=True)
    spec.submodule_search_locations = [str(root)]
    spec.has_location = loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    if loader is not None:
        if on_file is not None:
            on_file("__init__.py")
        try:
            with _time_limit(import_timeout, Path("__init__.py")):
                loader.exec_module(module)
        except BaseException as exc:  # even SystemExit / KeyboardInterrupt: the file's own
            # Keep the (partial) package so the other files can still load.
            errors.append(_error_entry(Path("__init__.py"), exc))
            failed.add(str(init))


def _collect(
    root: Path, recorded: list[WorkflowDefinition], failed_files: set[str], errors: list[dict[str, Any]]
) -> ScanResult:
    # A module executed twice (its first import failed inside another file's
    # import, then it was retried) registers the same function twice: keep one.
    unique: dict[tuple[Any, ...], WorkflowDefinition] = {}
    for definition in recorded:
        code = getattr(definition.func, "__code__", None)
        key = (
            definition.kind,
            definition.source_file,
            definition.func.__qualname__,
            getattr(code, "co_firstlineno", None),
        )
        unique.pop(key, None)
        unique[key] = definition
    by_name: dict[tuple[str, str], list[WorkflowDefinition]] = {}
    for definition in unique.values():
        if definition.source_file is not None and str(Path(definition.source_file).resolve()) in failed_files:
            continue
        by_name.setdefault((definition.kind, definition.name), []).append(definition)

    result = ScanResult(errors=errors)
    _registry.clear()
    for (kind, name), found in by_name.items():
        if len(found) > 1:
            result.errors.append(_duplicate_entry(root, kind, name, found))
            continue
        definition = found[0]
        _available[(kind, name)] = definition
        _registry.register(definition)
        meta = definition.to_metadata()
        meta["source_file"] = _relative(root, definition.source_file)
        (result.workflows if kind == "workflow" else result.data_providers).append(meta)
    return result


def _relative(root: Path, source_file: str | None) -> str | None:
    if source_file is None:
        return None
    try:
        return Path(source_file).resolve().relative_to(root).as_posix()
    except ValueError:  # defined outside the workspace (e.g. an installed library)
        return source_file


def _duplicate_entry(root: Path, kind: str, name: str, found: list[WorkflowDefinition]) -> dict[str, Any]:
    label = "workflow" if kind == "workflow" else "data provider"
    places = []
    for definition in found:
        code = getattr(definition.func, "__code__", None)
        line = f" line {code.co_firstlineno}" if code is not None else ""
        places.append(f"{_relative(root, definition.source_file)}{line} ({definition.func.__qualname__})")
    files = list(dict.fromkeys(_relative(root, d.source_file) or "?" for d in found))
    return {
        "file": files[0],
        "files": files,
        "error": f"Duplicate {label} name {name!r} defined in {' and '.join(places)}; "
        "neither is available until one is renamed",
        "traceback": None,
    }


def _error_entry(relpath: Path, exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, SyntaxError):
        message = f"{type(exc).__name__}: {exc.msg} (line {exc.lineno})"
    else:
        text = str(exc).strip().splitlines()
        message = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return {"file": relpath.as_posix(), "error": message, "traceback": _format_traceback(exc)}


_HIDDEN_FRAMES = (__file__, os.path.dirname(importlib.__file__), "<frozen importlib")


def _format_traceback(exc: BaseException) -> str:
    # Drop the loader's and importlib's own frames: authors only need theirs.
    tb_exc = traceback.TracebackException.from_exception(exc)
    tb_exc.stack = traceback.StackSummary.from_list(
        [f for f in tb_exc.stack if not f.filename.startswith(_HIDDEN_FRAMES)]
    )
    return "".join(tb_exc.format())


class ImportTimeoutError(Exception):
    """A workspace file took longer than the allowed time to import."""


@contextlib.contextmanager
def _time_limit(seconds: float | None, relpath: Path) -> Iterator[None]:
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise ImportTimeoutError(f"importing {relpath.as_posix()} took longer than {seconds:g} seconds")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
