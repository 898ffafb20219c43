"""Rule simulate_eeg: write the simulated motor-imagery EEG BIDS dataset (and its ground truth)."""
from pathlib import Path

from neuroattn.data.simulate_eeg import simulate_from_config
from neuroattn.utils import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821
root = Path(snakemake.output[0]).parent  # noqa: F821
p = snakemake.params  # noqa: F821
log.info("simulating EEG into %s with %s", root, dict(p.sim))
simulate_from_config(root, dict(p.sim), task=p.task, events=list(p.events), seed=int(p.seed))
log.info("done: %s", root)
