"""Rule subsampling: predictivity vs number of voxels and of training images. Code: neuroattn.stages.scoring.subsampling."""
from neuroattn.stages import from_snakemake

from_snakemake(snakemake, "subsampling")
