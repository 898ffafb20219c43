"""Stages of ``rules/score.smk``: layer commitment and subsampling curves of one subject and
backbone, and the leaderboard gathered from every scoring job's TSV.

The stages read the betas, the image split and the layers of the feature store, call the
array-level :mod:`neuroattn.metrics` code and write TSVs; leaderboard rows are built here with
:func:`neuroattn.leaderboard.rows_from_scores` (metrics return :class:`~neuroattn.metrics.Score` s).
"""
from __future__ import annotations

import logging
from typing import Iterator, Sequence

import numpy as np

from ..config import with_defaults
from ..utils import atomic_path
from . import register

log = logging.getLogger("neuroattn.stages.scoring")

# The subsampling curves' fixed design (not configurable): Pearson r, 3 random subsets per size,
# at most 5 cross-validation splits (the smallest subsets have few stimuli).
SUBSAMPLING_DRAWS = 3
SUBSAMPLING_MAX_SPLITS = 5


def layer_features(store, layer: str, images, pool_grid: int | None = 4, chunk: int = 128) -> np.ndarray:
    """Pooled token features of one layer for ``images``, read ``chunk`` images at a time.

    ``store`` is a :class:`neuroattn.features.FeatureStore`; pooling is
    :func:`neuroattn.metrics.commitment.pool_tokens`.
    """
    from ..metrics.commitment import pool_tokens

    images = np.asarray(images).astype(str)
    grid = store.grid(layer)
    parts = [pool_tokens(store.tokens(layer, images[i:i + chunk]), grid, pool_grid)
             for i in range(0, len(images), chunk)]
    return np.concatenate(parts, axis=0)


