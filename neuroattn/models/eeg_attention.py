"""BaseNet with plug-in channel attention for motor-imagery EEG (Wimpff et al.; references.md §3).

Architecture (BCI IV 2a defaults: 22 channels, 4 classes, 1000 samples at 250 Hz)::

    temporal conv (40 filters, kernel 25, same padding, no bias) -> BN
    -> depthwise spatial conv (n_chans x 1, depth 1, no bias) -> BN -> ELU
    -> AvgPool 75 / stride 15 -> dropout 0.5                      (1000 -> 62 samples)
    -> 1x1 conv 40 -> 16 -> BN -> ELU
    -> depthwise (1 x 15) conv -> pointwise 16 -> 16 -> BN -> ELU
    -> [attention module on (B, 16, 1, 62)]
    -> AvgPool 8 / stride 8 -> dropout 0.5 -> flatten -> Linear(16 * 7 -> n_outputs)

3,692 parameters without attention. The attention modules are small ``nn.Module`` classes chosen
by name from :data:`ATTENTION_MODULES`; each maps ``(B, C, 1, T) -> (B, C, 1, T)`` and, where it
computes a per-channel gate, keeps the last one (detached) in ``last_weights`` ``(B, C)`` for
interpretation.

Parameter counts on 2a defaults (reduction 4, ECA/CBAM kernel 9, 4 EncNet codewords), pinned by
the tests: BaseNet 3,692; extra SE +128, ECA +9, GCT +48, GE +0, SRM +64, CBAM +147, EncNet +348,
GSoP +428, CATLite +151 (equal to the published framework's); FCA +128 (fixed DCT bases are a
buffer, so FCA costs what SE costs; no published figure to compare); CAT +2,093 against the
published ~+2,440: our temporal branch is an MLP over the 62 pooled time steps (62 -> 15 -> 62,
with biases) and the published spatial branch is sized differently, which we could not pin down
from the paper alone.

Speed: the first three layers (temporal conv -> BN -> depthwise spatial conv) are linear per
filter, so :class:`TemporalSpatialBlock` applies the spatial mix first (one ``(F, C)`` matrix
product) and the temporal filter after it on ``F`` single time series, and computes the batch-norm
statistics of the (never materialised) temporal-conv output from the input's lagged first and
second moments. Outputs, gradients and BN running statistics equal the straightforward layer order
(``fast=False``) within float tolerance.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ATTENTION_MODULES", "BaseNet", "TemporalSpatialBlock", "make_attention", "min_n_times",
    "SE", "ECA", "GCT", "GE", "SRM", "CBAM", "EncNet", "GSoP", "FCA", "CAT", "CATLite",
]

REFERENCE_SFREQ = 250.0


# ----------------------------------------------------------------------------------------------
# the fast first block
# ----------------------------------------------------------------------------------------------
def _same_pad(k: int) -> tuple[int, int]:
    """(left, right) zero padding of a 'same' convolution with kernel length ``k`` (torch's rule)."""
    left = (k - 1) // 2
    return left, k - 1 - left


def _lagged_moments(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First and second moments of the 'same'-padded input seen through a ``k``-tap window.

    For ``xp`` the zero-padded series (rows = batch x channels, length ``T + k - 1``) returns
    ``m[i] = mean_{r,t} xp[r, t + i]`` (``k``,) and
    ``M[i, j] = mean_{r,t} xp[r, t + i] xp[r, t + j]`` (``k``, ``k``), ``t = 0..T-1``, so that the
    output ``z = sum_i w[i] xp[t + i]`` of any filter ``w`` has mean ``w @ m`` and second moment
    ``w @ M @ w``. Cost ``O(rows * T * k)`` instead of the ``O(rows * T * k * F)`` convolution.
    """
    rows, t = x.shape[0] * x.shape[1], x.shape[-1]
    xp = F.pad(x.reshape(rows, t), _same_pad(k))
    n = rows * t
    col = xp.sum(0)  # (T + k - 1,)
    ccol = F.pad(torch.cumsum(col, 0), (1, 0))
    idx = torch.arange(k, device=x.device)
    m = (ccol[idx + t] - ccol[idx]) / n
    rows_m = []
    for d in range(k):  # lag d: products xp[j] xp[j + d], windowed sums by cumulative sums
        p = (xp[:, : xp.shape[1] - d] * xp[:, d:]).sum(0)
        cp = F.pad(torch.cumsum(p, 0), (1, 0))
        i = idx[: k - d]
        rows_m.append((cp[i + t] - cp[i]) / n)  # M[i, i + d]
    big = torch.zeros(k, k, dtype=x.dtype, device=x.device)
    for d, v in enumerate(rows_m):
        i = idx[: k - d]
        big = big.index_put((i, i + d), v)
        if d:
            big = big.index_put((i + d, i), v)
    return m, big


class TemporalSpatialBlock(nn.Module):
    """Temporal conv (no bias) -> BatchNorm -> depthwise spatial conv, computed fast.

    Parameters are laid out exactly as the straightforward layers
    ``Conv2d(1, F, (1, k), bias=False)``, ``BatchNorm2d(F)``,
    ``Conv2d(F, F * depth, (n_chans, 1), groups=F, bias=False)`` (``temporal``, ``bn``,
    ``spatial``), so state dicts and parameter counts are the same.

    Parameters
    ----------
    n_chans : int
        EEG channels (the spatial kernel height).
    n_filters : int
        Temporal filters ``F``.
    kernel_length : int
        Temporal kernel length (same padding).
    depth : int
        Spatial filters per temporal filter (EEGNet's ``D``; BaseNet uses 1).
    max_norm : float, optional
        Max-norm constraint on each spatial filter (EEGNet), applied before each training forward.
    fast : bool
        ``True``: spatial mix first, BN statistics from lagged moments. ``False``: the layers in
        their written order (the reference the fast path is tested against).
    """

    def __init__(self, n_chans: int, n_filters: int, kernel_length: int, depth: int = 1,
                 max_norm: float | None = None, fast: bool = True):
        super().__init__()
        self.n_chans, self.n_filters, self.kernel_length, self.depth = n_chans, n_filters, kernel_length, depth
        self.max_norm, self.fast = max_norm, fast
        self.temporal = nn.Conv2d(1, n_filters, (1, kernel_length), bias=False)
        self.bn = nn.BatchNorm2d(n_filters)
        self.spatial = nn.Conv2d(n_filters, n_filters * depth, (n_chans, 1), groups=n_filters, bias=False)

    def _apply_max_norm(self):
        if self.max_norm is not None and self.training:
            with torch.no_grad():
                self.spatial.weight.data = torch.renorm(self.spatial.weight.data, 2, 0, self.max_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C, T) -> (B, F * depth, 1, T)."""
        self._apply_max_norm()
        if not self.fast:
            return self._forward_reference(x)
        b, c, t = x.shape
        f, k, d = self.n_filters, self.kernel_length, self.depth
        w = self.temporal.weight.reshape(f, k)
        s = self.spatial.weight.reshape(f, d, c)
        bn = self.bn
        if self.training or not bn.track_running_stats:
            with torch.autocast(x.device.type, enabled=False):  # moments in float32 under AMP
                m, big = _lagged_moments(x.float(), k)
                wf = w.float()
                mean = wf @ m
                var = (((wf @ big) * wf).sum(1) - mean**2).clamp_min(0.0)
            if self.training and bn.track_running_stats:
                with torch.no_grad():
                    n = b * c * t
                    bn.num_batches_tracked.add_(1)
                    mom = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
                    bn.running_mean.mul_(1 - mom).add_(mom * mean.detach())
                    bn.running_var.mul_(1 - mom).add_(mom * var.detach() * n / max(n - 1, 1))
        else:
            mean, var = bn.running_mean, bn.running_var
        gain = bn.weight / torch.sqrt(var + bn.eps) if bn.affine else 1.0 / torch.sqrt(var + bn.eps)
        shift = bn.bias - gain * mean if bn.affine else -gain * mean
        # spatial mix first: (B, F*D, T), then each mixed series through its filter's temporal kernel
        mixed = torch.einsum("fdc,bct->bfdt", s, x).reshape(b, f * d, t)
        kernel = w.repeat_interleave(d, 0).unsqueeze(1)  # (F*D, 1, k)
        y = F.conv1d(F.pad(mixed, _same_pad(k)), kernel, groups=f * d)
        scale = gain.repeat_interleave(d)
        offset = (shift.unsqueeze(1) * s.sum(2)).reshape(f * d)
        y = y * scale[None, :, None] + offset[None, :, None]
        return y.unsqueeze(2)

    def _forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        z = self.temporal(F.pad(x.unsqueeze(1), _same_pad(self.kernel_length)))
        return self.spatial(self.bn(z))


# ----------------------------------------------------------------------------------------------
# attention modules: (B, C, 1, T) -> (B, C, 1, T)
# ----------------------------------------------------------------------------------------------
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


class CAT(CATLite):
    """Collaborative channel and spatial (here temporal) attention: :class:`CATLite`'s channel gate
    plus a temporal gate from channel-wise average, max and entropy pools through one MLP over time
    (T -> T/r -> T, with biases), fused by three learned weights; the two gates are combined with
    two learned collaboration weights. The temporal MLP depends on T (62 on 2a defaults: +2,093);
    the published framework's exact spatial branch gives ~+2,440 (see the module docstring)."""

    def __init__(self, n_channels: int, n_times: int, reduction: int = 4):
        super().__init__(n_channels, n_times, reduction)
        self.n_times = n_times
        self.fc_t = _mlp(n_times, _hidden(n_times, reduction), bias=True)
        self.mix_t = nn.Parameter(torch.full((3,), 1.0 / 3))
        self.collab = nn.Parameter(torch.full((2,), 0.5))

    def forward(self, x):
        if x.shape[-1] != self.n_times:
            raise ValueError(f"CAT was built for {self.n_times} time points, got {x.shape[-1]}")
        cg = self.channel_gate(x)
        self._keep(cg)
        flat = x.mean(2)  # (B, C, T)
        pools = (flat.mean(1), flat.amax(1), _entropy_pool(flat, 1))
        tg = torch.sigmoid(sum(w * self.fc_t(p) for w, p in zip(self.mix_t, pools)))  # (B, T)
        gate = self.collab[0] * cg[:, :, None] + self.collab[1] * tg[:, None, :]
        return x * gate.unsqueeze(2)


ATTENTION_MODULES: dict[str, Callable[..., nn.Module]] = {
    "se": SE, "eca": ECA, "gct": GCT, "ge": GE, "srm": SRM, "cbam": CBAM, "encnet": EncNet,
    "gsop": GSoP, "fca": FCA, "cat": CAT, "catlite": CATLite,
}


def make_attention(name: str | None, n_channels: int, n_times: int, **kwargs) -> nn.Module:
    """Build attention module ``name`` (``None``/``"none"`` -> identity) for (B, C, 1, T) maps.

    Only the keyword arguments the module's constructor accepts are passed on, so one set of
    per-dataset settings (``reduction``, ``kernel_size``...) serves every module.
    """
    if name in (None, "none", ""):
        return nn.Identity()
    if name not in ATTENTION_MODULES:
        raise ValueError(f"unknown attention module {name!r}; choose from {sorted(ATTENTION_MODULES)}")
    cls = ATTENTION_MODULES[name]
    import inspect

    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "n_channels", "n_times"}
    return cls(n_channels, n_times, **{k: v for k, v in kwargs.items() if k in accepted})


# ----------------------------------------------------------------------------------------------
# BaseNet
# ----------------------------------------------------------------------------------------------
def _pooled_len(n: int, size: int, stride: int) -> int:
    return (n - size) // stride + 1


def min_n_times(pool_length: int = 75, pool_stride: int = 15, pool2_length: int = 8) -> int:
    """Shortest input for which both average pools of BaseNet leave at least one output step."""
    return pool_length + pool_stride * (pool2_length - 1)


def _scaled(n: int, factor: float, odd: bool = False) -> int:
    v = max(1, int(round(n * factor)))
    return v + 1 if odd and v % 2 == 0 else v


class BaseNet(nn.Module):
    """BaseNet (Wimpff et al.) with an optional channel attention module.

    Parameters
    ----------
    n_chans, n_outputs, n_times : int
        Input channels, classes, time samples.
    sfreq : float, optional
        Sampling rate. When given, kernel and pool lengths (which are in samples at 250 Hz, the
        published setting) are rescaled by ``sfreq / 250``. ``None`` uses them as given.
    attention : str, optional
        A key of :data:`ATTENTION_MODULES` or ``None``.
    n_temporal_filters, temporal_kernel, pool_length, pool_stride, n_filters2, kernel2,
    pool2_length, dropout : architecture settings (published 2a defaults).
    reduction, attention_kernel, n_codes, extent, n_freqs : attention settings per dataset
        (reduction rate, ECA/CBAM kernel, EncNet codewords, GE extent, FCA frequencies).
    fast : bool
        Use the fast first block (see :class:`TemporalSpatialBlock`).

    Inputs are (B, n_chans, n_times) or (B, 1, n_chans, n_times); output (B, n_outputs) logits.
    """

    def __init__(self, n_chans: int, n_outputs: int, n_times: int, sfreq: float | None = None,
                 attention: str | None = None, n_temporal_filters: int = 40, temporal_kernel: int = 25,
                 pool_length: int = 75, pool_stride: int = 15, n_filters2: int = 16, kernel2: int = 15,
                 pool2_length: int = 8, dropout: float = 0.5, reduction: int = 4,
                 attention_kernel: int = 9, n_codes: int = 4, extent: int = 0, n_freqs: int = 4,
                 fast: bool = True):
        super().__init__()
        if sfreq is not None:
            fac = float(sfreq) / REFERENCE_SFREQ
            temporal_kernel = _scaled(temporal_kernel, fac, odd=True)
            pool_length, pool_stride = _scaled(pool_length, fac), _scaled(pool_stride, fac)
        need = min_n_times(pool_length, pool_stride, pool2_length)
        if n_times < need:
            raise ValueError(
                f"n_times={n_times} is too short for BaseNet: pool {pool_length}/stride {pool_stride} "
                f"then pool {pool2_length} need at least {need} samples"
            )
        self.n_chans, self.n_outputs, self.n_times, self.sfreq = n_chans, n_outputs, n_times, sfreq
        self.attention_name = attention
        f1, f2 = n_temporal_filters, n_filters2
        self.block1 = TemporalSpatialBlock(n_chans, f1, temporal_kernel, depth=1, fast=fast)
        self.bn1 = nn.BatchNorm2d(f1)
        self.pool1 = nn.AvgPool2d((1, pool_length), (1, pool_stride))
        self.drop1 = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(f1, f2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(f2)
        self.depthwise = nn.Conv2d(f2, f2, (1, kernel2), padding="same", groups=f2, bias=False)
        self.pointwise = nn.Conv2d(f2, f2, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(f2)
        t1 = _pooled_len(n_times, pool_length, pool_stride)
        self.attention = make_attention(attention, f2, t1, reduction=reduction, kernel_size=attention_kernel,
                                        n_codes=n_codes, extent=extent, n_freqs=n_freqs)
        self.pool2 = nn.AvgPool2d((1, pool2_length), (1, pool2_length))
        self.drop2 = nn.Dropout(dropout)
        t2 = _pooled_len(t1, pool2_length, pool2_length)
        self.classifier = nn.Linear(f2 * t2, n_outputs)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            if x.shape[1] != 1:
                raise ValueError(f"4-D input must be (B, 1, n_chans, n_times), got {tuple(x.shape)}")
            x = x[:, 0]
        if x.ndim != 3 or x.shape[1] != self.n_chans or x.shape[2] != self.n_times:
            raise ValueError(
                f"expected input (B, {self.n_chans}, {self.n_times}) or (B, 1, {self.n_chans}, "
                f"{self.n_times}), got {tuple(x.shape)}"
            )
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps (B, n_filters2, 1, T1) after the attention module."""
        x = self._check(x)
        x = self.drop1(self.pool1(F.elu(self.bn1(self.block1(x)))))
        x = F.elu(self.bn2(self.conv2(x)))
        x = F.elu(self.bn3(self.pointwise(self.depthwise(x))))
        return self.attention(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop2(self.pool2(self.features(x)))
        return self.classifier(x.flatten(1))
