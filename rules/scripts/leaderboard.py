"""Gather every scores TSV into results/scores/leaderboard.tsv."""
from neuroattn.leaderboard import gather
from neuroattn.utils import setup_logging

log = setup_logging(snakemake.log[0])
df = gather(snakemake.input, snakemake.output.table)
log.info("leaderboard: %d rows from %d files", len(df), len(snakemake.input))
