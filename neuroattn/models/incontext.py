"""In-context cross-subject encoder (stage 1) and decoder (stage 2), BraInCoRL / BrainCoDec style.

A new subject is described only by a few (image, response) pairs, its *context*; nothing is
fine-tuned on it.

Stage 1, :class:`ContextEncoderNet` (wrapped by :class:`InContextEncoder`): for one voxel, a
transformer reads context tokens ``[x_i ; beta_i]`` (unit-norm image embedding, the voxel's response
to that image), with no positional encoding (the context is a set), register tokens in front, and
attention logits scaled by ``log(n_tokens)`` so that attention stays sharp as the context grows. The
first register is read out as the voxel's linear encoder ``(w, b)``: ``beta(x) = w . x + b``.
Voxels are independent samples, batched.

Stage 2, :class:`ImageDecoderNet` (wrapped by :class:`InContextDecoder`): for one image, a
transformer reads voxel tokens ``[w_k ; b_k ; beta_k]`` (each voxel's stage-1 encoder and its response
to the image) with registers in front; the first registers go through an MLP to the predicted image
embedding. Trained with ``1 - cos + 0.1 * symmetric InfoNCE (tau 0.2)`` (:func:`decoding_loss`);
images are identified by cosine nearest neighbour among candidate embeddings (:func:`retrieve`).

Image embeddings live in an :class:`EmbeddingSpace`: a backbone's pooled features, PCA-whitened on
the training images and scaled to unit norm (a small ``E`` keeps stage 1's output and stage 2's
tokens small on CPUs). Meta-training lives in :mod:`neuroattn.models.metatrain`.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.decomposition import PCA
from torch import nn

from ..utils import resolve_device


# ----------------------------------------------------------------------------- embeddings
class EmbeddingSpace:
    """PCA-whitened, unit-norm image embeddings fitted on training images only.

    Parameters
    ----------
    n_components : int
        Embedding size ``E`` (capped by the number of images and features).
    """

    def __init__(self, n_components: int = 64):
        self.n_components = n_components

    def fit(self, features: np.ndarray) -> "EmbeddingSpace":
        features = np.asarray(features, dtype=np.float64)
        n = min(self.n_components, features.shape[0] - 1, features.shape[1])
        if n < 1:
            raise ValueError(f"cannot fit an embedding space on features of shape {features.shape}")
        pca = PCA(n_components=n, whiten=True, svd_solver="full").fit(features)
        self.mean_ = pca.mean_.astype(np.float32)
        self.components_ = pca.components_.astype(np.float32)
        self.scale_ = np.sqrt(np.maximum(pca.explained_variance_, 1e-12)).astype(np.float32)
        return self

    @property
    def dim(self) -> int:
        return int(self.components_.shape[0])

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Embed ``features`` (n, C) -> (n, E), float32, each row of unit norm."""
        z = (np.asarray(features, dtype=np.float32) - self.mean_) @ self.components_.T / self.scale_
        return (z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-8)).astype(np.float32)

    def state_dict(self) -> dict:
        return {k: torch.from_numpy(getattr(self, k)) for k in ("mean_", "components_", "scale_")}

    @classmethod
    def from_state(cls, state: dict) -> "EmbeddingSpace":
        obj = cls(n_components=int(state["components_"].shape[0]))
        for k in ("mean_", "components_", "scale_"):
            setattr(obj, k, state[k].cpu().numpy())
        return obj


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


