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

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..betas import Betas

log = logging.getLogger("neuroattn.formats.nsd")

#: Trials per NSD scan session.
TRIALS_PER_SESSION = 750
#: Scale of the released int16 betas (percent signal change x 300).
BETA_SCALE = 300.0
#: Label names of the NSD ROI volumes (value k -> name), as in the release's colour tables.
NSD_ROI_LABELS = {
    "prf-visualrois": ["V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4"],
    "floc-bodies": ["EBA", "FBA-1", "FBA-2", "mTL-bodies"],
    "floc-faces": ["OFA", "FFA-1", "FFA-2", "mTL-faces", "aTL-faces"],
    "floc-places": ["OPA", "PPA", "RSC"],
    "floc-words": ["OWFA", "VWFA-1", "VWFA-2", "mfs-words", "mTL-words"],
    "streams": ["early", "midventral", "midlateral", "midparietal", "ventral", "lateral", "parietal"],
}
#: ROI volumes used by default, in priority order (a voxel labelled by several keeps the first).
DEFAULT_ROIS = ("prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words")
ADAPTER_DEFAULTS = {
    "space": "func1pt8mm",
    "betas": "betas_fithrf_GLMdenoise_RR",
    "sessions": None,
    "rois": list(DEFAULT_ROIS),
    "keep_other": False,
}


# ----------------------------------------------------------------------------------------------
# names and paths


def subject_index(subject) -> int:
    """NSD subject number (1-8) from ``1``, ``'01'``, ``'subj01'`` or ``'sub-01'``."""
    m = re.fullmatch(r"(?:subj|sub-)?0*(\d+)", str(subject))
    if not m or not 1 <= int(m.group(1)) <= 8:
        raise ValueError(f"NSD subject must be 1..8 (e.g. '01' or 'subj01'), got {subject!r}")
    return int(m.group(1))


def image_name(index73k) -> np.ndarray:
    """``nsd-XXXXX.png`` names from 0-based 73k indices (the name holds the 1-based index)."""
    idx = np.atleast_1d(np.asarray(index73k, dtype=np.int64))
    return np.array([f"nsd-{i + 1:05d}.png" for i in idx], dtype=object)


def image_index(names) -> np.ndarray:
    """0-based 73k indices from names containing ``nsd-XXXXX`` (inverse of :func:`image_name`)."""
    out = []
    for n in np.atleast_1d(names):
        m = re.search(r"nsd-(\d+)", str(n))
        if not m:
            raise ValueError(f"image name {n!r} holds no 'nsd-XXXXX' index")
        out.append(int(m.group(1)) - 1)
    return np.array(out, dtype=np.int64)


def expdesign_path(root) -> Path:
    return Path(root) / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat"


def stimuli_path(root) -> Path:
    return Path(root) / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5"


def betas_dir(root, subject, space="func1pt8mm", betas="betas_fithrf_GLMdenoise_RR") -> Path:
    return Path(root) / "nsddata_betas" / "ppdata" / f"subj{subject_index(subject):02d}" / space / betas


def roi_dir(root, subject, space="func1pt8mm") -> Path:
    return Path(root) / "nsddata" / "ppdata" / f"subj{subject_index(subject):02d}" / space / "roi"


# ----------------------------------------------------------------------------------------------
# experimental design


@dataclass
class ExpDesign:
    """``nsd_expdesign.mat`` with 0-based indices.

    Attributes
    ----------
    masterordering : ndarray (n_trials,)
        Per trial, the column of ``subjectim`` shown.
    subjectim : ndarray (n_subjects, n_images)
        Per subject and column, the 73k index.
    sharedix : ndarray (n_shared,)
        73k indices of the images shown to every subject.
    path : Path
    """

    masterordering: np.ndarray
    subjectim: np.ndarray
    sharedix: np.ndarray
    path: Path

    def trial_images(self, subject, sessions) -> np.ndarray:
        """0-based 73k index of every trial of ``sessions`` (1-based session numbers), in order."""
        s = subject_index(subject)
        if s > self.subjectim.shape[0]:
            raise ValueError(f"{self.path}: subjectim has {self.subjectim.shape[0]} rows, no subject {s}")
        out = []
        for ses in sessions:
            lo, hi = (ses - 1) * TRIALS_PER_SESSION, ses * TRIALS_PER_SESSION
            if hi > len(self.masterordering):
                raise ValueError(f"{self.path}: masterordering has {len(self.masterordering)} trials, "
                                 f"session {ses} needs trials {lo + 1}..{hi}")
            out.append(self.subjectim[s - 1, self.masterordering[lo:hi]])
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def read_expdesign(path) -> ExpDesign:
    """Read ``nsd_expdesign.mat`` (MATLAB v5; 1-based indices converted to 0-based).

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, missing variables, or indices out of range; the message names the file.
    """
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: NSD design file not found (expected nsddata/experiments/nsd/nsd_expdesign.mat)")
    try:
        mat = loadmat(path)
    except (OSError, ValueError, NotImplementedError) as exc:
        raise ValueError(f"{path}: cannot read MATLAB file ({exc})") from exc
    missing = [k for k in ("masterordering", "subjectim", "sharedix") if k not in mat]
    if missing:
        raise ValueError(f"{path}: missing variable(s) {missing}")
    master = np.asarray(mat["masterordering"]).ravel().astype(np.int64) - 1
    subjectim = np.atleast_2d(np.asarray(mat["subjectim"])).astype(np.int64) - 1
    shared = np.asarray(mat["sharedix"]).ravel().astype(np.int64) - 1
    if master.min() < 0 or master.max() >= subjectim.shape[1]:
        raise ValueError(f"{path}: masterordering values must be in 1..{subjectim.shape[1]} (columns of subjectim)")
    if subjectim.min() < 0:
        raise ValueError(f"{path}: subjectim must hold 1-based 73k indices (found values < 1)")
    return ExpDesign(master, subjectim, shared, path)


