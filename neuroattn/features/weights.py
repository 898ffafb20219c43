"""Backbone weights on disk: local state-dict files read safely and checked key by key, and
a trained backbone's state dict written atomically. Nothing is ever downloaded."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..utils import atomic_path

__all__ = ["read_state_dict", "check_state_dict", "save_weights"]

#: The classification head's weight key per architecture (to size ``num_classes`` from a state dict).
_HEAD_KEYS = ("fc.weight", "classifier.6.weight", "heads.head.weight", "head.weight",
              "classifier.weight", "classifier.1.weight", "classifier.3.weight", "head.small.weight")


def _unwrap_state_dict(obj, path):
    if isinstance(obj, dict) and len(obj) == 1 and next(iter(obj)) in {"state_dict", "model", "model_state"}:
        obj = next(iter(obj.values()))
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise ValueError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    if obj and all(k.startswith("module.") for k in obj):  # saved from DataParallel/DDP
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def read_state_dict(path) -> dict:
    """Read a local state-dict file safely (``weights_only=True``); clear errors for bad paths."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise ValueError(f"{path}: cannot be read as torch weights ({exc})") from exc
    return _unwrap_state_dict(obj, path)


def check_state_dict(model: nn.Module, state: dict, path="<state dict>") -> None:
    """Raise ValueError naming missing, unexpected and shape-mismatched keys of ``state``."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        def show(keys):
            return ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")

        parts = []
        if missing:
            parts.append(f"missing keys: {show(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {show(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches (file vs model): {show(shapes)}")
        raise ValueError(f"{path}: weights do not match the architecture of {type(model).__name__}; "
                         + "; ".join(parts))


def _num_classes_from(state):
    for k in _HEAD_KEYS:
        if k in state and state[k].ndim == 2:
            return int(state[k].shape[0])
    return None


def save_weights(backbone, path) -> None:
    """Write ``backbone.model``'s state dict (CPU tensors) to ``path`` atomically."""
    state = {k: v.detach().cpu() for k, v in backbone.model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
