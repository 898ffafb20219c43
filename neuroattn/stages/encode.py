"""Stages of the ``encode`` rule family: fit one voxel encoder (:func:`encode`) and, on simulated
data, compare the routing encoder's maps with the true routing (:func:`routing_truth`)."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

from . import register

log = logging.getLogger("neuroattn.stages.encode")


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
    from ..models.encoding import load_encoding_data, run_encoding, write_predictions
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
def routing_truth(pred: str, betas: str, dataset: str, truth: str, table: str) -> None:
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
    """
    from ..models.encoding import routing_truth_check
    from ..utils import atomic_path

    out = routing_truth_check(pred, truth, betas)
    with atomic_path(table) as tmp:
        out.to_csv(tmp, sep="\t", index=False, float_format="%.4g")
    for measure, g in out.groupby("measure"):
        log.info("%s: median %.3f (reference %.3f) over %d queries", measure, g.value.median(),
                 g.reference.median(), len(g))
