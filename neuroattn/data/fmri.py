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
   with the subject's repeat counts (``neuroattn.metrics.ceiling``).

Every input is checked before the first GLM is fitted: a bad file gives a ``ValueError`` /
``FileNotFoundError`` naming the file and the problem, and nothing is written.

The steps live in :mod:`.fmri_inputs` (reading and checking a run), :mod:`.fmri_rois` (ROI voxels)
and :mod:`.fmri_glm` (design, fits, z-scoring); this module assembles one subject and writes it.
"""
from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ..metrics.ceiling import ncsnr, nsd_noise_ceiling
from ..utils import atomic_path
from .betas import Betas
from .bids import find_fmri_runs, find_roi_files, stimuli_dir
from .fmri_glm import fit_trial_betas, glm_params, trial_design, zscore_by_session
from .fmri_inputs import REQUIRED_EVENT_COLUMNS, bold_header, load_bold, read_confounds, read_events, repetition_time
from .fmri_rois import RoiVoxels, load_rois, read_roi_table
from .formats.fmriprep import find_fmriprep_runs, load_brain_mask

__all__ = ["SubjectBetas", "preprocess_subject", "write_subject", "noise_ceilings", "glm_params", "trial_design",
           "fit_trial_betas", "zscore_by_session", "bold_header", "repetition_time", "read_events",
           "read_confounds", "load_bold", "RoiVoxels", "read_roi_table", "load_rois", "REQUIRED_EVENT_COLUMNS"]

log = logging.getLogger("neuroattn.fmri")


# ----------------------------------------------------------------------------------------------
# Noise ceilings


def noise_ceilings(betas: Betas) -> tuple[np.ndarray, np.ndarray]:
    """NSD ncsnr from the repeated trials and the Algonauts noise ceiling with all repeat counts.

    Returns NaN arrays (with a warning) when no image was shown twice. The ceilings themselves
    are :mod:`neuroattn.metrics.ceiling`'s (the one place that computes them).
    """
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
        ``fmri.glm`` of the config (defaults: ``fmri.glm`` of config/config.yaml).
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
