"""Vector storage and semantic search for RAG (``bifrost.knowledge``)."""

from __future__ import annotations

import builtins
from typing import Any

from bifrost import _client
from bifrost.types import KnowledgeDocument, NamespaceInfo


async def store(content: str, namespace: str = "default", key: str | None = None, metadata: dict | None = None) -> str:
    """Store a document; the same ``key`` in the same namespace replaces it. Returns the document id."""
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
    """Return the documents most similar to ``query`` (organization first, then global)."""
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
    """Return a stored document by key, or None."""
    body = await _client.call_or_none("GET", "/knowledge/documents", params={"key": key, "namespace": namespace})
    return KnowledgeDocument.model_validate(body) if body else None


async def delete(key: str, namespace: str = "default") -> bool:
    """Delete a document by key."""
    body = await _client.call_or_none("DELETE", "/knowledge/documents", params={"key": key, "namespace": namespace})
    return bool(body and body.get("deleted"))


async def delete_namespace(namespace: str) -> int:
    """Delete every document of a namespace; returns how many were deleted."""
    body = await _client.call("DELETE", f"/knowledge/namespaces/{_client.segment(namespace)}")
    return int(body.get("deleted", 0))


async def list_namespaces() -> builtins.list[NamespaceInfo]:
    """List the namespaces visible to the caller."""
    return [NamespaceInfo.model_validate(r) for r in await _client.call("GET", "/knowledge/namespaces")]
