"""Write the group page (leaderboard table and plots)."""
from neuroattn.report.group import build_group_report
from neuroattn.utils import setup_logging

setup_logging(snakemake.log[0])
build_group_report(snakemake.output[0], snakemake.input.leaderboard, snakemake.params.config,
                   feature_paths=list(snakemake.input.features), layer_tables=list(snakemake.input.layers),
                   subsampling_tables=list(snakemake.input.subsampling),
                   eeg_truth_tables=list(snakemake.input.truthcheck),
                   routing_truth_tables=list(snakemake.input.routing_truth))
