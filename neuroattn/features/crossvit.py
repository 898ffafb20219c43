"""CrossViT (Chen, Fan & Panda 2021, "CrossViT: Cross-Attention Multi-Scale Vision Transformer"),
built natively: no timm, nothing downloaded.

Two transformer branches see the same image cut into small and large patches; each has its own
CLS token and learned positional embedding. A multi-scale block runs each branch's encoder blocks
(pre-norm self-attention + MLP), then fuses the branches by cross-attention: each branch's CLS
token, projected to the other branch's width, is the only query over [itself, the other branch's
patch tokens], is added to that attention output and projected back as the branch's new CLS
(Eq. 7-8 of the paper). The classifier averages the logits of the two CLS heads.

Readable layers are :class:`Tap` modules (identities on a single tensor), so a forward hook on
``model.<name>`` catches them; :attr:`CrossViT.layers` lists them in forward order:

- ``blocks.<i>.small``, ``blocks.<i>.large``: the branch's patch tokens after multi-scale block
  ``i``, as a grid ``(B, C, H, W)`` (CLS stripped); 12x12 and 6x6 at 96 px with patches 8 / 16;
- ``blocks.<i>.fused``: the two CLS tokens after the fusion of block ``i``, concatenated
  ``(B, C_small + C_large)``;
- ``pooled``: the final (layer-normed) CLS pair ``(B, C_small + C_large)``, the heads' input.

Presets (:data:`PRESETS`, :func:`build_crossvit`): ``crossvit_tiny`` (96 px, CPU-sized) and
``crossvit_18`` (the paper's CrossViT-18, 240 px, 43.3 M parameters).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["CrossViTConfig", "CrossViT", "Tap", "PRESETS", "build_crossvit", "crossvit_tiny",
           "crossvit_18", "available_layers"]

#: Branch names, in the order every per-branch pair (patch sizes, widths, ...) is given.
BRANCHES = ("small", "large")
#: The readable taps of one multi-scale block, in forward order.
BLOCK_TAPS = ("small", "large", "fused")


@dataclass(frozen=True)
class CrossViTConfig:
    """Architecture of a :class:`CrossViT`; pairs are (small branch, large branch).

    Parameters
    ----------
    image_size : int
        Side (px) of the model's input.
    patch_sizes : (int, int)
        Patch side of each branch (small first).
    widths : (int, int)
        Token width (embedding dimension) of each branch.
    depth : sequence of (int, int)
        One entry per multi-scale block: the number of encoder blocks of each branch before the
        cross-attention fusion (CrossViT-18: three blocks of (1, 6)).
    heads : int or (int, int)
        Attention heads of each branch; a fusion uses the heads of the branch whose width it runs at.
    mlp_ratio : float
        MLP hidden width / token width.
    image_scale : (float, float)
        Each branch sees the image resized (bicubic) to the multiple of its patch nearest to
        ``image_size * scale``; the paper feeds the large branch 224 px of a 240 px input
        (scale 224/240) so that both branches keep a whole number of patches.
    num_classes : int
        Outputs of the classifier heads.
    dropout : float
        Dropout after the embeddings, the attention projections and in the MLPs.
    attn_dropout : float
        Dropout of the attention weights.
    drop_path : float
        Stochastic-depth rate of the last encoder block (linearly increasing from 0, as the paper).
    qkv_bias : bool
        Biases on the query / key / value projections (the paper: True).
    conv_stem : bool
        CrossViT-dagger patch embedding (the paper's "†" models; Berrios & Deza trained
        ``crossvit_18_dagger_408``): three convolutions (7x7 stride 4, then 3x3) with ReLUs instead
        of one patch-sized linear projection; patch sizes must be multiples of 4. A convolutional
        prior that lets the tiny model learn from a thousand images.
    """

    image_size: int = 96
    patch_sizes: tuple = (8, 16)
    widths: tuple = (64, 128)
    depth: tuple = ((1, 1), (1, 1), (1, 1))
    heads: tuple = (4, 4)
    mlp_ratio: float = 3.0
    image_scale: tuple = (1.0, 1.0)
    num_classes: int = 10
    dropout: float = 0.0
    attn_dropout: float = 0.0
    drop_path: float = 0.0
    qkv_bias: bool = True
    conv_stem: bool = False

    def __post_init__(self):
        # YAML gives lists and a single int for heads: normalise to tuples so configs compare equal.
        heads = self.heads if isinstance(self.heads, (tuple, list)) else (self.heads, self.heads)
        set_ = object.__setattr__
        for name, value in (("patch_sizes", self.patch_sizes), ("widths", self.widths), ("heads", heads),
                            ("image_scale", self.image_scale)):
            value = tuple(value)
            if len(value) != 2:
                raise ValueError(f"CrossViTConfig.{name} needs one value per branch {BRANCHES}, "
                                 f"got {value!r}")
            set_(self, name, value)
        set_(self, "depth", tuple(tuple(int(n) for n in d) for d in self.depth))
        if not self.depth or any(len(d) != 2 or min(d) < 0 for d in self.depth):
            raise ValueError(f"CrossViTConfig.depth must be (n_small, n_large) pairs, one per "
                             f"multi-scale block, got {self.depth!r}")
        # (a fusion runs at the other branch's width with its heads, so this covers fusions too)
        for w, h in zip(self.widths, self.heads):
            if h < 1 or w % h:
                raise ValueError(f"CrossViTConfig: width {w} is not divisible by its {h} heads")
        for p in self.patch_sizes:
            if self.conv_stem and p % 4:
                raise ValueError(f"CrossViTConfig: conv_stem needs patch sizes that are multiples of 4, got {p}")
            if p < 1 or p > self.image_size:
                raise ValueError(f"CrossViTConfig: patch size {p} does not fit image_size {self.image_size}")

    @property
    def branch_sizes(self) -> tuple:
        """Side (px) of the image each branch cuts into patches."""
        return tuple(p * max(1, round(self.image_size * s / p))
                     for p, s in zip(self.patch_sizes, self.image_scale))

    @property
    def grids(self) -> tuple:
        """Token grid (h, w) of each branch."""
        return tuple((n // p, n // p) for n, p in zip(self.branch_sizes, self.patch_sizes))


class Tap(nn.Identity):
    """A readable point: returns its input, so a forward hook on it sees one tensor.

    Its output is not fed back into the network: a hook replacing it changes nothing downstream.
    """


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch for whole samples (training only)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device) >= self.p
        return x * keep.to(x.dtype) / (1.0 - self.p)


class Attention(nn.Module):
    """Multi-head attention of ``queries`` over ``tokens`` (self-attention when they are the same)."""

    def __init__(self, dim, heads, qkv_bias=True, attn_dropout=0.0, dropout=0.0):
        super().__init__()
        self.heads, self.attn_dropout = heads, attn_dropout
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, queries, tokens):
        b, n, c = tokens.shape
        q = self.q(queries).unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (b, heads, nq, c/heads)
        k, v = self.kv(tokens).unflatten(-1, (2, self.heads, -1)).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_dropout if self.training else 0.0)
        return self.drop(self.proj(out.transpose(1, 2).flatten(2)))


class EncoderBlock(nn.Module):
    """Pre-norm transformer encoder block: x + MHSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim, heads, mlp_ratio=4.0, qkv_bias=True, dropout=0.0, attn_dropout=0.0,
                 drop_path=0.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, qkv_bias, attn_dropout, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim), nn.Dropout(dropout))
        self.drop_path = DropPath(drop_path)

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.drop_path(self.attn(h, h))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class CrossFusion(nn.Module):
    """One branch's CLS token attends to the other branch's patch tokens (paper Eq. 7-8).

    The CLS is projected to the other branch's width (LN, GELU, linear: ``f``), used as the single
    query over [itself, the other's patch tokens], added to the attention output (residual at the
    other width) and projected back (``g``). Only the query is the CLS, so the cost is linear in
    the number of tokens.
    """

    def __init__(self, dim, other_dim, heads, qkv_bias=True, dropout=0.0, attn_dropout=0.0, drop_path=0.0):
        super().__init__()
        self.project = nn.Sequential(nn.LayerNorm(dim, eps=1e-6), nn.GELU(), nn.Linear(dim, other_dim))
        self.norm = nn.LayerNorm(other_dim, eps=1e-6)
        self.attn = Attention(other_dim, heads, qkv_bias, attn_dropout, dropout)
        self.drop_path = DropPath(drop_path)
        self.revert = nn.Sequential(nn.LayerNorm(other_dim, eps=1e-6), nn.GELU(), nn.Linear(other_dim, dim))

    def forward(self, own, other):
        """own (B, 1 + N, C), other (B, 1 + M, C_other) -> the fused CLS of ``own`` (B, 1, C)."""
        cls = self.project(own[:, :1])
        h = self.norm(torch.cat([cls, other[:, 1:]], dim=1))
        cls = cls + self.drop_path(self.attn(h[:, :1], h))
        return self.revert(cls)


