"""Models: scikit-learn style estimators wrapping torch modules.

``RoutingEncoder`` (attention routing over feature tokens), ``InContextEncoder`` /
``InContextDecoder`` (cross-subject, no fine-tuning) and ``BaseNet`` (EEG, channel attention).
Imported lazily so that ``import neuroattn.models`` stays cheap.
"""
_LAZY = {
    "RoutingEncoder": "routing",
    "SpatialFeatureEncoder": "spatial_feature",
    "RidgeEncoder": "baselines",
    "ENCODERS": "encoders",
    "InContextEncoder": "incontext",
    "InContextDecoder": "incontext",
    "BaseNet": "eeg_basenet",
    "ATTENTION": "eeg_attention",
    "ATTENTION_MODULES": "eeg_attention",
    "EEG_DECODERS": "eeg_estimators",
    "EEGNet": "eeg_nets",
    "ShallowConvNet": "eeg_nets",
    "TorchEEGClassifier": "eeg_estimators",
    "ClassicEEGClassifier": "eeg_estimators",
    "make_eeg_estimator": "eeg_estimators",
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'neuroattn.models' has no attribute {name!r}")
