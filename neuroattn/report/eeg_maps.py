"""EEG activation patterns and their check against the simulated truth, for the report pages."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..metrics.eeg_truth import summarise_truth_check
from .html import table

__all__ = ["group_truth_section", "pattern_grid", "truth_section", "truth_wide", "PATTERN_CAPTION", "TRUTH_TEXT"]

PATTERN_CAPTION = (
    "activation pattern per model (rows) and class (columns), protocol {protocol}: correlation over test "
    "trials between the model's evidence for the class (centred log-probability) and each electrode's "
    "8-30 Hz log power from 0.5 s after the cue; blue = the model favours the class when that electrode's "
    "power drops (ERD). Unlike importance (a filter), a pattern is interpretable per electrode "
    "(Haufe et al. 2014)")

TRUTH_TEXT = (
    "Simulated data: the truth lists, per class, the 3 channels nearest its ERD sources. 'peak on truth' = "
    "fraction of classes whose map is largest on one of them (chance about 3/22); 'mass ratio' = share of "
    "the map on them over their uniform share (1 = chance). 'pattern' is the ERD part of the activation "
    "pattern, 'importance' the filter-based map (attention / gradient x input / occlusion): filters need "
    "not peak on the source channels, patterns should for any model above chance.")


def channel_picks(info, ch_names):
    """Match a model's channel order to an ``mne.Info`` for topomaps.

    Returns ``(sub_info, keep)``: the info of the channels of ``ch_names`` that ``info`` has (in
    ``info``'s order) and the indices into ``ch_names`` of the values to draw on them, so that
    ``values[keep]`` sits on the right electrodes whichever channels are missing.
    """
    import mne

    ch_names = list(ch_names)
    picks = [info.ch_names.index(c) for c in ch_names if c in info.ch_names]
    sub_info = mne.pick_info(info, picks)
    keep = [ch_names.index(info.ch_names[i]) for i in picks]
    return sub_info, keep


def pattern_grid(patterns: dict, ch_names, classes, info, title: str):
    """Signed topomaps, one row per model and one column per class, on a common symmetric scale.

    ``patterns``: model -> (n_classes, n_chans) array (``power_pattern``); ``info``: an
    ``mne.Info`` with channel positions (channels absent from it are left out).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import mne

    sub_info, keep = channel_picks(info, ch_names)
    lim = max(float(np.nanmax(np.abs(p))) for p in patterns.values()) or 1.0
    fig, axes = plt.subplots(len(patterns), len(classes), figsize=(1.9 * len(classes), 1.9 * len(patterns)),
                             squeeze=False)
    im = None
    for row, (model, pat) in zip(axes, patterns.items()):
        for ax, cls, values in zip(row, classes, np.asarray(pat)):
            out = mne.viz.plot_topomap(np.nan_to_num(values[keep]), sub_info, axes=ax, show=False, contours=0,
                                       cmap="RdBu_r", vlim=(-lim, lim), names=sub_info.ch_names)
            im = out[0] if out else im
            for t in ax.texts:  # electrode names, small
                t.set_fontsize(4)
            ax.set_title(f"{model}: {cls}", fontsize=7)
    if im is not None:
        cb = fig.colorbar(im, ax=list(axes.ravel()), fraction=0.02, pad=0.02)
        cb.set_label("pattern (correlation)", fontsize=7)
        cb.ax.tick_params(labelsize=6)
    fig.suptitle(f"{title}; colour scale ±{lim:.2f}", fontsize=8)
    return fig


def truth_wide(df: pd.DataFrame, by=("protocol", "model")) -> pd.DataFrame:
    """Truth-check rows -> one row per ``by`` group, columns ``<map>: peak on truth / mass ratio``."""
    s = summarise_truth_check(df, by=list(by) + ["map"])
    if not len(s):
        return s
    wide = s.pivot_table(index=list(by), columns="map", values=["peak on truth", "mass ratio"])
    wide.columns = [f"{m}: {v}" for v, m in wide.columns]
    return wide[sorted(wide.columns, key=lambda c: (not c.startswith("pattern"), c))].reset_index()


def truth_section(path):
    """Subject page section from one ``*_desc-truthcheck.tsv``; None when it is empty."""
    df = pd.read_csv(path, sep="\t", dtype={"subject": str})
    if not len(df):
        return None
    return {"title": "EEG maps vs simulated truth", "text": TRUTH_TEXT, "table": table(truth_wide(df))}


def group_truth_section(paths):
    """Group page section: the truth check pooled over subjects (mean over subjects and classes)."""
    frames = [pd.read_csv(p, sep="\t", dtype={"subject": str}) for p in paths]
    frames = [f for f in frames if len(f)]
    if not frames:
        return None
    df = pd.concat(frames, ignore_index=True)
    wide = truth_wide(df)
    hit = summarise_truth_check(df, by=["map"]).set_index("map")["peak on truth"]
    line = "; ".join(f"{m}: {100 * v:.0f}% of classes peak on a truth channel" for m, v in hit.items())
    n_sub = df["subject"].nunique()
    return {"title": "EEG maps vs simulated truth",
            "text": f"{n_sub} simulated subjects, all models and protocols pooled: {line}. " + TRUTH_TEXT,
            "table": table(wide)}
