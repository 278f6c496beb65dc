"""In-memory vector search over one namespace's chunks: a normalised float32 matrix per namespace.

A :class:`NamespaceMatrix` is an immutable snapshot of a namespace's vectors
(those made by the current embedding model) together with the documents they
belong to. :class:`VectorCache` keeps one per namespace, keyed by the
namespace's ``version`` column, which every write bumps: a search that reads a
newer version than the cached one reloads (so changes made by another process
are seen too). Snapshots are never mutated, so concurrent searches on the event
loop and in threads can share them safely; a reload simply replaces the entry.
A write made by this process does not force a reload: once its transaction
commits, the cached snapshot is replaced by a copy with that one document's rows
swapped (:class:`DocumentChange`, :meth:`VectorCache.apply_after_commit`), which
costs a copy of the matrix (tens of ms at 50k chunks) instead of a reload from the
database (about a second).
The cache is bounded in bytes (``BIFROST_KNOWLEDGE_CACHE_MB``): the least recently
searched snapshots are evicted first and reloaded from the database when needed.

Vectors stay float32: float16 would halve the memory but numpy has no BLAS for it,
and its matrix-vector product measured ~9x slower (50k x 384: 76 ms against 8.6 ms).

Searching is a matrix-vector product (numpy BLAS) plus a per-document maximum
(rows are stored grouped by document, so ``np.maximum.reduceat`` does it in one pass).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models.knowledge import KnowledgeChunk, KnowledgeDocument

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

MIB = 1024 * 1024
# A list slot (pointer) per id, key and metadata entry.
_POINTER = 8


@dataclass(frozen=True)
class NamespaceMatrix:
    """Vectors of one namespace at one version, grouped by document.

    Attributes:
        namespace_id: The namespace.
        version: ``knowledge_namespace.version`` this snapshot reflects.
        model_id: Embedding model of every row.
        vectors: ``(n, d)`` float32 unit rows.
        chunk_ids: Chunk id of each row.
        doc_starts: First row of each document (ascending; documents with no current vectors are absent).
        doc_ids: Id of each document in ``doc_starts`` order.
        doc_keys: Key of each document.
        doc_metadata: Metadata of each document.
    """

    namespace_id: str
    version: int
    model_id: str
    vectors: np.ndarray
    chunk_ids: list[str]
    doc_starts: np.ndarray
    doc_ids: list[str]
    doc_keys: list[str | None]
    doc_metadata: list[dict[str, Any]]

    @property
    def size(self) -> int:
        """Number of chunk vectors."""
        return len(self.chunk_ids)

    @property
    def nbytes(self) -> int:
        """Bytes held by the vector matrix."""
        return int(self.vectors.nbytes)

    @cached_property
    def memory_bytes(self) -> int:
        """Approximate bytes of the whole snapshot: the matrix plus its ids, keys and metadata.

        Computed once (the cache adds and subtracts the same figure). Ids and keys add
        about 8% to a 384-wide matrix (50k chunks: 79 MiB, 73 of them vectors); metadata
        dicts count shallowly.
        """
        # Ids are UUID text, all of one length: the first one's size stands for every one (a sum
        # over 50k strings would stall the loop for tens of milliseconds).
        strings = sum(len(ids) * sys.getsizeof(ids[0]) for ids in (self.chunk_ids, self.doc_ids) if ids)
        keys = sum(sys.getsizeof(k) for k in self.doc_keys if k is not None)
        metadata = sum(sys.getsizeof(m) for m in self.doc_metadata)
        slots = _POINTER * (len(self.chunk_ids) + 3 * len(self.doc_ids))
        return int(self.vectors.nbytes + self.doc_starts.nbytes + strings + keys + metadata + slots)


@dataclass(frozen=True)
class DocumentChange:
    """What one write did to one document of a namespace: its rows are now exactly these.

    Attributes:
        document_id: The document stored, replaced or deleted.
        key: Its key (None without one).
        metadata: Its metadata.
        chunk_ids: Ids of its chunks in position order (empty: deleted).
        vectors: ``(len(chunk_ids), d)`` float32 rows, as stored.
    """

    document_id: str
    key: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    chunk_ids: list[str] = field(default_factory=list)
    vectors: np.ndarray | None = None


def apply_change(matrix: NamespaceMatrix, version: int, change: DocumentChange) -> NamespaceMatrix | None:
    """A snapshot at ``version``: ``matrix`` with the document's old rows removed and its new rows at the end.

    Idempotent (the document's rows end up as ``change`` says whether or not the snapshot already
    held them), so a snapshot loaded while the change was committing is still right afterwards.
    Returns None when the change cannot be applied (rows of another width: a model change).
    """
    # Imported here, not at the top: numpy costs ~0.15 s of every process start and only knowledge writes
    # and searches need it.
    import numpy as np

    new_rows = np.zeros((0, matrix.vectors.shape[1]), dtype=np.float32)
    if change.chunk_ids:
        new_rows = np.asarray(change.vectors, dtype=np.float32).reshape(len(change.chunk_ids), -1)
        if matrix.size and new_rows.shape[1] != matrix.vectors.shape[1]:
            return None
    starts = matrix.doc_starts
    doc_ids, doc_keys, doc_metadata = list(matrix.doc_ids), list(matrix.doc_keys), list(matrix.doc_metadata)
    chunk_ids = matrix.chunk_ids
    kept = matrix.vectors
    if change.document_id in doc_ids:
        index = doc_ids.index(change.document_id)
        start = int(starts[index])
        end = int(starts[index + 1]) if index + 1 < len(starts) else matrix.size
        kept = np.concatenate((matrix.vectors[:start], matrix.vectors[end:]))
        chunk_ids = chunk_ids[:start] + chunk_ids[end:]
        starts = np.concatenate((starts[:index], starts[index + 1 :] - (end - start)))
        del doc_ids[index], doc_keys[index], doc_metadata[index]
    if change.chunk_ids:
        starts = np.append(starts, len(chunk_ids)).astype(np.int64)
        chunk_ids = [*chunk_ids, *change.chunk_ids]
        doc_ids.append(change.document_id)
        doc_keys.append(change.key)
        doc_metadata.append(change.metadata or {})
        kept = np.concatenate((kept, new_rows)) if len(kept) else new_rows
    return NamespaceMatrix(
        namespace_id=matrix.namespace_id,
        version=version,
        model_id=matrix.model_id,
        vectors=np.ascontiguousarray(kept, dtype=np.float32),
        chunk_ids=list(chunk_ids),
        doc_starts=np.asarray(starts, dtype=np.int64),
        doc_ids=doc_ids,
        doc_keys=doc_keys,
        doc_metadata=doc_metadata,
    )


@dataclass(frozen=True)
class DocumentHit:
    """The best chunk of one document for a query."""

    matrix: NamespaceMatrix
    doc: int  # index into the matrix's document arrays
    row: int  # best row (chunk) of that document
    score: float


async def load_matrix(session: AsyncSession, namespace_id: str, version: int, model_id: str) -> NamespaceMatrix:
    """Read a namespace's vectors of ``model_id`` from the database.

    Rows come ordered by document then position so each document is one contiguous run.
    """
    docs = (
        await session.execute(
            select(col(KnowledgeDocument.id), col(KnowledgeDocument.key), col(KnowledgeDocument.doc_metadata))
            .where(col(KnowledgeDocument.namespace_id) == namespace_id)
            .order_by(col(KnowledgeDocument.id))
        )
    ).all()
    rows = (
        await session.execute(
            select(col(KnowledgeChunk.id), col(KnowledgeChunk.document_id), col(KnowledgeChunk.embedding))
            .where(col(KnowledgeChunk.namespace_id) == namespace_id, col(KnowledgeChunk.embedding_model) == model_id)
            .order_by(col(KnowledgeChunk.document_id), col(KnowledgeChunk.position))
        )
    ).all()
    return build_matrix(namespace_id, version, model_id, docs, rows)


def build_matrix(
    namespace_id: str,
    version: int,
    model_id: str,
    docs: Any,
    rows: Any,
) -> NamespaceMatrix:
    """Assemble a snapshot from ``(id, key, metadata)`` documents and ``(id, document_id, bytes)`` rows."""
    import numpy as np  # deferred: see apply_change

    by_id = {d[0]: (d[1], d[2]) for d in docs}
    kept = [r for r in rows if r[1] in by_id]  # a document deleted between the two reads is skipped
    width = len(kept[0][2]) // 4 if kept else 0
    # Filled row by row: no second full-size copy (joining the blobs first would double the peak).
    vectors = np.empty((len(kept), width), dtype=np.float32)
    chunk_ids: list[str] = []
    doc_ids: list[str] = []
    doc_starts: list[int] = []
    for index, (chunk_id, document_id, blob) in enumerate(kept):
        if not doc_ids or doc_ids[-1] != document_id:
            doc_ids.append(document_id)
            doc_starts.append(index)
        chunk_ids.append(chunk_id)
        vectors[index] = np.frombuffer(blob, dtype="<f4")
    return NamespaceMatrix(
        namespace_id=namespace_id,
        version=version,
        model_id=model_id,
        vectors=vectors,
        chunk_ids=chunk_ids,
        doc_starts=np.asarray(doc_starts, dtype=np.int64),
        doc_ids=doc_ids,
        doc_keys=[by_id[d][0] for d in doc_ids],
        doc_metadata=[by_id[d][1] or {} for d in doc_ids],
    )


@dataclass
class VectorCache:
    """Snapshots by namespace id, least recently searched evicted first; a version mismatch means reload.

    One cache serves a whole server process (every request, every event loop).
    Entries are immutable and replaced whole; the bookkeeping (order, byte total)
    changes under a thread lock that is never held across an ``await``, so
    searches on several loops or threads may share the cache. Evicting only drops
    the cache's reference: a search already holding a snapshot keeps using it.
    Concurrent loads of the same namespace on one loop share one database read.

    Args:
        max_bytes: Bound on :attr:`NamespaceMatrix.memory_bytes` summed over the cached
            snapshots (``BIFROST_KNOWLEDGE_CACHE_MB``); None = unbounded. A snapshot larger
            than the bound serves the search that loaded it and is not kept.
    """

    max_bytes: int | None = None
    entries: OrderedDict[str, NamespaceMatrix] = field(default_factory=OrderedDict)
    _loading: dict[tuple[str, int, str], asyncio.Future[NamespaceMatrix]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _bytes: int = 0
    _warned: set[str] = field(default_factory=set, repr=False)
    loads: int = 0
    updates: int = 0  # snapshots brought up to date in place by this process's own writes
    evictions: int = 0
    oversized: int = 0

    async def get(self, session: AsyncSession, namespace_id: str, version: int, model_id: str) -> NamespaceMatrix:
        """The namespace's snapshot at ``version`` (loaded when missing, stale or evicted)."""
        with self._lock:
            entry = self.entries.get(namespace_id)
            if entry is not None and entry.version == version and entry.model_id == model_id:
                self.entries.move_to_end(namespace_id)  # most recently searched
                return entry
        key = (namespace_id, version, model_id)
        pending = self._loading.get(key)
        if pending is not None and pending.get_loop() is asyncio.get_running_loop():
            return await asyncio.shield(pending)
        future: asyncio.Future[NamespaceMatrix] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            matrix = await load_matrix(session, namespace_id, version, model_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            self._loading.pop(key, None)
        future.set_result(matrix)
        self._keep(matrix)
        return matrix

    def _keep(self, matrix: NamespaceMatrix, *, count_load: bool = True) -> None:
        size = matrix.memory_bytes  # computed outside the lock (a pass over the ids)
        too_big = False
        with self._lock:
            if count_load:
                self.loads += 1
            current = self.entries.get(matrix.namespace_id)
            # Never replace a newer snapshot loaded meanwhile by another request.
            if current is not None and current.version > matrix.version and current.model_id == matrix.model_id:
                return
            if current is not None:
                self._drop(matrix.namespace_id)
            if self.max_bytes is not None and size > self.max_bytes:
                # Keeping it would mean evicting everything else and still exceeding the bound.
                self.oversized += 1
                too_big = self.max_bytes > 0 and matrix.namespace_id not in self._warned
                self._warned.add(matrix.namespace_id)
            else:
                self.entries[matrix.namespace_id] = matrix
                self._bytes += size
                while self.max_bytes is not None and self._bytes > self.max_bytes:
                    oldest = next(iter(self.entries))  # never the one just added: it fits on its own
                    self._drop(oldest)
                    self.evictions += 1
        if too_big:  # once per namespace and process, not on every search
            log.warning(
                "knowledge namespace %s (%.1f MiB) is larger than BIFROST_KNOWLEDGE_CACHE_MB (%.1f MiB): "
                "it is searched but not cached, so every search of it reloads it from the database",
                matrix.namespace_id,
                size / MIB,
                (self.max_bytes or 0) / MIB,
            )

    def _drop(self, namespace_id: str) -> None:
        # Caller holds the lock.
        matrix = self.entries.pop(namespace_id, None)
        if matrix is not None:
            self._bytes -= matrix.memory_bytes

    def apply_after_commit(
        self, session: AsyncSession, namespace_id: str, version: int, model_id: str, change: DocumentChange
    ) -> None:
        """When ``session`` commits, bring a cached snapshot at ``version - 1`` to ``version`` with ``change``.

        A snapshot at another version (another process wrote meanwhile) or of another model is
        dropped instead, and reloaded by the next search. A rolled-back transaction changes
        nothing: the database, like the snapshot, stays at the old version.
        """

        # The first end of the transaction decides; a session that goes on to another transaction
        # must not apply this change when that one commits.
        ended = threading.Event()

        def apply(_session: Any) -> None:
            if ended.is_set():
                return
            ended.set()
            with self._lock:
                entry = self.entries.get(namespace_id)
            if entry is None:
                return
            updated = None
            if entry.version == version - 1 and entry.model_id == model_id:
                try:
                    updated = apply_change(entry, version, change)
                except Exception:  # never let a cache refresh fail the commit that already happened
                    log.exception("knowledge cache: could not apply a change to namespace %s", namespace_id)
            if updated is None:
                self.invalidate(namespace_id)
            else:
                with self._lock:
                    self.updates += 1
                self._keep(updated, count_load=False)

        def forget_uncommitted(_session: Any) -> None:
            # A search inside the same transaction may have cached its uncommitted rows (at ``version``
            # or later): the rollback drops them. A snapshot of the committed state stays.
            if ended.is_set():
                return
            ended.set()
            with self._lock:
                entry = self.entries.get(namespace_id)
            if entry is not None and entry.version >= version:
                self.invalidate(namespace_id)

        event.listen(session.sync_session, "after_commit", apply, once=True)
        event.listen(session.sync_session, "after_rollback", forget_uncommitted, once=True)

    def invalidate(self, namespace_id: str) -> None:
        """Forget a namespace's snapshot (the version check would catch it too; this frees memory early)."""
        with self._lock:
            self._drop(namespace_id)

    def clear(self) -> None:
        """Forget every snapshot."""
        with self._lock:
            self.entries.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        """Approximate bytes held by all cached snapshots (what :attr:`max_bytes` bounds)."""
        return self._bytes

    def stats(self) -> dict[str, Any]:
        """Figures for admins: cached namespaces, MiB held and allowed, loads, evictions."""
        with self._lock:
            return {
                "namespaces": len(self.entries),
                "mib": round(self._bytes / MIB, 1),
                "max_mib": None if self.max_bytes is None else round(self.max_bytes / MIB, 1),
                "loads": self.loads,
                "updates": self.updates,
                "evictions": self.evictions,
                "oversized": self.oversized,
            }


def search(
    matrices: list[NamespaceMatrix],
    query: np.ndarray,
    limit: int,
    *,
    min_score: float | None = None,
    document_filter: Callable[[str | None, dict[str, Any]], bool] | None = None,
) -> list[DocumentHit]:
    """The ``limit`` best documents over several namespaces, each with its best chunk.

    Ties keep the order of ``matrices`` (callers list the organization's namespaces
    before global ones, so on equal scores the organization's document wins).

    Args:
        matrices: Snapshots to search (same embedding model as ``query``).
        query: Unit query vector.
        limit: How many documents at most.
        min_score: Drop documents whose best cosine similarity is below this.
        document_filter: ``(key, metadata) -> bool``; documents it rejects are skipped.
    """
    import numpy as np  # deferred: see apply_change

    query = np.asarray(query, dtype=np.float32).reshape(-1)
    best_parts: list[np.ndarray] = []
    owners: list[tuple[NamespaceMatrix, np.ndarray]] = []
    for matrix in matrices:
        if matrix.size == 0 or matrix.vectors.shape[1] != query.shape[0]:
            continue
        scores = matrix.vectors @ query
        best = np.maximum.reduceat(scores, matrix.doc_starts)
        if document_filter is not None:
            keep = np.fromiter(
                (document_filter(k, m) for k, m in zip(matrix.doc_keys, matrix.doc_metadata, strict=True)),
                dtype=bool,
                count=len(matrix.doc_ids),
            )
            best = np.where(keep, best, -np.inf)
        best_parts.append(best)
        owners.append((matrix, scores))
    if not best_parts:
        return []
    all_best = np.concatenate(best_parts)
    offsets = np.cumsum([0] + [len(b) for b in best_parts])
    take = min(limit, len(all_best))
    if take <= 0:
        return []
    # Stable sort on the negated scores keeps earlier matrices first on ties.
    if take < len(all_best):
        candidates = np.argpartition(-all_best, take - 1)[:take]
        threshold = all_best[candidates].min()
        candidates = np.flatnonzero(all_best >= threshold)
    else:
        candidates = np.arange(len(all_best))
    order = candidates[np.argsort(-all_best[candidates], kind="stable")][:take]
    hits: list[DocumentHit] = []
    for flat in order:
        score = float(all_best[flat])
        if not np.isfinite(score) or (min_score is not None and score < min_score):
            continue
        part = int(np.searchsorted(offsets, flat, side="right") - 1)
        matrix, scores = owners[part]
        doc = int(flat - offsets[part])
        start = int(matrix.doc_starts[doc])
        end = int(matrix.doc_starts[doc + 1]) if doc + 1 < len(matrix.doc_starts) else matrix.size
        row = start + int(np.argmax(scores[start:end]))
        hits.append(DocumentHit(matrix=matrix, doc=doc, row=row, score=score))
    return hits
