"""Demo: a small ticket desk built on `bifrost.tables`.

One workflow, three ways in: an HTTP endpoint (a monitoring tool's webhook), the
"Report an incident" form (created by `bifrost init --demo`) and the chat assistant.
Tickets live in the table ``tickets`` of the caller's organization: a Contoso technician
never sees Fabrikam's tickets, and a platform admin acting globally uses the global table.
"""

import logging
from datetime import UTC, datetime
from typing import Literal

from bifrost import UserError, context, data_provider, tables, workflow

logger = logging.getLogger(__name__)

TABLE = "tickets"

# Where each client has offices. A real provider would read these from a table, the PSA or
# an integration; a constant keeps the demo readable.
CLIENT_SITES: dict[str, list[str]] = {
    "Contoso": ["Seattle HQ", "Tacoma warehouse", "Remote staff"],
    "Fabrikam": ["Berlin office", "Munich lab"],
}


def my_clients() -> list[str]:
    """The clients the caller works for, as an MSP sees it: each client is an organization.

    A technician acts in their organization (``context.org_id``), so Contoso's technician opens
    tickets for Contoso only; a platform admin acting globally serves every client.
    """
    if context.org_id is None:
        return list(CLIENT_SITES)
    return [context.org_name] if context.org_name in CLIENT_SITES else []


# The choices depend on the caller's organization: the platform caches a provider's answer per
# organization and parameters, so one organization's list is never shown to another.
@data_provider(name="get_clients", description="Clients you work for", cache_ttl_seconds=600)
async def get_clients() -> list[dict]:
    """The clients a ticket can be opened for: the caller's own organization (all of them, globally)."""
    return [{"label": name, "value": name} for name in my_clients()]


@data_provider(name="get_client_sites", description="Sites of one client", cache_ttl_seconds=600)
async def get_client_sites(client: str = "") -> list[dict]:
    """The sites of ``client``: a cascading select, refreshed when the client field changes.

    A form passes the parameter with ``"data_provider_inputs": {"client": {"field": "client"}}``.

    Args:
        client: The client chosen in the form (empty until one is picked); not one of the caller's: no sites.
    """
    if client not in my_clients():
        return []
    return [{"label": site, "value": site} for site in CLIENT_SITES.get(client, [])]


@workflow(
    category="Service Desk",
    tags=["demo", "tickets"],
    # POST /api/endpoints/create_ticket with an API key: a monitoring tool's webhook target.
    endpoint_enabled=True,
    allowed_methods=["POST"],
    is_tool=True,
    tool_description="Open a service desk ticket for a client.",
    time_saved=5,
)
async def create_ticket(
    client: str,
    summary: str,
    site: str = "",
    priority: Literal["low", "normal", "high"] = "normal",
    source: str = "manual",
) -> dict:
    """Open a ticket and store it in the ``tickets`` table.

    Args:
        client: Client name (from get_clients).
        summary: What is wrong, in one line.
        site: Client site (from get_client_sites); empty when unknown.
        priority: How urgent it is.
        source: Who raised it: manual, webhook, monitoring...
    """
    if client not in CLIENT_SITES:
        # A UserError is shown to the caller as is (no traceback): say how to fix the input.
        raise UserError(f"Unknown client {client!r}: use one of {', '.join(CLIENT_SITES)}.")
    if client not in my_clients():
        # The form only offers the caller's own client; this stops a hand-made request for another one.
        raise UserError(f"You do not work for {client}: open tickets for {', '.join(my_clients()) or 'no client'}.")
    if site and site not in CLIENT_SITES[client]:
        raise UserError(f"{client} has no site {site!r}: use one of {', '.join(CLIENT_SITES[client])}.")
    ticket = {
        "client": client,
        "site": site,
        "summary": summary.strip(),
        "priority": priority,
        "status": "open",
        "source": source,
        "opened_by": context.email,
        # ISO timestamps sort as text, so order_by="opened_at" is chronological.
        "opened_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    doc = await tables.insert(TABLE, ticket)  # the table is created on first insert
    logger.info("Ticket %s opened for %s (%s)", doc.id, client, priority)
    return {"ticket_id": doc.id, **ticket}


@workflow(category="Service Desk", tags=["demo", "tickets"], is_tool=True)
async def list_open_tickets(client: str = "", priority: str = "", limit: int = 10) -> list[dict]:
    """List open tickets, newest first.

    Args:
        client: Only this client's tickets (default: all).
        priority: Only this priority: low, normal or high (default: all).
        limit: How many at most.
    """
    where: dict = {"status": "open"}  # equality; operators look like {"opened_at": {"gte": "2026-01-01"}}
    if client:
        where["client"] = client
    if priority:
        where["priority"] = priority
    page = await tables.query(TABLE, where=where, order_by="opened_at", order_dir="desc", limit=limit)
    logger.info("%d open ticket(s) match, showing %d", page.total, len(page.documents))
    return [{"ticket_id": d.id, **d.data} for d in page.documents]


@workflow(
    category="Service Desk",
    tags=["demo", "tickets"],
    is_tool=True,
    tool_description="Look up one ticket by its id: client, site, summary, status.",
)
async def get_ticket(ticket_id: str) -> dict:
    """Return one ticket.

    Args:
        ticket_id: The id create_ticket returned.
    """
    doc = await tables.get(TABLE, ticket_id)
    if doc is None:
        raise UserError(f"No ticket {ticket_id!r} in this organization.")
    return {"ticket_id": doc.id, **doc.data}


@workflow(category="Service Desk", tags=["demo", "tickets"])
async def close_ticket(ticket_id: str, resolution: str) -> dict:
    """Close a ticket with a resolution note.

    Args:
        ticket_id: The ticket to close.
        resolution: What fixed it.
    """
    closed_at = datetime.now(UTC).isoformat(timespec="seconds")
    # update() merges these keys into the document; None when there is no such document.
    doc = await tables.update(TABLE, ticket_id, {"status": "closed", "resolution": resolution, "closed_at": closed_at})
    if doc is None:
        raise UserError(f"No ticket {ticket_id!r} in this organization.")
    return {"ticket_id": doc.id, **doc.data}
