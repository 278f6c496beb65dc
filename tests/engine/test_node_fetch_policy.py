"""When a worker node fetches again after a job (app.engine.node.FetchPolicy), against a queue in a list.

procrastinate's worker calls ``fetch_job`` again right after each job, and on each ``job_inserted``
NOTIFY or polling tick; the policy answers "no job" without asking the database only when nothing
can be waiting.
"""

from __future__ import annotations

from typing import Any

from app.engine.node import FetchPolicy


class Queue:
    """Jobs in a list; counts the fetches that reached it (each is a database statement on a node)."""

    def __init__(self, jobs: int = 0) -> None:
        self.jobs = [f"job-{n}" for n in range(jobs)]
        self.fetches = 0

    async def fetch(self, **_: Any) -> str | None:
        self.fetches += 1
        return self.jobs.pop(0) if self.jobs else None


async def drain(policy: FetchPolicy) -> list[str]:
    """What procrastinate's loop does after a wake-up: fetch until a fetch gives no job."""
    taken = []
    while (job := await policy.fetch()) is not None:
        taken.append(job)
    return taken


async def test_a_node_started_on_a_backlog_takes_it_all_without_waiting_for_a_poll() -> None:
    queue = Queue(jobs=20)  # queued before the node listened: no announcement counted any of them
    policy = FetchPolicy(queue.fetch)
    assert await drain(policy) == [f"job-{n}" for n in range(20)]
    assert queue.fetches == 21  # the last, empty fetch tells the backlog is gone


async def test_after_the_backlog_a_job_then_nothing_announced_skips_the_empty_fetch() -> None:
    queue = Queue()
    policy = FetchPolicy(queue.fetch)
    assert await drain(policy) == [] and queue.fetches == 1
    for n in range(3):
        queue.jobs.append(f"late-{n}")
        policy.announced_one()
        assert await drain(policy) == [f"late-{n}"]
    assert queue.fetches == 1 + 3  # one fetch per announced job, no empty fetch after each


async def test_a_job_found_by_polling_after_a_missed_announcement_drains_what_waits_behind_it() -> None:
    queue = Queue()
    policy = FetchPolicy(queue.fetch)
    await drain(policy)
    queue.jobs += ["missed-0", "missed-1", "missed-2"]  # their NOTIFYs were lost (e.g. a reconnect)
    assert await drain(policy) == ["missed-0", "missed-1", "missed-2"]  # the polling tick's fetch, then on
    fetches = queue.fetches
    assert fetches == 1 + 4  # the backlog was known gone only at that drain's empty fetch
    queue.jobs.append("announced")
    policy.announced_one()
    assert await drain(policy) == ["announced"] and queue.fetches == fetches + 1  # counted again: no empty fetch


async def test_announcements_taken_by_another_node_are_forgotten_at_the_empty_fetch() -> None:
    queue = Queue()
    policy = FetchPolicy(queue.fetch)
    await drain(policy)
    policy.announced_one()
    policy.announced_one()  # both jobs went to the other node: this fetch finds nothing
    assert await drain(policy) == []
    fetches = queue.fetches
    queue.jobs.append("mine")
    policy.announced_one()
    assert await drain(policy) == ["mine"] and queue.fetches == fetches + 1  # the stale two are not counted
