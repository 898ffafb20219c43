"""Rule incontext_loso: phase-2 meta-training without the held-out subject, then its evaluation. Code: neuroattn.stages.incontext.incontext_loso."""
from neuroattn.stages import from_snakemake
from_snakemake(snakemake, "incontext_loso")  # noqa: F821
