"""Parameters of the simulated fMRI dataset (:func:`neuroattn.data.simulate.simulate_fmri_dataset`):
validated sizes, the config mapping, and the constants of the trial design and the BOLD noise."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..config import section_defaults

#: BOLD noise sd (AR(1) + motion, % signal change) at snr = 1
NOISE_SD = 0.1
#: amplitude of the slow drift (% signal change)
DRIFT_SD = 1.0
TRIAL_DURATION = 3.0
ITI_RANGE = (3.5, 4.5)
FIRST_ONSET = 6.0
TAIL = 20.0
_LABEL = re.compile(r"^[a-zA-Z0-9]+$")
#: ``simulate.fmri.anatomy``: each subject its own anatomy, or nearly aligned subjects
ANATOMIES = ("individual", "shared")


def _config_defaults() -> dict:
    """The defaults of :class:`FmriSimParams`: ``simulate`` (with its ``fmri`` sub-section),
    ``fmri.task`` and ``seed`` of config/config.yaml, their one home."""
    sim = section_defaults("simulate")
    fmri = sim.pop("fmri")
    sim.pop("eeg", None)
    return {**sim, **fmri, "task": section_defaults("fmri", "task"), "seed": section_defaults("seed")}


_D = _config_defaults()


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
    """Validated arguments of :func:`simulate_fmri_dataset` (defaults: config/config.yaml)."""

    n_subjects: int = _D["n_subjects"]
    n_images: int = _D["n_images"]
    image_size: int = _D["image_size"]
    n_shared: int = _D["n_shared"]
    n_repeats_shared: int = _D["n_repeats_shared"]
    n_train_per_subject: int = _D["n_train_per_subject"]
    n_repeats_train: int = _D["n_repeats_train"]
    voxel_size: float = _D["voxel_size"]
    tr: float = _D["tr"]
    n_runs: int = _D["n_runs"]
    snr: float = _D["snr"]
    v4_region: bool = _D["v4_region"]
    anatomy: str = _D["anatomy"]
    task: str = _D["task"]
    seed: int = _D["seed"]

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
        if not isinstance(self.v4_region, (bool, np.bool_)):
            raise TypeError(f"v4_region (simulate.fmri.v4_region) must be true or false, got {self.v4_region!r}")
        if self.anatomy not in ANATOMIES:
            raise ValueError(f"anatomy (simulate.fmri.anatomy) must be one of {list(ANATOMIES)}, got {self.anatomy!r}")
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
    known = {f for f in FmriSimParams.__dataclass_fields__} - {"task", "seed", "n_subjects", "voxel_size", "tr", "n_runs", "snr", "v4_region", "anatomy"}
    bad = sorted(set(sim) - known)
    if bad:
        raise KeyError(f"simulate: unknown key(s) {bad}; known: {sorted(known)}")
    fknown = {"n_subjects", "voxel_size", "tr", "n_runs", "snr", "v4_region", "anatomy"}
    bad = sorted(set(fmri) - fknown)
    if bad:
        raise KeyError(f"simulate.fmri: unknown key(s) {bad}; known: {sorted(fknown)}")
    return FmriSimParams(**sim, **fmri, task=task, seed=seed)