def _grid(tokens, hw):
    """Patch tokens (B, 1 + h*w, C) -> a (B, C, h, w) view without the CLS token (no copy)."""
    return tokens[:, 1:].unflatten(1, hw).permute(0, 3, 1, 2)


class MultiScaleBlock(nn.Module):
    """Per-branch encoder blocks, then cross-attention fusion of the two CLS tokens.

    Children: ``encoders.small`` / ``encoders.large`` (sequences of :class:`EncoderBlock`),
    ``fusion.small`` (the small CLS reading the large branch) / ``fusion.large``, and the taps
    ``small``, ``large`` (token grids) and ``fused`` (the fused CLS pair).
    """

    def __init__(self, cfg: CrossViTConfig, depth, drop_paths):
        super().__init__()
        self.grids = cfg.grids
        self.encoders = nn.ModuleDict({
            name: nn.Sequential(*[EncoderBlock(w, h, cfg.mlp_ratio, cfg.qkv_bias, cfg.dropout,
                                               cfg.attn_dropout, drop_paths[j]) for j in range(n)])
            for name, w, h, n in zip(BRANCHES, cfg.widths, cfg.heads, depth)})
        # fusion of branch b runs at the other branch's width, with the other branch's heads
        other = {"small": 1, "large": 0}
        self.fusion = nn.ModuleDict({
            name: CrossFusion(w, cfg.widths[other[name]], cfg.heads[other[name]], cfg.qkv_bias,
                              cfg.dropout, cfg.attn_dropout, drop_paths[-1])
            for name, w in zip(BRANCHES, cfg.widths)})
        self.small, self.large, self.fused = Tap(), Tap(), Tap()

    def forward(self, xs):
        s, l = self.encoders["small"](xs[0]), self.encoders["large"](xs[1])
        self.small(_grid(s, self.grids[0]))
        self.large(_grid(l, self.grids[1]))
        cls_s, cls_l = self.fusion["small"](s, l), self.fusion["large"](l, s)
        self.fused(torch.cat([cls_s[:, 0], cls_l[:, 0]], dim=1))
        return torch.cat([cls_s, s[:, 1:]], dim=1), torch.cat([cls_l, l[:, 1:]], dim=1)


