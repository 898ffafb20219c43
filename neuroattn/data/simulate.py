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

Anatomy (``simulate.fmri.anatomy``). ``"individual"`` (the default) gives each subject its own
anatomy as real brains have it: every ROI seed is also shifted by 8 mm (sd per axis,
:data:`~neuroattn.data.simulate_brain.INDIVIDUAL_SEED_SD`), ROI volumes vary 0.5-1.6 x, and each
retinotopic map's axes are rotated by up to 60 degrees, per subject and hemisphere, so that voxel i
of one subject (the same MNI grid position) is not voxel i of another and anatomical alignment is
no oracle. ``"shared"`` keeps subjects nearly aligned (3 mm jitter, 0.8-1.2 x volumes, the same map
axes). Tuning is drawn independently per subject (and voxel) in both.

Retinotopic voxels respond to the local contrast energy ``E`` (:func:`~neuroattn.data.stimuli.
contrast_energy`) under a Gaussian receptive field at a fixed place of the visual field:
``drive = sqrt(sum_p G_v(p) E(p))`` (compressive spatial summation). Left-hemisphere voxels see the
right hemifield and vice versa; polar angle follows the voxel's inferior-superior rank in its ROI
(superior = lower field), eccentricity its posterior-anterior rank (posterior = foveal). RF size
(sigma, fraction of the image) grows V1 < V2 < V3.

Optional V4-like region (``simulate.fmri.v4_region: true``; off by default, and then nothing else
changes): ``shape_V4``, lateral to V3, tuned to object shape whatever the object's orientation,
position, colour or size: ``drive = sum_o visible_o * exp(-|s(c_o) - s_v|^2 / (2 w_v^2))`` with
``s`` a rotation-invariant shape descriptor of the category (roundness, corners, concavity, hole:
:data:`~neuroattn.data.simulate_brain.SHAPE_SPACE`) and ``s_v`` a voxel's preferred shape (a random
category's, jittered): graded, mixed shape selectivity, no pixel-level detail. Its truth has
``voxel_shape_pref`` (V, 4) and ``voxel_shape_width`` (V,) (NaN outside the region).

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
import shutil
import tempfile
from pathlib import Path
from typing import Mapping

import h5py
import nibabel as nib
import numpy as np
import pandas as pd

from .simulate_bold import bold_noise, n_scans_for, trial_design, trial_regressors
from .simulate_brain import (CAT_SEEDS, ENERGY_GRID, RET_SEEDS, ROI_VOLUME, VoxelTuning, brain_mask, gaussian_rfs,
                             image_drive, image_routing, place_rois, roi_routing, voxel_tuning)
from .simulate_params import NOISE_SD, FmriSimParams, params_from_config
from .stimuli import CATEGORIES, Stimuli, contrast_energy, draw_stimuli, write_stimuli

__all__ = ["CATEGORIES", "FmriSimParams", "draw_stimuli", "params_from_config", "simulate_fmri_dataset",
           "simulate_fmri_from_config", "brain_mask", "place_rois", "voxel_tuning", "VoxelTuning", "gaussian_rfs",
           "image_drive", "image_routing", "roi_routing", "trial_design", "trial_regressors", "n_scans_for",
           "bold_noise", "NOISE_SD", "ENERGY_GRID", "RET_SEEDS", "CAT_SEEDS", "ROI_VOLUME"]

log = logging.getLogger("neuroattn.simulate")

#: mean evoked response, in units of the voxel's response scale (its total trial sd)
MEAN_RESPONSE = 1.0
MOTION = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
_STR = h5py.string_dtype("utf-8")


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
    labels, names, hemi = place_rois(mask, rng, stim.categories, v4_region=p.v4_region, anatomy=p.anatomy)
    tun = voxel_tuning(labels, names, hemi, mask.affine, rng, categories=stim.categories, anatomy=p.anatomy)
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
        if tun.shape_pref is not None:  # the V4-like region (simulate.fmri.v4_region) only
            put("voxel_shape_pref", tun.shape_pref, "f4")
            put("voxel_shape_width", tun.shape_width, "f4")
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
def _readme_params(p: FmriSimParams) -> dict:
    d = dict(p.__dict__)
    if not d.get("v4_region"):  # off: the README of the datasets written before the region existed
        d.pop("v4_region", None)
    if d.get("anatomy") == "shared":  # the README of the datasets written before individual anatomies
        d.pop("anatomy", None)
    return d


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
        f"Parameters: {json.dumps(_readme_params(p), sort_keys=True)}\n")
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


def simulate_fmri_dataset(root, *, overwrite=False, progress=False, **params) -> dict:
    """Write a simulated fMRI BIDS dataset with ground truth at ``root`` (see the module docstring).

    Parameters
    ----------
    root : path
        Dataset folder; written atomically (built beside it, then moved into place).
    **params
        Fields of :class:`FmriSimParams` (defaults: ``simulate``, ``fmri.task`` and ``seed`` of
        config/config.yaml); unknown names raise ``TypeError``:
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
    v4_region : bool
        Add the V4-like ``shape_V4`` region (module docstring); False leaves the data as before.
    anatomy : {"individual", "shared"}
        Each subject its own ROI positions, sizes and map orientations, or nearly aligned subjects
        (module docstring, "Anatomy").
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
    p = FmriSimParams(**params)
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
