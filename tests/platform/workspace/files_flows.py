"""Workflows that use bifrost.files from inside an execution (tests/platform/test_files_sdk.py)."""

import posixpath

from bifrost import files, workflow
from bifrost.errors import NoSuchFileError, ValidationError


async def _refused(call) -> str:
    try:
        await call
    except ValidationError as exc:
        return f"ValidationError: {exc}"
    return "not refused"


@workflow
async def files_all_functions(mode: str, upload_path: str, tag: str = "flow") -> dict:
    """Call the seven bifrost.files functions in every location with one mode.

    Args:
        mode: "cloud" or "local".
        upload_path: A file saved in the uploads location beforehand.
        tag: Written into the files, so a caller can tell runs apart.
    """
    out: dict = {}
    for location in ("workspace", "temp"):
        await files.write("flow/note.txt", f"{tag} in {location} ✓", location=location, mode=mode)
        await files.write_bytes("flow/blob.bin", bytes([0, 1, 254, 255]), location=location, mode=mode)
        seen = {
            "read": await files.read("flow/note.txt", location=location, mode=mode),
            "read_bytes": list(await files.read_bytes("flow/blob.bin", location=location, mode=mode)),
            "list": await files.list("flow", location=location, mode=mode),
            "exists": await files.exists("flow/note.txt", location=location, mode=mode),
        }
        await files.delete("flow/note.txt", location=location, mode=mode)
        seen["exists_after_delete"] = await files.exists("flow/note.txt", location=location, mode=mode)
        seen["list_after_delete"] = await files.list("flow", location=location, mode=mode)
        try:
            await files.read("flow/note.txt", location=location, mode=mode)
            seen["missing"] = "no error"
        except NoSuchFileError as exc:
            seen["missing"] = f"NoSuchFileError: {exc}"
        out[location] = seen
    folder = posixpath.dirname(upload_path)
    out["uploads"] = {
        "read": await files.read(upload_path, location="uploads", mode=mode),
        "read_bytes": list(await files.read_bytes(upload_path, location="uploads", mode=mode)),
        "list": await files.list(folder, location="uploads", mode=mode),
        "exists": await files.exists(upload_path, location="uploads", mode=mode),
        "write": await _refused(files.write(upload_path, "x", location="uploads", mode=mode)),
        "write_bytes": await _refused(files.write_bytes(upload_path, b"x", location="uploads", mode=mode)),
        "delete": await _refused(files.delete(upload_path, location="uploads", mode=mode)),
        "read_after": await files.read(upload_path, location="uploads", mode=mode),
    }
    return out


@workflow
async def files_write_text(path: str, content: str, location: str = "workspace") -> dict:
    """Write a text file in the platform's store."""
    await files.write(path, content, location=location)
    return {"written": path}


@workflow
async def files_read_text(path: str, location: str = "workspace") -> dict:
    """Read a text file from the platform's store; a missing file is reported, not raised."""
    try:
        return {"content": await files.read(path, location=location)}
    except NoSuchFileError as exc:
        return {"missing": str(exc)}
