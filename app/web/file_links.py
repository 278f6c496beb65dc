"""``file_link``: a Jinja filter turning a result value that names a stored file into a link to the Files page.

Workflows return the path they wrote (the demo health check returns ``{"report": "reports/health-….csv"}``);
people should be able to open it. A value is a link only when it looks like a stored file path (relative,
a known file extension, accepted by the files service's path rules); anything else is shown as text,
escaped as usual. The link opens the file in the organization the viewer acts in, as the SDK would.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup, escape

from app.services.errors import InvalidInputError
from app.services.files.service import parse_path

# Extensions of files people open; a value like "v1.2" or "example.com" is not linked.
_EXTENSIONS = frozenset(
    "csv tsv txt log json jsonl xml yaml yml md html htm pdf docx xlsx pptx zip gz png jpg jpeg gif svg".split()
)
_LOOKS_LIKE_PATH = re.compile(r"^[^\s:][^:]*\.([A-Za-z0-9]{1,5})$")


def stored_file(value: Any) -> tuple[str, str] | None:
    """``(location, path)`` when ``value`` reads as a stored file's path, else None.

    ``uploads/…`` (what a form's file field gives) is in the uploads location; any other path in the workspace.
    """
    if not isinstance(value, str) or "://" in value or len(value) > 1024:
        return None
    match = _LOOKS_LIKE_PATH.match(value)
    if match is None or match.group(1).lower() not in _EXTENSIONS:
        return None
    location = "uploads" if value.startswith("uploads/") else "workspace"
    try:
        parts = parse_path(value, location)
    except InvalidInputError:
        return None
    return location, "/".join(parts)


def file_link(value: Any) -> Markup:
    """The value as a link to ``/files/view`` when it names a stored file, else as escaped text."""
    found = stored_file(value)
    if found is None:
        return escape("" if value is None else value)
    location, path = found
    href = "/files/view?" + urlencode({"location": location, "path": path})
    return Markup('<a href="{}" class="file-link">{}</a>').format(href, value)
