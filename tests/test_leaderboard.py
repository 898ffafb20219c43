"""Leaderboard semantics: ceilings on the metric's scale, chance levels, split model names,
pooled group rows, string subjects (issue 18)."""
import numpy as np
import pandas as pd
import pytest

from neuroattn.leaderboard import (COLUMNS, chance_level, gather, read_scores, score_row, split_model,
                                   write_scores)


def test_normalised_metrics_have_ceiling_one_and_pearson_keeps_its_own():
    # a raw variance ceiling handed in for a normalised metric is not kept: the value is already divided by it
    for metric in ("noise_normalized_r2", "ceiled_ev"):
        assert score_row("01", "fmri", "routing", "ret_V1", metric, 0.76, ceiling=0.58)["ceiling"] == 1.0
    assert score_row("01", "fmri", "routing", "ret_V1", "pearson_r", 0.5, ceiling=0.76)["ceiling"] == pytest.approx(0.76)
    assert score_row("01", "fmri", "routing", "ret_V1", "cosine", 0.5)["ceiling"] is None


def test_commitment_pearson_ceiling_is_on_the_r_scale():
    from neuroattn.metrics.commitment import Commitment, heldout_scores

    r = np.array([0.5, 0.6, 0.7])
    com = Commitment(public=pd.DataFrame({"layer": ["a"], "roi": ["V1"]}), committed={"V1": "a"},
                     heldout_r={("a", "V1"): r}, heldout_error={})
    rows = {(m, met): s for m, roi, met, s in heldout_scores(com, "net", np.full(3, 0.64), ["V1"] * 3)}
    assert rows[("net_committed", "pearson_r")].ceiling == pytest.approx(0.8)  # sqrt(0.64)
    assert rows[("net_committed", "ceiled_ev")].value == pytest.approx(0.6**2 / 0.64)


def test_chance_levels():
    assert chance_level("top1", 179) == pytest.approx(1 / 179)
    assert chance_level("top5", 179) == pytest.approx(5 / 179)
    assert chance_level("top5", 4) == 1.0
    assert chance_level("kappa") == 0.0
    assert chance_level("accuracy", 96, n_classes=4) == 0.25
    assert chance_level("accuracy", 96) is None and chance_level("pearson_r", 10) is None
    row = score_row("01", "eeg", "basenet", "loso", "accuracy", 0.8, n=565, n_classes=4)
    assert row["chance"] == 0.25 and row["n_kind"] == "trials" and row["protocol"] == "loso"
    assert score_row("01", "fmri", "incontext_k50", "all", "top1", 0.1, n=200)["chance"] == pytest.approx(0.005)


@pytest.mark.parametrize("model, modality, target, backbones, expect", [
    ("incontext_k50", "fmri", "all", (), {"family": "incontext", "k": 50}),
    ("ridge_context_k25", "fmri", "all", (), {"family": "ridge_context", "k": 25}),
    ("routing", "fmri", "ret_V1", ("smallcnn",), {"family": "routing", "backbone": None}),
    ("smallcnn_layer3", "fmri", "ret_V1", (), {"family": "layer", "backbone": "smallcnn", "layer": "layer3"}),
    ("smallcnn_committed", "fmri", "V1", (), {"family": "committed", "backbone": "smallcnn", "layer": None}),
    ("crossvit_joint_block_2", "fmri", "V1", ("crossvit", "crossvit_joint"),
     {"family": "layer", "backbone": "crossvit_joint", "layer": "block_2"}),
    ("crossvit_joint", "fmri", "clean", ("crossvit_joint",), {"family": "backbone", "backbone": "crossvit_joint"}),
    ("basenet_se", "eeg", "within", (), {"family": "basenet_se", "protocol": "within"}),
])
def test_split_model(model, modality, target, backbones, expect):
    got = split_model(model, modality, target, backbones)
    assert {k: got[k] for k in expect} == expect


