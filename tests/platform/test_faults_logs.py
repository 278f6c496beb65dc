"""Fault injection, logs: a huge log never stalls the server, and no run or user can grow one without bound.

Against a real ``bifrost serve`` process (issue 15, item 4). A 221 MB log once came back from
``GET /api/executions/{id}/logs`` in one piece and left the server unresponsive for 9.9 s. Here a
run builds a ~40 MB log, a client reads it page by page while a second client polls ``/healthz``;
every poll must be answered within 100 ms (the one wall-time assertion of the suite, demanded by
the issue). The cap on a run's stored log, its marker lines, and the rate limit of notebook log
posts are checked on the same server. The figures are in docs/reliability.md.
"""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bifrost._schema import infer_parameters
from tests.platform.faults_support import Serve, database

MAX_LINES = 3000
MAX_BYTES = 48 * 1024**2
PAGE_BYTES = 1024**2
NOTEBOOK_POSTS_PER_MINUTE = 30
BIG_LINES = 400
BIG_WIDTH = 100_000  # the longest line a worker keeps (longer ones are cut)
HEALTH_BUDGET_SECONDS = 0.100

LOG_WORKFLOWS = textwrap.dedent(
    '''
    from bifrost import workflow


    @workflow(timeout_seconds=600)
    async def big_log(lines: int, width: int) -> int:
        """Print ``lines`` lines of ``width`` characters."""
        for index in range(lines):
            print(f"{index:06d} " + "x" * (width - 7), flush=True)
        return lines


    @workflow(timeout_seconds=600)
    async def chatty(lines: int) -> int:
        """Print ``lines`` short numbered lines."""
        for index in range(lines):
            print(f"line {index}")
        return lines
    '''
)


