"""Read layer activations of a backbone as token grids, in memory or streamed to a feature cache.

Every layer output becomes ``(n_images, n_tokens, n_channels)``:

- conv maps ``(b, C, h, w)`` -> ``(b, h * w, C)``, tokens in row-major (y, x) order, grid ``(h, w)``;
- transformer tokens ``(b, P + N, C)`` -> the ``N`` spatial tokens ``(b, N, C)`` with grid
  ``(sqrt N, sqrt N)`` (``(1, N)`` when N is not a square); of the ``P`` prefix tokens
  (``Backbone.n_prefix_tokens``), the first, the CLS token, is returned apart and the others
  (registers, distillation tokens) are dropped;
- vectors ``(b, C)`` -> ``(b, 1, C)``, grid ``(1, 1)``.

Pooled embeddings are the mean over tokens (conv layers) or the CLS token (ViT layers).

Images are a uint8 array ``(n, H, W, 3)`` or a list of image files (read by ``images.py``),
resized to the backbone's ``image_size`` by :meth:`Backbone.preprocess`. Streaming features into
an HDF5 cache (with PCA) is ``cache.py``.

Activations are caught with forward hooks; the forward pass stops as soon as every asked-for layer
has been seen, so reading early layers costs less than a full forward pass.
"""
from __future__ import annotations

import logging
import math
import sys
import types

import numpy as np
import torch

from .backbones import Backbone
from .images import ImageSource, load_image  # noqa: F401  (load_image: public import)

log = logging.getLogger(__name__)


def _to_input(backbone: Backbone, batch, out=None) -> torch.Tensor:
    """A batch (uint8 array or list of arrays, possibly of different sizes) -> model input
    (written into ``out`` when its shape fits)."""
    if isinstance(batch, np.ndarray):
        return backbone.preprocess(batch, out=out)
    if len({b.shape for b in batch}) == 1:
        return backbone.preprocess(np.stack(batch), out=out)
    return torch.cat([backbone.preprocess(b[None]) for b in batch])


# --------------------------------------------------------------------------------------------------
# Hooks
# --------------------------------------------------------------------------------------------------
class _Stop(Exception):
    """Raised by the last hook to end the forward pass early."""


def to_tokens(out: torch.Tensor, n_prefix: int = 0, layer: str = "?"):
    """One layer output -> (tokens (b, T, C), grid (h, w), cls (b, C) or None), as views of ``out``."""
    if isinstance(out, (tuple, list)):
        raise ValueError(f"layer {layer!r} returns a {type(out).__name__}, not a tensor; "
                         "read one of its submodules instead")
    if out.ndim == 4:
        b, c, h, w = out.shape
        return out.permute(0, 2, 3, 1).reshape(b, h * w, c), (h, w), None
    if out.ndim == 3:
        cls = out[:, 0] if n_prefix > 0 else None
        tok = out[:, n_prefix:]
        n = tok.shape[1]
        s = math.isqrt(n)
        return tok, ((s, s) if s * s == n else (1, n)), cls
    if out.ndim == 2:
        return out[:, None], (1, 1), None
    raise ValueError(f"layer {layer!r} output has shape {tuple(out.shape)}; expected (b, C, h, w), "
                     "(b, tokens, C) or (b, C)")


def check_layers(backbone: Backbone, layers) -> list[str]:
    """Resolve ``layers`` (None = the backbone's defaults); KeyError listing available ones."""
    layers = list(backbone.layers if layers is None else ([layers] if isinstance(layers, str) else layers))
    if not layers:
        raise ValueError("no layers asked for")
    for layer in layers:
        backbone.module(layer)
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers listed twice: {layers}")
    return layers


def _copy_into(src: torch.Tensor, dest: torch.Tensor | None) -> torch.Tensor:
    """Copy ``src`` into ``dest`` when shapes match (one pass, no new memory), else into a new
    float32 CPU tensor."""
    if dest is None or tuple(dest.shape) != tuple(src.shape):
        dest = torch.empty(src.shape, dtype=torch.float32)
    return dest.copy_(src)


@torch.inference_mode()
def forward_layers(backbone: Backbone, x: torch.Tensor, layers, out: dict | None = None,
                   out_cls: dict | None = None):
    """Run ``backbone`` on a preprocessed batch ``x``; return ({layer: tokens}, grids, {layer: cls}).

    Tokens and CLS tokens are float32 CPU tensors, copied out of the activations inside the hooks
    (so in-place operations later in the network cannot change them): into ``out[layer]`` /
    ``out_cls[layer]`` when given with the right shape, else into new tensors. The forward pass
    stops once every layer has been caught.
    """
    out, out_cls = out or {}, out_cls or {}
    caught: dict[str, tuple] = {}
    wanted = set(layers)

    def make_hook(name):
        def hook(_module, _inp, output):
            if name in caught:  # a module called twice (weight sharing): keep the first call
                return
            tok, grid, cls = to_tokens(output, backbone.n_prefix_tokens, name)
            caught[name] = (_copy_into(tok, out.get(name)), grid,
                            None if cls is None else _copy_into(cls, out_cls.get(name)))
            if wanted.issubset(caught):
                raise _Stop

        return hook

    handles = [backbone.module(layer).register_forward_hook(make_hook(layer)) for layer in layers]
    try:
        backbone.model(x)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    missing = wanted - set(caught)
    if missing:
        raise RuntimeError(f"layers {sorted(missing)} of {backbone.name!r} were not run by its forward pass")
    tokens = {k: caught[k][0] for k in layers}
    grids = {k: tuple(int(v) for v in caught[k][1]) for k in layers}
    cls = {k: caught[k][2] for k in layers if caught[k][2] is not None}
    return tokens, grids, cls


