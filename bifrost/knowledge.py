"""Vector storage and semantic search for RAG (``bifrost.knowledge``).

Documents live in namespaces of your organization (or global ones, which only platform
admins write and every organization reads). The platform splits each document into
passages, embeds them, and searches by meaning. See ``docs/knowledge.md``.
"""

from __future__ import annotations

import builtins
from typing import Any

from bifrost import _client
from bifrost.types import KnowledgeDocument, NamespaceInfo


async def store(content: str, namespace: str = "default", key: str | None = None, metadata: dict | None = None) -> str:
    """Store a document; the same ``key`` in the same namespace replaces it (all its passages).

    Args:
        content: The text (up to 200,000 characters by default; upload bigger files on the
            knowledge page).
        namespace: Namespace name, created when missing.
        key: Optional stable key; storing it again replaces the document in one step.
        metadata: JSON object kept with the document, usable in ``search(metadata_filter=...)``.

    Returns:
        The document id (unchanged when a key is replaced).
    """
    body = await _client.call(
        "POST",
        "/knowledge/documents",
        json={"content": content, "namespace": namespace, "key": key, "metadata": metadata or {}},
    )
    return str(body["id"])


async def search(
    query: str,
    namespace: str | builtins.list[str] = "default",
    limit: int = 5,
    min_score: float | None = None,
    metadata_filter: dict[str, Any] | None = None,
) -> builtins.list[KnowledgeDocument]:
    """Return the documents most similar to ``query``, best first.

    Searches your organization's namespaces and the global ones of the same names. Each
    result is one document, with its best-matching passage as ``content`` and the cosine
    similarity as ``score`` (on equal scores your organization's document comes first).

    Args:
        query: The question or text to match.
        namespace: One namespace name or a list of them.
        limit: How many documents at most (1-100).
        min_score: Drop results below this similarity (-1 to 1).
        metadata_filter: ``{"status": "open"}`` (equals), ``{"team": ["a", "b"]}`` (one of), or
            ``{"priority": {"$gte": 2}}`` with ``$eq $ne $gt $gte $lt $lte $in $nin $contains``; ANDed.
    """
    namespaces = [namespace] if isinstance(namespace, str) else builtins.list(namespace)
    body = await _client.call(
        "POST",
        "/knowledge/search",
        json={
            "query": query,
            "namespaces": namespaces,
            "limit": limit,
            "min_score": min_score,
            "metadata_filter": metadata_filter,
        },
    )
    return [KnowledgeDocument.model_validate(r) for r in body]


async def get(key: str, namespace: str = "default") -> KnowledgeDocument | None:
    """Return a stored document by key (your organization's, else the global one), or None."""
    body = await _client.call_or_none("GET", "/knowledge/documents", params={"key": key, "namespace": namespace})
    return KnowledgeDocument.model_validate(body) if body else None


async def delete(key: str, namespace: str = "default") -> bool:
    """Delete a document of your organization by key; False when there is none."""
    body = await _client.call_or_none("DELETE", "/knowledge/documents", params={"key": key, "namespace": namespace})
    return bool(body and body.get("deleted"))


async def delete_namespace(namespace: str) -> int:
    """Delete a namespace of your organization with every document in it; returns how many were deleted."""
    body = await _client.call("DELETE", f"/knowledge/namespaces/{_client.segment(namespace)}")
    return int(body.get("deleted", 0))


async def list_namespaces() -> builtins.list[NamespaceInfo]:
    """List the namespaces visible to the caller."""
    return [NamespaceInfo.model_validate(r) for r in await _client.call("GET", "/knowledge/namespaces")]
