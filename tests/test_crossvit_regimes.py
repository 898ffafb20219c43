"""Adversarial training that learns: the PGD warm-up options (clean epochs, eps ramp, clean/attacked
loss mix, lr warm-up), adversarial training raising PGD accuracy, and the group page's regime
comparison (table, figure, ROI kinds from one place)."""
import numpy as np
import pandas as pd
import pytest
import torch

from neuroattn.features.backbones import load_backbone
from neuroattn.features.training import pgd_eps_at, robustness, train_backbone

SMALL = {"widths": (8, 16, 16, 32)}


def _squares(rng, n, size=32):
    """Red or blue 16 px squares at random places on dark noise: the colour is the class."""
    x = rng.integers(0, 60, size=(n, size, size, 3)).astype(np.uint8)
    y = np.array(["red", "blue"] * (n // 2))
    for i, lab in enumerate(y):
        r, c = rng.integers(2, 10, 2)
        x[i, r:r + 16, c:c + 16, 0 if lab == "red" else 2] = 230
    return x, y


def test_pgd_eps_schedule_clean_then_ramp():
    eps = [pgd_eps_at(s, 4, 0.2, clean_epochs=1, ramp_epochs=2) for s in range(14)]
    assert eps[:4] == [0.0] * 4  # the clean epoch
    np.testing.assert_allclose(eps[4:12], 0.2 * np.arange(1, 9) / 8)  # linear over 8 steps
    assert eps[12:] == [0.2, 0.2]
    assert pgd_eps_at(0, 4, 0.2) == 0.2  # no warm-up: the attack from the first step


def test_adversarial_training_raises_pgd_accuracy_and_eps0_does_not():
    """The attack (eps 0.1, 10 steps) breaks a standard-trained CNN; one trained on PGD examples of
    the same radius resists it. Adversarial training with eps 0 is standard training and fails
    the same check (its PGD accuracy is the standard model's)."""
    x, y = _squares(np.random.default_rng(0), 96)
    xt, yt = _squares(np.random.default_rng(1), 64)
    yi = np.searchsorted(["blue", "red"], yt)
    eps, pgd = 0.1, {}
    for name, kw in (("standard", {"regime": "standard"}), ("adversarial", {"regime": "adversarial", "pgd_eps": eps}),
                     ("adversarial_eps0", {"regime": "adversarial", "pgd_eps": 0.0})):
        torch.manual_seed(0)
        bb = load_backbone("smallcnn", image_size=32, num_classes=2, **SMALL)
        train_backbone(bb, x, y, epochs=6, batch_size=16, lr=3e-3, pgd_steps=2, val_fraction=0, seed=0,
                       device="cpu", **kw)
        r = robustness(bb, xt, yi, pgd_eps=eps, pgd_steps=10, seed=0)
        assert r["clean"] >= 0.9, (name, r)  # every model learns the colours
        pgd[name] = r["pgd"]
    assert pgd["standard"] <= 0.2
    assert pgd["adversarial"] >= pgd["standard"] + 0.3
    assert not pgd["adversarial_eps0"] >= pgd["standard"] + 0.3  # the check can fail


def test_clean_epochs_train_exactly_as_the_standard_regime():
    """During pgd_clean_epochs no attack runs and no random number is drawn for it: the history of
    those epochs is the standard regime's, the attacked epochs then differ."""
    x, y = _squares(np.random.default_rng(2), 24)
    hist = {}
    for regime in ("standard", "adversarial"):
        torch.manual_seed(0)
        bb = load_backbone("crossvit_tiny", image_size=32, num_classes=2, patch_sizes=(8, 16), widths=(16, 32),
                           heads=(2, 2), depth=((1, 1),))
        res = train_backbone(bb, x, y, epochs=3, batch_size=8, lr=1e-3, regime=regime, pgd_eps=0.03, pgd_steps=1,
                             pgd_clean_epochs=2, pgd_ramp_epochs=1, pgd_clean_weight=0.5, lr_warmup_epochs=1,
                             eval_pgd_steps=1, val_fraction=0, seed=0, device="cpu")
        hist[regime] = [h["loss"] for h in res.history]
        assert res.history[0]["lr"] == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi / 3)))  # warm-up over
    assert hist["standard"][:2] == hist["adversarial"][:2]
    assert hist["standard"][2] != hist["adversarial"][2]


