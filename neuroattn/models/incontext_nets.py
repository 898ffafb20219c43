"""Torch networks of the in-context encoder (stage 1, :class:`ContextEncoderNet`) and decoder
(stage 2, :class:`ImageDecoderNet`): register transformers with log-scaled attention and SwiGLU
blocks, the ridge-path heads, and the stage-2 loss (:func:`decoding_loss`). Wrapped by the
estimators of :mod:`neuroattn.models.incontext`."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


# ----------------------------------------------------------------------------- modules
class SwiGLU(nn.Module):
    """SwiGLU feed-forward: ``W3 (silu(W1 x) * W2 x)``."""

    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.w12 = nn.Linear(d_model, 2 * hidden)
        self.w3 = nn.Linear(hidden, d_model)

    def forward(self, x):
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)


class LogScaledBlock(nn.Module):
    """Pre-norm transformer block (self-attention + SwiGLU), no positional encoding.

    Attention logits are ``log(n) * q.k / sqrt(d_head)`` with ``n`` the sequence length.
    """

    def __init__(self, d_model: int, n_heads: int, ffn_hidden: int = 256):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = SwiGLU(d_model, ffn_hidden)

    def forward(self, h, n_out: int | None = None):
        """``h`` (B, N, D) -> (B, N, D); with ``n_out`` only the first ``n_out`` tokens are computed
        (they still attend to all ``N``): the last block needs only the registers."""
        B, N, D = h.shape
        dh = D // self.n_heads
        q, k, v = self.qkv(self.norm1(h)).view(B, N, 3, self.n_heads, dh).permute(2, 0, 3, 1, 4)
        if n_out is not None:
            h, q = h[:, :n_out], q[:, :, :n_out]
        scale = max(math.log(N), 1.0) / math.sqrt(dh)
        a = F.scaled_dot_product_attention(q, k, v, scale=scale)
        h = h + self.proj(a.transpose(1, 2).reshape(B, h.shape[1], D))
        return h + self.ffn(self.norm2(h))


class ResidualMLP(nn.Module):
    """Token embedding: linear to ``d_model`` then one residual SwiGLU layer."""

    def __init__(self, d_in: int, d_model: int):
        super().__init__()
        self.lin = nn.Linear(d_in, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.ffn = SwiGLU(d_model, 2 * d_model)

    def forward(self, x):
        h = self.lin(x)
        return h + self.ffn(self.norm(h))


class _RegisterTransformer(nn.Module):
    def __init__(self, d_in, d_model, n_layers, n_heads, n_registers, ffn_mult, ffn_hidden=None):
        super().__init__()
        if n_registers < 1:
            raise ValueError(f"n_registers must be >= 1, got {n_registers}")
        self.inp = ResidualMLP(d_in, d_model)
        self.registers = nn.Parameter(0.02 * torch.randn(n_registers, d_model))
        hidden = ffn_hidden or ffn_mult * d_model
        self.blocks = nn.ModuleList(LogScaledBlock(d_model, n_heads, hidden) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)

    def encode(self, tokens, keep_tokens: bool = False):
        """Registers (and, with ``keep_tokens``, every token) after the blocks, normalized."""
        h = self.inp(tokens)
        R = self.registers.shape[0]
        h = torch.cat([self.registers.expand(h.shape[0], -1, -1), h], dim=1)
        for i, blk in enumerate(self.blocks):
            h = blk(h, n_out=R if (i == len(self.blocks) - 1 and not keep_tokens) else None)
        return self.norm(h if keep_tokens else h[:, :R])


#: voxel count at which stage 2's relative penalty grid is defined (its training chunk size)
REF_VOXELS = 128


def _lambda_grid(n_lambdas: int) -> torch.Tensor:
    """Relative ridge penalties, log-spaced from 1e-2 to 1e2 (times the mean eigenvalue)."""
    return torch.logspace(-2, 2, n_lambdas)


@torch.no_grad()
def ridge_path(x, y, rel_lambdas, gammas=(0.0,)):
    """Closed-form ridge solutions of every voxel for a grid of penalties.

    ``x`` (k, E) shared context embeddings, ``y`` (B, k) responses. The penalty on coefficient ``j``
    is ``lambda * (j + 1) ** gamma`` (normalized to mean ``lambda``) for every ``lambda`` in
    ``rel_lambdas`` times the mean eigenvalue of the centred Gram matrix and every ``gamma`` in
    ``gammas`` (``gamma > 0`` shrinks the later, weaker principal components of a PCA embedding
    more). Returns ``W`` (B, L * G, E) and ``b`` (B, L * G).
    """
    xm = x.mean(0)
    xc = x - xm
    G = xc.T @ xc
    E = G.shape[0]
    lam = rel_lambdas.to(x) * torch.diagonal(G).mean().clamp_min(1e-6)
    j = torch.arange(1, E + 1, dtype=x.dtype, device=x.device)
    pen = torch.stack([j ** g / (j ** g).mean() for g in gammas])                # (G, E)
    A = G + torch.diag_embed(lam[:, None, None] * pen[None])                      # (L, G, E, E)
    xty = (y - y.mean(1, keepdim=True)) @ xc                                       # (B, E)
    W = torch.linalg.solve(A.reshape(-1, E, E), xty.T.unsqueeze(0)).permute(2, 0, 1)  # (B, L*G, E)
    b = y.mean(1, keepdim=True) - W @ xm
    return W, b


@torch.no_grad()
def bayes_ridge_path(x, y, rel_lambdas, gammas=(0.0,), prior_mean=None, prior_cov=None):
    """Ridge solutions of every voxel for a grid of penalties and priors, with their evidence.

    As :func:`ridge_path` (same solutions for the ``gammas`` families) plus, when ``prior_cov`` (E, E)
    is given, one more family: the Gaussian prior ``w ~ N(prior_mean, C)`` (``C`` scaled to mean
    eigenvalue 1; the *population* prior of the meta-training subjects' voxels). Each solution comes
    with its log marginal likelihood (evidence) of the context responses, the noise variance profiled
    out, so that a softmax over solutions is Bayesian model averaging over penalties and priors.
    Dual (k x k) form: one eigendecomposition per family, shared by every voxel.

    Returns ``W`` (B, L * F, E), ``b`` (B, L * F), ``log_evidence`` (B, L * F), F = ``len(gammas)``
    (+ 1 with ``prior_cov``), ordered family-major, and ``noise`` (B, L * F), each solution's
    maximum-likelihood noise variance (the profiled one).
    """
    dtype = x.dtype
    x, y = x.double(), y.double()   # the dual's null space needs float64 on large contexts
    k, E = x.shape
    xm, ym = x.mean(0), y.mean(1, keepdim=True)
    xc, yc = x - xm, y - ym                                                       # (k, E), (B, k)
    scale = (xc ** 2).sum(0).mean().clamp_min(1e-6)                                # mean eigenvalue of G
    lam = rel_lambdas.to(x) * scale                                                # (L,)
    j = torch.arange(1, E + 1, dtype=x.dtype, device=x.device)
    covs = [torch.diag(1.0 / (j ** g / (j ** g).mean())) for g in gammas]          # prior covariances P^-1
    means = [None] * len(gammas)
    if prior_cov is not None:
        C = prior_cov.to(x)
        covs.append(C * E / torch.diagonal(C).sum().clamp_min(1e-12))
        means.append(None if prior_mean is None else prior_mean.to(x))
    Ws, bs, evs, noise = [], [], [], []
    dof = max(k - 1, 1)
    for Cf, m in zip(covs, means):
        r = yc if m is None else yc - (xc @ m)[None]                               # residual of the prior mean
        d, U = torch.linalg.eigh(xc @ Cf @ xc.T)                                   # K = xc C xc'
        d = d.clamp_min(0)
        z = r @ U                                                                  # (B, k)
        f = 1.0 / (d[None] + lam[:, None])                                         # (L, k)
        W = torch.einsum("ek,lk,bk->ble", Cf @ xc.T @ U, f, z)                     # C xc' (K + lam)^-1 r
        if m is not None:
            W = W + m
        quad = torch.einsum("lk,bk->bl", lam[:, None] * f, z ** 2)                 # r' (I + K/lam)^-1 r
        logdet = torch.log1p(d[None] / lam[:, None]).sum(-1)                       # (L,)
        evs.append(-0.5 * dof * torch.log(quad.clamp_min(1e-12) / dof) - 0.5 * logdet[None])
        noise.append(quad / dof)
        Ws.append(W)
        bs.append(ym - W @ xm)
    return tuple(torch.cat(a, 1).to(dtype) for a in (Ws, bs, evs, noise))


class ContextEncoderNet(_RegisterTransformer):
    """Stage 1: context of (embedding, response) pairs -> one linear encoder per voxel.

    Responses are standardized per voxel over the context before the transformer reads them (the
    encoders are returned in the original units), so that real voxels look like the unit-variance
    synthetic voxels of the prior whatever their scale.

    With ``ridge_head=False`` the first register is read out directly as ``(w, b)`` (the paper's
    head). With ``ridge_head=True`` (the CPU default) it is read out as a per-voxel mixture over a
    grid of closed-form ridge solutions of the same context plus a gated residual ``(dw, db)``: the
    mixture's logits are the solutions' log evidence (:func:`bayes_ridge_path`, Bayesian model
    averaging over penalties) plus learned per-voxel corrections, a prior that a few hundred
    meta-training steps can learn, where the plain head needs GPU-scale training to reach ridge
    quality. With ``population_prior=True`` the grid also holds the ridge under a Gaussian prior
    fitted to the meta-training subjects' voxels (:meth:`set_population_prior`; isotropic until set).

    Parameters
    ----------
    embed_dim : int
        Image embedding size ``E``.
    d_model, n_layers, n_heads, n_registers, ffn_mult : int
        Transformer sizes (SwiGLU hidden = ``ffn_mult * d_model``, or ``ffn_hidden`` when given).
    ridge_head : bool
    n_lambdas : int
        Size of the ridge penalty grid.
    gammas : tuple of float
        Penalty growth over embedding dimensions (see :func:`ridge_path`).
    population_prior : bool
    """

    def __init__(self, embed_dim: int, d_model: int = 128, n_layers: int = 4, n_heads: int = 4,
                 n_registers: int = 4, ffn_mult: int = 2, ridge_head: bool = True, n_lambdas: int = 9,
                 ffn_hidden: int | None = None, gammas=(0.0, 1.0, 2.0), population_prior: bool = False):
        super().__init__(embed_dim + 1, d_model, n_layers, n_heads, n_registers, ffn_mult, ffn_hidden)
        self.embed_dim = embed_dim
        self.ridge_head = ridge_head
        self.gammas = tuple(float(g) for g in gammas)
        self.population_prior = bool(population_prior and ridge_head)
        n_fam = len(self.gammas) + int(self.population_prior)
        self.head = nn.Linear(d_model, embed_dim + 1 + (n_lambdas * n_fam if ridge_head else 0))
        if ridge_head:
            self.register_buffer("rel_lambdas", _lambda_grid(n_lambdas))
            self.gate = nn.Parameter(torch.zeros(1))
        if self.population_prior:
            self.register_buffer("prior_mean", torch.zeros(embed_dim))
            self.register_buffer("prior_cov", torch.eye(embed_dim))

    @torch.no_grad()
    def set_population_prior(self, W) -> None:
        """Set the population prior from encoders ``W`` (n, E) of standardized voxels (mean, covariance)."""
        if not self.population_prior:
            raise ValueError("this ContextEncoderNet was built with population_prior=False")
        W = torch.as_tensor(W, dtype=torch.float32)
        m = W.mean(0)
        Wc = W - m
        C = Wc.T @ Wc / max(len(W) - 1, 1)
        self.prior_mean.copy_(m)
        self.prior_cov.copy_(C + 1e-3 * torch.diagonal(C).mean() * torch.eye(C.shape[0]))

    def forward(self, x, y, return_noise: bool = False):
        """``x`` (k, E) shared context embeddings; ``y`` (B, k) responses.

        Returns ``w`` (B, E) and ``b`` (B,) (and with ``return_noise`` the voxels' noise variance
        (B,), the mixture's profiled one; the context residual variance without the ridge head).
        """
        B, k = y.shape
        mu = y.mean(1, keepdim=True)
        sd = y.std(1, keepdim=True).clamp_min(1e-6) if k > 1 else torch.ones_like(mu)
        y = (y - mu) / sd
        xb = x.unsqueeze(0).expand(B, k, x.shape[-1])
        out = self.head(self.encode(torch.cat([xb, y.unsqueeze(-1)], dim=-1))[:, 0])
        E = self.embed_dim
        w, b = out[:, :E], out[:, E]
        if self.ridge_head:
            prior = (self.prior_mean, self.prior_cov) if self.population_prior else (None, None)
            Wr, br, ev, nv = bayes_ridge_path(x, y, self.rel_lambdas, self.gammas, *prior)
            p = torch.softmax(out[:, E + 1:] + ev, dim=-1)
            w, b = (p.unsqueeze(-1) * Wr).sum(1) + self.gate * w, (p * br).sum(1) + self.gate * b
            noise = (p * nv).sum(1)
        else:
            noise = ((y - w @ x.T - b[:, None]) ** 2).mean(1)
        w, b = w * sd, b * sd.squeeze(1) + mu.squeeze(1)
        return (w, b, noise.detach().clamp_min(1e-4) * sd.squeeze(1) ** 2) if return_noise else (w, b)


class ImageDecoderNet(_RegisterTransformer):
    """Stage 2: voxel tokens [w_k ; b_k ; beta_k] -> predicted image embedding.

    With ``ridge_head=False`` the first registers go through an MLP to the embedding (the paper's
    head). With ``ridge_head=True`` (the CPU default) each voxel token also gives a weight
    ``s_k > 0`` and the registers a mixture over a penalty grid of the weighted ridge inversions
    ``(W' S W + mu I)^-1 W' S (beta - b)``, plus the gated MLP output.

    Parameters
    ----------
    embed_dim : int
        Image embedding size ``E``.
    d_model, n_layers, n_heads, n_registers, ffn_mult : int
        Transformer sizes; the first ``min(4, n_registers)`` registers feed the output MLP.
        SwiGLU hidden = ``ffn_mult * d_model``, or ``ffn_hidden`` when given.
    ridge_head : bool
    n_lambdas : int
    """

    def __init__(self, embed_dim: int, d_model: int = 128, n_layers: int = 4, n_heads: int = 4,
                 n_registers: int = 8, ffn_mult: int = 2, ridge_head: bool = True, n_lambdas: int = 9,
                 ffn_hidden: int | None = None):
        super().__init__(embed_dim + 2, d_model, n_layers, n_heads, n_registers, ffn_mult, ffn_hidden)
        self.embed_dim = embed_dim
        self.ridge_head = ridge_head
        self.n_readout = min(4, n_registers)
        self.head = nn.Sequential(nn.Linear(self.n_readout * d_model, d_model), nn.GELU(),
                                  nn.Linear(d_model, embed_dim + (n_lambdas if ridge_head else 0)))
        if ridge_head:
            self.register_buffer("rel_lambdas", _lambda_grid(n_lambdas))
            self.voxel_weight = nn.Linear(d_model, 1)
            self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, w, b, beta, noise=None):
        """``w`` (V, E), ``b`` (V,), ``beta`` (B, V) -> embeddings (B, E) (not normalized); ``noise``
        (V,) the voxels' noise variances (stage 1's), or None."""
        return self.solve(self.stats(w, b, beta, noise))

    def stats(self, w, b, beta, noise=None) -> dict:
        """What one voxel set contributes, additive over disjoint voxel sets (:func:`combine_stats`):
        the weighted normal equations ``A = W' S W`` (B, E, E), ``rhs = W' S (beta - b)`` (B, E), the
        voxel count ``n``, and the registers' readout ``out`` (B, E + L) times ``n``. The weights
        ``S`` are learned per token and, given ``noise``, divided by it (the Gaussian likelihood's
        precision: a reliable voxel counts more)."""
        B, V = beta.shape
        E = self.embed_dim
        wb = torch.cat([w, b.unsqueeze(-1)], dim=-1).unsqueeze(0).expand(B, V, E + 1)
        h = self.encode(torch.cat([wb, beta.unsqueeze(-1)], dim=-1), keep_tokens=self.ridge_head)
        R = self.registers.shape[0]
        out = self.head(h[:, : self.n_readout].reshape(B, -1))
        st = {"out": out * V, "n": torch.full((), float(V), device=beta.device)}
        if self.ridge_head:
            s = F.softplus(self.voxel_weight(h[:, R:]).squeeze(-1))             # (B, V)
            if noise is not None:
                s = s / noise.clamp_min(1e-6).unsqueeze(0)
            ws = w.unsqueeze(0) * s.unsqueeze(-1)                                # (B, V, E)
            st["A"] = ws.transpose(1, 2) @ w                                     # (B, E, E)
            st["rhs"] = (ws * (beta - b).unsqueeze(-1)).sum(1)                   # (B, E)
        return st

    def solve(self, st: dict):
        """Embeddings (B, E) from (combined) :meth:`stats`: the weighted ridge inversion of every voxel
        at once, its penalty ``mu`` relative to the mean diagonal of ``A`` per :data:`REF_VOXELS`
        voxels (so the same per-voxel shrinkage whatever the number of voxels)."""
        E = self.embed_dim
        out = st["out"] / st["n"]
        if not self.ridge_head:
            return out
        A = st["A"]
        per = torch.diagonal(A, dim1=1, dim2=2).mean(-1, keepdim=True) * (REF_VOXELS / st["n"])
        mu = self.rel_lambdas.to(A)[None, :] * per
        eye = torch.eye(E, device=A.device, dtype=A.dtype)
        Ax = A.unsqueeze(1) + mu[..., None, None] * eye                      # (B, L, E, E)
        xs = torch.linalg.solve(Ax, st["rhs"].unsqueeze(1).expand(-1, Ax.shape[1], -1))  # (B, L, E)
        p = torch.softmax(out[:, E:], dim=-1)
        return (p.unsqueeze(-1) * F.normalize(xs, dim=-1)).sum(1) + self.gate * out[:, :E]


def combine_stats(parts) -> dict:
    """Sum :meth:`ImageDecoderNet.stats` of disjoint voxel sets (the voxels' joint statistics)."""
    parts = list(parts)
    return {key: sum(p[key] for p in parts) for key in parts[0]}


# ----------------------------------------------------------------------------- losses, retrieval
def decoding_loss(pred, target, tau: float = 0.2, nce_weight: float = 0.1):
    """``1 - cos(pred, target)`` (batch mean) + ``nce_weight`` x symmetric InfoNCE at ``tau``."""
    p, t = F.normalize(pred, dim=-1), F.normalize(target, dim=-1)
    cos = 1.0 - (p * t).sum(-1).mean()
    if nce_weight == 0 or len(p) < 2:
        return cos
    logits = p @ t.T / tau
    labels = torch.arange(len(p), device=p.device)
    return cos + nce_weight * 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
