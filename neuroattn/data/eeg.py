"""EEG preprocessing (MNE, mne-bids): BIDS recordings -> labelled epochs, and what models read.

Pipeline per subject (:func:`preprocess_subject`), for every run of the task found by
:func:`mne_bids.find_matching_paths` (any format MNE reads: EDF, BDF, BrainVision, EEGLAB,
FIF, GDF):

1. read with :func:`mne_bids.read_raw_bids`; a truncated or unreadable file, NaN/inf samples, or
   events past the end of the recording raise ``ValueError`` naming the file;
2. keep EEG channels (``channels.tsv`` types), set the ``standard_1020`` montage when the file
   carries no positions, interpolate channels marked bad when positions are known;
3. band-pass ``l_freq``-``h_freq`` (FIR, zero phase), optional notch at ``notch`` Hz and
   harmonics, optional resampling to ``resample`` Hz;
4. epochs from the cue events of the configured classes (``events``, in that order; codes
   1..K; ``events`` may also map each label to the ``trial_type`` value(s) meaning it),
   window ``tmin`` .. ``tmax - 1/sfreq`` (so 4 s at 250 Hz gives 1000 samples), no baseline; epochs whose peak-to-peak amplitude exceeds ``reject_uv`` microvolts are dropped
   (counted in the log and in the table). Event types present in the data but not configured are
   ignored with a log line; a configured class missing from the subject's data is an error
   naming its events files.

Outputs (:func:`write_epochs`): ``*_epo.fif`` (an :class:`mne.Epochs` with metadata columns
``subject``, ``session``, ``run``, ``label``, ``onset``) and ``*_desc-epochs.tsv`` listing every
cue of a configured class, with the same columns plus ``kept`` (bool) and ``drop_reason``
(``n/a`` for kept epochs). Sessions/runs are ``n/a`` when the dataset has no such entity.

Reader for the stages: :func:`load_epochs` -> :class:`EEGData`. The array-level
:class:`ChannelStandardizer` and :func:`euclidean_alignment` live in
:mod:`neuroattn.models.eeg_preprocess` (re-exported here).
"""
from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from neuroattn.models.eeg_preprocess import ChannelStandardizer, alignment_matrix, euclidean_alignment  # noqa: F401 (re-export)
from neuroattn.utils import atomic_path

logger = logging.getLogger("neuroattn.eeg")

#: File extensions of the EEG formats read through mne-bids.
EEG_EXTENSIONS = (".edf", ".bdf", ".vhdr", ".set", ".fif", ".gdf")
_NA = "n/a"


def event_mapping(events) -> dict[str, list[str]]:
    """Normalise config ``eeg.events`` to ``{label: [trial_type, ...]}`` (label order kept).

    ``events`` is a list of class names (each its own ``trial_type``) or a mapping from a class
    label to the ``trial_type`` value(s) that mean it, e.g. ``{left_hand: [left, "769"]}``.
    """
    if isinstance(events, str):
        raise ValueError(f"config key eeg.events: {events!r} is not a list of classes or a mapping; 'auto' (every "
                         "trial type found) is read from the BIDS events tables (eeg.format: bids) only")
    if isinstance(events, dict):
        mapping = {str(k): [str(v)] if isinstance(v, (str, int)) else [str(x) for x in v] for k, v in events.items()}
    else:
        mapping = {str(e): [str(e)] for e in events}
    if len(mapping) < 2 or (not isinstance(events, dict) and len(mapping) != len(list(events))):
        raise ValueError(f"config eeg.events needs at least two distinct classes, got {events!r}")
    owners: dict[str, str] = {}
    for label, types in mapping.items():
        for t in types:
            if t in owners and owners[t] != label:
                raise ValueError(f"config eeg.events maps trial_type {t!r} to both {owners[t]!r} and {label!r}")
            owners[t] = label
    return mapping


