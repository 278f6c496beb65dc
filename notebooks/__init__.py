"""Jupyter authoring: the ``%load_ext bifrost`` IPython extension and the ``/bifrost`` jupyter-server extension.

Kernel side (:mod:`notebooks.magics`): ``%bifrost connect / run / form / publish`` and ``bifrost_run``.
Server side (:mod:`notebooks.server_extension`): handlers under ``/bifrost/`` in Jupyter Server.
The package talks to the platform over HTTP only (it never imports ``app``). Heavy modules load lazily.
"""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext bifrost`` (or ``%load_ext notebooks``): register ``%bifrost`` and ``bifrost_run``."""
    from notebooks.magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext bifrost``."""
    from notebooks.magics import unload

    unload(ipython)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Where Jupyter Server finds the extension (enabled by the shipped config, or ``bifrost notebook``)."""
    return [{"module": "notebooks.server_extension"}]