def test_pgd_options_checked():
    x, y = _squares(np.random.default_rng(0), 8)
    bb = load_backbone("smallcnn", image_size=32, num_classes=2, **SMALL)
    with pytest.raises(ValueError, match="pgd_clean_weight must be in"):
        train_backbone(bb, x, y, epochs=1, regime="adversarial", pgd_clean_weight=1.5)
    with pytest.raises(ValueError, match="pgd_ramp_epochs must be >= 0"):
        train_backbone(bb, x, y, epochs=1, regime="adversarial", pgd_ramp_epochs=-1)


# ---------------------------------------------------------------------------------------------
# ROI kinds and the group page section
# ---------------------------------------------------------------------------------------------
def test_roi_kinds_include_the_v4_like_region():
    from neuroattn.data.roi_kinds import ROI_KINDS, roi_kind
    from neuroattn.data.simulate_brain import V4_ROI

    assert roi_kind(V4_ROI) == "V4-like" and roi_kind("hV4") == "V4-like"
    assert [roi_kind(n) for n in ("ret_V1", "cat_disk", "FFA")] == ["retinotopic", "category", "other"]
    assert ROI_KINDS.index("retinotopic") < ROI_KINDS.index("V4-like") < ROI_KINDS.index("category")


def _comparison_table():
    rows = []
    ev = {"crossvit_standard": (0.30, 0.10, "blocks.0.fused"), "crossvit_joint": (0.25, 0.20, "blocks.1.small")}
    acc = {"crossvit_standard": (0.5, 0.3, 0.2), "crossvit_joint": (0.45, 0.4, 0.35)}
    for b, (cat, v4, layer) in ev.items():
        a = dict(zip(("accuracy_clean", "accuracy_rotated", "accuracy_pgd"), acc[b]))
        for roi, kind, v in (("cat_disk", "category", cat), ("shape_V4", "V4-like", v4), ("ret_V1", "retinotopic", 0.5)):
            rows.append({"backbone": b, "roi": roi, "kind": kind, "committed_layer": layer, "ceiled_ev": v,
                         "ceiled_ev_sd": 0.01, "n_subjects": 2, **a})
            rows.append({"backbone": b, "roi": f"{kind} (mean)", "kind": kind, "committed_layer": np.nan,
                         "ceiled_ev": v, "ceiled_ev_sd": 0.01, "n_subjects": 2, **a})
    return pd.DataFrame(rows)


def test_comparison_tables_and_the_joint_vs_standard_sentence():
    from neuroattn.report.backbone_comparison import comparison_tables, joint_vs_standard

    df = _comparison_table()
    regions, acc = comparison_tables(df)
    # hierarchy order: retinotopic, V4-like, category; a kind's mean after its ROIs
    assert regions.region.tolist() == ["ret_V1", "retinotopic (mean)", "shape_V4", "V4-like (mean)",
                                       "cat_disk", "category (mean)"]
    row = regions.set_index("region").loc["shape_V4"]
    assert row["crossvit_joint"] == "0.200 ± 0.010 (blocks.1.small)"
    assert regions.set_index("region").loc["V4-like (mean)", "crossvit_joint"] == "0.200 ± 0.010"
    assert acc.set_index("backbone").loc["crossvit_joint", "pgd"] == 0.35
    text = " ".join(joint_vs_standard(df))
    assert "scores HIGHER than standard" in text and "pgd accuracy 0.35 (joint) vs 0.20 (standard): joint higher" in text
    # the sentence can say the opposite: swap the V4 scores
    df.loc[(df.backbone == "crossvit_joint") & (df.kind == "V4-like"), "ceiled_ev"] = 0.05
    assert "does NOT score higher" in " ".join(joint_vs_standard(df))


def test_group_page_has_the_comparison_section(tmp_path):
    from neuroattn.leaderboard import score_row, write_scores
    from neuroattn.report.group import build_group_report

    cmp = tmp_path / "backbone_comparison.tsv"
    _comparison_table().to_csv(cmp, sep="\t", index=False)
    lb = tmp_path / "leaderboard.tsv"
    write_scores(lb, [score_row("01", "fmri", "routing", "shape_V4", "noise_normalized_r2", 0.3)])
    out = tmp_path / "report.html"
    build_group_report(str(out), str(lb), {"device": "cpu", "seed": 0}, comparison_tables=[str(cmp)])
    html = out.read_text()
    assert "Backbone training regimes" in html and "0.200 ± 0.010 (blocks.1.small)" in html
    assert html.count("data:image/png;base64") >= 2  # the comparison figure beside the scores plot
    build_group_report(str(out), str(lb), {"device": "cpu", "seed": 0})
    assert "Backbone training regimes" not in out.read_text()
