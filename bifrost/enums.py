"""Enums of the SDK contract."""

from __future__ import annotations

from enum import Enum


class ExecutionStatus(str, Enum):
    """Lifecycle state of an execution."""

    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


class ConfigType(str, Enum):
    """Type of a stored configuration value."""

    STRING = "string"
    SECRET = "secret"
    JSON = "json"
    BOOL = "bool"
    INT = "int"


class FormFieldType(str, Enum):
    """Field types of a form (the spec's five; the web app adds more)."""

    TEXT = "text"
    NUMBER = "number"
    SELECT = "select"
    CHECKBOX = "checkbox"
    DATE = "date"
