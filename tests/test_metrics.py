"""Metrics against values computed independently from their definitions (scipy / loops)."""
import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import cohen_kappa_score

from neuroattn.metrics import (Score, accuracy, ceiled_explained_variance, cohen_kappa, internal_consistency,
                               ncsnr, noise_normalized_r2, nsd_noise_ceiling, pearson_r, topk_retrieval)


# --- pearson_r -----------------------------------------------------------------------------------
def test_pearson_hand_computed_3x2():
    y = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 1.0]])
    p = np.array([[1.0, 1.0], [3.0, 2.0], [2.0, 3.0]])
    # column 0: x=(1,2,3), y=(1,3,2): dev (-1,0,1),(-1,1,0): sum=1, norms sqrt2*sqrt2 -> 0.5
    # column 1: x=(2,4,1) mean 7/3, y=(1,2,3): dev x (-1/3,5/3,-4/3), y (-1,0,1): num=-1, |x|^2=42/9, |y|^2=2
    expected = [0.5, -1.0 / np.sqrt(42 / 9 * 2)]
    np.testing.assert_allclose(pearson_r(y, p), expected, atol=1e-12)


def test_pearson_matches_scipy_and_nan_safe(rng):
    a, b = rng.normal(size=(20, 5)), rng.normal(size=(20, 5))
    ref = [stats.pearsonr(a[:, j], b[:, j])[0] for j in range(5)]
    np.testing.assert_allclose(pearson_r(a, b), ref, atol=1e-12)
    a[:, 1] = 3.0
    a[4, 2] = np.nan
    with np.errstate(all="raise"):
        r = pearson_r(a, b)
    assert np.isnan(r[1]) and np.isnan(r[2]) and np.isfinite(r[[0, 3, 4]]).all()


def test_pearson_mismatched_stimuli_named():
    with pytest.raises(ValueError, match="y_true has 4.*y_pred has 5"):
        pearson_r(np.zeros((4, 2)), np.zeros((5, 2)))


# --- ceilings ------------------------------------------------------------------------------------
def _simulate_reps(rng, n_reps, n_stim, n_units, signal_sd, noise_sd):
    signal = rng.normal(0, signal_sd, size=(1, n_stim, n_units))
    return signal + rng.normal(0, noise_sd, size=(n_reps, n_stim, n_units))


def test_internal_consistency_recovers_known_reliability(rng):
    # reliability of the 4-repetition average: s^2 / (s^2 + n^2 / 4) = 1 / (1 + 1/4 * 4) = 0.5
    R = _simulate_reps(rng, 4, 3000, 20, signal_sd=1.0, noise_sd=2.0)
    sc = internal_consistency(R)
    assert isinstance(sc, Score)
    assert sc.value == pytest.approx(0.5, abs=0.03)
    assert sc.raw.shape == (20,) and sc.meta["split_unit_r"].shape == (10, 20)
    assert sc.meta["n_dropped"] == 0 and sc.error > 0


def test_internal_consistency_matches_loop(rng):
    R = rng.normal(size=(4, 12, 3)) + rng.normal(size=(1, 12, 3))
    sc = internal_consistency(R, n_splits=3, random_state=7)
    perm_rng = np.random.default_rng(7)
    vals = []
    for _ in range(3):
        perm = perm_rng.permutation(4)
        a, b = R[perm[:2]].mean(0), R[perm[2:]].mean(0)
        rs = [stats.pearsonr(a[:, j], b[:, j])[0] for j in range(3)]
        vals.append(np.median([2 * r / (1 + r) for r in rs]))
    assert sc.value == pytest.approx(np.mean(vals), abs=1e-12)
    assert sc.error == pytest.approx(np.std(vals) / np.sqrt(3), abs=1e-12)


