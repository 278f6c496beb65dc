"""Enums of the SDK contract.

They are :class:`enum.StrEnum` so that ``str()`` and f-strings give the value
(``f"{ExecutionStatus.FAILED}"`` is ``"Failed"``) and members compare equal to
their values (``ExecutionStatus.FAILED == "Failed"``).
"""

from __future__ import annotations

from enum import StrEnum


class ExecutionStatus(StrEnum):
    """Lifecycle state of an execution."""

    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    # Beyond the spec: a run of a workflow that needs approval waits here, with no code run, until
    # an approver approves it (then Pending) or rejects it (then Cancelled with the reason).
    AWAITING_APPROVAL = "AwaitingApproval"


class ConfigType(StrEnum):
    """Type of a stored configuration value."""

    STRING = "string"
    SECRET = "secret"
    JSON = "json"
    BOOL = "bool"
    INT = "int"


class FormFieldType(StrEnum):
    """Field types of a form (the spec's five; the web app adds more)."""

    TEXT = "text"
    NUMBER = "number"
    SELECT = "select"
    CHECKBOX = "checkbox"
    DATE = "date"
