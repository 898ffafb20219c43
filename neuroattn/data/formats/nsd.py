"""Natural Scenes Dataset (NSD, Allen et al. 2022) as released -> :class:`~neuroattn.data.betas.Betas`.

Expected folder tree (the release's own layout under one root; only the files used are needed)::

    <root>/nsddata/experiments/nsd/nsd_expdesign.mat
    <root>/nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5                 imgBrick (73000, 425, 425, 3) uint8
    <root>/nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/
        betas_session01.hdf5 (or .nii.gz) ... betas_session40.*
    <root>/nsddata/ppdata/subj01/func1pt8mm/roi/
        prf-visualrois.nii.gz floc-bodies.nii.gz floc-faces.nii.gz floc-places.nii.gz
        floc-words.nii.gz streams.nii.gz  [lh.<name>.nii.gz rh.<name>.nii.gz]
    <root>/nsddata/freesurfer/subj01/label/<name>.mgz.ctab             (optional label tables)

Conventions of the release that this module follows:

- ``nsd_expdesign.mat``: ``masterordering`` (1, 30000) indexes, 1-based, the 10,000 columns of
  ``subjectim`` (8, 10000), whose entries are 1-based indices into the 73k ``imgBrick``;
  ``sharedix`` (1, 1000) the 1-based 73k indices of the shared images. Trial ``t`` (0-based, in
  session order, 750 trials per session) of subject ``s`` shows
  ``subjectim[s - 1, masterordering[t] - 1] - 1`` (0-based 73k index).
- Session betas are int16 percent signal change times 300: integer data are divided by 300
  (data already in float are taken as they are). HDF5 files hold ``betas`` as (trials, Z, Y, X)
  when read with h5py (MATLAB column order) and NIfTI files (X, Y, Z, trials); an HDF5 whose
  spatial shape equals the ROI grid (X, Y, Z) is read as such.
- ROI volumes on the functional grid: -1 outside the brain, 0 no label, k > 0 the k-th label of
  the ROI's colour table (``<name>.mgz.ctab``: ``index name`` lines). Without a table the
  published label names (:data:`NSD_ROI_LABELS`) are used. ``lh.``/``rh.`` volumes, when present,
  give each voxel's hemisphere.

Images are named ``nsd-XXXXX.png`` with the 1-based 73k index (the Algonauts naming), so the NSD
and Algonauts adapters name the same image the same way. Betas are z-scored per voxel within
each session (as NSD does); repeats stay separate trials (``Betas`` averages them); ncsnr and the
NSD/Algonauts noise ceiling come from the repeats (``neuroattn.data.fmri.noise_ceilings``).
"""
from __future__ import annotations
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..betas import Betas
from .nsd_betas import read_session_betas, session_files
from .nsd_layout import (BETA_SCALE, DEFAULT_ROIS, NSD_ROI_LABELS, TRIALS_PER_SESSION, ExpDesign, betas_dir,
                         expdesign_path, image_index, image_name, read_expdesign, roi_dir, stimuli_path,
                         subject_index)
from .nsd_rois import NsdRois, read_ctab, read_rois

__all__ = ["ADAPTER_DEFAULTS", "adapter_params", "load_subject", "preprocess_subject", "read_images", "write_stimuli",
           "BETA_SCALE", "DEFAULT_ROIS", "NSD_ROI_LABELS", "TRIALS_PER_SESSION", "ExpDesign", "betas_dir",
           "expdesign_path", "image_index", "image_name", "read_expdesign", "roi_dir", "stimuli_path",
           "subject_index", "NsdRois", "read_ctab", "read_rois", "read_session_betas", "session_files"]

log = logging.getLogger("neuroattn.formats.nsd")

#: ``fmri.adapter`` options of the NSD format and their defaults (their one home; ``keep_other``
#: comes from ``fmri.keep_other``).
ADAPTER_DEFAULTS = {
    "space": "func1pt8mm",
    "betas": "betas_fithrf_GLMdenoise_RR",
    "sessions": None,
    "rois": list(DEFAULT_ROIS),
    "keep_other": False,
}



def adapter_params(adapter: dict | None) -> dict:
    """``fmri.adapter`` of the config merged over :data:`ADAPTER_DEFAULTS`; unknown keys refused."""
    adapter = dict(adapter or {})
    unknown = sorted(set(adapter) - set(ADAPTER_DEFAULTS))
    if unknown:
        raise KeyError(f"fmri.adapter: unknown key(s) {unknown} for the NSD format (allowed: {sorted(ADAPTER_DEFAULTS)})")
    return {**ADAPTER_DEFAULTS, **adapter}


