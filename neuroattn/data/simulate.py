"""Simulated fMRI BIDS dataset with known ground truth (stimuli + BOLD + ROIs + truth).

:func:`simulate_fmri_dataset` draws the stimuli (:mod:`neuroattn.data.stimuli`), places ROIs in a
coarse MNI brain mask (nilearn's bundled MNI152 mask, resampled to ``voxel_size``), gives every
ROI voxel a tuning, draws single-trial responses and turns them into BOLD runs. It writes::

    <root>/dataset_description.json, README, participants.tsv, task-<t>_bold.json, task-<t>_events.json
    <root>/stimuli/img0000.png ... stimuli.tsv            (stim_file, category, n_objects)
    <root>/sub-<s>/func/sub-<s>_task-<t>_run-<r>_bold.nii.gz (+ _bold.json), _events.tsv
    <root>/derivatives/rois/sub-<s>/anat/sub-<s>_desc-rois_dseg.nii.gz (+ .tsv: index, name)
    <root>/derivatives/fmriprep/sub-<s>/func/sub-<s>_task-<t>_run-<r>_desc-confounds_timeseries.tsv
    <root>/derivatives/truth/stimuli.tsv                  (one row per object: category, x, y, size,
                                                           rotation, hue, r, g, b, visible)
    <root>/derivatives/truth/sub-<s>/sub-<s>_desc-truth.h5

Generative model
----------------
ROIs. ``ret_V1``, ``ret_V2``, ``ret_V3`` (retinotopic) near the occipital pole and one
``cat_<category>`` ROI per object category in occipito-temporal cortex, both hemispheres. Each ROI
is the voxels nearest a seed point (MNI mm, jittered per subject) within the seed's Voronoi cell;
its size is a fixed volume (so the voxel count scales with ``voxel_size``), varied per subject.

Retinotopic voxels respond to the local contrast energy ``E`` (:func:`~neuroattn.data.stimuli.
contrast_energy`) under a Gaussian receptive field at a fixed place of the visual field:
``drive = sqrt(sum_p G_v(p) E(p))`` (compressive spatial summation). Left-hemisphere voxels see the
right hemifield and vice versa; polar angle follows the voxel's inferior-superior rank in its ROI
(superior = lower field), eccentricity its posterior-anterior rank (posterior = foveal). RF size
(sigma, fraction of the image) grows V1 < V2 < V3.

Category voxels respond to every object of their category, wherever it is:
``drive = sum_o visible_o * (1 + w_col cos(2 pi (hue_o - hue_v)) + w_size z(size_o))`` plus a weak
response (0.1) to any other object, with voxel-specific preferred hue ``hue_v`` and weights.

Each drive is z-scored over the whole stimulus set. The single-trial response (percent signal
change) of voxel v to image i on a trial is::

    trial_response = scale_v * (mu + sqrt(rho_v) * drive_z(i, v) + sqrt(1 - rho_v) * eps)

so ``rho_v`` (drawn uniform in [0.1, 0.9]) is the voxel's true reliability, signal variance over
signal + trial-noise variance. BOLD = baseline_v * (1 + (X @ trial_response + drift + motion + AR(1)
noise) / 100), X the trial regressors (nilearn's Glover HRF, the events' onsets and durations,
frame times ``arange(n_scans) * tr``), drift a few cosines slower than 0.008 Hz, motion six smooth
random walks mixed into every voxel (written as confounds), AR(1) noise (voxel-specific rho). The
BOLD noise (AR(1) + motion) has sd ``NOISE_SD / snr`` percent (0.1 % at ``snr = 1``, against trial
responses of sd ~2 %, each a 3-s event): at the default an LSA GLM (nilearn, AR(1)) recovers
single-trial responses at a median r of 0.98 over voxels (5th percentile 0.93; benchmarks/simulate.py).

Trials. Every subject sees the ``n_shared`` shared images (``stim_file`` img0000... chosen at
random, the same for all) ``n_repeats_shared`` times, and ``n_train_per_subject`` other images
(drawn per subject from the rest) ``n_repeats_train`` times, in a random order split into
``n_runs`` runs; one trial (1 s) every 3.5-4.5 s.

Truth file ``sub-<s>_desc-truth.h5`` (never read by models)
-------------------------------------------------------------
====================  ====================  ================================================
dataset               shape / dtype         meaning
====================  ====================  ================================================
voxel_ijk             (V, 3) i4             voxel index in the bold grid
voxel_roi             (V,) str              ROI name
voxel_hemi            (V,) str              'lh' / 'rh'
trial_run             (n_trials,) i4        run number (1-based, as in the file names)
trial_onset           (n_trials,) f8        onset (s) within its run
trial_image           (n_trials,) str       stim_file
trial_response        (n_trials, V) f4      true single-trial amplitudes (% signal change)
reliability           (V,) f4               signal var / (signal var + trial-noise var)
rf_center             (V, 2) f4             (x, y) in [0, 1] image coords; NaN if not ret_*
rf_sigma              (V,) f4               RF sd (fraction of the image); NaN if not ret_*
voxel_category        (V,) str              preferred category ('' if not cat_*)
voxel_hue             (V,) f4               preferred hue of cat_* voxels (NaN otherwise)
images                (n_seen,) str         the images this subject saw, sorted
image_response        (n_seen, V) f4        noise-free response (trial_response without eps)
roi_routing/<roi>     (size, size) f4       where in the image the ROI reads from, averaged
                                            over this subject's images, summing to 1
image_routing/<roi>   (n_seen, 24, 24) f2   cat_* ROIs only: per image (rows of ``images``),
                                            the visible pixels of the ROI's category, summing
                                            to 1 (all zeros when the category is absent)
====================  ====================  ================================================
Attributes: ``subject``, ``task``, ``tr``, ``affine``, ``shape``, ``noise_sd`` (BOLD noise sd, %).
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from .stimuli import CATEGORIES, Stimuli, block_mean, contrast_energy, draw_stimuli, write_stimuli

__all__ = ["CATEGORIES", "FmriSimParams", "draw_stimuli", "params_from_config", "simulate_fmri_dataset",
           "simulate_fmri_from_config"]

log = logging.getLogger("neuroattn.simulate")

#: BOLD noise sd (AR(1) + motion, % signal change) at snr = 1
NOISE_SD = 0.1
#: amplitude of the slow drift (% signal change)
DRIFT_SD = 1.0
#: mean evoked response, in units of the voxel's response scale (its total trial sd)
MEAN_RESPONSE = 1.0
#: seed points (right hemisphere, MNI mm; mirrored on the left) and RF sigma of retinotopic ROIs
RET_SEEDS = {"V1": ((8, -98, 2), 0.06), "V2": ((16, -92, -12), 0.09), "V3": ((28, -90, 10), 0.13)}
CAT_SEEDS = ((40, -54, -20), (28, -42, -10), (46, -76, -4), (50, -62, 10), (34, -66, -16), (22, -80, -16))
#: volume of one ROI per hemisphere (mm^3) -> ~50 voxels per ROI and hemisphere at 6 mm
ROI_VOLUME = 10_000.0
#: contrast-energy grid on which receptive fields integrate
ENERGY_GRID = 24
TRIAL_DURATION = 3.0
ITI_RANGE = (3.5, 4.5)
FIRST_ONSET = 6.0
TAIL = 20.0
MOTION = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
_LABEL = re.compile(r"^[a-zA-Z0-9]+$")
_STR = h5py.string_dtype("utf-8")


# --------------------------------------------------------------------------------------------
# arguments
def _int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _num(name, value, low=0.0, high=np.inf):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (low < value <= high):
        raise ValueError(f"{name} must be in ({low}, {high}], got {value}")
    return float(value)


@dataclass(frozen=True)
class FmriSimParams:
    """Validated arguments of :func:`simulate_fmri_dataset`."""

    n_subjects: int = 4
    n_images: int = 1000
    image_size: int = 96
    n_shared: int = 100
    n_repeats_shared: int = 3
    n_train_per_subject: int = 500
    n_repeats_train: int = 1
    voxel_size: float = 6.0
    tr: float = 2.0
    n_runs: int = 10
    snr: float = 1.0
    task: str = "vision"
    seed: int = 0

    def __post_init__(self):
        _int("n_subjects", self.n_subjects, 1)
        _int("n_images", self.n_images, 2)
        _int("image_size", self.image_size, 32)
        _int("n_shared", self.n_shared, 1)
        _int("n_repeats_shared", self.n_repeats_shared, 1)
        _int("n_train_per_subject", self.n_train_per_subject, 0)
        _int("n_repeats_train", self.n_repeats_train, 1)
        _num("voxel_size", self.voxel_size, 2.99, 12.0)
        _num("tr", self.tr, 0.0, 10.0)
        _int("n_runs", self.n_runs, 1)
        _num("snr", self.snr)
        _int("seed", self.seed, 0)
        if not isinstance(self.task, str) or not _LABEL.match(self.task):
            raise ValueError(f"task must be a BIDS label (letters and digits only), got {self.task!r}")
        if self.n_shared + self.n_train_per_subject > self.n_images:
            raise ValueError(f"n_shared + n_train_per_subject ({self.n_shared} + {self.n_train_per_subject}) "
                             f"must not exceed n_images ({self.n_images})")
        n_trials = self.n_shared * self.n_repeats_shared + self.n_train_per_subject * self.n_repeats_train
        if self.n_runs > n_trials:
            raise ValueError(f"n_runs ({self.n_runs}) exceeds the number of trials per subject ({n_trials})")
        if self.voxel_size < 3.0:
            raise ValueError(f"voxel_size must be >= 3 mm (got {self.voxel_size}): finer grids are too large to simulate")

    @property
    def n_trials(self) -> int:
        return self.n_shared * self.n_repeats_shared + self.n_train_per_subject * self.n_repeats_train


def params_from_config(sim: Mapping, *, task: str, seed: int) -> FmriSimParams:
    """Map the config's ``simulate`` section (``fmri`` sub-section; ``eeg`` ignored) to parameters."""
    sim = dict(sim)
    fmri = dict(sim.pop("fmri", {}) or {})
    sim.pop("eeg", None)
    known = {f for f in FmriSimParams.__dataclass_fields__} - {"task", "seed", "n_subjects", "voxel_size", "tr", "n_runs", "snr"}
    bad = sorted(set(sim) - known)
    if bad:
        raise KeyError(f"simulate: unknown key(s) {bad}; known: {sorted(known)}")
    fknown = {"n_subjects", "voxel_size", "tr", "n_runs", "snr"}
    bad = sorted(set(fmri) - fknown)
    if bad:
        raise KeyError(f"simulate.fmri: unknown key(s) {bad}; known: {sorted(fknown)}")
    return FmriSimParams(**sim, **fmri, task=task, seed=seed)


