"""Rule eeg_truth: score one subject's EEG channel maps against the simulated truth. Code: neuroattn.stages.eeg.eeg_truth."""
from neuroattn.stages import from_snakemake
from_snakemake(snakemake, "eeg_truth")  # noqa: F821