def test_internal_consistency_drops_bad_units_and_needs_two_reps(rng):
    R = rng.normal(size=(3, 10, 4))
    R[:, :, 1] = 2.0
    R[0, 3, 2] = np.nan
    sc = internal_consistency(R)
    assert sc.meta["n_dropped"] == 2 and sc.meta["n_units"] == 2
    assert np.isnan(sc.raw[[1, 2]]).all() and np.isfinite(sc.raw[[0, 3]]).all()
    with pytest.raises(ValueError, match="at least 2 repetitions"):
        internal_consistency(R[:1])
    with pytest.raises(ValueError, match="at least 2 repetitions"):
        ncsnr(R[:1])


def test_ncsnr_and_nsd_ceiling_known_snr(rng):
    R = _simulate_reps(rng, 3, 5000, 4, signal_sd=1.0, noise_sd=2.0)
    s = ncsnr(R)
    np.testing.assert_allclose(s, 0.5, atol=0.03)
    # 3 repeats: 0.25 / (0.25 + 1/3)
    nc = nsd_noise_ceiling(s, [3] * 10)
    np.testing.assert_allclose(nc, 0.25 / (0.25 + 1 / 3), atol=0.03)
    # Algonauts formula with A, B, C images seen 3, 2, 1 times
    A, B, C = 5, 3, 2
    reps = [3] * A + [2] * B + [1] * C
    expected = 0.25 / (0.25 + (A / 3 + B / 2 + C / 1) / (A + B + C))
    assert nsd_noise_ceiling(np.array([0.5]), reps)[0] == pytest.approx(expected, abs=1e-12)


def test_ncsnr_zscored_matches_nsd_formula(rng):
    R = rng.normal(size=(3, 50, 2)) + rng.normal(size=(1, 50, 2))
    flat = R.reshape(-1, 2)
    R = (R - flat.mean(0)) / flat.std(0, ddof=1)
    noise_sd = np.sqrt(np.mean(np.var(R, axis=0, ddof=1), axis=0))
    expected = np.sqrt(np.maximum(0, 1 - noise_sd**2)) / noise_sd
    np.testing.assert_allclose(ncsnr(R), expected, atol=1e-12)


def test_noise_normalized_r2_and_ceiled_ev():
    r = np.array([0.5, -0.2, 0.9, 0.3])
    nc = np.array([0.5, 0.5, 0.5, 0.0])
    out = noise_normalized_r2(r, nc)
    np.testing.assert_allclose(out[:3], [0.5, 0.0, 1.0])
    assert np.isnan(out[3])
    assert ceiled_explained_variance(0.4, 0.64) == pytest.approx(0.25)


# --- decoding ------------------------------------------------------------------------------------
def test_topk_retrieval_hand_computed():
    cand = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    pred = np.array([[1.0, 0.1], [1.0, 0.1], [-1.0, 0.0]])
    # cosine with cand: row0 -> nearest 0, then 2, then 1; row2 -> nearest 1 (0), then 2, then 0
    targets = np.array([0, 2, 0])
    s1 = topk_retrieval(pred, cand, targets, k=1)
    np.testing.assert_array_equal(s1.raw, [0, 1, 2])
    assert s1.value == pytest.approx(1 / 3)
    assert topk_retrieval(pred, cand, targets, k=2).value == pytest.approx(2 / 3)
    assert s1.meta["chance"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="row indices"):
        topk_retrieval(pred, cand, np.array([0, 1, 3]))
    with pytest.raises(ValueError, match="mismatched stimulus counts"):
        topk_retrieval(pred, cand, np.array([0, 1]))


def test_accuracy_and_kappa():
    y = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    p = np.array([0, 1, 1, 1, 2, 0, 2, 0])
    acc = accuracy(y, p)
    assert acc.value == pytest.approx(6 / 8)
    assert acc.error == pytest.approx(np.sqrt(0.75 * 0.25 / 8))
    k = cohen_kappa(y, p)
    # hand: p_o = 6/8; marginals true (3,2,3), pred (3,3,2): p_e = (9+6+6)/64
    pe = 21 / 64
    assert k.value == pytest.approx((0.75 - pe) / (1 - pe))
    assert k.value == pytest.approx(cohen_kappa_score(y, p))
    with pytest.raises(ValueError, match="mismatched"):
        accuracy(y, p[:-1])
