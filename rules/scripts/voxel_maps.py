"""Rule voxel_maps: each encoder's per-voxel test r as NIfTI, plus the bold reference. Code: neuroattn.stages.scoring.voxel_maps."""
from neuroattn.stages import from_snakemake

from_snakemake(snakemake, "voxel_maps")