# --------------------------------------------------------------------------------------------
# discovery and reading
# --------------------------------------------------------------------------------------------
def list_subjects(bids_root: str | os.PathLike) -> list[str]:
    """Subject labels (without ``sub-``) of a BIDS dataset, via :func:`mne_bids.get_entity_vals`."""
    from mne_bids import get_entity_vals

    return sorted(get_entity_vals(bids_root, "subject"))


def find_recordings(bids_root: str | os.PathLike, subject: str, task: str) -> list:
    """The EEG recordings of one subject and task, sorted by session and run.

    Returns
    -------
    list of mne_bids.BIDSPath

    Raises
    ------
    FileNotFoundError
        When the dataset holds no EEG recording of ``sub-<subject>`` for ``task``.
    """
    from mne_bids import find_matching_paths

    paths = find_matching_paths(
        bids_root, subjects=subject, tasks=task, datatypes="eeg", suffixes="eeg",
        extensions=list(EEG_EXTENSIONS),
    )
    paths = [p for p in paths if p.split is None or p.split == "01"]
    if not paths:
        raise FileNotFoundError(
            f"{bids_root}: no EEG recording of sub-{subject} for task {task!r} "
            f"(looked for sub-{subject}/[ses-*/]eeg/*_task-{task}_*_eeg{{{','.join(EEG_EXTENSIONS)}}})"
        )
    return sorted(paths, key=lambda p: (p.session or "", p.run or "", str(p.fpath)))


def _events_path(bp):
    return bp.copy().update(suffix="events", extension=".tsv").fpath


def read_events_table(bp) -> pd.DataFrame:
    """Read and check the ``_events.tsv`` of a recording (columns ``onset``, ``trial_type``)."""
    path = _events_path(bp)
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: events file missing for {bp.fpath}")
    try:
        ev = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        raise ValueError(f"{path}: cannot parse events table ({exc})") from exc
    missing = {"onset", "trial_type"} - set(ev.columns)
    if missing:
        raise ValueError(f"{path}: events table lacks column(s) {sorted(missing)}")
    if not np.isfinite(pd.to_numeric(ev["onset"], errors="coerce")).all():
        raise ValueError(f"{path}: non-numeric or missing onsets")
    ev["trial_type"] = ev["trial_type"].astype(str)
    return ev


def recording_files(bp) -> str:
    """The recording's file(s) for messages: a BrainVision header with its binary, an EEGLAB .set
    with its .fdt (when present), else the file itself."""
    f = Path(bp.fpath)
    extra = {".vhdr": ".eeg", ".set": ".fdt"}.get(f.suffix)
    if extra and f.with_suffix(extra).exists():
        return f"{f} (data {f.with_suffix(extra).name})"
    return str(f)


def read_recording(bp):
    """Read one BIDS EEG recording (preloaded), refusing truncated/corrupt files and NaNs.

    Parameters
    ----------
    bp : mne_bids.BIDSPath

    Returns
    -------
    mne.io.Raw
    """
    from mne_bids import read_raw_bids

    fpath = bp.fpath
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            raw = read_raw_bids(bp, verbose=False)
            raw.load_data(verbose=False)
        except Exception as exc:  # noqa: BLE001 - re-raised with the file named
            raise ValueError(f"{fpath}: cannot read EEG recording ({type(exc).__name__}: {exc})") from exc
    for w in caught:
        msg = str(w.message)
        if "does not match the file size" in msg or "truncat" in msg.lower():
            raise ValueError(f"{recording_files(bp)}: truncated or corrupt EEG file ({msg})")
        if "outside data range" in msg:
            raise ValueError(f"{_events_path(bp)}: events past the end of the recording {recording_files(bp)} ({msg})")
        logger.debug("%s: %s", fpath, msg)
    data = raw.get_data()
    if not np.isfinite(data).all():
        bad = sorted({raw.ch_names[i] for i in np.flatnonzero(~np.isfinite(data).all(axis=1))})
        raise ValueError(f"{fpath}: NaN or infinite samples in channel(s) {bad}")
    return raw