# ----------------------------------------------------------------------------------------------
# ROIs


def read_ctab(path) -> dict[int, str]:
    """A FreeSurfer colour table (``index name [r g b a]`` lines) or a TSV (``index``, ``name``)."""
    path = Path(path)
    out = {}
    if path.suffix == ".tsv":
        df = pd.read_csv(path, sep="\t", keep_default_na=False)
        if not {"index", "name"} <= set(df.columns):
            raise ValueError(f"{path}: label table needs columns index, name (has {list(df.columns)})")
        return {int(i): str(n) for i, n in zip(df["index"], df["name"])}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and re.fullmatch(r"-?\d+", parts[0]):
            out[int(parts[0])] = parts[1]
    if not out:
        raise ValueError(f"{path}: no 'index name' line in label table")
    return out


def _label_table(root, subject, name: str, folder: Path) -> dict[int, str]:
    subj = f"subj{subject_index(subject):02d}"
    candidates = [folder / f"{name}.tsv", folder / f"{name}.mgz.ctab", folder / f"{name}.ctab"]
    for fs in (subj, "fsaverage"):
        candidates.append(Path(root) / "nsddata" / "freesurfer" / fs / "label" / f"{name}.mgz.ctab")
    for c in candidates:
        if c.is_file():
            table = read_ctab(c)
            return {k: v for k, v in table.items() if k > 0 and v.lower() != "unknown"}
    if name in NSD_ROI_LABELS:
        return {i + 1: n for i, n in enumerate(NSD_ROI_LABELS[name])}
    raise FileNotFoundError(f"{folder}: no label table for ROI volume {name!r} (looked for {[str(c) for c in candidates]})")


@dataclass
class NsdRois:
    """ROI voxels on the functional grid (C order of the kept mask)."""

    ijk: np.ndarray
    roi: np.ndarray
    hemi: np.ndarray
    shape: tuple
    affine: np.ndarray
    files: list


def _load_volume(path: Path):
    import nibabel as nib

    try:
        img = nib.load(path)
        return np.asarray(img.dataobj), img.affine
    except Exception as exc:  # noqa: BLE001 -- nibabel raises many types for bad files
        raise ValueError(f"{path}: cannot read ROI volume ({type(exc).__name__}: {exc})") from exc


def read_rois(root, subject, space="func1pt8mm", rois=DEFAULT_ROIS, keep_other=False) -> NsdRois:
    """Voxels of the NSD ROI volumes of one subject.

    Parameters
    ----------
    root : path
        NSD root.
    subject : str or int
    space : str
        Functional space folder (``func1pt8mm`` or ``func1mm``).
    rois : sequence of str
        ROI volume names in priority order: a voxel labelled in several keeps the first label
        (the number of such voxels is logged).
    keep_other : bool
        Keep every brain voxel (ROI value >= 0) outside the ROIs, labelled ``other``.

    Returns
    -------
    NsdRois
    """
    folder = roi_dir(root, subject, space)
    if not rois:
        raise ValueError("NSD adapter: at least one ROI volume name is needed (adapter.rois)")
    brain = None
    files = []
    label = hemi = None
    shape = affine = None
    for name in rois:
        path = folder / f"{name}.nii.gz"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: NSD ROI volume not found (expected <root>/nsddata/ppdata/subjXX/{space}/roi/{name}.nii.gz)")
        vol, aff = _load_volume(path)
        vol = np.squeeze(vol)
        if shape is None:
            shape, affine = vol.shape, aff
            label = np.full(shape, "", dtype=object)
            hemi = np.full(shape, "", dtype=object)
            brain = np.zeros(shape, bool)
        elif vol.shape != shape:
            raise ValueError(f"{path}: grid {vol.shape} differs from {rois[0]}.nii.gz {shape}")
        files.append(path)
        vol = np.round(vol).astype(np.int64)
        brain |= vol >= 0
        table = _label_table(root, subject, name, folder)
        unknown = sorted(set(np.unique(vol[vol > 0]).tolist()) - set(table))
        if unknown:
            raise ValueError(f"{path}: label value(s) {unknown[:10]} have no name in its label table")
        free = label == ""
        overlap = int(((vol > 0) & ~free).sum())
        if overlap:
            log.info("%s: %d voxel(s) already labelled by an earlier ROI volume keep that label", path.name, overlap)
        for k, n in table.items():
            label[(vol == k) & free] = n
        for h in ("lh", "rh"):
            hp = folder / f"{h}.{name}.nii.gz"
            if hp.is_file():
                hv, _ = _load_volume(hp)
                hv = np.squeeze(hv)
                if hv.shape != shape:
                    raise ValueError(f"{hp}: grid {hv.shape} differs from {path.name} {shape}")
                files.append(hp)
                hemi[(hv > 0) & (hemi == "")] = h
    mask = label != ""
    if keep_other:
        label[brain & ~mask] = "other"
        mask = mask | brain
    if not mask.any():
        raise ValueError(f"{folder}: no voxel in any of the ROI volumes {list(rois)}")
    ijk = np.argwhere(mask).astype(np.int32)
    t = tuple(ijk.T)
    return NsdRois(ijk=ijk, roi=label[t].astype(str), hemi=hemi[t].astype(str), shape=tuple(shape),
                   affine=np.asarray(affine), files=files)


