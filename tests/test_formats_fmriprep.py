"""fMRIPrep derivatives as GLM input: preproc bold, brain mask, confounds with presets."""
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from neuroattn.data import fmri
from neuroattn.data.formats import fmriprep as fp

SHAPE, TR, N_SCANS, SPACE = (4, 4, 3), 2.0, 120, "MNI152NLin2009cAsym"
AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])
N_IMAGES, N_TRIALS = 6, 12


def _write(root, rng):
    """Raw BIDS (events, stimuli) + fMRIPrep derivatives with a strong motion artefact in trans_x."""
    from nilearn.glm.first_level import make_first_level_design_matrix

    (root / "stimuli").mkdir(parents=True)
    for i in range(N_IMAGES):
        Image.fromarray(np.full((4, 4, 3), i * 20, np.uint8)).save(root / "stimuli" / f"im{i}.png")
    (root / "dataset_description.json").write_text(json.dumps({"Name": "t", "BIDSVersion": "1.8.0"}))
    (root / "task-x_bold.json").write_text(json.dumps({"RepetitionTime": TR, "TaskName": "x"}))
    roi = np.zeros(SHAPE, np.int16)
    roi[1:3, 1:3, :2] = 1
    brain = np.ones(SHAPE, bool)
    brain[0, 0, :] = False
    rd = root / "derivatives" / "rois" / "sub-01" / "anat"
    rd.mkdir(parents=True)
    nib.save(nib.Nifti1Image(roi, AFFINE), rd / "sub-01_desc-rois_dseg.nii.gz")
    pd.DataFrame({"index": [1], "name": ["roiA"]}).to_csv(rd / "sub-01_desc-rois_dseg.tsv", sep="\t", index=False)
    fd = root / "derivatives" / "fmriprep" / "sub-01" / "func"
    fd.mkdir(parents=True)
    (root / "sub-01" / "func").mkdir(parents=True)
    pattern = rng.normal(size=(N_IMAGES,) + SHAPE)
    truth = []
    for run in (1, 2):
        stem = f"sub-01_task-x_run-{run}"
        images = np.tile(np.arange(N_IMAGES), 2)
        rng.shuffle(images)
        ev = pd.DataFrame({"onset": 10.0 + 18.0 * np.arange(N_TRIALS), "duration": 1.0, "trial_type": "stim",
                           "stim_file": [f"im{i}.png" for i in images]})
        ev.to_csv(root / "sub-01" / "func" / f"{stem}_events.tsv", sep="\t", index=False)
        names = [f"t{i}" for i in range(N_TRIALS)]
        dm = make_first_level_design_matrix(np.arange(N_SCANS) * TR, events=pd.DataFrame(
            {"onset": ev.onset, "duration": ev.duration, "trial_type": names}), hrf_model="glover", drift_model=None)
        amp = 2.0 * pattern[images] + 0.3 * rng.normal(size=(N_TRIALS,) + SHAPE)   # % signal change
        truth.append(amp)
        motion = rng.normal(size=(N_SCANS, 6))
        sig = np.einsum("st,txyz->xyzs", dm[names].to_numpy(), amp)
        bold = 100.0 * (1 + sig / 100.0) + 4.0 * motion[:, 0] + 0.2 * rng.normal(size=SHAPE + (N_SCANS,))
        bold[~brain] = 0.0
        img = nib.Nifti1Image(bold.astype(np.float32), AFFINE)
        img.header.set_zooms((3.0, 3.0, 3.0, TR))
        img.header.set_xyzt_units("mm", "sec")
        nib.save(img, fd / f"{stem}_space-{SPACE}_desc-preproc_bold.nii.gz")
        (fd / f"{stem}_space-{SPACE}_desc-preproc_bold.json").write_text(json.dumps({"RepetitionTime": TR}))
        nib.save(nib.Nifti1Image(brain.astype(np.uint8), AFFINE), fd / f"{stem}_space-{SPACE}_desc-brain_mask.nii.gz")
        conf = pd.DataFrame(motion, columns=["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"])
        conf["csf"] = rng.normal(size=N_SCANS)
        conf["trans_x_derivative1"] = np.r_[np.nan, np.diff(motion[:, 0])]
        conf.to_csv(fd / f"{stem}_desc-confounds_timeseries.tsv", sep="\t", index=False, na_rep="n/a")
    return dict(truth=np.concatenate(truth), roi=roi, brain=brain)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("fmriprep")
    return root, _write(root, np.random.default_rng(0))


