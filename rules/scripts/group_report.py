"""Rule group_report: the group page (leaderboard table and plots). Code: neuroattn.stages.report.group_report."""
from neuroattn.stages import from_snakemake

from_snakemake(snakemake, "group_report")
