"""Decoding metrics: top-k retrieval, accuracy and Cohen's kappa, each returning a :class:`Score`."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix

from .score import Score, check_same_stimuli


def topk_retrieval(pred, candidates, targets, k: int = 1) -> Score:
    """Top-k retrieval by cosine similarity.

    Parameters
    ----------
    pred : array-like, (n_queries, d)
        Predicted embeddings (or responses).
    candidates : array-like, (n_candidates, d)
        The candidate set to retrieve from.
    targets : array-like of int, (n_queries,)
        Row index into ``candidates`` of each query's correct candidate.
    k : int
        A query is a hit when fewer than ``k`` candidates are strictly more similar than its
        target (ties count in the query's favour).

    Returns
    -------
    Score
        ``value`` the fraction of hits, ``error`` its binomial standard error, ``raw`` the rank of
        each target (0 = nearest), ``meta`` with ``k``, ``n``, ``n_candidates`` and ``chance``.
    """
    pred = np.asarray(pred, dtype=np.float64)
    cand = np.asarray(candidates, dtype=np.float64)
    targets = np.asarray(targets)
    if pred.ndim != 2 or cand.ndim != 2:
        raise ValueError(f"pred and candidates must be 2-D, got {pred.shape} and {cand.shape}")
    if pred.shape[1] != cand.shape[1]:
        raise ValueError(f"pred has {pred.shape[1]} dimensions but candidates have {cand.shape[1]}")
    check_same_stimuli(pred=pred, targets=targets)
    n_cand = cand.shape[0]
    if not np.issubdtype(targets.dtype, np.integer) or targets.min(initial=0) < 0 or targets.max(initial=0) >= n_cand:
        raise ValueError(f"targets must be integer row indices into the {n_cand} candidates")
    if not 1 <= k <= n_cand:
        raise ValueError(f"k must be in [1, {n_cand}], got {k}")

    def _unit(a):
        nrm = np.linalg.norm(a, axis=1, keepdims=True)
        return np.divide(a, nrm, out=np.zeros_like(a), where=nrm > 0)

    sim = _unit(pred) @ _unit(cand).T
    own = sim[np.arange(len(targets)), targets]
    rank = (sim > own[:, None] + 1e-12).sum(axis=1)
    hits = rank < k
    n = len(hits)
    p = hits.mean() if n else float("nan")
    return Score(value=float(p), error=float(np.sqrt(p * (1 - p) / n)) if n else float("nan"), raw=rank,
                 meta={"k": k, "n": n, "n_candidates": n_cand, "chance": k / n_cand, "metric": f"top{k}"})


def _labels(y_true, y_pred):
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    check_same_stimuli(y_true=y_true, y_pred=y_pred)
    if y_true.ndim != 1 or y_pred.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D label vectors, got {y_true.shape} and {y_pred.shape}")
    if len(y_true) == 0:
        raise ValueError("no labels to score")
    return y_true, y_pred


def accuracy(y_true, y_pred) -> Score:
    """Fraction of correct labels; ``error`` is the binomial standard error, ``raw`` the hits."""
    y_true, y_pred = _labels(y_true, y_pred)
    hits = y_true == y_pred
    p = float(hits.mean())
    n_classes = len(np.unique(y_true))
    return Score(value=p, error=float(np.sqrt(p * (1 - p) / len(hits))), raw=hits,
                 meta={"n": len(hits), "n_classes": n_classes, "chance": 1.0 / n_classes, "metric": "accuracy"})


def cohen_kappa(y_true, y_pred) -> Score:
    """Cohen's kappa (p_o - p_e) / (1 - p_e).

    ``error`` is the large-sample standard error sqrt(p_o (1 - p_o) / (n (1 - p_e)^2));
    ``raw`` the confusion matrix (rows true, columns predicted, labels sorted).
    """
    y_true, y_pred = _labels(y_true, y_pred)
    labels = np.unique(np.concatenate([y_true, y_pred]))
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    n = cm.sum()
    po = np.trace(cm) / n
    pe = float((cm.sum(axis=0) * cm.sum(axis=1)).sum()) / n**2
    if pe == 1.0:
        kappa, err = float("nan"), float("nan")
    else:
        kappa = (po - pe) / (1 - pe)
        err = np.sqrt(po * (1 - po) / (n * (1 - pe) ** 2))
    return Score(value=float(kappa), error=float(err), raw=cm,
                 meta={"n": int(n), "labels": labels.tolist(), "p_observed": float(po), "p_expected": pe, "metric": "kappa"})
