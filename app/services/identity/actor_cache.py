"""A short-lived, in-process cache of resolved bearer tokens.

Every API call and every SDK call from a worker authenticates with a bearer
token; resolving one costs two or three queries. The cache keeps the resolved
:class:`Actor` for a few seconds. Anything that changes what a token may do in
this process (revoking a key, changing or deactivating a user or organization,
the end of an execution) clears the affected entries at once, and, through
:mod:`app.services.cluster`, on every other server once the change commits
(an execution's end: when its end event reaches the server on the bus, :func:`execution_ended`).
"""

from __future__ import annotations

import time
from collections import defaultdict

from sqlalchemy.ext.asyncio import AsyncSession

from app.services import cluster
from app.services.actor import Actor

TTL_SECONDS = 5.0
MAX_ENTRIES = 10_000

_entries: dict[tuple[str, str | None], tuple[float, Actor]] = {}
_by_execution: dict[str, set[tuple[str, str | None]]] = defaultdict(set)
# Executions whose end is being written, with when that mark lapses: their tokens are not cached
# again. Far longer than any transaction that writes an end; once it commits the token no longer
# resolves at all, so the mark only has to outlive the commit.
_ENDING_SECONDS = 120.0
_ending: dict[str, float] = {}


def get(token_hash: str, requested_org: str | None) -> Actor | None:
    """The cached actor of a token, or None when absent or expired."""
    entry = _entries.get((token_hash, requested_org))
    if entry is None:
        return None
    expires, actor = entry
    if time.monotonic() > expires:
        _entries.pop((token_hash, requested_org), None)
        return None
    return actor


def put(token_hash: str, requested_org: str | None, actor: Actor) -> None:
    """Remember a resolved actor for :data:`TTL_SECONDS`."""
    if len(_entries) >= MAX_ENTRIES:
        clear()
    if actor.execution_id and actor.execution_id in _ending:
        return  # its end is being written: resolved from the database until that commits, then refused
    key = (token_hash, requested_org)
    _entries[key] = (time.monotonic() + TTL_SECONDS, actor)
    if actor.execution_id:
        _by_execution[actor.execution_id].add(key)


def forget_execution(execution_id: str) -> None:
    """Drop the entries of an execution's SDK token (it expires with the execution)."""
    for key in _by_execution.pop(execution_id, ()):
        _entries.pop(key, None)


def clear() -> None:
    """Drop everything (after a change to keys, users or organizations)."""
    _entries.clear()
    _by_execution.clear()


cluster.register("actors", clear)


def clear_now_and_after_commit(session: AsyncSession) -> None:
    """Clear at once and again when ``session`` commits.

    The second clear matters: a request that resolves a token between the change and its commit
    reads the old state and would otherwise cache it for :data:`TTL_SECONDS`.
    """
    cluster.invalidate_after_commit(session, "actors")  # every server: a revoked key stops everywhere at once


def forget_execution_now_and_after_commit(session: AsyncSession, execution_id: str) -> None:
    """:func:`forget_execution` at once, and cache the execution's token no more until its end has committed.

    A request resolving the token between now and the commit of ``session`` still reads the run as
    running; :func:`put` refuses to cache it (see :data:`_ENDING_SECONDS`). Cheaper than a per-run
    ``after_commit`` listener on the session (``event.listen`` was ~0.05 ms of each run's finish).
    """
    execution_ended(execution_id)


def execution_ended(execution_id: str) -> None:
    """Drop the execution's token and cache it no more (its end is being written, or was, elsewhere).

    A worker node's end of a run reaches every server on the event bus (``app.engine.event_backends``):
    a resolve that read the run as running just before still finds the token refused here at its next call.
    """
    now = time.monotonic()
    forget_execution(execution_id)
    _ending[execution_id] = now + _ENDING_SECONDS
    while _ending:  # oldest first (all share one lifetime): drop the expired ones
        oldest = next(iter(_ending))
        if _ending[oldest] > now:
            break
        del _ending[oldest]
