"""Rule simulate_eeg: the simulated motor-imagery EEG BIDS dataset. Code: neuroattn.stages.simulate.simulate_eeg."""
from neuroattn.stages import from_snakemake

from_snakemake(snakemake, "simulate_eeg")  # noqa: F821
