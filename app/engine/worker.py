"""Worker process: imports the workspace once, then runs jobs one at a time.

Started by :class:`app.engine.pool.WorkerPool` as
``python -m app.engine.worker --workspace PATH``; ``--scan`` imports the
workspace, prints the :class:`~app.engine.protocol.ScanResult` JSON and exits.

Imports only the stdlib, ``bifrost`` (and what it needs: pydantic, httpx) and
the workspace: workers hold no database credentials and never load the
platform's database or web layers.

I/O layout, so that workflow code cannot corrupt the protocol:

* the protocol uses private duplicates of the original stdin/stdout; fd 0
  becomes ``/dev/null`` so ``input()`` or a child process cannot eat jobs;
* fd 1 and fd 2 become pipes read by a thread, so output of child processes
  and C extensions is captured too; ``sys.stdout`` / ``sys.stderr`` are line
  captures that send each line at once, stamped with the running execution;
* the original stderr is kept for the worker's own diagnostics (fatal-error
  tracebacks), which the pool reads to explain why a worker died.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import contextvars
import faulthandler
import io
import logging
import os
import resource
import select
import signal
import sys
import threading
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from app.engine import procs
from app.engine.protocol import (
    MEMORY_LIMIT_EXCEEDED,
    STATUS_COMPLETED,
    STATUS_FAILED,
    Job,
    JobResult,
    decode_message,
    encode_message,
    utcnow,
)
from app.engine.workspace_loader import get_definition, load_workspace
from bifrost._context import PlatformConnection, bind_context
from bifrost._schema import validate_parameters
from bifrost.errors import NotAvailableError, PermissionDeniedError, UserError, ValidationError
from bifrost.types import ExecutionContext

MAX_LOG_CHARS = 100_000
"""Longer log lines are truncated (a printed blob must not flood the log store)."""
MAX_RESULT_BYTES = 32 * 1024 * 1024
"""Larger results end the execution FAILED instead of being stored."""
IMPORT_TIMEOUT_SECONDS = 30.0
"""One workspace file that takes longer to import is reported as broken (``--import-timeout``)."""
NOISY_LOGGERS = (
    "asyncio", "httpx", "httpcore", "hpack", "h2", "h11", "urllib3", "charset_normalizer",
    "botocore", "boto3", "s3transfer", "openai", "anthropic", "filelock", "multipart",
)  # fmt: skip

_current_execution: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "bifrost_worker_execution", default=None
)
# Fallback for threads started by a workflow (they do not inherit contextvars).
_job_execution: list[str | None] = [None]


def current_execution_id() -> str | None:
    """Return the execution whose code is running in this thread, if any."""
    return _current_execution.get() or _job_execution[0]


class Channel:
    """Writes protocol messages to the parent; safe to call from any thread."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def send_bytes(self, data: bytes) -> None:
        """Write one encoded message atomically with respect to other senders."""
        with self._lock:
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(self._fd, view) :]
            except (BrokenPipeError, OSError):
                # The parent is gone: nobody is left to report to.
                os._exit(0)

    def send(self, message: dict[str, Any]) -> None:
        """Encode and write one message."""
        self.send_bytes(encode_message(message))

    def log(self, level: str, logger: str, message: str, timestamp: datetime | None = None) -> None:
        """Send one log line of the current execution."""
        if len(message) > MAX_LOG_CHARS:
            message = f"{message[:MAX_LOG_CHARS]}… [truncated {len(message) - MAX_LOG_CHARS} characters]"
        self.send(
            {
                "type": "log",
                "execution_id": current_execution_id(),
                "timestamp": (timestamp or utcnow()).isoformat(),
                "level": level,
                "logger": logger,
                "message": message,
            }
        )


class ProtocolLogHandler(logging.Handler):
    """Sends every log record to the parent as it is emitted (live streaming)."""

    def __init__(self, channel: Channel) -> None:
        super().__init__(logging.DEBUG)
        self._channel = channel
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message = f"{message}\n{self._formatter.formatException(record.exc_info)}"
            if record.stack_info:
                message = f"{message}\n{self._formatter.formatStack(record.stack_info)}"
            timestamp = datetime.fromtimestamp(record.created, UTC)
            self._channel.log(record.levelname, record.name, message, timestamp)
        except Exception:
            self.handleError(record)


