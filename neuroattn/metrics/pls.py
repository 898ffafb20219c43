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
from scipy.linalg import eigh, eigh_tridiagonal, solve_triangular
from scipy.linalg.blas import dger, dsyr2k
from sklearn.base import BaseEstimator, MultiOutputMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data


#: relative residual ``||G x - theta x|| <= EIG_TOL * theta`` at which the Lanczos solver stops
EIG_TOL = 1e-12


def _top_eigvec(G: np.ndarray, v0: np.ndarray, tol: float = EIG_TOL) -> np.ndarray:
    """Unit eigenvector of the largest eigenvalue of the symmetric PSD matrix ``G``.

    Dense ``eigh`` up to 64 rows, else :func:`_lanczos_top` started from ``v0``.
    """
    d = G.shape[0]
    if d <= 64:
        return eigh(G, subset_by_index=[d - 1, d - 1])[1][:, 0]
    return _lanczos_top(G, v0, tol)


def _lanczos_top(G, v0, tol=EIG_TOL, K=40, check=4):
    """Lanczos with full reorthogonalisation, restarted from the Ritz vector every ``K`` steps.

    One matrix-vector product per step and no Python callback per product (about 2x fewer
    seconds than ARPACK's ``eigsh`` here); stops when the Ritz residual
    ``beta_i |s_i|`` is below ``tol`` times the Ritz value, or the Krylov space is exhausted.
    """
    d = G.shape[0]
    K = min(K, d)
    Q = np.empty((K + 1, d))
    al, be = np.empty(K), np.empty(K)
    q = v0 / np.linalg.norm(v0)
    for _ in range(100):
        Q[0] = q
        for i in range(K):
            w = G @ Q[i]
            al[i] = Q[i] @ w
            Qi = Q[: i + 1]
            w -= (Qi @ w) @ Qi              # classical Gram-Schmidt, twice
            w -= (Qi @ w) @ Qi
            be[i] = np.linalg.norm(w)
            exhausted = be[i] <= 1e-13 * np.abs(al[: i + 1]).max()
            if exhausted or i % check == check - 1 or i == K - 1:
                th, s = eigh_tridiagonal(al[: i + 1], be[:i], select="i", select_range=(i, i), check_finite=False)
                s = s[:, 0]
                if exhausted or be[i] * abs(s[-1]) <= tol * abs(th[0]):
                    x = s @ Qi
                    return x / np.linalg.norm(x)
            Q[i + 1] = w / be[i]
        q = s @ Q[:K]
        q /= np.linalg.norm(q)
    return q


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
        W, P, Q = pls_components(Xk, Yc, k)
        self.x_weights_, self.x_loadings_, self.y_loadings_ = W, P, Q
        self.n_components_ = W.shape[1]
        self.coef_ = pls_coef(W, P, Q).T   # (m, p) on the centred/scaled inputs
        self.intercept_ = self._y_mean
        return self

    def predict(self, X):
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        Xs = (X - self._x_mean) / self._x_std
        return Xs @ self.coef_.T * self._y_std + self._y_mean


