"""PhysioNet EEG Motor Movement/Imagery Dataset (EEGMMIDB, Schalk et al. 2004) from its EDF files.

Expected folder tree (the PhysioNet release, 109 subjects, 14 runs each, 64 channels, 160 Hz)::

    <root>/S001/S001R01.edf ... S001R14.edf
    <root>/S002/...

Each run's EDF carries annotations ``T0`` (rest), ``T1`` and ``T2``, whose meaning depends on the
run (:data:`RUN_EVENTS`):

=================  ========================================  ===========================
runs               task                                      T1 / T2
=================  ========================================  ===========================
1, 2               baseline, eyes open / closed              (none)
3, 7, 11           open and close left or right fist         move_left_hand / move_right_hand
4, 8, 12           imagine opening left or right fist        left_hand / right_hand
5, 9, 13           open and close both fists or both feet    move_hands / move_feet
6, 10, 14          imagine both fists or both feet           hands / feet
=================  ========================================  ===========================

``T0`` is ``rest`` everywhere. Channel names (``Fc5.``, ``Cz..``) are standardised to 10-20
spelling (``FC5``, ``Cz``) with :func:`mne.datasets.eegbci.standardize`. All runs of a subject
form one session (``01``); the ``run`` metadata is the run number, so the data suit the ``loso``
protocol (the ``within`` protocol needs two sessions). :func:`preprocess_subject` returns
``(mne.Epochs, table)`` like ``neuroattn.data.eeg.preprocess_subject``.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

log = logging.getLogger("neuroattn.formats.eegmmidb")

_LR_REAL = {"T0": "rest", "T1": "move_left_hand", "T2": "move_right_hand"}
_LR_IMAG = {"T0": "rest", "T1": "left_hand", "T2": "right_hand"}
_FF_REAL = {"T0": "rest", "T1": "move_hands", "T2": "move_feet"}
_FF_IMAG = {"T0": "rest", "T1": "hands", "T2": "feet"}
#: Run number -> {annotation: class name}.
RUN_EVENTS = {1: {"T0": "rest"}, 2: {"T0": "rest"}}
for _r in (3, 7, 11):
    RUN_EVENTS[_r] = _LR_REAL
for _r in (4, 8, 12):
    RUN_EVENTS[_r] = _LR_IMAG
for _r in (5, 9, 13):
    RUN_EVENTS[_r] = _FF_REAL
for _r in (6, 10, 14):
    RUN_EVENTS[_r] = _FF_IMAG
#: Imagery runs (the usual motor-imagery benchmark selection).
IMAGERY_RUNS = (4, 6, 8, 10, 12, 14)


def subject_number(subject) -> int:
    m = re.fullmatch(r"S?0*(\d+)", str(subject))
    if not m or int(m.group(1)) < 1:
        raise ValueError(f"EEGMMIDB subject must be a number like '001' or 'S001', got {subject!r}")
    return int(m.group(1))


def run_path(root, subject, run: int) -> Path:
    s = subject_number(subject)
    return Path(root) / f"S{s:03d}" / f"S{s:03d}R{int(run):02d}.edf"


def read_run(path, run: int):
    """The raw run (standardised channel names) and its cue table (``onset, duration, trial_type``).

    Raises
    ------
    FileNotFoundError, ValueError
        Missing/unreadable file, or no ``T1``/``T2`` annotation in a task run (named).
    """
    import mne
    from mne.datasets import eegbci

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: EEGMMIDB run file not found (expected <root>/SXXX/SXXXRYY.edf)")
    if int(run) not in RUN_EVENTS:
        raise ValueError(f"{path}: run {run} is not an EEGMMIDB run (1..14)")
    try:
        raw = mne.io.read_raw_edf(path, preload=True, verbose=False)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"{path}: cannot read EDF ({type(exc).__name__}: {exc})") from exc
    eegbci.standardize(raw)
    mapping = RUN_EVENTS[int(run)]
    ann = raw.annotations
    desc = [str(d).strip() for d in ann.description]
    if int(run) > 2 and not {"T1", "T2"} & set(desc):
        raise ValueError(f"{path}: no T1/T2 annotation (expected task cues of run {run}: {mapping}); "
                         f"annotations present: {sorted(set(desc))}")
    t0 = raw.first_samp / raw.info["sfreq"]
    rows = [(o - t0, d, mapping[k]) for o, d, k in zip(ann.onset, ann.duration, desc) if k in mapping]
    return raw, pd.DataFrame(rows, columns=["onset", "duration", "trial_type"])


def preprocess_subject(root, subject, cfg: dict | None = None, runs=IMAGERY_RUNS):
    """Epochs of the configured classes over ``runs`` of one subject.

    Parameters
    ----------
    root : path
        Folder holding ``SXXX/``.
    subject : str or int
    cfg : dict, optional
        The ``eeg:`` config section; ``events`` names classes of :data:`RUN_EVENTS` (e.g.
        ``[left_hand, right_hand, hands, feet]``).
    runs : sequence of int
        Runs to read (default the imagery runs).

    Returns
    -------
    epochs : mne.Epochs
    table : DataFrame
    """
    import mne

    from ..eeg import clean_raw, concat_epochs, epoch_recording, preprocess_settings

    cfg = preprocess_settings(cfg)
    classes = list(cfg["events"])
    available = {c for r in runs for c in RUN_EVENTS.get(int(r), {}).values()}
    missing = [c for c in classes if c not in available]
    if missing:
        raise ValueError(f"config eeg.events {missing} do not occur in EEGMMIDB runs {list(runs)} "
                         f"(their classes: {sorted(available)})")
    label = f"{subject_number(subject):03d}"
    ep_all, tables, ch_names = [], [], None
    for run in runs:
        path = run_path(root, subject, run)
        raw, cues = read_run(path, run)
        cues = cues[cues["trial_type"].isin(classes)]
        if cues.empty:
            continue
        clean_raw(raw, l_freq=cfg["l_freq"], h_freq=cfg["h_freq"], notch=cfg["notch"], resample=cfg["resample"],
                  source=str(path))
        meta = {"subject": label, "session": "01", "run": f"{int(run):02d}"}
        ep, tab = epoch_recording(raw, cues, classes, tmin=cfg["tmin"], tmax=cfg["tmax"],
                                  reject_uv=cfg["reject_uv"], meta=meta, source=str(path))
        if ch_names is None:
            ch_names = ep.ch_names
        elif ep.ch_names != ch_names:
            raise ValueError(f"{path}: channels differ from the subject's first run")
        ep.set_annotations(None)
        ep_all.append(ep)
        tables.append(tab)
    epochs, table = concat_epochs(ep_all, tables, classes, f"sub-{label} (runs {list(runs)})")
    return epochs, table
