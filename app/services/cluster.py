"""Process-local caches that other servers must drop after a write here: one registry, one broadcast.

Each cache registers how to drop itself (:func:`register`). A write calls :func:`invalidate_after_commit`
(or :func:`invalidate` once committed): the cache is dropped here, and, once the platform has wired a bus
(:func:`set_broadcast`, from ``app.engine``), the cache's name is sent to every other server, which drops
its own copy (:func:`drop_remote`). With one server there is no bus and nothing else happens. Imports nothing
of the service domains, so every domain may use it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)

_drops: dict[str, list[Callable[[], None]]] = {}
_broadcast: Callable[[str], None] | None = None


def register(name: str, drop: Callable[[], None]) -> None:
    """Make ``drop`` run here whenever cache ``name`` is invalidated on any server."""
    drops = _drops.setdefault(name, [])
    if drop not in drops:
        drops.append(drop)


def unregister(name: str, drop: Callable[[], None]) -> None:
    """Stop running ``drop`` for cache ``name`` (its owner stopped)."""
    drops = _drops.get(name)
    if drops is not None and drop in drops:
        drops.remove(drop)


def set_broadcast(send: Callable[[str], None] | None) -> None:
    """Where invalidations go to other servers (None: this process only, the embedded default)."""
    global _broadcast
    _broadcast = send


def invalidate(name: str) -> None:
    """Drop cache ``name`` here and tell every other server to drop theirs (call after the write commits)."""
    _drop_local(name)
    if _broadcast is not None:
        _broadcast(name)


def announce(name: str) -> None:
    """Tell every other server to drop cache ``name``, not this one (it has just refreshed its own)."""
    if _broadcast is not None:
        _broadcast(name)


def invalidate_after_commit(session: AsyncSession, name: str) -> None:
    """Drop cache ``name`` now, and again on every server once ``session`` commits.

    Dropped now so this transaction's own reads do not see the old rows from the cache; again after the
    commit because a read on any server between the two may have cached them.
    """
    _drop_local(name)
    pending: set[str] = session.info.setdefault("cluster_invalidations", set())
    if name in pending:
        return  # one message per cache and commit, however many rows the transaction writes
    pending.add(name)

    def committed(_session: object) -> None:
        pending.discard(name)
        invalidate(name)

    event.listen(session.sync_session, "after_commit", committed, once=True)


def drop_remote(name: str) -> None:
    """Another server wrote: drop cache ``name`` here only (never sent on again)."""
    _drop_local(name)


def _drop_local(name: str) -> None:
    for drop in _drops.get(name, ()):
        try:
            drop()
        except Exception:  # one broken cache must not keep the others stale
            log.exception("dropping the %s cache failed", name)