# --------------------------------------------------------------------------------------------
# anatomy
def brain_mask(voxel_size: float) -> nib.Nifti1Image:
    """nilearn's bundled MNI152 brain mask resampled to ``voxel_size`` mm, cropped to the brain."""
    from nilearn.datasets import load_mni152_brain_mask
    from nilearn.image import resample_img

    mni = load_mni152_brain_mask(resolution=2)
    img = resample_img(mni, target_affine=np.diag([voxel_size] * 3), interpolation="nearest",
                       force_resample=True, copy_header=True)
    data = np.asarray(img.dataobj) > 0
    idx = np.argwhere(data)
    lo, hi = np.maximum(idx.min(0) - 1, 0), np.minimum(idx.max(0) + 2, data.shape)
    crop = data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    affine = img.affine.copy()
    affine[:3, 3] = nib.affines.apply_affine(img.affine, lo)
    return nib.Nifti1Image(crop.astype(np.uint8), affine)


def _ijk_to_mm(affine, ijk):
    return nib.affines.apply_affine(affine, ijk)


def place_rois(mask: nib.Nifti1Image, rng: np.random.Generator, categories) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Subject-specific ROIs in ``mask``.

    Returns
    -------
    labels : ndarray (x, y, z) int16, 0 = none, k = ``names[k - 1]``
    names : list of str
    hemi : ndarray (x, y, z) int8, -1 left, +1 right, 0 none
    """
    data = np.asarray(mask.dataobj) > 0
    ijk = np.argwhere(data)
    xyz = _ijk_to_mm(mask.affine, ijk)
    vs = float(np.abs(np.diag(mask.affine)[:3]).mean())
    names = [f"ret_{k}" for k in RET_SEEDS] + [f"cat_{c}" for c in categories]
    seeds_r = [np.array(s, float) for s, _ in RET_SEEDS.values()] + [np.array(CAT_SEEDS[i % len(CAT_SEEDS)], float)
                                                                     for i in range(len(categories))]
    for i in range(len(CAT_SEEDS), len(categories)):  # more categories than seeds: shift the extras
        seeds_r[len(RET_SEEDS) + i] += np.array([6.0, 8.0, 6.0]) * (i // len(CAT_SEEDS))
    labels = np.zeros(data.shape, np.int16)
    hemi = np.zeros(data.shape, np.int8)
    for side in (-1, 1):
        seeds = np.array([s * np.array([side, 1, 1]) for s in seeds_r]) + rng.normal(0, 3.0, size=(len(names), 3))
        in_hemi = (xyz[:, 0] * side > 0) & (xyz[:, 1] < -30) & (xyz[:, 2] < 30)
        cand, cxyz = ijk[in_hemi], xyz[in_hemi]
        d = np.linalg.norm(cxyz[:, None, :] - seeds[None], axis=2)
        cell = d.argmin(1)
        for k in range(len(names)):
            n_vox = max(3, int(round(ROI_VOLUME * rng.uniform(0.8, 1.2) / vs**3)))
            members = np.flatnonzero(cell == k)
            members = members[np.argsort(d[members, k], kind="stable")][:n_vox]
            labels[tuple(cand[members].T)] = k + 1
            hemi[tuple(cand[members].T)] = side
    return labels, names, hemi


# --------------------------------------------------------------------------------------------
# tuning and drive
@dataclass
class VoxelTuning:
    ijk: np.ndarray
    roi: np.ndarray
    hemi: np.ndarray
    rf_center: np.ndarray
    rf_sigma: np.ndarray
    category: np.ndarray
    hue: np.ndarray
    w_col: np.ndarray
    w_size: np.ndarray
    reliability: np.ndarray
    scale: np.ndarray


def _rank(v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ranks of ``v`` scaled to (0, 1), ties broken at random."""
    r = np.argsort(np.argsort(v + rng.normal(0, 1e-3, len(v)), kind="stable"), kind="stable")
    return (r + 0.5) / len(v)


