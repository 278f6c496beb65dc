"""pydantic-ai agents: the chat assistant and workflows-as-tools (arrives with the AI release)."""
