"""Baseline voxel encoders fitted on the same features and splits as the routing encoder.

- :class:`RidgeEncoder` with ``features="pooled"`` (``ridge_pooled``): ridge on the pooled
  embedding of a layer; ``features="grid"`` (``ridge_grid``, the paper's linear baseline): ridge
  on the flattened token grid (T * C features). himalaya's cross-validated ridge picks one alpha
  per voxel (:func:`neuroattn.models.ridge.ridge_cv`). Given a feature-store view
  (:class:`~neuroattn.features.store.TokenRows`) with more features than images, the grid ridge
  never holds every token: the standardisation and the (n, n) linear kernel of the design are
  accumulated over row blocks and the same kernel ridge is solved on it (the predictions are those
  of the in-memory fit, to float rounding); prediction streams the training rows again.
- The spatial-feature (factorized) baseline, a torch model trained like the routing encoder, is
  :class:`neuroattn.models.spatial_feature.SpatialFeatureEncoder`: this module stays free of
  torch so that a ridge job does not spend seconds importing it.
"""
from __future__ import annotations

import logging

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.preprocessing import StandardScaler

from .ridge import DEFAULT_ALPHAS, ridge_cv
from .routing_voxels import _as_tokens, _is_lazy, clean_voxels, mean_pearson, voxel_groups

log = logging.getLogger("neuroattn.models.baselines")

__all__ = ["RidgeEncoder", "DEFAULT_ALPHAS"]

# streamed grid ridge: rows read per inner block, and bytes of the float64 design block held
# against it (larger outer blocks mean fewer passes over the store)
_STREAM_ROWS = 64
_STREAM_OUTER_BYTES = 512 * 2**20


