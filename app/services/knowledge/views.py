"""API shapes of the knowledge domain (TypedDicts: plain dicts at run time, documented in ``/schema``).

The ``...Body`` shapes document request bodies only: the handlers read the raw JSON and the service checks it
field by field (422 naming the field), see :func:`app.web.api.schemas.documented_body`.
"""

from __future__ import annotations

from typing import Any, TypedDict


class _ContentBody(TypedDict):
    content: str


class DocumentBody(_ContentBody, total=False):
    """A document to store (``namespace`` defaults to ``default``); a document with the same ``key`` is replaced."""

    namespace: str
    key: str | None
    metadata: dict[str, Any] | None


class StoredDocument(TypedDict):
    """Where a document was stored and how many passages it was split into."""

    id: str
    namespace: str
    key: str | None
    chunk_count: int
    organization_id: str | None


class KnowledgeDocumentView(TypedDict):
    """A document (the SDK's ``KnowledgeDocument``; ``score`` is None outside a search)."""

    id: str
    namespace: str
    content: str
    key: str | None
    metadata: dict[str, Any]
    score: float | None
    organization_id: str | None
    created_at: str
    updated_at: str
    source: str | None
    chunk_count: int


class ChunkView(TypedDict):
    """A passage of a document, with the model that embedded it."""

    id: str
    position: int
    content: str
    embedding_model: str


class _QueryBody(TypedDict):
    query: str


class SearchBody(_QueryBody, total=False):
    """A semantic search: ``namespaces`` (a name or a list, also accepted as ``namespace``; default ``default``),
    ``limit`` 1-100 (default 5), ``min_score``, and a ``metadata_filter`` on the documents' metadata."""

    namespaces: list[str] | str
    namespace: str
    limit: int
    min_score: float | None
    metadata_filter: dict[str, Any] | None


class SearchHit(TypedDict):
    """A document found by a search, with its best passage as ``content``."""

    id: str
    namespace: str
    content: str
    key: str | None
    metadata: dict[str, Any]
    score: float
    organization_id: str | None
    chunk_id: str


class _NamespaceName(TypedDict):
    name: str


class NamespaceBody(_NamespaceName, total=False):
    """A namespace to create in the caller's scope."""

    description: str | None


class NamespaceCreated(TypedDict):
    """A new, empty namespace."""

    id: str
    name: str
    document_count: int
    organization_id: str | None


class NamespaceView(NamespaceCreated):
    """A namespace the caller can read, with its document count."""

    description: str | None


class KnowledgeJobView(TypedDict):
    """A file ingestion job: status, stage and progress (0 to 1)."""

    id: str
    namespace: str
    key: str | None
    filename: str
    status: str
    stage: str
    chunks_done: int
    chunks_total: int
    progress: float
    error: str | None
    document_id: str | None
    organization_id: str | None
    created_at: str
    updated_at: str
