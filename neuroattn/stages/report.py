"""Stages of ``rules/report.smk``: one subject's self-contained HTML page and the group page.

The pages themselves are built by :mod:`neuroattn.report` (the only package that plots); these
functions take the rules' named inputs and pass them on.
"""
from __future__ import annotations

from . import register


def _one(paths):
    """The single path of an optional input (a list of zero or one path), or ``None``."""
    if paths is None or isinstance(paths, str):
        return paths or None
    paths = list(paths)
    return str(paths[0]) if paths else None


def _many(paths) -> list:
    return [] if paths is None else ([paths] if isinstance(paths, str) else [str(p) for p in paths])


@register("subject_report")
def subject_report(html: str, subject: str, leaderboard: str, config: dict, dseg=None, stimuli_dir=None,
                   betas=None, split=None, features=None, routing=None, routing_truth=None, decode=None,
                   epochs=None, epochs_table=None, eeg_preds=None, truthcheck=None, configfiles=(), voxel_maps=None,
                   boldref=None, sim_truth="") -> None:
    """Rule ``subject_report``: ``results/sub-<subject>/report.html`` from whatever inputs the
    subject has (:func:`neuroattn.report.subject.build_subject_report`).

    Parameters
    ----------
    html : str
        Output HTML page.
    subject : str
        Wildcard.
    leaderboard : str
        ``results/scores/leaderboard.tsv``.
    config : dict
        The workflow's config (provenance, ``report.n_examples``).
    dseg, stimuli_dir : str, optional
        The subject's ROI atlas and the stimulus folder.
    betas, split, features, routing, routing_truth, decode, epochs, epochs_table, eeg_preds, truthcheck
        Optional inputs (lists of zero or more paths); absent modalities are left out of the page.
    configfiles : list of str
        The run's config files in merge order (the page's header).
    voxel_maps, boldref : list of str, optional
        Per-encoder ``_stat-r_statmap.nii.gz`` and the bold reference they are drawn on (rule ``voxel_maps``).
    sim_truth : str, optional
        Simulated fMRI: the truth file; the attention maps then show the true routing as outlines,
        and the content-routing overlays outline each image's objects.
    """
    from ..report.subject import build_subject_report

    build_subject_report(
        html, subject, leaderboard, config, betas=_one(betas), dseg=dseg, split=_one(split),
        stimuli_dir=stimuli_dir, routing_preds=_many(routing), decode_pred=_one(decode), epochs=_one(epochs),
        epochs_table=_one(epochs_table), eeg_preds=_many(eeg_preds), eeg_truth=_one(truthcheck),
        feature_paths=_many(features), routing_truth=_many(routing_truth), configfiles=_many(configfiles),
        voxel_maps=_many(voxel_maps), boldref=_one(boldref),
        true_routing=true_routing(sim_truth, _many(routing)) if sim_truth else None,
        fmri_truth=sim_truth or None)


def true_routing(truth_path: str, routing_preds: list, grid: int = 24) -> dict:
    """Simulated data: the true routing of each routing prediction file's queries, for outlines.

    Returns ``{pred path: {"mean": (n_q, grid, grid), "examples": (n_ex, n_q, grid, grid) or None}}``:
    the query's true map (:func:`neuroattn.stages.encode.truth_routing_maps`) and, per example
    image, the visible object of a category query's category in that image (the simulation's
    ``image_routing``; other queries keep their mean map). ``grid``: the simulation's
    ``image_routing`` resolution (maps are only ever area-averaged down to it, never up).
    """
    from pathlib import Path

    import h5py
    import numpy as np

    from ..data.stimuli import block_mean
    from .encode import truth_routing_maps

    if not truth_path or not Path(truth_path).is_file():
        return {}
    out = {}
    with h5py.File(truth_path, "r") as t:
        seen = {im: i for i, im in enumerate(t["images"].asstr()[()])} if "images" in t else {}
        per_image = {k: t["image_routing"][k] for k in t["image_routing"]} if "image_routing" in t else {}
        for p in routing_preds:
            with h5py.File(p, "r") as f:
                if "attention" not in f:
                    continue
                names = list(f["attention/rois"].asstr()[()])
                ex = list(f["attention/example_images"].asstr()[()]) if "attention/example_images" in f else []
            mean = truth_routing_maps(truth_path, names, (grid, grid), size=grid)
            examples = None
            if ex:
                examples = np.repeat(mean[None], len(ex), axis=0)
                for q, name in enumerate(names):
                    roi = name.partition("#")[0].partition(".")[0]
                    if roi not in per_image:
                        continue
                    for i, im in enumerate(ex):
                        if im in seen:
                            m = np.asarray(per_image[roi][seen[im]], dtype=np.float64)
                            if m.shape != (grid, grid):
                                m = block_mean(m[None], (1, grid / m.shape[0], grid / m.shape[1]))[0]
                            examples[i, q] = m if m.any() else np.nan
            out[str(p)] = {"mean": mean, "examples": examples}
    return out


@register("group_report")
def group_report(html: str, leaderboard: str, config: dict, features=(), layers=(), subsampling=(),
                 truthcheck=(), routing_truth=(), configfiles=(), comparison=()) -> None:
    """Rule ``group_report``: ``results/report.html``, the leaderboard table and plots
    (:func:`neuroattn.report.group.build_group_report`).

    Parameters
    ----------
    html : str
        Output HTML page.
    leaderboard : str
    config : dict
    features, layers, subsampling, truthcheck, routing_truth : list of str
        Feature stores (provenance), layer-commitment tables, subsampling curves, simulated-EEG and
        simulated-routing truth tables (empty on real data).
    configfiles : list of str
        The run's config files in merge order (the page's header).
    comparison : list of str
        The ``backbone_comparison`` table (when ``scoring.backbones`` is set), else empty.
    """
    from ..report.group import build_group_report

    build_group_report(html, leaderboard, config, feature_paths=_many(features), layer_tables=_many(layers),
                       subsampling_tables=_many(subsampling), eeg_truth_tables=_many(truthcheck),
                       routing_truth_tables=_many(routing_truth), configfiles=_many(configfiles),
                       comparison_tables=_many(comparison))
