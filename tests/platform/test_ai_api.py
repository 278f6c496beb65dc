"""``bifrost.ai`` over real HTTP: model resolution, completions, structured output, streaming, knowledge, usage.

The model is a pydantic-ai ``FunctionModel`` registered as ``custom:<name>`` in this process (the
live server runs in a thread of the test process); ``test_ai_openai_compatible.py`` covers the
real HTTP provider path against a fake OpenAI-compatible server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import BaseModel

import bifrost
from bifrost import ai
from bifrost.errors import ConfigurationError, PermissionDeniedError, ValidationError
from tests.platform.ai_support import all_text, clear_ai, echo_model, registered, run_workflow, set_ai
from tests.platform.conftest import World


@pytest.fixture(autouse=True)
def _no_model_between_tests(world: World) -> Iterator[None]:
    clear_ai(world, world.org_a, world.org_b)
    yield
    clear_ai(world, world.org_a, world.org_b)
    bifrost.configure(None)


class Analysis(BaseModel):
    sentiment: str
    score: float


def test_no_model_is_a_configuration_error_saying_what_to_set(world: World) -> None:
    with world.server.client(world.alice_key) as alice:
        response = alice.post("/api/ai/complete", json={"prompt": "hi"})
    assert response.status_code == 424
    assert response.headers["x-bifrost-error"] == "configuration"
    assert "BIFROST_AI_MODEL" in response.json()["detail"] and "/admin/ai" in response.json()["detail"]


async def test_sdk_raises_configuration_error_without_a_model(world: World) -> None:
    bifrost.configure(world.server.url, world.alice_key)
    with pytest.raises(ConfigurationError, match="No AI model is configured"):
        await ai.complete("hi")
    with pytest.raises(ConfigurationError, match="No AI model is configured"):
        async for _chunk in ai.stream("hi"):
            pass


def test_inside_a_workflow_the_typed_error_reaches_the_code(world: World) -> None:
    with world.server.client(world.alice_key) as alice:
        done = run_workflow(alice, "ai_without_model", {"prompt": "hi"})
    assert done["status"] == "Success" or done["status"] == "Completed", done
    assert done["result"].startswith("ConfigurationError: No AI model is configured")


async def test_complete_returns_content_model_and_usage(world: World) -> None:
    with registered("echo-a", echo_model("echo-a")) as model:
        set_ai(world, model="custom:echo-a")
        bifrost.configure(world.server.url, world.alice_key)
        response = await ai.complete(
            "Summarize this text",
            system="Be brief.",
            messages=[
                {"role": "user", "content": "earlier question"},
                {"role": "assistant", "content": "earlier answer"},
            ],
            max_tokens=50,
            temperature=0.2,
        )
    assert response.content == "echo: Summarize this text"
    assert response.model and "echo-a" in response.model
    assert response.input_tokens and response.input_tokens > 0 and response.output_tokens
    seen = all_text(model.seen[-1])
    assert "Be brief." in seen and "earlier question" in seen and "earlier answer" in seen


async def test_structured_output_is_validated_into_the_model(world: World) -> None:
    with registered("echo-s", echo_model("echo-s")):
        set_ai(world, model="custom:echo-s")
        bifrost.configure(world.server.url, world.alice_key)
        result = await ai.complete("Analyze: Great!", response_format=Analysis)
    assert isinstance(result, Analysis)
    assert result == Analysis(sentiment="positive", score=0.9)


async def test_stream_yields_chunks_in_order(world: World) -> None:
    with registered("echo-t", echo_model("echo-t", chunks=("alpha ", "beta ", "gamma ", "delta"))):
        set_ai(world, model="custom:echo-t")
        bifrost.configure(world.server.url, world.alice_key)
        chunks = [chunk async for chunk in ai.stream("Write a story")]
    assert [c.content for c in chunks if not c.done] == ["alpha ", "beta ", "gamma ", "delta"]
    assert chunks[-1].done and chunks[-1].content == ""


def test_organization_override_wins_over_the_platform(world: World) -> None:
    with registered("plat", echo_model("plat-model")), registered("orga", echo_model("org-a-model")):
        set_ai(world, model="custom:plat")
        set_ai(world, world.org_a, model="custom:orga")
        with world.server.client(world.alice_key) as alice, world.server.client(world.bob_key) as bob:
            assert "org-a-model" in alice.post("/api/ai/complete", json={"prompt": "x"}).json()["model"]
            assert "plat-model" in bob.post("/api/ai/complete", json={"prompt": "x"}).json()["model"]
        with world.server.client(world.admin_key) as admin:
            view = admin.get("/api/ai/settings", params={"org": world.org_a}).json()
            assert view["model"] == "custom:orga" and view["effective"]["source"] == "organization"
            view = admin.get("/api/ai/settings", params={"org": world.org_b}).json()
            assert view["model"] is None and view["effective"] == {
                "model": "custom:plat",
                "base_url": None,
                "source": "platform",
            }


def test_usage_is_recorded_against_the_execution_and_organization(world: World) -> None:
    with registered("echo-u", echo_model("echo-u")):
        set_ai(world, model="custom:echo-u")
        with world.server.client(world.alice_key) as alice:
            done = run_workflow(alice, "ask_ai", {"prompt": "count my tokens"})
    assert done["result"]["content"] == "echo: count my tokens", done
    with world.server.client(world.admin_key) as admin:
        records = admin.get("/api/ai/usage", params={"execution_id": done["execution_id"]}).json()
        assert len(records) == 1
        record = records[0]
        assert record["organization_id"] == world.org_a and record["user_id"] == world.alice_id
        assert record["source"] == "sdk" and "echo-u" in record["model"]
        assert record["input_tokens"] == done["result"]["input_tokens"] > 0
        summary = admin.get("/api/ai/usage/summary").json()
        mine = [s for s in summary if s["organization_id"] == world.org_a and "echo-u" in s["model"]]
        assert mine and mine[0]["organization_name"] == "Org A" and mine[0]["calls"] >= 1
        # acting in Org B, the admin sees none of Org A's usage
        in_b = admin.get("/api/ai/usage/summary", headers={"X-Bifrost-Org": world.org_b}).json()
        assert all(s["organization_id"] == world.org_b for s in in_b)


def test_structured_output_and_stream_inside_a_workflow(world: World) -> None:
    with registered("echo-w", echo_model("echo-w", chunks=("a", "b", "c"))):
        set_ai(world, model="custom:echo-w")
        with world.server.client(world.alice_key) as alice:
            classified = run_workflow(alice, "classify_text", {"text": "great product"})
            streamed = run_workflow(alice, "stream_ai", {"prompt": "go"})
    assert classified["result"] == {"type": "Sentiment", "sentiment": "positive", "score": 0.9}, classified
    assert streamed["result"] == [["a", False], ["b", False], ["c", False], ["", True]], streamed


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x", "temperature": 5}, "temperature"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "x", "messages": [{"role": "robot", "content": "x"}]}, "messages[0]"),
        ({"prompt": "x", "messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        ({"prompt": "x", "knowledge": "policies"}, "knowledge"),
        ({"prompt": "x", "response_schema": {"type": "string"}}, "response_schema"),
        ({"prompt": "x", "model": "gpt4"}, "model"),
        ({"prompt": "x", "surprise": 1}, "surprise"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(world: World, body: dict, field: str) -> None:
    with registered("echo-v", echo_model("echo-v")):
        set_ai(world, model="custom:echo-v")
        with world.server.client(world.alice_key) as alice:
            response = alice.post("/api/ai/complete", json=body)
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["extra"]["errors"]]


def test_settings_are_for_platform_admins_and_validated(world: World) -> None:
    with world.server.client(world.alice_key) as alice:
        assert alice.get("/api/ai/settings").status_code == 403
        assert alice.put("/api/ai/settings", json={"model": "openai:gpt-4o-mini"}).status_code == 403
        assert alice.get("/api/ai/usage").status_code == 403
    with world.server.client(world.admin_key) as admin:
        for body, field in [
            ({"model": "gpt-4o"}, "model"),
            ({"base_url": "ftp://x"}, "base_url"),
            ({"api_key_config": " leading space"}, "api_key_config"),
            ({"knowledge_namespaces": "docs"}, "knowledge_namespaces"),
            ({"temperature": 1}, "temperature"),
        ]:
            response = admin.put("/api/ai/settings", json=body)
            assert response.status_code == 422 and response.json()["extra"]["errors"][0]["field"] == field, body
        assert admin.get("/api/ai/settings", params={"org": "no-such-org"}).status_code == 404
        assert admin.get("/api/ai/settings").json()["model"] is None  # nothing was half-written


async def test_sdk_settings_errors_are_typed(world: World) -> None:
    bifrost.configure(world.server.url, world.alice_key)
    with pytest.raises(ValidationError):
        await ai.complete("")
    from bifrost import _client

    with pytest.raises(PermissionDeniedError):
        await _client.call("PUT", "/ai/settings", json={"model": "openai:gpt-4o-mini"})


def test_knowledge_passages_go_into_the_prompt_and_sources_come_back(world: World) -> None:
    with world.server.client(world.alice_key) as alice:
        stored = alice.post(
            "/api/knowledge/documents",
            json={
                "namespace": "ai-policies",
                "key": "vpn",
                "content": "Remote staff must connect through the corporate VPN before opening the file share.",
            },
        )
        assert stored.status_code == 201, stored.text
        with registered("echo-k", echo_model("echo-k")) as model:
            set_ai(world, model="custom:echo-k")
            response = alice.post(
                "/api/ai/complete",
                json={"prompt": "How do remote staff reach the file share?", "knowledge": ["ai-policies"]},
            )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(s["namespace"], s["key"]) for s in body["sources"]] == [("ai-policies", "vpn")]
    assert "corporate VPN" in all_text(model.seen[-1])
    # Bob's organization cannot retrieve Org A's knowledge
    with world.server.client(world.bob_key) as bob, registered("echo-k2", echo_model("echo-k2")):
        set_ai(world, model="custom:echo-k2")
        other = bob.post("/api/ai/complete", json={"prompt": "file share?", "knowledge": ["ai-policies"]}).json()
    assert other["sources"] == []
