"""The README's "What to expect" table from a leaderboard: ``neuroattn summary results/``.

Per (modality, metric) of :data:`neuroattn.report.summary.SUMMARY_METRICS`, the ranked summary
the group page opens with (:func:`neuroattn.report.summary.ranked_summary`: per model and target
kind, mean +- SEM over subjects of each subject's mean over the kind's targets, chance and
ceiling), as GitHub markdown, so that the README quotes what a run printed.
"""
from __future__ import annotations

import math

import pandas as pd

from .summary import SUMMARY_METRICS, ranked_summary

__all__ = ["summary_markdown", "markdown_table"]


def _cell(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, float):
        return f"{x:.3g}"
    return str(x)


def markdown_table(table: pd.DataFrame) -> str:
    """``table`` as a GitHub markdown table (floats to 3 significant digits, NaN empty)."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |",
             "| " + " | ".join("---" for _ in table.columns) + " |"]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines)


def summary_markdown(lb: pd.DataFrame, metrics=SUMMARY_METRICS, title_level: int = 4) -> str:
    """The "What to expect" tables of leaderboard ``lb`` as markdown (one per modality and metric
    present, each under a heading); empty string when ``lb`` has none of ``metrics``.

    Parameters
    ----------
    lb : DataFrame
        A leaderboard (:func:`neuroattn.leaderboard.read_scores`): per-subject rows are summarised,
        ``subject = group`` rows and per-layer rows (family ``layer``) are left out.
    metrics : list of (modality, metric)
    title_level : int
        Markdown heading level of each table's title.
    """
    parts = []
    for title, table in ranked_summary(lb, metrics):
        parts.append(f"{'#' * title_level} {title}\n\n{markdown_table(table)}")
    return "\n\n".join(parts)
