"""Ridge (pooled / grid) and spatial-feature baselines."""
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import Ridge

from neuroattn.metrics import pearson_r
from neuroattn.models import RidgeEncoder, SpatialFeatureEncoder


def _tokens(rng, n=120, h=3, w=3, C=4):
    return rng.standard_normal((n, h, w, C)).astype(np.float32)


def test_ridge_pooled_recovers_a_linear_map_of_pooled_features(rng):
    X = _tokens(rng)
    W = rng.standard_normal((4, 6))
    Y = X.mean(axis=(1, 2)) @ W + 0.05 * rng.standard_normal((120, 6))
    est = RidgeEncoder("pooled", alphas=[1e-2, 1.0, 1e2], cv=3).fit(X[:100], Y[:100])
    assert est.predict(X[100:]).shape == (20, 6)
    assert np.min(pearson_r(Y[100:], est.predict(X[100:]))) > 0.95
    # 2-D input is used as given: same as pooling
    est2 = RidgeEncoder("pooled", alphas=[1e-2, 1.0, 1e2], cv=3).fit(X[:100].mean(axis=(1, 2)), Y[:100])
    np.testing.assert_allclose(est2.predict(X[100:].mean(axis=(1, 2))), est.predict(X[100:]), rtol=1e-4,
                               atol=1e-5)


def test_alpha_is_chosen_per_voxel(rng):
    X = rng.standard_normal((150, 20))
    w = rng.standard_normal(20)
    clean = X @ w
    Y = np.stack([clean + 0.01 * rng.standard_normal(150), rng.standard_normal(150) * 5 + 0.1 * clean], 1)
    est = RidgeEncoder(alphas=[1e-3, 1e4], cv=5).fit(X, Y)
    np.testing.assert_allclose(est.best_alphas_, [1e-3, 1e4])


def test_ridge_grid_kernel_path_matches_primal_ridge(rng):
    # more features (3*3*4 = 36 ... x 3) than images: the linear-kernel solver is used
    X = _tokens(rng, n=30, h=4, w=4, C=4)  # 64 features > 30 images
    Y = rng.standard_normal((30, 3))
    est = RidgeEncoder("grid", alphas=[10.0], cv=3).fit(X, Y)
    assert type(est.model_).__name__ == "KernelRidgeCV"
    D = est.scaler_.transform(X.reshape(30, -1).astype(np.float64))
    ref = Ridge(alpha=10.0).fit(D, Y)
    Xt = _tokens(rng, n=5, h=4, w=4, C=4)
    np.testing.assert_allclose(est.predict(Xt), ref.predict(est.scaler_.transform(Xt.reshape(5, -1))),
                               rtol=1e-4, atol=1e-4)


def test_ridge_contract_and_bad_voxels(rng):
    X = _tokens(rng, n=40)
    Y = rng.standard_normal((40, 5))
    Y[:, 1] = np.nan
    Y[:, 3] = 2.0
    est = RidgeEncoder("grid", alphas=[1.0], cv=3)
    assert clone(est).get_params() == est.get_params()
    assert est.fit(X, Y) is est and est.n_dropped_voxels_ == 2
    pred = est.predict(X)
    assert np.isnan(pred[:, [1, 3]]).all() and np.isfinite(pred[:, [0, 2, 4]]).all()
    with pytest.raises(ValueError, match="'pooled' or 'grid'"):
        RidgeEncoder("mean").fit(X, Y)
    with pytest.raises(ValueError, match="40 images"):
        RidgeEncoder().fit(X, Y[:30])


def test_spatial_feature_encoder_finds_the_planted_location(rng):
    n, h, w, C = 200, 4, 4, 6
    X = rng.standard_normal((n, h, w, C)).astype(np.float32)
    Y = np.concatenate([X[:, 3, 1] @ rng.standard_normal((C, 5)), X[:, 0, 2] @ rng.standard_normal((C, 5))], 1)
    Y += 0.3 * rng.standard_normal(Y.shape)
    roi = np.array(["a"] * 5 + ["b"] * 5)
    est = SpatialFeatureEncoder(lr=2e-2, max_epochs=40, patience=8, device="cpu")
    assert est.fit(X[:160], Y[:160], voxel_roi=roi) is est
    maps = est.spatial_maps()
    assert maps.shape == (2, 4, 4)
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    assert np.unravel_index(maps[0].argmax(), (4, 4)) == (3, 1)
    assert np.unravel_index(maps[1].argmax(), (4, 4)) == (0, 2)
    assert np.median(pearson_r(Y[160:], est.predict(X[160:]))) > 0.8
    assert clone(est).get_params() == est.get_params()
