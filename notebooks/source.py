"""Build the module ``%bifrost publish`` writes: the function's source with the imports and helpers it needs.

Cells run in one namespace, so a function can use names imported or defined in any earlier cell. For
each global name the function (decorators, annotations and defaults included) refers to, the module
gets what recreates it:

* a module → ``import x`` / ``from package import x`` (with ``as`` when renamed);
* an object imported from a module → ``from module import name`` (the shortest public path, so
  ``workflow`` becomes ``from bifrost import workflow``);
* a logger → ``logger = logging.getLogger(__name__)``;
* a function or class defined in the notebook (a helper, a pydantic model, an Enum) → its source,
  recursively with what it needs in turn;
* a plain constant (text, number, bool, None, and lists / tuples / dicts of them) → ``NAME = <repr>``.

Anything else (an open client, a DataFrame built in a cell) cannot be recreated in the workspace: the
publish stops with an error naming it.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import linecache
import logging
import sys
import textwrap
import types
from collections.abc import Callable
from typing import Any

from bifrost.errors import ValidationError

HEADER = '"""Published from a notebook with %bifrost publish."""\n'


class PublishSourceError(ValidationError):
    """The function uses something from the notebook that cannot be written into a module."""


def _is_constant(value: Any, depth: int = 0) -> bool:
    if depth > 5:
        return False
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return True
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(_is_constant(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(_is_constant(k, depth + 1) and _is_constant(v, depth + 1) for k, v in value.items())
    return False


def _loaded_names(tree: ast.AST) -> list[str]:
    """Global-looking names read anywhere in ``tree``, in order of first use."""
    bound: set[str] = set()
    loaded: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                if node.id not in loaded:
                    loaded.append(node.id)
            else:
                bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    top = tree.body[0] if isinstance(tree, ast.Module) and tree.body else None
    inner_defs = {
        n.name
        for n in ast.walk(tree)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n is not top
    }
    return [n for n in loaded if n not in bound and n not in inner_defs]


def _public_path(obj: Any, name: str) -> str | None:
    """The shortest importable module path that exposes ``obj`` as ``name``."""
    module_name = getattr(obj, "__module__", None)
    if not isinstance(module_name, str) or module_name == "__main__":
        return None
    parts = module_name.split(".")
    for end in range(1, len(parts) + 1):
        candidate = ".".join(parts[:end])
        module = sys.modules.get(candidate)
        if module is not None and getattr(module, name, None) is obj:
            return candidate
    return None


def _type_label(value: Any) -> str:
    """The type of ``value`` as its users write it: ``httpx.AsyncClient``, ``pandas.DataFrame``, ``set``."""
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    module = _public_path(kind, kind.__name__) or kind.__module__
    return f"{module}.{kind.__qualname__}"


def _import_line(name: str, obj: Any) -> str | None:
    if isinstance(obj, types.ModuleType):
        full = obj.__name__
        parent, _, last = full.rpartition(".")
        if parent:
            return f"from {parent} import {last}" + (f" as {name}" if name != last else "")
        return f"import {full}" + (f" as {name}" if name != full else "")
    original = getattr(obj, "__name__", name)
    for attribute in dict.fromkeys([name, original]):
        path = _public_path(obj, attribute)
        if path is not None:
            return f"from {path} import {attribute}" + (f" as {name}" if name != attribute else "")
    return None


def _cell_class_source(cls: type) -> str | None:
    """The source of a class defined in a cell, found in the cells IPython keeps in ``linecache``.

    ``inspect.getsource`` cannot find classes of ``__main__`` in a kernel (the module has no file);
    the newest cell that defines a class of that name is the one in use.
    """
    found: str | None = None
    for filename, entry in list(linecache.cache.items()):
        if not (filename.startswith("<ipython-input-") or "ipykernel_" in filename) or len(entry) < 3:
            continue
        text = "".join(entry[2])
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                found = "".join(text.splitlines(keepends=True)[start - 1 : node.end_lineno])
    return found


def _definition_source(obj: Any, name: str) -> str:
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError) as exc:
        source = _cell_class_source(obj) if inspect.isclass(obj) else None
        if source is None:
            raise PublishSourceError(f"cannot find the source of {name!r} (defined in the notebook): {exc}") from None
        return textwrap.dedent(source)


class _ModuleBuilder:
    def __init__(self, namespace: dict[str, Any]) -> None:
        self.namespace = namespace
        self.imports: list[str] = []
        self.assignments: list[str] = []
        self.definitions: list[str] = []
        self.done: set[str] = set()
        self.problems: list[str] = []

    def add_import(self, line: str) -> None:
        if line not in self.imports:
            self.imports.append(line)

    def require(self, source: str, own_name: str | None = None) -> None:
        for name in _loaded_names(ast.parse(source)):
            if name == own_name or name in self.done:
                continue
            self.done.add(name)
            if name not in self.namespace:
                if not hasattr(builtins, name):
                    self.problems.append(f"{name!r} is not defined in the notebook")
                continue
            self.resolve(name, self.namespace[name])

    def resolve(self, name: str, value: Any) -> None:
        if isinstance(value, logging.Logger):
            self.add_import("import logging")
            self.assignments.append(f"{name} = logging.getLogger(__name__)")
            return
        line = _import_line(name, value)
        if line is not None:
            self.add_import(line)
            return
        if (inspect.isfunction(value) or inspect.isclass(value)) and getattr(value, "__module__", None) == "__main__":
            source = _definition_source(value, name)
            self.require(source, own_name=value.__name__)
            if value.__name__ != name:
                source += f"\n{name} = {value.__name__}\n"
            self.definitions.append(source)
            return
        if _is_constant(value):
            self.assignments.append(f"{name} = {value!r}")
            return
        self.problems.append(
            f"{name!r} holds an object of type {_type_label(value)} that was made in the notebook, and a module "
            f"cannot recreate it: create it inside the function (e.g. `{name} = {_type_label(value)}(...)` "
            "in its body), or make it in a module of the workspace and import it from there"
        )


def _merged_imports(lines: list[str]) -> list[str]:
    """``import`` lines first, then ``from`` lines with one line per module (``from bifrost import a, b``)."""
    plain = sorted(line for line in lines if line.startswith("import "))
    names_by_module: dict[str, list[str]] = {}
    for line in lines:
        if line.startswith("from "):
            module, _, names = line[len("from ") :].partition(" import ")
            names_by_module.setdefault(module, []).append(names)
    merged = [f"from {module} import {', '.join(sorted(names))}" for module, names in sorted(names_by_module.items())]
    return plain + merged


def build_module(func: Callable[..., Any], namespace: dict[str, Any]) -> str:
    """The source of a workspace module that defines ``func`` like the notebook does.

    Args:
        func: The decorated workflow or data provider.
        namespace: The notebook's global namespace (IPython's ``user_ns``).

    Returns:
        Python source: imports, constants, helpers, then the function.

    Raises:
        PublishSourceError: Naming every name that cannot be recreated.
    """
    source = _definition_source(func, func.__name__)
    builder = _ModuleBuilder(namespace)
    builder.require(source, own_name=func.__name__)
    if builder.problems:
        raise PublishSourceError(f"cannot publish {func.__name__!r}: " + "; ".join(builder.problems))
    parts = [HEADER, "\n".join(_merged_imports(builder.imports))]
    if builder.assignments:
        parts.append("\n".join(builder.assignments))
    parts.extend(d.rstrip() for d in builder.definitions)
    parts.append(source.rstrip())
    module = HEADER + "\n" + "\n\n\n".join(p.strip("\n") for p in parts[1:] if p.strip()) + "\n"
    ast.parse(module)  # a last check: what is published must at least parse
    return module