def voxel_tuning(labels, names, hemi, affine, rng) -> VoxelTuning:
    """Draw every ROI voxel's tuning (RF for ``ret_*``, object features for ``cat_*``) and reliability."""
    ijk = np.argwhere(labels > 0)
    lab = labels[tuple(ijk.T)]
    order = np.lexsort((ijk[:, 2], ijk[:, 1], ijk[:, 0], lab))
    ijk, lab = ijk[order], lab[order]
    V = len(ijk)
    roi = np.array([names[k - 1] for k in lab], dtype=object)
    side = hemi[tuple(ijk.T)]
    xyz = _ijk_to_mm(affine, ijk)
    rf_center = np.full((V, 2), np.nan)
    rf_sigma = np.full(V, np.nan)
    category = np.array([""] * V, dtype=object)
    hue = np.full(V, np.nan)
    w_col = np.zeros(V)
    w_size = np.zeros(V)
    ret_sigma = {f"ret_{k}": s for k, (_, s) in RET_SEEDS.items()}
    for name in names:
        for sd in (-1, 1):
            sel = np.flatnonzero((roi == name) & (side == sd))
            if not len(sel):
                continue
            if name in ret_sigma:
                angle = (_rank(xyz[sel, 2], rng) - 0.5) * np.pi * 0.9   # superior -> lower field (y down)
                ecc = 0.06 + 0.36 * (1 - _rank(xyz[sel, 1], rng))       # posterior (small y) -> foveal
                x = 0.5 - sd * ecc * np.cos(angle)                 # left hemisphere -> right field
                y = 0.5 + ecc * np.sin(angle)
                c = np.stack([x, y], 1) + rng.normal(0, 0.03, (len(sel), 2))
                rf_center[sel] = np.clip(c, 0.03, 0.97)
                rf_sigma[sel] = ret_sigma[name] * rng.uniform(0.8, 1.25, len(sel))
            else:
                category[sel] = name[len("cat_"):]
                hue[sel] = rng.random(len(sel))
                w_col[sel] = rng.uniform(0.2, 0.7, len(sel))
                w_size[sel] = rng.uniform(-0.3, 0.7, len(sel))
    reliability = rng.uniform(0.1, 0.9, V)
    scale = rng.uniform(1.5, 2.5, V)
    return VoxelTuning(ijk=ijk.astype(np.int32), roi=roi.astype(str), hemi=np.where(side < 0, "lh", "rh"),
                       rf_center=rf_center, rf_sigma=rf_sigma, category=category.astype(str), hue=hue,
                       w_col=w_col, w_size=w_size, reliability=reliability, scale=scale)