def pls_components(Xc, Yc, k, S=None, G=None, starts=None):
    """Weights, X loadings and Y loadings (each with ``k`` columns at most) of PLS2 on centred data.

    ``S = Xc^T Yc`` and its Gram ``G`` (``S S^T`` when p <= m, else ``S^T S``) may be passed when
    already known (cross-validation shares them); ``G`` is updated in place.  ``starts`` (list,
    optional) holds Lanczos start vectors per component (e.g. the previous split's, which are
    close); it is filled with this fit's eigenvectors.  Deflation is
    implicit: ``X_k = X - T P^T`` and ``S_k = S - P C^T`` are never formed, only their products.
    """
    n = Xc.shape[0]
    if S is None:
        S = Xc.T @ Yc                      # (p, m) cross-covariance; S_k = S - P_<k C_<k^T
    p, m = S.shape
    left = p <= m                          # Gram in the smaller of the two spaces
    if G is None:
        G = S @ S.T if left else S.T @ S
    v0 = np.random.default_rng(0).standard_normal(G.shape[0])
    tol = 1e-12 * max(float(np.trace(G)), np.finfo(float).tiny)
    W, P, Q, C, T = (np.zeros((p, k)), np.zeros((p, k)), np.zeros((m, k)), np.zeros((m, k)), np.zeros((n, k)))
    j = 0
    for j in range(k + 1):
        if j == k or np.trace(G) <= tol:
            break
        if starts is not None and j < len(starts) and starts[j] is not None:
            v0 = starts[j]
        v = _top_eigvec(G, v0)
        if starts is not None:
            if j < len(starts):
                starts[j] = v
            else:
                starts.append(v)
        if left:
            w = v
        else:                               # w = S_k v, normalised
            w = S @ v - P[:, :j] @ (C[:, :j].T @ v)
            w /= np.linalg.norm(w)
        t = Xc @ w - T[:, :j] @ (P[:, :j].T @ w)
        tt = float(t @ t)
        if tt <= np.finfo(float).eps * n:
            break
        ploading = (Xc.T @ t - P[:, :j] @ (T[:, :j].T @ t)) / tt
        c = Yc.T @ t                        # = t^T Y_k since t is orthogonal to earlier scores
        # rank-2 update of the Gram matrix for S_k+1 = S_k - p c^T
        if left:
            a = S @ c - P[:, :j] @ (C[:, :j].T @ c)
            a -= 0.5 * (c @ c) * ploading
            _ger2(G, ploading, a)
        else:
            a = S.T @ ploading - C[:, :j] @ (P[:, :j].T @ ploading)
            a -= 0.5 * (ploading @ ploading) * c
            _ger2(G, c, a)
        W[:, j], P[:, j], Q[:, j], C[:, j], T[:, j] = w, ploading, c / tt, c, t
        v0 = v
    if j == 0:
        raise ValueError("PLS: X and Y have no covariance to fit (constant inputs?)")
    return W[:, :j], P[:, :j], Q[:, :j]


def _ger2(G, x, y):
    """In place ``G -= x y^T + y x^T`` (BLAS rank-1 updates when G is contiguous)."""
    if G.flags.f_contiguous or G.flags.c_contiguous:
        A = G if G.flags.f_contiguous else G.T        # the transpose of a symmetric update is the same
        A = dger(-1.0, x, y, a=A, overwrite_a=True)
        A = dger(-1.0, y, x, a=A, overwrite_a=True)
        if not np.shares_memory(A, G):                # BLAS copied: write back
            G[...] = A if G.flags.f_contiguous else A.T
    else:
        G -= np.outer(x, y) + np.outer(y, x)


def pls_coef(W, P, Q):
    """Regression coefficients (p, m) ``W (P^T W)^-1 Q^T`` of centred inputs."""
    return W @ np.linalg.pinv(P.T @ W) @ Q.T


