"""Rule routing_truth: compare a routing encoder's maps with the simulation's true routing. Code: neuroattn.stages.encode.routing_truth."""
from neuroattn.stages import from_snakemake
from_snakemake(snakemake, "routing_truth")  # noqa: F821
