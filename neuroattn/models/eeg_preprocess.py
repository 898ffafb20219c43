"""Array-level EEG preprocessing for the decoders: per-channel standardisation fitted on training
epochs only (:class:`ChannelStandardizer`) and Euclidean alignment (He & Wu 2019)."""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

__all__ = ["ChannelStandardizer", "alignment_matrix", "euclidean_alignment"]


class ChannelStandardizer(TransformerMixin, BaseEstimator):
    """Per-channel z-scoring of epochs, statistics from the training epochs only.

    Parameters
    ----------
    eps : float
        Channels whose standard deviation is below ``eps`` are left unscaled.

    Attributes
    ----------
    mean_, scale_ : ndarray, shape (n_channels,)
        Mean and standard deviation over training epochs and time.
    n_channels_ : int
    """

    def __init__(self, eps: float = 1e-20):
        self.eps = eps

    @staticmethod
    def _check(X):
        X = np.asarray(X)
        if X.ndim != 3:
            raise ValueError(f"ChannelStandardizer expects X of shape (n_epochs, n_channels, n_times), got {X.shape}")
        return X

    def fit(self, X, y=None):
        """Per-channel mean and standard deviation over epochs and time of ``X``."""
        X = self._check(X)
        self.mean_ = X.mean(axis=(0, 2), dtype=np.float64)
        scale = X.std(axis=(0, 2), dtype=np.float64)
        self.scale_ = np.where(scale < self.eps, 1.0, scale)
        self.n_channels_ = X.shape[1]
        return self

    def transform(self, X):
        """Z-score each channel with the training statistics (dtype of ``X`` kept)."""
        check_is_fitted(self, ["mean_", "scale_"])
        X = self._check(X)
        if X.shape[1] != self.n_channels_:
            raise ValueError(f"X has {X.shape[1]} channels, the standardizer was fitted on {self.n_channels_}")
        out = (X - self.mean_[None, :, None]) / self.scale_[None, :, None]
        return out.astype(X.dtype if np.issubdtype(X.dtype, np.floating) else np.float64, copy=False)

    def inverse_transform(self, X):
        check_is_fitted(self, ["mean_", "scale_"])
        X = self._check(X)
        return (X * self.scale_[None, :, None] + self.mean_[None, :, None]).astype(X.dtype, copy=False)


def alignment_matrix(X, reg: float = 1e-6) -> np.ndarray:
    """R^-1/2 of the mean trial covariance R = mean_i X_i X_i^T / T (He & Wu 2019).

    ``reg`` adds ``reg * trace(R) / C`` to the diagonal, so rank-deficient data (e.g. average
    reference) stay finite.
    """
    from pyriemann.utils.base import invsqrtm

    X = np.asarray(X, dtype=np.float64)
    R = np.einsum("nct,ndt->cd", X, X) / (X.shape[0] * X.shape[2])
    R += reg * np.trace(R) / R.shape[0] * np.eye(R.shape[0])
    return invsqrtm(R)


def euclidean_alignment(X, groups=None, reg: float = 1e-6) -> np.ndarray:
    """Euclidean alignment (He & Wu 2019): X_i <- R^-1/2 X_i, R the mean trial covariance.

    Unsupervised (no labels), so a held-out subject can be aligned with its own unlabelled
    trials. Trial covariances are divided by the number of samples, so the aligned trials
    have identity mean covariance (the paper's R differs by that constant factor).

    Parameters
    ----------
    X : ndarray, shape (n_epochs, n_channels, n_times)
    groups : array-like, shape (n_epochs,), optional
        Subject of each epoch; each subject is aligned with its own reference. Default: all
        epochs are one subject.
    reg : float
        Diagonal loading of R relative to its mean eigenvalue.

    Returns
    -------
    ndarray
        Aligned epochs, same shape and dtype as ``X``.
    """
    X = np.asarray(X)
    if X.ndim != 3:
        raise ValueError(f"euclidean_alignment expects (n_epochs, n_channels, n_times), got {X.shape}")
    dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.float64
    groups = np.zeros(len(X), int) if groups is None else np.asarray(groups)
    if len(groups) != len(X):
        raise ValueError(f"groups has {len(groups)} entries for {len(X)} epochs")
    out = np.empty(X.shape, dtype=dtype)
    for g in np.unique(groups):
        m = groups == g
        W = alignment_matrix(X[m], reg)
        out[m] = np.einsum("cd,ndt->nct", W, X[m].astype(np.float64)).astype(dtype)
    return out
