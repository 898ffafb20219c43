"""Attention-routing brain encoder (after Adeli et al. 2025, "Transformer brain encoders").

Learned queries (one per ROI, per hemisphere where the data has hemispheres, or one per voxel)
cross-attend over the spatial tokens of a frozen backbone; every voxel reads its prediction from
the output token of its own query with its own weight vector.

Architecture (:class:`RoutingModule`)::

    tokens (B, T, C) --Linear--> memory (B, T, d) ; keys = memory + sine_2d(grid), values = memory
    queries (Q, d) --[pre-norm: (self-attn), cross-attn, feed-forward] x n_layers--> LayerNorm
    voxel v of query g:  y_v = <token_g, w_v> + b_v                      (GroupedReadout)

The readout is computed per query on the voxels of that query only (voxels sorted by query, one
matrix product per query), never as a readout of every voxel from every token followed by a mask
(what the published code does: Q times the work). The input projection is linear and directly
followed by the key/value projections, so when it saves work the module multiplies the weights
first (``x @ (W_in W_k)``) instead of projecting every token twice: same function, same
parameters, fewer operations on the T x C token array (see ``fuse_kv``).

Estimators: :class:`RoutingEncoder` (scikit-learn style), built on :class:`TorchVoxelEncoder`
which also serves the spatial-feature baseline (``neuroattn.models.baselines``).
"""
from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, RegressorMixin
from torch import nn

from ..utils import atomic_path, derive_seed, resolve_device, seed_everything
from .positional import sine_2d

log = logging.getLogger("neuroattn.models.routing")

__all__ = [
    "RoutingEncoder", "RoutingModule", "GroupedReadout", "TorchVoxelEncoder", "clean_voxels",
    "voxel_groups", "masked_full_readout", "summarize_attention", "mean_pearson",
]


# --------------------------------------------------------------------------------------------
# data helpers
# --------------------------------------------------------------------------------------------
def clean_voxels(Y: np.ndarray) -> np.ndarray:
    """Mask of usable voxels: finite in every row and not constant.

    Parameters
    ----------
    Y : ndarray, (n_images, n_voxels)

    Returns
    -------
    ndarray of bool, (n_voxels,)
    """
    Y = np.asarray(Y, dtype=np.float64)
    finite = np.isfinite(Y).all(axis=0)
    sd = np.zeros(Y.shape[1])
    sd[finite] = Y[:, finite].std(axis=0)
    return finite & (sd > 1e-8 * (1.0 + np.abs(Y[:, finite]).max(initial=0.0)))


def voxel_groups(voxel_roi, voxel_hemi=None, keep=None, rois=None, query_mode: str = "rois"):
    """Assign every kept voxel to a query.

    Parameters
    ----------
    voxel_roi : array of str, (V,)
    voxel_hemi : array of str, (V,), optional
        Hemisphere labels; non-empty labels split an ROI into one query per hemisphere.
    keep : array of bool, (V,), optional
        Usable voxels (see :func:`clean_voxels`); others get group -1.
    rois : list of str, optional
        ROIs to model (default: all in ``voxel_roi``); voxels of other ROIs get group -1, and
        ROIs without any usable voxel are skipped with a warning naming them.
    query_mode : {"rois", "voxels"}

    Returns
    -------
    group : ndarray of int, (V,)
        Query index of each voxel, -1 for voxels not modelled.
    names : list of str
        Query names (``roi`` or ``roi.hemi``; ``roi.hemi#voxel`` in voxel mode).
    """
    voxel_roi = np.asarray(voxel_roi).astype(str)
    V = len(voxel_roi)
    hemi = np.full(V, "") if voxel_hemi is None else np.asarray(voxel_hemi).astype(str)
    if hemi.shape != (V,):
        raise ValueError(f"voxel_hemi has {hemi.shape[0]} labels for {V} voxels")
    keep = np.ones(V, bool) if keep is None else np.asarray(keep, bool)
    wanted = sorted(set(voxel_roi)) if rois is None else [str(r) for r in rois]
    use = keep & np.isin(voxel_roi, wanted)
    for r in wanted:
        if not np.any(use & (voxel_roi == r)):
            warnings.warn(f"ROI {r!r} has no usable voxels (absent, NaN or zero variance); skipped",
                          stacklevel=3)
    labels = np.array([r if not h else f"{r}.{h}" for r, h in zip(voxel_roi, hemi)], dtype=object)
    group = np.full(V, -1, dtype=np.int64)
    if query_mode == "rois":
        names = sorted(set(labels[use]))
        pos = {n: i for i, n in enumerate(names)}
        group[use] = [pos[n] for n in labels[use]]
    elif query_mode == "voxels":
        idx = np.flatnonzero(use)
        names = [f"{labels[i]}#{i}" for i in idx]
        group[idx] = np.arange(len(idx))
    else:
        raise ValueError(f"query_mode must be 'rois' or 'voxels', got {query_mode!r}")
    if not names:
        raise ValueError("no voxel left to model (all NaN/constant or outside the requested ROIs)")
    return group, list(names)


