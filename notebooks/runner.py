"""Trial runs: a workflow defined in the notebook runs in the kernel, as a real execution of the platform.

The platform writes the execution (trigger ``notebook``) and hands back a per-execution SDK token and
the execution context (user, organization). The function then runs here, bound to that context, so
``bifrost.context`` is the platform's and every SDK call (``config``, ``tables``, ``files``...) crosses
the SDK API with the user's permissions. Log records and printed lines show in the cell as they happen
and are shipped to the platform, which stores them with the outcome in its history.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from pydantic_core import PydanticSerializationError, to_jsonable_python

from bifrost import _client, _registry
from bifrost._context import PlatformConnection, bind_context
from bifrost._schema import validate_parameters
from bifrost.decorators import WorkflowDefinition
from bifrost.errors import NotAvailableError, PermissionDeniedError, UserError, ValidationError
from bifrost.types import ExecutionContext
from notebooks import session
from notebooks.display import run_result_html

SHIP_INTERVAL_SECONDS = 0.25
MAX_LOG_CHARS = 100_000
# Libraries whose chatter is not the workflow's log (the SDK's own HTTP calls, the kernel's machinery).
NOISY_LOGGERS = (
    "asyncio", "httpx", "httpcore", "hpack", "h2", "h11", "urllib3", "charset_normalizer", "parso", "jedi",
    "traitlets", "ipykernel", "IPython", "tornado", "comm", "matplotlib", "PIL", "concurrent", "filelock",
)  # fmt: skip


@dataclass
class RunResult:
    """How a notebook run ended. Displays as a table (lists of objects) or JSON, with its logs.

    Attributes:
        name: Workflow name.
        execution_id: The platform's execution id (see it in the history).
        status: ``Completed``, ``Failed`` or ``Cancelled``.
        result: The return value as stored (JSON-able).
        error_message: Why it failed.
        error_type: Exception class name, or ``TimeoutError`` / ``SerializationError``.
        traceback: Where it failed.
        duration_ms: Run time measured by the platform.
        logs: The log lines shipped to the platform.
    """

    name: str
    execution_id: str
    status: str
    result: Any = None
    error_message: str | None = None
    error_type: str | None = None
    traceback: str | None = None
    duration_ms: int | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the run completed."""
        return self.status == "Completed"

    def raise_for_status(self) -> RunResult:
        """Raise :class:`bifrost.errors.WorkflowError` unless the run completed; return self otherwise."""
        if not self.ok:
            from bifrost.errors import WorkflowError

            raise WorkflowError(f"{self.name} {self.status.lower()}: {self.error_message}")
        return self

    def _repr_html_(self) -> str:
        return run_result_html(self)

    def __repr__(self) -> str:
        if self.ok:
            return f"<{self.name}: Completed in {self.duration_ms} ms, execution {self.execution_id}> {self.result!r}"
        return f"<{self.name}: {self.status}, execution {self.execution_id}> {self.error_message}"


def resolve(workflow: str | Callable[..., Any], kind: str | None = None) -> WorkflowDefinition:
    """The definition of a workflow (or data provider) defined in this kernel, by name or function.

    Raises:
        ValidationError: Nothing of that name is defined in the notebook.
    """
    if callable(workflow):
        definition = getattr(workflow, "__bifrost_definition__", None)
        if definition is None:
            raise ValidationError(f"{workflow!r} is not decorated with @workflow or @data_provider")
        return definition  # type: ignore[no-any-return]
    kinds = (kind,) if kind else ("workflow", "data_provider")
    for candidate in kinds:
        found = _registry.get(workflow, candidate)
        if found is not None:
            return found
    known = ", ".join(sorted(d.name for d in _registry.definitions())) or "none yet"
    raise ValidationError(
        f"No @workflow or @data_provider named {workflow!r} is defined in this notebook (defined: {known}). "
        "Run the cell that defines it first."
    )


class _LogCollector(logging.Handler):
    """Collects log lines of the run, echoes them to the cell, and hands them to the shipper."""

    def __init__(self, echo: TextIO | None) -> None:
        super().__init__(logging.DEBUG)
        self.echo = echo
        self.lines: list[dict[str, Any]] = []
        self.pending: list[dict[str, Any]] = []
        self.lines_lock = threading.Lock()
        self.formatter_ = logging.Formatter()

    def add(self, level: str, logger: str, message: str, created: float | None = None) -> None:
        if len(message) > MAX_LOG_CHARS:
            message = f"{message[:MAX_LOG_CHARS]}… [truncated {len(message) - MAX_LOG_CHARS} characters]"
        stamp = datetime.fromtimestamp(created or time.time(), UTC)
        line = {"timestamp": stamp.isoformat(), "level": level, "logger": _clean(logger), "message": _clean(message)}
        with self.lines_lock:
            self.lines.append(line)
            self.pending.append(line)

    def take(self) -> list[dict[str, Any]]:
        with self.lines_lock:
            pending, self.pending = self.pending, []
        return pending

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in NOISY_LOGGERS and record.levelno < logging.WARNING:
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message = f"{message}\n{self.formatter_.formatException(record.exc_info)}"
            self.add(record.levelname, record.name, message, record.created)
            if self.echo is not None:
                stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
                self.echo.write(f"{stamp} {record.levelname:<7} {record.name}: {message}\n")
                self.echo.flush()
        except Exception:
            self.handleError(record)


