"""linear_predictivity, exact PLS, RSA, CKA and SSM against independent computations."""
import itertools
import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.cross_decomposition import PLSRegression
from sklearn.linear_model import Ridge
from sklearn.model_selection import ShuffleSplit

from neuroattn.metrics import cka, linear_predictivity, rsa, ssm
from neuroattn.metrics.pls import ExactPLSRegression
from neuroattn.metrics.similarity import rdm


def _planted(rng, n=120, p=20, m=8, noise=1.0):
    X = rng.normal(size=(n, p))
    Y = X @ rng.normal(size=(p, m)) / np.sqrt(p) + noise * rng.normal(size=(n, m))
    return X, Y


# --- PLS -----------------------------------------------------------------------------------------
def test_exact_pls_matches_converged_sklearn(rng):
    X, Y = _planted(rng, n=60, p=15, m=6)
    Xt = rng.normal(size=(10, 15))
    a = ExactPLSRegression(4).fit(X, Y).predict(Xt)
    b = PLSRegression(4, scale=False, max_iter=5000, tol=1e-15).fit(X, Y).predict(Xt)
    np.testing.assert_allclose(a, b, atol=1e-6)
    # single target: NIPALS is exact in one step
    np.testing.assert_allclose(ExactPLSRegression(3).fit(X, Y[:, 0]).predict(Xt)[:, 0],
                               PLSRegression(3, scale=False).fit(X, Y[:, 0]).predict(Xt).ravel(), atol=1e-10)


def test_exact_pls_caps_components_with_warning(rng):
    X, Y = _planted(rng, n=40, p=5, m=3)
    with pytest.warns(UserWarning, match="capped at 5"):
        est = ExactPLSRegression(25).fit(X, Y)
    assert est.n_components_ == 5
    # all components = ordinary least squares
    ols = np.linalg.lstsq(np.c_[X, np.ones(40)], Y, rcond=None)[0]
    np.testing.assert_allclose(est.predict(X), np.c_[X, np.ones(40)] @ ols, atol=1e-8)


# --- linear_predictivity -------------------------------------------------------------------------
def test_predictivity_matches_independent_loop(rng):
    X, Y = _planted(rng, n=80, p=12, m=5)
    sc = linear_predictivity(X, Y, regression="pls", n_components=3)
    per_split = []
    for tr, te in ShuffleSplit(n_splits=10, train_size=0.9, random_state=1).split(X):
        pred = PLSRegression(3, scale=False, max_iter=5000, tol=1e-15).fit(X[tr], Y[tr]).predict(X[te])
        per_split.append(np.median([stats.pearsonr(Y[te, j], pred[:, j])[0] for j in range(5)]))
    assert sc.value == pytest.approx(np.mean(per_split), abs=1e-6)
    assert sc.error == pytest.approx(np.std(per_split) / np.sqrt(10), abs=1e-6)
    assert sc.raw.shape == (5,) and sc.meta["n_dropped"] == 0
    np.testing.assert_allclose(sc.raw, sc.meta["split_unit_r"].mean(axis=0))


def test_predictivity_ridge_and_recovery(rng):
    X, Y = _planted(rng, n=300, p=10, m=4, noise=0.5)
    sc = linear_predictivity(X, Y, regression="ridge")
    tr, te = next(ShuffleSplit(n_splits=10, train_size=0.9, random_state=1).split(X))
    pred = Ridge(alpha=1.0).fit(X[tr], Y[tr]).predict(X[te])
    np.testing.assert_allclose(sc.meta["split_unit_r"][0], [stats.pearsonr(Y[te, j], pred[:, j])[0] for j in range(4)], atol=1e-10)
    # planted signal var 1, noise var 0.25 -> true r = sqrt(1 / 1.25)
    assert sc.value == pytest.approx(np.sqrt(1 / 1.25), abs=0.05)
    for reg in ("pls", "ridgecv", "linear"):
        assert linear_predictivity(X, Y, regression=reg).value == pytest.approx(np.sqrt(1 / 1.25), abs=0.05)
    shuffled = linear_predictivity(X, Y[rng.permutation(300)], regression="ridge")
    assert abs(shuffled.value) < 0.15


