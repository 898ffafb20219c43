"""Rule simulate_fmri: the simulated fMRI BIDS dataset with ground truth. Code: neuroattn.stages.simulate.simulate_fmri."""
from neuroattn.stages import from_snakemake

from_snakemake(snakemake, "simulate_fmri")  # noqa: F821