class _Tee(io.TextIOBase):
    """Replaces ``sys.stdout`` / ``sys.stderr`` during a run: writes through and records each line."""

    def __init__(self, target: TextIO | None, collector: _LogCollector, logger: str, level: str) -> None:
        super().__init__()
        self.target = target  # None: record only (``echo=False`` hides printed output too)
        self.collector = collector
        self.logger = logger
        self.level = level
        self.partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.target is not None:
            self.target.write(text)
        *lines, self.partial = (self.partial + text).split("\n")
        for line in lines:
            self.collector.add(self.level, self.logger, line.removesuffix("\r"))
        return len(text)

    def flush(self) -> None:
        if self.target is not None:
            self.target.flush()

    def close_partial(self) -> None:
        if self.partial:
            self.collector.add(self.level, self.logger, self.partial)
            self.partial = ""


@contextlib.contextmanager
def _capture(collector: _LogCollector, echo: bool = True, stream: TextIO | None = None) -> Iterator[None]:
    root = logging.getLogger()
    previous_level = root.level
    noisy = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    root.addHandler(collector)
    root.setLevel(logging.DEBUG)  # like a worker: the workflow's INFO and DEBUG records are its log
    for name in NOISY_LOGGERS:
        if logging.getLogger(name).level < logging.WARNING:
            logging.getLogger(name).setLevel(logging.WARNING)
    out, err = sys.stdout, sys.stderr
    tee_out = _Tee((stream or out) if echo else None, collector, "stdout", "INFO")
    tee_err = _Tee((stream or err) if echo else None, collector, "stderr", "ERROR")
    sys.stdout, sys.stderr = tee_out, tee_err  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
        tee_out.close_partial()
        tee_err.close_partial()
        root.removeHandler(collector)
        root.setLevel(previous_level)
        for name, level in noisy.items():
            logging.getLogger(name).setLevel(level)


async def _ship(collector: _LogCollector, execution_id: str, stop: asyncio.Event) -> None:
    """Send collected lines every few hundred milliseconds until ``stop`` is set, then the rest."""
    client = session.current().client
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SHIP_INTERVAL_SECONDS)
        lines = collector.take()
        for start in range(0, len(lines), 1000):
            with contextlib.suppress(Exception):  # logs must never fail the run; the outcome is what counts
                await client.send_logs(execution_id, lines[start : start + 1000])
        if stop.is_set() and not collector.pending:
            return


def _clean(value: Any) -> Any:
    """A JSON-like value whose strings UTF-8 can encode (lone surrogates, e.g. from odd bytes, replaced)."""
    if isinstance(value, str):
        return value.encode("utf-8", errors="replace").decode("utf-8")
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _failed(error_type: str, message: str, *, user_error: bool = False, tb: str | None = None) -> dict[str, Any]:
    return {
        "status": "Failed",
        "error_type": error_type,
        "error_message": message,
        "user_error": user_error,
        "traceback": tb,
    }


def _format_traceback(exc: BaseException) -> str:
    frames = traceback.TracebackException.from_exception(exc)
    frames.stack = traceback.StackSummary.from_list([f for f in frames.stack if f.filename != __file__])
    return "".join(frames.format())


async def _call(definition: WorkflowDefinition, kwargs: dict[str, Any], timeout: float) -> dict[str, Any]:
    label = "data provider" if definition.kind == "data_provider" else "workflow"
    try:
        value = await asyncio.wait_for(definition.func(**kwargs), timeout)
    except TimeoutError:
        return _failed("TimeoutError", f"The {label} did not finish within {timeout:g} seconds", user_error=True)
    except (asyncio.CancelledError, KeyboardInterrupt):  # Kernel > Interrupt
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            task.uncancel()  # the run is over; reporting its end must still work
        return {
            "status": "Cancelled",
            "error_type": "Cancelled",
            "error_message": "Interrupted in the notebook",
            "user_error": True,
        }
    except UserError as exc:
        return _failed(type(exc).__name__, str(exc), user_error=True, tb=_format_traceback(exc))
    except (PermissionDeniedError, NotAvailableError) as exc:
        return _failed(type(exc).__name__, f"{type(exc).__name__}: {exc}", user_error=True, tb=_format_traceback(exc))
    except BaseException as exc:  # workflow code may raise anything, even SystemExit
        text = str(exc)
        return _failed(
            type(exc).__name__,
            f"{type(exc).__name__}: {text}" if text else type(exc).__name__,
            tb=_format_traceback(exc),
        )
    try:
        result = to_jsonable_python(value, inf_nan_mode="null")
    except (PydanticSerializationError, TypeError, ValueError) as exc:
        kind = f"{type(value).__module__}.{type(value).__qualname__}"
        return _failed(
            "SerializationError",
            f"The {label} returned a value of type {kind} that cannot be serialised to JSON: {exc}",
            user_error=True,
        )
    return {"status": "Completed", "result": result, "user_error": False}


