"""Markdown for read-only form text and chat replies, rendered safely on the server.

Form authors write markdown; visitors see it. Raw HTML in the source is escaped (``html=False``)
and markdown-it's link validation drops ``javascript:``-style URLs, so a form's text can never
run script in a visitor's browser.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup

from app.web.file_links import file_link
from app.web.formats import when

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


# reST that authors write in docstrings, mapped onto markdown: ``literal`` and :role:`target` become
# `literal`; a paragraph ending in "::" (a literal block follows) keeps one colon.
_REST_LITERAL = re.compile(r"``(.+?)``")
_REST_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`]+)`")
_REST_BLOCK = re.compile(r"::\s*$", re.MULTILINE)


def docstring_markdown(source: str | None) -> str:
    """A docstring's text (reST-flavoured, as Python authors write it) as markdown.

    Indentation common to the continuation lines is removed (``inspect.cleandoc``), inline literals
    and roles become code spans; paragraphs, lists and line joins are then markdown's own.

    Args:
        source: The description, as taken from the workflow's docstring.

    Returns:
        Markdown text (empty for none).
    """
    text = inspect.cleandoc(source or "")
    text = _REST_ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    text = _REST_LITERAL.sub(lambda m: f"`{m.group(1)}`", text)
    return _REST_BLOCK.sub(":", text)


def render_docstring(source: str | None) -> Markup:
    """A workflow's docstring as safe HTML: paragraphs, inline code, lists (never raw HTML)."""
    return render_markdown(docstring_markdown(source))


def docstring_text(source: str | None, width: int | None = None) -> str:
    """A docstring as plain text for a terminal: markup removed, each paragraph on one line.

    Args:
        source: The description, as taken from the workflow's docstring.
        width: Cut the text to this many characters (with "…") when given.

    Returns:
        The text, paragraphs separated by a blank line; list items keep their own lines.
    """
    paragraphs: list[str] = []
    for block in re.split(r"\n\s*\n", docstring_markdown(source)):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        items = [line for line in lines if re.match(r"^([-*+]|\d+[.)])\s", line)]
        joined = "\n".join(lines) if items else " ".join(lines)
        paragraphs.append(re.sub(r"`([^`]+)`", r"\1", joined))
    text = "\n\n".join(p for p in paragraphs if p)
    if width is not None and len(text) > width:
        return text[: max(width - 1, 0)].rstrip() + "…"
    return text


def register_filters(engine: Any) -> None:
    """Template engine callback: adds ``markdown``, ``chat_markdown``, ``docstring`` and ``when`` to Jinja."""
    engine.engine.filters["markdown"] = render_markdown
    engine.engine.filters["chat_markdown"] = render_chat_markdown
    engine.engine.filters["docstring"] = render_docstring
    engine.engine.filters["when"] = when
    # Chat's tool results read like the run page's (imported here: the pages package imports this module).
    from app.web.pages.results import result_view

    engine.engine.filters["result_view"] = result_view
    engine.engine.filters["file_link"] = file_link  # results naming a stored file link to /files (file_links.py)
