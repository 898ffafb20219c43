""":class:`TorchVoxelEncoder`: the scikit-learn estimator machinery shared by the torch voxel
encoders (routing, spatial-feature): validation split, early stopping, ensembling, checkpoints,
prediction and persistence.

Tokens may be a lazy row source (:class:`~neuroattn.features.store.TokenRows`, from
``FeatureStore.token_rows``) instead of an array: the channel statistics are then accumulated
over blocks of images and training/prediction read one batch at a time, so memory does not grow
with the number of images; the numbers are the same as with the array (same float32 sums in
the same order, same batches).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, RegressorMixin

from ..utils import atomic_path, derive_seed, resolve_device, seed_everything
from .routing_voxels import _as_tokens, _is_lazy, clean_voxels, mean_pearson, voxel_groups

log = logging.getLogger("neuroattn.models.routing")

_BLOCK = 256  # images per read when streaming channel statistics


def _stream_mean_std(X, block: int = _BLOCK):
    """``X.mean(axis=(0, 1))`` and ``X.std(axis=(0, 1))`` of a lazy float32 (n, T, C) source,
    read ``block`` images at a time. NumPy reduces float32 over leading axes by adding rows in
    order into a float32 accumulator; continuing that sum block by block (the running sum as the
    first row) gives the same bits as the in-memory call."""
    C = X.shape[2]
    count = np.intp(X.shape[0] * X.shape[1])  # divided as NumPy's _methods do (an intp count)

    def total(f):
        acc = np.zeros(C, np.float32)
        for start in range(0, len(X), block):
            rows = f(X.take(np.arange(start, min(start + block, len(X)))).reshape(-1, C))
            acc = np.add.reduce(np.concatenate([acc[None], rows]), axis=0)
        return acc

    def per_token(acc):  # float32 sum / intp count into float32, as NumPy's _methods divide
        out = np.empty_like(acc)
        np.true_divide(acc, count, out=out, casting="unsafe")
        return out

    mean = per_token(total(lambda r: r))
    var = per_token(total(lambda r: np.multiply(r - mean, r - mean)))
    return mean, np.sqrt(var)


class _Standardized:
    """Rows of a lazy token source standardised on the fly (a row source for ``fit_torch``)."""

    def __init__(self, base, mean, std):
        self.base, self.mean, self.std = base, mean, std
        self.shape = base.shape

    def __len__(self):
        return len(self.base)

    def take(self, rows):
        return ((self.base.take(rows) - self.mean) / self.std).astype(np.float32)

    def subset(self, rows):
        return _Standardized(self.base.subset(rows), self.mean, self.std)


class TorchVoxelEncoder(RegressorMixin, BaseEstimator):
    """Shared machinery of the torch voxel encoders (routing, spatial-feature).

    Subclasses set their hyper-parameters in ``__init__`` (which must define ``lr``,
    ``weight_decay``, ``grad_clip``, ``batch_size``, ``max_epochs``, ``patience``,
    ``val_fraction``, ``n_ensemble``, ``query_mode``, ``random_state``, ``device``, ``progress``,
    ``checkpoint_dir``) and implement ``_build_module(n_channels, grid, voxel_group, n_queries)``.

    ``fit`` drops voxels that are NaN or constant in the training data (counted in
    ``n_dropped_voxels_``; their predictions are NaN), standardises token channels and voxel
    targets on the training images, holds out ``val_fraction`` of them (a different draw per
    ensemble member) for early stopping on mean Pearson r, and trains ``n_ensemble`` seeds whose
    predictions are averaged.
    """

    _query_mode_default = "rois"

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, X, Y, *, voxel_roi=None, voxel_hemi=None, rois=None, grid=None):
        """Fit on training images.

        Parameters
        ----------
        X : array, (n_images, T, C) or (n_images, h, w, C)
            Backbone tokens, row-major grid.
        Y : array, (n_images, n_voxels)
            Responses (betas averaged over repeats) of the same images, same order.
        voxel_roi : array of str, (n_voxels,), optional
            ROI of each voxel (default: one ROI ``all``).
        voxel_hemi : array of str, (n_voxels,), optional
            Hemisphere of each voxel; non-empty labels give one query per ROI and hemisphere.
        rois : list of str, optional
            ROIs to model (default all); see :func:`voxel_groups`.
        grid : (int, int), optional
            Token grid; inferred for 4-D input or square token counts.

        Returns
        -------
        self
        """
        from ..train import fit_torch

        lazy = _is_lazy(X)
        if lazy:  # validate on one row; the tokens are read batch by batch below
            if len(X.shape) != 3:
                raise ValueError(f"a lazy token source must be (n, T, C), got shape {X.shape}")
            _, grid = _as_tokens(X[:1], grid)
        else:
            X, grid = _as_tokens(X, grid)
        Y = np.asarray(Y, dtype=np.float64)
        if Y.ndim != 2:
            raise ValueError(f"Y must be (n_images, n_voxels), got shape {Y.shape}")
        if len(X) != len(Y):
            raise ValueError(f"X has {len(X)} images but Y has {len(Y)}")
        if len(X) < 4:
            raise ValueError(f"need at least 4 training images, got {len(X)}")
        V = Y.shape[1]
        voxel_roi = np.full(V, "all") if voxel_roi is None else np.asarray(voxel_roi).astype(str)
        if voxel_roi.shape != (V,):
            raise ValueError(f"voxel_roi has {len(voxel_roi)} labels for {V} voxels")
        ok = clean_voxels(Y)
        self.n_dropped_voxels_ = int((~ok).sum())
        if self.n_dropped_voxels_:
            log.warning("dropped %d of %d voxels (NaN or zero variance in the training data)",
                        self.n_dropped_voxels_, V)
        group, names = voxel_groups(voxel_roi, voxel_hemi, keep=ok, rois=rois, query_mode=self.query_mode)
        self.voxel_mask_ = group >= 0
        self.voxel_group_ = group[self.voxel_mask_]
        self.query_names_ = names
        self.grid_ = grid
        self.n_voxels_in_ = V
        self.n_channels_ = X.shape[2]
        Yk = Y[:, self.voxel_mask_]
        if lazy:
            mean, std = _stream_mean_std(X)
            self.x_mean_, self.x_std_ = mean.astype(np.float32), (std + 1e-6).astype(np.float32)
        else:
            self.x_mean_ = X.mean(axis=(0, 1)).astype(np.float32)
            self.x_std_ = (X.std(axis=(0, 1)) + 1e-6).astype(np.float32)
        self.y_mean_ = Yk.mean(axis=0).astype(np.float32)
        self.y_std_ = Yk.std(axis=0).astype(np.float32)
        Xs = _Standardized(X, self.x_mean_, self.x_std_) if lazy else self._standardize(X)
        Ys = ((Yk - self.y_mean_) / self.y_std_).astype(np.float32)
        device = resolve_device(self.device)
        self.modules_, self.histories_, self.best_epochs_ = [], [], []
        n = len(Xs)
        for k in range(self.n_ensemble):
            seed = derive_seed(self.random_state, k)
            seed_everything(seed)
            module = self._build_module(self.n_channels_, grid, self.voxel_group_, len(names))
            perm = np.random.default_rng(seed).permutation(n)
            n_val = int(round(self.val_fraction * n)) if self.val_fraction else 0
            n_val = min(max(n_val, 2), n - 2) if n_val else 0
            tr, va = perm[n_val:], perm[:n_val]
            ck = None
            if self.checkpoint_dir is not None:
                ck = Path(self.checkpoint_dir) / f"{type(self).__name__}_member-{k}.pt"
            sub = Xs.subset if lazy else Xs.__getitem__
            res = fit_torch(
                module, (sub(tr), Ys[tr]), loss_fn=F.mse_loss,
                val=(sub(va), Ys[va]) if n_val else None, val_score=mean_pearson if n_val else None,
                optimizer="adamw", lr=self.lr, weight_decay=self.weight_decay, grad_clip=self.grad_clip,
                batch_size=self.batch_size, max_epochs=self.max_epochs, patience=self.patience,
                seed=seed, device=device, checkpoint=ck, progress=self.progress,
            )
            self.modules_.append(res.module.cpu().eval())
            self.histories_.append(res.history)
            self.best_epochs_.append(res.best_epoch)
            log.info("%s member %d: best epoch %d, val r %.4f", type(self).__name__, k, res.best_epoch,
                     res.best_score)
        return self

    def _standardize(self, X):
        return ((X - self.x_mean_) / self.x_std_).astype(np.float32)

    def _check_fitted(self):
        if not hasattr(self, "modules_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit first")

    def _check_X(self, X):
        self._check_fitted()
        if _is_lazy(X):  # checked on one row, standardised batch by batch
            if len(X.shape) != 3 or X.shape[2] != self.n_channels_:
                raise ValueError(f"X has shape {X.shape}; the model was fitted on (n, T, {self.n_channels_})")
            _as_tokens(X[:1], self.grid_)
            return _Standardized(X, self.x_mean_, self.x_std_)
        X, grid = _as_tokens(X, self.grid_)
        if X.shape[2] != self.n_channels_:
            raise ValueError(f"X has {X.shape[2]} channels, the model was fitted on {self.n_channels_}")
        return self._standardize(X)

    # -- prediction ------------------------------------------------------------------------
    def predict(self, X, batch_size: int = 64):
        """Predicted responses (n_images, n_voxels); NaN for voxels dropped in ``fit``."""
        from ..train import predict_torch

        Xs = self._check_X(X)
        device = resolve_device(self.device)
        pred = np.mean([predict_torch(m, (Xs,), batch_size=batch_size, device=device) for m in self.modules_],
                       axis=0)
        for m in self.modules_:
            m.cpu()
        out = np.full((len(Xs), self.n_voxels_in_), np.nan, dtype=np.float32)
        out[:, self.voxel_mask_] = pred * self.y_std_ + self.y_mean_
        return out

    def score(self, X, Y, sample_weight=None):
        """Mean Pearson r over the modelled voxels (not R^2)."""
        pred = self.predict(X)
        return mean_pearson(pred[:, self.voxel_mask_], np.asarray(Y)[:, self.voxel_mask_])

    # -- persistence -----------------------------------------------------------------------
    _STATE = ("voxel_mask_", "voxel_group_", "query_names_", "grid_", "n_voxels_in_", "n_channels_",
              "x_mean_", "x_std_", "y_mean_", "y_std_", "n_dropped_voxels_", "best_epochs_")

    def save(self, path) -> None:
        """Write parameters, fitted state and weights to ``path`` (atomically; torch format)."""
        self._check_fitted()
        def plain(v):  # only tensors and plain Python values, so that weights_only loading works
            if isinstance(v, np.ndarray):
                return torch.as_tensor(v)
            if isinstance(v, np.generic):
                return v.item()
            if isinstance(v, (list, tuple)):
                return [plain(x) for x in v]
            return v

        state = {k: plain(getattr(self, k)) for k in self._STATE}
        params = {k: plain(v) for k, v in self.get_params().items()}
        blob = {"class": type(self).__name__, "params": params, "state": state,
                "weights": [m.state_dict() for m in self.modules_]}
        with atomic_path(path) as tmp:
            torch.save(blob, tmp)

    @classmethod
    def load(cls, path):
        """Rebuild a fitted estimator written by :meth:`save` (``weights_only`` loading)."""
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same message
            raise ValueError(f"{path}: not a readable {cls.__name__} file ({exc})") from exc
        if blob.get("class") != cls.__name__:
            raise ValueError(f"{path}: holds a {blob.get('class')!r}, not a {cls.__name__}")
        est = cls(**blob["params"])
        for k, v in blob["state"].items():
            setattr(est, k, v.numpy() if isinstance(v, torch.Tensor) else v)
        est.grid_ = tuple(est.grid_)
        est.modules_ = []
        for sd in blob["weights"]:
            m = est._build_module(est.n_channels_, est.grid_, est.voxel_group_, len(est.query_names_))
            m.load_state_dict(sd)
            est.modules_.append(m.eval())
        return est
