"""A write through this process updates its cached matrix in place once committed, on SQLite and Postgres.

Real migrated database, real local embedding model, real :class:`KnowledgeService`. The reference for
"right" is always a fresh load from the database (a second runtime with an empty cache: another process).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.services.knowledge.index import DocumentChange, apply_change, build_matrix
from tests.platform.test_knowledge_cache import QUESTIONS, Kb, fill, knowledge_base


async def fresh_search(kb: Kb, namespace: str, query: str) -> list[tuple[str, str, float]]:
    """The same search through a runtime whose cache is empty: what a reload from the database gives."""
    from app.db import transaction
    from app.services.knowledge.service import KnowledgeService

    kb.other.cache.clear()
    async with transaction(kb.sessions) as session:
        rows = await KnowledgeService(session, kb.other).search(kb.actor, query, namespace, 5)
    return [(r["key"], r["chunk_id"], r["score"]) for r in rows]


async def cached_search(kb: Kb, namespace: str, query: str) -> list[tuple[str, str, float]]:
    return [(r["key"], r["chunk_id"], r["score"]) for r in await kb.search(namespace, query, 5)]


def same(left: list[tuple[str, str, float]], right: list[tuple[str, str, float]]) -> bool:
    return [row[:2] for row in left] == [row[:2] for row in right] and np.allclose(
        [row[2] for row in left], [row[2] for row in right], atol=1e-6
    )


async def test_own_writes_update_the_cached_matrix_without_a_reload(tmp_path: Path, database_url: str) -> None:
    async with knowledge_base(tmp_path, database_url) as kb:
        ids = await fill(kb, ["alpha"])
        await kb.search("alpha", QUESTIONS["alpha"])
        loads = kb.cache.loads

        # a new document, then a replacement by key with more text (more chunks), then a delete
        await kb.store("alpha", "bikes", "Bicycles go in the racks beside the main entrance.")
        await kb.store("alpha", "lockers", "Lockers for cycling gear are next to the showers on the ground floor.")
        long_text = " ".join(
            f"Visitor parking space {i} is reserved with the front desk a day ahead." for i in range(40)
        )
        await kb.store("alpha", "parking", long_text)
        from tests.platform.test_knowledge_cache import delete

        assert await delete(kb, "alpha", "lockers")

        assert kb.cache.loads == loads  # no reload: every change was applied in place
        assert kb.cache.updates == 4
        entry = kb.cache.entries[ids["alpha"]]
        assert sorted(k for k in entry.doc_keys if k) == ["bikes", "parking"]
        assert entry.size == len(entry.chunk_ids) == entry.vectors.shape[0] > 2  # the long text has several chunks
        kb.assert_accounting()
        for question in (QUESTIONS["alpha"], "where do I leave my bicycle", "reserving a space for a guest"):
            assert same(await cached_search(kb, "alpha", question), await fresh_search(kb, "alpha", question))
        assert kb.cache.loads == loads


async def test_a_rolled_back_write_leaves_the_cached_matrix_as_it_was(tmp_path: Path, database_url: str) -> None:
    from app.db import transaction
    from app.services.knowledge.service import KnowledgeService

    async with knowledge_base(tmp_path, database_url) as kb:
        ids = await fill(kb, ["alpha"])
        before = await cached_search(kb, "alpha", "where do I leave my bicycle")
        version = kb.cache.entries[ids["alpha"]].version

        class Abort(Exception):
            pass

        with pytest.raises(Abort):
            async with transaction(kb.sessions) as session:
                service = KnowledgeService(session, kb.runtime)
                await service.store(kb.actor, "Bicycles go in the racks beside the main entrance.", "alpha", "bikes")
                raise Abort
        assert kb.cache.entries[ids["alpha"]].version == version and kb.cache.updates == 0
        assert await cached_search(kb, "alpha", "where do I leave my bicycle") == before

        # A search inside the write's own transaction caches its uncommitted rows; the rollback drops them.
        with pytest.raises(Abort):
            async with transaction(kb.sessions) as session:
                service = KnowledgeService(session, kb.runtime)
                await service.store(kb.actor, "Bicycles go in the racks beside the main entrance.", "alpha", "bikes")
                hits = await service.search(kb.actor, "where do I leave my bicycle", "alpha")
                assert hits[0]["key"] == "bikes"
                raise Abort
        assert ids["alpha"] not in kb.cache.entries
        assert [row[0] for row in await cached_search(kb, "alpha", "where do I leave my bicycle")] == ["parking"]


async def test_a_write_after_another_process_wrote_drops_the_matrix_instead(tmp_path: Path, database_url: str) -> None:
    async with knowledge_base(tmp_path, database_url) as kb:
        ids = await fill(kb, ["alpha"])
        await kb.search("alpha", QUESTIONS["alpha"])
        await kb.store("alpha", "bikes", "Bicycles go in the racks beside the main entrance.", runtime=kb.other)
        # this process's matrix is one version behind: its own next write cannot be applied to it
        await kb.store("alpha", "lockers", "Lockers for cycling gear are next to the showers on the ground floor.")
        assert ids["alpha"] not in kb.cache.entries and kb.cache.updates == 0
        question = "where do I leave my bicycle"
        found = await cached_search(kb, "alpha", question)
        assert {row[0] for row in found} == {"parking", "bikes", "lockers"}
        assert same(found, await fresh_search(kb, "alpha", question))


def _matrix(docs: list[tuple[str, int]], width: int = 4) -> tuple[Any, dict[str, np.ndarray]]:
    """A snapshot of documents with the given number of rows each, and each document's rows."""
    rng = np.random.default_rng(7)
    rows, vectors = [], {}
    for doc_id, count in docs:
        vectors[doc_id] = rng.standard_normal((count, width)).astype(np.float32)
        rows += [(f"{doc_id}-{i}", doc_id, vectors[doc_id][i].astype("<f4").tobytes()) for i in range(count)]
    documents = [(doc_id, f"key-{doc_id}", {"d": doc_id}) for doc_id, _ in docs]
    return build_matrix("ns", 1, "m", documents, rows), vectors


