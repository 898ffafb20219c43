"""HDF5 feature cache: the contract between feature extraction and every model.

One file per backbone. Root attributes: ``backbone`` (name), ``arch``, ``weights`` (``"random"``,
``"trained:<path>"`` or ``"pretrained:<path>"``), ``layers`` (list). Datasets:

- ``images``: (n_images,) str, stimulus file names, in row order;
- ``<layer>/tokens``: (n_images, n_tokens, n_channels) float16/32, chunked one image per chunk;
  attribute ``grid`` = (h, w) with h * w == n_tokens;
- ``<layer>/pooled``: (n_images, n_channels) float32, mean over tokens (or the CLS token for ViTs,
  see the ``pooled_from`` attribute);
- ``<layer>/cls``: (n_images, n_channels), only for ViTs.

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
                self.layers = [k for k in f.keys() if k != "images"]
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
            order = np.argsort(rows)
            out = np.empty((len(rows),) + ds.shape[1:], dtype=dtype)
            out[order] = ds[np.sort(rows)] if len(np.unique(rows)) == len(rows) else ds[()][np.sort(rows)]
            return out

    def tokens(self, layer, images=None, dtype=np.float32) -> np.ndarray:
        """Token grid features (n, n_tokens, C) of ``layer`` for ``images`` (all by default)."""
        return self._read(layer, "tokens", images, dtype)

    def pooled(self, layer, images=None, dtype=np.float32) -> np.ndarray:
        """Pooled embeddings (n, C) of ``layer`` for ``images`` (all by default)."""
        return self._read(layer, "pooled", images, dtype)


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
            if layer not in self._f:
                g = self._f.create_group(layer)
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

    def __exit__(self, exc_type, exc, tb):
        self._f.attrs["layers"] = [k for k in self._f.keys() if k != "images"]
        self._f.close()
        if exc_type is not None or self._n != len(self.images):
            self.path.unlink(missing_ok=True)
            if exc_type is None:
                raise RuntimeError(f"{self.path}: wrote {self._n} of {len(self.images)} images; removed")
        return False
