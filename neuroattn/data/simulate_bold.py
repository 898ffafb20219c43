"""Simulated BOLD: the random trial design of a subject's runs, single-trial regressors (Glover HRF)
and the drift, motion and AR(1) noise (see :mod:`neuroattn.data.simulate`)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from .simulate_params import DRIFT_SD, FIRST_ONSET, ITI_RANGE, TAIL, TRIAL_DURATION, FmriSimParams


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
