"""The ``%bifrost`` line magic and ``bifrost_run``, installed by ``%load_ext bifrost``.

::

    %bifrost connect [URL] [--key KEY] [--org ORG]
    %bifrost run <name> [key=value ...] [--org ORG]     (defined in the notebook, or on the platform)
    %bifrost form <name> [--org ORG] [--html]
    %bifrost publish <name> [--file path.py] [--force]
    %bifrost workflows
    %bifrost status
    %bifrost disconnect

``result = await bifrost_run("name", key=value)`` runs on the kernel's own event loop.
"""

from __future__ import annotations

import argparse
import json
import shlex
from html import escape
from typing import Any
from urllib.parse import quote

from bifrost.errors import ConfigurationError, NotFoundError, PermissionDeniedError, ValidationError
from notebooks import platform_runs, session
from notebooks.embedded import EmbeddedPlatformError
from notebooks.formatting import format_module
from notebooks.forms import FormView
from notebooks.runner import RunResult, resolve, run_sync
from notebooks.source import PublishSourceError, build_module

USAGE = __doc__ or ""
USER_ERRORS = (
    ValidationError,
    ConfigurationError,
    PermissionDeniedError,
    NotFoundError,
    PublishSourceError,
    EmbeddedPlatformError,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit the kernel
        raise ValidationError(f"%bifrost: {message}\n{USAGE}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="%bifrost", add_help=False)
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("connect", add_help=False)
    p.add_argument("url", nargs="?")
    p.add_argument("--key")
    p.add_argument("--org")
    p = sub.add_parser("run", add_help=False)
    p.add_argument("name")
    p.add_argument("params", nargs="*")
    p.add_argument("--org")
    p = sub.add_parser("form", add_help=False)
    p.add_argument("name")
    p.add_argument("--org")
    p.add_argument("--html", action="store_true", help="an HTML form even when ipywidgets is installed")
    p = sub.add_parser("publish", add_help=False)
    p.add_argument("name")
    p.add_argument("--file")
    p.add_argument("--force", action="store_true")
    sub.add_parser("workflows", add_help=False)
    sub.add_parser("status", add_help=False)
    sub.add_parser("disconnect", add_help=False)
    return parser


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` words: text (validation coerces it), or JSON for lists and objects (``tags=["a"]``)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValidationError(f"%bifrost run: parameter {pair!r} must look like key=value")
        if value[:1] in "[{":
            try:
                params[key] = json.loads(value)
                continue
            except json.JSONDecodeError as exc:
                raise ValidationError(f"%bifrost run: parameter {key!r} is not valid JSON: {exc}") from None
        params[key] = value
    return params


class _Published:
    """Displays what ``%bifrost publish`` did: where the file went and how to run the workflow now."""

    def __init__(self, body: dict[str, Any], url: str, findings: list[str] | None = None) -> None:
        self.body = body
        self.url = url
        self.findings = findings or []

    def _lines(self) -> tuple[str, list[str]]:
        name, kind = self.body["name"], self.body["kind"]
        verb = "Replaced" if self.body.get("replaced") else "Published"
        head = f"{verb} {kind.replace('_', ' ')} {name!r} as {self.body['file']} in the workspace of {self.url}"
        if self.body.get("removed"):
            head += f" (no longer defined there: {', '.join(self.body['removed'])})"
        quoted = quote(name)
        how = [
            f"its form: {self.url}/workflows/{quoted}",
            f"from a notebook: %bifrost run {name} key=value ...",
            f"from a shell: bifrost run {name} --url {self.url} -p key=value",
            f"over HTTP: POST {self.url}/api/workflows/{quoted}/execute",
        ]
        if kind != "workflow":
            how = [f"forms use it for their choices; see {self.url}/workflows"]
        how += [f"ruff: {finding}" for finding in self.findings]
        return head, how

    def __repr__(self) -> str:
        head, how = self._lines()
        return head + ". Run it now:\n" + "\n".join(f"  {line}" for line in how)

    def _repr_html_(self) -> str:
        head, how = self._lines()
        items = []
        for line in how:
            label, _, rest = line.partition(": ")
            value = escape(rest)
            if rest.startswith(("http://", "https://")):
                value = f'<a href="{value}" target="_blank" rel="noopener">{value}</a>'
            items.append(f"<li>{escape(label)}: <code>{value}</code></li>")
        return f"<div class='bifrost-published'><b>{escape(head)}</b>. Run it now:<ul>{''.join(items)}</ul></div>"


class BifrostMagics:
    """Holds the IPython shell and runs ``%bifrost`` sub-commands."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell

    def __call__(self, line: str) -> Any:
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise ValidationError(f"%bifrost: {exc}") from None
        if not words:
            print(USAGE)
            return None
        try:
            args = _parser().parse_args(words)
            return getattr(self, f"do_{args.command}")(args)
        except USER_ERRORS as exc:
            # What the author must fix (a parameter, a missing --force, no connection): the message
            # alone says it; a traceback through the magic's machinery would only hide it.
            from IPython.core.error import UsageError

            raise UsageError(f"{type(exc).__name__}: {exc}") from None

    def do_connect(self, args: argparse.Namespace) -> None:
        connection = run_sync(lambda: session.connect(args.url, args.key, args.org))
        print(connection.describe())

    def do_run(self, args: argparse.Namespace) -> RunResult:
        params = parse_params(args.params)
        return run_sync(lambda: platform_runs.run(args.name, params, org=args.org))  # type: ignore[no-any-return]

    def do_form(self, args: argparse.Namespace) -> FormView:
        session.current()  # a form that cannot submit is no use: say so now
        return FormView(resolve(args.name), org=args.org, use_widgets=False if args.html else None)

    def do_publish(self, args: argparse.Namespace) -> _Published:
        connection = session.current()
        definition = resolve(args.name)
        # Formatted with the project's ruff settings, imports sorted: the workspace file reads like the rest.
        formatted = format_module(build_module(definition.func, self.shell.user_ns))
        source = formatted.source
        try:
            body = run_sync(
                lambda: connection.client.publish(
                    definition.name, source, file=args.file, kind=definition.kind, force=args.force
                )
            )
        except ValidationError as exc:
            if "force" in str(exc):  # the platform's 409 names the API field; the magic has a flag
                raise ValidationError(f"{exc} (add --force to %bifrost publish)") from None
            raise
        return _Published(body, connection.client.url, formatted.findings)

    def do_workflows(self, _args: argparse.Namespace) -> Any:
        from IPython.display import HTML

        from notebooks.display import table_html

        rows = run_sync(lambda: session.current().client.workflows())
        columns = [{k: w.get(k) for k in ("name", "category", "description", "endpoint_enabled")} for w in rows]
        return HTML(table_html(columns)) if columns else "No workflows on the platform yet."

    def do_status(self, _args: argparse.Namespace) -> None:
        print(session.current().describe() if session.is_connected() else "Not connected: run %bifrost connect")

    def do_disconnect(self, _args: argparse.Namespace) -> None:
        session.disconnect()
        print("Disconnected.")


async def bifrost_run(workflow: Any, /, *, org: str | None = None, echo: bool = True, **params: Any) -> RunResult:
    """``await bifrost_run("name", key=value)``: run a workflow on the connected platform.

    A workflow defined in the notebook runs in the kernel as an execution of the platform; any other
    name runs the platform's workflow of that name (its workers), with its log followed live.

    Args:
        workflow: Name or decorated function.
        org: Organization to run in (platform admins).
        echo: Show log lines and printed output as they arrive (False: only the returned result).
        **params: Parameter values.
    """
    return await platform_runs.run(workflow, params, org=org, echo=echo)


def load(ipython: Any) -> None:
    """Register ``%bifrost`` and put ``bifrost_run`` in the notebook's namespace."""
    magics = BifrostMagics(ipython)
    ipython.register_magic_function(magics, magic_kind="line", magic_name="bifrost")
    ipython.user_ns["bifrost_run"] = bifrost_run


def unload(ipython: Any) -> None:
    """Remove what :func:`load` added and disconnect."""
    ipython.user_ns.pop("bifrost_run", None)
    ipython.magics_manager.magics["line"].pop("bifrost", None)
    session.disconnect()
