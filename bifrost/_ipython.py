"""``%load_ext bifrost``: IPython looks up ``load_ipython_extension`` on the ``bifrost`` package.

The extension itself lives in the ``notebooks`` package, imported only when IPython calls these hooks,
so ``import bifrost`` stays fast and the SDK keeps no import-time dependency on Jupyter.
"""

from __future__ import annotations

import importlib
from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    """Hand over to :func:`notebooks.load_ipython_extension` (registers ``%bifrost`` and ``bifrost_run``)."""
    importlib.import_module("notebooks").load_ipython_extension(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Hand over to :func:`notebooks.unload_ipython_extension`."""
    importlib.import_module("notebooks").unload_ipython_extension(ipython)
