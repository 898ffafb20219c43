"""Stages of ``rules/stimuli.smk`` and ``rules/fmri.smk``: the stimuli of released fMRI layouts,
one subject's single-trial betas (with trial and voxel tables and provenance), and the
train/test image split."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..utils import atomic_path
from . import register

log = logging.getLogger("neuroattn.stages.fmri")


@register("stimuli")
def stimuli(stimuli_tsv: str, format: str, root: str, subjects: list, adapter: dict | None = None,
            dataset: str | None = None) -> None:
    """The images the configured subjects saw, as PNGs named like the betas' images
    (``nsd-XXXXX.png``), from the NSD brick or the Algonauts folders, and ``stimuli.tsv``.

    Parameters
    ----------
    stimuli_tsv : str
        Output table (one column ``stim_file``); the PNGs go into its folder.
    format : str
        ``fmri.format`` (``nsd`` or ``algonauts``; the BIDS-like formats hold their own stimuli).
    root : str
        The dataset root (``fmri.bids_root``).
    subjects : list of str
    adapter : dict, optional
        ``fmri.adapter`` of the config.
    dataset : str, optional
        The root's marker file (a rule input for the dependency only; not read).

    Raises
    ------
    ValueError
        When no stimulus is written.
    """
    from ..data import formats

    out = Path(stimuli_tsv)
    paths = formats.write_stimuli(format, root, list(subjects), out.parent, dict(adapter or {}))
    if not paths:
        raise ValueError(f"{root}: no stimuli written for fmri.format {format!r}, subjects {list(subjects)}")
    with atomic_path(out) as tmp:
        pd.DataFrame({"stim_file": sorted({Path(x).name for x in paths})}).to_csv(tmp, sep="\t", index=False)
    log.info("%d stimuli (%s format, subjects %s) -> %s", len(paths), format, list(subjects), out.parent)


@register("fmri_betas")
def fmri_betas(betas: str, trials: str, voxels: str, provenance: str, bids_root: str, subject: str, task: str,
               glm: dict, keep_other: bool, seed: int, format: str = "bids", adapter: dict | None = None,
               dataset: str | None = None) -> None:
    """One subject's data (BIDS bold + events + ROIs, or a released layout: NSD, Algonauts,
    fMRIPrep derivatives; :mod:`neuroattn.data.formats`) -> single-trial betas, trial and voxel
    tables, provenance (:mod:`neuroattn.data.fmri`).

    Bad input raises before anything is written; the four outputs appear together or not at all.

    Parameters
    ----------
    betas, trials, voxels, provenance : str
        Outputs: ``_desc-betas.h5``, ``_desc-trials.tsv``, ``_desc-voxels.tsv``, ``_desc-provenance.json``.
    bids_root : str
        The dataset root.
    subject : str
        Label without ``sub-``.
    task : str
    glm : dict
        ``fmri.glm`` of the config.
    keep_other : bool
        ``fmri.keep_other``.
    seed : int
    format : str
        ``fmri.format`` (a name of :data:`neuroattn.data.formats.FORMATS`).
    adapter : dict, optional
        ``fmri.adapter``.
    dataset : str, optional
        The root's marker file (dependency only; not read).
    """
    from ..data import formats
    from ..data.fmri import write_subject

    try:
        result = formats.fmri_subject(format, bids_root, subject, task, glm=dict(glm), keep_other=bool(keep_other),
                                      seed=int(seed), adapter=dict(adapter or {}))
        write_subject(result, betas, trials, voxels, provenance)
    except Exception as exc:
        log.error("sub-%s (%s format): %s", subject, format, exc)
        raise
    b = result.betas
    log.info("sub-%s: %d trials, %d images, %d voxels, ROIs %s; median ncsnr %.3f", subject, len(b.trial_image),
             len(b.images), b.trial_betas.shape[1], b.rois,
             float(np.nanmedian(b.ncsnr)) if np.isfinite(b.ncsnr).any() else np.nan)


@register("image_split")
def image_split(betas: list, split: str, mode: str) -> None:
    """The train/test image split from every subject's betas.

    Parameters
    ----------
    betas : list of str
        Every subject's ``_desc-betas.h5``.
    split : str
        Output ``splits/images.tsv`` (``image``, ``split``).
    mode : str
        ``fmri.test_images``: ``shared`` (the images every subject saw are the test set) or the
        path of a text file listing the test images.
    """
    from ..data.betas import Betas
    from ..data.splits import shared_split, write_split

    seen = {}
    for path in betas:
        b = Betas.read(path)
        seen[b.subject] = list(b.images)
    test_list = None if mode == "shared" else Path(mode).read_text().split()
    df = shared_split(seen, test_list)
    write_split(df, split)
    log.info("%d train / %d test images", (df.split == "train").sum(), (df.split == "test").sum())