def resolve_task(bids_root, task: str, section: str = "eeg") -> str:
    """``task`` itself, or for ``auto`` the dataset's only task (:func:`mne_bids.get_entity_vals`).

    Raises
    ------
    ValueError
        ``auto`` with no task, or with several (listing them), in ``bids_root``.
    """
    if task != "auto":
        return task
    from mne_bids import get_entity_vals

    tasks = sorted(get_entity_vals(bids_root, "task"))
    if len(tasks) != 1:
        raise ValueError(f"config key {section}.task: 'auto' needs a dataset with exactly one task, "
                         f"{bids_root} has {tasks or 'none'}; set {section}.task to one of them")
    logger.info("%s.task auto: %s (the only task of %s)", section, tasks[0], bids_root)
    return tasks[0]


def auto_events(paths, subject: str) -> list[str]:
    """``eeg.events: auto``: every ``trial_type`` of the recordings' events tables (sorted), logged."""
    types = sorted({t for bp in paths for t in read_events_table(bp)["trial_type"] if isinstance(t, str) and t not in ("", "n/a", "nan")})
    logger.info("sub-%s: eeg.events auto -> %d trial types %s (from %s)", subject, len(types), types,
                ", ".join(str(_events_path(bp)) for bp in paths))
    if len(types) < 2:
        raise ValueError(f"config key eeg.events: 'auto' found {types} in sub-{subject}'s events "
                         f"({', '.join(str(_events_path(bp)) for bp in paths)}); at least two classes are needed")
    return types


# --------------------------------------------------------------------------------------------
# preprocessing
# --------------------------------------------------------------------------------------------
def _has_positions(raw) -> bool:
    locs = np.array([ch["loc"][:3] for ch in raw.info["chs"]])
    return bool(np.isfinite(locs).all() and (np.abs(locs).sum(axis=1) > 0).all())


def clean_raw(raw, *, l_freq=0.5, h_freq=40.0, notch=None, resample=None, source=""):
    """EEG channels, montage, band-pass, notch and resampling, in place. Returns ``raw``."""
    from neuroattn.data.simulate_eeg import standard_1020_name

    try:
        raw.pick("eeg", exclude=[])
    except ValueError as exc:
        raise ValueError(f"{source}: no EEG channels ({exc})") from exc
    if not _has_positions(raw):
        raw.set_montage(standard_1020_name(), match_case=False, on_missing="ignore", verbose=False)
    if raw.info["bads"]:
        if _has_positions(raw):
            logger.info("%s: interpolating bad channel(s) %s", source, raw.info["bads"])
            raw.interpolate_bads(reset_bads=True, verbose=False)
        else:
            logger.warning("%s: bad channel(s) %s kept (no positions to interpolate)", source, raw.info["bads"])
            raw.info["bads"] = []
    if l_freq is not None or h_freq is not None:
        raw.filter(l_freq, h_freq, picks="eeg", n_jobs=1, verbose=False)
    if notch:
        freqs = np.arange(notch, raw.info["sfreq"] / 2, notch)
        if len(freqs):
            raw.notch_filter(freqs, picks="eeg", n_jobs=1, verbose=False)
    if resample and resample != raw.info["sfreq"]:
        raw.resample(resample, npad="auto", n_jobs=1, verbose=False)
    return raw


def concat_epochs(epochs_list, tables, classes, who: str):
    """Join the epochs and epoch tables of several recordings of one subject.

    Annotations are dropped (they differ between recordings) and ``event_id`` follows ``classes``.
    Raises naming ``who`` when no cue was found or every epoch was rejected.
    """
    import mne

    if not tables:
        raise ValueError(f"{who}: no cue of {list(classes)} in its recordings")
    table = pd.concat(tables, ignore_index=True)
    kept = [e for e in epochs_list if len(e)]
    if not kept:
        raise ValueError(f"{who}: every epoch was rejected")
    for e in kept:
        e.set_annotations(None)
    epochs = mne.concatenate_epochs(kept, add_offset=True, verbose=False)
    epochs.event_id = {c: i + 1 for i, c in enumerate(classes)}
    return epochs, table


