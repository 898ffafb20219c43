"""Rule eeg_epochs: one subject's BIDS EEG recordings -> filtered, labelled epochs (+ table)."""
from neuroattn.data.eeg import preprocess_subject, write_epochs
from neuroattn.utils import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821
subject = snakemake.wildcards.subject  # noqa: F821
cfg = dict(snakemake.params.eeg)  # noqa: F821
log.info("sub-%s: preprocessing EEG from %s with %s", subject, snakemake.params.bids_root, cfg)  # noqa: F821
epochs, table = preprocess_subject(snakemake.params.bids_root, subject, cfg)  # noqa: F821
write_epochs(epochs, table, snakemake.output.epochs, snakemake.output.table)  # noqa: F821
log.info("wrote %s (%d epochs, %d dropped)", snakemake.output.epochs, len(epochs), int((~table["kept"]).sum()))  # noqa: F821
