"""Network features: backbones (registry, local weights), extraction with hooks, HDF5 caches.

Arrays in, arrays out: only ``store.py`` (the HDF5 cache) and ``cache.py`` (which writes one
through it) touch files, apart from reading image files and local weights by path; the
``train_backbone`` and ``extract_features`` stages (``neuroattn.stages.features``) read the stimuli.

``FeatureStore``/``FeatureWriter``/``StreamingPCA`` import without torch; the rest loads lazily.
"""
from .store import FeatureStore, FeatureWriter, StreamingPCA

__all__ = ["FeatureStore", "FeatureWriter", "StreamingPCA", "load_backbone", "list_backbones", "Backbone",
           "SmallCNN", "BACKBONES", "backbone_kind", "extract", "extract_to_writer", "cache_features", "fit_pca",
           "Features", "load_image", "ImageSource", "train_backbone", "save_weights", "read_state_dict",
           "check_state_dict"]

_LAZY = {
    "backbones": {"load_backbone", "list_backbones", "Backbone", "BACKBONES", "backbone_kind"},
    "extract": {"extract", "Features"},
    "cache": {"extract_to_writer", "cache_features", "fit_pca"},
    "images": {"load_image", "ImageSource"},
    "smallcnn": {"SmallCNN"},
    "weights": {"save_weights", "read_state_dict", "check_state_dict"},
    "training": {"train_backbone"},
}


def __getattr__(name):  # lazy: importing the cache reader must not import torch
    import importlib

    for mod, names in _LAZY.items():
        if name in names:
            return getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    raise AttributeError(name)
