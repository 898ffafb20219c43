"""Backbones, layer extraction, feature caches (with PCA fitted on train only) and backbone training."""
import numpy as np
import pytest
import torch
from PIL import Image

from neuroattn.features import FeatureStore, StreamingPCA
from neuroattn.features.backbones import SmallCNN, list_backbones, load_backbone
from neuroattn.features.cache import cache_features
from neuroattn.features.extract import extract, load_image
from neuroattn.features.training import pgd_attack, rotate, save_weights, train_backbone
from neuroattn.stages.features import stimulus_table

SMALL = dict(widths=(8, 16, 16, 32))


@pytest.fixture
def images(rng):
    return rng.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return load_backbone("smallcnn", image_size=32, **SMALL)


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return load_backbone("vit_b_16", image_size=32)


# ---------------------------------------------------------------------------------------------
# shapes and equality with a manual forward pass
# ---------------------------------------------------------------------------------------------
def test_smallcnn_grids_at_96px(rng):
    bb = load_backbone("smallcnn", image_size=96)
    f = extract(bb, rng.integers(0, 256, (2, 96, 96, 3), dtype=np.uint8))
    assert {k: f.grids[k] for k in f} == {"layer1": (24, 24), "layer2": (12, 12), "layer3": (6, 6), "layer4": (3, 3)}
    assert [f[k].shape for k in f] == [(2, 576, 32), (2, 144, 64), (2, 36, 128), (2, 9, 256)]
    assert bb.weights == "random" and f.weights == "random"


