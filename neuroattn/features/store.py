"""HDF5 feature cache: the contract between feature extraction and every model.

One file per backbone. Root attributes: ``backbone`` (name), ``arch``, ``weights`` (``"random"``,
``"trained:<path>"`` or ``"pretrained:<path>"``), ``layers`` (list). Datasets:

- ``images``: (n_images,) str, stimulus file names, in row order;
- ``<layer>/tokens``: (n_images, n_tokens, n_channels) float16/32, chunked one image per chunk;
  attribute ``grid`` = (h, w) with h * w == n_tokens;
- ``<layer>/pooled``: (n_images, n_channels) float32, mean over tokens (or the CLS token for ViTs,
  see the ``pooled_from`` attribute);
- ``<layer>/cls``: (n_images, n_channels), only for ViTs.

- ``<layer>/pca/components`` (k, C_in), ``<layer>/pca/mean`` (C_in,) and attribute
  ``explained_variance_ratio``: present when the tokens were reduced to k principal components
  (fitted on the training images only); ``tokens``, ``pooled`` and ``cls`` then hold k channels.

Optional root attributes: ``image_size``, ``pca`` (components kept; 0 = none), ``dtype``.

Readers stream one layer (and optionally a subset of images) at a time.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

_STR = h5py.string_dtype("utf-8")


class FeatureStore:
    """Read-only access to a feature cache.

    Parameters
    ----------
    path : str or Path
        HDF5 file written by :class:`FeatureWriter`.
    """

    def __init__(self, path):
        self.path = Path(path)
        try:
            with h5py.File(self.path, "r") as f:
                self.images = f["images"].asstr()[()]
                self.attrs = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in f.attrs.items()}
                self.layers = [k for k in f.keys() if isinstance(f[k], h5py.Group) and "tokens" in f[k]]
                self._grids = {k: tuple(int(x) for x in f[k]["tokens"].attrs["grid"]) for k in self.layers}
        except (OSError, KeyError) as exc:
            raise ValueError(f"{self.path}: not a readable neuroattn feature cache ({exc})") from exc
        self._index = {im: i for i, im in enumerate(self.images)}

    def _check_layer(self, layer):
        if layer not in self.layers:
            raise KeyError(f"{self.path}: no layer {layer!r}; available: {', '.join(self.layers)}")

    def grid(self, layer) -> tuple[int, int]:
        """Token grid (h, w) of ``layer``."""
        self._check_layer(layer)
        return self._grids[layer]

    def rows(self, images) -> np.ndarray:
        """Row indices of ``images``; raises naming the images not in the cache."""
        images = np.asarray(images).astype(str)
        missing = [im for im in images if im not in self._index]
        if missing:
            raise KeyError(f"{self.path}: no features for image(s) {missing[:5]}")
        return np.array([self._index[im] for im in images], dtype=int)

    def _read(self, layer, what, images, dtype):
        self._check_layer(layer)
        with h5py.File(self.path, "r") as f:
            ds = f[layer][what]
            if images is None:
                return ds[()].astype(dtype, copy=False)
            rows = self.rows(images)
            if len(rows) == 0:
                return np.empty((0,) + ds.shape[1:], dtype=dtype)
            uniq, inverse = np.unique(rows, return_inverse=True)  # h5py reads increasing rows once
            return ds[uniq].astype(dtype, copy=False)[inverse]

    def tokens(self, layer, images=None, dtype=np.float32) -> np.ndarray:
        """Token grid features (n, n_tokens, C) of ``layer`` for ``images`` (all by default)."""
        return self._read(layer, "tokens", images, dtype)

    def pooled(self, layer, images=None, dtype=np.float32) -> np.ndarray:
        """Pooled embeddings (n, C) of ``layer`` for ``images`` (all by default)."""
        return self._read(layer, "pooled", images, dtype)

    def cls(self, layer, images=None, dtype=np.float32) -> np.ndarray:
        """CLS tokens (n, C) of a transformer ``layer``; KeyError for layers without one."""
        self._check_layer(layer)
        with h5py.File(self.path, "r") as f:
            if "cls" not in f[layer]:
                raise KeyError(f"{self.path}: layer {layer!r} has no CLS token (not a transformer layer)")
        return self._read(layer, "cls", images, dtype)

    def channels(self, layer) -> int:
        """Channels per token of ``layer`` as stored (k after a PCA)."""
        self._check_layer(layer)
        with h5py.File(self.path, "r") as f:
            return int(f[layer]["tokens"].shape[-1])

    def pca(self, layer) -> dict | None:
        """The PCA applied to ``layer`` (``components`` (k, C_in), ``mean``,
        ``explained_variance_ratio``), or None when the layer was stored unreduced."""
        self._check_layer(layer)
        with h5py.File(self.path, "r") as f:
            if "pca" not in f[layer]:
                return None
            g = f[layer]["pca"]
            return {"components": g["components"][()], "mean": g["mean"][()],
                    "explained_variance_ratio": np.asarray(g.attrs["explained_variance_ratio"])}

    def iter_tokens(self, layer, images=None, batch_size: int = 256, dtype=np.float32):
        """Yield ``(image_names, tokens)`` batches of ``layer`` (bounded memory), in row order."""
        self._check_layer(layer)
        rows = np.arange(len(self.images)) if images is None else np.sort(self.rows(images))
        with h5py.File(self.path, "r") as f:
            ds = f[layer]["tokens"]
            for i in range(0, len(rows), batch_size):
                r = rows[i:i + batch_size]
                yield self.images[r], ds[r].astype(dtype, copy=False)


class StreamingPCA:
    """Exact PCA fitted from batches of rows (streamed covariance), for channel reduction.

    Equals ``sklearn.decomposition.PCA(n_components)`` on the concatenated rows (up to the sign
    of each component) with memory O(C^2) whatever the number of rows; unlike
    ``IncrementalPCA`` any batch size works. Signs are fixed so that each component's largest
    absolute loading is positive.

    Parameters
    ----------
    n_components : int
    """

    def __init__(self, n_components: int):
        self.n_components = n_components

    def partial_fit(self, X):
        """Accumulate the rows of ``X`` (n, C)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"StreamingPCA takes (n, C) rows, got shape {X.shape}")
        if not hasattr(self, "_n"):
            if X.shape[1] < self.n_components:
                raise ValueError(f"n_components={self.n_components} > {X.shape[1]} channels")
            self._shift = X.mean(axis=0)
            self._n, self._s, self._ss = 0, np.zeros(X.shape[1]), np.zeros((X.shape[1],) * 2)
        elif X.shape[1] != len(self._shift):
            raise ValueError(f"got {X.shape[1]} channels, fitted on {len(self._shift)}")
        Xc = X - self._shift
        self._n += len(X)
        self._s += Xc.sum(axis=0)
        self._ss += Xc.T @ Xc
        return self

    def finalize(self):
        """Compute ``components_`` (k, C), ``mean_``, ``explained_variance_(ratio_)``; returns self."""
        if getattr(self, "_n", 0) < 2:
            raise ValueError("StreamingPCA needs at least 2 rows")
        m = self._s / self._n
        cov = (self._ss - self._n * np.outer(m, m)) / (self._n - 1)
        evals, evecs = np.linalg.eigh((cov + cov.T) / 2)
        order = np.argsort(evals)[::-1]
        evals, evecs = np.clip(evals[order], 0, None), evecs[:, order]
        comps = evecs[:, : self.n_components].T
        comps *= np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])[:, None]
        self.mean_ = self._shift + m
        self.components_ = comps
        self.explained_variance_ = evals[: self.n_components]
        self.explained_variance_ratio_ = self.explained_variance_ / max(evals.sum(), 1e-300)
        self.n_samples_seen_ = self._n
        return self

    def fit(self, X, y=None):
        """Fit on all rows of ``X`` at once."""
        for k in ("_n", "_s", "_ss", "_shift"):
            self.__dict__.pop(k, None)
        return self.partial_fit(X).finalize()

    def transform(self, X) -> np.ndarray:
        """Project rows (n, C) onto the components: (n, k) float32."""
        X = np.asarray(X, dtype=np.float32)
        return (X - self.mean_.astype(np.float32)) @ self.components_.T.astype(np.float32)


