"""Rule stimuli: the images the configured subjects saw, as PNGs named like the betas' images
(nsd-XXXXX.png), from the NSD brick or the Algonauts folders, + stimuli.tsv (stim_file)."""
from pathlib import Path

import pandas as pd

from neuroattn.data import formats
from neuroattn.utils import atomic_path, setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821
p = snakemake.params  # noqa: F821
out = Path(snakemake.output[0])  # noqa: F821
paths = formats.write_stimuli(p.format, p.root, list(p.subjects), out.parent, dict(p.adapter))
if not paths:
    raise ValueError(f"{p.root}: no stimuli written for fmri.format {p.format!r}, subjects {list(p.subjects)}")
with atomic_path(out) as tmp:
    pd.DataFrame({"stim_file": sorted({Path(x).name for x in paths})}).to_csv(tmp, sep="\t", index=False)
log.info("%d stimuli (%s format, subjects %s) -> %s", len(paths), p.format, list(p.subjects), out.parent)
