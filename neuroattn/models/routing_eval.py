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


def truth_table(names, maps, truth, voxels: dict, vmaps=None, truth_index=None, roi=None, hemi=None):
    """The ``routing_truth`` table from arrays (measures: :func:`neuroattn.stages.encode.routing_truth_check`).

    Parameters
    ----------
    names : list of str
        Query names.
    maps : ndarray, (Q, h, w)
        Mean attention map per query.
    truth : ndarray, (Q, h, w)
        True routing map per query (NaN where the truth has none).
    voxels : dict
        Truth voxels (``roi``, ``hemi``, ``rf_center``, ``rf_sigma``).
    vmaps : ndarray (V, h, w), optional
        Per-voxel routing maps; then ``truth_index`` (V,) locates each voxel among the truth
        voxels and ``roi``/``hemi`` (V,) label it.

    Returns
    -------
    pandas.DataFrame
        Columns ``query``, ``measure``, ``value``, ``reference``, ``n``.
    """
    import pandas as pd

    ti = truth_index
    grid = maps.shape[1:]
    agree = routing_agreement(maps, truth, names).set_index("query")
    cells = np.stack(np.meshgrid(np.arange(grid[0]), np.arange(grid[1]), indexing="ij"), -1).reshape(-1, 2)
    centre = (np.asarray(grid) - 1) / 2.0
    rf_centres = _query_rf_centres(voxels, grid)
    rows = []
    for q, name in enumerate(names):
        if name not in agree.index:
            continue
        a = agree.loc[name]
        tpeak = np.array([a.true_row, a.true_col])
        rows += [
            (name, "attention_r", a.r, 0.0, np.nan),
            (name, "attention_peak_distance", a.peak_distance,
             float(np.hypot(*(cells - tpeak).T).mean()), np.nan),
            (name, "attention_centroid_distance", float(np.hypot(*(_centroid(maps[q]) - _centroid(truth[q])))),
             float(np.hypot(*(centre - _centroid(truth[q])))), np.nan),
        ]
        rf = rf_centres.get(name.partition("#")[0])
        if rf is not None:  # retinotopic query: its voxels' mean receptive-field centre
            peak = np.array([a.peak_row, a.peak_col])
            rows.append((name, "attention_peak_to_rf_centre", float(np.hypot(*(peak - rf[0]))),
                         float(np.hypot(*(cells - rf[0]).T).mean()), rf[1]))
    if vmaps is not None:
        centre_rc = _rf_tokens(voxels, grid)[ti]
        key = np.array([f"{r}.{hm}" if hm else r for r, hm in zip(roi, hemi)])
        ok = np.isfinite(centre_rc[:, 0]) & np.isfinite(vmaps).all((1, 2))
        for name in sorted(set(key[ok])):
            sel = ok & (key == name)
            if sel.sum() < 2:
                continue
            vm, c = vmaps[sel], centre_rc[sel]
            peak = np.array([np.unravel_index(np.argmax(m), m.shape) for m in vm])
            d_peak = np.hypot(*(peak - c).T)
            d_cent = np.hypot(*(_centroid(vm) - c).T)
            d_ref = np.hypot(*(c.mean(0) - c).T)
            n = int(sel.sum())
            rows += [
                (name, "voxel_peak_distance", float(np.median(d_peak)), float(np.median(d_ref)), n),
                (name, "voxel_centroid_distance", float(np.median(d_cent)), float(np.median(d_ref)), n),
                (name, "voxel_within_one_token", float(np.mean(d_peak <= 1)), float(np.mean(d_ref <= 1)), n),
            ]
    return pd.DataFrame(rows, columns=["query", "measure", "value", "reference", "n"])