class ContextEncoderNet(_RegisterTransformer):
    """Stage 1: context of (embedding, response) pairs -> one linear encoder per voxel.

    With ``ridge_head=False`` the first register is read out directly as ``(w, b)`` (the paper's
    head). With ``ridge_head=True`` (the CPU default) it is read out as a per-voxel mixture over a
    grid of closed-form ridge solutions of the same context (learned, voxel-adaptive shrinkage)
    plus a gated residual ``(dw, db)``: a prior that a few hundred meta-training steps can learn,
    where the plain head needs GPU-scale training to reach ridge quality.

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
    """

    def __init__(self, embed_dim: int, d_model: int = 128, n_layers: int = 4, n_heads: int = 4,
                 n_registers: int = 4, ffn_mult: int = 2, ridge_head: bool = True, n_lambdas: int = 9,
                 ffn_hidden: int | None = None, gammas=(0.0, 1.0, 2.0)):
        super().__init__(embed_dim + 1, d_model, n_layers, n_heads, n_registers, ffn_mult, ffn_hidden)
        self.embed_dim = embed_dim
        self.ridge_head = ridge_head
        self.gammas = tuple(float(g) for g in gammas)
        self.head = nn.Linear(d_model, embed_dim + 1 + (n_lambdas * len(self.gammas) if ridge_head else 0))
        if ridge_head:
            self.register_buffer("rel_lambdas", _lambda_grid(n_lambdas))
            self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, x, y):
        """``x`` (k, E) shared context embeddings; ``y`` (B, k) responses.

        Returns ``w`` (B, E) and ``b`` (B,).
        """
        B, k = y.shape
        xb = x.unsqueeze(0).expand(B, k, x.shape[-1])
        out = self.head(self.encode(torch.cat([xb, y.unsqueeze(-1)], dim=-1))[:, 0])
        E = self.embed_dim
        w, b = out[:, :E], out[:, E]
        if not self.ridge_head:
            return w, b
        p = torch.softmax(out[:, E + 1:], dim=-1)
        Wr, br = ridge_path(x, y, self.rel_lambdas, self.gammas)
        return (p.unsqueeze(-1) * Wr).sum(1) + self.gate * w, (p * br).sum(1) + self.gate * b


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

    def forward(self, w, b, beta):
        """``w`` (V, E), ``b`` (V,), ``beta`` (B, V) -> embeddings (B, E) (not normalized)."""
        B, V = beta.shape
        E = self.embed_dim
        wb = torch.cat([w, b.unsqueeze(-1)], dim=-1).unsqueeze(0).expand(B, V, E + 1)
        h = self.encode(torch.cat([wb, beta.unsqueeze(-1)], dim=-1), keep_tokens=self.ridge_head)
        R = self.registers.shape[0]
        out = self.head(h[:, : self.n_readout].reshape(B, -1))
        if not self.ridge_head:
            return out
        s = F.softplus(self.voxel_weight(h[:, R:]).squeeze(-1))             # (B, V)
        ws = w.unsqueeze(0) * s.unsqueeze(-1)                                # (B, V, E)
        A = ws.transpose(1, 2) @ w                                           # (B, E, E)
        rhs = (ws * (beta - b).unsqueeze(-1)).sum(1)                         # (B, E)
        mu = self.rel_lambdas.to(A) [None, :] * torch.diagonal(A, dim1=1, dim2=2).mean(-1, keepdim=True)
        eye = torch.eye(E, device=A.device, dtype=A.dtype)
        Ax = A.unsqueeze(1) + mu[..., None, None] * eye                      # (B, L, E, E)
        xs = torch.linalg.solve(Ax, rhs.unsqueeze(1).expand(-1, Ax.shape[1], -1))  # (B, L, E)
        p = torch.softmax(out[:, E:], dim=-1)
        return (p.unsqueeze(-1) * F.normalize(xs, dim=-1)).sum(1) + self.gate * out[:, :E]


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


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, E) x (m, E) -> (n, m) cosine similarities."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def retrieve(pred: np.ndarray, candidates: np.ndarray, candidate_names, target_names, ks=(1, 5)) -> dict:
    """Cosine nearest-neighbour identification of decoded embeddings.

    Parameters
    ----------
    pred : (n, E) decoded embeddings, one per target image.
    candidates : (m, E) candidate embeddings, named by ``candidate_names``.
    target_names : (n,) the true image of each row of ``pred``; all must be candidates.
    ks : tuple of int

    Returns
    -------
    dict with ``top<k>`` accuracies, ``cosine`` (mean cosine to the true embedding), ``n_candidates``,
    ``ranking`` (n, m) candidate indices sorted by similarity.
    """
    candidate_names = np.asarray(candidate_names).astype(str)
    target_names = np.asarray(target_names).astype(str)
    pos = {c: i for i, c in enumerate(candidate_names)}
    missing = [t for t in target_names if t not in pos]
    if missing:
        raise KeyError(f"test image(s) {missing[:5]} are not in the candidate set of {len(pos)} images")
    if len(pred) != len(target_names):
        raise ValueError(f"{len(pred)} decoded embeddings for {len(target_names)} target images")
    from ..metrics import topk_retrieval

    target = np.array([pos[t] for t in target_names], dtype=int)
    sim = cosine_similarity(pred, candidates)
    out = {}
    for k in ks:
        score = topk_retrieval(pred, candidates, target, k=min(k, len(candidate_names)))
        out[f"top{k}"], out[f"top{k}_error"] = score.value, score.error
    out["cosine"] = float(np.mean(sim[np.arange(len(target)), target]))
    out["n_candidates"] = len(candidate_names)
    out["ranking"] = np.argsort(-sim, axis=1, kind="stable")
    return out


