"""Rule encode: fit one voxel encoder (routing / ridge_pooled / ridge_grid / spatial_feature) for one
subject x backbone x layer on the training images, predict the held-out images, write predictions
(+ attention maps) and leaderboard rows (neuroattn.models.encoding)."""
from neuroattn.leaderboard import write_scores
from neuroattn.models.encoding import load_encoding_data, run_encoding, write_predictions
import shutil
from pathlib import Path

from neuroattn.utils import run_key, set_threads, setup_logging

log = setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
w, inp, out, par = snakemake.wildcards, snakemake.input, snakemake.output, snakemake.params
try:
    data = load_encoding_data(inp.betas, inp.features, inp.split, w.layer, hemispheres=par.hemispheres)
    params = dict(par.model_cfg)
    fit_params = dict(params)
    ckdir = None
    if w.model in ("routing", "spatial_feature"):  # trained models resume from their checkpoints
        ckdir = Path(par.checkpoint_dir) / run_key(params, par.seed, par.hemispheres, inp.betas, inp.features, inp.split)
        fit_params["checkpoint_dir"] = str(ckdir)
    result = run_encoding(data, w.model, fit_params, seed=int(par.seed), device=par.device,
                          voxel_maps=int(par.voxel_maps))
    write_predictions(out.pred, data, result, backbone=w.backbone, layer=w.layer, model=w.model, params=params)
    write_scores(out.scores, result["rows"])
    if ckdir is not None:
        shutil.rmtree(ckdir.parent, ignore_errors=True)
except Exception as exc:
    log.error("sub-%s %s %s %s: %s", w.subject, w.backbone, w.layer, w.model, exc)
    raise
for row in result["rows"]:
    if row["target"] == "all":
        log.info("sub-%s %s: %s = %.4f (ceiling %s, n=%s)", w.subject, w.model, row["metric"], row["value"],
                 row["ceiling"], row["n"])
