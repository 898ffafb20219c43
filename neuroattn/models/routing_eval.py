"""Array-level comparison of routing maps with a simulation's true routing (truth voxels as
read by :func:`neuroattn.stages.encode.read_truth_voxels`): agreement per query, centres of mass,
receptive-field centres in token units (retinotopic queries), and per image the attention mass on
the objects of a category query (:func:`object_mass_table`). Used by the ``routing_truth`` stage."""
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
    """The map-level rows of the ``routing_truth`` table from arrays (measures:
    :func:`neuroattn.stages.encode.routing_truth_check`): retinotopic queries only, since the
    image-averaged map of a content-routing query is near uniform whatever it does (per-image
    rows: :func:`object_mass_table`).

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
        rf = rf_centres.get(name.partition("#")[0])
        if rf is None:  # not retinotopic: the image-averaged map is no test (object_mass_table)
            continue
        a = agree.loc[name]
        tpeak = np.array([a.true_row, a.true_col])
        rows += [
            (name, "attention_r", a.r, 0.0, np.nan),
            (name, "attention_peak_distance", a.peak_distance,
             float(np.hypot(*(cells - tpeak).T).mean()), np.nan),
            (name, "attention_centroid_distance", float(np.hypot(*(_centroid(maps[q]) - _centroid(truth[q])))),
             float(np.hypot(*(centre - _centroid(truth[q])))), np.nan),
            # the attention peak against the mean receptive-field centre of the query's voxels
            (name, "attention_peak_to_rf_centre", float(np.hypot(*(np.array([a.peak_row, a.peak_col]) - rf[0]))),
             float(np.hypot(*(cells - rf[0]).T).mean()), rf[1]),
        ]
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


# ------------------------------------------------------------------ content routing, per image
def object_mass_ratio(attention, objects) -> np.ndarray:
    """Attention mass on an object's tokens over the object's share of the grid, per image.

    With ``c_t`` the fraction of token ``t`` that the object covers (soft membership, so that
    partly covered tokens count in part) and ``a_t`` the attention on it (summing to 1), the
    ratio is ``sum_t a_t c_t / (sum_t c_t / T)``: 1 for a map blind to the object (uniform, or
    any map independent of where the object is, on average), ``1 / share`` when all mass sits on
    fully covered tokens.

    Parameters
    ----------
    attention : ndarray, (n_images, h, w)
        One query's attention map per image (non-negative; normalised here).
    objects : ndarray, (n_images, H, W)
        The object's coverage (or any non-negative map proportional to it) per image, on the token
        grid or on a finer grid that ``H / h`` and ``W / w`` divide; all zeros where the image has
        no such object.

    Returns
    -------
    ndarray, (n_images,)
        NaN where the image holds no object.
    """
    a = np.asarray(attention, dtype=np.float64)
    o = np.asarray(objects, dtype=np.float64)
    if a.ndim != 3 or o.ndim != 3 or len(a) != len(o):
        raise ValueError(f"attention (n, h, w) and objects (n, H, W) must have the same n, got {a.shape} and {o.shape}")
    o = _to_grid(o, a.shape[1:])
    a = a / np.clip(a.sum((1, 2), keepdims=True), 1e-30, None)
    tot = o.sum((1, 2))
    T = a.shape[1] * a.shape[2]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, T * (a * o).sum((1, 2)) / tot, np.nan)


def _to_grid(maps: np.ndarray, grid) -> np.ndarray:
    """Area-average (n, H, W) maps onto ``grid`` (h, w); H, W must be multiples of h, w."""
    n, H, W = maps.shape
    h, w = (int(g) for g in grid)
    if (H, W) == (h, w):
        return maps
    if H % h or W % w:
        raise ValueError(f"object maps of {H}x{W} cannot be averaged onto the {h}x{w} token grid")
    return maps.reshape(n, h, H // h, w, W // w).mean((2, 4))


def object_mass_table(names, attention, objects: dict, categories=None, roi_of=None):
    """Per-image content-routing rows of the ``routing_truth`` table.

    For each query whose ROI has object maps (``objects[roi]``) and per image:

    * ``object_mass_ratio``: :func:`object_mass_ratio` on the images that hold the ROI's object;
      value = median over those images, reference = 1 (a map blind to the object).
    * ``object_mass_above_1``: fraction of those images with a ratio above 1 (reference 0.5: a
      map independent of the object lands above or below 1 as often).
    * ``object_mass_ratio_absent`` / ``object_mass_above_1_absent``: the same on the images
      without the object, against where the object sits when present (the mean object map of the
      images that hold it): a query that merely prefers the places where objects usually are
      scores above 1 here too; a content router scores about 1.
    * ``object_mass_ratio_other`` (ROIs in ``categories`` only): on the images that hold its
      object, the mass on the objects of the other ``categories`` over their share: about 1 or
      below for a router of its own category, high for a query drawn to any object.

    Parameters
    ----------
    names : list of str
        Query names (``roi``, ``roi.hemi`` or ``roi.hemi#voxel``).
    attention : ndarray, (n_images, Q, h, w)
        Per-image attention of every query.
    objects : dict of str -> ndarray (n_images, H, W)
        Object coverage per ROI name and image (zeros where absent), rows aligned with ``attention``.
    categories : list of str, optional
        The ROIs of ``objects`` that are one category each (default: all of them).
    roi_of : callable, optional
        Query name -> ROI name (default: the part before ``.`` and ``#``).

    Returns
    -------
    pandas.DataFrame
        Columns ``query``, ``measure``, ``value``, ``reference``, ``n`` (images).
    """
    import pandas as pd

    att = np.asarray(attention, dtype=np.float64)
    if att.ndim != 4 or att.shape[1] != len(names):
        raise ValueError(f"attention must be (n_images, {len(names)}, h, w), got {att.shape}")
    roi_of = roi_of or (lambda q: q.partition("#")[0].partition(".")[0])
    grid = att.shape[2:]
    obj = {k: _to_grid(np.asarray(v, dtype=np.float64), grid) for k, v in objects.items()}
    for k, v in obj.items():
        if len(v) != len(att):
            raise ValueError(f"object maps of {k!r} have {len(v)} images, the attention {len(att)}")
    cats = list(obj) if categories is None else [c for c in categories if c in obj]
    rows = []

    def add(name, measure, x, reference):
        x = x[np.isfinite(x)]
        value = (float(np.median(x)) if "ratio" in measure else float(np.mean(x > 1))) if len(x) else np.nan
        rows.append((name, measure, value, reference, len(x)))

    for q, name in enumerate(names):
        roi = roi_of(name)
        if roi not in obj:
            continue
        o = obj[roi]
        present = o.sum((1, 2)) > 0
        ratio = object_mass_ratio(att[:, q], o)
        absent = np.full(len(att), np.nan)
        if present.any() and (~present).any():
            where = np.broadcast_to(o[present].mean(0), (int((~present).sum()),) + o.shape[1:])
            absent[~present] = object_mass_ratio(att[~present, q], where)
        add(name, "object_mass_ratio", ratio, 1.0)
        add(name, "object_mass_above_1", ratio, 0.5)
        add(name, "object_mass_ratio_absent", absent, 1.0)
        add(name, "object_mass_above_1_absent", absent, 0.5)
        if roi in cats and len(cats) > 1:
            others = sum(obj[k] for k in cats if k != roi)
            add(name, "object_mass_ratio_other", np.where(present, object_mass_ratio(att[:, q], others), np.nan), 1.0)
    return pd.DataFrame(rows, columns=["query", "measure", "value", "reference", "n"])
