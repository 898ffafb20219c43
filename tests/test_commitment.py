"""Layer commitment (planted region-to-layer mapping), token pooling, subsampling curves."""
import numpy as np
import pytest

from neuroattn.features import FeatureStore, FeatureWriter
from neuroattn.leaderboard import COLUMNS, rows_from_scores, write_scores, read_scores
from neuroattn.metrics import commit_layers, heldout_scores, pool_tokens, subsample, summarize_curves
from neuroattn.stages.scoring import commit_subject, layer_features, stream_layers


def test_pool_tokens_matches_torch_adaptive_pool(rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(2, 7 * 5, 3)).astype(np.float32)
    ref = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x.reshape(2, 7, 5, 3)).permute(0, 3, 1, 2), (4, 4))
    ref = ref.permute(0, 2, 3, 1).reshape(2, -1).numpy()
    np.testing.assert_allclose(pool_tokens(x, (7, 5), 4), ref, atol=1e-6)
    np.testing.assert_allclose(pool_tokens(x, (7, 5), 1), x.mean(axis=1), atol=1e-6)
    assert pool_tokens(x, (7, 5), None).shape == (2, 105)
    with pytest.raises(ValueError, match="do not fill a 6x6 grid"):
        pool_tokens(x, (6, 6))


def _planted_layers(rng, n_pub=200, n_held=60):
    """Region 'early' is read from layer a, region 'late' from layer c; b is noise."""
    n = n_pub + n_held
    feats = {k: rng.normal(size=(n, 12)) for k in "abc"}
    Y_early = feats["a"][:, :3] @ rng.normal(size=(3, 10)) + 0.5 * rng.normal(size=(n, 10))
    Y_late = feats["c"][:, :3] @ rng.normal(size=(3, 8)) + 0.5 * rng.normal(size=(n, 8))
    Y = np.c_[Y_early, Y_late]
    regions = np.array(["ret_v1"] * 10 + ["cat_face"] * 8)
    return feats, Y[:n_pub], Y[n_pub:], regions, n_pub


def test_commit_layers_recovers_planted_mapping(rng):
    feats, Yp, Yh, regions, n_pub = _planted_layers(rng)
    layers = ((k, f[:n_pub], f[n_pub:]) for k, f in feats.items())
    com = commit_layers(layers, Yp, Yh, regions, regression="pls", n_splits=3, n_boot=20)
    assert com.committed == {"ret_v1": "a", "cat_face": "c"}
    assert len(com.public) == 6 and com.public["committed"].sum() == 2
    assert list(com.public.loc[com.public.roi == "ret_v1", "depth"]) == [0, 1, 2]
    assert np.median(com.heldout_r[("a", "ret_v1")]) > 0.7
    assert abs(np.median(com.heldout_r[("b", "ret_v1")])) < 0.3
    nc = np.full(18, 0.8)
    rows = rows_from_scores("01", "fmri", heldout_scores(com, "net", nc, regions))
    df = write_scores_frame(rows)
    sel = df[(df.model == "net_committed") & (df.target == "ret_v1")].set_index("metric")
    r = float(np.median(com.heldout_r[("a", "ret_v1")]))
    assert sel.loc["pearson_r", "value"] == pytest.approx(r)
    assert sel.loc["ceiled_ev", "value"] == pytest.approx(r**2 / 0.8)
    assert sel.loc["pearson_r", "ceiling"] == pytest.approx(np.sqrt(0.8)) and sel.loc["pearson_r", "error"] > 0
    assert set(df.model) == {"net_committed", "net_a", "net_b", "net_c"}


def write_scores_frame(rows):
    import pandas as pd

    df = pd.DataFrame(rows)
    assert list(df.columns) == COLUMNS
    return df


def test_commit_layers_bad_input(rng):
    feats, Yp, Yh, regions, n_pub = _planted_layers(rng)
    with pytest.raises(ValueError, match="same number of units"):
        commit_layers([("a", feats["a"][:n_pub], feats["a"][n_pub:])], Yp, Yh, regions[:-1])
    with pytest.raises(ValueError, match="X_public has 199, Y_public has 200"):
        commit_layers([("a", feats["a"][:n_pub - 1], feats["a"][n_pub:])], Yp, Yh, regions)


