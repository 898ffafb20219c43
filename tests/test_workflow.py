"""End-to-end workflow tests on config/tiny.yaml (Snakemake run as a subprocess).

The first test runs the whole tiny workflow once into a shared folder; the others reuse it.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SMK = [sys.executable, "-m", "snakemake"]
pytestmark = pytest.mark.workflow


def snakemake(*args, results, check=True, timeout=1200, **kw):
    cmd = SMK + ["--cores", "2", "--configfile", "config/tiny.yaml", "--config", f"results_dir={results}", *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("tiny") / "results"
    t0 = time.time()
    snakemake("--quiet", "rules", results=results)
    return results, time.time() - t0


def test_tiny_workflow_produces_contract_outputs(tiny_run):
    results, _ = tiny_run
    lb = pd.read_csv(results / "scores" / "leaderboard.tsv", sep="\t", dtype={"subject": str})
    assert list(lb.columns) == ["subject", "modality", "model", "family", "backbone", "layer", "k", "protocol", "target",
                                "metric", "value", "ceiling", "chance", "error", "n", "n_kind"]
    assert set(lb.modality) == {"fmri", "eeg"}
    models = set(lb.model)
    for m in ["routing", "ridge_pooled", "ridge_grid", "spatial_feature", "basenet", "csp_lda", "ts_lr"]:
        assert m in models, f"no leaderboard rows for {m}"
    assert any(m.startswith("incontext_k") for m in models)
    assert lb.value.notna().all()
    assert (results / "report.html").stat().st_size > 1000
    for s in ["01", "02"]:
        assert (results / f"sub-{s}" / "report.html").is_file()


def test_rerun_with_nothing_changed_is_a_no_op(tiny_run):
    results, _ = tiny_run
    proc = snakemake("-n", "--quiet", "rules", results=results)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def _planned_rules(out):
    """Rule names from the job-stats table of a dry run."""
    rules = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in {"total", "job"}:
            rules.add(parts[0])
    return rules


def test_changing_one_model_parameter_reruns_only_that_model(tiny_run):
    import yaml

    results, _ = tiny_run
    cfg = yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())
    cfg["encode"]["routing"]["d_model"] = 16
    cfg["results_dir"] = str(results)
    override = results.parent / "override.yaml"
    override.write_text(yaml.safe_dump(cfg))
    cmd = SMK + ["--cores", "2", "--configfile", str(override), "-n", "--quiet", "rules"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    rules = _planned_rules(proc.stdout + proc.stderr)
    assert "encode" in rules, proc.stdout + proc.stderr
    assert not rules & {"simulate_fmri", "simulate_eeg", "fmri_betas", "extract_features", "train_backbone",
                        "eeg_model", "eeg_epochs", "incontext_prior", "incontext_loso"}, rules


def test_kill_then_rerun_incomplete_matches_uninterrupted_run(tiny_run, tmp_path):
    """kill -9 during training, rerun with --rerun-incomplete: same leaderboard, byte for byte.

    This also checks determinism: two runs of the same config give identical leaderboards.
    """
    results, _ = tiny_run
    second = tmp_path / "results"
    cmd = SMK + ["--cores", "2", "--configfile", "config/tiny.yaml", "--config", f"results_dir={second}",
                 "--quiet", "rules"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None:
        if any(second.glob("logs/encode/*.log")):
            break
        time.sleep(0.5)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    snakemake("--unlock", results=second)  # the killed run leaves its lock behind
    snakemake("--rerun-incomplete", "--quiet", "rules", results=second)
    assert killed, "the run finished before it could be interrupted"
    assert (results / "scores" / "leaderboard.tsv").read_bytes() == (second / "scores" / "leaderboard.tsv").read_bytes()


def _dry_run(*configfiles):
    return subprocess.run(SMK + ["--cores", "1", "--configfile", "config/tiny.yaml", *map(str, configfiles), "-n"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_unknown_config_key_is_refused_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"results_dir: {tmp_path / 'r'}\nfmri:\n  bids_root: ''\n  task: vision\n  smoothing: 4\n")
    proc = _dry_run(bad)
    assert proc.returncode != 0
    assert "fmri.smoothing" in proc.stdout + proc.stderr
    assert not (tmp_path / "r").exists()


def test_missing_bids_root_is_refused(tmp_path):
    override = tmp_path / "o.yaml"
    override.write_text(f"eeg:\n  bids_root: {tmp_path / 'nowhere'}\n  task: motorimagery\n")
    proc = _dry_run(override)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "eeg.bids_root" in out and "nowhere" in out


def test_lint_is_clean():
    proc = subprocess.run(SMK + ["--lint", "--configfile", "config/tiny.yaml"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout, proc.stdout


def test_snakemake_report_registers_the_html_pages(tiny_run):
    results, _ = tiny_run
    out = results / "snakemake_report.html"
    snakemake("--report", str(out), results=results)
    assert out.stat().st_size > 10_000
