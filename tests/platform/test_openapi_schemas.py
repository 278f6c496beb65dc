"""Every JSON route documents what it returns: ``/schema/openapi.json`` has a typed 2xx schema for each.

A typed client can only be generated, and the docs can only show a response, when the schema is a
real shape: an object with properties, an array of such objects, or a plain scalar. ``dict[str, Any]``
comes out as ``{"type": "object"}`` with no properties, which says nothing, and fails here.
"""

from __future__ import annotations

from typing import Any

from tests.platform.conftest import World

SCALARS = frozenset({"string", "integer", "number", "boolean"})

# Explicit exceptions: (path, method, status) whose 2xx body is documented as JSON but has no fixed shape.
# A path ending in "/" is a prefix.
EXCEPTIONS = {
    # A workflow's HTTP endpoint answers (sync mode) with that workflow's own return value: whatever
    # JSON the author's function returns. Its 202 (execution id, status, status URL) is still checked.
    ("/api/endpoints/", "*", "200"),
    # Server-sent events (text/event-stream at run time), not JSON; the route does not declare its
    # media type, so the document says application/json.
    ("/api/executions/{execution_id}/stream", "get", "200"),
}

# 2xx responses documented with another media type are not JSON and are skipped; these are the ones
# the API has, so that a route turning into (or out of) JSON is noticed here.
NON_JSON = {
    ("/api/files/content", "get"),  # file download, application/octet-stream
    ("/api/ai/stream", "post"),  # NDJSON chunks
    ("/api/chat/turns/{turn_id}/events", "get"),  # NDJSON events
}


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` into ``#/components/schemas`` until a concrete schema is reached."""
    seen: set[str] = set()
    while "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/components/schemas/"), f"unexpected reference {ref}"
        name = ref.rsplit("/", 1)[1]
        assert name not in seen, f"reference cycle at {name}"
        seen.add(name)
        assert name in components, f"dangling reference {ref}"
        schema = components[name]
    return schema


def _problems(schema: dict[str, Any], components: dict[str, Any], where: str) -> list[str]:
    """Why ``schema`` is not a typed response (empty when it is)."""
    schema = _resolve(schema, components)
    for union in ("oneOf", "anyOf"):
        if union in schema:
            branches = [_resolve(b, components) for b in schema[union]]
            real = [b for b in branches if b.get("type") != "null"]
            if not real:
                return [f"{where}: only null"]
            return [p for i, b in enumerate(real) for p in _problems(b, components, f"{where}|{union}[{i}]")]
    kind = schema.get("type")
    if kind == "object":
        return [] if schema.get("properties") else [f"{where}: object without properties {schema}"]
    if kind == "array":
        items = schema.get("items")
        if not isinstance(items, dict):
            return [f"{where}: array without items"]
        return _problems(items, components, f"{where}[]")
    if kind in SCALARS:
        return []
    return [f"{where}: untyped schema {schema}"]


def _excepted(path: str, method: str, status: str) -> bool:
    return any(
        (path.startswith(p) if p.endswith("/") else path == p) and m in ("*", method) and s == status
        for p, m, s in EXCEPTIONS
    )


def test_every_json_route_documents_a_typed_response(world: World) -> None:
    with world.server.client(world.admin_key) as client:
        response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    document = response.json()
    components = document.get("components", {}).get("schemas", {})
    checked, skipped, problems = 0, [], []
    for path, item in sorted(document["paths"].items()):
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            for status, answer in operation.get("responses", {}).items():
                if not status.startswith("2") or _excepted(path, method, status):
                    continue
                content = answer.get("content") or {}
                if "application/json" not in content:
                    if content:
                        skipped.append((path, method))
                    continue
                checked += 1
                schema = content["application/json"].get("schema")
                if schema is None:
                    problems.append(f"{method.upper()} {path} {status}: no schema")
                    continue
                problems += _problems(schema, components, f"{method.upper()} {path} {status}")
    print(f"checked {checked} JSON responses; skipped non-JSON {sorted(skipped)}")
    # The check must have something to check: the API has well over a hundred JSON operations.
    assert checked > 100
    assert not problems, f"{len(problems)} untyped JSON responses:\n" + "\n".join(problems)
    assert set(skipped) == NON_JSON, "a non-JSON route appeared or went: update NON_JSON with its media type"


def test_the_checker_refuses_untyped_shapes() -> None:
    components = {"Run": {"type": "object", "properties": {"id": {"type": "string"}}}, "Loose": {"type": "object"}}
    assert _problems({"$ref": "#/components/schemas/Run"}, components, "x") == []
    assert _problems({"type": "array", "items": {"$ref": "#/components/schemas/Run"}}, components, "x") == []
    assert _problems({"oneOf": [{"$ref": "#/components/schemas/Run"}, {"type": "null"}]}, components, "x") == []
    assert _problems({"type": "integer"}, components, "x") == []
    assert _problems({"$ref": "#/components/schemas/Loose"}, components, "x")
    assert _problems({"type": "object", "additionalProperties": {}}, components, "x")
    assert _problems({"type": "array", "items": {"type": "object"}}, components, "x")
    assert _problems({}, components, "x")
    assert _problems({"oneOf": [{"type": "object"}, {"type": "null"}]}, components, "x")
