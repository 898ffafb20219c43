"""Figures of EEG decoders: per-class scalp maps of a channel map, and confusion matrices
(matplotlib; maps from :mod:`neuroattn.models.eeg_interpret`)."""
from __future__ import annotations

import numpy as np

__all__ = ["plot_confusion", "plot_topomaps"]


def _info(ch_names, sfreq: float = 250.0):
    import mne

    info = mne.create_info(list(ch_names), sfreq, "eeg")
    names = mne.channels.get_builtin_montages()
    info.set_montage("colin27_1020" if "colin27_1020" in names else "standard_1020", on_missing="ignore")
    return info


def plot_topomaps(importance: np.ndarray, ch_names, classes, title: str = "", sfreq: float = 250.0):
    """One scalp map per class of a (n_classes, n_chans) importance array (``mne.viz.plot_topomap``).

    Channel positions come from MNE's ``standard_1020`` montage; returns the matplotlib figure.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import mne

    importance = np.asarray(importance)
    if importance.shape != (len(classes), len(ch_names)):
        raise ValueError(f"importance has shape {importance.shape}, expected ({len(classes)}, {len(ch_names)})")
    info = _info(ch_names, sfreq)
    fig, axes = plt.subplots(1, len(classes), figsize=(2.4 * len(classes), 2.6), squeeze=False)
    for ax, row, cls in zip(axes[0], importance, classes):
        mne.viz.plot_topomap(np.nan_to_num(row), info, axes=ax, show=False, cmap="Reds",
                             vlim=(0, np.nanmax(importance) or None), contours=0)
        ax.set_title(str(cls), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_confusion(confusion: np.ndarray, classes, title: str = ""):
    """Row-normalised confusion matrix (true x predicted) as a matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cm = np.asarray(confusion, dtype=float)
    rows = cm.sum(1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(classes), 0.8 + 0.7 * len(classes)))
    ax.imshow(frac, vmin=0, vmax=1, cmap="Blues")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{frac[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
