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


def image_grid(images, titles, overlays=None, ncols=6, cmap="inferno", *, scale_label=None, vmax=None,
               fixation=False, outlines=None, outline_label="truth", frames=None):
    """Images in a grid, optionally with a heat map (any resolution) blended over each.

    Parameters
    ----------
    images : list of (h, w[, 3]) arrays
    titles : list of str
    overlays : list of 2-D arrays or None, optional
        Heat maps stretched over the images, all on one colour scale from 0 to ``vmax`` (default:
        their largest value), shown by a colour bar labelled ``scale_label``.
    fixation : bool
        Draw a fixation cross at the image centre (where the simulated observer fixates).
    outlines : list of 2-D arrays or None, optional
        A true map per panel (e.g. a receptive field or an object mask), drawn as its half-maximum
        contour; the legend calls it ``outline_label``.
    frames : list of colours or None, optional
        A coloured frame around each panel (e.g. green correct, red wrong).

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.colorbar_`` is the colour bar (None without overlays).
    """
    n = len(images)
    ncols = min(ncols, n) or 1
    nrows = int(np.ceil(n / ncols)) or 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.7 * ncols + (0.8 if overlays is not None else 0), 1.9 * nrows),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    if overlays is not None and vmax is None:
        finite = [float(np.nanmax(o)) for o in overlays if o is not None and np.isfinite(o).any()]
        vmax = max(finite) if finite else 1.0
    mappable, drew_outline = None, False
    for k, (img, title) in enumerate(zip(images, titles)):
        ax = axes.ravel()[k]
        ax.imshow(img)
        h, w = np.asarray(img).shape[:2]
        if overlays is not None and overlays[k] is not None:
            mappable = ax.imshow(overlays[k], cmap=cmap, alpha=0.6, extent=(0, w, h, 0), interpolation="bilinear",
                                 vmin=0, vmax=vmax)
        if outlines is not None and outlines[k] is not None and np.isfinite(outlines[k]).any():
            o = np.nan_to_num(np.asarray(outlines[k], dtype=float))
            oh, ow = o.shape
            xs, ys = (np.arange(ow) + 0.5) * w / ow, (np.arange(oh) + 0.5) * h / oh
            if o.max() > o.min():
                ax.contour(xs, ys, o, levels=[o.min() + 0.5 * (o.max() - o.min())], colors="cyan", linewidths=1.2)
                drew_outline = True
        if fixation:
            ax.plot([w / 2], [h / 2], marker="+", color="white", markersize=9, markeredgewidth=2)
            ax.plot([w / 2], [h / 2], marker="+", color="black", markersize=7, markeredgewidth=0.8)
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        if frames is not None and frames[k] is not None:
            ax.add_patch(plt.Rectangle((0, 0), w, h, fill=False, edgecolor=frames[k], linewidth=4, clip_on=False))
        ax.set_title(title, fontsize=7, color=frames[k] if frames is not None and frames[k] is not None else "black")
    fig.tight_layout()
    fig.colorbar_ = None
    if mappable is not None:
        fig.colorbar_ = fig.colorbar(mappable, ax=list(axes.ravel()), fraction=0.025, pad=0.02)
        fig.colorbar_.set_label(scale_label or "map value", fontsize=7)
        fig.colorbar_.ax.tick_params(labelsize=6)
    if drew_outline or fixation:
        from matplotlib.lines import Line2D

        handles = ([Line2D([], [], color="cyan", lw=1.2, label=f"{outline_label} (half max)")] if drew_outline else []) + \
            ([Line2D([], [], color="black", marker="+", ls="", label="fixation (image centre)")] if fixation else [])
        fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=7, frameon=False,
                   bbox_to_anchor=(0.5, -0.02 - 0.06 / nrows))
    return fig


def confusion(cm, classes, title):
    """A confusion matrix (rows: true, columns: predicted) with counts."""
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(3.6, 3.0))
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).set_label("trials", fontsize=7)
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


