"""Algonauts 2023 challenge data (NSD on fsaverage vertices) -> :class:`~neuroattn.data.betas.Betas`.

Expected folder tree (the challenge release, one folder per subject)::

    <root>/subj01/training_split/training_fmri/lh_training_fmri.npy    (n_images, n_lh) float32
    <root>/subj01/training_split/training_fmri/rh_training_fmri.npy    (n_images, n_rh) float32
    <root>/subj01/training_split/training_images/train-0001_nsd-00013.png ...
    <root>/subj01/roi_masks/lh.prf-visualrois_challenge_space.npy      (n_lh,) int labels
    <root>/subj01/roi_masks/rh.floc-faces_challenge_space.npy ...       (n_rh,)
    <root>/subj01/roi_masks/mapping_prf-visualrois.npy                  {label value: name}

Rows of the fMRI arrays follow the sorted training image names. The challenge fMRI responses
are already z-scored and averaged over repeats, so each image is one "trial": no repeats are
available, ``ncsnr`` is NaN and no noise ceiling can be computed here (the challenge's own ceiling
files are not part of the training release).

Hemispheres become ``voxel_hemi`` ``lh``/``rh``, so the routing encoder gets one query per ROI
and hemisphere (the published setting). ``voxel_roi`` comes from the challenge-space ROI masks
in the configured priority order (a vertex in several ROI families keeps the first label);
vertices outside every ROI are labelled ``other`` (kept by default: the challenge scores every
vertex; ``keep_other=False`` drops them). ``voxel_ijk`` is -1 (surface data).

Images are named ``nsd-XXXXX.png`` from the ``nsd-XXXXX`` part of the file names (the NSD
adapter's naming), so the images shared between subjects have the same name for every subject;
:func:`write_stimuli` copies them under those names for the feature stage.

The ``mapping_*.npy`` files are pickled dicts; they are read with an unpickler that accepts only
numpy arrays and plain Python values (no arbitrary code), and, when absent, the published NSD
label names (``neuroattn.data.formats.nsd.NSD_ROI_LABELS``) are used.
"""
from __future__ import annotations

import io
import logging
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..betas import Betas
from .nsd import NSD_ROI_LABELS, image_index, image_name, subject_index

log = logging.getLogger("neuroattn.formats.algonauts")

HEMIS = ("lh", "rh")
DEFAULT_ROIS = ("prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words")
ADAPTER_DEFAULTS = {"rois": list(DEFAULT_ROIS), "keep_other": True}


def subject_dir(root, subject) -> Path:
    return Path(root) / f"subj{subject_index(subject):02d}"


def fmri_path(root, subject, hemi) -> Path:
    return subject_dir(root, subject) / "training_split" / "training_fmri" / f"{hemi}_training_fmri.npy"


def images_dir(root, subject) -> Path:
    return subject_dir(root, subject) / "training_split" / "training_images"


def roi_mask_path(root, subject, hemi, name) -> Path:
    return subject_dir(root, subject) / "roi_masks" / f"{hemi}.{name}_challenge_space.npy"


# ----------------------------------------------------------------------------------------------
# safe reading of the pickled mapping files


