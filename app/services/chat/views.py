"""API shapes of the chat domain (chat and ``bifrost.ai``): TypedDicts, plain dicts at run time, documented in ``/schema``.

Optional keys (present only in some answers) sit in a ``total=False`` subclass: with
``from __future__ import annotations`` a ``NotRequired[...]`` annotation is only a string when the class is
built, so ``__required_keys__`` (what the OpenAPI schema reads) would list it as required.

The ``...Body`` shapes document request bodies only: the handlers take the raw JSON and the services check it
field by field (422 naming the field), see :func:`app.web.api.schemas.documented_body`.
"""

from __future__ import annotations

from typing import Any, TypedDict


# ----- bifrost.ai --------------------------------------------------------------------------------------------
class _PromptBody(TypedDict):
    prompt: str


class StreamBody(_PromptBody, total=False):
    """A completion request: the prompt, and optionally instructions, history, model, limits and knowledge."""

    system: str | None
    messages: list[dict[str, Any]] | None
    model: str | None
    max_tokens: int | None
    temperature: float | None
    knowledge: list[str] | None


class CompletionBody(StreamBody, total=False):
    """A completion request; ``response_schema`` (a JSON schema) asks for a structured answer."""

    response_schema: dict[str, Any] | None


class CompletionSource(TypedDict):
    """A knowledge passage the model was given."""

    id: str
    namespace: str
    key: str | None
    score: float
    metadata: dict[str, Any]
    organization_id: str | None
    content: str


class _Completion(TypedDict):
    model: str
    input_tokens: int
    output_tokens: int
    sources: list[CompletionSource]
    content: str


class Completion(_Completion, total=False):
    """A completion: the text (the JSON text of ``structured`` when a ``response_schema`` was given) and usage."""

    structured: Any


class _StreamChunk(TypedDict):
    content: str
    done: bool


class StreamChunk(_StreamChunk, total=False):
    """One NDJSON line of ``/ai/stream``: text as it comes; the last (``done``) has usage, or ``error``."""

    model: str
    input_tokens: int
    output_tokens: int
    sources: list[CompletionSource]
    error: str


class AISettingsBody(TypedDict, total=False):
    """Settings to change (omitted: kept; null or empty: cleared)."""

    model: str | None
    base_url: str | None
    api_key_config: str | None
    knowledge_namespaces: list[str] | None


class AIScopeSettings(TypedDict):
    """The stored AI settings of one scope (``global`` or an organization id); an unset scope is empty."""

    scope: str
    model: str | None
    base_url: str | None
    api_key_config: str | None
    knowledge_namespaces: list[str]
    updated_at: str | None


class EffectiveModel(TypedDict):
    """The model that applies, and where it is set (``organization``, ``platform`` or ``environment``)."""

    model: str
    base_url: str | None
    source: str


class AISettingsView(AIScopeSettings):
    """A scope's settings and the model that applies there (None: no model configured)."""

    effective: EffectiveModel | None


class AIUsageRecord(TypedDict):
    """One model call's usage."""

    id: str
    organization_id: str | None
    user_id: str | None
    execution_id: str | None
    conversation_id: str | None
    source: str
    model: str
    input_tokens: int
    output_tokens: int
    requests: int
    created_at: str


class AIUsageSummaryRow(TypedDict):
    """Calls and tokens of one organization and model."""

    organization_id: str | None
    organization_name: str | None
    model: str
    calls: int
    input_tokens: int
    output_tokens: int


# ----- chat: agents and tools --------------------------------------------------------------------------------
class AgentBody(TypedDict, total=False):
    """An agent's fields (``name`` required on create; ``tools`` / ``knowledge_namespaces`` null: all)."""

    name: str
    description: str | None
    instructions: str
    tools: list[str] | None
    knowledge_namespaces: list[str] | None
    model: str | None
    is_default: bool
    is_active: bool
    organization_id: str | None


class AgentView(TypedDict):
    """A chat agent."""

    id: str
    organization_id: str | None
    name: str
    description: str | None
    instructions: str
    tools: list[str] | None
    knowledge_namespaces: list[str] | None
    model: str | None
    role_ids: list[str]
    is_default: bool
    is_active: bool
    updated_at: str


class ToolWorkflow(TypedDict):
    """A tool workflow with its parameter schema and approval setting (what the chat runtime reads)."""

    name: str
    description: str | None
    tool_description: str | None
    params_schema: dict[str, Any]
    parameters: list[dict[str, Any]]
    category: str
    needs_approval: bool


class ToolView(TypedDict):
    """A tool workflow the caller may run in the chat."""

    name: str
    description: str | None
    tool_description: str | None
    category: str
    needs_approval: bool
    parameters: list[dict[str, Any]]


class ApprovalBody(TypedDict):
    """Whether calls of a tool workflow wait for the user's approval."""

    needs_approval: bool


class ToolApproval(TypedDict):
    """A tool workflow's approval setting."""

    workflow: str
    needs_approval: bool


# ----- chat: conversations, messages, turns ------------------------------------------------------------------
class ConversationBody(TypedDict, total=False):
    """A new conversation: its title (default: from the first message) and agent (default: the default agent)."""

    title: str | None
    agent_id: str | None


class TitleBody(TypedDict):
    """A conversation's new title (1-200 characters)."""

    title: str


class MessageBody(TypedDict):
    """A chat message (at most 20,000 characters); one starting with ``/`` is a command."""

    content: str


class ConversationView(TypedDict):
    """A conversation (without its messages)."""

    id: str
    title: str
    agent_id: str | None
    organization_id: str | None
    created_at: str
    updated_at: str


class ToolCallView(TypedDict):
    """A tool call of the chat (``result_text``: the result shortened for display)."""

    id: str
    conversation_id: str
    turn_id: str
    workflow: str
    arguments: dict[str, Any]
    status: str
    needs_approval: bool
    execution_id: str | None
    result: Any
    result_text: str | None
    error: str | None
    created_at: str
    updated_at: str


class _MessageView(TypedDict):
    id: str
    seq: int
    role: str
    content: str
    turn_id: str | None
    created_at: str


class MessageView(_MessageView, total=False):
    """A message; a ``tool`` message carries its call, the first of a conversation its new title."""

    tool_call: ToolCallView | None
    conversation_title: str


class ConversationDetail(ConversationView):
    """A conversation with its messages and its running turn, if any."""

    messages: list[MessageView]
    active_turn: str | None


class _ChatEvent(TypedDict):
    seq: int
    type: str


class ChatEvent(_ChatEvent, total=False):
    """An event of a turn: ``segment`` {index}, ``token`` {index, content}, ``tool``/``tool_update`` {call},
    ``notice`` {content}, then ``done``."""

    index: int
    content: str
    call: ToolCallView


class MessageAccepted(TypedDict):
    """A message was stored and its turn started: follow ``events_url`` (NDJSON)."""

    turn_id: str
    message: MessageView
    events_url: str


class TurnEvents(TypedDict):
    """A finished turn: its events and the messages it added."""

    turn_id: str
    events: list[ChatEvent]
    messages: list[MessageView]


class TurnReply(TurnEvents):
    """``?wait=true``: the user's message, then the finished turn."""

    message: MessageView


class _Decision(TypedDict):
    call: ToolCallView
    turn_id: str | None


class Decision(_Decision, total=False):
    """An approved or rejected call and the turn continuing (None while other calls still wait); with
    ``?wait=true`` the finished turn's ``events`` and ``messages``."""

    events: list[ChatEvent]
    messages: list[MessageView]
