"""The fast PLS paths (Lanczos solver, feature-space cross-validation) against independent fits."""
import warnings

import numpy as np
import pytest
from scipy.linalg import eigh
from sklearn.cross_decomposition import PLSRegression

from neuroattn.metrics import linear_predictivity, pearson_r
from neuroattn.metrics.pls import ExactPLSRegression, _lanczos_top, cv_pls_predictions
from neuroattn.metrics.predictivity import shuffle_splits


def _data(rng, n, p, m, rank=6, noise=1.0):
    X = rng.normal(size=(n, p))
    Y = X @ rng.normal(size=(p, rank)) / np.sqrt(p) @ rng.normal(size=(rank, m)) + noise * rng.normal(size=(n, m))
    return X, Y + 3.0


def test_lanczos_top_matches_dense_eigh(rng):
    A = rng.normal(size=(300, 120))
    G = A @ A.T                       # rank 120 < 300: exercises the exhausted-Krylov exit too
    v = _lanczos_top(G, rng.normal(size=300))
    ref = eigh(G, subset_by_index=[299, 299])[1][:, 0]
    assert abs(abs(v @ ref) - 1) < 1e-10
    # a matrix whose top eigenvalue is planted: recovered exactly, whatever the start
    Q = np.linalg.qr(rng.normal(size=(200, 200)))[0]
    lam = np.r_[10.0, np.linspace(5, 0.1, 199)]
    v = _lanczos_top((Q * lam) @ Q.T, rng.normal(size=200))
    assert abs(abs(v @ Q[:, 0]) - 1) < 1e-10


def test_lanczos_top_fails_on_wrong_vector(rng):
    # the check above can fail: the second eigenvector is not accepted as the top one
    Q = np.linalg.qr(rng.normal(size=(100, 100)))[0]
    lam = np.r_[10.0, 9.0, np.linspace(5, 0.1, 98)]
    v = _lanczos_top((Q * lam) @ Q.T, Q[:, 1] + 1e-3 * Q[:, 0])
    assert abs(v @ Q[:, 0]) > 1 - 1e-10 and abs(v @ Q[:, 1]) < 1e-5


def test_exact_pls_lanczos_path_matches_converged_sklearn(rng):
    # 80 features > 64: the Lanczos path; many targets (PLS2), 6 components
    X, Y = _data(rng, n=300, p=80, m=150)
    Xt = rng.normal(size=(20, 80))
    a = ExactPLSRegression(6).fit(X, Y).predict(Xt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = PLSRegression(6, scale=False, max_iter=20000, tol=1e-20).fit(X, Y).predict(Xt)
    np.testing.assert_allclose(a, b, atol=1e-7 * np.abs(b).max())


@pytest.mark.parametrize("p,m", [(90, 200), (120, 70)])   # feature-space path (p <= m) and target-space path
def test_cv_predictions_equal_per_split_sklearn_fits(rng, p, m):
    X, Y = _data(rng, n=200, p=p, m=m)
    X = np.maximum(X, 0) * np.logspace(-1, 1, p) + 50.0      # offsets and scales as in real features
    splits = shuffle_splits(200, 4)
    for (te, pred), (tr, te2) in zip(cv_pls_predictions(X, Y, splits, 10), splits):
        np.testing.assert_array_equal(te, te2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = PLSRegression(10, scale=False, max_iter=20000, tol=1e-20).fit(X[tr], Y[tr]).predict(X[te])
        np.testing.assert_allclose(pred, ref, atol=1e-7 * np.abs(ref).max())


def test_cv_predictions_detect_wrong_split(rng):
    # predictions of another split's fit differ: the comparison above can fail
    X, Y = _data(rng, n=200, p=90, m=200)
    splits = shuffle_splits(200, 2)
    (te0, pred0), _ = list(cv_pls_predictions(X, Y, splits, 10))
    other = ExactPLSRegression(10).fit(X[splits[1][0]], Y[splits[1][0]]).predict(X[te0])
    assert np.abs(pred0 - other).max() > 1e-3


def test_linear_predictivity_recovers_planted_signal_and_null(rng):
    X, Y = _data(rng, n=300, p=100, m=300, noise=0.5)
    assert linear_predictivity(X, Y, n_splits=3).value > 0.8
    # shuffled stimuli: no signal left, the score falls to about 0 (units share a rank-6 structure,
    # so split medians spread by ~0.07; 10 splits put the mean within ~0.15)
    null = linear_predictivity(X, Y[rng.permutation(300)], n_splits=10)
    assert abs(null.value) < 0.15
    # and the per-split score equals Pearson r of the held-out predictions
    sc = linear_predictivity(X, Y, n_splits=2, n_components=5)
    for s, (tr, te) in enumerate(shuffle_splits(300, 2)):
        pred = ExactPLSRegression(5).fit(X[tr], Y[tr]).predict(X[te])
        assert sc.meta["per_split"][s] == pytest.approx(np.median(pearson_r(Y[te], pred)), abs=1e-9)
