"""Rule fmri_betas: BIDS bold + events + ROIs of one subject -> single-trial betas, trial and voxel
tables, provenance (neuroattn.data.fmri). Bad input raises (non-zero exit) before anything is written."""
import numpy as np

from neuroattn.data.fmri import preprocess_subject, write_subject
from neuroattn.utils import setup_logging

log = setup_logging(snakemake.log[0])
subject = snakemake.wildcards.subject
try:
    result = preprocess_subject(
        snakemake.params.bids_root,
        subject,
        snakemake.params.task,
        glm=dict(snakemake.params.glm),
        keep_other=bool(snakemake.params.keep_other),
        seed=int(snakemake.params.seed),
    )
    out = snakemake.output
    write_subject(result, out.betas, out.trials, out.voxels, out.provenance)
except Exception as exc:
    log.error("sub-%s: %s", subject, exc)
    raise
b = result.betas
log.info("sub-%s: %d trials, %d images, %d voxels, ROIs %s; median ncsnr %.3f", subject, len(b.trial_image),
         len(b.images), b.trial_betas.shape[1], b.rois, float(np.nanmedian(b.ncsnr)) if np.isfinite(b.ncsnr).any() else np.nan)