class FeatureWriter:
    """Write a feature cache incrementally (one batch at a time), bounded in memory.

    Use as a context manager; :meth:`add` appends a batch of every layer.
    """

    def __init__(self, path, images, attrs=None, dtype="float16"):
        self.path = Path(path)
        self.images = np.asarray(images).astype(str)
        self.attrs = dict(attrs or {})
        self.dtype = np.dtype(dtype)
        self._n = 0
        self._f = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = h5py.File(self.path, "w")
        self._f.create_dataset("images", data=self.images.astype(object), dtype=_STR)
        for k, v in self.attrs.items():
            self._f.attrs[k] = v
        return self

    def add(self, batch: dict, grids: dict, cls: dict | None = None):
        """Append one batch: ``batch[layer]`` is (b, n_tokens, C); ``grids[layer]`` is (h, w)."""
        n = len(self.images)
        b = None
        for layer, x in batch.items():
            x = np.asarray(x)
            b = x.shape[0]
            g = self._f.require_group(layer)
            if "tokens" not in g:
                t = g.create_dataset("tokens", shape=(n,) + x.shape[1:], dtype=self.dtype,
                                     chunks=(1,) + x.shape[1:])
                t.attrs["grid"] = np.asarray(grids[layer], dtype=np.int64)
                g.create_dataset("pooled", shape=(n, x.shape[-1]), dtype=np.float32)
                if cls is not None and layer in cls:
                    g.create_dataset("cls", shape=(n, x.shape[-1]), dtype=np.float32)
            g = self._f[layer]
            g["tokens"][self._n:self._n + b] = x.astype(self.dtype)
            if cls is not None and layer in cls:
                g["cls"][self._n:self._n + b] = np.asarray(cls[layer], dtype=np.float32)
                g.attrs["pooled_from"] = "cls"
                g["pooled"][self._n:self._n + b] = np.asarray(cls[layer], dtype=np.float32)
            else:
                g.attrs["pooled_from"] = "mean"
                g["pooled"][self._n:self._n + b] = x.astype(np.float32).mean(axis=1)
        self._n += b or 0

    def add_pca(self, layer, pca):
        """Record the fitted PCA (``components_``, ``mean_``, ``explained_variance_ratio_``) of ``layer``."""
        g = self._f.require_group(layer).require_group("pca")
        g.create_dataset("components", data=np.asarray(pca.components_, dtype=np.float32))
        g.create_dataset("mean", data=np.asarray(pca.mean_, dtype=np.float32))
        g.attrs["explained_variance_ratio"] = np.asarray(pca.explained_variance_ratio_, dtype=np.float64)

    def __exit__(self, exc_type, exc, tb):
        self._f.attrs["layers"] = [k for k in self._f.keys() if k != "images"]
        self._f.close()
        if exc_type is not None or self._n != len(self.images):
            self.path.unlink(missing_ok=True)
            if exc_type is None:
                raise RuntimeError(f"{self.path}: wrote {self._n} of {len(self.images)} images; removed")
        return False
