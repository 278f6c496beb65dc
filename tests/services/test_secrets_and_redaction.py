"""Key handling (``app.services.secrets``) and the redaction registry, without a server."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from app.services import redaction
from app.services.secrets import (
    SecretBox,
    SecretKeyError,
    ensure_key_file,
    load_secret_box,
    parse_keys,
    prepend_key_to_file,
    secret_box,
)


def test_keys_parse_from_commas_lines_and_comments() -> None:
    a, b, c = (Fernet.generate_key().decode() for _ in range(3))
    assert parse_keys(f" {a} ,{b}\n# old one:\n{c}\n\n", "test") == [a.encode(), b.encode(), c.encode()]
    with pytest.raises(SecretKeyError, match=r"BIFROST_SECRET_KEY: key #2 is not a valid Fernet key"):
        parse_keys(f"{a},nope", "BIFROST_SECRET_KEY")
    with pytest.raises(SecretKeyError, match="holds no key"):
        parse_keys(" , \n# nothing", "the key file")


def test_the_key_file_is_created_once_with_mode_0600_and_tightened(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = ensure_key_file(home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_text()
    Fernet(content.strip().encode())
    assert ensure_key_file(home).read_text() == content  # never replaced
    path.chmod(0o644)
    ensure_key_file(home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_environment_wins_and_no_key_file_is_written(tmp_path: Path) -> None:
    new, old = Fernet.generate_key(), Fernet.generate_key()
    box = load_secret_box(f"{new.decode()},{old.decode()}", tmp_path)
    assert box.source == "BIFROST_SECRET_KEY" and box.key_count == 2
    assert not (tmp_path / "secret.key").exists()
    token = box.encrypt("pässword")
    assert Fernet(new).decrypt(token.encode()).decode() == "pässword"  # the newest key encrypts
    written_with_old = Fernet(old).encrypt(b"legacy").decode()
    assert box.decrypt(written_with_old) == "legacy"  # every key decrypts
    assert not box.is_current(written_with_old)
    rotated = box.rotate(written_with_old)
    assert box.is_current(rotated) and Fernet(new).decrypt(rotated.encode()) == b"legacy"


def test_a_wrong_key_is_a_clear_error_naming_the_source() -> None:
    token = Fernet(Fernet.generate_key()).encrypt(b"x").decode()
    box = SecretBox([Fernet.generate_key()], "/srv/home/secret.key")
    with pytest.raises(SecretKeyError, match=r"Cannot decrypt secret 'api'.*1 configured in /srv/home/secret.key"):
        box.decrypt(token, "secret 'api'")
    with pytest.raises(SecretKeyError):
        box.rotate(token)
    with pytest.raises(SecretKeyError):
        box.decrypt("not a token at all")


def test_the_cached_box_follows_edits_of_the_key_file(tmp_path: Path) -> None:
    first = secret_box(None, tmp_path)
    token = first.encrypt("kept")
    assert secret_box(None, tmp_path) is first
    new_key = Fernet.generate_key().decode()
    path = prepend_key_to_file(tmp_path, new_key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = secret_box(None, tmp_path)
    assert second is not first and second.key_count == 2
    assert second.decrypt(token) == "kept"
    assert Fernet(new_key.encode()).decrypt(second.encrypt("n").encode()) == b"n"
    os.utime(path, ns=(1, 1))  # any change of the file is noticed, even one that keeps the size
    assert secret_box(None, tmp_path) is not second


def test_redaction_masks_every_value_longest_first_and_forgets() -> None:
    eid = "exec-redaction-unit"
    assert redaction.redact_text(eid, "nothing to hide") == "nothing to hide"
    redaction.remember(eid, "abc")
    redaction.remember(eid, "abcdef")
    redaction.remember(eid, "")  # ignored
    redaction.remember(None, "ignored outside an execution")
    assert redaction.active(eid) and not redaction.active("other")
    assert redaction.redact_text(eid, "abcdef abc xabcx a.c") == "*** *** x***x a.c"
    assert redaction.redact_text("other", "abc") == "abc"
    value = {"abc": ["abcdef", 1, None, {"k": "pre-abc"}], "n": 2.5}
    assert redaction.redact_json(eid, value) == {"***": ["***", 1, None, {"k": "pre-***"}], "n": 2.5}
    assert redaction.redact_text(eid, "a+b(c) [abc]") == "a+b(c) [***]"  # values are literal, not patterns
    redaction.forget(eid)
    assert not redaction.active(eid) and redaction.redact_text(eid, "abc") == "abc"


def test_regex_characters_in_secrets_are_literal() -> None:
    eid = "exec-redaction-regex"
    redaction.remember(eid, "p@ss.w*rd(1)")
    try:
        assert redaction.redact_text(eid, "pw=p@ss.w*rd(1); p@ssXwrd(1)") == "pw=***; p@ssXwrd(1)"
    finally:
        redaction.forget(eid)
