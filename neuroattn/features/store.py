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

Readers stream one layer (and optionally a subset of images) at a time:
:meth:`FeatureStore.token_rows` gives a lazy (n, n_tokens, C) view that reads only the rows asked
for, which the torch encoders train on batch by batch (memory: one batch, not every image).
Whole-array reads (:meth:`FeatureStore.tokens`) are refused up front when they do not fit the
available memory.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..utils import check_fits_memory

_STR = h5py.string_dtype("utf-8")


# A layer whose stored tokens take at most this many bytes is read whole on the first batch and
# batches are taken from memory: per-batch HDF5 reads (~5 ms each, one chunk per image) were a
# fifth of a routing encode's training and half a spatial-feature one's on the default data
# (421 images x 36 tokens x 128 channels, float16: 3.9 MB). Larger layers stream batch by batch, so
# memory stays bounded by this constant, not by the number of images. Same values either way.
CACHE_MAX_BYTES = 16 * 2**20

_MEMORY_KEYS = ("features.pca (fewer channels per token), encode.layers (an earlier layer has fewer "
                "tokens) or encode.models (the torch encoders stream tokens, the ridge ones hold them)")


class TokenRows:
    """Lazy (n, n_tokens, C) float32 view of one layer's tokens for a list of images.

    Indexing (an int, a slice or an integer array) reads only those rows from the HDF5 file, so
    training loops hold one batch at a time; ``np.asarray`` reads everything (refused up front
    when it does not fit the available memory). A layer of at most ``CACHE_MAX_BYTES`` stored
    bytes is read once and kept (shared with the views made by :meth:`subset`). Made by
    :meth:`FeatureStore.token_rows`.

    Attributes
    ----------
    path : Path
    layer : str
    rows : ndarray of int
        Store row of each view row.
    shape : tuple
    dtype : numpy dtype (float32)
    """

    ndim = 3

    def __init__(self, path, layer, rows, shape_tail, dtype=np.float32, _cache=None):
        self.path, self.layer = Path(path), layer
        self.rows = np.asarray(rows, dtype=np.int64)
        self.shape = (len(self.rows),) + tuple(int(x) for x in shape_tail)
        self.dtype = np.dtype(dtype)
        self._f = None
        self._cache = {} if _cache is None else _cache  # {"tokens": stored array} once read

    def __len__(self):
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def _ds(self):
        if self._f is None:  # one open handle per view (and process): no reopen per batch
            self._f = h5py.File(self.path, "r")
        return self._f[self.layer]["tokens"]

    def close(self) -> None:
        """Close the HDF5 handle (reopened on the next read)."""
        if self._f is not None:
            self._f.close()
            self._f = None

    def __getstate__(self):  # picklable: the handle is reopened (and the cache re-read) where unpickled
        return {**self.__dict__, "_f": None, "_cache": {}}

    def _stored(self):
        """The whole stored layer (its stored dtype) if it is small enough to keep, else None."""
        if "tokens" not in self._cache:
            ds = self._ds()
            small = ds.size * ds.dtype.itemsize <= CACHE_MAX_BYTES
            self._cache["tokens"] = ds[...] if small else None
        return self._cache["tokens"]

    def take(self, index) -> np.ndarray:
        """Rows ``index`` (int array, any order, repeats allowed) as a float32 array."""
        index = np.asarray(index, dtype=np.int64)
        if index.ndim != 1:
            raise IndexError(f"row index must be 1-D, got shape {index.shape}")
        if len(index) and (index.min() < -len(self) or index.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        rows = self.rows[index]
        if len(rows) == 0:
            return np.empty((0,) + self.shape[1:], dtype=self.dtype)
        stored = self._stored()
        if stored is not None:
            return stored[rows].astype(self.dtype, copy=False)
        uniq, inverse = np.unique(rows, return_inverse=True)  # h5py reads increasing rows
        return self._ds()[uniq].astype(self.dtype, copy=False)[inverse.reshape(-1)]

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self.take([int(key)])[0]
        if isinstance(key, slice):
            return self.take(np.arange(len(self))[key])
        key = np.asarray(key)
        if key.dtype == bool:
            if key.shape != (len(self),):
                raise IndexError(f"boolean index of shape {key.shape} for {len(self)} rows")
            key = np.flatnonzero(key)
        return self.take(key)

    def subset(self, index) -> "TokenRows":
        """A lazy view of rows ``index`` of this view (nothing read)."""
        return TokenRows(self.path, self.layer, self.rows[np.asarray(index, dtype=np.int64)],
                         self.shape[1:], self.dtype, _cache=self._cache)

    def iter_batches(self, batch_size: int = 256):
        """Yield consecutive row blocks (float32 arrays of up to ``batch_size`` rows)."""
        for i in range(0, len(self), batch_size):
            yield self.take(np.arange(i, min(i + batch_size, len(self))))

    def __array__(self, dtype=None, copy=None):
        check_fits_memory(self.nbytes * 2, f"{self.layer} tokens of {len(self)} images", self.path,
                          _MEMORY_KEYS)
        out = self.take(np.arange(len(self)))
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self):
        return f"TokenRows({str(self.path)!r}, {self.layer!r}, shape={self.shape})"


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
            n = len(ds) if images is None else len(images)
            need = n * int(np.prod(ds.shape[1:])) * (np.dtype(dtype).itemsize + ds.dtype.itemsize)
            check_fits_memory(need, f"{layer}/{what} of {n} images", self.path, _MEMORY_KEYS)
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

    def token_rows(self, layer, images=None) -> TokenRows:
        """Lazy float32 view (n, n_tokens, C) of ``layer``'s tokens for ``images`` (all by
        default), in the order given; reads happen when it is indexed (see :class:`TokenRows`)."""
        self._check_layer(layer)
        rows = np.arange(len(self.images)) if images is None else self.rows(images)
        with h5py.File(self.path, "r") as f:
            tail = f[layer]["tokens"].shape[1:]
        return TokenRows(self.path, layer, rows, tail)

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


