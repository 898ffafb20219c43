"""Matplotlib figures for the reports. Each function returns a Figure (the caller embeds it)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..leaderboard import NORMALISED  # noqa: E402


# One colour per model name on every plot of every page: known names first, others by a stable hash.
_PALETTE = list(plt.get_cmap("tab20").colors)
_KNOWN = ["routing", "ridge_pooled", "ridge_grid", "spatial_feature", "aligned_ridge", "incontext", "ridge_context",
          "basenet", "basenet_se", "basenet_cbam", "eegnet", "shallow", "csp_lda", "ts_lr"]


def model_colour(name: str):
    """The colour of model ``name`` on every plot (``incontext_k50`` shares ``incontext``'s)."""
    import re
    import zlib

    base = re.sub(r"_k\d+$", "", str(name))
    if base in _KNOWN:
        return _PALETTE[_KNOWN.index(base) % len(_PALETTE)]
    return _PALETTE[(len(_KNOWN) + zlib.crc32(base.encode()) % (len(_PALETTE) - len(_KNOWN))) % len(_PALETTE)]


def _colours(names) -> dict:
    """:func:`model_colour` of each name, colliding ones moved to unused palette colours."""
    out, used = {}, set()
    for n in names:
        c = model_colour(n)
        if c in used:
            c = next((p for p in _PALETTE if p not in used), c)
        out[n] = c
        used.add(c)
    return out


def _legend_outside(ax):
    """Legend to the right of the axes (never over the data)."""
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def metric_bars(df: pd.DataFrame, metric: str, title: str | None = None):
    """Bars of ``metric`` per target (x) and model (colour): mean over subjects, error = SEM.

    Ceilings (on the metric's scale) and chance levels, when present, are drawn as black and red
    ticks over the bars.
    """
    d = df[df.metric == metric]
    targets = sorted(d.target.unique())
    models = sorted(d.model.unique())
    fig, ax = plt.subplots(figsize=(min(11.0, 0.75 * len(targets) + 3), 3.6))
    width = 0.8 / max(1, len(models))
    colours = _colours(models)
    x = np.arange(len(targets))
    for i, m in enumerate(models):
        g = d[d.model == m].groupby("target")["value"]
        mean = g.mean().reindex(targets)
        sem = (g.std(ddof=1) / np.sqrt(g.count())).reindex(targets).fillna(0)
        ax.bar(x + (i - (len(models) - 1) / 2) * width, mean, width, yerr=sem, label=m, capsize=2,
               color=colours[m])
    ceil = d.groupby("target")["ceiling"].mean().reindex(targets)
    if ceil.notna().any() and metric not in NORMALISED:  # normalised metrics: the ceiling is 1 (said in the caption)
        ax.scatter(x, ceil, marker="_", s=400, color="k", label="ceiling", zorder=3)
    chance = d.groupby("target")["chance"].mean().reindex(targets) if "chance" in d else None
    if chance is not None and chance.notna().any():
        ax.scatter(x, chance, marker="_", s=400, color="tab:red", label="chance", zorder=3)
    ax.set_xticks(x, targets, rotation=30, ha="right")
    ax.set_ylabel(metric)
    ax.set_title(title or metric)
    ax.axhline(0, color="grey", lw=0.5)
    _legend_outside(ax)
    fig.tight_layout()
    return fig


def curve(x, ys: dict, xlabel: str, ylabel: str, title: str, chance: float | None = None):
    """Lines of y against shared x for each label in ``ys`` (values: (mean, sem) arrays or a mean array)."""
    curves = {label: (x, *(y if isinstance(y, tuple) else (np.asarray(y), None))) for label, y in ys.items()}
    return curve_by_label(curves, xlabel, ylabel, title, chance=chance, log_x=False)


def ceiling_hist(nc_by_roi: dict):
    """Histogram of voxel noise ceilings per ROI."""
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for roi, nc in nc_by_roi.items():
        ax.hist(np.asarray(nc)[np.isfinite(nc)], bins=20, range=(0, 1), histtype="step", label=roi)
    ax.set_xlabel("noise ceiling (fraction of variance)")
    ax.set_ylabel("voxels")
    ax.legend(fontsize=6, ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def image_grid(images, titles, overlays=None, ncols=6, cmap="inferno"):
    """Images in a grid, optionally with a heat map (any resolution) blended over each."""
    n = len(images)
    ncols = min(ncols, n) or 1
    nrows = int(np.ceil(n / ncols)) or 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.7 * ncols, 1.9 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, (img, title) in enumerate(zip(images, titles)):
        ax = axes.ravel()[k]
        ax.imshow(img)
        if overlays is not None and overlays[k] is not None:
            h, w = np.asarray(img).shape[:2]
            ax.imshow(overlays[k], cmap=cmap, alpha=0.55, extent=(0, w, h, 0), interpolation="bilinear")
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    return fig


def confusion(cm, classes, title):
    """A confusion matrix (rows: true, columns: predicted) with counts."""
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(3.2, 3.0))
    ax.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{cm[i, j]:g}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def channel_quality(ch_names, std_uv, title="channel standard deviation (uV)"):
    """Bar chart of per-channel standard deviation across epochs."""
    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.bar(range(len(ch_names)), std_uv, color="#4a7")
    ax.set_xticks(range(len(ch_names)), ch_names, rotation=90, fontsize=7)
    ax.set_ylabel("uV")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def roi_map(dseg_path, title):
    """ROIs of one subject drawn on nilearn's bundled MNI152 template (no download)."""
    from nilearn import datasets, plotting

    fig = plt.figure(figsize=(7, 2.6))
    plotting.plot_roi(str(dseg_path), bg_img=datasets.load_mni152_template(resolution=2), figure=fig,
                      title=title, display_mode="ortho", draw_cross=False, cmap="tab20")
    return fig


def confusion_grid(cms: dict, classes, title):
    """One confusion matrix per model, side by side, rows normalised to proportions."""
    n = len(cms)
    ncols = min(4, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.5 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (name, cm) in zip(axes.ravel(), cms.items()):
        cm = np.asarray(cm, dtype=float)
        prop = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.axis("on")
        ax.imshow(prop, cmap="Blues", vmin=0, vmax=1)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, f"{cm[i, j]:g}", ha="center", va="center", fontsize=6)
        ax.set_xticks(range(len(classes)), [c[:5] for c in classes], fontsize=6, rotation=45)
        ax.set_yticks(range(len(classes)), [c[:5] for c in classes], fontsize=6)
        acc = np.trace(cm) / max(cm.sum(), 1)
        ax.set_title(f"{name} ({acc:.2f})", fontsize=7)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig


def curve_by_label(curves: dict, xlabel: str, ylabel: str, title: str, chance: float | None = None,
                   log_x: bool = True):
    """Lines with error bars, each label with its own x values: ``{label: (x, mean, err)}``."""
    import re

    from matplotlib import ticker

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    # model curves get their model's colour; other labels (ROIs) the default cycle
    models = all(re.sub(r"_k\d+$", "", str(k)) in _KNOWN for k in curves)
    colours = _colours(list(curves)) if models else {}
    for label, (x, mean, err) in curves.items():
        ax.errorbar(x, mean, yerr=err, marker="o", label=label, capsize=2, color=colours.get(label))
    if chance is not None:
        ax.axhline(chance, color="grey", ls="--", lw=1, label="chance")
    if log_x:
        ax.set_xscale("log")
        # plain numbers at a few ticks (minor-tick labels collided on narrow ranges)
        ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=8))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _legend_outside(ax)
    fig.tight_layout()
    return fig
