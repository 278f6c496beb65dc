"""Identity: organizations, users, roles, passwords, API keys, sessions and the service accounts triggers run as.

May use: models, the shared pieces (errors, actor, redaction). Every other domain may use it."""
