"""Executions: the one submit path, history, logs, schedules and runs of external runners (notebooks).

May use: the workflow catalogue, identity and the shared pieces. Never chat, knowledge, forms or integrations.
"""
