"""Executions: the workflow catalogue, the one submit path, history, schedules and runs of external runners.

May use: identity, config (secrets redaction) and the shared pieces. Never chat, knowledge, forms or integrations."""
