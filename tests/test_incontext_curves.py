"""Group-page section of cross-subject decoding vs k: the three methods, aligned_ridge flat, chance."""
import pandas as pd
import pytest

from neuroattn.leaderboard import score_row
from neuroattn.report.incontext_curves import decoding_by_k, incontext_curves_section


def _lb():
    rows = []
    for j, s in enumerate(["01", "02"]):
        for k in (25, 100):
            rows.append(score_row(s, "fmri", f"incontext_k{k}", "all", "top1", 0.1 * j + k / 1000, n=100))
            rows.append(score_row(s, "fmri", f"ridge_context_k{k}", "all", "top1", 0.02 * j, n=100))
            rows.append(score_row(s, "fmri", f"incontext_k{k}", "all", "top5", 0.3, n=100))
        rows.append(score_row(s, "fmri", "aligned_ridge", "all", "top1", 0.05 + 0.1 * j, n=100))
        rows.append(score_row(s, "fmri", "routing", "ret_V1", "top1", 0.9, n=100))  # not a decoding method
    return pd.DataFrame(rows)


def test_aligned_ridge_is_flat_over_k_and_other_models_are_left_out():
    d = decoding_by_k(_lb())
    assert set(d.method) == {"incontext", "ridge_context", "aligned_ridge"}
    al = d[(d.method == "aligned_ridge") & (d.metric == "top1")]
    assert sorted(al.k) == [25, 25, 100, 100]
    assert al.groupby("k").value.mean().tolist() == pytest.approx([0.1, 0.1])


def test_section_table_is_mean_and_sd_over_subjects():
    sec = incontext_curves_section(_lb())
    assert sec["title"] == "Cross-subject decoding vs context size" and len(sec["figures"]) == 2
    assert "chance" in sec["figures"][0]["caption"]
    t = pd.DataFrame(sec["table"]["rows"], columns=sec["table"]["columns"])
    row = t[(t.metric == "top1") & (t.method == "incontext") & (t.k == "100")].iloc[0]
    assert float(row["mean"]) == pytest.approx(0.15, abs=1e-3)   # (0.1 + 0.2) / 2
    assert float(row["sd"]) == pytest.approx(0.0707, abs=1e-3)   # sample SD of 0.1, 0.2
    assert incontext_curves_section(_lb().query("model == 'routing'")) is None
