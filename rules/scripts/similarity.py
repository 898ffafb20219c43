"""Rule similarity: RSA / CKA / SSM per ROI and layer with ceilings, SSM commitment and subsampling. Code: neuroattn.stages.scoring.similarity."""
from neuroattn.stages import from_snakemake

from_snakemake(snakemake, "similarity")
