"""Network features: backbones (registry, local weights), extraction with hooks, HDF5 caches."""
from .store import FeatureStore, FeatureWriter

__all__ = ["FeatureStore", "FeatureWriter"]


def __getattr__(name):  # lazy: importing the cache reader must not import torch
    if name in {"load_backbone", "list_backbones"}:
        from . import backbones

        return getattr(backbones, name)
    if name in {"extract"}:
        from . import extract as _extract

        return _extract.extract
    raise AttributeError(name)
