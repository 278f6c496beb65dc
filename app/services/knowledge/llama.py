"""LlamaIndex classes behind knowledge: the embedding adapter, the vector store and the splitter.

Imported lazily (``llama_index`` takes seconds to import): only the first
knowledge call of a process pays for it.

- :class:`PlatformEmbedding` is a LlamaIndex ``BaseEmbedding`` over our
  :class:`~app.services.knowledge.embeddings.Embedder` (local ONNX model or an OpenAI-compatible API).
- :class:`PlatformVectorStore` is a ``BasePydanticVectorStore`` whose vectors are the
  chunk rows of the platform database, searched in memory with numpy
  (:mod:`app.services.knowledge.index`). It is asynchronous only: it runs inside a
  request's database session, so the synchronous methods refuse with a clear error.
- :func:`make_splitter` sizes LlamaIndex's ``SentenceSplitter`` to the model's window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from llama_index.core import VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import BaseNode, NodeRelationship, QueryBundle, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryResult,
)
from pydantic import PrivateAttr
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models.knowledge import KnowledgeChunk
from app.services.knowledge.embeddings import Embedder
from app.services.knowledge.index import DocumentHit, NamespaceMatrix, search

__all__ = [
    "CHUNK_OVERLAP",
    "CHUNK_TOKENS",
    "NodeRelationship",
    "PlatformEmbedding",
    "PlatformVectorStore",
    "QueryBundle",
    "RelatedNodeInfo",
    "TextNode",
    "VectorStoreIndex",
    "filters_from_dict",
    "make_splitter",
    "matches",
]

# Word pieces per chunk: MiniLM reads at most 256 including [CLS] and [SEP]; the splitter's
# sentence packing can overshoot its target a little, so leave room.
CHUNK_TOKENS = 200
CHUNK_OVERLAP = 30


def make_splitter(embedder: Embedder) -> SentenceSplitter:
    """A sentence-aware splitter counting the model's word pieces."""

    def pieces(text: str) -> range:
        # SentenceSplitter only takes len() of what the tokenizer returns.
        return range(embedder.count_tokens(text))

    return SentenceSplitter(chunk_size=CHUNK_TOKENS, chunk_overlap=CHUNK_OVERLAP, tokenizer=pieces)


class PlatformEmbedding(BaseEmbedding):
    """LlamaIndex embedding model over the platform's embedder (async methods never block the loop)."""

    _embedder: Any = PrivateAttr()

    def __init__(self, embedder: Embedder, **kwargs: Any) -> None:
        super().__init__(model_name=embedder.model_id, embed_batch_size=32, **kwargs)
        self._embedder = embedder

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embedder.embed_sync([query])[0].tolist()  # type: ignore[no-any-return]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return (await self._embedder.embed([query]))[0].tolist()  # type: ignore[no-any-return]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embedder.embed_sync([text])[0].tolist()  # type: ignore[no-any-return]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.embed_sync(texts).tolist()  # type: ignore[no-any-return]

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return (await self._embedder.embed([text]))[0].tolist()  # type: ignore[no-any-return]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return (await self._embedder.embed(texts)).tolist()  # type: ignore[no-any-return]


# ----- metadata filters ------------------------------------------------------------------------------
def filters_from_dict(spec: dict[str, Any] | None) -> MetadataFilters | None:
    """Turn the SDK's ``metadata_filter`` into LlamaIndex filters.

    ``{"status": "open"}`` is equality; a list value means "one of"
    (``{"team": ["a", "b"]}``); ``{"priority": {"$gte": 2}}`` uses an operator
    (``$eq $ne $gt $gte $lt $lte $in $nin $contains``). Conditions are ANDed.
    """
    if not spec:
        return None
    operators = {
        "$eq": FilterOperator.EQ,
        "$ne": FilterOperator.NE,
        "$gt": FilterOperator.GT,
        "$gte": FilterOperator.GTE,
        "$lt": FilterOperator.LT,
        "$lte": FilterOperator.LTE,
        "$in": FilterOperator.IN,
        "$nin": FilterOperator.NIN,
        "$contains": FilterOperator.CONTAINS,
    }
    filters: list[MetadataFilter | MetadataFilters] = []
    for key, value in spec.items():
        if isinstance(value, dict):
            for op, operand in value.items():
                if op not in operators:
                    raise ValueError(f"unknown operator {op!r} for {key!r} (use one of {', '.join(operators)})")
                filters.append(MetadataFilter(key=key, value=operand, operator=operators[op]))
        elif isinstance(value, list):
            filters.append(MetadataFilter(key=key, value=value, operator=FilterOperator.IN))
        else:
            filters.append(MetadataFilter(key=key, value=value, operator=FilterOperator.EQ))
    return MetadataFilters(filters=filters, condition=FilterCondition.AND)


def _compare(op: FilterOperator, actual: Any, expected: Any) -> bool:
    try:
        if op == FilterOperator.EQ:
            return bool(actual == expected)
        if op == FilterOperator.NE:
            return bool(actual != expected)
        if op == FilterOperator.IN:
            return actual in expected
        if op == FilterOperator.NIN:
            return actual not in expected
        if op == FilterOperator.CONTAINS:
            return isinstance(actual, list | str) and expected in actual
        if actual is None or isinstance(actual, bool) != isinstance(expected, bool):
            return False
        if op == FilterOperator.GT:
            return bool(actual > expected)
        if op == FilterOperator.GTE:
            return bool(actual >= expected)
        if op == FilterOperator.LT:
            return bool(actual < expected)
        if op == FilterOperator.LTE:
            return bool(actual <= expected)
    except TypeError:  # e.g. "3" > 2: not a match rather than an error
        return False
    raise ValueError(f"unsupported metadata filter operator {op.value!r}")


