"""The spatial-feature (factorized) baseline encoder: a learned softmax spatial map per ROI pools
the tokens, then a per-voxel linear readout of the pooled features, trained like the routing
encoder (:class:`~neuroattn.models.torch_encoder.TorchVoxelEncoder`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .routing_readout import GroupedReadout
from .torch_encoder import TorchVoxelEncoder

__all__ = ["SpatialFeatureEncoder", "SpatialFeatureModule"]


class SpatialFeatureModule(nn.Module):
    """Factorized encoder: a softmax spatial map per query pools the tokens, then a linear readout.

    Parameters
    ----------
    in_channels : int
    grid : (int, int)
    voxel_group : array of int, (V,)
    n_queries : int, optional
    dropout : float
        Dropout on the pooled features.
    """

    def __init__(self, in_channels, grid, voxel_group, n_queries=None, dropout=0.0):
        super().__init__()
        g = np.asarray(voxel_group, dtype=np.int64)
        n_queries = int(n_queries if n_queries is not None else g.max() + 1)
        self.grid, self.n_queries = tuple(int(x) for x in grid), n_queries
        self.map_logits = nn.Parameter(torch.zeros(n_queries, self.grid[0] * self.grid[1]))
        self.drop = nn.Dropout(dropout)
        self.readout = GroupedReadout(in_channels, g, n_queries)

    def maps(self) -> torch.Tensor:
        """Spatial maps (Q, h, w), each summing to 1."""
        return torch.softmax(self.map_logits, dim=-1).reshape(self.n_queries, *self.grid)

    def forward(self, x):
        p = torch.softmax(self.map_logits, dim=-1)
        return self.readout(self.drop(torch.einsum("qt,btc->bqc", p, x)))


class SpatialFeatureEncoder(TorchVoxelEncoder):
    """Spatial-feature (factorized) encoder: one learned spatial map per ROI, then linear readout.

    Training, validation split, early stopping and ensembling as :class:`RoutingEncoder`.

    Parameters
    ----------
    dropout : float
    query_mode : {"rois", "voxels"}
        One spatial map per ROI (and hemisphere), or per voxel.
    lr, weight_decay, grad_clip, batch_size, max_epochs, patience, val_fraction, n_ensemble,
    random_state, device, progress, checkpoint_dir
        As in :class:`RoutingEncoder`.
    """

    def __init__(self, dropout=0.0, query_mode="rois", lr=1e-3, weight_decay=1e-4, grad_clip=None,
                 batch_size=16, max_epochs=40, patience=5, val_fraction=0.1, n_ensemble=1,
                 random_state=0, device="auto", progress=False, checkpoint_dir=None):
        self.dropout = dropout
        self.query_mode = query_mode
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
        return SpatialFeatureModule(n_channels, grid, voxel_group, n_queries, dropout=self.dropout)

    @torch.no_grad()
    def spatial_maps(self) -> np.ndarray:
        """Learned spatial maps (n_queries, h, w), averaged over ensemble members."""
        self._check_fitted()
        return np.mean([m.maps().numpy() for m in self.modules_], axis=0)
