"""Layer commitment of one subject and backbone: best layer per ROI on the public images, scored held-out."""
from neuroattn.data.betas import Betas
from neuroattn.data.splits import read_split
from neuroattn.features import FeatureStore
from neuroattn.leaderboard import write_scores
from neuroattn.metrics.commitment import commit_subject
from neuroattn.utils import atomic_path, setup_logging

log = setup_logging(snakemake.log[0])
sc = snakemake.params.scoring
betas = Betas.read(snakemake.input.betas)
store = FeatureStore(snakemake.input.features)
train, test = read_split(snakemake.input.split)
layers = [lay for lay in (snakemake.params.layers or store.layers) if lay in store.layers]
rows, table = commit_subject(
    betas, store, train, test, layers=layers, backbone=snakemake.wildcards.backbone,
    regression=sc.get("regression", "pls"), n_splits=sc.get("n_splits", 10), train_size=sc.get("train_size", 0.9),
    random_state=sc.get("random_state", 1), n_components=sc.get("n_components", 25),
    pool_grid=sc.get("pool_grid", 4), pca=sc.get("pca", 256), seed=snakemake.params.seed,
    per_layer_rows=sc.get("per_layer_rows", True),
)
write_scores(snakemake.output.scores, rows)
with atomic_path(snakemake.output.layers) as tmp:
    table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
log.info("committed layers: %s", table.loc[table.committed, ["roi", "layer"]].to_dict("records"))
