"""fMRI preprocessing: BIDS discovery, single-trial GLM (LSA/LSS), ROIs, z-scoring, ceilings, bad input.

A tiny BIDS dataset with planted single-trial responses is built here from nilearn's design
matrices (``make_bids``), so every check compares against a known truth.
"""
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr

from neuroattn.data.betas import Betas
from neuroattn.data.bids import find_fmri_runs, find_roi_files
from neuroattn.data.fmri import (
    fit_trial_betas,
    glm_params,
    preprocess_subject,
    trial_design,
    write_subject,
    zscore_by_session,
)

ROOT = Path(__file__).resolve().parent.parent
SHAPE = (6, 6, 4)
TR = 2.0


def make_bids(root, subject="01", task="vision", sessions=("",), n_runs=2, n_images=16, n_reps=3,
              isi=6.0, noise=0.15, seed=0, confounds=True):
    """Write a tiny BIDS fMRI dataset with known single-trial responses; return the truth.

    Voxel v responds to image m with ``amp_v * pattern[m, v]`` plus trial noise of sd 1, so its
    reliability is amp_v^2 / (amp_v^2 + 1). BOLD = 100 + sum_t response[t, v] * hrf_t + drift +
    scan noise (percent signal change units).
    """
    from nilearn.glm.first_level import make_first_level_design_matrix

    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "t", "BIDSVersion": "1.8.0"}))
    (root / f"task-{task}_bold.json").write_text(json.dumps({"RepetitionTime": TR, "TaskName": task}))
    (root / "stimuli").mkdir(exist_ok=True)
    images = [f"img{i:04d}.png" for i in range(n_images)]
    for im in images:
        (root / "stimuli" / im).write_bytes(b"png")
    n_vox = int(np.prod(SHAPE))
    pattern = rng.standard_normal((n_images, n_vox))
    amp = np.exp(rng.uniform(np.log(0.2), np.log(3.0), n_vox))
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    # ROIs: label 1 (lh) and 2 (rh) in the lower 3 slices, 0 above
    dseg = np.zeros(SHAPE, dtype=np.int16)
    dseg[:3, :, :3] = 1
    dseg[3:, :, :3] = 2
    adir = root / "derivatives" / "rois" / f"sub-{subject}" / "anat"
    adir.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(dseg, affine), adir / f"sub-{subject}_desc-rois_dseg.nii.gz")
    pd.DataFrame({"index": [1, 2], "name": ["ret_v1", "cat_face"], "hemi": ["lh", "rh"]}).to_csv(
        adir / f"sub-{subject}_desc-rois_dseg.tsv", sep="\t", index=False)
    order = rng.permutation(np.repeat(np.arange(n_images), n_reps))
    per_run = np.array_split(order, n_runs * len(sessions))
    truth_rows, truth_resp = [], []
    k = 0
    for ses in sessions:
        for r in range(1, n_runs + 1):
            imgs = per_run[k]
            k += 1
            onsets = 6.0 + isi * np.arange(len(imgs))
            n_scans = int(np.ceil((onsets[-1] + 20.0) / TR))
            resp = amp * pattern[imgs] + rng.standard_normal((len(imgs), n_vox))
            names = [f"t{i:03d}" for i in range(len(imgs))]
            dm = make_first_level_design_matrix(
                np.arange(n_scans) * TR, pd.DataFrame({"onset": onsets, "duration": 1.0, "trial_type": names}),
                hrf_model="glover", drift_model=None)
            X = dm[names].to_numpy()
            t = np.arange(n_scans) / n_scans
            drift = np.outer(np.cos(np.pi * t), rng.standard_normal(n_vox))
            motion = rng.standard_normal((n_scans, 2))
            bold = 100 + X @ resp + drift + 0.2 * motion @ rng.standard_normal((2, n_vox)) * confounds \
                + noise * rng.standard_normal((n_scans, n_vox))
            ents = f"sub-{subject}" + (f"_ses-{ses}" if ses else "") + f"_task-{task}_run-{r:02d}"
            fdir = root / f"sub-{subject}" / (f"ses-{ses}" if ses else "") / "func"
            fdir.mkdir(parents=True, exist_ok=True)
            bold = bold.T.reshape(*SHAPE, n_scans)
            bold[0, :, 3] = 0  # outside the brain: never in an ROI, not `other` either
            img = nib.Nifti1Image(bold.astype(np.float32), affine)
            img.header.set_xyzt_units("mm", "sec")
            img.header["pixdim"][4] = TR
            nib.save(img, fdir / f"{ents}_bold.nii.gz")
            pd.DataFrame({"onset": onsets, "duration": 1.0, "trial_type": "stimulus",
                          "stim_file": [images[i] for i in imgs]}).to_csv(fdir / f"{ents}_events.tsv", sep="\t", index=False)
            if confounds:
                cdir = root / "derivatives" / "fmriprep" / f"sub-{subject}" / (f"ses-{ses}" if ses else "") / "func"
                cdir.mkdir(parents=True, exist_ok=True)
                pd.DataFrame(motion, columns=["trans_x", "rot_z"]).to_csv(
                    cdir / f"{ents}_desc-confounds_timeseries.tsv", sep="\t", index=False)
            truth_rows.append(pd.DataFrame({"session": ses, "run": f"{r:02d}", "onset": onsets}))
            truth_resp.append(resp)
    truth = pd.concat(truth_rows, ignore_index=True)
    ijk = np.array(np.unravel_index(np.arange(n_vox), SHAPE)).T  # C order = voxel order above
    return {"trials": truth, "response": np.concatenate(truth_resp), "reliability": amp**2 / (amp**2 + 1),
            "ijk": ijk}


