"""pydantic-ai agents: model resolution, the chat assistant with workflows as tools, command mode.

Platform-independent on purpose (an import-linter contract keeps ``app`` out): the
platform passes in what it decided (the model settings, the tools this user may run,
a function that runs a tool through its submit path, a knowledge search) and gets back
pydantic-ai objects. pydantic-ai itself is imported only by the modules that need it,
so ``import agents`` stays cheap.
"""