def epoch_recording(raw, events_table, classes, *, tmin, tmax, reject_uv, meta, source="", recording=""):
    """Epochs of the configured classes in one recording.

    ``classes`` is config ``eeg.events`` (a list of names or a label -> trial_type(s) mapping,
    see :func:`event_mapping`); epoch codes are 1..K in that order.

    Returns
    -------
    epochs : mne.Epochs
        Kept epochs with metadata (``meta`` columns + ``label``, ``onset``).
    table : pandas.DataFrame
        Every cue of a configured class: metadata + ``kept`` + ``drop_reason``.
    """
    import mne

    sfreq = raw.info["sfreq"]
    mapping = event_mapping(classes)
    classes = list(mapping)
    to_label = {t: lab for lab, types in mapping.items() for t in types}
    ev = events_table[events_table["trial_type"].isin(to_label)].sort_values("onset", kind="stable")
    ev = ev.assign(label=ev["trial_type"].map(to_label))
    codes = {c: i + 1 for i, c in enumerate(classes)}
    onset = ev["onset"].to_numpy(float)
    end = raw.times[-1] + 1.0 / sfreq
    late = onset + tmax > end + 1e-9
    if late.any() or (onset + tmin < -1e-9).any():
        raise ValueError(
            f"{source}: {int(late.sum())} event(s) past the end of the recording {recording} "
            f"(last epoch ends at {onset.max() + tmax:.3f} s, recording lasts {end:.3f} s)"
        )
    samples = np.round(onset * sfreq).astype(int) + raw.first_samp
    if len(np.unique(samples)) != len(samples):
        raise ValueError(f"{source}: two cue events at the same sample")
    events = np.column_stack([samples, np.zeros(len(samples), int), ev["label"].map(codes).to_numpy()])
    md = pd.DataFrame({**meta, "label": ev["label"].to_numpy(), "onset": onset})
    for k in meta:
        md[k] = md[k].astype(str)
    reject = None if reject_uv is None else {"eeg": float(reject_uv) * 1e-6}
    epochs = mne.Epochs(
        raw, events, event_id=codes, tmin=tmin, tmax=tmax - 1.0 / sfreq, baseline=None,
        reject=reject, preload=True, reject_by_annotation=True, metadata=md, on_missing="ignore",
        event_repeated="error", verbose=False,
    )
    reasons = [", ".join(r) for r in epochs.drop_log]
    table = md.assign(kept=[r == "" for r in reasons], drop_reason=[r or _NA for r in reasons])
    check_cue_coverage(events_table, to_label, table, source, recording)
    return epochs, table


#: ``drop_log`` reasons that are not a rejection (amplitude: channel names; bad segments: BAD_*):
#: the recording did not cover the cue.
_UNCOVERED = ("NO_DATA", "TOO_SHORT", "IGNORED")


def check_cue_coverage(events_table, to_label: dict, table, events_file, recording) -> None:
    """Refuse cues of ``events_file`` that made no epoch for a reason the rejection table does not
    explain (the recording ``recording`` does not cover them: truncated file, wrong onsets).

    Every cue of a configured ``trial_type`` must have a row in ``table``, kept or dropped by
    amplitude rejection or a ``BAD_*`` annotation.

    Raises
    ------
    ValueError
        Naming both files, the count of cues and of epochs accounted for.
    """
    n_cues = int(events_table["trial_type"].isin(to_label).sum())
    reasons = table["drop_reason"].astype(str) if len(table) else pd.Series([], dtype=str)
    uncovered = reasons.map(lambda r: any(u in r.split(", ") for u in _UNCOVERED))
    accounted = int(len(table) - uncovered.sum())
    if accounted != n_cues:
        raise ValueError(
            f"{events_file}: {n_cues} cue(s) of the configured classes, but the recording {recording} gives "
            f"{accounted} epoch(s) kept or rejected ({int(table['kept'].sum()) if len(table) else 0} kept); "
            f"{n_cues - accounted} cue(s) not covered by the recording ({sorted(set(reasons[uncovered]))}): "
            "truncated file or onsets past its end")


