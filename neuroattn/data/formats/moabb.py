"""MOABB motor-imagery datasets (``BNCI2014_001`` etc.) through neuroattn's own EEG preprocessing.

MOABB (``pip install 'neuroattn[moabb]'``) downloads and caches the datasets itself (into its
``MNE_DATA`` folder, at a time the user chooses: nothing here downloads on import). It is imported
only when this adapter is used. MOABB's raw recordings
(``dataset.get_data(subjects)`` -> ``{subject: {session: {run: Raw}}}``) go through the same
cleaning, epoching and rejection as BIDS data (``neuroattn.data.eeg.clean_raw`` /
``epoch_recording``), so scores are comparable across input formats. Cue events are read from the
recording's stim channel (MOABB's convention) or, without one, from annotations named like the
dataset's ``event_id`` keys.

Evaluations: MOABB's names map onto neuroattn's protocols (:func:`protocol_from_moabb`):

==========================  ===========  =======================================================
MOABB                       neuroattn    note
==========================  ===========  =======================================================
``CrossSessionEvaluation``  ``within``   ours trains on the first session, tests on the second
                                         (BCI IV 2a T -> E); MOABB averages every held-out session
``CrossSubjectEvaluation``  ``loso``     leave one subject out
``WithinSessionEvaluation`` ``within_session``  stratified 5-fold CV inside each session,
                                         scored per session and averaged (MOABB scores per
                                         fold, ROC-AUC for 2 classes; ours accuracy/kappa)
==========================  ===========  =======================================================
"""
from __future__ import annotations

import importlib
import logging
import re

import numpy as np
import pandas as pd

log = logging.getLogger("neuroattn.formats.moabb")

MOABB_EVALUATIONS = {
    "CrossSessionEvaluation": "within",
    "CrossSubjectEvaluation": "loso",
    "WithinSessionEvaluation": "within_session",
}
_ALIASES = {"cross-session": "CrossSessionEvaluation", "crosssession": "CrossSessionEvaluation",
            "cross-subject": "CrossSubjectEvaluation", "crosssubject": "CrossSubjectEvaluation",
            "within-session": "WithinSessionEvaluation", "withinsession": "WithinSessionEvaluation"}
INSTALL_HINT = "pip install 'neuroattn[moabb]' (or: pip install moabb)"


def protocol_from_moabb(name: str) -> str:
    """neuroattn protocol (``within`` / ``within_session`` / ``loso``) for a MOABB evaluation name.

    Accepts the class names (``CrossSessionEvaluation``) and the short forms (``cross-session``,
    ``cross-subject``, ``within-session``, any case, ``_`` or ``-``).

    Raises
    ------
    ValueError
        An unknown name.
    """
    key = str(name).strip()
    key = _ALIASES.get(key.lower().replace("_", "-").replace("evaluation", "").strip("-"), key)
    if key not in MOABB_EVALUATIONS:
        raise ValueError(f"unknown MOABB evaluation {name!r} (known: {sorted(MOABB_EVALUATIONS)} or "
                         f"{sorted(set(_ALIASES) - {'crosssession', 'crosssubject', 'withinsession'})})")
    return MOABB_EVALUATIONS[key]


def import_moabb():
    """Import moabb, or raise an ImportError that says how to install it."""
    try:
        return importlib.import_module("moabb")
    except ImportError as exc:
        raise ImportError(f"the MOABB adapter (eeg.format: moabb) needs the optional package moabb: {INSTALL_HINT}") from exc


def get_dataset(name: str):
    """A MOABB dataset instance by class name (``BNCI2014_001``, ``BNCI2014_004``, ``PhysionetMI``...)."""
    import_moabb()
    datasets = importlib.import_module("moabb.datasets")
    cls = getattr(datasets, name, None)
    if cls is None:
        known = sorted(n for n in dir(datasets) if not n.startswith("_") and n[0].isupper())
        raise ValueError(f"moabb.datasets has no dataset {name!r} (available: {known[:40]})")
    return cls()


