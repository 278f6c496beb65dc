"""Chat and AI: conversations, agents, turns, model settings, usage, and `bifrost.ai` completions.

May use: executions (tools run as executions), knowledge, identity, config. Nothing outside chat imports it."""
