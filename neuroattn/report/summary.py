"""What opens every page: where the numbers came from (:func:`page_header`) and, on the group
page, the ranked summary of the leaderboard (:func:`ranked_summary`)."""
from __future__ import annotations

import datetime as _dt
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]

#: Metrics of the ranked summary, per modality, in page order.
SUMMARY_METRICS = [("fmri", "noise_normalized_r2"), ("fmri", "ceiled_ev"), ("fmri", "top1"), ("fmri", "ssm"),
                   ("eeg", "accuracy")]


def git_commit(repo: str | Path = REPO) -> str:
    """``<short hash>`` of the checkout (``+ uncommitted changes`` when tracked files differ), or
    ``unknown`` outside git."""
    try:
        h = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                           text=True, timeout=10)
        if h.returncode != 0:
            return "unknown (not a git checkout)"
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return h.stdout.strip() + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"


def device_used(device: str = "auto") -> str:
    """The device ``device`` resolves to on this machine, with its name (``cuda: NVIDIA H200``)."""
    import os
    import sys

    if device == "cpu":
        return "cpu"
    # no GPU driver on this machine: "auto" is the CPU, and the page need not import torch (~2 s)
    if device == "auto" and "torch" not in sys.modules and not any(
            os.path.exists(p) for p in ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd")):
        return "cpu (config device: auto, resolved on the machine that built this page)"
    try:
        import torch

        from ..utils import resolve_device

        dev = resolve_device(device)
        name = f" ({torch.cuda.get_device_name(0)})" if dev == "cuda" else ""
    except Exception as exc:  # noqa: BLE001 - the page still renders
        return f"unknown ({exc})"
    return f"{dev}{name}" + (f" (config device: {device}, resolved on the machine that built this page)"
                             if device == "auto" else "")


def _dataset(config: dict, key: str) -> str:
    sec = config.get(key) or {}
    root = sec.get("bids_root")
    if not root:
        return "simulated (ground truth known)"
    fmt = sec.get("format", "bids")
    return f"{root}" + (f" ({fmt} layout)" if fmt != "bids" else " (BIDS)")


def _config_files(configfiles) -> list[str]:
    """Config files in merge order, each once (snakemake lists config/config.yaml again for the
    Snakefile's ``configfile:``), relative to the checkout where inside it."""
    out = []
    for f in configfiles or ["config/config.yaml"]:
        p = Path(f)
        p = (REPO / p if not p.is_absolute() else p).resolve()
        try:
            name = str(p.relative_to(REPO))
        except ValueError:
            name = str(p)
        if name not in out:
            out.append(name)
    return out


def page_header(config: dict, configfiles=(), built: str | None = None) -> dict:
    """Key facts shown at the top of a page: data, date, commit, command, config files, device."""
    files = _config_files(configfiles)
    mods = config.get("modalities") or ["fmri", "eeg"]
    out = {}
    if "fmri" in mods:
        out["fMRI data"] = _dataset(config, "fmri")
    if "eeg" in mods:
        out["EEG data"] = _dataset(config, "eeg")
    out["built"] = built or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out["git commit"] = git_commit()
    out["command"] = "snakemake --configfile " + " ".join(files)
    out["config files"] = ", ".join(files) + " (merged in this order)"
    out["device"] = device_used(str(config.get("device", "auto")))
    out["seed"] = str(config.get("seed"))
    trained = [n for n, b in ((config.get("features") or {}).get("backbones") or {}).items()
               if (b or {}).get("weights") == "train"]
    if trained and "fmri" in mods:  # the objective is resolved before any job (rules/common.smk)
        bt = config.get("backbone_training") or {}
        obj = bt.get("objective", "auto")
        out["backbone training"] = (f"{', '.join(trained)} trained on the stimuli, objective {obj}"
                                    + (" (label-free: predicts each image's quarter turn; the stimuli have no "
                                       "categories)" if obj == "rotation" else "") + f", regime {bt.get('regime', 'standard')}")
    return out


def target_kind(target: str, modality: str) -> str:
    """ROI kind of a target: ``ret`` / ``cat`` / ``shape`` (its prefix before ``_``), ``all``, or
    the EEG protocol."""
    t = str(target)
    if modality == "eeg" or t == "all" or "_" not in t:
        return t
    return t.split("_", 1)[0]


def ranked_summary(lb: pd.DataFrame, metrics=SUMMARY_METRICS) -> list[dict]:
    """Per (modality, metric): models ranked by their mean over subjects within each target kind.

    Each subject's value of a kind is its mean over the kind's targets; the table shows the mean
    +- SEM of those over subjects, chance and ceiling (means over the rows), and the number of
    subjects. Per-layer rows (family ``layer``) are left out (the commitment section shows them).

    Returns
    -------
    list of (title, DataFrame)
    """
    subj = lb[(lb.subject != "group") & (lb.family.astype(str) != "layer")]
    out = []
    for modality, metric in metrics:
        d = subj[(subj.modality == modality) & (subj.metric == metric)]
        if not len(d):
            continue
        d = d.assign(kind=[target_kind(t, modality) for t in d.target])
        per = d.groupby(["model", "kind", "subject"], sort=True).agg(
            value=("value", "mean"), ceiling=("ceiling", "mean"), chance=("chance", "mean")).reset_index()
        rows = []
        for (model, kind), g in per.groupby(["model", "kind"], sort=True):
            v = g.value.to_numpy(float)
            sem = float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
            rows.append({"target kind": kind, "model": model, "mean": float(np.mean(v)), "sem": sem,
                         "chance": g.chance.mean(), "ceiling": g.ceiling.mean(), "subjects": len(v)})
        t = pd.DataFrame(rows).sort_values(["target kind", "mean"], ascending=[True, False], kind="mergesort")
        t.insert(0, "rank", t.groupby("target kind").cumcount() + 1)
        t["mean ± SEM"] = [f"{m:.3f} ± {s:.3f}" if np.isfinite(s) else f"{m:.3f}" for m, s in zip(t["mean"], t["sem"])]
        t = t[["target kind", "rank", "model", "mean ± SEM", "chance", "ceiling", "subjects"]]
        out.append((f"{modality.upper()} {metric}", t))
    return out
