#!/usr/bin/env python
"""Knowledge benchmark: ingest rate, search latency at 1k / 10k / 50k chunks, server memory.

Run ``.venv/bin/python bench/knowledge.py`` (about half a minute on two cores). Prints ONE JSON
object on stdout; progress goes to stderr. See ``docs/performance.md`` and ``docs/knowledge.md``.

Layout (two processes, loopback only):

* **server process**: this file with ``--child DIR``: the real ``running_server`` on a fresh
  SQLite file in DIR (one warm worker; the workflow pool plays no part here), seeded with one
  organization, a user and an API key. It prints its URL, pid and key, then waits on stdin.
* **parent**: the HTTP client, and the writer of the synthetic chunks.

What is real and what is synthetic:

* **Ingest** is real end to end: ``POST /api/knowledge/documents`` with English documents
  (help-desk passages shuffled together), so the server splits them with LlamaIndex and embeds
  every chunk with the local int8 MiniLM on onnxruntime. Reported as chunks per second.
* **Scale**: embedding 50,000 chunks would take over an hour on two cores, so the 1k / 10k / 50k
  namespaces get **random unit vectors** written straight into the database by the parent (with
  the current model id, and the namespace version bumped, as another process would). Searching
  them is the real path: ``POST /api/knowledge/search`` with a real question, so each request
  embeds the query for real, loads (once) and searches the namespace matrix, and reads the
  best chunks' text from the database.
* **RSS** is the server process's VmRSS (``/proc``), before knowledge is used, after ingest
  (model loaded), and with all scale namespaces cached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = {"search_p50_ms_at_50k_max": 20.0}
SCALES = (1_000, 10_000, 50_000)
CHUNKS_PER_DOCUMENT = 10


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def rss_mib(pid: int) -> float:
    """Resident memory of a process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


