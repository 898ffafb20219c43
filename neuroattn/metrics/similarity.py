"""Representational similarity: RSA (Brain-Score's RDM metric), CKA and SSM (Shi et al. 2019).

- RDM: ``1 - Pearson r`` between the response patterns of every pair of stimuli (over units);
  two RDMs are compared by the Spearman correlation of their upper triangles (diagonal excluded).
- CKA: linear centred kernel alignment on stimulus Gram matrices; unbiased by default (HSIC
  estimator of Song et al. 2012, needs >= 4 stimuli), the biased (plug-in) variant on request.
- SSM: similarity of similarity matrices: Pearson (or cosine of unit-centred / z-scored) RSMs
  compared by Spearman (with Pearson RSMs the same number as
  RSA, since Spearman is invariant to ``1 - x``), with a split-half noise ceiling over trials
  (on the scale of the value: sqrt of the Spearman-Brown-corrected split-half RSM reliability).

Invariances: CKA is invariant to orthogonal transforms and isotropic scaling of either side (not
to general invertible linear maps); the Pearson RDM is invariant to isotropic scaling, a constant
offset per stimulus, permutations of units and rotations that fix the all-ones direction of unit
space (it centres each pattern over units), but not to arbitrary rotations.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from .ceiling import _check_reps, spearman_brown
from .predictivity import clean_units
from .score import Score, check_same_stimuli


def _prepare(X, Y, min_stimuli=3):
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    X = X[:, None] if X.ndim == 1 else X
    Y = Y[:, None] if Y.ndim == 1 else Y
    if X.ndim != 2 or Y.ndim != 2:
        raise ValueError(f"X and Y must be (n_stimuli, n_units); got {X.shape} and {Y.shape}")
    n = check_same_stimuli(X=X, Y=Y)
    if n < min_stimuli:
        raise ValueError(f"need at least {min_stimuli} stimuli, got {n}")
    okx, dx = clean_units(X)
    oky, dy = clean_units(Y)
    if not okx.any() or not oky.any():
        raise ValueError(f"{'X' if not okx.any() else 'Y'}: every unit is NaN or constant")
    return X[:, okx], Y[:, oky], {"n_stimuli": n, "n_units_x": int(okx.sum()), "n_units_y": int(oky.sum()),
                                  "n_dropped_x": dx, "n_dropped_y": dy, "n_dropped": dx + dy}


RSM_KINDS = ("pearson", "cosine", "zscore")


def rsm(X, kind: str = "pearson") -> np.ndarray:
    """Similarity between the response patterns (rows) of every pair of stimuli.

    Parameters
    ----------
    X : array-like, (n_stimuli, n_units)
    kind : {"pearson", "cosine", "zscore"}
        ``"pearson"`` (Shi et al. 2019): each pattern centred over units, then correlated; this
        discards the mean response of the population to each stimulus. ``"cosine"``: each unit
        centred over the stimuli, then the cosine between patterns; the population's mean
        response (what a category-selective region mostly carries) stays in the matrix.
        ``"zscore"``: as ``"cosine"`` with each unit also scaled to unit variance over the
        stimuli, so that every unit (model channel) weighs the same, not the highest-variance ones.

    Stimuli whose (centred) pattern is constant get NaN rows/columns.
    """
    if kind not in RSM_KINDS:
        raise ValueError(f"rsm kind must be one of {RSM_KINDS}, got {kind!r}")
    X = np.asarray(X, dtype=np.float64)
    Xc = X - (X.mean(axis=1, keepdims=True) if kind == "pearson" else X.mean(axis=0, keepdims=True))
    if kind == "zscore":
        sd = Xc.std(axis=0)
        Xc = np.divide(Xc, sd, out=np.zeros_like(Xc), where=sd > 0)
    nrm = np.linalg.norm(Xc, axis=1)
    Xn = np.divide(Xc, nrm[:, None], out=np.full_like(Xc, np.nan), where=nrm[:, None] > 0)
    return np.clip(Xn @ Xn.T, -1.0, 1.0)


def rdm(X) -> np.ndarray:
    """Representational dissimilarity matrix ``1 - Pearson r`` between stimuli (rows)."""
    return 1.0 - rsm(X)


def _upper(M):
    return M[np.triu_indices(M.shape[0], k=1)]


def _spearman(a, b):
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    return float(spearmanr(a[ok], b[ok])[0])


def compare_rdms(A, B) -> float:
    """Spearman correlation of the upper triangles (k=1) of two square matrices."""
    A, B = np.asarray(A), np.asarray(B)
    if A.shape != B.shape or A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"RDMs must be square and of the same shape, got {A.shape} and {B.shape}")
    return _spearman(_upper(A), _upper(B))


def rsa(X, Y) -> Score:
    """Representational similarity analysis (Brain-Score's RDM metric).

    Parameters
    ----------
    X, Y : array-like, (n_stimuli, n_units_x) and (n_stimuli, n_units_y)

    Returns
    -------
    Score
        ``value`` Spearman r of the two 1 - Pearson RDMs' upper triangles; ``raw`` the two
        upper triangles stacked (2, n_pairs); ``meta`` counts of stimuli and (dropped) units.
    """
    X, Y, meta = _prepare(X, Y)
    a, b = _upper(rdm(X)), _upper(rdm(Y))
    return Score(value=_spearman(a, b), raw=np.stack([a, b]), meta={**meta, "metric": "rsa_spearman"})


def _hsic(K, L, unbiased):
    n = K.shape[0]
    if not unbiased:
        H = np.eye(n) - 1.0 / n
        return float(np.sum((H @ K @ H) * L)) / (n - 1) ** 2
    K = K.copy()
    L = L.copy()
    np.fill_diagonal(K, 0.0)
    np.fill_diagonal(L, 0.0)
    one_K = K.sum(axis=0)
    one_L = L.sum(axis=0)
    term = np.sum(K * L) + one_K.sum() * one_L.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(one_K @ one_L)
    return term / (n * (n - 3))


def cka(X, Y, unbiased: bool = True) -> Score:
    """Linear centred kernel alignment between two representations of the same stimuli.

    Parameters
    ----------
    X, Y : array-like, (n_stimuli, n_units_x) and (n_stimuli, n_units_y)
    unbiased : bool
        Unbiased HSIC estimator (Song et al. 2012; default, as Brain-Score) or the biased one
        ``||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F)``.

    Returns
    -------
    Score
        ``value`` CKA (1 for identical representations up to rotation and scale); ``meta`` the
        three HSIC terms and unit counts.
    """
    X, Y, meta = _prepare(X, Y, min_stimuli=4 if unbiased else 2)
    X = X - X.mean(axis=0)
    Y = Y - Y.mean(axis=0)
    K, L = X @ X.T, Y @ Y.T
    kl, kk, ll = _hsic(K, L, unbiased), _hsic(K, K, unbiased), _hsic(L, L, unbiased)
    den = np.sqrt(kk * ll) if kk > 0 and ll > 0 else np.nan
    return Score(value=float(kl / den), meta={**meta, "hsic_xy": kl, "hsic_xx": kk, "hsic_yy": ll,
                                              "unbiased": unbiased, "metric": "cka"})


def split_half_ceiling(Y_reps, compare, n_splits: int = 10, random_state: int = 1) -> tuple[float, float, np.ndarray]:
    """Split-half noise ceiling of a representational metric, on the scale of its value.

    Over ``n_splits`` random splits of the repetitions into two halves (the second takes the
    extra repetition when their number is odd: 1 vs 2 trials for 3 repetitions), each half is
    averaged over its trials and the two halves compared with ``compare``; the result is
    Spearman-Brown corrected (factor 2) to the reliability ``rho`` of the all-trial average and
    square-rooted: ``sqrt(max(0, 2 r / (1 + r)))``, the value a noise-free model would reach
    against the all-trial data if the metric behaves like a correlation. Mean over splits.

    Parameters
    ----------
    Y_reps : array-like, (n_repetitions, n_stimuli, n_units)
    compare : callable
        ``compare(A, B) -> float`` for two (n_stimuli, n_units) arrays.
    n_splits, random_state : int

    Returns
    -------
    ceiling, standard error over splits, per-split values
    """
    R = _check_reps(Y_reps, "Y_reps")
    ok, _ = clean_units(R.reshape(-1, R.shape[2]))
    if not ok.any():
        raise ValueError("Y_reps: every unit is NaN or constant")
    rng = np.random.default_rng(random_state)
    half = R.shape[0] // 2
    per_split = []
    for _ in range(n_splits):
        perm = rng.permutation(R.shape[0])
        a = R[perm[:half]][:, :, ok].mean(axis=0)
        b = R[perm[half:]][:, :, ok].mean(axis=0)
        rel = float(spearman_brown(compare(a, b)))
        per_split.append(np.sqrt(max(rel, 0.0)) if np.isfinite(rel) else np.nan)
    per_split = np.array(per_split)
    return float(np.nanmean(per_split)), float(np.nanstd(per_split) / np.sqrt(n_splits)), per_split


def rsm_similarity(X, Y, kind: str = "pearson") -> float:
    """Spearman r between the upper triangles of the two representations' RSMs (:func:`rsm`)."""
    return _spearman(_upper(rsm(X, kind)), _upper(rsm(Y, kind)))


