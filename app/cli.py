"""The ``bifrost`` command: ``init``, ``serve``, ``run``, ``workflows``, ``api-key``, ``migrate``, ``secrets``, ``notebook``.

Imports are deferred into each command so that ``bifrost --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

DEMO_ADMIN_EMAIL = "admin@example.com"
DEMO_ADMIN_PASSWORD = "bifrost-admin"  # printed by `make run`; change it for anything but a demo


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    """``-p key=value``: values stay text (validation coerces them) unless they look like JSON lists/objects."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"bifrost: parameter {pair!r} must look like key=value")
        if value[:1] in "[{":
            try:
                params[key] = json.loads(value)
                continue
            except json.JSONDecodeError as exc:
                raise SystemExit(f"bifrost: parameter {key!r} is not valid JSON: {exc}") from None
        params[key] = value
    return params


# ----- init ------------------------------------------------------------------------------------------
async def _init(args: argparse.Namespace) -> int:
    from sqlalchemy import select
    from sqlmodel import col

    from app.db import create_engine, session_factory, transaction, upgrade_database_async
    from app.models import User
    from app.services.identity.users import UserService
    from app.settings import get_settings

    settings = get_settings()
    await upgrade_database_async(settings.resolved_database_url)
    engine = create_engine(settings.resolved_database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            existing = (await session.execute(select(User).where(col(User.is_superuser).is_(True)))).scalars().first()
            if existing is None:
                await UserService(session).create(
                    None, args.admin_email, "Platform Admin", is_superuser=True, password=args.admin_password
                )
                print(f"Created platform admin {args.admin_email}")
                if args.admin_password == DEMO_ADMIN_PASSWORD:
                    print(
                        "WARNING: the admin has the demo password. Set BIFROST_ADMIN_PASSWORD (or --admin-password) "
                        "before `bifrost init` for anything but a local demo."
                    )
            else:
                print(f"Platform admin exists: {existing.email}")
    finally:
        await engine.dispose()
    if args.demo:
        _install_demo_workspace(settings.workspace)
        await _install_demo_tenants(settings.resolved_database_url)
        await _install_demo_data(settings)
    print(f"Database ready: {settings.resolved_database_url}")
    if not (settings.secret_key or "").strip():
        from app.services.secrets import ensure_key_file

        print(f"Secret key file: {ensure_key_file(settings.home)} (back it up: secrets cannot be read without it)")
    print(f"Workspace: {settings.workspace}")
    return 0


DEMO_TENANTS = (
    # organization, domain, technician email, password
    ("Contoso", "contoso.example", "tech@contoso.example", "contoso-tech"),
    ("Fabrikam", "fabrikam.example", "tech@fabrikam.example", "fabrikam-tech"),
)


async def _install_demo_tenants(database_url: str) -> None:
    """Two client organizations with a technician each, so tenancy is visible from the first run."""
    from app.db import create_engine, session_factory, transaction
    from app.services.identity.auth import AuthService
    from app.services.identity.organizations import OrganizationService
    from app.services.identity.roles import RoleService
    from app.services.identity.users import UserService

    engine = create_engine(database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            orgs, users = OrganizationService(session), UserService(session)
            admin = next(u for u in await users.list_admins())
            for org_name, domain, email, password in DEMO_TENANTS:
                if await users.by_email(email):
                    continue
                admin_actor = await AuthService(session).actor_for_user(admin.id)
                org = await orgs.find(org_name) or await orgs.create(admin_actor, org_name, domain=domain)
                tech = await users.create(
                    admin_actor, email, f"{org_name} Technician", org_id=org.id, password=password
                )
                in_org = await AuthService(session).actor_for_user(admin.id, org.id)
                role = await RoleService(session).create(in_org, "Technician", "Runs day-to-day workflows")
                await RoleService(session).assign_users(in_org, role.id, [tech.id])
                print(f"Demo organization {org_name}: log in as {email} / {password}")
    finally:
        await engine.dispose()


def _install_demo_workspace(workspace: Path) -> None:
    """Copy the demo workflows into the workspace, never overwriting a file the user has."""
    import shutil

    source = Path(__file__).parent / "demo_workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    for file in sorted(source.glob("*.py")):
        target = workspace / file.name
        if not target.exists():
            shutil.copyfile(file, target)
            print(f"Demo workflow added: {target}")


# What the demo workflows read (health.py). Set only when missing: an admin's edit survives `init`.
DEMO_CONFIG: tuple[tuple[str, Any, bool, str], ...] = (
    # key, value, is_secret, description
    # The health check always probes the platform itself at its real address; these are extra services.
    ("health_check_targets", [], False, "host:port services the hourly health check probes besides the platform"),
    ("psa_api_token", "demo-not-a-real-token", True, "PSA API token (demo value: fake)"),
)

DEMO_FORM = "Report an incident"
DEMO_FORM_SCHEMA = {
    "fields": [
        {"name": "intro", "type": "markdown", "content": "Opens a ticket in your organization's **tickets** table."},
        {"name": "client", "type": "select", "label": "Client", "required": True, "data_provider": "get_clients"},
        {
            # Cascading: the sites are those of the client chosen above, refreshed when it changes.
            "name": "site",
            "type": "select",
            "label": "Site",
            "data_provider": "get_client_sites",
            "data_provider_inputs": {"client": {"field": "client"}},
            "visible_when": {"field": "client"},
        },
        {
            "name": "summary",
            "type": "text",
            "label": "What is wrong?",
            "required": True,
            "validation": {"min": 5, "max": 200, "message": "Between 5 and 200 characters"},
        },
        {
            "name": "priority",
            "type": "radio",
            "default": "normal",
            "options": [
                {"label": "Low", "value": "low"},
                {"label": "Normal", "value": "normal"},
                {"label": "High", "value": "high"},
            ],
        },
    ]
}

# Short on purpose: each is embedded by the local model during `bifrost init --demo`.
DEMO_RUNBOOKS = {
    "mfa-reset": (
        "Runbook: reset a user's MFA device. Verify the caller's identity with a call back to the number "
        "on file. In the Microsoft 365 admin center open the user, choose Manage multifactor "
        "authentication and select Require re-register MFA. Ask the user to sign in again and enrol the "
        "new phone in the Authenticator app. Note the ticket number in the user's record."
    ),
    "vpn-troubleshooting": (
        "Runbook: VPN will not connect. Check that the user's internet connection works without the VPN. "
        "Confirm the account is not locked and the password has not expired. Restart the VPN client and "
        "reinstall it if the error persists. If several users of one site fail at once, check the "
        "firewall's VPN service and open a high priority ticket for the network team."
    ),
    "printer-offline": (
        "Runbook: printer shows as offline. Power-cycle the printer and check its network cable or Wi-Fi. "
        "Print a configuration page to read its IP address and ping it from the print server. Clear the "
        "stuck jobs in the print queue and restart the Print Spooler service."
    ),
}


async def _install_demo_data(settings: Any) -> None:
    """Global config, the workspace synced, a form and the runbooks knowledge: what the demo workflows use.

    Idempotent: each piece is created only when missing, so a second ``init --demo`` changes nothing.
    """
    import time

    from app.db import create_engine, session_factory, transaction
    from app.engine.scan import scan_workspace
    from app.services.chat.ai_settings import AISettingsService
    from app.services.config.service import ConfigService
    from app.services.errors import DomainError, NotFoundError
    from app.services.executions.schedules import ScheduleService
    from app.services.forms.service import FormService
    from app.services.identity.auth import AuthService
    from app.services.identity.users import UserService
    from app.services.knowledge.service import KnowledgeRuntime, KnowledgeService
    from app.services.secrets import secret_box
    from app.services.workflows.catalogue import WorkflowService

    engine = create_engine(settings.resolved_database_url)
    sessions = session_factory(engine)
    runtime = KnowledgeRuntime(settings)
    try:
        async with transaction(sessions) as session:
            admin = next(u for u in await UserService(session).list_admins())
            actor = await AuthService(session).actor_for_user(admin.id)  # acting globally
            values = ConfigService(session, lambda: secret_box(settings.secret_key, settings.home))
            for key, value, is_secret, description in DEMO_CONFIG:
                try:
                    await values.get(actor, key)
                except NotFoundError:
                    await values.set(actor, key, value, is_secret=is_secret, description=description)
                    print(f"Demo config {key} set{' (secret)' if is_secret else ''}")
            # The chat assistant answers from the runbooks once a model is configured.
            ai_settings = AISettingsService(session, settings, lambda: secret_box(settings.secret_key, settings.home))
            if not (await ai_settings.get(actor))["knowledge_namespaces"]:
                await ai_settings.update(actor, None, {"knowledge_namespaces": ["runbooks"]})
                print("Demo chat knowledge: runbooks")

        # A form names a workflow that must exist in the database, and workflows reach it when the
        # workspace is synced. The server syncs at start; doing the same sync here (a one-shot import
        # in a worker process, as `bifrost workflows` does) lets init create the form right away.
        scan = await scan_workspace(settings.workspace)
        async with transaction(sessions) as session:
            await WorkflowService(session).sync(scan.workflows + scan.data_providers, scan.errors)
            await ScheduleService(session).sync_workspace()
        WorkflowService.forget_cached()
        for error in scan.errors:
            print(f"Workspace error in {error.get('file')}: {error.get('error')}", file=sys.stderr)

        async with transaction(sessions) as session:
            forms = FormService(session)
            if not any(form.name == DEMO_FORM for form in await forms.list(actor)):
                try:
                    await forms.create(
                        actor,
                        name=DEMO_FORM,
                        description="Open a service desk ticket for one of our clients.",
                        workflow_id="create_ticket",
                        form_schema=DEMO_FORM_SCHEMA,
                        access_level="authenticated",  # every signed-in user, technicians included
                        organization_id=None,  # global: offered in every organization
                    )
                    print(f"Demo form added: {DEMO_FORM}")
                except DomainError as exc:  # e.g. tickets.py was removed from the workspace
                    print(f"Demo form skipped: {exc}", file=sys.stderr)

        async with transaction(sessions) as session:
            knowledge = KnowledgeService(session, runtime)
            missing = []
            for key in DEMO_RUNBOOKS:
                try:
                    await knowledge.get(actor, key, "runbooks")
                except NotFoundError:
                    missing.append(key)
        if missing:
            started = time.perf_counter()
            # Embed before opening the write transaction (prepare() touches no database): SQLite holds
            # its write lock for the whole transaction, which must not wait for the model.
            prepared = {key: await knowledge.prepare(DEMO_RUNBOOKS[key]) for key in missing}
            async with transaction(sessions) as session:
                knowledge = KnowledgeService(session, runtime)
                for key in missing:
                    await knowledge.store_in(
                        None, admin.id, DEMO_RUNBOOKS[key], "runbooks", key, {"kind": "runbook"}, prepared=prepared[key]
                    )
            print(f"Demo runbooks stored in knowledge namespace 'runbooks' ({time.perf_counter() - started:.1f} s)")
    finally:
        runtime.close()
        await engine.dispose()


# ----- serve -----------------------------------------------------------------------------------------
def listening_banner(servers: Any, public_url: str) -> str:
    """The lines ``bifrost serve`` prints once it listens: the URL of the port it really got.

    Args:
        servers: uvicorn's listening ``asyncio`` servers.
        public_url: ``BIFROST_PUBLIC_URL`` (or the configured host and port), named when it differs.

    Returns:
        The banner text (``make run`` prints nothing else about the address).
    """
    host, port = "127.0.0.1", 0
    for server in servers:
        for sock in server.sockets:
            host, port = sock.getsockname()[:2]
            break
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # a browser cannot open the wildcard address
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"http://{shown}:{port}"
    lines = ["", f"  Bifrost Workbench is listening on {url}", f"  API reference: {url}/schema"]
    if public_url.rstrip("/") != url:
        lines.append(f"  Public URL (BIFROST_PUBLIC_URL): {public_url}")
    return "\n".join([*lines, ""])


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.settings import get_settings
    from app.web.app import create_app
    from app.web.server import proxy_options

    if args.host:
        os.environ["BIFROST_HOST"] = args.host
    if args.port:
        os.environ["BIFROST_PORT"] = str(args.port)
    if args.workers:
        os.environ["BIFROST_WORKERS"] = str(args.workers)
    get_settings.cache_clear()
    settings = get_settings()
    app = create_app(settings)
    # The URL is printed once the port is open (Server.startup): before that it would only be a wish.
    print(f"Starting Bifrost Workbench (workspace {settings.workspace}, {settings.workers} workers)", flush=True)
    platform = app.state.platform
    runs_ahead = args.runs_ahead if args.runs_ahead is not None else os.environ.get("BIFROST_RUNS_AHEAD_PER_WORKER")
    if runs_ahead is not None and hasattr(platform.dispatcher, "runs_ahead_per_worker"):  # the embedded dispatcher
        if not str(runs_ahead).isascii() or not str(runs_ahead).isdigit():
            print(f"bifrost serve: --runs-ahead must be a whole number >= 0, not {runs_ahead!r}", file=sys.stderr)
            return 2
        platform.dispatcher.runs_ahead_per_worker = int(runs_ahead)
    # Orphans of a run (a worker died, their parent with it) are re-parented to this process instead
    # of init, so the pool can end them with their run.
    from app.engine import procs

    if procs.become_subreaper():
        platform.pool.sweep_orphans = True

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[Any] | None = None) -> None:
            await super().startup(sockets)
            if not self.should_exit:  # listening now: name the address it actually got
                print(listening_banner(self.servers, settings.resolved_public_url), flush=True)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # SIGTERM / Ctrl+C: start no more executions at once (queued ones stay PENDING for the next
            # start) while uvicorn closes connections; running ones get the grace period to finish.
            platform.begin_shutdown(settings.shutdown_grace_seconds)
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
        **proxy_options(settings),
        # Open requests (say a wait=true call on a queued run) must not hold the stop past the grace period.
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_seconds)),
    )
    Server(config).run()
    return 0


