"""SQLite runs inline on the event loop: another process holding the write lock must not freeze it."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from tests.conftest import LiveServer, make_settings
from tests.platform.conftest import seed


def test_server_waits_for_a_foreign_write_lock_without_blocking(tmp_path: Path) -> None:
    server = LiveServer(make_settings(tmp_path)).start()
    try:
        ids = server.call(lambda: seed(server.platform))
        database = str(server.settings.home / "bifrost.db")
        # Another "process" (bifrost run beside bifrost serve) takes the write lock for a while.
        other = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        outcome: dict[str, object] = {}

        def submit() -> None:
            with server.client(ids["alice_key"]) as client:
                response = client.post("/api/workflows/add/execute?wait=true", json={"params": {"a": 1}})
                outcome["status"], outcome["body"] = response.status_code, response.json()

        thread = threading.Thread(target=submit)
        thread.start()
        time.sleep(0.3)
        # While the submit waits for the lock, the server keeps answering other requests: a loop
        # blocked inside SQLite would never answer, since the lock is only released below.
        # (Database work waits too: every transaction takes the write lock with BEGIN IMMEDIATE.)
        with server.client() as client:
            for _ in range(3):
                assert client.get("/healthz").status_code == 200
        assert thread.is_alive() and "status" not in outcome  # the submit is still waiting for the lock
        other.execute("COMMIT")
        other.close()
        thread.join(30)
        assert outcome["status"] == 200
        assert outcome["body"]["result"] == {"sum": 3}  # type: ignore[index]
    finally:
        server.stop()
