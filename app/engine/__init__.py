"""Execution engine: workspace loader, worker processes and the warm worker pool.

Kept free of imports on purpose: worker processes import ``app.engine.worker``
and must not pull in anything beyond the stdlib and ``bifrost``.
"""
