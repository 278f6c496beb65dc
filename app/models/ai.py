"""ai models (filled in by its feature)."""

from __future__ import annotations
