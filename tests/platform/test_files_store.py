"""The object store and file service directly: atomic writes, links, uploads, temp cleanup."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.services.actor import Actor
from app.services.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from app.services.files.service import FileService, FileTooLargeError, TempCleaner, clean_temp
from app.services.files.storage import STAGING, LocalDirectoryStore, ObjectNotFoundError, UnsafeKeyError, split_key
from tests.conftest import make_settings

ORG_A = "11111111-1111-1111-1111-111111111111"
ORG_B = "22222222-2222-2222-2222-222222222222"


def actor(org: str | None, superuser: bool = False) -> Actor:
    return Actor(
        user_id="u-" + str(org),
        email="u@example.com",
        name="U",
        organization_id=org,
        is_superuser=superuser,
        acting_org_id=org,
    )


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "files"


@pytest.fixture
def service(root: Path) -> FileService:
    return FileService(LocalDirectoryStore(root), max_file_bytes=1000)


def staging_files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / STAGING).iterdir())


def age(path: Path, hours: float) -> None:
    """Set a file's times ``hours`` into the past."""
    stamp = time.time() - hours * 3600
    os.utime(path, (stamp, stamp))


# ----- writes -------------------------------------------------------------------------------------------
async def test_write_is_atomic_and_a_failed_write_leaves_the_old_file(service: FileService, root: Path) -> None:
    alice = actor(ORG_A)
    await service.write(alice, "report.csv", "workspace", chunks_of(b"v1"))

    async def broken() -> AsyncIterator[bytes]:
        yield b"half of v2"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        await service.write(alice, "report.csv", "workspace", broken())
    with pytest.raises(ConnectionError):
        await service.write(alice, "new/never.csv", "workspace", broken())
    stored, body = await service.open(alice, "report.csv")
    assert b"".join([c async for c in body]) == b"v1" and stored.size == 2
    assert await service.exists(alice, "new/never.csv") is False
    assert await service.list(alice) == ["report.csv"]
    assert staging_files(root) == []  # no half-written file kept anywhere


async def test_size_limit_stores_nothing(service: FileService, root: Path) -> None:
    alice = actor(ORG_A)
    with pytest.raises(FileTooLargeError, match="1000 bytes"):
        await service.write(alice, "big.bin", "temp", chunks_of(b"x" * 600, b"x" * 600))
    with pytest.raises(FileTooLargeError):  # announced size: refused before reading
        await service.write(alice, "big.bin", "temp", chunks_of(b"x"), declared_size=1001)
    info = await service.write(alice, "exact.bin", "temp", chunks_of(b"x" * 500, b"x" * 500))
    assert info.size == 1000
    assert await service.list(alice, "", "temp") == ["exact.bin"]
    assert staging_files(root) == []


async def test_keys_follow_the_org_location_path_layout(service: FileService, root: Path) -> None:
    await service.write(actor(ORG_A), "a/b.txt", "workspace", chunks_of(b"A"))
    await service.write(actor(ORG_B), "a/b.txt", "workspace", chunks_of(b"B"))
    await service.write(actor(None, superuser=True), "a/b.txt", "temp", chunks_of(b"G"))
    assert (root / ORG_A / "workspace" / "a" / "b.txt").read_bytes() == b"A"
    assert (root / ORG_B / "workspace" / "a" / "b.txt").read_bytes() == b"B"
    assert (root / "global" / "temp" / "a" / "b.txt").read_bytes() == b"G"


def test_store_keys_refuse_escapes_even_without_the_service() -> None:
    for key in ["..", "a/../b", "a//b", "./a", "a\\b", "a\x00b", f"{STAGING}/x", "/abs"]:
        with pytest.raises(UnsafeKeyError):
            split_key(key)
    assert split_key("org/workspace/a b/ü.txt") == ["org", "workspace", "a b", "ü.txt"]


