"""Score EEG channel maps against the simulated ground truth (arrays in, tables out).

The simulator (:mod:`neuroattn.data.simulate_eeg`) records, per subject and class, the three
channels closest to the class's ERD sources (``derivatives/truth/truth.json``:
``subjects[s]["discriminative_channels"][class]``). :func:`model_truth_check` scores one model's
maps against them (the stage :func:`neuroattn.stages.eeg.eeg_truth` reads them from the
``*_pred.h5`` files):

``pattern``
    the ERD part of the activation pattern (``neuroattn.models.eeg_interpret.erd_map`` of
    the stored ``pattern``): expected to peak on the truth channels for a model above chance;
``importance``
    the filter-based importance (attention / gradient x input / occlusion), which need not
    (filters also weight noise-cancelling channels; Haufe et al. 2014).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["importance_truth_agreement", "model_truth_check", "summarise_truth_check", "TRUTH_COLUMNS"]

TRUTH_COLUMNS = ["subject", "protocol", "model", "map", "method", "class", "top_channel", "top_in_truth",
                 "truth_mass_ratio", "best_truth_rank"]


def importance_truth_agreement(maps, ch_names, classes, truth_channels):
    """How well a per-class channel map singles out the known discriminative channels.

    Parameters
    ----------
    maps : array-like, shape (n_classes, n_chans)
        Non-negative map per class (importance, :func:`erd_map`); larger = more important.
    ch_names : list of str
        Channel of each column.
    classes : list of str
        Class of each row.
    truth_channels : dict
        Class name -> list of its discriminative channel names (simulated truth).

    Returns
    -------
    pandas.DataFrame
        One row per class: ``class``, ``top_channel`` (argmax), ``top_in_truth`` (bool),
        ``truth_mass_ratio`` (share of the map on the truth channels divided by their uniform share
        ``n_truth / n_chans``: 1 = chance, ``n_chans / n_truth`` = all of it), ``best_truth_rank``
        (1-based rank of the highest truth channel; 1 when ``top_in_truth``). A class whose map is
        all NaN (no test trials) gets NaN / None.

    Raises
    ------
    ValueError
        Shape mismatch, negative values, or a class without truth channels.
    KeyError
        A class missing from ``truth_channels`` or a truth channel not in ``ch_names`` (named).
    """
    maps = np.asarray(maps, dtype=np.float64)
    ch_names, classes = list(ch_names), list(classes)
    if maps.shape != (len(classes), len(ch_names)):
        raise ValueError(f"maps has shape {maps.shape}, expected (n_classes={len(classes)}, n_chans={len(ch_names)})")
    if (maps < 0).any():
        raise ValueError("maps must be non-negative (use erd_map for a signed pattern)")
    rows = []
    for cls, row in zip(classes, maps):
        if cls not in truth_channels:
            raise KeyError(f"class {cls!r} has no entry in the truth channels {sorted(truth_channels)}")
        truth = list(truth_channels[cls])
        if not truth:
            raise ValueError(f"class {cls!r}: empty list of truth channels")
        missing = [c for c in truth if c not in ch_names]
        if missing:
            raise KeyError(f"class {cls!r}: truth channel(s) {missing} not among the map's channels {ch_names}")
        idx = [ch_names.index(c) for c in truth]
        total = np.nansum(row)
        if np.isnan(row).all() or total <= 0:
            rows.append({"class": cls, "top_channel": None, "top_in_truth": False,
                         "truth_mass_ratio": np.nan, "best_truth_rank": np.nan})
            continue
        row = np.nan_to_num(row)
        order = np.argsort(-row, kind="stable")
        rank = 1 + int(min(np.flatnonzero(np.isin(order, idx))))
        top = ch_names[int(order[0])]
        rows.append({"class": cls, "top_channel": top, "top_in_truth": top in truth,
                     "truth_mass_ratio": float(row[idx].sum() / total / (len(idx) / len(ch_names))),
                     "best_truth_rank": rank})
    out = pd.DataFrame(rows, columns=["class", "top_channel", "top_in_truth", "truth_mass_ratio", "best_truth_rank"])
    return out.astype({"best_truth_rank": "Int64"})


def model_truth_check(pattern_erd, importance, method: str, ch_names, classes, truth_channels) -> list:
    """Truth agreement of one model's maps: a list of ``(map, method, table)``.

    Parameters
    ----------
    pattern_erd : array (n_classes, n_chans) or None
        The ERD part of the signed activation pattern (``neuroattn.models.eeg_interpret.erd_map``),
        scored under method ``power_pattern``.
    importance : array (n_classes, n_chans) or None
        Filter-based importance, scored as is under ``method``.
    ch_names, classes, truth_channels
        As for :func:`importance_truth_agreement`.
    """
    maps = []
    if pattern_erd is not None:
        maps.append(("pattern", "power_pattern", pattern_erd))
    if importance is not None:
        maps.append(("importance", str(method), importance))
    out = []
    for name, meth, values in maps:
        try:
            a = importance_truth_agreement(values, ch_names, classes, truth_channels)
        except (KeyError, ValueError) as exc:
            raise type(exc)(f"{name}: {exc}") from exc
        out.append((name, meth, a))
    return out


def summarise_truth_check(df: pd.DataFrame, by=("protocol", "model", "map")) -> pd.DataFrame:
    """Per group: fraction of classes whose peak is on a truth channel, mean mass ratio, classes.

    ``truth_mass_ratio`` is 1 at chance (uniform map); ``peak on truth`` is about
    ``n_truth / n_chans`` at chance.
    """
    by = list(by)
    if not len(df):
        return pd.DataFrame(columns=by + ["peak on truth", "mass ratio", "classes"])
    d = df.assign(top_in_truth=df["top_in_truth"].astype(str).str.lower().eq("true"))
    out = d.groupby(by, sort=True).agg(**{"peak on truth": ("top_in_truth", "mean"),
                                          "mass ratio": ("truth_mass_ratio", "mean"),
                                          "classes": ("class", "size")})
    return out.reset_index().round({"peak on truth": 2, "mass ratio": 2})
