"""The SDK modules of this release, called as an author would from a script: URL + API key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import bifrost
from bifrost import _client, executions, organizations, roles, users, workflows
from bifrost.errors import NotAvailableError, NotFoundError, PermissionDeniedError, ValidationError
from tests.platform.conftest import World, start_world


@pytest.fixture
def as_admin(world: World) -> Iterator[None]:
    bifrost.configure(world.server.url, world.admin_key, org="Org A")
    yield
    bifrost.configure(None)


@pytest.fixture
def as_alice(world: World) -> Iterator[None]:
    bifrost.configure(world.server.url, world.alice_key)
    yield
    bifrost.configure(None)


async def test_organizations_module(as_admin: None) -> None:
    org = await organizations.create("Fabrikam", domain="fabrikam.com")
    assert isinstance(org, bifrost.Organization) and org.domain == "fabrikam.com" and org.is_active
    assert (await organizations.get(org.id)).name == "Fabrikam"
    assert "Fabrikam" in {o.name for o in await organizations.list()}
    assert (await organizations.update(org.id, name="Fabrikam Inc")).name == "Fabrikam Inc"
    assert await organizations.delete(org.id) is True
    assert await organizations.delete("no-such-org") is False
    with pytest.raises(NotFoundError):
        await organizations.get("no-such-org")
    with pytest.raises(ValidationError) as err:
        await organizations.create("")
    assert err.value.errors[0]["field"] == "name"


async def test_users_module(as_admin: None, world: World) -> None:
    user = await users.create("dave@a.example", "Dave", org_id=world.org_a)
    assert isinstance(user, bifrost.UserPublic) and user.organization_id == world.org_a and not user.is_superuser
    assert (await users.get(user.id)).email == "dave@a.example"  # type: ignore[union-attr]
    assert await users.get("missing") is None
    assert user.id in {u.id for u in await users.list(org_id=world.org_a)}
    assert world.bob_id not in {u.id for u in await users.list(org_id=world.org_a)}
    assert (await users.update(user.id, name="David")).name == "David"
    assert await users.delete(user.id) is True


async def test_roles_module(as_admin: None, world: World) -> None:
    role = await roles.create("Technician", description="Runs onboarding")
    assert isinstance(role, bifrost.Role) and role.organization_id == world.org_a
    await roles.assign_users(role.id, [world.alice_id])
    await roles.assign_users(role.id, [world.alice_id])  # idempotent
    assert await roles.list_users(role.id) == [world.alice_id]
    assert await roles.list_forms(role.id) == []
    assert (await roles.update(role.id, description="Tier 2")).description == "Tier 2"
    assert role.id in {r.id for r in await roles.list()}
    await roles.delete(role.id)
    assert role.id not in {r.id for r in await roles.list()}
    with pytest.raises(ValidationError):
        await roles.assign_users(role.id, [world.bob_id])


async def test_workflows_and_executions_modules(as_alice: None, world: World) -> None:
    names = {w.name for w in await workflows.list()}
    assert {"add", "whoami", "noop"} <= names
    add = next(w for w in await workflows.list() if w.name == "add")
    assert isinstance(add, bifrost.WorkflowMetadata) and add.category == "Math" and add.timeout_seconds == 1800
    run = await workflows.execute("add", {"a": 4, "b": 5})
    assert run.status == bifrost.ExecutionStatus.COMPLETED and run.result == {"sum": 9}
    same = await workflows.get(run.execution_id)
    assert same.execution_id == run.execution_id and same.input_data == {"a": 4, "b": 5}
    fetched = await executions.get(run.execution_id)
    assert isinstance(fetched, bifrost.WorkflowExecution) and fetched.workflow_name == "add"
    listed = await executions.list(workflow_name="add", limit=5)
    assert listed and all(e.workflow_name == "add" for e in listed) and len(listed) <= 5
    failed_run = await workflows.execute("user_fails")
    assert failed_run.status == "Failed"
    failed = await executions.list(status="Failed")
    assert failed_run.execution_id in {e.execution_id for e in failed}
    assert all(e.status == "Failed" for e in await executions.list(status=bifrost.ExecutionStatus.FAILED))
    with pytest.raises(NotFoundError):
        await executions.get("nope")


async def test_admin_modules_refuse_non_admins(as_alice: None) -> None:
    with pytest.raises(PermissionDeniedError, match="platform admins"):
        await organizations.list()
    with pytest.raises(PermissionDeniedError):
        await users.list()
    with pytest.raises(PermissionDeniedError):
        await users.create("e@a.example", "E")
    with pytest.raises(PermissionDeniedError):
        await roles.create("Nope")


@pytest.fixture(scope="module")
def later_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A live server whose SDK API lists one module as not served yet.

    The name is injected for the test, so the mechanism stays tested whatever this release still lacks.
    """
    from app.web.api.unavailable import _handler_for

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("app.web.app.UNAVAILABLE_HANDLERS", [_handler_for("later_module")])
        world = start_world(tmp_path_factory.mktemp("later"))  # the app is built while the patch holds
    try:
        yield world
    finally:
        world.server.stop()


async def test_modules_of_later_releases_say_so(later_world: World) -> None:
    with later_world.server.client(later_world.alice_key) as client:
        response = client.get("/api/sdk/v1/later_module/anything")
        assert response.status_code == 501 and "later_module" in response.json()["detail"]
    with later_world.server.client() as anonymous:
        assert anonymous.get("/api/sdk/v1/later_module/anything").status_code == 401
    bifrost.configure(later_world.server.url, later_world.alice_key)
    try:
        with pytest.raises(NotAvailableError, match="later_module"):
            await _client.call("GET", "/later_module/anything")
    finally:
        bifrost.configure(None)