def roi_map(dseg_path, title, names: dict | None = None):
    """ROIs of one subject drawn on nilearn's bundled MNI152 template (no download).

    ``names``: label value -> ROI name (the dseg's TSV); each ROI is then named in a legend in its
    colour instead of a numbered colour bar. ``fig.roi_legend_`` lists the legend's texts.
    """
    from matplotlib.colors import ListedColormap
    from nilearn import datasets, plotting

    fig = plt.figure(figsize=(7, 2.6))
    fig.roi_legend_ = []
    if names:
        n = int(max(names))
        colours = [_PALETTE[(i - 1) % len(_PALETTE)] for i in range(1, n + 1)]
        # one colour per label value: values 1..n map onto colours[0..n-1] with vmin/vmax at half-integers
        plotting.plot_roi(str(dseg_path), bg_img=datasets.load_mni152_template(resolution=2), figure=fig,
                          title=title, display_mode="ortho", draw_cross=False, cmap=ListedColormap(colours),
                          vmin=0.5, vmax=n + 0.5, colorbar=False)
        from matplotlib.patches import Patch

        handles = [Patch(color=colours[int(v) - 1], label=str(names[v])) for v in sorted(names)]
        leg = fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.02),
                         ncol=min(6, len(handles)), fontsize=7, frameon=False)
        fig.roi_legend_ = [t.get_text() for t in leg.get_texts()]
        return fig
    plotting.plot_roi(str(dseg_path), bg_img=datasets.load_mni152_template(resolution=2), figure=fig,
                      title=title, display_mode="ortho", draw_cross=False, cmap="tab20")
    return fig


def confusion_grid(cms: dict, classes, title):
    """One confusion matrix per model, side by side, rows normalised to proportions.

    Ticks carry the full class names; cells show counts; one colour bar (proportion of the true
    class's trials, 0-1) serves every panel.
    """
    n = len(cms)
    ncols = min(4, n)
    nrows = int(np.ceil(n / ncols))
    longest = max((len(str(c)) for c in classes), default=1)
    pad = 0.06 * longest  # room for the full names under and left of each panel
    fig, axes = plt.subplots(nrows, ncols, figsize=((2.6 + pad) * ncols + 0.8, (2.5 + pad) * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    im = None
    for ax, (name, cm) in zip(axes.ravel(), cms.items()):
        cm = np.asarray(cm, dtype=float)
        prop = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.axis("on")
        im = ax.imshow(prop, cmap="Blues", vmin=0, vmax=1)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, f"{cm[i, j]:g}", ha="center", va="center", fontsize=6,
                        color="white" if prop[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(classes)), [str(c) for c in classes], fontsize=6, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), [str(c) for c in classes], fontsize=6)
        ax.set_xlabel("predicted", fontsize=6)
        ax.set_ylabel("true", fontsize=6)
        acc = np.trace(cm) / max(cm.sum(), 1)
        ax.set_title(f"{name} ({acc:.2f})", fontsize=7)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    if im is not None:
        cb = fig.colorbar(im, ax=list(axes.ravel()), fraction=0.02, pad=0.02)
        cb.set_label("proportion of the true class", fontsize=7)
        cb.ax.tick_params(labelsize=6)
    return fig


def brain_map(stat_img, bg_img, title, vmax=None, label="Pearson r"):
    """A voxelwise statistic on the subject's reference image (nilearn ``plot_stat_map``).

    ``stat_img`` and ``bg_img`` are NIfTI images (or paths); values are drawn on a symmetric scale
    ``[-vmax, vmax]`` with a colour bar; zeros (unscored voxels) are transparent.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.colorbar_`` is the colour bar's axes.
    """
    from nilearn import plotting

    fig = plt.figure(figsize=(7.5, 2.6))
    display = plotting.plot_stat_map(stat_img, bg_img=bg_img, figure=fig, title=title, display_mode="ortho",
                                     colorbar=True, vmax=vmax, threshold=1e-6, draw_cross=False, annotate=True,
                                     black_bg=False, dim=-0.5, cmap="RdBu_r", symmetric_cbar=True)
    fig.colorbar_ = getattr(display, "_colorbar_ax", None)  # nilearn keeps the colour bar's axes here
    if fig.colorbar_ is not None:
        fig.colorbar_.set_ylabel(label, fontsize=7)
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
