"""The fast first block of BaseNet and EEGNet: temporal conv -> BN -> depthwise spatial conv.

The three layers are linear per filter, so :class:`TemporalSpatialBlock` applies the spatial mix
first (one ``(F, C)`` matrix product) and the temporal filter after it on ``F`` single time
series, and computes the batch-norm statistics of the (never materialised) temporal-conv output
from the input's lagged first and second moments. Outputs, gradients and BN running statistics
equal the straightforward layer order (``fast=False``) within float tolerance.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.fft import next_fast_len
from torch import nn
from torch.autograd.function import once_differentiable

__all__ = ["TemporalSpatialBlock", "elu"]


class _ELU(torch.autograd.Function):
    """ELU (alpha 1) as ``exp(min(x, 0)) - 1 + max(x, 0)``; its gradient is ``exp(min(x, 0))``."""

    @staticmethod
    def forward(ctx, x):
        e = torch.exp(torch.clamp(x, max=0.0))
        ctx.save_for_backward(e)
        return (e - 1.0).add_(torch.clamp(x, min=0.0))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (e,) = ctx.saved_tensors
        return grad * e


def elu(x: torch.Tensor) -> torch.Tensor:
    """ELU with alpha 1, equal to ``F.elu`` within 2e-7 absolute in float32 (exp(x) - 1, not expm1).

    Torch's CPU ``expm1`` is not vectorised (~10 ns per element whatever the value), so ``F.elu``
    on BaseNet's first feature map (32 x 40 x 500) took 7 ms forward + backward of a ~49 ms step;
    this costs 1.7 ms.
    """
    return _ELU.apply(x)


def _channels_last_depthwise(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Valid depthwise correlation of ``x`` (B, G, L) with ``kernel`` (G, 1, k) as a channels-last
    2-D conv, where oneDNN's depthwise kernels vectorise over the filters (conv1d's choice of kernel
    swings 0.5-5 ms on the same shapes)."""
    x4 = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
    return F.conv2d(x4, kernel.unsqueeze(2), groups=kernel.shape[0]).squeeze(2)


class _DepthwiseConv1d(torch.autograd.Function):
    """``y[b, g, t] = sum_i x[b, g, t + i] w[g, i]`` (CPU), with a fast backward.

    Torch's CPU backward of a depthwise conv1d is 10-40x its forward (k = 64, 32 x 16 x 500: 0.5 ms
    forward, 14-17 ms forward + backward). Here the input gradient is the forward conv of the padded
    output gradient with the flipped kernel, and the kernel gradient, a cross-correlation summed
    over the batch, is taken by FFT (summed over the batch in the frequency domain). Forward +
    backward at 1 thread: 14-17 -> 5 ms (k = 64), 83-96 -> 39-43 ms (64 x 40 x 1000, k = 25).
    Float32 rounding differs; values agree to ~1e-6 relative.
    """

    @staticmethod
    def forward(ctx, x, kernel):
        ctx.save_for_backward(x, kernel)
        return _channels_last_depthwise(x, kernel)

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        x, kernel = ctx.saved_tensors
        k = kernel.shape[-1]
        gx = gk = None
        if ctx.needs_input_grad[0]:
            gx = _channels_last_depthwise(F.pad(gy, (k - 1, k - 1)), kernel.flip(-1))
        if ctx.needs_input_grad[1]:
            # gk[g, i] = sum_b sum_t x[b, g, t + i] gy[b, g, t]: no wrap-around for n >= L
            n = next_fast_len(x.shape[-1], real=True)  # 2-3-5-smooth: a fast rfft size
            dt = torch.promote_types(x.dtype, torch.float32)  # no FFT in half precision
            xf = torch.fft.rfft(x.to(dt), n)
            yf = torch.fft.rfft(gy.to(dt), n)
            corr = torch.fft.irfft(torch.einsum("bgf,bgf->gf", xf, yf.conj()), n)
            gk = corr[:, :k].unsqueeze(1).to(kernel.dtype)
        return gx, gk


# Up to 16 taps torch's own backward of the channels-last conv is as fast (32 x 40 x 500, k = 13:
# 8 ms forward + backward either way), and the values stay those of earlier runs.
_AUTOGRAD_MAX_KERNEL = 16


def depthwise_conv1d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Valid depthwise correlation ``F.conv1d(x, kernel, groups=G)`` for ``x`` (B, G, L) and
    ``kernel`` (G, 1, k).

    On CPU as a channels-last 2-D conv, and for kernels longer than 16 taps through
    :class:`_DepthwiseConv1d` (same values to float rounding, 2-3.5x faster forward + backward);
    elsewhere, and under autocast, ``F.conv1d``.
    """
    if x.device.type != "cpu" or torch.is_autocast_enabled("cpu"):
        return F.conv1d(x, kernel, groups=kernel.shape[0])
    if kernel.shape[-1] <= _AUTOGRAD_MAX_KERNEL:
        return _channels_last_depthwise(x, kernel)
    return _DepthwiseConv1d.apply(x, kernel)


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
        xp = F.pad(mixed, _same_pad(k))
        y = depthwise_conv1d(xp, kernel)
        scale = gain.repeat_interleave(d)
        offset = (shift.unsqueeze(1) * s.sum(2)).reshape(f * d)
        y = y * scale[None, :, None] + offset[None, :, None]
        return y.unsqueeze(2)

    def _forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        z = self.temporal(F.pad(x.unsqueeze(1), _same_pad(self.kernel_length)))
        return self.spatial(self.bn(z))
