"""Chat command mode: ``/help``, ``/tools`` and ``/run <workflow> key=value ...`` work without a model.

A ``/run`` is a tool call like the model's (:class:`~app.services.chat.tool_runs.ToolRunner`); when its
workflow needs approval, the reply says how it went once an approver decided (:func:`command_outcome`).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agents.commands import HELP, CommandError, parse_command
from agents.tools import arguments_schema
from app.db import transaction
from app.services.actor import Actor
from app.services.chat.agents import ChatAgentService, ChatToolService
from app.services.chat.conversations import ConversationService, tool_call_view
from app.services.chat.tool_runs import ToolRunner
from app.services.chat.turn_stream import Turn, TurnWriter
from app.services.chat.views import ToolWorkflow
from bifrost.enums import ExecutionStatus


async def run_command(
    sessions: async_sessionmaker[AsyncSession],
    tools: ToolRunner,
    turn: Turn,
    actor: Actor,
    writer: TurnWriter,
    text: str,
) -> None:
    """Answer one command message (its reply is written through ``writer``)."""
    context_tools: list[ToolWorkflow]
    async with transaction(sessions) as session:
        conversation = await ConversationService(session).get(actor, turn.conversation_id)
        agent = await ChatAgentService(session).for_conversation(actor, conversation.agent_id)
        context_tools = await ChatToolService(session).tools_for(actor, agent)
    schemas = {t["name"]: arguments_schema(t["params_schema"]) for t in context_tools}
    try:
        command = parse_command(text, schemas)
    except CommandError as exc:
        writer.token(str(exc))
        return
    if command.name == "help":
        writer.token(HELP)
    elif command.name == "tools":
        writer.token(tools_text(context_tools))
    elif command.workflow not in schemas:
        writer.token(f"No tool named {command.workflow!r} here. /tools lists the ones you can run.")
    else:
        await writer.flush()
        outcome = await tools.call(turn, actor, str(command.workflow), command.arguments, None)
        if outcome["status"] == ExecutionStatus.COMPLETED.value:
            writer.token(f"{command.workflow} completed.")
        else:
            writer.token(f"{command.workflow} failed: {outcome.get('error')}")


async def command_outcome(
    sessions: async_sessionmaker[AsyncSession],
    tools: ToolRunner,
    turn: Turn,
    actor: Actor,
    writer: TurnWriter,
    call_id: str,
) -> None:
    """A /run call decided by an approver: wait for its run (approved) and say how it went."""
    async with transaction(sessions) as session:
        call, _ = await ConversationService(session).call(actor, call_id)
        workflow, status, error, execution_id = call.workflow_name, call.status, call.error, call.execution_id
    if status != "approved" or execution_id is None:
        async with transaction(sessions) as session:
            call, _ = await ConversationService(session).call(actor, call_id)
            view = tool_call_view(call)
        turn.emit("tool_update", call=view)
        writer.token(f"{workflow} did not run: {error}")
        return
    outcome = await tools.call(turn, actor, workflow, call.arguments, None, existing_call=call_id)
    if outcome["status"] == ExecutionStatus.COMPLETED.value:
        writer.token(f"{workflow} completed.")
    else:
        writer.token(f"{workflow} failed: {outcome.get('error')}")


def tools_text(tools: list[ToolWorkflow]) -> str:
    """The ``/tools`` answer: each tool with its parameters (``?``: optional), approval and summary."""
    if not tools:
        return "No tool workflows are available to you here."
    lines = ["Tools you can run here (/run <name> key=value ...):"]
    for tool in tools:
        params = ", ".join(
            f"{p['name']}{'' if p.get('required') else '?'}" for p in tool.get("parameters") or [] if "name" in p
        )
        approval = " (needs approval)" if tool["needs_approval"] else ""
        description = (tool.get("tool_description") or tool.get("description") or "").strip().splitlines()
        summary = f": {description[0]}" if description else ""
        lines.append(f"- {tool['name']}({params}){approval}{summary}")
    return "\n".join(lines)
