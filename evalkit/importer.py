"""Backward-compatible entry point of ``evalkit import``; the readers live in :mod:`evalkit.importers`."""

from __future__ import annotations

from evalkit.importers import FORMATS, ImportSummary, import_file, import_path
from evalkit.importers.tables import read_long_table, read_score_matrices

__all__ = ["FORMATS", "ImportSummary", "import_file", "import_path", "read_long_table", "read_score_matrices"]
