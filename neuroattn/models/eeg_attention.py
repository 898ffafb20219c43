"""Channel-attention modules for BaseNet (Wimpff et al.; references.md §3), one registry.

Each module maps ``(B, C, 1, T) -> (B, C, 1, T)`` and, where it computes a per-channel gate,
keeps the last one (detached) in ``last_weights`` ``(B, C)`` for interpretation. Modules are
listed by name in :data:`ATTENTION` (a :class:`~neuroattn.registry.Registry`); the ``settings``
of an entry are the BaseNet settings it takes (:func:`make_attention` refuses any other).

Parameter counts on 2a defaults (reduction 4, ECA/CBAM kernel 9, 4 EncNet codewords), pinned by
the tests: extra SE +128, ECA +9, GCT +48, GE +0, SRM +64, CBAM +147, EncNet +348, GSoP +428,
CATLite +151 (equal to the published framework's); FCA +128 (fixed DCT bases are a buffer, so FCA
costs what SE costs; no published figure to compare); CAT +2,440 (bias-free MLP 128, a 9-tap
convolution over time from the 16 maps to 16, 8 fusion scalars), as the published framework's
code builds it.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Registry

__all__ = [
    "ATTENTION", "ATTENTION_MODULES", "make_attention",
    "SE", "ECA", "GCT", "GE", "SRM", "CBAM", "EncNet", "GSoP", "FCA", "CAT", "CATLite",
]


class _Attention(nn.Module):
    """Common bits: keep the last per-channel gate for interpretation."""

    last_weights: torch.Tensor | None = None

    def _keep(self, gate: torch.Tensor) -> None:
        self.last_weights = gate.detach().reshape(gate.shape[0], gate.shape[1], -1).mean(-1)


def _mlp(c: int, hidden: int, bias: bool) -> nn.Sequential:
    return nn.Sequential(nn.Linear(c, hidden, bias=bias), nn.ReLU(), nn.Linear(hidden, c, bias=bias))


def _hidden(c: int, reduction: int) -> int:
    return max(1, c // reduction)


class SE(_Attention):
    """Squeeze-and-excitation: global average pool -> bias-free MLP (C -> C/r -> C) -> sigmoid."""

    def __init__(self, n_channels: int, n_times: int, reduction: int = 4):
        super().__init__()
        self.fc = _mlp(n_channels, _hidden(n_channels, reduction), bias=False)

    def forward(self, x):
        gate = torch.sigmoid(self.fc(x.mean((2, 3))))
        self._keep(gate)
        return x * gate[:, :, None, None]


class ECA(_Attention):
    """Efficient channel attention: global average pool -> 1-D conv across channels -> sigmoid."""

    def __init__(self, n_channels: int, n_times: int, kernel_size: int = 9):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, kernel_size, padding="same", bias=False)

    def forward(self, x):
        gate = torch.sigmoid(self.conv(x.mean((2, 3)).unsqueeze(1))).squeeze(1)
        self._keep(gate)
        return x * gate[:, :, None, None]


class GCT(_Attention):
    """Gated channel transformation: l2 embedding (alpha), channel normalisation (gamma), tanh gate (beta)."""

    def __init__(self, n_channels: int, n_times: int, eps: float = 1e-5):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, n_channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, n_channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, n_channels, 1, 1))
        self.eps = eps

    def forward(self, x):
        emb = self.alpha * torch.sqrt(x.pow(2).sum((2, 3), keepdim=True) + self.eps)
        norm = self.gamma / torch.sqrt(emb.pow(2).mean(1, keepdim=True) + self.eps)
        gate = 1.0 + torch.tanh(emb * norm + self.beta)
        self._keep(gate)
        return x * gate


class GE(_Attention):
    """Gather-excite without parameters (GE-theta-minus): local average gather, upsample, sigmoid.

    ``extent`` = temporal window of the gather (0 = global).
    """

    def __init__(self, n_channels: int, n_times: int, extent: int = 0):
        super().__init__()
        self.extent = extent

    def forward(self, x):
        t = x.shape[-1]
        if self.extent and self.extent < t:
            g = F.avg_pool2d(x, (1, self.extent), stride=(1, self.extent), ceil_mode=True)
            g = F.interpolate(g, size=(1, t), mode="nearest")
        else:
            g = x.mean((2, 3), keepdim=True)
        gate = torch.sigmoid(g)
        self._keep(gate)
        return x * gate


class SRM(_Attention):
    """Style-based recalibration: (mean, sd) per channel -> channel-wise linear combination -> BN -> sigmoid."""

    def __init__(self, n_channels: int, n_times: int):
        super().__init__()
        self.cfc = nn.Parameter(torch.zeros(n_channels, 2))
        self.bn = nn.BatchNorm1d(n_channels)

    def forward(self, x):
        flat = x.reshape(x.shape[0], x.shape[1], -1)
        style = torch.stack([flat.mean(-1), flat.std(-1, unbiased=False)], -1)  # (B, C, 2)
        gate = torch.sigmoid(self.bn((style * self.cfc).sum(-1)))
        self._keep(gate)
        return x * gate[:, :, None, None]


class CBAM(_Attention):
    """Convolutional block attention: channel gate (shared bias-free MLP on avg and max pools) then
    temporal gate (conv over [mean, max] across channels, kernel ``kernel_size``)."""

    def __init__(self, n_channels: int, n_times: int, reduction: int = 4, kernel_size: int = 9):
        super().__init__()
        self.fc = _mlp(n_channels, _hidden(n_channels, reduction), bias=False)
        self.conv = nn.Conv2d(2, 1, (1, kernel_size), padding="same", bias=True)

    def forward(self, x):
        gate = torch.sigmoid(self.fc(x.mean((2, 3))) + self.fc(x.amax((2, 3))))
        self._keep(gate)
        x = x * gate[:, :, None, None]
        sp = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return x * torch.sigmoid(self.conv(sp))


class EncNet(_Attention):
    """Context encoding: soft-assignment of the T feature vectors to ``n_codes`` learned codewords,
    BN + ReLU over codes, mean over codes -> Linear(C, C) -> sigmoid channel gate."""

    def __init__(self, n_channels: int, n_times: int, n_codes: int = 4):
        super().__init__()
        std = 1.0 / math.sqrt(n_codes * n_channels)
        self.codewords = nn.Parameter(torch.empty(n_codes, n_channels).uniform_(-std, std))
        self.scale = nn.Parameter(torch.empty(n_codes).uniform_(-1, 0))
        self.bn = nn.BatchNorm1d(n_codes)
        self.fc = nn.Linear(n_channels, n_channels)

    def forward(self, x):
        feats = x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2)  # (B, N, C)
        resid = feats.unsqueeze(2) - self.codewords[None, None]  # (B, N, K, C)
        assign = torch.softmax(self.scale * resid.pow(2).sum(-1), dim=2)  # (B, N, K)
        enc = (assign.unsqueeze(-1) * resid).sum(1)  # (B, K, C)
        enc = F.relu(self.bn(enc)).mean(1)
        gate = torch.sigmoid(self.fc(enc))
        self._keep(gate)
        return x * gate[:, :, None, None]


class GSoP(_Attention):
    """Global second-order pooling: reduce channels (1x1 conv + BN + ReLU), channel covariance over
    time, row-wise group conv, 1x1 conv back to C -> sigmoid channel gate."""

    def __init__(self, n_channels: int, n_times: int, reduction: int = 4):
        super().__init__()
        r = _hidden(n_channels, reduction)
        self.reduce = nn.Conv2d(n_channels, r, 1)
        self.bn = nn.BatchNorm2d(r)
        self.row_conv = nn.Conv2d(r, 4 * r, (r, 1), groups=r)
        self.expand = nn.Conv2d(4 * r, n_channels, 1)

    def forward(self, x):
        z = F.relu(self.bn(self.reduce(x)))
        z = z.reshape(z.shape[0], z.shape[1], -1)
        z = z - z.mean(-1, keepdim=True)
        cov = z @ z.transpose(1, 2) / z.shape[-1]  # (B, r, r)
        h = F.relu(self.row_conv(cov.unsqueeze(-1)))  # (B, 4r, 1, 1)
        gate = torch.sigmoid(self.expand(h)).flatten(1)
        self._keep(gate)
        return x * gate[:, :, None, None]


def _dct_basis(n_times: int, n_freqs: int) -> torch.Tensor:
    t = torch.arange(n_times, dtype=torch.float32)
    rows = [torch.cos(math.pi * f * (t + 0.5) / n_times) * (1.0 if f == 0 else math.sqrt(2.0))
            for f in range(n_freqs)]
    return torch.stack(rows) / n_times


class FCA(_Attention):
    """Frequency channel attention: channel groups pooled with fixed DCT bases (frequencies
    ``0..n_freqs-1`` over time; frequency 0 = average pooling), then SE's bias-free MLP.
    The DCT bases are a buffer (no parameters): +128 on 2a defaults, like SE."""

    def __init__(self, n_channels: int, n_times: int, reduction: int = 4, n_freqs: int = 4):
        super().__init__()
        n_freqs = max(1, min(n_freqs, n_channels, n_times))
        basis = _dct_basis(n_times, n_freqs)
        group = torch.arange(n_channels) * n_freqs // n_channels
        self.register_buffer("basis", basis[group], persistent=False)  # (C, T)
        self.fc = _mlp(n_channels, _hidden(n_channels, reduction), bias=False)

    def forward(self, x):
        if x.shape[-1] != self.basis.shape[1]:
            raise ValueError(f"FCA was built for {self.basis.shape[1]} time points, got {x.shape[-1]}")
        pooled = (x.mean(2) * self.basis).sum(-1)
        gate = torch.sigmoid(self.fc(pooled))
        self._keep(gate)
        return x * gate[:, :, None, None]


def _entropy_pool(z: torch.Tensor, dim: int) -> torch.Tensor:
    p = torch.softmax(z, dim=dim)
    return -(p * torch.log(p.clamp_min(1e-12))).sum(dim)


class CATLite(_Attention):
    """CAT's channel branch: average, max and entropy pools through one MLP (with biases), fused
    with three learned weights -> sigmoid."""

    def __init__(self, n_channels: int, n_times: int, reduction: int = 4):
        super().__init__()
        self.fc = _mlp(n_channels, _hidden(n_channels, reduction), bias=True)
        self.mix = nn.Parameter(torch.full((3,), 1.0 / 3))

    def channel_gate(self, x):
        flat = x.reshape(x.shape[0], x.shape[1], -1)
        pools = (flat.mean(-1), flat.amax(-1), _entropy_pool(flat, -1))
        return torch.sigmoid(sum(w * self.fc(p) for w, p in zip(self.mix, pools)))

    def forward(self, x):
        gate = self.channel_gate(x)
        self._keep(gate)
        return x * gate[:, :, None, None]


def _gauss5() -> torch.Tensor:
    """Normalised 5-tap Gaussian (sigma 1): smooths each map over time before max pooling, so one
    noisy sample does not set the max."""
    k = torch.exp(-0.5 * torch.arange(-2.0, 3.0) ** 2)
    return k / k.sum()


def _minmax(z: torch.Tensor, dims) -> torch.Tensor:
    lo, hi = z.amin(dims, keepdim=True), z.amax(dims, keepdim=True)
    return (z - lo) / (hi - lo).clamp_min(1e-6)


class CAT(_Attention):
    """Channel and temporal attention as the published framework builds it (``CAT``; the
    framework calls the temporal branch spatial, as in CBAM on images).

    Channel gate: three descriptors per feature map (mean over time; max over time of the map
    smoothed by a fixed 5-tap Gaussian; entropy of the softmax over time, min-max normalised
    across the maps of a trial), each through one bias-free MLP (C -> C/r -> C), weighted by
    three learned scalars, summed -> sigmoid. Temporal gate: the negated mean over maps, the
    per-map smoothed max and the entropy of the softmax over maps (min-max normalised over time)
    weighted by three more scalars into a (C, T) map, then a (1 x k) convolution C -> C over time
    (no bias) -> sigmoid. The two gates are mixed by a softmax over two learned logits. Every
    scalar starts at 0 (both gates 0.5, mixed half and half). Extra parameters on 2a defaults
    (16 maps, r 4, k 9): MLP 128 + conv 16 * 16 * 9 = 2,304 + 8 scalars = 2,440.
    """

    def __init__(self, n_channels: int, n_times: int, reduction: int = 4, kernel_size: int = 9):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"CAT: kernel_size must be odd (same padding), got {kernel_size}")
        self.fc = _mlp(n_channels, _hidden(n_channels, reduction), bias=False)
        self.conv = nn.Conv1d(n_channels, n_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.register_buffer("gauss", _gauss5().view(1, 1, 5), persistent=False)
        self.channel_mix = nn.Parameter(torch.zeros(3))
        self.temporal_mix = nn.Parameter(torch.zeros(3))
        self.branch_logits = nn.Parameter(torch.zeros(2))

    def _smooth(self, z):  # (B, C, T) -> same, Gaussian over time per map
        b, c, t = z.shape
        return F.conv1d(z.reshape(b * c, 1, t), self.gauss, padding=2).reshape(b, c, t)

    def forward(self, x):
        z = x.mean(2)  # (B, C, T): the maps have height 1
        zmax = self._smooth(z).amax(-1)  # (B, C)
        ent_t = _minmax(_entropy_pool(z, -1), (1,))  # (B, C), over time, normalised across maps
        a, b_, g = self.channel_mix
        cg = torch.sigmoid(a * self.fc(z.mean(-1)) + b_ * self.fc(zmax) + g * self.fc(ent_t))
        self._keep(cg)
        ent_c = _minmax(_entropy_pool(z, 1), (1,))  # (B, T), over maps, normalised over time
        a, b_, g = self.temporal_mix
        tmap = -a * z.mean(1, keepdim=True) + b_ * zmax[:, :, None] + g * ent_c[:, None, :]
        tg = torch.sigmoid(self.conv(tmap))  # (B, C, T)
        w = torch.softmax(self.branch_logits, 0)
        gate = w[0] * cg[:, :, None] + w[1] * tg
        return x * gate.unsqueeze(2)


#: Attention modules by name. ``settings``: the constructor's keyword arguments BaseNet sets
#: (``reduction``, ``kernel_size`` = BaseNet's ``attention_kernel``, ``n_codes``, ``extent``,
#: ``n_freqs``); every module produces a per-channel gate read as ``attention`` importance.
ATTENTION = Registry("attention module")
for _name, _cls, _settings in (
    ("se", SE, ("reduction",)), ("eca", ECA, ("kernel_size",)), ("gct", GCT, ()), ("ge", GE, ("extent",)),
    ("srm", SRM, ()), ("cbam", CBAM, ("reduction", "kernel_size")), ("encnet", EncNet, ("n_codes",)),
    ("gsop", GSoP, ("reduction",)), ("fca", FCA, ("reduction", "n_freqs")), ("cat", CAT, ("reduction", "kernel_size")),
    ("catlite", CATLite, ("reduction",)),
):
    ATTENTION.register(_name, _cls, config_section="eeg_models.nets.basenet", produces=("attention",),
                       settings=_settings)
#: Name -> module class (the registry's factories; kept for existing imports).
ATTENTION_MODULES = {n: ATTENTION[n].factory for n in ATTENTION}


def make_attention(name: str | None, n_channels: int, n_times: int, **kwargs) -> nn.Module:
    """Build attention module ``name`` (``None``/``"none"`` -> identity) for (B, C, 1, T) maps.

    Raises
    ------
    ValueError
        Unknown ``name`` (the known ones listed).
    TypeError
        A keyword argument the module does not take (named, with the allowed ones).
    """
    if name in (None, "none", ""):
        return nn.Identity()
    if name not in ATTENTION:
        raise ValueError(f"unknown attention module {name!r}; choose from {sorted(ATTENTION.names())}")
    ATTENTION.check_kwargs(name, {"n_channels": n_channels, "n_times": n_times, **kwargs})
    return ATTENTION[name].factory(n_channels, n_times, **kwargs)


def attention_settings(name: str | None, settings: dict) -> dict:
    """The entries of BaseNet's attention ``settings`` that module ``name`` takes (its registry
    entry's ``settings``); empty for no attention."""
    if name in (None, "none", "") or name not in ATTENTION:
        return {}
    return {k: settings[k] for k in ATTENTION[name].meta["settings"]}


def __getattr__(name):  # BaseNet and its first block moved to their own modules
    if name in ("BaseNet", "min_n_times"):
        from . import eeg_basenet

        return getattr(eeg_basenet, name)
    if name in ("TemporalSpatialBlock", "_same_pad"):
        from . import eeg_blocks

        return getattr(eeg_blocks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
