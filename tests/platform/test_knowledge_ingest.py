"""File ingestion: uploads of every supported type become background jobs with progress, then documents."""

from __future__ import annotations

import io
import time
from typing import Any

import httpx
import pytest

from tests.platform.conftest import World


def minimal_pdf(lines: list[str]) -> bytes:
    """A valid one-page PDF showing ``lines`` in Helvetica (offsets computed, so pypdf reads it strictly)."""
    text = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({line}) Tj T*" for line in lines) + " ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text.encode()),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def minimal_docx(paragraphs: list[str], table: list[list[str]]) -> bytes:
    """A .docx with paragraphs and a table, written by python-docx."""
    from docx import Document

    document = Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    grid = document.add_table(rows=len(table), cols=len(table[0]))
    for r, row in enumerate(table):
        for c, value in enumerate(row):
            grid.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def upload(client: httpx.Client, filename: str, data: bytes, namespace: str, key: str | None = None) -> httpx.Response:
    params = {"namespace": namespace, "filename": filename}
    if key:
        params["key"] = key
    return client.post("/api/knowledge/uploads", params=params, content=data)


def wait_for_job(client: httpx.Client, job_id: str, seen: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Poll the job until it ends (bounded: the test fails instead of hanging)."""
    for _ in range(1200):
        job = client.get(f"/api/knowledge/jobs/{job_id}").json()
        if seen is not None:
            seen.append(job)
        if job["status"] in ("done", "failed"):
            return job  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


CASES = [
    ("notes.txt", b"The badge printer in the lobby is reset by holding its power button for ten seconds."),
    ("guide.md", b"# Badge printer\n\n- Hold **power** for ten seconds to reset the lobby badge printer.\n"),
    (
        "page.html",
        b"<html><head><title>x</title><script>var secret = 'no';</script></head><body><h1>Badges</h1>"
        b"<p>Reset the lobby badge printer: hold power for ten seconds.</p></body></html>",
    ),
    ("scan.pdf", minimal_pdf(["Lobby badge printer:", "hold the power button ten seconds to reset it."])),
    (
        "manual.docx",
        minimal_docx(["Lobby badge printer reset: hold power for ten seconds."], [["Model", "ZC300"]]),
    ),
]


@pytest.mark.parametrize(("filename", "data"), CASES, ids=[c[0] for c in CASES])
def test_each_file_type_is_parsed_chunked_and_searchable(world: World, filename: str, data: bytes) -> None:
    namespace = f"ingest-{filename.replace('.', '-')}"
    with world.server.client(world.alice_key) as client:
        response = upload(client, filename, data, namespace)
        assert response.status_code == 202, response.text
        job = wait_for_job(client, response.json()["id"])
        assert job["status"] == "done", job
        assert job["chunks_done"] == job["chunks_total"] >= 1 and job["progress"] == 1.0
        doc = client.get(f"/api/knowledge/documents/{job['document_id']}").json()
        assert doc["source"] == filename and doc["metadata"] == {"source": filename}
        assert "ten seconds" in doc["content"] and "secret" not in doc["content"]
        if filename.endswith(".docx"):
            assert "ZC300" in doc["content"]  # tables are read too
        hits = client.post(
            "/api/knowledge/search", json={"query": "how do I restart the ID card printer?", "namespaces": namespace}
        ).json()
        assert hits[0]["id"] == job["document_id"]


def test_a_long_file_reports_progress_and_replaces_by_key(world: World) -> None:
    body = "\n\n".join(
        f"Section {i}. The backup job for server {i} runs at {i % 24}:00 and keeps {i % 7 + 1} weekly copies."
        for i in range(150)
    ).encode()
    with world.server.client(world.alice_key) as client:
        seen: list[dict[str, Any]] = []
        job = wait_for_job(client, upload(client, "backups.txt", body, "ingest-long", key="backups").json()["id"], seen)
        assert job["status"] == "done" and job["chunks_total"] > 5
        stages = [s["stage"] for s in seen]
        assert stages[-1] == "done"
        done_counts = [s["chunks_done"] for s in seen]
        assert done_counts == sorted(done_counts)  # progress only moves forward
        again = wait_for_job(
            client, upload(client, "short.txt", b"Backups moved to the cloud.", "ingest-long", "backups").json()["id"]
        )
        assert again["document_id"] == job["document_id"]  # same key: replaced
        chunks = client.get(f"/api/knowledge/documents/{job['document_id']}/chunks").json()
        assert [c["content"] for c in chunks] == ["Backups moved to the cloud."]
        jobs = client.get("/api/knowledge/jobs").json()
        assert {job["id"], again["id"]} <= {j["id"] for j in jobs}
        assert all("data" not in j for j in jobs)


def test_bad_uploads_are_refused_or_fail_with_a_message(world: World) -> None:
    with world.server.client(world.alice_key) as client:
        refused = upload(client, "tool.exe", b"MZ...", "ingest-bad")
        assert refused.status_code == 422 and refused.json()["extra"]["errors"][0]["field"] == "file"
        assert upload(client, "empty.txt", b"", "ingest-bad").status_code == 422
        assert upload(client, "x.txt", b"text", "bad/namespace").status_code == 422
        broken = upload(client, "broken.pdf", b"%PDF-1.4 this is not really a pdf", "ingest-bad")
        assert broken.status_code == 202
        failed = wait_for_job(client, broken.json()["id"])
        assert failed["status"] == "failed" and "broken.pdf" in failed["error"]
        blank = wait_for_job(
            client, upload(client, "blank.html", b"<html><body> </body></html>", "ingest-bad").json()["id"]
        )
        assert blank["status"] == "failed" and "no text" in blank["error"]
    settings = world.server.platform.knowledge.settings
    previous = settings.knowledge_max_upload_bytes
    settings.knowledge_max_upload_bytes = 1000
    try:
        with world.server.client(world.alice_key) as client:
            too_big = upload(client, "big.txt", b"x" * 5000, "ingest-bad")
            assert too_big.status_code == 413 and too_big.json()["extra"]["errors"][0]["field"] == "file"
    finally:
        settings.knowledge_max_upload_bytes = previous


def test_jobs_are_scoped_like_documents(world: World) -> None:
    with world.server.client(world.alice_key) as alice:
        job = upload(alice, "alice.txt", b"Alice's private runbook.", "ingest-private").json()
        wait_for_job(alice, job["id"])
    with world.server.client(world.bob_key) as bob:
        assert bob.get(f"/api/knowledge/jobs/{job['id']}").status_code == 404
        assert job["id"] not in {j["id"] for j in bob.get("/api/knowledge/jobs").json()}


def test_an_interrupted_job_runs_again_on_start(world: World) -> None:
    from sqlalchemy import update

    from app.db import transaction
    from app.models.knowledge import KnowledgeJob
    from app.services.knowledge.jobs import KnowledgeJobs

    platform = world.server.platform
    with world.server.client(world.alice_key) as alice:
        job = upload(alice, "again.txt", b"The fire drill is every second Tuesday.", "ingest-restart").json()
        first = wait_for_job(alice, job["id"])
        assert first["status"] == "done"

    async def interrupt_and_recover() -> None:
        # As if the server had died mid-job: the row says running and still holds the bytes.
        async with transaction(platform.sessions) as session:
            await session.execute(
                update(KnowledgeJob)
                .where(KnowledgeJob.id == job["id"])  # type: ignore[arg-type]
                .values(status="running", stage="embedding", data=b"The fire drill moved to Thursdays.")
            )
        jobs = KnowledgeJobs(platform.sessions, platform.knowledge)
        await jobs.start(recover=True)
        try:
            await jobs.wait_idle()
        finally:
            await jobs.stop()

    world.server.call(interrupt_and_recover)
    with world.server.client(world.alice_key) as alice:
        again = alice.get(f"/api/knowledge/jobs/{job['id']}").json()
        assert again["status"] == "done"
        doc = alice.get(f"/api/knowledge/documents/{again['document_id']}").json()
        assert doc["content"] == "The fire drill moved to Thursdays."
