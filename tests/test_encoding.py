"""The encode pipeline: loading a subject's features/betas, fitting, scoring rows, prediction file."""
import h5py
import numpy as np
import pandas as pd
import pytest

from neuroattn.data.betas import Betas
from neuroattn.data.splits import write_split
from neuroattn.features.store import FeatureWriter
from neuroattn.stages.encode import load_encoding_data, run_encoding, score_rows, write_predictions


@pytest.fixture
def files(tmp_path, rng):
    """60 images (20 test shown twice), 3x3 tokens x 4 channels, 2 ROIs reading 2 token locations."""
    images = np.array([f"img{i:04d}.png" for i in range(60)])
    X = rng.standard_normal((60, 9, 4)).astype(np.float32)
    W = rng.standard_normal((4, 6))
    signal = np.concatenate([X[:, 0] @ W[:, :3], X[:, 8] @ W[:, 3:]], 1)
    test = images[:20]
    trial_image = np.concatenate([images, test])
    idx = np.concatenate([np.arange(60), np.arange(20)])
    trials = signal[idx] + 0.5 * rng.standard_normal((80, 6))
    b = Betas(subject="01", trial_betas=trials, trial_image=trial_image,
              voxel_roi=np.array(["ret_a"] * 3 + ["cat_b"] * 3), ncsnr=np.full(6, 2.0))
    b.write(tmp_path / "betas.h5")
    with FeatureWriter(tmp_path / "features.h5", images, attrs={"weights": "random"}, dtype="float32") as fw:
        fw.add({"layer1": X}, {"layer1": (3, 3)})
    write_split(pd.DataFrame({"image": images, "split": np.where(np.isin(images, test), "test", "train"),
                              "n_subjects": 1}), tmp_path / "split.tsv")
    return tmp_path


def test_load_and_ridge_pooled_rows(files):
    data = load_encoding_data(files / "betas.h5", files / "features.h5", files / "split.tsv", "layer1")
    assert data.X_train.shape == (40, 9, 4) and data.Y_test.shape == (20, 6) and data.grid == (3, 3)
    assert (data.test_repeats == 2).all()
    res = run_encoding(data, "ridge_grid", {"alphas": [1.0, 10.0, 100.0], "cv": 3})
    rows = {(r["target"], r["metric"]): r for r in res["rows"]}
    assert set(rows) == {(t, m) for t in ("ret_a", "cat_b", "all") for m in ("pearson_r", "noise_normalized_r2")}
    nc = 4.0 / (4.0 + 0.5)  # ncsnr 2, every test image averaged over 2 trials
    assert rows[("all", "noise_normalized_r2")]["ceiling"] == 1.0  # already divided by nc (issue 18)
    assert rows[("all", "pearson_r")]["ceiling"] == pytest.approx(np.sqrt(nc))
    assert rows[("ret_a", "pearson_r")]["n"] == 3 and rows[("all", "pearson_r")]["value"] > 0.5
    r = res["pearson_r"]
    assert rows[("ret_a", "noise_normalized_r2")]["value"] == pytest.approx(
        np.median(np.minimum(np.maximum(r[:3], 0) ** 2 / nc, 1)))


def test_routing_prediction_file(files):
    data = load_encoding_data(files / "betas.h5", files / "features.h5", files / "split.tsv", "layer1")
    params = dict(d_model=16, n_heads=2, dim_feedforward=32, max_epochs=2, n_ensemble=1)
    res = run_encoding(data, "routing", params, device="cpu", n_examples=3)
    write_predictions(files / "pred.h5", data, res, backbone="bb", layer="layer1", model="routing", params=params)
    with h5py.File(files / "pred.h5") as f:
        assert f["predictions"].shape == (20, 6) and f.attrs["model"] == "routing"
        assert list(f["attention/rois"].asstr()[()]) == ["cat_b", "ret_a"]
        assert f["attention/mean"].shape == (2, 3, 3) and f["attention/examples"].shape == (3, 2, 3, 3)
        assert list(f["attention/example_images"].asstr()[()]) == list(data.test_images[:3])
        assert f["attention/summary/peak_row"].shape == (2,)