def load_subject(root, subject, *, space="func1pt8mm", betas="betas_fithrf_GLMdenoise_RR", sessions=None,
                 rois=DEFAULT_ROIS, keep_other=False, task="nsd"):
    """NSD betas of one subject as a :class:`Betas` (z-scored per session, ncsnr filled).

    Parameters
    ----------
    root : path
        NSD root (see the module docstring for the tree).
    subject : str or int
        ``'01'``, ``1`` or ``'subj01'``; the Betas subject label is two digits (``'01'``).
    space, betas : str
        Functional space and beta version folders.
    sessions : list of int, optional
        1-based session numbers; default every session file found.
    rois, keep_other : see :func:`read_rois`
    task : str

    Returns
    -------
    betas : Betas
    trials : DataFrame
        ``trial, image, session, index73k, shared`` per trial.
    files : list of Path
        Every file read.
    """
    from ..fmri import noise_ceilings, zscore_by_session

    s = subject_index(subject)
    design = read_expdesign(expdesign_path(root))
    files = session_files(root, s, space, betas, sessions)
    r = read_rois(root, s, space, rois, keep_other)
    blocks, ses_labels, idx = [], [], []
    for ses, path in files.items():
        b = read_session_betas(path, r.ijk, r.shape)
        if b.shape[0] != TRIALS_PER_SESSION:
            raise ValueError(f"{path}: {b.shape[0]} trials, an NSD session has {TRIALS_PER_SESSION}")
        blocks.append(b)
        ses_labels.append(np.full(len(b), f"{ses:02d}", dtype=object))
        idx.append(design.trial_images(s, [ses]))
        log.info("subj%02d session %02d: %d trials x %d voxels", s, ses, *b.shape)
    raw = np.concatenate(blocks)
    del blocks
    sessions_arr = np.concatenate(ses_labels).astype(str)
    index73k = np.concatenate(idx)
    names = image_name(index73k)
    out = Betas(
        subject=f"{s:02d}", trial_betas=zscore_by_session(raw, sessions_arr), trial_image=names,
        voxel_roi=r.roi, trial_session=sessions_arr, voxel_hemi=r.hemi, voxel_ijk=r.ijk, task=task,
        affine=r.affine, shape=r.shape,
    )
    snr, _ = noise_ceilings(out)
    out.ncsnr = snr
    trials = pd.DataFrame({
        "trial": np.arange(len(names)), "image": names, "session": sessions_arr, "index73k": index73k,
        "shared": np.isin(index73k, design.sharedix),
    })
    return out, trials, [design.path, *files.values(), *r.files]


def preprocess_subject(root, subject, adapter: dict | None = None, task: str = "nsd"):
    """:func:`load_subject` packaged like ``neuroattn.data.fmri.preprocess_subject``.

    Returns a ``SubjectBetas`` (betas, trial and voxel tables, provenance), so the ``fmri_betas``
    rule writes it with ``neuroattn.data.fmri.write_subject``.
    """
    from ..fmri import SubjectBetas, _versions
    from ...metrics import nsd_noise_ceiling

    p = adapter_params(adapter)
    betas, trials, files = load_subject(root, subject, space=p["space"], betas=p["betas"], sessions=p["sessions"],
                                        rois=p["rois"], keep_other=p["keep_other"], task=task)
    nc = (nsd_noise_ceiling(betas.ncsnr, betas.n_repeats) if np.isfinite(betas.ncsnr).any()
          else np.full(len(betas.ncsnr), np.nan))
    voxels = pd.DataFrame({
        "voxel": np.arange(len(betas.voxel_roi)), "roi": betas.voxel_roi, "hemi": betas.voxel_hemi,
        "i": betas.voxel_ijk[:, 0], "j": betas.voxel_ijk[:, 1], "k": betas.voxel_ijk[:, 2],
        "ncsnr": betas.ncsnr, "noise_ceiling": nc,
    })
    provenance = {
        "subject": betas.subject, "task": task, "format": "nsd", "root": str(root), "config": p,
        "inputs": [{"path": str(f), "bytes": Path(f).stat().st_size} for f in files],
        "versions": _versions(), "n_trials": int(len(trials)), "n_images": int(len(betas.images)),
        "n_voxels": int(len(betas.voxel_roi)),
    }
    return SubjectBetas(betas=betas, trials=trials, voxels=voxels, provenance=provenance)


# ----------------------------------------------------------------------------------------------
# stimuli


def read_images(brick_path, index73k) -> np.ndarray:
    """Images of the 73k brick (``imgBrick`` (n, H, W, 3) uint8) at 0-based indices, in the given order.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing brick, or an index outside it (the message names the file and the valid range).
    """
    import h5py

    path = Path(brick_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: NSD stimulus brick not found (expected nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5)")
    idx = np.atleast_1d(np.asarray(index73k, dtype=np.int64))
    with h5py.File(path, "r") as f:
        if "imgBrick" not in f:
            raise ValueError(f"{path}: no dataset 'imgBrick' (has {list(f)})")
        ds = f["imgBrick"]
        if ds.ndim != 4 or ds.shape[3] != 3:
            raise ValueError(f"{path}: imgBrick shape {ds.shape}, expected (n_images, H, W, 3)")
        bad = idx[(idx < 0) | (idx >= ds.shape[0])]
        if bad.size:
            raise ValueError(f"{path}: stimulus index(es) {(bad + 1)[:5].tolist()} (1-based) outside imgBrick "
                             f"of {ds.shape[0]} images (valid 1..{ds.shape[0]})")
        uniq, inv = np.unique(idx, return_inverse=True)
        return ds[uniq][inv]  # h5py needs increasing indices


def write_stimuli(brick_path, names, folder, overwrite: bool = False) -> list[Path]:
    """Write the images ``names`` (``nsd-XXXXX.png``) from the brick as PNGs into ``folder``.

    Files already there are kept unless ``overwrite``. Returns the paths written or found.
    """
    from PIL import Image

    from ...utils import atomic_path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = [str(n) for n in np.unique(np.asarray(names).astype(str))]
    todo = [n for n in names if overwrite or not (folder / n).is_file()]
    for lo in range(0, len(todo), 256):
        part = todo[lo:lo + 256]
        for n, img in zip(part, read_images(brick_path, image_index(part))):
            with atomic_path(folder / n) as tmp:
                Image.fromarray(np.asarray(img, dtype=np.uint8)).save(tmp, format="PNG")
    return [folder / n for n in names]
