"""Encryption keys for secrets: Fernet keys kept outside the database, rotated with MultiFernet.

Where the keys come from, first match wins:

1. ``BIFROST_SECRET_KEY``: one Fernet key, or several separated by commas, **newest first**;
2. the key file ``<BIFROST_HOME>/secret.key``: one key per line, newest first (blank lines and
   ``#`` comments ignored). It is created with mode 0600 holding one fresh key the first time a
   key is needed (``bifrost init`` creates it up front).

The newest key encrypts; every listed key decrypts. Rotation: put a new key first, run
``bifrost secrets rotate`` (re-encrypts every secret under it), then drop the old key.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from app.services.errors import DomainError

log = logging.getLogger(__name__)

KEY_FILE_NAME = "secret.key"
ENV_NAME = "BIFROST_SECRET_KEY"


class SecretKeyError(DomainError):
    """The keys are missing or malformed, or none of them decrypts a stored secret.

    This is a server configuration problem, not bad input: the message says which
    key source is in use and what to do.
    """


def generate_key() -> str:
    """A new random Fernet key (url-safe base64 text)."""
    return Fernet.generate_key().decode("ascii")


def parse_keys(text: str, source: str) -> list[bytes]:
    """Split ``text`` into Fernet keys (commas or new lines; newest first) and check each.

    Args:
        text: The keys as written by the operator.
        source: Where they came from, for error messages.

    Raises:
        SecretKeyError: No key, or one that is not a valid Fernet key.
    """
    keys: list[bytes] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        for part in line.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                Fernet(part.encode("ascii"))
            except (ValueError, UnicodeEncodeError):
                raise SecretKeyError(
                    f"{source}: key #{len(keys) + 1} is not a valid Fernet key "
                    "(32 url-safe base64-encoded bytes; `bifrost secrets generate-key` prints one)."
                ) from None
            keys.append(part.encode("ascii"))
    if not keys:
        raise SecretKeyError(f"{source} holds no key.")
    return keys


def key_file_path(home: Path) -> Path:
    """The key file of a platform home."""
    return home / KEY_FILE_NAME


def ensure_key_file(home: Path) -> Path:
    """Create ``<home>/secret.key`` with one fresh key and mode 0600 unless it exists.

    A key file that group or others may read is tightened to 0600 (with a warning).

    Returns:
        The key file's path.
    """
    path = key_file_path(home)
    home.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two processes starting at once cannot both write a different first key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("secret key file %s had mode %o; tightened to 600", path, mode)
            path.chmod(0o600)
        return path
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(generate_key() + "\n")
    log.info("created secret key file %s (back it up: secrets cannot be read without it)", path)
    return path


def prepend_key_to_file(home: Path, key: str) -> Path:
    """Put ``key`` first in the key file (the older keys stay, so old secrets still decrypt).

    The file is replaced atomically and keeps mode 0600.
    """
    parse_keys(key, "the new key")
    path = ensure_key_file(home)
    old = path.read_text(encoding="ascii")
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key + "\n" + old)
    os.replace(temporary, path)
    return path


class SecretBox:
    """Encrypts with the newest key, decrypts with any configured key.

    Args:
        keys: Fernet keys, newest first.
        source: Where the keys came from (``BIFROST_SECRET_KEY`` or the key file path), for messages.
    """

    def __init__(self, keys: list[bytes], source: str) -> None:
        if not keys:
            raise SecretKeyError(f"{source} holds no key.")
        self.source = source
        self.key_count = len(keys)
        self._primary = Fernet(keys[0])
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def encrypt(self, plaintext: str) -> str:
        """The Fernet token of ``plaintext`` under the newest key."""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str, what: str = "a secret") -> str:
        """The plaintext of ``token``.

        Args:
            token: A Fernet token made by :meth:`encrypt` with any configured key.
            what: Names the secret in the error message.

        Raises:
            SecretKeyError: No configured key decrypts it (a key was dropped or replaced).
        """
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise SecretKeyError(self._cannot_decrypt(what)) from None

    def rotate(self, token: str, what: str = "a secret") -> str:
        """Re-encrypt ``token`` under the newest key (same plaintext).

        Raises:
            SecretKeyError: No configured key decrypts it.
        """
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            raise SecretKeyError(self._cannot_decrypt(what)) from None

    def is_current(self, token: str) -> bool:
        """True when ``token`` decrypts with the newest key alone."""
        try:
            self._primary.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeError):
            return False
        return True

    def _cannot_decrypt(self, what: str) -> str:
        return (
            f"Cannot decrypt {what}: it was encrypted with a key that is not among the {self.key_count} "
            f"configured in {self.source}. Restore the old key (after the new one) and run `bifrost secrets rotate`."
        )


def load_secret_box(secret_key: str | None, home: Path) -> SecretBox:
    """Build the box from ``BIFROST_SECRET_KEY`` when set, else from the key file (created if missing).

    Args:
        secret_key: The ``secret_key`` setting (``BIFROST_SECRET_KEY``).
        home: The platform home (``BIFROST_HOME``).

    Raises:
        SecretKeyError: Malformed or empty keys.
    """
    if secret_key and secret_key.strip():
        return SecretBox(parse_keys(secret_key, ENV_NAME), ENV_NAME)
    path = ensure_key_file(home)
    return SecretBox(parse_keys(path.read_text(encoding="ascii", errors="replace"), str(path)), str(path))


# One box per key source. A key file is re-read when it changes on disk, so a server picks up a key
# that `bifrost secrets rotate --new-key` put first while it was running.
_boxes: dict[tuple[str | None, str], tuple[tuple[int, int, int] | None, SecretBox]] = {}


def secret_box(secret_key: str | None, home: Path) -> SecretBox:
    """The process-wide :class:`SecretBox` for these settings (see :func:`load_secret_box`)."""
    cache_key = (secret_key, str(home))
    cached = _boxes.get(cache_key)
    uses_file = not (secret_key and secret_key.strip())
    stamp: tuple[int, int, int] | None = None
    if uses_file:
        try:
            info = key_file_path(home).stat()
            stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        except FileNotFoundError:
            stamp = None
    if cached is not None and cached[0] == stamp and (stamp is not None or not uses_file):
        return cached[1]
    box = load_secret_box(secret_key, home)
    if uses_file:
        info = key_file_path(home).stat()
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
    _boxes[cache_key] = (stamp, box)
    return box
