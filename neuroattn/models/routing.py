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
(:mod:`.torch_encoder`; modules in :mod:`.routing_modules`, readout in :mod:`.routing_readout`,
voxel helpers in :mod:`.routing_voxels`)
which also serves the spatial-feature baseline (``neuroattn.models.baselines``).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from .routing_modules import CrossAttention, RoutingLayer, RoutingModule  # noqa: F401 (re-export)
from .routing_readout import GroupedReadout, _GroupedLinear, masked_full_readout  # noqa: F401 (re-export)
from .routing_voxels import _as_tokens, clean_voxels, mean_pearson, voxel_groups  # noqa: F401 (re-export)
from .torch_encoder import TorchVoxelEncoder

__all__ = [
    "RoutingEncoder", "RoutingModule", "GroupedReadout", "TorchVoxelEncoder", "clean_voxels",
    "voxel_groups", "masked_full_readout", "summarize_attention", "mean_pearson",
]


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
