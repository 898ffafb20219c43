"""BaseNet with plug-in channel attention for motor-imagery EEG (Wimpff et al.; references.md §3).

Architecture (BCI IV 2a defaults: 22 channels, 4 classes, 1000 samples at 250 Hz)::

    temporal conv (40 filters, kernel 25, same padding, no bias) -> BN
    -> depthwise spatial conv (n_chans x 1, depth 1, no bias) -> BN -> ELU
    -> AvgPool 75 / stride 15 -> dropout 0.5                      (1000 -> 62 samples)
    -> 1x1 conv 40 -> 16 -> BN -> ELU
    -> depthwise (1 x 15) conv -> pointwise 16 -> 16 -> BN -> ELU
    -> [attention module on (B, 16, 1, 62)]
    -> AvgPool 8 / stride 8 -> dropout 0.5 -> flatten -> Linear(16 * 7 -> n_outputs)

3,692 parameters without attention. The attention module is chosen by name from
:data:`~neuroattn.models.eeg_attention.ATTENTION`; the first three layers are the fast
:class:`~neuroattn.models.eeg_blocks.TemporalSpatialBlock`.
"""
from __future__ import annotations

import torch
from torch import nn

from .eeg_attention import attention_settings, make_attention
from .eeg_blocks import TemporalSpatialBlock, elu

__all__ = ["BaseNet", "min_n_times", "REFERENCE_SFREQ"]

REFERENCE_SFREQ = 250.0


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
        settings = dict(reduction=reduction, kernel_size=attention_kernel, n_codes=n_codes, extent=extent,
                        n_freqs=n_freqs)
        self.attention = make_attention(attention, f2, t1, **attention_settings(attention, settings))
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
        x = self.drop1(self.pool1(elu(self.bn1(self.block1(x)))))
        x = elu(self.bn2(self.conv2(x)))
        x = elu(self.bn3(self.pointwise(self.depthwise(x))))
        return self.attention(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop2(self.pool2(self.features(x)))
        return self.classifier(x.flatten(1))
