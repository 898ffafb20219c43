"""Rule layer_commitment: best layer per ROI on the public images, scored held-out. Code: neuroattn.stages.scoring.layer_commitment."""
from neuroattn.stages import from_snakemake

from_snakemake(snakemake, "layer_commitment")
