"""Rule extract_features: a backbone's layers for every stimulus -> feature cache. Code: neuroattn.stages.features.extract_features."""
from neuroattn.stages import from_snakemake

from_snakemake(snakemake, "extract_features")