def gaussian_rfs(center: np.ndarray, sigma: np.ndarray, size: int) -> np.ndarray:
    """(n, size, size) Gaussian receptive fields on a size x size pixel grid, each summing to 1."""
    g = (np.arange(size) + 0.5) / size
    gx = np.exp(-0.5 * ((g[None, :] - center[:, :1]) / sigma[:, None]) ** 2)
    gy = np.exp(-0.5 * ((g[None, :] - center[:, 1:]) / sigma[:, None]) ** 2)
    rf = gy[:, :, None] * gx[:, None, :]
    return rf / rf.sum((1, 2), keepdims=True)


def image_drive(stim: Stimuli, energy: np.ndarray, tun: VoxelTuning) -> np.ndarray:
    """Noise-free drive of every voxel by every image, z-scored over images: (n_images, V)."""
    n_img, V = len(stim.table), len(tun.roi)
    drive = np.zeros((n_img, V))
    ret = np.flatnonzero(~np.isnan(tun.rf_sigma))
    if len(ret):
        rf = gaussian_rfs(tun.rf_center[ret], tun.rf_sigma[ret], energy.shape[1]).reshape(len(ret), -1)
        drive[:, ret] = np.sqrt(np.maximum(energy.reshape(n_img, -1) @ rf.T, 0))
    cat = np.flatnonzero(tun.category != "")
    if len(cat):
        obj = stim.objects
        img_index = pd.Index(stim.table.stim_file).get_indexer(obj.stim_file)
        zsize = ((obj["size"] - obj["size"].mean()) / obj["size"].std()).to_numpy()
        same = obj.category.to_numpy()[:, None] == tun.category[cat][None, :]         # (n_obj, n_cat)
        f = 1 + tun.w_col[cat] * np.cos(2 * np.pi * (obj.hue.to_numpy()[:, None] - tun.hue[cat]))
        f = f + tun.w_size[cat] * zsize[:, None]
        contrib = obj.visible.to_numpy()[:, None] * np.where(same, f, 0.1)
        acc = np.zeros((n_img, len(cat)))
        np.add.at(acc, img_index, contrib)
        drive[:, cat] = acc
    sd = drive.std(0)
    sd[sd == 0] = 1
    return (drive - drive.mean(0)) / sd


