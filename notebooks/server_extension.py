"""The Jupyter Server extension: ``/bifrost/...`` handlers next to the notebooks.

Enabled by ``jupyter_server_config.d/bifrost.json`` (installed with the package) or by
``bifrost notebook``, which passes ``--ServerApp.jpserver_extensions``. The platform it talks to
comes from the server's environment (``BIFROST_URL``, ``BIFROST_API_KEY``, ``BIFROST_ORG``), which
its kernels inherit too, so ``%bifrost connect`` in a new notebook needs no arguments.

Routes (Jupyter's own authentication applies: the server token or login):

* ``GET /bifrost/status`` - the platform and who the server acts as;
* ``GET /bifrost/workflows`` - the platform's workflows;
* ``POST /bifrost/publish`` - ``{"name", "source", "file"?, "kind"?, "force"?}`` into the workspace;
* ``POST /bifrost/notebooks`` - ``{"name"?, "path"?, "dir"?}``: a new notebook from the template
  (the Lab launcher's "Bifrost workflow" card calls it with the file browser's folder);
* ``GET /bifrost/new?name=...`` - the same, then opens it (JupyterLab / Notebook when installed).
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import ensure_async, url_path_join
from tornado import web

from bifrost.errors import (
    ConfigurationError,
    IntegrationError,
    NotFoundError,
    PermissionDeniedError,
    UserError,
    ValidationError,
    WorkflowError,
)
from notebooks.client import PlatformClient
from notebooks.templates import KERNEL_NAME, new_notebook, workflow_name

# What the SDK client raises for an answer of the platform (or no answer).
SDK_ERRORS = (WorkflowError, ValidationError, ConfigurationError, UserError, IntegrationError)


def platform_client() -> PlatformClient | None:
    """The platform named by the server's environment, or None."""
    url = os.environ.get("BIFROST_URL")
    if not url:
        return None
    return PlatformClient(url.rstrip("/"), os.environ.get("BIFROST_API_KEY"), os.environ.get("BIFROST_ORG"))


def _status_of(exc: Exception) -> int:
    if isinstance(exc, PermissionDeniedError):
        return 403
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ValidationError):
        return 409 if "force" in str(exc) or "already" in str(exc) else 422
    return 502


class _BifrostHandler(APIHandler):
    def client_or_fail(self) -> PlatformClient:
        client = platform_client()
        if client is None:
            raise web.HTTPError(
                503, "No platform configured: start the server with `bifrost notebook` or set BIFROST_URL"
            )
        return client

    def send(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body, default=str))

    def send_error_body(self, exc: Exception) -> None:
        self.send({"message": str(exc), "errors": getattr(exc, "errors", [])}, _status_of(exc))

    def body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except json.JSONDecodeError as exc:
            raise web.HTTPError(400, f"the body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, "the body must be a JSON object")
        return data


class StatusHandler(_BifrostHandler):
    """Which platform this server is pointed at, and as whom."""

    @web.authenticated
    async def get(self) -> None:
        client = platform_client()
        if client is None:
            self.send({"platform_url": None, "connected": False})
            return
        try:
            identity = await client.me()
        except SDK_ERRORS as exc:
            self.send({"platform_url": client.url, "connected": False, "error": str(exc)})
            return
        self.send({"platform_url": client.url, "connected": True, "identity": identity})


class WorkflowsHandler(_BifrostHandler):
    """The platform's workflows."""

    @web.authenticated
    async def get(self) -> None:
        try:
            self.send(await self.client_or_fail().workflows())
        except SDK_ERRORS as exc:
            self.send_error_body(exc)


class PublishHandler(_BifrostHandler):
    """Publish a module into the platform's workspace (the platform checks admin rights)."""

    @web.authenticated
    async def post(self) -> None:
        data = self.body()
        name, source = data.get("name"), data.get("source")
        if not isinstance(name, str) or not isinstance(source, str):
            raise web.HTTPError(422, "name and source are required text fields")
        try:
            result = await self.client_or_fail().publish(
                name,
                source,
                file=data.get("file"),
                kind=data.get("kind") or "workflow",
                force=bool(data.get("force")),
            )
        except SDK_ERRORS as exc:
            self.send_error_body(exc)
            return
        self.send(result, 200 if result.get("replaced") else 201)


class NewNotebookHandler(_BifrostHandler):
    """Create a notebook from the template."""

    async def create(self, name: str | None, path: str | None, folder: str | None = None) -> str:
        manager = self.contents_manager
        if path:
            if not path.endswith(".ipynb") or ".." in path.split("/") or path.startswith("/"):
                raise web.HTTPError(422, "path must be a relative path ending in .ipynb")
            if await ensure_async(manager.file_exists(path)):
                raise web.HTTPError(409, f"{path} already exists")
        else:
            folder = folder.strip("/") if isinstance(folder, str) else ""
            if ".." in folder.split("/") or not await ensure_async(manager.dir_exists(folder)):
                raise web.HTTPError(422, f"dir {folder!r} is not a folder of the notebook server")
            base = url_path_join(folder, workflow_name(name)) if folder else workflow_name(name)
            path = f"{base}.ipynb"
            counter = 1
            while await ensure_async(manager.file_exists(path)):
                counter += 1
                path = f"{base}-{counter}.ipynb"
        model = {"type": "notebook", "format": "json", "content": new_notebook(name)}
        await ensure_async(manager.save(model, path))
        return path

    def open_url(self, path: str) -> str:
        extensions = self.serverapp.extension_manager.extensions if self.serverapp else {}
        if "jupyterlab" in extensions:
            front = "lab/tree"
        elif "notebook" in extensions:
            front = "notebooks"
        else:
            front = "api/contents"
        return url_path_join(self.base_url, front, quote(path))

    @web.authenticated
    async def post(self) -> None:
        data = self.body()
        path = await self.create(data.get("name"), data.get("path"), data.get("dir"))
        self.send({"path": path, "url": self.open_url(path), "kernel": KERNEL_NAME}, 201)

    @web.authenticated
    async def get(self) -> None:
        path = await self.create(self.get_argument("name", None), self.get_argument("path", None))
        self.redirect(self.open_url(path))


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Add the ``/bifrost`` handlers to the server."""
    base = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "bifrost", "status"), StatusHandler),
            (url_path_join(base, "bifrost", "workflows"), WorkflowsHandler),
            (url_path_join(base, "bifrost", "publish"), PublishHandler),
            (url_path_join(base, "bifrost", "notebooks"), NewNotebookHandler),
            (url_path_join(base, "bifrost", "new"), NewNotebookHandler),
        ],
    )
    serverapp.log.info("Bifrost extension: /bifrost handlers, platform %s", os.environ.get("BIFROST_URL") or "(none)")
