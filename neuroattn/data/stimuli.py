"""Procedurally drawn stimulus images with known objects (the simulated datasets' stimuli).

Each image is a textured background (low-frequency coloured noise plus a faint grating) with 1 to 3
objects on it. An object is one of :data:`CATEGORIES` (a simple shape), drawn at a random position,
size, rotation and colour. The *dominant* object (the largest one, drawn on top) gives the image's
``category``: the training label of a backbone. Which part of the image matters to a
category-selective voxel therefore depends on where its object is (content routing), while a
retinotopic voxel always reads the same place (location routing).

:func:`draw_stimuli` returns the images (uint8 RGB), a table of images, a table of objects and
per-object masks; :func:`contrast_energy` gives the local contrast energy map that drives
retinotopic voxels; :func:`write_stimuli` writes the PNGs and ``stimuli.tsv``.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw
from scipy import ndimage

CATEGORIES: tuple[str, ...] = ("disk", "square", "triangle", "star", "cross", "ring")
"""The object categories (ROI names ``cat_<category>``)."""

#: probabilities of 1, 2, 3 objects in an image
N_OBJECTS_P = (0.4, 0.35, 0.25)
#: object radius range, as a fraction of the image size
SIZE_RANGE = (0.09, 0.2)


@dataclass
class Stimuli:
    """A drawn stimulus set.

    Attributes
    ----------
    images : ndarray (n_images, size, size, 3) uint8
    table : DataFrame
        One row per image: ``stim_file``, ``category`` (dominant object), ``n_objects``.
    objects : DataFrame
        One row per object: ``stim_file``, ``object`` (index in the image, 0 = dominant),
        ``category``, ``x``, ``y`` (centre, [0, 1] image coordinates, y downwards), ``size``
        (radius as a fraction of the image size), ``rotation`` (degrees), ``hue`` ([0, 1)),
        ``r``, ``g``, ``b`` (0-255), ``visible`` (fraction of the object's pixels not hidden by
        the objects drawn over it).
    masks : ndarray (n_objects_total, size, size) bool
        Visible pixels of each object, rows aligned with ``objects``.
    categories : tuple of str
    """

    images: np.ndarray
    table: pd.DataFrame
    objects: pd.DataFrame
    masks: np.ndarray
    categories: tuple[str, ...]


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A textured background, float (size, size, 3) in [0, 1], of lower contrast than objects."""
    n = rng.integers(3, 9)
    low = rng.random((n, n))
    noise = np.asarray(Image.fromarray((low * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC),
                       dtype=float) / 255.0
    yy, xx = np.mgrid[0:size, 0:size] / size
    theta = rng.uniform(0, np.pi)
    freq = rng.uniform(3, 10)
    grating = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)) + rng.uniform(0, 6.3))
    mix = 0.7 * noise + 0.3 * grating * rng.uniform(0.2, 1.0)
    c1 = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.05, 0.35), rng.uniform(0.25, 0.55)))
    c2 = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.05, 0.35), rng.uniform(0.35, 0.7)))
    return c1 + (c2 - c1) * mix[..., None]


def _polygon(category: str, cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    a = np.deg2rad(rot)
    if category == "square":
        ang = a + np.pi / 4 + np.arange(4) * np.pi / 2
        rad = np.full(4, r)
    elif category == "triangle":
        ang = a + np.arange(3) * 2 * np.pi / 3
        rad = np.full(3, r * 1.15)
    elif category == "star":
        ang = a + np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, r * 1.15, r * 0.45)
    elif category == "cross":
        w = 0.34
        base = np.array([(w, 1), (w, w), (1, w), (1, -w), (w, -w), (w, -1),
                         (-w, -1), (-w, -w), (-1, -w), (-1, w), (-w, w), (-w, 1)], dtype=float)
        ang = a + np.arctan2(base[:, 1], base[:, 0])
        rad = r * np.hypot(base[:, 0], base[:, 1]) / np.sqrt(2) * 1.2
    else:  # pragma: no cover - guarded by the caller
        raise ValueError(category)
    return [(cx + q * np.cos(t), cy + q * np.sin(t)) for q, t in zip(rad, ang)]


def _draw_shape(draw: ImageDraw.ImageDraw, category: str, cx: float, cy: float, r: float, rot: float, fill) -> None:
    if category == "disk":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif category == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(2, int(round(r * 0.38))))
    else:
        draw.polygon(_polygon(category, cx, cy, r, rot), fill=fill)


def _place(rng: np.random.Generator, sizes: np.ndarray) -> np.ndarray:
    """Centres in [0, 1] for objects of radii ``sizes`` (fractions), avoiding heavy overlap."""
    centres = np.zeros((len(sizes), 2))
    for k, r in enumerate(sizes):
        best, best_gap = None, -np.inf
        for _ in range(20):
            c = rng.uniform(r * 0.8, 1 - r * 0.8, size=2)
            gap = min((np.hypot(*(c - centres[j])) - 0.85 * (r + sizes[j]) for j in range(k)), default=1.0)
            if gap > best_gap:
                best, best_gap = c, gap
            if gap > 0:
                break
        centres[k] = best
    return centres