def _match(result, truth):
    """Estimated (trial, voxel) betas and truth rows/columns aligned by (session, run, onset) and ijk."""
    key = lambda df: list(zip(df.session.astype(str), df.run.astype(str), df.onset.round(3)))
    pos = {k: i for i, k in enumerate(key(truth["trials"]))}
    rows = [pos[k] for k in key(result.trials)]
    flat = np.ravel_multi_index(result.betas.voxel_ijk.T, SHAPE)
    return result.betas.trial_betas, truth["response"][rows][:, flat], truth["reliability"][flat]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("bids")
    truth = make_bids(root, sessions=("a", "b"), n_runs=2)
    return root, truth


@pytest.fixture(scope="module")
def lsa(sim):
    root, _ = sim
    return preprocess_subject(root, "01", "vision", glm={"confounds": ["trans_x", "rot_z"]})


# --- discovery -------------------------------------------------------------------------------

def test_discovery_sessions_runs_sidecar_inheritance(sim):
    root, _ = sim
    runs = find_fmri_runs(root, "01", "vision")
    assert [(r.session, r.run) for r in runs] == [("a", "01"), ("a", "02"), ("b", "01"), ("b", "02")]
    assert all(r.events.name == r.bold.name.replace("_bold.nii.gz", "_events.tsv") for r in runs)
    assert all(r.confounds is not None and "desc-confounds_timeseries" in r.confounds.name for r in runs)
    assert runs[0].metadata()["RepetitionTime"] == TR  # inherited from the root task-vision_bold.json
    dseg, tsv = find_roi_files(root, "01")
    assert dseg.name == "sub-01_desc-rois_dseg.nii.gz" and tsv.name == "sub-01_desc-rois_dseg.tsv"
    with pytest.raises(FileNotFoundError, match="task-other"):
        find_fmri_runs(root, "01", "other")


def test_discovery_without_session_or_run(tmp_path):
    make_bids(tmp_path, n_runs=1, confounds=False)
    func = tmp_path / "sub-01" / "func"
    for p in func.iterdir():  # drop the run- entity
        p.rename(func / p.name.replace("_run-01", ""))
    # a run-specific sidecar overrides the dataset-level one
    (func / "sub-01_task-vision_bold.json").write_text(json.dumps({"RepetitionTime": TR, "SliceTiming": [0.0]}))
    (run,) = find_fmri_runs(tmp_path, "01", "vision")
    assert run.run == "" and run.session == "" and run.confounds is None
    assert run.metadata()["SliceTiming"] == [0.0] and len(run.sidecars) == 2


