"""Voxel values back on the bold grid, and the subject's bold reference image (for brain maps)."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

__all__ = ["bold_reference", "to_volume", "write_nifti"]


def to_volume(values, ijk, shape, affine, fill: float = 0.0) -> nib.Nifti1Image:
    """A 3-D float32 image of ``values`` (V,) at voxel indices ``ijk`` (V, 3) of a ``shape`` grid.

    Voxels without a value, and non-finite values, get ``fill``; rows of ``ijk`` with a negative
    index (voxels that have no place in the grid) are left out.
    """
    values = np.asarray(values, dtype=np.float32).ravel()
    ijk = np.asarray(ijk, dtype=int).reshape(-1, 3)
    if len(values) != len(ijk):
        raise ValueError(f"{len(values)} values for {len(ijk)} voxel indices")
    shape = tuple(int(s) for s in shape)[:3]
    if len(shape) != 3:
        raise ValueError(f"shape must have 3 entries, got {shape}")
    ok = (ijk >= 0).all(1) & (ijk < np.array(shape)).all(1)
    data = np.full(shape, fill, dtype=np.float32)
    v = values[ok]
    data[tuple(ijk[ok].T)] = np.where(np.isfinite(v), v, fill)
    return nib.Nifti1Image(data, np.asarray(affine, dtype=np.float64))


def bold_reference(fmt: str, root, subject: str, task: str, adapter: dict | None = None):
    """The temporal mean of the subject's first bold run (the BOLD reference), or ``None`` for
    formats without volumetric runs (only ``bids`` and ``fmriprep`` have them)."""
    if fmt == "bids":
        from .bids import find_fmri_runs

        runs = find_fmri_runs(root, subject, task)
    elif fmt == "fmriprep":
        from .formats.fmriprep import find_fmriprep_runs

        runs = find_fmriprep_runs(root, subject, task, **{k: v for k, v in (adapter or {}).items() if v is not None})
    else:
        return None
    img = nib.load(str(runs[0].bold))
    data = np.asarray(img.dataobj, dtype=np.float32)
    mean = data.mean(axis=3) if data.ndim == 4 else data
    return nib.Nifti1Image(mean.astype(np.float32), img.affine)


def write_nifti(img: nib.Nifti1Image, path) -> None:
    """Save ``img`` as gzipped NIfTI-1 atomically (``mtime=0``: the same image gives the same bytes)."""
    import gzip

    from ..utils import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(gzip.compress(img.to_bytes(), mtime=0))