class LineCapture(io.TextIOBase):
    """A text stream that sends each complete line as a log record.

    Replaces ``sys.stdout`` / ``sys.stderr``; a trailing partial line is sent
    when the job ends (:meth:`flush_partial`).
    """

    def __init__(self, channel: Channel, name: str, level: str, fd: int) -> None:
        super().__init__()
        self._channel = channel
        self._name = name
        self._level = level
        self._fd = fd
        self._pending = ""
        self._lock = threading.RLock()
        self.buffer = _BytesCapture(self)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "replace"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        # The real fd is captured too, so e.g. subprocess(stdout=sys.stdout) works.
        return self._fd

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            data = self._pending + text
            *lines, self._pending = data.split("\n")
            for line in lines:
                self._channel.log(self._level, self._name, line.removesuffix("\r"))
            if len(self._pending) > MAX_LOG_CHARS:
                self.flush_partial()
        return len(text)

    def flush_partial(self) -> None:
        """Send a trailing line that has no newline yet."""
        with self._lock:
            if self._pending:
                line, self._pending = self._pending, ""
                self._channel.log(self._level, self._name, line.removesuffix("\r"))


class _BytesCapture(io.RawIOBase):
    """``sys.stdout.buffer`` of a :class:`LineCapture`: decodes and forwards."""

    def __init__(self, text: LineCapture) -> None:
        super().__init__()
        self._text = text
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._text.write(self._decoder.decode(bytes(data)))
        return len(data)


class FdCapture:
    """Captures what is written to file descriptors 1 and 2 (children, C code).

    A daemon thread forwards lines as they come; :meth:`drain` forwards what is
    left before a job's result is sent, so no line arrives after its result.
    """

    def __init__(self, channel: Channel, targets: dict[int, tuple[str, str]]) -> None:
        self._channel = channel
        self._lock = threading.Lock()
        self._streams: dict[int, tuple[str, str]] = {}
        self._pending: dict[int, bytes] = {}
        for target, stream in targets.items():
            read_fd, write_fd = os.pipe()
            os.dup2(write_fd, target)  # dup2 keeps the target inheritable by child processes
            os.close(write_fd)
            os.set_blocking(read_fd, False)
            self._streams[read_fd] = stream
            self._pending[read_fd] = b""
        threading.Thread(target=self._run, name="bifrost-fd-capture", daemon=True).start()

    def _run(self) -> None:
        readers = list(self._streams)
        while readers:
            ready, _, _ = select.select(readers, [], [])
            with self._lock:
                for fd in ready:
                    if not self._read_available(fd):
                        readers.remove(fd)

    def _read_available(self, fd: int) -> bool:
        name, level = self._streams[fd]
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return True
            if not chunk:
                return False
            *lines, self._pending[fd] = (self._pending[fd] + chunk).split(b"\n")
            for line in lines:
                self._channel.log(level, name, line.decode("utf-8", "replace").removesuffix("\r"))

    def drain(self) -> None:
        """Forward everything written so far, including a trailing partial line."""
        with self._lock:
            # One select() instead of a failing read per stream: this runs after every job.
            ready, _, _ = select.select(list(self._streams), [], [], 0)
            for fd in ready:
                self._read_available(fd)
            for fd, (name, level) in self._streams.items():
                if self._pending[fd]:
                    line, self._pending[fd] = self._pending[fd], b""
                    self._channel.log(level, name, line.decode("utf-8", "replace"))


