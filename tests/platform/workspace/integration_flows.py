"""Workflows for the integration tests (copied into a temporary workspace)."""

import asyncio
import hashlib

import httpx

from bifrost import IntegrationError, integrations, workflow
from bifrost.errors import PermissionDeniedError


def _digest(value: object) -> str | None:
    # Tokens and secrets are redacted from results: tests compare their SHA-256 instead.
    return hashlib.sha256(value.encode()).hexdigest() if isinstance(value, str) else None


def _describe(data) -> dict:  # type: ignore[no-untyped-def]
    if data is None:
        return {"found": False}
    oauth = data.oauth
    return {
        "found": True,
        "integration_id": data.integration_id,
        "entity_id": data.entity_id,
        "entity_name": data.entity_name,
        "config": data.config,  # secret values come back redacted as ***
        "config_sha256": {k: _digest(v) for k, v in data.config.items()},
        "oauth": None
        if oauth is None
        else {
            "access_sha256": _digest(oauth.access_token),
            "refresh_sha256": _digest(oauth.refresh_token),
            "expires_at": oauth.expires_at,
            "token_type": oauth.token_type,
            "scopes": oauth.scopes,
        },
    }


@workflow
async def integration_get(name: str, org_id: str = "") -> dict:
    """Read an integration (optionally of another organization) and describe what came back."""
    try:
        return _describe(await integrations.get(name, org_id=org_id or None))
    except IntegrationError as exc:
        return {"error": "IntegrationError", "message": str(exc)}
    except PermissionDeniedError as exc:
        return {"error": "PermissionDeniedError", "message": str(exc)}


@workflow
async def integration_get_many(name: str, count: int = 8) -> dict:
    """Read the integration ``count`` times at once; report the distinct access tokens seen."""
    results = await asyncio.gather(*(integrations.get(name) for _ in range(count)), return_exceptions=True)
    errors = [type(r).__name__ for r in results if isinstance(r, BaseException)]
    tokens = {_digest(r.oauth.access_token) for r in results if not isinstance(r, BaseException) and r and r.oauth}
    return {"distinct_tokens": len(tokens), "errors": errors}


@workflow
async def integration_call_api(name: str) -> dict:
    """Use the access token against the provider's protected resource, as a real workflow would."""
    data = await integrations.get(name)
    if not data or not data.oauth:
        raise ValueError("Integration not configured")
    base_url = data.config.get("api_base")
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"{base_url}/api/me", headers={"Authorization": f"Bearer {data.oauth.access_token}"}
        )
    return {"status": response.status_code, "body": response.json()}


@workflow
async def integration_print_secret(name: str) -> str:
    """Print a secret and the access token (the platform must redact both from logs and the result)."""
    data = await integrations.get(name)
    assert data is not None and data.oauth is not None
    print("secret is", data.config.get("api_secret"), "token is", data.oauth.access_token)
    return f"{data.config.get('api_secret')}|{data.oauth.access_token}"