def test_predictivity_stratified_splits(rng):
    X, Y = _planted(rng, n=60, p=6, m=3)
    labels = np.repeat([0, 1, 2], 20)
    sc = linear_predictivity(X, Y, regression="linear", stratify=labels)
    assert np.isfinite(sc.value)
    with pytest.raises(ValueError, match="mismatched stimulus counts"):
        linear_predictivity(X, Y, stratify=labels[:-1])


def test_predictivity_bad_input(rng):
    X, Y = _planted(rng, n=50, p=6, m=5)
    with pytest.raises(ValueError, match="X has 50, Y has 49"):
        linear_predictivity(X, Y[:49])
    Y[:, 1] = 1.0
    Y[7, 3] = np.nan
    sc = linear_predictivity(X, Y, regression="ridge")
    assert sc.meta["n_dropped"] == 2 and sc.meta["n_units"] == 3
    assert np.isnan(sc.raw[[1, 3]]).all() and np.isfinite(sc.raw[[0, 2, 4]]).all()
    with pytest.raises(ValueError, match="larger than possible"):
        linear_predictivity(X[:5], Y[:5], regression="linear", train_size=0.4, n_splits=11)
    with pytest.raises(ValueError, match="at least 2 train and 3 test"):
        linear_predictivity(X[:10], Y[:10])
    with pytest.raises(ValueError, match="regression must be one of"):
        linear_predictivity(X, Y, regression="lasso")
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="X .model features. has 1 NaN"):
        linear_predictivity(X, Y)


# --- RSA -----------------------------------------------------------------------------------------
def test_rsa_matches_loops(rng):
    X, Y = rng.normal(size=(7, 5)), rng.normal(size=(7, 9))
    dx, dy = [], []
    for i, j in itertools.combinations(range(7), 2):
        dx.append(1 - stats.pearsonr(X[i], X[j])[0])
        dy.append(1 - stats.pearsonr(Y[i], Y[j])[0])
    assert rsa(X, Y).value == pytest.approx(stats.spearmanr(dx, dy)[0], abs=1e-12)


def test_rsa_rdm_hand_computed():
    X = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [1.0, 3.0, 2.0]])
    # r(0,1) = -1, r(0,2) = 0.5, r(1,2) = -0.5
    np.testing.assert_allclose(rdm(X), [[0, 2, 0.5], [2, 0, 1.5], [0.5, 1.5, 0]], atol=1e-12)


def test_rsa_invariances(rng):
    X, Y = rng.normal(size=(30, 6)), rng.normal(size=(30, 8)) + rng.normal(size=(30, 1))
    base = rsa(X, Y).value
    assert rsa(3.7 * X, Y).value == pytest.approx(base, abs=1e-12)
    assert rsa(X[:, rng.permutation(6)], Y).value == pytest.approx(base, abs=1e-12)
    # rotation of unit space that fixes the all-ones direction
    ones = np.ones((6, 1)) / np.sqrt(6)
    B = np.linalg.qr(np.c_[ones, rng.normal(size=(6, 5))])[0]
    R5 = np.linalg.qr(rng.normal(size=(5, 5)))[0]
    Rfix = B @ np.block([[np.eye(1), np.zeros((1, 5))], [np.zeros((5, 1)), R5]]) @ B.T
    assert rsa(X @ Rfix, Y).value == pytest.approx(base, abs=1e-10)
    assert rsa(X + rng.normal(size=(30, 1)), Y).value == pytest.approx(base, abs=1e-10)


# --- CKA -----------------------------------------------------------------------------------------
def _hsic_u_bruteforce(K, L):
    n = K.shape[0]
    tot = 0.0
    for i, j, q, r in itertools.permutations(range(n), 4):
        tot += K[i, j] * L[i, j] + K[i, j] * L[q, r] - 2 * K[i, j] * L[i, q]
    return tot / (n * (n - 1) * (n - 2) * (n - 3))


def test_cka_unbiased_matches_u_statistic(rng):
    X, Y = rng.normal(size=(7, 3)), rng.normal(size=(7, 4))
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    K, L = Xc @ Xc.T, Yc @ Yc.T
    ref = _hsic_u_bruteforce(K, L) / np.sqrt(_hsic_u_bruteforce(K, K) * _hsic_u_bruteforce(L, L))
    assert cka(X, Y).value == pytest.approx(ref, abs=1e-10)