class Worker:
    """The job loop of one worker process."""

    def __init__(
        self,
        channel: Channel,
        fd_capture: FdCapture | None = None,
        captures: list[LineCapture] | None = None,
        log_handler: ProtocolLogHandler | None = None,
    ) -> None:
        self.channel = channel
        # Processes started while the workspace was imported are not any run's: runs leave them alone.
        self.baseline: frozenset[int] = frozenset()
        self.memory_mb: int | None = None
        self.retire = False  # set by a run that hit the memory limit: exit after its result
        self.fd_capture = fd_capture
        self.captures = captures or []
        self.log_handler = log_handler
        # One loop for the worker's life: httpx clients and other loop-bound
        # resources created by one job stay usable by the next.
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)

    def serve(self, stream: io.BufferedReader) -> None:
        """Run jobs read from ``stream`` until it closes."""
        for line in stream:
            message = decode_message(line)
            if message.get("type") == "shutdown":
                break
            if message.get("type") != "job":
                continue
            job = Job.from_message(message)
            self.channel.send({"type": "started", "execution_id": job.execution_id, "started_at": utcnow().isoformat()})
            self.channel.send_bytes(self.run(job))
            if self.retire:
                break

    def run(self, job: Job) -> bytes:
        """Run one job and return its encoded ``result`` message."""
        self._restore_capture()
        started_at = utcnow()
        start = time.perf_counter()
        token = _current_execution.set(job.execution_id)
        _job_execution[0] = job.execution_id
        try:
            try:
                fields = self._execute(job)
            except MemoryError:  # outside the workflow's own code (say, while validating its parameters)
                fields = self._memory_exceeded()
            if fields.get("error_type") == MEMORY_LIMIT_EXCEEDED:
                self.retire = True  # its heap may be fragmented or half-built: a fresh worker takes over
            self._end_processes()
        finally:
            self.flush_output()
            _job_execution[0] = None
            _current_execution.reset(token)
        result = JobResult(
            execution_id=job.execution_id,
            started_at=started_at,
            completed_at=utcnow(),
            duration_ms=int((time.perf_counter() - start) * 1000),
            **fields,
        )
        try:
            message = result.to_message()
            if self.retire:
                message["retire"] = True
            encoded = encode_message(message)
        except (TypeError, ValueError) as exc:  # e.g. a circular structure
            encoded = encode_message(
                _replace(result, _failed("SerializationError", f"The result cannot be encoded as JSON: {exc}"))
            )
        if len(encoded) > MAX_RESULT_BYTES:
            size = len(encoded) / 1024 / 1024
            encoded = encode_message(
                _replace(
                    result,
                    _failed(
                        "ResultTooLarge",
                        f"The result is {size:.1f} MB; the limit is {MAX_RESULT_BYTES // 1024 // 1024} MB",
                    ),
                )
            )
        return encoded

    def _end_processes(self) -> None:
        """Kill every process the run started that is still running (the worker is their subreaper,
        so ``setsid`` and double forks do not hide them), and collect their exit status."""
        me = os.getpid()
        if procs.kill_descendants(me, keep=self.baseline):
            procs.reap_children(p for p in procs.children(me) if p not in self.baseline and procs.state(p) == "Z")

    def _memory_exceeded(self) -> dict[str, Any]:
        limit = f" of {self.memory_mb} MB" if self.memory_mb else ""
        return _failed(
            MEMORY_LIMIT_EXCEEDED,
            f"MemoryLimitExceeded: the run needed more memory than its limit{limit} (BIFROST_RUN_MEMORY_MB)",
            user_error=True,
        )

    def _restore_capture(self) -> None:
        # A previous job may have called logging.basicConfig(force=True) or
        # replaced sys.stdout without restoring it; the next job must still be captured.
        if self.log_handler is not None and self.log_handler not in logging.getLogger().handlers:
            _install_handler(self.log_handler)
        if len(self.captures) == 2 and (sys.stdout, sys.stderr) != tuple(self.captures):
            sys.stdout, sys.stderr = self.captures

    def flush_output(self) -> None:
        """Send partial lines and whatever child processes wrote so far."""
        for capture in self.captures:
            capture.flush_partial()
        if self.fd_capture is not None:
            self.fd_capture.drain()

    def _execute(self, job: Job) -> dict[str, Any]:
        label = "data provider" if job.kind == "data_provider" else "workflow"
        definition = get_definition(job.kind, job.name)
        if definition is None:
            return _failed(
                "NotFound", f"No {label} named {job.name!r} is available in the workspace (see workspace errors)"
            )
        try:
            ctx = ExecutionContext.model_validate({"execution_id": job.execution_id, **job.context})
        except PydanticValidationError as exc:
            return _failed("InvalidContext", f"Invalid execution context: {exc}")
        try:
            params = validate_parameters(definition.params_model, job.params)
        except ValidationError as exc:
            return _failed("ValidationError", str(exc), user_error=True)
        # Iterating a model keeps nested models and enum members as objects.
        kwargs = dict(params)
        connection = PlatformConnection(job.sdk_url.rstrip("/"), job.sdk_token) if job.sdk_url else None
        with bind_context(ctx, connection):
            try:
                value = self.loop.run_until_complete(definition.func(**kwargs))
            except UserError as exc:
                return _failed(type(exc).__name__, str(exc), user_error=True, tb=_format_traceback(exc))
            except (PermissionDeniedError, NotAvailableError) as exc:
                # The platform wrote these messages (what the caller may not do): safe to show users.
                message = f"{type(exc).__name__}: {exc}"
                return _failed(type(exc).__name__, message, user_error=True, tb=_format_traceback(exc))
            except MemoryError:
                return self._memory_exceeded()
            except BaseException as exc:  # workflow code may raise anything, even SystemExit
                text = str(exc)
                message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
                return _failed(type(exc).__name__, message, tb=_format_traceback(exc))
        try:
            # JSON has no NaN/Infinity; stored results must stay valid JSON.
            result = to_jsonable_python(value, inf_nan_mode="null")
        except (PydanticSerializationError, TypeError, ValueError) as exc:
            kind = f"{type(value).__module__}.{type(value).__qualname__}"
            return _failed(
                "SerializationError",
                f"The {label} returned a value of type {kind} that cannot be serialised to JSON "
                f"(return dicts, lists, scalars, dataclasses or pydantic models): {exc}",
            )
        return {"status": STATUS_COMPLETED, "result": result}


