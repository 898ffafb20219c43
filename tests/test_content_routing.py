"""Per-image content-routing check (object_mass_*): hand-computed values, a planted routing problem
that a router passes and a blind, a shuffled or a misplaced model fails, and the stage's rows."""
import h5py
import numpy as np
import pytest

from neuroattn.models.routing_eval import object_mass_ratio, object_mass_table


def test_object_mass_ratio_by_hand():
    att = np.zeros((3, 2, 2))
    att[0, 0, 0] = 1.0  # all mass on the object's token
    att[1] = 0.25  # uniform
    att[2, 1, 1] = 1.0  # all mass away from it
    obj = np.zeros((3, 4, 4))  # a finer grid: token (0, 0) = pixels [0:2, 0:2]
    obj[:, :2, :2] = 1.0
    r = object_mass_ratio(att, obj)
    np.testing.assert_allclose(r, [4.0, 1.0, 0.0])  # share 1/4 of the grid
    half = np.zeros((1, 4, 4))
    half[0, :2, :1] = 1.0  # half of token (0, 0): share 1/8, all attention there -> mass 1/2
    assert object_mass_ratio(att[:1], half)[0] == pytest.approx(4.0)
    assert np.isnan(object_mass_ratio(att[:1], np.zeros((1, 4, 4))))[0]
    with pytest.raises(ValueError, match="cannot be averaged onto the 2x2"):
        object_mass_ratio(att, np.ones((3, 3, 3)))
    with pytest.raises(ValueError, match="same n"):
        object_mass_ratio(att, np.ones((2, 4, 4)))