#: HDF5 bookkeeping per image per layer (chunk index entries of the one-image token chunks: about
#: 60 B measured, doubled for half-full index nodes),
#: per image name (variable-length string heap) and per file, an upper bound measured on
#: stores written by :class:`FeatureWriter`
_CHUNK_OVERHEAD, _NAME_OVERHEAD, _FILE_OVERHEAD = 128, 64, 1 << 20


def store_nbytes(n_images: int, layers: dict, dtype="float16", pca: int | None = None, cls=()) -> int:
    """Bytes a feature cache of ``n_images`` takes on disk, before anything is extracted.

    Per layer: tokens ``n_images x n_tokens x C' x itemsize(dtype)``, pooled (and, for ``cls``
    layers, CLS) ``n_images x C' x 4``, where ``C' = pca`` for layers with more than ``pca``
    channels (PCA components ``pca x C`` and mean stored too) and ``C' = C`` otherwise; plus
    HDF5's chunk index and the image names.

    Parameters
    ----------
    n_images : int
    layers : dict
        ``{layer: (n_tokens, n_channels)}``, channels as the backbone gives them (before PCA).
    dtype : {"float16", "float32"}
        Storage type of the tokens.
    pca : int, optional
        Components kept per layer (``features.pca``); None or 0 keeps every channel.
    cls : iterable of str
        Layers that also store a CLS token (transformer layers).

    Returns
    -------
    int
    """
    item = np.dtype(dtype).itemsize
    n = int(n_images)
    cls = set(cls)
    total = _FILE_OVERHEAD + n * _NAME_OVERHEAD
    for layer, (t, c) in layers.items():
        t, c = int(t), int(c)
        k = int(pca) if pca and c > int(pca) else c
        total += n * t * k * item + n * k * 4 * (2 if layer in cls else 1) + n * _CHUNK_OVERHEAD
        if k != c:
            total += (k * c + c) * 4
    return int(total)


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
