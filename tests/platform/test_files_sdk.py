"""``bifrost.files``: the seven functions x three locations x both modes, from a script and from a workflow."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import bifrost
from bifrost import files
from bifrost.errors import NoSuchFileError, NotFoundError, ValidationError
from tests.platform.conftest import World


async def save_upload(world: World, form_id: str, name: str, content: bytes) -> str:
    """Save a form upload for Alice the way the form submit handler will, and return its path."""
    from app.db import transaction
    from app.services.identity.auth import AuthService

    async with transaction(world.server.platform.sessions) as session:
        actor = await AuthService(session).actor_for_user(world.alice_id)

    async def body() -> AsyncIterator[bytes]:
        yield content

    return (await world.server.platform.files.save_upload(actor, form_id, name, body())).path  # type: ignore[no-any-return]


@pytest.fixture
def as_alice(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The SDK pointed at the live server with Alice's key, in an empty current directory (for local mode)."""
    monkeypatch.chdir(tmp_path)
    bifrost.configure(world.server.url, world.alice_key)
    yield tmp_path
    bifrost.configure(None)


def make_upload(world: World, mode: str, cwd: Path, form_id: str) -> str:
    """An uploaded file: in the platform's store (cloud) or below ./uploads (local)."""
    if mode == "cloud":
        return world.server.call(lambda: save_upload(world, form_id, "answers.txt", b"uploaded \xe2\x9c\x93"))  # type: ignore[no-any-return]
    path = f"uploads/{form_id}/0000-upload/answers.txt"
    (cwd / path).parent.mkdir(parents=True)
    (cwd / path).write_bytes(b"uploaded \xe2\x9c\x93")
    return path


@pytest.mark.parametrize("mode", ["cloud", "local"])
@pytest.mark.parametrize("location", ["workspace", "temp"])
async def test_seven_functions_in_a_writable_location(as_alice: Path, world: World, mode: str, location: str) -> None:
    folder = f"sdk-{mode}-{location}"
    await files.write(f"{folder}/data/config.json", '{"a": "ü"}', location=location, mode=mode)
    await files.write_bytes(f"{folder}/images/logo.png", b"\x89PNG\x00\xff", location=location, mode=mode)
    assert await files.read(f"{folder}/data/config.json", location=location, mode=mode) == '{"a": "ü"}'
    assert await files.read_bytes(f"{folder}/images/logo.png", location=location, mode=mode) == b"\x89PNG\x00\xff"
    assert await files.list(folder, location=location, mode=mode) == ["data/", "images/"]
    assert await files.list(f"{folder}/data/", location=location, mode=mode) == ["config.json"]
    assert await files.list(f"{folder}/nothing", location=location, mode=mode) == []
    assert await files.exists(f"{folder}/data/config.json", location=location, mode=mode) is True
    assert await files.exists(f"{folder}/data/other.json", location=location, mode=mode) is False
    await files.write(f"{folder}/data/config.json", "replaced", location=location, mode=mode)
    assert await files.read(f"{folder}/data/config.json", location=location, mode=mode) == "replaced"
    await files.delete(f"{folder}/data/config.json", location=location, mode=mode)
    assert await files.exists(f"{folder}/data/config.json", location=location, mode=mode) is False
    with pytest.raises(NoSuchFileError, match=r"config\.json"):
        await files.read(f"{folder}/data/config.json", location=location, mode=mode)
    with pytest.raises(NoSuchFileError):
        await files.delete(f"{folder}/data/config.json", location=location, mode=mode)
    # Where the bytes went: the platform's store, in Alice's organization, or ./<location>.
    if mode == "cloud":
        stored = world.server.platform.files.store.root / world.org_a / location / folder / "images" / "logo.png"
    else:
        stored = as_alice / location / folder / "images" / "logo.png"
    assert stored.read_bytes() == b"\x89PNG\x00\xff"


@pytest.mark.parametrize("mode", ["cloud", "local"])
async def test_seven_functions_in_uploads(as_alice: Path, world: World, mode: str) -> None:
    path = make_upload(world, mode, as_alice, f"form-{mode}")
    assert path.startswith(f"uploads/form-{mode}/")
    inside = path.removeprefix("uploads/")
    for given in (path, inside):  # the upload field's value as is, or relative to the location
        assert await files.read(given, location="uploads", mode=mode) == "uploaded ✓"
        assert await files.read_bytes(given, location="uploads", mode=mode) == b"uploaded \xe2\x9c\x93"
        assert await files.exists(given, location="uploads", mode=mode) is True
    upload_folder = inside.rsplit("/", 1)[0]
    assert await files.list(upload_folder, location="uploads", mode=mode) == ["answers.txt"]
    assert await files.list(f"form-{mode}", location="uploads", mode=mode) == [upload_folder.split("/")[1] + "/"]
    for refused in (
        files.write(path, "changed", location="uploads", mode=mode),
        files.write_bytes(f"form-{mode}/new.bin", b"x", location="uploads", mode=mode),
        files.delete(path, location="uploads", mode=mode),
    ):
        with pytest.raises(ValidationError, match="read-only"):
            await refused
    assert await files.read(path, location="uploads", mode=mode) == "uploaded ✓"
    assert await files.exists(f"form-{mode}/new.bin", location="uploads", mode=mode) is False


