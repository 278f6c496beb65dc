"""Fakes at the edge of the world (LLM providers, third-party APIs), all on 127.0.0.1."""
