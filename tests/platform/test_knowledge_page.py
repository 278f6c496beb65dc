"""The knowledge page, driven like a browser: session login, CSRF-protected forms, multipart upload."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.platform.conftest import World


@contextmanager
def logged_in(world: World, email: str, password: str) -> Iterator[httpx.Client]:
    """A client with a session from the login page (its CSRF token included)."""
    with httpx.Client(base_url=world.server.url, timeout=60) as client:
        client.get("/login")
        response = client.post(
            "/login",
            data={"email": email, "password": password, "next": "/", "_csrf_token": client.cookies["csrftoken"]},
        )
        assert response.status_code == 303, response.text
        yield client


def form(client: httpx.Client, **fields: str) -> dict[str, str]:
    return {"_csrf_token": client.cookies["csrftoken"], **fields}


def visible(page: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page))).strip()


def wait_until_done(client: httpx.Client) -> str:
    """Reload the jobs fragment until no job is pending or running (bounded)."""
    for _ in range(600):
        fragment = client.get("/knowledge/jobs").text
        if 'data-status="pending"' not in fragment and 'data-status="running"' not in fragment:
            return fragment
        # While a job runs the fragment polls itself (htmx) and has a no-JavaScript refresh.
        assert 'hx-trigger="every 1s"' in fragment and 'http-equiv="refresh"' in fragment
        time.sleep(0.1)
    raise AssertionError("ingestion did not finish")


def test_admin_manages_knowledge_from_the_page(world: World) -> None:
    with logged_in(world, "admin@test.io", "admin-password") as admin:
        page = admin.get("/knowledge")
        assert page.status_code == 200 and "global knowledge" in visible(page.text)
        # Act in Org A through the layout's switcher: everything below goes into Org A.
        switched = admin.post("/session/org", data=form(admin, org_id=world.org_a, next="/knowledge"))
        assert switched.status_code == 303

        created = admin.post("/knowledge/namespaces", data=form(admin, name="page-runbooks", description="How-tos"))
        assert created.status_code == 303 and "ns=" in created.headers["location"]
        again = admin.post("/knowledge/namespaces", data=form(admin, name="page-runbooks"))
        assert "already exists" in visible(admin.get(again.headers["location"]).text)

        upload = admin.post(
            "/knowledge/upload",
            data=form(admin, namespace="page-runbooks", key="vpn"),
            files={
                "file": ("vpn.md", b"# VPN\n\nConnect to vpn.example.com with the WireGuard client.", "text/markdown")
            },
        )
        assert upload.status_code == 303
        pasted = admin.post(
            "/knowledge/paste",
            data=form(
                admin,
                namespace="page-runbooks",
                title="Printers",
                text="Printer jams on floor 2: open tray B and pull the sheet gently.",
            ),
        )
        assert pasted.status_code == 303
        jobs = wait_until_done(admin)
        assert jobs.count('data-status="done"') >= 2 and "vpn.md" in jobs and "Printers.txt" in jobs

        listing = visible(admin.get("/knowledge").text)
        assert "page-runbooks" in listing and "How-tos" in listing
        namespace_id = re.search(r'href="/knowledge\?ns=([^"]+)">page-runbooks<', admin.get("/knowledge").text)
        assert namespace_id
        docs = admin.get(f"/knowledge?ns={namespace_id.group(1)}").text
        assert "vpn.md" in docs and "Printers.txt" in docs
        doc_id = re.search(r'data-document="([^"]+)"', docs)
        assert doc_id

        results = admin.get(
            "/knowledge", params={"q": "how do I connect remotely from home?", "search_ns": "page-runbooks"}
        )
        found = re.search(r'<ol id="search-results">(.*?)</ol>', results.text, re.S)
        assert found and re.search(r'class="score"[^>]*>0\.\d{3}<', found.group(1))
        assert visible(found.group(1)).index("WireGuard") < visible(found.group(1)).index("tray B")

        chunks = admin.get(f"/knowledge?doc={doc_id.group(1)}").text
        assert 'id="chunks"' in chunks and "embedded by" in chunks

        deleted = admin.post(f"/knowledge/documents/{doc_id.group(1)}/delete", data=form(admin))
        assert deleted.status_code == 303
        assert admin.get(f"/knowledge?doc={doc_id.group(1)}").status_code == 404
        gone = admin.post(f"/knowledge/namespaces/{namespace_id.group(1)}/delete", data=form(admin))
        assert gone.status_code == 303
        assert "deleted with 1 document" in visible(admin.get("/knowledge").text)

    # What the admin stored while acting in Org A is Org A's, and Bob's organization never sees it.
    with world.server.client(world.alice_key) as alice:
        assert "page-runbooks" not in {n["name"] for n in alice.get("/api/knowledge/namespaces").json()}


def test_forms_need_the_csrf_token_and_the_page_needs_an_admin(world: World) -> None:
    with logged_in(world, "admin@test.io", "admin-password") as admin:
        refused = admin.post("/knowledge/namespaces", data={"name": "no-token"})
        assert refused.status_code == 403
        assert "no-token" not in admin.get("/knowledge").text
        bad = admin.post(
            "/knowledge/upload",
            data=form(admin, namespace="page-bad"),
            files={"file": ("tool.exe", b"MZ", "application/x-msdownload")},
        )
        assert "unsupported type" in visible(admin.get(bad.headers["location"]).text)
    with logged_in(world, "alice@a.example", "alice-password") as alice:
        assert alice.get("/knowledge").status_code == 403
        assert alice.post("/knowledge/namespaces", data=form(alice, name="sneaky")).status_code == 403
    with httpx.Client(base_url=world.server.url) as anonymous:
        assert anonymous.get("/knowledge").status_code == 303  # to the login page
