"""The files API over real HTTP: organization isolation, crafted paths, links, limits, streaming."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from app.services.files.storage import STAGING
from tests.platform.conftest import World

SDK = "/api/sdk/v1/files"
API = "/api/files"


def store_root(world: World) -> Path:
    return world.server.platform.files.store.root  # type: ignore[no-any-return]


def put(
    world: World, key: str, path: str, content: bytes, location: str = "workspace", **headers: str
) -> httpx.Response:
    with world.server.client(key, **headers) as client:
        return client.put(f"{SDK}/content", params={"path": path, "location": location}, content=content)


def get(world: World, key: str, path: str, location: str = "workspace", **headers: str) -> httpx.Response:
    with world.server.client(key, **headers) as client:
        return client.get(f"{SDK}/content", params={"path": path, "location": location})


@pytest.fixture
def bob_secret(world: World) -> Iterator[str]:
    """A file of Org B that Org A must never reach; its content is checked after every attack."""
    assert put(world, world.bob_key, "secret.txt", b"org B secret").status_code == 200
    yield "secret.txt"
    assert get(world, world.bob_key, "secret.txt").content == b"org B secret"


def raw_request(world: World, key: str, method: str, raw_query: str) -> httpx.Response:
    """Send a query string exactly as written (no client-side encoding or normalisation)."""
    route = "/list" if method == "LIST" else "/exists" if method == "EXISTS" else "/content"
    verb = "GET" if method in ("LIST", "EXISTS") else method
    with world.server.client(key) as client:
        request = client.build_request(verb, f"{SDK}{route}", content=b"pwned" if verb == "PUT" else None)
        request.url = httpx.URL(f"{world.server.url}{SDK}{route}?{raw_query}")
        return client.send(request)


# ----- isolation ----------------------------------------------------------------------------------------
def test_each_organization_has_its_own_files(world: World, bob_secret: str) -> None:
    assert get(world, world.alice_key, bob_secret).status_code == 404  # same path, Alice's org: nothing
    with world.server.client(world.alice_key) as client:
        assert "secret.txt" not in client.get(f"{SDK}/list").json()
        assert put(world, world.alice_key, bob_secret, b"alice's own").status_code == 200
        assert get(world, world.alice_key, bob_secret).content == b"alice's own"
        assert "secret.txt" in client.get(f"{SDK}/list").json()
        assert client.delete(f"{SDK}/content", params={"path": bob_secret}).status_code == 204
        assert client.get(f"{SDK}/exists", params={"path": bob_secret}).json() == {"exists": False}
    # A platform admin reaches an organization's files by picking it; without one, the global files.
    assert get(world, world.admin_key, bob_secret, **{"X-Bifrost-Org": "Org B"}).content == b"org B secret"
    assert put(world, world.admin_key, "platform.txt", b"global").status_code == 200
    assert (store_root(world) / "global" / "workspace" / "platform.txt").read_bytes() == b"global"
    assert get(world, world.alice_key, "platform.txt").status_code == 404
    assert (store_root(world) / world.org_b / "workspace" / "secret.txt").read_bytes() == b"org B secret"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "LIST", "EXISTS"])
def test_crafted_paths_are_refused_with_a_clear_error(world: World, bob_secret: str, method: str) -> None:
    org_b = world.org_b
    attacks = {
        f"path=..%2F{org_b}%2Fworkspace%2Fsecret.txt": "escapes the workspace location",
        f"path=..%2F..%2F{org_b}%2Fworkspace%2Fsecret.txt": "escapes the workspace location",
        f"path=%2e%2e%2F%2e%2e%2F{org_b}%2Fworkspace%2Fsecret.txt": "escapes the workspace location",
        f"path=a%2F..%2F..%2F..%2F{org_b}%2Fworkspace%2Fsecret.txt": "escapes the workspace location",
        f"path=..%2F..%2F{org_b}%2Fworkspace%2Fsecret.txt&location=temp": "escapes the temp location",
        f"path=%2F{org_b}%2Fworkspace%2Fsecret.txt": "absolute path",
        f"path=..%5C..%5C{org_b}%5Cworkspace%5Csecret.txt": "backslash",
        "path=secret.txt%00.png": "NUL byte",
        "path=..": "escapes",
        "path=a%0Ab": "control character",
        "path=x&location=..%2F..%2F" + org_b: "location: must be one of",
    }
    for query, message in attacks.items():
        response = raw_request(world, world.alice_key, method, query)
        assert response.status_code == 422, (query, response.text)
        assert message in response.json()["detail"], (query, response.text)
        assert response.json()["extra"]["errors"][0]["field"] in ("path", "location")
    # Decoded once, as a URL should be: a double-encoded "../" is a strange but harmless name in Alice's own org.
    response = raw_request(world, world.alice_key, "GET", f"path=%252e%252e%252F{org_b}%252Fworkspace%252Fsecret.txt")
    assert response.status_code == 404 and "%2e%2e%2F" in response.json()["detail"]


def test_links_planted_inside_the_store_are_refused(world: World, bob_secret: str, tmp_path: Path) -> None:
    root = store_root(world)
    outside = tmp_path / "server-file.txt"
    outside.write_bytes(b"not for workflows")
    mine = root / world.org_a / "workspace" / "links"
    mine.mkdir(parents=True, exist_ok=True)
    (mine / "to-org-b").symlink_to(root / world.org_b, target_is_directory=True)
    (mine / "stolen.txt").symlink_to(root / world.org_b / "workspace" / "secret.txt")
    (mine / "outside.txt").symlink_to(outside)
    (mine / "etc").symlink_to("/etc", target_is_directory=True)
    os.link(outside, mine / "hardlinked.txt")
    try:
        cases = {
            "links/to-org-b/workspace/secret.txt": "'to-org-b' is a symbolic link",
            "links/stolen.txt": "'stolen.txt' is a symbolic link",
            "links/outside.txt": "'outside.txt' is a symbolic link",
            "links/etc/passwd": "'etc' is a symbolic link",
        }
        with world.server.client(world.alice_key) as client:
            for path, message in cases.items():
                for response in (
                    client.get(f"{SDK}/content", params={"path": path}),
                    client.put(f"{SDK}/content", params={"path": path}, content=b"overwritten"),
                    client.delete(f"{SDK}/content", params={"path": path}),
                ):
                    assert response.status_code == 422, (path, response.request.method, response.text)
                    assert message in response.json()["detail"] and "follows no links" in response.json()["detail"]
            assert client.get(f"{SDK}/exists", params={"path": "links/stolen.txt"}).status_code == 422
            listing = client.get(f"{SDK}/list", params={"path": "links/to-org-b/workspace"})
            assert listing.status_code == 422 and "symbolic link" in listing.json()["detail"]
            hard = client.get(f"{SDK}/content", params={"path": "links/hardlinked.txt"})
            assert hard.status_code == 422 and "hard links" in hard.json()["detail"]
            # The links are not shown as files.
            assert client.get(f"{SDK}/list", params={"path": "links"}).json() == ["hardlinked.txt"]
        assert outside.read_bytes() == b"not for workflows"
        assert (mine / "stolen.txt").is_symlink()
    finally:
        for name in ("to-org-b", "stolen.txt", "outside.txt", "etc", "hardlinked.txt"):
            (mine / name).unlink()


def test_uploads_are_read_only_over_http(world: World) -> None:
    saved = world.server.call(lambda: save_upload(world, world.alice_id, "form-9", "in.txt", b"uploaded"))
    with world.server.client(world.alice_key) as client:
        for base in (SDK, API):
            refused = client.put(f"{base}/content", params={"path": saved, "location": "uploads"}, content=b"x")
            assert refused.status_code == 403 and "read-only" in refused.json()["detail"]
            gone = client.delete(f"{base}/content", params={"path": saved, "location": "uploads"})
            assert gone.status_code == 403 and "read-only" in gone.json()["detail"]
            fresh = client.put(
                f"{base}/content", params={"path": "form-9/new.txt", "location": "uploads"}, content=b"x"
            )
            assert fresh.status_code == 403
        read = client.get(f"{SDK}/content", params={"path": saved, "location": "uploads"})
        assert read.status_code == 200 and read.content == b"uploaded"
        assert client.get(f"{SDK}/list", params={"path": "form-9", "location": "uploads"}).json() == [
            saved.split("/")[2] + "/"
        ]


async def save_upload(world: World, user_id: str, form_id: str, name: str, content: bytes) -> str:
    from app.db import transaction
    from app.services.identity.auth import AuthService

    async with transaction(world.server.platform.sessions) as session:
        actor = await AuthService(session).actor_for_user(user_id)

    async def body() -> AsyncIterator[bytes]:
        yield content

    saved = await world.server.platform.files.save_upload(actor, form_id, name, body())
    return saved.path  # type: ignore[no-any-return]


# ----- validation, listing, replacing -------------------------------------------------------------------
def test_bad_input_is_a_4xx_naming_the_problem(world: World) -> None:
    with world.server.client(world.alice_key) as client:
        assert put(world, world.alice_key, "docs/readme.txt", b"hi").status_code == 200
        cases = [
            (client.get(f"{SDK}/content"), 422, "path", "must name a file"),
            (client.put(f"{SDK}/content", content=b"x"), 422, "path", "must name a file"),
            (client.get(f"{SDK}/content", params={"path": "docs"}), 422, "path", "is a folder, not a file"),
            (client.delete(f"{SDK}/content", params={"path": "docs"}), 422, "path", "is a folder, not a file"),
            (client.put(f"{SDK}/content", params={"path": "docs"}, content=b"x"), 409, None, "'docs' is a folder"),
            (
                client.put(f"{SDK}/content", params={"path": "docs/readme.txt/inner"}, content=b"x"),
                409,
                None,
                "'readme.txt' is a file, not a folder",
            ),
            (client.get(f"{SDK}/content", params={"path": "a" * 1025}), 422, "path", "longer than 1024"),
            (client.get(f"{SDK}/content", params={"path": "a" * 256}), 422, "path", "longer than 255 bytes"),
            (client.get(f"{SDK}/list", params={"location": "home"}), 422, "location", "must be one of"),
            (client.delete(f"{SDK}/content", params={"path": "docs/nope.txt"}), 404, None, "no file 'docs/nope.txt'"),
        ]
        for response, status, field, message in cases:
            assert response.status_code == status, (response.request.url, response.text)
            body = response.json()
            assert message in body["detail"], body
            if field:
                assert body["extra"]["errors"][0]["field"] == field
        assert get(world, world.alice_key, "docs/readme.txt").content == b"hi"


def test_list_names_files_and_folders_like_local_mode(world: World) -> None:
    for path in ("tree/b.txt", "tree/a.txt", "tree/sub/deep/c.txt", "tree/.hidden", "tree/ü ñ.txt"):
        assert put(world, world.alice_key, path, b"x", location="temp").status_code == 200
    with world.server.client(world.alice_key) as client:

        def listing(path: str) -> list[str]:
            response = client.get(f"{API}/list", params={"path": path, "location": "temp"})
            assert response.status_code == 200, response.text
            return response.json()  # type: ignore[no-any-return]

        def exists(path: str) -> bool:
            return client.get(f"{API}/exists", params={"path": path, "location": "temp"}).json()["exists"]  # type: ignore[no-any-return]

        assert listing("tree") == [".hidden", "a.txt", "b.txt", "sub/", "ü ñ.txt"]
        assert listing("tree/") == listing("./tree") == listing("tree/sub/..") == listing("tree")
        assert listing("tree/sub") == ["deep/"]
        assert listing("nothing/here") == [] and listing("tree/a.txt") == []
        assert "tree/" in listing("")
        assert exists("tree") and exists("tree/sub/deep/c.txt") and not exists("tree/c.txt")
        # Folders exist while they hold something: deleting the last file removes them.
        assert (
            client.delete(f"{API}/content", params={"path": "tree/sub/deep/c.txt", "location": "temp"}).status_code
            == 204
        )
        assert not exists("tree/sub") and listing("tree") == [".hidden", "a.txt", "b.txt", "ü ñ.txt"]


def test_write_replaces_and_download_headers_are_safe(world: World) -> None:
    assert put(world, world.alice_key, "page.html", b"<script>alert(1)</script>").status_code == 200
    written = put(world, world.alice_key, "page.html", b"<p>v2</p>")
    assert written.status_code == 200
    assert (
        written.json()["path"] == "page.html"
        and written.json()["size"] == 9
        and written.json()["location"] == "workspace"
    )
    response = get(world, world.alice_key, "page.html")
    assert response.content == b"<p>v2</p>"
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-length"] == "9"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-disposition"] == "attachment; filename*=UTF-8''page.html"
    with world.server.client(world.alice_key) as client:
        assert client.get(f"{API}/content", params={"path": "page.html"}).content == b"<p>v2</p>"
    empty = put(world, world.alice_key, "empty.txt", b"")
    assert empty.status_code == 200 and empty.json()["size"] == 0
    response = get(world, world.alice_key, "empty.txt")
    assert response.status_code == 200 and response.content == b"" and response.headers["content-length"] == "0"


def test_files_need_authentication(world: World) -> None:
    with world.server.client() as anonymous:
        assert anonymous.get(f"{API}/list").status_code == 401
        assert anonymous.put(f"{SDK}/content", params={"path": "x"}, content=b"x").status_code == 401


# ----- size limit, failed uploads, streaming ------------------------------------------------------------
@pytest.fixture
def small_limit(world: World) -> Iterator[int]:
    files = world.server.platform.files
    previous, files.max_file_bytes = files.max_file_bytes, 1000
    yield 1000
    files.max_file_bytes = previous


def test_files_over_the_size_limit_get_413_and_are_not_stored(world: World, small_limit: int) -> None:
    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while streaming
        for _ in range(30):
            yield b"x" * 100

    with world.server.client(world.alice_key) as client:
        for content in (b"x" * (small_limit + 1), chunked()):
            response = client.put(f"{SDK}/content", params={"path": "big.bin"}, content=content)
            assert response.status_code == 413, response.text
            assert f"limit of {small_limit} bytes" in response.json()["detail"]
        assert client.get(f"{SDK}/exists", params={"path": "big.bin"}).json() == {"exists": False}
        assert client.put(f"{SDK}/content", params={"path": "big.bin"}, content=b"x" * small_limit).status_code == 200
    assert list((store_root(world) / STAGING).iterdir()) == []


def test_an_interrupted_upload_leaves_the_old_file_and_nothing_else(world: World) -> None:
    assert put(world, world.alice_key, "report.csv", b"version 1").status_code == 200
    host, port = world.server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            (
                f"PUT {SDK}/content?path=report.csv HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {world.alice_key}\r\nContent-Length: 1000000\r\n\r\n"
            ).encode()
            + b"version 2, cut off"
        )
        # Wait until the server holds the partial body in its staging folder, then hang up.
        staging = store_root(world) / STAGING
        for _ in range(1000):
            if any(staging.iterdir()):
                break
            time.sleep(0.01)
        assert any(staging.iterdir())
    for _ in range(1000):  # the server notices the disconnect and drops the partial file
        if not any(staging.iterdir()):
            break
        time.sleep(0.01)
    assert list(staging.iterdir()) == []
    assert get(world, world.alice_key, "report.csv").content == b"version 1"


def _peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/self/status")


def _reset_peak_rss() -> None:
    # First hand freed heap memory back to the system: an xdist worker that ran other tests may hold
    # hundreds of MiB of freed but resident heap, which a new 64 MiB buffer reuses without raising the
    # RSS, so a whole-file copy would go unseen (the check below then fails: it did once in a full run).
    with contextlib.suppress(OSError, AttributeError):  # glibc only
        ctypes.CDLL(None).malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak restarts from the current RSS


def test_large_files_stream_through_the_server_without_being_held_in_memory(world: World) -> None:
    """The server runs in this process (a thread): its peak RSS must grow far less than the file's size."""
    size = 64 * 1024 * 1024
    block = os.urandom(1024 * 1024)
    expected = hashlib.sha256(block * 64).hexdigest()

    def body() -> Iterator[bytes]:
        for _ in range(size // len(block)):
            yield block  # the same object every time: the client holds 1 MiB, not the file

    # The measurement sees a whole-file copy when one exists.
    _reset_peak_rss()
    before = _peak_rss_kib()
    copy = bytearray(size)
    copy[::4096] = b"x" * (size // 4096)  # touch every page
    assert _peak_rss_kib() - before > size // 1024 * 0.9
    del copy

    with world.server.client(world.alice_key) as client:
        _reset_peak_rss()
        before = _peak_rss_kib()
        response = client.put(f"{SDK}/content", params={"path": "big/archive.bin", "location": "temp"}, content=body())
        assert response.status_code == 200 and response.json()["size"] == size
        upload_growth = _peak_rss_kib() - before

        _reset_peak_rss()
        before = _peak_rss_kib()
        digest = hashlib.sha256()
        received = 0
        with client.stream("GET", f"{SDK}/content", params={"path": "big/archive.bin", "location": "temp"}) as stream:
            assert stream.status_code == 200 and stream.headers["content-length"] == str(size)
            for chunk in stream.iter_bytes():
                digest.update(chunk)
                received += len(chunk)
        download_growth = _peak_rss_kib() - before
    assert received == size and digest.hexdigest() == expected
    limit_kib = size // 1024 // 4  # a quarter of the file: buffering it whole would be at least four times that
    assert upload_growth < limit_kib, f"upload grew peak RSS by {upload_growth} KiB"
    assert download_growth < limit_kib, f"download grew peak RSS by {download_growth} KiB"
    print(f"peak RSS growth for a {size // 2**20} MiB file: upload {upload_growth} KiB, download {download_growth} KiB")


def test_names_are_decoded_once(world: World) -> None:
    name = "100% sure & more?.txt"
    assert put(world, world.alice_key, name, b"odd name").status_code == 200
    assert get(world, world.alice_key, name).content == b"odd name"
    response = get(world, world.alice_key, name)
    assert response.headers["content-disposition"] == f"attachment; filename*=UTF-8''{quote(name, safe='')}"
