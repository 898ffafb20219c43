"""Stages of ``rules/simulate.smk``: the simulated fMRI and EEG BIDS datasets (with ground truth),
used when ``fmri.bids_root`` / ``eeg.bids_root`` is empty."""
from __future__ import annotations

import logging
from pathlib import Path

from . import register

log = logging.getLogger("neuroattn.stages.simulate")


@register("simulate_fmri")
def simulate_fmri(dataset_description: str, sim: dict, task: str, seed: int) -> None:
    """Write the simulated fMRI BIDS dataset (stimuli, BOLD, ROIs, truth) into the folder of
    ``dataset_description``.

    Parameters
    ----------
    dataset_description : str
        The dataset's ``dataset_description.json`` (output); its folder is the dataset root,
        replaced as a whole (:func:`neuroattn.data.simulate.simulate_fmri_from_config`).
    sim : dict
        The config's ``simulate`` section.
    task : str
        BIDS task label (``fmri.task``).
    seed : int
        The config's ``seed``.
    """
    from ..data.simulate import simulate_fmri_from_config

    root = Path(dataset_description).parent
    summary = simulate_fmri_from_config(root, sim, task=task, seed=int(seed), overwrite=True, progress=True)
    for s in summary["subjects"]:
        log.info("sub-%s: %d trials, ROI voxels %s", s, summary[s]["n_trials"], summary[s]["rois"])
    log.info("wrote %s (%d images, %d shared)", root, summary["n_images"], len(summary["shared"]))


@register("simulate_eeg")
def simulate_eeg(dataset_description: str, sim: dict, task: str, events: list, seed: int) -> None:
    """Write the simulated motor-imagery EEG BIDS dataset (and its ground truth) into the folder
    of ``dataset_description``.

    Parameters
    ----------
    dataset_description : str
        The dataset's ``dataset_description.json`` (output); its folder is the dataset root.
    sim : dict
        The config's ``simulate.eeg`` section.
    task : str
        BIDS task label (``eeg.task``).
    events : list of str
        The motor-imagery classes (``eeg.events``).
    seed : int
        The config's ``seed``.
    """
    from ..data.simulate_eeg import simulate_eeg_from_config

    root = Path(dataset_description).parent
    log.info("simulating EEG into %s with %s", root, dict(sim))
    config = {"simulate": {"eeg": dict(sim)}, "eeg": {"task": task, "events": list(events)}, "seed": int(seed)}
    summary = simulate_eeg_from_config(root, config)
    log.info("done: %s (%s)", root, summary)