def stream_layers(store, layers: Sequence[str], public_images, heldout_images, pool_grid: int | None = 4,
                  pca: int | None = 256, random_state: int = 0) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield ``(layer, X_public, X_heldout)`` one layer at a time from a feature store
    (pooled, then PCA fitted on the public rows: :func:`neuroattn.metrics.commitment.reduce_features`)."""
    from ..metrics.commitment import reduce_features

    for layer in layers:
        Xp = layer_features(store, layer, public_images, pool_grid)
        Xh = layer_features(store, layer, heldout_images, pool_grid)
        yield (layer, *reduce_features(Xp, Xh, pca, random_state))


def commit_subject(betas, store, train_images, test_images, layers: Sequence[str] | None = None,
                   backbone: str = "backbone", regression: str = "pls", n_splits: int = 10,
                   train_size: float = 0.9, random_state: int = 1, n_components: int = 25,
                   pool_grid: int | None = 4, pca: int | None = 256, seed: int = 0,
                   per_layer_rows: bool = True):
    """Layer commitment for one subject: leaderboard rows and the per-layer table.

    Parameters
    ----------
    betas : neuroattn.data.betas.Betas
    store : neuroattn.features.FeatureStore
    train_images, test_images : the image split; the subject's public images are its images in
        the train split, its held-out images those in the test split (both must be in the store).
    layers : layers in depth order (default: the store's).
    backbone : model name prefix of the rows.
    regression, n_splits, train_size, random_state, n_components : see
        :func:`neuroattn.metrics.linear_predictivity`.
    pool_grid, pca, seed : layer features, see :func:`stream_layers` (``seed`` is its PCA's
        ``random_state``).
    per_layer_rows : also write ``<backbone>_<layer>`` rows.

    Returns
    -------
    rows : list of dict
        Leaderboard rows (:func:`neuroattn.metrics.commitment.heldout_scores`).
    table : DataFrame
        :func:`neuroattn.metrics.commitment.layer_table`.
    """
    from ..leaderboard import rows_from_scores
    from ..metrics.ceiling import subject_noise_ceiling
    from ..metrics.commitment import commit_layers, heldout_scores, layer_table, public_heldout

    layers = list(store.layers if layers is None else layers)
    missing = [lay for lay in layers if lay not in store.layers]
    if missing:
        raise KeyError(f"{store.path}: no layer(s) {missing}; available: {', '.join(store.layers)}")
    public, heldout = public_heldout(betas.images, train_images, test_images, betas.subject)
    Yp, Yh = betas.select(public), betas.select(heldout)
    nc = subject_noise_ceiling(betas, heldout)
    com = commit_layers(stream_layers(store, layers, public, heldout, pool_grid=pool_grid, pca=pca, random_state=seed),
                        Yp, Yh, betas.voxel_roi, regression=regression, n_splits=n_splits, train_size=train_size,
                        random_state=random_state, n_components=n_components)
    for roi, lay in com.committed.items():
        log.info("sub-%s %s: committed %s", betas.subject, roi, lay)
    scores = heldout_scores(com, backbone, nc, betas.voxel_roi, per_layer=per_layer_rows)
    return rows_from_scores(betas.subject, "fmri", scores), layer_table(com)


@register("layer_commitment")
def layer_commitment(betas: str, features: str, split: str, scores: str, layers: str, scoring: dict,
                     seed: int, backbone_layers: list, backbone: str, subject: str) -> None:
    """Rule ``layer_commitment``: best layer per ROI on the public images, scored held-out.

    Parameters
    ----------
    betas, features, split : str
        The subject's beta file, the backbone's feature store, the image split.
    scores, layers : str
        Output leaderboard rows and the per-layer table (TSVs).
    scoring : dict
        ``scoring`` of the config (over config.yaml's defaults; unknown keys refused).
    seed : int
        The config's ``seed`` (the PCA's ``random_state``).
    backbone_layers : list of str
        The backbone's configured layers (empty: every layer of the store); ones not in the
        store are skipped.
    backbone, subject : str
        Wildcards (``subject`` only names the job; the betas carry it).
    """
    from ..data.betas import Betas
    from ..data.splits import read_split
    from ..features.store import FeatureStore
    from ..leaderboard import write_scores

    sc = with_defaults(scoring, "scoring")
    b = Betas.read(betas)
    store = FeatureStore(features)
    train, test = read_split(split)
    use = [lay for lay in (backbone_layers or store.layers) if lay in store.layers]
    rows, table = commit_subject(
        b, store, train, test, layers=use, backbone=backbone, regression=sc["regression"],
        n_splits=sc["n_splits"], train_size=sc["train_size"], random_state=sc["random_state"],
        n_components=sc["n_components"], pool_grid=sc["pool_grid"], pca=sc["pca"], seed=seed,
        per_layer_rows=sc["per_layer_rows"])
    write_scores(scores, rows)
    with atomic_path(layers) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    log.info("committed layers: %s", table.loc[table.committed, ["roi", "layer"]].to_dict("records"))


@register("subsampling")
def subsampling(betas: str, features: str, split: str, curves: str, scoring: dict, seed: int,
                backbone: str, subject: str, layer: str) -> None:
    """Rule ``subsampling``: predictivity vs number of voxels and of training images.

    The layer's pooled, PCA-reduced features of the subject's training images against its betas
    (:func:`neuroattn.metrics.subsampling.subsample`, Pearson r, over ``units`` and ``stimuli``).

    Parameters
    ----------
    betas, features, split : str
        The subject's beta file, the backbone's feature store, the image split.
    curves : str
        Output TSV (:func:`neuroattn.metrics.subsampling.curves_table`).
    scoring : dict
        ``scoring`` of the config (``regression``, ``n_splits``, ``pool_grid``, ``pca``).
    seed : int
        The config's ``seed`` (PCA and subset draws).
    backbone, subject, layer : str
        Wildcards.
    """
    from ..data.betas import Betas
    from ..data.splits import read_split
    from ..features.store import FeatureStore
    from ..metrics.commitment import reduce_features
    from ..metrics.subsampling import curves_table, subsample

    sc, seed = with_defaults(scoring, "scoring"), int(seed)
    b = Betas.read(betas)
    store = FeatureStore(features)
    train, _ = read_split(split)
    seen = set(b.images)
    train = [im for im in train if im in seen]
    X = layer_features(store, layer, train, sc["pool_grid"])
    X, _ = reduce_features(X, X[:1], sc["pca"], random_state=seed)
    Y = b.select(train)
    kw = dict(regression=sc["regression"], n_splits=min(SUBSAMPLING_MAX_SPLITS, sc["n_splits"]))
    result = [subsample(X, Y, axis=axis, metric="pearson_r", n_draws=SUBSAMPLING_DRAWS, random_state=seed, **kw)
              for axis in ("units", "stimuli")]
    table = curves_table(result)
    with atomic_path(curves) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    log.info("sub-%s %s/%s subsampling curves (%d voxels, %d training images):\n%s", subject, backbone, layer,
             Y.shape[1], Y.shape[0], table.to_string())


def similarity_subject(betas, store, test_images, layers: Sequence[str], backbone: str = "backbone",
                       rsm: str = "pearson", pool_grid: int | None = None, n_splits: int = 10,
                       random_state: int = 1, subsampling_draws: int = 3, seed: int = 0):
    """RSA / CKA / SSM of every ROI against every layer on the subject's repeated test images.

    Parameters
    ----------
    betas : neuroattn.data.betas.Betas
    store : neuroattn.features.FeatureStore
    test_images : the test split; the images of it shown at least twice are used (their
        trial-averaged betas for the values, their single trials for the split-half ceilings).
    layers : layers in depth order.
    backbone : model name prefix of the rows.
    rsm, pool_grid, n_splits, random_state, subsampling_draws : ``scoring.similarity`` of the
        config (:func:`neuroattn.metrics.similarity_commitment.similarity_table`,
        :func:`layer_features`).
    seed : subset draws of the subsampling curves (each subject its own:
        ``derive_seed(seed, crc32(subject) % 10000)``).

    Returns
    -------
    rows : list of dict
        Leaderboard rows (metrics ``rsa_spearman``, ``cka``, ``ssm``, with ceilings).
    table : DataFrame
        :func:`~neuroattn.metrics.similarity_commitment.similarity_table`.
    curves : DataFrame
        SSM subsampling curves of each ROI at its SSM-committed layer (columns ``roi, layer``
        then :func:`~neuroattn.metrics.similarity_commitment.ssm_subsampling`'s).
    """
    import zlib

    import pandas as pd

    from ..leaderboard import rows_from_scores
    from ..metrics.similarity_commitment import committed_layers, similarity_scores, similarity_table, ssm_subsampling
    from ..utils import derive_seed

    subject_index = zlib.crc32(str(betas.subject).encode()) % 10_000  # own subsets per subject

    seen = dict(zip(map(str, betas.images), betas.n_repeats))
    rep = [str(im) for im in test_images if seen.get(str(im), 0) >= 2]
    if len(rep) < 4:
        raise ValueError(f"sub-{betas.subject}: {len(rep)} test images were shown at least twice; the similarity "
                         "stage needs >= 4 (check the simulation's / design's repeats of the test images)")
    R = betas.repeats(rep)
    feats = {lay: layer_features(store, lay, rep, pool_grid) for lay in layers}
    table = similarity_table(feats.items(), R, betas.voxel_roi, rsm_kind=rsm, n_splits=n_splits,
                             random_state=random_state)
    com = committed_layers(table, "ssm")
    Y = R.mean(axis=0)
    curves = []
    for r in com.itertuples():
        m = betas.voxel_roi == r.roi
        c = ssm_subsampling(feats[r.layer], Y[:, m], rsm_kind=rsm, n_draws=subsampling_draws,
                            random_state=derive_seed(seed, subject_index))
        c.insert(0, "layer", r.layer)
        c.insert(0, "roi", r.roi)
        curves.append(c)
    rows = rows_from_scores(betas.subject, "fmri", similarity_scores(table, backbone))
    return rows, table, pd.concat(curves, ignore_index=True)


@register("similarity")
def similarity(betas: str, features: str, split: str, scores: str, layers: str, curves: str, scoring: dict,
               seed: int, backbone_layers: list, backbone: str, subject: str) -> None:
    """Rule ``similarity``: RSA, CKA and SSM per ROI and layer with split-half ceilings, the
    SSM commitment per ROI and SSM subsampling curves (:func:`similarity_subject`).

    Parameters
    ----------
    betas, features, split : str
        The subject's beta file, the backbone's feature store, the image split.
    scores, layers, curves : str
        Output leaderboard rows, the (roi, layer, metric) table with ``committed`` marks, and
        the SSM subsampling curves (TSVs).
    scoring : dict
        ``scoring`` of the config (its ``similarity`` subsection is used).
    seed : int
        The config's ``seed`` (subset draws).
    backbone_layers : list of str
        The backbone's configured layers (empty: every layer of the store).
    backbone, subject : str
        Wildcards.
    """
    from ..data.betas import Betas
    from ..data.splits import read_split
    from ..features.store import FeatureStore
    from ..leaderboard import write_scores

    sim = with_defaults((scoring or {}).get("similarity"), "scoring", "similarity")
    b = Betas.read(betas)
    store = FeatureStore(features)
    _, test = read_split(split)
    use = [lay for lay in (backbone_layers or store.layers) if lay in store.layers]
    rows, table, cur = similarity_subject(
        b, store, test, use, backbone=backbone, rsm=sim["rsm"], pool_grid=sim["pool_grid"],
        n_splits=sim["n_splits"], random_state=sim["random_state"], subsampling_draws=sim["subsampling_draws"],
        seed=int(seed))
    write_scores(scores, rows)
    for path, df in ((layers, table), (curves, cur)):
        with atomic_path(path) as tmp:
            df.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    com = table[(table.metric == "ssm") & table.committed]
    log.info("sub-%s SSM commitment: %s", subject, {str(r): str(lay) for r, lay in zip(com.roi, com.layer)})


@register("leaderboard")
def leaderboard(scores: list, table: str, backbones: list = (), incontext: dict | None = None) -> None:
    """Rule ``leaderboard``: every scoring job's TSV gathered into ``results/scores/leaderboard.tsv``,
    plus the pooled ``subject = group`` rows (mean, SEM over subjects).

    Parameters
    ----------
    scores : list of str
        The per-job score TSVs.
    table : str
        Output leaderboard (sorted, byte-stable: :func:`neuroattn.leaderboard.gather`).
    backbones : list of str
        ``features.backbones``' names (they split ``<backbone>_<layer>`` model names).
    incontext : dict, optional
        The ``incontext`` section: its ``backbone`` / ``layer`` fill the in-context rows' columns.
    """
    from ..leaderboard import gather

    scores = [str(p) for p in scores]
    df = gather(scores, table, backbones=list(backbones or ()),
                features={fam: (incontext.get("backbone"), incontext.get("layer"))
                          for fam in ("incontext", "ridge_context", "aligned_ridge")} if incontext else None)
    log.info("leaderboard: %d rows from %d files (%d pooled over subjects)", len(df), len(scores),
             int((df.subject == "group").sum()))


@register("voxel_maps")
def voxel_maps(betas: str, preds: list, maps: list, boldref: str, bids_root: str, subject: str, task: str,
               format: str = "bids", adapter: dict | None = None, dataset: str | None = None) -> None:
    """Voxelwise prediction accuracy of every encoder as NIfTI maps on the bold grid, and the
    subject's BOLD reference (the subject page draws the maps on it with nilearn).

    Parameters
    ----------
    betas : str
        The subject's beta file (``voxel_ijk``, ``affine``, ``shape`` of the bold grid).
    preds : list of str
        Encoder prediction files (``pearson_r``: per-voxel Pearson r on the test images).
    maps : list of str
        Outputs, one per ``preds`` entry in the same order: ``_stat-r_statmap.nii.gz`` (0 outside
        the scored voxels).
    boldref : str
        Output ``_desc-boldref.nii.gz``: the temporal mean of the first bold run, or (formats
        without runs) the scored-voxel mask.
    bids_root, subject, task, format, adapter
        Where the bold runs are (``fmri.bids_root``, ``fmri.format``, ``fmri.adapter``).
    dataset : str, optional
        The root's marker file (dependency only; not read).
    """
    import h5py

    from ..data.betas import Betas
    from ..data.volumes import bold_reference, to_volume, write_nifti

    preds, maps = list(preds), list(maps)
    if len(preds) != len(maps):
        raise ValueError(f"{len(preds)} prediction files for {len(maps)} map outputs")
    b = Betas.read(betas)
    if b.affine is None or b.shape is None or (b.voxel_ijk < 0).all():
        raise ValueError(f"{betas}: no bold grid (affine, shape, voxel_ijk): voxelwise maps need volumetric data")
    for pred, out in zip(preds, maps):
        with h5py.File(pred, "r") as f:
            r = f["pearson_r"][()]
            idx = f["voxel_index"][()] if "voxel_index" in f else np.arange(len(r))
        write_nifti(to_volume(r, b.voxel_ijk[idx], b.shape, b.affine), out)
        log.info("sub-%s %s: %d voxels, median r %.3f", subject, out, int(np.isfinite(r).sum()), float(np.nanmedian(r)))
    ref = bold_reference(format, bids_root, subject, task, adapter)
    if ref is None or ref.shape[:3] != tuple(b.shape)[:3]:
        ref = to_volume(np.ones(len(b.voxel_ijk)), b.voxel_ijk, b.shape, b.affine)
    write_nifti(ref, boldref)
