"""Rule incontext_prior: meta-train the in-context encoder/decoder on synthetic voxels (no brain data)."""
from neuroattn.models.metatrain import run_prior
from neuroattn.utils import set_threads, setup_logging

log = setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
cfg = dict(snakemake.params.cfg)
log.info("in-context prior: backbone %s layer %s", cfg["backbone"], cfg["layer"])
run_prior(snakemake.input.features, snakemake.input.split, snakemake.output[0], cfg, layer=cfg["layer"],
          seed=snakemake.params.seed, device=snakemake.params.device)