def _failed(error_type: str, message: str, *, user_error: bool = False, tb: str | None = None) -> dict[str, Any]:
    return {
        "status": STATUS_FAILED,
        "error_type": error_type,
        "error_message": message,
        "user_error": user_error,
        "traceback": tb,
    }


def _replace(result: JobResult, fields: dict[str, Any]) -> dict[str, Any]:
    message = result.to_message()
    message.update(fields, result=None)
    return message


_HIDDEN_FRAMES = (__file__, os.path.dirname(asyncio.__file__))


def _format_traceback(exc: BaseException) -> str:
    # The worker's and asyncio's frames say nothing to the author.
    tb_exc = traceback.TracebackException.from_exception(exc)
    tb_exc.stack = traceback.StackSummary.from_list(
        [f for f in tb_exc.stack if not f.filename.startswith(_HIDDEN_FRAMES)]
    )
    return "".join(tb_exc.format())


def _configure_logging(channel: Channel) -> ProtocolLogHandler:
    handler = ProtocolLogHandler(channel)
    _install_handler(handler)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    return handler


def _install_handler(handler: ProtocolLogHandler) -> None:
    # Only our handler on the root logger: a workspace calling basicConfig()
    # would otherwise print every record a second time through stderr.
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)


def _die_with_processes() -> None:
    """The server is gone: end every process our runs started, then ourselves."""
    procs.kill_descendants(os.getpid())
    os._exit(1)


def _watch_parent(parent: int) -> None:
    # If the server dies without stopping us (SIGKILL, OOM), exit instead of lingering, and take
    # the processes of our runs along (they are below us: we are their subreaper). A pidfd wakes
    # at once; polling the parent id is the fallback on kernels without pidfd_open.
    pidfd: int | None = None
    with contextlib.suppress(OSError, AttributeError):
        pidfd = os.pidfd_open(parent)
    while os.getppid() == parent:
        if pidfd is not None:
            select.select([pidfd], [], [], 1.0)
        else:
            time.sleep(0.5)
    _die_with_processes()


