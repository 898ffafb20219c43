"""Rule train_backbone: train the backbone on the stimulus categories. Code: neuroattn.stages.features.train_backbone."""
from neuroattn.stages import from_snakemake

from_snakemake(snakemake, "train_backbone")
