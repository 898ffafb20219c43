"""Region-to-layer similarity (RSA, CKA, SSM) with split-half ceilings, commitment by SSM, and
SSM subsampling curves (Shi, Shea-Brown & Buice 2019).

Arrays in, tables out; reading the betas and the feature store is the stage's
(:func:`neuroattn.stages.scoring.similarity`).

Data: the repeat-averaged responses ``Y_reps.mean(0)`` of the images shown at least twice, so
that the value and its ceiling (:func:`neuroattn.metrics.similarity.split_half_ceiling`, from
the same trials) describe the same data.
"""
from __future__ import annotations

import functools
from typing import Iterable

import numpy as np
import pandas as pd

from .score import Score
from .similarity import _spearman, cka, rsa, rsm, rsm_similarity, split_half_ceiling, ssm
from .subsampling import subsample

SIMILARITY_METRICS = ("rsa_spearman", "cka", "ssm")


def _value_fn(metric: str, rsm_kind: str):
    if metric == "rsa_spearman":
        return lambda X, Y: rsa(X, Y).value
    if metric == "cka":
        return lambda X, Y: cka(X, Y).value
    if metric == "ssm":
        return lambda X, Y: rsm_similarity(X, Y, rsm_kind)
    raise ValueError(f"similarity metric must be one of {SIMILARITY_METRICS}, got {metric!r}")


def _compare_fn(metric: str, rsm_kind: str):
    if metric == "rsa_spearman":
        return lambda a, b: rsa(a, b).value
    if metric == "cka":
        return lambda a, b: cka(a, b).value
    return lambda a, b: rsm_similarity(a, b, rsm_kind)


def similarity_table(layers: Iterable[tuple[str, np.ndarray]], Y_reps, regions,
                     metrics: Iterable[str] = SIMILARITY_METRICS, rsm_kind: str = "pearson",
                     n_splits: int = 10, random_state: int = 1, commit_metric: str = "ssm",
                     n_stability: int = 20, stability_fraction: float = 0.8) -> pd.DataFrame:
    """Every (region, layer, metric): value and the region's split-half ceiling.

    Parameters
    ----------
    layers : iterable of (name, X)
        Layers in depth order, ``X`` (n_stimuli, n_features) on the stimuli of ``Y_reps``.
    Y_reps : array-like, (n_repetitions, n_stimuli, n_units)
        Single trials; the value is computed on their average.
    regions : array-like of str, (n_units,)
    metrics : subset of ``("rsa_spearman", "cka", "ssm")``
        ``rsa_spearman``: 1 - Pearson RDMs compared by Spearman; ``cka``: unbiased linear CKA;
        ``ssm``: RSMs of kind ``rsm_kind`` compared by Spearman.
    rsm_kind : {"pearson", "cosine", "zscore"}
        :func:`neuroattn.metrics.similarity.rsm` of the ``ssm`` rows.
    n_splits, random_state : int
        Ceiling splits.
    commit_metric : str
        The metric whose best layer per region is marked ``committed``.
    n_stability, stability_fraction :
        ``ssm`` rows' ``win_fraction``: over ``n_stability`` random subsets of
        ``stability_fraction`` of the stimuli, how often the layer has the region's highest SSM
        (how firm the commitment is; 0 draws: NaN).

    Returns
    -------
    DataFrame
        ``roi, layer, depth, metric, value, ceiling, ceiling_error, n_units, n_stimuli,
        n_features, committed, win_fraction``.
    """
    R = np.asarray(Y_reps, dtype=np.float64)
    if R.ndim != 3:
        raise ValueError(f"Y_reps must be (n_repetitions, n_stimuli, n_units), got {R.shape}")
    regions = np.asarray(regions).astype(str)
    if regions.shape != (R.shape[2],):
        raise ValueError(f"regions ({regions.shape}) must have one entry per unit of Y_reps ({R.shape[2]})")
    metrics = list(metrics)
    for m in metrics:
        _value_fn(m, rsm_kind)
    if commit_metric not in metrics:
        raise ValueError(f"commit_metric {commit_metric!r} is not among the metrics {metrics}")
    Y = R.mean(axis=0)
    names = list(dict.fromkeys(regions))
    ceil = {}
    for roi in names:
        m = regions == roi
        for met in metrics:
            c, e, _ = split_half_ceiling(R[:, :, m], _compare_fn(met, rsm_kind), n_splits=n_splits,
                                         random_state=random_state)
            ceil[(roi, met)] = (c, e)
    rows, layer_rsms = [], {}
    for depth, (layer, X) in enumerate(layers):
        X = np.asarray(X, dtype=np.float64)
        if X.shape[0] != Y.shape[0]:
            raise ValueError(f"layer {layer}: {X.shape[0]} stimuli, the responses have {Y.shape[0]}")
        if "ssm" in metrics:
            layer_rsms[layer] = rsm(X, rsm_kind)
        for roi in names:
            m = regions == roi
            for met in metrics:
                rows.append({"roi": roi, "layer": layer, "depth": depth, "metric": met,
                             "value": float(_value_fn(met, rsm_kind)(X, Y[:, m])),
                             "ceiling": ceil[(roi, met)][0], "ceiling_error": ceil[(roi, met)][1],
                             "n_units": int(m.sum()), "n_stimuli": int(Y.shape[0]), "n_features": int(X.shape[1])})
    if not rows:
        raise ValueError("similarity_table: no layers")
    df = pd.DataFrame(rows)
    df["committed"] = False
    for met, g in df.groupby("metric"):
        best = g.loc[g.groupby("roi", sort=False)["value"].idxmax()].index
        df.loc[best, "committed"] = True
    df["win_fraction"] = np.nan
    if "ssm" in metrics and n_stability > 0:
        roi_rsms = {roi: rsm(Y[:, regions == roi], rsm_kind) for roi in names}
        wins = win_fractions(layer_rsms, roi_rsms, n_stability, stability_fraction, random_state)
        m = df.metric == "ssm"
        df.loc[m, "win_fraction"] = [wins[(r, lay)] for r, lay in zip(df.roi[m], df.layer[m])]
    return df


