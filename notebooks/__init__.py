"""Jupyter authoring: the ``%load_ext bifrost`` IPython extension (arrives with the notebooks release)."""
