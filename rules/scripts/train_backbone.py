"""Train the configured backbone on the stimuli (category classification); save its state dict."""
from pathlib import Path

import pandas as pd

from neuroattn.features.backbones import load_backbone
from neuroattn.features.extract import stimulus_table
from neuroattn.features.training import save_weights, train_backbone
from neuroattn.utils import atomic_path, seed_everything, set_threads, setup_logging

log = setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
p = snakemake.params
cfg = p.backbone
try:  # the rule gives stimuli_dir() (common.smk); a caller with only a BIDS root means <root>/stimuli
    stimuli_dir = Path(p.stimuli_dir)
except (AttributeError, KeyError):
    stimuli_dir = Path(p.bids_root) / "stimuli"
stimuli = stimulus_table(stimuli_dir.parent)  # reads <parent>/stimuli
if "category" not in stimuli.columns:
    raise ValueError(f"{stimuli_dir}/stimuli.tsv: needs a 'category' column to train the backbone")
seed_everything(p.seed)
backbone = load_backbone(cfg["arch"], image_size=cfg.get("image_size", 96),
                         num_classes=stimuli["category"].nunique(), layers=cfg["layers"])
result = train_backbone(backbone, list(stimuli["path"]), stimuli["category"].astype(str), seed=p.seed,
                        device=p.device, **p.training)
save_weights(backbone, snakemake.output.weights)
history = pd.DataFrame(result.history)
history["final_train_acc"], history["final_val_acc"] = result.train_accuracy, result.val_accuracy
with atomic_path(snakemake.output.history) as tmp:
    history.to_csv(tmp, sep="\t", index=False)
log.info("final train accuracy %.3f, val accuracy %.3f (%d classes, %.0f s)", result.train_accuracy,
         result.val_accuracy, len(result.classes), result.seconds)