def win_fractions(layer_rsms: dict, roi_rsms: dict, n_draws: int = 20, fraction: float = 0.8,
                  random_state: int = 1) -> dict:
    """How often each layer has a region's highest RSM similarity over random stimulus subsets.

    Parameters
    ----------
    layer_rsms, roi_rsms : dict of name -> (n_stimuli, n_stimuli) RSM
    n_draws : random subsets (without replacement) of ``fraction`` of the stimuli
    random_state : int

    Returns
    -------
    dict
        ``(roi, layer) -> fraction of draws`` (the fractions of one ROI sum to 1).
    """
    n = next(iter(roi_rsms.values())).shape[0]
    k = max(4, int(round(fraction * n)))
    rng = np.random.default_rng(random_state)
    layers = list(layer_rsms)
    counts = {(r, lay): 0 for r in roi_rsms for lay in layers}
    iu = np.triu_indices(k, 1)
    for _ in range(n_draws):
        idx = np.sort(rng.choice(n, size=k, replace=False))
        lt = {lay: M[np.ix_(idx, idx)][iu] for lay, M in layer_rsms.items()}
        for r, M in roi_rsms.items():
            y = M[np.ix_(idx, idx)][iu]
            vals = [_spearman(lt[lay], y) for lay in layers]
            counts[(r, layers[int(np.nanargmax(vals))])] += 1
    return {key: c / n_draws for key, c in counts.items()}


