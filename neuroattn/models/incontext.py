"""In-context cross-subject encoder (stage 1) and decoder (stage 2), BraInCoRL / BrainCoDec style.

A new subject is described only by a few (image, response) pairs, its *context*; nothing is
fine-tuned on it.

Stage 1, :class:`ContextEncoderNet` (wrapped by :class:`InContextEncoder`): for one voxel, a
transformer reads context tokens ``[x_i ; beta_i]`` (unit-norm image embedding, the voxel's response
to that image), with no positional encoding (the context is a set), register tokens in front, and
attention logits scaled by ``log(n_tokens)`` so that attention stays sharp as the context grows. The
first register is read out as the voxel's linear encoder ``(w, b)``: ``beta(x) = w . x + b``.
Voxels are independent samples, batched.

With the CPU default ridge head, stage 1 reads voxels standardized over the context, mixes closed-form
ridge solutions by their evidence plus learned logits, and can hold a *population prior*, a Gaussian
fitted to the meta-training subjects' voxel encoders (no anatomy enters: a voxel is a token, not
a position); it also returns each voxel's noise variance.

Stage 2, :class:`ImageDecoderNet` (wrapped by :class:`InContextDecoder`): for one image, a
transformer reads voxel tokens ``[w_k ; b_k ; beta_k]`` (each voxel's stage-1 encoder and its response
to the image) with registers in front; the first registers go through an MLP to the predicted image
embedding. With the ridge head, voxel sets larger than ``max_voxels`` are read in chunks whose
normal equations are summed and inverted once (every voxel in one solution), each voxel weighted by
a learned factor over its stage-1 noise variance. Trained with ``1 - cos + 0.1 * symmetric InfoNCE (tau 0.2)`` (:func:`decoding_loss`);
images are identified by cosine nearest neighbour among candidate embeddings (:func:`retrieve`).

Image embeddings live in an :class:`EmbeddingSpace`: a backbone's pooled features, PCA-whitened on
the training images and scaled to unit norm (a small ``E`` keeps stage 1's output and stage 2's
tokens small on CPUs). Networks: :mod:`neuroattn.models.incontext_nets`; meta-training:
:mod:`neuroattn.models.metalearn` and :mod:`neuroattn.models.metatrain`.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.decomposition import PCA

from ..utils import resolve_device
from .incontext_nets import (ContextEncoderNet, ImageDecoderNet, LogScaledBlock, ResidualMLP,  # noqa: F401 (re-export)
                             SwiGLU, bayes_ridge_path, combine_stats, decoding_loss, ridge_path)


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
    ``ranking`` (n, m) candidate indices sorted by similarity, ``rank`` (n,) the 1-based rank of
    each true image among the candidates.
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
    # 1-based rank of each true image, ties in its favour (as top-k counts hits): the report's "rank r of m"
    out["rank"] = np.asarray(topk_retrieval(pred, candidates, target, k=1).raw, dtype=int) + 1
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
def infer_encoders(net: ContextEncoderNet, X, Y, voxel_batch: int = 1024, device: str = "cpu",
                   return_noise: bool = False):
    """Run stage 1 on a context: X (k, E), Y (k, V) -> (W (V, E), b (V,)) as numpy (and with
    ``return_noise`` the voxels' noise variances (V,))."""
    net = net.to(device).eval()
    x = torch.as_tensor(X, dtype=torch.float32, device=device)
    Yt = torch.as_tensor(np.ascontiguousarray(np.asarray(Y, dtype=np.float32).T), device=device)
    parts = []
    for s in range(0, Yt.shape[0], voxel_batch):
        parts.append([t.cpu() for t in net(x, Yt[s:s + voxel_batch], return_noise=True)])
    out = [torch.cat(p).numpy() for p in zip(*parts)]
    return tuple(out) if return_noise else (out[0], out[1])


def voxel_chunks(n_voxels: int, max_voxels: int, seed: int = 0) -> list[np.ndarray]:
    """Split voxels into random, near-equal chunks of at most ``max_voxels`` (stage 2's token sets)."""
    perm = np.random.default_rng(seed).permutation(n_voxels)
    return np.array_split(perm, max(1, math.ceil(n_voxels / max_voxels)))


@torch.no_grad()
def decode_images(net: ImageDecoderNet, W, b, beta, max_voxels: int = 512, image_batch: int = 64,
                  device: str = "cpu", seed: int = 0, noise=None) -> np.ndarray:
    """Run stage 2: encoders ``W`` (V, E), ``b`` (V,), responses ``beta`` (n, V) -> (n, E) unit-norm.

    With more voxels than ``max_voxels``, the voxels are split into random chunks of tokens for the
    transformer; their statistics (:meth:`ImageDecoderNet.stats`: weighted normal equations and
    readouts) are summed and inverted once, so every voxel enters one joint solution. ``noise``
    (V,): the voxels' noise variances from stage 1 (weights the voxels), or None.
    """
    net = net.to(device).eval()
    W = torch.as_tensor(W, dtype=torch.float32, device=device)
    b = torch.as_tensor(b, dtype=torch.float32, device=device)
    beta = torch.as_tensor(np.asarray(beta, dtype=np.float32), device=device)
    nv = None if noise is None else torch.as_tensor(np.asarray(noise, dtype=np.float32), device=device)
    chunks = [torch.as_tensor(idx, device=device) for idx in voxel_chunks(W.shape[0], max_voxels, seed)]
    out = []
    for s in range(0, beta.shape[0], image_batch):
        bt = beta[s:s + image_batch]
        out.append(net.solve(combine_stats(net.stats(W[i], b[i], bt[:, i], None if nv is None else nv[i]) for i in chunks)))
    return F.normalize(torch.cat(out), dim=-1).cpu().numpy()


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
    noise_ : (n_voxels,) ndarray, stage 1's noise variances (weigh the voxels in stage 2).
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
        X, Y = _check_context(X, y, self.min_context, self.encoder_net.embed_dim)
        self.coef_, self.intercept_, self.noise_ = infer_encoders(self.encoder_net, X, Y, self.voxel_batch,
                                                                  resolve_device(self.device), return_noise=True)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, Y):
        """Decoded unit-norm embeddings (n, E) of responses ``Y`` (n, V)."""
        Y = np.asarray(Y, dtype=np.float32)
        if Y.ndim != 2 or Y.shape[1] != self.coef_.shape[0]:
            raise ValueError(f"expected responses of shape (n, {self.coef_.shape[0]}), got {Y.shape}")
        return decode_images(self.decoder_net, self.coef_, self.intercept_, Y, self.max_voxels,
                             device=resolve_device(self.device), seed=self.seed, noise=self.noise_)

    def score(self, Y, X):
        """Top-1 identification of each response row among the embeddings ``X`` (row i is its truth)."""
        names = np.arange(len(X)).astype(str)
        return retrieve(self.predict(Y), np.asarray(X), names, names, ks=(1,))["top1"]