def iter_features(backbone: Backbone, images, layers=None, batch_size: int = 64, reuse: bool = False,
                  out=None):
    """Yield ``(start, tokens, grids, cls)`` per batch, with float32 NumPy arrays.

    ``tokens[layer]`` is (b, n_tokens, C) for images ``start:start + b``.

    Parameters
    ----------
    reuse : bool
        Write every batch into the same buffers (input and outputs): no new memory per batch,
        but the yielded arrays are overwritten by the next batch: consume them at once.
    out : callable(start, stop) -> (dict, dict), optional
        Destinations (torch tensors) of the tokens / CLS tokens of images ``start:stop``
        (e.g. views of preallocated result arrays); used when their shapes fit.
    """
    src = ImageSource(images)
    layers = check_layers(backbone, layers)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    was_training = backbone.model.training
    backbone.model.eval()
    x_buf, tok_buf, cls_buf = None, {}, {}
    try:
        for start in range(0, len(src), batch_size):
            batch = src[start:start + batch_size]
            b = len(batch)
            x = _to_input(backbone, batch, x_buf[:b] if x_buf is not None else None)
            if out is not None:
                dest, dest_cls = out(start, start + b)
            else:
                dest = {k: v[:b] for k, v in tok_buf.items()}
                dest_cls = {k: v[:b] for k, v in cls_buf.items()}
            tok, grids, cls = forward_layers(backbone, x, layers, dest, dest_cls)
            if reuse and start == 0:
                x_buf, tok_buf, cls_buf = x, tok, cls
            yield start, {k: v.numpy() for k, v in tok.items()}, grids, {k: v.numpy() for k, v in cls.items()}
    finally:
        backbone.model.train(was_training)


class Features(dict):
    """``{layer: (n_images, n_tokens, n_channels)}`` float32 arrays, with ``.grids`` and ``.cls``.

    Attributes
    ----------
    grids : dict of layer -> (h, w)
    cls : dict of layer -> (n_images, C), for transformer layers with a CLS token
    weights : str, the backbone's weights record
    """

    def __init__(self, data, grids, cls, weights="random"):
        super().__init__(data)
        self.grids = grids
        self.cls = cls
        self.weights = weights

    def pooled(self, layer) -> np.ndarray:
        """(n_images, C): the CLS token for ViT layers, else the mean over tokens."""
        return self.cls[layer] if layer in self.cls else self[layer].mean(axis=1)


def extract(backbone: Backbone, images, layers=None, batch_size: int = 64) -> Features:
    """Token-grid features of ``images`` at ``layers``, all in memory.

    Parameters
    ----------
    backbone : Backbone
        From :func:`neuroattn.features.load_backbone` (eval mode is used).
    images : uint8 array (n, H, W, 3) or list of paths
    layers : str or list of str, optional
        Module names; default the backbone's default layers.
    batch_size : int

    Returns
    -------
    Features
        A dict ``{layer: (n, n_tokens, C)}`` with ``.grids[layer] = (h, w)`` (h * w == n_tokens),
        ``.cls[layer]`` (ViT layers) and ``.pooled(layer)``.

    Raises
    ------
    KeyError
        Unknown layer (the available ones listed).
    ValueError
        Unreadable or non-RGB image (named).
    """
    src = ImageSource(images)
    layers = check_layers(backbone, layers)
    out, cls, grids = {}, {}, {}

    def dest(start, stop):  # after the first batch, hooks copy straight into the result arrays
        return ({k: torch.from_numpy(v[start:stop]) for k, v in out.items()},
                {k: torch.from_numpy(v[start:stop]) for k, v in cls.items()})

    for start, tok, g, c in iter_features(backbone, src, layers, batch_size, out=dest):
        for k, v in tok.items():
            if k not in out:
                out[k] = np.empty((len(src),) + v.shape[1:], dtype=np.float32)
                grids[k] = g[k]
            if not np.shares_memory(out[k], v):
                out[k][start:start + len(v)] = v
        for k, v in c.items():
            if k not in cls:
                cls[k] = np.empty((len(src), v.shape[-1]), dtype=np.float32)
            if not np.shares_memory(cls[k], v):
                cls[k][start:start + len(v)] = v
    return Features(out, grids, cls, backbone.weights)


# --------------------------------------------------------------------------------------------------
# Streaming to a cache, with optional PCA fitted on a subset (the training images)
# --------------------------------------------------------------------------------------------------
def __getattr__(name):  # the streaming half moved to cache.py; old imports keep working
    if name in {"fit_pca", "extract_to_writer", "cache_features"}:
        from . import cache

        return getattr(cache, name)
    raise AttributeError(name)


class _CallableModule(types.ModuleType):
    """Once this submodule is imported, ``neuroattn.features.extract`` names it rather than the
    function; making the module callable keeps ``neuroattn.features.extract(backbone, images)``
    working whatever the import order."""

    def __call__(self, *args, **kwargs):
        return extract(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
