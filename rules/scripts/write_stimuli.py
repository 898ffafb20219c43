"""Rule stimuli: the images of released fMRI layouts (nsd, algonauts) as PNGs + stimuli.tsv. Code: neuroattn.stages.fmri.stimuli."""
from neuroattn.stages import from_snakemake

from_snakemake(snakemake, "stimuli")  # noqa: F821