def committed_layers(table: pd.DataFrame, metric: str = "ssm") -> pd.DataFrame:
    """Per region, the layer with the highest ``metric``: ``roi, layer, depth, value, ceiling``
    (and ``win_fraction`` where the table has it)."""
    d = table[(table.metric == metric) & table.committed.astype(bool)]
    if d.empty:
        raise ValueError(f"no committed rows for metric {metric!r} (metrics: {sorted(table.metric.unique())})")
    cols = ["roi", "layer", "depth", "value", "ceiling"] + (["win_fraction"] if "win_fraction" in d else [])
    return d[cols].sort_values("roi").reset_index(drop=True)


def hierarchy_ordered(committed: pd.DataFrame, early: str = "ret_", late: str = "cat_") -> bool:
    """True when every ``early*`` region commits to a strictly earlier layer than every ``late*``
    region (the planted visual hierarchy); False when either kind is missing."""
    e = committed.depth[committed.roi.str.startswith(early)]
    lt = committed.depth[committed.roi.str.startswith(late)]
    return bool(len(e) and len(lt) and e.max() < lt.min())


def similarity_scores(table: pd.DataFrame, backbone: str) -> list[tuple[str, str, str, Score]]:
    """Leaderboard scores ``(model, roi, metric, Score)``: model ``<backbone>_<layer>``, value and
    split-half ceiling, ``meta['n']`` the number of stimuli."""
    return [(f"{backbone}_{r.layer}", r.roi, r.metric,
             Score(float(r.value), ceiling=float(r.ceiling), meta={"n": int(r.n_stimuli)}))
            for r in table.itertuples()]


def flattening_size(sizes, mean, fraction: float = 0.95) -> float:
    """Smallest size from which the mean stays at or above ``fraction`` of the full-size (last)
    mean at every larger size (a noisy small size above it does not count); NaN when the
    full-size mean is not positive."""
    sizes, mean = np.asarray(sizes), np.asarray(mean, dtype=np.float64)
    if not len(mean) or not np.isfinite(mean[-1]) or mean[-1] <= 0:
        return float("nan")
    ok = np.isfinite(mean) & (mean >= fraction * mean[-1])
    below = np.flatnonzero(~ok)
    return float(sizes[below[-1] + 1 if len(below) else 0])


def ssm_subsampling(X, Y, rsm_kind: str = "pearson", n_draws: int = 3, random_state: int = 0,
                    min_size: int = 10, n_sizes: int = 6, fraction: float = 0.95) -> pd.DataFrame:
    """SSM of one region against one layer on random subsets of voxels and of stimuli.

    Parameters
    ----------
    X : (n_stimuli, n_features); Y : (n_stimuli, n_units)
    rsm_kind : see :func:`neuroattn.metrics.similarity.rsm`
    n_draws : random subsets per size (one at the full size)
    min_size, n_sizes : about log-spaced sizes from ``min_size`` to all
    fraction : the curve flattens at the smallest size reaching ``fraction`` of the full value

    Returns
    -------
    DataFrame
        ``metric, axis, size, mean, std, n_draws, relative, flattens_at`` (``relative`` the mean
        over the full-size mean; ``flattens_at`` :func:`flattening_size`, the same on every row of
        an axis).
    """
    from .subsampling import default_sizes

    fn = functools.partial(ssm, kind=rsm_kind)
    frames = []
    for axis in ("units", "stimuli"):
        total = Y.shape[1] if axis == "units" else Y.shape[0]
        sizes = default_sizes(total, n_sizes=n_sizes, minimum=min_size)
        c = subsample(X, Y, axis=axis, metric=fn, sizes=sizes, n_draws=n_draws, random_state=random_state)
        mean, std = c.mean, c.std
        full = mean[-1]
        frames.append(pd.DataFrame({"metric": "ssm", "axis": axis, "size": c.sizes, "mean": mean, "std": std,
                                    "n_draws": np.isfinite(c.values).sum(axis=1),
                                    "relative": mean / full if np.isfinite(full) and full != 0 else np.nan,
                                    "flattens_at": flattening_size(c.sizes, mean, fraction)}))
    return pd.concat(frames, ignore_index=True)
