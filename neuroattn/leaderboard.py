"""The leaderboard's tidy long format (design.md section 4): one row per score.

Every scoring step writes its rows with :func:`write_scores`; the ``leaderboard`` rule gathers them
with :func:`gather`. Rows are sorted and floats written with fixed precision so that two runs of
the same configuration give byte-identical files.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from .utils import atomic_path

COLUMNS = ["subject", "modality", "model", "target", "metric", "value", "ceiling", "error", "n"]
METRICS = {
    "pearson_r", "noise_normalized_r2", "ceiled_ev", "rsa_spearman", "cka", "ssm",
    "top1", "top5", "accuracy", "kappa", "cosine",
}
MODALITIES = {"fmri", "eeg"}
FLOAT_FORMAT = "%.6g"


def score_row(subject, modality, model, target, metric, value, ceiling=None, error=None, n=None) -> dict:
    """Build one leaderboard row, checking the modality and metric names.

    Parameters
    ----------
    subject : str
        Subject label without ``sub-``, or ``"group"`` for pooled rows.
    modality : {"fmri", "eeg"}
    model, target, metric : str
        ``target`` is an ROI, region, layer, protocol or ``"all"``.
    value : float
    ceiling, error : float, optional
    n : int, optional
        Number of units, stimuli, trials or candidates behind the value.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {sorted(MODALITIES)}, got {modality!r}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")

    def _num(x):
        return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)

    return {
        "subject": str(subject), "modality": modality, "model": str(model), "target": str(target),
        "metric": metric, "value": float(value), "ceiling": _num(ceiling), "error": _num(error),
        "n": None if n is None else int(n),
    }


def row_from_score(subject, modality, model, target, metric, score) -> dict:
    """:func:`score_row` from a :class:`neuroattn.metrics.Score` (``n`` from ``score.meta["n"]``)."""
    return score_row(subject, modality, model, target, metric, score.value, ceiling=score.ceiling,
                     error=score.error, n=score.meta.get("n"))


def rows_from_scores(subject, modality, scores) -> list[dict]:
    """Leaderboard rows from ``(model, target, metric, Score)`` tuples (as metrics return them)."""
    return [row_from_score(subject, modality, model, target, metric, sc) for model, target, metric, sc in scores]


def _frame(rows: Iterable[Mapping] | pd.DataFrame) -> pd.DataFrame:
    df = pd.DataFrame(list(rows) if not isinstance(rows, pd.DataFrame) else rows, columns=COLUMNS)
    df["n"] = df["n"].astype("Int64")
    return df.sort_values(["modality", "subject", "model", "target", "metric"], kind="mergesort").reset_index(drop=True)


def write_scores(path: str | Path, rows: Iterable[Mapping] | pd.DataFrame) -> pd.DataFrame:
    """Write leaderboard rows to a TSV atomically; returns the sorted frame."""
    df = _frame(rows)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False, float_format=FLOAT_FORMAT, na_rep="")
    return df


def read_scores(path: str | Path) -> pd.DataFrame:
    """Read a scores TSV, checking its columns; the error names the file."""
    df = pd.read_csv(path, sep="\t", dtype={"subject": str, "model": str, "target": str})
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing leaderboard column(s) {missing}")
    return df[COLUMNS]


def gather(paths: Iterable[str | Path], out: str | Path) -> pd.DataFrame:
    """Concatenate score TSVs into the leaderboard at ``out`` (sorted, byte-stable)."""
    frames = [read_scores(p) for p in paths]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    return write_scores(out, df)
