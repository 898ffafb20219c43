"""Stages of the in-context rule family: the synthetic prior (:func:`incontext_prior`) and the
leave-one-subject-out fold of one held-out subject (:func:`incontext_loso`)."""
from __future__ import annotations

import logging

from . import register

log = logging.getLogger("neuroattn.stages.incontext")


@register("incontext_prior")
def incontext_prior(features: str, split: str, prior: str, cfg: dict, seed: int, device: str) -> None:
    """Meta-train the in-context encoder/decoder on synthetic voxels (no brain data).

    Parameters
    ----------
    features, split : str
        The backbone's feature cache and the image split.
    prior : str
        Output checkpoint (``.pt``).
    cfg : dict
        The ``incontext`` config section (``backbone``, ``layer``, sizes, steps).
    seed : int
    device : str
    """
    from ..models.metatrain import run_prior

    cfg = dict(cfg)
    log.info("in-context prior: backbone %s layer %s", cfg["backbone"], cfg["layer"])
    run_prior(features, split, prior, cfg, layer=cfg["layer"], seed=seed, device=device)


@register("incontext_loso")
def incontext_loso(prior: str, features: str, split: str, betas: list, pred: str, scores: str, subject: str,
                   cfg: dict, seed: int, device: str) -> None:
    """Phase-2 meta-training without held-out ``subject``, then its evaluation (both methods).

    Parameters
    ----------
    prior : str
        The checkpoint of :func:`incontext_prior`.
    features, split : str
    betas : list of str
        Every subject's beta file (the held-out one included).
    pred, scores : str
        Outputs: the prediction HDF5 and the leaderboard rows.
    subject : str
        The held-out subject.
    cfg : dict
        The ``incontext`` config section.
    seed : int
    device : str
    """
    from ..models.metatrain import run_loso

    betas = list(betas)
    log.info("in-context LOSO: held-out sub-%s, %d beta files", subject, len(betas))
    run_loso(prior, features, split, betas, subject, pred, scores, dict(cfg), seed=seed, device=device)
