"""Routing encoder: shapes, readout equivalence, planted routing recovery, estimator contract."""
import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone

from neuroattn.metrics import pearson_r
from neuroattn.models import RidgeEncoder, RoutingEncoder
from neuroattn.models.positional import sine_2d
from neuroattn.models.routing import (GroupedReadout, RoutingModule, masked_full_readout, summarize_attention,
                                      voxel_groups)

FAST = dict(d_model=32, n_heads=2, dim_feedforward=64, dropout=0.0, lr=3e-3, device="cpu")


def planted(rng, n=300, h=5, w=5, C=8, per=10, noise=0.3, locs=((0, 0), (4, 1), (2, 3))):
    """Random token features; ROI r's voxels read a linear function of the token at locs[r]."""
    X = rng.standard_normal((n, h, w, C)).astype(np.float32)
    Y, roi = [], []
    for r, (i, j) in enumerate(locs):
        W = rng.standard_normal((C, per))
        Y.append(X[:, i, j] @ W + noise * math.sqrt(C) * rng.standard_normal((n, per)))
        roi += [f"roi{r}"] * per
    return X, np.concatenate(Y, 1).astype(np.float32), np.array(roi), locs


# ---------------------------------------------------------------------------- positional encoding
def test_sine_2d_shape_and_values():
    pe = sine_2d(3, 4, 16)
    assert pe.shape == (12, 16)
    # channel 0 encodes the row: sin(y / 1) with y = (i + 1) / h * 2 pi; channel 8 the column
    assert pe[0, 0] == pytest.approx(math.sin(1 / 3 * 2 * math.pi), abs=1e-5)
    assert pe[5, 8] == pytest.approx(math.sin(2 / 4 * 2 * math.pi), abs=1e-5)  # token (1, 1)
    assert pe[5, 1] == pytest.approx(math.cos(2 / 3 * 2 * math.pi), abs=1e-5)
    assert len({tuple(r) for r in pe.numpy().round(5)}) == 12  # every token distinct
    assert torch.all(sine_2d(2, 2, 6)[:, 4:] == 0)  # width not a multiple of 4: zero tail


# ---------------------------------------------------------------------------- module
def test_forward_shapes_and_attention_sums_to_one():
    g = np.array([0, 1, 1, 2, 0, 2, 2, 1, 3])
    m = RoutingModule(12, (3, 4), g, d_model=16, n_heads=2, n_layers=2, self_attention=True)
    x = torch.randn(5, 12, 12)
    assert m(x).shape == (5, 9)
    a = m.attention(x)
    assert a.shape == (5, 4, 3, 4)
    torch.testing.assert_close(a.sum(dim=(2, 3)), torch.ones(5, 4))
    with pytest.raises(ValueError, match=r"\(B, 12, C\)"):
        m(torch.randn(5, 10, 12))


def test_grouped_readout_equals_masked_full_readout():
    torch.manual_seed(0)
    g = np.array([2, 0, 0, 4, 2, 2, 0, 4, 4, 4, 0])  # unsorted, groups 1 and 3 empty
    ro = GroupedReadout(6, g, n_groups=5)
    tok = torch.randn(3, 5, 6, requires_grad=True)
    y = ro(tok)
    W, b = ro.full_weight()
    ref = masked_full_readout(tok, W, b, g)
    torch.testing.assert_close(y, ref)
    # by hand: voxel 3 (group 4)
    torch.testing.assert_close(y[:, 3], tok[:, 4] @ W[3] + b[3])
    # gradients agree too
    gy = torch.randn_like(y)
    g1 = torch.autograd.grad(y, (tok, ro.weight, ro.bias), gy)
    W2, b2 = ro.full_weight()
    g2 = torch.autograd.grad(masked_full_readout(tok, W2, b2, g), (tok, ro.weight, ro.bias), gy)
    for a, c in zip(g1, g2):
        torch.testing.assert_close(a, c)