def test_image_mismatch_is_refused(files, rng):
    images = np.array([f"img{i:04d}.png" for i in range(55)])  # the features lack 5 images
    with FeatureWriter(files / "short.h5", images, dtype="float32") as fw:
        fw.add({"layer1": rng.standard_normal((55, 9, 4))}, {"layer1": (3, 3)})
    with pytest.raises(ValueError, match=r"betas.h5 has betas for 5 image\(s\).*short.h5.*img0055.png"):
        load_encoding_data(files / "betas.h5", files / "short.h5", files / "split.tsv", "layer1")


def test_rows_skip_missing_ceiling_and_dropped_voxels(rng):
    Y = rng.standard_normal((10, 4))
    pred = Y + 0.1 * rng.standard_normal((10, 4))
    pred[:, 0] = np.nan  # a dropped voxel
    rows, r, nc = score_rows("01", "m", Y, pred, np.array(["a", "a", "b", "b"]), np.full(4, np.nan), np.ones(10))
    assert {row["metric"] for row in rows} == {"pearson_r"}
    by = {row["target"]: row for row in rows}
    assert by["a"]["n"] == 1 and by["all"]["n"] == 3 and by["a"]["ceiling"] is None


def test_hemispheres_from_labels_or_coordinates(rng):
    kw = dict(subject="01", trial_betas=rng.standard_normal((4, 3)), trial_image=["a", "b", "c", "d"],
              voxel_roi=["r", "r", "s"])
    from neuroattn.stages.encode import voxel_hemispheres

    b = Betas(**kw, voxel_ijk=np.array([[0, 0, 0], [5, 0, 0], [2, 1, 1]]),
              affine=np.array([[2.0, 0, 0, -5], [0, 2, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1]]))
    assert list(voxel_hemispheres(b)) == ["lh", "rh", "lh"]  # x = -5, 5, -1
    assert list(voxel_hemispheres(b, "none")) == ["", "", ""]
    lab = Betas(**kw, voxel_hemi=["rh", "rh", "lh"], voxel_ijk=b.voxel_ijk, affine=b.affine)
    assert list(voxel_hemispheres(lab)) == ["rh", "rh", "lh"]
    with pytest.raises(ValueError, match="need an affine"):
        voxel_hemispheres(Betas(**kw), "coordinates")
    assert list(voxel_hemispheres(Betas(**kw))) == ["", "", ""]


# ---------------------------------------------------------------------------- truth check (simulation)
def _truth_check_files(tmp_path, ijk_in_betas=None):
    """Grid 4x4; ret_V1.lh voxels with RFs centred on tokens (1,2), (1,2), (3,3); one cat voxel."""
    s = h5py.string_dtype()
    tok = np.array([[1, 2], [1, 2], [3, 3]])  # (row, col)
    centre = np.full((4, 2), np.nan)
    centre[:3] = (tok[:, ::-1] + 0.5) / 4  # (x, y) in [0, 1]
    sigma = np.array([0.05, 0.05, 0.05, np.nan])
    tijk = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]])
    routing = np.zeros((8, 8))
    routing[:2, :2] = 1
    with h5py.File(tmp_path / "truth.h5", "w") as f:
        f.create_dataset("voxel_roi", data=np.array(["ret_V1", "ret_V1", "ret_V1", "cat_a"], object), dtype=s)
        f.create_dataset("voxel_hemi", data=np.array(["lh"] * 4, object), dtype=s)
        f.create_dataset("voxel_ijk", data=tijk)
        f.create_dataset("rf_center", data=centre)
        f.create_dataset("rf_sigma", data=sigma)
        f.create_dataset("roi_routing/cat_a", data=routing / routing.sum())
    order = [3, 2, 0, 1]  # the beta file lists the voxels in another order than the truth
    with h5py.File(tmp_path / "betas.h5", "w") as f:
        f.create_dataset("voxel_ijk", data=tijk[order] if ijk_in_betas is None else ijk_in_betas)
    vmaps = np.zeros((4, 4, 4))
    for v, t in enumerate(order):
        if t < 3:
            vmaps[v, tok[t, 0], tok[t, 1]] = 1.0  # each voxel's map on its own RF centre
        else:
            vmaps[v] = 1 / 16
    att = np.zeros((2, 4, 4))
    att[0, 3, 3] = 1.0
    att[1] = 1 / 16
    with h5py.File(tmp_path / "pred.h5", "w") as f:
        f.create_dataset("voxel_index", data=np.arange(4))
        f.create_dataset("voxel_roi", data=np.array(["cat_a", "ret_V1", "ret_V1", "ret_V1"], object), dtype=s)
        f.create_dataset("voxel_hemi", data=np.array(["lh"] * 4, object), dtype=s)
        f.create_dataset("voxel_maps", data=vmaps)
        g = f.create_group("attention")
        g.attrs["kind"] = "attention"
        g.create_dataset("rois", data=np.array(["ret_V1.lh", "cat_a.lh"], object), dtype=s)
        g.create_dataset("mean", data=att)
    return tmp_path / "pred.h5", tmp_path / "truth.h5", tmp_path / "betas.h5"


