"""BCI Competition IV dataset 2a (Graz, 9 subjects, 4-class motor imagery) from its GDF files.

Expected folder tree (the competition release; the evaluation labels were published later as
``.mat`` files, looked for next to the GDF files or in ``true_labels/``)::

    <root>/A01T.gdf  A01E.gdf  ...  A09T.gdf  A09E.gdf
    <root>/A01E.mat ...            (or <root>/true_labels/A01E.mat)   variable ``classlabel`` (288, 1)

Each GDF holds 22 EEG channels (``EEG-Fz``, ``EEG-0`` ... ``EEG-16``, ``EEG-C3``, ``EEG-Cz``,
``EEG-C4``, ``EEG-Pz``; renamed to 10-20 names, :data:`CHANNELS_1020`) and 3 EOG channels
(``EOG-left``, ``EOG-central``, ``EOG-right``; typed ``eog`` and dropped by the EEG cleaning) at
250 Hz. Events (GDF event table, read by MNE as annotations):

======  ===============================================================================
768     start of a trial; the cue follows 2 s later
769     cue left hand (class ``left_hand``)     770  cue right hand (``right_hand``)
771     cue feet (``feet``)                     772  cue tongue (``tongue``)
783     cue of unknown class (evaluation session ``E``): the class is the trial's entry of
        ``classlabel`` (1..4 in the order above) in ``A0xE.mat``
1023    rejected trial (marked by the organisers): its cue is dropped, reason ``BAD_rejected``
32766   start of a new run (numbers the ``run`` metadata)
======  ===============================================================================

Sessions are ``0train`` (``T`` file) and ``1test`` (``E`` file), so the ``within`` protocol
(first session sorted = training) trains on T and tests on E, as the competition did.
:func:`preprocess_subject` returns ``(mne.Epochs, table)`` like
``neuroattn.data.eeg.preprocess_subject`` (same cleaning, epoching and rejection settings).
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("neuroattn.formats.bnci2a")

#: GDF channel labels of the 22 EEG electrodes, in file order.
GDF_EEG_CHANNELS = ["EEG-Fz", "EEG-0", "EEG-1", "EEG-2", "EEG-3", "EEG-4", "EEG-5", "EEG-C3", "EEG-6",
                    "EEG-Cz", "EEG-7", "EEG-C4", "EEG-8", "EEG-9", "EEG-10", "EEG-11", "EEG-12", "EEG-13",
                    "EEG-14", "EEG-Pz", "EEG-15", "EEG-16"]
#: Their 10-20 names (the dataset description's montage).
CHANNELS_1020 = ["Fz", "FC3", "FC1", "FCz", "FC2", "FC4", "C5", "C3", "C1", "Cz", "C2", "C4", "C6", "CP3",
                 "CP1", "CPz", "CP2", "CP4", "P1", "Pz", "P2", "POz"]
EOG_CHANNELS = ["EOG-left", "EOG-central", "EOG-right"]
#: Cue event codes -> class names (``classlabel`` 1..4 follows the same order).
CUE_CODES = {769: "left_hand", 770: "right_hand", 771: "feet", 772: "tongue"}
UNKNOWN_CUE, REJECTED, NEW_RUN = 783, 1023, 32766
SESSIONS = {"T": "0train", "E": "1test"}
#: Longest span from a 1023 mark to its trial's cue (the trial starts at the mark, the cue is at 2 s).
_REJECT_WINDOW_S = 6.0


def subject_number(subject) -> int:
    """``1``..``9`` from ``1``, ``'01'``, ``'A01'``."""
    m = re.fullmatch(r"A?0*(\d+)", str(subject))
    if not m or int(m.group(1)) < 1:
        raise ValueError(f"BCI IV 2a subject must be a number like '01' or 'A01', got {subject!r}")
    return int(m.group(1))


def gdf_path(root, subject, session: str) -> Path:
    return Path(root) / f"A{subject_number(subject):02d}{session}.gdf"


def labels_path(root, subject, session: str = "E") -> Path | None:
    """The ``A0xS.mat`` true-label file, next to the GDF or under ``true_labels/``; None if absent."""
    name = f"A{subject_number(subject):02d}{session}.mat"
    for p in (Path(root) / name, Path(root) / "true_labels" / name):
        if p.is_file():
            return p
    return None


def read_classlabel(path) -> np.ndarray:
    """``classlabel`` (1..4) of a true-label ``.mat`` file as class indices 0..3."""
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except (OSError, ValueError, NotImplementedError) as exc:
        raise ValueError(f"{path}: cannot read MATLAB file ({exc})") from exc
    if "classlabel" not in mat:
        raise ValueError(f"{path}: no variable 'classlabel' (has {[k for k in mat if not k.startswith('__')]})")
    lab = np.asarray(mat["classlabel"]).ravel().astype(int)
    bad = lab[(lab < 1) | (lab > len(CUE_CODES))]
    if bad.size:
        raise ValueError(f"{path}: classlabel values must be 1..{len(CUE_CODES)}, found {sorted(set(bad.tolist()))}")
    return lab - 1


def read_gdf(path):
    """The raw recording (EEG renamed to 10-20, EOG typed ``eog``) and its annotations."""
    import mne

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: BCI IV 2a GDF file not found")
    try:
        raw = mne.io.read_raw_gdf(path, eog=EOG_CHANNELS, preload=True, verbose=False)
    except Exception as exc:  # noqa: BLE001 -- MNE raises many types on broken files
        raise ValueError(f"{path}: cannot read GDF ({type(exc).__name__}: {exc})") from exc
    missing = [c for c in GDF_EEG_CHANNELS if c not in raw.ch_names]
    if missing:
        raise ValueError(f"{path}: EEG channel(s) {missing} missing (expected the 22 BCI IV 2a channels {GDF_EEG_CHANNELS})")
    raw.rename_channels(dict(zip(GDF_EEG_CHANNELS, CHANNELS_1020)))
    data = raw.get_data(picks="eeg")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: NaN/inf samples in the EEG channels")
    return raw


def cue_table(raw, path, labels: np.ndarray | None = None, label_file=None) -> pd.DataFrame:
    """One row per cue: ``onset``, ``duration``, ``trial_type`` (class name), ``run``, ``rejected``.

    Parameters
    ----------
    raw : mne.io.Raw
        With the GDF events as annotations (descriptions are the event codes).
    path : path
        The GDF (for messages).
    labels : ndarray of int, optional
        Class indices of the unknown cues (783), in order (evaluation session).
    label_file : path, optional
        Where ``labels`` came from (for messages).

    Raises
    ------
    ValueError
        No cue events, unknown cues without labels, or a label count that differs from the cues.
    """
    ann = raw.annotations
    codes = np.array([int(d) if re.fullmatch(r"\d+", str(d)) else -1 for d in ann.description])
    onset = np.asarray(ann.onset, dtype=float) - (raw.first_samp / raw.info["sfreq"])
    known = np.isin(codes, list(CUE_CODES))
    unknown = codes == UNKNOWN_CUE
    if not known.any() and not unknown.any():
        present = sorted(set(codes[codes >= 0].tolist()))
        raise ValueError(f"{path}: no cue event (expected codes {sorted(CUE_CODES)} in a training file or "
                         f"{UNKNOWN_CUE} in an evaluation file); event codes present: {present}")
    if unknown.any():
        if labels is None:
            raise ValueError(f"{path}: {int(unknown.sum())} cue(s) of unknown class ({UNKNOWN_CUE}) and no "
                             f"true-label file (A0xE.mat with 'classlabel' next to it or in true_labels/)")
        if len(labels) != int(unknown.sum()):
            raise ValueError(f"{label_file}: {len(labels)} class labels for {int(unknown.sum())} cues "
                             f"({UNKNOWN_CUE}) in {Path(path).name}")
    cue = known | unknown
    names = np.empty(len(codes), dtype=object)
    names[known] = [CUE_CODES[c] for c in codes[known]]
    if unknown.any():
        classes = list(CUE_CODES.values())
        names[unknown] = [classes[i] for i in labels]
    run = np.cumsum(codes == NEW_RUN)
    run = run - (run.min() if (codes == NEW_RUN).any() else 0)
    table = pd.DataFrame({"onset": onset[cue], "duration": np.asarray(ann.duration)[cue],
                          "trial_type": names[cue], "code": codes[cue], "run": run[cue].astype(str)})
    table["rejected"] = False
    cue_on = table["onset"].to_numpy()
    for t in onset[codes == REJECTED]:
        after = np.flatnonzero((cue_on >= t - 1e-6) & (cue_on < t + _REJECT_WINDOW_S))
        if after.size:
            table.loc[after[0], "rejected"] = True
    return table.sort_values("onset", kind="stable").reset_index(drop=True)


def mark_rejected(raw, table: pd.DataFrame, tmin: float, tmax: float) -> None:
    """Add a ``BAD_rejected`` annotation over the epoch window of every rejected cue (in place)."""
    rej = table[table["rejected"]]
    if len(rej):
        t0 = raw.first_samp / raw.info["sfreq"]
        raw.annotations.append(rej["onset"].to_numpy() + tmin + t0, np.full(len(rej), tmax - tmin),
                               ["BAD_rejected"] * len(rej))


def preprocess_subject(root, subject, cfg: dict | None = None, drop_rejected: bool = True):
    """Epochs of one subject's T and E sessions, cleaned like ``neuroattn.data.eeg``.

    Parameters
    ----------
    root : path
        Folder with ``A0xT.gdf`` / ``A0xE.gdf`` (and the ``A0xE.mat`` labels).
    subject : str or int
    cfg : dict, optional
        The ``eeg:`` config section (defaults from config.yaml, :func:`neuroattn.data.eeg.preprocess_settings`).
    drop_rejected : bool
        Drop the trials the organisers marked rejected (1023).

    Returns
    -------
    epochs : mne.Epochs
        ``event_id`` in ``cfg['events']`` order, metadata ``subject, session, run, label, onset``.
    table : DataFrame
        Every cue of a configured class with ``kept`` and ``drop_reason``.
    """
    import mne

    from ..eeg import clean_raw, concat_epochs, epoch_recording, preprocess_settings

    cfg = preprocess_settings(cfg)
    classes = list(cfg["events"])
    unknown_cls = [c for c in classes if c not in CUE_CODES.values()]
    if unknown_cls:
        raise ValueError(f"config eeg.events {unknown_cls} are not BCI IV 2a classes {list(CUE_CODES.values())}")
    label = f"{subject_number(subject):02d}"
    found = {s: gdf_path(root, subject, s) for s in SESSIONS if gdf_path(root, subject, s).is_file()}
    if not found:
        raise FileNotFoundError(f"{gdf_path(root, subject, 'T')}: no BCI IV 2a GDF file for subject {label} (A{label}T.gdf / A{label}E.gdf)")
    epochs_all, tables = [], []
    for ses, path in found.items():
        raw = read_gdf(path)
        lab_file = labels_path(root, subject, ses)
        labels = read_classlabel(lab_file) if lab_file is not None else None
        table = cue_table(raw, path, labels, lab_file)
        if drop_rejected:
            mark_rejected(raw, table, cfg["tmin"], cfg["tmax"])
        clean_raw(raw, l_freq=cfg["l_freq"], h_freq=cfg["h_freq"], notch=cfg["notch"], resample=cfg["resample"],
                  source=str(path))
        t = table[table["trial_type"].isin(classes)].reset_index(drop=True)
        ep, tab = [], []
        for run, part in t.groupby("run", sort=True):
            meta = {"subject": label, "session": SESSIONS[ses], "run": run}
            e, tb = epoch_recording(raw, part, classes, tmin=cfg["tmin"], tmax=cfg["tmax"],
                                    reject_uv=cfg["reject_uv"], meta=meta, source=str(path))
            ep.append(e)
            tab.append(tb)
        log.info("%s: %d cues (%d rejected by the organisers), %d kept", path.name, len(t),
                 int(t["rejected"].sum()), sum(len(e) for e in ep))
        epochs_all += ep
        tables += tab
    epochs, table = concat_epochs(epochs_all, tables, classes, f"sub-{label}")
    return epochs, table
