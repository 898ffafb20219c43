"""Rule incontext_prior: meta-train the in-context encoder/decoder on synthetic voxels. Code: neuroattn.stages.incontext.incontext_prior."""
from neuroattn.stages import from_snakemake
from_snakemake(snakemake, "incontext_prior")  # noqa: F821
