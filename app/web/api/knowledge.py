"""The knowledge API behind ``bifrost.knowledge``, under /api and /api/sdk/v1.

Scoping is the service's: callers read their organization's knowledge and the
global one, and write their organization's (global writes: platform admins
acting globally).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, MediaType, Request, Response, delete, get, post
from litestar.types import ControllerRouterHandler

from app.services.actor import Actor
from app.services.errors import InvalidInputError, NotFoundError, whole_number
from app.services.knowledge.embeddings import EmbeddingUnavailableError
from app.services.knowledge.jobs import KnowledgeJobs, KnowledgeJobService, UploadTooLargeError, job_public
from app.services.knowledge.service import KnowledgeRuntime, KnowledgeService, document_public
from app.services.knowledge.views import (
    ChunkView,
    DocumentBody,
    KnowledgeDocumentView,
    KnowledgeJobView,
    NamespaceBody,
    NamespaceCreated,
    NamespaceView,
    SearchBody,
    SearchHit,
    StoredDocument,
)
from app.web.api.schemas import Deleted, DeletedCount, documented_body
from app.web.deps import db, get_platform


def _runtime(request: Request[Any, Any, Any]) -> KnowledgeRuntime:
    return get_platform(request.app.state).knowledge


def _jobs(request: Request[Any, Any, Any]) -> KnowledgeJobs:
    return get_platform(request.app.state).knowledge_jobs


def embedding_unavailable(_request: Request[Any, Any, Any], exc: EmbeddingUnavailableError) -> Response[Any]:
    """503: the embedding model or API is not usable (the SDK raises ConfigurationError)."""
    return Response(
        {"status_code": 503, "detail": f"Embeddings are unavailable: {exc}"},
        status_code=503,
        media_type=MediaType.JSON,
        headers={"x-bifrost-error": "configuration"},
    )


def upload_too_large(_request: Request[Any, Any, Any], exc: UploadTooLargeError) -> Response[Any]:
    """413 with the field named, like the files API."""
    return Response(
        {"status_code": 413, "detail": str(exc), "extra": {"errors": exc.errors}},
        status_code=413,
        media_type=MediaType.JSON,
    )


async def read_capped(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    declared_size = whole_number(declared)
    if declared_size is not None and declared_size > limit:
        raise UploadTooLargeError.field("file", f"must be at most {limit} bytes")
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise UploadTooLargeError.field("file", f"must be at most {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def _body(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidInputError("The body must be a JSON object.", [{"field": "body", "message": "must be an object"}])
    return data


class KnowledgeController(Controller):
    """Store, search, read and delete knowledge documents; namespaces; file ingestion jobs."""

    path = "/knowledge"
    tags = ["knowledge"]
    exception_handlers = {EmbeddingUnavailableError: embedding_unavailable, UploadTooLargeError: upload_too_large}

    @post("/documents", status_code=201)
    async def store(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        data: Annotated[dict[str, Any], documented_body(DocumentBody)],
    ) -> StoredDocument:
        """Store a document (``{content, namespace, key?, metadata?}``); the same key replaces it. Returns its id."""
        body = _body(data)
        async with db(request) as session:
            doc, ns = await KnowledgeService(session, _runtime(request)).store(
                actor,
                body.get("content"),
                body.get("namespace", "default"),
                body.get("key"),
                body.get("metadata"),
            )
            return {
                "id": doc.id,
                "namespace": ns.name,
                "key": doc.key,
                "chunk_count": doc.chunk_count,
                "organization_id": ns.organization_id,
            }

    @get("/documents")
    async def get_by_key(
        self, request: Request[Any, Any, Any], actor: Actor, key: str, namespace: str = "default"
    ) -> KnowledgeDocumentView:
        """The document with ``key`` (the organization's, else the global one); 404 when none."""
        async with db(request) as session:
            return await KnowledgeService(session, _runtime(request)).get(actor, key, namespace)

    @delete("/documents", status_code=200)
    async def delete_by_key(
        self, request: Request[Any, Any, Any], actor: Actor, key: str, namespace: str = "default"
    ) -> Deleted:
        """Delete the document with ``key`` in the caller's scope; 404 when there is none."""
        async with db(request) as session:
            deleted = await KnowledgeService(session, _runtime(request)).delete(actor, key, namespace)
        if not deleted:
            raise NotFoundError(f"No knowledge document with key {key!r} in namespace {namespace!r} here.")
        return {"deleted": True}

    @get("/documents/{doc_id:str}")
    async def get_by_id(self, request: Request[Any, Any, Any], actor: Actor, doc_id: str) -> KnowledgeDocumentView:
        """A document by id."""
        async with db(request) as session:
            doc, ns = await KnowledgeService(session, _runtime(request)).get_by_id(actor, doc_id)
            return document_public(doc, ns)

    @get("/documents/{doc_id:str}/chunks")
    async def chunks(self, request: Request[Any, Any, Any], actor: Actor, doc_id: str) -> list[ChunkView]:
        """The passages a document was split into, in order."""
        async with db(request) as session:
            return await KnowledgeService(session, _runtime(request)).chunks(actor, doc_id)

    @delete("/documents/{doc_id:str}", status_code=200)
    async def delete_by_id(self, request: Request[Any, Any, Any], actor: Actor, doc_id: str) -> Deleted:
        """Delete a document by id."""
        async with db(request) as session:
            await KnowledgeService(session, _runtime(request)).delete_by_id(actor, doc_id)
        return {"deleted": True}

    @post("/search", status_code=200)
    async def search(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        data: Annotated[dict[str, Any], documented_body(SearchBody)],
    ) -> list[SearchHit]:
        """Semantic search: ``{query, namespaces (or namespace), limit?, min_score?, metadata_filter?}``."""
        body = _body(data)
        namespaces = body.get("namespaces", body.get("namespace", "default"))
        async with db(request) as session:
            return await KnowledgeService(session, _runtime(request)).search(
                actor,
                body.get("query"),
                namespaces,
                body.get("limit", 5),
                body.get("min_score"),
                body.get("metadata_filter"),
            )

    @get("/namespaces")
    async def list_namespaces(self, request: Request[Any, Any, Any], actor: Actor) -> list[NamespaceView]:
        """Namespaces the caller can read, with document counts."""
        async with db(request) as session:
            return await KnowledgeService(session, _runtime(request)).list_namespaces(actor)

    @post("/namespaces", status_code=201)
    async def create_namespace(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        data: Annotated[dict[str, Any], documented_body(NamespaceBody)],
    ) -> NamespaceCreated:
        """Create an empty namespace (``{name, description?}``); 409 when it exists."""
        body = _body(data)
        async with db(request) as session:
            ns = await KnowledgeService(session, _runtime(request)).create_namespace(
                actor, body.get("name"), body.get("description")
            )
            return {"id": ns.id, "name": ns.name, "document_count": 0, "organization_id": ns.organization_id}

    @delete("/namespaces/{name:str}", status_code=200)
    async def delete_namespace(self, request: Request[Any, Any, Any], actor: Actor, name: str) -> DeletedCount:
        """Delete a namespace of the caller's scope and its documents; ``{"deleted": <documents>}``."""
        async with db(request) as session:
            return {"deleted": await KnowledgeService(session, _runtime(request)).delete_namespace(actor, name)}

    @post("/uploads", status_code=202, request_max_body_size=None)
    async def upload(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        namespace: str,
        filename: str,
        key: str | None = None,
    ) -> KnowledgeJobView:
        """Ingest a file (raw body; ``.txt .md .html .pdf .docx``) in the background; answers the job."""
        runtime = _runtime(request)
        # Checked before reading the body: a refused caller does not get to upload 50 MB first.
        KnowledgeService.write_org(actor)
        data = await read_capped(request, runtime.settings.knowledge_max_upload_bytes)
        async with db(request) as session:
            job = await KnowledgeJobService(session, runtime).create(actor, namespace, filename, data, key)
            public = job_public(job)
        _jobs(request).submit(job.id)
        return public

    @get("/jobs")
    async def list_jobs(self, request: Request[Any, Any, Any], actor: Actor) -> list[KnowledgeJobView]:
        """Recent ingestion jobs of the caller's scope."""
        async with db(request) as session:
            return [job_public(j) for j in await KnowledgeJobService(session, _runtime(request)).list(actor)]

    @get("/jobs/{job_id:str}")
    async def get_job(self, request: Request[Any, Any, Any], actor: Actor, job_id: str) -> KnowledgeJobView:
        """One ingestion job: status, stage and progress."""
        async with db(request) as session:
            return job_public(await KnowledgeJobService(session, _runtime(request)).get(actor, job_id))


# Route handlers served under both /api and /api/sdk/v1 (SDK) unless the module says otherwise.
CONTROLLERS: list[ControllerRouterHandler] = [KnowledgeController]