def test_stream_layers_from_store(tmp_path, rng):
    images = [f"img{i:04d}.png" for i in range(30)]
    path = tmp_path / "features.h5"
    toks = {"l1": rng.normal(size=(30, 16, 4)), "l2": rng.normal(size=(30, 4, 6))}
    with FeatureWriter(path, images, attrs={"weights": "random"}, dtype="float32") as w:
        w.add(toks, {"l1": (4, 4), "l2": (2, 2)})
    store = FeatureStore(path)
    X = layer_features(store, "l1", images[5:25], pool_grid=2, chunk=7)
    np.testing.assert_allclose(X, pool_tokens(toks["l1"][5:25], (4, 4), 2), atol=1e-5)
    out = list(stream_layers(store, ["l1", "l2"], images[:20], images[20:], pool_grid=2, pca=5))
    assert [o[0] for o in out] == ["l1", "l2"]
    assert out[0][1].shape == (20, 5) and out[0][2].shape == (10, 5)
    assert out[1][1].shape == (20, 5)  # 2x2x6 = 24 features -> 5 components


def test_subsampling_curves(rng):
    n = 150
    X = rng.normal(size=(n, 5))
    Y = X @ rng.normal(size=(5, 40)) + 1.0 * rng.normal(size=(n, 40))
    st = subsample(X, Y, axis="stimuli", metric="pearson_r", sizes=[12, 60, 150], n_draws=3, regression="linear", train_size=0.5,
                   n_splits=3)
    assert st.values.shape == (3, 3) and np.isnan(st.values[2, 1:]).all()   # the full set is drawn once
    assert np.isfinite(st.values[0]).all() and st.mean[2] > st.mean[0] + 0.05                                       # more stimuli, better fits
    un = subsample(X, Y, axis="units", metric="rsa_spearman", sizes=[5, 40], n_draws=4)
    assert np.isfinite(un.values[0]).all() and un.std[0] > 0 and un.std[1] == 0
    summ = summarize_curves([st, un])
    assert set(summ) == {"pearson_r/stimuli", "rsa_spearman/units"}
    assert summ["pearson_r/stimuli"]["relative"][-1] == pytest.approx(1.0)
    np.testing.assert_array_equal(summ["rsa_spearman/units"]["n"], [4, 1])
    with pytest.raises(ValueError, match=r"sizes must be in \[1, 40\]"):
        subsample(X, Y, sizes=[50])
    with pytest.raises(ValueError, match="metric must be one of"):
        subsample(X, Y, metric="nope")


def test_commit_subject_end_to_end(tmp_path, rng):
    from neuroattn.data.betas import Betas

    images = np.array([f"img{i:04d}.png" for i in range(80)])
    toks = {"early": rng.normal(size=(80, 4, 5)), "late": rng.normal(size=(80, 1, 6))}
    with FeatureWriter(tmp_path / "f.h5", images, attrs={"weights": "random"}, dtype="float32") as w:
        w.add(toks, {"early": (2, 2), "late": (1, 1)})
    store = FeatureStore(tmp_path / "f.h5")
    # ret voxels read the top-left cell of 'early'; cat voxels read 'late'
    sig = np.c_[toks["early"][:, 0, :3] @ rng.normal(size=(3, 6)), toks["late"][:, 0, :3] @ rng.normal(size=(3, 4))]
    test = images[:20]
    trial_image = np.r_[images[20:], np.repeat(test, 3)]
    idx = np.r_[np.arange(20, 80), np.repeat(np.arange(20), 3)]
    trial_betas = sig[idx] + 0.3 * rng.normal(size=(len(idx), 10))
    roi = np.array(["ret_v1"] * 6 + ["cat_face"] * 4)
    betas = Betas(subject="01", trial_betas=trial_betas, trial_image=trial_image, voxel_roi=roi)
    rows, table = commit_subject(betas, store, images[20:], test, layers=["early", "late"], backbone="net",
                                 n_splits=3, pca=None, pool_grid=2)
    assert set(table.loc[table.committed, "layer"] + ":" + table.loc[table.committed, "roi"]) == {
        "early:ret_v1", "late:cat_face"}
    df = write_scores(tmp_path / "s.tsv", rows)
    back = read_scores(tmp_path / "s.tsv")
    assert len(back) == len(df) and set(back.metric) == {"pearson_r", "ceiled_ev", "noise_normalized_r2"}
    r = back[(back.model == "net_committed") & (back.metric == "pearson_r")].set_index("target")
    assert (r["value"] > 0.8).all() and (r["ceiling"] > 0.8).all() and (r["ceiling"] <= 1).all()
    with pytest.raises(KeyError, match="no layer.*'nope'"):
        commit_subject(betas, store, images[20:], test, layers=["nope"])
    with pytest.raises(ValueError, match="0 public and 20 held-out"):
        commit_subject(betas, store, [], test, layers=["early"])


def test_images_noise_ceiling_uses_the_subset_repeats():
    from neuroattn.metrics import images_noise_ceiling, nsd_noise_ceiling

    snr = np.array([0.5, 1.0, np.nan])
    images, reps = np.array(["a", "b", "c"]), np.array([1, 3, 2])
    np.testing.assert_array_equal(images_noise_ceiling(snr, images, reps, ["c", "b"]), nsd_noise_ceiling(snr, [2, 3]))
    np.testing.assert_array_equal(images_noise_ceiling(snr, images, reps, []), nsd_noise_ceiling(snr, reps))
    with pytest.raises(KeyError, match="not in the table"):
        images_noise_ceiling(snr, images, reps, ["z"])


