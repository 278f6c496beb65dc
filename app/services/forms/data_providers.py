"""Options of data providers for form fields, cached per provider, organization and inputs.

A data provider is a workspace function that returns ``[{"label", "value", "metadata"?}]``.
Running one is an execution like any other (it goes through the one submit path, so
permission, organization and parameter checks apply), which costs a worker round trip: forms
therefore keep each provider's options for its ``cache_ttl_seconds``, per acting organization
and per (validated) inputs. Concurrent requests for the same missing entry share one run.

The service does not run anything itself: services never import the engine, and a run needs
its own transactions (submit, then wait with no transaction open, then read the outcome), so
the caller passes a :data:`ProviderRunner` (the web layer's, in ``app.web.pages.providers``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Workflow
from app.services import cluster
from app.services.actor import Actor
from app.services.errors import DomainError, InvalidInputError
from app.services.executions.service import params_model
from app.services.workflows.catalogue import WorkflowService
from bifrost._schema import validate_parameters
from bifrost.errors import ValidationError

MAX_ENTRIES = 5_000
MAX_OPTIONS = 5_000
MAX_LABEL_LENGTH = 500


class DataProviderError(DomainError):
    """A data provider failed or returned something that is not a list of options."""


@dataclass(frozen=True)
class Option:
    """One choice of a select filled by a data provider."""

    label: str
    value: Any
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class ProviderOutcome:
    """How a provider run ended: ``status`` is an execution status; ``error`` is safe to show."""

    status: str
    result: Any = None
    error: str | None = None


ProviderRunner = Callable[[Workflow, dict[str, Any]], Awaitable[ProviderOutcome]]
"""Runs a data provider with validated inputs and waits for its outcome."""


def parse_options(result: Any) -> list[Option]:
    """Check a provider's result and turn it into options.

    Args:
        result: What the provider returned (JSON).

    Returns:
        The options, in the provider's order.

    Raises:
        DataProviderError: naming what is wrong with the result.
    """
    if not isinstance(result, list):
        raise DataProviderError(
            f'returned {type(result).__name__}, expected a list of {{"label": ..., "value": ...}} objects'
        )
    if len(result) > MAX_OPTIONS:
        raise DataProviderError(f"returned {len(result)} options; at most {MAX_OPTIONS} fit in a form field")
    options = []
    for index, item in enumerate(result):
        if not isinstance(item, dict) or "value" not in item:
            raise DataProviderError(f'item {index} is not an object with a "value" (and a "label")')
        value = item["value"]
        if not isinstance(value, (str, int, float, bool)):
            raise DataProviderError(f"item {index}: value must be text, a number or a boolean")
        label = item.get("label")
        label = str(value) if label is None else str(label)[:MAX_LABEL_LENGTH]
        metadata = item.get("metadata")
        options.append(Option(label=label, value=value, metadata=metadata if isinstance(metadata, dict) else None))
    return options


class _Cache:
    """Expiring entries plus the runs in flight, per process."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, ...], tuple[float, list[Option]]] = {}
        self.inflight: dict[tuple[str, ...], asyncio.Future[list[Option]]] = {}

    def get(self, key: tuple[str, ...]) -> list[Option] | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            self.entries.pop(key, None)
            return None
        return entry[1]

    def put(self, key: tuple[str, ...], options: list[Option], ttl: float) -> None:
        if ttl <= 0:
            return
        if len(self.entries) >= MAX_ENTRIES:
            now = time.monotonic()
            for stale in [k for k, (expires, _) in self.entries.items() if expires <= now]:
                del self.entries[stale]
            while len(self.entries) >= MAX_ENTRIES:  # still full: drop the oldest insertions
                del self.entries[next(iter(self.entries))]
        self.entries[key] = (time.monotonic() + ttl, options)

    def clear(self) -> None:
        self.entries.clear()


_cache = _Cache()


def forget_cached() -> None:
    """Drop every cached option list (tests; and after a workspace sync or policy change, on every server)."""
    _cache.clear()


# A sync or policy change on any server: a provider's code or who may run it changed, so its cached options go.
cluster.register("workflows", forget_cached)


class DataProviderService:
    """Find the data providers an actor may use."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def provider(self, actor: Actor, name: str) -> Workflow:
        """The active data provider ``name`` visible to the actor.

        Raises:
            NotFoundError: No such provider in the actor's scope.
        """
        return await WorkflowService(self.session).get(actor, name, kind="data_provider")


def validated_inputs(provider: Workflow, inputs: dict[str, Any]) -> dict[str, Any]:
    """``inputs`` validated by the provider's own parameter model (as the submit path does).

    Raises:
        InvalidInputError: One entry per bad or missing input.
    """
    try:
        return validate_parameters(params_model(provider), inputs).model_dump(mode="json")
    except ValidationError as exc:
        raise InvalidInputError(str(exc), exc.errors) from None


def cache_key(provider: Workflow, actor: Actor, inputs: dict[str, Any]) -> tuple[str, ...]:
    """Entries are per provider version, acting organization and inputs (never shared across orgs)."""
    return (
        provider.id,
        provider.updated_at.isoformat(),
        actor.acting_org_id or "GLOBAL",
        json.dumps(inputs, sort_keys=True, separators=(",", ":")),
    )


def cached_options(provider: Workflow, actor: Actor, inputs: dict[str, Any]) -> list[Option] | None:
    """The cached options for already validated ``inputs``, or None (never runs anything)."""
    return _cache.get(cache_key(provider, actor, inputs))


async def provider_options(
    actor: Actor, provider: Workflow, inputs: dict[str, Any], run: ProviderRunner
) -> list[Option]:
    """Options of ``provider`` for ``inputs``: from the cache, else from one (shared) run.

    Args:
        actor: Who asks (the run acts as them, in their acting organization).
        provider: A provider row from :meth:`DataProviderService.provider`.
        inputs: Raw inputs (other fields' values); validated here.
        run: Runs the provider and waits for its outcome.

    Raises:
        InvalidInputError: The inputs do not fit the provider's parameters.
        DataProviderError: The run failed or returned no valid options (never cached).
    """
    clean = validated_inputs(provider, inputs)
    key = cache_key(provider, actor, clean)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    pending = _cache.inflight.get(key)
    if pending is not None:
        # Someone is already running it for this organization and these inputs: share that run.
        try:
            return await asyncio.shield(pending)
        except asyncio.CancelledError:
            if pending.cancelled():  # the request that ran it went away, not this one
                raise DataProviderError("the data provider run was interrupted; try again") from None
            raise
    future: asyncio.Future[list[Option]] = asyncio.get_running_loop().create_future()
    _cache.inflight[key] = future
    try:
        outcome = await run(provider, clean)
        if outcome.status != "Completed":
            raise DataProviderError(outcome.error or f"the data provider ended {outcome.status}")
        options = parse_options(outcome.result)
        _cache.put(key, options, provider.cache_ttl_seconds)
        future.set_result(options)
        return options
    except asyncio.CancelledError:
        future.cancel()
        raise
    except Exception as exc:
        future.set_exception(exc)
        future.exception()  # mark retrieved: nobody else may be waiting
        raise
    finally:
        _cache.inflight.pop(key, None)
