"""MCP (Model Context Protocol): tool workflows served to MCP clients, and external MCP servers as chat tools.

* :mod:`.catalog`: which tool workflows a caller may run (the chat's list too) and a fingerprint of them;
* :mod:`.choices`: current choices of data-provider parameters, as JSON Schema ``enum``;
* :mod:`.calls`: a tool call as an execution (trigger ``mcp``) and its MCP result;
* :mod:`.server`: the protocol handlers (``tools/list``, ``tools/call``) and list-change announcements;
* :mod:`.registry` / :mod:`.client`: external MCP servers registered by admins, given to chat agents;
* :mod:`.bridge`: ``bifrost mcp``, the stdio bridge for desktop clients.

Heavy imports (the ``mcp`` SDK) stay inside the modules that need them: ``import app.services.mcp`` is cheap.
"""