def mean_pearson(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean column-wise Pearson r (NaN columns ignored): the validation score of the encoders."""
    from ..metrics import pearson_r

    r = pearson_r(np.asarray(target, dtype=np.float64), np.asarray(pred, dtype=np.float64))
    return float(np.nanmean(r)) if np.isfinite(r).any() else -1.0


# --------------------------------------------------------------------------------------------
# torch modules
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# estimators
# --------------------------------------------------------------------------------------------
def _as_tokens(X, grid):
    """(n, T, C) float32 array and its grid from (n, T, C) or (n, h, w, C) input."""
    X = np.asarray(X)
    if X.ndim == 4:
        h, w = X.shape[1:3]
        if grid is not None and tuple(grid) != (h, w):
            raise ValueError(f"grid {tuple(grid)} does not match the (n, h, w, C) input {X.shape}")
        return X.reshape(X.shape[0], h * w, X.shape[3]).astype(np.float32, copy=False), (h, w)
    if X.ndim != 3:
        raise ValueError(f"X must be tokens (n, T, C) or (n, h, w, C), got shape {X.shape}")
    T = X.shape[1]
    if grid is None:
        s = int(round(math.sqrt(T)))
        if s * s != T:
            raise ValueError(f"{T} tokens are not a square grid: pass grid=(h, w)")
        grid = (s, s)
    grid = tuple(int(g) for g in grid)
    if grid[0] * grid[1] != T:
        raise ValueError(f"grid {grid} has {grid[0] * grid[1]} cells but X has {T} tokens")
    return X.astype(np.float32, copy=False), grid


class TorchVoxelEncoder(RegressorMixin, BaseEstimator):
    """Shared machinery of the torch voxel encoders (routing, spatial-feature).

    Subclasses set their hyper-parameters in ``__init__`` (which must define ``lr``,
    ``weight_decay``, ``grad_clip``, ``batch_size``, ``max_epochs``, ``patience``,
    ``val_fraction``, ``n_ensemble``, ``query_mode``, ``random_state``, ``device``, ``progress``,
    ``checkpoint_dir``) and implement ``_build_module(n_channels, grid, voxel_group, n_queries)``.

    ``fit`` drops voxels that are NaN or constant in the training data (counted in
    ``n_dropped_voxels_``; their predictions are NaN), standardises token channels and voxel
    targets on the training images, holds out ``val_fraction`` of them (a different draw per
    ensemble member) for early stopping on mean Pearson r, and trains ``n_ensemble`` seeds whose
    predictions are averaged.
    """

    _query_mode_default = "rois"

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, X, Y, *, voxel_roi=None, voxel_hemi=None, rois=None, grid=None):
        """Fit on training images.

        Parameters
        ----------
        X : array, (n_images, T, C) or (n_images, h, w, C)
            Backbone tokens, row-major grid.
        Y : array, (n_images, n_voxels)
            Responses (betas averaged over repeats) of the same images, same order.
        voxel_roi : array of str, (n_voxels,), optional
            ROI of each voxel (default: one ROI ``all``).
        voxel_hemi : array of str, (n_voxels,), optional
            Hemisphere of each voxel; non-empty labels give one query per ROI and hemisphere.
        rois : list of str, optional
            ROIs to model (default all); see :func:`voxel_groups`.
        grid : (int, int), optional
            Token grid; inferred for 4-D input or square token counts.

        Returns
        -------
        self
        """
        from ..train import fit_torch

        X, grid = _as_tokens(X, grid)
        Y = np.asarray(Y, dtype=np.float64)
        if Y.ndim != 2:
            raise ValueError(f"Y must be (n_images, n_voxels), got shape {Y.shape}")
        if len(X) != len(Y):
            raise ValueError(f"X has {len(X)} images but Y has {len(Y)}")
        if len(X) < 4:
            raise ValueError(f"need at least 4 training images, got {len(X)}")
        V = Y.shape[1]
        voxel_roi = np.full(V, "all") if voxel_roi is None else np.asarray(voxel_roi).astype(str)
        if voxel_roi.shape != (V,):
            raise ValueError(f"voxel_roi has {len(voxel_roi)} labels for {V} voxels")
        ok = clean_voxels(Y)
        self.n_dropped_voxels_ = int((~ok).sum())
        if self.n_dropped_voxels_:
            log.warning("dropped %d of %d voxels (NaN or zero variance in the training data)",
                        self.n_dropped_voxels_, V)
        group, names = voxel_groups(voxel_roi, voxel_hemi, keep=ok, rois=rois, query_mode=self.query_mode)
        self.voxel_mask_ = group >= 0
        self.voxel_group_ = group[self.voxel_mask_]
        self.query_names_ = names
        self.grid_ = grid
        self.n_voxels_in_ = V
        self.n_channels_ = X.shape[2]
        Yk = Y[:, self.voxel_mask_]
        self.x_mean_ = X.mean(axis=(0, 1)).astype(np.float32)
        self.x_std_ = (X.std(axis=(0, 1)) + 1e-6).astype(np.float32)
        self.y_mean_ = Yk.mean(axis=0).astype(np.float32)
        self.y_std_ = Yk.std(axis=0).astype(np.float32)
        Xs = self._standardize(X)
        Ys = ((Yk - self.y_mean_) / self.y_std_).astype(np.float32)
        device = resolve_device(self.device)
        self.modules_, self.histories_, self.best_epochs_ = [], [], []
        n = len(Xs)
        for k in range(self.n_ensemble):
            seed = derive_seed(self.random_state, k)
            seed_everything(seed)
            module = self._build_module(self.n_channels_, grid, self.voxel_group_, len(names))
            perm = np.random.default_rng(seed).permutation(n)
            n_val = int(round(self.val_fraction * n)) if self.val_fraction else 0
            n_val = min(max(n_val, 2), n - 2) if n_val else 0
            tr, va = perm[n_val:], perm[:n_val]
            ck = None
            if self.checkpoint_dir is not None:
                ck = Path(self.checkpoint_dir) / f"{type(self).__name__}_member-{k}.pt"
            res = fit_torch(
                module, (Xs[tr], Ys[tr]), loss_fn=F.mse_loss,
                val=(Xs[va], Ys[va]) if n_val else None, val_score=mean_pearson if n_val else None,
                optimizer="adamw", lr=self.lr, weight_decay=self.weight_decay, grad_clip=self.grad_clip,
                batch_size=self.batch_size, max_epochs=self.max_epochs, patience=self.patience,
                seed=seed, device=device, checkpoint=ck, progress=self.progress,
            )
            self.modules_.append(res.module.cpu().eval())
            self.histories_.append(res.history)
            self.best_epochs_.append(res.best_epoch)
            log.info("%s member %d: best epoch %d, val r %.4f", type(self).__name__, k, res.best_epoch,
                     res.best_score)
        return self

    def _standardize(self, X):
        return ((X - self.x_mean_) / self.x_std_).astype(np.float32)

    def _check_fitted(self):
        if not hasattr(self, "modules_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit first")

    def _check_X(self, X):
        self._check_fitted()
        X, grid = _as_tokens(X, self.grid_)
        if X.shape[2] != self.n_channels_:
            raise ValueError(f"X has {X.shape[2]} channels, the model was fitted on {self.n_channels_}")
        return self._standardize(X)

    # -- prediction ------------------------------------------------------------------------
    def predict(self, X, batch_size: int = 64):
        """Predicted responses (n_images, n_voxels); NaN for voxels dropped in ``fit``."""
        from ..train import predict_torch

        Xs = self._check_X(X)
        device = resolve_device(self.device)
        pred = np.mean([predict_torch(m, (Xs,), batch_size=batch_size, device=device) for m in self.modules_],
                       axis=0)
        for m in self.modules_:
            m.cpu()
        out = np.full((len(Xs), self.n_voxels_in_), np.nan, dtype=np.float32)
        out[:, self.voxel_mask_] = pred * self.y_std_ + self.y_mean_
        return out

    def score(self, X, Y, sample_weight=None):
        """Mean Pearson r over the modelled voxels (not R^2)."""
        pred = self.predict(X)
        return mean_pearson(pred[:, self.voxel_mask_], np.asarray(Y)[:, self.voxel_mask_])

    # -- persistence -----------------------------------------------------------------------
    _STATE = ("voxel_mask_", "voxel_group_", "query_names_", "grid_", "n_voxels_in_", "n_channels_",
              "x_mean_", "x_std_", "y_mean_", "y_std_", "n_dropped_voxels_", "best_epochs_")

    def save(self, path) -> None:
        """Write parameters, fitted state and weights to ``path`` (atomically; torch format)."""
        self._check_fitted()
        def plain(v):  # only tensors and plain Python values, so that weights_only loading works
            if isinstance(v, np.ndarray):
                return torch.as_tensor(v)
            if isinstance(v, np.generic):
                return v.item()
            if isinstance(v, (list, tuple)):
                return [plain(x) for x in v]
            return v

        state = {k: plain(getattr(self, k)) for k in self._STATE}
        params = {k: plain(v) for k, v in self.get_params().items()}
        blob = {"class": type(self).__name__, "params": params, "state": state,
                "weights": [m.state_dict() for m in self.modules_]}
        with atomic_path(path) as tmp:
            torch.save(blob, tmp)

    @classmethod
    def load(cls, path):
        """Rebuild a fitted estimator written by :meth:`save` (``weights_only`` loading)."""
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same message
            raise ValueError(f"{path}: not a readable {cls.__name__} file ({exc})") from exc
        if blob.get("class") != cls.__name__:
            raise ValueError(f"{path}: holds a {blob.get('class')!r}, not a {cls.__name__}")
        est = cls(**blob["params"])
        for k, v in blob["state"].items():
            setattr(est, k, v.numpy() if isinstance(v, torch.Tensor) else v)
        est.grid_ = tuple(est.grid_)
        est.modules_ = []
        for sd in blob["weights"]:
            m = est._build_module(est.n_channels_, est.grid_, est.voxel_group_, len(est.query_names_))
            m.load_state_dict(sd)
            est.modules_.append(m.eval())
        return est


class RoutingEncoder(TorchVoxelEncoder):
    """Attention-routing encoder: learned ROI queries cross-attend over backbone tokens.

    Paper defaults (Adeli et al. 2025; references.md section 1): one pre-norm decoder layer,
    cross-attention only, width 768, 16 heads, feed-forward 1024, dropout 0.1, AdamW lr 5e-4,
    weight decay 1e-4, gradient clipping 0.1, batch 16, 15 epochs, 90/10 train/validation split
    with the best epoch chosen by mean validation Pearson r, ensembles of 10 runs. They are this
    class's defaults except ``n_ensemble`` (1 here; the workflow config sets it).

    Parameters
    ----------
    d_model, n_heads, n_layers, dim_feedforward, dropout : decoder size
    query_mode : {"rois", "voxels"}
        One query per ROI (and hemisphere) or one per voxel.
    self_attention : bool
        Query self-attention before the cross-attention (off in the paper).
    lr, weight_decay, grad_clip, batch_size, max_epochs : training (AdamW)
    patience : int, optional
        Early stopping on validation mean Pearson r (None: run every epoch, keep the best).
    val_fraction : float
        Share of the training images held out for validation (0: none, keep the last epoch).
    n_ensemble : int
        Seeds trained and averaged.
    random_state : int
    device : {"auto", "cpu", "cuda"}
    progress : bool
        tqdm progress bars.
    checkpoint_dir : str, optional
        Where each member's resumable training checkpoint goes (see ``neuroattn.train``).

    Attributes
    ----------
    modules_ : list of RoutingModule
    query_names_ : list of str
    voxel_mask_ : ndarray of bool (n_voxels,)
        Voxels modelled (others were NaN/constant or outside ``rois``; predicted as NaN).
    n_dropped_voxels_ : int
    histories_, best_epochs_ : training records per member
    """

    def __init__(self, d_model=768, n_heads=16, n_layers=1, dim_feedforward=1024, dropout=0.1,
                 query_mode="rois", self_attention=False, lr=5e-4, weight_decay=1e-4, grad_clip=0.1,
                 batch_size=16, max_epochs=15, patience=None, val_fraction=0.1, n_ensemble=1,
                 random_state=0, device="auto", progress=False, checkpoint_dir=None):
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.dim_feedforward = dim_feedforward
        self.dropout = dropout
        self.query_mode = query_mode
        self.self_attention = self_attention
        self.lr = lr
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.val_fraction = val_fraction
        self.n_ensemble = n_ensemble
        self.random_state = random_state
        self.device = device
        self.progress = progress
        self.checkpoint_dir = checkpoint_dir

    def _build_module(self, n_channels, grid, voxel_group, n_queries):
        return RoutingModule(n_channels, grid, voxel_group, n_queries, d_model=self.d_model,
                             n_heads=self.n_heads, n_layers=self.n_layers,
                             dim_feedforward=self.dim_feedforward, dropout=self.dropout,
                             self_attention=self.self_attention)

    @torch.no_grad()
    def attention_maps(self, X, batch_size: int = 64) -> np.ndarray:
        """Head-averaged last-layer attention of every query, (n_images, n_queries, h, w).

        Averaged over ensemble members; each map sums to 1 over the grid.
        """
        Xs = torch.as_tensor(self._check_X(X))
        out = np.zeros((len(Xs), len(self.query_names_)) + tuple(self.grid_), dtype=np.float32)
        for m in self.modules_:
            m.eval()
            for s in range(0, len(Xs), batch_size):
                out[s:s + batch_size] += m.attention(Xs[s:s + batch_size]).numpy()
        return out / len(self.modules_)

    def voxel_maps(self, X, batch_size: int | None = None) -> np.ndarray:
        """Each voxel's routing map: where on the token grid its prediction comes from.

        For voxel ``v`` reading query ``q``, the contribution of token ``t`` to the prediction for
        image ``n`` is the gradient x input of the prediction with respect to that token
        (``w_v . d tokens[q] / d g_t``, see :meth:`RoutingModule.token_contributions`; the
        ensemble's contributions are averaged, as its predictions are). The map is the mean
        absolute contribution over images, normalised to sum to 1: the model's estimate of the
        voxel's receptive field on the grid (a population receptive field for retinotopic voxels).

        Parameters
        ----------
        X : array, (n_images, T, C) or (n_images, C, h, w)
        batch_size : int, optional
            Images per forward-mode pass (memory grows with ``batch_size * Q * d * T``); default:
            as many as keep that product under 2**27 floats (512 MiB).

        Returns
        -------
        ndarray, (n_voxels, h, w)
            NaN rows for voxels dropped in ``fit``.
        """
        Xs = torch.as_tensor(self._check_X(X))
        keep = np.flatnonzero(self.voxel_mask_)
        members = [np.flatnonzero(self.voxel_group_ == q) for q in range(len(self.query_names_))]
        T = Xs.shape[1]
        if batch_size is None:
            batch_size = max(1, 2**27 // (len(self.query_names_) * self.modules_[0].d_model * T))
        total = torch.zeros(len(keep), T, dtype=torch.float64)
        for s in range(0, len(Xs), batch_size):
            xb = Xs[s:s + batch_size]
            contrib = torch.zeros(len(xb), len(keep), T)
            for m in self.modules_:
                m.eval()
                with torch.no_grad():
                    J = m.token_contributions(xb)  # (B, Q, d, T)
                    w, _ = m.readout.full_weight()  # (V, d)
                    for q, vox in enumerate(members):  # each voxel reads its own query's token
                        if len(vox):
                            contrib[:, vox] += torch.einsum("vd,bdt->bvt", w[vox], J[:, q])
            total += (contrib / len(self.modules_)).abs().sum(0).double()
        maps = (total / total.sum(1, keepdim=True).clamp_min(1e-30)).numpy()
        out = np.full((self.n_voxels_in_,) + tuple(self.grid_), np.nan)
        out[keep] = maps.reshape((len(keep),) + tuple(self.grid_))
        return out


def summarize_attention(maps: np.ndarray, names) -> pd.DataFrame:
    """Peak location and spread of attention maps, one row per query.

    Parameters
    ----------
    maps : ndarray, (n_queries, h, w)
        Non-negative maps (e.g. the mean over images of :meth:`RoutingEncoder.attention_maps`).
    names : list of str

    Returns
    -------
    DataFrame with columns ``query``, ``peak_row``, ``peak_col`` (token indices), ``peak_y``,
    ``peak_x`` (token centre in [0, 1] image coordinates), ``centroid_y``, ``centroid_x``,
    ``spread`` (weighted RMS distance from the centroid, in tokens), ``entropy`` (normalised to
    [0, 1]; 1 = uniform), ``peak_weight``.
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3 or len(maps) != len(names):
        raise ValueError(f"maps must be (n_queries, h, w) with {len(names)} queries, got {maps.shape}")
    n, h, w = maps.shape
    rows, cols = np.mgrid[0:h, 0:w]
    out = []
    for name, m in zip(names, maps):
        p = m / m.sum() if m.sum() > 0 else np.full_like(m, 1.0 / m.size)
        i, j = np.unravel_index(np.argmax(p), p.shape)
        cy, cx = (p * rows).sum(), (p * cols).sum()
        spread = math.sqrt((p * ((rows - cy) ** 2 + (cols - cx) ** 2)).sum())
        nz = p[p > 0]
        ent = float(-(nz * np.log(nz)).sum() / math.log(p.size)) if p.size > 1 else 0.0
        out.append({"query": name, "peak_row": int(i), "peak_col": int(j), "peak_y": (i + 0.5) / h,
                    "peak_x": (j + 0.5) / w, "centroid_y": (cy + 0.5) / h, "centroid_x": (cx + 0.5) / w,
                    "spread": spread, "entropy": ent, "peak_weight": float(p[i, j])})
    return pd.DataFrame(out)