def test_routing_truth_check_by_hand(tmp_path):
    from neuroattn.stages.encode import routing_truth_check

    t = routing_truth_check(*_truth_check_files(tmp_path)).set_index(["query", "measure"])
    ret = t.loc["ret_V1.lh"]
    # attention on token (3, 3); the true map peaks at (1, 2) where two of the three RFs sit
    assert ret.loc["attention_peak_distance", "value"] == pytest.approx(np.hypot(2, 1))
    assert ret.loc["attention_centroid_distance", "value"] == pytest.approx(np.hypot(4 / 3, 2 / 3), abs=0.05)
    assert ret.loc["attention_centroid_distance", "reference"] == pytest.approx(np.hypot(1.5 - 5 / 3, 1.5 - 7 / 3), abs=0.05)
    # the mean RF centre of the three voxels is (5/3, 7/3) in tokens; the attention peaks at (3, 3)
    assert ret.loc["attention_peak_to_rf_centre", "value"] == pytest.approx(np.hypot(4 / 3, 2 / 3))
    assert ret.loc["attention_peak_to_rf_centre", "n"] == 3
    # voxel maps on their own RF centres: distance 0; reference = the ROI's mean centre (5/3, 7/3)
    assert ret.loc["voxel_peak_distance", "value"] == 0.0
    assert ret.loc["voxel_peak_distance", "reference"] == pytest.approx(np.hypot(2 / 3, 1 / 3))
    assert ret.loc["voxel_within_one_token", "value"] == 1.0
    assert ret.loc["voxel_within_one_token", "reference"] == pytest.approx(2 / 3)
    assert ret.loc["voxel_peak_distance", "n"] == 3
    # category query: no image-averaged rows (near uniform whatever the model does), and no
    # per-image rows without per-image maps (tests/test_content_routing.py has those)
    assert "cat_a.lh" not in t.index.get_level_values("query")


def test_routing_truth_check_refuses_voxels_missing_from_the_truth(tmp_path):
    from neuroattn.stages.encode import routing_truth_check

    files = _truth_check_files(tmp_path, ijk_in_betas=np.array([[3, 0, 0], [2, 0, 0], [9, 9, 9], [1, 0, 0]]))
    with pytest.raises(ValueError, match=r"betas\.h5: 1 voxel\(s\) not in the truth file"):
        routing_truth_check(*files)
    with h5py.File(files[0], "a") as f:
        del f["attention"]
    with pytest.raises(ValueError, match="no attention maps"):
        routing_truth_check(*files)


# ------------------------------------------------------------------ the encoder registry
def test_schema_enum_of_encode_models_is_the_registry():
    from neuroattn.config import load_schema
    from neuroattn.models.encoders import ENCODERS

    enum = load_schema()["properties"]["encode"]["properties"]["models"]["items"]["enum"]
    assert enum == ENCODERS.names()


def test_unknown_encoder_parameter_is_refused_by_name():
    from neuroattn.models.encoders import make_encoder

    with pytest.raises(TypeError, match="not_a_param"):
        make_encoder("routing", {"not_a_param": 1}, seed=0, device="cpu")
    with pytest.raises(TypeError, match="not_a_param"):
        make_encoder("ridge_pooled", {"not_a_param": 1})
    with pytest.raises(KeyError, match="unknown fMRI encoder"):
        make_encoder("nope")
