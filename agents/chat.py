"""The chat assistant: a pydantic-ai ``Agent`` whose tools are workflows the platform runs.

The agent never runs a workflow itself: each tool call goes to ``run_tool`` (the platform
submits it through its one submit path and waits for the result). Tools that need approval
are marked ``requires_approval``: the model's call then ends the run with a
``DeferredToolRequests`` output, and the platform continues it later with
``DeferredToolResults`` (approved or denied).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from agents.tools import WorkflowTool

# (workflow name, arguments, the model's tool call id) -> what the model reads back.
ToolRunner = Callable[[str, dict[str, Any], str], Awaitable[Any]]
# (query) -> passages [{"content", "namespace", "key", "score", ...}]
KnowledgeSearch = Callable[[str], Awaitable[list[dict[str, Any]]]]

KNOWLEDGE_TOOL = "search_knowledge"


def _tool(workflow_tool: WorkflowTool, run_tool: ToolRunner) -> Any:
    from pydantic_ai import RunContext, Tool

    async def call(ctx: RunContext[Any], **arguments: Any) -> Any:
        return await run_tool(workflow_tool.workflow, arguments, ctx.tool_call_id or "")

    tool = Tool.from_schema(
        call,
        name=workflow_tool.tool_name,
        description=workflow_tool.description,
        json_schema=workflow_tool.parameters_schema,
        takes_ctx=True,
    )
    tool.requires_approval = workflow_tool.needs_approval
    return tool


def _knowledge_tool(search: KnowledgeSearch, namespaces: list[str]) -> Any:
    from pydantic_ai import Tool

    async def search_knowledge(query: str) -> list[dict[str, Any]]:
        return await search(query)

    return Tool.from_schema(
        search_knowledge,
        name=KNOWLEDGE_TOOL,
        description=(
            "Search the organization's knowledge base (namespaces: "
            + ", ".join(namespaces)
            + ") and return the most relevant passages with their sources. Use it for questions about "
            "policies, procedures and documentation; cite the sources you used."
        ),
        json_schema={
            "type": "object",
            "properties": {"query": {"type": "string", "description": "What to look for, in plain words."}},
            "required": ["query"],
            "additionalProperties": False,
        },
    )


def build_chat_agent(
    *,
    instructions: str,
    tools: list[WorkflowTool],
    run_tool: ToolRunner,
    knowledge_search: KnowledgeSearch | None = None,
    knowledge_namespaces: list[str] | None = None,
) -> Any:
    """Build the assistant for one turn (the model is given when it runs).

    Args:
        instructions: The agent's instructions (its system prompt).
        tools: The workflows this user may run here, as tools.
        run_tool: Runs a tool call on the platform and returns what the model reads.
        knowledge_search: Adds the knowledge-search tool when given.
        knowledge_namespaces: Namespaces the search covers (named in the tool's description).

    Returns:
        A ``pydantic_ai.Agent`` whose output is text, or ``DeferredToolRequests`` when a
        call waits for approval.
    """
    from pydantic_ai import Agent
    from pydantic_ai.tools import DeferredToolRequests

    pydantic_tools = [_tool(t, run_tool) for t in tools]
    if knowledge_search is not None and knowledge_namespaces:
        pydantic_tools.append(_knowledge_tool(knowledge_search, knowledge_namespaces))
    return Agent(
        None,
        output_type=[str, DeferredToolRequests],
        instructions=instructions or None,
        tools=pydantic_tools,
        defer_model_check=True,
        name="bifrost-chat",
    )


def dump_history(messages: list[Any]) -> list[dict[str, Any]]:
    """pydantic-ai messages as JSON-able dicts (what a conversation stores)."""
    from pydantic_ai.messages import ModelMessagesTypeAdapter

    return ModelMessagesTypeAdapter.dump_python(messages, mode="json")  # type: ignore[no-any-return]


def load_history(stored: list[dict[str, Any]]) -> list[Any]:
    """The stored history as pydantic-ai messages; an unreadable history (older library) starts afresh."""
    from pydantic import ValidationError
    from pydantic_ai.messages import ModelMessagesTypeAdapter

    if not stored:
        return []
    try:
        return list(ModelMessagesTypeAdapter.validate_python(stored))
    except ValidationError:
        return []
