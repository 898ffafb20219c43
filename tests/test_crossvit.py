"""The native CrossViT (neuroattn.features.crossvit): shapes per tap, layer listing, cross-attention
fusion mixing the branches, the CrossViT-18 parameter count, and a training step that learns."""
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from neuroattn.features.crossvit import (PRESETS, CrossViT, CrossViTConfig, Tap, available_layers,
                                         build_crossvit, crossvit_18, crossvit_tiny)

TAP_SHAPES = {"small": (64, 12, 12), "large": (128, 6, 6), "fused": (64 + 128,)}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return crossvit_tiny().eval()


def run_with_taps(model, x, names, edit=None):
    """Forward ``x``; return the logits and {name: output} of modules ``names`` (in firing order).

    ``edit`` maps a module name to a function replacing its output (a forward hook's return)."""
    caught, handles = {}, []
    for name in names:
        handles.append(model.get_submodule(name).register_forward_hook(
            lambda _m, _i, out, name=name: caught.__setitem__(name, out.detach().clone())))
    for name, fn in (edit or {}).items():
        handles.append(model.get_submodule(name).register_forward_hook(lambda _m, _i, out, fn=fn: fn(out)))
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for h in handles:
            h.remove()
    return logits, caught


def test_logits_shape(model):
    x = torch.randn(3, 3, 96, 96)
    assert model(x).shape == (3, 10)
    assert crossvit_tiny(num_classes=7)(x).shape == (3, 7)


def test_tap_shapes_per_layer_both_branches(model):
    _, out = run_with_taps(model, torch.randn(2, 3, 96, 96), model.layers)
    assert set(out) == set(model.layers)
    for i in range(3):
        for tap, shape in TAP_SHAPES.items():
            assert tuple(out[f"blocks.{i}.{tap}"].shape) == (2,) + shape, (i, tap)
    assert tuple(out["pooled"].shape) == (2, 192)


def test_layer_listing_in_forward_order(model):
    expected = [f"blocks.{i}.{t}" for i in range(3) for t in ("small", "large", "fused")] + ["pooled"]
    assert model.layers == expected
    assert available_layers(model) == expected
    modules = dict(model.named_modules())
    assert all(isinstance(modules[n], Tap) for n in expected)
    # every tap is listed, and hooks fire in the listed order
    assert sorted(n for n, m in modules.items() if isinstance(m, Tap)) == sorted(expected)
    order = []
    handles = [modules[n].register_forward_hook(lambda *_a, n=n: order.append(n)) for n in expected]
    with torch.no_grad():
        model(torch.randn(1, 3, 96, 96))
    for h in handles:
        h.remove()
    assert order == expected


def test_cross_attention_mixes_branches_only_at_fusion(model):
    """Perturbing the large branch's patch tokens leaves the small branch untouched until the first
    fusion, then changes the small CLS (and through it, the small patch tokens of block 1)."""
    torch.manual_seed(1)
    x = torch.randn(2, 3, 96, 96)
    names = ["blocks.0.encoders.small", "blocks.0.small", "blocks.0.fused", "blocks.1.small"]
    noise = torch.randn(2, 128, 6, 6)
    _, base = run_with_taps(model, x, names)
    # embed.large.proj is the patch conv: its output is the large patch tokens only (not the CLS)
    _, pert = run_with_taps(model, x, names, edit={"embed.large.proj": lambda out: out + noise})
    before = base["blocks.0.encoders.small"][:, 0], pert["blocks.0.encoders.small"][:, 0]
    assert torch.equal(*before), "small CLS changed before any fusion"
    assert torch.equal(base["blocks.0.small"], pert["blocks.0.small"])
    small_cls_after = base["blocks.0.fused"][:, :64], pert["blocks.0.fused"][:, :64]
    assert (small_cls_after[0] - small_cls_after[1]).abs().max() > 1e-4, "fusion ignored the large branch"
    # at initialisation the CLS reaches the small patch tokens weakly (0.02-std weights): any change
    assert (base["blocks.1.small"] - pert["blocks.1.small"]).abs().max() > 1e-6


