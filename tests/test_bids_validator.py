"""The simulated fMRI dataset passes the official BIDS validator (npm bids-validator) with zero errors."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from neuroattn.data.simulate import simulate_fmri_dataset

ROOT = Path(__file__).resolve().parents[1]
VALIDATOR = ROOT / "node_modules" / ".bin" / "bids-validator"


def _validator():
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not VALIDATOR.exists():
        if shutil.which("npm") is None:
            pytest.skip("bids-validator is not installed and npm is absent")
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=ROOT, check=True,
                       capture_output=True, timeout=300)
    return str(VALIDATOR)


def _validate(root):
    out = subprocess.run([_validator(), str(root), "--json"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "NO_COLOR": "1"})
    try:
        return json.loads(out.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"bids-validator gave no JSON (rc {out.returncode}): {out.stdout[-2000:]} {out.stderr[-2000:]}")


def test_simulated_fmri_is_valid_bids(tmp_path):
    root = tmp_path / "fmri"
    simulate_fmri_dataset(root, n_subjects=2, n_images=40, image_size=32, n_shared=8, n_repeats_shared=2,
                          n_train_per_subject=16, voxel_size=8.0, n_runs=2, seed=1)
    report = _validate(root)
    errors = report["issues"]["errors"]
    assert errors == [], [(e["key"], e.get("reason")) for e in errors]
    assert report["summary"]["subjects"] == ["01", "02"] and report["summary"]["tasks"] == ["vision"]


def test_validator_catches_a_broken_dataset(tmp_path):
    """The validator run can fail: a bold file without RepetitionTime anywhere is an error."""
    root = tmp_path / "fmri"
    simulate_fmri_dataset(root, n_subjects=1, n_images=40, image_size=32, n_shared=8, n_repeats_shared=1,
                          n_train_per_subject=8, voxel_size=8.0, n_runs=1, seed=1)
    (root / "task-vision_bold.json").unlink()
    (root / "sub-01" / "func" / "sub-01_task-vision_run-1_bold.json").write_text("{}")
    (root / "dataset_description.json").unlink()
    assert _validate(root)["issues"]["errors"], "the validator accepted a dataset without dataset_description.json"
