"""Episodic meta-training of the in-context encoder (stage 1) and decoder (stage 2).

Task samplers draw a fresh task per step from a :class:`Pool` of images and voxel responses
(synthetic linear voxels for the prior, real training subjects for phase 2); the two loops
:func:`train_encoder` and :func:`train_decoder` fit the networks on them. Arrays only: no file I/O.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..loop import make_optimizer, train_loop
from .incontext import ContextEncoderNet, ImageDecoderNet, decoding_loss, infer_encoders

log = logging.getLogger("neuroattn")


# ----------------------------------------------------------------------------- task samplers
def synthetic_voxels(rng: np.random.Generator, X: np.ndarray, n_voxels: int):
    """Random linear voxels on embeddings ``X`` (n, E): responses of unit variance over ``X``.

    Returns ``Y`` (n, V) noisy responses, ``S`` (n, V) noiseless signal, ``W`` (V, E), ``b`` (V,).
    """
    n, E = X.shape
    decay = rng.uniform(0.0, 1.5, size=(n_voxels, 1))
    W = rng.standard_normal((n_voxels, E)) * np.arange(1, E + 1)[None, :] ** -decay
    raw = X @ W.T
    r2 = rng.uniform(0.05, 0.9, size=n_voxels)       # fraction of response variance that is signal
    gain = np.sqrt(r2) / np.maximum(raw.std(0), 1e-8)
    W = W * gain[:, None]
    b = 0.1 * rng.standard_normal(n_voxels) - raw.mean(0) * gain
    S = X @ W.T + b
    Y = S + rng.standard_normal((n, n_voxels)) * np.sqrt(1 - r2)
    return Y.astype(np.float32), S.astype(np.float32), W.astype(np.float32), b.astype(np.float32)


def _draw_k(rng, cfg, n_available):
    lo, hi = cfg["context_range"]
    hi = min(hi, n_available)
    lo = min(max(lo, cfg["min_context"]), hi)
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


@dataclass
class Pool:
    """Images (embeddings ``X`` (n, E)) and voxel responses ``Y`` (n, V) to draw tasks from.

    ``S`` is the noiseless signal (synthetic pools only), ``W``/``b`` the true encoders.
    """

    X: np.ndarray
    Y: np.ndarray
    S: np.ndarray | None = None
    name: str = ""


def synthetic_pool(rng, X, n_voxels) -> Pool:
    """A :class:`Pool` of ``n_voxels`` random linear voxels (:func:`synthetic_voxels`) on ``X``."""
    Y, S, W, b = synthetic_voxels(rng, X, n_voxels)
    return Pool(X=X, Y=Y, S=S, name="synthetic")


def _encoder_task(rng, pool: Pool, cfg, batch):
    n = len(pool.X)
    q = min(cfg["n_query"], n // 3)
    k = _draw_k(rng, cfg, n - q)
    img = rng.permutation(n)[: k + q]
    vox = rng.choice(pool.Y.shape[1], size=min(batch, pool.Y.shape[1]), replace=False)
    target = pool.S if pool.S is not None else pool.Y
    c, t = img[:k], img[k:]
    return pool.X[c], pool.Y[np.ix_(c, vox)].T, pool.X[t], target[np.ix_(t, vox)].T


def decoder_bank(rng, enc, pools, cfg, n_contexts: int = 3, max_voxels: int = 1024, device="cpu"):
    """Stage-1 encoders inferred once per (pool, random context) for stage-2 training.

    Stage 1 is frozen while stage 2 trains, so its encoders are computed once per context
    (on at most ``max_voxels`` voxels of each pool) instead of once per step.
    """
    bank = []
    for pool in pools:
        vox = rng.choice(pool.Y.shape[1], size=min(max_voxels, pool.Y.shape[1]), replace=False)
        for _ in range(n_contexts):
            k = _draw_k(rng, cfg, len(pool.X) - 8)
            perm = rng.permutation(len(pool.X))
            W, b, nv = infer_encoders(enc, pool.X[perm[:k]], pool.Y[np.ix_(perm[:k], vox)], device=device,
                                      return_noise=True)
            bank.append((pool, vox, perm[k:], W, b, nv))
    return bank


def _decoder_task(rng, entry, cfg, batch):
    pool, vox, free, W, b, nv = entry
    sub = rng.choice(len(vox), size=min(cfg["max_voxels"], len(vox)), replace=False)
    t = rng.choice(free, size=min(batch, len(free)), replace=False)
    return W[sub], b[sub], pool.Y[np.ix_(t, vox[sub])], pool.X[t], nv[sub]


# ----------------------------------------------------------------------------- training loops
def _meta_fit(net, tasks, task_loss, on_step, lr, steps: int, device) -> None:
    """Both stages' schedule on :func:`neuroattn.loop.train_loop`: one task per step, AdamW
    (weight decay 1e-4), a linear warmup over 5 % of the steps overlapping a cosine decay,
    gradients clipped at 1.0."""
    opt = make_optimizer("adamw", net.parameters(), lr, 1e-4)
    train_loop(net, lambda epoch: tasks(), task_loss, opt, lr=lr, epochs=1, steps_per_epoch=steps,
               schedule="cosine", warmup_steps=max(1, steps // 20), warmup="overlap", grad_clip=1.0,
               device=device, on_step=on_step)


def _logger(losses, steps: int, what: str, stage: int):
    def on_step(epoch, step, batch, loss, extra):
        losses.append(loss.item())
        if step % max(1, steps // 5) == 0:
            log.info("stage %d step %d/%d: %s %.4f", stage, step, steps, what, np.mean(losses[-20:]))
    return on_step


def train_encoder(net: ContextEncoderNet, pools, cfg, steps: int, seed: int, device="cpu", lr=None):
    """Meta-train stage 1 for ``steps`` episodes (MSE of query predictions); returns the losses."""
    rng = np.random.default_rng(seed)
    net.to(device)

    def tasks():
        for _ in range(steps):
            pool = pools[rng.integers(len(pools))]
            yield tuple(torch.as_tensor(a, dtype=torch.float32, device=device)
                        for a in _encoder_task(rng, pool, cfg, cfg["batch_size"]))

    def task_loss(task):
        xc, yc, xq, yq = task
        w, b = net(xc, yc)
        return F.mse_loss(w @ xq.T + b[:, None], yq)

    losses: list = []
    _meta_fit(net, tasks, task_loss, _logger(losses, steps, "mse", 1), lr or cfg["lr"], steps, device)
    net.eval()
    return losses


def train_decoder(dec: ImageDecoderNet, enc: ContextEncoderNet, pools, cfg, steps: int, seed: int,
                  device="cpu", lr=None):
    """Meta-train stage 2 on stage-1 encoders inferred from a context (cosine + InfoNCE)."""
    rng = np.random.default_rng(seed)
    bank = decoder_bank(rng, enc, pools, cfg, device=device)
    dec.to(device)
    t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)  # noqa: E731

    def tasks():
        for _ in range(steps):
            W, b, beta, target, nv = _decoder_task(rng, bank[rng.integers(len(bank))], cfg, cfg["batch_size"])
            yield t(W), t(b), t(beta), t(target), t(nv)

    def task_loss(task):
        W, b, beta, target, nv = task
        return decoding_loss(dec(W, b, beta, nv), target)

    losses: list = []
    _meta_fit(dec, tasks, task_loss, _logger(losses, steps, "loss", 2), lr or cfg["lr"], steps, device)
    dec.eval()
    return losses
