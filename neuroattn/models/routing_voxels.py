"""Voxel and token helpers of the voxel encoders: which voxels to model, their query groups
(ROI x hemisphere, or one per voxel), token arrays and their grid, a mean Pearson score.

NumPy only: the ridge baselines use them too, and a ridge job should not import torch."""
from __future__ import annotations

import math
import warnings

import numpy as np


def _is_lazy(X) -> bool:
    """A feature-store view (rows read on demand through ``take``), not an in-memory array."""
    return not isinstance(X, np.ndarray) and callable(getattr(X, "take", None)) and hasattr(X, "shape")


def clean_voxels(Y: np.ndarray) -> np.ndarray:
    """Mask of usable voxels: finite in every row and not constant.

    Parameters
    ----------
    Y : ndarray, (n_images, n_voxels)

    Returns
    -------
    ndarray of bool, (n_voxels,)
    """
    Y = np.asarray(Y, dtype=np.float64)
    finite = np.isfinite(Y).all(axis=0)
    sd = np.zeros(Y.shape[1])
    sd[finite] = Y[:, finite].std(axis=0)
    return finite & (sd > 1e-8 * (1.0 + np.abs(Y[:, finite]).max(initial=0.0)))


def voxel_groups(voxel_roi, voxel_hemi=None, keep=None, rois=None, query_mode: str = "rois"):
    """Assign every kept voxel to a query.

    Parameters
    ----------
    voxel_roi : array of str, (V,)
    voxel_hemi : array of str, (V,), optional
        Hemisphere labels; non-empty labels split an ROI into one query per hemisphere.
    keep : array of bool, (V,), optional
        Usable voxels (see :func:`clean_voxels`); others get group -1.
    rois : list of str, optional
        ROIs to model (default: all in ``voxel_roi``); voxels of other ROIs get group -1, and
        ROIs without any usable voxel are skipped with a warning naming them.
    query_mode : {"rois", "voxels"}

    Returns
    -------
    group : ndarray of int, (V,)
        Query index of each voxel, -1 for voxels not modelled.
    names : list of str
        Query names (``roi`` or ``roi.hemi``; ``roi.hemi#voxel`` in voxel mode).
    """
    voxel_roi = np.asarray(voxel_roi).astype(str)
    V = len(voxel_roi)
    hemi = np.full(V, "") if voxel_hemi is None else np.asarray(voxel_hemi).astype(str)
    if hemi.shape != (V,):
        raise ValueError(f"voxel_hemi has {hemi.shape[0]} labels for {V} voxels")
    keep = np.ones(V, bool) if keep is None else np.asarray(keep, bool)
    wanted = sorted(set(voxel_roi)) if rois is None else [str(r) for r in rois]
    use = keep & np.isin(voxel_roi, wanted)
    for r in wanted:
        if not np.any(use & (voxel_roi == r)):
            warnings.warn(f"ROI {r!r} has no usable voxels (absent, NaN or zero variance); skipped",
                          stacklevel=3)
    labels = np.array([r if not h else f"{r}.{h}" for r, h in zip(voxel_roi, hemi)], dtype=object)
    group = np.full(V, -1, dtype=np.int64)
    if query_mode == "rois":
        names = sorted(set(labels[use]))
        pos = {n: i for i, n in enumerate(names)}
        group[use] = [pos[n] for n in labels[use]]
    elif query_mode == "voxels":
        idx = np.flatnonzero(use)
        names = [f"{labels[i]}#{i}" for i in idx]
        group[idx] = np.arange(len(idx))
    else:
        raise ValueError(f"query_mode must be 'rois' or 'voxels', got {query_mode!r}")
    if not names:
        raise ValueError("no voxel left to model (all NaN/constant or outside the requested ROIs)")
    return group, list(names)


def mean_pearson(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean column-wise Pearson r (NaN columns ignored): the validation score of the encoders."""
    from ..metrics import pearson_r

    r = pearson_r(np.asarray(target, dtype=np.float64), np.asarray(pred, dtype=np.float64))
    return float(np.nanmean(r)) if np.isfinite(r).any() else -1.0


def _as_tokens(X, grid):
    """(n, T, C) float32 array and its grid from (n, T, C) or (n, h, w, C) input."""
    X = np.asarray(X)
    if X.ndim == 4:
        h, w = X.shape[1:3]
        if grid is not None and tuple(grid) != (h, w):
            raise ValueError(f"grid {tuple(grid)} does not match the (n, h, w, C) input {X.shape}")
        return X.reshape(X.shape[0], h * w, X.shape[3]).astype(np.float32, copy=False), (h, w)
    if X.ndim != 3:
        raise ValueError(f"X must be tokens (n, T, C) or (n, h, w, C), got shape {X.shape}")
    T = X.shape[1]
    if grid is None:
        s = int(round(math.sqrt(T)))
        if s * s != T:
            raise ValueError(f"{T} tokens are not a square grid: pass grid=(h, w)")
        grid = (s, s)
    grid = tuple(int(g) for g in grid)
    if grid[0] * grid[1] != T:
        raise ValueError(f"grid {grid} has {grid[0] * grid[1]} cells but X has {T} tokens")
    return X.astype(np.float32, copy=False), grid
