"""Rule subject_report: one subject's self-contained HTML page. Code: neuroattn.stages.report.subject_report."""
from neuroattn.stages import from_snakemake

from_snakemake(snakemake, "subject_report")
