"""Subject page section on content routing (simulated fMRI): per-image attention of every category
query over a few test images with the outline of the query's objects, and the per-image truth
check (``object_mass_*`` rows of the ``routing_truth`` table)."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from .html import fig_to_uri, table

#: the ``routing_truth`` measures shown here, in this order
MEASURES = ("object_mass_ratio", "object_mass_above_1", "object_mass_ratio_absent", "object_mass_above_1_absent",
            "object_mass_ratio_other")

CAPTION = (
    "Per test image, the attention mass a category query puts on the objects of its category, over "
    "their share of the token grid (tokens weighted by how much of them the objects cover): 1 = a map "
    "blind to the object, higher = routing to it. object_mass_ratio: median over the test images holding "
    "the category; object_mass_above_1: the fraction of them above 1 (0.5 for a map independent of the "
    "object); *_absent: the same on the images without the category, measured where the category sits "
    "when present (about 1 for a content router, above 1 for a query that prefers the usual places of "
    "objects); object_mass_ratio_other: the mass on the other categories' objects (about 1 or below for "
    "a router of its own category). Each cell: value (reference).")


def _layer(path) -> str:
    name = Path(path).name
    return name.split("_layer-")[-1].split("_")[0] if "_layer-" in name else Path(path).stem


def ratio_table(paths) -> pd.DataFrame | None:
    """``layer, query`` x :data:`MEASURES` cells "value (reference)" from truth-check tables."""
    frames = []
    for p in paths:
        t = pd.read_csv(p, sep="\t")
        t = t[t.measure.isin(MEASURES)]
        if len(t):
            fmt = ["{:.2f} ({:.2f}; n={:d})".format(v, r, int(n)) if n == n else f"{v:.2f} ({r:.2f})"
                   for v, r, n in zip(t.value, t.reference, t.n)]
            frames.append(t.assign(cell=fmt, layer=_layer(p)))
    if not frames:
        return None
    d = pd.concat(frames).pivot_table(index=["layer", "query"], columns="measure", values="cell", aggfunc="first")
    return d[[m for m in MEASURES if m in d.columns]].reset_index()


def _objects_of(truth_path, images):
    """The truth's per-image object maps (``image_routing``) of ``images``, per ROI; {} if none."""
    with h5py.File(truth_path, "r") as f:
        if "image_routing" not in f:
            return {}
        pos = {im: i for i, im in enumerate(f["images"].asstr()[()])}
        if any(im not in pos for im in images):
            return {}
        rows = [pos[im] for im in images]
        return {k: f["image_routing"][k][()][rows].astype(np.float64) for k in f["image_routing"]}


def _pick_images(objects, n):
    """Indices of ``n`` images holding the most categories (ties: file order): most panels show an object."""
    held = sum((v.sum((1, 2)) > 0).astype(int) for v in objects.values())
    return np.argsort(-held, kind="stable")[:n]


def overlay_grid(images, titles_rows, maps_rows, outlines_rows, row_labels, image_names):
    """Rows of queries x columns of images: attention (upsampled) over each image, object outline in white."""
    import matplotlib.pyplot as plt

    nr, nc = len(maps_rows), len(images)
    fig, axes = plt.subplots(nr, nc, figsize=(1.6 * nc + 0.8, 1.65 * nr), squeeze=False)
    for i in range(nr):
        for j in range(nc):
            ax = axes[i, j]
            img = np.asarray(images[j])
            h, w = img.shape[:2]
            ax.imshow(img)
            ax.imshow(maps_rows[i][j], cmap="inferno", alpha=0.55, extent=(0, w, h, 0), interpolation="nearest")
            o = outlines_rows[i][j]
            if o is not None and o.max() > 0:
                ys = (np.arange(o.shape[0]) + 0.5) * h / o.shape[0]
                xs = (np.arange(o.shape[1]) + 0.5) * w / o.shape[1]
                ax.contour(xs, ys, o / o.max(), levels=[0.5], colors="white", linewidths=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(titles_rows[i][j], fontsize=6.5)
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize=7)
            if i == 0:
                ax.set_xlabel(image_names[j], fontsize=6)
                ax.xaxis.set_label_position("top")
    fig.tight_layout()
    return fig


def content_routing_section(pred_paths, truth_path, table_paths, stim_dir, n_images: int = 4):
    """The section: overlays per routing prediction file (one per layer) and the ratio table.

    Parameters
    ----------
    pred_paths : list of path
        Routing prediction files with per-image maps (``attention/maps``); others are skipped.
    truth_path : path or None
        The simulation's truth file (``image_routing``: the objects); None on real data.
    table_paths : list of path
        ``routing_truth`` tables (``object_mass_*`` rows).
    stim_dir : path
    n_images : int
        Test images shown.

    Returns
    -------
    dict or None
        None when there is nothing to show (real data, or files without per-image maps).
    """
    from ..models.routing_eval import object_mass_ratio

    if not truth_path or not Path(truth_path).is_file():
        return None
    figs = []
    for p in pred_paths:
        with h5py.File(p, "r") as f:
            if "attention/maps" not in f:
                continue
            names = list(f["attention/rois"].asstr()[()])
            images = f["images"].asstr()[()]
            att = f["attention/maps"][()].astype(np.float64)
        objects = _objects_of(truth_path, images)
        queries = [(q, n) for q, n in enumerate(names) if n.partition("#")[0].partition(".")[0] in objects]
        if not objects or not queries:
            continue
        pick = _pick_images(objects, n_images)
        from PIL import Image

        imgs = []
        for i in pick:
            with Image.open(Path(stim_dir) / images[i]) as im:
                imgs.append(np.asarray(im.convert("RGB")))
        titles, maps, outlines = [], [], []
        for q, name in queries:
            o = objects[name.partition("#")[0].partition(".")[0]][pick]
            r = object_mass_ratio(att[pick, q], o)
            titles.append([f"ratio {v:.1f}" if v == v else "absent" for v in r])
            maps.append(list(att[pick, q]))
            outlines.append(list(o))
        fig = overlay_grid(imgs, titles, maps, outlines, [n for _, n in queries], list(images[pick]))
        figs.append({"uri": fig_to_uri(fig),
                     "caption": f"{Path(p).name}: attention of every category query (rows) on {len(pick)} test images "
                                "(columns), white: outline of the query's category's objects; title: the image's "
                                "object mass ratio (1 = blind)"})
    tab = ratio_table(table_paths)
    if not figs and tab is None:
        return None
    sec = {"title": "Content routing of category ROIs (per image, against the simulation's objects)",
           "text": CAPTION, "figures": figs}
    if tab is not None:
        sec["table"] = table(tab)
    return sec