class _PlainUnpickler(pickle.Unpickler):
    """Unpickler for numpy arrays of plain values: anything else is refused."""

    _ALLOWED = {
        ("builtins", "dict"), ("builtins", "list"), ("builtins", "str"), ("builtins", "int"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_mapping(path) -> dict[int, str]:
    """A ``mapping_<roi>.npy`` file (a pickled dict ``{value: name}``), read without running code."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f"unsupported .npy format version {version}")
            _, _, dtype = read_header(f)
            if dtype.hasobject:
                obj = _PlainUnpickler(io.BytesIO(f.read())).load()
            else:
                f.seek(0)
                obj = np.load(f, allow_pickle=False)
    except (OSError, ValueError, pickle.UnpicklingError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read ROI mapping ({exc})") from exc
    obj = obj.item() if isinstance(obj, np.ndarray) and obj.dtype == object and obj.ndim == 0 else obj
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict {{value: name}}, got {type(obj).__name__}")
    return {int(k): str(v) for k, v in obj.items()}


def _labels(root, subject, name) -> dict[int, str]:
    path = subject_dir(root, subject) / "roi_masks" / f"mapping_{name}.npy"
    if path.is_file():
        table = read_mapping(path)
    elif name in NSD_ROI_LABELS:
        table = {i + 1: n for i, n in enumerate(NSD_ROI_LABELS[name])}
    else:
        raise FileNotFoundError(f"{path}: no label mapping for ROI family {name!r}")
    return {k: v for k, v in table.items() if k > 0 and v.lower() != "unknown"}


# ----------------------------------------------------------------------------------------------
# loading


def _load_array(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Algonauts {what} not found")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read {what} ({exc})") from exc


def read_hemisphere_rois(root, subject, hemi, rois=DEFAULT_ROIS) -> tuple[np.ndarray, list[Path]]:
    """ROI name per challenge-space vertex of one hemisphere ('' outside every ROI).

    Every ROI family must have the same vertex count; the first family labelling a vertex wins.
    """
    labels, files, n = None, [], None
    for name in rois:
        path = roi_mask_path(root, subject, hemi, name)
        mask = np.round(_load_array(path, "ROI mask")).astype(np.int64).ravel()
        if n is None:
            n = len(mask)
            labels = np.full(n, "", dtype=object)
        elif len(mask) != n:
            raise ValueError(f"{path}: {len(mask)} vertices, expected {n} (as {hemi}.{rois[0]}_challenge_space.npy)")
        table = _labels(root, subject, name)
        unknown = sorted(set(np.unique(mask[mask > 0]).tolist()) - set(table))
        if unknown:
            raise ValueError(f"{path}: label value(s) {unknown[:10]} have no name in mapping_{name}.npy")
        free = labels == ""
        for k, v in table.items():
            labels[(mask == k) & free] = v
        files.append(path)
    return labels, files


def training_images(root, subject) -> list[Path]:
    """Training image files, sorted (the row order of the fMRI arrays)."""
    folder = images_dir(root, subject)
    files = sorted(p for p in folder.glob("*.png")) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(f"{folder}: no training images (train-XXXX_nsd-XXXXX.png)")
    bad = [p.name for p in files if not re.search(r"nsd-\d+", p.name)]
    if bad:
        raise ValueError(f"{folder}: image name(s) {bad[:3]} lack the 'nsd-XXXXX' part")
    return files


def load_subject(root, subject, *, rois=DEFAULT_ROIS, keep_other=True, task="algonauts"):
    """Algonauts 2023 training data of one subject as a :class:`Betas`.

    Parameters
    ----------
    root : path
        Folder holding ``subjXX/``.
    subject : str or int
    rois : sequence of str
        ROI families (``prf-visualrois``, ``floc-*``, ``streams``) in priority order.
    keep_other : bool
        Keep vertices outside every ROI as ``other``.
    task : str

    Returns
    -------
    betas : Betas
        One trial per image (no repeats: ``ncsnr`` NaN), vertices of ``lh`` then ``rh``.
    trials : DataFrame
        ``trial, image, file``.
    files : list of Path
    """
    images = training_images(root, subject)
    blocks, roi, hemi, files = [], [], [], []
    for h in HEMIS:
        labels, rfiles = read_hemisphere_rois(root, subject, h, rois)
        path = fmri_path(root, subject, h)
        Y = _load_array(path, "fMRI responses")
        if Y.ndim != 2:
            raise ValueError(f"{path}: expected (n_images, n_vertices), got shape {Y.shape}")
        if Y.shape[1] != len(labels):
            raise ValueError(f"{path}: {Y.shape[1]} vertices, expected {len(labels)} "
                             f"(the length of {h}.{rois[0]}_challenge_space.npy)")
        if Y.shape[0] != len(images):
            raise ValueError(f"{path}: {Y.shape[0]} rows for {len(images)} training images in {images_dir(root, subject)}")
        if not np.isfinite(Y).all():
            raise ValueError(f"{path}: NaN/inf responses")
        keep = np.ones(len(labels), bool) if keep_other else labels != ""
        blocks.append(Y[:, keep].astype(np.float32))
        roi.append(np.where(labels[keep] == "", "other", labels[keep]))
        hemi.append(np.full(int(keep.sum()), h, dtype=object))
        files += [path, *rfiles]
    names = image_name(image_index([p.name for p in images]))
    if len(set(names)) != len(names):
        raise ValueError(f"{images_dir(root, subject)}: several training images share an nsd index")
    s = subject_index(subject)
    betas = Betas(subject=f"{s:02d}", trial_betas=np.concatenate(blocks, axis=1), trial_image=names,
                  voxel_roi=np.concatenate(roi), voxel_hemi=np.concatenate(hemi), task=task)
    if betas.trial_betas.shape[1] == 0:
        raise ValueError(f"{subject_dir(root, subject)}: no vertex in the ROIs {list(rois)}")
    log.info("subj%02d: %d images x %d vertices (lh %d, rh %d); no repeats, ncsnr NaN", s, len(names),
             betas.trial_betas.shape[1], blocks[0].shape[1], blocks[1].shape[1])
    trials = pd.DataFrame({"trial": np.arange(len(names)), "image": names, "file": [p.name for p in images]})
    return betas, trials, files + images


def adapter_params(adapter: dict | None) -> dict:
    """``fmri.adapter`` of the config merged over :data:`ADAPTER_DEFAULTS`; unknown keys refused."""
    adapter = dict(adapter or {})
    unknown = sorted(set(adapter) - set(ADAPTER_DEFAULTS))
    if unknown:
        raise KeyError(f"fmri.adapter: unknown key(s) {unknown} for the Algonauts format (allowed: {sorted(ADAPTER_DEFAULTS)})")
    return {**ADAPTER_DEFAULTS, **adapter}


def preprocess_subject(root, subject, adapter: dict | None = None, task: str = "algonauts"):
    """:func:`load_subject` packaged as a ``neuroattn.data.fmri.SubjectBetas``."""
    from ..fmri import SubjectBetas, _versions

    p = adapter_params(adapter)
    betas, trials, files = load_subject(root, subject, rois=p["rois"], keep_other=p["keep_other"], task=task)
    voxels = pd.DataFrame({"voxel": np.arange(len(betas.voxel_roi)), "roi": betas.voxel_roi,
                           "hemi": betas.voxel_hemi, "ncsnr": betas.ncsnr, "noise_ceiling": np.nan})
    provenance = {
        "subject": betas.subject, "task": task, "format": "algonauts", "root": str(root), "config": p,
        "inputs": [{"path": str(f), "bytes": Path(f).stat().st_size} for f in files],
        "versions": _versions(), "n_images": int(len(betas.images)), "n_voxels": int(len(betas.voxel_roi)),
        "note": "Algonauts training data hold one averaged response per image: no noise ceiling",
    }
    return SubjectBetas(betas=betas, trials=trials, voxels=voxels, provenance=provenance)


def write_stimuli(root, subject, folder) -> list[Path]:
    """Copy the subject's training images into ``folder`` as ``nsd-XXXXX.png`` (existing files kept)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for p in training_images(root, subject):
        dest = folder / image_name(image_index([p.name]))[0]
        if not dest.is_file():
            from ...utils import atomic_path

            with atomic_path(dest) as tmp:
                shutil.copyfile(p, tmp)
        out.append(dest)
    return out