async def run_workflow(
    workflow: str | Callable[..., Any],
    params: dict[str, Any] | None = None,
    *,
    org: str | None = None,
    kind: str | None = None,
    echo: bool = True,
    stream: TextIO | None = None,
) -> RunResult:
    """Run a workflow defined in the notebook as an execution of the connected platform.

    Args:
        workflow: Its name, or the decorated function.
        params: Parameter values (strings are coerced like a form's: ``"5"`` → 5).
        org: Organization to run in (platform admins only; default where the kernel acts).
        kind: ``workflow`` or ``data_provider`` when a name is ambiguous.
        echo: Show log lines and printed output in the cell as they arrive (False: only the result;
            the platform stores the lines either way).
        stream: Where to show them (default the cell's stdout; the widget form passes its output area).

    Returns:
        The outcome; the execution is in the platform's history with its logs.

    Raises:
        ValidationError: Unknown workflow, or bad parameters (one entry per field), before anything runs.
        ConfigurationError: Not connected.
    """
    connection = session.current()
    definition = resolve(workflow, kind)
    validated = validate_parameters(definition.params_model, params or {})
    started = await connection.client.start_run(
        definition.name,
        to_jsonable_python(params or {}),
        definition.params_schema,
        kind=definition.kind,
        org=org,
        timeout_seconds=definition.timeout_seconds,
    )
    execution_id = started["execution_id"]
    ctx = ExecutionContext.model_validate(started["context"])
    # The kernel reaches the SDK API where it reached the JSON API (the platform's own idea of its
    # public URL may not be reachable from here).
    sdk = PlatformConnection(connection.client.url, started["sdk_token"])
    collector = _LogCollector((stream or sys.stdout) if echo else None)
    stop = asyncio.Event()
    shipper = asyncio.ensure_future(_ship(collector, execution_id, stop))
    try:
        with _capture(collector, echo, stream), bind_context(ctx, sdk, process_wide=True):
            # Iterating the model keeps nested models and enum members as the function expects them.
            outcome = await _call(definition, dict(validated), float(definition.timeout_seconds))
    finally:
        stop.set()
        await shipper
    try:
        stored = await connection.client.finish_run(execution_id, _clean(outcome))
    except ValidationError:  # 409: the platform ended it first (its deadline passed); show what it stored
        stored = await connection.client.execution(execution_id)
    return RunResult(
        name=definition.name,
        execution_id=execution_id,
        status=stored["status"],
        result=stored.get("result"),
        error_message=outcome.get("error_message") or stored.get("error_message"),
        error_type=outcome.get("error_type"),
        traceback=outcome.get("traceback"),
        duration_ms=stored.get("duration_ms"),
        logs=collector.lines,
    )


def run_sync(make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine to completion from synchronous code (a line magic), even inside a running loop.

    ipykernel runs cells inside its event loop, so a magic cannot wait on it: the coroutine runs on a
    fresh loop in a helper thread while the cell waits. An interrupt (Kernel > Interrupt) cancels it.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_with_client_cleanup(make))
    loop = asyncio.new_event_loop()
    box: dict[str, Any] = {}
    task_ready = threading.Event()
    # Not Thread.join()/is_alive(): a KeyboardInterrupt inside join() can leave is_alive() False
    # while the thread still runs (CPython 3.11), so the end is signalled explicitly.
    finished = threading.Event()

    def target() -> None:
        asyncio.set_event_loop(loop)
        try:
            task = loop.create_task(_with_client_cleanup(make))
            box["task"] = task
            task_ready.set()
            box["value"] = loop.run_until_complete(task)
        except BaseException as exc:
            box["error"] = exc
        finally:
            task_ready.set()
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()
            finally:
                finished.set()

    thread = threading.Thread(target=target, name="bifrost-magic", daemon=True)
    thread.start()
    interrupted = False
    while not finished.is_set():
        try:
            finished.wait(0.05)
        except KeyboardInterrupt:
            interrupted = True
            task_ready.wait()
            if "task" in box:
                loop.call_soon_threadsafe(box["task"].cancel)
    if "value" in box:
        return box["value"]
    if interrupted and isinstance(box.get("error"), asyncio.CancelledError):
        raise KeyboardInterrupt
    raise box["error"]


async def _with_client_cleanup(make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    try:
        return await make()
    finally:
        # The SDK keeps one HTTP client per event loop; this loop ends with the magic.
        for client in _client._clients.pop(asyncio.get_running_loop(), {}).values():
            with contextlib.suppress(Exception):
                await client.aclose()
