"""Deep comparison models for motor-imagery EEG: EEGNet-8,2 and ShallowConvNet.

Both take (B, n_chans, n_times) or (B, 1, n_chans, n_times) and return (B, n_outputs) logits.
EEGNet's first block (temporal conv -> BN -> depthwise spatial conv, depth 2) reuses BaseNet's
fast :class:`~neuroattn.models.eeg_attention.TemporalSpatialBlock`; ShallowConvNet's temporal and
(full) spatial convolutions are applied as one composed ``Conv1d(n_chans, 40, 25)`` kernel, the
same linear map computed without the (B, 40, C, T) intermediate.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .eeg_blocks import TemporalSpatialBlock, _same_pad, elu

__all__ = ["EEGNet", "ShallowConvNet"]


def _as_3d(x: torch.Tensor, n_chans: int, n_times: int, name: str) -> torch.Tensor:
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3 or x.shape[1] != n_chans or x.shape[2] != n_times:
        raise ValueError(
            f"{name}: expected input (B, {n_chans}, {n_times}) or (B, 1, {n_chans}, {n_times}), "
            f"got {tuple(x.shape)}"
        )
    return x


class EEGNet(nn.Module):
    """EEGNet-8,2 (Lawhern et al. 2018).

    temporal conv (F1=8, kernel 64, same) -> BN -> depthwise spatial conv (D=2, max-norm 1) -> BN
    -> ELU -> AvgPool 4 -> dropout -> separable conv (depthwise 1x16 + pointwise F2=16) -> BN
    -> ELU -> AvgPool 8 -> dropout -> Linear (max-norm 0.25).

    Parameters
    ----------
    n_chans, n_outputs, n_times : int
    sfreq : float, optional
        Stored only (the published kernel lengths are used as given).
    F1, D, F2, kernel_length, kernel2, pool1, pool2, dropout : architecture settings.
    fast : bool
        Fast first block (see ``TemporalSpatialBlock``).
    """

    def __init__(self, n_chans: int, n_outputs: int, n_times: int, sfreq: float | None = None,
                 F1: int = 8, D: int = 2, F2: int = 16, kernel_length: int = 64, kernel2: int = 16,
                 pool1: int = 4, pool2: int = 8, dropout: float = 0.25, fast: bool = True):
        super().__init__()
        need = pool1 * pool2
        if n_times < need:
            raise ValueError(f"n_times={n_times} is too short for EEGNet: pools {pool1} and {pool2} need "
                             f"at least {need} samples")
        self.n_chans, self.n_outputs, self.n_times, self.sfreq = n_chans, n_outputs, n_times, sfreq
        self.block1 = TemporalSpatialBlock(n_chans, F1, kernel_length, depth=D, max_norm=1.0, fast=fast)
        self.bn1 = nn.BatchNorm2d(F1 * D)
        self.pool1 = nn.AvgPool2d((1, pool1))
        self.drop1 = nn.Dropout(dropout)
        self.kernel2 = kernel2
        self.depthwise = nn.Conv2d(F1 * D, F1 * D, (1, kernel2), groups=F1 * D, bias=False)
        self.pointwise = nn.Conv2d(F1 * D, F2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(F2)
        self.pool2 = nn.AvgPool2d((1, pool2))
        self.drop2 = nn.Dropout(dropout)
        self.classifier = nn.Linear(F2 * ((n_times // pool1) // pool2), n_outputs)
        self.max_norm_linear = 0.25

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_3d(x, self.n_chans, self.n_times, "EEGNet")
        if self.training:
            with torch.no_grad():
                self.classifier.weight.data = torch.renorm(self.classifier.weight.data, 2, 0, self.max_norm_linear)
        x = self.drop1(self.pool1(elu(self.bn1(self.block1(x)))))
        x = self.depthwise(F.pad(x, _same_pad(self.kernel2)))
        x = self.drop2(self.pool2(elu(self.bn2(self.pointwise(x)))))
        return self.classifier(x.flatten(1))


class ShallowConvNet(nn.Module):
    """ShallowConvNet (Schirrmeister et al. 2017).

    temporal conv (40, kernel 25, bias) -> spatial conv (40 x n_chans, no bias) -> BN -> square
    -> AvgPool 75 / stride 15 -> log -> dropout 0.5 -> Linear.

    The two convolutions are stored as the published layers (``temporal``, ``spatial``) and applied
    as their composition ``W[g, c, k] = sum_f S[g, f, c] w[f, k]`` in one ``Conv1d``.
    """

    def __init__(self, n_chans: int, n_outputs: int, n_times: int, sfreq: float | None = None,
                 n_filters: int = 40, kernel_length: int = 25, pool_length: int = 75, pool_stride: int = 15,
                 dropout: float = 0.5):
        super().__init__()
        need = kernel_length - 1 + pool_length
        if n_times < need:
            raise ValueError(f"n_times={n_times} is too short for ShallowConvNet: kernel {kernel_length} and "
                             f"pool {pool_length} need at least {need} samples")
        self.n_chans, self.n_outputs, self.n_times, self.sfreq = n_chans, n_outputs, n_times, sfreq
        self.temporal = nn.Conv2d(1, n_filters, (1, kernel_length), bias=True)
        self.spatial = nn.Conv2d(n_filters, n_filters, (n_chans, 1), bias=False)
        self.bn = nn.BatchNorm2d(n_filters)
        self.pool = nn.AvgPool2d((1, pool_length), (1, pool_stride))
        self.drop = nn.Dropout(dropout)
        t = (n_times - kernel_length + 1 - pool_length) // pool_stride + 1
        self.classifier = nn.Linear(n_filters * t, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_3d(x, self.n_chans, self.n_times, "ShallowConvNet")
        w = self.temporal.weight[:, 0, 0]  # (F, k)
        s = self.spatial.weight[:, :, :, 0]  # (G, F, C)
        kernel = torch.einsum("gfc,fk->gck", s, w)
        bias = torch.einsum("gfc,f->g", s, self.temporal.bias)
        z = F.conv1d(x, kernel, bias).unsqueeze(2)  # (B, G, 1, T')
        z = self.pool(self.bn(z).pow(2))
        z = self.drop(torch.log(torch.clamp(z, min=1e-6)))
        return self.classifier(z.flatten(1))
