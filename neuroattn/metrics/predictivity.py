"""Brain-Score's cross-validated linear predictivity ("neural predictivity").

For each of ``n_splits`` shuffle splits (stratified when ``stratify`` is given; train 0.9,
``random_state=1``, i.e. scikit-learn's ShuffleSplit / StratifiedShuffleSplit as Brain-Score uses
them): fit a linear regression from model features X to all units Y at once on the train rows,
predict the test rows, Pearson r per unit.  The score is the median over units of each split,
averaged over splits; the error is the standard error over splits, ``std / sqrt(n_splits)``.
"""
from __future__ import annotations

import logging
import warnings
from math import comb

import numpy as np
from sklearn.linear_model import LinearRegression, Ridge, RidgeCV
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

from .pls import ExactPLSRegression, cv_pls_predictions
from .score import Score, check_same_stimuli, pearson_r

log = logging.getLogger("neuroattn.metrics")

REGRESSIONS = ("pls", "ridge", "ridgecv", "linear")
#: alpha grid of ``regression="ridgecv"`` (efficient leave-one-out CV, one alpha per unit)
RIDGECV_ALPHAS = tuple(np.logspace(-3, 6, 10))


def make_regression(regression: str = "pls", n_components: int = 25, alpha: float = 1.0, alphas=None):
    """The scikit-learn estimator behind ``regression``.

    ``pls``: :class:`ExactPLSRegression` (n_components, scale=False); ``ridge``: Ridge(alpha);
    ``ridgecv``: RidgeCV over ``alphas`` (default :data:`RIDGECV_ALPHAS`), alpha chosen per unit;
    ``linear``: ordinary least squares.
    """
    if regression == "pls":
        return ExactPLSRegression(n_components=n_components, scale=False)
    if regression == "ridge":
        return Ridge(alpha=alpha)
    if regression == "ridgecv":
        return RidgeCV(alphas=RIDGECV_ALPHAS if alphas is None else alphas, alpha_per_target=True)
    if regression == "linear":
        return LinearRegression()
    raise ValueError(f"regression must be one of {REGRESSIONS}, got {regression!r}")


def clean_units(Y, name: str = "Y"):
    """Mask of units (columns) without NaN and not constant; returns (mask, n_dropped)."""
    Y = np.asarray(Y)
    finite = np.isfinite(Y).all(axis=0)
    ok = finite.copy()
    ok[finite] = np.ptp(Y[:, finite], axis=0) > 0
    return ok, int((~ok).sum())


def shuffle_splits(n: int, n_splits: int = 10, train_size: float = 0.9, random_state: int = 1, stratify=None):
    """Brain-Score's train/test splits as a list of (train_idx, test_idx).

    Raises a clear error when the splits cannot be made (too few stimuli for a test set of 3, or
    more splits than distinct test sets).
    """
    if not 0 < train_size < 1:
        raise ValueError(f"train_size must be in (0, 1), got {train_size}")
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    n_train = int(np.floor(train_size * n))
    n_test = n - n_train
    if n_test < 3 or n_train < 2:
        raise ValueError(f"{n} stimuli with train_size={train_size} leave {n_train} train and {n_test} test "
                         "stimuli; need at least 2 train and 3 test stimuli per split")
    if n_splits > comb(n, n_test):
        raise ValueError(f"n_splits={n_splits} is larger than possible: {n} stimuli have only "
                         f"{comb(n, n_test)} distinct test sets of {n_test}")
    if stratify is None:
        cv = ShuffleSplit(n_splits=n_splits, train_size=train_size, random_state=random_state)
        return list(cv.split(np.zeros(n)))
    stratify = np.asarray(stratify)
    check_same_stimuli(stimuli=np.zeros(n), stratify=stratify)
    cv = StratifiedShuffleSplit(n_splits=n_splits, train_size=train_size, random_state=random_state)
    return list(cv.split(np.zeros(n), stratify))


