"""Rule incontext_loso: phase-2 meta-training without the held-out subject, then its evaluation."""
from neuroattn.models.metatrain import run_loso
from neuroattn.utils import set_threads, setup_logging

log = setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
subject = snakemake.wildcards.subject
log.info("in-context LOSO: held-out sub-%s, %d beta files", subject, len(snakemake.input.betas))
run_loso(snakemake.input.prior, snakemake.input.features, snakemake.input.split, list(snakemake.input.betas),
         subject, snakemake.output.pred, snakemake.output.scores, dict(snakemake.params.cfg),
         seed=snakemake.params.seed, device=snakemake.params.device)