def preprocess_settings(cfg: dict | None = None) -> dict:
    """The ``eeg`` config section ``cfg`` laid over config/config.yaml's (the one source of the
    defaults); keys that section does not have are refused, naming them."""
    from neuroattn.config import with_defaults

    return with_defaults(cfg, "eeg")


def preprocess_subject(bids_root, subject: str, cfg: dict | None = None):
    """Preprocess every run of one subject into epochs (see the module docstring).

    Parameters
    ----------
    bids_root : path
        BIDS dataset root.
    subject : str
        Subject label without ``sub-``.
    cfg : dict, optional
        The ``eeg:`` config section (:func:`preprocess_settings`: defaults from config.yaml,
        unknown keys refused).

    Returns
    -------
    epochs : mne.Epochs
        All kept epochs of the subject, runs concatenated in session/run order; ``event_id``
        maps the configured classes to codes 1..K in config order.
    table : pandas.DataFrame
        One row per configured cue (kept or dropped).
    """
    import mne

    cfg = preprocess_settings(cfg)
    if cfg["tmax"] <= cfg["tmin"]:
        raise ValueError(f"config eeg.tmax ({cfg['tmax']}) must exceed eeg.tmin ({cfg['tmin']})")
    task = resolve_task(bids_root, cfg["task"], "eeg") if cfg["task"] == "auto" else cfg["task"]
    paths = find_recordings(bids_root, subject, task)
    if cfg["events"] == "auto":
        cfg = {**cfg, "events": auto_events(paths, subject)}
    mapping = event_mapping(cfg["events"])
    classes = list(mapping)
    known_types = {t for types in mapping.values() for t in types}
    tables, all_epochs, seen, ch_names, sfreq = [], [], set(), None, None
    for bp in paths:
        src = str(bp.fpath)
        events = read_events_table(bp)
        unknown = sorted(set(events["trial_type"]) - known_types)
        if unknown:
            logger.info("%s: ignoring event type(s) not in config eeg.events: %s", _events_path(bp), unknown)
        seen |= set(events["trial_type"])
        raw = read_recording(bp)
        clean_raw(raw, l_freq=cfg["l_freq"], h_freq=cfg["h_freq"], notch=cfg["notch"],
                  resample=cfg["resample"], source=src)
        meta = {"subject": subject, "session": bp.session or _NA, "run": bp.run or _NA}
        epochs, table = epoch_recording(
            raw, events, mapping, tmin=cfg["tmin"], tmax=cfg["tmax"], reject_uv=cfg["reject_uv"],
            meta=meta, source=f"{_events_path(bp)}", recording=recording_files(bp),
        )
        if ch_names is None:
            ch_names, sfreq = epochs.ch_names, epochs.info["sfreq"]
        elif epochs.info["sfreq"] != sfreq:
            raise ValueError(
                f"{src}: sampling rate {epochs.info['sfreq']} Hz differs from the subject's first run "
                f"({sfreq} Hz); set eeg.resample to bring all runs to one rate"
            )
        elif set(epochs.ch_names) != set(ch_names):
            raise ValueError(f"{src}: channels {epochs.ch_names} differ from the subject's first run {ch_names}")
        epochs.reorder_channels(ch_names)
        epochs.set_annotations(None)  # cue annotations are in the metadata; MNE cannot concatenate them
        n_drop = int((~table["kept"]).sum())
        logger.info("%s: %d epochs, %d dropped (peak-to-peak > %s uV or bad segments)",
                    src, len(table), n_drop, cfg["reject_uv"])
        tables.append(table)
        all_epochs.append(epochs)
        del raw
    missing = [c for c in classes if not set(mapping[c]) & seen]
    if missing:
        files = ", ".join(str(_events_path(bp)) for bp in paths)
        raise ValueError(f"event type(s) {missing} from config eeg.events absent from sub-{subject}'s events: {files}")
    epochs, table = concat_epochs(all_epochs, tables, classes, f"sub-{subject} (reject_uv={cfg['reject_uv']})")
    logger.info("sub-%s: %d epochs kept of %d (%d dropped), %d channels, %.1f Hz, %d samples",
                subject, len(epochs), len(table), int((~table["kept"]).sum()), len(epochs.ch_names),
                epochs.info["sfreq"], len(epochs.times))
    return epochs, table


