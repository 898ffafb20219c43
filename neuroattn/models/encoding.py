"""Fit one voxel encoder on one subject's training images and predict its test images (arrays).

Models: the registry :data:`neuroattn.models.encoders.ENCODERS` (``routing``, ``ridge_pooled``,
``ridge_grid``, ``spatial_feature``). Reading betas and features, scoring, and the prediction
file's layout: :mod:`neuroattn.stages.encode`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np


log = logging.getLogger("neuroattn.models.encoding")



@dataclass
class EncodingData:
    """Features and betas of one subject on its train/test images."""

    subject: str
    X_train: np.ndarray  # (n_train, T, C)
    X_test: np.ndarray
    Y_train: np.ndarray  # (n_train, V)
    Y_test: np.ndarray
    train_images: np.ndarray
    test_images: np.ndarray
    test_repeats: np.ndarray  # (n_test,) trials averaged into each test row
    voxel_roi: np.ndarray
    voxel_hemi: np.ndarray
    ncsnr: np.ndarray
    grid: tuple


def make_model(model: str, params: dict | None = None, *, seed: int = 0, device: str = "auto"):
    """The estimator for a model name, with config ``params`` (unknown keys are refused).

    A lookup in :data:`neuroattn.models.encoders.ENCODERS`."""
    from .encoders import make_encoder

    return make_encoder(model, params, seed=seed, device=device)


def fit_encoder(data: EncodingData, model: str, params: dict | None = None, *, seed: int = 0,
                 device: str = "auto", n_examples: int = 6, voxel_maps: int = 0):
    """Fit ``model`` on the training images, predict the test images, compute its maps.

    ``voxel_maps`` > 0 (routing only): also compute each voxel's routing map on the first
    ``voxel_maps`` test images (``maps["voxel_maps"]``).

    Returns
    -------
    result : dict
        ``predictions`` (n_test, V), ``estimator`` and, for map-producing models, ``maps`` (dict
        for the HDF5 group; None otherwise). Scores: :func:`neuroattn.stages.encode.run_encoding`.
    """
    from .encoders import ENCODERS

    est = make_model(model, params, seed=seed, device=device)
    log.info("sub-%s %s: fitting on %d images, %d voxels, tokens %s", data.subject, model,
             len(data.X_train), data.Y_train.shape[1], data.X_train.shape[1:])
    est.fit(data.X_train, data.Y_train, voxel_roi=data.voxel_roi, voxel_hemi=data.voxel_hemi, grid=data.grid)
    pred = est.predict(data.X_test)
    entry = ENCODERS[model]
    maps = entry.meta["maps"](est, data.X_test, data.test_images, n_examples,
                              voxel_maps if "voxel_maps" in entry.produces else 0) if "maps" in entry.produces else None
    if maps is not None:
        from .routing import summarize_attention  # torch: imported only by the models with maps

        maps["summary"] = summarize_attention(maps["mean"], maps["rois"])
    return {"estimator": est, "predictions": pred, "maps": maps}