# --- GLM -------------------------------------------------------------------------------------

def test_lsa_recovers_planted_trial_responses(lsa, sim):
    _, truth = sim
    est, true, _ = _match(lsa, truth)
    r = np.array([pearsonr(est[:, v], true[:, v])[0] for v in range(est.shape[1])])
    # median over voxels of the per-voxel correlation across trials
    assert np.median(r) >= 0.9
    assert est.shape == (4 * 12, 6 * 6 * 3)  # 48 trials; ROI voxels only (the lower 3 of 4 slices)


def test_lsa_betas_equal_nilearn_contrast(sim):
    """The trial betas read from the fitted parameters are nilearn's effect sizes."""
    from nilearn.glm.first_level import FirstLevelModel

    root, _ = sim
    run = find_fmri_runs(root, "01", "vision")[0]
    img = nib.load(run.bold)
    events = pd.read_csv(run.events, sep="\t").assign(is_trial=True)
    glm = glm_params({"noise_model": "ols"})
    design, cols = trial_design(events, img.shape[3], TR, glm)
    mask = np.zeros(SHAPE, bool)
    mask[1:4, 2:5, 1:3] = True
    mimg = nib.Nifti1Image(mask.astype(np.uint8), img.affine)
    betas = fit_trial_betas(img, design, cols, mimg, glm)
    model = FirstLevelModel(t_r=TR, mask_img=mimg, noise_model="ols", signal_scaling=0, reports=False)
    model.fit(img, design_matrices=design)
    eff = model.compute_contrast(cols[3], output_type="effect_size").get_fdata()
    np.testing.assert_allclose(betas[3], eff[mask], rtol=1e-4, atol=1e-5)


def test_lss_agrees_with_lsa_on_well_separated_trials(sim, lsa):
    root, truth = sim
    lss = preprocess_subject(root, "01", "vision", glm={"method": "lss", "confounds": ["trans_x", "rot_z"]})
    est, true, _ = _match(lss, truth)
    r = np.array([pearsonr(est[:, v], true[:, v])[0] for v in range(est.shape[1])])
    assert np.median(r) >= 0.85
    agree = [pearsonr(lss.betas.trial_betas[:, v], lsa.betas.trial_betas[:, v])[0] for v in range(est.shape[1])]
    assert np.median(agree) > 0.85
    assert lss.provenance["config"]["glm"]["method"] == "lss"