def cue_table(raw, event_id: dict, source: str = "") -> pd.DataFrame:
    """``onset, duration, trial_type`` of the cues in one MOABB recording.

    From the stim channel when there is one (codes of ``event_id``), else from annotations whose
    description is a key of ``event_id``.
    """
    import mne

    code_to_name = {int(v): k for k, v in event_id.items()}
    stim = mne.pick_types(raw.info, stim=True, eeg=False)
    if len(stim):
        ev = mne.find_events(raw, stim_channel=raw.ch_names[stim[0]], shortest_event=0, verbose=False)
        ev = ev[np.isin(ev[:, 2], list(code_to_name))]
        onset = (ev[:, 0] - raw.first_samp) / raw.info["sfreq"]
        names = [code_to_name[c] for c in ev[:, 2]]
    else:
        t0 = raw.first_samp / raw.info["sfreq"]
        keep = [i for i, d in enumerate(raw.annotations.description) if d in event_id]
        onset = np.array([raw.annotations.onset[i] - t0 for i in keep])
        names = [raw.annotations.description[i] for i in keep]
    if not len(names):
        raise ValueError(f"{source}: no cue of {sorted(event_id)} in the stim channel or annotations")
    return pd.DataFrame({"onset": onset, "duration": 0.0, "trial_type": names})


def preprocess_subject(dataset, subject, cfg: dict | None = None):
    """Epochs of one subject of a MOABB dataset (every session and run), cleaned like BIDS data.

    Parameters
    ----------
    dataset : str or moabb dataset
        E.g. ``"BNCI2014_001"``.
    subject : str or int
        MOABB subject id (``1`` or ``"01"``).
    cfg : dict, optional
        The ``eeg:`` config section; ``events`` names keys of the dataset's ``event_id``.

    Returns
    -------
    epochs : mne.Epochs
    table : DataFrame
    """
    import mne

    from ..eeg import clean_raw, concat_epochs, epoch_recording, preprocess_settings

    ds = get_dataset(dataset) if isinstance(dataset, str) else dataset
    name = getattr(ds, "code", type(ds).__name__)
    cfg = preprocess_settings(cfg)
    classes = list(cfg["events"])
    unknown = [c for c in classes if c not in ds.event_id]
    if unknown:
        raise ValueError(f"config eeg.events {unknown} are not events of MOABB {name} ({sorted(ds.event_id)})")
    m = re.fullmatch(r"(?:sub-)?0*(\d+)", str(subject))
    if not m:
        raise ValueError(f"MOABB subject must be a number like 1 or '01', got {subject!r}")
    sid = int(m.group(1))
    data = ds.get_data(subjects=[sid])
    if sid not in data:
        raise ValueError(f"MOABB {name}: no subject {sid} (subjects {getattr(ds, 'subject_list', '?')})")
    label = f"{sid:02d}"
    ep_all, tables = [], []
    for session in sorted(data[sid]):
        for run in sorted(data[sid][session]):
            raw = data[sid][session][run].copy().load_data()
            src = f"MOABB {name} subject {sid} session {session} run {run}"
            cues = cue_table(raw, ds.event_id, src)
            cues = cues[cues["trial_type"].isin(classes)]
            if cues.empty:
                continue
            clean_raw(raw, l_freq=cfg["l_freq"], h_freq=cfg["h_freq"], notch=cfg["notch"],
                      resample=cfg["resample"], source=src)
            ep, tab = epoch_recording(raw, cues, classes, tmin=cfg["tmin"], tmax=cfg["tmax"],
                                      reject_uv=cfg["reject_uv"],
                                      meta={"subject": label, "session": str(session), "run": str(run)}, source=src)
            ep.set_annotations(None)
            ep_all.append(ep)
            tables.append(tab)
    epochs, table = concat_epochs(ep_all, tables, classes, f"MOABB {name} subject {sid}")
    return epochs, table
