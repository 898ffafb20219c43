"""Fit and score every configured EEG model for one subject under one protocol (within | loso)."""
from pathlib import Path

from neuroattn.data.eeg import load_epochs
from neuroattn.eeg_evaluation import result_rows, run_protocol, write_results_h5
from neuroattn.leaderboard import write_scores
from neuroattn.utils import set_threads, setup_logging

log = setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
cfg, p = snakemake.params.cfg, snakemake.params
subject, protocol = snakemake.wildcards.subject, snakemake.wildcards.protocol

datas = {}
for path in snakemake.input.epochs:
    d = load_epochs(path)
    datas[str(d.subject)] = d
models = cfg["models"] if protocol == "within" else (cfg.get("loso_models") or cfg["models"])
settings = {k: cfg[k] for k in ("batch_size", "lr", "warmup_epochs", "val_fraction", "patience") if cfg.get(k) is not None}
settings.update(epochs=cfg["epochs"] if protocol == "within" else cfg.get("loso_epochs") or cfg["epochs"],
                device=p.device, module_kwargs=cfg.get("nets") or None)
seeds = [p.seed * 1000 + s for s in cfg["seeds"]]
log.info("sub-%s %s: %s, seeds %s, settings %s", subject, protocol, models, seeds, settings)
results, meta = run_protocol(protocol, datas, subject, models, seeds=seeds, settings=settings,
                             align=bool(p.align), importance=bool(cfg.get("importance", True)),
                             epoch_tmin=float(p.epoch_tmin))
write_results_h5(snakemake.output.pred, results, meta)
write_scores(snakemake.output.scores, result_rows(results, subject, protocol))
log.info("wrote %s and %s", snakemake.output.scores, Path(snakemake.output.pred).name)
