"""Workers forked from the pool's fork server: what each child gets, and what happens when the server dies."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from app.engine import procs
from app.engine.forkserver import ForkServer
from app.engine.pool import WorkerPool
from app.engine.spawn import build_worker_env, worker_args

from .conftest import PoolFactory, make_job, write_workspace

pytestmark = pytest.mark.timeout(60)

SECRETS = """
import os
import random

from bifrost import workflow


@workflow
async def draw() -> dict:
    return {"random": random.getrandbits(64), "urandom": os.urandom(8).hex(), "pid": os.getpid()}


@workflow
async def surroundings() -> dict:
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[name] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass
    return {"cwd": os.getcwd(), "fds": fds, "env": sorted(os.environ), "sid": os.getsid(0), "pid": os.getpid()}
"""


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as handle:
        return int(handle.read().rsplit(b")", 1)[1].split()[1])


async def _run(pool: WorkerPool, name: str) -> dict:
    result = await pool.run(make_job(name))
    assert result.status == "Completed", result.error_message
    assert isinstance(result.result, dict)
    return result.result


async def test_workers_are_forked_children_of_the_fork_server(make_pool: PoolFactory, tmp_path: Path) -> None:
    pool = await make_pool(write_workspace(tmp_path / "ws", {"flows.py": SECRETS}), size=2)
    server = pool._fork_server.pid
    assert server is not None and _ppid(server) == os.getpid()
    assert {_ppid(pid) for pid in pool.pids()} == {server}


async def test_each_worker_draws_its_own_random_numbers(make_pool: PoolFactory, tmp_path: Path) -> None:
    # Children of one fork share the parent's memory: Python's `random` must be reseeded in each.
    pool = await make_pool(write_workspace(tmp_path / "ws", {"flows.py": SECRETS}), size=2)
    draws = await asyncio.gather(_run(pool, "draw"), _run(pool, "draw"))  # one on each idle worker
    assert len({d["pid"] for d in draws}) == 2
    assert draws[0]["random"] != draws[1]["random"]
    assert draws[0]["urandom"] != draws[1]["urandom"]


async def test_a_forked_worker_holds_nothing_of_the_server(make_pool: PoolFactory, tmp_path: Path) -> None:
    pool = await make_pool(write_workspace(tmp_path / "ws", {"flows.py": SECRETS}), size=1)
    seen = await _run(pool, "surroundings")
    assert seen["cwd"] == str(pool.scratch)
    assert seen["sid"] == seen["pid"], "each worker leads its own session (its process group is killed with it)"
    # None of the server's files (its control socket, its wake-up pipe) is open in the worker.
    server = pool._fork_server.pid
    assert server is not None
    held = {os.readlink(f"/proc/{server}/fd/{fd}") for fd in os.listdir(f"/proc/{server}/fd") if int(fd) > 2}
    assert any(target.startswith("socket:") for target in held)
    assert not held & set(seen["fds"].values()), (held, seen["fds"])
    assert "BIFROST_FORK_SERVER_FD" not in seen["env"]
    assert "BIFROST_LOCAL_FILES_ROOT" in seen["env"]


async def test_a_scan_child_gets_the_environment_and_folder_of_its_request(tmp_path: Path) -> None:
    workspace = write_workspace(tmp_path / "ws", {"flows.py": "import os\nprint(os.getcwd(), sorted(os.environ))\n"})
    server = ForkServer(build_worker_env({"ONLY_THE_SERVER": "1"}), {"cwd": str(tmp_path)})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    try:
        proc = await server.spawn(
            worker_args(workspace, "--scan"), cwd=elsewhere, env=build_worker_env({"ASKED": "1"}), stdin=False
        )
        assert proc.stdin is None
        stderr = await proc.stderr.read()
        assert await proc.wait() == 0
    finally:
        await server.stop()
    printed = stderr.decode()  # a scan sends what files print to stderr
    assert str(elsewhere) in printed and "'ASKED'" in printed
    assert "ONLY_THE_SERVER" not in printed


async def test_exit_codes_and_signals_come_back_from_the_server(tmp_path: Path) -> None:
    workspace = write_workspace(tmp_path / "ws", {"flows.py": "import os\nos._exit(7)\n"})
    server = ForkServer(build_worker_env(), {"cwd": str(tmp_path)})
    try:
        exits = await server.spawn(worker_args(workspace, "--scan"), cwd=tmp_path, env=build_worker_env(), stdin=False)
        assert await exits.wait() == 7 and exits.returncode == 7
        bad_args = await server.spawn(["--no-such-option"], cwd=tmp_path, env=build_worker_env(), stdin=False)
        assert await bad_args.wait() == 2  # argparse's exit code, as from the command line
        usage = (await bad_args.stderr.read()).decode()
        assert "usage: worker.py" in usage and "required: --workspace" in usage
        hangs = await server.spawn(
            worker_args(write_workspace(tmp_path / "hang", {"h.py": "import time\ntime.sleep(60)\n"}), "--scan"),
            cwd=tmp_path,
            env=build_worker_env(),
            stdin=False,
        )
        procs.kill_tree(hangs.pid)
        assert await hangs.wait() == -signal.SIGKILL
    finally:
        await server.stop()


async def test_a_request_the_server_cannot_fork_fails_clearly(tmp_path: Path) -> None:
    server = ForkServer(build_worker_env(), {"cwd": str(tmp_path)})
    try:
        first = await server.spawn(["--help"], cwd=tmp_path, env=build_worker_env(), stdin=False)
        assert await first.wait() == 0
        assert server._sock is not None
        # A request without its three file descriptors is refused, and the server keeps serving.
        server._sock.setblocking(True)
        server._sock.send(b'{"argv": []}')
        server._sock.setblocking(False)
        server._reply = asyncio.get_running_loop().create_future()
        reply = await asyncio.wait_for(server._reply, 10)
        assert reply["type"] == "error" and "3 file descriptors" in reply["error"]
        server._reply = None
        again = await server.spawn(["--help"], cwd=tmp_path, env=build_worker_env(), stdin=False)
        assert await again.wait() == 0
    finally:
        await server.stop()


async def test_killing_the_fork_server_ends_its_workers_and_the_pool_recovers(
    make_pool: PoolFactory, tmp_path: Path
) -> None:
    pool = await make_pool(write_workspace(tmp_path / "ws", {"flows.py": SECRETS}), size=2)
    server = pool._fork_server.pid
    workers = pool.pids()
    assert server is not None and len(workers) == 2

    os.kill(server, signal.SIGKILL)

    # Its workers die with it (parent-death signal), and the pool starts new ones from a new server.
    for _ in range(200):
        if (
            pool._fork_server.pid not in (None, server)
            and len(pool.pids()) == 2
            and not set(pool.pids()) & set(workers)
        ):
            break
        await asyncio.sleep(0.05)
    for pid in workers:
        assert not procs.alive(pid), f"worker {pid} outlived its fork server"
    assert pool._fork_server.pid not in (None, server)
    assert (await _run(pool, "draw"))["pid"] not in workers


async def test_stopping_the_pool_stops_the_server_and_every_worker(make_pool: PoolFactory, tmp_path: Path) -> None:
    pool = await make_pool(write_workspace(tmp_path / "ws", {"flows.py": SECRETS}), size=2)
    server, workers = pool._fork_server.pid, pool.pids()
    assert server is not None

    await pool.stop()

    assert pool._fork_server.pid is None
    for pid in [server, *workers]:
        assert not procs.alive(pid)
    with pytest.raises(ChildProcessError):
        os.waitpid(server, os.WNOHANG)  # reaped, not left a zombie


async def test_a_spawn_after_stop_starts_a_new_server(tmp_path: Path) -> None:
    server = ForkServer(build_worker_env(), {"cwd": str(tmp_path)})
    first = await server.spawn(["--help"], cwd=tmp_path, env=build_worker_env(), stdin=False)
    assert await first.wait() == 0
    old = server.pid
    await server.stop()
    again = await server.spawn(["--help"], cwd=tmp_path, env=build_worker_env(), stdin=False)
    try:
        assert await again.wait() == 0
        assert server.pid not in (None, old)
    finally:
        await server.stop()


async def test_without_a_fork_server_each_worker_is_its_own_interpreter(make_pool: PoolFactory, tmp_path: Path) -> None:
    # Where fork servers are not supported (off Linux), or when asked: workers are the pool's own children.
    pool = await make_pool(write_workspace(tmp_path / "ws", {"flows.py": SECRETS}), size=2, fork_server=False)
    assert pool._fork_server is None
    assert {_ppid(pid) for pid in pool.pids()} == {os.getpid()}
    draws = await asyncio.gather(_run(pool, "draw"), _run(pool, "draw"))
    assert len({d["pid"] for d in draws}) == 2
    scan = await pool.scan()
    assert {w["name"] for w in scan.workflows} == {"draw", "surroundings"}
    victim = pool.pids()[0]
    os.kill(victim, signal.SIGKILL)
    assert (await _run(pool, "draw"))["pid"] != victim
