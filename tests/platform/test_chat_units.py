"""Unit tests of the platform-independent pieces in ``agents/``: commands, tool schemas, model resolution."""

from __future__ import annotations

import pytest
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel

from agents.commands import Command, CommandError, parse_command
from agents.completion import check_messages, history_from_dicts, knowledge_prompt, output_model
from agents.models import ModelConfig, ModelConfigurationError, build_model, check_model_string, model_label
from agents.tools import arguments_schema, make_tools, safe_tool_name


def test_commands_parse_values_by_parameter_type() -> None:
    schemas = {"reset": {"properties": {"email": {"type": "string"}, "code": {"type": "string"},
                                        "notify": {"type": "boolean"}, "tags": {"type": "array"}}}}  # fmt: skip
    text = '/run reset email=a@b.c code=007 notify=false tags=\'["x","y"]\' note="two words"'
    command = parse_command(text, schemas)
    assert command == Command(
        "run", "reset", {"email": "a@b.c", "code": "007", "notify": False, "tags": ["x", "y"], "note": "two words"}
    )
    assert parse_command("/tools") == Command("tools")
    assert parse_command("/help").name == "help"
    for bad, reason in [("/run", "needs a workflow"), ("/run x novalue", "not key=value"), ("/nope", "unknown command"),
                        ('/run x a="open', "cannot read")]:  # fmt: skip
        with pytest.raises(CommandError, match=reason):
            parse_command(bad)


def test_tool_names_and_schemas() -> None:
    taken: set[str] = set()
    assert safe_tool_name("Create User", taken) == "Create_User"
    assert safe_tool_name("Create/User", taken) == "Create_User_2"
    assert len(safe_tool_name("x" * 100, taken)) == 64
    schema = arguments_schema(
        {"title": "p", "type": "object", "properties": {"email": {"title": "Email", "type": "string"}}}
    )
    assert schema == {"type": "object", "properties": {"email": {"type": "string"}}, "additionalProperties": False}
    [tool] = make_tools([{"name": "lookup", "description": "Find.", "tool_description": None, "params_schema": {},
                          "needs_approval": True}])  # fmt: skip
    assert tool.tool_name == "lookup" and tool.description == "Find." and tool.needs_approval


def test_completion_helpers() -> None:
    with pytest.raises(ValueError, match=r"messages\[1\]"):
        check_messages([{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}])
    assert len(history_from_dicts([{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}])) == 2
    with pytest.raises(ValueError, match="object schema"):
        output_model({"type": "string"})
    model = output_model({"title": "T", "type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
    assert model.model_validate({"n": 3}).n == 3  # type: ignore[attr-defined]
    prompt = knowledge_prompt("Q?", [{"namespace": "ns", "key": "k", "content": "passage"}])
    assert "[1] (ns/k) passage" in prompt and prompt.endswith("Q?")


def test_model_resolution() -> None:
    with pytest.raises(ModelConfigurationError, match="provider:model"):
        check_model_string("gpt-4o")
    with pytest.raises(ModelConfigurationError, match="cannot use model"):
        build_model(ModelConfig("nosuchprovider:x"))
    with pytest.raises(ModelConfigurationError, match="no model registered"):
        build_model(ModelConfig("custom:missing"))
    compatible = build_model(ModelConfig("openai:gpt-4o-mini", base_url="http://127.0.0.1:9/v1"))
    assert isinstance(compatible, OpenAIChatModel) and model_label(compatible, "x") == "openai:gpt-4o-mini"
    official = build_model(ModelConfig("openai:gpt-4o-mini", api_key="sk-test"))
    assert isinstance(official, OpenAIResponsesModel)
    ollama = build_model(ModelConfig("ollama:llama3.2"))
    assert "127.0.0.1:11434" in str(ollama.base_url)
