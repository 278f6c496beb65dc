"""Run the platform and its HTTP server inside an existing event loop.

Used by ``bifrost run`` (embedded mode), the tests and the benchmarks: the
worker processes need a real HTTP address for the SDK API, so a server always
listens, on an ephemeral loopback port unless one is given.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from app.engine.platform import Platform
from app.services.chat.turns import recover_interrupted_turns
from app.settings import Settings
from app.web.app import create_app


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's forwarded-header options: believe ``X-Forwarded-*`` only from ``BIFROST_TRUSTED_PROXIES``.

    uvicorn trusts them from 127.0.0.1 by default, the address this server binds by default, so any
    local client could pick the address the rate limits see. With no trusted proxy the headers are ignored.
    """
    trusted = settings.trusted_proxies.strip()
    if not trusted:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": trusted}


@asynccontextmanager
async def running_server(
    settings: Settings, *, port: int = 0, recover: bool = False, watch: bool = False
) -> AsyncIterator[tuple[Platform, str]]:
    """Start platform + HTTP server; yield ``(platform, base_url)``; stop both on exit.

    Args:
        settings: Platform settings (``host`` is used; ``port`` is overridden by the argument).
        port: Port to listen on; 0 picks a free one.
        recover: Run start-up recovery of interrupted executions and chat turns.
        watch: Watch the workspace for edits.
    """
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP,
    # and without it Nagle + delayed ACK add ~40 ms to every response.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((settings.host, port))
    sock.listen(128)
    sock.setblocking(False)
    base_url = f"http://{settings.host}:{sock.getsockname()[1]}"
    platform = Platform(settings, sdk_url=base_url)
    await platform.start(recover=recover, watch=watch)
    if recover:
        await recover_interrupted_turns(platform.sessions)  # chat turns ran in the stopped process
    app = create_app(settings, platform, start_platform=False)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False, **proxy_options(settings))
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield platform, base_url
    finally:
        server.should_exit = True
        await task
        await platform.stop()
        sock.close()
