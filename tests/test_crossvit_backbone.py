"""The native CrossViT as a backbone (load, extract, train, reload) and the training regimes of the
CrossViT Brain-Score paper (standard / rotation / adversarial / joint) on any trainable backbone."""
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from neuroattn.features.backbones import backbone_kind, list_backbones, load_backbone
from neuroattn.features.extract import extract
from neuroattn.features.training import (REGIMES, draw_rotations, pgd_attack, robustness, rotate,
                                         save_weights, train_backbone)
from neuroattn.features.weights import _num_classes_from

SMALL = {"widths": (8, 16, 16, 32)}


def _squares(rng, n=24, size=32):
    """Red or blue squares on noise: a learnable two-class problem."""
    x = rng.integers(0, 60, size=(n, size, size, 3)).astype(np.uint8)
    y = np.array(["red", "blue"] * (n // 2))
    for i, lab in enumerate(y):
        x[i, 8:24, 8:24, 0 if lab == "red" else 2] = 230
    return x, y


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_crossvit_listed_and_kind():
    assert {"crossvit_tiny", "crossvit_18"} <= set(list_backbones())
    assert backbone_kind("crossvit_tiny") == "crossvit" and backbone_kind("smallcnn") == "smallcnn"
    assert backbone_kind("resnet18") == "torchvision"


def test_crossvit_backbone_layers_extract_and_reload(tmp_path, rng):
    torch.manual_seed(0)
    bb = load_backbone("crossvit_tiny", image_size=64, num_classes=3)
    assert bb.layers == [f"blocks.{i}.{t}" for i in range(3) for t in ("small", "large", "fused")] + ["pooled"]
    assert bb.n_prefix_tokens == 0 and bb.model.config.image_size == 64
    imgs = rng.integers(0, 255, (3, 64, 64, 3)).astype(np.uint8)
    feats = extract(bb, imgs, layers=["blocks.0.small", "blocks.2.large", "blocks.1.fused", "pooled"])
    # 64 px: small patches 8 -> 8x8 tokens of width 64, large patches 16 -> 4x4 tokens of width 128
    assert feats["blocks.0.small"].shape == (3, 64, 64) and feats.grids["blocks.0.small"] == (8, 8)
    assert feats["blocks.2.large"].shape == (3, 16, 128) and feats.grids["blocks.2.large"] == (4, 4)
    assert feats["blocks.1.fused"].shape == (3, 1, 192) and feats.grids["pooled"] == (1, 1)
    # the saved weights reload with num_classes read from the small head; same features
    w = tmp_path / "cv.pt"
    save_weights(bb, w)
    assert _num_classes_from(torch.load(w, weights_only=True)) == 3
    bb2 = load_backbone("crossvit_tiny", w, image_size=64, origin="trained")
    assert bb2.weights == f"trained:{w}"
    again = extract(bb2, imgs, layers=["pooled"])["pooled"]
    np.testing.assert_allclose(again, feats["pooled"], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="do not match"):
        load_backbone("crossvit_tiny", w, image_size=96)  # a 96 px model has more position embeddings


@pytest.mark.parametrize("regime", sorted(REGIMES))
def test_tiny_training_run_per_regime(rng, regime):
    x, y = _squares(rng)
    torch.manual_seed(0)
    bb = load_backbone("crossvit_tiny", image_size=32, num_classes=2, patch_sizes=(8, 16), widths=(16, 32),
                       heads=(2, 2), depth=((1, 1),))
    res = train_backbone(bb, x, y, epochs=2, batch_size=8, lr=3e-3, regime=regime, pgd_eps=0.03, pgd_steps=1,
                         eval_pgd_steps=2, val_fraction=0.25, seed=0, device="cpu")
    assert res.regime == regime and len(res.history) == 2 and np.isfinite(res.history[-1]["loss"])
    rob = res.robustness
    assert rob["n"] == 6 and all(0.0 <= rob[k] <= 1.0 for k in ("clean", "rotated", "pgd"))
    assert rob["clean"] == pytest.approx(res.val_accuracy)


def test_regime_changes_training_and_is_deterministic(rng):
    x, y = _squares(rng, n=16)
    losses = {}
    for regime in ("standard", "rotation", "adversarial", "joint", "joint"):
        torch.manual_seed(0)
        bb = load_backbone("smallcnn", image_size=32, num_classes=2, **SMALL)
        res = train_backbone(bb, x, y, epochs=1, batch_size=8, regime=regime, pgd_eps=0.05, pgd_steps=2,
                             val_fraction=0, seed=1, device="cpu")
        losses.setdefault(regime, []).append(res.history[0]["loss"])
    assert losses["joint"][0] == losses["joint"][1]  # same seed, same run
    assert len({v[0] for v in losses.values()}) == 4  # each regime trains on different batches


def test_unknown_regime_and_uniform_without_range_refused(rng):
    x, y = _squares(rng, n=8)
    bb = load_backbone("smallcnn", image_size=32, num_classes=2, **SMALL)
    with pytest.raises(ValueError, match="regime must be one of standard, rotation, adversarial, joint"):
        train_backbone(bb, x, y, epochs=1, regime="robust")
    with pytest.raises(ValueError, match="needs rotation > 0"):
        train_backbone(bb, x, y, epochs=1, regime="rotation", rotation_mode="uniform", rotation=0.0)


def test_rotation_augmentation_rotates_images_like_a_hand_rotation():
    # quarter turns: the paper's 0/90/180/270 draw, equal to torch.rot90 of the image
    gen = torch.Generator().manual_seed(0)
    angles = draw_rotations(400, "quarter", generator=gen)
    assert set(angles.tolist()) == {0.0, 90.0, 180.0, 270.0}
    assert set(draw_rotations(50, "quarter", generator=gen, exclude_identity=True).tolist()) == {90.0, 180.0, 270.0}
    u = draw_rotations(500, "uniform", 30.0, generator=gen)
    assert u.abs().max() <= 30.0 and u.abs().max() > 25.0
    x = torch.rand(4, 3, 16, 16)
    out = rotate(x, torch.tensor([0.0, 90.0, 180.0, 270.0]))
    np.testing.assert_allclose(out[0], x[0], atol=1e-5)
    np.testing.assert_allclose(out[2], torch.rot90(x[2], 2, (1, 2)), atol=1e-5)
    k90 = min((1, 3), key=lambda k: float((out[1] - torch.rot90(x[1], k, (1, 2))).abs().max()))
    np.testing.assert_allclose(out[1], torch.rot90(x[1], k90, (1, 2)), atol=1e-5)
    np.testing.assert_allclose(out[3], torch.rot90(x[3], 4 - k90, (1, 2)), atol=1e-5)
    # a 45 degree turn by hand: the centre pixel of an off-centre dot moves to the rotated spot
    img = torch.zeros(1, 3, 33, 33)
    img[0, :, 16, 28] = 1.0  # 12 px right of the centre (16, 16)
    r = rotate(img, torch.tensor([45.0]))[0, 0]
    yy, xx = np.unravel_index(int(r.argmax()), r.shape)
    d = 12 / np.sqrt(2)
    assert {abs(xx - 16), abs(yy - 16)} <= {round(d), round(d) - 1, round(d) + 1} and xx > 16


def test_pgd_raises_the_loss_of_a_fixed_crossvit(rng):
    torch.manual_seed(0)
    bb = load_backbone("crossvit_tiny", image_size=32, num_classes=2, patch_sizes=(8, 16), widths=(16, 32),
                       heads=(2, 2), depth=((1, 1),))
    x = bb.to_unit(rng.integers(0, 255, (6, 32, 32, 3)).astype(np.uint8))
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    adv = pgd_attack(bb, x, y, eps=0.03, steps=5, generator=torch.Generator().manual_seed(0))
    assert float((adv - x).abs().max()) <= 0.03 + 1e-6
    noise = (x + 0.03 * torch.sign(torch.randn_like(x))).clamp(0, 1)  # same budget, no gradient
    with torch.no_grad():
        loss = {k: float(F.cross_entropy(bb.model(bb.normalize(v)), y)) for k, v in
                (("clean", x), ("noise", noise), ("pgd", adv))}
    assert loss["pgd"] > loss["clean"] + 1e-3 and loss["pgd"] > loss["noise"]


def test_robustness_of_a_rotation_sensitive_model_drops_under_rotation(rng):
    """A backbone that reads only the top-left quadrant: right on clean images, wrong on rotated ones."""
    bb = load_backbone("smallcnn", image_size=32, num_classes=2, **SMALL)

    class TopLeft(torch.nn.Module):
        def forward(self, x):
            m = x[:, 0, :8, :8].mean((1, 2))
            return torch.stack([m, -m], 1) * 100.0

    bb.model = TopLeft()
    x = np.zeros((8, 32, 32, 3), np.uint8)
    x[::2, :8, :8] = 255  # class 0: bright top-left corner; class 1: dark
    y = np.array([0, 1] * 4)
    r = robustness(bb, x, y, rotation_mode="quarter", pgd_eps=0.0, seed=0)
    assert r["clean"] == 1.0 and r["rotated"] == 0.5 and r["pgd"] == 1.0 and r["n"] == 8


# ---------------------------------------------------------------------------------------------
# config/crossvit.yaml and the stages: per-backbone regimes, robustness rows, the comparison table
# ---------------------------------------------------------------------------------------------
def test_crossvit_preset_validates_with_four_regimes():
    from pathlib import Path

    import yaml

    from neuroattn.config import merge_config, validate_config
    from neuroattn.stages.features import backbone_training

    root = Path(__file__).resolve().parent.parent / "config"
    cfg = validate_config(merge_config(yaml.safe_load((root / "config.yaml").read_text()),
                                       yaml.safe_load((root / "crossvit.yaml").read_text())))
    assert cfg["simulate"]["fmri"]["v4_region"] is True
    assert yaml.safe_load((root / "config.yaml").read_text())["simulate"]["fmri"]["v4_region"] is False
    bbs = cfg["features"]["backbones"]
    names = ["crossvit_standard", "crossvit_rotation", "crossvit_adversarial", "crossvit_joint"]
    assert cfg["scoring"]["backbones"] == names and "smallcnn" in bbs
    regimes = [backbone_training(cfg["backbone_training"], bbs[n])["regime"] for n in names]
    assert regimes == ["standard", "rotation", "adversarial", "joint"]
    assert {bbs[n]["arch"] for n in names} == {"crossvit_tiny"}
    assert backbone_training(cfg["backbone_training"], bbs["smallcnn"])["regime"] == "standard"
    with pytest.raises(Exception, match="regim"):
        backbone_training({}, {"training": {"regim": "joint"}})  # typos refused, the section named


def _stim_folder(tmp_path, x, y):
    from PIL import Image

    stim = tmp_path / "bids" / "stimuli"
    stim.mkdir(parents=True)
    names = [f"img{i:04d}.png" for i in range(len(x))]
    for n, im in zip(names, x):
        Image.fromarray(im).save(stim / n)
    (stim / "stimuli.tsv").write_text("stim_file\tcategory\n" + "".join(f"{n}\t{c}\n" for n, c in zip(names, y)))
    return stim


def test_train_backbone_stage_uses_the_backbone_regime_and_writes_robustness_rows(tmp_path, rng):
    import pandas as pd

    from neuroattn.leaderboard import read_scores
    from neuroattn.stages import run_stage

    x, y = _squares(rng, n=20)
    stim = _stim_folder(tmp_path, x, y)
    bcfg = {"arch": "smallcnn", "weights": "train", "layers": ["layer2"], "image_size": 32,
            "training": {"regime": "joint", "pgd_steps": 1, "eval_pgd_steps": 2}}
    out = {k: str(tmp_path / f"{k}.tsv") for k in ("history", "scores")}
    run_stage("train_backbone", dict(dataset="x", weights=str(tmp_path / "w.pt"), stimuli_dir=str(stim),
                                     backbone="cnn_joint", backbone_config=bcfg, seed=0, device="cpu",
                                     training={"epochs": 1, "batch_size": 8}, **out), threads=1)
    hist = pd.read_csv(out["history"], sep="\t")
    assert (hist.regime == "joint").all() and {"heldout_clean_acc", "heldout_pgd_acc"} <= set(hist.columns)
    rows = read_scores(out["scores"])
    assert list(rows.target) == ["clean", "pgd", "rotated"] and set(rows.model) == {"cnn_joint"}
    assert (rows.metric == "accuracy").all() and (rows.subject == "group").all() and (rows.n == 2).all()
    assert rows.value.iloc[0] == pytest.approx(hist.final_val_acc.iloc[0])


def test_backbone_comparison_table(tmp_path):
    import pandas as pd

    from neuroattn.leaderboard import score_row, write_scores
    from neuroattn.stages import run_stage

    scores, layers, rob = [], [], []
    ev = {("a", "01"): (0.2, 0.5), ("a", "02"): (0.4, 0.7), ("b", "01"): (0.1, 0.3), ("b", "02"): (0.3, 0.1)}
    for (b, s), (v_cat, v_v4) in ev.items():
        p = tmp_path / f"sub-{s}_backbone-{b}_desc-commitment_scores.tsv"
        write_scores(p, [score_row(s, "fmri", f"{b}_committed", "cat_disk", "ceiled_ev", v_cat),
                         score_row(s, "fmri", f"{b}_committed", "shape_V4", "ceiled_ev", v_v4),
                         score_row(s, "fmri", f"{b}_layer1", "shape_V4", "ceiled_ev", 9.0)])  # not committed
        scores.append(str(p))
        lp = tmp_path / f"sub-{s}_backbone-{b}_desc-commitment_layers.tsv"
        pd.DataFrame({"roi": ["cat_disk", "cat_disk", "shape_V4", "shape_V4"], "layer": ["l1", "l2", "l1", "l2"],
                      "depth": [0, 1, 0, 1], "committed": [False, True, s == "01", s != "01"]}).to_csv(lp, sep="\t", index=False)
        layers.append(str(lp))
    rp = tmp_path / "rob_a.tsv"
    write_scores(rp, [score_row("group", "fmri", "a", t, "accuracy", v) for t, v in
                      (("clean", 0.9), ("rotated", 0.5), ("pgd", 0.2))])
    out = tmp_path / "cmp.tsv"
    run_stage("backbone_comparison", dict(table=str(out), scores=scores, layers=layers, robustness=[str(rp)],
                                          backbones=["a", "b"]), threads=1)
    t = pd.read_csv(out, sep="\t").set_index(["backbone", "roi"])
    assert t.loc[("a", "shape_V4"), "ceiled_ev"] == pytest.approx(0.6)
    assert t.loc[("a", "shape_V4"), "ceiled_ev_sd"] == pytest.approx(np.std([0.5, 0.7], ddof=1), abs=1e-4)
    assert t.loc[("a", "cat_disk"), "committed_layer"] == "l2"
    assert t.loc[("a", "shape_V4"), "committed_layer"] == "l1|l2"  # the subjects disagree: both named
    assert t.loc[("a", "V4-like (mean)"), "ceiled_ev"] == pytest.approx(0.6)
    assert t.loc[("b", "category (mean)"), "ceiled_ev"] == pytest.approx(0.2)
    assert t.loc[("a", "cat_disk"), "accuracy_rotated"] == 0.5 and np.isnan(t.loc[("b", "cat_disk"), "accuracy_clean"])
