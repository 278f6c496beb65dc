"""Embedding providers, model changes, caches across processes and concurrency, on SQLite and Postgres.

The OpenAI-compatible provider talks to a fake embeddings server on 127.0.0.1 (hashed bag of
words, so texts sharing words are similar); nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import bifrost
from bifrost import knowledge
from bifrost.errors import ConfigurationError
from tests.conftest import LiveServer, make_settings
from tests.platform.conftest import World, start_world

DIM = 64


def bag_of_words(text: str) -> list[float]:
    vector = [0.0] * DIM
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % DIM] += 1.0
    return vector


class FakeEmbeddings:
    """A tiny OpenAI-compatible ``POST /v1/embeddings`` server that records what it was asked."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                fake.requests.append({"path": self.path, "auth": self.headers.get("authorization"), **body})
                if fake.fail or self.path != "/v1/embeddings":
                    self.send_response(500 if fake.fail else 404)
                    self.end_headers()
                    self.wfile.write(b'{"error": "down"}')
                    return
                data = [
                    {"object": "embedding", "index": i, "embedding": bag_of_words(t)}
                    for i, t in enumerate(body["input"])
                ]
                payload = json.dumps({"object": "list", "data": data[::-1], "model": body["model"]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_embeddings() -> Iterator[FakeEmbeddings]:
    fake = FakeEmbeddings()
    yield fake
    fake.close()


def chunk_models(world: World, doc_id: str) -> set[str]:
    with world.server.client(world.alice_key) as client:
        return {c["embedding_model"] for c in client.get(f"/api/knowledge/documents/{doc_id}/chunks").json()}


def test_changing_the_model_re_embeds_and_openai_compatible_apis_work(
    tmp_path: Path, database_url: str, fake_embeddings: FakeEmbeddings
) -> None:
    world = start_world(tmp_path, database_url)
    try:
        bifrost.configure(world.server.url, world.alice_key)
        runbook = asyncio.run(knowledge.store("Restart the print spooler service on the print server.", "ops", "spool"))
        asyncio.run(knowledge.store("Rotate the backup tapes every Friday afternoon.", "ops", "tapes"))
        assert chunk_models(world, runbook) == {"local:all-MiniLM-L6-v2-int8"}
    finally:
        world.server.stop()

    # The same database, now configured for an OpenAI-compatible API: start-up re-embeds.
    settings = make_settings(
        tmp_path,
        database_url,
        workspace=tmp_path / "workspace",
        embedding_provider="openai",
        embedding_base_url=fake_embeddings.url,
        embedding_model="fake-embed",
        embedding_api_key="sk-test",
    )
    server = LiveServer(settings).start()
    world = World(server=server, **{k: getattr(world, k) for k in World.__dataclass_fields__ if k != "server"})
    try:
        for _ in range(600):
            if chunk_models(world, runbook) == {"openai:fake-embed"}:
                break
            asyncio.run(asyncio.sleep(0.05))
        assert chunk_models(world, runbook) == {"openai:fake-embed"}
        assert fake_embeddings.requests and all(r["auth"] == "Bearer sk-test" for r in fake_embeddings.requests)
        assert {r["model"] for r in fake_embeddings.requests} == {"fake-embed"}
        bifrost.configure(server.url, world.alice_key)
        hits = asyncio.run(knowledge.search("backup tapes", "ops", limit=2))
        assert hits[0].key == "tapes"
        new_id = asyncio.run(knowledge.store("The spare laptop pool is in cupboard 3.", "ops", "spares"))
        assert chunk_models(world, new_id) == {"openai:fake-embed"}
        assert asyncio.run(knowledge.search("spare laptop cupboard", "ops", limit=1))[0].key == "spares"

        # The API failing is a clear 503 (ConfigurationError in the SDK) and nothing is half-written.
        fake_embeddings.fail = True
        with pytest.raises(ConfigurationError, match="embeddings API"):
            asyncio.run(knowledge.store("Never stored.", "ops", "broken"))
        with server.client(world.alice_key) as client:
            failed = client.post("/api/knowledge/search", json={"query": "tapes", "namespaces": "ops"})
            assert failed.status_code == 503 and failed.headers["x-bifrost-error"] == "configuration"
        fake_embeddings.fail = False
        assert asyncio.run(knowledge.get("broken", "ops")) is None
        assert {n.name: n.document_count for n in asyncio.run(knowledge.list_namespaces())}["ops"] == 3
    finally:
        bifrost.configure(None)
        server.stop()


def test_core_flow_and_isolation_on_each_database(tmp_path: Path, database_url: str) -> None:
    world = start_world(tmp_path, database_url)
    try:

        async def flow() -> None:
            bifrost.configure(world.server.url, world.alice_key)
            first = await knowledge.store("The alarm panel code is changed every quarter.", "site", "alarm", {"n": 1})
            again = await knowledge.store("The alarm panel is serviced by SecureCo.", "site", "alarm", {"n": 2})
            assert again == first
            hits = await knowledge.search("who maintains the alarm?", "site", metadata_filter={"n": 2})
            assert [h.content for h in hits] == ["The alarm panel is serviced by SecureCo."]
            bifrost.configure(world.server.url, world.bob_key)
            assert await knowledge.search("alarm", "site") == []
            assert await knowledge.get("alarm", "site") is None
            bifrost.configure(world.server.url, world.alice_key)
            assert await knowledge.delete_namespace("site") == 1

        asyncio.run(flow())
    finally:
        bifrost.configure(None)
        world.server.stop()


def test_concurrent_writers_and_readers_stay_consistent(tmp_path: Path, database_url: str) -> None:
    world = start_world(tmp_path, database_url)
    try:

        async def run() -> None:
            bifrost.configure(world.server.url, world.alice_key)
            await knowledge.store("Seed document about the canteen menu.", "busy", "seed")

            async def writer(i: int) -> None:
                await knowledge.store(f"Meeting room {i} has {i + 4} chairs and a whiteboard.", "busy", f"room-{i}")

            async def replacer(i: int) -> None:
                await knowledge.store(f"Version {i}: the reception desk opens at {7 + i}:00.", "busy", "reception")

            async def reader() -> None:
                for _ in range(3):
                    for hit in await knowledge.search("how many chairs", "busy", limit=10):
                        assert hit.namespace == "busy" and hit.content

            await asyncio.gather(*[writer(i) for i in range(8)], *[replacer(i) for i in range(4)], reader(), reader())
            names = {n.name: n.document_count for n in await knowledge.list_namespaces()}
            assert names["busy"] == 1 + 8 + 1  # one "reception" document despite four concurrent replacements
            keys = {h.key for h in await knowledge.search("chairs in the meeting room", "busy", limit=20)}
            assert {f"room-{i}" for i in range(8)} <= keys
            reception = await knowledge.get("reception", "busy")
            assert reception is not None
            with world.server.client(world.alice_key) as client:
                chunks = client.get(f"/api/knowledge/documents/{reception.id}/chunks").json()
            assert [c["content"] for c in chunks] == [reception.content]  # only the winner's chunks

        asyncio.run(run())
    finally:
        bifrost.configure(None)
        world.server.stop()


def test_a_change_made_by_another_process_is_seen_by_the_cache(world: World) -> None:
    from app.db import transaction
    from app.services.identity.auth import AuthService
    from app.services.knowledge.service import KnowledgeRuntime, KnowledgeService

    platform = world.server.platform
    other = KnowledgeRuntime(platform.settings)  # its own cache, like `bifrost run` beside the server

    async def write(content: str | None) -> None:
        async with transaction(platform.sessions) as session:
            actor = await AuthService(session).actor_for_user(world.alice_id)
            service = KnowledgeService(session, other)
            if content is None:
                await service.delete(actor, "late", "cross")
            else:
                await service.store(actor, content, "cross", "late")

    with world.server.client(world.alice_key) as client:

        def keys(query: str) -> list[str]:
            response = client.post("/api/knowledge/search", json={"query": query, "namespaces": "cross", "limit": 5})
            return [r["key"] for r in response.json()]

        client.post("/api/knowledge/documents", json={"content": "Lunch is served at noon.", "namespace": "cross"})
        assert keys("when is lunch") == [None]  # the server now caches this namespace
        loads = platform.knowledge.cache.loads
        world.server.call(lambda: write("The late shift ends at 22:00."))
        assert "late" in keys("when does the evening shift finish")
        assert platform.knowledge.cache.loads == loads + 1  # reloaded once, because the version moved
        keys("when is lunch")
        assert platform.knowledge.cache.loads == loads + 1  # and served from the cache again
        world.server.call(lambda: write(None))
        assert "late" not in keys("when does the evening shift finish")
    other.close()