def _by_document(matrix: Any) -> dict[str, tuple[list[str], list[list[float]], str | None]]:
    ends = [*matrix.doc_starts[1:].tolist(), matrix.size]
    return {
        doc_id: (matrix.chunk_ids[start:end], matrix.vectors[start:end].tolist(), matrix.doc_keys[index])
        for index, (doc_id, start, end) in enumerate(zip(matrix.doc_ids, matrix.doc_starts.tolist(), ends, strict=True))
    }


def test_apply_change_replaces_one_documents_rows_and_is_idempotent() -> None:
    matrix, vectors = _matrix([("a", 2), ("b", 3), ("c", 1)])
    replacement = np.ones((2, 4), dtype=np.float32)
    change = DocumentChange(
        document_id="b", key="key-b2", metadata={"v": 2}, chunk_ids=["b-x", "b-y"], vectors=replacement
    )

    once = apply_change(matrix, 2, change)
    assert once is not None and once.version == 2
    documents = _by_document(once)
    assert documents["a"] == (["a-0", "a-1"], vectors["a"].tolist(), "key-a")
    assert documents["c"] == (["c-0"], vectors["c"].tolist(), "key-c")
    assert documents["b"] == (["b-x", "b-y"], replacement.tolist(), "key-b2")
    assert once.doc_metadata[once.doc_ids.index("b")] == {"v": 2}
    assert once.size == 5 and once.vectors.dtype == np.float32 and once.vectors.flags["C_CONTIGUOUS"]

    twice = apply_change(once, 2, change)  # the snapshot already held the change: same content
    assert twice is not None and _by_document(twice) == documents

    deleted = apply_change(once, 3, DocumentChange(document_id="a"))
    assert deleted is not None and set(_by_document(deleted)) == {"b", "c"} and deleted.size == 3
    assert _by_document(deleted)["c"] == documents["c"]
    assert apply_change(deleted, 4, DocumentChange(document_id="missing")) is not None  # nothing to remove

    empty = apply_change(build_matrix("ns", 1, "m", [], []), 2, change)
    assert empty is not None and _by_document(empty) == {"b": documents["b"]}

    wider = DocumentChange(document_id="d", chunk_ids=["d-0"], vectors=np.ones((1, 8), dtype=np.float32))
    assert apply_change(matrix, 2, wider) is None  # another model's width: the caller drops the snapshot