def test_betas_zscored_within_session_and_trials_kept_apart(lsa):
    b = lsa.betas
    for s in ("a", "b"):
        x = b.trial_betas[b.trial_session == s]
        np.testing.assert_allclose(x.mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(x.std(0), 1, atol=1e-4)
    assert len(b.trial_image) == 48 and len(b.images) == 16 and set(b.n_repeats) == {3}
    im = b.images[0]
    np.testing.assert_allclose(b.betas[0], b.trial_betas[b.trial_image == im].mean(0), atol=1e-6)


def test_non_trial_events_are_nuisance_regressors(tmp_path):
    """Rows without a stim_file (e.g. fixation, responses) get one regressor per trial_type, no beta."""
    make_bids(tmp_path, n_runs=1, n_images=4, n_reps=2, confounds=False)
    (run,) = find_fmri_runs(tmp_path, "01", "vision")
    ev = pd.read_csv(run.events, sep="\t")
    extra = pd.DataFrame({"onset": [3.0, 20.0], "duration": 0.5, "trial_type": "response", "stim_file": "n/a"})
    pd.concat([ev, extra]).to_csv(run.events, sep="\t", index=False)
    res = preprocess_subject(tmp_path, "01", "vision")
    assert len(res.trials) == 8 and list(res.trials.onset) == sorted(ev.onset)
    from neuroattn.data.fmri import read_events

    events = read_events(run, 60, TR, tmp_path / "stimuli")
    design, cols = trial_design(events, 60, TR, glm_params(None))
    assert "nuis_response" in design.columns and len(cols) == 8 and cols[0] == "trial0000"


def test_zscore_by_session_hand_computed():
    x = np.array([[1.0, 5.0], [3.0, 5.0], [10.0, 0.0], [20.0, 2.0]])
    z = zscore_by_session(x, np.array(["a", "a", "b", "b"]))
    np.testing.assert_allclose(z, [[-1, 0], [1, 0], [-1, -1], [1, 1]])


def test_rois_labels_hemi_and_keep_other(sim, lsa):
    root, _ = sim
    b = lsa.betas
    assert b.rois == ["ret_v1", "cat_face"]
    assert set(b.voxel_hemi[b.voxel_roi == "ret_v1"]) == {"lh"}
    assert np.all(b.voxel_ijk[b.voxel_roi == "cat_face", 0] >= 3) and np.all(b.voxel_ijk[:, 2] < 3)
    other = preprocess_subject(root, "01", "vision", keep_other=True)
    o = other.betas
    assert "other" in o.rois and set(o.voxel_hemi[o.voxel_roi == "other"]) == {""}
    oijk = o.voxel_ijk[o.voxel_roi == "other"]
    assert np.all(oijk[:, 2] == 3) and np.all(oijk[:, 0] > 0) and len(oijk) >= 20  # the zero voxels are out
    assert o.trial_betas.shape[1] > b.trial_betas.shape[1]


# --- ceilings and outputs ----------------------------------------------------------------------

def test_noise_ceiling_tracks_true_reliability(lsa, sim):
    _, truth = sim
    _, _, rel = _match(lsa, truth)
    rho = spearmanr(lsa.betas.ncsnr, rel)[0]
    assert rho >= 0.8
    nc = lsa.voxels.noise_ceiling.to_numpy()
    assert np.all((nc >= 0) & (nc <= 1))
    snr = lsa.voxels.ncsnr.to_numpy()
    np.testing.assert_allclose(nc, snr**2 / (snr**2 + 1 / 3), rtol=1e-4)  # every image seen 3 times


def test_outputs_written_and_readable(lsa, tmp_path):
    paths = [tmp_path / "out" / n for n in ("b.h5", "t.tsv", "v.tsv", "p.json")]
    write_subject(lsa, *paths)
    b = Betas.read(paths[0])
    np.testing.assert_array_equal(b.trial_betas, lsa.betas.trial_betas)
    np.testing.assert_allclose(b.ncsnr, lsa.betas.ncsnr)
    t = pd.read_csv(paths[1], sep="\t", dtype={"run": str, "session": str})
    assert list(t.columns) == ["trial", "image", "session", "run", "onset", "duration", "trial_type"]
    assert list(t.image) == list(b.trial_image)
    v = pd.read_csv(paths[2], sep="\t", keep_default_na=False)
    assert list(v.columns) == ["voxel", "roi", "hemi", "i", "j", "k", "ncsnr", "noise_ceiling"]
    np.testing.assert_array_equal(v[["i", "j", "k"]].to_numpy(), b.voxel_ijk)
    prov = json.loads(paths[3].read_text())
    assert prov["seed"] == 0 and set(prov["versions"]) >= {"neuroattn", "nilearn", "nibabel", "numpy"}
    sizes = {Path(i["path"]).name: i["bytes"] for i in prov["inputs"]}
    assert sizes["sub-01_ses-a_task-vision_run-01_bold.nii.gz"] > 0 and "img0000.png" in sizes
    assert sorted(os.listdir(tmp_path / "out")) == ["b.h5", "p.json", "t.tsv", "v.tsv"]  # no temp files left


# --- quality on the workflow's simulator (neuroattn.data.simulate, tiny sizes) ---------------------

@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    sim = pytest.importorskip("neuroattn.data.simulate")
    import h5py

    root = tmp_path_factory.mktemp("simfmri") / "bids"
    sim.simulate_fmri_dataset(root, n_subjects=1, n_images=120, image_size=32, n_shared=30, n_repeats_shared=3,
                              n_train_per_subject=30, voxel_size=8.0, n_runs=2, seed=0)
    res = preprocess_subject(root, "01", "vision")
    with h5py.File(root / "derivatives" / "truth" / "sub-01" / "sub-01_desc-truth.h5", "r") as f:
        truth = {k: f[k][()] for k in ("voxel_ijk", "trial_run", "trial_onset", "trial_response", "reliability")}
    # match trials by (run, onset) and voxels by their grid index
    pos = {(int(r), round(float(o), 3)): i for i, (r, o) in enumerate(zip(truth["trial_run"], truth["trial_onset"]))}
    rows = [pos[(int(r), round(float(o), 3))] for r, o in zip(res.trials.run, res.trials.onset)]
    vpos = {tuple(x): i for i, x in enumerate(truth["voxel_ijk"])}
    cols = [vpos[tuple(x)] for x in res.betas.voxel_ijk]
    return res, truth["trial_response"][rows][:, cols], truth["reliability"][cols]


def test_simulator_trial_betas_match_true_responses(simulated):
    res, true, _ = simulated
    est = res.betas.trial_betas
    assert est.shape == true.shape and est.shape[0] == 30 * 3 + 30
    r = np.array([pearsonr(est[:, v], true[:, v])[0] for v in range(est.shape[1])])
    assert np.median(r) >= 0.9  # median over voxels of the correlation across trials


def test_simulator_noise_ceiling_tracks_true_reliability(simulated):
    res, _, rel = simulated
    assert spearmanr(res.betas.ncsnr, rel)[0] >= 0.8
    assert res.voxels.roi.str.match(r"^(ret_|cat_)").all()


# --- bad input -------------------------------------------------------------------------------

def _bold(root, run="01"):
    return root / "sub-01" / "func" / f"sub-01_task-vision_run-{run}_bold.nii.gz"


def _events(root, run="01"):
    return root / "sub-01" / "func" / f"sub-01_task-vision_run-{run}_events.tsv"


def _truncate(root):
    p = _bold(root, "02")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _corrupt(root):
    p = _bold(root, "02")
    raw = bytearray(gzip.decompress(p.read_bytes()))
    p.write_bytes(gzip.compress(bytes(raw[: len(raw) - 500])))


def _missing_stim(root):
    ev = pd.read_csv(_events(root), sep="\t")
    ev.loc[2, "stim_file"] = "img9999.png"
    ev.to_csv(_events(root), sep="\t", index=False)


def _past_end(root):
    ev = pd.read_csv(_events(root, "02"), sep="\t")
    ev.loc[len(ev) - 1, "onset"] = 10_000.0
    ev.to_csv(_events(root, "02"), sep="\t", index=False)


def _tr_mismatch(root):
    (root / "sub-01" / "func" / "sub-01_task-vision_run-02_bold.json").write_text(json.dumps({"RepetitionTime": 1.5}))


def _nans(root):
    img = nib.load(_bold(root, "02"))
    data = img.get_fdata().astype(np.float32)
    data[1, 1, 1, 5] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine, img.header), _bold(root, "02"))


