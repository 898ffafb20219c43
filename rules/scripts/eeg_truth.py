"""Score one subject's EEG channel maps (activation pattern, importance) against the simulated truth."""
from neuroattn.eeg_truth import read_truth_channels, summarise_truth_check, truth_check
from neuroattn.utils import atomic_path, setup_logging

log = setup_logging(snakemake.log[0])
subject = snakemake.wildcards.subject
truth = read_truth_channels(snakemake.params.truth, subject)
log.info("sub-%s truth channels: %s", subject, truth)
df = truth_check(list(snakemake.input.preds), truth)
log.info("peak on a truth channel / mass ratio (1 = chance):\n%s", summarise_truth_check(df).to_string(index=False))
with atomic_path(snakemake.output[0]) as tmp:
    df.to_csv(tmp, sep="\t", index=False)
