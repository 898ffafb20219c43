"""Rule eeg_epochs: one subject's EEG recordings (BIDS, or a released layout: BCI IV 2a GDF,
EEGMMIDB EDF, MOABB; neuroattn.data.formats) -> filtered, labelled epochs (+ table)."""
from neuroattn.data import formats
from neuroattn.data.eeg import write_epochs
from neuroattn.utils import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821
p = snakemake.params  # noqa: F821
subject = snakemake.wildcards.subject  # noqa: F821
cfg = dict(p.eeg)
try:  # rules give format + adapter; a caller without them means plain BIDS
    fmt, adapter = p.format, dict(p.adapter)
except (AttributeError, KeyError):
    fmt, adapter = "bids", {}
log.info("sub-%s: preprocessing EEG (%s format) from %s with %s", subject, fmt, p.bids_root, cfg)
epochs, table = formats.eeg_subject(fmt, p.bids_root, subject, cfg, adapter)
write_epochs(epochs, table, snakemake.output.epochs, snakemake.output.table)  # noqa: F821
dropped = int((~table["kept"]).sum()) if "kept" in table else 0
log.info("wrote %s (%d epochs, %d dropped)", snakemake.output.epochs, len(epochs), dropped)  # noqa: F821
