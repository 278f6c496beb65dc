"""Configuration values and secrets (``bifrost.config``), per organization with global fallback.

Scope rules:

* Reading looks in the scope's organization first, then in global values (``organization_id`` NULL).
* The scope is the actor's acting organization: an execution's organization for SDK calls, the
  user's own organization for regular users. Platform admins may name another one (or ``GLOBAL``);
  an admin acting in no organization works on global values.
* Only platform admins write or delete global values.
* Secrets are stored as Fernet tokens (:mod:`app.services.secrets`). Their plaintext is returned
  only to a running execution (an SDK token) that may read secrets (:attr:`Actor.may_read_secrets`:
  a workflow the platform runs, or a platform admin's notebook run), and is then remembered for
  redaction (:mod:`app.services.redaction`); everyone else, and every listing, sees :data:`SECRET_MASK`.
"""

from __future__ import annotations

import builtins
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models.base import utcnow
from app.models.config_entry import ConfigEntry
from app.services import cluster, redaction
from app.services.actor import Actor
from app.services.audit import events as audit
from app.services.config.views import ConfigEntryRow, ConfigEntryView
from app.services.errors import (
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    reject_unknown_fields,
    require_bool,
)
from app.services.identity.organizations import OrganizationService
from app.services.secrets import SecretBox, SecretKeyError
from bifrost.enums import ConfigType

SECRET_MASK = "********"
GLOBAL = "GLOBAL"
MAX_KEY_LENGTH = 255
MAX_VALUE_CHARS = 256 * 1024
MAX_DESCRIPTION_CHARS = 2000
# Control characters (C0, DEL, C1) cannot be part of a key.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
SET_FIELDS = frozenset({"value", "is_secret", "description"})

# `config.get` is the hot path of workflows: two Core statements built once (building an ORM query
# and loading an ORM object per call cost several times the lookup itself).
_ORG = col(ConfigEntry.organization_id)
_ENTRY_COLUMNS = (
    col(ConfigEntry.key),
    _ORG,
    col(ConfigEntry.config_type),
    col(ConfigEntry.value),
    col(ConfigEntry.description),
    col(ConfigEntry.updated_at),
)
# At most two rows (the organization's and the global one): the caller prefers the organization's.
_LOOKUP_IN_ORG = select(*_ENTRY_COLUMNS).where(
    col(ConfigEntry.key) == bindparam("b_key"), or_(_ORG == bindparam("b_org"), _ORG.is_(None))
)
_LOOKUP_GLOBAL = select(*_ENTRY_COLUMNS).where(col(ConfigEntry.key) == bindparam("b_key"), _ORG.is_(None))

# Workflows read config in loops and values change rarely: the rows of a lookup are kept a few seconds
# per (organization, key), misses included. Every write in this process clears them at once and again
# after its commit; another process sharing the database (`bifrost run` beside `bifrost serve`, the
# rotate command) is seen within _CACHE_TTL_SECONDS, as for workflows and organizations. Secrets are
# cached encrypted and decrypted on every read.
_CACHE_TTL_SECONDS = 5.0
_CACHE_MAX_ENTRIES = 10_000
_cache: dict[tuple[str | None, str], tuple[float, builtins.list[Any]]] = {}
# Bumped by every write: a lookup that raced a write (it read before the commit) does not cache its rows.
_generation = 0


def _forget_cached(session: AsyncSession | None = None) -> None:
    """Drop cached lookups now (and, given the writing session, again when it commits)."""
    global _generation
    _generation += 1
    _cache.clear()
    if session is not None:  # again on every server when the write commits
        cluster.invalidate_after_commit(session, "config")


cluster.register("config", _forget_cached)


def validate_key(key: Any) -> str:
    """``key`` if it is a valid config key; InvalidInputError naming the problem otherwise.

    Keys are text of 1-255 characters, case-sensitive, and may contain spaces and ``/`` (``halo/api url``).
    Refused: control characters, leading or trailing spaces or ``/``, an empty segment (``a//b``),
    and ``.`` or ``..`` (URLs would resolve them as path steps).
    """
    if not isinstance(key, str) or not key:
        raise InvalidInputError.field("key", "must be a non-empty string")
    problem = None
    if len(key) > MAX_KEY_LENGTH:
        problem = f"must be at most {MAX_KEY_LENGTH} characters"
    elif _CONTROL.search(key):
        problem = "must not contain control characters"
    elif key != key.strip() or key.strip("/") != key:
        problem = "must not start or end with a space or '/'"
    elif "//" in key:
        problem = "must not contain '//'"
    elif key in (".", ".."):
        problem = "must not be '.' or '..'"
    else:
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            problem = "must be valid Unicode text (no lone surrogates)"
    if problem:
        raise InvalidInputError.field("key", problem)
    return key