def _planted(rng, n=80, size=24, grid=6):
    """Images holding 0 or 1 object of category a and of b (square blobs at random places)."""
    obj = {k: np.zeros((n, size, size)) for k in ("cat_a", "cat_b")}
    for k, p in (("cat_a", 0.6), ("cat_b", 0.5)):
        for i in np.flatnonzero(rng.random(n) < p):
            s = rng.integers(4, 9)
            y, x = rng.integers(0, size - s, 2)
            obj[k][i, y:y + s, x:x + s] = 1.0
    cover = {k: v.reshape(n, grid, size // grid, grid, size // grid).mean((2, 4)) for k, v in obj.items()}
    return obj, cover


def _softmax(z):
    e = np.exp(z - z.max((-2, -1), keepdims=True))
    return e / e.sum((-2, -1), keepdims=True)


def _table(att_a, obj):
    att = np.stack([att_a, np.full_like(att_a, 1 / att_a[0].size)], 1)  # query cat_a.lh, and a blind cat_b.lh
    return object_mass_table(["cat_a.lh", "cat_b.lh"], att, obj).set_index(["query", "measure"])


def test_router_passes_and_blind_shuffled_misplaced_models_fail(rng):
    obj, cover = _planted(rng)
    present = obj["cat_a"].sum((1, 2)) > 0
    noise = rng.standard_normal(cover["cat_a"].shape)
    # router: attends its category's object wherever it is (noisy logits)
    router = _table(_softmax(4.0 * cover["cat_a"] + 0.5 * noise), obj)
    assert router.loc[("cat_a.lh", "object_mass_ratio"), "value"] >= 2.0
    assert router.loc[("cat_a.lh", "object_mass_above_1"), "value"] > 0.9
    assert router.loc[("cat_a.lh", "object_mass_ratio"), "n"] == present.sum()
    assert router.loc[("cat_a.lh", "object_mass_ratio_absent"), "n"] == (~present).sum()
    assert 0.6 < router.loc[("cat_a.lh", "object_mass_ratio_absent"), "value"] < 1.5
    assert router.loc[("cat_a.lh", "object_mass_ratio_other"), "value"] < 1.0
    # blind (uniform) query: exactly 1, never above
    blind = router.loc["cat_b.lh"]
    assert blind.loc["object_mass_ratio", "value"] == pytest.approx(1.0)
    assert blind.loc["object_mass_above_1", "value"] == 0.0
    # a router of the right category, shuffled across images: attends an object, not this one
    shuffled = _table(_softmax(4.0 * cover["cat_a"][rng.permutation(len(noise))] + 0.5 * noise), obj)
    assert 0.6 < shuffled.loc[("cat_a.lh", "object_mass_ratio"), "value"] < 1.4
    # a router of the wrong category: attends the b objects
    wrong = _table(_softmax(4.0 * cover["cat_b"] + 0.5 * noise), obj)
    assert wrong.loc[("cat_a.lh", "object_mass_ratio"), "value"] < 1.4
    assert wrong.loc[("cat_a.lh", "object_mass_ratio_other"), "value"] >= 2.0
    # a fixed place (the centre), whatever the image
    fixed = np.zeros_like(noise)
    fixed[:, 2:4, 2:4] = 3.0
    centre = _table(_softmax(fixed + 0.5 * noise), obj)
    assert centre.loc[("cat_a.lh", "object_mass_ratio"), "value"] < 1.5


def _files(tmp_path, rng, router=True):
    """A prediction file with per-image maps of cat_a.lh / cat_b.lh and a truth file with image_routing."""
    s = h5py.string_dtype()
    obj, cover = _planted(rng, n=40)
    images = np.array([f"img{i:04d}.png" for i in range(40)])
    noise = 0.5 * rng.standard_normal(cover["cat_a"].shape)
    a = _softmax((4.0 * cover["cat_a"] if router else 0.0) + noise)
    b = _softmax((4.0 * cover["cat_b"] if router else 0.0) + noise)
    with h5py.File(tmp_path / "truth.h5", "w") as f:
        f.create_dataset("voxel_roi", data=np.array(["cat_a", "cat_b"], object), dtype=s)
        f.create_dataset("voxel_hemi", data=np.array(["lh", "lh"], object), dtype=s)
        f.create_dataset("voxel_ijk", data=np.array([[0, 0, 0], [1, 0, 0]]))
        f.create_dataset("rf_center", data=np.full((2, 2), np.nan))
        f.create_dataset("rf_sigma", data=np.full(2, np.nan))
        f.create_dataset("images", data=np.concatenate([images, ["img9999.png"]]).astype(object), dtype=s)
        for k, v in obj.items():  # truth rows: the images, then one the encoder never saw
            m = np.concatenate([v, np.zeros((1,) + v.shape[1:])])
            tot = m.sum((1, 2), keepdims=True)
            f.create_dataset(f"image_routing/{k}", data=np.divide(m, tot, out=np.zeros_like(m), where=tot > 0),
                             dtype="f2")
            f.create_dataset(f"roi_routing/{k}", data=np.full((24, 24), 1 / 576))
    with h5py.File(tmp_path / "pred.h5", "w") as f:
        f.create_dataset("images", data=images[::-1].astype(object), dtype=s)  # another order than the truth
        f.create_dataset("voxel_index", data=np.arange(2))
        f.create_dataset("voxel_roi", data=np.array(["cat_a", "cat_b"], object), dtype=s)
        f.create_dataset("voxel_hemi", data=np.array(["lh", "lh"], object), dtype=s)
        g = f.create_group("attention")
        g.attrs["kind"] = "attention"
        g.create_dataset("rois", data=np.array(["cat_a.lh", "cat_b.lh"], object), dtype=s)
        maps = np.stack([a, b], 1)[::-1]
        g.create_dataset("mean", data=maps.mean(0))
        g.create_dataset("maps", data=maps.astype(np.float16))
    with h5py.File(tmp_path / "betas.h5", "w") as f:
        f.create_dataset("voxel_ijk", data=np.array([[0, 0, 0], [1, 0, 0]]))
    return tmp_path / "pred.h5", tmp_path / "truth.h5", tmp_path / "betas.h5"


@pytest.mark.parametrize("router", [True, False])
def test_routing_truth_check_writes_per_image_rows(tmp_path, rng, router):
    from neuroattn.stages.encode import routing_truth_check

    t = routing_truth_check(*_files(tmp_path, rng, router)).set_index(["query", "measure"])
    assert not any(m.startswith("attention_") for m in t.index.get_level_values("measure"))  # no image-averaged rows
    for q in ("cat_a.lh", "cat_b.lh"):
        ratio = t.loc[(q, "object_mass_ratio"), "value"]
        if router:
            assert ratio >= 2.0
            assert t.loc[(q, "object_mass_ratio_other"), "value"] < 1.0
        else:  # attention that ignores the objects: about 1
            assert 0.7 < ratio < 1.4
        assert 0.6 < t.loc[(q, "object_mass_ratio_absent"), "value"] < 1.5


def test_routing_truth_check_refuses_test_images_missing_from_the_truth(tmp_path, rng):
    from neuroattn.stages.encode import routing_truth_check

    files = _files(tmp_path, rng)
    with h5py.File(files[0], "a") as f:
        del f["images"]
        f.create_dataset("images", data=np.array([f"x{i}.png" for i in range(40)], object), dtype=h5py.string_dtype())
    with pytest.raises(ValueError, match=r"pred\.h5: 40 test image\(s\) not among the images of .*truth\.h5"):
        routing_truth_check(*files)


def test_content_routing_section_overlays_and_table(tmp_path, rng):
    from PIL import Image

    from neuroattn.report.content_routing import content_routing_section
    from neuroattn.stages.encode import routing_truth_check

    pred, truth, betas = _files(tmp_path, rng)
    tab = tmp_path / "sub-01_backbone-b_layer-layer3_model-routing_desc-truthcheck.tsv"
    routing_truth_check(pred, truth, betas).to_csv(tab, sep="\t", index=False)
    stim = tmp_path / "stimuli"
    stim.mkdir()
    for i in range(40):
        Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(stim / f"img{i:04d}.png")
    sec = content_routing_section([pred], truth, [tab], stim, n_images=3)
    assert len(sec["figures"]) == 1 and sec["figures"][0]["uri"].startswith("data:image/png")
    t = sec["table"]
    assert t["columns"][:3] == ["layer", "query", "object_mass_ratio"]
    assert [r[:2] for r in t["rows"]] == [["layer3", "cat_a.lh"], ["layer3", "cat_b.lh"]]
    assert content_routing_section([pred], None, [tab], stim) is None  # real data: no truth, no section


def test_routing_encoder_learns_to_attend_its_category(rng):
    """A planted content-routing problem: tokens carry a category code and a hue where an object
    is; voxels of cat_k respond to the hue of the k object, wherever it is. The fitted encoder's
    attention passes the check; scored against the objects of other images it fails."""
    from neuroattn.models import RoutingEncoder

    n, h, w, C, K = 240, 4, 4, 8, 2
    code = rng.standard_normal((K, C))
    X = 0.5 * rng.standard_normal((n, h * w, C))
    obj = np.zeros((K, n, h * w))
    hue = rng.random((K, n))
    for k in range(K):
        for i in np.flatnonzero(rng.random(n) < 0.6):
            t = rng.integers(h * w)
            obj[k, i, t] = 1.0
            X[i, t] += code[k]
            X[i, t, :2] += 1.5 * np.array([np.cos(2 * np.pi * hue[k, i]), np.sin(2 * np.pi * hue[k, i])])
    Y, roi = [], []
    for k in range(K):
        pref = rng.random(10)
        Y.append(obj[k].sum(1)[:, None] * (1 + 0.6 * np.cos(2 * np.pi * (hue[k][:, None] - pref)))
                 + 0.3 * rng.standard_normal((n, 10)))
        roi += [f"cat_{k}"] * 10
    Y = np.concatenate(Y, 1)
    tr, te = slice(0, 200), slice(200, n)
    est = RoutingEncoder(d_model=32, n_heads=1, dim_feedforward=32, dropout=0.0, lr=3e-3, max_epochs=12,
                         val_fraction=0.0, device="cpu", random_state=0)
    est.fit(X[tr].astype(np.float32), Y[tr].astype(np.float32), voxel_roi=np.array(roi), grid=(h, w))
    att = est.attention_maps(X[te].astype(np.float32))
    maps = {f"cat_{k}": obj[k, te].reshape(-1, h, w) for k in range(K)}
    t = object_mass_table(list(est.query_names_), att, maps).set_index(["query", "measure"])
    for k in range(K):
        assert t.loc[(f"cat_{k}", "object_mass_ratio"), "value"] >= 2.0
        assert t.loc[(f"cat_{k}", "object_mass_ratio_absent"), "value"] < 1.5
    perm = rng.permutation(n - 200)
    wrong = object_mass_table(list(est.query_names_), att, {k: v[perm] for k, v in maps.items()})
    assert (wrong[wrong.measure == "object_mass_ratio"].value < 1.5).all()
