"""The grid ridge on a feature-store view never holds every token, and predicts what the in-memory fit does."""
import numpy as np
import pytest

import neuroattn.models.baselines as baselines
from neuroattn.features.store import FeatureStore, FeatureWriter, TokenRows
from neuroattn.metrics import pearson_r
from neuroattn.models import RidgeEncoder


@pytest.fixture
def grid_store(tmp_path, rng):
    n, side, C = 50, 4, 6                       # 96 features > 40 training images: the kernel path
    X = rng.normal(size=(n, side * side, C)).astype(np.float32)
    names = [f"im{i:03d}" for i in range(n)]
    with FeatureWriter(tmp_path / "f.h5", names) as w:
        for s in range(0, n, 16):
            w.add({"l": X[s:s + 16]}, {"l": (side, side)})
    st = FeatureStore(tmp_path / "f.h5")
    Xs = st.tokens("l")                          # the stored (float16) values, as float32
    Y = 2 * Xs.mean(axis=1) @ rng.normal(size=(C, 5)) + 0.5 * rng.normal(size=(n, 5))   # pooled tokens, planted
    return st, np.array(names), Xs, Y


def test_streamed_grid_ridge_equals_in_memory(grid_store, monkeypatch):
    st, names, Xs, Y = grid_store
    kw = dict(alphas=[1.0, 10.0, 100.0, 1e3], cv=3)
    ref = RidgeEncoder("grid", **kw).fit(Xs[:40], Y[:40])
    assert not hasattr(ref, "X_fit_") and ref.model_.kernel == "linear"
    # blocks of 8 rows against outer blocks of 16: several blocks, the last one partial
    monkeypatch.setattr(baselines, "_STREAM_ROWS", 8)
    monkeypatch.setattr(baselines, "_STREAM_OUTER_BYTES", 2 * 8 * 96 * 8)

    def refuse(self, *a, **k):
        raise AssertionError("every token was read at once")

    monkeypatch.setattr(TokenRows, "__array__", refuse)
    est = RidgeEncoder("grid", **kw).fit(st.token_rows("l", names[:40]), Y[:40])
    assert est.model_.kernel == "precomputed" and isinstance(est.X_fit_, TokenRows)
    np.testing.assert_array_equal(est.best_alphas_, ref.best_alphas_)
    np.testing.assert_allclose(est.scaler_.mean_, ref.scaler_.mean_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(est.scaler_.scale_, ref.scaler_.scale_, rtol=1e-10)
    for X_test in (Xs[40:], st.token_rows("l", names[40:])):   # an array or a lazy view
        np.testing.assert_allclose(est.predict(X_test), ref.predict(Xs[40:]), rtol=1e-5, atol=1e-6)
    # the kernel it solved is the design's: D D^T of the standardised tokens
    D = ref.scaler_.transform(Xs[:40].reshape(40, -1).astype(np.float64))
    K = est._stream_kernel(st.token_rows("l", names[:40]))
    np.testing.assert_allclose(K, D @ D.T, rtol=1e-10, atol=1e-9)
    assert np.array_equal(K, K.T)


def test_streamed_grid_ridge_learns_the_planted_map_and_not_noise(grid_store, rng):
    st, names, Xs, Y = grid_store
    est = RidgeEncoder("grid", alphas=[1.0, 10.0, 100.0], cv=3).fit(st.token_rows("l", names[:40]), Y[:40])
    assert np.median(pearson_r(Y[40:], est.predict(Xs[40:]))) > 0.5
    shuffled = RidgeEncoder("grid", alphas=[1.0, 10.0, 100.0], cv=3).fit(st.token_rows("l", names[:40]),
                                                                        rng.permutation(Y[:40]))
    assert np.median(pearson_r(Y[40:], shuffled.predict(Xs[40:]))) < 0.5