def _conv_stem(patch, dim):
    """The dagger patch embedding: 7x7 stride 4 (pad 3), 3x3 stride s2, 3x3 stride s3 (s2 * s3 = patch / 4)."""
    s3 = 2 if patch % 16 == 0 else 1
    s2 = patch // (4 * s3)
    return nn.Sequential(nn.Conv2d(3, dim // 4, 7, stride=4, padding=3), nn.ReLU(inplace=True),
                         nn.Conv2d(dim // 4, dim // 2, 3, stride=s2, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(dim // 2, dim, 3, stride=s3, padding=1))


class PatchTokens(nn.Module):
    """Image -> [CLS, patch tokens] + learned positional embedding, for one branch."""

    def __init__(self, size, patch, dim, dropout=0.0, conv_stem=False):
        super().__init__()
        self.size = size
        self.proj = _conv_stem(patch, dim) if conv_stem else nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        n = (size // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + n, dim))
        self.drop = nn.Dropout(dropout)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, x):
        if x.shape[-1] != self.size:  # the branch's own scale (paper: large branch at 224 of 240 px)
            x = F.interpolate(x, size=(self.size, self.size), mode="bicubic", align_corners=False)
        tok = self.proj(x).flatten(2).transpose(1, 2)
        tok = torch.cat([self.cls_token.expand(len(x), -1, -1), tok], dim=1)
        return self.drop(tok + self.pos_embed)


class CrossViT(nn.Module):
    """Dual-branch CrossViT classifier with readable taps (see the module docstring).

    Parameters
    ----------
    config : CrossViTConfig, optional
        The architecture (default: the ``crossvit_tiny`` preset).
    **overrides
        Fields of :class:`CrossViTConfig` replacing those of ``config``.

    Attributes
    ----------
    config : CrossViTConfig
    layers : list of str
        The readable taps, in forward order.
    """

    def __init__(self, config: CrossViTConfig | None = None, **overrides):
        super().__init__()
        cfg = _replace(config or CrossViTConfig(), overrides)
        self.config = cfg
        self.embed = nn.ModuleDict({name: PatchTokens(size, p, w, cfg.dropout, cfg.conv_stem) for name, size, p, w
                                    in zip(BRANCHES, cfg.branch_sizes, cfg.patch_sizes, cfg.widths)})
        # stochastic depth grows linearly over the encoder blocks (longest branch per block), as the paper
        steps = [max(d) for d in cfg.depth]
        rates = torch.linspace(0, cfg.drop_path, max(1, sum(steps))).tolist()
        starts = [sum(steps[:i]) for i in range(len(steps))]
        self.blocks = nn.ModuleList([MultiScaleBlock(cfg, d, rates[s:s + max(1, n)] or [0.0])
                                     for d, s, n in zip(cfg.depth, starts, steps)])
        self.norm = nn.ModuleDict({name: nn.LayerNorm(w, eps=1e-6) for name, w in zip(BRANCHES, cfg.widths)})
        self.head = nn.ModuleDict({name: nn.Linear(w, cfg.num_classes)
                                   for name, w in zip(BRANCHES, cfg.widths)})
        self.pooled = Tap()
        self.apply(_init_weights)

    @property
    def layers(self) -> list[str]:
        """Readable tap names, in forward order."""
        return [f"blocks.{i}.{t}" for i in range(len(self.blocks)) for t in BLOCK_TAPS] + ["pooled"]

    def forward_features(self, x: torch.Tensor) -> tuple:
        """Images (B, 3, S, S) -> the final CLS tokens (small (B, C_small), large (B, C_large)), normed."""
        size = self.config.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, size, size):
            raise ValueError(f"CrossViT expects images (B, 3, {size}, {size}), got {tuple(x.shape)}")
        xs = (self.embed["small"](x), self.embed["large"](x))
        for block in self.blocks:
            xs = block(xs)
        cls = (self.norm["small"](xs[0][:, 0]), self.norm["large"](xs[1][:, 0]))
        self.pooled(torch.cat(cls, dim=1))
        return cls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, S, S) -> logits (B, num_classes): the mean of the two branch heads."""
        cls_s, cls_l = self.forward_features(x)
        return 0.5 * (self.head["small"](cls_s) + self.head["large"](cls_l))


def _init_weights(m):
    # truncated-normal linears, unit LayerNorms: the ViT/CrossViT initialisation
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def _replace(cfg: CrossViTConfig, overrides: dict) -> CrossViTConfig:
    fields = [f.name for f in dataclasses.fields(CrossViTConfig)]
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise TypeError(f"unknown CrossViT option(s) {unknown}; allowed: {', '.join(fields)}")
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


#: Named architectures. crossvit_18 is the paper's CrossViT-18 (Table 2): 240 px input, the large
#: branch at 224 px, widths 224 / 448, three multi-scale blocks of (1, 6) encoders, 7 heads, MLP ratio 3.
PRESETS = {
    "crossvit_tiny": CrossViTConfig(),
    "crossvit_18": CrossViTConfig(image_size=240, patch_sizes=(12, 16), widths=(224, 448),
                                  depth=((1, 6), (1, 6), (1, 6)), heads=(7, 7), mlp_ratio=3.0,
                                  image_scale=(1.0, 224 / 240), num_classes=1000),
}


def build_crossvit(name: str, **overrides) -> CrossViT:
    """Build preset ``name`` (a key of :data:`PRESETS`), with :class:`CrossViTConfig` fields overridden.

    Raises
    ------
    ValueError
        Unknown preset (the known ones listed).
    TypeError
        Unknown option (the allowed ones listed).
    """
    if name not in PRESETS:
        raise ValueError(f"unknown CrossViT preset {name!r}; known: {', '.join(PRESETS)}")
    return CrossViT(PRESETS[name], **overrides)


def crossvit_tiny(**overrides) -> CrossViT:
    """CPU-sized CrossViT: 96 px, patches 8 / 16 (12x12 and 6x6 tokens), widths 64 / 128, three
    multi-scale blocks of (1, 1) encoders, 4 heads, 10 classes."""
    return build_crossvit("crossvit_tiny", **overrides)


def crossvit_18(**overrides) -> CrossViT:
    """The paper's CrossViT-18 (43.3 M parameters with 1000 classes), for GPUs."""
    return build_crossvit("crossvit_18", **overrides)


def available_layers(model: CrossViT) -> list[str]:
    """The readable tap names of ``model``, in forward order (same as ``model.layers``)."""
    return list(model.layers)
