"""Deprecated: moved to :mod:`neuroattn.metrics.eeg_truth` (delete once report/eeg_maps.py imports it there)."""
from .metrics.eeg_truth import TRUTH_COLUMNS, summarise_truth_check  # noqa: F401
