"""Simulated stimuli + fMRI BIDS dataset: files, reproducibility, planted effects, truth, bad input."""
import hashlib
import json
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from neuroattn.data.simulate import (
    FmriSimParams,
    params_from_config,
    simulate_fmri_dataset,
)
from neuroattn.data.stimuli import CATEGORIES, contrast_energy, draw_stimuli

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(n_subjects=2, n_images=60, image_size=32, n_shared=10, n_repeats_shared=2, n_train_per_subject=30,
            n_repeats_train=1, voxel_size=8.0, tr=2.0, n_runs=2, snr=1.0, task="vision", seed=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim") / "fmri"
    summary = simulate_fmri_dataset(root, **TINY)
    return root, summary


def _hashes(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _truth(root, s):
    with h5py.File(root / "derivatives" / "truth" / f"sub-{s}" / f"sub-{s}_desc-truth.h5") as f:
        out = {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}
        out["roi_routing"] = {k: f["roi_routing"][k][()] for k in f["roi_routing"]}
        out["attrs"] = dict(f.attrs)
    for k in ("voxel_roi", "trial_image", "images", "voxel_category", "voxel_hemi"):
        out[k] = out[k].astype(str)
    return out


def _lsa_betas(root, s, task="vision"):
    """OLS single-trial betas (% signal change) with nilearn's design matrices: an independent LSA."""
    from nilearn.glm.first_level import make_first_level_design_matrix

    tr = json.loads((root / f"task-{task}_bold.json").read_text())["RepetitionTime"]
    ijk = _truth(root, s)["voxel_ijk"]
    betas, images = [], []
    for bold in sorted((root / f"sub-{s}" / "func").glob("*_bold.nii.gz")):
        img = nib.load(bold)
        y = np.asarray(img.dataobj)[tuple(ijk.T)].T.astype(float)
        y = (y / y.mean(0) - 1) * 100
        ev = pd.read_csv(str(bold).replace("_bold.nii.gz", "_events.tsv"), sep="\t")
        cond = ev.assign(trial_type=[f"t{i:04d}" for i in range(len(ev))])
        X = make_first_level_design_matrix(np.arange(img.shape[3]) * tr, cond[["onset", "duration", "trial_type"]],
                                           hrf_model="glover", drift_model="cosine", high_pass=0.008)
        b = np.linalg.lstsq(X.to_numpy(), y, rcond=None)[0][: len(ev)]
        betas.append(b)
        images += ev.stim_file.tolist()
    return np.concatenate(betas), np.array(images)


def test_files_and_shapes(dataset):
    root, summary = dataset
    assert summary["subjects"] == ["01", "02"]
    desc = json.loads((root / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "raw" and "BIDSVersion" in desc
    stim = pd.read_csv(root / "stimuli" / "stimuli.tsv", sep="\t")
    assert list(stim.columns[:2]) == ["stim_file", "category"] and len(stim) == TINY["n_images"]
    assert set(stim.category) == set(CATEGORIES)
    png = np.asarray(Image.open(root / "stimuli" / "img0000.png"))
    assert png.shape == (32, 32, 3) and png.dtype == np.uint8
    n_trials = 10 * 2 + 30
    for s in summary["subjects"]:
        func = root / f"sub-{s}" / "func"
        bolds = sorted(func.glob("*_bold.nii.gz"))
        assert [b.name for b in bolds] == [f"sub-{s}_task-vision_run-{r}_bold.nii.gz" for r in (1, 2)]
        evs = [pd.read_csv(func / f"sub-{s}_task-vision_run-{r}_events.tsv", sep="\t") for r in (1, 2)]
        assert sum(map(len, evs)) == n_trials
        for b, ev in zip(bolds, evs):
            img = nib.load(b)
            assert img.ndim == 4 and img.header.get_zooms()[3] == pytest.approx(2.0)
            assert json.loads(b.with_name(b.name.replace(".nii.gz", ".json")).read_text())["RepetitionTime"] == 2.0
            assert list(ev.columns) == ["onset", "duration", "trial_type", "stim_file"]
            assert ev.stim_file.isin(stim.stim_file).all() and (np.diff(ev.onset) > 3).all()
            assert ev.onset.max() + 20 <= img.shape[3] * 2.0 + 1e-9
            conf = root / "derivatives" / "fmriprep" / f"sub-{s}" / "func" / b.name.replace("_bold.nii.gz", "_desc-confounds_timeseries.tsv")
            c = pd.read_csv(conf, sep="\t")
            assert list(c.columns) == ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"] and len(c) == img.shape[3]
        # shared images: every one seen twice, by every subject
        seen = pd.concat(evs).stim_file.value_counts()
        assert set(seen[seen == 2].index) == set(summary["shared"]) and (seen[seen != 2] == 1).all()
        # ROIs: dseg labels <-> tsv <-> truth voxels
        anat = root / "derivatives" / "rois" / f"sub-{s}" / "anat"
        lab = np.asarray(nib.load(anat / f"sub-{s}_desc-rois_dseg.nii.gz").dataobj)
        tsv = pd.read_csv(anat / f"sub-{s}_desc-rois_dseg.tsv", sep="\t")
        assert list(tsv.columns) == ["index", "name"]
        assert lab.shape == nib.load(bolds[0]).shape[:3]
        assert tsv.name.tolist() == ["ret_V1", "ret_V2", "ret_V3"] + [f"cat_{c}" for c in CATEGORIES]
        t = _truth(root, s)
        names = dict(zip(tsv["index"], tsv["name"]))
        assert [names[v] for v in lab[tuple(t["voxel_ijk"].T)]] == t["voxel_roi"].tolist()
        assert (lab > 0).sum() == len(t["voxel_roi"]) == summary[s]["n_voxels"]
        V = len(t["voxel_roi"])
        assert t["trial_response"].shape == (n_trials, V)
        ev_all = pd.concat(evs)
        assert t["trial_image"].tolist() == ev_all.stim_file.tolist()
        assert np.allclose(t["trial_onset"], ev_all.onset) and t["trial_run"].tolist() == [1] * len(evs[0]) + [2] * len(evs[1])


def test_truth_consistency(dataset):
    root, summary = dataset
    t = _truth(root, "01")
    V = len(t["voxel_roi"])
    ret = np.char.startswith(t["voxel_roi"], "ret_")
    assert np.isnan(t["rf_center"][~ret]).all() and np.isfinite(t["rf_center"][ret]).all()
    assert ((t["rf_center"][ret] >= 0) & (t["rf_center"][ret] <= 1)).all()
    # left hemisphere sees the right visual field
    assert np.mean(t["rf_center"][ret & (t["voxel_hemi"] == "lh"), 0] > 0.5) > 0.9
    assert np.mean(t["rf_center"][ret & (t["voxel_hemi"] == "rh"), 0] < 0.5) > 0.9
    assert ((t["reliability"] > 0) & (t["reliability"] < 1)).all() and t["reliability"].shape == (V,)
    cat = np.char.startswith(t["voxel_roi"], "cat_")
    assert (np.char.add("cat_", t["voxel_category"][cat]) == t["voxel_roi"][cat]).all()
    assert set(t["roi_routing"]) == set(t["voxel_roi"])
    for m in t["roi_routing"].values():
        assert m.shape == (32, 32) and m.sum() == pytest.approx(1, abs=1e-4) and (m >= 0).all()
    # per-image routing of category ROIs: on the object of the category, nowhere when it is absent
    with h5py.File(root / "derivatives" / "truth" / "sub-01" / "sub-01_desc-truth.h5") as f:
        routing = {k: f["image_routing"][k][()].astype(float) for k in f["image_routing"]}
    assert set(routing) == {f"cat_{c}" for c in CATEGORIES}
    objects = pd.read_csv(root / "derivatives" / "truth" / "stimuli.tsv", sep="\t")
    g = (np.arange(24) + 0.5) / 24
    for c in CATEGORIES:
        m = routing[f"cat_{c}"]
        assert m.shape == (len(t["images"]), 24, 24)
        has = np.isin(t["images"], objects.loc[objects.category == c, "stim_file"])
        assert np.allclose(m.sum((1, 2)), has, atol=1e-2)
        single = objects[(objects.category == c)].groupby("stim_file").filter(lambda d: len(d) == 1).set_index("stim_file")
        for i in np.flatnonzero(np.isin(t["images"], single.index))[:5]:
            o = single.loc[t["images"][i]]
            com = (m[i].sum(0) @ g, m[i].sum(1) @ g)
            assert np.hypot(com[0] - o.x, com[1] - o.y) < 0.08, (c, t["images"][i], com, (o.x, o.y))
    # trial responses = image response + trial noise whose variance matches 1 - reliability
    row = {im: i for i, im in enumerate(t["images"])}
    resid = t["trial_response"] - t["image_response"][[row[i] for i in t["trial_image"]]]
    noise_frac = resid.var(0) / (resid.var(0) + t["image_response"].var(0))
    assert np.corrcoef(noise_frac, 1 - t["reliability"])[0, 1] > 0.8


def test_lsa_recovers_trial_responses(dataset):
    root, _ = dataset
    betas, _ = _lsa_betas(root, "01")
    truth = _truth(root, "01")["trial_response"]
    r = [np.corrcoef(betas[:, v], truth[:, v])[0, 1] for v in range(truth.shape[1])]
    assert np.median(r) > 0.9


def test_roi_effects_in_bold(dataset):
    root, _ = dataset
    betas, images = _lsa_betas(root, "02")
    t = _truth(root, "02")
    objects = pd.read_csv(root / "derivatives" / "truth" / "stimuli.tsv", sep="\t")
    # category ROIs: larger response on trials whose image contains their category
    for c in CATEGORIES:
        has = np.isin(images, objects.loc[objects.category == c, "stim_file"])
        roi = betas[:, t["voxel_roi"] == f"cat_{c}"].mean(1)
        assert has.any() and (~has).any()
        assert roi[has].mean() - roi[~has].mean() > 0.5 * roi.std(), c
    # retinotopic voxels: response tracks the contrast energy under their RF (energy from the PNGs)
    stim = pd.read_csv(root / "stimuli" / "stimuli.tsv", sep="\t")
    pix = np.stack([np.asarray(Image.open(root / "stimuli" / f)) for f in stim.stim_file])
    energy = contrast_energy(pix, grid=32)[pd.Index(stim.stim_file).get_indexer(images)]
    g = (np.arange(32) + 0.5) / 32
    rs = []
    for v in np.flatnonzero(np.char.startswith(t["voxel_roi"], "ret_V1")):
        (x, y), sd = t["rf_center"][v], t["rf_sigma"][v]
        w = np.exp(-((g[None, :] - x) ** 2 + (g[:, None] - y) ** 2) / (2 * sd**2))
        rs.append(np.corrcoef((energy * w).sum((1, 2)), betas[:, v])[0, 1])
    assert np.median(rs) > 0.3
    # ... and not to the energy at the opposite place of the visual field
    rs_far = []
    for v in np.flatnonzero(np.char.startswith(t["voxel_roi"], "ret_V1")):
        (x, y), sd = 1 - t["rf_center"][v], t["rf_sigma"][v]
        w = np.exp(-((g[None, :] - x) ** 2 + (g[:, None] - y) ** 2) / (2 * sd**2))
        rs_far.append(np.corrcoef((energy * w).sum((1, 2)), betas[:, v])[0, 1])
    assert np.median(rs) > np.median(rs_far) + 0.2


def test_reproducible_bytes(dataset, tmp_path):
    root, _ = dataset
    again = tmp_path / "fmri"
    simulate_fmri_dataset(again, **TINY)
    assert _hashes(root) == _hashes(again)
    other = tmp_path / "other"
    simulate_fmri_dataset(other, **{**TINY, "seed": 4, "n_subjects": 1})
    h = _hashes(other)
    assert h["sub-01/func/sub-01_task-vision_run-1_bold.nii.gz"] != _hashes(root)["sub-01/func/sub-01_task-vision_run-1_bold.nii.gz"]
    assert h["stimuli/img0000.png"] != _hashes(root)["stimuli/img0000.png"]


def test_overwrite_rules(dataset, tmp_path):
    root, _ = dataset
    with pytest.raises(FileExistsError, match="not empty"):
        simulate_fmri_dataset(root, **TINY)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not a simulated dataset"):
        simulate_fmri_dataset(foreign, overwrite=True, **TINY)
    assert (foreign / "precious.txt").exists()
    # a failure leaves no partial output (and no temporary folder) behind
    target = tmp_path / "fail"
    with pytest.raises(ValueError):
        simulate_fmri_dataset(target, **{**TINY, "n_shared": 1000})
    assert not target.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".fail")]


def test_crash_midway_leaves_nothing(tmp_path, monkeypatch):
    import neuroattn.data.simulate as sim

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sim, "simulate_subject", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        sim.simulate_fmri_dataset(tmp_path / "fmri", **TINY)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kw, err, msg", [
    ({"n_subjects": 0}, ValueError, "n_subjects must be >= 1"),
    ({"n_images": 2.5}, TypeError, "n_images must be an integer"),
    ({"image_size": 16}, ValueError, "image_size"),
    ({"n_shared": 50, "n_train_per_subject": 20}, ValueError, "must not exceed n_images"),
    ({"voxel_size": 2.0}, ValueError, "voxel_size"),
    ({"tr": 0}, ValueError, "tr must be in"),
    ({"snr": -1.0}, ValueError, "snr"),
    ({"task": "my-task"}, ValueError, "task must be a BIDS label"),
    ({"n_runs": 1000}, ValueError, "n_runs"),
    ({"seed": -1}, ValueError, "seed"),
])
def test_bad_arguments(kw, err, msg, tmp_path):
    with pytest.raises(err, match=msg):
        simulate_fmri_dataset(tmp_path / "x", **{**TINY, **kw})
    assert not (tmp_path / "x").exists()


