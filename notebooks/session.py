"""The kernel's connection to a platform (one per kernel), made by ``%bifrost connect``."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

import bifrost
from bifrost._context import set_process_context
from bifrost.errors import ConfigurationError
from bifrost.types import ExecutionContext
from notebooks.client import PlatformClient
from notebooks.embedded import EmbeddedPlatform, start_embedded


@dataclass
class Connection:
    """A connected platform.

    Attributes:
        client: How the kernel reaches the JSON API.
        identity: The caller as ``bifrost.context`` fields.
        embedded: The embedded platform, when the kernel started one.
    """

    client: PlatformClient
    identity: dict[str, Any]
    embedded: EmbeddedPlatform | None = None

    def describe(self) -> str:
        """One line saying where and as whom the kernel is connected."""
        where = f"embedded platform at {self.client.url}" if self.embedded else self.client.url
        org = self.identity.get("org_name") or "global scope"
        admin = ", platform admin" if self.identity.get("is_platform_admin") else ""
        return f"Connected to {where} as {self.identity.get('email')} ({org}{admin})"


_current: Connection | None = None


def current() -> Connection:
    """The kernel's connection.

    Raises:
        ConfigurationError: When ``%bifrost connect`` has not run.
    """
    if _current is None:
        raise ConfigurationError("The notebook is not connected to a platform: run `%bifrost connect [URL]` first.")
    return _current


def is_connected() -> bool:
    """True after a successful connect."""
    return _current is not None


async def connect(url: str | None = None, api_key: str | None = None, org: str | None = None) -> Connection:
    """Connect the kernel to a platform, or start an embedded one when no URL is known.

    Args:
        url: Base URL; default ``BIFROST_URL``; neither starts an embedded platform.
        api_key: API key; default ``BIFROST_API_KEY``.
        org: Organization to act in (platform admins); default ``BIFROST_ORG``.

    Returns:
        The connection, also installed kernel-wide: SDK calls in any cell reach this platform, and
        ``bifrost.context`` shows the connected user and organization between runs.
    """
    global _current
    url = url or os.environ.get("BIFROST_URL")
    api_key = api_key or os.environ.get("BIFROST_API_KEY")
    org = org or os.environ.get("BIFROST_ORG")
    embedded = None
    if not url:
        running = _current.embedded if _current is not None else None
        # Connecting again keeps the embedded platform (and what was published to it) alive.
        embedded = running if running is not None else await asyncio.to_thread(start_embedded)
        url, api_key = embedded.url, embedded.api_key
    client = PlatformClient(url.rstrip("/"), api_key, org)
    try:
        identity = await client.me()
    except BaseException:
        if embedded is not None and (_current is None or embedded is not _current.embedded):
            embedded.stop()
        raise
    disconnect(keep=embedded)
    bifrost.configure(client.url, api_key=api_key, org=org)
    # Kernel-wide, not a ContextVar: ipykernel may run each cell in a fresh contextvars.Context.
    set_process_context(ExecutionContext.model_validate(identity))
    _current = Connection(client, identity, embedded)
    return _current


def disconnect(keep: EmbeddedPlatform | None = None) -> None:
    """Forget the connection and stop its embedded platform (unless it is ``keep``)."""
    global _current
    previous, _current = _current, None
    set_process_context(None)
    if previous is not None and previous.embedded is not None and previous.embedded is not keep:
        previous.embedded.stop()