async def test_cloud_mode_errors_are_typed(as_alice: Path, world: World) -> None:
    await files.write("errors/a.txt", "x")
    with pytest.raises(ValidationError, match="is a folder"):
        await files.read("errors")
    with pytest.raises(ValidationError, match="is a folder"):
        await files.write("errors", "x")
    with pytest.raises(ValidationError, match="location must be one of"):
        await files.read("errors/a.txt", location="nowhere")
    with pytest.raises(ValidationError, match="escapes"):
        await files.read(f"../{world.org_b}/workspace/secret.txt")
    with pytest.raises(NotFoundError):  # NoSuchFileError is also a NotFoundError and a FileNotFoundError
        await files.read("errors/missing.txt")
    with pytest.raises(FileNotFoundError):
        await files.delete("errors/missing.txt")
    service = world.server.platform.files
    previous, service.max_file_bytes = service.max_file_bytes, 10
    try:
        with pytest.raises(ValidationError, match="file size limit of 10 bytes"):
            await files.write_bytes("errors/big.bin", b"x" * 11)
    finally:
        service.max_file_bytes = previous
    assert await files.exists("errors/big.bin") is False


# ----- from inside a workflow ---------------------------------------------------------------------------
def run(world: World, key: str, name: str, params: dict) -> dict:
    with world.server.client(key) as client:
        response = client.post(f"/api/workflows/{name}/execute?wait=true", json={"params": params})
    assert response.status_code == 200, response.text
    execution = response.json()
    assert execution["status"] == "Completed", json.dumps(execution, indent=2)
    return execution["result"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("mode", ["cloud", "local"])
def test_a_workflow_uses_all_seven_functions_in_every_location(world: World, mode: str) -> None:
    # Local mode in a worker: <local-files root>/<org id>/<location>, never the workspace folder.
    local = world.server.settings.resolved_local_files_root / world.org_a
    upload = make_upload(world, mode, local, f"wf-form-{mode}")
    result = run(world, world.alice_key, "files_all_functions", {"mode": mode, "upload_path": upload, "tag": mode})
    for location in ("workspace", "temp"):
        seen = result[location]
        assert seen["read"] == f"{mode} in {location} ✓"
        assert seen["read_bytes"] == [0, 1, 254, 255]
        assert seen["list"] == ["blob.bin", "note.txt"] and seen["exists"] is True
        assert seen["exists_after_delete"] is False and seen["list_after_delete"] == ["blob.bin"]
        assert seen["missing"].startswith("NoSuchFileError: ") and "flow/note.txt" in seen["missing"]
        if mode == "cloud":
            stored = world.server.platform.files.store.root / world.org_a / location / "flow" / "blob.bin"
        else:
            stored = local / location / "flow" / "blob.bin"
            assert not (world.server.settings.workspace / location).exists()
        assert stored.read_bytes() == bytes([0, 1, 254, 255])
    uploads = result["uploads"]
    assert uploads["read"] == uploads["read_after"] == "uploaded ✓"
    assert uploads["read_bytes"] == list(b"uploaded \xe2\x9c\x93")
    assert uploads["list"] == ["answers.txt"] and uploads["exists"] is True
    for op in ("write", "write_bytes", "delete"):
        assert uploads[op].startswith("ValidationError: ") and "read-only" in uploads[op]


def test_a_workflow_sees_only_its_own_organizations_files(world: World) -> None:
    run(world, world.alice_key, "files_write_text", {"path": "shared/plan.txt", "content": "Org A's plan"})
    assert "missing" in run(world, world.bob_key, "files_read_text", {"path": "shared/plan.txt"})
    run(world, world.bob_key, "files_write_text", {"path": "shared/plan.txt", "content": "Org B's plan"})
    assert run(world, world.alice_key, "files_read_text", {"path": "shared/plan.txt"}) == {"content": "Org A's plan"}
    assert run(world, world.bob_key, "files_read_text", {"path": "shared/plan.txt"}) == {"content": "Org B's plan"}
    # A script with Alice's key sees what her workflows wrote (same organization, same store).
    with world.server.client(world.alice_key) as client:
        assert client.get("/api/files/content", params={"path": "shared/plan.txt"}).content == b"Org A's plan"


@pytest.mark.parametrize("mode", ["cloud", "local"])
async def test_folders_in_the_way_fail_alike_in_both_modes(as_alice: Path, mode: str) -> None:
    await files.write(f"clash-{mode}/a.txt", "x", mode=mode)
    with pytest.raises(ValidationError, match="is a folder"):
        await files.read(f"clash-{mode}", mode=mode)
    with pytest.raises(ValidationError, match="is a folder"):
        await files.delete(f"clash-{mode}", mode=mode)
    with pytest.raises(ValidationError, match="cannot write"):
        await files.write(f"clash-{mode}", "x", mode=mode)
    with pytest.raises(ValidationError, match="cannot write"):
        await files.write(f"clash-{mode}/a.txt/b.txt", "x", mode=mode)
    assert await files.exists(f"clash-{mode}", mode=mode) is True  # a folder counts
    assert await files.read(f"clash-{mode}/a.txt", mode=mode) == "x"