def image_routing(stim: Stimuli, images: np.ndarray, categories, grid: int = ENERGY_GRID) -> dict[str, np.ndarray]:
    """Per-image routing of each category ROI: its category's visible object pixels, (n, grid, grid).

    Each map sums to 1 where the image holds an object of the category and is all zeros otherwise.
    """
    obj = stim.objects
    size = stim.images.shape[1]
    row = pd.Index(images).get_indexer(obj.stim_file)
    out = {}
    for c in categories:
        sel = np.flatnonzero((row >= 0) & (obj.category.to_numpy() == c))
        maps = np.zeros((len(images), size, size))
        np.add.at(maps, row[sel], stim.masks[sel].astype(np.float64))
        maps = block_mean(maps, (1, grid / size, grid / size))
        tot = maps.sum((1, 2), keepdims=True)
        out[f"cat_{c}"] = np.divide(maps, tot, out=np.zeros_like(maps), where=tot > 0).astype(np.float32)
    return out


def roi_routing(stim: Stimuli, images: np.ndarray, tun: VoxelTuning) -> dict[str, np.ndarray]:
    """True routing map per ROI at image resolution, averaged over ``images``, each summing to 1."""
    size = stim.images.shape[1]
    out = {}
    sel_img = set(images)
    obj = stim.objects
    keep = obj.stim_file.isin(sel_img).to_numpy()
    for name in dict.fromkeys(tun.roi):
        vox = np.flatnonzero(tun.roi == name)
        if name.startswith("ret_"):
            m = gaussian_rfs(tun.rf_center[vox], tun.rf_sigma[vox], size).mean(0)
        else:
            c = name[len("cat_"):]
            rows = np.flatnonzero(keep & (obj.category.to_numpy() == c))
            m = stim.masks[rows].sum(0).astype(np.float64) if len(rows) else np.ones((size, size))
        out[name] = (m / m.sum()).astype(np.float32)
    return out


# --------------------------------------------------------------------------------------------
# design and BOLD
def trial_design(rng, shared, train, p: FmriSimParams) -> list[pd.DataFrame]:
    """Random trial order split into runs; events tables (onset, duration, trial_type, stim_file)."""
    trials = [(im, "shared") for im in shared for _ in range(p.n_repeats_shared)]
    trials += [(im, "train") for im in train for _ in range(p.n_repeats_train)]
    order = rng.permutation(len(trials))
    runs = []
    for chunk in np.array_split(order, p.n_runs):
        itis = rng.uniform(*ITI_RANGE, size=len(chunk))
        itis[:-1] *= np.mean(ITI_RANGE) / itis[:-1].mean() if len(chunk) > 1 else 1.0  # same run length
        onsets = np.round(FIRST_ONSET + np.concatenate([[0.0], np.cumsum(itis[:-1])]), 2)
        runs.append(pd.DataFrame({"onset": onsets, "duration": TRIAL_DURATION,
                                  "trial_type": [trials[i][1] for i in chunk],
                                  "stim_file": [trials[i][0] for i in chunk]}))
    return runs


def trial_regressors(events: pd.DataFrame, tr: float, n_scans: int) -> np.ndarray:
    """(n_scans, n_trials) single-trial regressors with nilearn's Glover HRF."""
    from nilearn.glm.first_level import compute_regressor

    frame_times = np.arange(n_scans) * tr
    cols = []
    for onset, dur in zip(events.onset, events.duration):
        reg, _ = compute_regressor(np.array([[onset], [dur], [1.0]]), "glover", frame_times)
        cols.append(reg[:, 0])
    return np.stack(cols, 1)