def test_cka_biased_feature_space_formula(rng):
    X, Y = rng.normal(size=(25, 4)), rng.normal(size=(25, 6))
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    ref = np.linalg.norm(Yc.T @ Xc) ** 2 / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc))
    assert cka(X, Y, unbiased=False).value == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("unbiased", [True, False])
def test_cka_invariances(rng, unbiased):
    X = rng.normal(size=(40, 5))
    Y = X @ rng.normal(size=(5, 7)) + rng.normal(size=(40, 7))
    base = cka(X, Y, unbiased=unbiased).value
    Q = np.linalg.qr(rng.normal(size=(5, 5)))[0]
    assert cka(2.5 * X @ Q + 4.0, Y, unbiased=unbiased).value == pytest.approx(base, abs=1e-10)
    assert cka(X, X, unbiased=unbiased).value == pytest.approx(1.0, abs=1e-12)
    A = np.diag([10.0, 1, 1, 1, 0.1]) @ rng.normal(size=(5, 5))
    assert abs(cka(X @ A, Y, unbiased=unbiased).value - base) > 1e-3


# --- SSM -----------------------------------------------------------------------------------------
def test_ssm_value_and_ceiling(rng):
    signal = rng.normal(size=(60, 30))
    reps = signal[None] + 2.0 * rng.normal(size=(4, 60, 30))
    Y = reps.mean(0)
    sc = ssm(signal, Y, reps)
    assert sc.value == pytest.approx(rsa(signal, Y).value, abs=1e-12)
    # the noise-free model should reach about the ceiling
    assert 0.2 < sc.ceiling < 0.9 and sc.value == pytest.approx(sc.ceiling, abs=0.08)
    noisier = ssm(signal, Y, reps[:2])
    assert noisier.ceiling < sc.ceiling
    assert np.isnan(ssm(signal, Y).ceiling)
    with pytest.raises(ValueError, match="at least 2 repetitions"):
        ssm(signal, Y, reps[:1])
    with pytest.raises(ValueError, match="Y has 60, Y_reps has 59"):
        ssm(signal, Y, reps[:, :59])


def test_similarity_bad_input(rng):
    X, Y = rng.normal(size=(10, 3)), rng.normal(size=(11, 3))
    for f in (rsa, cka, ssm):
        with pytest.raises(ValueError, match="X has 10, Y has 11"):
            f(X, Y)
    Y = rng.normal(size=(10, 4))
    Y[:, 0] = 0.0
    Y[2, 1] = np.nan
    sc = rsa(X, Y)
    assert sc.meta["n_dropped_y"] == 2 and sc.meta["n_units_y"] == 2
    with pytest.raises(ValueError, match="at least 4 stimuli"):
        cka(X[:3], Y[:3])


def test_predictivity_pls_cap_warns_once(rng):
    X, Y = _planted(rng, n=60, p=4, m=3)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        sc = linear_predictivity(X, Y)
    assert len([x for x in w if "capped at 4" in str(x.message)]) == 1
    assert sc.meta["n_components"] == 4


@pytest.mark.parametrize("p", [30, 150])   # Gram in feature space (p <= m) and in target space
def test_cv_pls_predictions_equal_per_split_fits(rng, p):
    from neuroattn.metrics.pls import cv_pls_predictions
    from neuroattn.metrics.predictivity import shuffle_splits

    n, m = 120, 60
    L = rng.normal(size=(n, 10))
    # relu-like, rank-deficient features with large offsets and scales; targets with an offset
    X = np.maximum(L @ rng.normal(size=(10, p)), 0) * np.logspace(-2, 2, p) + 500.0
    Y = L[:, :4] @ rng.normal(size=(4, m)) + rng.normal(size=(n, m)) + 40.0
    splits = shuffle_splits(n, 3)
    for (te, pred), (tr, te2) in zip(cv_pls_predictions(X, Y, splits, 8), splits):
        np.testing.assert_array_equal(te, te2)
        np.testing.assert_allclose(pred, ExactPLSRegression(8).fit(X[tr], Y[tr]).predict(X[te]), atol=1e-8)
