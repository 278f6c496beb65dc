"""``bifrost secrets`` and key handling end to end: key file, rotation with MultiFernet, wrong and malformed keys."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken

from tests.conftest import LiveServer, make_settings
from tests.platform.config_support import key_file, raw_value, run
from tests.platform.conftest import World, seed

BIFROST = [sys.executable, "-m", "app.cli"]


def cli(home: Path, database_url: str, *args: str, secret_key: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``bifrost`` like an operator on the server's machine (same home and database)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_") or k == "BIFROST_TEST_POSTGRES_URL"}
    env.update({"BIFROST_HOME": str(home), "BIFROST_DATABASE_URL": database_url})
    if secret_key is not None:
        env["BIFROST_SECRET_KEY"] = secret_key
    return subprocess.run([*BIFROST, *args], env=env, capture_output=True, text=True, timeout=120)


def keys_in(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def write_keys(path: Path, *keys: str) -> None:
    path.write_text("".join(k + "\n" for k in keys))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@contextmanager
def server_with_secrets(database_url: str, tmp_path: Path) -> Iterator[tuple[World, Path, str]]:
    """A live server with a secret in Org A (``s_org``), a global one (``s_glob``) and a plain value."""
    settings = make_settings(tmp_path, database_url)
    server = LiveServer(settings).start()
    try:
        world = World(server=server, **server.call(lambda: seed(server.platform)))
        with server.client(world.alice_key) as alice, server.client(world.admin_key) as admin:
            assert alice.put("/api/config/s_org", json={"value": "org-secret", "is_secret": True}).status_code == 200
            assert (
                admin.put("/api/config/s_glob", json={"value": "global-secret", "is_secret": True}).status_code == 200
            )
            alice.put("/api/config/plain", json={"value": "still readable"})
        yield world, settings.home, settings.resolved_database_url
    finally:
        server.stop()


# Several `bifrost` subprocesses per test: on a busy machine each can take seconds to start.
@pytest.mark.timeout(360)
def test_rotation_re_encrypts_every_secret_under_a_new_key(database_url: str, tmp_path: Path) -> None:
    with server_with_secrets(database_url, tmp_path) as (world, home, url):
        path = key_file(world)
        [old_key] = keys_in(path)
        before = {"s_org": raw_value(world, "s_org", world.org_a), "s_glob": raw_value(world, "s_glob", None)}

        # a new key goes first in the key file and every secret is re-encrypted under it
        rotated = cli(home, url, "secrets", "rotate", "--new-key")
        assert rotated.returncode == 0, rotated.stderr
        assert "Re-encrypted 2 secret(s)" in rotated.stdout and "(2 were under an older key)" in rotated.stdout
        assert "you may remove the other 1 key(s)" in rotated.stdout
        new_key, kept_old = keys_in(path)
        assert kept_old == old_key and new_key != old_key
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        for name, plaintext, org in (("s_org", "org-secret", world.org_a), ("s_glob", "global-secret", None)):
            after = raw_value(world, name, org)
            assert after != before[name]
            assert Fernet(new_key.encode()).decrypt(after.encode()).decode() == plaintext
            with pytest.raises(InvalidToken):
                Fernet(old_key.encode()).decrypt(after.encode())

        # the old key can go: the running server re-reads the key file and still decrypts
        write_keys(path, new_key)
        got = run(world, world.alice_key, "config_get", key="s_org")
        assert got["status"] == "Completed" and got["result"]["sha256"] == sha256("org-secret")
        again = cli(home, url, "secrets", "rotate")
        assert again.returncode == 0 and "(0 were under an older key)" in again.stdout


@pytest.mark.timeout(360)
def test_a_wrong_key_is_a_clear_error_and_environment_keys_rotate(database_url: str, tmp_path: Path) -> None:
    with server_with_secrets(database_url, tmp_path) as (world, home, url):
        path = key_file(world)
        [file_key] = keys_in(path)
        current = raw_value(world, "s_org", world.org_a)

        # a wrong key: a clear error, not a crash; nothing is rewritten; plain values keep working
        write_keys(path, Fernet.generate_key().decode())
        failed = run(world, world.admin_key, "config_get", run_in_org="Org A", key="s_org")
        assert failed["status"] == "Failed" and failed["error_type"] == "ConfigurationError"
        assert "Secrets are unavailable" in failed["error_message"]
        assert run(world, world.alice_key, "config_get", key="plain")["result"]["value"] == "still readable"
        with world.server.client(world.alice_key) as alice:
            masked = alice.get("/api/config/s_org")  # listing and masked reads need no key
            assert masked.status_code == 200 and masked.json()["value"] == "********"
        refused = cli(home, url, "secrets", "rotate")
        assert refused.returncode == 1
        assert "2 secret(s) cannot be decrypted" in refused.stderr and "Nothing was changed" in refused.stderr
        assert "s_org" in refused.stderr and "s_glob (global)" in refused.stderr
        assert raw_value(world, "s_org", world.org_a) == current

        # keys from BIFROST_SECRET_KEY (newest first, comma-separated) rotate the same way
        env_key = Fernet.generate_key().decode()
        from_env = cli(home, url, "secrets", "rotate", secret_key=f"{env_key}, {file_key}")
        assert from_env.returncode == 0, from_env.stderr
        assert "BIFROST_SECRET_KEY" in from_env.stdout and "(2 were under an older key)" in from_env.stdout
        assert Fernet(env_key.encode()).decrypt(raw_value(world, "s_org", world.org_a).encode()) == b"org-secret"
        no_new = cli(home, url, "secrets", "rotate", "--new-key", secret_key=env_key)
        assert no_new.returncode == 2 and "BIFROST_SECRET_KEY" in no_new.stderr
        malformed = cli(home, url, "secrets", "rotate", secret_key="not-a-fernet-key")
        assert malformed.returncode == 1 and "key #1 is not a valid Fernet key" in malformed.stderr


def test_generate_key_prints_a_usable_key(tmp_path: Path) -> None:
    result = cli(tmp_path / "home", f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}", "secrets", "generate-key")
    assert result.returncode == 0
    key = result.stdout.strip()
    assert Fernet(key.encode()).decrypt(Fernet(key.encode()).encrypt(b"x")) == b"x"
    assert not (tmp_path / "home" / "secret.key").exists()  # printing a key touches nothing


@pytest.mark.timeout(360)
def test_init_creates_the_key_file_with_mode_0600_once(tmp_path: Path) -> None:
    home, url = tmp_path / "home", f"sqlite+aiosqlite:///{tmp_path / 'bifrost.db'}"
    first = cli(home, url, "init")
    assert first.returncode == 0, first.stderr
    path = home / "secret.key"
    assert f"Secret key file: {path}" in first.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [key] = keys_in(path)
    Fernet(key.encode())
    assert cli(home, url, "init").returncode == 0
    assert keys_in(path) == [key]  # never replaced
    with_env = cli(tmp_path / "other", f"sqlite+aiosqlite:///{tmp_path / 'other.db'}", "init", secret_key=key)
    assert with_env.returncode == 0 and "Secret key file" not in with_env.stdout
    assert not (tmp_path / "other" / "secret.key").exists()  # the key lives in the environment only
