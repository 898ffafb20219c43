"""The group page: the leaderboard table and one plot per metric and modality."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..data.roi_kinds import roi_kind
from ..leaderboard import NORMALISED, read_scores
from . import figures
from .backbone_comparison import backbone_comparison_section
from .html import fig_to_uri, render_page, table
from .eeg_maps import group_truth_section
from .eeg_modules import module_section
from .incontext_curves import incontext_curves_section
from .provenance import provenance
from .summary import page_header, ranked_summary
from .similarity import SIMILARITY_DESC, SSM_CURVES_DESC, ssm_commitment_section, ssm_subsampling_section


def _commitment_section(layer_tables):
    """Which layer each ROI committed to, and whether retinotopic ROIs commit earlier than category ROIs.

    ``layer_tables`` are the per-subject tables of the layer_commitment rule (columns roi, layer,
    depth, value, committed, heldout_r; one row per ROI and layer).
    """
    frames = []
    for p in layer_tables:
        d = pd.read_csv(p, sep="\t")
        d.insert(0, "subject", Path(p).name.split("_")[0].removeprefix("sub-"))
        frames.append(d)
    if not frames:
        return None
    df = pd.concat(frames, ignore_index=True)
    com = df[df["committed"].astype(str) == "True"]
    kind = com.roi.map(roi_kind).to_numpy()
    means = com.groupby(kind)["depth"].mean()
    text = ("Layer commitment, Brain-Score style: every layer scored against every ROI on the training "
            "(public) images, the best layer committed per ROI, and reported on the held-out test images. ")
    if {"retinotopic", "category"} <= set(means.index):
        earlier = means["retinotopic"] < means["category"]
        text += (f"Mean committed layer depth (0 = first extracted layer): retinotopic ROIs "
                 f"{means['retinotopic']:.2f}, category ROIs {means['category']:.2f}: the visual hierarchy is "
                 + ("recovered (retinotopic ROIs commit to earlier layers than category ROIs)." if earlier
                    else "NOT recovered here (retinotopic ROIs do not commit to earlier layers)."))
    table_df = (com.assign(kind=kind)[["subject", "roi", "kind", "layer", "depth", "value", "heldout_r"]]
                .rename(columns={"layer": "committed layer", "value": "public r", "heldout_r": "held-out r"})
                .sort_values(["subject", "roi"]))
    return {"title": "Layer commitment", "text": text, "table": table(table_df)}


def _subsampling_section(tables):
    """Predictivity against the number of voxels and of training images, one line per subject."""
    if not tables:
        return None
    figs, frames = [], []
    for p in tables:
        d = pd.read_csv(p, sep="\t")
        d["subject"] = Path(p).name.split("_")[0].removeprefix("sub-")
        frames.append(d)
    df = pd.concat(frames, ignore_index=True)
    for axis, g in df.groupby("axis"):
        # subjects can differ in voxel counts: each is drawn on its own sizes
        fig = figures.curve_by_label({k: (h["size"].to_numpy(), h["mean"].to_numpy(), h["std"].to_numpy())
                                      for k, h in ((f"sub-{s}", h) for s, h in g.groupby("subject"))},
                                     f"number of {'voxels' if axis == 'units' else 'training images'}",
                                     "median Pearson r (cross-validated PLS)", f"predictivity vs {axis}")
        figs.append({"uri": fig_to_uri(fig), "caption": f"subsampling over {axis}: mean ± SD over random subsets"})
    last = df.sort_values("size").groupby(["subject", "axis"]).tail(2)
    flat = (last.groupby(["subject", "axis"])["mean"].agg(lambda v: abs(v.iloc[-1] - v.iloc[0])).max())
    text = ("Subsampling analysis (Shi, Shea-Brown & Buice 2019): scores on random subsets of voxels and of "
            "training images. A curve that has flattened by the full size says the data set is large enough; "
            f"the largest change between the two largest sizes here is {flat:.3f} (Pearson r).")
    return {"title": "Is the data large enough?", "text": text, "figures": figs}


def routing_truth_section(tables):
    """Routing maps against the simulated truth: per ROI kind and measure, medians over subjects
    of each subject's median over queries (value and reference; rule ``routing_truth``)."""
    frames = [pd.read_csv(p, sep="\t").assign(file=str(p)) for p in tables]
    if not frames:
        return None
    d = pd.concat(frames)
    d["rois"] = d["query"].str.extract(r"^([^_.]+)_")[0].fillna(d["query"]) + "_*"
    per = d.groupby(["rois", "measure", "file"])[["value", "reference"]].median()
    s = per.groupby(["rois", "measure"]).median().reset_index()
    s["subjects"] = per.groupby(["rois", "measure"]).size().to_numpy()
    return {"title": "Routing maps against the simulation's truth",
            "text": ("Medians over subjects of each subject's median over queries. attention_*: head-averaged "
                     "attention per query (peak/centroid distances in tokens; references: a random grid cell, "
                     "a uniform map; peak_to_rf_centre: from the attention peak to the voxels' mean RF centre). voxel_*: each retinotopic voxel's routing map against its own "
                     "receptive-field centre; reference: every voxel placed at its ROI's mean centre. Lower "
                     "distances than the reference mean the maps locate what the ROI (or voxel) reads."),
            "table": table(s)}