def test_extract_equals_manual_forward_conv(cnn, images):
    f = extract(cnn, images, layers=["layer3", "layer1"], batch_size=3)  # uneven batches
    m = cnn.model.eval()
    with torch.no_grad():
        x = cnn.preprocess(images)
        l1 = m.layer1(m.stem(x))
        l3 = m.layer3(m.layer2(l1))
    h, w = f.grids["layer3"]
    assert (h, w) == tuple(l3.shape[-2:])
    # token t = y * w + x holds the channel vector at (y, x)
    assert f.grids["layer1"] == (8, 8)
    np.testing.assert_allclose(f["layer1"][:, 1 * 8 + 2], l1[:, :, 1, 2].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(f["layer3"], l3.permute(0, 2, 3, 1).reshape(7, h * w, -1).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(f["layer1"], l1.flatten(2).transpose(1, 2).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(f.pooled("layer3"), l3.mean((2, 3)).numpy(), rtol=1e-5, atol=1e-5)
    assert not cnn.model.training


def test_extract_vit_drops_cls_and_matches_manual_forward(vit, images):
    layer = "encoder.layers.encoder_layer_3"
    f = extract(vit, images[:3], layers=[layer], batch_size=2)
    assert f[layer].shape == (3, 4, 768) and f.grids[layer] == (2, 2) and f.cls[layer].shape == (3, 768)
    m = vit.model
    with torch.no_grad():
        h = m._process_input(vit.preprocess(images[:3]))
        h = torch.cat([m.class_token.expand(3, -1, -1), h], 1) + m.encoder.pos_embedding
        for blk in list(m.encoder.layers)[:4]:
            h = blk(h)
    np.testing.assert_allclose(f[layer], h[:, 1:].numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(f.cls[layer], h[:, 0].numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(f.pooled(layer), f.cls[layer])


def test_torchvision_conv_backbones(images):
    f = extract(load_backbone("resnet18", image_size=64), images[:2], layers=["layer2", "avgpool"])
    assert f["layer2"].shape == (2, 64, 128) and f.grids["layer2"] == (8, 8)
    assert f["avgpool"].shape == (2, 1, 512) and f.grids["avgpool"] == (1, 1)
    f = extract(load_backbone("alexnet", image_size=64), images[:2], layers=["features.5"])
    assert f["features.5"].shape == (2, 9, 192)


def test_images_resized_to_backbone_size(cnn, rng):
    big = rng.integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)
    assert extract(cnn, big, layers="layer1")["layer1"].shape == (2, 64, 8)


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
def test_unknown_layer_lists_available(cnn, images):
    with pytest.raises(KeyError, match=r"no layer 'layer9'.*available: .*layer1.*layer4"):
        extract(cnn, images, layers=["layer9"])


def test_unknown_backbone_lists_known():
    with pytest.raises(ValueError, match=r"unknown backbone 'resnet9000'.*smallcnn.*resnet18.*vit_b_16"):
        load_backbone("resnet9000")
    assert {"smallcnn", "resnet18", "resnet50", "alexnet", "vit_b_16"} <= set(list_backbones())


def test_timm_backbone():
    try:
        import timm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="needs timm"):
            load_backbone("timm:resnet18")
        pytest.skip("timm not installed: only the error path is tested")
    bb = load_backbone("timm:vit_tiny_patch16_224", image_size=32, img_size=32,
                       layers=["blocks.1"])
    f = extract(bb, np.zeros((2, 32, 32, 3), np.uint8))
    assert f["blocks.1"].shape == (2, 4, 192) and f.cls["blocks.1"].shape == (2, 192)


def test_image_array_checks(cnn):
    with pytest.raises(ValueError, match="uint8"):
        extract(cnn, np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(n, H, W, 3\)"):
        extract(cnn, np.zeros((2, 32, 32), np.uint8))


def test_image_files(tmp_path, cnn, images):
    Image.fromarray(images[0]).save(tmp_path / "rgb.png")
    Image.fromarray(images[1, ..., 0]).save(tmp_path / "gray.png")
    opaque = np.dstack([images[2], np.full((32, 32), 255, np.uint8)])
    Image.fromarray(opaque, "RGBA").save(tmp_path / "opaque.png")
    f = extract(cnn, [tmp_path / "rgb.png", tmp_path / "gray.png", tmp_path / "opaque.png"], layers="layer2")
    ref = extract(cnn, np.stack([images[0], np.repeat(images[1, ..., :1], 3, -1), images[2]]), layers="layer2")
    np.testing.assert_allclose(f["layer2"], ref["layer2"], rtol=1e-5, atol=1e-5)
    assert load_image(tmp_path / "gray.png").shape == (32, 32, 3)

    Image.fromarray(np.dstack([images[2], np.zeros((32, 32), np.uint8)]), "RGBA").save(tmp_path / "clear.png")
    with pytest.raises(ValueError, match=r"clear\.png.*transparent"):
        extract(cnn, [tmp_path / "rgb.png", tmp_path / "clear.png"])
    Image.fromarray(np.zeros((8, 8), np.uint16)).save(tmp_path / "deep.png")
    with pytest.raises(ValueError, match=r"deep\.png.*unsupported image mode"):
        load_image(tmp_path / "deep.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"junk\.png.*unreadable"):
        extract(cnn, [tmp_path / "junk.png"])
    with pytest.raises(ValueError, match=r"nothere\.png.*does not exist"):
        load_image(tmp_path / "nothere.png")


# ---------------------------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------------------------
def test_weights_roundtrip_and_record(tmp_path, cnn, images):
    path = tmp_path / "w.pt"
    save_weights(cnn, path)
    torch.manual_seed(123)  # a different random init must be overwritten by the file
    bb = load_backbone("smallcnn", path, image_size=32, **SMALL)
    assert bb.weights == f"pretrained:{path}"
    np.testing.assert_array_equal(extract(bb, images)["layer4"], extract(cnn, images)["layer4"])
    assert load_backbone("smallcnn", path, image_size=32, origin="trained", **SMALL).weights == f"trained:{path}"
    # num_classes is read from the classifier in the file
    save_weights(load_backbone("smallcnn", image_size=32, num_classes=3, **SMALL), path)
    assert load_backbone("smallcnn", path, image_size=32, **SMALL).model.fc.out_features == 3


def test_weights_of_wrong_architecture_named(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save(load_backbone("resnet18").model.state_dict(), path)
    with pytest.raises(ValueError, match=r"resnet\.pt.*missing keys: stem\.0\.weight.*unexpected keys: conv1\.weight"):
        load_backbone("smallcnn", path)
    torch.save(SmallCNN(10, widths=(8, 16, 32, 64)).state_dict(), path)
    with pytest.raises(ValueError, match=r"shape mismatches.*stem\.0\.weight \(8, 3, 5, 5\) vs \(32, 3, 5, 5\)"):
        load_backbone("smallcnn", path)
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="not a state dict"):
        load_backbone("smallcnn", path)


def test_missing_weights_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.pt does not exist"):
        load_backbone("smallcnn", tmp_path / "nope.pt")


# ---------------------------------------------------------------------------------------------
# caches and PCA
# ---------------------------------------------------------------------------------------------
def test_cache_roundtrip(tmp_path, cnn, images):
    names = [f"im{i}.png" for i in range(7)]
    path = tmp_path / "f.h5"
    cache_features(cnn, images, path, names=names, layers=["layer2", "layer4"], batch_size=3, dtype="float32")
    ref = extract(cnn, images, layers=["layer2", "layer4"], batch_size=3)
    st = FeatureStore(path)
    assert list(st.images) == names and st.layers == ["layer2", "layer4"]
    assert st.attrs["weights"] == "random" and st.attrs["pca"] == 0
    assert st.grid("layer2") == ref.grids["layer2"]
    np.testing.assert_array_equal(st.tokens("layer2"), ref["layer2"])
    np.testing.assert_array_equal(st.tokens("layer4", ["im5.png", "im1.png"]), ref["layer4"][[5, 1]])
    np.testing.assert_allclose(st.pooled("layer4"), ref.pooled("layer4"), rtol=1e-6)
    got = np.concatenate([t for _, t in st.iter_tokens("layer2", batch_size=2)])
    np.testing.assert_array_equal(got, ref["layer2"])
    assert st.pca("layer2") is None
    cache_features(cnn, images, path, names=names, layers=["layer2"])  # float16 default
    np.testing.assert_allclose(FeatureStore(path).tokens("layer2"), ref["layer2"], rtol=2e-3, atol=2e-3)


def test_cache_vit_keeps_cls(tmp_path, vit, images):
    layer = "encoder.layers.encoder_layer_1"
    cache_features(vit, images[:2], tmp_path / "v.h5", layers=[layer])
    st = FeatureStore(tmp_path / "v.h5")
    ref = extract(vit, images[:2], layers=[layer])
    np.testing.assert_allclose(st.cls(layer), ref.cls[layer], rtol=1e-5)
    np.testing.assert_allclose(st.pooled(layer), ref.cls[layer], rtol=1e-5)


def test_streaming_pca_equals_sklearn(rng):
    from sklearn.decomposition import PCA

    X = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 5.0
    p = StreamingPCA(3)
    for a, b in [(0, 1), (1, 50), (50, 300)]:  # any batch size, even one row
        p.partial_fit(X[a:b])
    p.finalize()
    sk = PCA(3).fit(X)
    np.testing.assert_allclose(p.explained_variance_, sk.explained_variance_, rtol=1e-8)
    np.testing.assert_allclose(np.abs(p.components_ @ sk.components_.T), np.eye(3), atol=1e-8)
    np.testing.assert_allclose(np.abs(p.transform(X)), np.abs(sk.transform(X)), rtol=1e-4, atol=1e-4)


def test_pca_fitted_on_train_images_only(tmp_path, cnn, rng):
    train = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    test_a = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    test_b = np.full((3, 32, 32, 3), 255, np.uint8)  # very different test images
    fit_on = np.r_[np.ones(6, bool), np.zeros(3, bool)]
    stores = []
    for k, test in enumerate([test_a, test_b]):
        path = tmp_path / f"p{k}.h5"
        cache_features(cnn, np.concatenate([train, test]), path, layers=["layer2", "layer4"], pca=4,
                       fit_on=fit_on, dtype="float32")
        stores.append(FeatureStore(path))
    a, b = (s.pca("layer2") for s in stores)
    np.testing.assert_array_equal(a["components"], b["components"])  # test images changed nothing
    np.testing.assert_array_equal(stores[0].tokens("layer2")[:6], stores[1].tokens("layer2")[:6])
    assert stores[0].channels("layer2") == 4 and stores[0].attrs["pca"] == 4
    # ... and the fit is the PCA of the training tokens
    tok = extract(cnn, train, layers="layer2")["layer2"].reshape(-1, 16)
    ref = StreamingPCA(4).fit(tok)
    np.testing.assert_allclose(a["components"], ref.components_, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stores[0].tokens("layer2")[:6].reshape(-1, 4), ref.transform(tok), rtol=1e-4, atol=1e-4)
    # a fit including the test images differs
    ref_all = StreamingPCA(4).fit(extract(cnn, np.concatenate([train, test_b]), layers="layer2")["layer2"].reshape(-1, 16))
    assert not np.allclose(np.abs(ref_all.components_), np.abs(a["components"]), atol=1e-3)
    with pytest.raises(ValueError, match="fit_on"):
        cache_features(cnn, train, tmp_path / "x.h5", pca=4)


def test_stimulus_table(tmp_path, images):
    stim = tmp_path / "stimuli"
    stim.mkdir()
    for i in range(2):
        Image.fromarray(images[i]).save(stim / f"img{i}.png")
    assert list(stimulus_table(tmp_path).stim_file) == ["img0.png", "img1.png"]
    (stim / "stimuli.tsv").write_text("stim_file\tcategory\nimg1.png\tcat\nimg0.png\tdog\nimg7.png\tcow\n")
    with pytest.raises(FileNotFoundError, match="img7.png"):
        stimulus_table(tmp_path)
    (stim / "stimuli.tsv").write_text("stim_file\tcategory\nimg1.png\tcat\nimg0.png\tdog\n")
    df = stimulus_table(tmp_path)
    assert list(df.category) == ["cat", "dog"] and df.path[0].endswith("img1.png")


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
def _squares(rng, n=48, size=32):
    cols = np.array([[230, 30, 30], [30, 30, 230]], np.uint8)
    x = rng.integers(0, 100, (n, size, size, 3), dtype=np.uint8)
    y = np.arange(n) % 2
    for i in range(n):
        r, c = rng.integers(0, size - 12, 2)
        x[i, r:r + 12, c:c + 12] = cols[y[i]]
    return x, np.array(["red", "blue"])[y]


def test_training_loss_goes_down(rng, tmp_path):
    x, y = _squares(rng)
    torch.manual_seed(0)
    bb = load_backbone("smallcnn", image_size=32, num_classes=2, **SMALL)
    res = train_backbone(bb, x, y, epochs=4, batch_size=16, lr=3e-3, val_fraction=0.25, seed=0, device="cpu")
    losses = [h["loss"] for h in res.history]
    assert losses[-1] < 0.7 * losses[0]
    assert res.classes == ["blue", "red"] and res.n_train == 36 and res.n_val == 12
    assert res.train_accuracy > 0.8
    with pytest.raises(ValueError, match="num_classes=2"):
        train_backbone(load_backbone("smallcnn", image_size=32, num_classes=5, **SMALL), x, y, epochs=1)


def test_training_with_rotation_and_pgd_is_deterministic(rng):
    x, y = _squares(rng, n=16)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        bb = load_backbone("smallcnn", image_size=32, num_classes=2, **SMALL)
        res = train_backbone(bb, x, y, epochs=1, batch_size=8, regime="joint", rotation_mode="uniform", rotation=30, pgd_steps=2,
                             val_fraction=0, seed=1, device="cpu")
        runs.append(res.history[0]["loss"])
    assert np.isfinite(runs[0]) and runs[0] == runs[1]


def test_rotate_quarter_turn_is_rot90():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    out = rotate(x, torch.tensor([90.0, 0.0]))
    np.testing.assert_allclose(out[1], x[1], atol=1e-4)
    assert min(float((out[0] - torch.rot90(x[0], k, (1, 2))).abs().max()) for k in (1, 3)) < 1e-3


def test_pgd_stays_in_ball_and_raises_loss(cnn, images):
    cnn.model.fc = torch.nn.Linear(32, 2)
    x = cnn.to_unit(images)
    y = torch.tensor([0, 1, 0, 1, 0, 1, 0])
    adv = pgd_attack(cnn, x, y, eps=0.03, steps=4, generator=torch.Generator().manual_seed(0))
    assert float((adv - x).abs().max()) <= 0.03 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    ce = torch.nn.functional.cross_entropy
    with torch.no_grad():
        assert ce(cnn.model(cnn.normalize(adv)), y) > ce(cnn.model(cnn.normalize(x)), y)


def test_flip_and_shift_augment():
    from neuroattn.features.training import affine_augment

    x = torch.rand(2, 3, 8, 8)
    np.testing.assert_allclose(affine_augment(x, flips=torch.tensor([True, False])),
                               torch.stack([x[0].flip(-1), x[1]]), atol=1e-5)
    shifted = affine_augment(x, shifts=torch.tensor([[0.25, 0.0], [0.0, 0.0]]))  # 2 px right
    np.testing.assert_allclose(shifted[0, :, :, 2:], x[0, :, :, :-2], atol=1e-5)
    assert float(shifted[0, :, :, :2].abs().max()) == 0.0


# ---------------------------------------------------------------------------------------------
# the stages of rules/features.smk, end to end on a tiny stimulus folder
# ---------------------------------------------------------------------------------------------
def _run_stage(name, **kwargs):
    from neuroattn.stages import run_stage

    run_stage(name, kwargs, threads=1)


def test_rule_scripts_train_then_extract_with_pca(tmp_path, rng):
    x, y = _squares(rng, n=20)
    stim = tmp_path / "bids" / "stimuli"
    stim.mkdir(parents=True)
    names = [f"img{i:04d}.png" for i in range(20)]
    for n, im in zip(names, x):
        Image.fromarray(im).save(stim / n)
    (stim / "stimuli.tsv").write_text("stim_file\tcategory\n" + "".join(f"{n}\t{c}\n" for n, c in zip(names, y)))
    split = tmp_path / "images.tsv"
    split.write_text("image\tsplit\tn_subjects\n" + "".join(
        f"{n}\t{'test' if i < 5 else 'train'}\t1\n" for i, n in enumerate(names)))
    bcfg = {"arch": "smallcnn", "weights": "train", "layers": ["layer2", "layer3"], "image_size": 32}
    w, hist = tmp_path / "weights.pt", tmp_path / "training.tsv"
    _run_stage("train_backbone", dataset="x", weights=str(w), history=str(hist), stimuli_dir=str(stim),
               backbone="smallcnn", backbone_config=bcfg, seed=0, device="cpu",
               training={"epochs": 2, "batch_size": 8, "lr": 0.002, "rotation": 10.0, "flip": True,
                         "translate": 0.05, "regime": "standard", "pgd_eps": 0.01, "pgd_steps": 1})
    assert w.is_file() and "final_val_acc" in hist.read_text()
    out = tmp_path / "features.h5"
    _run_stage("extract_features", dataset="x", split=str(split), weights=[str(w)], features_h5=str(out),
               stimuli_dir=str(stim), backbone="smallcnn", backbone_config=bcfg, seed=0, device="cpu",
               features={"batch_size": 8, "dtype": "float16", "pca": 64})
    st = FeatureStore(out)
    assert list(st.images) == names and st.layers == ["layer2", "layer3"]
    assert st.attrs["weights"] == f"trained:{w}" and st.attrs["backbone"] == "smallcnn"
    # layer2 has 64 channels: kept as is; layer3 (128) reduced to 64 components
    assert st.channels("layer2") == 64 and st.pca("layer2") is None
    assert st.tokens("layer3").shape == (20, 4, 64) and st.pca("layer3")["components"].shape == (64, 128)


def test_store_reads_repeated_and_unordered_images(tmp_path, cnn, images):
    cache_features(cnn, images, tmp_path / "f.h5", names=list("abcdefg"), layers=["layer4"], dtype="float32")
    st = FeatureStore(tmp_path / "f.h5")
    full = st.tokens("layer4")
    np.testing.assert_array_equal(st.tokens("layer4", ["g", "a", "g", "c"]), full[[6, 0, 6, 2]])
    np.testing.assert_array_equal(st.pooled("layer4", ["b", "b"]), st.pooled("layer4")[[1, 1]])
    with pytest.raises(KeyError, match="zz"):
        st.tokens("layer4", ["a", "zz"])


def test_package_level_extract_is_callable(cnn, images):
    import neuroattn.features as nf
    import neuroattn.features.extract  # noqa: F401  (the submodule shadows the function name)

    np.testing.assert_array_equal(nf.extract(cnn, images, layers="layer4")["layer4"],
                                  extract(cnn, images, layers="layer4")["layer4"])


# ---------------------------------------------------------------------------------------------
# the backbone registry
# ---------------------------------------------------------------------------------------------
def test_backbone_registry_kinds_and_configs_agree():
    """Every backbone ``arch`` of the shipped configs resolves to a registered kind, and the
    registry's kinds are the ones the schema's ``features.backbones.<name>.arch`` describes."""
    import glob

    import yaml

    from conftest import ROOT
    from neuroattn.features.backbones import BACKBONES, backbone_kind

    assert BACKBONES.names() == ["smallcnn", "crossvit", "torchvision", "timm"]
    archs = set()
    for f in glob.glob(f"{ROOT}/config/*.yaml"):
        cfg = yaml.safe_load(open(f)) or {}
        for b in ((cfg.get("features") or {}).get("backbones") or {}).values():
            if isinstance(b, dict) and "arch" in b:
                archs.add(b["arch"])
    assert "smallcnn" in archs
    for arch in archs:
        assert backbone_kind(arch) in BACKBONES
    schema = yaml.safe_load(open(f"{ROOT}/config/config.schema.yaml"))
    arch = schema["properties"]["features"]["properties"]["backbones"]["additionalProperties"]["properties"]["arch"]
    for kind in BACKBONES.names():
        assert kind in arch["description"]


def test_backbone_unknown_kwargs_refused():
    with pytest.raises(TypeError, match="unknown parameter.*width"):
        load_backbone("smallcnn", image_size=32, width=8)


class _Named(list):
    """A stand-in for snakemake's Namedlist: positional and named entries."""

    def __init__(self, **named):
        super().__init__(named.values())
        self._named = named

    def keys(self):
        return self._named.keys()

    def __getitem__(self, k):
        return self._named[k] if isinstance(k, str) else list.__getitem__(self, k)


def test_rule_script_calls_its_stage(tmp_path, rng, monkeypatch):
    """rules/scripts/train_backbone.py hands the rule's named inputs/outputs/params/wildcards over."""
    import runpy
    from types import SimpleNamespace

    from conftest import ROOT
    import neuroattn.stages.features as sf

    seen, stage = {}, sf.train_backbone
    monkeypatch.setattr(sf, "train_backbone", lambda **kw: seen.update(kw))
    monkeypatch.setitem(__import__("neuroattn.stages", fromlist=["STAGES"]).STAGES, "train_backbone",
                        "neuroattn.stages.features:train_backbone")
    smk = SimpleNamespace(input=_Named(dataset="d.json", stimuli=[]), output=_Named(weights="w.pt", history="h.tsv"),
                          params=_Named(stimuli_dir="s", backbone_config={"arch": "smallcnn"}, training={},
                                        seed=0, device="cpu"),
                          wildcards=_Named(backbone="smallcnn"), log=[str(tmp_path / "l.log")], threads=1)
    runpy.run_path(f"{ROOT}/rules/scripts/train_backbone.py", init_globals={"snakemake": smk})
    import inspect

    inspect.signature(stage).bind(**seen)  # the rule's names fit the real stage function
    assert seen == {"dataset": "d.json", "stimuli": [], "weights": "w.pt", "history": "h.tsv", "stimuli_dir": "s",
                    "backbone_config": {"arch": "smallcnn"}, "training": {}, "seed": 0, "device": "cpu",
                    "backbone": "smallcnn"}
