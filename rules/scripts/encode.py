"""Rule encode: fit one voxel encoder for one subject x backbone x layer, predict and score the test images. Code: neuroattn.stages.encode.encode."""
from neuroattn.stages import from_snakemake
from_snakemake(snakemake, "encode")  # noqa: F821
