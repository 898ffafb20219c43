"""Region-to-layer commitment, as Brain-Score does it, streaming one layer at a time.

Every layer of a backbone is scored against every region (ROI) with :func:`linear_predictivity`
on the *public* (train) images; each region is committed to its best layer; the committed model
is then reported on the *held-out* (test) images: the regression is fit on all public images and
predicts the held-out ones, Pearson r per unit.  Only one layer's features are in memory at a time.

Layer features (our choice, see :func:`layer_features`): the token grid of the layer is
average-pooled to at most ``pool_grid`` x ``pool_grid`` cells (coarse retinotopy survives, which
retinotopic ROIs need; a global pool would erase it), flattened, then reduced by a PCA fitted on
the public images only (``pca`` components; Brain-Score fits its 1000-component PCA on separate
ImageNet images).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from .ceiling import ceiled_explained_variance, noise_normalized_r2
from .predictivity import fit_predict, linear_predictivity
from .score import check_same_stimuli, pearson_r

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


def layer_features(store, layer: str, images, pool_grid: int | None = 4, chunk: int = 128) -> np.ndarray:
    """Pooled token features of one layer for ``images``, read ``chunk`` images at a time."""
    images = np.asarray(images).astype(str)
    grid = store.grid(layer)
    parts = [pool_tokens(store.tokens(layer, images[i:i + chunk]), grid, pool_grid)
             for i in range(0, len(images), chunk)]
    return np.concatenate(parts, axis=0)


def reduce_features(X_public, X_heldout, n_components: int | None, random_state: int = 0):
    """PCA fitted on the public rows only (``None``: no reduction). Returns both, transformed."""
    if n_components is None or n_components >= min(X_public.shape):
        return X_public, X_heldout
    pca = PCA(n_components=n_components, svd_solver="randomized" if n_components < 0.5 * min(X_public.shape)
              else "full", random_state=random_state)
    return pca.fit_transform(X_public), pca.transform(X_heldout)


def stream_layers(store, layers: Sequence[str], public_images, heldout_images, pool_grid: int | None = 4,
                  pca: int | None = 256, random_state: int = 0) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield ``(layer, X_public, X_heldout)`` one layer at a time from a :class:`FeatureStore`."""
    for layer in layers:
        Xp = layer_features(store, layer, public_images, pool_grid)
        Xh = layer_features(store, layer, heldout_images, pool_grid)
        yield (layer, *reduce_features(Xp, Xh, pca, random_state))


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
        Layers in depth order, e.g. from :func:`stream_layers` (consumed one at a time).
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


def heldout_rows(commitment: Commitment, subject: str, backbone: str, noise_ceiling, regions,
                 per_layer: bool = True) -> list[dict]:
    """Leaderboard rows (modality ``fmri``) of the committed model and, optionally, every layer.

    Model ``<backbone>_committed`` (each region on its committed layer) and ``<backbone>_<layer>``;
    metrics ``pearson_r`` (median over the region's units of the held-out r, with its bootstrap
    error), ``ceiled_ev``
    (that median squared over the region's median noise ceiling) and ``noise_normalized_r2``
    (median over units of max(r, 0)^2 / NC); ``ceiling`` the median noise ceiling of the units.
    """
    from ..leaderboard import score_row

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
            out.append(score_row(subject, "fmri", model, roi, "pearson_r", med_r, ceiling=ceil, error=err,
                                 n=int(ok.sum())))
            out.append(score_row(subject, "fmri", model, roi, "ceiled_ev", ceiled_explained_variance(med_r, ceil),
                                 ceiling=ceil, n=int(ok.sum())))
            if np.isfinite(nnr2).any():
                out.append(score_row(subject, "fmri", model, roi, "noise_normalized_r2",
                                     float(np.nanmedian(nnr2)), ceiling=ceil, n=int(np.isfinite(nnr2).sum())))
    return out


def subject_noise_ceiling(betas, heldout_images) -> np.ndarray:
    """Per-voxel NSD noise ceiling for predicting ``heldout_images`` (repeat-averaged betas).

    Uses the beta file's ``ncsnr`` when filled, else estimates it from the repeated held-out
    trials; NaN when neither is possible (no repeats).
    """
    from .ceiling import ncsnr as _ncsnr, nsd_noise_ceiling

    snr = np.asarray(betas.ncsnr, dtype=np.float64)
    if not np.isfinite(snr).any():
        try:
            snr = _ncsnr(betas.repeats(heldout_images))
        except ValueError as exc:
            log.warning("sub-%s: no noise ceiling (%s)", betas.subject, exc)
            return np.full(betas.betas.shape[1], np.nan)
    pos = {im: i for i, im in enumerate(betas.images)}
    reps = betas.n_repeats[[pos[im] for im in heldout_images]]
    return nsd_noise_ceiling(snr, reps)


def commit_subject(betas, store, train_images, test_images, layers: Sequence[str] | None = None,
                   backbone: str = "backbone", regression: str = "pls", n_splits: int = 10,
                   train_size: float = 0.9, random_state: int = 1, n_components: int = 25,
                   pool_grid: int | None = 4, pca: int | None = 256, seed: int = 0,
                   per_layer_rows: bool = True) -> tuple[list[dict], pd.DataFrame]:
    """Layer commitment for one subject: leaderboard rows and the per-layer table.

    Parameters
    ----------
    betas : neuroattn.data.betas.Betas
    store : neuroattn.features.FeatureStore
    train_images, test_images : the image split; the subject's public images are its images in
        the train split, its held-out images those in the test split (both must be in the store).
    layers : layers in depth order (default: the store's).
    backbone : model name prefix of the rows.
    regression, n_splits, train_size, random_state, n_components : see :func:`linear_predictivity`.
    pool_grid, pca, seed : layer features, see :func:`stream_layers`.
    per_layer_rows : also write ``<backbone>_<layer>`` rows.

    Returns
    -------
    rows : list of dict
        Leaderboard rows (:func:`heldout_rows`).
    table : DataFrame
        ``roi, layer, depth, value, error, n_units, n_features, committed, heldout_r`` (public
        predictivity of every layer, and the held-out median r for reference).
    """
    layers = list(store.layers if layers is None else layers)
    missing = [lay for lay in layers if lay not in store.layers]
    if missing:
        raise KeyError(f"{store.path}: no layer(s) {missing}; available: {', '.join(store.layers)}")
    seen = set(betas.images)
    public = np.array(sorted(seen & set(map(str, train_images))))
    heldout = np.array(sorted(seen & set(map(str, test_images))))
    if len(public) == 0 or len(heldout) < 3:
        raise ValueError(f"sub-{betas.subject}: {len(public)} public and {len(heldout)} held-out images; "
                         "layer commitment needs both (check the image split)")
    Yp, Yh = betas.select(public), betas.select(heldout)
    nc = subject_noise_ceiling(betas, heldout)
    com = commit_layers(stream_layers(store, layers, public, heldout, pool_grid=pool_grid, pca=pca, random_state=seed),
                        Yp, Yh, betas.voxel_roi, regression=regression, n_splits=n_splits, train_size=train_size,
                        random_state=random_state, n_components=n_components)
    table = com.public.sort_values(["roi", "depth"], kind="mergesort").reset_index(drop=True)
    table["heldout_r"] = [float(np.nanmedian(com.heldout_r[(lay, roi)])) for roi, lay in zip(table.roi, table.layer)]
    for roi, lay in com.committed.items():
        log.info("sub-%s %s: committed %s", betas.subject, roi, lay)
    return heldout_rows(com, betas.subject, backbone, nc, betas.voxel_roi, per_layer=per_layer_rows), table
