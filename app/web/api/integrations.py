"""The integrations API (filled in by its feature)."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

# Route handlers served under both /api and /api/sdk/v1 (SDK) unless the module says otherwise.
CONTROLLERS: list[ControllerRouterHandler] = []
