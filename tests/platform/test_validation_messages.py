"""Issue 19: validation messages in words (no "Expecting value: line 1 column 1 (char 0)"), and a
JSON-object parameter gets an editor with an example naming its keys."""

from __future__ import annotations

import re

from app.web.pages.json_input import example_object, read_json
from tests.platform.conftest import World
from tests.platform.pages_support import admin, alice, field_error

PYTHON_INTERNALS = ("Expecting", "char ", "JSONDecodeError", "line 1 column 1")


def test_read_json_names_the_problem_in_words() -> None:
    cases = {
        "": "a value is missing",
        "{name: 1}": "names need double quotes",
        '{"a": 1 "b": 2}': "a comma or colon is missing",
        '{"a": 1} x': "there is text after the end",
        '{"a": "open': "a string is not closed",
    }
    for text, cause in cases.items():
        value, message = read_json(text, "object", '{"a": 1}')
        assert value is None and message and cause in message, (text, message)
        assert message.startswith("not valid JSON") and 'for example {"a": 1}' in message
        assert not any(bit in message for bit in PYTHON_INTERNALS), message
    assert read_json("[1, 2]", "object") == (None, "must be a JSON object, not a list.")
    assert read_json('{"a": [1]}', "object") == ({"a": [1]}, None)
    assert example_object({"properties": {"x": {"type": "integer"}, "label": {"type": "string"}}}) == (
        '{"x": 1, "label": "text"}'
    )


def test_object_parameter_has_an_editor_with_an_example_and_a_human_error(world: World) -> None:
    with alice(world) as client:
        form = client.get("/workflows/typed").text
        bad = client.post("/workflows/typed/run", {"day": "2026-01-05", "point": "{x: 1, y: 2}"})
        wrong_shape = client.post("/workflows/typed/run", {"day": "2026-01-05", "point": "[1, 2]"})
    editor = re.search(r"<textarea[^>]*id=\"f-point\"[^>]*>", form)
    assert editor and 'data-json="object"' in editor.group(0) and "json-point" in editor.group(0)
    assert re.search(
        r'id="json-point">A JSON object, for example <code>\{&#34;x&#34;: 1, &#34;y&#34;: 1\}</code>', form
    )
    message = field_error(bad.text, "point") or ""
    assert message.startswith("not valid JSON (names need double quotes at character 2)"), message
    assert not any(bit in message for bit in PYTHON_INTERNALS)
    assert field_error(wrong_shape.text, "point") == 'must be a JSON object, for example {"x": 1, "y": 1}, not a list.'


def test_schedule_and_config_json_errors_are_in_words(world: World) -> None:
    with admin(world) as client:
        schedule = client.post(
            "/schedules/new", {"workflow": "add", "organization_id": "", "cron": "0 * * * *", "params": "{a: 1}"}
        )
        config = client.post("/admin/config/save", {"org": "", "key": "k1", "type": "json", "value": "{nope"})
    for page in (schedule.text, config.text):
        assert "not valid JSON" in page and not any(bit in page for bit in PYTHON_INTERNALS), page[-3000:]
