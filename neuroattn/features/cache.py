"""Stream a backbone's layer features into an HDF5 feature cache (``store.py``), with an
optional PCA per layer fitted on the training images only.

Peak memory is one batch of activations, whatever the number of images.
"""
from __future__ import annotations

import logging

import numpy as np

from .backbones import Backbone
from .extract import check_layers, iter_features
from .images import ImageSource
from ..utils import check_fits_disk
from .store import FeatureWriter, StreamingPCA, store_nbytes

log = logging.getLogger("neuroattn.features.extract")

__all__ = ["fit_pca", "extract_to_writer", "cache_features", "layer_shapes"]

#: the settings that shrink a feature cache, named when it does not fit the disk
DISK_KEYS = "pca (fewer channels per token), dtype (float16 halves float32) or layers (fewer, or earlier ones)"


def layer_shapes(backbone: Backbone, images, layers=None) -> tuple[dict, list]:
    """``({layer: (n_tokens, n_channels)}, cls_layers)`` of ``backbone`` on ``images``, from a
    forward pass of the first image only (every image is resized to the same size)."""
    src = ImageSource(images)
    layers = check_layers(backbone, layers)
    if len(src) == 0:
        raise ValueError("no images")
    first = ImageSource(src[:1]) if src._arr is not None else ImageSource(src._paths[:1])
    batches = iter_features(backbone, first, layers, batch_size=1)
    try:
        _, tok, _, cls = next(batches)
    finally:
        batches.close()  # restores the model's train/eval mode now
    return {k: tuple(int(x) for x in v.shape[1:]) for k, v in tok.items()}, sorted(cls)


def fit_pca(backbone: Backbone, images, n_components: int, layers=None, batch_size: int = 64):
    """Fit one :class:`StreamingPCA` per layer on the tokens of ``images`` (streamed, exact).

    Layers with no more channels than ``n_components`` are left out (kept unreduced).
    """
    layers = check_layers(backbone, layers)
    pcas: dict[str, StreamingPCA] = {}
    for _, tok, _, cls in iter_features(backbone, images, layers, batch_size, reuse=True):
        for k, v in tok.items():
            if v.shape[-1] <= n_components:
                continue
            p = pcas.setdefault(k, StreamingPCA(n_components))
            p.partial_fit(v.reshape(-1, v.shape[-1]))
    return {k: p.finalize() for k, p in pcas.items()}


def extract_to_writer(backbone: Backbone, images, writer: FeatureWriter, layers=None,
                      batch_size: int = 64, pca: dict | None = None) -> None:
    """Stream features of ``images`` batch by batch into an open :class:`FeatureWriter`.

    Peak memory is one batch of activations, whatever the number of images. ``pca[layer]``
    (fitted :class:`StreamingPCA`) reduces the channels of that layer's tokens and CLS token.
    """
    pca = pca or {}
    layers = check_layers(backbone, layers)
    for layer, p in pca.items():
        writer.add_pca(layer, p)
    for _, tok, grids, cls in iter_features(backbone, images, layers, batch_size, reuse=True):
        for k, p in pca.items():
            b, t, c = tok[k].shape
            tok[k] = p.transform(tok[k].reshape(-1, c)).reshape(b, t, -1)
            if k in cls:
                cls[k] = p.transform(cls[k])
        writer.add(tok, grids, cls or None)


def cache_features(backbone: Backbone, images, path, *, names=None, layers=None, batch_size: int = 64,
                   dtype="float16", pca: int | None = None, fit_on=None, attrs: dict | None = None,
                   output=None, disk_keys: str = DISK_KEYS) -> None:
    """Extract ``layers`` for ``images`` into the HDF5 cache ``path`` (see ``store.py``).

    Parameters
    ----------
    backbone : Backbone
    images : uint8 array (n, H, W, 3) or list of paths
    path : str or Path
        Output file; removed again if anything fails (wrap in ``atomic_path`` for atomicity).
    names : list of str, optional
        Stimulus names stored as ``images`` (default: file names, or ``img<i>``).
    layers : list of str, optional
    batch_size : int
    dtype : {"float16", "float32"}
        Storage type of the tokens (pooled and CLS are float32).
    pca : int, optional
        Channels kept per layer: principal components fitted on the ``fit_on`` images only and
        applied to all. Layers with at most ``pca`` channels are stored as they are.
    fit_on : array of int or bool, optional
        Rows of ``images`` the PCA is fitted on (the training images); required with ``pca``.
    attrs : dict, optional
        Extra root attributes.
    output : str or Path, optional
        The file named when the cache does not fit the disk (default ``path``; a stage writing
        through ``atomic_path`` passes its real output).
    disk_keys : str
        The settings named when the cache does not fit the disk (a stage names its config keys).

    Raises
    ------
    OSError
        ``ENOSPC`` before anything is extracted when the cache (:func:`store_nbytes`, sized from
        one image's forward pass) needs more than the free space of ``path``'s file system.
    """
    src = ImageSource(images)
    layers = check_layers(backbone, layers)
    names = list(src.names if names is None else names)
    if len(names) != len(src):
        raise ValueError(f"{len(names)} names for {len(src)} images")
    if len(set(names)) != len(names):
        raise ValueError(f"image names listed twice: {sorted({n for n in names if names.count(n) > 1})[:5]}")
    shapes, cls_layers = layer_shapes(backbone, src, layers)
    need = store_nbytes(len(src), shapes, dtype=dtype, pca=pca, cls=cls_layers)
    check_fits_disk(need, f"the feature cache of {len(src)} images x layers "
                          f"{', '.join(f'{k} {t}x{c}' for k, (t, c) in shapes.items())} ({np.dtype(dtype)}"
                          f"{f', PCA {int(pca)}' if pca else ''})", output or path, disk_keys)
    pcas = {}
    if pca:
        if fit_on is None:
            raise ValueError("pca needs fit_on: the rows of the training images")
        fit_on = np.asarray(fit_on)
        if fit_on.dtype == bool and len(fit_on) != len(src):
            raise ValueError(f"fit_on mask has {len(fit_on)} entries for {len(src)} images")
        rows = np.flatnonzero(fit_on) if fit_on.dtype == bool else fit_on.astype(int)
        if len(rows) == 0:
            raise ValueError("no training images to fit the PCA on")
        fit_src = ImageSource(src[rows]) if src._arr is not None else ImageSource([src._paths[i] for i in rows])
        log.info("fitting %d-component PCA per layer on %d training images", pca, len(rows))
        pcas = fit_pca(backbone, fit_src, int(pca), layers, batch_size)
    meta = {"backbone": backbone.name, "arch": backbone.name, "weights": backbone.weights,
            "image_size": backbone.image_size, "pca": int(pca or 0), "dtype": str(np.dtype(dtype))}
    meta.update(attrs or {})
    with FeatureWriter(path, names, attrs=meta, dtype=dtype) as writer:
        extract_to_writer(backbone, src, writer, layers, batch_size, pcas)