def ssm(X, Y, Y_reps=None, n_splits: int = 10, random_state: int = 1, kind: str = "pearson") -> Score:
    """Similarity of similarity matrices (Shi, Shea-Brown & Buice 2019) with a noise ceiling.

    Parameters
    ----------
    X : array-like, (n_stimuli, n_units_x)
        Model responses.
    Y : array-like, (n_stimuli, n_units_y)
        Neural responses (trial-averaged).
    Y_reps : array-like, (n_repetitions, n_stimuli, n_units_y), optional
        Single trials of the same units, for the ceiling (:func:`split_half_ceiling` of the
        RSMs' Spearman r: the similarity a noise-free perfect model would reach).
    n_splits, random_state : int
        Splits of the ceiling.
    kind : {"pearson", "cosine", "zscore"}
        The RSM (:func:`rsm`; the paper's is ``"pearson"``).

    Returns
    -------
    Score
        ``value`` Spearman r between the two RSMs; ``ceiling`` the split-half ceiling (NaN
        without ``Y_reps``); ``meta['ceiling_error']`` its standard error over splits.
    """
    X, Yc, meta = _prepare(X, Y)
    value = rsm_similarity(X, Yc, kind)
    ceiling, ceiling_err, per_split = float("nan"), float("nan"), None
    if Y_reps is not None:
        R = _check_reps(Y_reps, "Y_reps")
        if R.shape[1] != meta["n_stimuli"]:
            raise ValueError(f"mismatched stimulus counts: Y has {meta['n_stimuli']}, Y_reps has {R.shape[1]}")
        ceiling, ceiling_err, per_split = split_half_ceiling(
            R, lambda a, b: rsm_similarity(a, b, kind), n_splits=n_splits, random_state=random_state)
    return Score(value=value, ceiling=ceiling,
                 meta={**meta, "ceiling_per_split": per_split, "ceiling_error": ceiling_err, "metric": "ssm",
                       "rsm": kind})
