"""Rule eeg_model: fit and score the EEG decoders of one subject x protocol. Code: neuroattn.stages.eeg.eeg_model."""
from neuroattn.stages import from_snakemake
from_snakemake(snakemake, "eeg_model")  # noqa: F821
