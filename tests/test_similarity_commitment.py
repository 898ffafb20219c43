"""SSM / CKA / RSA per ROI x layer: ceilings, commitment by SSM, subsampling, the similarity stage."""
import numpy as np
import pandas as pd
import pytest

from neuroattn.features import FeatureStore, FeatureWriter
from neuroattn.leaderboard import COLUMNS, write_scores
from neuroattn.metrics.similarity import rsm, split_half_ceiling, rsm_similarity, ssm
from neuroattn.metrics.similarity_commitment import (committed_layers, flattening_size, hierarchy_ordered,
                                                     similarity_table, ssm_subsampling)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("kind", ["pearson", "cosine", "zscore"])
def test_ssm_self_is_one_and_shuffled_is_zero(rng, kind):
    X = rng.normal(size=(80, 30))
    assert ssm(X, X, kind=kind).value == pytest.approx(1.0)
    assert ssm(X, 3.0 * X + 2.0, kind=kind).value == pytest.approx(1.0)  # scale and offset
    shuffled = [ssm(X, X[rng.permutation(80)], kind=kind).value for _ in range(20)]
    assert abs(np.mean(shuffled)) < 0.02 and max(abs(v) for v in shuffled) < 0.1


def test_cosine_rsm_is_rotation_invariant(rng):
    X = rng.normal(size=(50, 20))
    Q = np.linalg.qr(rng.normal(size=(20, 20)))[0]
    np.testing.assert_allclose(rsm(X @ Q, "cosine"), rsm(X, "cosine"), atol=1e-10)
    assert not np.allclose(rsm(X @ Q, "pearson"), rsm(X, "pearson"), atol=1e-3)


def test_zscore_rsm_weighs_every_unit_alike(rng):
    X = rng.normal(size=(50, 20))
    Xs = X * np.r_[100.0, np.ones(19)]  # one loud unit
    np.testing.assert_allclose(rsm(Xs, "zscore"), rsm(X, "zscore"), atol=1e-10)
    assert rsm_similarity(Xs, X, "cosine") < 0.5  # the loud unit dominates a cosine RSM


def test_rsm_kinds_differ_on_a_shared_mean_response(rng):
    # a population whose units all go up together for some stimuli: Pearson RSMs (pattern centred over
    # units) discard that, the cosine of unit-centred patterns keeps it
    presence = rng.random(60) < 0.5
    Y = presence[:, None] * 1.0 + 0.3 * rng.normal(size=(60, 40))
    X = presence[:, None].astype(float)
    X = np.c_[X, 0.3 * rng.normal(size=(60, 1))]
    assert rsm_similarity(X, Y, "cosine") > 0.5 and rsm_similarity(X, Y, "zscore") > 0.3
    assert abs(rsm_similarity(X, Y, "pearson")) < 0.2
    with pytest.raises(ValueError, match="rsm kind must be one of"):
        rsm(X, "spearman")


def test_split_half_ceiling(rng):
    S = rng.normal(size=(50, 20))
    clean = np.stack([S, S, S, S])
    c, e, per = split_half_ceiling(clean, lambda a, b: rsm_similarity(a, b), n_splits=4)
    assert c == pytest.approx(1.0) and len(per) == 4
    noisy = [split_half_ceiling(S[None] + s * rng.normal(size=(4, 50, 20)), lambda a, b: rsm_similarity(a, b))[0]
             for s in (0.5, 2.0)]
    assert 1.0 > noisy[0] > noisy[1] > 0.0
    pure = split_half_ceiling(rng.normal(size=(4, 50, 20)), lambda a, b: rsm_similarity(a, b))[0]
    assert pure < 0.25
    # the ceiling bounds a perfect model: SSM(true signal, noisy data) is close to it
    R = S[None] + 1.0 * rng.normal(size=(4, 50, 20))
    sc = ssm(S, R.mean(0), Y_reps=R)
    assert sc.value == pytest.approx(sc.ceiling, abs=0.08)


