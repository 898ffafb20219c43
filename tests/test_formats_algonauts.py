"""Algonauts 2023 adapter on a miniature challenge folder (npy responses, challenge ROI masks, PNGs)."""

import numpy as np
import pytest
from PIL import Image

from neuroattn.data.formats import algonauts as alg

N_LH, N_RH, N_IMG = 12, 9, 10


def _write(root, rng, subject=1):
    sd = alg.subject_dir(root, subject)
    fdir = sd / "training_split" / "training_fmri"
    idir = sd / "training_split" / "training_images"
    rdir = sd / "roi_masks"
    for d in (fdir, idir, rdir):
        d.mkdir(parents=True)
    nsd_ids = rng.choice(np.arange(1, 500), N_IMG, replace=False)
    names = []
    for i, k in enumerate(nsd_ids):
        name = f"train-{i + 1:04d}_nsd-{k:05d}.png"
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(idir / name)
        names.append(name)
    Y = {"lh": rng.normal(size=(N_IMG, N_LH)).astype(np.float32), "rh": rng.normal(size=(N_IMG, N_RH)).astype(np.float32)}
    for h in ("lh", "rh"):
        np.save(fdir / f"{h}_training_fmri.npy", Y[h])
    prf = {"lh": np.zeros(N_LH, np.float32), "rh": np.zeros(N_RH, np.float32)}
    prf["lh"][:3] = 1   # V1v
    prf["lh"][3:5] = 7  # hV4
    prf["rh"][:2] = 1
    faces = {"lh": np.zeros(N_LH, np.float32), "rh": np.zeros(N_RH, np.float32)}
    faces["lh"][4:7] = 2   # FFA-1; vertex 4 also hV4 (prf wins)
    faces["rh"][5] = 1     # OFA
    for h in ("lh", "rh"):
        np.save(rdir / f"{h}.prf-visualrois_challenge_space.npy", prf[h])
        np.save(rdir / f"{h}.floc-faces_challenge_space.npy", faces[h])
    np.save(rdir / "mapping_floc-faces.npy", {0: "Unknown", 1: "OFA", 2: "FFA-1", 3: "FFA-2", 4: "mTL-faces", 5: "aTL-faces"})
    return dict(Y=Y, names=names, nsd_ids=nsd_ids)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("alg")
    return root, _write(root, np.random.default_rng(0))


ROIS = ["prf-visualrois", "floc-faces"]


def test_load_shapes_values_and_labels(data):
    root, planted = data
    betas, trials, _ = alg.load_subject(root, "01", rois=ROIS)
    order = np.argsort(planted["names"])
    want_names = [f"nsd-{k:05d}.png" for k in planted["nsd_ids"][order]]
    assert list(trials["image"]) == want_names
    assert betas.trial_betas.shape == (N_IMG, N_LH + N_RH)
    # rows follow the sorted file names; lh vertices then rh vertices
    ref = np.concatenate([planted["Y"]["lh"], planted["Y"]["rh"]], axis=1)
    pos = {n: i for i, n in enumerate(want_names)}
    assert np.allclose(betas.select(want_names), ref[[pos[n] for n in want_names]])
    assert list(betas.voxel_hemi) == ["lh"] * N_LH + ["rh"] * N_RH
    assert list(betas.voxel_roi[:8]) == ["V1v"] * 3 + ["hV4"] * 2 + ["FFA-1"] * 2 + ["other"]
    assert betas.voxel_roi[N_LH + 5] == "OFA"
    assert np.isnan(betas.ncsnr).all() and (betas.n_repeats == 1).all()
    assert (betas.voxel_ijk == -1).all()


def test_drop_other_and_subject_betas(data):
    root, _ = data
    res = alg.preprocess_subject(root, 1, {"rois": ROIS, "keep_other": False})
    b = res.betas
    assert "other" not in set(b.voxel_roi) and b.trial_betas.shape[1] == 7 + 3
    assert res.voxels.noise_ceiling.isna().all()


def test_write_stimuli_under_nsd_names(data, tmp_path):
    root, planted = data
    out = alg.write_stimuli(root, "subj01", tmp_path / "stim")
    assert sorted(p.name for p in out) == sorted(f"nsd-{k:05d}.png" for k in planted["nsd_ids"])
    src = sorted(alg.images_dir(root, 1).glob("*.png"))[0]
    k = int(src.stem.split("nsd-")[1])
    assert (tmp_path / "stim" / f"nsd-{k:05d}.png").read_bytes() == src.read_bytes()


def test_mapping_reader_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "mapping_x.npy"
    np.save(path, np.array(Evil(), dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="refusing"):
        alg.read_mapping(path)
    np.save(tmp_path / "ok.npy", {0: "Unknown", 3: "PPA"})
    assert alg.read_mapping(tmp_path / "ok.npy") == {0: "Unknown", 3: "PPA"}


def test_hemisphere_with_wrong_vertex_count(tmp_path):
    root = tmp_path / "bad"
    _write(root, np.random.default_rng(1))
    path = alg.fmri_path(root, 1, "rh")
    np.save(path, np.zeros((N_IMG, N_RH + 2), np.float32))
    with pytest.raises(ValueError, match=rf"rh_training_fmri\.npy: {N_RH + 2} vertices, expected {N_RH}"):
        alg.load_subject(root, 1, rois=ROIS)


def test_missing_hemisphere_and_row_mismatch(tmp_path):
    root = tmp_path / "bad2"
    _write(root, np.random.default_rng(2))
    np.save(alg.fmri_path(root, 1, "lh"), np.zeros((N_IMG - 1, N_LH), np.float32))
    with pytest.raises(ValueError, match=f"{N_IMG - 1} rows for {N_IMG} training images"):
        alg.load_subject(root, 1, rois=ROIS)
    alg.fmri_path(root, 1, "lh").unlink()
    with pytest.raises(FileNotFoundError, match="lh_training_fmri.npy"):
        alg.load_subject(root, 1, rois=ROIS)


def test_routing_encoder_one_step_with_hemisphere_queries(data):
    from neuroattn.models import RoutingEncoder

    root, _ = data
    betas, _, _ = alg.load_subject(root, 1, rois=ROIS)
    X = np.random.default_rng(0).normal(size=(N_IMG, 4, 8)).astype(np.float32)
    enc = RoutingEncoder(d_model=16, n_heads=2, dim_feedforward=16, max_epochs=1, batch_size=4, val_fraction=0.0,
                         device="cpu").fit(X, betas.betas, voxel_roi=betas.voxel_roi, voxel_hemi=betas.voxel_hemi, grid=(2, 2))
    assert {"V1v.lh", "V1v.rh", "FFA-1.lh", "OFA.rh", "other.lh", "other.rh"} <= set(enc.query_names_)
    assert enc.predict(X).shape == (N_IMG, N_LH + N_RH)
