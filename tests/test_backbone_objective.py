"""The default `weights: train` on stimuli without categories (issue 18): a label-free objective
(predict which quarter turn was applied), chosen before any job from the stimulus table."""
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from neuroattn.cli import main
from neuroattn.config import default_config, merge_config
from neuroattn.config_checks import backbone_objective
from neuroattn.features import training
from neuroattn.features.backbones import load_backbone
from neuroattn.features.training import choose_objective, quarter_turn, rotation_accuracy, train_backbone


def _upright_images(rng, n=240, size=32):
    """Unlabelled images with an 'up': a dark-to-bright vertical gradient, a bright blob in the
    upper half at a random place, random colour and noise (no category anywhere)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(0.1, 0.4), rng.uniform(0.2, 0.8)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.01)
        base = 0.2 + 0.5 * yy + 0.6 * blob + 0.15 * rng.standard_normal((size, size))
        col = rng.uniform(0.5, 1.0, 3)
        out[i] = np.clip(255 * base[..., None] * col, 0, 255).astype(np.uint8)
    return out


def _fit(images, **kw):
    torch.manual_seed(0)
    bb = load_backbone("smallcnn", num_classes=4, image_size=32, layers=["layer2"])
    res = train_backbone(bb, images, None, objective="rotation", epochs=4, batch_size=32, lr=3e-3,
                         val_fraction=0.25, seed=0, device="cpu", **kw)
    return bb, res


def test_quarter_turn_is_exact_and_labelled():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    out = quarter_turn(x, torch.tensor([1, 3]))
    assert torch.equal(out[0], torch.rot90(x[0], 1, dims=(1, 2)))
    assert torch.equal(out[1], torch.rot90(x[1], 3, dims=(1, 2)))
    assert torch.equal(quarter_turn(x, torch.tensor([0, 0])), x)


def test_rotation_objective_learns_on_unlabelled_images(rng):
    images = _upright_images(rng)
    bb, res = _fit(images)
    assert res.objective == "rotation" and res.classes == ["0", "90", "180", "270"]
    assert res.n_val == 60 and res.robustness["n"] == 60  # held-out images, each scored at its 4 turns
    # held-out images the network never saw: rotation predicted far above chance (0.25)
    assert res.val_accuracy > 0.8, res.history  # 1.0 at seeds 0-3
    assert res.robustness["rotation"] == res.val_accuracy
    assert rotation_accuracy(bb, images[:8]) >= 0.0  # callable on any uint8 images


def test_rotation_objective_fails_with_shuffled_rotation_labels(rng, monkeypatch):
    """The check can fail: labels that do not say which turn was applied teach nothing."""
    images = _upright_images(rng)
    real = training.rotation_batch

    def shuffled(x, generator=None):
        xr, k = real(x, generator)
        return xr, k[torch.randperm(len(k), generator=generator)]

    monkeypatch.setattr(training, "rotation_batch", shuffled)
    _, res = _fit(images)
    assert res.val_accuracy < 0.45, res.history  # 0.16-0.36 at seeds 0-3 (60 images x 4 turns)


def test_rotating_regime_is_refused_with_the_rotation_objective(rng):
    bb = load_backbone("smallcnn", num_classes=4, image_size=32)
    with pytest.raises(ValueError, match="regime 'joint' rotates the images"):
        train_backbone(bb, _upright_images(rng, n=8), objective="rotation", regime="joint", epochs=1, device="cpu")


def test_choose_objective():
    assert choose_objective("auto", ["a", "b", "a"])[0] == "category"
    obj, why = choose_objective("auto", None)
    assert obj == "rotation" and "no 'category' column" in why
    assert choose_objective("auto", ["a", "a", "n/a"]) == ("rotation", "the stimuli have 1 distinct category value(s): "
                                                           "label-free rotation prediction")
    assert choose_objective("rotation", ["a", "b"])[0] == "rotation"
    with pytest.raises(ValueError, match="objective 'category' needs at least 2 stimulus categories"):
        choose_objective("category", None)
    with pytest.raises(ValueError, match="must be one of auto, category, rotation"):
        choose_objective("simclr", None)


def _bids_fmri(root, rng, categories=None):
    """A BIDS-shaped fMRI root as the README's contract has it (names only: nothing is loaded)."""
    (root / "stimuli").mkdir(parents=True)
    (root / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.8.0"}')
    func = root / "sub-01" / "func"
    func.mkdir(parents=True)
    (func / "sub-01_task-vision_run-1_bold.nii.gz").write_bytes(b"")
    images = _upright_images(rng, n=40)
    for i, im in enumerate(images):
        Image.fromarray(im).save(root / "stimuli" / f"im{i:02d}.png")
    if categories is not None:
        pd.DataFrame({"stim_file": [f"im{i:02d}.png" for i in range(40)],
                      "category": [categories[i % len(categories)] for i in range(40)]}).to_csv(
            root / "stimuli" / "stimuli.tsv", sep="\t", index=False)
    return root


def test_objective_is_known_before_any_job(tmp_path, rng, capsys):
    """check-config (as rules/common.smk does) says what the backbone will learn from the stimulus table."""
    root = _bids_fmri(tmp_path / "bids", rng)
    cfg = merge_config(default_config(), {"fmri": {"bids_root": str(root)}, "modalities": ["fmri"]})
    assert backbone_objective(cfg, root / "stimuli" / "stimuli.tsv")[0] == "rotation"
    assert backbone_objective(cfg, None) == ("category", "the simulated stimuli carry categories")
    over = tmp_path / "my.yaml"
    over.write_text(yaml.safe_dump({"fmri": {"bids_root": str(root)}, "modalities": ["fmri"]}))
    assert main(["check-config", str(over)]) == 0
    assert "backbone training objective: rotation" in capsys.readouterr().out
    # objective category on data without categories, or a rotating regime: refused, key named
    for extra, key in (({"backbone_training": {"objective": "category"}}, "backbone_training.objective"),
                       ({"backbone_training": {"regime": "joint"}}, "backbone_training.regime")):
        over.write_text(yaml.safe_dump({"fmri": {"bids_root": str(root)}, "modalities": ["fmri"], **extra}))
        assert main(["check-config", str(over)]) == 2
        assert f"config key {key}" in capsys.readouterr().err
    labelled = _bids_fmri(tmp_path / "labelled", rng, categories=["a", "b"])
    assert backbone_objective(cfg, labelled / "stimuli" / "stimuli.tsv")[0] == "category"


def test_train_backbone_stage_on_stimuli_without_categories(tmp_path, rng):
    """The stage that failed with "needs a 'category' column" trains label-free, and its weights extract."""
    from neuroattn.features.store import FeatureStore
    from neuroattn.stages.features import extract_features
    from neuroattn.stages.features import train_backbone as stage

    root = _bids_fmri(tmp_path / "bids", rng)
    bb_cfg = {"arch": "smallcnn", "weights": "train", "layers": ["layer2"], "image_size": 32}
    out = tmp_path / "out"
    out.mkdir()
    stage(weights=str(out / "weights.pt"), history=str(out / "training.tsv"), stimuli_dir=str(root / "stimuli"),
          backbone="smallcnn", backbone_config=bb_cfg, training={"epochs": 1, "objective": "auto"}, seed=0,
          device="cpu", scores=str(out / "scores.tsv"))
    hist = pd.read_csv(out / "training.tsv", sep="\t")
    assert set(hist["objective"]) == {"rotation"} and len(hist) == 1
    rows = pd.read_csv(out / "scores.tsv", sep="\t")
    assert rows[["target", "metric", "chance"]].values.tolist() == [["rotation", "accuracy", 0.25]]
    pd.DataFrame({"image": [f"im{i:02d}.png" for i in range(40)], "split": ["train"] * 30 + ["test"] * 10}).to_csv(
        out / "split.tsv", sep="\t", index=False)
    extract_features(features_h5=str(out / "f.h5"), split=str(out / "split.tsv"), stimuli_dir=str(root / "stimuli"),
                     backbone="smallcnn", backbone_config=bb_cfg, features={"batch_size": 16}, seed=0,
                     device="cpu", weights=[str(out / "weights.pt")])
    pooled = FeatureStore(out / "f.h5").pooled("layer2")
    assert pooled.shape[0] == 40 and np.isfinite(pooled).all()


def test_page_header_says_what_the_backbone_learned():
    from neuroattn.report.summary import page_header

    cfg = default_config()
    assert "objective auto" in page_header(cfg, ["config/config.yaml"])["backbone training"]
    rot = merge_config(cfg, {"backbone_training": {"objective": "rotation"}})
    assert "objective rotation (label-free" in page_header(rot, ["config/config.yaml"])["backbone training"]
    none = merge_config(cfg, {"features": {"backbones": {"smallcnn": {"weights": "random"}}}})
    assert "backbone training" not in page_header(none, ["config/config.yaml"])
