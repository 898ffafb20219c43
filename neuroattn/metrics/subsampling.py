"""Subsampling analysis (Shi, Shea-Brown & Buice 2019): score versus number of units and stimuli.

For each size, ``n_draws`` random subsets of units (columns of Y) or of stimuli (rows of X and Y)
are scored; the curve is the mean over draws with the standard deviation as error bars.  A curve
that has flattened by the full size says the data set is large enough for that metric.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .predictivity import linear_predictivity
from .score import Score, check_same_stimuli
from .similarity import cka, rsa, ssm

METRICS: dict[str, Callable[..., Score]] = {
    "pearson_r": linear_predictivity, "rsa_spearman": rsa, "cka": cka, "ssm": ssm,
}


@dataclass
class SubsamplingCurve:
    """Scores at increasing subset sizes.

    Attributes
    ----------
    axis : {"units", "stimuli"}
    metric : str
    sizes : ndarray, (n_sizes,)
    values : ndarray, (n_sizes, n_draws)
        Score of every draw (NaN where a draw failed, e.g. too few stimuli for the splits).
    """

    axis: str
    metric: str
    sizes: np.ndarray
    values: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        return _nanstat(self.values, np.nanmean)

    @property
    def std(self) -> np.ndarray:
        return _nanstat(self.values, np.nanstd)


def _nanstat(v, fn):
    out = np.full(v.shape[0], np.nan)
    ok = np.isfinite(v).any(axis=1)
    out[ok] = fn(v[ok], axis=1)
    return out


def default_sizes(n: int, n_sizes: int = 6, minimum: int = 10) -> np.ndarray:
    """About log-spaced sizes from ``minimum`` to ``n`` (inclusive, unique)."""
    lo = min(minimum, n)
    return np.unique(np.round(np.geomspace(lo, n, n_sizes)).astype(int))


def subsample(X, Y, axis: str = "units", metric: str | Callable[..., Score] = "pearson_r",
              sizes: Sequence[int] | None = None, n_draws: int = 5, random_state: int = 0,
              **metric_kwargs) -> SubsamplingCurve:
    """Score on random subsets of units or stimuli.

    Parameters
    ----------
    X : array-like, (n_stimuli, n_features)
        Model features.
    Y : array-like, (n_stimuli, n_units)
        Responses.
    axis : {"units", "stimuli"}
        Subsample the columns of Y (units) or the rows of X and Y (stimuli).
    metric : str or callable
        ``"pearson_r"`` (:func:`linear_predictivity`), ``"rsa_spearman"``, ``"cka"``, ``"ssm"``, or
        any ``f(X, Y, **metric_kwargs) -> Score``.
    sizes : sequence of int, optional
        Subset sizes (default: about log-spaced from 10 to all).
    n_draws : int
        Random subsets per size (one when the size is the full set).
    random_state : int

    Returns
    -------
    SubsamplingCurve
    """
    X = np.asarray(X)
    Y = np.asarray(Y)
    n = check_same_stimuli(X=X, Y=Y)
    if axis not in ("units", "stimuli"):
        raise ValueError(f"axis must be 'units' or 'stimuli', got {axis!r}")
    fn = METRICS[metric] if isinstance(metric, str) and metric in METRICS else metric
    if not callable(fn):
        raise ValueError(f"metric must be one of {sorted(METRICS)} or a callable, got {metric!r}")
    name = metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
    total = Y.shape[1] if axis == "units" else n
    sizes = default_sizes(total) if sizes is None else np.asarray(sorted(set(int(s) for s in sizes)))
    if sizes.min() < 1 or sizes.max() > total:
        raise ValueError(f"sizes must be in [1, {total}] ({axis}), got {sizes.min()}..{sizes.max()}")
    rng = np.random.default_rng(random_state)
    values = np.full((len(sizes), n_draws), np.nan)
    for i, size in enumerate(sizes):
        for d in range(n_draws if size < total else 1):
            idx = np.sort(rng.choice(total, size=size, replace=False))
            try:
                sc = fn(X, Y[:, idx], **metric_kwargs) if axis == "units" else fn(X[idx], Y[idx], **metric_kwargs)
            except ValueError:  # e.g. too few stimuli for the cross-validation splits
                continue
            values[i, d] = sc.value
    return SubsamplingCurve(axis=axis, metric=name, sizes=sizes, values=values)


def summarize_curves(curves: Sequence[SubsamplingCurve]) -> dict:
    """Arrays a report can plot: for each ``"<metric>/<axis>"``, sizes, mean, std and n_draws.

    Returns
    -------
    dict
        ``{key: {"sizes": (k,), "mean": (k,), "std": (k,), "n": (k,) valid draws,
        "relative": (k,) mean / mean at the largest size}}``.
    """
    out = {}
    for c in curves:
        mean, std = c.mean, c.std
        last = mean[-1] if len(mean) and np.isfinite(mean[-1]) and mean[-1] != 0 else np.nan
        out[f"{c.metric}/{c.axis}"] = {"sizes": c.sizes.copy(), "mean": mean, "std": std,
                                       "n": np.isfinite(c.values).sum(axis=1), "relative": mean / last}
    return out


def curves_table(curves: Sequence[SubsamplingCurve]) -> "pd.DataFrame":
    """One row per curve and size: ``metric, axis, size, mean, std, n_draws`` (for TSVs and reports)."""
    import pandas as pd

    rows = []
    for c in curves:
        for size, mean, std, n in zip(c.sizes, c.mean, c.std, np.isfinite(c.values).sum(axis=1)):
            rows.append({"metric": c.metric, "axis": c.axis, "size": int(size), "mean": float(mean),
                         "std": float(std), "n_draws": int(n)})
    return pd.DataFrame(rows, columns=["metric", "axis", "size", "mean", "std", "n_draws"])