# ----- worker ----------------------------------------------------------------------------------------
def _worker(args: argparse.Namespace) -> int:
    """``bifrost worker``: a worker node taking runs from the Postgres queue (docs/deploy.md)."""
    import asyncio
    import signal

    from app.engine import procs
    from app.engine.node import WorkerNode
    from app.settings import get_settings

    if args.workers:
        os.environ["BIFROST_WORKERS"] = str(args.workers)
    if args.name:
        os.environ["BIFROST_NODE_NAME"] = args.name
    get_settings.cache_clear()
    settings = get_settings()
    if settings.queue != "postgres":
        print("bifrost worker needs BIFROST_QUEUE=postgres and a Postgres BIFROST_DATABASE_URL", file=sys.stderr)
        return 2
    try:
        node = WorkerNode(settings)
    except ValueError as exc:  # not a Postgres URL
        print(f"bifrost worker: {exc}", file=sys.stderr)
        return 2

    async def serve_jobs() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if procs.become_subreaper():  # orphans of a run end with it, as under `bifrost serve`
            node.pool.sweep_orphans = True
        await node.start()
        print(
            f"Bifrost worker node {node.name}: {node.concurrency} concurrent runs, workspace "
            f"{settings.workspace}, workflows reach {node.sdk_url}",
            flush=True,
        )
        stopped = asyncio.ensure_future(node.wait_stopped())
        await asyncio.wait([stopped, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        # SIGTERM: take no more runs, let running ones finish for BIFROST_SHUTDOWN_GRACE_SECONDS.
        await node.stop()

    asyncio.run(serve_jobs())
    return 0


# ----- run -------------------------------------------------------------------------------------------
def _print_log(event: dict[str, Any], as_json: bool) -> None:
    if as_json:
        return
    stamp = str(event.get("timestamp", ""))[11:23]
    print(f"{stamp} {event.get('level', ''):<7} {event.get('message', '')}", file=sys.stderr, flush=True)


def _print_refusal(message: str, errors: list[dict[str, Any]]) -> None:
    """Print why a run was refused: the message, then each field error it does not already say.

    A single bad field's message is ``"field: problem"`` itself; printing it again below read as two errors.
    """
    print(f"bifrost: {message}", file=sys.stderr)
    for error in errors:
        line = f"{error['field']}: {error['message']}"
        if line not in message:
            print(f"  {line}", file=sys.stderr)


def _print_outcome(execution: Mapping[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(execution, indent=2, default=str))
    elif execution["status"] == "Completed":
        print(json.dumps(execution["result"], indent=2, default=str))
    else:
        print(f"{execution['status']}: {execution.get('error_message') or ''}", file=sys.stderr)
        if execution.get("traceback") and not execution.get("user_error"):
            print(execution["traceback"], file=sys.stderr)
    return 0 if execution["status"] == "Completed" else 1


async def _run_remote(args: argparse.Namespace, params: dict[str, Any], url: str) -> int:
    import httpx

    key = os.environ.get("BIFROST_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=None) as client:
        response = await client.post(
            f"/api/workflows/{args.workflow}/execute", json={"params": params, "org": args.org}
        )
        if response.status_code >= 400:
            body = response.json()
            _print_refusal(str(body.get("detail")), (body.get("extra") or {}).get("errors", []))
            return 2
        execution_id = response.json()["execution_id"]
        async with client.stream("GET", f"/api/executions/{execution_id}/stream") as stream:
            event_name = None
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    event_name = line[6:].strip()
                elif line.startswith("data:") and event_name == "log":
                    _print_log(json.loads(line[5:]), args.json)
        final = (await client.get(f"/api/executions/{execution_id}")).json()
    return _print_outcome(final, args.json)


async def _run_embedded(args: argparse.Namespace, params: dict[str, Any]) -> int:
    from sqlalchemy import select
    from sqlmodel import col

    from app.db import transaction
    from app.models import User
    from app.services.errors import DomainError, InvalidInputError
    from app.services.executions.service import ExecutionService, execution_view
    from app.services.identity.auth import AuthService
    from app.settings import get_settings
    from app.web.server import running_server

    settings = get_settings()
    async with running_server(settings) as (platform, _url):
        async with transaction(platform.sessions) as session:
            stmt = (
                select(User).where(col(User.email) == args.as_user)
                if args.as_user
                else select(User).where(col(User.is_superuser).is_(True))
            )  # type: ignore[attr-defined]
            user = (await session.execute(stmt.order_by(col(User.created_at)))).scalars().first()
            if user is None:
                print("bifrost: no such user; run `bifrost init` first (or pass --as EMAIL)", file=sys.stderr)
                return 2
            actor = await AuthService(session).actor_for_user(user.id)
        try:
            async with transaction(platform.sessions) as session:
                execution = await ExecutionService(session, platform.dispatcher).submit(
                    args.workflow, params, actor, args.org, trigger="cli"
                )
        except DomainError as exc:
            _print_refusal(str(exc), exc.errors if isinstance(exc, InvalidInputError) else [])
            return 2
        queue = platform.hub.subscribe(execution.id)
        for row in platform.dispatcher.buffered_logs(execution.id):
            _print_log({**row, "timestamp": row["timestamp"].isoformat()}, args.json)
        seen = len(platform.dispatcher.buffered_logs(execution.id))
        while True:
            event = await queue.get()
            if event["type"] == "log" and event["seq"] >= seen:
                _print_log(event, args.json)
            elif event.get("done"):
                break
        async with transaction(platform.sessions) as session:
            final = execution_view(await ExecutionService(session).get(actor, execution.id), actor)
    return _print_outcome(final, args.json)


async def _run(args: argparse.Namespace) -> int:
    params = _parse_params(args.param or [])
    url = args.url or os.environ.get("BIFROST_URL")
    if url:
        return await _run_remote(args, params, url.rstrip("/"))
    return await _run_embedded(args, params)


# ----- workflows -------------------------------------------------------------------------------------
async def _workflows(args: argparse.Namespace) -> int:
    from app.engine.scan import scan_workspace
    from app.settings import get_settings

    settings = get_settings()
    scan = await scan_workspace(settings.workspace)
    if args.json:
        print(
            json.dumps(
                {"workflows": scan.workflows, "data_providers": scan.data_providers, "errors": scan.errors}, indent=2
            )
        )
        return 0
    from app.web.markdown import docstring_text

    def summary(item: dict[str, Any]) -> str:
        # The docstring's first paragraph on one line, reST markup (``tickets``) removed.
        return docstring_text(item.get("description")).split("\n\n")[0].replace("\n", " ")

    for wf in scan.workflows:
        params = ", ".join(p["name"] + ("" if p["required"] else "?") for p in wf["parameters"])
        print(f"{wf['name']:<28} {wf['category']:<18} ({params})  {summary(wf)}".rstrip())
    for dp in scan.data_providers:
        print(f"{dp['name']:<28} {'data provider':<18} {summary(dp)}".rstrip())
    for error in scan.errors:
        print(f"ERROR {error['file']}: {error['error']}", file=sys.stderr)
    return 1 if scan.errors else 0


async def _api_key(args: argparse.Namespace) -> int:
    from sqlalchemy import select
    from sqlmodel import col

    from app.db import create_engine, session_factory, transaction
    from app.models import User
    from app.services.errors import DomainError
    from app.services.identity.auth import ApiKeyService, AuthService
    from app.settings import get_settings

    settings = get_settings()
    engine = create_engine(settings.resolved_database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            if args.as_user:
                stmt = select(User).where(col(User.email) == args.as_user.lower())
            else:
                stmt = select(User).where(col(User.is_superuser).is_(True)).order_by(col(User.created_at))
            user = (await session.execute(stmt)).scalars().first()
            if user is None:
                print("bifrost: no such user; run `bifrost init` first (or pass --as EMAIL)", file=sys.stderr)
                return 2
            auth = AuthService(session)
            try:
                actor = await auth.actor_for_user(user.id)
                org_id = await auth.resolve_org(user, args.org) if args.org else None
                _, key = await ApiKeyService(session).create(actor, args.name, org_id, args.workflow)
            except DomainError as exc:
                print(f"bifrost: {exc}", file=sys.stderr)
                return 2
    finally:
        await engine.dispose()
    print(key)
    return 0


async def _migrate(_args: argparse.Namespace) -> int:
    from app.db import upgrade_database_async
    from app.settings import get_settings

    await upgrade_database_async(get_settings().resolved_database_url)
    print("Database is up to date.")
    return 0


async def _secrets(args: argparse.Namespace) -> int:
    """``generate-key`` prints a new key; ``rotate`` re-encrypts every secret under the newest key."""
    from app.services.secrets import generate_key

    if args.secrets_command == "generate-key":
        print(generate_key())
        return 0

    from app.db import create_engine, session_factory, transaction
    from app.services.config.service import ConfigService
    from app.services.integrations.rotation import rotate_integration_secrets
    from app.services.secrets import SecretKeyError, load_secret_box, prepend_key_to_file
    from app.settings import get_settings

    settings = get_settings()
    from_env = bool((settings.secret_key or "").strip())
    if args.new_key:
        if from_env:
            print(
                "bifrost: the keys come from BIFROST_SECRET_KEY: put a new key (`bifrost secrets generate-key`) "
                "first in it, restart the server, then run `bifrost secrets rotate`",
                file=sys.stderr,
            )
            return 2
        print(f"Added a new key first in {prepend_key_to_file(settings.home, generate_key())}")
    engine = create_engine(settings.resolved_database_url)
    try:
        box = load_secret_box(settings.secret_key, settings.home)
        async with transaction(session_factory(engine)) as session:
            report = await ConfigService(session, lambda: box).rotate_all_secrets()
            # Same transaction: config and integration secrets rotate together or not at all.
            integrations = await rotate_integration_secrets(session, box)
    except SecretKeyError as exc:
        print(f"bifrost: {exc}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    print(
        f"Re-encrypted {report.secrets} secret(s) under the newest key of {box.source} "
        f"({report.were_on_old_keys} were under an older key), and {integrations.secrets} integration "
        f"secret(s) and token(s) ({integrations.were_on_old_keys} under an older key)."
    )
    if box.key_count > 1:
        print(f"Every secret now needs only the first key: you may remove the other {box.key_count - 1} key(s).")
    return 0


# ----- notebook ----------------------------------------------------------------------------------------
def _notebook_key(args: argparse.Namespace) -> str | None:
    """The API key of the notebooks: given, from the environment, else the author's stored notebook key.

    See ``app/notebook_keys.py``: one key per author named ``bifrost notebook``, kept 0600 under the
    home and reused until revoked (``--revoke`` or the API keys page).
    """
    key = args.key or os.environ.get("BIFROST_API_KEY")
    if key:
        return key
    import asyncio

    from app.notebook_keys import NotebookKeyError, obtain
    from app.settings import get_settings

    try:
        stored = asyncio.run(obtain(get_settings(), args.as_user, args.org))
    except NotebookKeyError as exc:
        print(f"bifrost: no API key for the notebooks ({exc}); pass --key", file=sys.stderr)
        return None
    verb = "Created" if stored.created else "Using"
    print(f"{verb} the notebook key {stored.prefix}... of {stored.email}, stored in {stored.path}")
    print("  revoke it with `bifrost notebook --revoke` (or on the API keys page) when done")
    return stored.key


def _notebook_revoke(args: argparse.Namespace) -> int:
    """``bifrost notebook --revoke``: revoke the author's notebook keys and delete the stored one."""
    import asyncio

    from app.notebook_keys import NotebookKeyError, revoke
    from app.settings import get_settings

    try:
        prefixes = asyncio.run(revoke(get_settings(), args.as_user))
    except NotebookKeyError as exc:
        print(f"bifrost: {exc}", file=sys.stderr)
        return 2
    if prefixes:
        print(f"Revoked {len(prefixes)} notebook key(s): {', '.join(p + '...' for p in prefixes)}")
    else:
        print("No active notebook key to revoke.")
    return 0


def _notebook_file(root: Path, name: str) -> str:
    """The notebook to open: ``name`` (``.ipynb`` added) as it is, or made from the workflow template."""
    from notebooks.templates import new_notebook, workflow_name

    path = name if name.endswith(".ipynb") else f"{name}.ipynb"
    target = (root / path).resolve()
    if not target.is_relative_to(root):
        raise SystemExit(f"bifrost: {name} is outside the notebook folder {root}")
    if not target.exists():
        import nbformat

        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(new_notebook(workflow_name(Path(path).stem)), target)
        print(f"New workflow notebook: {target}")
    return target.relative_to(root).as_posix()


def _notebook(args: argparse.Namespace) -> int:
    """Start JupyterLab with the Bifrost extensions, pointed at the platform, on a workflow notebook."""
    import importlib.util
    import secrets
    from urllib.parse import quote

    if args.revoke:
        return _notebook_revoke(args)
    url = args.url or os.environ.get("BIFROST_URL")
    if not url:
        from app.settings import get_settings

        url = get_settings().resolved_public_url
    env = dict(os.environ, BIFROST_URL=url.rstrip("/"))
    key = _notebook_key(args)
    if key:
        env["BIFROST_API_KEY"] = key
    if args.org:
        env["BIFROST_ORG"] = args.org
    # Jupyter reads its token from JUPYTER_TOKEN: kept off the command line (other users can read that).
    env.setdefault("JUPYTER_TOKEN", secrets.token_urlsafe(24))
    lab = importlib.util.find_spec("jupyterlab") is not None
    root = Path(args.dir or ".").resolve()
    command = [
        sys.executable,
        "-m",
        "jupyterlab" if lab else "jupyter_server",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={args.port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.jpserver_extensions=notebooks=True",
    ]
    if lab:
        # The "New Bifrost workflow" launcher card, prebuilt in the package: found here even when an
        # editable install skipped the data files that put it into <prefix>/share/jupyter/labextensions.
        package = Path(__file__).resolve().parents[1] / "notebooks"
        command.append(f"--LabApp.extra_labextensions_path={package / 'labextensions'}")
        if not (Path(sys.prefix) / "share/jupyter/lab/settings/overrides.d/bifrost.json").exists():
            # Same for the settings that keep Lab from asking to fetch news (an editable install).
            command.append(f"--LabApp.app_settings_dir={package / 'jupyter-config' / 'lab-settings'}")
        # Installs are offline: no news feed, no update check, no extension search on PyPI.
        command += [
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
        ]
    if args.no_browser:
        command.append("--ServerApp.open_browser=False")
    if os.geteuid() == 0:  # Jupyter refuses root unless told; containers and CI run as root
        command.append("--ServerApp.allow_root=True")
    opened = _notebook_file(root, args.notebook) if lab and args.notebook else None
    if opened:
        command.append(str(root / opened))  # Lab opens it in the browser (a path from the current folder)
    base = f"http://127.0.0.1:{args.port}"
    token = env["JUPYTER_TOKEN"]
    print(f"{'JupyterLab' if lab else 'Jupyter Server'} for the platform at {env['BIFROST_URL']}, notebooks in {root}")
    if opened:
        print(f"  the workflow notebook: {base}/lab/tree/{quote(opened)}?token={token}")
    print(f"  a new one (also Launcher > Bifrost workflow): {base}/bifrost/new?token={token}")
    sys.stdout.flush()
    os.execve(sys.executable, command, env)
    return 0  # not reached: the process is now Jupyter


def _mcp(args: argparse.Namespace) -> int:
    """``bifrost mcp``: the stdio MCP bridge for desktop clients (docs/mcp.md); stdout carries only MCP."""
    import asyncio

    from app.services.mcp.bridge import BridgeError, run_bridge

    url = args.url or os.environ.get("BIFROST_URL")
    key = args.key or os.environ.get("BIFROST_API_KEY")
    try:
        asyncio.run(run_bridge(url, key, args.org or os.environ.get("BIFROST_ORG")))
    except BridgeError as exc:
        print(f"bifrost mcp: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bifrost`` command."""
    parser = argparse.ArgumentParser(
        prog="bifrost", description="Bifrost Workbench: run and serve Python automation workflows."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p_init = sub.add_parser("init", help="create the database and the first platform admin")
    p_init.add_argument("--admin-email", default=os.environ.get("BIFROST_ADMIN_EMAIL", DEMO_ADMIN_EMAIL))
    p_init.add_argument("--admin-password", default=os.environ.get("BIFROST_ADMIN_PASSWORD", DEMO_ADMIN_PASSWORD))
    p_init.add_argument("--demo", action="store_true", help="copy the demo workflows into the workspace")

    p_serve = sub.add_parser("serve", help="serve the web app and API")
    p_serve.add_argument("--host")
    p_serve.add_argument("--port", type=int)
    p_serve.add_argument("--workers", type=int, help="warm worker processes (default: CPU count)")
    p_serve.add_argument(
        "--runs-ahead",
        type=int,
        help="queued runs handed to each busy worker ahead, written Running before they start: more runs/s; "
        "after a crash of the server they fail ServerRestarted instead of running "
        "(default 0, or BIFROST_RUNS_AHEAD_PER_WORKER)",
    )

    p_worker = sub.add_parser("worker", help="a worker node: run queued executions (BIFROST_QUEUE=postgres)")
    p_worker.add_argument("--workers", type=int, help="concurrent runs (default: 8 per core, capped by free memory)")
    p_worker.add_argument("--name", help="node name stored on its runs (default: BIFROST_NODE_NAME, else host-pid)")

    p_run = sub.add_parser("run", help="run a workflow and print its logs and result")
    p_run.add_argument("workflow")
    p_run.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="a parameter (repeatable)")
    p_run.add_argument("--org", help="organization id or name (platform admins)")
    p_run.add_argument("--json", action="store_true", help="print the whole execution record as JSON")
    p_run.add_argument("--url", help="run on a server (default: BIFROST_URL, else an embedded platform)")
    p_run.add_argument("--as", dest="as_user", metavar="EMAIL", help="embedded mode: run as this user")

    p_wf = sub.add_parser("workflows", help="list the workspace's workflows")
    p_wf.add_argument("--json", action="store_true")

    p_key = sub.add_parser("api-key", help="create an API key and print it (shown only once)")
    p_key.add_argument("name", help="what the key is for")
    p_key.add_argument("--org", help="limit the key to this organization (id or name)")
    p_key.add_argument("--workflow", help="limit the key to this workflow (name or id)")
    p_key.add_argument("--as", dest="as_user", metavar="EMAIL", help="the user the key acts as (default: first admin)")

    sub.add_parser("migrate", help="apply database migrations")

    p_nb = sub.add_parser("notebook", help="start JupyterLab (with the Bifrost extensions) pointed at the platform")
    p_nb.add_argument(
        "notebook",
        nargs="?",
        default="my_workflow.ipynb",
        help="notebook to open, made from the workflow template when missing (default: my_workflow.ipynb)",
    )
    p_nb.add_argument("--url", help="the platform (default: BIFROST_URL, else this install's public URL)")
    p_nb.add_argument(
        "--key", help="API key the kernels use (default: BIFROST_API_KEY, else the author's stored notebook key)"
    )
    p_nb.add_argument("--as", dest="as_user", metavar="EMAIL", help="the author the key acts as (default: first admin)")
    p_nb.add_argument("--revoke", action="store_true", help="revoke the author's notebook keys and exit")
    p_nb.add_argument("--org", help="organization the kernels act in (platform admins)")
    p_nb.add_argument("--port", type=int, default=8888)
    p_nb.add_argument("--dir", help="folder of the notebooks (default: the current one)")
    p_nb.add_argument("--no-browser", action="store_true")

    p_mcp = sub.add_parser("mcp", help="stdio MCP server for desktop clients, relaying to a server's /mcp")
    p_mcp.add_argument("--url", help="the Bifrost server (default: BIFROST_URL)")
    p_mcp.add_argument("--key", help="API key (default: BIFROST_API_KEY)")
    p_mcp.add_argument("--org", help="organization a platform admin's key acts in (default: BIFROST_ORG)")

    p_secrets = sub.add_parser("secrets", help="secret encryption keys: generate a key, rotate")
    secrets_sub = p_secrets.add_subparsers(dest="secrets_command", required=True)
    secrets_sub.add_parser("generate-key", help="print a new Fernet key (for BIFROST_SECRET_KEY or the key file)")
    p_rotate = secrets_sub.add_parser("rotate", help="re-encrypt every secret under the newest (first) key")
    p_rotate.add_argument(
        "--new-key", action="store_true", help="first add a freshly generated key at the top of <home>/secret.key"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bifrost`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "notebook":
        return _notebook(args)
    if args.command == "mcp":
        return _mcp(args)
    if args.command == "worker":
        return _worker(args)
    import asyncio  # deferred: `bifrost --help` should not pay for it

    handlers = {
        "init": _init,
        "run": _run,
        "workflows": _workflows,
        "migrate": _migrate,
        "api-key": _api_key,
        "secrets": _secrets,
    }
    return asyncio.run(handlers[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