def cv_pls_predictions(X, Y, splits, k):
    """Held-out predictions of PLS2 (scale=False) for every split, sharing the cross-products.

    The train cross-covariance of a split is the full one minus a low-rank correction (the test
    rows and the change of mean), so ``X^T Y`` and its Gram are computed once for all splits.
    With no more features than targets (p <= m) each split then works in feature space only
    (:func:`_split_left`): no (n_train, m) or (p, m) array is formed per split.
    Yields ``(test_idx, predictions)``.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    y_offset = Y.mean(axis=0)
    X = X - X.mean(axis=0)                 # global centring keeps the low-rank updates well conditioned
    Y = Y - y_offset
    p, m = X.shape[1], Y.shape[1]
    left = p <= m
    M = X.T @ Y
    MM = np.asfortranarray(M @ M.T if left else M.T @ M)
    starts = []
    for tr, te in splits:
        n_tr = len(tr)
        # the globally centred columns sum to 0, so the train means follow from the test rows
        xm, ym = -X[te].sum(axis=0) / n_tr, -Y[te].sum(axis=0) / n_tr
        # S_tr = sum_tr (x - xm)(y - ym)^T = M - X_te^T Y_te - n_tr xm ym^T = M - Z V^T
        Z = np.c_[X[te].T, np.sqrt(n_tr) * xm]
        V = np.c_[Y[te].T, np.sqrt(n_tr) * ym]
        if left:
            # G = S S^T = MM - Z H^T - H Z^T with H = M V - Z (V^T V) / 2 (one symmetric rank-2r update)
            H = M @ V - 0.5 * (Z @ (V.T @ V))
            G = _sym(dsyr2k(-1.0, Z, H, beta=1.0, c=MM, lower=0))
            Xc = X[tr] - xm
            W, P, tts = _split_left(Xc, G, k, starts)
            # C = S^T W (I + N)^-1 (N: strict upper triangle of P^T W), so Q^T = diag(1/tt) C^T
            WS = W.T @ M - (W.T @ Z) @ V.T
            PW = P.T @ W
            Ct = solve_triangular(np.triu(PW, 1) + np.eye(len(tts)), WS, trans="T", lower=False)
            yield te, (((X[te] - xm) @ W) @ np.linalg.pinv(PW) / tts) @ Ct + ym + y_offset
            continue
        S = M - Z @ V.T
        MZ = M.T @ Z
        VMZ = V @ MZ.T
        G = MM - VMZ - VMZ.T + V @ (Z.T @ Z) @ V.T
        G = (G + G.T) / 2
        W, P, Q = pls_components(X[tr] - xm, Y[tr] - ym, k, S=S, G=np.asfortranarray(G), starts=starts)
        yield te, (X[te] - xm) @ pls_coef(W, P, Q) + ym + y_offset


def _sym(U):
    """Full symmetric Fortran-ordered matrix from the upper triangle ``U`` (BLAS syr2k output)."""
    return np.asfortranarray(np.triu(U) + np.triu(U, 1).T)


def _split_left(Xc, G, k, starts):
    """PLS2 weights, X loadings and score norms from the feature-space Gram ``G = S S^T`` (p <= m).

    Same components as :func:`pls_components` (left case), but the target-side vectors are never
    formed: with ``c_j = S_j^T w_j`` (``S_j`` the deflated cross-covariance), the products the
    rank-2 Gram update needs follow from the undeflated Gram ``G0``, ``S C`` and ``C^T C``:
    ``S c_j = G0 w_j - (S C) P^T w_j``, ``C^T c_j = (S C)^T w_j - (C^T C) P^T w_j``.
    ``G`` is updated in place; ``starts`` as in :func:`pls_components`.
    """
    n, p = Xc.shape
    G0 = G.copy()
    W, P, T, SC = np.zeros((p, k)), np.zeros((p, k)), np.zeros((n, k)), np.zeros((p, k))
    CC, tts = np.zeros((k, k)), np.zeros(k)
    tol = 1e-12 * max(float(np.trace(G)), np.finfo(float).tiny)
    v0 = np.random.default_rng(0).standard_normal(p)
    j = 0
    for j in range(k + 1):
        if j == k or np.trace(G) <= tol:
            break
        if j < len(starts) and starts[j] is not None:
            v0 = starts[j]
        w = _top_eigvec(G, v0)
        if j < len(starts):
            starts[j] = w
        else:
            starts.append(w)
        Pj, Tj, SCj = P[:, :j], T[:, :j], SC[:, :j]
        Pw = Pj.T @ w
        t = Xc @ w - Tj @ Pw
        tt = float(t @ t)
        if tt <= np.finfo(float).eps * n:
            break
        ploading = (Xc.T @ t - Pj @ (Tj.T @ t)) / tt
        Sc = G0 @ w - SCj @ Pw
        Ctc = SCj.T @ w - CC[:j, :j] @ Pw
        cc = float(w @ Sc - Pw @ Ctc)
        a = Sc - Pj @ Ctc - 0.5 * cc * ploading       # S_j c, minus half of |c|^2 p
        _ger2(G, ploading, a)                          # G_j+1 = S_j+1 S_j+1^T, S_j+1 = S_j - p c^T
        W[:, j], P[:, j], T[:, j], SC[:, j], tts[j] = w, ploading, t, Sc, tt
        CC[:j, j] = CC[j, :j] = Ctc
        CC[j, j] = cc
        v0 = w
    if j == 0:
        raise ValueError("PLS: X and Y have no covariance to fit (constant inputs?)")
    return W[:, :j], P[:, :j], tts[:j]