def _check_text(text: str, field: str) -> str:
    if "\x00" in text:
        raise InvalidInputError.field(field, "must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError.field(field, "must be valid Unicode text (no lone surrogates)") from None
    if len(text) > MAX_VALUE_CHARS:
        raise InvalidInputError.field(field, f"must be at most {MAX_VALUE_CHARS} characters once serialised")
    return text


def encode_value(value: Any, is_secret: bool) -> tuple[ConfigType, str]:
    """The stored type and text form of ``value`` (a secret's text is still plaintext here).

    ``bool`` → BOOL, ``int`` → INT, ``str`` → STRING (SECRET when ``is_secret``),
    ``dict``/``list``/``float`` → JSON.

    Raises:
        InvalidInputError: Unsupported type (bytes, sets, ...), null, NaN, or too large.
    """
    if is_secret:
        if not isinstance(value, str):
            raise InvalidInputError.field("value", f"a secret must be text, not {_type_name(value)}")
        if not value:
            raise InvalidInputError.field("value", "a secret must not be empty")
        return ConfigType.SECRET, _check_text(value, "value")
    if value is None:
        raise InvalidInputError.field("value", "is required (null is not a config value; delete the key instead)")
    if isinstance(value, bool):
        return ConfigType.BOOL, "true" if value else "false"
    if isinstance(value, int):
        try:
            return ConfigType.INT, _check_text(str(value), "value")
        except ValueError:  # more digits than Python converts to text
            raise InvalidInputError.field("value", "integer is too large") from None
    if isinstance(value, str):
        return ConfigType.STRING, _check_text(value, "value")
    if isinstance(value, float | dict | list):
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except ValueError as exc:
            raise InvalidInputError.field("value", f"not storable as JSON: {exc}") from None
        except TypeError as exc:
            raise InvalidInputError.field("value", f"contains a value JSON cannot hold: {exc}") from None
        return ConfigType.JSON, _check_text(text, "value")
    raise InvalidInputError.field(
        "value",
        f"unsupported type {_type_name(value)}: use text, an integer, true/false, or JSON (object, array, number)",
    )


def _description(description: Any) -> str | None:
    if description is None:
        return None
    if not isinstance(description, str):
        raise InvalidInputError.field("description", "must be text")
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise InvalidInputError.field("description", f"must be at most {MAX_DESCRIPTION_CHARS} characters")
    return _check_text(description.strip(), "description") or None


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def decode_value(config_type: str, text: str) -> Any:
    """The Python value of a stored non-secret text form (the inverse of :func:`encode_value`)."""
    if config_type == ConfigType.STRING:
        return text
    if config_type == ConfigType.BOOL:
        return text == "true"
    if config_type == ConfigType.INT:
        return int(text)
    if config_type == ConfigType.JSON:
        return json.loads(text)
    return text


class StoredEntry(Protocol):
    """What a caller may see of a row: a :class:`ConfigEntry` or a Core row of its columns."""

    @property
    def key(self) -> str: ...
    @property
    def organization_id(self) -> str | None: ...
    @property
    def config_type(self) -> str: ...
    @property
    def value(self) -> str: ...
    @property
    def description(self) -> str | None: ...
    @property
    def updated_at(self) -> datetime: ...


@dataclass(frozen=True)
class ConfigValue:
    """One entry as a caller may see it.

    Attributes:
        entry: The stored row (its ``value`` is the stored text, never shown as is).
        value: The decoded value, a secret's plaintext (executions only) or :data:`SECRET_MASK`.
        masked: True when ``value`` is the mask instead of the secret.
    """

    entry: StoredEntry
    value: Any
    masked: bool

    def view(self, **extra: Any) -> ConfigEntryView:
        """The API / SDK shape (``bifrost.types.ConfigData`` fields plus ``is_secret``, ``masked``, ``updated_at``)."""
        view = {
            "key": self.entry.key,
            "value": self.value,
            "type": self.entry.config_type,
            "is_secret": self.entry.config_type == ConfigType.SECRET,
            "masked": self.masked,
            "organization_id": self.entry.organization_id,
            "description": self.entry.description,
            "updated_at": self.entry.updated_at.isoformat(),
            **extra,
        }
        return cast(ConfigEntryView, view)  # **extra: the keys of a subclass (ConfigEntryRow)


def _cached_rows(scope: str | None, key: str) -> builtins.list[Any] | None:
    cached = _cache.get((scope, key))
    return cached[1] if cached is not None and cached[0] > time.monotonic() else None


def _preferred(rows: builtins.list[Any], key: str) -> StoredEntry:
    """The organization's row over the global one; NotFoundError when there is neither."""
    if not rows:
        raise NotFoundError(f"Config key {key!r} is not set.")
    return next((r for r in rows if r.organization_id is not None), rows[0])  # type: ignore[no-any-return]


def _reveal(actor: Actor, entry: StoredEntry, secret_box: Callable[[], SecretBox]) -> ConfigValue:
    if entry.config_type != ConfigType.SECRET:
        return ConfigValue(entry, decode_value(entry.config_type, entry.value), masked=False)
    if not actor.may_read_secrets or actor.execution_id is None:
        # API keys, sessions, and notebook runs of users who are not platform admins.
        return ConfigValue(entry, SECRET_MASK, masked=True)
    plaintext = secret_box().decrypt(entry.value, f"secret {entry.key!r}")
    # Remembered before the value leaves the server, so any log line that carries it is redacted.
    redaction.remember(actor.execution_id, plaintext)
    return ConfigValue(entry, plaintext, masked=False)


def peek_cached(actor: Actor, key: str, secret_box: Callable[[], SecretBox]) -> ConfigValue | None:
    """:meth:`ConfigService.get` in the actor's own scope answered from the lookup cache alone.

    Lets the web layer answer a workflow's repeated ``config.get`` without opening a transaction.

    Returns:
        The value, or None when the database must be asked (not cached, or a cached secret
        no longer decrypts).

    Raises:
        InvalidInputError: Bad key.
        NotFoundError: Cached as not set.
    """
    rows = _cached_rows(actor.acting_org_id, validate_key(key))
    if rows is None:
        return None
    try:
        return _reveal(actor, _preferred(rows, key), secret_box)
    except SecretKeyError:
        _forget_cached()
        return None


@dataclass(frozen=True)
class RotationReport:
    """Outcome of :meth:`ConfigService.rotate_all_secrets`.

    Attributes:
        secrets: How many secrets were re-encrypted (all of them).
        were_on_old_keys: How many of those were not yet under the newest key.
    """

    secrets: int
    were_on_old_keys: int


class ConfigService:
    """Config values of one organization plus global ones.

    Args:
        session: The transaction.
        secret_box: Returns the :class:`SecretBox` (called only when a secret is read or written,
            so plain values keep working while the keys are misconfigured).
    """

    def __init__(self, session: AsyncSession, secret_box: Callable[[], SecretBox]) -> None:
        self.session = session
        self._secret_box = secret_box

    # ----- scope ------------------------------------------------------------------------------------
    async def _scope(self, actor: Actor, org: str | None) -> str | None:
        """The organization to work in (None = global)."""
        if not org or org == actor.acting_org_id:
            return actor.acting_org_id
        if not actor.is_superuser:
            # The same answer whether or not the organization exists: ids and names cannot be probed.
            raise PermissionDeniedError("Only platform admins may choose the organization of config values.")
        if org.upper() == GLOBAL:
            return None
        # Text no organization id or name can be (Postgres cannot even compare NUL): not found, no query.
        found = None if len(org) > 200 or "\x00" in org else await OrganizationService(self.session).find(org)
        if found is None:
            raise NotFoundError(f"Organization {org!r} not found.")
        return found.id

    @staticmethod
    def _require_writable(actor: Actor, scope: str | None) -> None:
        if scope is None and not actor.is_superuser:
            raise PermissionDeniedError("Only platform admins may change global config values.")

    def _visible(self, scope: str | None) -> Any:
        if scope is None:
            return col(ConfigEntry.organization_id).is_(None)
        return or_(col(ConfigEntry.organization_id) == scope, col(ConfigEntry.organization_id).is_(None))

    # ----- reading ----------------------------------------------------------------------------------
    async def get(self, actor: Actor, key: str, org: str | None = None) -> ConfigValue:
        """The value of ``key``: the organization's, else the global one.

        Secrets come back in clear only to a running execution that may read them; otherwise masked.

        Raises:
            NotFoundError: The key is set neither in the organization nor globally.
            SecretKeyError: A secret that no configured key decrypts.
        """
        key = validate_key(key)
        scope = await self._scope(actor, org)
        try:
            return _reveal(actor, _preferred(await self._lookup(scope, key), key), self._secret_box)
        except SecretKeyError:
            # A cached ciphertext may predate a rotation by another process that also dropped the old key.
            _forget_cached()
            return _reveal(actor, _preferred(await self._lookup(scope, key), key), self._secret_box)

    async def _lookup(self, scope: str | None, key: str) -> builtins.list[Any]:
        """Rows of ``key`` in the scope and global (at most two), from the cache or the database."""
        cached = _cached_rows(scope, key)
        if cached is not None:
            return cached
        generation = _generation
        connection = await self.session.connection()
        if scope is None:
            rows = list(await connection.execute(_LOOKUP_GLOBAL, {"b_key": key}))
        else:
            rows = list(await connection.execute(_LOOKUP_IN_ORG, {"b_key": key, "b_org": scope}))
        if generation == _generation:
            if len(_cache) >= _CACHE_MAX_ENTRIES:
                _cache.clear()
            _cache[(scope, key)] = (time.monotonic() + _CACHE_TTL_SECONDS, rows)
        return rows

    async def _rows(self, scope: str | None) -> builtins.list[ConfigEntry]:
        stmt = select(ConfigEntry).where(self._visible(scope)).order_by(col(ConfigEntry.key))
        return list((await self.session.execute(stmt)).scalars())

    async def list(self, actor: Actor, org: str | None = None) -> dict[str, Any]:
        """Every visible key with its value, organization values over global ones, secrets masked."""
        scope = await self._scope(actor, org)
        merged: dict[str, Any] = {}
        for entry in await self._rows(scope):
            if entry.key in merged and entry.organization_id is None:
                continue  # the organization's own value wins
            merged[entry.key] = (
                SECRET_MASK if entry.config_type == ConfigType.SECRET else decode_value(entry.config_type, entry.value)
            )
        return merged

    async def entries(self, actor: Actor, org: str | None = None) -> builtins.list[ConfigEntryRow]:
        """Rows for a config page: the organization's and the global ones, secrets masked.

        Each row has ``overridden`` = True for a global value the organization replaces.
        """
        scope = await self._scope(actor, org)
        rows = await self._rows(scope)
        own = {e.key for e in rows if e.organization_id is not None}
        result = []
        for entry in sorted(rows, key=lambda e: (e.key, e.organization_id is None)):
            masked = entry.config_type == ConfigType.SECRET
            value = SECRET_MASK if masked else decode_value(entry.config_type, entry.value)
            row = ConfigValue(entry, value, masked).view(overridden=entry.organization_id is None and entry.key in own)
            result.append(cast(ConfigEntryRow, row))
        return result

    # ----- writing ----------------------------------------------------------------------------------
    async def set(
        self,
        actor: Actor,
        key: str,
        value: Any,
        is_secret: Any = False,
        description: Any = None,
        org: str | None = None,
    ) -> ConfigValue:
        """Create or replace ``key`` in the scope (the type follows the value; see :func:`encode_value`).

        Args:
            actor: Who writes.
            key: The key.
            value: str, int, bool, float, dict or list; a secret must be a string.
            is_secret: Encrypt it and mask it everywhere but inside executions.
            description: Optional text; None keeps the current description.
            org: Organization id or name, or ``GLOBAL`` (platform admins only).

        Returns:
            The stored entry; a secret's value is masked.

        Raises:
            InvalidInputError: Bad key, value or description.
            PermissionDeniedError: Global write by a non-admin, or another organization.
        """
        key = validate_key(key)
        is_secret = require_bool(is_secret, "is_secret")
        config_type, text = encode_value(value, is_secret)
        new_description = _description(description)
        scope = await self._scope(actor, org)
        self._require_writable(actor, scope)
        _forget_cached(self.session)
        if config_type == ConfigType.SECRET:
            stored = self._secret_box().encrypt(text)
            redaction.remember(actor.execution_id, text)  # the execution knows it: keep it out of its output
        else:
            stored = text
        entry = await self._own(scope, key)
        if entry is None:
            entry = ConfigEntry(organization_id=scope, key=key, config_type=config_type, value=stored)
            self.session.add(entry)
        else:
            entry.config_type, entry.value, entry.updated_at = config_type, stored, utcnow()
        if description is not None:  # None keeps it; "" clears it
            entry.description = new_description
        entry.updated_by = actor.user_id
        await self.session.flush()
        # The key and its type, never the value (secret or not: a value can be sensitive without being marked).
        details = {"key": key, "is_secret": config_type == ConfigType.SECRET, "type": str(config_type.value)}
        if actor.execution_id:
            details["execution_id"] = actor.execution_id
        await audit.record(self.session, actor, audit.CONFIG_SET, "config", key, scope, details)
        shown = SECRET_MASK if config_type == ConfigType.SECRET else decode_value(config_type, text)
        return ConfigValue(entry, shown, masked=config_type == ConfigType.SECRET)

    async def _own(self, scope: str | None, key: str) -> ConfigEntry | None:
        owner = (
            col(ConfigEntry.organization_id).is_(None) if scope is None else col(ConfigEntry.organization_id) == scope
        )
        stmt = select(ConfigEntry).where(col(ConfigEntry.key) == key, owner)
        return (await self.session.execute(stmt)).scalars().first()

    async def set_from_body(self, actor: Actor, key: str, body: Any, org: str | None = None) -> ConfigValue:
        """:meth:`set` from a JSON body ``{"value", "is_secret"?, "description"?}`` (unknown fields refused)."""
        if not isinstance(body, dict):
            raise InvalidInputError.field("body", "must be a JSON object with a 'value'")
        reject_unknown_fields(body, SET_FIELDS)
        if "value" not in body:
            raise InvalidInputError.field("value", "is required")
        return await self.set(actor, key, body["value"], body.get("is_secret", False), body.get("description"), org=org)

    async def delete(self, actor: Actor, key: str, org: str | None = None) -> bool:
        """Delete ``key`` from the scope only (a global value stays); True when it existed.

        Raises:
            PermissionDeniedError: Global delete by a non-admin, or another organization.
        """
        key = validate_key(key)
        scope = await self._scope(actor, org)
        self._require_writable(actor, scope)
        entry = await self._own(scope, key)
        if entry is None:
            return False
        _forget_cached(self.session)
        details = {"key": key, "is_secret": entry.config_type == ConfigType.SECRET}
        await self.session.delete(entry)
        await self.session.flush()
        await audit.record(self.session, actor, audit.CONFIG_DELETED, "config", key, scope, details)
        return True

    # ----- operator commands ------------------------------------------------------------------------
    async def rotate_all_secrets(self) -> RotationReport:
        """Re-encrypt every secret of every organization under the newest key (``bifrost secrets rotate``).

        All or nothing: if one secret cannot be decrypted, nothing is changed (the caller's
        transaction rolls back) and the error names every such secret.

        Raises:
            SecretKeyError: Secrets that no configured key decrypts.
        """
        box = self._secret_box()
        stmt = select(ConfigEntry).where(col(ConfigEntry.config_type) == ConfigType.SECRET.value)
        entries = list((await self.session.execute(stmt)).scalars())
        failed: builtins.list[str] = []
        old = 0
        for entry in entries:
            scope = entry.organization_id or "global"
            try:
                if not box.is_current(entry.value):
                    old += 1
                entry.value = box.rotate(entry.value, f"secret {entry.key!r} ({scope})")
            except SecretKeyError:
                failed.append(f"{entry.key} ({scope})")
        if failed:
            raise SecretKeyError(
                f"{len(failed)} secret(s) cannot be decrypted with the keys in {box.source}: "
                f"{', '.join(failed)}. Nothing was changed; add the key they were written with (after the newest) "
                "and run the command again."
            )
        _forget_cached(self.session)
        await self.session.flush()
        return RotationReport(secrets=len(entries), were_on_old_keys=old)
