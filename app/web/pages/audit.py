"""``/admin/audit`` (platform admins): the audit log with filters (who, action, organization, dates) and CSV export."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Request, get
from litestar.response import Template

from app.services.actor import Actor
from app.services.audit.service import GLOBAL, AuditFilter, AuditService
from app.services.errors import InvalidInputError
from app.services.identity.organizations import OrganizationService
from app.web.deps import db
from app.web.pages.common import PageController, layout_context

PAGE_SIZE = 100


class AuditPages(PageController):
    """The audit log page."""

    path = "/admin/audit"

    @get("/")
    async def index(self, request: Request[Any, Any, Any], actor: Actor) -> Template:
        """Events newest first, 100 a page; the filters are a GET form, so a filtered view can be bookmarked."""
        actor.require_admin("read the audit log")
        query = request.query_params
        raw = {k: (query.get(k) or "").strip() for k in ("actor", "action", "organization_id", "since", "until")}
        before = query.get("before") or None
        error = None
        page: dict[str, Any] = {"events": [], "next_before": None}
        async with db(request) as session:
            try:
                filters = AuditFilter.parse(**{k: v or None for k, v in raw.items()})
                page = dict(await AuditService(session).page(actor, filters, PAGE_SIZE, before))
            except InvalidInputError as exc:
                error = str(exc)  # shown above the table; the page itself loaded
            organizations = await OrganizationService(session).list(actor, include_inactive=True)
            layout = await layout_context(request, session, actor)
        filled = {k: v for k, v in raw.items() if v}
        return Template(
            "pages/audit.html",
            context={
                **layout,
                "filters": raw,
                "events": page["events"],
                "older_url": f"/admin/audit?{urlencode({**filled, 'before': page['next_before']})}"
                if page["next_before"]
                else None,
                "export_url": "/api/audit/export.csv" + (f"?{urlencode(filled)}" if filled else ""),
                "organizations": organizations,
                "global_value": GLOBAL,
                "error": error,
            },
            status_code=422 if error else 200,
        )


AUDIT_PAGE_HANDLERS = [AuditPages]
