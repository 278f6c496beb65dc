"""``bifrost secrets rotate`` re-encrypts the integrations' secrets too (client secret, config, tokens, PKCE)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken

from app.db import create_engine, session_factory, transaction, upgrade_database_async
from app.models import Organization
from app.models.base import utcnow
from app.models.integration import Integration, IntegrationConnection, IntegrationMapping, IntegrationOAuthState
from app.services.integrations.rotation import rotate_integration_secrets
from app.services.secrets import SecretBox, SecretKeyError

SCHEMA = [{"key": "api_key", "type": "string", "secret": True}, {"key": "region", "type": "string", "secret": False}]


async def _seed(url: str, box: SecretBox) -> None:
    engine = create_engine(url)
    async with transaction(session_factory(engine)) as session:
        org = Organization(name="Org A")
        session.add(org)
        integration = Integration(
            name="halo",
            oauth_flow="authorization_code",
            client_secret=box.encrypt("client-secret"),
            config_schema=SCHEMA,
            config_defaults={"api_key": box.encrypt("default-key"), "region": "eu"},
        )
        session.add(integration)
        await session.flush()
        mapping = IntegrationMapping(
            integration_id=integration.id, organization_id=org.id, config_values={"api_key": box.encrypt("org-key")}
        )
        session.add(mapping)
        await session.flush()
        session.add(
            IntegrationConnection(
                mapping_id=mapping.id, access_token=box.encrypt("access"), refresh_token=box.encrypt("refresh")
            )
        )
        session.add(
            IntegrationOAuthState(
                state_hash="0" * 64,
                mapping_id=mapping.id,
                user_id="u",
                code_verifier=box.encrypt("verifier"),
                redirect_uri="http://127.0.0.1/cb",
                expires_at=utcnow() + timedelta(minutes=5),
            )
        )
    await engine.dispose()


async def _stored(url: str) -> dict[str, str]:
    engine = create_engine(url)
    async with transaction(session_factory(engine)) as session:
        integration = (await session.execute(Integration.__table__.select())).one()  # type: ignore[attr-defined]
        mapping = (await session.execute(IntegrationMapping.__table__.select())).one()  # type: ignore[attr-defined]
        connection = (await session.execute(IntegrationConnection.__table__.select())).one()  # type: ignore[attr-defined]
        pending = (await session.execute(IntegrationOAuthState.__table__.select())).one()  # type: ignore[attr-defined]
    await engine.dispose()
    return {
        "client-secret": integration.client_secret,
        "default-key": integration.config_defaults["api_key"],
        "org-key": mapping.config_values["api_key"],
        "access": connection.access_token,
        "refresh": connection.refresh_token,
        "verifier": pending.code_verifier,
    }


async def test_every_integration_secret_moves_to_the_new_key(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'rotate.db'}"
    await upgrade_database_async(url)
    old, new = Fernet.generate_key(), Fernet.generate_key()
    await _seed(url, SecretBox([old], "test"))
    before = await _stored(url)

    # Without the key they were written with: a clear error naming them, and nothing changes.
    engine = create_engine(url)
    with pytest.raises(SecretKeyError, match="6 integration secret"):
        async with transaction(session_factory(engine)) as session:
            await rotate_integration_secrets(session, SecretBox([new], "test"))
    assert await _stored(url) == before

    async with transaction(session_factory(engine)) as session:
        report = await rotate_integration_secrets(session, SecretBox([new, old], "test"))
    await engine.dispose()
    assert (report.secrets, report.were_on_old_keys) == (6, 6)
    after = await _stored(url)
    for plaintext, token in after.items():
        assert Fernet(new).decrypt(token.encode()).decode() == plaintext
        with pytest.raises(InvalidToken):
            Fernet(old).decrypt(token.encode())
