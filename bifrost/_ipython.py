"""``%load_ext bifrost``: IPython looks up ``load_ipython_extension`` on the ``bifrost`` package.

The extension itself lives in the ``notebooks`` package. The SDK does not name it: the installed
distribution declares it under the ``bifrost.ipython`` entry-point group (``pyproject.toml``), and
these hooks load it only when IPython calls them. So ``import bifrost`` stays fast, and the SDK keeps
no dependency, not even a lazy one, on the Jupyter side (the arrow runs ``notebooks -> bifrost`` only).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

ENTRY_POINT_GROUP = "bifrost.ipython"


def _extension() -> Any:
    """The module registered as the IPython extension (``notebooks`` in this distribution)."""
    found = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda point: point.name)
    if not found:
        raise ModuleNotFoundError(
            "%load_ext bifrost needs the notebook extension, which is not installed: install the "
            "bifrost-workbench distribution (pip install -e . in a checkout) into this kernel's environment."
        )
    return found[0].load()


def load_ipython_extension(ipython: Any) -> None:
    """Hand over to the extension's ``load_ipython_extension`` (registers ``%bifrost`` and ``bifrost_run``)."""
    _extension().load_ipython_extension(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Hand over to the extension's ``unload_ipython_extension``."""
    _extension().unload_ipython_extension(ipython)
