"""Subsampling analysis of one subject: predictivity vs number of voxels and of training images."""
from neuroattn.data.betas import Betas
from neuroattn.data.splits import read_split
from neuroattn.features import FeatureStore
from neuroattn.metrics.commitment import layer_features, reduce_features
from neuroattn.metrics.subsampling import curves_table, subsample
from neuroattn.utils import atomic_path, setup_logging

log = setup_logging(snakemake.log[0])
sc, seed = snakemake.params.scoring, int(snakemake.params.seed)
betas = Betas.read(snakemake.input.betas)
store = FeatureStore(snakemake.input.features)
train, _ = read_split(snakemake.input.split)
train = [im for im in train if im in set(betas.images)]
X = layer_features(store, snakemake.wildcards.layer, train, sc.get("pool_grid", 4))
X, _ = reduce_features(X, X[:1], sc.get("pca", 256), random_state=seed)
Y = betas.select(train)
kw = dict(regression=sc.get("regression", "pls"), n_splits=min(5, sc.get("n_splits", 10)))
curves = [subsample(X, Y, axis=axis, metric="pearson_r", n_draws=3, random_state=seed, **kw)
          for axis in ("units", "stimuli")]
table = curves_table(curves)
with atomic_path(snakemake.output[0]) as tmp:
    table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
log.info("subsampling curves (%d voxels, %d training images):\n%s", Y.shape[1], Y.shape[0], table.to_string())