async def test_links_inside_the_store_are_never_followed(root: Path, tmp_path: Path) -> None:
    store = LocalDirectoryStore(root)
    await store.write(f"{ORG_B}/workspace/secret.txt", chunks_of(b"org B secret"))
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"server file")
    (root / ORG_A / "workspace").mkdir(parents=True)
    (root / ORG_A / "workspace" / "b").symlink_to(root / ORG_B / "workspace", target_is_directory=True)
    (root / ORG_A / "workspace" / "out.txt").symlink_to(outside)
    for key in (f"{ORG_A}/workspace/b/secret.txt", f"{ORG_A}/workspace/out.txt"):
        with pytest.raises(UnsafeKeyError, match="symbolic link"):
            await store.open_read(key)
        with pytest.raises(UnsafeKeyError, match="symbolic link"):
            await store.write(key, chunks_of(b"overwritten"))
        with pytest.raises(UnsafeKeyError, match="symbolic link"):
            await store.delete(key)
    with pytest.raises(UnsafeKeyError):
        await store.list(f"{ORG_A}/workspace/b")
    assert outside.read_bytes() == b"server file"
    assert (root / ORG_B / "workspace" / "secret.txt").read_bytes() == b"org B secret"
    # Links are not objects: a listing skips them and a walk does not descend into them.
    assert await store.list(f"{ORG_A}/workspace") == []
    assert await store.walk(ORG_A) == []


async def test_special_files_are_refused_without_blocking(root: Path) -> None:
    store = LocalDirectoryStore(root)
    (root / ORG_A / "workspace").mkdir(parents=True)
    os.mkfifo(root / ORG_A / "workspace" / "pipe")
    with pytest.raises(UnsafeKeyError, match="not a regular file"):
        await store.open_read(f"{ORG_A}/workspace/pipe")
    assert await store.list(f"{ORG_A}/workspace") == []


async def test_hard_links_are_refused(root: Path, tmp_path: Path) -> None:
    store = LocalDirectoryStore(root)
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"server file")
    (root / ORG_A / "workspace").mkdir(parents=True)
    os.link(secret, root / ORG_A / "workspace" / "copy.txt")
    with pytest.raises(UnsafeKeyError, match="hard links"):
        await store.open_read(f"{ORG_A}/workspace/copy.txt")


# ----- uploads ------------------------------------------------------------------------------------------
async def test_save_upload_streams_to_uploads_and_workflows_can_read_it(service: FileService, root: Path) -> None:
    alice = actor(ORG_A)
    saved = await service.save_upload(
        alice, "form-1", "C:\\fakepath\\Quarterly Report.csv", chunks_of(b"a,b\n", b"1,2\n")
    )
    assert saved.name == "Quarterly Report.csv"
    assert saved.size == 8 and saved.content_type == "text/csv"
    form, uid, name = saved.path.split("/")[1:]
    assert saved.path.startswith("uploads/form-1/") and form == "form-1" and name == saved.name and len(uid) == 36
    assert (root / ORG_A / "uploads" / "form-1" / uid / name).read_bytes() == b"a,b\n1,2\n"
    # The path the upload gives works as is with location="uploads", with or without its prefix.
    for path in (saved.path, saved.path.removeprefix("uploads/")):
        _, body = await service.open(alice, path, "uploads")
        assert b"".join([c async for c in body]) == b"a,b\n1,2\n"
    assert await service.list(alice, "uploads/form-1", "uploads") == [f"{uid}/"]
    # Other organizations do not see it; workflows cannot change it.
    with pytest.raises(NotFoundError):
        await service.open(actor(ORG_B), saved.path, "uploads")
    with pytest.raises(PermissionDeniedError, match="read-only"):
        await service.write(alice, saved.path, "uploads", chunks_of(b"x"))
    with pytest.raises(PermissionDeniedError, match="read-only"):
        await service.delete(alice, saved.path, "uploads")
    again = await service.save_upload(alice, "form-1", "Quarterly Report.csv", chunks_of(b"x"), "text/plain")
    assert again.path != saved.path and again.content_type == "text/plain"  # same name, separate folder


@pytest.mark.parametrize(
    ("form_id", "filename", "field"),
    [
        ("../other", "a.txt", "form_id"),
        ("", "a.txt", "form_id"),
        ("form-1", "..", "filename"),
        ("form-1", "dir/", "filename"),
        ("form-1", "bad\x00.txt", "filename"),
        ("form-1", "x" * 256, "filename"),
    ],
)
async def test_save_upload_refuses_bad_names(
    service: FileService, root: Path, form_id: str, filename: str, field: str
) -> None:
    with pytest.raises(InvalidInputError) as err:
        await service.save_upload(actor(ORG_A), form_id, filename, chunks_of(b"x"))
    assert err.value.errors[0]["field"] == field
    assert not (root / ORG_A).exists()


