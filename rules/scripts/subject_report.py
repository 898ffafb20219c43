"""Write one subject's self-contained HTML report."""
from neuroattn.report.subject import build_subject_report
from neuroattn.utils import setup_logging

setup_logging(snakemake.log[0])
inp, par = snakemake.input, snakemake.params


def one(name):
    return inp[name][0] if name in inp.keys() and len(inp[name]) else None


build_subject_report(
    snakemake.output[0], snakemake.wildcards.subject, inp.leaderboard, par.config,
    betas=one("betas"), dseg=par.dseg, split=one("split"), stimuli_dir=par.stimuli_dir,
    routing_preds=list(inp.get("routing", [])), decode_pred=one("decode"), epochs=one("epochs"),
    epochs_table=one("epochs_table"), eeg_preds=list(inp.get("eeg_preds", [])),
    eeg_truth=one("truthcheck"),
    feature_paths=list(inp.get("features", [])), routing_truth=list(inp.get("routing_truth", [])),
)
