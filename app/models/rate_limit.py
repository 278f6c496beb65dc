"""Rate-limit counters shared by several servers (``BIFROST_RATE_LIMITS=database``)."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class RateLimitHit(SQLModel, table=True):
    """Calls of one key (``<limit>:<address or user>``) in its current one-minute window.

    One row per key, reset when a new window starts; rows of windows long past are deleted now and then.
    """

    __tablename__ = "rate_limit_hit"

    key: str = Field(primary_key=True, max_length=300)
    window_start: int = Field(description="The window's minute since the epoch (wall clock, the same on every server)")
    count: int = Field(default=0)