def n_scans_for(p: FmriSimParams) -> int:
    """Scans per run, the same for every run (the longest run's trials + a tail)."""
    n_max = -(-p.n_trials // p.n_runs)
    return int(np.ceil((FIRST_ONSET + (n_max - 1) * np.mean(ITI_RANGE) + TAIL) / p.tr))


def _smooth_walk(rng, n, sd):
    steps = rng.normal(0, 1, n)
    walk = np.cumsum(steps)
    walk = ndimage.gaussian_filter1d(walk - walk.mean(), 2.0)
    return walk / (walk.std() + 1e-12) * sd


def bold_noise(rng, n_scans, n_vox, tr, noise_sd):
    """Drift, motion (params and their mix into voxels) and AR(1) noise, % signal change."""
    t = np.arange(n_scans) * tr
    dur = n_scans * tr
    drift = np.zeros((n_scans, n_vox))
    for k in (1, 2):  # periods 2*dur and dur: slower than a 0.008 Hz high-pass for runs > 250 s
        drift += np.cos(np.pi * k * (t + tr / 2) / dur)[:, None] * rng.normal(0, DRIFT_SD / k, n_vox)
    motion = np.stack([_smooth_walk(rng, n_scans, sd) for sd in (0.15, 0.15, 0.25, 0.003, 0.002, 0.002)], 1)
    mz = (motion - motion.mean(0)) / (motion.std(0) + 1e-12)
    load = rng.normal(0, 1, (6, n_vox)) / np.sqrt(6)
    motion_mix = mz @ load * 0.4
    rho = rng.uniform(0.2, 0.5, n_vox)
    e = rng.normal(0, 1, (n_scans, n_vox)) * np.sqrt(1 - rho**2)
    ar = np.empty_like(e)
    ar[0] = rng.normal(0, 1, n_vox)
    for i in range(1, n_scans):
        ar[i] = rho * ar[i - 1] + e[i]
    noise = (motion_mix + ar * np.sqrt(1 - 0.4**2)) * noise_sd
    return drift, noise, motion


def _nifti(data, affine, tr=None, dtype=np.int16):
    img = nib.Nifti1Image(data.astype(dtype), affine)
    hdr = img.header
    hdr.set_xyzt_units("mm", "sec")
    if tr is not None:
        hdr.set_zooms(hdr.get_zooms()[:3] + (float(tr),))
    img.set_sform(affine, code=4)
    img.set_qform(affine, code=4)
    return img


def _json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def _tsv(path, df):
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, sep="\t", index=False, na_rep="n/a", float_format="%.6g")


# --------------------------------------------------------------------------------------------
# one subject
def simulate_subject(root: Path, subject: str, p: FmriSimParams, stim: Stimuli, energy: np.ndarray,
                     shared: np.ndarray, train: np.ndarray, mask: nib.Nifti1Image, rng) -> dict:
    """Write one subject's BOLD, events, confounds, ROIs and truth under ``root``; return a summary."""
    t = p.task
    labels, names, hemi = place_rois(mask, rng, stim.categories)
    tun = voxel_tuning(labels, names, hemi, mask.affine, rng)
    V = len(tun.roi)
    drive = image_drive(stim, energy, tun)
    img_row = {name: i for i, name in enumerate(stim.table.stim_file)}
    runs = trial_design(rng, shared, train, p)

    brain = np.asarray(mask.dataobj) > 0
    bijk = np.argwhere(brain)
    roi_col = np.full(brain.shape, -1, np.int64)
    roi_col[tuple(tun.ijk.T)] = np.arange(V)
    b2roi = roi_col[tuple(bijk.T)]
    is_roi = b2roi >= 0
    baseline = 10000.0 * np.exp(rng.normal(0, 0.1, len(bijk)))
    noise_sd = NOISE_SD / p.snr

    all_resp, all_run, all_onset, all_img = [], [], [], []
    func = root / f"sub-{subject}" / "func"
    conf_dir = root / "derivatives" / "fmriprep" / f"sub-{subject}" / "func"
    for r, ev in enumerate(runs, start=1):
        rows = np.array([img_row[s] for s in ev.stim_file])
        signal_free = MEAN_RESPONSE + np.sqrt(tun.reliability) * drive[rows]
        eps = rng.normal(0, 1, (len(ev), V)) * np.sqrt(1 - tun.reliability)
        resp = tun.scale * (signal_free + eps)
        n_scans = n_scans_for(p)
        X = trial_regressors(ev, p.tr, n_scans)
        drift, noise, motion = bold_noise(rng, n_scans, len(bijk), p.tr, noise_sd)
        pct = drift + noise
        pct[:, is_roi] += X @ resp[:, b2roi[is_roi]]
        vals = np.round(baseline * (1 + pct / 100.0))
        data = np.zeros(brain.shape + (n_scans,), np.int16)
        data[tuple(bijk.T)] = np.clip(vals, 1, 32767).T.astype(np.int16)
        stem = f"sub-{subject}_task-{t}_run-{r}"
        func.mkdir(parents=True, exist_ok=True)
        nib.save(_nifti(data, mask.affine, p.tr), func / f"{stem}_bold.nii.gz")
        _json(func / f"{stem}_bold.json", {"RepetitionTime": p.tr, "TaskName": t})
        _tsv(func / f"{stem}_events.tsv", ev)
        _tsv(conf_dir / f"{stem}_desc-confounds_timeseries.tsv", pd.DataFrame(motion, columns=list(MOTION)))
        all_resp.append(resp)
        all_run.append(np.full(len(ev), r))
        all_onset.append(ev.onset.to_numpy())
        all_img.append(ev.stim_file.to_numpy(str))

    # ROIs
    anat = root / "derivatives" / "rois" / f"sub-{subject}" / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    nib.save(_nifti(labels, mask.affine), anat / f"sub-{subject}_desc-rois_dseg.nii.gz")
    _tsv(anat / f"sub-{subject}_desc-rois_dseg.tsv", pd.DataFrame({"index": np.arange(1, len(names) + 1), "name": names}))

    # truth
    seen = np.array(sorted(set(np.concatenate(all_img))))
    seen_rows = np.array([img_row[s] for s in seen])
    image_response = tun.scale * (MEAN_RESPONSE + np.sqrt(tun.reliability) * drive[seen_rows])
    routing = roi_routing(stim, seen, tun)
    tdir = root / "derivatives" / "truth" / f"sub-{subject}"
    tdir.mkdir(parents=True, exist_ok=True)
    with h5py.File(tdir / f"sub-{subject}_desc-truth.h5", "w", track_order=False) as f:
        def put(name, arr, dtype=None):
            f.create_dataset(name, data=arr, dtype=dtype, track_times=False)
        put("voxel_ijk", tun.ijk, "i4")
        put("voxel_roi", tun.roi.astype(object), _STR)
        put("voxel_hemi", tun.hemi.astype(object), _STR)
        put("trial_run", np.concatenate(all_run), "i4")
        put("trial_onset", np.concatenate(all_onset), "f8")
        put("trial_image", np.concatenate(all_img).astype(object), _STR)
        put("trial_response", np.concatenate(all_resp), "f4")
        put("reliability", tun.reliability, "f4")
        put("rf_center", tun.rf_center, "f4")
        put("rf_sigma", tun.rf_sigma, "f4")
        put("voxel_category", tun.category.astype(object), _STR)
        put("voxel_hue", tun.hue, "f4")
        put("images", seen.astype(object), _STR)
        put("image_response", image_response, "f4")
        g = f.create_group("roi_routing")
        for name, m in routing.items():
            g.create_dataset(name, data=m, track_times=False)
        g = f.create_group("image_routing")
        for name, m in image_routing(stim, seen, stim.categories).items():
            g.create_dataset(name, data=m, dtype="f2", compression="gzip", compression_opts=4, shuffle=True,
                             chunks=m.shape, track_times=False)
        f.attrs["subject"] = subject
        f.attrs["task"] = t
        f.attrs["tr"] = p.tr
        f.attrs["affine"] = mask.affine
        f.attrs["shape"] = np.array(brain.shape)
        f.attrs["noise_sd"] = noise_sd
    return {"n_voxels": V, "n_trials": int(sum(len(e) for e in runs)), "n_runs": len(runs),
            "rois": {n: int((tun.roi == n).sum()) for n in names}}


