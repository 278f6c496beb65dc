"""``POST /api/publish``: a module reaches the workspace only after a scan proves it, then runs at once."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import httpx

from tests.platform.conftest import World


def module(name: str, answer: str = "published", extra: str = "") -> str:
    return textwrap.dedent(
        f'''
        from bifrost import context, workflow
        {extra}

        @workflow(category="Published")
        async def {name}(who: str = "you") -> dict:
            """A published workflow."""
            return {{"answer": "{answer}", "who": who, "org": context.org_name}}
        '''
    )


def publish(client: httpx.Client, name: str, source: str, **extra: object) -> httpx.Response:
    return client.post("/api/publish", json={"name": name, "source": source, **extra})


def run(world: World, name: str, key: str | None = None) -> httpx.Response:
    with world.server.client(key or world.alice_key) as client:
        return client.post(f"/api/workflows/{name}/execute?wait=true", json={"params": {"who": "Ada"}})


def test_an_admin_publishes_and_the_workflow_runs_at_once(world: World) -> None:
    workspace = world.server.settings.workspace
    with world.server.client(world.admin_key) as admin:
        response = publish(admin, "pub_first", module("pub_first"))
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["file"], body["replaced"], body["removed"]) == ("pub_first.py", False, [])
        assert body["workflow"]["name"] == "pub_first" and body["workflow"]["category"] == "Published"
        assert "pub_first" in [w["name"] for w in admin.get("/api/workflows").json()]
    assert (workspace / "pub_first.py").read_text() == module("pub_first")
    done = run(world, "pub_first")
    assert done.status_code == 200, done.text
    assert done.json()["result"] == {"answer": "published", "who": "Ada", "org": "Org A"}


def test_a_subfolder_and_a_data_provider(world: World) -> None:
    source = textwrap.dedent(
        '''
        from bifrost import data_provider

        @data_provider
        async def pub_colours() -> list:
            """Colours."""
            return [{"label": "Red", "value": "red"}]
        '''
    )
    with world.server.client(world.admin_key) as admin:
        response = publish(admin, "pub_colours", source, file="team/lists.py", kind="data_provider")
        assert response.status_code == 201, response.text
        providers = admin.get("/api/data-providers").json()
    assert (world.server.settings.workspace / "team" / "lists.py").is_file()
    assert [p["source_file"] for p in providers if p["name"] == "pub_colours"] == ["team/lists.py"]


def test_non_admins_cannot_publish(world: World) -> None:
    for key in (world.alice_key, world.bob_key):
        with world.server.client(key) as client:
            refused = publish(client, "pub_sneaky", module("pub_sneaky"))
        assert refused.status_code == 403
        assert "platform admins" in refused.json()["detail"]
    assert not (world.server.settings.workspace / "pub_sneaky.py").exists()
    assert run(world, "pub_sneaky", world.admin_key).status_code == 404


def test_an_existing_name_or_file_needs_force_and_force_replaces(world: World) -> None:
    with world.server.client(world.admin_key) as admin:
        assert publish(admin, "pub_twice", module("pub_twice", "one")).status_code == 201
        again = publish(admin, "pub_twice", module("pub_twice", "two"))
        assert again.status_code == 409 and "force" in again.json()["detail"]
        assert run(world, "pub_twice").json()["result"]["answer"] == "one"
        forced = publish(admin, "pub_twice", module("pub_twice", "two"), force=True)
        assert forced.status_code == 200, forced.text
        assert forced.json()["replaced"] is True
    assert run(world, "pub_twice").json()["result"]["answer"] == "two"


def test_force_cannot_create_a_duplicate_defined_in_another_file(world: World) -> None:
    # `add` lives in basics.py: writing another file that defines it would make both unrunnable.
    with world.server.client(world.admin_key) as admin:
        clash = publish(admin, "add", module("add"), file="other_add.py", force=True)
    assert clash.status_code == 409
    assert "basics.py" in clash.json()["detail"]
    assert not (world.server.settings.workspace / "other_add.py").exists()


def test_paths_are_confined_to_the_workspace(world: World, tmp_path: Path) -> None:
    workspace = world.server.settings.workspace
    outside = tmp_path / "outside"
    outside.mkdir()
    (workspace / "escape").symlink_to(outside, target_is_directory=True)
    bad = [
        "../evil.py",
        "/tmp/evil.py",
        "team/../../evil.py",
        "_hidden.py",
        ".secret/evil.py",
        "notes.txt",
        "v1.2/evil.py",
        "escape/evil.py",
        "back\\slash.py",
    ]
    with world.server.client(world.admin_key) as admin:
        for path in bad:
            response = publish(admin, "pub_evil", module("pub_evil"), file=path, force=True)
            assert response.status_code == 422, (path, response.text)
            assert response.json()["extra"]["errors"][0]["field"] == "file", path
    assert list(outside.iterdir()) == []
    assert not (workspace.parent / "evil.py").exists()
    assert "pub_evil" not in {p.stem for p in workspace.rglob("*.py")}


def test_a_module_that_does_not_import_or_define_the_name_is_refused(world: World) -> None:
    workspace = world.server.settings.workspace
    cases = [
        (module("pub_broken", extra="import no_such_module_anywhere"), "ModuleNotFoundError"),
        ("def oops(:\n    pass\n", "SyntaxError"),
        (module("pub_other_name"), "does not define a workflow named 'pub_broken'"),
        ("raise SystemExit(3)\n", "SystemExit"),
    ]
    with world.server.client(world.admin_key) as admin:
        for source, expected in cases:
            response = publish(admin, "pub_broken", source)
            assert response.status_code == 422, response.text
            error = response.json()["extra"]["errors"][0]
            assert error["field"] == "source" and expected in error["message"], error
        errors = admin.get("/api/workspace/errors").json()
    assert not (workspace / "pub_broken.py").exists()
    assert [e for e in errors if "pub_broken" in e["file"]] == []


def test_a_module_that_would_break_other_files_is_refused(world: World) -> None:
    workspace = world.server.settings.workspace
    with world.server.client(world.admin_key) as admin:
        helper = (
            "from bifrost import workflow\n\nRATE = 3\n\n@workflow\nasync def pub_helper() -> int:\n    return RATE\n"
        )
        assert publish(admin, "pub_helper", helper).status_code == 201
        (workspace / "pub_user.py").write_text(
            "from pub_helper import RATE\nfrom bifrost import workflow\n\n"
            "@workflow\nasync def pub_user() -> int:\n    return RATE * 2\n"
        )
        assert admin.post("/api/workspace/sync").status_code == 200
        without_rate = "from bifrost import workflow\n\n@workflow\nasync def pub_helper() -> int:\n    return 1\n"
        refused = publish(admin, "pub_helper", without_rate, force=True)
        assert refused.status_code == 422, refused.text
        assert "would break other workspace files: pub_user.py" in refused.json()["detail"]
    assert "RATE = 3" in (workspace / "pub_helper.py").read_text()
    with world.server.client(world.alice_key) as alice:
        assert alice.post("/api/workflows/pub_user/execute?wait=true", json={}).json()["result"] == 6


def test_bad_bodies_name_the_field(world: World) -> None:
    with world.server.client(world.admin_key) as admin:
        for body, field in [
            ({"name": "", "source": module("x")}, "name"),
            ({"name": "x", "source": "   "}, "source"),
            ({"name": "x", "source": module("x"), "kind": "job"}, "kind"),
            ({"name": "x", "source": "x = 1\n" * 200_000}, "source"),
        ]:
            response = admin.post("/api/publish", json=body)
            assert response.status_code == 422, (field, response.text)
            assert response.json()["extra"]["errors"][0]["field"] == field
        for field in ("file", "source", "name"):  # a lone surrogate cannot be a file name or file content
            body = {"name": "x", "source": "x = 1", field: "\\ud800"}
            raw = json.dumps(body).replace("\\\\ud800", "\\ud800")
            response = admin.post("/api/publish", content=raw, headers={"Content-Type": "application/json"})
            assert response.status_code in (400, 422), (field, response.text)  # the body parser may refuse first
        missing = admin.post("/api/publish", json={"name": "x"})
        assert missing.status_code == 400 and "source" in missing.text
