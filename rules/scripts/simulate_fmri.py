"""Simulate the fMRI BIDS dataset (stimuli, BOLD, ROIs, ground truth) into the output's folder."""
from pathlib import Path

from neuroattn.data.simulate import simulate_fmri_from_config
from neuroattn.utils import set_threads, setup_logging

log = setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
root = Path(snakemake.output[0]).parent
summary = simulate_fmri_from_config(root, snakemake.params.sim, task=snakemake.params.task,
                                    seed=int(snakemake.params.seed), overwrite=True, progress=True)
for s in summary["subjects"]:
    log.info("sub-%s: %d trials, ROI voxels %s", s, summary[s]["n_trials"], summary[s]["rois"])
log.info("wrote %s (%d images, %d shared)", root, summary["n_images"], len(summary["shared"]))
