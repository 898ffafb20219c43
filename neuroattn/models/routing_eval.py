"""Array-level comparison of routing maps with a simulation's true routing (truth voxels as
read by :func:`neuroattn.stages.encode.read_truth_voxels`): agreement per query, centres of mass,
receptive-field centres in token units. Used by the ``routing_truth`` stage."""
from __future__ import annotations

import numpy as np


def _rf_voxels(truth: dict, key: str) -> np.ndarray:
    """Mask of the voxels with a receptive field in ``roi`` or ``roi.hemi`` ``key``."""
    r, _, hm = key.partition(".")
    return (truth["roi"] == r) & ((truth["hemi"] == hm) if hm else True) & np.isfinite(truth["rf_sigma"])


def routing_agreement(maps, truth, names):
    """Compare model maps with true routing maps, per query.

    Returns a DataFrame with ``query``, ``r`` (Pearson over grid cells), ``peak_distance``
    (tokens between the two maps' maxima) and the peaks (``peak_row``/``peak_col`` of the model,
    ``true_row``/``true_col``).
    """
    import pandas as pd

    rows = []
    for name, m, t in zip(names, np.asarray(maps, float), np.asarray(truth, float)):
        if not np.isfinite(t).all():
            continue
        pi, pj = np.unravel_index(np.argmax(m), m.shape)
        ti, tj = np.unravel_index(np.argmax(t), t.shape)
        r = np.corrcoef(m.ravel(), t.ravel())[0, 1] if m.std() > 0 and t.std() > 0 else np.nan
        rows.append({"query": name, "r": float(r), "peak_distance": float(np.hypot(pi - ti, pj - tj)),
                     "peak_row": int(pi), "peak_col": int(pj), "true_row": int(ti), "true_col": int(tj)})
    return pd.DataFrame(rows)


def _centroid(m: np.ndarray) -> np.ndarray:
    """(row, col) centre of mass of non-negative maps (..., h, w) -> (..., 2)."""
    h, w = m.shape[-2:]
    m = m / m.sum((-2, -1), keepdims=True)
    return np.stack([(m.sum(-1) * np.arange(h)).sum(-1), (m.sum(-2) * np.arange(w)).sum(-1)], -1)


def _rf_tokens(truth: dict, grid) -> np.ndarray:
    """Receptive-field centres of the truth voxels as (row, col) in token units of ``grid``."""
    return truth["rf_center"][:, ::-1] * np.asarray(grid) - 0.5


def _query_rf_centres(truth: dict, grid) -> dict:
    """Mean receptive-field centre (row, col in tokens) and voxel count per ``roi.hemi`` and ``roi``
    of a truth file's voxels (:func:`~neuroattn.stages.encode.read_truth_voxels`; voxels with a receptive field only)."""
    rc = _rf_tokens(truth, grid)
    keys = {*truth["roi"], *(f"{r}.{hm}" for r, hm in zip(truth["roi"], truth["hemi"]) if hm)}
    masks = {key: _rf_voxels(truth, key) for key in keys}
    return {key: (rc[m].mean(0), int(m.sum())) for key, m in masks.items() if m.any()}
