"""Passwords are hashed with argon2id at the product's parameters (tests/conftest.py lowers them in-process)."""

from __future__ import annotations

import subprocess
import sys

from app.services.identity.security import hash_password, verify_password


def test_the_product_hashes_with_argon2id_at_the_rfc_9106_parameters() -> None:
    # A fresh interpreter: the product's module as `bifrost serve` imports it, without the test suite's swap.
    code = "from app.services.identity.security import hash_password; print(hash_password('correct horse'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("$argon2id$v=19$m=65536,t=3,p=4$"), out.stdout
    # A hash made at those parameters verifies here too (the parameters travel inside the hash).
    assert verify_password(out.stdout.strip(), "correct horse")
    assert not verify_password(out.stdout.strip(), "correct horsE")


def test_a_wrong_or_missing_hash_never_verifies() -> None:
    hashed = hash_password("s3cret-pass")
    assert hashed.startswith("$argon2id$") and "s3cret-pass" not in hashed
    assert verify_password(hashed, "s3cret-pass")
    assert not verify_password(hashed, "s3cret-pasS")
    assert not verify_password(None, "s3cret-pass")
    assert not verify_password("not-a-hash", "s3cret-pass")