# ----------------------------------------------------------------------------- inference helpers
def _check_context(X, Y, min_context, embed_dim):
    X = np.asarray(X, dtype=np.float32)
    Y = np.asarray(Y, dtype=np.float32)
    if Y.ndim == 1:
        Y = Y[:, None]
    if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y):
        raise ValueError(f"context embeddings {X.shape} and responses {Y.shape} must be (k, E) and (k, n_voxels)")
    k = len(X)
    if k < min_context:
        raise ValueError(f"in-context model needs at least {min_context} context images, got k={k}")
    if X.shape[1] != embed_dim:
        raise ValueError(f"context embeddings have {X.shape[1]} dims, the network expects {embed_dim}")
    if not (np.isfinite(X).all() and np.isfinite(Y).all()):
        raise ValueError("context embeddings or responses contain NaN/inf")
    return X, Y


@torch.no_grad()
def infer_encoders(net: ContextEncoderNet, X, Y, voxel_batch: int = 1024, device: str = "cpu"):
    """Run stage 1 on a context: X (k, E), Y (k, V) -> (W (V, E), b (V,)) as numpy."""
    net = net.to(device).eval()
    x = torch.as_tensor(X, dtype=torch.float32, device=device)
    Yt = torch.as_tensor(np.ascontiguousarray(np.asarray(Y, dtype=np.float32).T), device=device)
    ws, bs = [], []
    for s in range(0, Yt.shape[0], voxel_batch):
        w, b = net(x, Yt[s:s + voxel_batch])
        ws.append(w.cpu())
        bs.append(b.cpu())
    return torch.cat(ws).numpy(), torch.cat(bs).numpy()


def voxel_chunks(n_voxels: int, max_voxels: int, seed: int = 0) -> list[np.ndarray]:
    """Split voxels into random, near-equal chunks of at most ``max_voxels`` (stage 2's token sets)."""
    perm = np.random.default_rng(seed).permutation(n_voxels)
    return np.array_split(perm, max(1, math.ceil(n_voxels / max_voxels)))


@torch.no_grad()
def decode_images(net: ImageDecoderNet, W, b, beta, max_voxels: int = 512, image_batch: int = 64,
                  device: str = "cpu", seed: int = 0) -> np.ndarray:
    """Run stage 2: encoders ``W`` (V, E), ``b`` (V,), responses ``beta`` (n, V) -> (n, E) unit-norm.

    With more voxels than ``max_voxels``, the voxels are split into random chunks and the decoded
    embeddings of the chunks averaged.
    """
    net = net.to(device).eval()
    W = torch.as_tensor(W, dtype=torch.float32, device=device)
    b = torch.as_tensor(b, dtype=torch.float32, device=device)
    beta = torch.as_tensor(np.asarray(beta, dtype=np.float32), device=device)
    out = torch.zeros(beta.shape[0], net.embed_dim, device=device)
    for idx in voxel_chunks(W.shape[0], max_voxels, seed):
        idx = torch.as_tensor(idx, device=device)
        for s in range(0, beta.shape[0], image_batch):
            out[s:s + image_batch] += F.normalize(net(W[idx], b[idx], beta[s:s + image_batch][:, idx]), dim=-1)
    return F.normalize(out, dim=-1).cpu().numpy()


