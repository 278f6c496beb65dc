"""Text out of uploaded files: ``.txt``, ``.md``, ``.html``, ``.pdf`` and ``.docx``.

Parsers run in a worker thread (PDF and DOCX parsing is CPU work). A file that
cannot be read raises :class:`~app.services.errors.InvalidInputError` with a
message naming the file, which the ingestion job records as its error.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile

from app.services.errors import InvalidInputError

TEXT_TYPES = (".txt", ".md", ".markdown", ".text")
HTML_TYPES = (".html", ".htm")
SUPPORTED = (*TEXT_TYPES, *HTML_TYPES, ".pdf", ".docx")
# A DOCX is a zip: refuse one that would inflate past this (a "zip bomb").
MAX_DOCX_UNCOMPRESSED = 200 * 1024 * 1024
MAX_TEXT_CHARS = 20_000_000


def extension(filename: str) -> str:
    """The lower-case extension of ``filename`` (``""`` when none)."""
    return posixpath.splitext(filename.lower())[1]


def check_filename(filename: str) -> str:
    """The base name of an upload, refused unless its type is supported."""
    name = posixpath.basename((filename or "").replace("\\", "/")).strip()
    if not name:
        raise InvalidInputError.field("file", "needs a file name")
    if len(name) > 255:
        raise InvalidInputError.field("file", "file name must be at most 255 characters")
    if re.search(r"[\x00-\x1f\x7f]", name):
        raise InvalidInputError.field("file", "file name must not contain control characters")
    if extension(name) not in SUPPORTED:
        raise InvalidInputError.field("file", f"{name}: unsupported type (use {', '.join(SUPPORTED)})")
    return name


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig",):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    # Not UTF-8: Windows-1252 is what such text files nearly always are; never fails.
    return data.decode("cp1252", errors="replace")


def _html(data: bytes) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    return soup.get_text("\n")


def _pdf(data: bytes, name: str) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise InvalidInputError.field("file", f"{name}: the PDF is encrypted")
        return "\n\n".join((page.extract_text() or "") for page in reader.pages)
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError.field("file", f"{name}: not a readable PDF ({exc})") from None


def _docx(data: bytes, name: str) -> str:
    from docx import Document

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(i.file_size for i in archive.infolist()) > MAX_DOCX_UNCOMPRESSED:
                raise InvalidInputError.field("file", f"{name}: the document inflates to more than 200 MB")
        document = Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise InvalidInputError.field("file", f"{name}: not a readable .docx ({exc})") from None
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text for cell in row.cells))
    return "\n".join(parts)


def extract_text(filename: str, data: bytes) -> str:
    """The text of an uploaded file, whitespace tidied.

    Raises:
        InvalidInputError: Unsupported type, unreadable file, or no text in it.
    """
    name = check_filename(filename)
    kind = extension(name)
    if kind in TEXT_TYPES:
        text = _decode(data)
    elif kind in HTML_TYPES:
        text = _html(data)
    elif kind == ".pdf":
        text = _pdf(data, name)
    else:
        text = _docx(data, name)
    text = text.replace("\x00", "")
    text = re.sub(r"[ \t\r\f\v]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    if not text:
        raise InvalidInputError.field("file", f"{name}: no text found (a scanned PDF needs OCR first)")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInputError.field("file", f"{name}: more than {MAX_TEXT_CHARS} characters of text")
    return text
