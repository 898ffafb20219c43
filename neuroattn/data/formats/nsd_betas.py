"""NSD session beta files (HDF5 or NIfTI): which exist for a subject, and their ROI voxels read
chunk by chunk; see :mod:`.nsd` for the conventions."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from .nsd_layout import BETA_SCALE, betas_dir

log = logging.getLogger("neuroattn.formats.nsd")

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

