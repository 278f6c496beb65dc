"""On SQLite a long read runs on a read connection in a thread: runs submitted while it reads complete
before it ends (with one connection for everything, each run waited for the whole read)."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import insert

from tests.conftest import LiveServer, make_settings
from tests.platform.conftest import seed

DOCS = 60_000
RUNS = 5


def test_runs_complete_while_a_long_table_read_is_still_running(tmp_path: Path) -> None:
    server = LiveServer(make_settings(tmp_path)).start()
    try:
        ids = server.call(lambda: seed(server.platform))

        async def fill() -> None:
            from app.db import transaction
            from app.models.base import utcnow
            from app.models.document_table import Document
            from app.services.identity.auth import AuthService
            from app.services.tables.service import TableService

            async with transaction(server.platform.sessions) as session:
                actor = await AuthService(session).actor_for_user(ids["alice_id"])
                table = await TableService(session).create(actor, "big")
                now = utcnow()
                rows = [
                    {"table_id": table.id, "id": f"d{i}", "data": {"name": f"customer {i}", "n": i},
                     "created_at": now, "updated_at": now}
                    for i in range(DOCS)
                ]  # fmt: skip
                await session.execute(insert(Document), rows)

        server.call(fill)
        # 50 pattern conditions on a field no index serves: every document is parsed 50 times.
        where = {"name": {"like": "%customer%"}} | {f"n{i}": {"is_null": True} for i in range(49)}
        order: list[str] = []
        read_started = threading.Event()

        def long_read() -> None:
            with server.client(ids["alice_key"]) as client:
                read_started.set()
                response = client.post("/api/tables/big/count", json={"where": where}, timeout=300)
                assert response.status_code == 200, response.text
                assert response.json() == {"count": DOCS}
                order.append("read")

        reader = threading.Thread(target=long_read)
        with server.client(ids["alice_key"]) as client:
            # Warm: the first run of a worker and the first request pay one-off costs.
            assert client.post("/api/workflows/noop/execute?wait=true", json={}).status_code == 200
            reader.start()
            read_started.wait()
            for _ in range(RUNS):
                run = client.post("/api/workflows/noop/execute?wait=true", json={})
                assert run.status_code == 200 and run.json()["status"] == "Completed"
                order.append("run")
        reader.join()
        assert order == ["run"] * RUNS + ["read"], order
    finally:
        server.stop()
