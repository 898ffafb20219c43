"""The workflow on released layouts (fmri.format / eeg.format): dry-run plans on miniature NSD,
Algonauts, fMRIPrep and BCI IV 2a datasets (written by the tests/test_formats_*.py writers), real
fmri_betas / stimuli / eeg_epochs jobs, and refused roots (Snakemake run as a subprocess)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.io import savemat

import test_formats_algonauts as t_alg
import test_formats_bnci2a as t_bci
import test_formats_fmriprep as t_fp
import test_formats_nsd as t_nsd
from neuroattn.data.formats import bnci2a

ROOT = Path(__file__).resolve().parents[1]
SMK = [sys.executable, "-m", "snakemake"]
pytestmark = [pytest.mark.workflow, pytest.mark.xdist_group("workflow")]
NSD_ROIS = ["prf-visualrois", "floc-faces"]   # the families the miniature release has


def _snakemake(configfiles, *args, timeout=600):
    cmd = SMK + ["--cores", "1", *args, "--configfile", *map(str, configfiles)]   # --configfile takes the rest
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def _planned(proc):
    """{rule: job count} from the job-stats table of a dry run (fails with the log when it failed)."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    jobs = {}
    for line in out.split("Job stats:")[1].split("total")[0].splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            jobs[parts[0]] = int(parts[1])
    return jobs


def _override(path, cfg):
    path.write_text(yaml.safe_dump(cfg))
    return path


def _write_bci2a(root, rng):
    """A01T (12 cues, one rejected) + A01E (8 unknown cues) + true_labels/A01E.mat, as in test_formats_bnci2a."""
    t_codes = [769, 770, 771, 772] * 3
    e_labels = rng.permutation(np.repeat([1, 2, 3, 4], 2))
    d, ev, _ = t_bci._session(rng, t_codes, rejected=(5,))
    t_bci.write_gdf(root / "A01T.gdf", d, t_bci.CH, t_bci.SFREQ, ev)
    d, ev, _ = t_bci._session(rng, [bnci2a.UNKNOWN_CUE] * len(e_labels))
    t_bci.write_gdf(root / "A01E.gdf", d, t_bci.CH, t_bci.SFREQ, ev)
    (root / "true_labels").mkdir()
    savemat(root / "true_labels" / "A01E.mat", {"classlabel": e_labels[:, None].astype(np.uint8)})
    return dict(t_codes=t_codes, e_labels=e_labels)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("formats")
    roots = {k: base / k for k in ("nsd", "algonauts", "fmriprep", "bci2a")}
    for r in roots.values():
        r.mkdir()
    planted = {
        "nsd": t_nsd._write_release(roots["nsd"], np.random.default_rng(0)),
        "algonauts": t_alg._write(roots["algonauts"], np.random.default_rng(1)),
        "fmriprep": t_fp._write(roots["fmriprep"], np.random.default_rng(2)),
        "bci2a": _write_bci2a(roots["bci2a"], np.random.default_rng(3)),
    }
    weights = base / "dinov2.pth"   # stands for the local DINOv2 file of nsd/algonauts.yaml (never loaded here)
    weights.write_bytes(b"")
    return base, roots, planted, weights


def _fmri_overlay(data, fmt, results):
    base, roots, _, weights = data
    cfg = {"results_dir": str(results), "fmri": {"bids_root": str(roots[fmt]), "subjects": ["01"],
                                                  "adapter": {"rois": NSD_ROIS}},
           "features": {"backbones": {"dinov2": {"weights": str(weights)}}}}
    return _override(base / f"{fmt}-{results.name}.yaml", cfg)


@pytest.mark.parametrize("fmt", ["nsd", "algonauts"])
def test_dry_run_nsd_algonauts_plan_stimuli_not_simulation(data, fmt, tmp_path):
    jobs = _planned(_snakemake([f"config/{fmt}.yaml", _fmri_overlay(data, fmt, tmp_path / "r")], "-n"))
    assert jobs.get("stimuli") == 1 and jobs.get("fmri_betas") == 1 and jobs.get("extract_features") == 1, jobs
    assert "simulate_fmri" not in jobs and "train_backbone" not in jobs, jobs   # pretrained local weights
    assert jobs.get("encode", 0) >= 1 and jobs.get("subject_report", 0) >= 1, jobs
    assert "simulate_eeg" in jobs   # the overlay leaves EEG on simulated data


def test_dry_run_fmriprep_uses_the_raw_root_stimuli(data, tmp_path):
    base, roots, _, _ = data
    over = _override(tmp_path / "o.yaml", {"results_dir": str(tmp_path / "r"), "fmri": {
        "bids_root": str(roots["fmriprep"]), "format": "fmriprep", "task": "x", "subjects": ["01"],
        "adapter": {"space": t_fp.SPACE}}})
    jobs = _planned(_snakemake(["config/tiny.yaml", over], "-n"))
    assert jobs.get("fmri_betas") == 1 and "simulate_fmri" not in jobs and "stimuli" not in jobs, jobs


