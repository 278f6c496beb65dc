"""Two-factor sign-in with TOTP (RFC 6238): enrolment, codes, recovery codes, the install's policy.

* Codes come from pyotp (6 digits, 30-second steps, SHA-1: what every authenticator app reads from an
  ``otpauth://`` URI); one step of clock drift either way is accepted, and a code (its time step) is
  never accepted twice.
* The enrolment QR code is rendered on the server by segno as an SVG ``data:`` URI (the page's CSP allows
  ``data:`` images; no Pillow, no script, nothing sent elsewhere).
* The TOTP secret is stored as a Fernet token (:class:`app.services.secrets.SecretBox`). Ten recovery
  codes of 80 random bits are shown once and stored as SHA-256 hashes (high entropy: no slow hash needed);
  each works once.
* After :data:`MAX_FAILED` wrong codes in a row a user's codes are refused for :data:`LOCK_SECONDS`, on top
  of the per-address rate limit of sign-in attempts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pyotp
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import User
from app.models.base import utcnow
from app.models.sign_in import RecoveryCode, SignInPolicy, UserTotp
from app.services.actor import Actor
from app.services.audit import events as audit
from app.services.errors import ConflictError, InvalidInputError, NotFoundError
from app.services.secrets import SecretBox

ISSUER = "Bifrost Workbench"
RECOVERY_CODES = 10
MAX_FAILED = 5
LOCK_SECONDS = 60
POLICIES = ("none", "admins", "everyone")


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _normalise_recovery(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def new_recovery_code() -> str:
    """80 random bits as 16 base32 characters in four groups (``ABCD-EFGH-IJKL-MNOP``)."""
    text = base64.b32encode(secrets.token_bytes(10)).decode()
    return "-".join(text[i : i + 4] for i in range(0, 16, 4))


def qr_data_uri(uri: str) -> str:
    """The QR code of ``uri`` as an SVG ``data:`` URI (rendered here, on the server)."""
    # Imported here: segno (with xml.sax, ~15 ms) is only needed when someone enrols, not at process start.
    import segno

    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=2, dark="#111", light="#fff"))


async def get_policy(session: AsyncSession) -> str:
    """``none``, ``admins`` or ``everyone``: who must use a second factor with a password."""
    row = await session.get(SignInPolicy, 1)
    return row.require_totp if row else "none"


async def set_policy(session: AsyncSession, actor: Actor, require_totp: Any) -> str:
    """Set who must use a second factor (platform admins only; audited)."""
    actor.require_admin("change the sign-in policy")
    if require_totp not in POLICIES:
        raise InvalidInputError.field("require_totp", f"must be one of {', '.join(POLICIES)}")
    row = await session.get(SignInPolicy, 1)
    if row is None:
        row = SignInPolicy(id=1)
        session.add(row)
    previous = row.require_totp if row.require_totp else "none"
    row.require_totp, row.updated_by, row.updated_at = require_totp, actor.user_id, utcnow()
    await session.flush()
    details = {"require_totp": require_totp, "previous": previous}
    await audit.record(session, actor, audit.SIGN_IN_POLICY_CHANGED, "sign_in_policy", "1", None, details)
    return str(require_totp)


async def second_step_needed(session: AsyncSession, user: User) -> str | None:
    """What a password sign-in of ``user`` still needs: ``totp``, ``enrol`` (policy, no factor) or None."""
    row = await session.get(UserTotp, user.id)
    if row is not None and row.confirmed_at is not None:
        return "totp"
    policy = await get_policy(session)
    if policy == "everyone" or (policy == "admins" and user.is_superuser):
        return "enrol"
    return None


class TotpService:
    """One user's TOTP factor and recovery codes."""

    def __init__(self, session: AsyncSession, box: Callable[[], SecretBox]) -> None:
        self.session = session
        self.box = box

    async def factor(self, user_id: str) -> UserTotp | None:
        """The user's confirmed factor, or None."""
        row = await self.session.get(UserTotp, user_id)
        return row if row is not None and row.confirmed_at is not None else None

    async def status(self, user_id: str) -> dict[str, Any]:
        """Whether the user has a factor, since when, and how many recovery codes are left."""
        factor = await self.factor(user_id)
        left = await self.session.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(col(RecoveryCode.user_id) == user_id, col(RecoveryCode.used_at).is_(None))
        )
        return {
            "enabled": factor is not None,
            "confirmed_at": factor.confirmed_at.isoformat() if factor and factor.confirmed_at else None,
            "recovery_codes_left": int(left or 0) if factor else 0,
        }

    async def begin_enrolment(self, user: User) -> dict[str, str]:
        """A new secret for ``user`` (replacing an unconfirmed one): the secret, its URI and QR code.

        Raises:
            ConflictError: The user already has a confirmed factor (reset or disable it first).
        """
        row = await self.session.get(UserTotp, user.id)
        if row is not None and row.confirmed_at is not None:
            raise ConflictError("Two-factor sign-in is already on for this user; turn it off first to enrol again.")
        secret = pyotp.random_base32()
        if row is None:
            row = UserTotp(user_id=user.id, secret=self.box().encrypt(secret))
            self.session.add(row)
        else:
            row.secret, row.last_step, row.failed_attempts, row.created_at = self.box().encrypt(secret), 0, 0, utcnow()
        await self.session.flush()
        uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
        return {"secret": secret, "otpauth_uri": uri, "qr_svg": qr_data_uri(uri)}

    async def pending_enrolment(self, user: User) -> dict[str, str] | None:
        """The enrolment started and not confirmed yet (to show its QR code again), or None."""
        row = await self.session.get(UserTotp, user.id)
        if row is None or row.confirmed_at is not None:
            return None
        secret = self.box().decrypt(row.secret, "a two-factor secret")
        uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
        return {"secret": secret, "otpauth_uri": uri, "qr_svg": qr_data_uri(uri)}

    async def confirm_enrolment(self, user: User, code: Any) -> list[str]:
        """Turn the factor on with a first code from the app; returns the recovery codes (shown once).

        Raises:
            NotFoundError: No enrolment was started.
            ConflictError: Already on.
            InvalidInputError: The code is not the current one.
        """
        row = await self.session.get(UserTotp, user.id)
        if row is None:
            raise NotFoundError("No two-factor enrolment was started: start it first.")
        if row.confirmed_at is not None:
            raise ConflictError("Two-factor sign-in is already on for this user.")
        step = self._matching_step(row, code)
        if step is None:
            raise InvalidInputError.field("code", "is not the current code of the authenticator app")
        row.confirmed_at, row.last_step, row.failed_attempts = utcnow(), step, 0
        codes = await self._new_recovery_codes(user.id)
        await audit.record(
            self.session, None, audit.TOTP_ENABLED, "user", user.id, user.organization_id, actor_email=user.email
        )
        return codes

    async def regenerate_recovery_codes(self, user: User) -> list[str]:
        """Replace the user's recovery codes (the old ones stop working); returns the new ones."""
        if await self.factor(user.id) is None:
            raise NotFoundError("Two-factor sign-in is not on for this user.")
        return await self._new_recovery_codes(user.id)

    async def _new_recovery_codes(self, user_id: str) -> list[str]:
        await self.session.execute(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user_id))
        codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
        self.session.add_all(RecoveryCode(user_id=user_id, code_hash=_hash(_normalise_recovery(c))) for c in codes)
        await self.session.flush()
        return codes

    def _matching_step(self, row: UserTotp, code: Any) -> int | None:
        """The time step ``code`` belongs to (now, or one step either side), if it is a valid, unused code."""
        if not isinstance(code, str):
            return None
        code = code.strip().replace(" ", "")
        if len(code) != 6 or not (code.isascii() and code.isdigit()):
            return None
        totp = pyotp.TOTP(self.box().decrypt(row.secret, "a two-factor secret"))
        now = utcnow()
        current = totp.timecode(now)
        for offset in (0, -1, 1):
            step = current + offset
            if step > row.last_step and hmac.compare_digest(totp.generate_otp(step), code):
                return step
        return None

    async def check_code(self, user: User, code: Any) -> str | None:
        """Check a sign-in code; None when accepted, else why it was refused.

        Returns rather than raises, so that the caller commits the failure count with the refusal.
        """
        row = await self.factor(user.id)
        if row is None:
            return "Two-factor sign-in is not on for this user."
        now = utcnow()
        if (
            row.failed_attempts >= MAX_FAILED
            and row.last_failed_at is not None
            and now - row.last_failed_at < timedelta(seconds=LOCK_SECONDS)
        ):
            return f"Too many wrong codes: wait {LOCK_SECONDS} seconds and try again."
        step = self._matching_step(row, code)
        if step is None:
            row.failed_attempts = row.failed_attempts + 1 if row.failed_attempts < MAX_FAILED else 1
            row.last_failed_at = now
            await self.session.flush()
            return "Wrong or already used code."
        # Conditional: of two requests racing with the same code, only one moves last_step forward.
        result = await self.session.execute(
            update(UserTotp)
            .where(col(UserTotp.user_id) == user.id, col(UserTotp.last_step) < step)
            .values(last_step=step, failed_attempts=0)
            .execution_options(synchronize_session="fetch")
        )
        return None if getattr(result, "rowcount", 0) == 1 else "Wrong or already used code."

    async def use_recovery_code(self, user: User, code: Any) -> str | None:
        """Use a recovery code; None when accepted (it is spent), else why it was refused."""
        if await self.factor(user.id) is None:
            return "Two-factor sign-in is not on for this user."
        if not isinstance(code, str) or not code.strip():
            return "Enter a recovery code."
        result = await self.session.execute(
            update(RecoveryCode)
            .where(
                col(RecoveryCode.user_id) == user.id,
                col(RecoveryCode.code_hash) == _hash(_normalise_recovery(code)),
                col(RecoveryCode.used_at).is_(None),
            )
            .values(used_at=utcnow())
        )
        # One UPDATE guarded by used_at IS NULL: two concurrent uses of one code cannot both succeed.
        return None if getattr(result, "rowcount", 0) == 1 else "Unknown or already used recovery code."

    async def remove(self, actor: Actor, user: User) -> bool:
        """Turn the factor off (the user themselves, or a platform admin resetting it); audited.

        Returns:
            False when there was no factor.
        """
        if not (actor.is_superuser or actor.user_id == user.id):
            raise NotFoundError(f"User {user.id!r} not found.")
        row = await self.session.get(UserTotp, user.id)
        await self.session.execute(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user.id))
        if row is None:
            return False
        confirmed = row.confirmed_at is not None
        await self.session.delete(row)
        await self.session.flush()
        if confirmed:
            details = {"by_admin": actor.user_id != user.id}
            await audit.record(self.session, actor, audit.TOTP_RESET, "user", user.id, user.organization_id, details)
        return confirmed
