"""The bus under :class:`~app.engine.events.EventHub` when several servers share one database: Litestar channels.

``BIFROST_EVENTS`` picks it: ``local`` (in-process, one server), ``postgres`` (LISTEN/NOTIFY on the platform's
database, asyncpg), ``redis`` (pub/sub at ``BIFROST_REDIS_URL``). ``auto`` (the default) is ``redis`` when a
Redis URL is set, ``postgres`` when the database is Postgres and runs go through the distributed queue
(``BIFROST_QUEUE=postgres``), and ``local`` otherwise. The backend objects are used directly, without the
channels plugin, so that ``bifrost worker`` processes (no web app) publish the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.engine.events import EventHub
from app.services import cluster
from app.services.identity import actor_cache

if TYPE_CHECKING:
    from litestar.channels import ChannelsBackend

    from app.settings import Settings

# NOTIFY payloads must stay under 8,000 bytes; Redis takes far more, but one message per batch of events
# keeps a burst of log lines to few round trips without holding one huge buffer.
POSTGRES_MAX_PAYLOAD = 7_900
REDIS_MAX_PAYLOAD = 64 * 1024


def events_mode(settings: Settings) -> str:
    """The bus this process uses: ``local``, ``postgres`` or ``redis`` (``auto`` resolved)."""
    mode = getattr(settings, "events", "auto")
    if mode != "auto":
        return str(mode)
    if getattr(settings, "redis_url", None):
        return "redis"
    distributed_queue = str(getattr(settings, "queue", "local")).lower() == "postgres"
    if is_postgres(settings.resolved_database_url) and distributed_queue:
        return "postgres"
    return "local"


def is_postgres(url: str) -> bool:
    """Whether a SQLAlchemy URL points to Postgres."""
    return url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def libpq_dsn(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+asyncpg://...``) as a plain ``postgresql://`` DSN for asyncpg."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def build_hub(settings: Settings, *, keep_recent_logs: bool = True) -> EventHub:
    """The event hub for ``settings``: in-process, or on the Postgres or Redis bus.

    Args:
        settings: Platform settings (``BIFROST_EVENTS`` and what ``auto`` looks at).
        keep_recent_logs: Keep other processes' recent log lines for viewers joining late (a server);
            a worker node, which serves no viewer, may pass False to save the memory.

    Raises:
        ValueError: ``postgres`` asked for on a SQLite database, or ``redis`` without ``BIFROST_REDIS_URL``.
    """
    mode = events_mode(settings)
    if mode == "local":
        return EventHub()
    if mode == "postgres":
        if not is_postgres(settings.resolved_database_url):
            raise ValueError("BIFROST_EVENTS=postgres needs a Postgres BIFROST_DATABASE_URL")
        from app.engine.pg_channels import PostgresBackend  # asyncpg and litestar only when used

        backend = PostgresBackend(libpq_dsn(settings.resolved_database_url))
        return EventHub(backend, max_payload=POSTGRES_MAX_PAYLOAD, keep_recent_logs=keep_recent_logs)
    if mode == "redis":
        url = getattr(settings, "redis_url", None)
        if not url:
            raise ValueError("BIFROST_EVENTS=redis needs BIFROST_REDIS_URL")
        return EventHub(redis_backend(url), max_payload=REDIS_MAX_PAYLOAD, keep_recent_logs=keep_recent_logs)
    raise ValueError(f"BIFROST_EVENTS must be auto, local, postgres or redis, not {mode!r}")


def redis_backend(url: str) -> ChannelsBackend:
    """Litestar's Redis pub/sub backend on ``url`` (redis-py imported only when used)."""
    from litestar.channels.backends.redis import RedisChannelsPubSubBackend
    from redis.asyncio import Redis

    return RedisChannelsPubSubBackend(redis=Redis.from_url(url), key_prefix="BIFROST_CHANNELS")


CACHE_KEY = "#cache"  # the bus key of cache invalidations (app.services.cluster)


def wire_cache_invalidation(hub: EventHub) -> None:
    """Send this server's cache invalidations on the bus and drop caches other servers invalidate.

    Also: a run that ended in another process (a worker node) has its SDK token dropped from this
    server's cache at once, rather than resolving here for up to the cache's 5 s.
    """
    if not hub.distributed:
        return
    hub.on_remote(CACHE_KEY, lambda event: cluster.drop_remote(str(event.get("cache"))))
    hub.on_run_end(actor_cache.execution_ended)
    cluster.set_broadcast(lambda name: hub.publish(CACHE_KEY, {"cache": name}))


def unwire_cache_invalidation(hub: EventHub) -> None:
    """Stop sending invalidations (the hub is stopping)."""
    if hub.distributed:
        cluster.set_broadcast(None)
