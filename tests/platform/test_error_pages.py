"""Issue 19: one HTML error page for browsers (403, 404, 405, ...), JSON kept for API clients."""

from __future__ import annotations

import httpx

from tests.platform.conftest import World
from tests.platform.pages_support import logged_in

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}  # what Chromium sends


def test_unknown_url_in_a_browser_is_the_html_error_page(world: World) -> None:
    with httpx.Client(base_url=world.server.url) as client:
        page = client.get("/no-such-page", headers=HTML)
        api = client.get("/no-such-page", headers={"Accept": "application/json"})
        api_path = client.get("/api/no-such-thing", headers=HTML)  # the API answers JSON whatever is accepted
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert 'id="error-page"' in page.text and "Page not found" in page.text
    assert "There is no page at this address." in page.text and "Back to the home page" in page.text
    assert '"status_code"' not in page.text
    assert api.status_code == 404 and api.json()["status_code"] == 404
    assert api_path.status_code == 404 and api_path.json()["status_code"] == 404


def test_wrong_method_in_a_browser_is_the_same_page(world: World) -> None:
    with httpx.Client(base_url=world.server.url) as client:
        page = client.delete("/login", headers=HTML)
    assert page.status_code == 405 and 'id="error-page"' in page.text
    assert "does not accept that request method" in page.text


def test_403_from_every_kind_of_page_is_the_one_page(world: World) -> None:
    """A technician on an admin page, on the schedules page and on an admin-only API from a browser."""
    with logged_in(world, "alice@a.example", "alice-password") as tech:
        users = tech.get("/admin/users", headers=HTML)
        schedules = tech.get("/schedules", headers=HTML)
        api = tech.get("/api/admin/users", headers={"Accept": "application/json"})
    for page in (users, schedules):
        assert page.status_code == 403 and 'id="error-page"' in page.text, page.text[:500]
        assert "Not allowed" in page.text and "Log out and sign in as someone else" in page.text
    assert "Only platform admins may manage schedules." in schedules.text
    assert api.status_code in (403, 404) and api.headers["content-type"].startswith("application/json")


def test_htmx_requests_still_get_a_fragment(world: World) -> None:
    with logged_in(world, "alice@a.example", "alice-password") as tech:
        fragment = tech.get("/admin/users", headers={**HTML, "HX-Request": "true"})
    assert fragment.status_code == 403 and fragment.text.startswith('<p class="alert"')
