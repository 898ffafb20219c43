"""ROI voxels of one subject on the bold grid: the dseg image and its TSV, checked, as the mask the
GLM is fitted in and each voxel's ROI and hemisphere."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .fmri_inputs import _READ_ERRORS


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
