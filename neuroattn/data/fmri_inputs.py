"""Reading and checking one fMRI run: the bold header and data, the TR (sidecar against header),
the events and the confounds; every error names the file and the problem."""
from __future__ import annotations

import logging
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .bids import FmriRun

log = logging.getLogger("neuroattn.fmri")

REQUIRED_EVENT_COLUMNS = ("onset", "duration", "stim_file")
_TIME_UNITS = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}
_READ_ERRORS = (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError)


def bold_header(run: FmriRun) -> nib.Nifti1Image:
    """The bold image proxy (header only); errors name the file."""
    try:
        img = nib.load(run.bold)
    except _READ_ERRORS as exc:
        raise ValueError(f"{run.bold}: cannot read NIfTI header ({exc})") from exc
    if len(img.shape) != 4 or img.shape[3] < 2:
        raise ValueError(f"{run.bold}: expected a 4D bold series, got shape {img.shape}")
    return img


def repetition_time(run: FmriRun, img: nib.Nifti1Image, rtol: float = 1e-3) -> float:
    """TR (s) from the ``_bold.json`` sidecar, checked against the NIfTI header's ``pixdim[4]``.

    Raises
    ------
    ValueError
        No ``RepetitionTime`` in any sidecar, or sidecar and header disagree.
    """
    meta = run.metadata()
    if "RepetitionTime" not in meta:
        where = ", ".join(map(str, run.sidecars)) or "no _bold.json sidecar found"
        raise ValueError(f"{run.bold}: no RepetitionTime in its sidecar ({where})")
    tr = float(meta["RepetitionTime"])
    if not np.isfinite(tr) or tr <= 0:
        raise ValueError(f"{run.sidecars[-1]}: RepetitionTime must be > 0, got {tr}")
    zooms = img.header.get_zooms()
    units = img.header.get_xyzt_units()[1] if hasattr(img.header, "get_xyzt_units") else "sec"
    header_tr = float(zooms[3]) * _TIME_UNITS.get(units, 1.0)
    if header_tr > 0 and abs(header_tr - tr) > rtol * tr:
        raise ValueError(
            f"{run.bold}: TR mismatch: header says {header_tr:g} s, sidecar "
            f"{run.sidecars[-1].name} says RepetitionTime {tr:g} s"
        )
    return tr


def read_events(run: FmriRun, n_scans: int, tr: float, stim_dir: Path) -> pd.DataFrame:
    """Events of one run, checked: required columns, finite times, inside the run, stimuli exist.

    Returns
    -------
    DataFrame
        Columns ``onset, duration, trial_type, stim_file, is_trial`` sorted by onset; trials are
        the rows with a ``stim_file``.
    """
    path = run.events
    try:
        ev = pd.read_csv(path, sep="\t", na_values=["n/a", ""], keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read events TSV ({exc})") from exc
    missing = [c for c in REQUIRED_EVENT_COLUMNS if c not in ev.columns]
    if missing:
        raise ValueError(f"{path}: missing required events column(s) {missing} (has {list(ev.columns)})")
    for col in ("onset", "duration"):
        vals = pd.to_numeric(ev[col], errors="coerce")
        bad = ~np.isfinite(vals.to_numpy(dtype=float))
        if bad.any():
            raise ValueError(f"{path}: non-numeric or missing {col} in row(s) {list(np.flatnonzero(bad)[:5] + 1)}")
        ev[col] = vals.astype(float)
    if (ev.onset < 0).any() or (ev.duration < 0).any():
        raise ValueError(f"{path}: negative onset or duration in row(s) {list(np.flatnonzero((ev.onset < 0) | (ev.duration < 0))[:5] + 1)}")
    run_end = n_scans * tr
    late = ev.onset + ev.duration > run_end + 1e-6
    if late.any():
        row = int(np.flatnonzero(late)[0])
        raise ValueError(
            f"{path}: {int(late.sum())} event(s) end after the run ({n_scans} scans x TR {tr:g} s = "
            f"{run_end:g} s), e.g. row {row + 1} onset {ev.onset.iloc[row]:g} duration {ev.duration.iloc[row]:g}"
        )
    if "trial_type" not in ev.columns:
        ev["trial_type"] = "stimulus"
    ev["trial_type"] = ev["trial_type"].fillna("n/a").astype(str)
    ev["is_trial"] = ev.stim_file.notna()
    ev.loc[ev.is_trial, "stim_file"] = ev.loc[ev.is_trial, "stim_file"].astype(str)
    if not ev.is_trial.any():
        raise ValueError(f"{path}: no trial (every stim_file is n/a)")
    names = sorted(set(ev.loc[ev.is_trial, "stim_file"]))
    absent = [s for s in names if not (stim_dir / s).is_file()]
    if absent:
        raise ValueError(
            f"{path}: {len(absent)} stim_file(s) not found under {stim_dir}: {absent[:5]}" + (" ..." if len(absent) > 5 else "")
        )
    ev = ev.sort_values("onset", kind="stable").reset_index(drop=True)
    return ev[["onset", "duration", "trial_type", "stim_file", "is_trial"]]


def read_confounds(run: FmriRun, columns: list[str], n_scans: int) -> pd.DataFrame | None:
    """The configured confound columns of one run (n/a filled with the column mean), or None.

    Without a confounds file (or with no columns asked for) returns None.
    """
    if not columns:
        return None
    if run.confounds is None:
        log.warning("%s: no desc-confounds_timeseries.tsv for this run; fitting without confounds", run.bold.name)
        return None
    try:
        df = pd.read_csv(run.confounds, sep="\t", na_values=["n/a", ""], keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{run.confounds}: cannot read confounds TSV ({exc})") from exc
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{run.confounds}: confound column(s) {missing} named in fmri.glm.confounds are missing")
    if len(df) != n_scans:
        raise ValueError(f"{run.confounds}: {len(df)} rows for {n_scans} scans in {run.bold.name}")
    df = df[columns].apply(pd.to_numeric, errors="coerce").astype(float)
    if df.isna().all().any():
        raise ValueError(f"{run.confounds}: confound column(s) {list(df.columns[df.isna().all()])} are all n/a")
    return df.fillna(df.mean())


def load_bold(run: FmriRun, img: nib.Nifti1Image) -> nib.Nifti1Image:
    """Read the bold data into memory (float32); truncated/corrupt files and NaNs raise ``ValueError``."""
    try:
        data = np.asarray(img.dataobj, dtype=np.float32)
    except _READ_ERRORS as exc:
        raise ValueError(f"{run.bold}: cannot read NIfTI data, truncated or corrupt ({type(exc).__name__}: {exc})") from exc
    n_bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
    if n_bad:
        raise ValueError(f"{run.bold}: {n_bad} NaN/inf value(s) in the bold data")
    return nib.Nifti1Image(data, img.affine, img.header)
