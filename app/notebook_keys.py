"""The API key ``bifrost notebook`` gives its Jupyter server and kernels: one per user, kept, revocable.

The key acts as the author (``--as EMAIL``, default the first platform admin), is named
``bifrost notebook`` (that name marks it on the API keys page), and is stored in
``<home>/notebook-keys/<email>.key`` (mode 0600, folder 0700) so that the next ``bifrost notebook``
reuses it instead of minting another. ``bifrost notebook --revoke`` revokes every active notebook key
of the user and deletes the file; revoking it on the API keys page works too (the next start then
mints a new one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlmodel import col

from app.db import create_engine, session_factory, transaction
from app.models import ApiKey, User
from app.services.identity.auth import ApiKeyService, AuthService
from app.services.identity.security import hash_token
from app.settings import Settings

KEY_NAME = "bifrost notebook"


class NotebookKeyError(Exception):
    """No user to make the key for, or the key cannot be made (the message says why)."""


@dataclass(frozen=True)
class NotebookKey:
    """The notebook key of a user.

    Attributes:
        key: The secret (``bfk_...``).
        prefix: Its public prefix, as the API keys page lists it.
        email: The user it acts as.
        path: Where it is stored.
        created: True when this call minted it (False: the stored key was still valid).
    """

    key: str
    prefix: str
    email: str
    path: Path
    created: bool


def key_path(home: Path, email: str) -> Path:
    """Where the notebook key of ``email`` is stored."""
    return home / "notebook-keys" / f"{email.lower()}.key"


def _store(path: Path, key: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    os.chmod(path, 0o600)  # an older file may have had looser bits


async def _user(session: object, email: str | None) -> User:
    if email:
        stmt = select(User).where(col(User.email) == email.lower())
    else:
        stmt = select(User).where(col(User.is_superuser).is_(True)).order_by(col(User.created_at))
    user = (await session.execute(stmt)).scalars().first()  # type: ignore[attr-defined]
    if user is None:
        raise NotebookKeyError(f"no user {email}" if email else "no platform admin yet: run `bifrost init` first")
    if not user.is_active:
        raise NotebookKeyError(f"{user.email} is deactivated")
    return user  # type: ignore[no-any-return]


async def obtain(settings: Settings, email: str | None = None, org: str | None = None) -> NotebookKey:
    """The user's stored notebook key while it is valid, else a new one (stored).

    Args:
        settings: The install (its database and home).
        email: The author the key acts as; default the first platform admin.
        org: Limit a new key to this organization (id or name); a stored key is reused only if it matches.

    Raises:
        NotebookKeyError: No such user, or the platform refused the key.
    """
    from app.services.errors import DomainError

    engine = create_engine(settings.resolved_database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            user = await _user(session, email)
            auth = AuthService(session)
            try:
                org_id = await auth.resolve_org(user, org) if org else None
            except DomainError as exc:
                raise NotebookKeyError(str(exc)) from None
            path = key_path(settings.home, user.email)
            stored = path.read_text().strip() if path.is_file() else ""
            if stored:
                row = (
                    await session.execute(select(ApiKey).where(col(ApiKey.key_hash) == hash_token(stored)))
                ).scalar_one_or_none()
                usable = (
                    row is not None and row.revoked_at is None and row.user_id == user.id and row.scope == "notebook"
                )
                if usable and row is not None and (org_id is None or row.organization_id == org_id):
                    return NotebookKey(stored, row.prefix, user.email, path, created=False)
            try:
                actor = await auth.actor_for_user(user.id)
                row, key = await ApiKeyService(session).create(actor, KEY_NAME, org_id, scope="notebook")
            except DomainError as exc:
                raise NotebookKeyError(str(exc)) from None
            prefix = row.prefix
    finally:
        await engine.dispose()
    _store(path, key)  # after the commit: a stored key always exists in the database
    return NotebookKey(key, prefix, user.email, path, created=True)


async def revoke(settings: Settings, email: str | None = None) -> list[str]:
    """Revoke every active notebook key of the user and delete the stored one; returns the revoked prefixes.

    Args:
        settings: The install.
        email: The author; default the first platform admin.

    Raises:
        NotebookKeyError: No such user.
    """
    engine = create_engine(settings.resolved_database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            user = await _user(session, email)
            path = key_path(settings.home, user.email)
            stmt = select(ApiKey).where(
                col(ApiKey.user_id) == user.id, col(ApiKey.name) == KEY_NAME, col(ApiKey.revoked_at).is_(None)
            )
            keys = list((await session.execute(stmt)).scalars())
            actor = await AuthService(session).actor_for_user(user.id)
            service = ApiKeyService(session)
            for key in keys:
                await service.revoke(actor, key.id)
            prefixes = [key.prefix for key in keys]
    finally:
        await engine.dispose()
    path.unlink(missing_ok=True)
    return prefixes
