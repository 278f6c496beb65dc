"""The chat API (filled in below)."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

CHAT_CONTROLLERS: list[ControllerRouterHandler] = []
