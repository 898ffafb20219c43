"""The :class:`Score` every metric returns, and column-wise Pearson correlation."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Score:
    """A metric's result.

    Attributes
    ----------
    value : float
        The aggregate score (e.g. median over units of the cross-validated Pearson r).
    error : float
        Its uncertainty (e.g. standard error over cross-validation splits); NaN when none.
    ceiling : float
        The noise ceiling on the same scale as the metric; NaN when none.
    raw : ndarray or None
        Per-unit (or per-split x per-unit, or per-row) values behind ``value``.
    meta : dict
        Bookkeeping: numbers of units/stimuli/splits, dropped units, options used.
    """

    value: float
    error: float = float("nan")
    ceiling: float = float("nan")
    raw: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __float__(self) -> float:
        return float(self.value)

    @property
    def ceiled(self) -> float:
        """``value / ceiling`` (NaN without a ceiling)."""
        return float(self.value) / float(self.ceiling) if np.isfinite(self.ceiling) and self.ceiling != 0 else float("nan")


def _as_2d(a, name):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D (n_stimuli, n_units), got shape {a.shape}")
    return a


def check_same_stimuli(**arrays) -> int:
    """Check that every array has the same number of rows (stimuli); the error names them.

    Returns the common number of stimuli.
    """
    counts = {k: np.shape(v)[0] if np.ndim(v) else 0 for k, v in arrays.items()}
    if len(set(counts.values())) > 1:
        raise ValueError("mismatched stimulus counts: " + ", ".join(f"{k} has {n}" for k, n in counts.items()))
    return next(iter(counts.values()))


def pearson_r(y_true, y_pred) -> np.ndarray:
    """Column-wise Pearson correlation.

    Parameters
    ----------
    y_true, y_pred : array-like, (n_stimuli, n_units) or (n_stimuli,)

    Returns
    -------
    ndarray, (n_units,)
        Pearson r of each column; NaN (without a warning) where either column is constant or
        contains NaN.
    """
    a = _as_2d(y_true, "y_true")
    b = _as_2d(y_pred, "y_pred")
    check_same_stimuli(y_true=a, y_pred=b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"y_true has {a.shape[1]} units but y_pred has {b.shape[1]}")
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    num = np.einsum("ij,ij->j", a, b)
    den = np.sqrt(np.einsum("ij,ij->j", a, a) * np.einsum("ij,ij->j", b, b))
    # relative threshold: a "constant" column that is not exactly constant (rounding) is still constant
    scale = np.sqrt(np.einsum("ij,ij->j", a, a)) + np.sqrt(np.einsum("ij,ij->j", b, b))
    ok = np.isfinite(den) & (den > (1e-12 * scale) ** 2) & (den > 0)
    out = np.full(a.shape[1], np.nan)
    out[ok] = np.clip(num[ok] / den[ok], -1.0, 1.0)
    return out
