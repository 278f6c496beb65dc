"""HTTP endpoint workflows used by the trigger tests and bench/endpoints.py.

None declares a schedule: every test server loads this workspace, and a schedule here would fire in
all of them. Schedule tests write their scheduled workflows into their own workspace copy. Nothing
here fails on valid input (the API fuzz test calls every endpoint in the OpenAPI document).
"""

from datetime import date

from pydantic import BaseModel

from bifrost import context, workflow


class Place(BaseModel):
    city: str
    zip_code: str | None = None


def _who() -> dict:
    return {
        "user_id": context.user_id,
        "email": context.email,
        "name": context.name,
        "org_id": context.org_id,
        "scope": context.scope,
        "is_platform_admin": context.is_platform_admin,
        "is_function_key": context.is_function_key,
    }


@workflow(endpoint_enabled=True)
async def endpoint_noop() -> None:
    """Does nothing, synchronously over HTTP (benchmarks)."""


@workflow(endpoint_enabled=True, allowed_methods=["GET", "POST", "PUT", "PATCH"])
async def endpoint_echo(name: str, count: int = 1, tags: list[str] | None = None, excited: bool = False) -> dict:
    """Echo the parameters back.

    Args:
        name: Who to greet.
        count: How many times.
        tags: Labels.
        excited: Add an exclamation mark.
    """
    return {"name": name, "count": count, "tags": tags or [], "excited": excited}


@workflow(endpoint_enabled=True, allowed_methods=["POST"])
async def endpoint_place(place: Place, day: date) -> dict:
    """Take a nested model and a date."""
    return {"city": place.city, "zip_code": place.zip_code, "day": day.isoformat()}


@workflow(endpoint_enabled=True, execution_mode="async", allowed_methods=["POST", "DELETE"])
async def endpoint_async(value: int = 0) -> dict:
    """Always answers 202 at once (async execution mode)."""
    return {"value": value}


@workflow(endpoint_enabled=True, execution_mode="sync")
async def endpoint_strict_sync() -> str:
    """Always waits for the result (sync execution mode), even when asked to respond async."""
    return "done"


@workflow(endpoint_enabled=True, allowed_methods=["GET", "POST"])
async def endpoint_whoami() -> dict:
    """Who the endpoint call runs as."""
    return _who()


@workflow(endpoint_enabled=True, public_endpoint=True, allowed_methods=["GET", "POST"])
async def endpoint_public(message: str = "hello") -> dict:
    """A public endpoint: no API key needed."""
    return {"message": message, "context": _who()}
