"""NSD ROI volumes on the functional grid (colour tables, hemispheres), as the voxels kept for the
betas; see :mod:`.nsd` for the conventions."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .nsd_layout import DEFAULT_ROIS, NSD_ROI_LABELS, roi_dir, subject_index

log = logging.getLogger("neuroattn.formats.nsd")

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

