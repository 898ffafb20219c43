"""Stages of ``rules/features.smk``: train the configured backbone on the stimuli (category
classification), then extract its layers for every stimulus into a feature cache.

These stages read the stimulus table and the split; :mod:`neuroattn.features` trains and
extracts on the images and labels they hand over.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ..config import with_defaults
from ..utils import atomic_path, seed_everything
from . import register

log = logging.getLogger("neuroattn.stages.features")

__all__ = ["stimulus_table", "train_backbone", "extract_features"]


def stimulus_table(bids_root) -> pd.DataFrame:
    """The stimuli of a BIDS root: ``stim_file`` (name under ``stimuli/``), ``path`` and any other
    columns of ``stimuli/stimuli.tsv``; without that file, every ``stimuli/*.png`` (sorted).

    Raises
    ------
    FileNotFoundError
        No ``stimuli/`` folder, or files listed in ``stimuli.tsv`` that do not exist.
    """
    folder = Path(bids_root) / "stimuli"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no stimuli folder in the BIDS root")
    tsv = folder / "stimuli.tsv"
    if tsv.is_file():
        df = pd.read_csv(tsv, sep="\t", dtype={"stim_file": str})
        if "stim_file" not in df.columns:
            raise ValueError(f"{tsv}: needs a 'stim_file' column, has {list(df.columns)}")
        if df["stim_file"].duplicated().any():
            raise ValueError(f"{tsv}: stim_file listed twice: {df.stim_file[df.stim_file.duplicated()].tolist()[:5]}")
    else:
        files = sorted(p.name for p in folder.glob("*.png"))
        if not files:
            raise FileNotFoundError(f"{folder}: no stimuli.tsv and no *.png images")
        df = pd.DataFrame({"stim_file": files})
    df["path"] = [str(folder / f) for f in df["stim_file"]]
    missing = [f for f, p in zip(df.stim_file, df.path) if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"{tsv}: listed stimuli missing from {folder}: {missing[:5]}")
    return df.reset_index(drop=True)


def _backbone_kwargs(backbone: dict) -> dict:
    """``load_backbone`` keywords of a ``features.backbones.<name>`` entry: ``image_size`` (the
    architecture's default when the entry has none) and ``options`` (constructor keywords, e.g. a
    CrossViT's ``conv_stem``)."""
    kw = dict(backbone.get("options") or {})
    if "image_size" in backbone:
        kw["image_size"] = backbone["image_size"]
    return kw


def backbone_training(training: dict, backbone_config: dict) -> dict:
    """The backbone's training settings: ``backbone_training`` overlaid with the backbone entry's
    own ``training`` (e.g. ``{regime: joint}``), over config.yaml's defaults; unknown keys refused."""
    return with_defaults({**(training or {}), **(backbone_config.get("training") or {})}, "backbone_training")


def robustness_rows(backbone: str, robustness: dict) -> list[dict]:
    """Leaderboard rows (subject ``group``, metric ``accuracy``, target ``clean`` / ``rotated`` /
    ``pgd``) of a trained backbone's held-out :func:`neuroattn.features.training.robustness`;
    target ``rotation`` (chance 0.25) for a backbone trained with the label-free objective."""
    from ..leaderboard import score_row

    rows = [score_row("group", "fmri", backbone, key, "accuracy", robustness[key], n=robustness.get("n"))
            for key in ("clean", "rotated", "pgd") if key in robustness]
    if "rotation" in robustness:  # objective rotation: held-out quarter-turn prediction (4 classes)
        rows.append(score_row("group", "fmri", backbone, "rotation", "accuracy", robustness["rotation"],
                              n=robustness.get("n"), chance=0.25))
    return rows


@register("train_backbone")
def train_backbone(weights: str, history: str, stimuli_dir: str, backbone: str, backbone_config: dict,
                   training: dict, seed: int, device: str = "auto", dataset=None, stimuli=None,
                   scores: str | None = None) -> None:
    """Train ``backbone`` on the stimuli (``training["objective"]``: their ``category`` column of
    ``stimuli.tsv``, or label-free rotation prediction, :func:`neuroattn.features.training.choose_objective`);
    write its state dict, the per-epoch training history and its held-out robustness.

    Parameters
    ----------
    weights : str
        Output state dict (``torch.save``).
    history : str
        Output TSV: one row per epoch (``epoch``, ``loss``, ``train_acc``, ``val_acc``, ``lr``,
        ``seconds``) plus the final train/validation accuracy, ``regime`` and ``objective``.
    stimuli_dir : str
        Folder of the stimulus images and their ``stimuli.tsv``.
    backbone : str
        The backbone's name (the ``{backbone}`` wildcard).
    backbone_config : dict
        ``features.backbones.<name>`` (``arch``, ``layers``, ``image_size``, ``training``: this
        backbone's overrides of ``training``).
    training : dict
        ``backbone_training`` (epochs, batch_size, lr, regime, augmentation, PGD); keys it lacks
        come from ``config/config.yaml``, unknown keys are refused.
    seed : int
    device : str
    dataset, stimuli : optional
        Rule inputs for the dependency only (not read).
    scores : str, optional
        Output leaderboard rows: clean / rotated / PGD accuracy on the held-out images
        (:func:`robustness_rows`).

    Raises
    ------
    ValueError
        Objective ``category`` and ``stimuli.tsv`` has no ``category`` column (two values at least).
    """
    from ..features.backbones import load_backbone
    from ..features.training import train_backbone as fit
    from ..features.weights import save_weights

    from ..features.training import choose_objective

    cfg = backbone_config
    table = stimulus_table(Path(stimuli_dir).parent)  # reads <parent>/stimuli
    training = backbone_training(training, cfg)  # config.yaml fills what is missing; typos refused
    # the workflow resolves auto before any job (rules/common.smk); here again for a stage run by hand
    objective, why = choose_objective(training.pop("objective"),
                                      table["category"] if "category" in table.columns else None)
    log.info("backbone %s: objective %s (%s)", backbone, objective, why)
    labels = table["category"].astype(str) if objective == "category" else None
    seed_everything(seed)
    bb = load_backbone(cfg["arch"], num_classes=4 if labels is None else labels.nunique(), layers=cfg["layers"],
                       **_backbone_kwargs(cfg))
    result = fit(bb, list(table["path"]), labels, objective=objective, seed=seed, device=device, **training)
    save_weights(bb, weights)
    rows = pd.DataFrame(result.history)
    rows["final_train_acc"], rows["final_val_acc"] = result.train_accuracy, result.val_accuracy
    rows["regime"] = result.regime
    rows["objective"] = result.objective
    for key in ("clean", "rotated", "pgd"):
        rows[f"heldout_{key}_acc"] = result.robustness.get(key, float("nan"))
    if scores is not None:
        from ..leaderboard import write_scores

        write_scores(scores, robustness_rows(backbone, result.robustness))
    with atomic_path(history) as tmp:
        rows.to_csv(tmp, sep="\t", index=False)
    log.info("final train accuracy %.3f, val accuracy %.3f (%d classes, %.0f s)", result.train_accuracy,
             result.val_accuracy, len(result.classes), result.seconds)


@register("extract_features")
def extract_features(features_h5: str, split: str, stimuli_dir: str, backbone: str, backbone_config: dict,
                     features: dict, seed: int, device: str = "auto", weights=None, dataset=None,
                     stimuli=None) -> None:
    """Extract ``backbone``'s layers for every stimulus into the HDF5 feature cache ``features_h5``
    (PCA, when asked for, fitted on the training images of ``split`` only).

    Parameters
    ----------
    features_h5 : str
        Output feature cache (:class:`neuroattn.features.FeatureStore` reads it).
    split : str
        The train/test image split (its training images fit the PCA).
    stimuli_dir : str
        Folder of the stimulus images and their ``stimuli.tsv``.
    backbone : str
        The backbone's name (the ``{backbone}`` wildcard), recorded in the cache.
    backbone_config : dict
        ``features.backbones.<name>`` (``arch``, ``weights``, ``layers``, ``image_size``).
    features : dict
        ``features`` without ``backbones`` (``batch_size``, ``dtype``, ``pca``).
    seed : int
    device : str
    weights : str or list of str, optional
        The trained state dict when ``backbone.weights`` is ``train`` (the train_backbone output).
    dataset, stimuli : optional
        Rule inputs for the dependency only (not read).

    Raises
    ------
    OSError
        Before extraction, when the cache does not fit the free disk space of its folder (the
        error names ``features_h5``, the size needed and free, and the keys that shrink it).
    """
    from ..data.splits import read_split
    from ..features.backbones import load_backbone
    from ..features.cache import cache_features

    cfg = backbone_config
    feat = with_defaults({k: v for k, v in features.items() if k != "backbones"}, "features")
    table = stimulus_table(Path(stimuli_dir).parent)  # reads <parent>/stimuli
    train, _ = read_split(split)
    unknown = sorted(set(train) - set(table["stim_file"]))
    if unknown:
        raise ValueError(f"{split}: training images not in {stimuli_dir}: {unknown[:5]}")
    path = cfg.get("weights") if cfg.get("weights") not in (None, "", "random") else None
    origin = "trained" if path == "train" else "pretrained"
    if path == "train":  # the train_backbone output (a one-item list from the rule)
        if not weights:
            raise ValueError(f"backbone {backbone!r}: weights: train needs the trained weights file")
        path = weights if isinstance(weights, str) else list(weights)[0]
    seed_everything(seed)
    bb = load_backbone(cfg["arch"], path, origin=origin, layers=cfg["layers"], device=device,
                       **_backbone_kwargs(cfg))
    with atomic_path(features_h5) as tmp:
        cache_features(bb, list(table["path"]), tmp, names=list(table["stim_file"]), layers=cfg["layers"],
                       batch_size=feat["batch_size"], dtype=feat["dtype"], pca=feat["pca"],
                       fit_on=table["stim_file"].isin(train).to_numpy(),
                       attrs={"backbone": backbone, "arch": cfg["arch"]}, output=features_h5,
                       disk_keys=f"features.pca (fewer channels per token), features.dtype (float16 halves "
                                 f"float32) or features.backbones.{backbone}.layers (fewer, or earlier ones)")
    log.info("%d images, layers %s, weights %s -> %s", len(table), cfg["layers"], bb.weights, features_h5)


@register("backbone_comparison")
def backbone_comparison(table: str, scores: list, layers: list, robustness: list, backbones: list) -> None:
    """Rule ``backbone_comparison``: per backbone and ROI, the committed layer and its held-out ceiled
    EV (mean and sd over subjects), per ROI kind the mean over its ROIs, and each backbone's held-out
    clean / rotated / PGD accuracy (config/crossvit.yaml: the four CrossViT regimes).

    Parameters
    ----------
    table : str
        Output TSV: ``backbone, roi, kind, committed_layer`` (the most frequent over subjects, ties
        by depth; ``a|b`` lists all when subjects differ), ``ceiled_ev``, ``ceiled_ev_sd``,
        ``n_subjects``, ``accuracy_clean``, ``accuracy_rotated``, ``accuracy_pgd``. ROI-kind rows
        have ``roi`` = ``<kind> (mean)``.
    scores, layers : list of str
        The layer_commitment outputs (leaderboard rows, per-layer tables) of every subject and backbone.
    robustness : list of str
        The train_backbone robustness rows of the trained backbones (may be fewer than ``backbones``).
    backbones : list of str
        Backbones to compare, in table order.
    """
    from ..data.roi_kinds import roi_kind
    from ..leaderboard import read_scores

    sc = pd.concat([read_scores(p) for p in scores], ignore_index=True)
    rob = pd.concat([read_scores(p) for p in robustness], ignore_index=True) if robustness else None
    lay = []
    for p in layers:
        d = pd.read_csv(p, sep="\t")
        name = Path(p).name
        d["subject"] = name.split("_")[0].removeprefix("sub-")
        d["backbone"] = name.split("_backbone-")[1].split("_desc-")[0]
        lay.append(d[d["committed"].astype(str) == "True"])
    lay = pd.concat(lay, ignore_index=True)
    rows = []
    for b in backbones:
        ev = sc[(sc.model == f"{b}_committed") & (sc.metric == "ceiled_ev")]
        acc = {}
        if rob is not None:
            r = rob[(rob.model == b) & (rob.metric == "accuracy")]
            acc = {f"accuracy_{t}": float(v) for t, v in zip(r.target, r.value)}
        per_roi = []
        for roi, g in ev.groupby("target", sort=True):
            com = lay[(lay.backbone == b) & (lay.roi == roi)]
            counts = com.layer.value_counts()
            top = counts[counts == counts.max()].index.tolist() if len(counts) else []
            per_roi.append({"backbone": b, "roi": roi, "kind": roi_kind(roi),
                            "committed_layer": "|".join(sorted(top)) if len(counts) > 1 else (top[0] if top else ""),
                            "committed_layers_all": "|".join(sorted(counts.index)),
                            "ceiled_ev": g.value.mean(), "ceiled_ev_sd": g.value.std(ddof=1) if len(g) > 1 else float("nan"),
                            "n_subjects": g.subject.nunique(), **acc})
        rows += per_roi
        frame = pd.DataFrame(per_roi)
        if len(frame):
            # per ROI kind: mean over its ROIs of each subject's ceiled EV, then mean / sd over subjects
            ev = ev.assign(kind=[roi_kind(t) for t in ev.target])
            for kind, g in ev.groupby("kind", sort=True):
                subj = g.groupby("subject").value.mean()
                rows.append({"backbone": b, "roi": f"{kind} (mean)", "kind": kind, "committed_layer": "",
                             "committed_layers_all": "", "ceiled_ev": subj.mean(),
                             "ceiled_ev_sd": subj.std(ddof=1) if len(subj) > 1 else float("nan"),
                             "n_subjects": len(subj), **acc})
    out = pd.DataFrame(rows)
    with atomic_path(table) as tmp:
        out.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    log.info("backbone comparison:\n%s", out.to_string())
