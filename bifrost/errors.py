"""Errors raised by workflows and by the SDK.

The five spec errors are plain ``Exception`` subclasses. The SDK adds more
specific ones (``PermissionDeniedError``, ``NotFoundError``, ``NotAvailableError``)
that subclass ``WorkflowError`` so that code catching the spec's errors still
catches them.
"""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    """User-facing error with formatted message.

    Raise it from a workflow to end the execution FAILED with this exact
    message shown to the person who ran it (other exceptions show a generic
    message and keep the traceback for admins).
    """


class WorkflowError(Exception):
    """Workflow execution error."""


class ValidationError(Exception):
    """Validation error.

    Attributes:
        errors: One entry per invalid field: ``{"field": ..., "message": ...}``.
    """

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors: list[dict[str, Any]] = errors or []


class IntegrationError(Exception):
    """Integration error."""


class ConfigurationError(Exception):
    """Configuration error."""


class PermissionDeniedError(WorkflowError):
    """The platform refused the call for the current user (HTTP 401/403)."""


class NotFoundError(WorkflowError):
    """The platform has no such object in the caller's scope (HTTP 404)."""


class NotAvailableError(WorkflowError):
    """The connected platform does not offer this SDK function yet (HTTP 501)."""


class NoSuchFileError(NotFoundError, FileNotFoundError):
    """``bifrost.files`` found no file at that path.

    Both a :class:`NotFoundError` (what the platform answers) and a built-in
    :class:`FileNotFoundError` (what local mode would naturally raise), so the
    same ``except`` clause works with ``mode="cloud"`` and ``mode="local"``.
    """


class UnsafePathError(ValidationError, UserError):
    """``bifrost.files`` refused a path that would leave its location (``..``, absolute, a link).

    A :class:`ValidationError` (so ``except ValidationError`` catches it) and a :class:`UserError`:
    the path usually comes from whoever ran the workflow, so they see this message as is.
    """


class ContextNotAvailableError(RuntimeError):
    """``bifrost.context`` was read outside of a workflow execution."""


class WorkflowDefinitionError(TypeError):
    """A ``@workflow`` / ``@data_provider`` definition cannot be registered.

    Raised at decoration time, naming the function and, where relevant, the
    parameter that is wrong.
    """