# --------------------------------------------------------------------------------------------
def _write_top(root: Path, p: FmriSimParams, subjects: list[str], stim: Stimuli) -> None:
    gen = [{"Name": "neuroattn", "Description": "neuroattn.data.simulate.simulate_fmri_dataset"}]
    _json(root / "dataset_description.json", {
        "Name": "neuroattn simulated fMRI dataset", "BIDSVersion": "1.8.0", "DatasetType": "raw",
        "License": "CC0", "Authors": ["neuroattn simulator", "neuroattn contributors"], "GeneratedBy": gen,
        "HowToAcknowledge": "Simulated data; no acknowledgement needed."})
    (root / "README").write_text(
        "Simulated fMRI dataset written by neuroattn (neuroattn.data.simulate).\n\n"
        f"{len(subjects)} subjects viewed {p.n_images} procedurally drawn images (stimuli/) of objects from "
        f"{len(stim.categories)} categories ({', '.join(stim.categories)}). {p.n_shared} images were shown to every "
        f"subject {p.n_repeats_shared} times (trial_type 'shared'), {p.n_train_per_subject} others per subject "
        f"{p.n_repeats_train} time(s) (trial_type 'train'). Slow event-related design, TR {p.tr} s, {p.n_runs} runs.\n"
        "ROIs are in derivatives/rois, motion confounds in derivatives/fmriprep, and the ground truth "
        "(voxel tuning, single-trial responses, routing maps) in derivatives/truth.\n"
        f"Parameters: {json.dumps(p.__dict__, sort_keys=True)}\n")
    _tsv(root / "participants.tsv", pd.DataFrame({"participant_id": [f"sub-{s}" for s in subjects]}))
    _json(root / "participants.json", {"participant_id": {"Description": "Unique participant identifier"}})
    _json(root / f"task-{p.task}_bold.json", {"RepetitionTime": p.tr, "TaskName": p.task})
    _json(root / f"task-{p.task}_events.json", {
        "trial_type": {"Description": "Whether the image is shown to every subject",
                       "Levels": {"shared": "seen by every subject (test images)",
                                  "train": "seen by this subject only or by a few subjects"}},
        "stim_file": {"Description": "Image shown, relative to stimuli/"}})
    for name, desc in (("rois", "ROIs (dseg) of the simulated subjects"),
                       ("fmriprep", "Motion confounds of the simulated runs"),
                       ("truth", "Ground truth of the simulation (never read by models)")):
        _json(root / "derivatives" / name / "dataset_description.json", {
            "Name": desc, "BIDSVersion": "1.8.0", "DatasetType": "derivative", "GeneratedBy": gen})
    _tsv(root / "derivatives" / "truth" / "stimuli.tsv", stim.objects)


