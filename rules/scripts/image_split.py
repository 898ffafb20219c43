"""Write the train/test image split from every subject's betas."""
from pathlib import Path

from neuroattn.data.betas import Betas
from neuroattn.data.splits import shared_split, write_split
from neuroattn.utils import setup_logging

log = setup_logging(snakemake.log[0])
seen = {}
for path in snakemake.input.betas:
    b = Betas.read(path)
    seen[b.subject] = list(b.images)
mode = snakemake.params.mode
test_list = None if mode == "shared" else Path(mode).read_text().split()
df = shared_split(seen, test_list)
write_split(df, snakemake.output[0])
log.info("%d train / %d test images", (df.split == "train").sum(), (df.split == "test").sum())