def _no_dseg_tsv(root):
    (root / "derivatives" / "rois" / "sub-01" / "anat" / "sub-01_desc-rois_dseg.tsv").unlink()


def _no_onset_column(root):
    pd.read_csv(_events(root), sep="\t").drop(columns=["onset"]).to_csv(_events(root), sep="\t", index=False)


def _no_stim_column(root):
    pd.read_csv(_events(root), sep="\t").drop(columns=["stim_file"]).to_csv(_events(root), sep="\t", index=False)


BAD = {
    "truncated": (_truncate, "run-02_bold.nii.gz", "truncated or corrupt"),
    "corrupt": (_corrupt, "run-02_bold.nii.gz", "truncated or corrupt"),
    "missing_stimulus": (_missing_stim, "run-01_events.tsv", "not found.*img9999.png"),
    "past_end": (_past_end, "run-02_events.tsv", "end after the run"),
    "tr_mismatch": (_tr_mismatch, "run-02_bold.nii.gz", "TR mismatch.*1.5"),
    "nan": (_nans, "run-02_bold.nii.gz", "1 NaN"),
    "dseg_without_tsv": (_no_dseg_tsv, "desc-rois_dseg.nii.gz", "without its label table"),
    "no_onset": (_no_onset_column, "run-01_events.tsv", r"missing required events column.*onset"),
    "no_stim_file": (_no_stim_column, "run-01_events.tsv", r"missing required events column.*stim_file"),
}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    make_bids(root, n_runs=2, n_images=4, n_reps=2, confounds=False)
    return root


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_names_file_and_problem(case, clean, tmp_path):
    import shutil

    root = tmp_path / "bids"
    shutil.copytree(clean, root)
    breaker, fname, problem = BAD[case]
    breaker(root)
    with pytest.raises((ValueError, FileNotFoundError)) as err:
        preprocess_subject(root, "01", "vision")
    msg = str(err.value)
    assert fname in msg and pytest.importorskip("re").search(problem, msg), msg


