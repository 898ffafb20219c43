"""Per-voxel linear readout from the output token of each voxel's query (:class:`GroupedReadout`),
computed per query on that query's voxels (an autograd function, no copies), and the masked
full readout of the published code for comparison."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class _GroupedLinear(torch.autograd.Function):
    """y[:, v] = tokens[:, g(v)] @ W[v] + b[v] for voxels sorted by group, without copies.

    One matrix product per group in the forward and in each gradient, written straight into
    preallocated outputs (no concatenation of per-group results or gradients, no zero-filled
    full-size gradient per group).
    """

    @staticmethod
    def forward(ctx, tokens, weight, bias, counts):
        dtype = tokens.dtype  # under autocast tokens may be bf16/fp16 while weights are fp32
        W = weight.to(dtype)
        yt = torch.empty(weight.shape[0], tokens.shape[0], dtype=dtype, device=tokens.device)
        off = 0
        for k, c in enumerate(counts):
            if c:
                torch.mm(W[off:off + c], tokens[:, k].t(), out=yt[off:off + c])
            off += c
        ctx.save_for_backward(tokens, weight)
        ctx.counts = counts
        return yt.t() + bias.to(dtype)

    @staticmethod
    def backward(ctx, gy):
        tokens, weight = ctx.saved_tensors
        dtype = tokens.dtype
        W = weight.to(dtype)
        gyt = gy.to(dtype).t().contiguous()  # (V, B)
        B, Q, d = tokens.shape
        g_tok = g_w = g_b = None
        if ctx.needs_input_grad[0]:
            g_tok = torch.zeros(Q, B, d, dtype=dtype, device=tokens.device)
        if ctx.needs_input_grad[1]:
            g_w = torch.empty(weight.shape, dtype=dtype, device=weight.device)
        off = 0
        for k, c in enumerate(ctx.counts):
            if c:
                if g_tok is not None:
                    torch.mm(gyt[off:off + c].t(), W[off:off + c], out=g_tok[k])
                if g_w is not None:
                    torch.mm(gyt[off:off + c], tokens[:, k], out=g_w[off:off + c])
            off += c
        if g_tok is not None:
            g_tok = g_tok.permute(1, 0, 2)
        if g_w is not None:
            g_w = g_w.to(weight.dtype)
        if ctx.needs_input_grad[2]:
            g_b = gy.sum(0).to(weight.dtype)
        return g_tok, g_w, g_b, None


class GroupedReadout(nn.Module):
    """Per-voxel linear readout of each voxel's own group token.

    Voxel ``v`` in group ``g`` predicts ``<tokens[:, g], weight_v> + bias_v``. Weights are stored
    with voxels sorted by group, and the forward pass does one matrix product per group over
    that group's voxels (or an element-wise product when every group has one voxel); outputs
    come back in the original voxel order.

    Parameters
    ----------
    d_in : int
        Token width.
    voxel_group : array of int, (V,)
        Group (query) index of each voxel, in ``[0, n_groups)``.
    n_groups : int, optional
    """

    def __init__(self, d_in: int, voxel_group, n_groups: int | None = None):
        super().__init__()
        g = np.asarray(voxel_group, dtype=np.int64)
        if g.ndim != 1 or len(g) == 0 or g.min() < 0:
            raise ValueError("voxel_group must be a non-empty 1-D array of group indices >= 0")
        self.n_groups = int(n_groups if n_groups is not None else g.max() + 1)
        order = np.argsort(g, kind="stable")
        self.counts = [int(c) for c in np.bincount(g, minlength=self.n_groups)]
        self.per_voxel = self.n_groups == len(g) and all(c == 1 for c in self.counts)
        self.register_buffer("order", torch.as_tensor(order), persistent=False)
        self.register_buffer("inverse", torch.as_tensor(np.argsort(order)), persistent=False)
        bound = 1.0 / math.sqrt(d_in)
        self.weight = nn.Parameter(torch.empty(len(g), d_in).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(len(g)))

    def full_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights and biases in the original voxel order, (V, d_in) and (V,)."""
        return self.weight[self.inverse], self.bias[self.inverse]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, n_groups, d_in) -> predictions (B, V) in the original voxel order."""
        if self.per_voxel:  # one voxel per group: groups are already in sorted order
            y = torch.einsum("bvd,vd->bv", tokens, self.weight) + self.bias
        else:
            y = _GroupedLinear.apply(tokens, self.weight, self.bias, self.counts)
        return y.index_select(1, self.inverse)


def masked_full_readout(tokens: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                        voxel_group) -> torch.Tensor:
    """Reference readout as in the published code: every voxel from every token, then masked.

    ``tokens`` (B, Q, d), ``weight`` (V, d), ``bias`` (V,), ``voxel_group`` (V,) -> (B, V).
    Q times the work and memory of :class:`GroupedReadout`; kept for tests and benchmarks.
    """
    g = torch.as_tensor(np.asarray(voxel_group), device=tokens.device)
    full = F.linear(tokens, weight, bias)  # (B, Q, V)
    mask = (torch.arange(tokens.shape[1], device=tokens.device)[:, None] == g[None, :]).to(full.dtype)
    return (full * mask).sum(dim=1)
