"""Images for feature extraction: one file read as RGB, and an indexable source of images.

Files are read with Pillow: RGB as is; grayscale (``L``) and palette (``P``) images are converted
to RGB; RGBA/LA images are accepted only when fully opaque (alpha dropped); any other mode
(16-bit, float, CMYK, ...) and unreadable files raise a ValueError naming the file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

__all__ = ["load_image", "ImageSource"]


def load_image(path) -> np.ndarray:
    """Read one image file as uint8 RGB (H, W, 3); ValueError naming the file when it cannot be."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "P":
                im = im.convert("RGBA")
            mode = im.mode
            if mode in {"RGBA", "LA"}:
                if im.getchannel("A").getextrema()[0] < 255:
                    raise ValueError(f"{path}: image has transparent pixels (mode {im.mode}); "
                                     "flatten it onto a background first")
                im = im.convert("RGB")
            elif mode == "L":
                im = im.convert("RGB")
            elif mode != "RGB":
                raise ValueError(f"{path}: unsupported image mode {mode!r}; need 8-bit RGB or grayscale")
            arr = np.asarray(im, dtype=np.uint8)
    except FileNotFoundError as exc:
        raise ValueError(f"{path}: image file does not exist") from exc
    except (OSError, UnidentifiedImageError) as exc:
        raise ValueError(f"{path}: unreadable image ({exc})") from exc
    return arr


class ImageSource:
    """Indexable images from a uint8 array (n, H, W, 3) or a list of files (read lazily).

    ``source[i:j]`` or ``source[index_array]`` returns a list of (H, W, 3) uint8 arrays.
    """

    def __init__(self, images):
        if isinstance(images, ImageSource):
            self._arr, self._paths = images._arr, images._paths
            return
        if isinstance(images, (str, Path)):
            raise ValueError(f"images must be an array or a list of files, got the single path {images!r}")
        if isinstance(images, np.ndarray) or torch.is_tensor(images):
            arr = np.asarray(images)
            if arr.ndim != 4 or arr.shape[-1] != 3:
                raise ValueError(f"image array must be (n, H, W, 3) RGB, got shape {arr.shape}")
            if arr.dtype != np.uint8:
                raise ValueError(f"image array must be uint8 (0-255), got {arr.dtype}")
            self._arr, self._paths = arr, None
        else:
            self._arr, self._paths = None, [Path(p) for p in images]

    def __len__(self):
        return len(self._arr) if self._arr is not None else len(self._paths)

    @property
    def names(self) -> list[str]:
        """File names (paths given) or ``img<i>`` row labels (array given)."""
        if self._paths is not None:
            return [p.name for p in self._paths]
        return [f"img{i:05d}" for i in range(len(self))]

    def __getitem__(self, idx):
        if self._arr is not None:
            return self._arr[idx]
        rows = np.arange(len(self))[idx]
        return [load_image(self._paths[i]) for i in np.atleast_1d(rows)]
