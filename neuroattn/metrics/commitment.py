"""Region-to-layer commitment, as Brain-Score does it, streaming one layer at a time.

Arrays in, :class:`Score` s and tables out; reading the layers from the feature store and the
betas is the stage's (:mod:`neuroattn.stages.scoring`).

Every layer of a backbone is scored against every region (ROI) with :func:`linear_predictivity`
on the *public* (train) images; each region is committed to its best layer; the committed model
is then reported on the *held-out* (test) images: the regression is fit on all public images and
predicts the held-out ones, Pearson r per unit.  Only one layer's features are in memory at a time.

Layer features (our choice, see :func:`neuroattn.stages.scoring.layer_features`): the token grid of the layer is
average-pooled to at most ``pool_grid`` x ``pool_grid`` cells (coarse retinotopy survives, which
retinotopic ROIs need; a global pool would erase it), flattened, then reduced by a PCA fitted on
the public images only (``pca`` components; Brain-Score fits its 1000-component PCA on separate
ImageNet images).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd

from .ceiling import ceiled_explained_variance, noise_normalized_r2, subject_noise_ceiling  # noqa: F401 (re-export)
from .predictivity import fit_predict, linear_predictivity
from .score import Score, check_same_stimuli, pearson_r

log = logging.getLogger("neuroattn.metrics")


def _bins(n_in: int, n_out: int):
    # torch's adaptive_avg_pool bins: [floor(i n_in / n_out), ceil((i + 1) n_in / n_out))
    return [(int(np.floor(i * n_in / n_out)), int(np.ceil((i + 1) * n_in / n_out))) for i in range(n_out)]


def pool_tokens(tokens, grid: tuple[int, int], pool_grid: int | None = 4) -> np.ndarray:
    """Average-pool token grids (n, h*w, C) to at most ``pool_grid`` x ``pool_grid``, flattened.

    ``pool_grid=None`` keeps every token; ``pool_grid=1`` is global average pooling.
    Returns (n, gh * gw * C), cell-major.
    """
    tokens = np.asarray(tokens, dtype=np.float32)
    h, w = grid
    n, t, c = tokens.shape
    if t != h * w:
        raise ValueError(f"{t} tokens do not fill a {h}x{w} grid")
    x = tokens.reshape(n, h, w, c)
    if pool_grid is None:
        return x.reshape(n, -1)
    gh, gw = min(pool_grid, h), min(pool_grid, w)
    out = np.empty((n, gh, gw, c), dtype=np.float32)
    for i, (a, b) in enumerate(_bins(h, gh)):
        for j, (p, q) in enumerate(_bins(w, gw)):
            out[:, i, j] = x[:, a:b, p:q].mean(axis=(1, 2))
    return out.reshape(n, -1)


def reduce_features(X_public, X_heldout, n_components: int | None, random_state: int = 0):
    """PCA fitted on the public rows only (``None``: no reduction). Returns both, transformed.

    With ``n_components`` at or above ``min(n_public, n_features)`` PCA cannot reduce: features
    no more numerous than the images are returned as they are, and more features than images are
    replaced by their coordinates in the span of the centred public rows (the PCA with every
    component, from one thin SVD). The regressions scored on them (PLS without scaling, ridge,
    least squares) fit and predict through inner products of centred rows, which that projection
    keeps, so the scores equal those on the raw features to rounding, while the cost of each fit
    follows the number of images instead of the features (a resnet50 block pooled to 4 x 4 cells
    has 32,768 on a few hundred images).
    """
    if n_components is None:
        return X_public, X_heldout
    n, p = X_public.shape
    if n_components >= min(n, p):
        if p <= n:
            return X_public, X_heldout
        mean = X_public.mean(axis=0, dtype=np.float64)
        centred = X_public - mean
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        tol = s[0] * max(n, p) * np.finfo(np.float64).eps if s.size else 0.0
        basis = vt[s > tol].T  # (p, rank): centred public rows have rank <= n - 1
        return centred @ basis, (X_heldout - mean) @ basis
    from sklearn.decomposition import PCA  # here: sklearn.decomposition alone takes ~1 s to import

    pca = PCA(n_components=n_components, svd_solver="randomized" if n_components < 0.5 * min(X_public.shape)
              else "full", random_state=random_state)
    return pca.fit_transform(X_public), pca.transform(X_heldout)


@dataclass
class Commitment:
    """The outcome of :func:`commit_layers`.

    Attributes
    ----------
    public : DataFrame
        One row per (region, layer): ``roi``, ``layer``, ``depth`` (order of the layer),
        ``value`` (public predictivity), ``error``, ``n_units``, ``n_features``, ``committed``.
    committed : dict
        Region -> committed layer (best public value).
    heldout_r : dict
        (layer, region) -> per-unit held-out Pearson r.
    heldout_error : dict
        (layer, region) -> bootstrap (over held-out stimuli) standard error of the median r.
    """

    public: pd.DataFrame
    committed: dict
    heldout_r: dict = field(default_factory=dict)
    heldout_error: dict = field(default_factory=dict)


def commit_layers(layers: Iterable[tuple[str, np.ndarray, np.ndarray]], Y_public, Y_heldout, regions,
                  regression: str = "pls", n_splits: int = 10, train_size: float = 0.9,
                  random_state: int = 1, n_components: int = 25, n_boot: int = 200, **kwargs) -> Commitment:
    """Score every layer against every region on public data, commit the best layer per region.

    Parameters
    ----------
    layers : iterable of (name, X_public, X_heldout)
        Layers in depth order, e.g. from :func:`neuroattn.stages.scoring.stream_layers` (consumed one at a time).
    Y_public, Y_heldout : array-like, (n_public, n_units) and (n_heldout, n_units)
    regions : array-like of str, (n_units,)
        Region of each unit.
    regression, n_splits, train_size, random_state, n_components, **kwargs
        Passed to :func:`linear_predictivity` (public) and :func:`fit_predict` (held-out).
    n_boot : int
        Bootstrap resamples of the held-out stimuli for the error of the held-out median r.

    Returns
    -------
    Commitment
    """
    Y_public = np.asarray(Y_public, dtype=np.float64)
    Y_heldout = np.asarray(Y_heldout, dtype=np.float64)
    regions = np.asarray(regions).astype(str)
    if regions.shape != (Y_public.shape[1],) or Y_heldout.shape[1] != Y_public.shape[1]:
        raise ValueError(f"regions ({regions.shape[0]}), Y_public ({Y_public.shape[1]}) and Y_heldout "
                         f"({Y_heldout.shape[1]}) must have the same number of units")
    names = list(dict.fromkeys(regions))
    rows, heldout, heldout_err = [], {}, {}
    for depth, (layer, Xp, Xh) in enumerate(layers):
        check_same_stimuli(X_public=Xp, Y_public=Y_public)
        check_same_stimuli(X_heldout=Xh, Y_heldout=Y_heldout)
        k = min(n_components, Xp.shape[1], int(np.floor(train_size * len(Xp))) - 1)
        if regression == "pls" and k < n_components:
            log.info("layer %s: PLS components capped at %d (%d features)", layer, k, Xp.shape[1])
        for roi in names:
            m = regions == roi
            sc = linear_predictivity(Xp, Y_public[:, m], regression=regression, n_splits=n_splits,
                                     train_size=train_size, random_state=random_state, n_components=k, **kwargs)
            pred = fit_predict(Xp, Y_public[:, m], Xh, regression=regression, n_components=k, **kwargs)
            Yh = Y_heldout[:, m]
            heldout[(layer, roi)] = pearson_r(Yh, pred)
            heldout_err[(layer, roi)] = bootstrap_error(
                lambda idx: np.nanmedian(pearson_r(Yh[idx], pred[idx])), len(Yh), n_boot=n_boot,
                random_state=random_state)
            rows.append({"roi": roi, "layer": layer, "depth": depth, "value": sc.value, "error": sc.error,
                         "n_units": sc.meta["n_units"], "n_features": Xp.shape[1]})
        log.info("layer %s scored against %d regions", layer, len(names))
    if not rows:
        raise ValueError("commit_layers: no layers to score")
    public = pd.DataFrame(rows)
    best = public.loc[public.groupby("roi", sort=False)["value"].idxmax()]
    committed = {str(r): str(lay) for r, lay in zip(best["roi"], best["layer"])}
    public["committed"] = [committed[r] == l for r, l in zip(public["roi"], public["layer"])]
    return Commitment(public=public, committed=committed, heldout_r=heldout, heldout_error=heldout_err)


def bootstrap_error(r_fn, n: int, n_boot: int = 200, random_state: int = 0) -> float:
    """Standard deviation of ``r_fn(idx)`` over bootstrap resamples ``idx`` of ``n`` stimuli."""
    rng = np.random.default_rng(random_state)
    vals = [r_fn(rng.integers(0, n, n)) for _ in range(n_boot)]
    return float(np.nanstd(vals))


def heldout_scores(commitment: Commitment, backbone: str, noise_ceiling, regions,
                   per_layer: bool = True) -> list[tuple[str, str, str, Score]]:
    """Held-out scores of the committed model and, optionally, every layer.

    Model ``<backbone>_committed`` (each region on its committed layer) and ``<backbone>_<layer>``;
    metrics ``pearson_r`` (median over the region's units of the held-out r, with its bootstrap
    error), ``ceiled_ev`` (that median squared over the region's median noise ceiling) and
    ``noise_normalized_r2`` (median over units of max(r, 0)^2 / NC); ``ceiling`` the median noise
    ceiling of the units (variance scale), its square root for ``pearson_r`` (the leaderboard sets
    the normalised metrics' ceiling to 1).

    Returns
    -------
    list of (model, region, metric, Score)
        ``Score.meta["n"]`` holds the number of units behind the value; the stage turns these
        into leaderboard rows (:func:`neuroattn.leaderboard.rows_from_scores`).
    """
    regions = np.asarray(regions).astype(str)
    nc = np.asarray(noise_ceiling, dtype=np.float64)
    out = []
    models = [(f"{backbone}_committed", commitment.committed)]
    if per_layer:
        layers = list(dict.fromkeys(commitment.public["layer"]))
        models += [(f"{backbone}_{layer}", {roi: layer for roi in commitment.committed}) for layer in layers]
    for model, choice in models:
        for roi, layer in choice.items():
            r = commitment.heldout_r[(layer, roi)]
            m = regions == roi
            ok = np.isfinite(r)
            if not ok.any():
                continue
            med_r = float(np.median(r[ok]))
            ceil = float(np.nanmedian(nc[m])) if np.isfinite(nc[m]).any() else float("nan")
            nnr2 = noise_normalized_r2(r[ok], nc[m][ok])
            err = commitment.heldout_error.get((layer, roi))
            # pearson_r's ceiling on the r scale: sqrt of the (variance-scale) noise ceiling
            ceil_r = float(np.sqrt(ceil)) if np.isfinite(ceil) and ceil > 0 else float("nan")
            out.append((model, roi, "pearson_r", Score(med_r, error=float("nan") if err is None else err,
                                                       ceiling=ceil_r, meta={"n": int(ok.sum())})))
            out.append((model, roi, "ceiled_ev", Score(ceiled_explained_variance(med_r, ceil), ceiling=ceil,
                                                       meta={"n": int(ok.sum())})))
            if np.isfinite(nnr2).any():
                out.append((model, roi, "noise_normalized_r2",
                            Score(float(np.nanmedian(nnr2)), ceiling=ceil, meta={"n": int(np.isfinite(nnr2).sum())})))
    return out


def layer_table(commitment: Commitment) -> pd.DataFrame:
    """The per-layer table: public predictivity of every (region, layer) and its held-out median r.

    Columns ``roi, layer, depth, value, error, n_units, n_features, committed, heldout_r``, sorted by
    region then depth.
    """
    table = commitment.public.sort_values(["roi", "depth"], kind="mergesort").reset_index(drop=True)
    table["heldout_r"] = [float(np.nanmedian(commitment.heldout_r[(lay, roi)]))
                          for roi, lay in zip(table.roi, table.layer)]
    return table


def public_heldout(images, train_images, test_images, subject: str = "?"):
    """The subject's public (train-split) and held-out (test-split) images, sorted.

    Raises when there is no public image or fewer than 3 held-out ones.
    """
    seen = set(map(str, images))
    public = np.array(sorted(seen & set(map(str, train_images))))
    heldout = np.array(sorted(seen & set(map(str, test_images))))
    if len(public) == 0 or len(heldout) < 3:
        raise ValueError(f"sub-{subject}: {len(public)} public and {len(heldout)} held-out images; "
                         "layer commitment needs both (check the image split)")
    return public, heldout