def test_fusion_query_is_the_cls_only(model):
    """Each fusion returns one token per branch (a CLS), at the branch's own width."""
    fusion = model.blocks[0].fusion
    s, l = torch.randn(2, 145, 64), torch.randn(2, 37, 128)
    with torch.no_grad():
        assert fusion["small"](s, l).shape == (2, 1, 64)
        assert fusion["large"](l, s).shape == (2, 1, 128)


def test_crossvit18_matches_paper():
    cfg = PRESETS["crossvit_18"]
    assert cfg.branch_sizes == (240, 224) and cfg.grids == ((20, 20), (14, 14))
    n = sum(p.numel() for p in crossvit_18().parameters())
    assert abs(n - 43.3e6) / 43.3e6 < 0.01, n


def test_branch_image_scale_resizes_one_branch():
    m = crossvit_tiny(image_scale=(1.0, 2 / 3)).eval()  # large branch at 64 px -> 4x4 tokens
    assert m.config.grids == ((12, 12), (4, 4))
    _, out = run_with_taps(m, torch.randn(1, 3, 96, 96), ["blocks.0.small", "blocks.0.large"])
    assert out["blocks.0.small"].shape == (1, 64, 12, 12) and out["blocks.0.large"].shape == (1, 128, 4, 4)


def test_config_errors():
    with pytest.raises(ValueError, match="known: crossvit_tiny"):
        build_crossvit("crossvit_99")
    with pytest.raises(TypeError, match="allowed: image_size"):
        crossvit_tiny(width=3)
    with pytest.raises(ValueError, match="not divisible"):
        CrossViTConfig(widths=(64, 130))
    with pytest.raises(ValueError, match="one per"):
        CrossViTConfig(depth=((1, 1, 0),))
    with pytest.raises(ValueError, match=r"\(B, 3, 96, 96\)"):
        crossvit_tiny()(torch.randn(1, 3, 64, 64))
    assert CrossViTConfig(heads=4, depth=[[1, 1]]) == CrossViTConfig(heads=(4, 4), depth=((1, 1),))


def test_training_step_reduces_loss():
    torch.manual_seed(0)
    m = CrossViT(depth=((1, 1), (1, 1)), num_classes=4).train()
    x, y = torch.randn(16, 3, 96, 96), torch.arange(16) % 4
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    losses = []
    for _ in range(12):
        loss = F.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.grad is not None for n, p in m.named_parameters()), "a parameter got no gradient"
    assert losses[-1] < 0.5 * losses[0], losses


def test_project_extractor_reads_every_tap(model):
    """The feature extractor hooks the taps: grids become (n, h*w, C) tokens, pooled taps (n, 1, C)."""
    from neuroattn.features.backbones import Backbone
    from neuroattn.features.extract import extract

    bb = Backbone(model, "crossvit_tiny", 96, default_layers=model.layers)
    images = np.random.default_rng(0).integers(0, 256, (5, 96, 96, 3), dtype=np.uint8)
    feats = extract(bb, images, batch_size=2)
    assert feats.grids["blocks.1.small"] == (12, 12) and feats["blocks.1.small"].shape == (5, 144, 64)
    assert feats.grids["blocks.1.large"] == (6, 6) and feats["blocks.1.large"].shape == (5, 36, 128)
    assert feats["blocks.2.fused"].shape == (5, 1, 192) and feats.pooled("pooled").shape == (5, 192)


def test_conv_stem_dagger_embedding_keeps_token_grids():
    """conv_stem (the paper's dagger models): three convolutions, same token grids as the patches."""
    torch.manual_seed(0)
    m = crossvit_tiny(conv_stem=True).eval()
    proj = m.embed["small"].proj
    assert isinstance(proj, torch.nn.Sequential) and [c.stride[0] for c in proj if isinstance(c, torch.nn.Conv2d)] == [4, 2, 1]
    assert [c.stride[0] for c in m.embed["large"].proj if isinstance(c, torch.nn.Conv2d)] == [4, 2, 2]
    _, out = run_with_taps(m, torch.randn(2, 3, 96, 96), m.layers)
    for tap, shape in TAP_SHAPES.items():
        assert tuple(out[f"blocks.0.{tap}"].shape) == (2,) + shape
    with pytest.raises(ValueError, match="multiples of 4"):
        CrossViTConfig(patch_sizes=(6, 16), conv_stem=True)
