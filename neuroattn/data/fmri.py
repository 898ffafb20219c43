"""fMRI preprocessing: single-trial GLM betas, ROI voxels and noise ceilings of one subject.

From a BIDS dataset (discovered by :mod:`neuroattn.data.bids`) to a :class:`~neuroattn.data.betas.Betas`:

1. Per run, a first-level GLM with one regressor per trial (nilearn
   :class:`~nilearn.glm.first_level.FirstLevelModel`): ``lsa`` (least squares all: every trial
   in one design) or ``lss`` (least squares separate, Mumford et al. 2012: one design per trial
   with the trial and the sum of all other trials). HRF, drift model, high-pass, smoothing and
   noise model from ``fmri.glm`` of the config; confound columns from the fMRIPrep-style
   ``desc-confounds_timeseries.tsv`` when present. Non-trial events (rows with ``stim_file``
   ``n/a``) are modelled as nuisance conditions by ``trial_type``. The GLM is fitted only inside
   the ROI voxels (the mask), which bounds time and memory by the ROI size.
2. Betas (percent signal change, nilearn's mean scaling) are z-scored per voxel within each
   session, as NSD does; trials of the same image are kept apart (``Betas`` averages them).
3. Voxels are labelled from the ROI dseg image + TSV; voxels outside every ROI are dropped
   unless ``keep_other`` (then the voxels with signal outside every ROI are labelled ``other``).
4. Noise ceiling per voxel from the repeats: NSD's ncsnr, and the Algonauts/NSD noise ceiling
   with the subject's repeat counts (``neuroattn.metrics``).

Every input is checked before the first GLM is fitted: a bad file gives a ``ValueError`` /
``FileNotFoundError`` naming the file and the problem, and nothing is written.
"""
from __future__ import annotations

import contextlib
import json
import logging
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ..utils import atomic_path
from .betas import Betas
from .bids import FmriRun, find_fmri_runs, find_roi_files, stimuli_dir
from .formats.fmriprep import expand_confounds, find_fmriprep_runs, load_brain_mask

log = logging.getLogger("neuroattn.fmri")

GLM_DEFAULTS = {
    "method": "lsa",
    "hrf_model": "glover",
    "drift_model": "cosine",
    "high_pass": 0.008,
    "smoothing_fwhm": None,
    "noise_model": "ar1",
    "confounds": [],
}
REQUIRED_EVENT_COLUMNS = ("onset", "duration", "stim_file")
_TIME_UNITS = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}
_READ_ERRORS = (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError)


def glm_params(glm: dict | None) -> dict:
    """``fmri.glm`` of the config merged over :data:`GLM_DEFAULTS`; unknown keys are refused."""
    glm = dict(glm or {})
    unknown = sorted(set(glm) - set(GLM_DEFAULTS))
    if unknown:
        raise KeyError(f"fmri.glm: unknown key(s) {unknown} (allowed: {sorted(GLM_DEFAULTS)})")
    out = {**GLM_DEFAULTS, **glm}
    if out["method"] not in ("lsa", "lss"):
        raise ValueError(f"fmri.glm.method must be 'lsa' or 'lss', got {out['method']!r}")
    out["confounds"] = expand_confounds(out["confounds"] or [])  # presets: motion6, motion24, acompcor...
    return out


# ----------------------------------------------------------------------------------------------
# Reading and checking one run


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


# ----------------------------------------------------------------------------------------------
# ROIs


@dataclass
class RoiVoxels:
    """Voxels kept for the GLM: a 3D mask and, in its C order, each voxel's index, ROI and hemisphere."""

    mask: np.ndarray
    affine: np.ndarray
    ijk: np.ndarray = field(init=False)
    roi: np.ndarray = field(default=None)
    hemi: np.ndarray = field(default=None)

    def __post_init__(self):
        self.ijk = np.argwhere(self.mask).astype(np.int32)

    def mask_img(self) -> nib.Nifti1Image:
        """The mask as a NIfTI on the bold grid (what the GLM is fitted in)."""
        return nib.Nifti1Image(self.mask.astype(np.uint8), self.affine)


