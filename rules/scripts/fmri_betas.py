"""Rule fmri_betas: one subject's single-trial betas, trial and voxel tables, provenance. Code: neuroattn.stages.fmri.fmri_betas."""
from neuroattn.stages import from_snakemake

from_snakemake(snakemake, "fmri_betas")  # noqa: F821
