"""Issue 19: every page as the demo's admin and as a Contoso technician, and the top bar at three widths.

The pages are discovered from the top bar and its menus (plus the first detail page of each list), so
a page added to the navigation is walked without editing this test. On each: 200, no horizontal
overflow, no console error and no Content-Security-Policy violation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.e2e.demo_support import ADMIN, CONTOSO_TECH, browser_login, running_demo

# Collects CSP violations in the page (Playwright injects this through the browser, not as page script).
CSP_WATCH = (
    "window.__csp = [];"
    "document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
)
NO_OVERFLOW = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
# List pages whose first detail link is walked too (a workflow's form, a run, a form, a role, a folder...).
DETAIL_LINKS = {
    "/workflows": "main a[href^='/workflows/']",
    "/executions": "main a[href^='/executions/']",
    "/forms": "main a[href^='/forms/']",
    "/admin/roles": "main a[href^='/admin/roles/']",
    "/admin/users": "main a[href^='/admin/users/']",
    "/integrations": "main a[href^='/integrations/']",
    "/knowledge": "main a[href^='/knowledge?ns=']",
    "/approvals": "main a[href^='/approvals/']",
    "/files": "main a[href^='/files?']",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with running_demo(tmp_path_factory.mktemp("walk")) as server:
        yield server


@pytest.fixture
def wide(browser: Any) -> Iterator[Any]:
    """A 1280 px wide page recording console errors and CSP violations."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(CSP_WATCH)
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda message: page.console_errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))
    yield page
    context.close()


def _header_links(page: Any) -> list[str]:
    """Every local link of the top bar, the closed menus included (their links are in the DOM)."""
    hrefs: list[str] = page.eval_on_selector_all("header a[href^='/']", "els => els.map(e => e.getAttribute('href'))")
    return list(dict.fromkeys(h for h in hrefs if h != "/login"))


def _walk(page: Any, server: LiveServer) -> list[str]:
    # One run first, so the history lists it and its live page is walked as well.
    page.goto(f"{server.url}/workflows/hello_world")
    page.click("#run-form button[type=submit]")
    page.wait_for_url("**/executions/*")
    page.wait_for_selector("#exec-result pre, #exec-result table, #exec-result p.muted")
    paths = _header_links(page)
    for list_path, selector in DETAIL_LINKS.items():
        if list_path in paths:
            page.goto(server.url + list_path)
            first = page.locator(selector).first
            if first.count():
                paths.append(first.get_attribute("href"))
    visited = []
    for path in paths:
        response = page.goto(server.url + path)
        assert response is not None and response.status == 200, (path, response and response.status)
        page.wait_for_load_state("load")
        assert page.evaluate(NO_OVERFLOW), f"{path} overflows at 1280 px"
        assert page.evaluate("window.__csp") == [], (path, page.evaluate("window.__csp"))
        assert page.console_errors == [], (path, page.console_errors)
        visited.append(path)
    return visited


def test_admin_walks_every_page(demo: LiveServer, wide: Any) -> None:
    browser_login(wide, demo, *ADMIN)
    visited = _walk(wide, demo)
    for expected in (
        "/",
        "/workflows",
        "/executions",
        "/chat",
        "/admin/users",
        "/schedules",
        "/knowledge",
        "/api-keys",
    ):
        assert expected in visited
    assert any(p.startswith("/workflows/") for p in visited) and any(p.startswith("/forms/") for p in visited)
    assert any(p.startswith("/executions/") for p in visited)
    print(f"admin walked {len(visited)} pages: {visited}")
    assert len(visited) >= 25


def test_contoso_technician_walks_every_page(demo: LiveServer, wide: Any) -> None:
    browser_login(wide, demo, *CONTOSO_TECH)
    visited = _walk(wide, demo)
    assert {"/", "/workflows", "/forms", "/executions", "/chat", "/files", "/account", "/api-keys"} <= set(visited)
    assert not [p for p in visited if p.startswith("/admin")]  # no admin page offered
    print(f"technician walked {len(visited)} pages: {visited}")


@pytest.mark.parametrize("width", [1280, 1024, 375])
def test_top_bar_fits_and_every_menu_link_is_reachable(demo: LiveServer, browser: Any, width: int) -> None:
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    try:
        browser_login(page, demo, *ADMIN)
        for path in ("/", "/schedules", "/admin/users"):
            page.goto(demo.url + path)
            assert page.evaluate(NO_OVERFLOW), f"{path} overflows at {width} px"
            assert page.locator("label[for=org-switch]").is_visible(), f"'Acting in' hidden on {path} at {width} px"
            box = page.locator("#org-switch").bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= width
        # The admin menu opens (a click on its summary) and every link in it is visible and on screen.
        page.goto(demo.url + "/")
        admin_links = page.locator("#admin-menu .menu-list a")
        assert admin_links.count() >= 12 and not admin_links.first.is_visible()  # closed at first
        page.click("#admin-menu summary")
        for i in range(admin_links.count()):
            link = admin_links.nth(i)
            assert link.is_visible()
            box = link.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, link.inner_text()
        assert page.evaluate(NO_OVERFLOW), f"the open admin menu overflows at {width} px"
        page.keyboard.press("Escape")  # app.js closes an open menu on Escape
        assert not admin_links.first.is_visible()
        page.click("#account-menu summary")
        assert page.locator("#account-menu a[href='/account']").is_visible()
        page.click("#account-menu a[href='/api-keys']")
        page.wait_for_url("**/api-keys")
        assert errors == []
    finally:
        context.close()


def test_technician_bar_is_short(demo: LiveServer, wide: Any) -> None:
    browser_login(wide, demo, *CONTOSO_TECH)
    labels = wide.eval_on_selector_all("nav.mainnav > ul > li > a", "els => els.map(e => e.textContent.trim())")
    assert labels == ["Home", "Workflows", "Forms", "Executions", "Chat", "Files"]
    assert wide.locator("#admin-menu").count() == 0
    top = wide.locator("header").bounding_box()
    assert top and top["height"] < 80  # one row


def test_unknown_address_shows_the_error_page_in_the_browser(demo: LiveServer, wide: Any) -> None:
    browser_login(wide, demo, *CONTOSO_TECH)
    for path, status in (("/no-such-page", 404), ("/admin/users", 403)):
        response = wide.goto(demo.url + path)
        assert response is not None and response.status == status
        assert wide.locator("#error-page h1").inner_text() in ("Page not found", "Not allowed")
        assert wide.evaluate(NO_OVERFLOW) and wide.evaluate("window.__csp") == []
        wide.click("#error-page a.button.primary")  # a way back
        wide.wait_for_url(f"{demo.url}/")
    assert wide.console_errors == [] or all("404" in e or "403" in e for e in wide.console_errors)
