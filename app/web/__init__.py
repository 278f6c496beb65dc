"""Litestar web app: JSON API (``api/``), SDK API (``/api/sdk/v1``) and HTML pages (``pages/``)."""
