"""Background knowledge work in the server process: ingesting uploaded files, re-embedding stale vectors.

An upload becomes a ``knowledge_job`` row holding the file's bytes; the request
answers at once (202) and :class:`KnowledgeJobs` parses, chunks and embeds it on
one background task, writing its stage and ``chunks_done / chunks_total`` as it
goes (the knowledge page polls them). The document is written in one
transaction at the end, exactly like ``knowledge.store``. Jobs left pending or
running by a stopped server run again from the start when it comes back.

When the configured embedding model changes, chunks embedded by another model
are re-embedded in batches at start-up (:meth:`KnowledgeJobs.reembed_stale`);
until then searches skip them.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from app.db import transaction
from app.models.base import utcnow
from app.models.knowledge import KnowledgeChunk, KnowledgeJob, KnowledgeNamespace
from app.services.actor import Actor
from app.services.errors import DomainError, InvalidInputError, NotFoundError
from app.services.knowledge.checks import check_content, check_key, check_namespace
from app.services.knowledge.parsing import check_filename, extract_text
from app.services.knowledge.service import KnowledgeRuntime, KnowledgeService
from app.services.knowledge.views import KnowledgeJobView

log = logging.getLogger(__name__)

ACTIVE = ("pending", "running")


class UploadTooLargeError(InvalidInputError):
    """An upload over ``knowledge_max_upload_bytes`` (the web layer answers 413)."""


def job_public(job: KnowledgeJob) -> KnowledgeJobView:
    """JSON form of a job (never its bytes)."""
    total = job.chunks_total
    return {
        "id": job.id,
        "namespace": job.namespace,
        "key": job.key,
        "filename": job.filename,
        "status": job.status,
        "stage": job.stage,
        "chunks_done": job.chunks_done,
        "chunks_total": total,
        "progress": round(job.chunks_done / total, 3) if total else (1.0 if job.status == "done" else 0.0),
        "error": job.error,
        "document_id": job.document_id,
        "organization_id": job.organization_id,
        "created_at": job.created_at.isoformat(),
        "updated_at": job.updated_at.isoformat(),
    }


class KnowledgeJobService:
    """Create and read ingestion jobs in the actor's scope (same rules as writing knowledge)."""

    def __init__(self, session: AsyncSession, runtime: KnowledgeRuntime) -> None:
        self.session = session
        self.runtime = runtime

    async def create(self, actor: Actor, namespace: Any, filename: Any, data: bytes, key: Any = None) -> KnowledgeJob:
        """Queue a file (``.txt .md .html .pdf .docx``) for ingestion into ``namespace``.

        Raises:
            UploadTooLargeError: Over the upload limit.
            InvalidInputError: Bad namespace, key, file name or type, or an empty file.
        """
        org_id = KnowledgeService.write_org(actor)
        name = check_namespace(namespace)
        key = check_key(key)
        filename = check_filename(filename if isinstance(filename, str) else "")
        limit = self.runtime.settings.knowledge_max_upload_bytes
        if len(data) > limit:
            raise UploadTooLargeError.field("file", f"must be at most {limit} bytes")
        if not data:
            raise InvalidInputError.field("file", f"{filename} is empty")
        job = KnowledgeJob(
            organization_id=org_id, namespace=name, key=key, filename=filename, data=data, created_by=actor.user_id
        )
        self.session.add(job)
        await self.session.flush()
        return job

    async def create_text(self, actor: Actor, namespace: Any, title: Any, text: Any, key: Any = None) -> KnowledgeJob:
        """Queue pasted text for ingestion (as a ``.txt`` named after ``title``)."""
        text = check_content(text, self.runtime.settings.knowledge_max_upload_bytes)
        base = title.strip() if isinstance(title, str) and title.strip() else (key or "pasted text")
        filename = base if base.lower().endswith((".txt", ".md")) else f"{base}.txt"
        return await self.create(actor, namespace, filename[-255:], text.encode(), key)

    async def get(self, actor: Actor, job_id: str) -> KnowledgeJob:
        """A job of the actor's write scope (404 otherwise)."""
        job = await self.session.get(KnowledgeJob, job_id)
        if job is None or job.organization_id != _scope(actor):
            raise NotFoundError(f"Knowledge job {job_id!r} not found.")
        return job

    async def list(self, actor: Actor, limit: int = 20) -> builtins.list[KnowledgeJob]:
        """Recent jobs of the actor's write scope, newest first."""
        org_id = _scope(actor)
        column = col(KnowledgeJob.organization_id)
        stmt = (
            select(KnowledgeJob)
            .where(column.is_(None) if org_id is None else column == org_id)
            .order_by(col(KnowledgeJob.created_at).desc())
            .limit(limit)
        )
        return list((await self.session.execute(stmt)).scalars())


def _scope(actor: Actor) -> str | None:
    try:
        return KnowledgeService.write_org(actor)
    except DomainError:
        # A user who may not write global knowledge has no global jobs to see either.
        raise NotFoundError("No knowledge jobs here.") from None


