"""JSON-lines messages survive the trip between parent and worker unchanged."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.engine.protocol import Job, JobResult, LogRecord, ScanResult, decode_message, encode_message


def _roundtrip(message: dict) -> dict:
    line = encode_message(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    return decode_message(line)


def test_job_roundtrip_keeps_every_field() -> None:
    job = Job("e1", "data_provider", "colors", {"a": [1, "x\nline"]}, {"user_id": "u"}, "http://h", "tok", 2.5)

    assert Job.from_message(_roundtrip(job.to_message())) == job


def test_result_roundtrip_keeps_aware_datetimes() -> None:
    start = datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    result = JobResult("e1", "Failed", None, "boom", "ValueError", "tb", False, start, start, 0)

    decoded = JobResult.from_message(_roundtrip(result.to_message()))

    assert decoded == result
    assert decoded.started_at.tzinfo is not None


def test_log_record_and_scan_result_roundtrip() -> None:
    record = LogRecord("e1", datetime(2024, 1, 2, tzinfo=UTC), "INFO", "stdout", "héllo \u2028 world")
    scan = ScanResult([{"name": "a"}], [{"name": "p"}], [{"file": "x.py", "error": "E", "traceback": None}])

    assert LogRecord.from_message(_roundtrip(record.to_message())) == record
    assert ScanResult.from_dict(_roundtrip({"type": "scan", **scan.to_dict()})) == scan
    assert scan.definitions == [{"name": "a"}, {"name": "p"}]


def test_decode_refuses_non_objects() -> None:
    with pytest.raises(ValueError):
        decode_message(b"[1, 2]\n")