def write_epochs(epochs, table: pd.DataFrame, epochs_path, table_path) -> None:
    """Write ``epochs`` (FIF) and ``table`` (TSV) atomically; neither is left half-written."""
    epochs_path, table_path = Path(epochs_path), Path(table_path)
    try:
        with atomic_path(epochs_path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # temporary name does not end in -epo.fif
            epochs.save(tmp, overwrite=True, fmt="single", verbose=False)
        with atomic_path(table_path) as tmp:
            table.to_csv(tmp, sep="\t", index=False, na_rep=_NA, float_format="%.4f")
    except BaseException:
        for p in (epochs_path, table_path):
            if p.exists():
                p.unlink()
        raise


# --------------------------------------------------------------------------------------------
# readers for models
# --------------------------------------------------------------------------------------------
@dataclass
class EEGData:
    """Epochs of one subject as arrays.

    Attributes
    ----------
    X : ndarray, shape (n_epochs, n_channels, n_times), float32
        Volts, as MNE stores them.
    y : ndarray, shape (n_epochs,), int
        Index into ``classes``.
    classes : list of str
        Class names in config ``eeg.events`` order.
    sessions, runs : ndarray of str, shape (n_epochs,)
    ch_names : list of str
    sfreq : float
    subject : str
    """

    X: np.ndarray
    y: np.ndarray
    classes: list
    sessions: np.ndarray
    runs: np.ndarray
    ch_names: list
    sfreq: float
    subject: str
    meta: pd.DataFrame = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, mask) -> "EEGData":
        """The epochs selected by a boolean mask or index array."""
        return EEGData(
            self.X[mask], self.y[mask], list(self.classes), self.sessions[mask], self.runs[mask],
            list(self.ch_names), self.sfreq, self.subject,
            None if self.meta is None else self.meta.iloc[np.arange(len(self.y))[mask]].reset_index(drop=True),
        )


def load_epochs(path: str | os.PathLike) -> EEGData:
    """Read an ``*_epo.fif`` written by :func:`write_epochs` into an :class:`EEGData`."""
    import mne

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: epochs file not found")
    try:
        epochs = mne.read_epochs(path, preload=True, verbose=False)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"{path}: cannot read epochs ({type(exc).__name__}: {exc})") from exc
    md = epochs.metadata
    if md is None or not {"session", "run"} <= set(md.columns):
        raise ValueError(f"{path}: epochs lack metadata columns 'session' and 'run'")
    classes = [c for c, _ in sorted(epochs.event_id.items(), key=lambda kv: kv[1])]
    code_to_index = {epochs.event_id[c]: i for i, c in enumerate(classes)}
    y = np.array([code_to_index[c] for c in epochs.events[:, 2]], dtype=int)
    subject = str(md["subject"].iloc[0]) if "subject" in md and len(md) else path.name.split("_")[0][4:]
    return EEGData(
        X=epochs.get_data(copy=False).astype(np.float32),
        y=y,
        classes=classes,
        sessions=md["session"].astype(str).to_numpy(),
        runs=md["run"].astype(str).to_numpy(),
        ch_names=list(epochs.ch_names),
        sfreq=float(epochs.info["sfreq"]),
        subject=subject,
        meta=md.reset_index(drop=True),
    )
