"""Extract the configured layers of one backbone for every stimulus into its feature cache."""
from pathlib import Path

from neuroattn.data.splits import read_split
from neuroattn.features.backbones import load_backbone
from neuroattn.features.extract import cache_features, stimulus_table
from neuroattn.utils import atomic_path, seed_everything, set_threads, setup_logging

log = setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
p = snakemake.params
cfg, feat = p.backbone, p.features
try:  # the rule gives stimuli_dir() (common.smk); a caller with only a BIDS root means <root>/stimuli
    stimuli_dir = Path(p.stimuli_dir)
except (AttributeError, KeyError):
    stimuli_dir = Path(p.bids_root) / "stimuli"
stimuli = stimulus_table(stimuli_dir.parent)  # reads <parent>/stimuli
train, _ = read_split(snakemake.input.split)
unknown = sorted(set(train) - set(stimuli["stim_file"]))
if unknown:
    raise ValueError(f"{snakemake.input.split}: training images not in {stimuli_dir}: {unknown[:5]}")
weights = cfg.get("weights") if cfg.get("weights") not in (None, "", "random") else None
origin = "trained" if weights == "train" else "pretrained"
if weights == "train":  # the train_backbone output (a one-item list in snakemake.input)
    w = snakemake.input.weights
    weights = w if isinstance(w, str) else w[0]
seed_everything(p.seed)
backbone = load_backbone(cfg["arch"], weights, image_size=cfg.get("image_size", 96), origin=origin,
                         layers=cfg["layers"], device=p.device)
with atomic_path(snakemake.output[0]) as tmp:
    cache_features(backbone, list(stimuli["path"]), tmp, names=list(stimuli["stim_file"]), layers=cfg["layers"],
                   batch_size=feat["batch_size"], dtype=feat["dtype"], pca=feat.get("pca"),
                   fit_on=stimuli["stim_file"].isin(train).to_numpy(),
                   attrs={"backbone": snakemake.wildcards.backbone, "arch": cfg["arch"]})
log.info("%d images, layers %s, weights %s -> %s", len(stimuli), cfg["layers"], backbone.weights, snakemake.output[0])
