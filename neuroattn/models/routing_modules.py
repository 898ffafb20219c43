"""Torch modules of the routing encoder: cross-attention over pre-projected keys/values, one
pre-norm routing layer, and :class:`RoutingModule` (queries -> tokens -> grouped readout)."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .positional import sine_2d
from .routing_readout import GroupedReadout


class CrossAttention(nn.Module):
    """Multi-head attention of queries over already-projected keys and values.

    Returns the output and, when asked, the head-averaged attention weights (B, Q, T).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.dropout = n_heads, dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, q, k, v, need_weights: bool = False):
        B, Q, d = q.shape
        T, h = k.shape[1], self.n_heads
        qh = self.q_proj(q).view(B, Q, h, d // h).transpose(1, 2)
        kh = k.view(B, T, h, d // h).transpose(1, 2)
        vh = v.view(B, T, h, d // h).transpose(1, 2)
        p = self.dropout if self.training else 0.0
        if need_weights:
            attn = torch.softmax(qh @ kh.transpose(-1, -2) / math.sqrt(d // h), dim=-1)
            out = F.dropout(attn, p, self.training) @ vh
            weights = attn.mean(dim=1)
        else:
            out = F.scaled_dot_product_attention(qh, kh, vh, dropout_p=p)
            weights = None
        return self.out_proj(out.transpose(1, 2).reshape(B, Q, d)), weights


class RoutingLayer(nn.Module):
    """Pre-norm decoder layer: optional query self-attention, cross-attention, feed-forward.

    The key/value projections live here (``k_proj``, ``v_proj``) so that :class:`RoutingModule`
    can fold them into the input projection.
    """

    def __init__(self, d_model, n_heads, dim_feedforward, dropout, self_attention):
        super().__init__()
        self.self_attn = (nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
                          if self_attention else None)
        self.norm_sa = nn.LayerNorm(d_model) if self_attention else None
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.cross = CrossAttention(d_model, n_heads, dropout)
        self.norm_ca = nn.LayerNorm(d_model)
        self.norm_ff = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, dim_feedforward), nn.ReLU(), nn.Dropout(dropout),
                                nn.Linear(dim_feedforward, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, t, k, v, need_weights=False):
        if self.self_attn is not None:
            s = self.norm_sa(t)
            t = t + self.drop(self.self_attn(s, s, s, need_weights=False)[0])
        a, w = self.cross(self.norm_ca(t), k, v, need_weights)
        t = t + self.drop(a)
        t = t + self.drop(self.ff(self.norm_ff(t)))
        return t, w


class RoutingModule(nn.Module):
    """The routing network: tokens (B, T, C) -> voxel predictions (B, V).

    Parameters
    ----------
    in_channels : int
        Token width C of the backbone layer.
    grid : (int, int)
        Token grid (h, w), h * w = T, row-major.
    voxel_group : array of int, (V,)
        Query index of each voxel.
    n_queries : int, optional
        Number of queries (default ``max(voxel_group) + 1``).
    d_model, n_heads, n_layers, dim_feedforward, dropout, self_attention
        Decoder hyper-parameters (see :class:`RoutingEncoder`).
    fuse_kv : {"auto", True, False}
        Compute keys/values as ``x @ (W_in W_k)`` (fused) rather than ``(x W_in) W_k``; "auto"
        picks whichever needs fewer operations per training step. Same function either way.
    """

    def __init__(self, in_channels, grid, voxel_group, n_queries=None, d_model=768, n_heads=16, n_layers=1,
                 dim_feedforward=1024, dropout=0.1, self_attention=False, fuse_kv="auto"):
        super().__init__()
        h, w = (int(x) for x in grid)
        g = np.asarray(voxel_group, dtype=np.int64)
        n_queries = int(n_queries if n_queries is not None else g.max() + 1)
        self.grid, self.n_queries, self.d_model = (h, w), n_queries, d_model
        self.input_proj = nn.Linear(in_channels, d_model)
        self.register_buffer("pos", sine_2d(h, w, d_model), persistent=False)
        self.query = nn.Parameter(torch.randn(n_queries, d_model) * 0.02)
        self.layers = nn.ModuleList(RoutingLayer(d_model, n_heads, dim_feedforward, dropout, self_attention)
                                    for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.readout = GroupedReadout(d_model, g, n_queries)
        if fuse_kv not in ("auto", True, False):
            raise ValueError(f"fuse_kv must be 'auto', True or False, got {fuse_kv!r}")
        self.fuse_kv = fuse_kv
        self.in_channels, self.n_layers = in_channels, n_layers

    def _use_fused(self, n_tokens: int) -> bool:
        """Whether folding W_k, W_v into W_in costs fewer multiply-adds for ``n_tokens`` tokens.

        Per training step (forward + weight gradients): plain ``2 N C d + 6 L N d^2``; fused
        ``4 L N C d`` plus ``6 L d^2 C`` for multiplying (and differentiating) the weights.
        """
        if self.fuse_kv != "auto":
            return bool(self.fuse_kv)
        N, C, d, L = n_tokens, self.in_channels, self.d_model, self.n_layers
        return 4 * L * N * C * d + 6 * L * d * d * C < 2 * N * C * d + 6 * L * N * d * d

    def _keys_values(self, x):
        """Keys and values of every layer for raw tokens ``x`` (B, T, C)."""
        W_in, b_in = self.input_proj.weight, self.input_proj.bias  # (d, C), (d,)
        if not self._use_fused(x.shape[0] * x.shape[1]):
            mem = F.linear(x, W_in, b_in)
            return [(F.linear(mem + self.pos, lay.k_proj.weight, lay.k_proj.bias),
                     F.linear(mem, lay.v_proj.weight, lay.v_proj.bias)) for lay in self.layers]
        d = self.d_model
        # k = (x W_in^T + b_in + pos) W_k^T + b_k = x (W_k W_in)^T + [(b_in + pos) W_k^T + b_k]
        A = torch.cat([torch.cat([lay.k_proj.weight, lay.v_proj.weight]) for lay in self.layers]) @ W_in
        kv = F.linear(x, A).split(d, dim=-1)  # one pass over the tokens; (B, T, d) x 2L
        out = []
        for i, lay in enumerate(self.layers):
            ck = F.linear(b_in + self.pos, lay.k_proj.weight, lay.k_proj.bias)  # (T, d)
            cv = F.linear(b_in, lay.v_proj.weight, lay.v_proj.bias)  # (d,)
            out.append((kv[2 * i] + ck, kv[2 * i + 1] + cv))
        return out

    def tokens(self, x, need_weights=False):
        """Output query tokens (B, Q, d) and, if asked, per-layer attention (B, Q, T) each."""
        if x.dim() != 3 or x.shape[1] != self.pos.shape[0]:
            raise ValueError(f"expected tokens (B, {self.pos.shape[0]}, C), got {tuple(x.shape)}")
        kvs = self._keys_values(x)
        t = self.query.unsqueeze(0).expand(x.shape[0], -1, -1)
        maps = []
        for lay, (k, v) in zip(self.layers, kvs):
            t, w = lay(t, k, v, need_weights)
            maps.append(w)
        return self.norm(t), maps

    def forward(self, x):
        return self.readout(self.tokens(x)[0])

    def token_contributions(self, x, chunk_size: int | None = 64) -> torch.Tensor:
        """Derivative of the output query tokens with respect to a gain on each input token.

        ``J[b, q, :, t] = d tokens[b, q] / d g_t`` at ``g = 1`` for the input ``x[b, t] * g_t``,
        i.e. gradient x input of the output token summed over the token's channels (forward-mode
        differentiation, one pass per token, ``chunk_size`` tokens at a time to bound memory).
        Returns (B, Q, d, T).
        """
        from torch.func import jvp, vmap

        T = x.shape[1]
        gain = torch.ones(T, dtype=x.dtype, device=x.device)
        basis = torch.eye(T, dtype=x.dtype, device=x.device)

        def per_image(xi):
            def out(g):
                return self.tokens((xi * g[:, None]).unsqueeze(0), need_weights=True)[0][0]

            return vmap(lambda tangent: jvp(out, (gain,), (tangent,))[1], chunk_size=chunk_size)(basis)

        return vmap(per_image)(x).permute(0, 2, 3, 1)

    def attention(self, x) -> torch.Tensor:
        """Head-averaged cross-attention of the last layer, (B, Q, h, w)."""
        _, maps = self.tokens(x, need_weights=True)
        return maps[-1].reshape(x.shape[0], self.n_queries, *self.grid)
