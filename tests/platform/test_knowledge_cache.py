"""The bounded vector cache (``BIFROST_KNOWLEDGE_CACHE_MB``) with the real service, on SQLite and Postgres.

Real database (migrated), real local embedding model, real :class:`KnowledgeService`; the bound is
set in bytes on the runtime's cache so that it holds two or three tiny namespaces.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from app.services.knowledge.index import VectorCache, build_matrix
from tests.conftest import make_settings

# One short document per namespace, each about something else, so a search has one right answer.
TOPICS = {
    "alpha": ("parking", "Staff parking is in the basement garage, levels minus one and minus two."),
    "beta": ("printer", "The colour printer on the third floor needs a badge to release jobs."),
    "gamma": ("lunch", "The canteen serves hot lunch between noon and two in the afternoon."),
    "delta": ("vpn", "Connect to the VPN with the company authenticator app before opening the intranet."),
}
QUESTIONS = {
    "alpha": "where can employees leave their cars",
    "beta": "how do I get my document out of the colour printer",
    "gamma": "when is food available in the canteen",
    "delta": "how do I reach internal sites from home",
}


@dataclass
class Kb:
    """A migrated database, a knowledge runtime and an organization user."""

    runtime: Any
    sessions: Any
    actor: Any
    other: Any  # a second runtime on the same database: another process (`bifrost run`)

    @property
    def cache(self) -> VectorCache:
        return self.runtime.cache  # type: ignore[no-any-return]

    async def store(self, namespace: str, key: str, content: str, runtime: Any = None) -> None:
        from app.db import transaction
        from app.services.knowledge.service import KnowledgeService

        async with transaction(self.sessions) as session:
            await KnowledgeService(session, runtime or self.runtime).store(self.actor, content, namespace, key)

    async def search(self, namespace: str, query: str, limit: int = 3) -> list[dict[str, Any]]:
        from app.db import transaction
        from app.services.knowledge.service import KnowledgeService

        async with transaction(self.sessions) as session:
            return await KnowledgeService(session, self.runtime).search(self.actor, query, namespace, limit)

    async def namespace_ids(self) -> dict[str, str]:
        from app.db import transaction
        from app.services.knowledge.service import KnowledgeService

        async with transaction(self.sessions) as session:
            return {
                n["name"]: n["id"] for n in await KnowledgeService(session, self.runtime).list_namespaces(self.actor)
            }

    def cached(self, ids: dict[str, str]) -> list[str]:
        """Cached namespace names, least recently searched first."""
        names = {v: k for k, v in ids.items()}
        return [names[i] for i in self.cache.entries]

    def assert_accounting(self) -> None:
        assert self.cache.nbytes == sum(m.memory_bytes for m in self.cache.entries.values())
        assert self.cache.max_bytes is None or self.cache.nbytes <= self.cache.max_bytes


@asynccontextmanager
async def knowledge_base(tmp_path: Path, database_url: str) -> AsyncIterator[Kb]:
    from app.db import create_engine, session_factory, transaction, upgrade_database_async
    from app.services.identity.auth import AuthService
    from app.services.identity.organizations import OrganizationService
    from app.services.identity.users import UserService
    from app.services.knowledge.service import KnowledgeRuntime

    settings = make_settings(tmp_path, database_url)
    await upgrade_database_async(settings.resolved_database_url)
    engine = create_engine(settings.resolved_database_url)
    sessions = session_factory(engine)
    async with transaction(sessions) as session:
        users = UserService(session)
        admin = await users.create(None, "admin@test.io", "Admin", is_superuser=True, password="admin-password")
        org = await OrganizationService(session).create(await AuthService(session).actor_for_user(admin.id), "Org A")
        alice = await users.create(None, "alice@a.example", "Alice", org_id=org.id, password="alice-password")
        actor = await AuthService(session).actor_for_user(alice.id)
    runtime = KnowledgeRuntime(settings)
    other = KnowledgeRuntime(settings)
    other.embedder.close()
    other.embedder = runtime.embedder  # one model in memory is enough; the caches stay separate
    try:
        yield Kb(runtime=runtime, sessions=sessions, actor=actor, other=other)
    finally:
        runtime.close()
        await engine.dispose()


async def fill(kb: Kb, names: list[str]) -> dict[str, str]:
    for name in names:
        key, text = TOPICS[name]
        await kb.store(name, key, text)
    return await kb.namespace_ids()


async def test_least_recently_searched_namespaces_go_first_and_the_bound_holds(
    tmp_path: Path, database_url: str
) -> None:
    async with knowledge_base(tmp_path, database_url) as kb:
        ids = await fill(kb, ["alpha", "beta", "gamma"])
        assert (await kb.search("alpha", QUESTIONS["alpha"]))[0]["key"] == "parking"
        one = kb.cache.entries[ids["alpha"]].memory_bytes
        assert one > kb.cache.entries[ids["alpha"]].nbytes > 0  # ids and keys are counted too
        kb.cache.max_bytes = int(one * 2.5)  # room for two of these namespaces, not three

        assert (await kb.search("beta", QUESTIONS["beta"]))[0]["key"] == "printer"
        assert kb.cached(ids) == ["alpha", "beta"]
        await kb.search("alpha", QUESTIONS["alpha"])  # alpha is now the most recently searched
        assert kb.cached(ids) == ["beta", "alpha"]
        assert kb.cache.evictions == 0

        assert (await kb.search("gamma", QUESTIONS["gamma"]))[0]["key"] == "lunch"
        assert kb.cached(ids) == ["alpha", "gamma"]  # beta was the least recently searched
        assert kb.cache.evictions == 1
        kb.assert_accounting()
        stats = kb.cache.stats()
        assert stats["namespaces"] == 2 and stats["evictions"] == 1 and stats["loads"] == 3

        # A bigger namespace pushes out as many of the least recently searched as it needs.
        kb.cache.max_bytes = int(one * 3.5)
        await kb.search("beta", QUESTIONS["beta"])
        assert kb.cached(ids) == ["alpha", "gamma", "beta"]
        await kb.store("delta", "vpn", TOPICS["delta"][1])
        await kb.store("delta", "wifi", "The guest wireless network password is printed at reception.")
        ids = await kb.namespace_ids()
        assert (await kb.search("delta", QUESTIONS["delta"]))[0]["key"] == "vpn"
        assert kb.cached(ids) == ["beta", "delta"]  # 1 + 1 + 1 + 2 chunks: alpha and gamma went
        assert kb.cache.evictions == 3
        kb.assert_accounting()


async def test_a_search_after_eviction_reloads_from_the_database_with_the_same_results(
    tmp_path: Path, database_url: str
) -> None:
    async with knowledge_base(tmp_path, database_url) as kb:
        ids = await fill(kb, ["alpha", "beta", "gamma"])
        before = await kb.search("alpha", QUESTIONS["alpha"])
        kb.cache.max_bytes = int(kb.cache.nbytes * 1.5)  # one namespace at a time
        await kb.search("beta", QUESTIONS["beta"])
        await kb.search("gamma", QUESTIONS["gamma"])
        assert kb.cached(ids) == ["gamma"]
        loads = kb.cache.loads

        after = await kb.search("alpha", QUESTIONS["alpha"])
        assert kb.cache.loads == loads + 1
        assert [(r["id"], r["chunk_id"], r["score"]) for r in after] == [
            (r["id"], r["chunk_id"], r["score"]) for r in before
        ]
        assert after[0]["key"] == "parking"
        assert kb.cached(ids) == ["alpha"]
        await kb.search("alpha", QUESTIONS["alpha"])
        assert kb.cache.loads == loads + 1  # served from the cache again
        kb.assert_accounting()


async def test_version_invalidation_still_works_with_eviction(tmp_path: Path, database_url: str) -> None:
    async with knowledge_base(tmp_path, database_url) as kb:
        ids = await fill(kb, ["alpha", "beta", "gamma"])
        await kb.search("alpha", QUESTIONS["alpha"])
        kb.cache.max_bytes = int(kb.cache.nbytes * 3.5)  # three one-chunk namespaces, not four
        await kb.search("beta", QUESTIONS["beta"])
        assert kb.cached(ids) == ["alpha", "beta"]

        # Another process adds to a cached namespace: the version moved, the search reloads it.
        await kb.store("beta", "toner", "Spare toner cartridges are kept in the supply room.", runtime=kb.other)
        loads = kb.cache.loads
        keys = [r["key"] for r in await kb.search("beta", "where are replacement ink supplies stored")]
        assert keys[0] == "toner" and "printer" in keys
        assert kb.cache.loads == loads + 1
        assert kb.cache.entries[ids["beta"]].size == 2
        kb.assert_accounting()  # the replaced snapshot's bytes were given back

        # ... and to an evicted one: the reload after eviction reads the new version.
        await kb.search("gamma", QUESTIONS["gamma"])  # 1 + 2 + 1 chunks: evicts alpha, searched before beta
        assert kb.cached(ids) == ["beta", "gamma"]
        await kb.store("alpha", "bikes", "Bicycles go in the racks beside the main entrance.", runtime=kb.other)
        keys = [r["key"] for r in await kb.search("alpha", "where do I put my bicycle")]
        assert keys[0] == "bikes" and "parking" in keys
        assert kb.cached(ids) == ["gamma", "alpha"]  # 2 + 1 + 2: beta went

        # A delete through this process updates the snapshot in place (no reload) and the search agrees.
        loads = kb.cache.loads
        assert await delete(kb, "alpha", "bikes")
        assert kb.cache.entries[ids["alpha"]].doc_keys == ["parking"]
        kb.assert_accounting()
        assert [r["key"] for r in await kb.search("alpha", "where do I put my bicycle")] == ["parking"]
        assert kb.cache.loads == loads
        kb.assert_accounting()


async def delete(kb: Kb, namespace: str, key: str) -> bool:
    from app.db import transaction
    from app.services.knowledge.service import KnowledgeService

    async with transaction(kb.sessions) as session:
        return await KnowledgeService(session, kb.runtime).delete(kb.actor, key, namespace)


async def test_a_namespace_larger_than_the_bound_is_searched_but_not_kept(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with knowledge_base(tmp_path, database_url) as kb:
        ids = await fill(kb, ["alpha", "beta"])
        await kb.search("beta", QUESTIONS["beta"])
        kb.cache.max_bytes = kb.cache.nbytes - 1  # beta no longer fits, nor does alpha (same size)
        # the store's in-place update does not fit either: beta is dropped (counted oversized once)
        await kb.store("beta", "toner", "Spare toner cartridges are kept in the supply room.")
        assert kb.cached(ids) == [] and kb.cache.oversized == 1
        loads = kb.cache.loads
        with caplog.at_level(logging.WARNING, logger="app.services.knowledge.index"):
            for _ in range(2):
                assert (await kb.search("beta", QUESTIONS["beta"]))[0]["key"] == "printer"
        assert kb.cache.loads == loads + 2  # each search read the database
        assert kb.cached(ids) == [] and kb.cache.nbytes == 0 and kb.cache.oversized == 3  # + the two searches
        warnings = [r for r in caplog.records if "BIFROST_KNOWLEDGE_CACHE_MB" in r.getMessage()]
        assert len(warnings) == 1  # once per namespace, not per search

        kb.cache.max_bytes = 0  # keep nothing: still correct, and no warning
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="app.services.knowledge.index"):
            assert (await kb.search("alpha", QUESTIONS["alpha"]))[0]["key"] == "parking"
        assert kb.cached(ids) == [] and not caplog.records


async def test_concurrent_searches_under_a_tight_bound(tmp_path: Path, database_url: str) -> None:
    async with knowledge_base(tmp_path, database_url) as kb:
        names = list(TOPICS)
        await fill(kb, names)
        await kb.search("alpha", QUESTIONS["alpha"])
        kb.cache.max_bytes = int(kb.cache.nbytes * 1.5)  # one namespace at a time: constant eviction

        async def ask(name: str) -> str:
            return str((await kb.search(name, QUESTIONS[name]))[0]["key"])

        order = names * 4
        answers = await asyncio.gather(*[ask(n) for n in order])
        assert answers == [TOPICS[n][0] for n in order]
        assert len(kb.cache.entries) <= 1 and kb.cache.evictions > 0
        kb.assert_accounting()


def test_the_setting_sets_the_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.services.knowledge.service import KnowledgeRuntime
    from app.settings import Settings

    monkeypatch.delenv("BIFROST_KNOWLEDGE_CACHE_MB", raising=False)
    assert Settings().knowledge_cache_mb == 512
    monkeypatch.setenv("BIFROST_KNOWLEDGE_CACHE_MB", "3")
    settings = Settings(home=tmp_path)
    assert settings.knowledge_cache_mb == 3
    runtime = KnowledgeRuntime(settings)
    try:
        assert runtime.cache.max_bytes == 3 * 1024 * 1024
        assert runtime.cache.stats()["max_mib"] == 3.0
    finally:
        runtime.close()
    monkeypatch.setenv("BIFROST_KNOWLEDGE_CACHE_MB", "-1")
    with pytest.raises(ValidationError, match="knowledge_cache_mb"):
        Settings(home=tmp_path)


def test_the_bookkeeping_holds_when_threads_share_the_cache() -> None:
    """Loops in several threads share one process cache: order and byte total stay consistent."""
    rng = np.random.default_rng(0)

    def matrix(i: int, version: int) -> Any:
        rows = [(f"c{i}-{j}", f"d{i}", rng.standard_normal(8).astype("<f4").tobytes()) for j in range(3)]
        return build_matrix(f"ns{i}", version, "m", [(f"d{i}", None, None)], rows)

    snapshots = [[matrix(i, v) for v in range(1, 4)] for i in range(12)]
    cache = VectorCache(max_bytes=snapshots[0][0].memory_bytes * 4 + 10)
    errors: list[BaseException] = []

    def hammer(seed: int) -> None:
        pick = np.random.default_rng(seed)
        try:
            for _ in range(3000):
                i, v = int(pick.integers(12)), int(pick.integers(3))
                action = pick.integers(3)
                if action == 0:
                    cache._keep(snapshots[i][v])
                elif action == 1:
                    cache.invalidate(f"ns{i}")
                else:
                    cache.stats()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert cache.nbytes == sum(m.memory_bytes for m in cache.entries.values()) <= cache.max_bytes  # type: ignore[operator]
    assert len(cache.entries) <= 4


def test_the_knowledge_page_shows_the_cache_figures(tmp_path: Path) -> None:
    import re

    from tests.platform.conftest import browser_session, start_world

    world = start_world(tmp_path)
    try:
        with world.server.client(world.alice_key) as client:
            stored = client.post("/api/knowledge/documents", json={"content": TOPICS["gamma"][1], "namespace": "faq"})
            assert stored.status_code == 201, stored.text
            found = client.post("/api/knowledge/search", json={"query": QUESTIONS["gamma"], "namespaces": "faq"})
            assert found.status_code == 200 and len(found.json()) == 1
        with browser_session(world) as admin:
            page = admin.get("/knowledge")
        assert page.status_code == 200
        figures = re.search(r'id="knowledge-cache">(.*?)</p>', page.text, re.S)
        assert figures is not None
        text = " ".join(re.sub(r"<[^>]+>", " ", figures.group(1)).split())
        assert re.search(r"1 namespace, 0\.0 MiB of 512\.0 MiB .*0 evicted", text), text
    finally:
        world.server.stop()