def _prepare_root(root: Path, overwrite: bool) -> Path:
    root.parent.mkdir(parents=True, exist_ok=True)
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{root} exists and is not empty (pass overwrite=True to replace a simulated dataset)")
        if not (root / "derivatives" / "truth").is_dir():
            raise FileExistsError(f"{root} exists and is not a simulated dataset (no derivatives/truth): refusing to replace it")
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.tmp-"))
    tmp.chmod(0o755)
    return tmp


def simulate_fmri_dataset(root, *, n_subjects=4, n_images=1000, image_size=96, n_shared=100, n_repeats_shared=3,
                          n_train_per_subject=500, n_repeats_train=1, voxel_size=6.0, tr=2.0, n_runs=10, snr=1.0,
                          task="vision", seed=0, overwrite=False, progress=False) -> dict:
    """Write a simulated fMRI BIDS dataset with ground truth at ``root`` (see the module docstring).

    Parameters
    ----------
    root : path
        Dataset folder; written atomically (built beside it, then moved into place).
    n_subjects, n_images, image_size, n_shared, n_repeats_shared, n_train_per_subject, n_repeats_train : int
        Sizes (see :class:`FmriSimParams`); ``n_shared + n_train_per_subject <= n_images``.
    voxel_size : float
        Voxel size in mm, in [3, 12].
    tr : float
        Repetition time in s.
    n_runs : int
        Runs per subject.
    snr : float
        Scales the BOLD noise: its sd is ``NOISE_SD / snr`` % signal change.
    task : str
        BIDS task label.
    seed : int
        Same seed, same bytes.
    overwrite : bool
        Replace an existing simulated dataset at ``root``.
    progress : bool
        Show a tqdm bar over subjects.

    Returns
    -------
    dict
        ``root``, ``subjects``, ``n_images``, ``categories``, ``shared`` (shared image names) and
        per subject ``n_voxels``, ``n_trials``, ``n_runs``, ``rois`` (voxel counts).
    """
    p = FmriSimParams(n_subjects=n_subjects, n_images=n_images, image_size=image_size, n_shared=n_shared,
                      n_repeats_shared=n_repeats_shared, n_train_per_subject=n_train_per_subject,
                      n_repeats_train=n_repeats_train, voxel_size=voxel_size, tr=tr, n_runs=n_runs, snr=snr,
                      task=task, seed=seed)
    return _simulate(Path(root), p, overwrite=overwrite, progress=progress)


def simulate_fmri_from_config(root, sim: Mapping, *, task: str, seed: int, overwrite=True, progress=False) -> dict:
    """:func:`simulate_fmri_dataset` from the config's ``simulate`` section (what the rule calls)."""
    return _simulate(Path(root), params_from_config(sim, task=task, seed=seed), overwrite=overwrite, progress=progress)


def _simulate(root: Path, p: FmriSimParams, *, overwrite: bool, progress: bool) -> dict:
    tmp = _prepare_root(root, overwrite)
    try:
        ss = np.random.SeedSequence(p.seed)
        s_stim, s_split, *s_subj = ss.spawn(2 + p.n_subjects)
        stim = draw_stimuli(p.n_images, p.image_size, seed=s_stim)
        energy = contrast_energy(stim.images, grid=ENERGY_GRID)
        names = stim.table.stim_file.to_numpy(str)
        split_rng = np.random.default_rng(s_split)
        perm = split_rng.permutation(len(names))
        shared, rest = np.sort(names[perm[:p.n_shared]]), names[perm[p.n_shared:]]
        subjects = [f"{i + 1:02d}" for i in range(p.n_subjects)]
        write_stimuli(stim, tmp / "stimuli")
        _write_top(tmp, p, subjects, stim)
        mask = brain_mask(p.voxel_size)
        summary = {"root": str(root), "subjects": subjects, "n_images": p.n_images,
                   "categories": list(stim.categories), "shared": shared.tolist()}
        it = subjects
        if progress:
            from tqdm.auto import tqdm
            it = tqdm(subjects, desc="simulate fMRI", unit="subject")
        for subject, s in zip(it, s_subj):
            rng = np.random.default_rng(s)
            train = np.sort(rng.choice(rest, size=p.n_train_per_subject, replace=False))
            summary[subject] = simulate_subject(tmp, subject, p, stim, energy, shared, train, mask, rng)
            log.info("sub-%s: %d ROI voxels, %d trials", subject, summary[subject]["n_voxels"], summary[subject]["n_trials"])
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return summary