def _planted(rng, n=60, n_layers=4, noise=0.5, reps=3):
    """Layers l0..l3 hold independent latent factors; ROI 'ret_a' reads layer 0, 'ret_b' layer 1,
    'cat_a' layer 2, 'cat_b' layer 3 (through random mixing), with trial noise."""
    Z = [rng.normal(size=(n, 8)) for _ in range(n_layers)]
    layers = [(f"l{k}", np.c_[Z[k] @ rng.normal(size=(8, 30)), 0.3 * rng.normal(size=(n, 10))]) for k in range(n_layers)]
    parts, regions = [], []
    for k, name in enumerate(["ret_a", "ret_b", "cat_a", "cat_b"]):
        parts.append(Z[k] @ rng.normal(size=(8, 15)))
        regions += [name] * 15
    S = np.concatenate(parts, axis=1)
    R = S[None] + noise * rng.normal(size=(reps, n, S.shape[1]))
    return layers, R, np.array(regions)


@pytest.mark.parametrize("kind", ["pearson", "zscore"])
def test_ssm_commitment_recovers_planted_layers(rng, kind):
    layers, R, regions = _planted(rng)
    t = similarity_table(layers, R, regions, n_splits=3, rsm_kind=kind)
    assert set(t.metric) == {"rsa_spearman", "cka", "ssm"} and len(t) == 4 * 4 * 3
    com = committed_layers(t, "ssm")
    assert dict(zip(com.roi, com.layer)) == {"ret_a": "l0", "ret_b": "l1", "cat_a": "l2", "cat_b": "l3"}
    assert hierarchy_ordered(com)
    assert (t.ceiling > 0.5).all() and (t.ceiling <= 1).all()
    for met in ("cka", "rsa_spearman"):  # the other metrics find the same layers here
        c = committed_layers(t, met)
        assert list(c.sort_values("roi").layer) == list(com.sort_values("roi").layer)
    # the check can fail: responses with shuffled image labels lose the ordering
    planted, fails, recovered = dict(zip(com.roi, com.layer)), 0, 0
    for seed in range(5):
        perm = np.random.default_rng(seed).permutation(R.shape[1])
        c = committed_layers(similarity_table(layers, R[:, perm], regions, metrics=["ssm"], n_splits=2,
                                              rsm_kind=kind), "ssm")
        fails += not hierarchy_ordered(c)
        recovered += dict(zip(c.roi, c.layer)) == planted
        assert (c.value < 0.2).all()
    assert recovered == 0 and fails >= 2  # (the ordering also holds by chance in some draws)


def test_hierarchy_ordered_ties_and_missing():
    com = pd.DataFrame({"roi": ["ret_V1", "cat_x"], "depth": [1, 1]})
    assert not hierarchy_ordered(com)  # a tie is not earlier
    assert hierarchy_ordered(com.assign(depth=[0, 1]))
    assert not hierarchy_ordered(com.iloc[:1])


def test_similarity_table_errors(rng):
    layers, R, regions = _planted(rng)
    with pytest.raises(ValueError, match="one entry per unit"):
        similarity_table(layers, R, regions[:-1])
    with pytest.raises(ValueError, match="similarity metric must be one of"):
        similarity_table(layers, R, regions, metrics=["ssm", "bogus"])
    with pytest.raises(ValueError, match="layer l0: 59 stimuli"):
        similarity_table([("l0", layers[0][1][:-1])], R, regions)


def test_ssm_subsampling_and_flattening(rng):
    S = rng.normal(size=(80, 6))
    X = S @ rng.normal(size=(6, 20))
    Y = S @ rng.normal(size=(6, 60)) + 1.5 * rng.normal(size=(80, 60))
    cur = ssm_subsampling(X, Y, n_draws=3, random_state=0)
    assert set(cur.axis) == {"units", "stimuli"} and (cur.metric == "ssm").all()
    u = cur[cur.axis == "units"]
    assert u["size"].iloc[0] == 10 and u["size"].iloc[-1] == 60 and u.n_draws.iloc[0] == 3 and u.n_draws.iloc[-1] == 1
    assert u["mean"].iloc[-1] > u["mean"].iloc[0]  # more voxels, less noisy RSMs
    assert u.relative.iloc[-1] == pytest.approx(1.0)
    assert flattening_size([10, 20, 40], [0.5, 0.96, 1.0]) == 20
    assert flattening_size([10, 20, 40], [0.5, 0.9, 1.0]) == 40
    assert np.isnan(flattening_size([10, 20], [0.1, -0.1]))
    assert flattening_size([10, 20, 40, 80], [1.2, 0.5, 0.97, 1.0]) == 40  # a lucky small subset does not count