def read_roi_table(path: Path) -> pd.DataFrame:
    """The ROI TSV (``index``, ``name``, optional ``hemi``), checked."""
    try:
        df = pd.read_csv(path, sep="\t", keep_default_na=False, dtype={"name": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{path}: cannot read ROI table ({exc})") from exc
    missing = [c for c in ("index", "name") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing} (has {list(df.columns)})")
    if df["index"].duplicated().any():
        raise ValueError(f"{path}: duplicated index value(s) {sorted(df['index'][df['index'].duplicated()])}")
    if "hemi" not in df.columns:
        df["hemi"] = ""
    return df


def load_rois(dseg_path: Path, table_path: Path, ref: nib.Nifti1Image, keep_other: bool = False,
              brain_mask: np.ndarray | None = None) -> RoiVoxels:
    """Voxels of the ROI image on the bold grid of ``ref``.

    Parameters
    ----------
    dseg_path, table_path : Path
        Integer label image (0 = no ROI) and its TSV.
    ref : Nifti1Image
        A bold image: the dseg must share its grid (shape and affine).
    keep_other : bool
        Keep voxels of ``brain_mask`` outside every ROI, labelled ``other``.
    brain_mask : ndarray of bool, optional
        Needed when ``keep_other``.
    """
    table = read_roi_table(table_path)
    try:
        dimg = nib.load(dseg_path)
        labels = np.asarray(dimg.dataobj)
    except _READ_ERRORS as exc:
        raise ValueError(f"{dseg_path}: cannot read ROI image ({exc})") from exc
    labels = np.squeeze(labels)
    if labels.shape != ref.shape[:3] or not np.allclose(dimg.affine, ref.affine, atol=1e-3):
        raise ValueError(f"{dseg_path}: ROI image grid {labels.shape} does not match the bold grid {ref.shape[:3]}"
                         " (shape or affine differ)")
    if not np.allclose(labels, np.round(labels)):
        raise ValueError(f"{dseg_path}: ROI labels must be integers")
    labels = np.round(labels).astype(np.int64)
    known = set(table["index"].astype(int))
    unknown = sorted(set(np.unique(labels)) - known - {0})
    if unknown:
        raise ValueError(f"{dseg_path}: label(s) {unknown[:10]} have no row in {table_path.name}")
    mask = labels > 0
    if keep_other:
        if brain_mask is None:
            raise ValueError("keep_other needs a brain mask")
        mask = mask | brain_mask
    if not mask.any():
        raise ValueError(f"{dseg_path}: no voxel in any ROI")
    rv = RoiVoxels(mask=mask, affine=ref.affine)
    name = dict(zip(table["index"].astype(int), table["name"].astype(str)))
    hemi = dict(zip(table["index"].astype(int), table["hemi"].astype(str)))
    lab = labels[tuple(rv.ijk.T)]
    rv.roi = np.array([name.get(v, "other") for v in lab], dtype=object)
    rv.hemi = np.array([hemi.get(v, "") for v in lab], dtype=object)
    return rv


# ----------------------------------------------------------------------------------------------
# GLM


def trial_design(events: pd.DataFrame, n_scans: int, tr: float, glm: dict,
                 confounds: pd.DataFrame | None = None) -> tuple[pd.DataFrame, list[str]]:
    """LSA design matrix of one run: one column per trial (``trial0000``...), nuisance conditions,
    confounds, drift and constant.

    Returns
    -------
    design : DataFrame (n_scans, n_regressors)
    trial_columns : list of str
        The trial columns, in the order of the trials in ``events``.
    """
    from nilearn.glm.first_level import make_first_level_design_matrix

    ev = events.copy()
    trial_cols = [f"trial{i:04d}" for i in range(int(ev.is_trial.sum()))]
    ev["name"] = "nuis_" + ev.trial_type.astype(str)
    ev.loc[ev.is_trial, "name"] = trial_cols
    design = make_first_level_design_matrix(
        np.arange(n_scans) * tr,
        events=pd.DataFrame({"onset": ev.onset, "duration": ev.duration, "trial_type": ev.name}),
        hrf_model=glm["hrf_model"],
        drift_model=glm["drift_model"],
        high_pass=glm["high_pass"],
        add_regs=None if confounds is None else confounds.to_numpy(),
        add_reg_names=None if confounds is None else [f"conf_{c}" for c in confounds.columns],
    )
    return design, trial_cols


def _theta(labels: np.ndarray, results: dict, rows) -> np.ndarray:
    """Rows ``rows`` of the GLM parameters, assembled over nilearn's AR(1) label groups."""
    out = np.empty((len(rows), len(labels)), dtype=np.float32)
    for lab, res in results.items():
        sel = labels == lab
        out[:, sel] = res.theta[rows]
    return out


def fit_trial_betas(img: nib.Nifti1Image, design: pd.DataFrame, trial_cols: list[str],
                    mask_img: nib.Nifti1Image, glm: dict, seed: int = 0) -> np.ndarray:
    """Single-trial betas of one run inside ``mask_img``.

    Parameters
    ----------
    img : Nifti1Image
        4D bold (in memory).
    design : DataFrame
        The LSA design from :func:`trial_design`.
    trial_cols : list of str
        Trial columns of ``design``.
    mask_img : Nifti1Image
        Voxels to fit; the output's voxel order is the C order of the mask.
    glm : dict
        :func:`glm_params` output (``method`` lsa/lss, ``smoothing_fwhm``, ``noise_model``...).
    seed : int

    Returns
    -------
    ndarray (n_trials, n_voxels) float32
    """
    from nilearn.glm.first_level import FirstLevelModel, mean_scaling, run_glm

    # HRF, drift and TR live in ``design`` (trial_design); the model masks, smooths, mean-scales
    # (percent signal change) and fits the noise model
    model = FirstLevelModel(
        smoothing_fwhm=glm["smoothing_fwhm"], noise_model=glm["noise_model"], mask_img=mask_img,
        signal_scaling=0, minimize_memory=True, random_state=seed, reports=False,
    )
    cols = list(design.columns)
    rows = [cols.index(c) for c in trial_cols]

    def fit(dm):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(will be ignored|Given mask will be used).*")
            model.fit(img, design_matrices=dm)

    if glm["method"] == "lsa":
        fit(design)
        return _theta(model.labels_[0], model.results_[0], rows)
    # LSS: the same masked, mean-scaled data; per trial a design [trial, all other trials, nuisance]
    fit(design.drop(columns=trial_cols))  # nuisance-only fit sets up the masker
    Y, _ = mean_scaling(model.masker_.transform(img), 0)
    X = design.to_numpy()
    trials = X[:, rows]
    nuisance = np.delete(X, rows, axis=1)
    total = trials.sum(axis=1, keepdims=True)
    out = np.empty((len(rows), Y.shape[1]), dtype=np.float32)
    for i in range(len(rows)):
        Xi = np.column_stack([trials[:, i], total[:, 0] - trials[:, i], nuisance])
        labels, results = run_glm(Y, Xi, noise_model=glm["noise_model"], random_state=seed)
        out[i] = _theta(labels, results, [0])[0]
    return out


def zscore_by_session(betas: np.ndarray, sessions: np.ndarray) -> np.ndarray:
    """Z-score each voxel's trial betas within each session (NSD); constant voxels become 0."""
    out = np.empty_like(betas, dtype=np.float32)
    for s in np.unique(sessions):
        idx = sessions == s
        b = betas[idx].astype(np.float64)
        sd = b.std(axis=0)
        out[idx] = np.where(sd > 0, (b - b.mean(axis=0)) / np.where(sd > 0, sd, 1.0), 0.0)
    return out


# ----------------------------------------------------------------------------------------------
# Noise ceilings


def noise_ceilings(betas: Betas) -> tuple[np.ndarray, np.ndarray]:
    """NSD ncsnr from the repeated trials and the Algonauts noise ceiling with all repeat counts.

    Returns NaN arrays (with a warning) when no image was shown twice.
    """
    from ..metrics import ncsnr, nsd_noise_ceiling

    try:
        reps = betas.repeats()
    except ValueError as exc:
        log.warning("%s; noise ceilings left NaN", exc)
        nan = np.full(betas.trial_betas.shape[1], np.nan, dtype=np.float32)
        return nan, nan.copy()
    snr = np.asarray(ncsnr(reps), dtype=np.float32)
    nc = np.asarray(nsd_noise_ceiling(snr, betas.n_repeats), dtype=np.float32)
    return snr, nc


# ----------------------------------------------------------------------------------------------
# One subject


@dataclass
class SubjectBetas:
    """What :func:`preprocess_subject` returns: the betas and the tables written next to them."""

    betas: Betas
    trials: pd.DataFrame
    voxels: pd.DataFrame
    provenance: dict


def _brain_mask(img: nib.Nifti1Image) -> np.ndarray:
    """Voxels with signal: nonzero temporal mean and variance (skull-stripped / template-space data
    have exact zeros outside the brain; nilearn's EPI-mask histogram heuristics cut into coarse
    grids, so they are not used)."""
    data = np.asarray(img.dataobj)
    return (np.abs(data.mean(axis=3)) > 0) & (data.std(axis=3) > 0)


def _versions() -> dict:
    import importlib.metadata as md

    out = {}
    for pkg in ("neuroattn", "nilearn", "nibabel", "numpy", "pandas", "scipy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def preprocess_subject(bids_root: str | Path, subject: str, task: str, glm: dict | None = None,
                       keep_other: bool = False, seed: int = 0, fmriprep: dict | None = None) -> SubjectBetas:
    """BIDS -> z-scored single-trial betas, ROI labels and noise ceilings of one subject.

    Every run's events, sidecar, header, confounds and the ROI files are checked before any GLM
    is fitted; runs are then loaded one at a time, so memory holds one run plus the betas.

    Parameters
    ----------
    bids_root : str or Path
    subject : str
        Label without ``sub-``.
    task : str
    glm : dict, optional
        ``fmri.glm`` of the config (see :data:`GLM_DEFAULTS`).
    keep_other : bool
        Keep brain voxels outside every ROI as ``other``.
    seed : int
    fmriprep : dict, optional
        Read the bold from fMRIPrep derivatives instead of the raw BIDS files: keyword arguments of
        :func:`neuroattn.data.formats.fmriprep.find_fmriprep_runs` (``space``, ``res``, ``fmriprep_dir``).

    Returns
    -------
    SubjectBetas
    """
    root = Path(bids_root)
    glm = glm_params(glm)
    if fmriprep is not None:
        runs = find_fmriprep_runs(root, subject, task, **fmriprep)
    else:
        runs = find_fmri_runs(root, subject, task)
    dseg, table = find_roi_files(root, subject)
    stim = stimuli_dir(root)
    # --- check everything first (cheap: headers and tables only)
    checked = []
    for run in runs:
        hdr = bold_header(run)
        tr = repetition_time(run, hdr)
        n_scans = int(hdr.shape[3])
        events = read_events(run, n_scans, tr, stim)
        conf = read_confounds(run, glm["confounds"], n_scans)
        checked.append((run, hdr, tr, events, conf))
    rois = None
    if not keep_other:
        rois = load_rois(dseg, table, checked[0][1])
    # --- fit, one run at a time
    trial_betas, trial_rows, timings = [], [], []
    for run, hdr, tr, events, conf in checked:
        t0 = time.perf_counter()
        img = load_bold(run, hdr)
        if rois is None:
            mask = getattr(run, "mask", None)  # fMRIPrep's brain mask when the run has one
            rois = load_rois(dseg, table, img, keep_other=True,
                             brain_mask=_brain_mask(img) if mask is None else load_brain_mask(mask, img))
        elif img.shape[:3] != rois.mask.shape or not np.allclose(img.affine, rois.affine, atol=1e-3):
            raise ValueError(f"{run.bold}: bold grid {img.shape[:3]} differs from the first run's / ROI grid")
        design, cols = trial_design(events, img.shape[3], tr, glm, conf)
        b = fit_trial_betas(img, design, cols, rois.mask_img(), glm, seed)
        del img
        trial_betas.append(b)
        ev = events[events.is_trial]
        trial_rows.append(pd.DataFrame({
            "image": ev.stim_file.to_numpy(), "session": run.session, "run": run.run,
            "onset": ev.onset.to_numpy(), "duration": ev.duration.to_numpy(), "trial_type": ev.trial_type.to_numpy(),
        }))
        timings.append(time.perf_counter() - t0)
        log.info("sub-%s %s: %d trials x %d voxels in %.1f s (%s)", subject, run.key, len(cols),
                 b.shape[1], timings[-1], glm["method"])
    trials = pd.concat(trial_rows, ignore_index=True)
    trials.insert(0, "trial", np.arange(len(trials)))
    raw = np.concatenate(trial_betas, axis=0)
    del trial_betas
    sessions = trials.session.astype(str).to_numpy()
    betas = Betas(
        subject=subject, trial_betas=zscore_by_session(raw, sessions), trial_image=trials.image.to_numpy(),
        voxel_roi=rois.roi, trial_session=sessions, voxel_hemi=rois.hemi, voxel_ijk=rois.ijk,
        task=task, affine=rois.affine, shape=tuple(int(s) for s in rois.mask.shape),
    )
    snr, nc = noise_ceilings(betas)
    betas.ncsnr = snr
    voxels = pd.DataFrame({
        "voxel": np.arange(len(rois.ijk)), "roi": rois.roi, "hemi": rois.hemi,
        "i": rois.ijk[:, 0], "j": rois.ijk[:, 1], "k": rois.ijk[:, 2], "ncsnr": snr, "noise_ceiling": nc,
    })
    inputs = sorted({p for run in runs for p in run.files()} | {dseg, table})
    inputs += sorted(stim / s for s in set(trials.image))
    provenance = {
        "subject": subject,
        "task": task,
        "bids_root": str(root),
        "inputs": [{"path": str(p), "bytes": Path(p).stat().st_size} for p in inputs],
        "config": {"glm": glm, "keep_other": keep_other},
        "seed": seed,
        "versions": _versions(),
        "n_runs": len(runs),
        "n_trials": int(len(trials)),
        "n_images": int(len(betas.images)),
        "n_voxels": int(len(rois.ijk)),
        "glm_seconds_per_run": [round(t, 3) for t in timings],
    }
    return SubjectBetas(betas=betas, trials=trials, voxels=voxels, provenance=provenance)


def write_subject(result: SubjectBetas, betas_path, trials_path, voxels_path, provenance_path) -> None:
    """Write the four outputs together: all of them appear, or none (atomic renames at the end)."""
    with contextlib.ExitStack() as stack:
        tmp = [stack.enter_context(atomic_path(p)) for p in (betas_path, trials_path, voxels_path, provenance_path)]
        result.betas.write(tmp[0])
        result.trials.to_csv(tmp[1], sep="\t", index=False, na_rep="n/a")
        result.voxels.to_csv(tmp[2], sep="\t", index=False, na_rep="n/a", float_format="%.6g")
        Path(tmp[3]).write_text(json.dumps(result.provenance, indent=2, default=str))