# ----------------------------------------------------------------------------- estimators
class InContextEncoder(BaseEstimator, RegressorMixin):
    """Per-voxel linear encoders inferred in context by a meta-trained stage-1 network.

    ``fit`` does no gradient step: it reads the subject's context (embeddings ``X``, responses
    ``y``) and infers each voxel's weights.

    Parameters
    ----------
    net : ContextEncoderNet
        Meta-trained stage-1 network (see :func:`neuroattn.models.metatrain.train_prior`).
    min_context : int
        Smallest context accepted.
    voxel_batch : int
        Voxels per forward pass.
    device : {"auto", "cpu", "cuda"}

    Attributes
    ----------
    coef_ : (n_voxels, E) ndarray
    intercept_ : (n_voxels,) ndarray
    n_features_in_ : int
    """

    def __init__(self, net=None, min_context: int = 10, voxel_batch: int = 1024, device: str = "cpu"):
        self.net = net
        self.min_context = min_context
        self.voxel_batch = voxel_batch
        self.device = device

    def fit(self, X, y):
        """Infer encoders from context embeddings ``X`` (k, E) and responses ``y`` (k, V)."""
        if self.net is None:
            raise ValueError("InContextEncoder needs a meta-trained `net` (neuroattn.models.metatrain.train_prior)")
        X, Y = _check_context(X, y, self.min_context, self.net.embed_dim)
        self.coef_, self.intercept_ = infer_encoders(self.net, X, Y, self.voxel_batch, resolve_device(self.device))
        self.n_features_in_ = X.shape[1]
        self.single_output_ = np.ndim(y) == 1
        return self

    def predict(self, X):
        """Predicted responses (n, V) (or (n,) when fitted on one voxel)."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected embeddings of shape (n, {self.n_features_in_}), got {X.shape}")
        pred = X @ self.coef_.T + self.intercept_
        return pred[:, 0] if self.single_output_ else pred


class InContextDecoder(BaseEstimator):
    """Decode image embeddings from a new subject's responses, conditioned on its context.

    ``fit(X, y)`` infers the voxels' encoders from the context (stage 1); ``predict(Y)`` decodes
    responses ``Y`` (n, V) into unit-norm embeddings (stage 2); ``score(Y, X)`` is top-1 retrieval of
    each row among the rows of ``X``.

    Parameters
    ----------
    encoder_net : ContextEncoderNet
    decoder_net : ImageDecoderNet
    min_context : int
    max_voxels : int
        Voxel tokens per stage-2 pass (more voxels are split into chunks, outputs averaged).
    voxel_batch : int
    device : {"auto", "cpu", "cuda"}
    seed : int
        Seeds the voxel chunking.

    Attributes
    ----------
    coef_, intercept_ : stage-1 encoders of the context subject.
    n_features_in_ : int
    """

    def __init__(self, encoder_net=None, decoder_net=None, min_context: int = 10, max_voxels: int = 512,
                 voxel_batch: int = 1024, device: str = "cpu", seed: int = 0):
        self.encoder_net = encoder_net
        self.decoder_net = decoder_net
        self.min_context = min_context
        self.max_voxels = max_voxels
        self.voxel_batch = voxel_batch
        self.device = device
        self.seed = seed

    def fit(self, X, y):
        """Infer encoders from context embeddings ``X`` (k, E) and responses ``y`` (k, V)."""
        if self.decoder_net is None:
            raise ValueError("InContextDecoder needs a meta-trained `decoder_net`")
        enc = InContextEncoder(self.encoder_net, self.min_context, self.voxel_batch, self.device).fit(X, y)
        self.coef_, self.intercept_ = enc.coef_, enc.intercept_
        self.n_features_in_ = enc.n_features_in_
        return self

    def predict(self, Y):
        """Decoded unit-norm embeddings (n, E) of responses ``Y`` (n, V)."""
        Y = np.asarray(Y, dtype=np.float32)
        if Y.ndim != 2 or Y.shape[1] != self.coef_.shape[0]:
            raise ValueError(f"expected responses of shape (n, {self.coef_.shape[0]}), got {Y.shape}")
        return decode_images(self.decoder_net, self.coef_, self.intercept_, Y, self.max_voxels,
                             device=resolve_device(self.device), seed=self.seed)

    def score(self, Y, X):
        """Top-1 identification of each response row among the embeddings ``X`` (row i is its truth)."""
        names = np.arange(len(X)).astype(str)
        return retrieve(self.predict(Y), np.asarray(X), names, names, ks=(1,))["top1"]
