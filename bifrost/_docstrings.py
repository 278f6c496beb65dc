"""A small parser for Google-style docstrings (summary + ``Args:`` section)."""

from __future__ import annotations

import inspect
import re

_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Returns|Return|Yields|Raises|Examples?|Notes?|Attributes|See Also|Todo)\s*:\s*$",
    re.IGNORECASE,
)
_ARG_LINE = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str | None, dict[str, str]]:
    """Split a docstring into its description and per-argument descriptions.

    Args:
        doc: The raw docstring, or None.

    Returns:
        ``(description, {arg_name: description})``. The description is the
        text before the first section header, with paragraphs kept; None when empty.
    """
    if not doc:
        return None, {}
    lines = inspect.cleandoc(doc).splitlines()
    description_lines: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current_arg: str | None = None
    arg_indent = 0
    for line in lines:
        header = _SECTION.match(line.strip()) if not line.startswith((" ", "\t")) else None
        if header:
            section = header.group(1).lower()
            current_arg = None
            continue
        if section is None:
            description_lines.append(line)
            continue
        if section not in ("args", "arguments", "parameters", "params"):
            continue
        if not line.strip():
            current_arg = None
            continue
        indent = len(line) - len(line.lstrip())
        match = _ARG_LINE.match(line.strip())
        if match and (current_arg is None or indent <= arg_indent):
            current_arg = match.group(1).lstrip("*")
            arg_indent = indent
            args[current_arg] = match.group(3).strip()
        elif current_arg is not None:
            args[current_arg] = f"{args[current_arg]} {line.strip()}".strip()
    description = "\n".join(description_lines).strip() or None
    return description, args
