"""Markdown for read-only form text and chat replies, rendered safely on the server.

Form authors write markdown; visitors see it. Raw HTML in the source is escaped (``html=False``)
and markdown-it's link validation drops ``javascript:``-style URLs, so a form's text can never
run script in a visitor's browser.
"""

from __future__ import annotations

from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup

from app.web.file_links import file_link

_RENDERER = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
# Chat replies: the same safety, plus the tables and strikethrough models write. Images are off: a
# model steered by a prompt injection could otherwise leak data in an image URL the browser fetches.
_CHAT_RENDERER = (
    MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    .enable(["table", "strikethrough"])
    .disable("image")
)


def render_markdown(source: str | None) -> Markup:
    """Return ``source`` (markdown) as safe HTML for a template."""
    return Markup(_RENDERER.render(source or ""))  # safe: raw HTML in the source is escaped (html=False)


def render_chat_markdown(source: str | None) -> Markup:
    """Return an assistant's reply (markdown) as safe HTML: tables on, images shown as plain links."""
    return Markup(_CHAT_RENDERER.render(source or ""))  # safe: raw HTML in the source is escaped (html=False)


def register_filters(engine: Any) -> None:
    """Template engine callback: adds the ``markdown`` and ``chat_markdown`` filters to Jinja."""
    engine.engine.filters["markdown"] = render_markdown
    engine.engine.filters["chat_markdown"] = render_chat_markdown
    engine.engine.filters["file_link"] = file_link  # results naming a stored file link to /files (file_links.py)
