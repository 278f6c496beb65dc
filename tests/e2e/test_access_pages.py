"""Per-workflow access and approvals in headless Chromium (issue 16).

A technician (Alice, Org A) sees nothing of an admin-only workflow; the admin gives a workflow to a role
on the workflow page and Alice, holding it, runs it; Alice's run of a workflow that needs approval waits,
links to its approval, may not be approved by herself, and runs once the admin approves it on the
approvals page; a rejection cancels it with the reason shown on the execution page.

Pages that answer 4xx on purpose (a refused page, a form shown again with its error) make Chromium log
"Failed to load resource"; each test allows exactly those and no other console error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.browser_support import login
from tests.platform.access_support import grant_role, start_access_world
from tests.platform.conftest import World

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = start_access_world(tmp_path_factory.mktemp("e2e-access"))
    try:
        yield w
    finally:
        w.server.stop()


@pytest.fixture
def second(browser: Any) -> Iterator[Any]:
    """A second browser (its own cookies) recording console errors, for the other person of a test."""
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    other = context.new_page()
    other.console_errors = []
    other.on("console", lambda message: other.console_errors.append(message.text) if message.type == "error" else None)
    other.on("pageerror", lambda error: other.console_errors.append(str(error)))
    yield other
    context.close()


def unexpected(page: Any, *statuses: int) -> list[str]:
    """Console errors other than the failed loads of pages answering one of ``statuses`` on purpose."""
    return [e for e in page.console_errors if not any(f"status of {s} " in e for s in statuses)]


def run_command(page: Any, text: str) -> None:
    page.fill("#chat-input", text)
    page.click("#send")


def test_a_technician_sees_nothing_of_an_admin_only_workflow(world: World, page: Any) -> None:
    with world.server.client(world.admin_key) as admin:
        form = admin.post(
            "/api/forms",
            json={"name": "Vault rotation", "workflow_id": "pg_admin_only", "access_level": "authenticated"},
        )
        assert form.status_code == 201, form.text
    login(page, world, "alice@a.example", "alice-password")
    assert "pg_admin_only" not in page.content()  # home
    assert page.locator("#nav-approvals").count() == 0  # not an approver
    page.goto(f"{world.server.url}/workflows")
    assert "pg_delete_user" in page.content() and "pg_admin_only" not in page.content()
    page.goto(f"{world.server.url}/forms")
    assert "Vault rotation" not in page.content()
    answer = page.goto(f"{world.server.url}/workflows/pg_admin_only")
    assert answer.status == 404 and "not found" in page.inner_text("main").lower()
    answer = page.goto(f"{world.server.url}/forms/{form.json()['id']}")
    assert answer.status == 404
    # the chat's tools: /tools lists what Alice may run, /run of the hidden one is "no tool"
    page.goto(f"{world.server.url}/chat")
    page.click("#new-conversation")
    run_command(page, "/tools")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.msg.assistant .bubble')].some(b => b.textContent.includes('pg_delete_user'))"
    )
    assert "pg_admin_only" not in page.inner_text("#messages")
    run_command(page, "/run pg_admin_only")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.msg.assistant .bubble')].some(b => b.textContent.includes(\"No tool named 'pg_admin_only'\"))"
    )
    assert page.locator(".tool-call").count() == 0
    with world.server.client(world.admin_key) as admin:
        assert admin.get("/api/executions", params={"workflow_name": "pg_admin_only"}).json() == []
    assert unexpected(page, 404) == [] and len(page.console_errors) == 2


def test_an_admin_gives_a_workflow_to_a_role_and_the_technician_runs_it(world: World, page: Any, second: Any) -> None:
    grant_role(world, world.org_a, world.alice_id, "Mailbox")
    login(second, world, "alice@a.example", "alice-password")
    second.goto(f"{world.server.url}/workflows")
    assert "pg_reset_mailbox" not in second.content()
    # the admin, on the workflow page: a role without a name is refused with the reason, then saved
    login(page, world, "admin@test.io", "admin-password")
    page.goto(f"{world.server.url}/workflows/pg_reset_mailbox")
    assert page.is_checked("#access-admins")
    page.check("#access-roles")
    page.click("#access-save")
    page.wait_for_selector("#access-errors")
    assert "roles: name at least one role when access is 'roles'" in page.inner_text("#access-errors")
    assert page.is_checked("#access-roles")  # the choice is kept
    page.fill("#access-role-names", "Mailbox")
    page.click("#access-save")
    page.wait_for_url("**/workflows/pg_reset_mailbox#access")
    assert "Access of pg_reset_mailbox saved." in page.inner_text("#notice")
    assert page.is_checked("#access-roles") and page.input_value("#access-role-names") == "Mailbox"
    # Alice now sees it and runs it from its form
    second.goto(f"{world.server.url}/")
    second.click("a[aria-label='Run pg_reset_mailbox']")
    second.wait_for_url("**/workflows/pg_reset_mailbox")
    assert second.locator("#access-form").count() == 0  # the access form is the admins'
    second.fill("#f-mailbox", "helpdesk")
    second.click("#run-form button[type=submit]")
    second.wait_for_url(re.compile(r".*/executions/[0-9a-f-]+$"))
    second.wait_for_function("() => document.querySelector('#exec-status-text').textContent === 'Completed'")
    assert "reset helpdesk" in second.inner_text("#exec-result")
    assert unexpected(page, 422) == [] and len(page.console_errors) == 1
    assert second.console_errors == []


def test_a_run_waits_for_an_approver_who_approves_it_on_the_approvals_page(
    world: World, page: Any, second: Any
) -> None:
    # Alice approves this workflow's runs (its approver role), but not her own: self-approval is off
    with world.server.client(world.admin_key) as admin:
        changed = admin.put("/api/workflows/pg_delete_user/access", json={"approver_role": "Helpdesk leads"})
        assert changed.status_code == 200 and changed.json()["allow_self_approval"] is False
    grant_role(world, world.org_a, world.alice_id, "Helpdesk leads")
    login(page, world, "alice@a.example", "alice-password")
    page.goto(f"{world.server.url}/workflows/pg_delete_user")
    assert "wait for an approver" in page.inner_text("#needs-approval-note")
    page.fill("#f-user", "carol")
    page.click("#run-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/executions/[0-9a-f-]+$"))
    run_id = page.url.rsplit("/", 1)[1]
    assert page.inner_text("#exec-status-text") == "AwaitingApproval"
    page.click("#exec-approval-link")
    page.wait_for_url(f"**/approvals/{run_id}")
    assert "another approver must decide it" in page.inner_text("#approval-waiting")
    assert page.locator(f"#decide-{run_id}").count() == 0
    # on the approvals page (Alice is an approver) her own run has no decision form
    page.click("#nav-approvals")
    row = page.locator(f"#approval-{run_id}")
    assert "Waiting for another approver" in row.inner_text() and row.locator("form").count() == 0
    # the admin approves it from the list
    login(second, world, "admin@test.io", "admin-password")
    second.click("#nav-approvals")
    row = second.locator(f"#approval-{run_id}")
    assert "alice@a.example" in row.inner_text() and "carol" in row.inner_text()
    row.locator("button", has_text="Approve").click()
    second.wait_for_url("**/approvals")
    assert "Approved: pg_delete_user requested by alice@a.example." in second.inner_text("#notice")
    assert second.locator(f"#approval-{run_id}").count() == 0  # nothing of it waits any more
    # Alice's execution page: it ran, once
    page.goto(f"{world.server.url}/executions/{run_id}")
    page.wait_for_function("() => document.querySelector('#exec-status-text').textContent === 'Completed'")
    assert "deleting carol" in page.inner_text("#logs") and "deleted carol" in page.inner_text("#exec-result")
    assert page.console_errors == [] and second.console_errors == []
    with world.server.client(world.admin_key) as admin:
        admin.put("/api/workflows/pg_delete_user/access", json={"approver_role": None})


def test_a_rejection_cancels_the_run_with_the_reason_on_its_page(world: World, page: Any, second: Any) -> None:
    login(page, world, "alice@a.example", "alice-password")
    page.goto(f"{world.server.url}/chat")
    page.click("#new-conversation")
    run_command(page, "/run pg_delete_user user=dave")
    card = page.locator(".tool-call[data-status=awaiting_approval]")
    card.wait_for()
    link = card.locator("a.badge-approval")
    run_id = (link.get_attribute("href") or "").rsplit("/", 1)[1]
    # the requester's Approve in the chat is refused with the reason
    card.locator("button", has_text="Approve").click()
    page.wait_for_selector("#messages .alert")
    assert "another approver must decide it" in page.inner_text("#messages .alert")
    # the admin finds it from the executions list's badge and rejects it; a missing reason is explained
    login(second, world, "admin@test.io", "admin-password")
    second.goto(f"{world.server.url}/executions")
    second.click(f"#executions-table a.badge-approval[href='/approvals/{run_id}']")
    second.wait_for_url(f"**/approvals/{run_id}")
    second.locator("button", has_text="Reject").click()
    second.wait_for_selector("#approval-error")
    assert "reason: is required when rejecting" in second.inner_text("#approval-error")
    second.fill(f"#reason-{run_id}", "not in the ticket")
    second.locator("button", has_text="Reject").click()
    second.wait_for_selector("#notice")
    assert second.inner_text("#approval-status") == "rejected"
    second.click("#approval-execution")
    second.wait_for_url(f"**/executions/{run_id}")
    assert second.inner_text("#exec-status-text") == "Cancelled"
    assert "Rejected by admin@test.io: not in the ticket" in second.inner_text("#result-error")
    with world.server.client(world.alice_key) as alice:
        assert alice.get(f"/api/executions/{run_id}").json()["started_at"] is None  # nothing ran
    assert unexpected(second, 422) == [] and len(second.console_errors) == 1
    assert page.console_errors == []
