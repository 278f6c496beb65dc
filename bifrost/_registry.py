"""Process-wide registry of decorated workflows and data providers.

The workspace loader clears it, imports every file, then reads what was
registered (including duplicates, which it reports instead of letting one win).
"""

from __future__ import annotations

from bifrost._definitions import WorkflowDefinition

_definitions: list[WorkflowDefinition] = []


def register(definition: WorkflowDefinition) -> None:
    """Record a definition. Re-decorating the same module + function replaces it."""
    for index, existing in enumerate(_definitions):
        if (
            existing.kind == definition.kind
            and existing.module == definition.module
            and existing.func.__qualname__ == definition.func.__qualname__
        ):
            _definitions[index] = definition
            return
    _definitions.append(definition)


def definitions(kind: str | None = None) -> list[WorkflowDefinition]:
    """Return registered definitions, optionally only of one kind."""
    return [d for d in _definitions if kind is None or d.kind == kind]


def get(name: str, kind: str = "workflow") -> WorkflowDefinition | None:
    """Return the last definition registered under ``name``, or None."""
    for definition in reversed(_definitions):
        if definition.name == name and definition.kind == kind:
            return definition
    return None


def clear() -> None:
    """Forget every registration (the workspace loader calls it before a scan)."""
    _definitions.clear()
