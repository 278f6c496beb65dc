"""Issue 19: a JSON-object parameter's editor says in words, as one types, whether the text is an object."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.platform.conftest import World
from tests.platform.pages_support import start_pages_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = start_pages_world(tmp_path_factory.mktemp("json-editor"))
    try:
        yield w
    finally:
        w.server.stop()


def test_json_object_field_checks_as_one_types(world: World, page: Any) -> None:
    page.goto(f"{world.server.url}/login")
    page.fill("#email", "alice@a.example")
    page.fill("#password", "alice-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{world.server.url}/")
    page.goto(f"{world.server.url}/workflows/typed")
    assert '{"x": 1, "y": 1}' in page.inner_text("#json-point")  # the example names the object's keys
    page.fill("#f-day", "2026-01-05")
    page.fill("#f-point", "{x: 1}")
    assert "Not valid JSON yet" in page.inner_text("#json-point .json-status")
    page.click("button.primary")  # the server names the problem beside the field, in words
    page.wait_for_selector("#err-point")
    assert page.inner_text("#err-point").startswith("not valid JSON (names need double quotes")
    page.fill("#f-point", "[1, 2]")
    assert "not an object" in page.inner_text("#json-point .json-status")
    page.fill("#f-point", '{"x": 3, "y": 4}')
    assert page.inner_text("#json-point .json-status") == ""
    page.click("button.primary")
    page.wait_for_url("**/executions/*")
    assert page.console_errors == []
