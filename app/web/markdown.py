"""Markdown for read-only form text, rendered safely on the server.

Form authors write markdown; visitors see it. Raw HTML in the source is escaped (``html=False``)
and markdown-it's link validation drops ``javascript:``-style URLs, so a form's text can never
run script in a visitor's browser.
"""

from __future__ import annotations

from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup

_RENDERER = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


def render_markdown(source: str | None) -> Markup:
    """Return ``source`` (markdown) as safe HTML for a template."""
    return Markup(_RENDERER.render(source or ""))  # safe: raw HTML in the source is escaped (html=False)


def register_filters(engine: Any) -> None:
    """Template engine callback: adds the ``markdown`` filter to Jinja."""
    engine.engine.filters["markdown"] = render_markdown
