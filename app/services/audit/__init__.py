"""Audit: the append-only record of security-relevant events (who, when, from where, in which organization, what).

Owns the ``audit_event`` table: :func:`app.services.audit.events.record` appends one event in the caller's
transaction (so an event exists exactly when its change was committed), :class:`AuditService` reads them for
the admin page, ``GET /api/audit`` and the CSV export, and :mod:`app.services.audit.retention` prunes events
older than ``BIFROST_AUDIT_RETENTION_DAYS``. Nothing else updates or deletes an event.

May use: models and the shared pieces (errors, actor). It sits at the bottom of the service domains, so every
domain (identity, workflows, config, integrations, executions, chat) may record events.
"""
