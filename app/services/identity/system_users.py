"""Built-in service accounts that triggers without a person run as: the scheduler and public endpoints.

An execution always records who ran it (``executed_by``), and a running workflow's SDK token acts as
that user. Scheduled firings and calls to public endpoints have no person behind them, so they run
as one of three service accounts, created on first use with fixed ids:

* **Scheduler** (``scheduler@bifrost.invalid``) runs the firings of schedules in one organization,
  with the powers of an ordinary member of that organization.
* **Platform scheduler** (``platform-scheduler@bifrost.invalid``) runs the firings of schedules in the
  global scope (every schedule ``@workflow(schedule=...)`` declares, and global ones admins add) with
  platform-admin powers: in the global scope an ordinary user may write nothing (no table, config or
  file), so a declared schedule run as one would fail at every firing. Only platform admins create
  schedules or publish workspace code, so these powers are theirs, exercised on a timer
  (docs/triggers.md).
* **Public endpoint** (``public-endpoint@bifrost.invalid``) runs unauthenticated endpoint calls, in
  the workflow's scope (global unless the workflow belongs to an organization), as an ordinary user.

None belongs to an organization or has a password (they cannot log in, and API keys are only minted
by a signed-in user). A platform admin can deactivate an account to switch its trigger off everywhere.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import User
from app.services.actor import Actor
from app.services.errors import PermissionDeniedError

_NAMESPACE = uuid.UUID("0b6f3f2e-5a53-4d1c-9c3e-7f1f0e6a2b91")


@dataclass(frozen=True)
class ServiceAccount:
    """One built-in account: a fixed id, an email nobody can receive mail at, a display name."""

    id: str
    email: str
    name: str
    switched_off: str  # the message when an admin deactivated the account
    is_superuser: bool = False  # platform powers (set when the account is created)


SCHEDULER = ServiceAccount(
    id=str(uuid.uuid5(_NAMESPACE, "scheduler")),
    email="scheduler@bifrost.invalid",
    name="Scheduler",
    switched_off="Schedules are switched off: the Scheduler service account is deactivated.",
)
PLATFORM_SCHEDULER = ServiceAccount(
    id=str(uuid.uuid5(_NAMESPACE, "platform-scheduler")),
    email="platform-scheduler@bifrost.invalid",
    name="Platform scheduler",
    switched_off="Global schedules are switched off: the 'Platform scheduler' service account is deactivated.",
    is_superuser=True,
)
PUBLIC_ENDPOINT = ServiceAccount(
    id=str(uuid.uuid5(_NAMESPACE, "public-endpoint")),
    email="public-endpoint@bifrost.invalid",
    name="Public endpoint",
    switched_off="Public endpoints are switched off: the 'Public endpoint' service account is deactivated.",
)
SERVICE_ACCOUNT_IDS = frozenset({SCHEDULER.id, PLATFORM_SCHEDULER.id, PUBLIC_ENDPOINT.id})
# The accounts schedules fire as (organization scope, global scope).
SCHEDULER_IDS = frozenset({SCHEDULER.id, PLATFORM_SCHEDULER.id})


async def _ensure(session: AsyncSession, account: ServiceAccount) -> User:
    user = await session.get(User, account.id)
    if user is not None:
        return user
    try:
        # A savepoint: two processes creating the account at once must not abort the caller's work.
        async with session.begin_nested():
            user = User(
                id=account.id,
                email=account.email,
                name=account.name,
                password_hash=None,
                is_superuser=account.is_superuser,
            )
            session.add(user)
    except IntegrityError:
        user = await session.get(User, account.id)
        if user is None:  # the email is taken by a person: refuse rather than act as them
            raise PermissionDeniedError(f"The {account.name} service account cannot be created.") from None
    return user


async def service_actor(session: AsyncSession, account: ServiceAccount, acting_org_id: str | None) -> Actor:
    """The actor of a built-in service account acting in ``acting_org_id`` (created on first use).

    Args:
        session: An open session (the account row is written in its transaction when missing).
        account: :data:`SCHEDULER`, :data:`PLATFORM_SCHEDULER` or :data:`PUBLIC_ENDPOINT`.
        acting_org_id: Organization to act in; None is the global scope.

    Raises:
        PermissionDeniedError: An admin deactivated the account (its trigger is switched off).
    """
    user = await _ensure(session, account)
    if not user.is_active:
        raise PermissionDeniedError(account.switched_off)
    return Actor(
        user_id=user.id,
        email=user.email,
        name=user.name,
        organization_id=None,
        is_superuser=user.is_superuser,
        acting_org_id=acting_org_id,
    )


def scheduler_account(organization_id: str | None) -> ServiceAccount:
    """The account a schedule in ``organization_id`` fires as: the platform scheduler in the global scope."""
    return SCHEDULER if organization_id else PLATFORM_SCHEDULER