def test_scoring_stages_refuse_unknown_scoring_keys(tmp_path):
    from neuroattn.stages import get_stage

    with pytest.raises(KeyError, match="scoring: unknown key"):
        get_stage("subsampling")(betas="x", features="y", split="z", curves=str(tmp_path / "c.tsv"),
                                 scoring={"nope": 1}, seed=0, backbone="b", subject="01", layer="l")


def _rule_names(smk: str, rule: str) -> set:
    """Named input/output/params entries and wildcards of ``rule`` in a .smk file (textual)."""
    import re

    block = re.search(rf"^rule {rule}:\n(.*?)(?=^\S|\Z)", smk, re.S | re.M).group(1)
    names, section = set(), None
    for line in block.splitlines():
        head = re.match(r"^    (\w+):", line)
        if head:
            section = head.group(1)
            continue
        item = re.match(r"^        (\w+)=", line)
        if item and section in ("input", "output", "params"):
            names.add(item.group(1))
        if section == "output":
            names |= set(re.findall(r"\{\{(\w+)\}\}", line))
    return names


@pytest.mark.parametrize("smk,rule", [("score", "layer_commitment"), ("score", "subsampling"),
                                      ("score", "leaderboard"), ("report", "subject_report"),
                                      ("report", "group_report")])
def test_rule_names_fit_their_stage(smk, rule):
    import inspect
    import re

    from conftest import ROOT
    from neuroattn.stages import get_stage

    names = _rule_names(open(f"{ROOT}/rules/{smk}.smk").read(), rule)
    if rule == "subject_report":  # unpack(subject_report_inputs): the keys that function may return
        common = open(f"{ROOT}/rules/common.smk").read()
        fn = re.search(r"def subject_report_inputs.*?return inputs", common, re.S).group(0)
        names |= set(re.findall(r'inputs\["(\w+)"\]', fn)) | set(re.findall(r'"(\w+)": ', fn))
    assert names, rule
    inspect.signature(get_stage(rule)).bind(**dict.fromkeys(names, "x"))
    script = open(f"{ROOT}/rules/scripts/{rule}.py").read()
    assert f'from_snakemake(snakemake, "{rule}")' in script and len(script.splitlines()) <= 4


@pytest.mark.parametrize("regression", ["pls", "ridge", "linear"])
def test_more_features_than_images_are_projected_on_the_public_span_without_changing_scores(regression):
    """PCA at or above the public rank keeps every component: more features than images become
    coordinates in the public rows' span, and cross-validated and held-out scores stay those of
    the raw features (the regressions only see inner products of centred rows)."""
    from neuroattn.metrics import linear_predictivity, reduce_features
    from neuroattn.metrics.predictivity import fit_predict

    rng = np.random.default_rng(0)
    n_pub, n_held, p = 60, 20, 700
    X = rng.normal(size=(n_pub + n_held, p)) + 3.0  # off-centre: the projection must centre first
    Y = X[:, :40] @ rng.normal(size=(40, 12)) + rng.normal(size=(len(X), 12))
    Xp, Xh, Yp = X[:n_pub], X[n_pub:], Y[:n_pub]
    Rp, Rh = reduce_features(Xp, Xh, 256)
    assert Rp.shape == (n_pub, n_pub - 1) and Rh.shape == (n_held, n_pub - 1)  # centred rank n - 1
    kw = dict(regression=regression, n_splits=5, n_components=10)
    raw = linear_predictivity(Xp, Yp, **kw)
    red = linear_predictivity(Rp, Yp, **kw)
    np.testing.assert_allclose(red.raw, raw.raw, atol=1e-8)
    held_raw = fit_predict(Xp, Yp, Xh, regression=regression, n_components=10)
    held_red = fit_predict(Rp, Yp, Rh, regression=regression, n_components=10)
    np.testing.assert_allclose(held_red, held_raw, atol=1e-8 * np.abs(held_raw).max())
    # the comparison can fail: dropping the smaller half of the components changes the scores
    cut = linear_predictivity(Rp[:, : (n_pub - 1) // 2], Yp, **kw)
    assert np.abs(cut.raw - raw.raw).max() > 1e-3
    # fewer features than images and a PCA that cannot reduce: the features come back unchanged
    out_p, out_h = reduce_features(X[:n_pub, :30], X[n_pub:, :30], 256)
    assert np.array_equal(out_p, X[:n_pub, :30]) and np.array_equal(out_h, X[n_pub:, :30])
