"""Brain-Score-style metrics over numpy arrays (n_stimuli, n_units), each returning a :class:`Score`.

Predictivity (cross-validated PLS / ridge, Pearson r per unit), noise ceilings (split-half internal
consistency, NSD ncsnr), representational similarity (RSA, CKA, SSM), decoding (top-k retrieval,
accuracy, kappa), layer commitment and subsampling curves.  Definitions follow Brain-Score and
NSD/Algonauts (references.md sections 4-6).
"""
from .ceiling import (ceiled_explained_variance, internal_consistency, ncsnr, noise_normalized_r2,
                      nsd_noise_ceiling, spearman_brown, images_noise_ceiling, subject_noise_ceiling)
from .commitment import Commitment, commit_layers, heldout_scores, layer_table, pool_tokens, reduce_features
from .decoding import accuracy, cohen_kappa, topk_retrieval
from .pls import ExactPLSRegression
from .predictivity import fit_predict, linear_predictivity, make_regression
from .score import Score, pearson_r
from .similarity import cka, rdm, rsa, rsm, ssm
from .subsampling import SubsamplingCurve, subsample, summarize_curves

__all__ = [
    "Score", "pearson_r", "ncsnr", "nsd_noise_ceiling", "images_noise_ceiling", "subject_noise_ceiling", "noise_normalized_r2", "ceiled_explained_variance",
    "internal_consistency", "spearman_brown", "topk_retrieval", "accuracy", "cohen_kappa",
    "linear_predictivity", "fit_predict", "make_regression", "ExactPLSRegression",
    "rsa", "rdm", "rsm", "cka", "ssm",
    "Commitment", "commit_layers", "heldout_scores", "layer_table", "pool_tokens", "reduce_features",
    "SubsamplingCurve", "subsample", "summarize_curves",
]
