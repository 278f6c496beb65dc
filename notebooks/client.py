"""The kernel's HTTP client for the platform's JSON API (``/api``), authenticated with the user's API key.

SDK calls made by workflow code go through ``bifrost._client`` as usual; this client covers what only
a notebook needs: who am I, start / log to / finish a notebook run, run a platform workflow and follow its
logs, publish, the workflow catalogue.
Errors become the SDK's typed exceptions (``bifrost.errors``), with the platform's message.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from bifrost._client import raise_for_response, segment
from bifrost.errors import WorkflowError

API_PREFIX = "/api"


@dataclass(frozen=True)
class PlatformClient:
    """Where the platform is and how this kernel authenticates.

    Attributes:
        url: Base URL of the platform, e.g. ``http://127.0.0.1:8000``.
        api_key: An API key (``bfk_...``) of the user the notebook acts as.
        org: Organization id or name to act in (platform admins only).
    """

    url: str
    api_key: str | None = None
    org: str | None = None

    def headers(self) -> dict[str, str]:
        """Authentication headers of every request."""
        headers: dict[str, str] = {}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.org:
            headers["X-Bifrost-Org"] = self.org
        return headers

    def _client(self, timeout: float = 60.0) -> httpx.AsyncClient:
        # A client per call: magics run their coroutine on a fresh event loop each time, and an
        # httpx client must not outlive its loop.
        return httpx.AsyncClient(base_url=self.url, headers=self.headers(), timeout=httpx.Timeout(timeout, connect=10))

    async def call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """Send one JSON API request; return the decoded body or raise the typed SDK error.

        Args:
            method: HTTP method.
            path: Path below ``/api`` (starting with ``/``).
            json: JSON body.
            params: Query parameters.
        """
        async with self._client() as client:
            try:
                response = await client.request(method, API_PREFIX + path, json=json, params=params)
            except httpx.TransportError as exc:
                raise WorkflowError(f"cannot reach the platform at {self.url}: {exc}") from exc
        raise_for_response(response)
        return response.json() if response.content else None

    # ----- identity and catalogue ---------------------------------------------------------------------
    async def me(self) -> dict[str, Any]:
        """The caller as ``bifrost.context`` fields (``execution_id`` empty)."""
        return await self.call("GET", "/notebook-runs/context")  # type: ignore[no-any-return]

    async def workflows(self) -> list[dict[str, Any]]:
        """The platform's workflows visible to the caller."""
        return await self.call("GET", "/workflows")  # type: ignore[no-any-return]

    async def execution(self, execution_id: str) -> dict[str, Any]:
        """One execution as the API shows it."""
        return await self.call("GET", f"/executions/{segment(execution_id)}")  # type: ignore[no-any-return]

    async def execution_logs(self, execution_id: str) -> list[dict[str, Any]]:
        """Stored log lines of an execution (all of them: the API answers a page at a time)."""
        lines: list[dict[str, Any]] = []
        while True:
            after = lines[-1]["seq"] if lines else -1
            page = await self.call("GET", f"/executions/{segment(execution_id)}/logs", params={"after": after})
            if not page:
                return lines
            lines.extend(page)

    async def execute(self, name: str, params: dict[str, Any], org: str | None = None) -> dict[str, Any]:
        """Submit a workflow of the platform (the one submit path); answers its execution id and status."""
        body = {"params": params, "org": org}
        return await self.call("POST", f"/workflows/{segment(name)}/execute", json=body)  # type: ignore[no-any-return]

    async def cancel(self, execution_id: str) -> None:
        """Cancel a queued or running execution."""
        await self.call("POST", f"/executions/{segment(execution_id)}/cancel")

    async def stream(self, execution_id: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The execution's server-sent events as ``(event, data)``: stored and live ``log`` lines, then
        ``status`` events; ends after the one with ``done``."""
        timeout = httpx.Timeout(60.0, connect=10, read=None)  # the server sends keep-alives while it runs
        async with httpx.AsyncClient(base_url=self.url, headers=self.headers(), timeout=timeout) as client:
            path = f"{API_PREFIX}/executions/{segment(execution_id)}/stream"
            try:
                async with client.stream("GET", path) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise_for_response(response)
                    event, data = "message", ""
                    async for line in response.aiter_lines():
                        if line.startswith("event:"):
                            event = line[len("event:") :].strip()
                        elif line.startswith("data:"):
                            data += line[len("data:") :].strip()
                        elif not line and data:
                            payload = json.loads(data)
                            yield event, payload
                            if event == "status" and payload.get("done"):
                                return
                            event, data = "message", ""
            except httpx.TransportError as exc:
                raise WorkflowError(f"cannot reach the platform at {self.url}: {exc}") from exc

    # ----- notebook runs -------------------------------------------------------------------------------
    async def start_run(
        self,
        name: str,
        params: dict[str, Any],
        params_schema: dict[str, Any],
        *,
        kind: str = "workflow",
        org: str | None = None,
        timeout_seconds: int = 1800,
    ) -> dict[str, Any]:
        """Ask the platform for a RUNNING execution; returns it with ``sdk_token`` and ``context``."""
        body = {
            "name": name,
            "params": params,
            "params_schema": params_schema,
            "kind": kind,
            "org": org,
            "timeout_seconds": timeout_seconds,
        }
        return await self.call("POST", "/notebook-runs", json=body)  # type: ignore[no-any-return]

    async def send_logs(self, execution_id: str, lines: list[dict[str, Any]]) -> None:
        """Append log lines to a running notebook run."""
        await self.call("POST", f"/notebook-runs/{segment(execution_id)}/logs", json={"lines": lines})

    async def finish_run(self, execution_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
        """Record how a notebook run ended; returns the stored execution."""
        return await self.call(  # type: ignore[no-any-return]
            "POST", f"/notebook-runs/{segment(execution_id)}/finish", json=outcome
        )

    # ----- publishing ------------------------------------------------------------------------------------
    async def publish(
        self, name: str, source: str, *, file: str | None = None, kind: str = "workflow", force: bool = False
    ) -> dict[str, Any]:
        """Write a module into the platform's workspace (platform admins)."""
        body = {"name": name, "source": source, "file": file, "kind": kind, "force": force}
        return await self.call("POST", "/publish", json=body)  # type: ignore[no-any-return]
