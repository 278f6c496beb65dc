"""OAuth connections: storing tokens encrypted, and refreshing them one refresh at a time.

Two guards keep a connection from being refreshed twice at once (which, with providers that
rotate refresh tokens, would break it):

* **in this process**: one ``asyncio.Lock`` per connection; concurrent ``integrations.get`` calls
  of many executions queue on it and the later ones find the token already fresh;
* **across processes** (several ``bifrost serve`` on one Postgres, ``bifrost run`` beside a
  server): a claim in the row itself. A refresher first sets ``refresh_claim`` with an
  ``UPDATE ... WHERE version = :seen AND (no claim OR claim expired)``; only the process whose
  update matched calls the provider, the others poll the row until the version changes (the
  new tokens) or the claim expires (its holder died: they try again). The claim lasts longer
  than the provider timeout.

No database transaction stays open while the provider is called: on SQLite the process has
one connection, and a slow provider must not stall every other request.

Known limit: if a process dies after the provider answered but before it stored the new tokens,
a provider that rotates refresh tokens has already invalidated the old one; the next refresh
then fails with ``invalid_grant`` and the connection is marked broken (connect again).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from app.models.base import utcnow
from app.models.integration import Integration, IntegrationConnection, IntegrationMapping
from app.models.organization import Organization
from app.services.errors import DomainError, NotFoundError
from app.services.integrations import oauth_client
from app.services.integrations.oauth_client import OAuthFlowError, ProviderSettings, TokenSet
from app.services.secrets import SecretBox

log = logging.getLogger(__name__)

CONNECTED = "connected"
BROKEN = "broken"
# How long a refresh claim holds (the provider call plus storing); must exceed the provider timeout.
CLAIM_MARGIN_SECONDS = 15.0
POLL_SECONDS = 0.1

_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


def _lock_for(connection_id: str) -> asyncio.Lock:
    lock = _locks.get(connection_id)
    if lock is None:
        lock = asyncio.Lock()
        _locks[connection_id] = lock
    return lock


class IntegrationUnavailableError(DomainError):
    """The organization's connection cannot give a usable token (broken, refused, provider down).

    The API answers 502 with ``X-Bifrost-Error: integration``; the SDK raises ``bifrost.IntegrationError``.
    """


@dataclass(frozen=True)
class ConnectionSnapshot:
    """A connection with what is needed to refresh it, read in one transaction."""

    connection: IntegrationConnection
    mapping: IntegrationMapping
    integration: Integration
    organization_name: str


def provider_settings(
    integration: Integration, mapping: IntegrationMapping | None, box: SecretBox, timeout: float
) -> ProviderSettings:
    """The provider settings of ``integration`` for one organization's mapping (secrets decrypted).

    Raises:
        OAuthFlowError: The integration has no OAuth flow, misses its token URL or client id, or a
            URL needs an entity id the mapping lacks.
    """
    if integration.oauth_flow == oauth_client.FLOW_NONE:
        raise OAuthFlowError(f"Integration {integration.name!r} does not use OAuth.", permanent=True)
    if not integration.token_url or not integration.client_id:
        raise OAuthFlowError(f"Integration {integration.name!r} needs a token URL and a client id.", permanent=True)
    entity_id = mapping.entity_id if mapping else None
    client_secret = (
        box.decrypt(integration.client_secret, f"the client secret of {integration.name!r}")
        if integration.client_secret
        else None
    )
    authorization = integration.authorization_url
    return ProviderSettings(
        token_url=oauth_client.fill_entity(integration.token_url, entity_id, "token URL"),
        authorization_url=oauth_client.fill_entity(authorization, entity_id, "authorization URL")
        if authorization
        else None,
        client_id=integration.client_id,
        client_secret=client_secret,
        # Without a secret the client is public: it authenticates with its id alone (PKCE protects the code).
        auth_method=integration.token_auth_method if client_secret else "none",
        scopes=integration.scopes.split(),
        timeout=timeout,
    )


def apply_tokens(connection: IntegrationConnection, tokens: TokenSet, box: SecretBox) -> None:
    """Put a token set, encrypted, into ``connection`` (status connected, error cleared)."""
    connection.access_token = box.encrypt(tokens.access_token)
    connection.refresh_token = box.encrypt(tokens.refresh_token) if tokens.refresh_token else None
    connection.token_type = tokens.token_type[:40]
    connection.scopes = " ".join(tokens.scopes)[:2000]
    connection.expires_at = tokens.expires_at
    connection.status = CONNECTED
    connection.last_error = None
    connection.last_error_at = None


def needs_refresh(connection: IntegrationConnection, within_seconds: float, now: datetime | None = None) -> bool:
    """True when the access token expires within ``within_seconds`` (never for an unknown expiry)."""
    if connection.expires_at is None:
        return False
    return connection.expires_at - (now or utcnow()) <= timedelta(seconds=within_seconds)


class TokenManager:
    """Hands out fresh tokens of connections, refreshing them first when needed.

    Args:
        sessions: Session factory (the manager runs its own short transactions).
        secret_box: Returns the :class:`SecretBox`.
        leeway_seconds: Tokens expiring within this are refreshed before being handed out.
        timeout: Seconds a provider call may take.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        secret_box: Callable[[], SecretBox],
        leeway_seconds: float = 300.0,
        timeout: float = 30.0,
    ) -> None:
        self.sessions = sessions
        self._secret_box = secret_box
        self.leeway_seconds = leeway_seconds
        self.timeout = timeout

    async def load(self, connection_id: str) -> ConnectionSnapshot:
        """The connection, its mapping and integration, read in one short transaction.

        Raises:
            NotFoundError: The connection is gone (disconnected or its mapping deleted).
        """
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(IntegrationConnection, IntegrationMapping, Integration, col(Organization.name))
                    .join(IntegrationMapping, col(IntegrationMapping.id) == col(IntegrationConnection.mapping_id))
                    .join(Integration, col(Integration.id) == col(IntegrationMapping.integration_id))
                    .join(Organization, col(Organization.id) == col(IntegrationMapping.organization_id))
                    .where(col(IntegrationConnection.id) == connection_id)
                )
            ).first()
        # Closing the session (not rolling back) keeps the loaded objects usable.
        if row is None:
            raise NotFoundError("The integration connection no longer exists (disconnected?).")
        return ConnectionSnapshot(row[0], row[1], row[2], row[3])

    async def fresh(
        self, connection_id: str, *, within_seconds: float | None = None, force: bool = False
    ) -> ConnectionSnapshot:
        """The connection with an access token valid for more than ``within_seconds`` (refreshed if not).

        Args:
            connection_id: The connection.
            within_seconds: Refresh window; the manager's leeway when None.
            force: Refresh whatever the expiry (unless another refresher stores new tokens meanwhile).

        Returns:
            The connection as stored after any refresh (tokens still encrypted).

        Raises:
            IntegrationUnavailableError: The connection is broken, or the refresh failed and the
                current token is already expired.
            NotFoundError: The connection is gone.
        """
        window = self.leeway_seconds if within_seconds is None else within_seconds
        async with _lock_for(connection_id):
            snapshot = await self.load(connection_id)
            deadline = asyncio.get_running_loop().time() + self.timeout + 2 * CLAIM_MARGIN_SECONDS
            while True:
                self._require_usable(snapshot)
                if not force and not needs_refresh(snapshot.connection, window):
                    return snapshot
                claim = await self._claim(snapshot.connection)
                if claim is not None:
                    return await self._refresh(snapshot, claim)
                # Another process holds the claim (or refreshed since we read): wait for its result.
                if asyncio.get_running_loop().time() > deadline:
                    raise IntegrationUnavailableError(
                        f"{self._label(snapshot)}: another server has been refreshing the token for too long; "
                        "try again."
                    )
                await asyncio.sleep(POLL_SECONDS)
                seen = snapshot.connection.version
                snapshot = await self.load(connection_id)
                if snapshot.connection.version != seen:
                    force = False  # someone else just stored new tokens

    def _require_usable(self, snapshot: ConnectionSnapshot) -> None:
        if snapshot.connection.status == BROKEN:
            reason = snapshot.connection.last_error or "the provider refused to refresh the token"
            raise IntegrationUnavailableError(
                f"{self._label(snapshot)}: the connection is broken ({reason.rstrip('.')}). "
                "A platform admin must connect it again on the integrations page."
            )

    @staticmethod
    def _label(snapshot: ConnectionSnapshot) -> str:
        return f"Integration {snapshot.integration.name!r} in {snapshot.organization_name!r}"

    async def _claim(self, connection: IntegrationConnection) -> str | None:
        """Claim the right to refresh; None when another refresher holds it or the row changed."""
        claim = secrets.token_hex(16)
        now = utcnow()
        async with self.sessions() as session:
            result = await session.execute(
                update(IntegrationConnection)
                .where(
                    col(IntegrationConnection.id) == connection.id,
                    col(IntegrationConnection.version) == connection.version,
                    col(IntegrationConnection.status) == CONNECTED,
                    or_(
                        col(IntegrationConnection.refresh_claim_until).is_(None),
                        col(IntegrationConnection.refresh_claim_until) < now,
                    ),
                )
                .values(
                    refresh_claim=claim,
                    refresh_claim_until=now + timedelta(seconds=self.timeout + CLAIM_MARGIN_SECONDS),
                )
                .execution_options(synchronize_session=False)
            )
            await session.commit()
        return claim if result.rowcount == 1 else None  # type: ignore[attr-defined]

    async def _refresh(self, snapshot: ConnectionSnapshot, claim: str) -> ConnectionSnapshot:
        connection, label = snapshot.connection, self._label(snapshot)
        box = self._secret_box()
        try:
            settings = provider_settings(snapshot.integration, snapshot.mapping, box, self.timeout)
            if snapshot.integration.oauth_flow == oauth_client.FLOW_CLIENT_CREDENTIALS:
                tokens = await oauth_client.client_credentials(settings)
            elif connection.refresh_token:
                refresh_token = box.decrypt(connection.refresh_token, f"the refresh token of {label}")
                tokens = await oauth_client.refresh(settings, refresh_token)
            else:
                raise OAuthFlowError("the access token expired and the provider gave no refresh token", permanent=True)
        except OAuthFlowError as exc:
            await self._record_failure(connection.id, claim, str(exc), exc.permanent)
            log.warning(
                "token refresh failed: %s: %s%s", label, exc, " (connection marked broken)" if exc.permanent else ""
            )
            expired = connection.expires_at is not None and connection.expires_at <= utcnow()
            if exc.permanent:
                raise IntegrationUnavailableError(
                    f"{label}: refreshing the token failed: {str(exc).rstrip('.')}. The connection is now marked "
                    "broken: a platform admin must connect it again on the integrations page."
                ) from None
            if expired:
                raise IntegrationUnavailableError(f"{label}: refreshing the token failed: {exc}") from None
            # The current token is still valid for a little while: hand it out, the failure is recorded.
            return await self.load(connection.id)
        except BaseException:
            await self._release(connection.id, claim)
            raise
        await self._store(connection.id, claim, tokens, box)
        log.info(
            "token refreshed: %s (expires %s)", label, tokens.expires_at.isoformat() if tokens.expires_at else "never"
        )
        return await self.load(connection.id)

    async def _store(self, connection_id: str, claim: str, tokens: TokenSet, box: SecretBox) -> None:
        async with self.sessions() as session:
            connection = await session.get(IntegrationConnection, connection_id)
            if connection is None or connection.refresh_claim != claim:
                # Disconnected (or the claim expired and another process took over) meanwhile: drop ours.
                await session.rollback()
                log.warning("refreshed token of connection %s dropped: the connection changed meanwhile", connection_id)
                return
            apply_tokens(connection, tokens, box)
            connection.last_refreshed_at = utcnow()
            connection.refresh_count += 1
            connection.version += 1
            connection.refresh_claim = None
            connection.refresh_claim_until = None
            await session.commit()

    async def _record_failure(self, connection_id: str, claim: str, message: str, permanent: bool) -> None:
        values: dict[str, object] = {
            "last_error": message[:2000],
            "last_error_at": utcnow(),
            "refresh_claim": None,
            "refresh_claim_until": None,
        }
        if permanent:
            values["status"] = BROKEN
            values["version"] = col(IntegrationConnection.version) + 1
        async with self.sessions() as session:
            await session.execute(
                update(IntegrationConnection)
                .where(
                    col(IntegrationConnection.id) == connection_id, col(IntegrationConnection.refresh_claim) == claim
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            await session.commit()

    async def _release(self, connection_id: str, claim: str) -> None:
        try:
            async with self.sessions() as session:
                await session.execute(
                    update(IntegrationConnection)
                    .where(
                        col(IntegrationConnection.id) == connection_id,
                        col(IntegrationConnection.refresh_claim) == claim,
                    )
                    .values(refresh_claim=None, refresh_claim_until=None)
                    .execution_options(synchronize_session=False)
                )
                await session.commit()
        except Exception:  # the claim expires by itself; never hide the original error
            log.exception("could not release the refresh claim of connection %s", connection_id)

    async def due(self, within_seconds: float) -> list[str]:
        """Ids of connected connections whose token expires within ``within_seconds``."""
        limit = utcnow() + timedelta(seconds=within_seconds)
        async with self.sessions() as session:
            ids = (
                await session.execute(
                    select(col(IntegrationConnection.id)).where(
                        col(IntegrationConnection.status) == CONNECTED,
                        col(IntegrationConnection.expires_at).is_not(None),
                        col(IntegrationConnection.expires_at) <= limit,
                    )
                )
            ).scalars()
            return list(ids)


@dataclass
class RefreshRound:
    """What one run of the background refresh did."""

    refreshed: int = 0
    failed: int = 0


class TokenRefresher:
    """Refreshes tokens ahead of expiry in the background, every ``interval_seconds``.

    Failures are logged and stored on the connection (shown on the integrations page); a
    permanent one marks the connection broken. One failing connection never stops the others.

    Args:
        manager: The token manager (shares the per-connection locks with ``integrations.get``).
        ahead_seconds: Refresh tokens that expire within this.
        interval_seconds: Pause between runs.
    """

    def __init__(self, manager: TokenManager, ahead_seconds: float, interval_seconds: float) -> None:
        self.manager = manager
        self.ahead_seconds = ahead_seconds
        self.interval_seconds = interval_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background task (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="integration-token-refresh")

    async def stop(self) -> None:
        """Cancel the background task and wait for it."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def run_once(self) -> RefreshRound:
        """Refresh every connection whose token expires within ``ahead_seconds``; return the counts."""
        outcome = RefreshRound()
        for connection_id in await self.manager.due(self.ahead_seconds):
            try:
                before = await self.manager.load(connection_id)
                after = await self.manager.fresh(connection_id, within_seconds=self.ahead_seconds)
            except NotFoundError:
                continue  # disconnected meanwhile
            except IntegrationUnavailableError:
                outcome.failed += 1  # logged and stored by the manager
                continue
            if after.connection.last_error and after.connection.last_error_at != before.connection.last_error_at:
                outcome.failed += 1  # transient failure, token still valid for now
            elif after.connection.version != before.connection.version:
                outcome.refreshed += 1
        return outcome

    async def _run(self) -> None:
        while True:
            try:
                outcome = await self.run_once()
                if outcome.refreshed or outcome.failed:
                    log.info(
                        "integration tokens: %d refreshed ahead of expiry, %d failed", outcome.refreshed, outcome.failed
                    )
            except Exception:  # a database hiccup must not end the job
                log.exception("integration token refresh round failed")
            await asyncio.sleep(self.interval_seconds)
