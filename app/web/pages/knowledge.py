"""The knowledge page (platform admins): namespaces, uploads and pasted text, documents and chunks, search.

It works in the organization chosen with the layout's "Acting in" switcher
(global when none), with the same scoping as the API: the service decides what
is visible and writable. Uploads and pasted text become background jobs; the
jobs table refreshes itself (htmx) while one runs, or with a plain meta refresh
without JavaScript.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.datastructures import UploadFile
from litestar.response import Redirect, Template

from app.services.actor import Actor
from app.services.errors import ConflictError, DomainError, InvalidInputError, PermissionDeniedError, whole_number
from app.services.knowledge.jobs import ACTIVE, KnowledgeJobService, job_public
from app.services.knowledge.service import KnowledgeService, document_public
from app.services.knowledge.views import KnowledgeJobView
from app.web.deps import db, get_platform
from app.web.pages.common import PageController, flash, form_text, is_htmx, layout_context

# Room for the multipart framing and the other fields around the file.
_FORM_OVERHEAD = 1024 * 1024


def _require(actor: Actor) -> None:
    actor.require_admin("manage knowledge")


class KnowledgePages(PageController):
    """``/knowledge``: everything on one page, selected by query parameters."""

    path = "/knowledge"

    async def _jobs(self, request: Request[Any, Any, Any], actor: Actor) -> list[KnowledgeJobView]:
        platform = get_platform(request.app.state)
        async with db(request) as session:
            return [job_public(j) for j in await KnowledgeJobService(session, platform.knowledge).list(actor)]

    @get("/")
    async def page(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        ns: str | None = None,
        doc: str | None = None,
        q: str | None = None,
        search_ns: list[str] | None = None,
        limit: int = 5,
    ) -> Template:
        """Namespaces, the selected namespace's documents or a document's chunks, jobs, and a search box."""
        _require(actor)
        runtime = get_platform(request.app.state).knowledge
        context: dict[str, Any] = {"selected_ns": None, "documents": [], "document": None, "chunks": []}
        search: dict[str, Any] = {"q": q or "", "namespaces": search_ns or [], "limit": limit, "results": None}
        async with db(request) as session:
            service = KnowledgeService(session, runtime)
            namespaces = await service.list_namespaces(actor)
            write_org = service.write_org(actor)
            if doc:
                document, namespace = await service.get_by_id(actor, doc)
                context["document"] = document_public(document, namespace)
                context["chunks"] = await service.chunks(actor, doc)
                ns = namespace.id
            if ns:
                selected = await service.namespace_by_id(actor, ns)
                context["selected_ns"] = {
                    "id": selected.id,
                    "name": selected.name,
                    "organization_id": selected.organization_id,
                    "writable": selected.organization_id == write_org,
                }
                context["documents"] = await service.list_documents(actor, selected.id)
            layout = await layout_context(request, session, actor)
        if q:
            try:
                async with db(request) as session:
                    search["results"] = await KnowledgeService(session, runtime).search(
                        actor, q, search_ns or sorted({n["name"] for n in namespaces})[:20] or ["default"], limit
                    )
            except InvalidInputError as exc:
                search["error"] = str(exc)
            else:
                # A passage pointing away from the question (cosine below 0) answers nothing: not listed.
                found = search["results"]
                search["results"] = [r for r in found if (r["score"] or 0) > 0]
                search["hidden"] = len(found) - len(search["results"])
        jobs = await self._jobs(request, actor)
        # Uploads go into the namespace being looked at, else one that exists here, else "default".
        writable = [n["name"] for n in namespaces if n["organization_id"] == write_org] or [
            n["name"] for n in namespaces
        ]
        selected_ns = context.get("selected_ns")
        default_ns = selected_ns["name"] if selected_ns else (writable[0] if writable else "default")
        return Template(
            "pages/knowledge.html",
            context={
                **layout,
                **context,
                "namespaces": namespaces,
                "write_org": write_org,
                "jobs": jobs,
                "jobs_active": any(j["status"] in ACTIVE for j in jobs),
                "search": search,
                "default_ns": default_ns,
                "model_id": runtime.model_id,
                "cache": runtime.cache.stats(),
            },
        )

    @get("/jobs")
    async def jobs_fragment(self, request: Request[Any, Any, Any], actor: Actor) -> Template:
        """The jobs table alone (polled by htmx while a job runs)."""
        _require(actor)
        jobs = await self._jobs(request, actor)
        return Template(
            "partials/_knowledge_jobs.html",
            context={"jobs": jobs, "jobs_active": any(j["status"] in ACTIVE for j in jobs), "htmx": is_htmx(request)},
        )

    @post("/namespaces", status_code=303)
    async def create_namespace(self, request: Request[Any, Any, Any], actor: Actor) -> Redirect:
        """Create an empty namespace in the acting organization (or global)."""
        _require(actor)
        data = await request.form()
        try:
            async with db(request) as session:
                created = await KnowledgeService(session, get_platform(request.app.state).knowledge).create_namespace(
                    actor, form_text(data, "name"), form_text(data, "description") or None
                )
        except (InvalidInputError, ConflictError) as exc:
            flash(request, f"Namespace not created: {exc}")
            return Redirect("/knowledge", status_code=303)
        flash(request, f"Namespace {created.name!r} created.")
        return Redirect(f"/knowledge?{urlencode({'ns': created.id})}", status_code=303)

    @post("/namespaces/{namespace_id:str}/delete", status_code=303)
    async def delete_namespace(self, request: Request[Any, Any, Any], actor: Actor, namespace_id: str) -> Redirect:
        """Delete a namespace and every document in it."""
        _require(actor)
        async with db(request) as session:
            service = KnowledgeService(session, get_platform(request.app.state).knowledge)
            namespace = await service.namespace_by_id(actor, namespace_id)
            if namespace.organization_id != service.write_org(actor):
                raise PermissionDeniedError("Switch to the namespace's organization (or global) to delete it.")
            count = await service.delete_namespace(actor, namespace.name)
        flash(request, f"Namespace {namespace.name!r} deleted with {count} document(s).")
        return Redirect("/knowledge", status_code=303)

    @post("/documents/{doc_id:str}/delete", status_code=303)
    async def delete_document(self, request: Request[Any, Any, Any], actor: Actor, doc_id: str) -> Redirect:
        """Delete one document and its chunks."""
        _require(actor)
        async with db(request) as session:
            service = KnowledgeService(session, get_platform(request.app.state).knowledge)
            _, namespace = await service.get_by_id(actor, doc_id)
            await service.delete_by_id(actor, doc_id)
        flash(request, "Document deleted.")
        return Redirect(f"/knowledge?{urlencode({'ns': namespace.id})}", status_code=303)

    @post("/upload", status_code=303, request_max_body_size=None)
    async def upload(self, request: Request[Any, Any, Any], actor: Actor) -> Redirect:
        """Queue an uploaded file for ingestion (parsed, chunked and embedded in the background)."""
        _require(actor)
        platform = get_platform(request.app.state)
        limit = platform.knowledge.settings.knowledge_max_upload_bytes
        declared = request.headers.get("content-length", "")
        # Refused before the body is read: multipart bodies are spooled to disk while parsed.
        declared_size = whole_number(declared)
        if declared_size is None or declared_size > limit + _FORM_OVERHEAD:
            flash(request, f"Upload refused: files may be at most {limit // (1024 * 1024)} MiB.")
            return Redirect("/knowledge", status_code=303)
        data = await request.form()
        upload = data.get("file")
        namespace = form_text(data, "namespace")
        try:
            if not isinstance(upload, UploadFile):
                raise InvalidInputError.field("file", "choose a file to upload")
            content = await upload.read()
            async with db(request) as session:
                job = await KnowledgeJobService(session, platform.knowledge).create(
                    actor, namespace, upload.filename, content, form_text(data, "key") or None
                )
        except DomainError as exc:
            flash(request, f"Upload refused: {exc}")
            return Redirect("/knowledge", status_code=303)
        platform.knowledge_jobs.submit(job.id)
        flash(request, f"Ingesting {job.filename!r} into {job.namespace!r}: see the progress below.")
        return Redirect("/knowledge#jobs", status_code=303)

    @post("/paste", status_code=303)
    async def paste(self, request: Request[Any, Any, Any], actor: Actor) -> Redirect:
        """Queue pasted text for ingestion."""
        _require(actor)
        platform = get_platform(request.app.state)
        data = await request.form()
        try:
            async with db(request) as session:
                job = await KnowledgeJobService(session, platform.knowledge).create_text(
                    actor,
                    form_text(data, "namespace"),
                    form_text(data, "title"),
                    form_text(data, "text"),
                    form_text(data, "key") or None,
                )
        except DomainError as exc:
            flash(request, f"Text not added: {exc}")
            return Redirect("/knowledge", status_code=303)
        platform.knowledge_jobs.submit(job.id)
        flash(request, f"Ingesting {job.filename!r} into {job.namespace!r}: see the progress below.")
        return Redirect("/knowledge#jobs", status_code=303)
