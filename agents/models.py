"""Turn model settings (a pydantic-ai model string, base URL, API key) into a pydantic-ai ``Model``.

* ``openai:gpt-4o-mini``, ``anthropic:claude-...``, ``ollama:llama3.2`` and every other
  provider pydantic-ai knows, with the API key given here or the provider's usual
  environment variable.
* A **base URL** makes ``openai:`` models speak the Chat Completions API to that URL (what
  OpenAI-compatible servers implement; ``openai-responses:`` keeps the Responses API), and is
  passed to Anthropic and Ollama providers too. ``ollama:`` defaults to ``http://127.0.0.1:11434/v1``.
* ``custom:<name>`` picks a model object registered with :func:`register_model` in this
  process (an embedding application's own ``Model``, or a ``FunctionModel`` in tests).
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import weakref
from dataclasses import dataclass
from typing import Any

CUSTOM_PREFIX = "custom:"
OLLAMA_DEFAULT_URL = "http://127.0.0.1:11434/v1"
_OPENAI_NAMES = frozenset({"openai", "openai-chat", "openai-responses"})

_custom: dict[str, Any] = {}
# Built models hold HTTP clients bound to the event loop that first used them: cached per loop.
_built: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str | None, str], Any]] = (
    weakref.WeakKeyDictionary()
)


class ModelConfigurationError(Exception):
    """The model settings cannot make a usable model (unknown provider, missing key, ...)."""


@dataclass(frozen=True)
class ModelConfig:
    """What the platform resolved for one call.

    Attributes:
        model: A pydantic-ai model string, ``provider:model``.
        base_url: OpenAI-compatible (or provider) base URL, if any.
        api_key: API key, if any (else the provider's environment variable).
    """

    model: str
    base_url: str | None = None
    api_key: str | None = None


def register_model(name: str, model: Any) -> None:
    """Offer a pydantic-ai ``Model`` object as ``custom:<name>`` in this process."""
    _custom[name] = model


def unregister_model(name: str) -> None:
    """Withdraw a model registered with :func:`register_model`."""
    _custom.pop(name, None)


def check_model_string(value: str) -> str:
    """``value`` stripped if it looks like ``provider:model`` (or ``test``); ModelConfigurationError otherwise."""
    text = value.strip()
    if text == "test" or text.startswith(CUSTOM_PREFIX):
        return text
    provider, sep, name = text.partition(":")
    if not sep or not provider or not name:
        raise ModelConfigurationError(
            f"model {value!r} must be 'provider:model', e.g. 'openai:gpt-4o-mini', 'anthropic:claude-3-5-haiku-latest' "
            "or 'ollama:llama3.2'"
        )
    return text


def _provider_factory(config: ModelConfig) -> Any:
    def factory(name: str) -> Any:
        if name in _OPENAI_NAMES:
            from pydantic_ai.providers.openai import OpenAIProvider

            # A local OpenAI-compatible server often needs no key, but the client insists on one.
            key = config.api_key or (None if not config.base_url else "not-needed")
            return OpenAIProvider(base_url=config.base_url, api_key=key)
        if name == "anthropic":
            from pydantic_ai.providers.anthropic import AnthropicProvider

            return AnthropicProvider(api_key=config.api_key, base_url=config.base_url)
        if name == "ollama":
            from pydantic_ai.providers.ollama import OllamaProvider

            return OllamaProvider(base_url=config.base_url or OLLAMA_DEFAULT_URL, api_key=config.api_key)
        from pydantic_ai.providers import infer_provider

        return infer_provider(name)

    return factory


def _cache_key(config: ModelConfig, text: str) -> tuple[str, str | None, str]:
    provider, _, name = text.partition(":")
    if provider == "openai" and config.base_url:
        provider = "openai-chat"  # OpenAI-compatible servers implement Chat Completions
    key_digest = hashlib.sha256((config.api_key or "").encode()).hexdigest()
    return (f"{provider}:{name}" if name else text, config.base_url, key_digest)


def _custom_model(text: str) -> Any:
    name = text[len(CUSTOM_PREFIX) :]
    if name not in _custom:
        raise ModelConfigurationError(f"no model registered as {text!r} in this server process")
    return _custom[name]


def _construct(config: ModelConfig, model_id: str) -> Any:
    from pydantic_ai.exceptions import UserError
    from pydantic_ai.models import infer_model

    try:
        return infer_model(model_id, provider_factory=_provider_factory(config))
    except (UserError, ValueError, ImportError) as exc:
        raise ModelConfigurationError(f"cannot use model {config.model!r}: {exc}") from None


def _per_loop() -> dict[tuple[str, str | None, str], Any]:
    try:
        return _built.setdefault(asyncio.get_running_loop(), {})
    except RuntimeError:
        return {}


def build_model(config: ModelConfig) -> Any:
    """The pydantic-ai ``Model`` for ``config`` (cached per event loop, model, URL and key).

    Raises:
        ModelConfigurationError: Unknown provider or model, or missing credentials, with the reason.
    """
    text = check_model_string(config.model)
    if text.startswith(CUSTOM_PREFIX):
        return _custom_model(text)
    key = _cache_key(config, text)
    per_loop = _per_loop()
    if key not in per_loop:
        per_loop[key] = _construct(config, key[0])
    return per_loop[key]


async def build_model_async(config: ModelConfig) -> Any:
    """:func:`build_model` without blocking the event loop.

    The first use of a provider imports pydantic-ai and the provider's SDK (seconds on a small
    machine) and builds its HTTP client: that runs in a thread, so other requests keep being served.
    """
    text = check_model_string(config.model)
    if text.startswith(CUSTOM_PREFIX):
        if "pydantic_ai.messages" not in sys.modules:  # a thread hop only for the first, slow import
            await asyncio.to_thread(_import_pydantic_ai)
        return _custom_model(text)
    key = _cache_key(config, text)
    per_loop = _per_loop()
    if key not in per_loop:
        per_loop[key] = await asyncio.to_thread(_construct, config, key[0])
    return per_loop[key]


def _import_pydantic_ai() -> None:
    import pydantic_ai  # the first import is slow: done off the event loop
    import pydantic_ai.messages  # noqa: F401


def model_label(model: Any, fallback: str) -> str:
    """A short name of the model for usage records (``provider:model`` when known)."""
    system = getattr(model, "system", None)
    name = getattr(model, "model_name", None)
    if name and system and not str(name).startswith(f"{system}:"):
        return f"{system}:{name}"
    return str(name or fallback)


def classify_model_error(exc: BaseException) -> tuple[str, str] | None:
    """``("configuration" | "provider", message)`` for an error raised while calling a model, else None.

    ``configuration``: the settings are wrong (refused API key, missing credentials, unknown model).
    ``provider``: the provider failed or answered something unusable (HTTP error, bad structured output).
    """
    from pydantic_ai import exceptions as errors

    if isinstance(exc, errors.ModelAuthenticationError):
        return "configuration", f"the model provider refused the credentials: {exc}"
    if isinstance(exc, errors.ModelNotFoundError):
        return "configuration", f"the model provider does not know this model: {exc}"
    if isinstance(exc, errors.UserError):
        return "configuration", str(exc)
    if isinstance(exc, errors.AgentRunError):
        return "provider", str(exc)
    return None
