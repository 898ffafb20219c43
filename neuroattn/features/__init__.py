"""Network features: backbones (registry, local weights), extraction with hooks, HDF5 caches.

``FeatureStore``/``FeatureWriter``/``StreamingPCA`` import without torch; the rest loads lazily.
"""
from .store import FeatureStore, FeatureWriter, StreamingPCA

__all__ = ["FeatureStore", "FeatureWriter", "StreamingPCA", "load_backbone", "list_backbones", "Backbone",
           "SmallCNN", "extract", "extract_to_writer", "cache_features", "fit_pca", "Features",
           "load_image", "stimulus_table", "train_backbone", "save_weights"]

_LAZY = {
    "backbones": {"load_backbone", "list_backbones", "Backbone", "SmallCNN"},
    "extract": {"extract", "extract_to_writer", "cache_features", "fit_pca", "Features", "load_image",
                "stimulus_table"},
    "training": {"train_backbone", "save_weights"},
}


def __getattr__(name):  # lazy: importing the cache reader must not import torch
    import importlib

    for mod, names in _LAZY.items():
        if name in names:
            return getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    raise AttributeError(name)
