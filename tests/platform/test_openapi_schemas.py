"""Every JSON route documents what it takes and returns: ``/schema/openapi.json`` has a typed 2xx schema for
each response and a schema with properties for each JSON request body.

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
}

# 2xx responses that are a map of free-form values at the top (keys chosen by users, so no properties):
# the map itself may be an object without properties; the other branches of its union are still checked.
MAPS = {
    ("/api/config", "get"),  # {config key: value} (``?detail=true`` answers ConfigEntryRow rows instead)
}

# 2xx responses documented with another media type are not JSON and are skipped; these are the ones
# the API has, so that a route turning into (or out of) JSON is noticed here.
NON_JSON = {
    ("/api/files/content", "get"),  # file download, application/octet-stream
    ("/api/audit/export.csv", "get"),  # text/csv
    ("/api/ai/stream", "post"),  # application/x-ndjson, one StreamChunk per line
    ("/api/chat/turns/{turn_id}/events", "get"),  # application/x-ndjson, one ChatEvent per line
    ("/api/executions/{execution_id}/stream", "get"),  # text/event-stream (server-sent events)
}

# JSON request bodies that are free-form on purpose (user data, not fields the API defines). A path ending
# in "/" is a prefix.
FREE_FORM_BODIES = {
    # A workflow's HTTP endpoint takes whatever JSON its author's function reads. (Table documents, workflow
    # params and config values are free-form values inside documented objects: ``{"data": {...}}`` and so on.)
    ("/api/endpoints/", "*"),
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


def _problems(schema: dict[str, Any], components: dict[str, Any], where: str, *, map_ok: bool = False) -> list[str]:
    """Why ``schema`` is not a typed response (empty when it is); ``map_ok``: a top-level map is fine."""
    schema = _resolve(schema, components)
    for union in ("oneOf", "anyOf"):
        if union in schema:
            branches = [_resolve(b, components) for b in schema[union]]
            real = [b for b in branches if b.get("type") != "null"]
            if not real:
                return [f"{where}: only null"]
            return [
                p for i, b in enumerate(real) for p in _problems(b, components, f"{where}|{union}[{i}]", map_ok=map_ok)
            ]
    kind = schema.get("type")
    if kind == "object":
        if schema.get("properties") or (map_ok and "additionalProperties" in schema):
            return []
        return [f"{where}: object without properties {schema}"]
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
                where = f"{method.upper()} {path} {status}"
                problems += _problems(schema, components, where, map_ok=(path, method) in MAPS)
    print(f"checked {checked} JSON responses; skipped non-JSON {sorted(skipped)}")
    # The check must have something to check: the API has well over a hundred JSON operations.
    assert checked > 100
    assert not problems, f"{len(problems)} untyped JSON responses:\n" + "\n".join(problems)
    assert set(skipped) == NON_JSON, "a non-JSON route appeared or went: update NON_JSON with its media type"


def _free_form_body(path: str, method: str) -> bool:
    return any(
        (path.startswith(p) if p.endswith("/") else path == p) and m in ("*", method) for p, m in FREE_FORM_BODIES
    )


def test_every_json_request_body_documents_its_fields(world: World) -> None:
    """A JSON body is documented with its fields, even where the handler takes the raw JSON and the service checks
    it field by field (``app.web.api.schemas.documented_body``)."""
    with world.server.client(world.admin_key) as client:
        document = client.get("/schema/openapi.json").json()
    components = document.get("components", {}).get("schemas", {})
    checked, problems = 0, []
    for path, item in sorted(document["paths"].items()):
        for method, operation in item.items():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            if not body or _free_form_body(path, method):
                continue
            content = body.get("content") or {}
            if "application/json" not in content:
                continue
            checked += 1
            schema = _resolve(content["application/json"].get("schema") or {}, components)
            where = f"{method.upper()} {path} body"
            # A body is an object: scalars and lists of scalars are no documentation of fields.
            branches = [_resolve(b, components) for b in schema.get("oneOf", schema.get("anyOf", [schema]))]
            objects = [b for b in branches if b.get("type") != "null"]
            if not objects or any(b.get("type") != "object" for b in objects):
                problems.append(f"{where}: not an object {schema}")
                continue
            problems += [p for b in objects for p in _problems(b, components, where)]
    print(f"checked {checked} JSON request bodies")
    assert checked > 30
    assert not problems, f"{len(problems)} undocumented JSON request bodies:\n" + "\n".join(problems)


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
    loose_map = {"type": "object", "additionalProperties": {}}
    assert _problems(loose_map, components, "x")
    assert (
        _problems(
            {"oneOf": [loose_map, {"type": "array", "items": {"$ref": "#/components/schemas/Run"}}]},
            components,
            "x",
            map_ok=True,
        )
        == []
    )
    assert _problems({"type": "array", "items": loose_map}, components, "x", map_ok=True)
