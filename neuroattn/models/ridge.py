"""The one ridge module: cross-validated ridge fits used by every ridge model of the package.

- :func:`ridge_cv` (himalaya): one alpha per target by K-fold search; with more features than
  samples the equivalent linear-kernel (dual) ridge is solved instead (same predictions, n x n
  instead of p x p). Used by :class:`~neuroattn.models.baselines.RidgeEncoder` and the
  ``ridge_context`` baseline (:func:`~neuroattn.models.metatrain.ridge_context`).
- :func:`ridge_loo` (scikit-learn ``RidgeCV``, efficient leave-one-out, one alpha per target):
  the anatomical-alignment baseline (:mod:`~neuroattn.models.alignment`).

Alpha grids are explicit arguments, read by each caller from its config section
(``encode.ridge.alphas``, ``incontext.ridge_alphas``, ``incontext.aligned_ridge_alphas``);
:data:`DEFAULT_ALPHAS` is the estimators' default (equal to ``encode.ridge.alphas``).
"""
from __future__ import annotations

import numpy as np

__all__ = ["DEFAULT_ALPHAS", "ridge_cv", "ridge_loo"]

DEFAULT_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)


def ridge_cv(X, Y, alphas=DEFAULT_ALPHAS, cv=5, dual: bool | None = None, precomputed: bool = False):
    """Fit himalaya's cross-validated ridge of ``Y`` on ``X`` (intercept fitted).

    Parameters
    ----------
    X : ndarray, (n, p)
    Y : ndarray, (n, V)
    alphas : sequence of float
        Grid searched per target.
    cv : int or splitter
        K-fold splits (or a scikit-learn splitter) for the alpha search.
    dual : bool, optional
        Solve the linear-kernel form; default: when ``p > n``.
    precomputed : bool
        ``X`` is the (n, n) linear kernel ``D D^T`` of the design (accumulated in blocks by a
        caller that never holds ``D``); implies ``dual``. The model then predicts from the
        (n_test, n) kernel of the test rows against the training rows.

    Returns
    -------
    himalaya ``RidgeCV`` or ``KernelRidgeCV``, fitted.
    """
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV

    alphas = np.asarray(alphas, dtype=np.float64)
    if precomputed:
        return KernelRidgeCV(alphas=alphas, kernel="precomputed", cv=cv, fit_intercept=True).fit(X, Y)
    if dual is None:
        dual = X.shape[1] > X.shape[0]
    if dual:
        model = KernelRidgeCV(alphas=alphas, kernel="linear", cv=cv, fit_intercept=True)
    else:
        model = RidgeCV(alphas=alphas, cv=cv, fit_intercept=True)
    return model.fit(X, Y)


def ridge_loo(X, Y, alphas):
    """scikit-learn ``RidgeCV`` (efficient leave-one-out, one alpha per target), fitted."""
    from sklearn.linear_model import RidgeCV

    return RidgeCV(alphas=alphas, alpha_per_target=True).fit(X, Y)
