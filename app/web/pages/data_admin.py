"""``/admin/data`` (platform admins): execution retention (default, per organization, the last pruning)
and the indexed fields of document tables."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.response import Redirect, Template

from app.services.actor import Actor
from app.services.errors import InvalidInputError, NotFoundError
from app.services.executions import retention
from app.services.identity.organizations import OrganizationService
from app.services.tables.service import TableService
from app.web.deps import db, get_platform
from app.web.pages.common import PageController, flash, form_text, layout_context


class DataPages(PageController):
    """How long history is kept, and which table fields are indexed."""

    path = "/admin/data"

    @get("/")
    async def index(self, request: Request[Any, Any, Any], actor: Actor) -> Template:
        """Retention settings and the last pruning; every table with its indexed fields."""
        actor.require_admin("manage data retention and table indexes")
        platform = get_platform(request.app.state)
        async with db(request) as session:
            organizations = await OrganizationService(session).list(actor, include_inactive=True)
            overrides = {row.organization_id: row.retention_days for row in await retention.overrides_of(session)}
            tables = await TableService(session).all_tables(actor)
            layout = await layout_context(request, session, actor)
        names = {o.id: o.name for o in organizations}
        pruner = getattr(platform, "execution_pruner", None)
        return Template(
            "pages/data_admin.html",
            context={
                **layout,
                "default_days": platform.settings.execution_retention_days,
                "interval_seconds": platform.settings.execution_prune_interval_seconds,
                "organizations": [{"id": o.id, "name": o.name, "days": overrides.get(o.id)} for o in organizations],
                "report": pruner.last if pruner else None,
                "pruned_since_start": pruner.total_executions if pruner else 0,
                "pruner_running": pruner is not None,
                "tables": [
                    {
                        "id": t.id,
                        "name": t.name,
                        "app": t.app,
                        "scope": names.get(t.organization_id or "", "Global"),
                        "fields": fields,
                    }
                    for t, fields in tables
                ],
            },
        )

    @post("/retention", status_code=303)
    async def set_retention(self, request: Request[Any, Any, Any], actor: Actor) -> Redirect:
        """Set or clear one organization's own retention (days; empty: the platform's default)."""
        form = await request.form()
        org_id = form_text(form, "organization_id")
        try:
            async with db(request) as session:
                days = await retention.set_override(session, actor, org_id, form_text(form, "days").strip())
        except (InvalidInputError, NotFoundError) as exc:
            flash(request, f"Not saved: {exc}")
        else:
            flash(request, "Retention saved: " + ("the platform's default." if days is None else f"{days:g} days."))
        return Redirect("/admin/data", status_code=303)

    @post("/prune", status_code=303)
    async def prune_now(self, request: Request[Any, Any, Any], actor: Actor) -> Redirect:
        """Run one pruning pass now (in small batches, like the background one)."""
        actor.require_admin("prune executions")
        pruner = getattr(get_platform(request.app.state), "execution_pruner", None)
        if pruner is None:
            flash(request, "Retention runs only in the serving process (bifrost serve).")
        else:
            report = await pruner.run_once()
            flash(request, f"Pruned {report.executions} execution(s) and {report.log_lines} log line(s).")
        return Redirect("/admin/data", status_code=303)

    @post("/tables/{table_id:str}/indexes", status_code=303)
    async def set_indexes(self, request: Request[Any, Any, Any], actor: Actor, table_id: str) -> Redirect:
        """Declare a table's indexed fields (comma-separated; empty: none). Builds and drops indexes."""
        form = await request.form()
        fields = [f.strip() for f in form_text(form, "fields").split(",") if f.strip()]
        try:
            async with db(request) as session:
                declared = await TableService(session).set_indexed_fields_by_id(actor, table_id, fields)
        except (InvalidInputError, NotFoundError) as exc:
            flash(request, f"Not saved: {exc}")
        else:
            flash(request, "Indexed fields: " + (", ".join(declared) or "none") + ".")
        return Redirect("/admin/data", status_code=303)


DATA_PAGE_HANDLERS = [DataPages]