async def _trial(name: str) -> None:
    """A notebook trial.

    Args:
        name: Who.
    """


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def serve(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp(f"logs-{request.param}")
    with database(request.param, tmp) as url:
        server = Serve(
            tmp,
            url,
            log_max_lines=str(MAX_LINES),
            log_max_bytes=str(MAX_BYTES),
            log_page_bytes=str(PAGE_BYTES),
            notebook_log_rate_limit_per_minute=str(NOTEBOOK_POSTS_PER_MINUTE),
        )
        (server.workspace / "logs.py").write_text(LOG_WORKFLOWS)
        server.init().start()
        try:
            yield server
        finally:
            server.stop()


def run(serve: Serve, client: httpx.Client, workflow: str, **params: Any) -> dict[str, Any]:
    execution_id = serve.submit(client, workflow, **params)
    ended = serve.wait_ended(client, execution_id, timeout=300)
    assert ended["status"] == "Completed", ended
    return ended


def read_pages(client: httpx.Client, execution_id: str) -> list[tuple[list[dict[str, Any]], str | None]]:
    """Every page of a stored log, following the cursor: ``[(lines, X-Next-After)]``."""
    pages: list[tuple[list[dict[str, Any]], str | None]] = []
    after = -1
    while True:
        response = client.get(f"/api/executions/{execution_id}/logs", params={"after": after})
        assert response.status_code == 200, response.text
        following = response.headers.get("x-next-after")
        pages.append((response.json(), following))
        if following is None:
            return pages
        after = int(following)


class HealthPoller(threading.Thread):
    """Polls ``/healthz`` on its own connection and records how long each answer took."""

    def __init__(self, url: str) -> None:
        super().__init__(name="healthz-poller", daemon=True)
        self.url = url
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.done.is_set():
                started = time.perf_counter()
                try:
                    response = client.get("/healthz")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                self.latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    self.failures.append(f"status {response.status_code}")
                time.sleep(0.005)


def _read_while_polling(serve: Serve, client: httpx.Client, execution_id: str) -> tuple[list[Any], HealthPoller]:
    poller = HealthPoller(serve.url)
    poller.start()
    time.sleep(0.2)  # a few polls before the read starts
    try:
        pages = read_pages(client, execution_id)
    finally:
        poller.done.set()
        poller.join(30)
    return pages, poller


# A read is repeatable: up to this many reads, the first whose polls all stay in budget counts. A
# server that blocks during a read (the bug: 9.9 s) fails every one; a neighbour test hogging the
# two CI cores for a moment fails one at most.
READ_ROUNDS = 3


def test_a_40_mb_log_is_read_in_pages_while_the_server_keeps_answering(serve: Serve) -> None:
    with serve.client() as client:
        execution_id = run(serve, client, "big_log", lines=BIG_LINES, width=BIG_WIDTH)["execution_id"]
        rounds = []
        for _ in range(READ_ROUNDS):
            pages, poller = _read_while_polling(serve, client, execution_id)
            assert not poller.failures, poller.failures
            assert len(poller.latencies) >= 20, "the read ended before the poller could measure it"
            rounds.append(max(poller.latencies))
            if rounds[-1] < HEALTH_BUDGET_SECONDS:
                break

    lines = [line for page, _ in pages for line in page]
    assert [line["seq"] for line in lines] == list(range(BIG_LINES))  # every line once, in order
    assert all(len(line["message"]) == BIG_WIDTH for line in lines)
    assert lines[-1]["message"].startswith(f"{BIG_LINES - 1:06d} ")
    # Pages end at the byte budget (never above it with more than one line), with a cursor until the last.
    assert len(pages) >= BIG_LINES * BIG_WIDTH // PAGE_BYTES
    for page, following in pages[:-1]:
        assert page and following == str(page[-1]["seq"])
        assert len(page) == 1 or sum(len(line["message"].encode()) for line in page) <= PAGE_BYTES
    assert pages[-1][1] is None

    print(f"healthz during the read: slowest poll per read {[f'{s * 1000:.1f} ms' for s in rounds]}")
    assert rounds[-1] < HEALTH_BUDGET_SECONDS, (
        f"/healthz took {min(rounds) * 1000:.0f} ms at best during a large log read"
    )


def test_lines_past_the_cap_are_dropped_and_counted_by_a_visible_marker(serve: Serve) -> None:
    with serve.client() as client:
        execution_id = run(serve, client, "chatty", lines=MAX_LINES + 500)["execution_id"]
        pages = read_pages(client, execution_id)
    lines = [line for page, _ in pages for line in page]
    assert len(pages) == 4  # 3,002 lines in pages of 1,000
    assert [line["seq"] for line in lines] == list(range(MAX_LINES + 2))
    assert lines[MAX_LINES - 1]["message"] == f"line {MAX_LINES - 1}"  # the last line under the cap
    marker, count = lines[MAX_LINES], lines[MAX_LINES + 1]
    assert (marker["logger"], marker["level"]) == ("bifrost.log_limit", "WARNING")
    assert marker["message"].startswith("Log limit reached (3,000 lines or 48 MiB per run)")
    assert (count["logger"], count["level"]) == ("bifrost.log_dropped", "WARNING")
    assert count["message"].startswith("500 log lines dropped after the log limit")


def test_notebook_run_logs_are_capped_and_their_posts_rate_limited(serve: Serve) -> None:
    schema = infer_parameters(_trial, kind="workflow")[2]
    with serve.client() as client:
        started = client.post(
            "/api/notebook-runs", json={"name": "trial", "params": {"name": "x"}, "params_schema": schema}
        )
        assert started.status_code == 201, started.text
        execution_id = started.json()["execution_id"]
        url = f"/api/notebook-runs/{execution_id}/logs"
        batch = [{"level": "INFO", "message": f"n{i}"} for i in range(1000)]
        answers = [client.post(url, json={"lines": batch}) for _ in range(NOTEBOOK_POSTS_PER_MINUTE)]
        assert [a.status_code for a in answers] == [200] * NOTEBOOK_POSTS_PER_MINUTE, answers[-1].text
        # Three posts filled the cap (3,000 lines): the fourth wrote the markers, the rest only counted.
        assert [a.json()["stored"] for a in answers[:5]] == [1000, 1000, 1000, 2, 0]

        refused = client.post(url, json={"lines": batch})
        assert refused.status_code == 429, refused.text
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert "Too many notebook log posts" in refused.text

        pages = read_pages(client, execution_id)
    lines = [line for page, _ in pages for line in page]
    assert len(lines) == MAX_LINES + 2
    assert lines[MAX_LINES]["logger"] == "bifrost.log_limit"
    dropped = (NOTEBOOK_POSTS_PER_MINUTE - 3) * 1000  # the refused post never reached the log
    assert lines[MAX_LINES + 1]["logger"] == "bifrost.log_dropped"
    assert lines[MAX_LINES + 1]["message"].startswith(f"{dropped:,} log lines dropped")
