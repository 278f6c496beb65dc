"""Workflows: the catalogue of workflows and data providers synced from workspace scans, and workspace errors.

May use: models and the shared pieces only; every other domain may read the catalogue.
"""