def test_grouped_readout_gradcheck_and_bf16():
    torch.manual_seed(0)
    g = np.array([1, 0, 1, 1, 3])
    ro = GroupedReadout(4, g, n_groups=4).double()
    tok = torch.randn(2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, w, b: ro.__class__.forward(ro, t), (tok, ro.weight, ro.bias))
    ro = GroupedReadout(4, g, n_groups=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = ro(torch.randn(2, 4, 4).bfloat16())
    y.float().sum().backward()
    assert y.dtype == torch.bfloat16 and ro.weight.grad.dtype == torch.float32


def test_per_voxel_readout_in_voxel_mode():
    torch.manual_seed(0)
    g = np.array([3, 0, 2, 1])
    ro = GroupedReadout(5, g)
    assert ro.per_voxel
    tok = torch.randn(2, 4, 5)
    W, b = ro.full_weight()
    torch.testing.assert_close(ro(tok), masked_full_readout(tok, W, b, g))


def test_fused_key_value_path_equals_plain_path():
    torch.manual_seed(0)
    g = np.array([0, 1, 1, 2])
    kw = dict(d_model=16, n_heads=4, n_layers=2)
    a = RoutingModule(24, (2, 3), g, fuse_kv=True, **kw).eval()
    b = RoutingModule(24, (2, 3), g, fuse_kv=False, **kw).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 6, 24)
    ya, yb = a(x), b(x)
    torch.testing.assert_close(ya, yb, atol=1e-5, rtol=1e-5)
    ga = torch.autograd.grad(ya.sum(), list(a.parameters()))
    gb = torch.autograd.grad(yb.sum(), list(b.parameters()))
    for p, q in zip(ga, gb):
        torch.testing.assert_close(p, q, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------- planted routing
def test_attention_routes_to_the_planted_locations(rng):
    X, Y, roi, locs = planted(rng)
    tr, te = slice(0, 240), slice(240, None)
    enc = RoutingEncoder(max_epochs=30, patience=6, **FAST).fit(X[tr], Y[tr], voxel_roi=roi)
    r_route = np.median(pearson_r(Y[te], enc.predict(X[te])))
    r_pool = np.median(pearson_r(Y[te], RidgeEncoder("pooled").fit(X[tr], Y[tr]).predict(X[te])))
    assert r_route > 0.85 and r_route > r_pool + 0.4
    maps = enc.attention_maps(X[te])
    assert maps.shape == (60, 3, 5, 5)
    summary = summarize_attention(maps.mean(0), enc.query_names_)
    assert list(summary["query"]) == ["roi0", "roi1", "roi2"]
    for (i, j), (_, row) in zip(locs, summary.iterrows()):
        assert (row.peak_row, row.peak_col) == (i, j)
        assert row.peak_weight > 0.5
    vm = enc.voxel_maps(X[te][:20])  # each voxel's own map peaks where its ROI reads
    assert vm.shape == (30, 5, 5)
    np.testing.assert_allclose(vm.sum((1, 2)), 1.0, atol=1e-9)
    peaks = [np.unravel_index(np.argmax(m), m.shape) for m in vm]
    assert peaks == [locs[r] for r in range(3) for _ in range(10)]


def test_token_contributions_equal_finite_differences():
    torch.manual_seed(0)
    m = RoutingModule(6, (2, 3), np.array([0, 1, 1]), d_model=8, n_heads=2, dim_feedforward=16,
                      dropout=0.0).double().eval()
    x = torch.randn(2, 6, 6, dtype=torch.float64)
    J = m.token_contributions(x)
    assert J.shape == (2, 2, 8, 6)
    torch.testing.assert_close(m.token_contributions(x, chunk_size=4), J)  # chunks: same result
    eps = 1e-6
    for t in (0, 4):
        g = torch.ones(6, dtype=torch.float64)
        g[t] += eps
        up = m.tokens(x * g[None, :, None])[0]
        g[t] -= 2 * eps
        down = m.tokens(x * g[None, :, None])[0]
        torch.testing.assert_close(J[..., t], (up - down) / (2 * eps), rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------- estimator contract
def test_estimator_contract_and_determinism(rng):
    X, Y, roi, _ = planted(rng, n=60)
    est = RoutingEncoder(max_epochs=2, n_ensemble=2, **FAST)
    c = clone(est)
    assert c.get_params() == est.get_params() and not hasattr(c, "modules_")
    with pytest.raises(RuntimeError, match="not fitted"):
        est.predict(X)
    assert est.fit(X, Y, voxel_roi=roi) is est
    assert len(est.modules_) == 2 and est.predict(X).shape == Y.shape
    again = clone(est).fit(X, Y, voxel_roi=roi)
    np.testing.assert_array_equal(est.predict(X), again.predict(X))
    assert np.isfinite(est.score(X, Y))


def test_hemispheres_and_voxel_queries(rng):
    X, Y, roi, _ = planted(rng, n=40, per=4)
    hemi = np.tile(["lh", "rh"], len(roi) // 2)
    est = RoutingEncoder(max_epochs=1, val_fraction=0, **FAST).fit(X, Y, voxel_roi=roi, voxel_hemi=hemi)
    assert est.query_names_ == [f"roi{r}.{h}" for r in range(3) for h in ("lh", "rh")]
    vox = RoutingEncoder(max_epochs=1, query_mode="voxels", val_fraction=0, **FAST).fit(X, Y, voxel_roi=roi)
    assert len(vox.query_names_) == Y.shape[1] and vox.predict(X).shape == Y.shape
    assert vox.attention_maps(X[:3]).shape == (3, Y.shape[1], 5, 5)


def test_save_load_round_trip(rng, tmp_path):
    X, Y, roi, _ = planted(rng, n=60)
    est = RoutingEncoder(max_epochs=2, **FAST).fit(X, Y, voxel_roi=roi)
    est.save(tmp_path / "enc.pt")
    back = RoutingEncoder.load(tmp_path / "enc.pt")
    assert back.get_params() == est.get_params() and back.query_names_ == est.query_names_
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    np.testing.assert_array_equal(back.attention_maps(X[:4]), est.attention_maps(X[:4]))
    (tmp_path / "junk.pt").write_bytes(b"nope")
    with pytest.raises(ValueError, match="junk.pt"):
        RoutingEncoder.load(tmp_path / "junk.pt")


# ---------------------------------------------------------------------------- bad input
def test_bad_voxels_dropped_and_counted(rng):
    X, Y, roi, _ = planted(rng, n=40, per=4)
    Y[:, 0] = np.nan
    Y[:, 5] = 3.0
    est = RoutingEncoder(max_epochs=1, val_fraction=0, **FAST).fit(X, Y, voxel_roi=roi)
    assert est.n_dropped_voxels_ == 2
    pred = est.predict(X)
    assert np.isnan(pred[:, [0, 5]]).all() and np.isfinite(np.delete(pred, [0, 5], axis=1)).all()


def test_roi_without_voxels_is_skipped_with_a_warning(rng):
    X, Y, roi, _ = planted(rng, n=40, per=4)
    Y[:, roi == "roi1"] = 0.0
    with pytest.warns(UserWarning, match="'roi1'"):
        est = RoutingEncoder(max_epochs=1, val_fraction=0, **FAST).fit(X, Y, voxel_roi=roi)
    assert est.query_names_ == ["roi0", "roi2"]
    with pytest.warns(UserWarning, match="'cat_face'"):
        voxel_groups(roi, rois=["roi0", "cat_face"])


def test_shape_mismatches_are_refused(rng):
    X, Y, roi, _ = planted(rng, n=40, per=4)
    with pytest.raises(ValueError, match="40 images but Y has 39"):
        RoutingEncoder(**FAST).fit(X, Y[:39], voxel_roi=roi)
    with pytest.raises(ValueError, match="labels for 12 voxels"):
        RoutingEncoder(**FAST).fit(X, Y, voxel_roi=roi[:5])
    with pytest.raises(ValueError, match="not a square grid"):
        RoutingEncoder(**FAST).fit(X.reshape(40, 25, 8)[:, :24], Y, voxel_roi=roi)
    est = RoutingEncoder(max_epochs=1, val_fraction=0, **FAST).fit(X, Y, voxel_roi=roi)
    with pytest.raises(ValueError, match="7 channels"):
        est.predict(X[..., :7])


def test_summarize_attention_by_hand():
    m = np.zeros((2, 3, 4))
    m[0, 1, 2] = 1.0
    m[1] = 1.0
    s = summarize_attention(m, ["a", "b"])
    a, b = s.iloc[0], s.iloc[1]
    assert (a.peak_row, a.peak_col, a.spread, a.entropy) == (1, 2, 0.0, 0.0)
    assert a.peak_y == pytest.approx(1.5 / 3) and a.peak_x == pytest.approx(2.5 / 4)
    assert b.entropy == pytest.approx(1.0) and b.centroid_y == pytest.approx(0.5)
    assert b.spread == pytest.approx(math.sqrt(np.var(np.arange(3)) + np.var(np.arange(4))))