def test_dry_run_bci2a_plans_epochs_from_gdf(data, tmp_path):
    base, roots, _, _ = data
    over = _override(tmp_path / "o.yaml", {"results_dir": str(tmp_path / "r"),
                                           "eeg": {"bids_root": str(roots["bci2a"]), "subjects": []}})
    jobs = _planned(_snakemake(["config/bnci2014_001.yaml", over], "-n"))
    # subjects: [] -> the GDF files' subjects (A01T/A01E: "01"); fMRI stays simulated
    assert jobs.get("eeg_epochs") == 1 and "simulate_eeg" not in jobs and "simulate_fmri" in jobs, jobs
    assert "eeg_truth" not in jobs, jobs   # a real dataset has no ground truth to check maps against


def test_dry_run_simulated_eeg_plans_the_truth_check(tmp_path):
    over = _override(tmp_path / "o.yaml", {"results_dir": str(tmp_path / "r")})
    jobs = _planned(_snakemake(["config/tiny.yaml", over], "-n"))
    assert jobs.get("eeg_truth") == 2 and jobs.get("subject_report") == 2, jobs   # one per simulated subject


def _run_betas_and_stimuli(data, fmt, results):
    """Run the workflow of ``config/<fmt>.yaml`` up to sub-01's betas and the stimulus table."""
    from neuroattn.data.betas import Betas

    betas = results / "sub-01" / "func" / f"sub-01_task-{fmt}_desc-betas.h5"
    table = results / "stimuli" / "stimuli.tsv"
    proc = _snakemake([f"config/{fmt}.yaml", _fmri_overlay(data, fmt, results)], str(betas), str(table))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    return Betas.read(betas), table, data[2][fmt]


def test_fmri_betas_and_stimuli_run_on_miniature_nsd(data, tmp_path):
    results = tmp_path / "r"
    b, table, planted = _run_betas_and_stimuli(data, "nsd", results)
    n_voxels = int((planted["roi"] > 0).sum() + ((planted["faces"] > 0) & (planted["roi"] <= 0)).sum())
    assert b.trial_betas.shape == (len(planted["written"]) * 750, n_voxels)
    assert b.task == "nsd" and set(b.trial_image) == set(b.images)
    stim = pd.read_csv(table, sep="\t")
    assert set(stim.stim_file) == set(b.images)   # every image the betas name has its PNG
    assert all((results / "stimuli" / f).is_file() for f in stim.stim_file)
    assert not (results / "simulated").exists()


def test_eeg_epochs_run_on_miniature_bci2a(data, tmp_path):
    from neuroattn.data.eeg import load_epochs

    _, roots, planted, _ = data
    results = tmp_path / "r"
    over = _override(tmp_path / "o.yaml", {"results_dir": str(results),
                                           "eeg": {"bids_root": str(roots["bci2a"]), "subjects": ["01"]}})
    epo = results / "sub-01" / "eeg" / "sub-01_task-motorimagery_epo.fif"
    proc = _snakemake(["config/bnci2014_001.yaml", over], str(epo))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    e = load_epochs(epo)
    p = planted["bci2a"]
    assert e.classes == ["left_hand", "right_hand", "feet", "tongue"]
    t_labels = [c - 769 for i, c in enumerate(p["t_codes"]) if i != 5]   # trial 5 rejected (1023), dropped
    assert e.y.tolist() == t_labels + (p["e_labels"] - 1).tolist()
    assert e.X.shape == (19, 22, 1000) and e.sfreq == 250   # 22 EEG channels (EOG dropped), 4-s windows
    assert e.sessions.tolist() == ["0train"] * 11 + ["1test"] * 8


def test_missing_nsd_root_is_refused_naming_key_and_folder(tmp_path):
    missing = tmp_path / "no_nsd_here"
    over = _override(tmp_path / "o.yaml", {"results_dir": str(tmp_path / "r"), "fmri": {"bids_root": str(missing)}})
    proc = _snakemake(["config/nsd.yaml", over], "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "fmri.bids_root" in out and str(missing) in out and "folder not found" in out, out[-3000:]
    assert not (tmp_path / "r").exists()


def test_nsd_root_without_expdesign_is_refused(tmp_path):
    (tmp_path / "nsd").mkdir()
    over = _override(tmp_path / "o.yaml", {"results_dir": str(tmp_path / "r"), "fmri": {"bids_root": str(tmp_path / "nsd")}})
    proc = _snakemake(["config/nsd.yaml", over], "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "fmri.bids_root" in out and "nsd_expdesign.mat" in out, out[-3000:]


def test_trained_backbone_is_refused_for_algonauts(data, tmp_path):
    over = _fmri_overlay(data, "algonauts", tmp_path / "r")
    cfg = yaml.safe_load(over.read_text())
    cfg["features"]["backbones"]["dinov2"]["weights"] = "train"
    proc = _snakemake(["config/algonauts.yaml", _override(tmp_path / "o.yaml", cfg)], "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "features.backbones.dinov2.weights" in out and "categories" in out, out[-3000:]


def test_fmri_betas_and_stimuli_run_on_miniature_algonauts(data, tmp_path):
    b, table, planted = _run_betas_and_stimuli(data, "algonauts", tmp_path / "r")
    assert b.trial_betas.shape == (t_alg.N_IMG, t_alg.N_LH + t_alg.N_RH)   # keep_other: every vertex
    assert sorted(b.images) == sorted(f"nsd-{k:05d}.png" for k in planted["nsd_ids"])
    assert set(pd.read_csv(table, sep="\t").stim_file) == set(b.images)