def matches(filters: MetadataFilters, metadata: dict[str, Any]) -> bool:
    """True when ``metadata`` satisfies ``filters`` (nested groups, AND / OR / NOT)."""
    results = []
    for item in filters.filters:
        if isinstance(item, MetadataFilters):
            results.append(matches(item, metadata))
        else:
            results.append(_compare(FilterOperator(item.operator), metadata.get(item.key), item.value))
    if filters.condition == FilterCondition.OR:
        return any(results)
    if filters.condition == FilterCondition.NOT:
        return not any(results)
    return all(results)


# ----- the vector store ------------------------------------------------------------------------------
class PlatformVectorStore(BasePydanticVectorStore):
    """Chunks and vectors in the platform database, searched in memory per namespace.

    One instance serves one unit of work: it holds the request's database session,
    the namespace snapshots the caller may read (for queries) or the namespace
    written to (for adds and deletes). Organization scoping is the caller's job
    (:class:`app.services.knowledge.service.KnowledgeService` picks the snapshots).
    """

    stores_text: bool = True
    is_embedding_query: bool = True

    _session: Any = PrivateAttr()
    _matrices: list[NamespaceMatrix] = PrivateAttr()
    _namespace_id: str | None = PrivateAttr()
    _model_id: str = PrivateAttr()
    _hits: dict[str, DocumentHit] = PrivateAttr()

    def __init__(
        self,
        session: AsyncSession,
        model_id: str,
        matrices: list[NamespaceMatrix] | None = None,
        namespace_id: str | None = None,
    ) -> None:
        super().__init__(stores_text=True)
        self._session = session
        self._model_id = model_id
        self._matrices = matrices or []
        self._namespace_id = namespace_id
        self._hits = {}

    @property
    def hits(self) -> dict[str, DocumentHit]:
        """The hit behind each node returned by :meth:`aquery`, by chunk id."""
        return self._hits

    @property
    def client(self) -> Any:
        """The database session."""
        return self._session

    def _sync_refused(self) -> NotImplementedError:
        return NotImplementedError("PlatformVectorStore is asynchronous: use aquery / async_add / adelete.")

    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Refused: see :meth:`async_add`."""
        raise self._sync_refused()

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Refused: see :meth:`adelete`."""
        raise self._sync_refused()

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Refused: see :meth:`aquery`."""
        raise self._sync_refused()

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Insert chunk rows for embedded nodes of one document (``node.ref_doc_id``) into the namespace."""
        if self._namespace_id is None:
            raise ValueError("this store was opened for reading; give namespace_id to add")
        ids = []
        for position, node in enumerate(nodes):
            if node.embedding is None or node.ref_doc_id is None:
                raise ValueError("nodes need an embedding and a source document")
            vector = np.asarray(node.embedding, dtype="<f4")
            self._session.add(
                KnowledgeChunk(
                    id=node.node_id,
                    document_id=node.ref_doc_id,
                    namespace_id=self._namespace_id,
                    position=int(node.metadata.get("chunk_index", position)),
                    content=node.get_content(),
                    embedding=vector.tobytes(),
                    embedding_model=self._model_id,
                )
            )
            ids.append(node.node_id)
        await self._session.flush()
        return ids

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every chunk of a document."""
        await self._session.execute(delete(KnowledgeChunk).where(col(KnowledgeChunk.document_id) == ref_doc_id))

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Best documents (each with its best chunk) by cosine similarity over the snapshots.

        ``kwargs``: ``min_score`` (drop weaker documents).
        """
        if query.query_embedding is None:
            raise ValueError("PlatformVectorStore needs a query embedding")
        filters = query.filters
        doc_ids = set(query.doc_ids) if query.doc_ids else None

        def document_filter(key: str | None, metadata: dict[str, Any]) -> bool:
            return filters is None or matches(filters, metadata)

        hits = search(
            self._matrices,
            np.asarray(query.query_embedding, dtype=np.float32),
            query.similarity_top_k,
            min_score=kwargs.get("min_score"),
            document_filter=document_filter if filters is not None else None,
        )
        if doc_ids is not None:
            hits = [h for h in hits if h.matrix.doc_ids[h.doc] in doc_ids]
        chunk_ids = [h.matrix.chunk_ids[h.row] for h in hits]
        texts: dict[str, str] = {}
        if chunk_ids:
            rows = await self._session.execute(
                select(col(KnowledgeChunk.id), col(KnowledgeChunk.content)).where(col(KnowledgeChunk.id).in_(chunk_ids))
            )
            texts = {row[0]: row[1] for row in rows}
        nodes: list[BaseNode] = []
        similarities: list[float] = []
        ids: list[str] = []
        for hit, chunk_id in zip(hits, chunk_ids, strict=True):
            if chunk_id not in texts:  # deleted since the snapshot was taken
                continue
            matrix = hit.matrix
            node = TextNode(
                id_=chunk_id,
                text=texts[chunk_id],
                metadata=dict(matrix.doc_metadata[hit.doc]),
                relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=matrix.doc_ids[hit.doc])},
            )
            self._hits[chunk_id] = hit
            nodes.append(node)
            similarities.append(hit.score)
            ids.append(chunk_id)
        return VectorStoreQueryResult(nodes=nodes, similarities=similarities, ids=ids)