def _on_sigterm(parent: int) -> Any:
    def handler(signum: int, frame: Any) -> None:
        # The parent-death signal. A SIGTERM while the server lives (say systemd stopping the
        # whole service) is ignored: the server decides when its workers stop (after the grace period).
        if os.getppid() != parent:
            _die_with_processes()

    return handler


def _guard_processes() -> int:
    """Subreaper + parent-death signal + parent watch thread; returns the parent's pid."""
    parent = os.getppid()
    procs.become_subreaper()
    procs.die_with_parent(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _on_sigterm(parent))
    if os.getppid() != parent:  # it died before the death signal was armed
        _die_with_processes()
    threading.Thread(target=_watch_parent, args=(parent,), name="bifrost-parent-watch", daemon=True).start()
    return parent


def _limit_memory(megabytes: int | None) -> None:
    # RLIMIT_AS: an allocation past the limit fails at once with MemoryError (the kernel refuses the
    # mapping), before it can take memory from other tenants. Counted on top of what the worker
    # already maps after importing the workspace, so the limit is what one run may add.
    if not megabytes:
        return
    limit = procs.vm_bytes() + megabytes * 1024 * 1024
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _scan(workspace: Path, skip: set[str], import_timeout: float) -> None:
    _guard_processes()
    out_fd = os.dup(1)
    # Anything the workspace prints at import goes to stderr, not into the JSON.
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def importing(relpath: str) -> None:
        # Said before each file, so the parent knows which file hung or ended this process.
        os.write(out_fd, encode_message({"type": "importing", "file": relpath}))

    scan = load_workspace(workspace, import_timeout=import_timeout, skip=skip, on_file=importing)
    procs.kill_descendants(os.getpid())  # a file that started processes at import: not kept
    os.write(out_fd, encode_message({"type": "scan", **scan.to_dict()}))
    sys.stderr.flush()
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m app.engine.worker``.

    Args:
        argv: Command-line arguments (defaults to ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description="Bifrost worker process (started by the worker pool).")
    parser.add_argument("--workspace", required=True, type=Path, help="Workspace folder to import.")
    parser.add_argument("--scan", action="store_true", help="Print the workspace scan as JSON and exit.")
    parser.add_argument("--skip", action="append", default=[], help="Workspace file (relative) not to import.")
    parser.add_argument("--import-timeout", type=float, default=IMPORT_TIMEOUT_SECONDS, help="Seconds per file.")
    parser.add_argument("--memory-mb", type=int, default=None, help="Memory one run may add (RLIMIT_AS).")
    args = parser.parse_args(argv)
    if args.scan:
        _scan(args.workspace, set(args.skip), args.import_timeout)
        return

    # Ctrl+C in the server's terminal is for the server: it stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    protocol_in = os.fdopen(os.dup(0), "rb")
    channel = Channel(os.dup(1))
    diagnostics = os.fdopen(os.dup(2), "w", buffering=1)
    faulthandler.enable(file=diagnostics)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.close(null_fd)
    sys.stdin = open(os.devnull)  # lives as long as the process
    fd_capture = FdCapture(channel, {1: ("stdout", "INFO"), 2: ("stderr", "ERROR")})
    stdout = LineCapture(channel, "stdout", "INFO", 1)
    stderr = LineCapture(channel, "stderr", "ERROR", 2)
    sys.stdout, sys.stderr = stdout, stderr
    _guard_processes()
    handler = _configure_logging(channel)

    worker = Worker(channel, fd_capture, [stdout, stderr], handler)
    scan = load_workspace(args.workspace, import_timeout=args.import_timeout, skip=set(args.skip))
    _install_handler(handler)
    worker.baseline = frozenset(procs.children(os.getpid()))
    worker.memory_mb = args.memory_mb
    _limit_memory(args.memory_mb)
    worker.flush_output()
    channel.send({"type": "ready", "pid": os.getpid(), **scan.to_dict()})
    worker.serve(protocol_in)
    worker.flush_output()
    # Skip interpreter teardown: threads a workflow left running must not keep
    # a retired worker alive.
    os._exit(0)


if __name__ == "__main__":
    main()
