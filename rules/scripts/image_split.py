"""Rule image_split: the train/test image split from every subject's betas. Code: neuroattn.stages.fmri.image_split."""
from neuroattn.stages import from_snakemake

from_snakemake(snakemake, "image_split")  # noqa: F821