def _run_script(root, out, glm=None):
    """Run rules/scripts/fmri_betas.py (stage neuroattn.stages.fmri.fmri_betas) as Snakemake would, in a
    subprocess; return (rc, stderr)."""
    wrapper = f"""
import runpy, types, sys
class NS(dict):
    __getattr__ = dict.__getitem__
out = {str(out)!r}
snakemake = NS(
    input=NS(dataset={str(root / 'dataset_description.json')!r}),
    output=NS(betas=out + '/b.h5', trials=out + '/t.tsv', voxels=out + '/v.tsv', provenance=out + '/p.json'),
    params=NS(bids_root={str(root)!r}, task='vision', glm={glm or {}!r}, keep_other=False, seed=0),
    wildcards=NS(subject='01'), log=[out + '/log.txt'], threads=1)
runpy.run_path({str(ROOT / 'rules' / 'scripts' / 'fmri_betas.py')!r}, init_globals={{'snakemake': snakemake}})
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, env=env, timeout=120)
    return proc.returncode, proc.stderr


def test_script_exit_code_and_no_partial_outputs(clean, tmp_path):
    import shutil

    out = tmp_path / "out"
    rc, err = _run_script(clean, out)
    assert rc == 0, err
    assert sorted(os.listdir(out)) == ["b.h5", "log.txt", "p.json", "t.tsv", "v.tsv"]
    bad = tmp_path / "bad"
    shutil.copytree(clean, bad)
    _past_end(bad)
    out2 = tmp_path / "out2"
    rc, err = _run_script(bad, out2)
    assert rc != 0 and "end after the run" in err
    assert sorted(os.listdir(out2)) == ["log.txt"]  # nothing but the log


def test_fmri_and_simulate_stages_are_registered_under_their_rule_names():
    from neuroattn.stages import STAGES, get_stage

    for rule, target in [("simulate_fmri", "neuroattn.stages.simulate:simulate_fmri"),
                         ("simulate_eeg", "neuroattn.stages.simulate:simulate_eeg"),
                         ("stimuli", "neuroattn.stages.fmri:stimuli"),
                         ("fmri_betas", "neuroattn.stages.fmri:fmri_betas"),
                         ("image_split", "neuroattn.stages.fmri:image_split")]:
        get_stage(rule)
        assert STAGES[rule] == target
    for script in ("simulate_fmri", "simulate_eeg", "write_stimuli", "fmri_betas", "image_split"):
        code = (ROOT / "rules" / "scripts" / f"{script}.py").read_text().strip().splitlines()
        assert len(code) == 4 and code[-1].startswith("from_snakemake(snakemake, "), script