def test_similarity_stage_writes_rows_with_ceilings(tmp_path, rng):
    from neuroattn.data.betas import Betas
    from neuroattn.stages.scoring import similarity

    images = np.array([f"img{i:04d}.png" for i in range(70)])
    toks = {"early": rng.normal(size=(70, 4, 6)), "late": rng.normal(size=(70, 1, 8))}
    with FeatureWriter(tmp_path / "f.h5", images, attrs={"weights": "random"}, dtype="float32") as w:
        w.add(toks, {"early": (2, 2), "late": (1, 1)})
    sig = np.c_[toks["early"].reshape(70, -1) @ rng.normal(size=(24, 12)), toks["late"][:, 0] @ rng.normal(size=(8, 10))]
    test = images[:40]
    trial_image = np.r_[images[40:], np.repeat(test, 3)]
    idx = np.r_[np.arange(40, 70), np.repeat(np.arange(40), 3)]
    betas = Betas(subject="01", trial_betas=sig[idx] + 0.5 * rng.normal(size=(len(idx), 22)), trial_image=trial_image,
                  voxel_roi=np.array(["ret_v1"] * 12 + ["cat_face"] * 10))
    betas.write(tmp_path / "b.h5")
    pd.DataFrame({"image": images, "split": ["test"] * 40 + ["train"] * 30}).to_csv(tmp_path / "split.tsv", sep="\t",
                                                                                 index=False)
    out = {k: str(tmp_path / f"{k}.tsv") for k in ("scores", "layers", "curves")}
    similarity(betas=str(tmp_path / "b.h5"), features=str(tmp_path / "f.h5"), split=str(tmp_path / "split.tsv"),
               scoring={"similarity": {"n_splits": 3}}, seed=0, backbone_layers=["early", "late"], backbone="net",
               subject="01", **out)
    rows = pd.read_csv(out["scores"], sep="\t", dtype={"subject": str})
    assert list(rows.columns) == COLUMNS
    assert set(rows.metric) == {"rsa_spearman", "cka", "ssm"} and set(rows.model) == {"net_early", "net_late"}
    assert len(rows) == 2 * 2 * 3 and (rows.n == 40).all() and (rows.modality == "fmri").all()
    assert rows.ceiling.between(0.3, 1.0).all()
    # every layer row of one ROI and metric carries the same ceiling (it is the data's)
    assert (rows.groupby(["target", "metric"]).ceiling.nunique() == 1).all()
    table = pd.read_csv(out["layers"], sep="\t")
    com = committed_layers(table, "ssm")
    assert dict(zip(com.roi, com.layer)) == {"ret_v1": "early", "cat_face": "late"}
    cur = pd.read_csv(out["curves"], sep="\t")
    assert set(cur.roi) == {"ret_v1", "cat_face"} and set(cur.axis) == {"units", "stimuli"}
    assert cur.loc[cur.roi == "ret_v1", "layer"].eq("early").all() and cur.flattens_at.notna().any()
    with pytest.raises(KeyError, match="scoring.similarity: unknown key"):
        similarity(betas=str(tmp_path / "b.h5"), features=str(tmp_path / "f.h5"), split=str(tmp_path / "split.tsv"),
                   scoring={"similarity": {"rsm_kind": "cosine"}}, seed=0, backbone_layers=[], backbone="net",
                   subject="01", **out)


def test_win_fraction_is_firm_for_planted_layers_not_for_shuffled(rng):
    layers, R, regions = _planted(rng)
    t = similarity_table(layers, R, regions, metrics=["ssm"], n_splits=2, n_stability=10)
    com = committed_layers(t, "ssm")
    assert (com.win_fraction >= 0.9).all()
    np.testing.assert_allclose(t.groupby("roi").win_fraction.sum(), 1.0)
    # shuffled image labels: no layer wins firmly
    perm = np.random.default_rng(3).permutation(R.shape[1])
    shuf = committed_layers(similarity_table(layers, R[:, perm], regions, metrics=["ssm"], n_splits=2,
                                             n_stability=10), "ssm")
    assert shuf.win_fraction.mean() < 0.8
    assert np.isnan(similarity_table(layers, R, regions, metrics=["ssm"], n_splits=2, n_stability=0).win_fraction).all()
