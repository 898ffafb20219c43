"""Exact partial least squares regression (PLS2, NIPALS weights without the inner iteration).

scikit-learn's :class:`~sklearn.cross_decomposition.PLSRegression` finds each weight vector by an
inner power iteration (500 steps at most, which often stops before converging on many targets).
The weight vector it iterates towards is the dominant left singular vector of the deflated
cross-covariance ``X_k^T Y``; :class:`ExactPLSRegression` computes that vector directly (Lanczos on
the small Gram matrix, updated by rank-2 steps between components), so every target is handled by
one set of matrix products per fit.  With ``scale=False`` it is the same model as
``PLSRegression(n_components, scale=False)`` run to convergence (same deflation, loadings and
coefficients ``W (P^T W)^-1 Q^T``).
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.linalg import eigh
from scipy.sparse.linalg import eigsh
from sklearn.base import BaseEstimator, MultiOutputMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data


def _top_eigvec(G: np.ndarray, v0: np.ndarray) -> np.ndarray:
    d = G.shape[0]
    if d <= 64:
        return eigh(G, subset_by_index=[d - 1, d - 1])[1][:, 0]
    return eigsh(G, k=1, which="LA", v0=v0, tol=0)[1][:, 0]


class ExactPLSRegression(MultiOutputMixin, RegressorMixin, BaseEstimator):
    """PLS regression with weights from exact dominant singular vectors.

    Parameters
    ----------
    n_components : int
        Number of latent components; capped (with a warning) at the number of features and at
        ``n_samples - 1``.
    scale : bool
        Standardise X and Y columns before fitting (scikit-learn's default is True; Brain-Score
        uses False, our default).

    Attributes
    ----------
    n_components_ : int
        Components actually fitted (fewer when the cross-covariance is exhausted early).
    x_weights_, x_loadings_ : ndarray, (n_features, n_components_)
    y_loadings_ : ndarray, (n_targets, n_components_)
    coef_ : ndarray, (n_targets, n_features)
        As scikit-learn's ``PLSRegression.coef_`` (predictions ``(X - mean) / std @ coef_.T``
        rescaled), stored for the centred/scaled inputs.
    intercept_ : ndarray, (n_targets,)
    """

    def __init__(self, n_components: int = 25, scale: bool = False):
        self.n_components = n_components
        self.scale = scale

    def fit(self, X, Y):
        X, Y = validate_data(self, X, Y, multi_output=True, y_numeric=True, dtype=np.float64)
        Y = Y.reshape(len(Y), -1)
        n, p = X.shape
        m = Y.shape[1]
        k_max = min(p, n - 1)
        k = int(self.n_components)
        if k < 1:
            raise ValueError(f"n_components must be >= 1, got {k}")
        if k > k_max:
            warnings.warn(f"PLS: n_components={k} capped at {k_max} (min of {p} features and "
                          f"{n} samples - 1)", UserWarning, stacklevel=2)
            k = k_max
        self._x_mean = X.mean(axis=0)
        self._y_mean = Y.mean(axis=0)
        Xk = X - self._x_mean
        Yc = Y - self._y_mean
        if self.scale:
            self._x_std = Xk.std(axis=0, ddof=1)
            self._x_std[self._x_std == 0] = 1.0
            self._y_std = Yc.std(axis=0, ddof=1)
            self._y_std[self._y_std == 0] = 1.0
            Xk /= self._x_std
            Yc /= self._y_std
        else:
            self._x_std = np.ones(p)
            self._y_std = np.ones(m)
        S = Xk.T @ Yc                      # (p, m) deflated cross-covariance X_k^T Y
        left = p <= m                      # Gram in the smaller of the two spaces
        G = S @ S.T if left else S.T @ S
        v0 = np.random.default_rng(0).standard_normal(G.shape[0])
        tol = 1e-12 * max(float(np.trace(G)), np.finfo(float).tiny)
        W, P, Q = [], [], []
        for _ in range(k):
            if np.trace(G) <= tol:
                break
            v = _top_eigvec(G, v0)
            if left:
                w = v
            else:
                w = S @ v
                w /= np.linalg.norm(w)
            t = Xk @ w
            tt = float(t @ t)
            if tt <= np.finfo(float).eps * n:
                break
            ploading = Xk.T @ t / tt
            c = Yc.T @ t                    # = t^T Y_k since t is orthogonal to earlier scores
            Xk -= np.outer(t, ploading)
            # rank-2 update of the Gram matrix for S <- S - p c^T
            if left:
                Sc = S @ c
                G += -np.outer(ploading, Sc) - np.outer(Sc, ploading) + (c @ c) * np.outer(ploading, ploading)
            else:
                Sp = S.T @ ploading
                G += -np.outer(c, Sp) - np.outer(Sp, c) + (ploading @ ploading) * np.outer(c, c)
            S -= np.outer(ploading, c)
            W.append(w)
            P.append(ploading)
            Q.append(c / tt)
            v0 = v
        if not W:
            raise ValueError("PLS: X and Y have no covariance to fit (constant inputs?)")
        self.x_weights_ = np.stack(W, axis=1)
        self.x_loadings_ = np.stack(P, axis=1)
        self.y_loadings_ = np.stack(Q, axis=1)
        self.n_components_ = self.x_weights_.shape[1]
        rot = self.x_weights_ @ np.linalg.pinv(self.x_loadings_.T @ self.x_weights_)
        self.coef_ = (rot @ self.y_loadings_.T).T   # (m, p) on the centred/scaled inputs
        self.intercept_ = self._y_mean
        return self

    def predict(self, X):
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        Xs = (X - self._x_mean) / self._x_std
        return Xs @ self.coef_.T * self._y_std + self._y_mean
