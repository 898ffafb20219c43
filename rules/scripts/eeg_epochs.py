"""Rule eeg_epochs: one subject's EEG recordings -> labelled epochs. Code: neuroattn.stages.eeg.eeg_epochs."""
from neuroattn.stages import from_snakemake
from_snakemake(snakemake, "eeg_epochs")  # noqa: F821
