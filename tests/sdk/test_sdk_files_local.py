"""``bifrost.files`` with ``mode="local"``: ./<location>/<path> below the current directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from bifrost import ValidationError, files
from bifrost.errors import NoSuchFileError, NotFoundError


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "project"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


async def test_write_read_list_exists_delete(cwd: Path) -> None:
    await files.write("data/config.json", '{"a": 1}', mode="local")
    await files.write_bytes("images/logo.png", b"\x89PNG\x00", mode="local")
    assert (cwd / "workspace" / "data" / "config.json").read_text() == '{"a": 1}'
    assert await files.read("data/config.json", mode="local") == '{"a": 1}'
    assert await files.read_bytes("images/logo.png", mode="local") == b"\x89PNG\x00"
    assert await files.exists("data/config.json", mode="local") is True
    assert await files.exists("data/other.json", mode="local") is False
    assert await files.list(mode="local") == ["data/", "images/"]
    assert await files.list("data/", mode="local") == ["config.json"]
    assert await files.list("nothing-here", mode="local") == []
    await files.delete("data/config.json", mode="local")
    assert await files.exists("data/config.json", mode="local") is False
    assert await files.list("data", mode="local") == []


async def test_write_replaces_and_text_is_utf8(cwd: Path) -> None:
    await files.write("notes.txt", "first", mode="local")
    await files.write("notes.txt", "zweite Größe ✓", mode="local")
    assert (cwd / "workspace" / "notes.txt").read_bytes() == "zweite Größe ✓".encode()
    assert await files.read("notes.txt", mode="local") == "zweite Größe ✓"


async def test_locations_are_separate_folders(cwd: Path) -> None:
    await files.write("report.html", "<p>temp</p>", location="temp", mode="local")
    await files.write("report.html", "<p>workspace</p>", mode="local")
    assert (cwd / "temp" / "report.html").read_text() == "<p>temp</p>"
    assert await files.read("report.html", location="temp", mode="local") == "<p>temp</p>"
    assert await files.read("report.html", mode="local") == "<p>workspace</p>"


async def test_missing_file_raises_the_same_error_as_cloud_mode(cwd: Path) -> None:
    with pytest.raises(NoSuchFileError, match=r"'nope.txt'"):
        await files.read("nope.txt", mode="local")
    # Catchable both ways.
    with pytest.raises(FileNotFoundError):
        await files.read_bytes("nope.txt", mode="local")
    with pytest.raises(NotFoundError):
        await files.delete("nope.txt", mode="local")


@pytest.mark.parametrize(
    "path",
    ["../outside.txt", "data/../../outside.txt", "..", "/etc/passwd", "a\\..\\..\\outside.txt"],
)
async def test_path_escapes_are_refused(cwd: Path, path: str) -> None:
    (cwd.parent / "outside.txt").write_text("secret")
    for call in (
        files.read(path, mode="local"),
        files.write(path, "pwned", mode="local"),
        files.exists(path, mode="local"),
        files.delete(path, mode="local"),
        files.list(path, mode="local"),
    ):
        with pytest.raises(ValidationError, match=r"escapes|absolute"):
            await call
    assert (cwd.parent / "outside.txt").read_text() == "secret"


async def test_dot_dot_that_stays_inside_is_fine(cwd: Path) -> None:
    await files.write("a/../b.txt", "inside", mode="local")
    assert (cwd / "workspace" / "b.txt").read_text() == "inside"


async def test_symlink_pointing_outside_is_refused(cwd: Path) -> None:
    outside = cwd.parent / "elsewhere"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (cwd / "workspace").mkdir()
    (cwd / "workspace" / "link").symlink_to(outside, target_is_directory=True)
    (cwd / "workspace" / "file-link").symlink_to(outside / "secret.txt")
    with pytest.raises(ValidationError, match="escapes"):
        await files.read("link/secret.txt", mode="local")
    with pytest.raises(ValidationError, match="escapes"):
        await files.read("file-link", mode="local")
    with pytest.raises(ValidationError, match="escapes"):
        await files.write("link/new.txt", "x", mode="local")
    with pytest.raises(ValidationError, match="escapes"):
        await files.list("link", mode="local")
    assert not (outside / "new.txt").exists()


async def test_symlink_inside_the_location_is_fine(cwd: Path) -> None:
    await files.write("real/data.txt", "ok", mode="local")
    (cwd / "workspace" / "alias").symlink_to(cwd / "workspace" / "real", target_is_directory=True)
    assert await files.read("alias/data.txt", mode="local") == "ok"


async def test_the_location_root_is_not_a_file(cwd: Path) -> None:
    with pytest.raises(ValidationError, match="must name a file"):
        await files.write("", "x", mode="local")
    with pytest.raises(ValidationError, match="must name a file"):
        await files.read(".", mode="local")


async def test_uploads_are_read_only(cwd: Path) -> None:
    upload = cwd / "uploads" / "form-1" / "uuid-1" / "file.txt"
    upload.parent.mkdir(parents=True)
    upload.write_text("uploaded")
    with pytest.raises(ValidationError, match="read-only"):
        await files.write("form-1/new.txt", "x", location="uploads", mode="local")
    with pytest.raises(ValidationError, match="read-only"):
        await files.write_bytes("form-1/new.bin", b"x", location="uploads", mode="local")
    with pytest.raises(ValidationError, match="read-only"):
        await files.delete("form-1/uuid-1/file.txt", location="uploads", mode="local")
    assert upload.read_text() == "uploaded"
    assert not (cwd / "uploads" / "form-1" / "new.txt").exists()
    assert await files.read("form-1/uuid-1/file.txt", location="uploads", mode="local") == "uploaded"
    # The spec's example passes the path given by the upload field, which starts with "uploads/".
    assert await files.read("uploads/form-1/uuid-1/file.txt", location="uploads", mode="local") == "uploaded"
    assert await files.list("uploads/form-1", location="uploads", mode="local") == ["uuid-1/"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"location": "home"}, "location must be one of"), ({"mode": "ftp"}, "mode must be 'cloud' or 'local'")],
)
async def test_invalid_location_or_mode(cwd: Path, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        await files.read("x.txt", **{"mode": "local", **kwargs})


async def test_nul_byte_is_refused(cwd: Path) -> None:
    with pytest.raises(ValidationError, match="NUL"):
        await files.write("bad\x00name", "x", mode="local")
