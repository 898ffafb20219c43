"""Rule backbone_comparison: per backbone and ROI, committed layer + ceiled EV, and robustness. Code: neuroattn.stages.features.backbone_comparison."""
from neuroattn.stages import from_snakemake

from_snakemake(snakemake, "backbone_comparison")