# ----------------------------------------------------------------------------------------------
# betas


def session_files(root, subject, space="func1pt8mm", betas="betas_fithrf_GLMdenoise_RR", sessions=None) -> dict[int, Path]:
    """Session number -> beta file (``betas_sessionNN.hdf5``, else ``.nii.gz``).

    ``sessions=None`` takes every session file found; named sessions must all exist.

    Raises
    ------
    FileNotFoundError
        Naming the missing file(s) and the folder looked in.
    """
    folder = betas_dir(root, subject, space, betas)

    def find(ses):
        for ext in (".hdf5", ".nii.gz", ".nii"):
            p = folder / f"betas_session{ses:02d}{ext}"
            if p.is_file():
                return p
        return None

    if sessions is None:
        found = sorted({int(m.group(1)) for p in folder.glob("betas_session*")
                        if (m := re.match(r"betas_session(\d+)\.(hdf5|nii\.gz|nii)$", p.name))})
        if not found:
            raise FileNotFoundError(f"{folder}: no betas_sessionNN.hdf5 / .nii.gz file")
        sessions = found
    out, missing = {}, []
    for ses in sessions:
        p = find(int(ses))
        if p is None:
            missing.append(str(folder / f"betas_session{int(ses):02d}.hdf5"))
        else:
            out[int(ses)] = p
    if missing:
        raise FileNotFoundError(f"missing NSD session beta file(s): {missing} (.hdf5 or .nii.gz)")
    return out


def read_session_betas(path, ijk: np.ndarray, shape: tuple, chunk: int = 50) -> np.ndarray:
    """Betas of the voxels ``ijk`` from one session file, in percent signal change.

    Parameters
    ----------
    path : path
        ``betas_sessionNN.hdf5`` (dataset ``betas``) or ``.nii[.gz]``.
    ijk : ndarray (n_vox, 3)
        Voxel indices on the (X, Y, Z) grid.
    shape : tuple
        The (X, Y, Z) grid of the ROI volumes.
    chunk : int
        Trials read at a time from HDF5 (bounds memory).

    Returns
    -------
    ndarray (n_trials, n_vox) float32
    """
    path = Path(path)
    shape = tuple(int(s) for s in shape)
    i, j, k = (np.asarray(ijk[:, a]) for a in range(3))
    if path.suffix == ".hdf5":
        import h5py

        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise ValueError(f"{path}: cannot read HDF5 ({exc})") from exc
        with f:
            if "betas" not in f:
                raise ValueError(f"{path}: no dataset 'betas' (has {list(f)})")
            ds = f["betas"]
            sp = tuple(ds.shape[1:])
            if sp == shape[::-1]:
                order = "zyx"   # as released: h5py sees MATLAB's (X, Y, Z, trials) reversed
            elif sp == shape:
                order = "xyz"
            else:
                raise ValueError(f"{path}: betas shape {ds.shape} does not match the ROI grid {shape} "
                                 f"(expected (n_trials, {shape[2]}, {shape[1]}, {shape[0]}) or (n_trials, *{shape}))")
            integer = np.issubdtype(ds.dtype, np.integer)
            out = np.empty((ds.shape[0], len(ijk)), dtype=np.float32)
            for lo in range(0, ds.shape[0], chunk):
                block = ds[lo:lo + chunk]
                out[lo:lo + chunk] = block[:, k, j, i] if order == "zyx" else block[:, i, j, k]
    else:
        import nibabel as nib

        try:
            img = nib.load(path)
            if img.shape[:3] != shape or len(img.shape) != 4:
                raise ValueError(f"{path}: betas shape {img.shape} does not match the ROI grid {shape} (expected (*{shape}, n_trials))")
            data = np.asanyarray(img.dataobj)
        except ValueError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"{path}: cannot read NIfTI ({type(exc).__name__}: {exc})") from exc
        integer = np.issubdtype(data.dtype, np.integer)
        out = np.ascontiguousarray(data[i, j, k, :].T, dtype=np.float32)
    if integer:
        out /= BETA_SCALE
    if not np.isfinite(out).all():
        raise ValueError(f"{path}: NaN/inf betas in ROI voxels")
    return out


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
