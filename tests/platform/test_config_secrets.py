"""Secrets on SQLite and Postgres: encrypted at rest, masked outside executions, redacted from execution output."""

from __future__ import annotations

import hashlib
import json
import stat

import pytest
from cryptography.fernet import Fernet, InvalidToken

from app.services import redaction
from tests.platform.config_support import cworld, key_file, raw_value, run
from tests.platform.conftest import World

__all__ = ["cworld"]  # the fixture, imported for pytest

MASK = "********"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_secret_is_encrypted_at_rest_with_the_key_file_and_masked_everywhere_but_executions(cworld: World) -> None:
    plaintext = "sk-live-alice-0123456789"
    with cworld.server.client(cworld.alice_key) as alice, cworld.server.client(cworld.admin_key) as admin:
        stored = alice.put("/api/config/crm_token", json={"value": plaintext, "is_secret": True, "description": "CRM"})
        assert stored.status_code == 200
        assert stored.json()["value"] == MASK and stored.json()["type"] == "secret" and stored.json()["masked"]
        assert plaintext not in stored.text

        # at rest: a Fernet token under the key file's key, never the plaintext
        raw = raw_value(cworld, "crm_token", cworld.org_a)
        assert plaintext not in raw and raw.startswith("gAAAA")
        path = key_file(cworld)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        keys = [line for line in path.read_text().splitlines() if line.strip()]
        assert Fernet(keys[0].encode()).decrypt(raw.encode()).decode() == plaintext

        # masked in every listing and read over the API, for users and admins alike
        for client, params in ((alice, {}), (admin, {"org_id": "Org A"})):
            assert client.get("/api/config", params=params).json()["crm_token"] == MASK
            one = client.get("/api/config/crm_token", params=params).json()
            assert one["value"] == MASK and one["masked"] is True and one["is_secret"] is True
            detail = client.get("/api/config", params={**params, "detail": "true"})
            assert plaintext not in detail.text
        assert alice.get("/api/sdk/v1/config/crm_token").json()["value"] == MASK

    # inside an execution: the plaintext (checked by digest, since the result itself is redacted)
    got = run(cworld, cworld.alice_key, "config_get", key="crm_token")["result"]
    assert got["sha256"] == sha256(plaintext) and got["type"] == "str" and got["value"] == "***"
    assert run(cworld, cworld.alice_key, "config_list")["result"]["crm_token"] == MASK


def _logs(world: World, api_key: str, execution_id: str) -> list[str]:
    with world.server.client(api_key) as client:
        return [line["message"] for line in client.get(f"/api/executions/{execution_id}/logs").json()]


def test_secrets_an_execution_read_are_redacted_from_its_logs_result_and_errors(cworld: World) -> None:
    secret = "hunter2-Secret-Value"
    with cworld.server.client(cworld.alice_key) as alice:
        alice.put("/api/config/leaky", json={"value": secret, "is_secret": True})

    returned = run(cworld, cworld.alice_key, "leak_secret", key="leaky")
    assert returned["status"] == "Completed"
    assert returned["result"] == {"secret": "***", "nested": ["prefix-***-suffix", 42], "***": "as a key"}
    logs = _logs(cworld, cworld.alice_key, returned["execution_id"])
    assert logs == ["the secret is ***", "printed: ***", "twice: *** and ***"]
    # what was stored (read back, not the waiter's copy) is redacted too
    with cworld.server.client(cworld.alice_key) as alice:
        stored = alice.get(f"/api/executions/{returned['execution_id']}")
        assert secret not in stored.text and stored.json()["result"]["secret"] == "***"

    user_error = run(cworld, cworld.alice_key, "leak_secret", key="leaky", how="user_error")
    assert user_error["status"] == "Failed" and user_error["error_message"] == "could not log in with ***"

    # an admin running it in Org A sees the full error and traceback: redacted as well
    crash = run(cworld, cworld.admin_key, "leak_secret", run_in_org="Org A", key="leaky", how="crash")
    assert crash["status"] == "Failed" and "crashed holding ***" in crash["error_message"]
    with cworld.server.client(cworld.admin_key) as admin:
        crash_view = admin.get(f"/api/executions/{crash['execution_id']}")
        assert "crashed holding ***" in crash_view.json()["traceback"]
        assert secret not in crash_view.text
    for execution in (returned, user_error, crash):
        assert secret not in json.dumps(_logs(cworld, cworld.admin_key, execution["execution_id"]))
        assert not redaction.active(execution["execution_id"])  # forgotten when it ended


def test_redaction_applies_to_the_live_stream(cworld: World) -> None:
    secret = "live-stream-secret-42"
    with cworld.server.client(cworld.alice_key) as alice:
        alice.put("/api/config/streamed", json={"value": secret, "is_secret": True})
        started = alice.post(
            "/api/workflows/leak_secret/execute", json={"params": {"key": "streamed", "pause": 1.0}}
        ).json()
        events: list[tuple[str, str]] = []
        with alice.stream("GET", f"/api/executions/{started['execution_id']}/stream") as stream:
            name = ""
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    events.append((name, line[5:]))
                    if json.loads(line[5:]).get("done"):
                        break
    log_events = [json.loads(data)["message"] for name, data in events if name == "log"]
    assert log_events == ["the secret is ***", "printed: ***", "twice: *** and ***"]
    assert all(secret not in data for _, data in events)


def test_a_secret_written_by_an_execution_is_redacted_from_it(cworld: World) -> None:
    secret = "written-in-a-run-77"
    execution = run(cworld, cworld.bob_key, "store_and_leak_secret", key="written", value=secret)
    assert execution["status"] == "Completed" and execution["result"] == "***"
    assert _logs(cworld, cworld.bob_key, execution["execution_id"]) == ["stored ***"]
    assert secret not in raw_value(cworld, "written", cworld.org_b)
    assert run(cworld, cworld.bob_key, "config_get", key="written")["result"]["sha256"] == sha256(secret)


def test_plain_values_are_not_redacted(cworld: World) -> None:
    """Only secrets are redacted: a plain value comes back as stored."""
    with cworld.server.client(cworld.alice_key) as alice:
        alice.put("/api/config/plain_echo", json={"value": "not-a-secret-text"})
    plain = run(cworld, cworld.alice_key, "config_get", key="plain_echo")
    assert plain["result"]["value"] == "not-a-secret-text"


def test_the_key_file_decrypts_and_a_foreign_key_does_not(cworld: World) -> None:
    with cworld.server.client(cworld.bob_key) as bob:
        bob.put("/api/config/bob_secret", json={"value": "bob-only", "is_secret": True})
    raw = raw_value(cworld, "bob_secret", cworld.org_b)
    with pytest.raises(InvalidToken):
        Fernet(Fernet.generate_key()).decrypt(raw.encode())
