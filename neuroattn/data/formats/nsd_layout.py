"""NSD release layout: constants, image names, the paths of the release's files and its
experimental design (``nsd_expdesign.mat``); see :mod:`.nsd` for the conventions."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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

