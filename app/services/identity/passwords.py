"""Passwords changed from the web UI: a user's own (current + new + confirm) and an admin's reset of someone's.

Both end the user's other sessions (as the API's password change does) and are audited as
``user.updated`` with ``fields: ["password"]`` and who did it; the password itself is never logged.
May use: the users service, the audit log.
"""

from __future__ import annotations

import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import User
from app.services.actor import Actor
from app.services.audit import events as audit
from app.services.errors import InvalidInputError, NotFoundError
from app.services.identity import actor_cache
from app.services.identity.security import MIN_PASSWORD_LENGTH, hash_password, verify_password
from app.services.identity.users import UserService, end_sessions

GENERATED_PASSWORD_BYTES = 12  # 16 URL-safe characters: typed once by the user, then changed


class WrongPasswordError(InvalidInputError):
    """The current password given to change it was wrong (the caller audits the failed attempt)."""


def _check_new(new: str, confirm: str | None, field: str = "new_password") -> None:
    if len(new) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError.field(field, f"must be at least {MIN_PASSWORD_LENGTH} characters")
    if confirm is not None and new != confirm:
        raise InvalidInputError.field("confirm_password", "does not match the new password")


async def change_own_password(session: AsyncSession, actor: Actor, current: str, new: str, confirm: str) -> User:
    """Change the signed-in user's own password after checking the current one.

    Every session of the user ends (a stolen cookie dies with the old password); the caller signs
    this browser in again with the returned user's new session version.

    Args:
        session: A session in a transaction.
        actor: The signed-in user (a session, not an API key: keys do not know the password).
        current: The password they sign in with now.
        new: The new password.
        confirm: The new password again.

    Returns:
        The user, with its new session version.

    Raises:
        WrongPasswordError: ``current`` is not their password (field ``current_password``).
        InvalidInputError: The new password is too short, unconfirmed or unchanged; or the account has no
            password (it signs in with single sign-on only).
    """
    user = await session.get(User, actor.user_id)
    if user is None:
        raise NotFoundError("Your account no longer exists.")
    if user.password_hash is None:
        raise InvalidInputError.field(
            "current_password", "your account signs in with single sign-on only: it has no password to change"
        )
    if not verify_password(user.password_hash, current):
        raise WrongPasswordError(
            "current_password: is not your current password",
            [{"field": "current_password", "message": "is not your current password"}],
        )
    _check_new(new, confirm)
    if new == current:
        raise InvalidInputError.field("new_password", "must differ from the current password")
    user.password_hash = hash_password(new)
    await session.flush()
    await end_sessions(session, user.id)
    await session.refresh(user)
    actor_cache.clear_now_and_after_commit(session)
    details = {"fields": ["password"], "by": "self", "sessions_ended": True}
    await audit.record(session, actor, audit.USER_UPDATED, "user", user.id, user.organization_id, details)
    return user


async def reset_password(
    session: AsyncSession, actor: Actor, user_id: str, new: str | None = None, confirm: str | None = None
) -> tuple[User, str | None]:
    """Set another user's password (platform admins): the one given, or a generated one to show once.

    The user's sessions end (``UserService.update`` does it and audits ``user.updated``).

    Args:
        session: A session in a transaction.
        actor: A platform admin.
        user_id: Whose password.
        new: The new password; empty or None: generate one.
        confirm: The given password again (ignored when generating).

    Returns:
        The user and the generated password (None when the admin chose it).

    Raises:
        PermissionDeniedError: Not a platform admin.
        NotFoundError: No such user.
        InvalidInputError: A given password too short or unconfirmed; resetting one's own password here.
    """
    actor.require_admin("reset passwords")
    if user_id == actor.user_id:
        raise InvalidInputError.field("user_id", "change your own password on your Account page (it asks for it)")
    generated = None if new else secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
    if new:
        _check_new(new, confirm)
    user = await UserService(session).update(actor, user_id, password=new or generated)
    return user, generated
