"""Rule fmri_betas: one subject's data (BIDS bold + events + ROIs, or a released layout: NSD,
Algonauts, fMRIPrep derivatives; neuroattn.data.formats) -> single-trial betas, trial and voxel
tables, provenance (neuroattn.data.fmri). Bad input raises (non-zero exit) before anything is written."""
import numpy as np

from neuroattn.data import formats
from neuroattn.data.fmri import write_subject
from neuroattn.utils import setup_logging

log = setup_logging(snakemake.log[0])
p = snakemake.params
subject = snakemake.wildcards.subject
try:  # rules give format + adapter; a caller without them means plain BIDS
    fmt, adapter = p.format, dict(p.adapter)
except (AttributeError, KeyError):
    fmt, adapter = "bids", {}
try:
    result = formats.fmri_subject(
        fmt,
        p.bids_root,
        subject,
        p.task,
        glm=dict(p.glm),
        keep_other=bool(p.keep_other),
        seed=int(p.seed),
        adapter=adapter,
    )
    out = snakemake.output
    write_subject(result, out.betas, out.trials, out.voxels, out.provenance)
except Exception as exc:
    log.error("sub-%s (%s format): %s", subject, fmt, exc)
    raise
b = result.betas
log.info("sub-%s: %d trials, %d images, %d voxels, ROIs %s; median ncsnr %.3f", subject, len(b.trial_image),
         len(b.images), b.trial_betas.shape[1], b.rois, float(np.nanmedian(b.ncsnr)) if np.isfinite(b.ncsnr).any() else np.nan)