def linear_predictivity(X, Y, regression: str = "pls", n_splits: int = 10, train_size: float = 0.9,
                        random_state: int = 1, stratify=None, n_components: int = 25, alpha: float = 1.0,
                        alphas=None) -> Score:
    """Cross-validated linear predictivity of units Y from features X (Brain-Score's ``pls``).

    Parameters
    ----------
    X : array-like, (n_stimuli, n_features)
        Model features.
    Y : array-like, (n_stimuli, n_units)
        Responses (e.g. repetition-averaged betas).
    regression : {"pls", "ridge", "ridgecv", "linear"}
        See :func:`make_regression`.
    n_splits, train_size, random_state : cross-validation (Brain-Score: 10, 0.9, 1).
    stratify : array-like, (n_stimuli,), optional
        Class labels for stratified splits (Brain-Score stratifies on object name when present).
    n_components, alpha, alphas : options of the regressions.

    Returns
    -------
    Score
        ``value`` mean over splits of the median over units of the test Pearson r; ``error``
        std over splits / sqrt(n_splits); ``raw`` (n_units,) each unit's r averaged over splits
        (NaN for dropped units); ``meta`` with ``n_stimuli``, ``n_units``, ``n_dropped`` (NaN or
        constant units), ``per_split`` (n_splits,) medians, ``split_unit_r`` (n_splits, n_units)
        and ``regression``.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    if X.ndim != 2 or Y.ndim != 2:
        raise ValueError(f"X must be (n_stimuli, n_features) and Y (n_stimuli, n_units); got {X.shape} and {Y.shape}")
    n = check_same_stimuli(X=X, Y=Y)
    if not np.isfinite(X).all():
        raise ValueError(f"X (model features) has {int((~np.isfinite(X)).sum())} NaN/inf values")
    ok, n_dropped = clean_units(Y)
    if not ok.any():
        raise ValueError(f"Y: all {Y.shape[1]} units are NaN or constant")
    if n_dropped:
        log.info("linear_predictivity: dropped %d NaN or constant unit(s) of %d", n_dropped, Y.shape[1])
    splits = shuffle_splits(n, n_splits, train_size, random_state, stratify)
    if regression == "pls":
        cap = min(X.shape[1], min(len(tr) for tr, _ in splits) - 1)
        if n_components > cap:
            warnings.warn(f"PLS: n_components={n_components} capped at {cap} (X has {X.shape[1]} features, "
                          f"{min(len(tr) for tr, _ in splits)} training stimuli)", UserWarning, stacklevel=2)
            n_components = cap
    Yok = Y[:, ok]
    raw = np.full((n_splits, Y.shape[1]), np.nan)
    n_comp = None
    if regression == "pls":   # shared cross-products over splits, same model as ExactPLSRegression
        n_comp = n_components
        for s, (te, pred) in enumerate(cv_pls_predictions(X, Yok, splits, n_components)):
            raw[s, ok] = pearson_r(Yok[te], pred)
    else:
        for s, (tr, te) in enumerate(splits):
            est = make_regression(regression, n_components=n_components, alpha=alpha, alphas=alphas)
            est.fit(X[tr], Yok[tr])
            pred = np.asarray(est.predict(X[te])).reshape(len(te), -1)
            raw[s, ok] = pearson_r(Yok[te], pred)
    per_split = np.array([np.nanmedian(r[ok]) if np.isfinite(r[ok]).any() else np.nan for r in raw])
    per_unit = np.full(Y.shape[1], np.nan)
    per_unit[ok] = np.nanmean(raw[:, ok], axis=0) if np.isfinite(raw[:, ok]).all() else _nanmean_cols(raw[:, ok])
    return Score(
        value=float(np.mean(per_split)), error=float(np.std(per_split) / np.sqrt(n_splits)), raw=per_unit,
        meta={"n_stimuli": n, "n_features": X.shape[1], "n_units": int(ok.sum()), "n_dropped": n_dropped,
              "n_splits": n_splits, "train_size": train_size, "random_state": random_state,
              "regression": regression, "n_components": n_comp, "per_split": per_split,
              "split_unit_r": raw},
    )


def _nanmean_cols(a):
    cnt = np.isfinite(a).sum(axis=0)
    tot = np.where(np.isfinite(a), a, 0.0).sum(axis=0)
    return np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)


def fit_predict(X_train, Y_train, X_test, regression: str = "pls", n_components: int = 25, alpha: float = 1.0,
                alphas=None) -> np.ndarray:
    """Fit ``regression`` on the train rows and predict the test rows (held-out evaluation)."""
    check_same_stimuli(X_train=X_train, Y_train=Y_train)
    est = make_regression(regression, n_components=n_components, alpha=alpha, alphas=alphas)
    est.fit(np.asarray(X_train, dtype=np.float64), np.asarray(Y_train, dtype=np.float64))
    return np.asarray(est.predict(np.asarray(X_test, dtype=np.float64))).reshape(len(X_test), -1)