class RidgeEncoder(RegressorMixin, BaseEstimator):
    """Cross-validated ridge from features to voxels, one alpha per voxel (himalaya).

    Parameters
    ----------
    features : {"pooled", "grid"}
        With token input (n, T, C) or (n, h, w, C): ``"pooled"`` averages the tokens,
        ``"grid"`` flattens them. 2-D input (n, p) is used as given.
    alphas : sequence of float
        Regularisation grid searched per voxel.
    cv : int
        K-fold splits of the training images for the alpha search.

    Attributes
    ----------
    model_ : himalaya RidgeCV or KernelRidgeCV
    scaler_ : StandardScaler
    best_alphas_ : ndarray (n_modelled_voxels,)
    voxel_mask_ : ndarray of bool (n_voxels,)
        Voxels modelled (others NaN/constant in training, or outside ``rois``: predicted NaN).
    n_dropped_voxels_ : int
    """

    def __init__(self, features="pooled", alphas=DEFAULT_ALPHAS, cv=5):
        self.features = features
        self.alphas = alphas
        self.cv = cv

    def _design(self, X):
        if _is_lazy(X) and X.ndim == 3 and self.features == "pooled":
            # a feature-store view: pool block by block, never holding every token (the per-image
            # means are the same floats as on the whole array)
            _as_tokens(X[:1], getattr(self, "grid_", None))
            return np.concatenate([X.take(np.arange(s, min(s + 256, len(X)))).mean(axis=1)
                                   for s in range(0, len(X), 256)])
        X = np.asarray(X)
        if X.ndim == 2:
            return X.astype(np.float32, copy=False)
        X, _ = _as_tokens(X, getattr(self, "grid_", None) if X.ndim == 3 else None)
        if self.features == "pooled":
            return X.mean(axis=1)
        if self.features == "grid":
            return X.reshape(len(X), -1)
        raise ValueError(f"features must be 'pooled' or 'grid', got {self.features!r}")

    # -- the streamed grid ridge (lazy token rows, more features than images) -------------------
    def _streams(self, X) -> bool:
        return (_is_lazy(X) and self.features == "grid" and X.ndim == 3
                and int(np.prod(X.shape[1:])) > X.shape[0])

    def _rows(self, X, start, stop) -> np.ndarray:
        """Rows ``start:stop`` of ``X`` (lazy or array) as the float64 flattened design."""
        block = X.take(np.arange(start, stop)) if _is_lazy(X) else np.asarray(X[start:stop])
        block, _ = _as_tokens(block, self.grid_)
        return block.reshape(len(block), -1).astype(np.float64)

    def _std_rows(self, X, start, stop) -> np.ndarray:
        return self.scaler_.transform(self._rows(X, start, stop))

    def _stream_kernel(self, A, B=None) -> np.ndarray:
        """Linear kernel (len(A), len(B)) of the standardised designs of ``A`` and ``B`` (the
        training rows; ``None``: ``A`` itself, symmetric), holding one outer block of ``A`` and
        one inner block of ``B`` at a time."""
        sym = B is None
        B = A if sym else B
        p = int(np.prod(A.shape[1:]))
        outer = max(1, _STREAM_OUTER_BYTES // (8 * p * _STREAM_ROWS)) * _STREAM_ROWS  # whole inner blocks
        K = np.empty((len(A), len(B)))
        for a0 in range(0, len(A), outer):
            a1 = min(a0 + outer, len(A))
            Da = self._std_rows(A, a0, a1)
            stop = a1 if sym else len(B)  # symmetric: columns up to the block's end, the rest mirrored
            for b0 in range(0, stop, _STREAM_ROWS):
                b1 = min(b0 + _STREAM_ROWS, stop)
                Db = Da[b0 - a0:b1 - a0] if sym and b0 >= a0 else self._std_rows(B, b0, b1)
                K[a0:a1, b0:b1] = Da @ Db.T
            if sym:
                K[:a0, a0:a1] = K[a0:a1, :a0].T
                d = K[a0:a1, a0:a1]
                K[a0:a1, a0:a1] = (d + d.T) / 2  # products in pieces: make the diagonal block exactly symmetric
        return K

    def _fit_streamed(self, X, Y):
        self.scaler_ = StandardScaler()
        for s in range(0, len(X), _STREAM_ROWS):
            self.scaler_.partial_fit(self._rows(X, s, min(s + _STREAM_ROWS, len(X))))
        self.model_ = ridge_cv(self._stream_kernel(X), Y[:, self.voxel_mask_], self.alphas, self.cv,
                               precomputed=True)
        self.X_fit_ = X  # the lazy training rows: prediction needs the test rows' kernel against them

    def fit(self, X, Y, *, voxel_roi=None, voxel_hemi=None, rois=None, grid=None):
        """Fit on training images; same signature as :meth:`RoutingEncoder.fit`. Returns self."""
        if self.features not in ("pooled", "grid"):
            raise ValueError(f"features must be 'pooled' or 'grid', got {self.features!r}")
        self.__dict__.pop("X_fit_", None)
        streamed = self._streams(X)
        if not (_is_lazy(X) and self.features == "pooled") and not streamed:
            X = np.asarray(X)  # grid ridge with p <= n flattens every token (refused up front when too big)
        if X.ndim == 3:
            _, self.grid_ = _as_tokens(X[:1], grid)
        Y = np.asarray(Y, dtype=np.float64)
        if Y.ndim != 2 or len(Y) != len(X):
            raise ValueError(f"X has {len(X)} images but Y has shape {Y.shape}")
        ok = clean_voxels(Y)
        self.n_dropped_voxels_ = int((~ok).sum())
        if self.n_dropped_voxels_:
            log.warning("dropped %d of %d voxels (NaN or zero variance in the training data)",
                        self.n_dropped_voxels_, Y.shape[1])
        V = Y.shape[1]
        roi = np.full(V, "all") if voxel_roi is None else voxel_roi
        group, _ = voxel_groups(roi, voxel_hemi, keep=ok, rois=rois, query_mode="rois")
        self.voxel_mask_ = group >= 0
        self.n_voxels_in_ = V
        if streamed:
            self._fit_streamed(X, Y)
            self.best_alphas_ = np.asarray(self.model_.best_alphas_)
            return self
        D = self._design(X).astype(np.float64)
        self.scaler_ = StandardScaler().fit(D)
        D = self.scaler_.transform(D)
        self.model_ = ridge_cv(D, Y[:, self.voxel_mask_], self.alphas, self.cv)
        self.best_alphas_ = np.asarray(self.model_.best_alphas_)
        return self

    def predict(self, X):
        """Predicted responses (n_images, n_voxels); NaN for voxels not modelled."""
        if not hasattr(self, "model_"):
            raise RuntimeError("this RidgeEncoder is not fitted yet: call fit first")
        if hasattr(self, "X_fit_"):  # streamed fit: the test rows' kernel against the training rows
            if not _is_lazy(X):
                X = np.asarray(X)
            D = self._stream_kernel(X, self.X_fit_)
        else:
            D = self.scaler_.transform(self._design(X).astype(np.float64))
        out = np.full((len(D), self.n_voxels_in_), np.nan, dtype=np.float32)
        out[:, self.voxel_mask_] = np.asarray(self.model_.predict(D))
        return out

    def score(self, X, Y, sample_weight=None):
        """Mean Pearson r over the modelled voxels (not R^2)."""
        return mean_pearson(self.predict(X)[:, self.voxel_mask_], np.asarray(Y)[:, self.voxel_mask_])
