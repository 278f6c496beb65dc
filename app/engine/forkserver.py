"""A fork server for worker and scan processes: import once, fork each worker from that warm state.

Starting a worker as ``python -m app.engine.worker`` costs an interpreter start and the imports of
the worker, the ``bifrost`` SDK and pydantic (~0.3-0.5 s of CPU) before it even reads the workspace.
A pool replaces workers often (after a timeout or a cancel, on every workspace change, when one
retires) and scans the workspace in a throwaway process each time, so that cost is paid again and
again. The fork server pays it once: a process of the pool's own (same user, environment and
folder as its workers) imports :mod:`app.engine.worker` and then only forks. Each child is a fresh
copy of that state that never ran workspace code: it imports the workspace and serves jobs exactly
as a worker started from the command line does (same ``main``, same arguments, same protections).

How the two sides talk (stdlib only, Linux and other Unixes):

* a ``SOCK_SEQPACKET`` socket pair; the pool sends ``{"argv", "cwd", "env"}`` with the three pipe
  ends that become the child's fd 0, 1 and 2 (``SCM_RIGHTS``), the server answers
  ``{"type": "spawned", "pid"}`` and later ``{"type": "exit", "pid", "returncode"}`` once it reaped
  the child: the children are the server's, so only it learns how they ended;
* the server never runs workspace code and is single-threaded, so forking it is safe;
* when the pool closes the socket or its process dies (the server has a parent-death signal), the
  server kills its children's process trees and exits; a worker whose parent (this server) dies
  ends itself and its runs' processes (:func:`app.engine.worker._guard_processes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import socket
import sys
import traceback
import weakref
from pathlib import Path
from typing import Any

from app.engine import procs

FORK_SERVER_MODULE = "app.engine.forkserver"
# Requests carry the worker's arguments and environment: generous, and checked on both sides.
_MAX_MESSAGE = 1024 * 1024
# The fd number of the server's end of the socket pair in the server process.
_SOCKET_FD_ENV = "BIFROST_FORK_SERVER_FD"
# Where a fork server works: Linux (SOCK_SEQPACKET Unix sockets, and the /proc and prctl process handling
# of app.engine.procs that it and its children rely on). Elsewhere (macOS, for development) a pool starts
# each worker as ``python -m app.engine.worker`` instead.
SUPPORTED = sys.platform.startswith("linux")
# Seconds to wait for the server's answer to one request (a fork takes milliseconds).
_REPLY_TIMEOUT_SECONDS = 30.0


class ForkServerError(RuntimeError):
    """The fork server could not start or could not start a process."""


# ----- pool side ---------------------------------------------------------------------------------
class ForkedProcess:
    """A process the fork server started, with what the pool uses of :class:`asyncio.subprocess.Process`.

    ``stdin`` is a :class:`asyncio.StreamWriter` (None when the child reads ``/dev/null``),
    ``stdout`` and ``stderr`` are :class:`asyncio.StreamReader`; ``returncode`` is set (negative for a
    signal, as ``subprocess`` reports it) when the server reports the exit.
    """

    def __init__(
        self,
        pid: int,
        stdin: asyncio.StreamWriter | None,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
    ) -> None:
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: int | None = None
        self._exited: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

    def _set_exit(self, returncode: int | None) -> None:
        if self._exited.done():
            return
        self.returncode = returncode
        self._exited.set_result(returncode)
        if self.stdin is not None:
            self.stdin.close()

    async def wait(self) -> int | None:
        """Wait until the process has ended; its return code (None if the fork server died first)."""
        return await asyncio.shield(self._exited)


class ForkServer:
    """The pool side of a fork server: start it, ask it for processes, learn how they ended.

    Args:
        env: The server's environment (a forked child gets the one its request names).
        identity: ``cwd`` and, to run as another user, ``user``/``group``/``extra_groups``
            (as :func:`app.engine.spawn.process_identity` builds them).
    """

    def __init__(self, env: dict[str, str], identity: dict[str, Any]) -> None:
        self._env = env
        self._identity = identity
        self._proc: asyncio.subprocess.Process | None = None
        self._sock: socket.socket | None = None
        self._lock = asyncio.Lock()  # one request at a time: the next answer is that request's
        self._reply: asyncio.Future[dict[str, Any]] | None = None
        self._children: dict[int, ForkedProcess] = {}
        self._early_exits: dict[int, int] = {}

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    async def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with procs.spawning():
                self._proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    FORK_SERVER_MODULE,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    env={**self._env, _SOCKET_FD_ENV: str(theirs.fileno())},
                    pass_fds=(theirs.fileno(),),
                    start_new_session=True,
                    **self._identity,
                )
                procs.spawned.add(self._proc.pid)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours  # None again once the server is gone (see _lost)
        asyncio.get_running_loop().add_reader(ours.fileno(), self._on_readable)
        # A pool dropped without stop(): closing our end tells the server to end its children and exit.
        weakref.finalize(self, ours.close)

    async def spawn(
        self, argv: list[str], *, cwd: Path | str, env: dict[str, str], stdin: bool, limit: int = 2**16
    ) -> ForkedProcess:
        """Fork a process running ``python -m app.engine.worker *argv`` (the server starts on first use).

        Args:
            argv: Arguments of the worker module.
            cwd: The child's working directory.
            env: The child's whole environment.
            stdin: Give the child a pipe as stdin (else ``/dev/null``).
            limit: The longest line ``stdout`` and ``stderr`` read (as ``asyncio``'s ``limit``).

        Returns:
            The started process.

        Raises:
            ForkServerError: If the server could not fork.
        """
        loop = asyncio.get_running_loop()
        async with self._lock:
            if self._sock is None:
                await self._restart()
            stdin_read, stdin_write = os.pipe() if stdin else (os.open(os.devnull, os.O_RDONLY), -1)
            stdout_read, stdout_write = os.pipe()
            stderr_read, stderr_write = os.pipe()
            child_fds = [stdin_read, stdout_write, stderr_write]
            our_fds = [fd for fd in (stdin_write, stdout_read, stderr_read) if fd >= 0]
            request = json.dumps({"argv": argv, "cwd": str(cwd), "env": env}).encode()
            self._reply = loop.create_future()
            spawned = False
            try:
                await self._send(request, child_fds)
                reply = await asyncio.wait_for(self._reply, _REPLY_TIMEOUT_SECONDS)
                if reply.get("type") != "spawned":
                    raise ForkServerError(f"the fork server could not start a process: {reply.get('error')}")
                spawned = True
            except TimeoutError:  # a server that does not answer is of no use: replace it
                await self.stop()
                raise ForkServerError("the fork server did not answer") from None
            finally:
                self._reply = None
                for fd in child_fds if spawned else child_fds + our_fds:  # the child has its copies now
                    os.close(fd)
            pid = int(reply["pid"])
            process = ForkedProcess(
                pid,
                await _writer(stdin_write) if stdin else None,
                await _reader(stdout_read, limit),
                await _reader(stderr_read, limit),
            )
            self._children[pid] = process
            if pid in self._early_exits:
                process._set_exit(self._early_exits.pop(pid))
            return process

    async def stop(self) -> None:
        """Stop the server: it kills what it started and exits; waits for it."""
        proc, sock = self._proc, self._sock
        self._proc = self._sock = None
        if sock is not None:
            with contextlib.suppress(ValueError, RuntimeError):
                asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()
        if proc is not None:
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                procs.kill_tree(proc.pid)
                await proc.wait()
            procs.spawned.discard(proc.pid)
        self._lost(kill_children=False)  # it killed and reaped them itself

    async def _restart(self) -> None:
        if self._proc is not None:
            await self.stop()  # what is left of the last one
        await self._start()

    async def _send(self, payload: bytes, fds: list[int]) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                socket.send_fds(self._sock, [payload], fds)
                return
            except BlockingIOError:
                writable: asyncio.Future[None] = loop.create_future()
                loop.add_writer(self._sock.fileno(), writable.set_result, None)
                try:
                    await writable
                finally:
                    loop.remove_writer(self._sock.fileno())

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        while True:
            try:
                data = sock.recv(_MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:  # the server is gone: so are its children (they die with their parent)
                asyncio.get_running_loop().remove_reader(sock.fileno())
                sock.close()
                self._lost(kill_children=True)
                return
            message = json.loads(data)
            if message.get("type") == "exit":
                pid, returncode = int(message["pid"]), int(message["returncode"])
                child = self._children.pop(pid, None)
                if child is not None:
                    child._set_exit(returncode)
                else:  # reaped before we registered the spawn's answer
                    self._early_exits[pid] = returncode
            elif self._reply is not None and not self._reply.done():
                self._reply.set_result(message)

    def _lost(self, *, kill_children: bool) -> None:
        """The server ended: no more exit reports will come; pending requests fail, children end.

        Args:
            kill_children: Kill what it left. Not after :meth:`stop`, where the server reaped them itself
                (their pids may be reused by now).
        """
        self._sock = None
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(ForkServerError("the fork server ended"))
        children, self._children = self._children, {}
        for child in children.values():
            if kill_children:
                # They die with their parent by themselves; a child forked just as the server died may
                # not have armed its parent-death signal yet, so make sure.
                procs.kill_tree(child.pid)
            child._set_exit(None)
        self._early_exits.clear()


async def _reader(fd: int, limit: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(fd, "rb", 0))
    return reader


async def _writer(fd: int) -> asyncio.StreamWriter:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.streams.FlowControlMixin(loop=loop), os.fdopen(fd, "wb", 0)
    )
    return asyncio.StreamWriter(transport, protocol, None, loop)


# ----- server side -------------------------------------------------------------------------------
def _send_message(sock: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):  # the pool is gone: nobody to tell
        sock.send(json.dumps(message).encode())


def _run_child(request: dict[str, Any], fds: list[int], server: int) -> None:
    """In the forked child of ``server``: become the requested worker process. Never returns."""
    code = 1
    try:
        # Die with the server from the first instant: the worker arms its own parent-death handling
        # only once started, and a server that died before that would leave it running unparented.
        procs.die_with_parent(signal.SIGKILL)
        if os.getppid() != server:
            os._exit(1)
        procs.set_dumpable(True)
        os.setsid()  # its own session and process group, as start_new_session gives
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.closerange(3, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        from app.engine import worker

        sys.argv = [worker.__file__, *request["argv"]]  # as ``python -m app.engine.worker`` sets it

        worker.main(list(request["argv"]))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _reap(sock: socket.socket, children: set[int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        _send_message(sock, {"type": "exit", "pid": pid, "returncode": os.waitstatus_to_exitcode(status)})


def serve(sock: socket.socket) -> None:
    """The fork server's loop: fork a child per request, report each child's exit; ends with the socket."""
    children: set[int] = set()
    server = os.getpid()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd hears of exits
    try:
        while True:
            try:
                readable, _, _ = select.select([sock.fileno(), wake_read], [], [])
            except InterruptedError:
                continue
            if wake_read in readable:
                with contextlib.suppress(BlockingIOError):
                    while os.read(wake_read, 4096):
                        pass
                _reap(sock, children)
            if sock.fileno() not in readable:
                continue
            try:
                data, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, 3)
            except ConnectionError:
                return
            if not data:
                return  # the pool closed its end (or died)
            try:
                request = json.loads(data)
                if len(fds) != 3 or not isinstance(request.get("argv"), list):
                    raise ValueError(f"a request needs argv and 3 file descriptors, got {len(fds)}")
                pid = os.fork()
            except (ValueError, OSError) as exc:
                _send_message(sock, {"type": "error", "error": f"{type(exc).__name__}: {exc}"})
            else:
                if pid == 0:
                    sock.close()
                    os.close(wake_read)
                    os.close(wake_write)
                    signal.set_wakeup_fd(-1)
                    _run_child(request, fds, server)
                children.add(pid)
                _send_message(sock, {"type": "spawned", "pid": pid})
            finally:
                for fd in fds:
                    os.close(fd)
    finally:
        # Nobody will read their results: end the children and what their runs started.
        for pid in list(children):
            procs.kill_tree(pid)
        for pid in list(children):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def main() -> None:
    """Entry point of ``python -m app.engine.forkserver`` (started by :class:`ForkServer`)."""
    sock = socket.socket(fileno=int(os.environ.pop(_SOCKET_FD_ENV)))
    # The serving process died without closing the socket (SIGKILL): end with it.
    procs.die_with_parent(signal.SIGKILL)
    # Workflows run as this process's user: they must not ptrace it or write its memory, or code planted
    # here would run in every worker forked after. (Children are made dumpable again, as workers were.)
    procs.set_dumpable(False)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in the server's terminal is for the server
    # What every worker imports, and the SDK modules workflows import, imported once here (no
    # workspace code: that is each child's, after the fork).
    import importlib

    import app.engine.worker  # noqa: F401
    import bifrost

    for name in bifrost._MODULES:
        importlib.import_module(f"bifrost.{name}")

    serve(sock)


if __name__ == "__main__":
    main()
