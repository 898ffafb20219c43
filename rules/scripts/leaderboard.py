"""Rule leaderboard: every scores TSV gathered into results/scores/leaderboard.tsv. Code: neuroattn.stages.scoring.leaderboard."""
from neuroattn.stages import from_snakemake

from_snakemake(snakemake, "leaderboard")