# ===== server process (``--child``) ===================================================================
async def _child(directory: Path) -> None:
    from app.db import transaction
    from app.services.identity.auth import ApiKeyService, AuthService
    from app.services.identity.organizations import OrganizationService
    from app.services.identity.users import UserService
    from app.settings import Settings
    from app.web.server import running_server

    (directory / "workspace").mkdir(parents=True, exist_ok=True)
    settings = Settings(
        home=directory / "home",
        workspace=directory / "workspace",
        workers=1,
        watch_workspace=False,
        scheduler_enabled=False,
    )
    async with running_server(settings, recover=True) as (platform_, url):
        async with transaction(platform_.sessions) as session:
            users = UserService(session)
            admin = await users.create(None, "admin@bench.io", "Admin", is_superuser=True, password="bench-password")
            auth = AuthService(session)
            org = await OrganizationService(session).create(await auth.actor_for_user(admin.id), "Bench Org")
            user = await users.create(
                await auth.actor_for_user(admin.id), "user@bench.io", "User", org_id=org.id, password="user-pass"
            )
            _, key = await ApiKeyService(session).create(await auth.actor_for_user(user.id), "bench")
        info = {
            "url": url,
            "pid": os.getpid(),
            "key": key,
            "org_id": org.id,
            "database": settings.resolved_database_url,
        }
        print(json.dumps(info), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


# ===== parent =========================================================================================
def english_documents(count: int, seed: int = 7) -> list[str]:
    """Documents of about 800 words: the quality set's passages shuffled together."""
    from tests.knowledge.quality_set import CORPUS

    passages = list(CORPUS.values())
    rng = random.Random(seed)
    docs = []
    for _ in range(count):
        rng.shuffle(passages)
        docs.append(" ".join(passages))
    return docs


async def insert_synthetic(database_url: str, org_id: str, name: str, chunks: int, model_id: str) -> None:
    """A namespace of ``chunks`` random unit vectors (10 chunks per document), written like another process."""
    import numpy as np
    from sqlalchemy import insert, update

    from app.db import create_engine, session_factory, transaction
    from app.models.base import new_id, utcnow
    from app.models.knowledge import KnowledgeChunk, KnowledgeDocument, KnowledgeNamespace

    engine = create_engine(database_url)
    sessions = session_factory(engine)
    rng = np.random.default_rng(len(name))
    namespace_id = new_id()
    async with transaction(sessions) as session:
        session.add(KnowledgeNamespace(id=namespace_id, organization_id=org_id, name=name))
    batch = 5_000
    for start in range(0, chunks, batch):
        size = min(batch, chunks - start)
        vectors = rng.standard_normal((size, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        doc_ids = [new_id() for _ in range(size // CHUNKS_PER_DOCUMENT + 1)]
        now = utcnow()
        async with transaction(sessions) as session:
            await session.execute(
                insert(KnowledgeDocument),
                [
                    {
                        "id": d,
                        "namespace_id": namespace_id,
                        "key": f"{name}-{start + i}",
                        "content": f"synthetic document {start + i}",
                        "doc_metadata": {},
                        "chunk_count": CHUNKS_PER_DOCUMENT,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i, d in enumerate(doc_ids)
                ],
            )
            await session.execute(
                insert(KnowledgeChunk),
                [
                    {
                        "id": new_id(),
                        "document_id": doc_ids[i // CHUNKS_PER_DOCUMENT],
                        "namespace_id": namespace_id,
                        "position": i % CHUNKS_PER_DOCUMENT,
                        "content": f"synthetic passage {start + i} of {name}",
                        "embedding": vectors[i].tobytes(),
                        "embedding_model": model_id,
                    }
                    for i in range(size)
                ],
            )
            await session.execute(
                update(KnowledgeNamespace)
                .where(KnowledgeNamespace.id == namespace_id)  # type: ignore[arg-type]
                .values(version=KnowledgeNamespace.version + 1)  # type: ignore[operator]
            )
    await engine.dispose()


def components(chunks: int, repeats: int) -> dict[str, Any]:
    """In-process timings of the two parts of a search: query embedding and the numpy scan."""
    import numpy as np

    from app.services.knowledge.embeddings import LocalMiniLM
    from app.services.knowledge.index import build_matrix, search
    from tests.knowledge.quality_set import QUERIES

    model = LocalMiniLM(threads=2)
    model.embed_sync(["warm up"])
    embed_ms = []
    for i in range(repeats):
        started = time.perf_counter()
        model.embed_sync([QUERIES[i % len(QUERIES)][0]])
        embed_ms.append((time.perf_counter() - started) * 1000)
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((chunks, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = [(f"c{i}", f"d{i // CHUNKS_PER_DOCUMENT}", vectors[i].tobytes()) for i in range(chunks)]
    docs = [(f"d{j}", None, {}) for j in range(chunks // CHUNKS_PER_DOCUMENT)]
    matrix = build_matrix("ns", 1, "m", docs, rows)
    scan_ms = []
    for _ in range(repeats):
        query = rng.standard_normal(384).astype(np.float32)
        query /= np.linalg.norm(query)
        started = time.perf_counter()
        search([matrix], query, 5)
        scan_ms.append((time.perf_counter() - started) * 1000)
    return {
        "query_embedding_p50_ms": round(statistics.median(embed_ms), 2),
        f"numpy_search_p50_ms_at_{chunks // 1000}k": round(statistics.median(scan_ms), 2),
        "matrix_mib": round(matrix.nbytes / 2**20, 1),
    }


async def parent(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    from tests.knowledge.quality_set import QUERIES

    directory = Path(tempfile.mkdtemp(prefix="bifrost-knowledge-bench-"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), "--child", str(directory),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=str(ROOT),
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    info = json.loads(await asyncio.wait_for(proc.stdout.readline(), 180))
    pid = info["pid"]
    result: dict[str, Any] = {
        "benchmark": "knowledge",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_1m": os.getloadavg()[0]},
        "targets": TARGETS,
        "synthetic_vectors_for_scale": True,
        "rss_mib": {"idle": rss_mib(pid)},
    }
    headers = {"Authorization": f"Bearer {info['key']}"}
    try:
        async with httpx.AsyncClient(base_url=info["url"], headers=headers, timeout=600) as client:
            # -- ingest (real chunking and embedding) --
            docs = english_documents(args.ingest_docs)
            first = await client.post("/api/knowledge/documents", json={"content": docs[0], "namespace": "warmup"})
            first.raise_for_status()  # loads LlamaIndex and the model; not timed
            log(f"ingesting {len(docs)} documents")
            chunks = 0
            cpu_before = cpu_seconds(pid)
            started = time.perf_counter()
            for i, text in enumerate(docs):
                response = await client.post(
                    "/api/knowledge/documents", json={"content": text, "namespace": "ingest", "key": f"doc-{i}"}
                )
                response.raise_for_status()
                chunks += response.json()["chunk_count"]
            elapsed = time.perf_counter() - started
            result["ingest"] = {
                "documents": len(docs),
                "chunks": chunks,
                "seconds": round(elapsed, 2),
                "chunks_per_s": round(chunks / elapsed, 2),
                "server_cpu_s_per_chunk": round((cpu_seconds(pid) - cpu_before) / chunks, 3),
                "words_per_chunk": round(sum(len(d.split()) for d in docs) / chunks, 1),
            }
            result["rss_mib"]["after_ingest"] = rss_mib(pid)
            model_id = (await client.get(f"/api/knowledge/documents/{response.json()['id']}/chunks")).json()[0][
                "embedding_model"
            ]
            # -- search latency at scale (synthetic vectors, real query embedding) --
            result["search"] = {}
            for scale in SCALES:
                name = f"scale-{scale // 1000}k"
                log(f"writing {scale} synthetic chunks into {name}")
                await insert_synthetic(info["database"], info["org_id"], name, scale, model_id)
                started = time.perf_counter()
                cold = await client.post("/api/knowledge/search", json={"query": "warm up", "namespaces": name})
                cold.raise_for_status()
                cold_ms = (time.perf_counter() - started) * 1000
                latencies = []
                cpu_before = cpu_seconds(pid)
                for i in range(args.searches):
                    started = time.perf_counter()
                    response = await client.post(
                        "/api/knowledge/search",
                        json={"query": QUERIES[i % len(QUERIES)][0], "namespaces": name, "limit": 5},
                    )
                    latencies.append((time.perf_counter() - started) * 1000)
                    response.raise_for_status()
                    assert len(response.json()) == 5
                result["search"][name] = {
                    "chunks": scale,
                    "first_search_ms_with_matrix_load": round(cold_ms, 1),
                    "p50_ms": round(quantile(latencies, 0.5), 2),
                    "p95_ms": round(quantile(latencies, 0.95), 2),
                    "searches": len(latencies),
                    # Less sensitive to other load on the machine than wall time (all server threads).
                    "server_cpu_ms_per_search": round((cpu_seconds(pid) - cpu_before) * 1000 / len(latencies), 2),
                }
                log(f"{name}: p50 {result['search'][name]['p50_ms']} ms")
            result["rss_mib"]["with_1k_10k_50k_cached"] = rss_mib(pid)
    finally:
        proc.stdin.write(b"stop\n")
        await proc.stdin.drain()
        await asyncio.wait_for(proc.wait(), 60)
    result["components_in_process"] = components(SCALES[-1], args.searches)
    p50 = result["search"][f"scale-{SCALES[-1] // 1000}k"]["p50_ms"]
    result["target_met"] = {"search_p50_ms_at_50k": p50 <= TARGETS["search_p50_ms_at_50k_max"]}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ingest-docs", type=int, default=20, help="English documents to ingest (default 20)")
    parser.add_argument("--searches", type=int, default=60, help="searches measured per scale (default 60)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(_child(args.child))
        return 0
    print(json.dumps(asyncio.run(parent(args)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
