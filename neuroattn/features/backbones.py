"""Vision backbones by name: the project's small CNN, torchvision models and (optionally) timm models.

:func:`load_backbone` returns a :class:`Backbone`, a thin wrapper holding the ``torch.nn.Module``
(``.model``), its preprocessing (resize + normalise, :meth:`Backbone.preprocess`), the names of the
layers features can be read from (``.layers``) and where its weights came from (``.weights``:
``"random"``, ``"trained:<path>"`` or ``"pretrained:<path>"``, recorded in every feature cache).

Nothing is ever downloaded: torchvision and timm models are built with random weights, and trained
or pretrained weights come from a local state-dict file, read with ``torch.load(weights_only=True)``
and checked key by key against the architecture.

Names
-----
- ``crossvit_tiny`` / ``crossvit_18``: the native dual-branch CrossViT
  (:mod:`neuroattn.features.crossvit`; 96 px CPU-sized, and the paper's 240 px CrossViT-18);
  layers ``blocks.<i>.small`` / ``blocks.<i>.large`` (each branch's token grid), ``blocks.<i>.fused``
  (the two CLS tokens after the cross-attention fusion) and ``pooled``.
- ``smallcnn``: the project's own ResNet-like CNN (:class:`SmallCNN`) sized for 64-128 px stimuli;
  stages ``layer1``..``layer4`` have strides 4, 8, 16, 32 (token grids 24x24, 12x12, 6x6, 3x3 at
  96 px).
- any torchvision classification model (``resnet18``, ``resnet50``, ``alexnet``, ``vit_b_16``, ...);
  ViTs are built for the backbone's ``image_size`` (a multiple of the patch size).
- ``timm:<name>`` for any timm model when timm is installed (``pip install neuroattn[timm]``),
  e.g. ``timm:crossvit_9_240`` or ``timm:vit_small_patch14_dinov2``, always built with
  ``pretrained=False``; extra keywords go to ``timm.create_model`` (give a ViT ``img_size=`` to
  match ``image_size``). Preprocessing uses the model's ``pretrained_cfg`` mean/std and
  ``num_prefix_tokens`` (CLS, registers). Layers returning several streams (timm's CrossViT
  blocks) are refused: read one of their submodules, or use the native ``crossvit_*``.

Layers are module names as ``model.named_modules()`` spells them (``layer3``, ``features.8``,
``encoder.layers.encoder_layer_11``); :meth:`Backbone.available_layers` lists them.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..registry import Registry
from .crossvit import PRESETS as CROSSVIT_PRESETS
from .crossvit import build_crossvit
from .planning import _CROSSVIT_LAYERS, DEFAULT_LAYERS  # noqa: F401  (torch-free: the Snakefile's config checks read them)
from .smallcnn import SmallCNN
from .weights import _num_classes_from, check_state_dict, read_state_dict  # noqa: F401  (public)

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone:
    """A vision network with its preprocessing and readable layers.

    Parameters
    ----------
    model : torch.nn.Module
        The network (put in eval mode).
    name : str
        Name it was loaded by (``smallcnn``, ``resnet50``, ``timm:...``).
    image_size : int
        Side (px) images are resized to before the forward pass.
    mean, std : sequence of 3 float
        Per-channel normalisation applied to images scaled to [0, 1].
    weights : str
        ``"random"``, ``"trained:<path>"`` or ``"pretrained:<path>"``.
    n_prefix_tokens : int
        Leading non-spatial tokens of 3-D (transformer) layer outputs (1 for a CLS token; 0 for
        CNNs). The first one is returned apart as the CLS token; the others are dropped.
    default_layers : list of str, optional
        Layers read when none are asked for.
    """

    def __init__(self, model, name, image_size, mean=IMAGENET_MEAN, std=IMAGENET_STD, weights="random",
                 n_prefix_tokens=0, default_layers=None):
        self.model = model.eval()
        self.name = str(name)
        self.image_size = int(image_size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.weights = weights
        self.n_prefix_tokens = int(n_prefix_tokens)
        self.default_layers = list(default_layers or [])
        self._modules = dict(model.named_modules())

    def __repr__(self):
        return (f"Backbone({self.name!r}, image_size={self.image_size}, weights={self.weights!r}, "
                f"device={self.device})")

    # --- layers ------------------------------------------------------------------------------------
    @property
    def layers(self) -> list[str]:
        """Default layers to read (``default_layers``, else the top-level children)."""
        return self.default_layers or [n for n, _ in self.model.named_children()]

    def available_layers(self) -> list[str]:
        """Every module name a feature can be read from."""
        return [n for n in self._modules if n]

    def module(self, layer: str) -> nn.Module:
        """The submodule named ``layer``; KeyError listing the available ones otherwise."""
        if not layer or layer not in self._modules:
            avail = self.available_layers()
            shown = ", ".join(avail[:60]) + (f", ... ({len(avail)} in all)" if len(avail) > 60 else "")
            raise KeyError(f"backbone {self.name!r} has no layer {layer!r}; available: {shown}")
        return self._modules[layer]

    # --- device ------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def to(self, device):
        """Move the model to ``device`` (``"auto"`` resolves to cuda when present); returns self."""
        from ..utils import resolve_device

        if isinstance(device, str) and device in {"auto", "cpu", "cuda"}:
            device = resolve_device(device)
        self.model.to(device)
        return self

    # --- preprocessing -----------------------------------------------------------------------------
    def to_unit(self, images) -> torch.Tensor:
        """uint8 images (b, H, W, 3) -> float (b, 3, S, S) in [0, 1] on the model's device.

        Images are resized (bilinear, antialiased) to ``image_size`` x ``image_size`` when their size
        differs; the aspect ratio is not kept.
        """
        x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"images must be (n, H, W, 3) RGB, got shape {tuple(x.shape)}")
        if x.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 (0-255), got {x.dtype}")
        x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                              align_corners=False, antialias=True).clamp_(0.0, 1.0)
        return x.contiguous()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise [0, 1] images (b, 3, S, S) with the backbone's mean and std."""
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x - mean) / std

    def preprocess(self, images, out: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 images (b, H, W, 3) -> the model's normalised input (b, 3, S, S).

        Equals ``normalize(to_unit(images))``. At the model's size, conversion and normalisation
        are fused into one copy plus an in-place pass, written into ``out`` (float32 on the model's
        device) when its shape fits.
        """
        x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
        if x.ndim != 4 or x.shape[1:] != (self.image_size, self.image_size, 3) or x.dtype != torch.uint8:
            return self.normalize(self.to_unit(images))
        x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        if out is None or tuple(out.shape) != tuple(x.shape) or out.device != x.device:
            out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
        out.copy_(x)
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1) * 255.0
        scale = 1.0 / (torch.tensor(self.std, device=x.device).view(1, 3, 1, 1) * 255.0)
        return out.sub_(mean).mul_(scale)


# --------------------------------------------------------------------------------------------------
# Registry: one entry per kind of backbone; a name resolves to its kind (backbone_kind)
# --------------------------------------------------------------------------------------------------
def _torchvision_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def list_backbones() -> list[str]:
    """Names :func:`load_backbone` accepts (``timm:<name>`` also works when timm is installed)."""
    return ["smallcnn", *CROSSVIT_PRESETS] + _torchvision_names()


def _smallcnn(arch, num_classes, image_size, widths=(32, 64, 128, 256), blocks: int = 1):
    return SmallCNN(num_classes=num_classes or 10, widths=widths, blocks=blocks), IMAGENET_MEAN, IMAGENET_STD, 0


def _crossvit(arch, num_classes, image_size, **kw):
    """The native CrossViT preset ``arch`` built for ``image_size`` (extra keywords: fields of
    :class:`neuroattn.features.crossvit.CrossViTConfig`); no prefix tokens: its taps strip the CLS."""
    args = dict(kw)
    if num_classes:
        args["num_classes"] = num_classes
    args.setdefault("image_size", image_size)
    return build_crossvit(arch, **args), IMAGENET_MEAN, IMAGENET_STD, 0


def _timm(arch, num_classes, image_size, **kw):
    try:
        import timm
    except ImportError as exc:
        raise ImportError(f"backbone {arch!r} needs timm: pip install 'neuroattn[timm]'") from exc
    args = dict(kw)
    if num_classes:
        args["num_classes"] = num_classes
    model = timm.create_model(arch[5:], pretrained=False, **args)  # never downloads
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return (model, cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD),
            int(getattr(model, "num_prefix_tokens", 0)))


def _torchvision(arch, num_classes, image_size, **kw):
    import torchvision

    if arch not in _torchvision_names():
        raise ValueError(f"unknown backbone {arch!r}; known: {', '.join(list_backbones())} "
                         "(or 'timm:<name>' with timm installed)")
    args = dict(kw)
    if num_classes:
        args["num_classes"] = num_classes
    is_vit = arch.startswith("vit_")
    if is_vit:
        args.setdefault("image_size", image_size)
    # weights=None: random init; torchvision never downloads then.
    model = torchvision.models.get_model(arch, weights=None, **args)
    return model, IMAGENET_MEAN, IMAGENET_STD, 1 if is_vit else 0


#: Backbone kinds: factory(arch, num_classes, image_size, **kw) -> (module, mean, std, n_prefix_tokens).
#: Extra keywords go to the architecture's constructor (torchvision and timm take their own).
BACKBONES = Registry("backbone")
BACKBONES.register("smallcnn", _smallcnn, config_section="features.backbones", produces=("features",))
BACKBONES.register("crossvit", _crossvit, config_section="features.backbones", produces=("features",))
BACKBONES.register("torchvision", _torchvision, config_section="features.backbones", produces=("features",))
BACKBONES.register("timm", _timm, config_section="features.backbones", produces=("features",))


def backbone_kind(name: str) -> str:
    """The :data:`BACKBONES` kind of backbone ``name``: ``smallcnn``, ``crossvit`` (a preset of
    :data:`neuroattn.features.crossvit.PRESETS`), ``timm`` (``timm:<name>``) or ``torchvision``
    (any other name, checked against torchvision's list when built)."""
    if name == "smallcnn":
        return "smallcnn"
    if name in CROSSVIT_PRESETS:
        return "crossvit"
    return "timm" if name.startswith("timm:") else "torchvision"


def _build(name, num_classes, image_size, kw):
    """Build the bare module for ``name``; returns (module, mean, std, n_prefix_tokens)."""
    return BACKBONES.build(backbone_kind(name), arch=name, num_classes=num_classes, image_size=image_size, **kw)


def _default_layers(name, model):
    # a CrossViT's taps follow its depth (a one-block variant has no blocks.2)
    return list(model.layers) if backbone_kind(name) == "crossvit" else DEFAULT_LAYERS.get(name)


def load_backbone(name: str, weights=None, *, image_size: int = 96, num_classes: int | None = None,
                  origin: str = "pretrained", layers=None, device="cpu", **kw) -> Backbone:
    """Build a backbone by name, with random or local weights.

    Parameters
    ----------
    name : str
        ``smallcnn``, ``crossvit_tiny`` / ``crossvit_18``, a torchvision model name (``resnet18``, ``resnet50``, ``alexnet``,
        ``vit_b_16``, ...) or ``timm:<name>``; :func:`list_backbones` lists them.
    weights : str or Path, optional
        Local state-dict file (``torch.load(weights_only=True)``; a ``{"state_dict": ...}`` wrapper
        and a DataParallel ``module.`` prefix are accepted). Keys and shapes must match the
        architecture exactly. None builds the network with random weights.
    image_size : int
        Side (px) images are resized to (ViTs are built for it).
    num_classes : int, optional
        Classifier outputs; by default read from the weights' head (``fc.weight``, ...) or the
        architecture's default.
    origin : {"pretrained", "trained"}
        How the weights are recorded: ``"<origin>:<path>"``; ``"random"`` without weights.
    layers : list of str, optional
        Default layers of the returned backbone (else :data:`DEFAULT_LAYERS` of the architecture).
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    **kw
        Passed to the architecture's constructor.

    Returns
    -------
    Backbone

    Raises
    ------
    ValueError
        Unknown name (the known ones listed), or weights that do not fit the architecture (the
        mismatching keys named).
    FileNotFoundError
        ``weights`` does not exist.
    """
    if origin not in {"pretrained", "trained"}:
        raise ValueError(f"origin must be 'pretrained' or 'trained', got {origin!r}")
    state = None
    if weights is not None:
        state = read_state_dict(weights)
        if num_classes is None:
            num_classes = _num_classes_from(state)
    model, mean, std, n_prefix = _build(name, num_classes, image_size, kw)
    tag = "random"
    if state is not None:
        check_state_dict(model, state, weights)
        model.load_state_dict(state, strict=True)
        tag = f"{origin}:{weights}"
    bb = Backbone(model, name, image_size, mean, std, weights=tag, n_prefix_tokens=n_prefix,
                  default_layers=layers or _default_layers(name, model))
    for layer in bb.layers:
        bb.module(layer)  # unknown default layers fail here, listing the available ones
    log.info("backbone %s (%s weights), %d parameters", name, tag,
             sum(p.numel() for p in model.parameters()))
    return bb.to(device)
