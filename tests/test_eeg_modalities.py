"""modalities (one modality alone), eeg.events / eeg.task / fmri.task: auto."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMK = [sys.executable, "-m", "snakemake"]
FMRI_RULES = {"simulate_fmri", "fmri_betas", "image_split", "stimuli", "train_backbone", "extract_features",
              "encode", "incontext_prior", "incontext_loso", "layer_commitment", "subsampling", "similarity",
              "backbone_comparison"}


def dry_run(tmp_path, overlay: str):
    o = tmp_path / "o.yaml"
    o.write_text(f"results_dir: {tmp_path / 'r'}\n" + overlay)
    proc = subprocess.run(SMK + ["--cores", "1", "--configfile", "config/config.yaml", "config/tiny.yaml", str(o), "-n"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    rules = set()
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in {"total", "job"}:
            rules.add(parts[0])
    return proc, rules


@pytest.mark.workflow
def test_eeg_only_plans_no_fmri_job(tmp_path):
    proc, rules = dry_run(tmp_path, "modalities: [eeg]\neeg_models: {protocols: [within, within_session, loso]}\n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not rules & FMRI_RULES, rules & FMRI_RULES
    assert {"simulate_eeg", "eeg_epochs", "eeg_model", "leaderboard", "group_report", "subject_report"} <= rules
    assert "protocol-within_session" in proc.stdout
    both, rules_both = dry_run(tmp_path, "")  # the default plans both (the check can fail)
    assert both.returncode == 0 and {"simulate_fmri", "fmri_betas"} <= rules_both
    assert "protocol-within_session" not in both.stdout  # not a default protocol (runtime)


@pytest.mark.workflow
def test_fmri_only_plans_no_eeg_job(tmp_path):
    proc, rules = dry_run(tmp_path, "modalities: [fmri]\n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not {r for r in rules if r.startswith(("eeg", "simulate_eeg"))}
    assert "fmri_betas" in rules


@pytest.mark.workflow
def test_task_auto_on_simulated_data_is_refused_naming_the_key(tmp_path):
    proc, _ = dry_run(tmp_path, "modalities: [eeg]\neeg: {bids_root: '', task: auto}\n")
    assert proc.returncode != 0
    assert "eeg.task" in proc.stdout + proc.stderr and "auto" in proc.stdout + proc.stderr


def _bids_tree(root: Path, tasks):
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "t", "BIDSVersion": "1.8.0"}))
    eeg = root / "sub-01" / "eeg"
    eeg.mkdir(parents=True)
    for t in tasks:
        (eeg / f"sub-01_task-{t}_eeg.edf").write_bytes(b"")
    return root


def test_resolve_task_only_task_and_several_listed(tmp_path):
    from neuroattn.data.eeg import resolve_task

    one = _bids_tree(tmp_path / "one", ["imagery"])
    assert resolve_task(one, "auto", "eeg") == "imagery"
    assert resolve_task(one, "rest", "eeg") == "rest"  # an explicit task is kept
    two = _bids_tree(tmp_path / "two", ["imagery", "rest"])
    with pytest.raises(ValueError, match=r"fmri\.task: 'auto'.*\['imagery', 'rest'\]"):
        resolve_task(two, "auto", "fmri")


def test_auto_events_lists_every_trial_type(tmp_path, caplog):
    import logging

    from mne_bids import BIDSPath

    from neuroattn.data.eeg import auto_events

    root = _bids_tree(tmp_path / "ev", ["mi"])
    bp = BIDSPath(root=root, subject="01", task="mi", datatype="eeg", suffix="eeg", extension=".edf")
    bp.copy().update(suffix="events", extension=".tsv").fpath.write_text(
        "onset\tduration\ttrial_type\n1.0\t0\tleft\n2.0\t0\tright\n3.0\t0\tleft\n4.0\t0\tn/a\n")
    with caplog.at_level(logging.INFO, logger="neuroattn.eeg"):
        assert auto_events([bp], "01") == ["left", "right"]
    assert "['left', 'right']" in caplog.text
    bp.copy().update(suffix="events", extension=".tsv").fpath.write_text("onset\tduration\ttrial_type\n1.0\t0\tleft\n")
    with pytest.raises(ValueError, match=r"eeg\.events: 'auto' found \['left'\]"):
        auto_events([bp], "01")


def test_events_auto_outside_bids_is_refused_not_read_as_letters():
    from neuroattn.data.eeg import event_mapping

    with pytest.raises(ValueError, match=r"eeg\.events: 'auto'.*eeg\.format: bids"):
        event_mapping("auto")  # a released layout's reader (bnci2a, eegmmidb, moabb) gets no 'a','u','t','o'
    assert list(event_mapping(["left", "right"])) == ["left", "right"]  # explicit lists still work