class KnowledgeJobs:
    """Runs ingestion jobs one at a time on a background task, and re-embeds stale chunks.

    Args:
        sessions: Session factory of the platform database.
        runtime: The process-wide knowledge runtime.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], runtime: KnowledgeRuntime) -> None:
        self.sessions = sessions
        self.runtime = runtime
        self._queue: asyncio.Queue[str] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, *, recover: bool = True) -> None:
        """Start the job task; with ``recover``, queue interrupted jobs and re-embed stale chunks."""
        self._queue = asyncio.Queue()
        self._tasks.append(asyncio.create_task(self._run_queue(), name="knowledge-jobs"))
        if recover:
            async with transaction(self.sessions) as session:
                stmt = select(col(KnowledgeJob.id)).where(col(KnowledgeJob.status).in_(ACTIVE))
                ids = list((await session.execute(stmt.order_by(col(KnowledgeJob.created_at)))).scalars())
                if ids:
                    await session.execute(
                        update(KnowledgeJob)
                        .where(col(KnowledgeJob.id).in_(ids))
                        .values(status="pending", stage="queued", chunks_done=0)
                    )
            for job_id in ids:
                self._queue.put_nowait(job_id)
            self._tasks.append(asyncio.create_task(self._reembed_quietly(), name="knowledge-reembed"))

    async def stop(self) -> None:
        """Cancel background work (an interrupted job runs again at the next start)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self._queue = None

    def submit(self, job_id: str) -> None:
        """Queue a committed job."""
        if self._queue is None:
            raise RuntimeError("knowledge jobs are not started")
        self._queue.put_nowait(job_id)

    async def wait_idle(self) -> None:
        """Wait until every queued job is finished (tests, benchmarks)."""
        if self._queue is not None:
            await self._queue.join()

    async def _run_queue(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            job_id = await queue.get()
            try:
                await self.run(job_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one job stop the queue
                log.exception("knowledge job %s crashed", job_id)
            finally:
                queue.task_done()

    async def _set(self, job_id: str, **values: Any) -> None:
        async with transaction(self.sessions) as session:
            await session.execute(
                update(KnowledgeJob).where(col(KnowledgeJob.id) == job_id).values(updated_at=utcnow(), **values)
            )

    async def run(self, job_id: str) -> None:
        """Parse, chunk, embed and store one job's file; records failure on the job instead of raising."""
        async with transaction(self.sessions) as session:
            job = await session.get(KnowledgeJob, job_id)
            if job is None or job.status not in ACTIVE or job.data is None:
                return
            job.status, job.stage, job.updated_at = "running", "parsing", utcnow()
            data, filename = job.data, job.filename
            org_id, user_id, namespace, key = job.organization_id, job.created_by, job.namespace, job.key
        try:
            text = await asyncio.to_thread(extract_text, filename, data)
            chunks = await self.runtime.split(text)
            if not chunks:
                raise InvalidInputError.field("file", f"{filename}: no text found")
            await self._set(job_id, stage="embedding", chunks_total=len(chunks), chunks_done=0)

            async def progress(done: int) -> None:
                await self._set(job_id, chunks_done=done)

            vectors = await self.runtime.embed_chunks(chunks, progress)
            from app.services.knowledge.service import PreparedDocument

            prepared = PreparedDocument(content=text, chunks=chunks, vectors=vectors, model_id=self.runtime.model_id)
            await self._set(job_id, stage="saving")
            async with transaction(self.sessions) as session:
                doc, _ = await KnowledgeService(session, self.runtime).store_in(
                    org_id, user_id, text, namespace, key, {"source": filename}, source=filename, prepared=prepared
                )
                await session.execute(
                    update(KnowledgeJob)
                    .where(col(KnowledgeJob.id) == job_id)
                    .values(status="done", stage="done", document_id=doc.id, data=None, updated_at=utcnow())
                )
        except asyncio.CancelledError:
            raise
        except DomainError as exc:
            await self._set(job_id, status="failed", stage="failed", error=str(exc), data=None)
        except Exception as exc:
            log.exception("knowledge job %s failed", job_id)
            await self._set(job_id, status="failed", stage="failed", error=f"{type(exc).__name__}: {exc}", data=None)

    async def _reembed_quietly(self) -> None:
        try:
            count = await self.reembed_stale()
            if count:
                log.info("knowledge: re-embedded %d chunks with %s", count, self.runtime.model_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("knowledge: re-embedding stale chunks failed; searches skip them until the next start")

    async def reembed_stale(self, batch: int = 64) -> int:
        """Re-embed every chunk whose vector was made by another model; returns how many were done."""
        model_id = self.runtime.model_id
        done = 0
        while True:
            async with transaction(self.sessions) as session:
                stmt = (
                    select(col(KnowledgeChunk.id), col(KnowledgeChunk.content), col(KnowledgeChunk.namespace_id))
                    .where(col(KnowledgeChunk.embedding_model) != model_id)
                    .limit(batch)
                )
                rows = list(await session.execute(stmt))
            if not rows:
                return done
            # Embedded outside any transaction: on SQLite a transaction holds the write lock.
            vectors = await self.runtime.embed_chunks([r[1] for r in rows], batch=batch)
            async with transaction(self.sessions) as session:
                for (chunk_id, _content, _ns), vector in zip(rows, vectors, strict=True):
                    await session.execute(
                        update(KnowledgeChunk)
                        .where(col(KnowledgeChunk.id) == chunk_id)
                        .values(embedding=vector.astype("<f4").tobytes(), embedding_model=model_id)
                    )
                for namespace_id in {r[2] for r in rows}:
                    await session.execute(
                        update(KnowledgeNamespace)
                        .where(col(KnowledgeNamespace.id) == namespace_id)
                        .values(version=KnowledgeNamespace.version + 1)  # type: ignore[operator]
                    )
            for namespace_id in {r[2] for r in rows}:
                self.runtime.cache.invalidate(namespace_id)
            done += len(rows)
