"""Fixed 2-D sine positional encodings for token grids (DETR style)."""
from __future__ import annotations

import math

import torch


def sine_2d(h: int, w: int, d_model: int, temperature: float = 10000.0, normalize: bool = True) -> torch.Tensor:
    """2-D sine/cosine positional encoding of an ``h x w`` token grid.

    The first half of the channels encodes the row (y), the second half the column (x); within
    each half, channels alternate sine and cosine at geometrically spaced frequencies. Positions
    are normalised to ``(0, 2*pi]`` when ``normalize`` is true, so grids of different sizes share
    a scale. Tokens are in row-major order (row ``i``, column ``j`` -> token ``i * w + j``).

    Parameters
    ----------
    h, w : int
        Grid size.
    d_model : int
        Encoding width; when it is not a multiple of 4 the last channels are zero.
    temperature : float
        Base of the frequency progression.
    normalize : bool
        Scale positions to ``(0, 2*pi]``.

    Returns
    -------
    Tensor, (h * w, d_model), float32
    """
    if h < 1 or w < 1 or d_model < 1:
        raise ValueError(f"grid ({h}, {w}) and d_model {d_model} must be positive")
    npf = (d_model // 4) * 2  # features per axis, even
    y = torch.arange(1, h + 1, dtype=torch.float64)[:, None].expand(h, w)
    x = torch.arange(1, w + 1, dtype=torch.float64)[None, :].expand(h, w)
    if normalize:
        eps = 1e-6
        y = y / (h + eps) * 2 * math.pi
        x = x / (w + eps) * 2 * math.pi
    out = torch.zeros(h, w, d_model, dtype=torch.float64)
    if npf:
        dim_t = temperature ** (2 * (torch.arange(npf, dtype=torch.float64) // 2) / npf)
        py = y[..., None] / dim_t
        px = x[..., None] / dim_t
        py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=-1).flatten(-2)
        px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=-1).flatten(-2)
        out[..., :npf] = py
        out[..., npf:2 * npf] = px
    return out.reshape(h * w, d_model).float()
