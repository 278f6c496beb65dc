"""Platform settings, read from the environment with the prefix ``BIFROST_``."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_workers() -> int:
    return max(1, os.cpu_count() or 1)


class Settings(BaseSettings):
    """Every knob of the platform. Each field is ``BIFROST_<NAME>`` in the environment.

    Attributes:
        home: Folder for the SQLite database, key files, object store.
        database_url: SQLAlchemy async URL; default is a SQLite file in ``home``.
        workspace: Folder of workflow ``.py`` files.
        workers: Number of warm worker processes.
        host: Interface to listen on.
        port: Port to listen on.
        public_url: URL workers and clients use to reach this server; derived
            from host and port when unset.
        secret_key: Fernet key for secrets; a key file in ``home`` when unset. Several servers share it
            (it also signs session cookies then, so a session works on any of them).
        events: Where live events and cache invalidations travel: ``local`` (this process), ``postgres``
            (LISTEN/NOTIFY on the database), ``redis`` (pub/sub at ``redis_url``); ``auto`` picks redis
            when ``redis_url`` is set, postgres on a Postgres database with ``queue=postgres``, else local.
        redis_url: Redis for live events and shared rate limits across servers (``redis://host:6379/0``).
        rate_limits: Where rate-limit counts live: ``local`` (this process), ``database`` or ``redis``;
            ``auto`` follows ``events`` (redis, the database when events go through Postgres, else local).
        session_max_age: Seconds a web login lasts.
        cookie_secure: Send session and CSRF cookies with ``Secure``; default: when ``public_url`` is https.
        trusted_proxies: Comma-separated addresses (or ``*``) of reverse proxies whose ``X-Forwarded-For`` /
            ``X-Forwarded-Proto`` headers are believed; none by default, so a client cannot pick its address.
        max_body_bytes: Largest request body of the JSON API (413 above), uploads and endpoints aside.
        form_max_body_bytes: Largest body of a page form post (413 above); a signed-in user's form with
            file fields may send up to ``max_file_bytes``.
        public_form_max_body_bytes: Largest body of an anonymous public form submission (413 above).
        watch_workspace: Reload workers when workspace files change.
        log_flush_seconds: How often logs of long runs are written to the database.
        login_rate_limit_per_minute: Password attempts allowed per client address per minute.
        log_max_lines: Log lines stored per run; later lines are dropped, counted, and a marker line says so.
        log_max_bytes: Bytes (UTF-8) of log messages stored per run; the same cap as ``log_max_lines``.
        log_page_lines: Most lines one read of a log returns (default and maximum ``limit`` of
            ``/api/executions/{id}/logs``; also the page size of SSE catch-up and the detail page's tail).
        log_page_bytes: A page of log lines stops before its messages exceed this many bytes
            (always at least one line), so one read never holds the server for long.
        notebook_log_rate_limit_per_minute: ``POST /api/notebook-runs/{id}/logs`` calls allowed per user
            per minute (429 with ``Retry-After`` above).
        worker_user: Run worker processes as this OS user (server started as root), so workflow
            code cannot read the database file or keys in ``home`` (made 0700).
        files_root: Folder of the object store behind ``bifrost.files``; ``<home>/files`` when unset.
        local_files_root: Folder of ``bifrost.files`` local mode inside workers
            (``<root>/<org id or global>/<location>/``); ``<home>/local-files`` when unset. Never the
            workspace. With ``worker_user``, set it outside ``home`` (the pool gives it to that user).
        max_file_bytes: Largest file a workflow may write or a form may upload (larger ones get 413).
        temp_max_age_hours: Files in the ``temp`` location older than this are deleted.
        temp_cleanup_interval_seconds: How often the temp cleanup runs.
        scheduler_enabled: Fire cron schedules in this server (``bifrost serve``; never ``bifrost run``).
        schedule_grace_seconds: A firing missed while no server ran still runs at start-up if it is
            at most this old; older ones are recorded as missed.
        scheduler_poll_seconds: How often a server without the scheduler lock tries to take it, and
            the one holding it re-reads schedules changed through other servers.
        endpoint_max_body_bytes: Largest request body ``/api/endpoints/<name>`` accepts (413 above).
        public_endpoint_rate_limit_per_minute: Calls per client address per minute to public endpoints (429 above).
        public_form_rate_limit_per_minute: Requests per client address per minute to public form pages (429 above).
        embedding_provider: ``local`` (all-MiniLM-L6-v2 int8 ONNX, in-process, offline), ``openai``
            (any OpenAI-compatible ``/embeddings`` API) or ``ollama`` (its OpenAI-compatible API).
        embedding_model: Model name for ``openai`` / ``ollama`` (defaults: ``text-embedding-3-small``,
            ``nomic-embed-text``); ignored by ``local``. Changing provider or model re-embeds at start-up.
        embedding_base_url: Base URL of the embeddings API (defaults: ``https://api.openai.com/v1``,
            ``http://127.0.0.1:11434/v1``).
        embedding_api_key: Bearer key sent to the embeddings API.
        embedding_threads: onnxruntime intra-op threads of the local model (default: up to 2).
        knowledge_max_upload_bytes: Largest file the knowledge page or upload API ingests (413 above).
        knowledge_max_content_chars: Largest text one ``knowledge.store`` call embeds in the request (422 above).
        knowledge_cache_mb: MiB of namespace vector matrices a process keeps for searches; the least
            recently searched are evicted first (0 = keep none, every search reads the database).
        ai_model: The platform's default LLM, a pydantic-ai model string (``openai:gpt-4o-mini``,
            ``anthropic:claude-3-5-haiku-latest``, ``ollama:llama3.2``); used when neither the organization
            nor the platform AI settings (admin page / API) name one. Unset: no model, ``ai.complete``
            raises ``ConfigurationError`` and the chat runs tools by command only.
        ai_base_url: OpenAI-compatible base URL for ``ai_model`` (a local server, a proxy).
        ai_api_key: API key for ``ai_model`` (else the provider's own variable, e.g. ``OPENAI_API_KEY``).
        integration_refresh_leeway_seconds: ``integrations.get`` refreshes an access token that expires
            within this many seconds before returning it.
        integration_refresh_ahead_seconds: The background job refreshes tokens that expire within this.
        integration_refresh_interval_seconds: How often the background token refresh job runs.
        integration_provider_timeout_seconds: Timeout of each call to an OAuth provider's token URL.
        shutdown_grace_seconds: On SIGTERM (or Ctrl+C) ``bifrost serve`` starts no new executions and
            lets running ones finish for this long; those still running then end ``Failed``. Queued
            ones stay ``Pending`` and run after the next start.
        run_memory_mb: Memory one execution may use (its worker process and every process it starts);
            past it the run ends ``Failed`` with ``MemoryLimitExceeded`` and its worker is replaced.
        import_timeout_seconds: A workspace file that takes longer to import is reported in the
            workspace errors and skipped; the other files keep running.
        audit_retention_days: Audit events older than this many days are deleted in small batches in the
            background by the serving process (0 keeps them forever).
        audit_prune_interval_seconds: How often the audit retention runs.
        execution_retention_days: Finished executions (and their logs) older than this many days are
            deleted in small batches in the background by the serving process; 0 keeps them forever.
            An organization may have its own (the admin page ``/admin/data``).
        execution_prune_interval_seconds: How often the execution retention runs.
        queue: ``local`` (default): runs go to the warm pool inside ``bifrost serve``. ``postgres``
            (needs a Postgres ``database_url``): runs are procrastinate jobs in that database, taken by
            ``bifrost worker`` nodes on any machine (docs/deploy.md).
        node_name: Name of a ``bifrost worker`` node, stored on the runs it takes and named when it is
            lost; default ``<hostname>-<pid>``.
        serve_runs_jobs: With ``queue=postgres``, ``bifrost serve`` also runs a worker node in its own
            process (off by default: servers serve, nodes run).
        node_heartbeat_seconds: How often a worker node tells the database it is alive.
        node_lost_seconds: A node silent for this long is lost: its running runs end ``Failed``
            (``WorkerLost``, naming it) and the runs it had taken but not started go to other nodes.
    """

    model_config = SettingsConfigDict(env_prefix="BIFROST_", extra="ignore")

    home: Path = Field(default=Path(".bifrost"))
    database_url: str | None = None
    workspace: Path = Field(default=Path("workspace"))
    workers: int = Field(default_factory=_default_workers, ge=1, le=64)
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    secret_key: str | None = None
    events: Literal["auto", "local", "postgres", "redis"] = "auto"
    redis_url: str | None = None
    rate_limits: Literal["auto", "local", "database", "redis"] = "auto"
    session_max_age: int = 8 * 3600
    cookie_secure: bool | None = None
    trusted_proxies: str = ""
    max_body_bytes: int = Field(default=10 * 1024**2, ge=1024)
    form_max_body_bytes: int = Field(default=4 * 1024**2, ge=1024)
    public_form_max_body_bytes: int = Field(default=1024**2, ge=1024)
    watch_workspace: bool = True
    log_flush_seconds: float = 1.0
    login_rate_limit_per_minute: int = Field(default=20, ge=1)
    log_max_lines: int = Field(default=100_000, ge=1)
    log_max_bytes: int = Field(default=32 * 1024**2, ge=1)
    log_page_lines: int = Field(default=1000, ge=1, le=100_000)
    log_page_bytes: int = Field(default=1024**2, ge=1024)
    notebook_log_rate_limit_per_minute: int = Field(default=600, ge=1)
    worker_user: str | None = None
    files_root: Path | None = None
    local_files_root: Path | None = None
    max_file_bytes: int = Field(default=1024**3, ge=1)
    temp_max_age_hours: float = Field(default=24.0, gt=0)
    temp_cleanup_interval_seconds: float = Field(default=3600.0, gt=0)
    scheduler_enabled: bool = True
    schedule_grace_seconds: float = Field(default=300.0, ge=0)
    scheduler_poll_seconds: float = Field(default=10.0, gt=0)
    endpoint_max_body_bytes: int = Field(default=1024**2, ge=1)
    public_endpoint_rate_limit_per_minute: int = Field(default=60, ge=1)
    public_form_rate_limit_per_minute: int = Field(default=30, ge=1)
    embedding_provider: Literal["local", "openai", "ollama"] = "local"
    embedding_model: str | None = None
    embedding_base_url: str | None = None
    embedding_api_key: str | None = None
    embedding_threads: int = Field(default_factory=lambda: min(2, _default_workers()), ge=1, le=64)
    knowledge_max_upload_bytes: int = Field(default=50 * 1024**2, ge=1)
    knowledge_max_content_chars: int = Field(default=200_000, ge=1)
    knowledge_cache_mb: int = Field(default=512, ge=0)
    ai_model: str | None = None
    ai_base_url: str | None = None
    ai_api_key: str | None = None
    integration_refresh_leeway_seconds: float = Field(default=300.0, ge=0)
    integration_refresh_ahead_seconds: float = Field(default=900.0, ge=0)
    integration_refresh_interval_seconds: float = Field(default=60.0, gt=0)
    integration_provider_timeout_seconds: float = Field(default=30.0, gt=0)
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    run_memory_mb: int = Field(default=4096, ge=64)
    import_timeout_seconds: float = Field(default=30.0, gt=0)
    approval_expiry_hours: float = Field(default=72.0, gt=0)
    approval_check_seconds: float = Field(default=60.0, gt=0)
    audit_retention_days: float = Field(default=365.0, ge=0)
    audit_prune_interval_seconds: float = Field(default=3600.0, gt=0)
    execution_retention_days: float = Field(default=0.0, ge=0, le=36_500)
    execution_prune_interval_seconds: float = Field(default=3600.0, gt=0)
    queue: Literal["local", "postgres"] = "local"
    node_name: str | None = Field(default=None, max_length=200)
    serve_runs_jobs: bool = False
    node_heartbeat_seconds: float = Field(default=10.0, gt=0)
    node_lost_seconds: float = Field(default=30.0, gt=0)

    @field_validator("home", "workspace")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to ``sqlite+aiosqlite:///<home>/bifrost.db``."""
        return self.database_url or f"sqlite+aiosqlite:///{self.home / 'bifrost.db'}"

    @property
    def resolved_local_files_root(self) -> Path:
        """Where local-mode files of workflows live, ``<home>/local-files`` by default."""
        return (self.local_files_root or self.home / "local-files").expanduser().resolve()

    @property
    def resolved_cookie_secure(self) -> bool:
        """Whether cookies carry ``Secure``: the setting, else whether the public URL is https."""
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.resolved_public_url.startswith("https://")

    @property
    def resolved_public_url(self) -> str:
        """The base URL of this server as workers reach it."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings (read once from the environment)."""
    return Settings()
