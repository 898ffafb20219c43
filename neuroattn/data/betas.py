"""The single-trial beta set of one subject: the contract between fMRI preprocessing and models.

Written by the fMRI preprocessing step (``neuroattn.data.fmri``) and by real-data adapters
(NSD, Algonauts), read by every encoder, decoder and metric. One HDF5 file per subject:

=================  =======================  ==========================================
dataset            shape / dtype            meaning
=================  =======================  ==========================================
trial_betas        (n_trials, n_vox) f4     z-scored per voxel within each session
trial_image        (n_trials,) str          stimulus file name (e.g. ``img0001.png``)
trial_session      (n_trials,) str          session label ('' when the data has none)
images             (n_images,) str          unique stimuli, sorted
betas              (n_images, n_vox) f4     trial betas averaged over repeats
n_repeats          (n_images,) i4           trials averaged into each row of ``betas``
voxel_roi          (n_vox,) str             ROI name of each voxel
voxel_hemi         (n_vox,) str             'lh' / 'rh' / '' (optional hemisphere)
voxel_ijk          (n_vox, 3) i4            voxel index in the bold grid (-1 when none)
ncsnr              (n_vox,) f4              NSD noise-ceiling SNR
=================  =======================  ==========================================

Attributes: ``subject``, ``task``, ``affine`` (4x4 of the bold grid, optional), ``shape`` (3,).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..utils import atomic_path

_STR = h5py.string_dtype("utf-8")


@dataclass
class Betas:
    """Single-trial and image-averaged betas of one subject, with voxel metadata."""

    subject: str
    trial_betas: np.ndarray
    trial_image: np.ndarray
    voxel_roi: np.ndarray
    trial_session: np.ndarray | None = None
    voxel_hemi: np.ndarray | None = None
    voxel_ijk: np.ndarray | None = None
    ncsnr: np.ndarray | None = None
    task: str = ""
    affine: np.ndarray | None = None
    shape: tuple | None = None
    images: np.ndarray = field(init=False)
    betas: np.ndarray = field(init=False)
    n_repeats: np.ndarray = field(init=False)

    def __post_init__(self):
        self.trial_betas = np.asarray(self.trial_betas, dtype=np.float32)
        self.trial_image = np.asarray(self.trial_image).astype(str)
        self.voxel_roi = np.asarray(self.voxel_roi).astype(str)
        n_trials, n_vox = self.trial_betas.shape
        if self.trial_image.shape != (n_trials,):
            raise ValueError(f"sub-{self.subject}: {len(self.trial_image)} trial images for {n_trials} trials")
        if self.voxel_roi.shape != (n_vox,):
            raise ValueError(f"sub-{self.subject}: {len(self.voxel_roi)} ROI labels for {n_vox} voxels")
        if self.trial_session is None:
            self.trial_session = np.full(n_trials, "", dtype=object)
        self.trial_session = np.asarray(self.trial_session).astype(str)
        if self.voxel_hemi is None:
            self.voxel_hemi = np.full(n_vox, "", dtype=object)
        self.voxel_hemi = np.asarray(self.voxel_hemi).astype(str)
        if self.voxel_ijk is None:
            self.voxel_ijk = np.full((n_vox, 3), -1, dtype=np.int32)
        if self.ncsnr is None:
            self.ncsnr = np.full(n_vox, np.nan, dtype=np.float32)
        self.images, inverse, self.n_repeats = np.unique(self.trial_image, return_inverse=True, return_counts=True)
        sums = np.zeros((len(self.images), n_vox), dtype=np.float64)
        np.add.at(sums, inverse, self.trial_betas)
        self.betas = (sums / self.n_repeats[:, None]).astype(np.float32)

    @property
    def rois(self) -> list[str]:
        """ROI names in order of first appearance."""
        _, idx = np.unique(self.voxel_roi, return_index=True)
        return [str(self.voxel_roi[i]) for i in sorted(idx)]

    def repeats(self, images=None) -> np.ndarray:
        """Trial betas of repeated images as (n_reps, n_images, n_vox), for ceilings.

        Only images with at least the minimum repeat count among ``images`` are kept; each
        gets its first ``n_reps`` trials.
        """
        images = self.images if images is None else np.asarray(images).astype(str)
        counts = {im: np.flatnonzero(self.trial_image == im) for im in images}
        counts = {im: idx for im, idx in counts.items() if len(idx) >= 2}
        if not counts:
            raise ValueError(f"sub-{self.subject}: no image was shown at least twice")
        n_reps = min(len(idx) for idx in counts.values())
        idx = np.stack([v[:n_reps] for v in counts.values()], axis=1)
        return self.trial_betas[idx]

    def select(self, images) -> np.ndarray:
        """Image-averaged betas for ``images`` in the given order; names missing images."""
        images = np.asarray(images).astype(str)
        pos = {im: i for i, im in enumerate(self.images)}
        missing = [im for im in images if im not in pos]
        if missing:
            raise KeyError(f"sub-{self.subject}: no betas for image(s) {missing[:5]}" + (" ..." if len(missing) > 5 else ""))
        return self.betas[[pos[im] for im in images]]

    def write(self, path: str | Path) -> None:
        """Write to HDF5 atomically."""
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.attrs["subject"] = self.subject
            f.attrs["task"] = self.task
            if self.affine is not None:
                f.attrs["affine"] = np.asarray(self.affine, dtype=np.float64)
            if self.shape is not None:
                f.attrs["shape"] = np.asarray(self.shape, dtype=np.int64)
            f.create_dataset("trial_betas", data=self.trial_betas, compression="gzip", compression_opts=4)
            f.create_dataset("betas", data=self.betas, compression="gzip", compression_opts=4)
            for name in ("trial_image", "trial_session", "images", "voxel_roi", "voxel_hemi"):
                f.create_dataset(name, data=getattr(self, name).astype(object), dtype=_STR)
            f.create_dataset("n_repeats", data=self.n_repeats.astype(np.int32))
            f.create_dataset("voxel_ijk", data=np.asarray(self.voxel_ijk, dtype=np.int32))
            f.create_dataset("ncsnr", data=np.asarray(self.ncsnr, dtype=np.float32))

    @classmethod
    def read(cls, path: str | Path) -> "Betas":
        """Read a beta file written by :meth:`write`; errors name the file."""
        try:
            with h5py.File(path, "r") as f:
                def s(name):
                    return f[name].asstr()[()] if name in f else None
                obj = cls(
                    subject=str(f.attrs.get("subject", "")),
                    trial_betas=f["trial_betas"][()],
                    trial_image=s("trial_image"),
                    voxel_roi=s("voxel_roi"),
                    trial_session=s("trial_session"),
                    voxel_hemi=s("voxel_hemi"),
                    voxel_ijk=f["voxel_ijk"][()] if "voxel_ijk" in f else None,
                    ncsnr=f["ncsnr"][()] if "ncsnr" in f else None,
                    task=str(f.attrs.get("task", "")),
                    affine=f.attrs.get("affine"),
                    shape=tuple(f.attrs["shape"]) if "shape" in f.attrs else None,
                )
        except (OSError, KeyError) as exc:
            raise ValueError(f"{path}: not a readable neuroattn beta file ({exc})") from exc
        return obj