def _rows():
    rows = []
    for s, v in (("01", 0.2), ("02", 0.4), ("10", 0.9)):
        rows.append(score_row(s, "fmri", "routing", "ret_V1", "noise_normalized_r2", v, ceiling=0.6, n=50))
        rows.append(score_row(s, "fmri", "incontext_k50", "all", "top1", v / 2, error=0.01, n=100))
    rows.append(score_row("01", "eeg", "basenet", "within", "accuracy", 0.7, n=96, n_classes=4))  # one subject: no pool
    rows.append(score_row("group", "fmri", "smallcnn", "clean", "accuracy", 0.9, n=300))  # a backbone row, kept
    return rows


def test_gather_adds_group_rows_mean_and_sem_and_keeps_leading_zeros(tmp_path):
    write_scores(tmp_path / "sub-01_backbone-smallcnn_layer-layer3_model-routing_scores.tsv", _rows())
    df = gather([tmp_path / "sub-01_backbone-smallcnn_layer-layer3_model-routing_scores.tsv"], tmp_path / "lb.tsv",
                backbones=["smallcnn"])
    back = read_scores(tmp_path / "lb.tsv")
    assert list(back.columns) == COLUMNS
    assert list(back.subject.unique()) == ["01", "02", "10", "group"] or set(back.subject) == {"01", "02", "10", "group"}
    assert "01" in set(back.subject) and "1" not in set(back.subject)
    g = back[(back.subject == "group") & (back.model == "routing")].iloc[0]
    v = np.array([0.2, 0.4, 0.9])
    assert g.value == pytest.approx(v.mean(), rel=1e-5)
    assert g.error == pytest.approx(v.std(ddof=1) / np.sqrt(3), rel=1e-5)
    assert g.n == 3 and g.n_kind == "subjects" and g.ceiling == 1.0
    assert (back.backbone[back.model == "routing"] == "smallcnn").all()  # from the file name
    assert (back.layer[back.model == "routing"] == "layer3").all()
    ic = back[(back.subject == "group") & (back.model == "incontext_k50")].iloc[0]
    assert ic.chance == pytest.approx(0.01) and ic.k == 50 and ic.family == "incontext"
    assert not ((back.subject == "group") & (back.modality == "eeg")).any()  # one subject: nothing pooled
    assert ((back.subject == "group") & (back.model == "smallcnn")).sum() == 1  # the backbone row, not duplicated
    assert len(df) == len(back)


def test_gather_is_byte_stable_and_sorted(tmp_path):
    rows = _rows()
    write_scores(tmp_path / "a.tsv", rows)
    write_scores(tmp_path / "b.tsv", rows[::-1])
    gather([tmp_path / "a.tsv"], tmp_path / "1.tsv")
    gather([tmp_path / "b.tsv"], tmp_path / "2.tsv")
    assert (tmp_path / "1.tsv").read_bytes() == (tmp_path / "2.tsv").read_bytes()


def test_old_files_without_the_new_columns_are_completed(tmp_path):
    p = tmp_path / "old.tsv"
    p.write_text("subject\tmodality\tmodel\ttarget\tmetric\tvalue\tceiling\terror\tn\n"
                 "01\tfmri\tsmallcnn_layer1\tret_V1\tnoise_normalized_r2\t0.5\t0.57\t\t96\n"
                 "007\teeg\tbasenet\tloso\tkappa\t0.8\t\t\t565\n")
    d = read_scores(p)
    assert list(d.subject) == ["007", "01"]
    assert d.set_index("model").loc["smallcnn_layer1", "ceiling"] == 1.0
    assert d.set_index("model").loc["basenet", "chance"] == 0.0


def test_sub_prefix_and_unknown_metric_refused():
    with pytest.raises(ValueError, match="without 'sub-'"):
        score_row("sub-01", "fmri", "routing", "all", "pearson_r", 0.1)
    with pytest.raises(ValueError, match="metric must be one of"):
        score_row("01", "fmri", "routing", "all", "r2", 0.1)
