"""Stages of the ``encode`` rule family: :func:`encode` fits one voxel encoder for one subject x
backbone x layer and scores it on the held-out images; :func:`routing_truth` (simulated data)
compares the routing encoder's maps with the true routing.

Used by the ``encode`` rule. Models (registry :data:`neuroattn.models.encoders.ENCODERS`): ``routing`` (:class:`RoutingEncoder`),
``ridge_pooled`` and ``ridge_grid`` (:class:`RidgeEncoder`), ``spatial_feature``
(:class:`SpatialFeatureEncoder`), all trained on the subject's training images (the split's
``train`` images that the subject saw) and evaluated on the split's ``test`` images.

Scores (leaderboard rows, ``modality=fmri``, ``target`` = ROI name and ``all``), medians over the
ROI's modelled voxels:

- ``pearson_r``: Pearson r between predicted and observed (repeat-averaged) test betas;
  ``ceiling`` = median of sqrt(NC), the largest r a voxel's noise allows (r, not r^2, scale).
- ``noise_normalized_r2``: ``max(r, 0)^2 / NC`` capped at 1 (Algonauts); ``ceiling`` = median NC.

NC is the NSD noise ceiling ``nsd_noise_ceiling(ncsnr, n_repeats)`` of each voxel for the repeat
counts of the test images. Rows of ``noise_normalized_r2`` are left out (and the ceiling of
``pearson_r`` left empty) when the beta file has no ncsnr.

Prediction file (HDF5): ``images`` (n_test,), ``voxel_index`` (V,) columns of the beta file,
``voxel_roi`` (V,), ``voxel_hemi`` (V,), ``predictions`` and ``observed`` (n_test, V) float32
(NaN predictions for voxels dropped as NaN/constant), ``pearson_r`` and ``noise_ceiling`` (V,);
for ``routing`` (attention) and ``spatial_feature`` (learned spatial maps) a group ``attention``
with ``rois`` (Q,) query names, ``mean`` (Q, h, w) mean map over test images, for ``routing``
``maps`` (n_test, Q, h, w) float16, every test image's map (rows of ``images``), ``examples``
(n_ex, Q, h, w) and ``example_images`` (n_ex,), and per-query summary columns under
``attention/summary/`` (see :func:`~neuroattn.models.routing.summarize_attention`); attribute
``kind`` = ``attention`` or ``spatial_map``; for ``routing`` with ``voxel_maps`` on, a dataset
``voxel_maps`` (V, h, w) float32, each voxel's routing map (:meth:`RoutingEncoder.voxel_maps`).
Root attributes: subject, backbone, layer, model, n_train, n_test, n_dropped_voxels, params (JSON).
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import h5py
import numpy as np

from ..leaderboard import score_row
from ..utils import atomic_path
from . import register

log = logging.getLogger("neuroattn.models.encoding")
_STR = h5py.string_dtype("utf-8")


def _names(images, k=5):
    images = list(images)
    return ", ".join(images[:k]) + (f" ... ({len(images)} in all)" if len(images) > k else "")


def voxel_hemispheres(betas, mode: str = "auto") -> np.ndarray:
    """Hemisphere label ('lh' / 'rh' / '') of every voxel of a :class:`~neuroattn.data.betas.Betas`.

    Parameters
    ----------
    betas : Betas
    mode : {"auto", "labels", "coordinates", "none"}
        ``labels``: the beta file's ``voxel_hemi``; ``coordinates``: the sign of the voxel's
        world x coordinate (``affine @ voxel_ijk``; x < 0 is left in RAS/MNI space, the convention
        of the simulated data and of MNI-registered volumes); ``none``: no split; ``auto``: labels
        when the file has any, else coordinates when it has an affine and voxel indices, else none.
    """
    V = len(betas.voxel_roi)
    labels = np.asarray(betas.voxel_hemi).astype(str)
    ijk = np.asarray(betas.voxel_ijk)
    can_coord = betas.affine is not None and ijk.shape == (V, 3) and (ijk >= 0).all()
    if mode == "auto":
        mode = "labels" if (labels != "").any() else ("coordinates" if can_coord else "none")
    if mode == "labels":
        return labels
    if mode == "none":
        return np.full(V, "")
    if mode == "coordinates":
        if not can_coord:
            raise ValueError(f"sub-{betas.subject}: hemispheres from coordinates need an affine and voxel_ijk "
                             "in the beta file")
        x = np.asarray(betas.affine, dtype=np.float64)[0, :3] @ ijk.T + float(np.asarray(betas.affine)[0, 3])
        return np.where(x < 0, "lh", "rh")
    raise ValueError(f"hemispheres must be 'auto', 'labels', 'coordinates' or 'none', got {mode!r}")


def load_encoding_data(betas_path, features_path, split_path, layer, hemispheres: str = "auto") -> "EncodingData":
    """Read one subject's betas and one layer's tokens on the subject's train and test images.

    ``hemispheres`` (see :func:`voxel_hemispheres`) sets ``voxel_hemi``: the routing and
    spatial-feature encoders give each ROI one query per hemisphere (as in the paper).

    Raises
    ------
    ValueError
        When the beta file holds images that the feature cache lacks (naming them and both
        files), or when the subject saw no train or no test image of the split.
    """
    from ..data.betas import Betas
    from ..data.splits import read_split
    from ..features.store import FeatureStore
    from ..models.encoding import EncodingData
    from ..utils import check_hdf5_fits_memory

    # trial betas, then float64 sums, image averages and the encoders' float64/float32 copies
    check_hdf5_fits_memory(betas_path, {"trial_betas": 1, "betas": 13}, "the beta file",
                           "fmri.keep_other (false: no voxels outside the ROIs) or the ROIs of the beta file")
    betas = Betas.read(betas_path)
    store = FeatureStore(features_path)
    missing = np.setdiff1d(betas.images, store.images)
    if len(missing):
        raise ValueError(f"image lists differ: {betas_path} has betas for {len(missing)} image(s) that "
                         f"{features_path} has no features for: {_names(missing)}")
    train_all, test_all = read_split(split_path)
    outside = np.setdiff1d(betas.images, np.concatenate([train_all, test_all]))
    if len(outside):
        log.warning("sub-%s: %d image(s) with betas are in neither split of %s; ignored: %s",
                    betas.subject, len(outside), split_path, _names(outside))
    train = np.intersect1d(train_all, betas.images)
    test = np.intersect1d(test_all, betas.images)
    if len(test) < len(test_all):
        log.warning("sub-%s: %d of %d test images have no betas; scoring on the %d seen",
                    betas.subject, len(test_all) - len(test), len(test_all), len(test))
    if len(train) == 0 or len(test) < 3:
        raise ValueError(f"{betas_path}: sub-{betas.subject} has {len(train)} training and {len(test)} test "
                         f"images of the split {split_path}; need training images and at least 3 test images")
    pos = {im: i for i, im in enumerate(betas.images)}
    return EncodingData(
        subject=betas.subject,
        X_train=store.token_rows(layer, train), X_test=store.tokens(layer, test),  # train: read by batches
        Y_train=betas.select(train), Y_test=betas.select(test),
        train_images=train, test_images=test,
        test_repeats=betas.n_repeats[[pos[im] for im in test]],
        voxel_roi=betas.voxel_roi, voxel_hemi=voxel_hemispheres(betas, hemispheres), ncsnr=np.asarray(betas.ncsnr, dtype=np.float64),
        grid=store.grid(layer),
    )


def score_rows(subject, model, Y_test, pred, voxel_roi, ncsnr, test_repeats):
    """Leaderboard rows per ROI and ``all`` (see the module docstring); also returns r and NC.

    Voxels whose prediction is NaN (dropped in fit) are left out of the medians.
    """
    from ..metrics import noise_normalized_r2, nsd_noise_ceiling, pearson_r

    r = pearson_r(Y_test, pred)
    nc = nsd_noise_ceiling(ncsnr, test_repeats)
    have_nc = np.isfinite(nc).any()
    if not have_nc:
        log.warning("sub-%s: no ncsnr in the beta file; noise_normalized_r2 rows left out", subject)
    nnr2 = noise_normalized_r2(r, nc)
    rows = []
    roi = np.asarray(voxel_roi).astype(str)
    for target in sorted(set(roi)) + ["all"]:
        sel = np.isfinite(r) & ((roi == target) if target != "all" else True)
        if not sel.any():
            log.warning("sub-%s %s: ROI %r has no scored voxel; no rows", subject, model, target)
            continue
        n = int(sel.sum())
        ok_nc = sel & np.isfinite(nc) & (nc > 0)
        ceil_r = float(np.median(np.sqrt(nc[ok_nc]))) if ok_nc.any() else None
        rows.append(score_row(subject, "fmri", model, target, "pearson_r", float(np.median(r[sel])),
                              ceiling=ceil_r, n=n))
        if ok_nc.any():
            rows.append(score_row(subject, "fmri", model, target, "noise_normalized_r2",
                                  float(np.median(nnr2[ok_nc])), ceiling=float(np.median(nc[ok_nc])),
                                  n=int(ok_nc.sum())))
    return rows, r, nc


def run_encoding(data, model: str, params: dict | None = None, *, seed: int = 0, device: str = "auto",
                 n_examples: int = 6, voxel_maps: int = 0) -> dict:
    """:func:`neuroattn.models.encoding.fit_encoder`, then the leaderboard rows (:func:`score_rows`).

    Returns its result with ``rows``, ``pearson_r`` and ``noise_ceiling`` (V,) added.
    """
    from ..models.encoding import fit_encoder

    result = fit_encoder(data, model, params, seed=seed, device=device, n_examples=n_examples,
                         voxel_maps=voxel_maps)
    rows, r, nc = score_rows(data.subject, model, data.Y_test, result["predictions"], data.voxel_roi,
                             data.ncsnr, data.test_repeats)
    result.update(rows=rows, pearson_r=r, noise_ceiling=nc)
    return result


def write_predictions(path, data, result: dict, *, backbone="", layer="", model="",
                      params: dict | None = None) -> None:
    """Write the prediction HDF5 (layout in the module docstring) atomically."""
    est = result["estimator"]
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for k, v in {"subject": data.subject, "backbone": backbone, "layer": layer, "model": model,
                     "n_train": len(data.train_images), "n_test": len(data.test_images),
                     "n_dropped_voxels": int(getattr(est, "n_dropped_voxels_", 0)),
                     "params": json.dumps(params or {}, sort_keys=True, default=str)}.items():
            f.attrs[k] = v
        f.create_dataset("images", data=data.test_images.astype(object), dtype=_STR)
        f.create_dataset("voxel_index", data=np.arange(len(data.voxel_roi), dtype=np.int32))
        f.create_dataset("voxel_roi", data=data.voxel_roi.astype(object), dtype=_STR)
        f.create_dataset("voxel_hemi", data=np.asarray(data.voxel_hemi).astype(str).astype(object), dtype=_STR)
        f.create_dataset("predictions", data=result["predictions"].astype(np.float32))
        f.create_dataset("observed", data=data.Y_test.astype(np.float32))
        f.create_dataset("pearson_r", data=np.asarray(result["pearson_r"], dtype=np.float32))
        f.create_dataset("noise_ceiling", data=np.asarray(result["noise_ceiling"], dtype=np.float32))
        maps = result.get("maps")
        if maps is not None:
            g = f.create_group("attention")
            g.attrs["kind"] = maps["kind"]
            g.create_dataset("rois", data=np.asarray(maps["rois"], dtype=object), dtype=_STR)
            g.create_dataset("mean", data=np.asarray(maps["mean"], dtype=np.float32))
            if "per_image" in maps:  # every test image (rows of ``images``): the per-image truth check
                g.create_dataset("maps", data=np.asarray(maps["per_image"], dtype=np.float16), compression="gzip",
                                 shuffle=True)
            if "voxel_maps" in maps:
                f.create_dataset("voxel_maps", data=np.asarray(maps["voxel_maps"], dtype=np.float32))
            if "examples" in maps:
                g.create_dataset("examples", data=np.asarray(maps["examples"], dtype=np.float32))
                g.create_dataset("example_images", data=np.asarray(maps["example_images"]).astype(object),
                                 dtype=_STR)
            s = g.create_group("summary")
            for col in maps["summary"].columns:
                v = maps["summary"][col].to_numpy()
                s.create_dataset(col, data=v.astype(object) if v.dtype == object else v,
                                 dtype=_STR if v.dtype == object else None)


def read_truth_voxels(truth_path) -> dict:
    """Voxel arrays of a simulation's truth file: roi, hemi ('' when absent), ijk, rf_center (x, y
    in [0, 1]), rf_sigma (NaN for voxels without a receptive field) and the ``roi_routing`` maps."""
    with h5py.File(truth_path, "r") as f:
        roi = f["voxel_roi"].asstr()[()]
        return {
            "roi": roi,
            "hemi": f["voxel_hemi"].asstr()[()] if "voxel_hemi" in f else np.full(len(roi), ""),
            "ijk": f["voxel_ijk"][()] if "voxel_ijk" in f else None,
            "rf_center": f["rf_center"][()], "rf_sigma": f["rf_sigma"][()],
            "routing": {k: f["roi_routing"][k][()] for k in f["roi_routing"]} if "roi_routing" in f else {},
        }


def truth_routing_maps(truth_path, query_names, grid, size: int = 48) -> np.ndarray:
    """True routing map of every query on the token grid, from a simulated dataset's truth file.

    Retinotopic queries (voxels with a receptive field): the mean Gaussian RF of the query's
    voxels (its ROI, and hemisphere for ``roi.hemi`` names); other queries: the file's
    ``roi_routing/<roi>``. Maps are area-averaged onto ``grid`` and sum to 1; NaN when the truth
    file has nothing for a query. Only for evaluating simulations: models never read truth.

    Parameters
    ----------
    truth_path : path
        ``derivatives/truth/sub-<s>/sub-<s>_desc-truth.h5`` (see ``neuroattn.data.simulate``).
    query_names : list of str
        ``roi``, ``roi.hemi`` or ``roi.hemi#voxel`` names (``RoutingEncoder.query_names_``).
    grid : (int, int)
    size : int
        Pixel grid on which RFs are drawn before averaging.

    Returns
    -------
    ndarray, (n_queries, h, w)
    """
    return _truth_maps(read_truth_voxels(truth_path), query_names, grid, size)


def _truth_maps(truth: dict, query_names, grid, size: int = 48) -> np.ndarray:
    """:func:`truth_routing_maps` from already-read truth voxels (:func:`read_truth_voxels`)."""
    from ..data.simulate import gaussian_rfs
    from ..data.stimuli import block_mean

    from ..models.routing_eval import _rf_voxels

    h, w = grid
    out = np.full((len(query_names), h, w), np.nan)
    rfc, rfs, routing = truth["rf_center"], truth["rf_sigma"], truth["routing"]
    for q, name in enumerate(query_names):
        base, _, vox = name.partition("#")
        r = base.partition(".")[0]
        sel = _rf_voxels(truth, base)
        if vox:
            sel = np.zeros(len(rfs), bool)
            sel[int(vox)] = np.isfinite(rfs[int(vox)])
        if sel.any():
            m = gaussian_rfs(rfc[sel], rfs[sel], size).mean(0)
        elif r in routing:
            m = routing[r]
        else:
            continue
        m = block_mean(np.asarray(m, dtype=np.float64)[None], (1, h / m.shape[0], w / m.shape[1]))[0]
        out[q] = m / m.sum()
    return out


def routing_truth_check(pred_path, truth_path, betas_path):
    """How well a fitted routing encoder's maps recover a simulation's true routing.

    Only for simulated data (models never read the truth). Three levels:

    * per category query (and ``shape_V4``), per test image (``object_mass_*`` measures; needs the
      prediction file's per-image maps ``attention/maps``): the attention mass on the objects of
      the query's category over their share of the grid (1 = blind), median over the images that
      hold one, the fraction above 1, the same on the images without one, and the mass on the
      other categories' objects (:func:`~neuroattn.models.routing_eval.object_mass_table`).
    * per retinotopic query (``attention_*`` measures; category queries have none, as their
      image-averaged maps are near uniform whatever the model does): the head-averaged attention
      map (mean over test images) against the true map of :func:`truth_routing_maps`: ``attention_r`` (Pearson over
      grid cells), ``attention_peak_distance`` (tokens between the two maxima; reference: the
      mean distance of a grid cell chosen at random) and ``attention_centroid_distance``
      (tokens between the centres of mass; reference: a uniform map's centre); for retinotopic
      queries ``attention_peak_to_rf_centre``, tokens between the attention peak and the mean
      receptive-field centre of the query's voxels (reference: a random grid cell).
    * per retinotopic query, over its voxels (``voxel_*``; needs ``voxel_maps`` in the
      prediction file): each voxel's routing map against its own true receptive-field centre:
      ``voxel_peak_distance`` and ``voxel_centroid_distance`` (medians over voxels, tokens) and
      ``voxel_within_one_token`` (fraction of voxels whose map peaks within one token). The
      reference of each is what a model knowing only the query's mean receptive-field centre
      would score: voxel maps below it resolve individual receptive fields.

    Parameters
    ----------
    pred_path : path
        Routing prediction file of :func:`write_predictions`.
    truth_path : path
        The simulation's ``sub-<s>_desc-truth.h5``.
    betas_path : path
        The beta file the encoder was fitted on (``voxel_ijk`` locates its voxels in the truth).

    Returns
    -------
    pandas.DataFrame
        Columns ``query``, ``measure``, ``value``, ``reference``, ``n`` (voxels).
    """
    from ..models.routing_eval import truth_table

    with h5py.File(pred_path, "r") as f:
        if "attention" not in f or f["attention"].attrs.get("kind") != "attention":
            raise ValueError(f"{pred_path}: no attention maps (not a routing prediction file)")
        names = list(f["attention/rois"].asstr()[()])
        maps = f["attention/mean"][()].astype(np.float64)
        vmaps = f["voxel_maps"][()].astype(np.float64) if "voxel_maps" in f else None
        vidx = f["voxel_index"][()]
        roi, hemi = f["voxel_roi"].asstr()[()], f["voxel_hemi"].asstr()[()]
    voxels = read_truth_voxels(truth_path)
    truth = _truth_maps(voxels, names, maps.shape[1:])
    ti = None
    if vmaps is not None:
        with h5py.File(betas_path, "r") as f:
            bijk = f["voxel_ijk"][()][vidx]
        if voxels["ijk"] is None:
            raise ValueError(f"{truth_path}: no voxel_ijk, so the beta file's voxels cannot be located in it")
        lut = {tuple(v): i for i, v in enumerate(voxels["ijk"])}
        missing = [tuple(v) for v in bijk if tuple(v) not in lut]
        if missing:
            raise ValueError(f"{betas_path}: {len(missing)} voxel(s) not in the truth file {truth_path}, "
                             f"e.g. {missing[0]}")
        ti = np.array([lut[tuple(v)] for v in bijk])
    out = truth_table(names, maps, truth, voxels, vmaps, ti, roi, hemi)
    content = content_routing_inputs(pred_path, truth_path)
    if content is not None:
        import pandas as pd

        from ..models.routing_eval import object_mass_table

        names, _, att, objects, cats = content
        out = pd.concat([out, object_mass_table(names, att, objects, categories=cats)], ignore_index=True)
    return out


def content_routing_inputs(pred_path, truth_path):
    """Per-image attention and object maps of the test images, for the per-image truth check.

    Returns ``(names, images, attention (n, Q, h, w), objects, categories)`` with ``objects`` the
    truth's ``image_routing/cat_<c>`` maps of the prediction file's images (n, 24, 24) per ROI,
    plus ``shape_V4`` (every object) when that ROI is queried, and ``categories`` the ``cat_*``
    ROIs; None when the prediction file has no per-image maps or the truth no per-image routing
    (files written before either existed).

    Raises
    ------
    ValueError
        When the prediction file's images are not all among the truth's images (naming both files).
    """
    from ..data.simulate_brain import V4_ROI

    with h5py.File(pred_path, "r") as f:
        if "attention/maps" not in f:
            log.warning("%s: no per-image attention maps (written before they were stored); no "
                        "object_mass rows", pred_path)
            return None
        names = list(f["attention/rois"].asstr()[()])
        images = f["images"].asstr()[()]
        att = f["attention/maps"][()].astype(np.float64)
    with h5py.File(truth_path, "r") as f:
        if "image_routing" not in f:
            log.warning("%s: no image_routing in the truth; no object_mass rows", truth_path)
            return None
        pos = {im: i for i, im in enumerate(f["images"].asstr()[()])}
        missing = [im for im in images if im not in pos]
        if missing:
            raise ValueError(f"{pred_path}: {len(missing)} test image(s) not among the images of {truth_path}, "
                             f"e.g. {missing[0]}")
        rows = np.array([pos[im] for im in images])
        objects = {k: f["image_routing"][k][()][rows].astype(np.float64) for k in f["image_routing"]}
    cats = sorted(objects)
    if any(n.partition("#")[0].partition(".")[0] == V4_ROI for n in names) and cats:
        objects[V4_ROI] = sum(objects[k] for k in cats)  # the V4-like region reads every object
    return names, images, att, objects, cats


@register("encode")
def encode(betas: str, features: str, split: str, pred: str, scores: str, subject: str, backbone: str,
           layer: str, model: str, model_cfg: dict, hemispheres: str, voxel_maps: int, seed: int,
           device: str, checkpoint_dir: str) -> None:
    """Fit encoder ``model`` for one subject x backbone x layer, predict the test images, score them.

    Parameters
    ----------
    betas, features, split : str
        The subject's beta file, the backbone's feature cache and the image split.
    pred, scores : str
        Outputs: the prediction HDF5 and the leaderboard rows (TSV).
    subject, backbone, layer, model : str
        Wildcards; ``model`` is a name of :data:`neuroattn.models.encoders.ENCODERS`.
    model_cfg : dict
        The model's config section (``encode.routing`` / ``encode.ridge`` / ``encode.spatial_feature``).
    hemispheres : str
        ``encode.hemispheres``.
    voxel_maps : int
        Test images for per-voxel routing maps (0 = off).
    seed : int
    device : str
    checkpoint_dir : str
        Trained encoders resume from ``<checkpoint_dir>/<run key>``; removed after success.
    """
    from ..leaderboard import write_scores
    from ..models.encoders import ENCODERS
    from ..utils import run_key

    data = load_encoding_data(betas, features, split, layer, hemispheres=hemispheres)
    params = dict(model_cfg)
    fit_params = dict(params)
    ckdir = None
    if ENCODERS[model].meta.get("trained"):  # trained models resume from their checkpoints
        ckdir = Path(checkpoint_dir) / run_key(params, seed, hemispheres, betas, features, split)
        fit_params["checkpoint_dir"] = str(ckdir)
    result = run_encoding(data, model, fit_params, seed=int(seed), device=device, voxel_maps=int(voxel_maps))
    write_predictions(pred, data, result, backbone=backbone, layer=layer, model=model, params=params)
    write_scores(scores, result["rows"])
    if ckdir is not None:
        shutil.rmtree(ckdir.parent, ignore_errors=True)
    for row in result["rows"]:
        if row["target"] == "all":
            log.info("sub-%s %s: %s = %.4f (ceiling %s, n=%s)", subject, model, row["metric"], row["value"],
                     row["ceiling"], row["n"])


@register("routing_truth")
def routing_truth(pred: str, betas: str, dataset: str, truth: str, table: str, subject: str = "",
                  backbone: str = "", layer: str = "") -> None:
    """Simulated data only: a routing encoder's maps against the simulation's true routing.

    Parameters
    ----------
    pred : str
        The routing encoder's prediction file.
    betas : str
        The beta file it was fitted on.
    dataset : str
        The simulated dataset (a dependency only; ``truth`` is read from it).
    truth : str
        ``derivatives/truth/sub-<s>/sub-<s>_desc-truth.h5``.
    table : str
        Output TSV: ``query``, ``measure``, ``value``, ``reference``, ``n``.
    subject, backbone, layer : str
        The rule's wildcards (for the log).
    """
    out = routing_truth_check(pred, truth, betas)
    with atomic_path(table) as tmp:
        out.to_csv(tmp, sep="\t", index=False, float_format="%.4g")
    log.info("sub-%s %s %s: routing against the simulation's truth", subject, backbone, layer)
    for measure, g in out.groupby("measure"):
        log.info("%s: median %.3f (reference %.3f) over %d queries", measure, g.value.median(),
                 g.reference.median(), len(g))