def test_params_from_config():
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    p = params_from_config(cfg["simulate"], task="vision", seed=0)
    assert p == FmriSimParams()  # the config's defaults are the function's defaults
    tiny = yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())
    assert params_from_config(tiny["simulate"], task="vision", seed=0).n_subjects == tiny["simulate"]["fmri"]["n_subjects"]
    with pytest.raises(KeyError, match="simulate.fmri: unknown key.*'n_subject'"):
        params_from_config({"fmri": {"n_subject": 2}}, task="vision", seed=0)
    with pytest.raises(KeyError, match="simulate: unknown key.*'n_image'"):
        params_from_config({"n_image": 2}, task="vision", seed=0)


def test_draw_stimuli():
    a = draw_stimuli(24, 40, seed=1)
    b = draw_stimuli(24, 40, seed=1)
    assert np.array_equal(a.images, b.images) and a.images.shape == (24, 40, 40, 3)
    assert a.table.category.value_counts().tolist() == [4] * 6  # balanced dominant categories
    assert len(a.masks) == len(a.objects) and a.masks.shape[1:] == (40, 40)
    assert a.objects.groupby("stim_file").size().between(1, 3).all()
    dom = a.objects[a.objects.object == 0].set_index("stim_file").category
    assert (dom.loc[a.table.stim_file].to_numpy() == a.table.category.to_numpy()).all()
    # the dominant object is on top: fully visible; objects' masks lie where the image differs
    assert (a.objects.loc[a.objects.object == 0, "visible"] == 1).all()
    e = contrast_energy(a.images, grid=8)
    assert e.shape == (24, 8, 8) and (e >= 0).all()
    with pytest.raises(ValueError, match="image_size must be >= 32"):
        draw_stimuli(3, 8)
    with pytest.raises(ValueError, match="categories"):
        draw_stimuli(3, 32, categories=("disk", "blob"))


def test_snr_scales_bold_noise(dataset, tmp_path):
    """Lower snr, noisier BOLD: single-trial betas recover the truth less well."""
    root, _ = dataset
    noisy = tmp_path / "noisy"
    simulate_fmri_dataset(noisy, **{**TINY, "n_subjects": 1, "snr": 0.02})
    r = {}
    for name, rt in (("default", root), ("noisy", noisy)):
        betas, _ = _lsa_betas(rt, "01")
        truth = _truth(rt, "01")["trial_response"]
        r[name] = np.median([np.corrcoef(betas[:, v], truth[:, v])[0, 1] for v in range(truth.shape[1])])
    assert r["default"] > 0.9 and r["noisy"] < r["default"] - 0.2, r


def test_params_defaults_are_config_yaml():
    from neuroattn.config import default_config

    cfg = default_config()
    assert FmriSimParams() == params_from_config(cfg["simulate"], task=cfg["fmri"]["task"], seed=cfg["seed"])