async def test_save_upload_over_the_limit_keeps_nothing(service: FileService, root: Path) -> None:
    with pytest.raises(FileTooLargeError):
        await service.save_upload(actor(ORG_A), "form-1", "big.bin", chunks_of(b"x" * 1001))
    assert await service.store.walk(ORG_A) == [] and staging_files(root) == []


# ----- temp cleanup -------------------------------------------------------------------------------------
async def test_clean_temp_deletes_old_temp_files_of_every_org_and_nothing_else(
    service: FileService, root: Path
) -> None:
    for org in (ORG_A, ORG_B):
        for location in ("temp", "workspace"):
            for path in ("old.html", "reports/old.csv", "fresh.html"):
                await service.write(actor(org), path, location, chunks_of(b"x"))
    await service.save_upload(actor(ORG_A), "form-1", "old.txt", chunks_of(b"x"))
    for file in root.rglob("old*"):
        age(file, 30)
    abandoned = root / STAGING / "crashed.part"
    abandoned.write_bytes(b"partial")
    age(abandoned, 48)
    in_progress = root / STAGING / "writing.part"
    in_progress.write_bytes(b"partial")

    assert await clean_temp(service.store, timedelta(hours=24)) == 4
    for org in (ORG_A, ORG_B):
        assert await service.list(actor(org), "", "temp") == ["fresh.html"]  # emptied folders are gone too
        assert await service.list(actor(org), "", "workspace") == ["fresh.html", "old.html", "reports/"]
    assert len([p for p in (root / ORG_A / "uploads").rglob("old.txt")]) == 1
    assert staging_files(root) == ["writing.part"]
    # Nothing is old enough for a second run.
    assert await clean_temp(service.store, timedelta(hours=24)) == 0
    # "now" can be moved instead of the files.
    later = datetime.now(UTC) + timedelta(hours=25)
    assert await clean_temp(service.store, timedelta(hours=24), now=later) == 2


async def test_clean_temp_on_an_empty_store(root: Path) -> None:
    assert await clean_temp(LocalDirectoryStore(root), timedelta(hours=1)) == 0


async def test_temp_cleaner_runs_in_the_background_and_stops(service: FileService, root: Path) -> None:
    await service.write(actor(ORG_A), "old.txt", "temp", chunks_of(b"x"))
    age(root / ORG_A / "temp" / "old.txt", 2)
    cleaner = TempCleaner(service.store, timedelta(hours=1), interval_seconds=3600)
    cleaner.start()
    try:
        for _ in range(500):  # the first run starts at once; wait for it without assuming a duration
            if not await service.exists(actor(ORG_A), "old.txt", "temp"):
                break
            await asyncio.sleep(0.01)
        assert not await service.exists(actor(ORG_A), "old.txt", "temp")
    finally:
        await cleaner.stop()
    assert cleaner._task is None


def test_settings_configure_the_store(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, workspace=tmp_path, files_root=tmp_path / "objects", max_file_bytes=123, temp_max_age_hours=2
    )
    service = FileService.from_settings(settings)
    assert isinstance(service.store, LocalDirectoryStore) and service.store.root == (tmp_path / "objects").resolve()
    assert service.max_file_bytes == 123 and service.cleaner.max_age == timedelta(hours=2)
    default = FileService.from_settings(make_settings(tmp_path / "d", workspace=tmp_path))
    assert default.store.root == (tmp_path / "d" / "home" / "files").resolve()  # type: ignore[attr-defined]


async def test_missing_objects(root: Path) -> None:
    store = LocalDirectoryStore(root)
    with pytest.raises(ObjectNotFoundError):
        await store.open_read("org/workspace/nope")
    with pytest.raises(ObjectNotFoundError):
        await store.delete("org/workspace/nope")
    assert await store.stat("org/workspace/nope") is None
    assert await store.exists("org/workspace/nope") is False
    assert await store.list("org/workspace/nope") == []
