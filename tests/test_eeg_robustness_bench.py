"""benchmarks/eeg_robustness.py: the grid and BaseNet's goal check (the sweep itself is run by hand)."""
import importlib.util
from pathlib import Path

import pytest

_path = Path(__file__).resolve().parents[1] / "benchmarks" / "eeg_robustness.py"
_spec = importlib.util.spec_from_file_location("eeg_robustness", _path)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_grid_covers_the_issue_ranges_and_runs_divide_the_trials():
    s = [bench.setting(n) for n in bench.GRID]
    assert {x["trials"] for x in s} >= {20, 150} and {x["n_channels"] for x in s} >= {16, 64}
    assert {x["sfreq"] for x in s} >= {128, 512} and {x["n_classes"] for x in s} >= {2, 4}
    assert {x["session_shift"] for x in s} >= {0.0, 1.0} and {x["format"] for x in s} == {"edf", "brainvision"}
    hard = bench.setting("hard")
    assert (hard["n_classes"], hard["n_channels"], hard["sfreq"], hard["format"], hard["trials"] * hard["n_classes"]) \
        == (3, 32, 256, "brainvision", 120)
    for t in (20, 40, 60, 120, 150):
        r, per = bench._runs(t)
        assert r * per == t and per <= 25


@pytest.mark.parametrize("trials, acc, expect", [
    (60, {"basenet": 0.70, "csp_lda": 0.72}, "ok"),                   # within 5 points
    (60, {"basenet": 0.60, "csp_lda": 0.72}, "FAIL (12 pts below"),   # 12 points below
    (40, {"basenet": 0.60, "csp_lda": 0.72}, "ok"),                   # < 60 trials: only the chance rule
    (40, {"basenet": 0.35, "csp_lda": 0.72}, "FAIL (at chance"),      # chance 1/3, CSP 39 points above
    (40, {"basenet": 0.35, "csp_lda": 0.45}, "ok"),                   # CSP not 20 points above chance
])
def test_goal(trials, acc, expect):
    s = {**bench.setting("base"), "trials": trials}
    assert bench.goal(s, acc).startswith(expect)
