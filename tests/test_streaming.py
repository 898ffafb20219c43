"""Bounded memory: torch encoders trained from a lazy feature-store view give the in-memory
numbers; loads that do not fit memory are refused up front; set_threads limits BLAS/OpenMP."""
import numpy as np
import pytest

from neuroattn.features.store import FeatureStore, FeatureWriter, TokenRows
from neuroattn.models.encoders import make_encoder
from neuroattn.utils import check_fits_memory, check_hdf5_fits_memory


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(0)
    n, side, C = 40, 4, 6
    X = (rng.normal(size=(n, side * side, C)) * 2 + 0.5).astype(np.float32)
    path = tmp_path_factory.mktemp("st") / "features.h5"
    names = [f"im{i:03d}" for i in range(n)]
    with FeatureWriter(path, names) as w:
        for s in range(0, n, 16):
            w.add({"l": X[s:s + 16]}, {"l": (side, side)})
    w_true = rng.normal(size=(C, 12))
    Y = X[:, :4].mean(axis=1) @ w_true + 0.3 * rng.normal(size=(n, 12))
    return FeatureStore(path), np.array(names), Y


@pytest.fixture(params=["streamed", "kept"])
def cache_limit(request, monkeypatch):
    """Both read paths of TokenRows: batch by batch from the file, or the small layer kept."""
    import neuroattn.features.store as store_mod

    if request.param == "streamed":
        monkeypatch.setattr(store_mod, "CACHE_MAX_BYTES", 0)
    return request.param


def test_token_rows_reads_what_tokens_reads(store, cache_limit):
    st, names, _ = store
    order = names[[5, 1, 30, 1, 7]]                      # any order, repeats
    view = st.token_rows("l", order)
    full = st.tokens("l", order)
    assert isinstance(view, TokenRows) and view.shape == full.shape == (5, 16, 6)
    assert np.array_equal(np.asarray(view), full)
    assert np.array_equal(view[[4, 0]], full[[4, 0]])
    assert np.array_equal(view[1:3], full[1:3])
    assert np.array_equal(view[2], full[2])
    assert np.array_equal(view.subset([3, 2]).take([1]), full[[2]])
    assert np.array_equal(np.concatenate(list(view.iter_batches(2))), full)
    with pytest.raises(IndexError):
        view.take([5])
    # a small layer is read once and shared with subsets; a large one is never held whole
    sub = view.subset([0, 1])
    sub.take([0])
    kept = view._cache.get("tokens")
    assert (kept is not None) == (cache_limit == "kept")
    assert sub._cache is view._cache
    if kept is not None:
        assert kept.shape == (40, 16, 6)


@pytest.mark.parametrize("model", ["routing", "spatial_feature"])
def test_streamed_fit_equals_in_memory_fit(store, model, cache_limit):
    st, names, Y = store
    tr, te = names[:32], names[32:]
    params = {"max_epochs": 2, "patience": 2, "batch_size": 8, "progress": False}
    if model == "routing":
        params.update(d_model=8, n_heads=1, dim_feedforward=8, n_ensemble=2, dropout=0.1)
    runs = []
    for X in (st.tokens("l", tr), st.token_rows("l", tr)):
        est = make_encoder(model, params, seed=3, device="cpu").fit(X, Y[:32])
        runs.append((est, est.predict(st.tokens("l", te)), est.predict(st.token_rows("l", te))))
    (a, pa, pa_lazy), (b, pb, pb_lazy) = runs
    assert np.array_equal(a.x_mean_, b.x_mean_) and np.array_equal(a.x_std_, b.x_std_)
    assert np.array_equal(pa, pb) and np.array_equal(pa, pa_lazy) and np.array_equal(pb, pb_lazy)
    assert [h["train_loss"] for h in a.histories_[0]] == [h["train_loss"] for h in b.histories_[0]]
    # the check can fail: another seed gives other predictions
    c = make_encoder(model, params, seed=4, device="cpu").fit(st.token_rows("l", tr), Y[:32])
    assert not np.array_equal(c.predict(st.tokens("l", te)), pa)


def test_refused_up_front_naming_file_size_memory_and_key(store, tmp_path):
    st, names, _ = store
    with pytest.raises(MemoryError, match=r"x\.h5: loading tokens needs 2\.00 GiB of memory but 1\.00 GiB "
                                          r"is available; change features\.pca"):
        check_fits_memory(2 * 2**30, "tokens", "x.h5", "features.pca", available=2**30)
    check_fits_memory(2**30, "tokens", "x.h5", "features.pca", available=2**30)   # fits: no error
    import neuroattn.features.store as store_mod
    import neuroattn.utils as utils

    orig = utils.available_memory
    try:
        utils.available_memory = lambda: 1000            # bytes: nothing fits
        with pytest.raises(MemoryError, match=r"features\.h5: loading l/tokens of 40 images needs .* "
                                              r"available; change features\.pca"):
            st.tokens("l")
        with pytest.raises(MemoryError, match="features.h5: loading l tokens of 3 images"):
            np.asarray(st.token_rows("l", names[:3]))
        st.token_rows("l", names).take([0, 1])           # a batch is read without a check
        with pytest.raises(MemoryError, match=r"features\.h5: loading the beta file needs .* change fmri\.keep_other"):
            check_hdf5_fits_memory(st.path, {"l/tokens": 1}, "the beta file", "fmri.keep_other")
    finally:
        utils.available_memory = orig
    assert store_mod.check_fits_memory is utils.check_fits_memory


def test_set_threads_limits_blas_and_openmp():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import os

    import torch

    from neuroattn.utils import set_threads

    before = threadpoolctl.threadpool_info()
    old_torch = torch.get_num_threads()
    old_env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    try:
        threadpoolctl.threadpool_limits(2)               # as a job starts without the variables
        assert all(p["num_threads"] == 2 for p in threadpoolctl.threadpool_info())
        set_threads(1)
        info = threadpoolctl.threadpool_info()
        assert info and all(p["num_threads"] == 1 for p in info)
        assert torch.get_num_threads() == 1 and os.environ["OPENBLAS_NUM_THREADS"] == "1"
    finally:
        threadpoolctl.threadpool_limits({p["prefix"]: p["num_threads"] for p in before})
        torch.set_num_threads(old_torch)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_set_threads_binds_a_torch_imported_later_without_importing_it():
    """Stages that never use torch must not pay its import; one imported after still gets 1 thread."""
    import subprocess
    import sys

    code = ("import sys; from neuroattn.utils import set_threads; set_threads(1); "
            "print('torch' in sys.modules); import torch; print(torch.get_num_threads())")
    env = {k: v for k, v in __import__("os").environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["False", "1"]


def test_pooled_ridge_from_a_store_view_equals_in_memory(store):
    st, names, Y = store
    tr, te = names[:32], names[32:]
    params = {"alphas": [1.0, 100.0], "cv": 3}
    a = make_encoder("ridge_pooled", params).fit(st.tokens("l", tr), Y[:32])
    b = make_encoder("ridge_pooled", params).fit(st.token_rows("l", tr), Y[:32])
    pa, pb = a.predict(st.tokens("l", te)), b.predict(st.token_rows("l", te))
    assert np.array_equal(pa, pb) and np.array_equal(a.best_alphas_, b.best_alphas_)
    # it learned the planted map; the same fit on shuffled training targets does not
    shuffled = make_encoder("ridge_pooled", params).fit(st.token_rows("l", tr), Y[:32][::-1])
    r_true, r_shuf = b.score(st.token_rows("l", te), Y[32:]), shuffled.score(st.tokens("l", te), Y[32:])
    assert r_true > 0.2 > r_shuf
