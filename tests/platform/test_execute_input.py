"""The execute route reads its caller, body and ``?wait`` itself (app/web/api/execute_input.py): every answer,
refusals included, must stay what Litestar's declared parameters gave (the bodies below were recorded from
the former handler, commit 2c84470), in the same order: malformed JSON before authentication, a wrong shape
after it."""

from __future__ import annotations

import httpx

from tests.platform.conftest import World

URL = "/api/workflows/add/execute"
JSON = {"Content-Type": "application/json"}


def _post(world: World, query: str, body: bytes, key: str | None) -> httpx.Response:
    headers = {**JSON, **({"Authorization": f"Bearer {key}"} if key else {})}
    with httpx.Client(base_url=world.server.url, timeout=30) as client:
        return client.post(URL + query, content=body, headers=headers)


def test_a_well_formed_call_runs_and_wait_reads_like_a_litestar_bool(world: World) -> None:
    body = b'{"params": {"a": 1, "b": 2}, "ignored": true}'
    for query, status in (("?wait=true", 200), ("?wait=True", 200), ("?wait=1", 200), ("", 202), ("?wait=0", 202)):
        answer = _post(world, query, body, world.alice_key)
        assert answer.status_code == status, (query, answer.text)
        assert answer.headers["content-type"] == "application/json"
        if status == 200:
            assert answer.json()["result"] == {"sum": 3} and answer.json()["trigger"] == "api"
    # A repeated ?wait: the last one counts, as in Litestar's query extraction.
    assert _post(world, "?wait=true&wait=false", body, world.alice_key).status_code == 202
    # Duplicate keys: the last one counts (Litestar's decoder did the same).
    answer = _post(world, "?wait=true", b'{"params": {"a": 9}, "params": {"a": 1, "b": 1}}', world.alice_key)
    assert answer.status_code == 200 and answer.json()["result"] == {"sum": 2}, answer.text


def test_malformed_json_is_refused_before_authentication(world: World) -> None:
    for key in (None, world.alice_key):
        answer = _post(world, "?wait=true", b"{bad json", key)
        assert answer.status_code == 400
        assert answer.json() == {
            "status_code": 400,
            "detail": "JSON is malformed: object keys must be strings (byte 1)",
        }


def test_a_wrong_shape_is_refused_after_authentication_with_litestars_words(world: World) -> None:
    detail = "Validation failed for POST /api/workflows/add/execute?wait=true"
    cases = {
        b"": [{"message": "'data'", "key": "data", "source": "body"}],
        b"null": [{"message": "Input should be a valid dictionary or instance of ExecuteRequest"}],
        b'{"params": []}': [{"message": "Input should be a valid dictionary", "key": "params"}],
        b'{"params": {"a": 1}, "org": 5}': [{"message": "Input should be a valid string", "key": "org"}],
    }
    for body, extra in cases.items():
        assert _post(world, "?wait=true", body, None).status_code == 401, body
        answer = _post(world, "?wait=true", body, world.alice_key)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json() == {"status_code": 400, "detail": detail, "extra": extra}, body


def test_a_wrong_wait_and_both_wrong_at_once(world: World) -> None:
    body = b'{"params": {"a": 1, "b": 2}}'
    wait_error = {"message": "Expected `bool`, got `str`", "key": "wait", "source": "query"}
    answer = _post(world, "?wait=maybe", body, world.alice_key)
    assert answer.json() == {
        "status_code": 400,
        "detail": "Validation failed for POST /api/workflows/add/execute?wait=maybe",
        "extra": [wait_error],
    }
    assert _post(world, "?wait=maybe", body, None).status_code == 401
    # The body and ?wait both wrong: Litestar reported the body's errors only; an empty body and ?wait both.
    both = _post(world, "?wait=maybe", b'{"params": 1, "org": 2}', world.alice_key).json()
    assert both["extra"] == [
        {"message": "Input should be a valid dictionary", "key": "params"},
        {"message": "Input should be a valid string", "key": "org"},
    ]
    empty = _post(world, "?wait=maybe", b"", world.alice_key).json()
    assert empty["extra"] == [{"message": "'data'", "key": "data", "source": "body"}, wait_error]


def test_the_schema_still_documents_the_body_and_wait(world: World) -> None:
    with world.server.client(world.admin_key) as client:
        document = client.get("/schema/openapi.json").json()
    operation = document["paths"]["/api/workflows/{name}/execute"]["post"]
    assert [p["name"] for p in operation["parameters"]] == ["name", "wait"]
    wait = operation["parameters"][1]
    assert wait["in"] == "query" and wait["schema"]["type"] == "boolean" and wait["schema"]["default"] is False
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:  # the former handler's component
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    assert set(schema["properties"]) == {"params", "org"} and schema["type"] == "object"