def draw_stimuli(n_images: int = 1000, image_size: int = 96, *, categories=CATEGORIES, seed: int = 0) -> Stimuli:
    """Draw ``n_images`` stimuli of ``image_size`` x ``image_size`` pixels.

    Dominant categories are balanced (each category is dominant in ``n_images / n_categories``
    images, in a random order); the other objects are of random categories.

    Parameters
    ----------
    n_images : int
        Number of images (>= 1).
    image_size : int
        Side in pixels (>= 32).
    categories : sequence of str
        Object categories, a subset of :data:`CATEGORIES`.
    seed : int or numpy.random.SeedSequence
        Seed of the drawing.

    Returns
    -------
    Stimuli
    """
    n_images = _check_int("n_images", n_images, 1)
    image_size = _check_int("image_size", image_size, 32)
    categories = tuple(categories)
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown or len(categories) < 2 or len(set(categories)) != len(categories):
        raise ValueError(f"categories must be >= 2 distinct names among {CATEGORIES}, got {categories}")
    rng = np.random.default_rng(seed)
    dominant = rng.permutation(np.resize(np.arange(len(categories)), n_images))
    images = np.zeros((n_images, image_size, image_size, 3), np.uint8)
    rows, obj_rows, masks = [], [], []
    for i in range(n_images):
        name = f"img{i:04d}.png"
        n_obj = int(rng.choice(len(N_OBJECTS_P), p=N_OBJECTS_P)) + 1
        sizes = np.sort(rng.uniform(*SIZE_RANGE, size=n_obj))[::-1]  # largest first = dominant
        cats = [int(dominant[i])] + list(rng.integers(0, len(categories), size=n_obj - 1))
        centres = _place(rng, sizes)
        rots = rng.uniform(0, 360, size=n_obj)
        hues = rng.random(n_obj)
        canvas = Image.fromarray((_background(rng, image_size) * 255).round().astype(np.uint8))
        draw = ImageDraw.Draw(canvas)
        drawn = []
        # draw the smaller objects first, the dominant one last (on top)
        for k in reversed(range(n_obj)):
            rgb = tuple(int(round(255 * v)) for v in colorsys.hsv_to_rgb(hues[k], rng.uniform(0.65, 1.0), rng.uniform(0.75, 1.0)))
            cx, cy = centres[k] * image_size
            r = sizes[k] * image_size
            m = Image.new("L", (image_size, image_size), 0)
            _draw_shape(ImageDraw.Draw(m), categories[cats[k]], cx, cy, r, rots[k], 255)
            _draw_shape(draw, categories[cats[k]], cx, cy, r, rots[k], rgb)
            mask = np.asarray(m) > 0
            for prev in drawn:  # this object hides the ones drawn before it
                prev[1][mask] = False
            drawn.append((k, mask, mask.sum(), rgb))
        images[i] = np.asarray(canvas)
        for k, mask, area, rgb in sorted(drawn, key=lambda t: t[0]):
            obj_rows.append(dict(stim_file=name, object=k, category=categories[cats[k]],
                                 x=centres[k, 0], y=centres[k, 1], size=sizes[k], rotation=rots[k],
                                 hue=hues[k], r=rgb[0], g=rgb[1], b=rgb[2],
                                 visible=float(mask.sum() / max(area, 1))))
            masks.append(mask)
        rows.append(dict(stim_file=name, category=categories[cats[0]], n_objects=n_obj))
    return Stimuli(images=images, table=pd.DataFrame(rows), objects=pd.DataFrame(obj_rows),
                   masks=np.stack(masks), categories=categories)


def contrast_energy(images: np.ndarray, grid: int = 24) -> np.ndarray:
    """Local contrast energy of each image on a ``grid`` x ``grid`` map.

    Luminance minus its local mean (Gaussian, sigma 1.5 % of the image), squared, then averaged
    in ``grid`` x ``grid`` blocks. This is what retinotopic voxels integrate in their receptive
    field.

    Parameters
    ----------
    images : ndarray (n, size, size, 3) uint8
    grid : int

    Returns
    -------
    ndarray (n, grid, grid) float64
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (n, h, w, 3), got shape {images.shape}")
    lum = images.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0
    sigma = max(1.0, 0.015 * images.shape[1])
    local = ndimage.gaussian_filter(lum, sigma=(0, sigma, sigma))
    energy = (lum - local) ** 2
    zoom = (1, grid / images.shape[1], grid / images.shape[2])
    return block_mean(energy, zoom)


def block_mean(maps: np.ndarray, zoom) -> np.ndarray:
    """Resample (n, h, w) maps by area averaging (``zoom`` as in scipy.ndimage.zoom)."""
    n, h, w = maps.shape
    gh, gw = int(round(h * zoom[1])), int(round(w * zoom[2]))
    # area weights: each output cell averages the input pixels whose centres fall in it
    ri = np.minimum((np.arange(h) + 0.5) * gh // h, gh - 1).astype(int)
    ci = np.minimum((np.arange(w) + 0.5) * gw // w, gw - 1).astype(int)
    Rh = np.zeros((gh, h))
    Rh[ri, np.arange(h)] = 1
    Rw = np.zeros((gw, w))
    Rw[ci, np.arange(w)] = 1
    Rh /= Rh.sum(1, keepdims=True)
    Rw /= Rw.sum(1, keepdims=True)
    return Rh @ maps @ Rw.T


def write_stimuli(stimuli: Stimuli, folder: str | Path) -> None:
    """Write ``img*.png`` (no metadata, deterministic bytes) and ``stimuli.tsv`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, img in zip(stimuli.table.stim_file, stimuli.images):
        Image.fromarray(img, mode="RGB").save(folder / name, format="PNG", compress_level=1)
    stimuli.table.to_csv(folder / "stimuli.tsv", sep="\t", index=False)
