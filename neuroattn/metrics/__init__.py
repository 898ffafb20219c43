"""Brain-Score-style metrics over numpy arrays (n_stimuli, n_units), each returning a :class:`Score`.

Predictivity (cross-validated PLS / ridge, Pearson r per unit), noise ceilings (split-half internal
consistency, NSD ncsnr), representational similarity (RSA, CKA, SSM), decoding (top-k retrieval,
accuracy, kappa), layer commitment and subsampling curves.  Definitions follow Brain-Score and
NSD/Algonauts (references.md sections 4-6).

The names below load their submodule on first use (PEP 562): scikit-learn, which predictivity and
PLS need, takes ~1.5 s to import, and workflow jobs that only score accuracy or read a truth table
should not pay it.
"""
from __future__ import annotations

import importlib

_SOURCES = {
    "ceiling": ["ceiled_explained_variance", "internal_consistency", "ncsnr", "noise_normalized_r2",
                "nsd_noise_ceiling", "spearman_brown", "images_noise_ceiling", "subject_noise_ceiling"],
    "commitment": ["Commitment", "commit_layers", "heldout_scores", "layer_table", "pool_tokens", "reduce_features"],
    "decoding": ["accuracy", "cohen_kappa", "topk_retrieval"],
    "pls": ["ExactPLSRegression"],
    "predictivity": ["fit_predict", "linear_predictivity", "make_regression"],
    "score": ["Score", "pearson_r"],
    "similarity": ["cka", "rdm", "rsa", "rsm", "ssm"],
    "subsampling": ["SubsamplingCurve", "subsample", "summarize_curves"],
}
_WHERE = {name: mod for mod, names in _SOURCES.items() for name in names}

__all__ = [
    "Score", "pearson_r", "ncsnr", "nsd_noise_ceiling", "images_noise_ceiling", "subject_noise_ceiling", "noise_normalized_r2", "ceiled_explained_variance",
    "internal_consistency", "spearman_brown", "topk_retrieval", "accuracy", "cohen_kappa",
    "linear_predictivity", "fit_predict", "make_regression", "ExactPLSRegression",
    "rsa", "rdm", "rsm", "cka", "ssm",
    "Commitment", "commit_layers", "heldout_scores", "layer_table", "pool_tokens", "reduce_features",
    "SubsamplingCurve", "subsample", "summarize_curves",
]


def __getattr__(name: str):
    if name not in _WHERE:
        try:  # a submodule (``metrics.similarity``) not imported yet
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