def _corr(betas, planted):
    t = planted["truth"][:, betas.voxel_ijk[:, 0], betas.voxel_ijk[:, 1], betas.voxel_ijk[:, 2]]
    return np.mean([np.corrcoef(betas.trial_betas[:, v], t[:, v])[0, 1] for v in range(t.shape[1])])


def test_expand_confounds_presets():
    assert fp.expand_confounds(["motion6"]) == ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
    m24 = fp.expand_confounds(["motion24"])
    assert len(m24) == 24 and "rot_z_derivative1_power2" in m24
    assert fp.expand_confounds(["acompcor", "csf", "a_comp_cor_00"]) == [f"a_comp_cor_{i:02d}" for i in range(5)] + ["csf"]
    assert fmri.glm_params({"confounds": ["motion6", "csf"]})["confounds"][-1] == "csf"


def test_runs_found_with_events_mask_confounds(dataset):
    root, _ = dataset
    runs = fp.find_fmriprep_runs(root, "01", "x", space=SPACE)
    assert [r.run for r in runs] == ["1", "2"]
    r = runs[0]
    assert r.bold.name.endswith("desc-preproc_bold.nii.gz") and r.events == root / "sub-01" / "func" / "sub-01_task-x_run-1_events.tsv"
    assert r.mask.name.endswith("desc-brain_mask.nii.gz") and r.confounds.name.endswith("confounds_timeseries.tsv")
    assert r.metadata()["RepetitionTime"] == TR and r.sidecars[-1].name.endswith("preproc_bold.json")
    assert r.mask in r.files()


def test_confounds_remove_motion_artefact(dataset):
    root, planted = dataset
    with_conf = fmri.preprocess_subject(root, "01", "x", glm={"confounds": ["motion6"]}, fmriprep={"space": SPACE})
    without = fmri.preprocess_subject(root, "01", "x", glm={"confounds": []}, fmriprep={"space": SPACE})
    b = with_conf.betas
    assert b.trial_betas.shape == (2 * N_TRIALS, int((planted["roi"] > 0).sum()))
    r_with, r_without = _corr(b, planted), _corr(without.betas, planted)
    assert r_with > 0.9 and r_with > r_without + 0.1, (r_with, r_without)
    assert np.isfinite(b.ncsnr).all() and np.median(b.ncsnr) > 1


def test_keep_other_uses_fmriprep_brain_mask(dataset):
    root, planted = dataset
    res = fmri.preprocess_subject(root, "01", "x", glm={"confounds": ["trans_x_derivative1", "csf"]},
                                  keep_other=True, fmriprep={"space": SPACE})
    assert res.betas.trial_betas.shape[1] == int(planted["brain"].sum())
    assert (res.betas.voxel_roi == "other").sum() == int((planted["brain"] & (planted["roi"] == 0)).sum())
    assert any(i["path"].endswith("desc-brain_mask.nii.gz") for i in res.provenance["inputs"])


def test_missing_confound_columns_named(dataset):
    root, _ = dataset
    with pytest.raises(ValueError, match=r"run-1_desc-confounds_timeseries\.tsv.*a_comp_cor_00"):
        fmri.preprocess_subject(root, "01", "x", glm={"confounds": ["acompcor"]}, fmriprep={"space": SPACE})


def test_unknown_space_lists_spaces(dataset):
    root, _ = dataset
    with pytest.raises(FileNotFoundError, match=rf"space-T1w.*spaces found for this subject: \['{SPACE}'\]"):
        fp.find_fmriprep_runs(root, "01", "x", space="T1w")


def test_missing_mask_named(tmp_path):
    root = tmp_path / "ds"
    _write(root, np.random.default_rng(1))
    mask = root / "derivatives" / "fmriprep" / "sub-01" / "func" / f"sub-01_task-x_run-2_space-{SPACE}_desc-brain_mask.nii.gz"
    mask.unlink()
    with pytest.raises(FileNotFoundError, match=r"run-2_space-.*preproc_bold\.nii\.gz: no matching .*brain_mask"):
        fp.find_fmriprep_runs(root, "01", "x", space=SPACE)


def test_routing_encoder_one_step(dataset):
    from neuroattn.models import RoutingEncoder

    root, _ = dataset
    b = fmri.preprocess_subject(root, "01", "x", glm={"confounds": ["motion6"]}, fmriprep={"space": SPACE}).betas
    X = np.random.default_rng(0).normal(size=(len(b.images), 4, 8)).astype(np.float32)
    enc = RoutingEncoder(d_model=8, n_heads=2, dim_feedforward=8, max_epochs=1, batch_size=4, val_fraction=0.0,
                         device="cpu").fit(X, b.betas, voxel_roi=b.voxel_roi, grid=(2, 2))
    assert enc.predict(X).shape == b.betas.shape