def build_group_report(out, leaderboard, config, feature_paths=(), layer_tables=(), subsampling_tables=(),
                       eeg_truth_tables=(), routing_truth_tables=(), configfiles=(), comparison_tables=()):
    """Write ``results/report.html``.

    Parameters
    ----------
    out : path of the page
    leaderboard : path of ``leaderboard.tsv``
    config : dict, the workflow configuration (shown in the provenance)
    feature_paths : feature caches (their weights: random / trained / pretrained)
    layer_tables : layer-commitment tables per subject
    subsampling_tables : subsampling tables per subject
    eeg_truth_tables : simulated-EEG truth-check tables per subject (rule ``eeg_truth``)
    routing_truth_tables : simulated-fMRI routing truth-check tables (rule ``routing_truth``)
    configfiles : the config files of the run, in merge order (shown at the top)
    comparison_tables : ``backbone_comparison`` tables (training regimes, config/crossvit.yaml)
    """
    lb = read_scores(leaderboard)
    pooled = lb[lb.subject == "group"]
    lb = lb[lb.subject != "group"]  # the figures and tables below average the subjects' rows themselves
    sections = []
    for modality, metric in (("fmri", "noise_normalized_r2"), ("eeg", "accuracy")):
        d = lb[(lb.modality == modality) & (lb.metric == metric) & ~lb.model.str.match(r".+(_k\d+|_layer\d+)$")]
        if len(d):
            pivot = d.pivot_table(index="model", columns="target", values="value", aggfunc="mean").reset_index()
            sections.append({"title": f"{modality.upper()}: {metric} (mean over subjects)", "table": table(pivot)})
    figs = []
    for (modality, metric), d in lb.groupby(["modality", "metric"]):
        if metric in {"pearson_r", "noise_normalized_r2", "accuracy", "kappa", "ceiled_ev"} or len(d) > 1:
            d = d[~d.model.str.contains("_k\\d+$")] if d.model.str.contains("_k\\d+$").any() and metric not in {"top1", "top5", "cosine"} else d
            if len(d):
                figs.append({"uri": fig_to_uri(figures.metric_bars(d, metric, f"{modality}: {metric}")),
                             "caption": f"{modality} {metric}: mean over subjects, error bars SEM"
                                        + ("; normalised: 1 = noise ceiling" if metric in NORMALISED else "; black ticks: ceiling" if d.ceiling.notna().any() else "")
                                        + ("; red ticks: chance" if d.chance.notna().any() else "")})
    sections.append({"title": "Scores by metric", "figures": figs})
    ic = incontext_curves_section(lb)
    if ic:
        sections.append(ic)
    # the similarity rule's tables travel with the layer-commitment / subsampling ones (rules/score.smk)
    sim_tables = [p for p in layer_tables if SIMILARITY_DESC in Path(p).name]
    layer_tables = [p for p in layer_tables if SIMILARITY_DESC not in Path(p).name]
    ssm_curves = [p for p in subsampling_tables if SSM_CURVES_DESC in Path(p).name]
    subsampling_tables = [p for p in subsampling_tables if SSM_CURVES_DESC not in Path(p).name]
    com = _commitment_section(layer_tables)
    if com:
        sections.append(com)
    sections.extend(ssm_commitment_section(layer_tables, sim_tables) or [])
    sub = _subsampling_section(subsampling_tables)
    if sub:
        sections.append(sub)
    ssm_sub = ssm_subsampling_section(ssm_curves)
    if ssm_sub:
        sections.append(ssm_sub)
    cmp = backbone_comparison_section(comparison_tables)
    if cmp:
        sections.append(cmp)
    rt = routing_truth_section(routing_truth_tables)
    if rt:
        sections.append(rt)
    sections.extend(s for s in [module_section(lb)] if s)
    truth = group_truth_section(eeg_truth_tables) if eeg_truth_tables else None
    if truth:
        sections.append(truth)
    lb_path = Path(leaderboard)
    rel = os.path.relpath(lb_path.resolve(), Path(out).resolve().parent)
    sections.append({"title": "Leaderboard",
                     "text": f"{len(lb) + len(pooled)} rows ({len(pooled)} of them pooled over subjects, subject "
                             "'group'), one per score; columns and their meaning: README, 'leaderboard.tsv'.",
                     "links": [{"href": rel, "text": f"leaderboard.tsv ({rel})"}]})
    subjects = sorted(s for s in lb.subject.astype(str).unique() if s != "group")
    summary = [{"title": t, "table": table(d)} for t, d in ranked_summary(lb)]
    head = [{"title": "Subjects", "text": f"{len(subjects)} subject pages:",
             "links": [{"href": f"sub-{s}/report.html", "text": f"sub-{s}"} for s in subjects]}]
    if summary:
        head.append({"title": "Ranked summary",
                     "text": "Per metric and target kind (ROI prefix: ret = retinotopic, cat = category, all = every "
                             "voxel; EEG: protocol), models ranked by their mean over subjects (each subject's value "
                             "of a kind: mean over its ROIs) ± SEM over subjects. chance: expected without "
                             "information; ceiling: on the metric's scale (1 for noise-normalised metrics); empty "
                             "where undefined. Per-layer rows: see the commitment section and the TSV.",
                     "tables": summary})
    sections = head + sections
    return render_page(out, title="neuroattn: group report", sections=sections,
                       provenance=provenance(config, feature_paths), header=page_header(config, configfiles))
