"""Check EEG channel maps against the simulated ground truth (simulated data only).

The simulator (:mod:`neuroattn.data.simulate_eeg`) records, per subject and class, the three
channels closest to the class's ERD sources (``derivatives/truth/truth.json``:
``subjects[s]["discriminative_channels"][class]``). :func:`truth_check` scores every model's maps
in the ``*_pred.h5`` files of :func:`neuroattn.eeg_evaluation.write_results_h5` against them:

``pattern``
    the ERD part of the activation pattern (:func:`~neuroattn.models.eeg_interpret.erd_map` of
    the stored ``pattern``): expected to peak on the truth channels for a model above chance;
``importance``
    the filter-based importance (attention / gradient x input / occlusion), which need not
    (filters also weight noise-cancelling channels; Haufe et al. 2014).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .models.eeg_interpret import erd_map, importance_truth_agreement

__all__ = ["read_truth_channels", "summarise_truth_check", "truth_check", "TRUTH_COLUMNS"]

log = logging.getLogger("neuroattn.eeg_truth")
TRUTH_COLUMNS = ["subject", "protocol", "model", "map", "method", "class", "top_channel", "top_in_truth",
                 "truth_mass_ratio", "best_truth_rank"]


def read_truth_channels(truth_path, subject: str) -> dict:
    """Class -> discriminative channel names of ``subject`` from the simulator's ``truth.json``.

    Raises
    ------
    FileNotFoundError, ValueError, KeyError
        Missing or unreadable file, subject absent, or no ``discriminative_channels`` (named).
    """
    truth_path = Path(truth_path)
    if not truth_path.is_file():
        raise FileNotFoundError(f"{truth_path}: truth file not found")
    try:
        truth = json.loads(truth_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{truth_path}: not valid JSON ({exc})") from exc
    subjects = truth.get("subjects")
    if not isinstance(subjects, dict) or str(subject) not in subjects:
        have = sorted(subjects) if isinstance(subjects, dict) else subjects
        raise KeyError(f"{truth_path}: no subject {subject!r} under 'subjects' (has {have})")
    disc = subjects[str(subject)].get("discriminative_channels")
    if not isinstance(disc, dict) or not disc:
        raise KeyError(f"{truth_path}: subjects.{subject} has no 'discriminative_channels' mapping")
    return {str(k): list(v) for k, v in disc.items()}


def truth_check(pred_paths, truth_channels: dict) -> pd.DataFrame:
    """One row per protocol x model x map (``pattern``, ``importance``) x class.

    Parameters
    ----------
    pred_paths : list of paths
        ``*_pred.h5`` files of one subject (one per protocol).
    truth_channels : dict
        Class -> truth channel names (:func:`read_truth_channels`).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TRUTH_COLUMNS` (see
        :func:`~neuroattn.models.eeg_interpret.importance_truth_agreement`); ``method`` is the
        importance method, or ``power_pattern``. A model without a stored map has no rows for it
        (files written before the pattern existed: importance rows only).
    """
    import h5py

    frames = []
    for p in pred_paths:
        with h5py.File(p, "r") as f:
            protocol = str(f.attrs.get("protocol", Path(p).stem))
            subject = str(f.attrs.get("subject", ""))
            classes = list(f["classes"].asstr()[()])
            ch_names = list(f["ch_names"].asstr()[()])
            for model in f:
                g = f[model]
                if not isinstance(g, h5py.Group):
                    continue
                maps = []
                if "pattern" in g:
                    maps.append(("pattern", "power_pattern", erd_map(g["pattern"][()])))
                if "importance" in g:
                    maps.append(("importance", str(g["importance"].attrs.get("method", "")), g["importance"][()]))
                if not maps:
                    log.warning("%s: model %s has no channel map", p, model)
                for name, method, values in maps:
                    try:
                        a = importance_truth_agreement(values, ch_names, classes, truth_channels)
                    except (KeyError, ValueError) as exc:
                        raise type(exc)(f"{p}: {model}/{name}: {exc}") from exc
                    frames.append(a.assign(subject=subject, protocol=protocol, model=model, map=name, method=method))
    if not frames:
        return pd.DataFrame(columns=TRUTH_COLUMNS)
    return pd.concat(frames, ignore_index=True)[TRUTH_COLUMNS]


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
