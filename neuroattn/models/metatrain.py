"""Meta-training and leave-one-subject-out evaluation of the in-context encoder and decoder.

Phase 1 (:func:`train_prior`) uses no brain data: random linear voxels on the real stimulus
embeddings of the training images (weights drawn with a random spectral decay over the whitened
embedding dimensions, a random signal-to-noise ratio, a small bias), with context sizes drawn
log-uniformly. One prior serves every LOSO fold.

Phase 2 (:func:`train_real`) continues on the training subjects' real voxels (train images only;
the held-out subject and the shared test images never enter), once per held-out subject.

:func:`evaluate_subject` then gives the held-out subject ``k`` context images from its training
images, infers its encoders (stage 1), decodes the shared test images (stage 2), and retrieves
each among all test images; ``ridge_context`` (himalaya ``RidgeCV`` encoders and a ridge map from
voxels to embedding, both fitted on the same ``k`` images) is evaluated alongside.

Task samplers and the episodic training loops live in :mod:`neuroattn.models.metalearn`; reading
files, checkpoints and leaderboard rows in :mod:`neuroattn.stages.incontext`. Arrays only here.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..utils import resolve_device, seed_everything
from .incontext import ContextEncoderNet, ImageDecoderNet, decode_images, infer_encoders, retrieve
from .metalearn import Pool, synthetic_pool, synthetic_voxels, train_decoder, train_encoder  # noqa: F401

log = logging.getLogger("neuroattn")


def resolve_config(cfg: dict | None) -> dict:
    """The ``incontext`` config section laid over config/config.yaml's (the only source of defaults)."""
    from ..config import with_defaults

    return with_defaults(cfg, "incontext")


def build_nets(embed_dim: int, cfg: dict) -> tuple[ContextEncoderNet, ImageDecoderNet]:
    """Fresh stage-1 and stage-2 networks sized by ``cfg['encoder']`` / ``cfg['decoder']``."""
    return ContextEncoderNet(embed_dim, **cfg["encoder"]), ImageDecoderNet(embed_dim, **cfg["decoder"])


def train_prior(X_train: np.ndarray, cfg: dict, seed: int = 0, device: str = "cpu",
                n_pool_voxels: int = 1024):
    """Phase 1: meta-train both stages on synthetic voxels over the embeddings ``X_train``.

    Returns ``(encoder_net, decoder_net, history)``.
    """
    cfg = resolve_config(cfg)
    seed_everything(seed)
    device = resolve_device(device)
    enc, dec = build_nets(X_train.shape[1], cfg)
    rng = np.random.default_rng(seed)
    pools = [synthetic_pool(rng, X_train, n_pool_voxels) for _ in range(4)]
    steps = cfg["synthetic_steps"]
    h1 = train_encoder(enc, pools, cfg, steps, seed, device)
    h2 = train_decoder(dec, enc, pools, cfg, steps, seed + 1, device)
    return enc.cpu(), dec.cpu(), {"stage1": h1, "stage2": h2}


def train_real(enc, dec, pools: list[Pool], cfg: dict, seed: int = 0, device: str = "cpu"):
    """Phase 2: continue meta-training on real voxels (one :class:`Pool` per training subject).

    A stage-1 network built with ``population_prior`` first gets the Gaussian prior of the training
    subjects' voxel encoders (:func:`population_encoders`): what voxels of brains look like, whatever
    their position, so it needs no anatomical correspondence.
    """
    cfg = resolve_config(cfg)
    seed_everything(seed)
    device = resolve_device(device)
    steps = cfg["real_steps"]
    if steps == 0:
        return enc, dec, {"stage1": [], "stage2": []}
    lr = cfg["lr"] * 0.5
    if getattr(enc, "population_prior", False):
        enc.set_population_prior(population_encoders(pools))
    h1 = train_encoder(enc, pools, cfg, steps, seed, device, lr=lr)
    h2 = train_decoder(dec, enc, pools, cfg, steps, seed + 1, device, lr=lr)
    return enc.cpu(), dec.cpu(), {"stage1": h1, "stage2": h2}


def population_encoders(pools, max_voxels: int = 4096, seed: int = 0) -> np.ndarray:
    """Encoders (n, E) of standardized voxels of every pool, each fitted on all of its images.

    Bayesian ridge (:func:`~neuroattn.models.incontext_nets.bayes_ridge_path`: penalties averaged
    by their evidence); at most ``max_voxels`` voxels in all, drawn evenly over the pools.
    """
    import torch

    from .incontext import bayes_ridge_path
    from .incontext_nets import _lambda_grid

    rng = np.random.default_rng(seed)
    per = max(1, max_voxels // max(len(pools), 1))
    out = []
    for pool in pools:
        vox = rng.choice(pool.Y.shape[1], size=min(per, pool.Y.shape[1]), replace=False)
        y = torch.as_tensor(pool.Y[:, vox].T, dtype=torch.float32)
        y = (y - y.mean(1, keepdim=True)) / y.std(1, keepdim=True).clamp_min(1e-6)
        W, _, ev, _ = bayes_ridge_path(torch.as_tensor(pool.X, dtype=torch.float32), y, _lambda_grid(9), (0.0, 1.0, 2.0))
        out.append((torch.softmax(ev, -1).unsqueeze(-1) * W).sum(1).numpy())
    return np.concatenate(out)


# ----------------------------------------------------------------------------- subjects and folds
@dataclass
class SubjectData:
    """One subject's embeddings and responses, split into train and shared test images."""

    subject: str
    train_images: np.ndarray
    X_train: np.ndarray
    Y_train: np.ndarray
    test_images: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    noise_ceiling: np.ndarray = field(default=None)


def loso_training_pools(subjects: dict, held_out: str) -> list[Pool]:
    """Phase-2 pools for a fold: training images of every subject except ``held_out``.

    Shared test images and the held-out subject never enter.
    """
    if held_out not in subjects:
        raise KeyError(f"held-out subject sub-{held_out} is not among {sorted(subjects)}")
    others = [s for s in sorted(subjects) if s != held_out]
    if not others:
        raise ValueError(f"leave-one-subject-out needs at least 2 subjects, got only sub-{held_out}")
    return [Pool(X=subjects[s].X_train, Y=subjects[s].Y_train, name=s) for s in others]


# ----------------------------------------------------------------------------- evaluation
def _pearson(y, p):
    y = y - y.mean(0)
    p = p - p.mean(0)
    den = np.sqrt((y ** 2).sum(0) * (p ** 2).sum(0))
    return np.where(den > 0, (y * p).sum(0) / np.where(den > 0, den, 1), np.nan)


def ridge_context(X_c, Y_c, X_test, Y_test, alphas, seed=0):
    """The ``ridge_context`` baseline on one context.

    Returns ``(Y_pred (n, V), decoded (n, E))``: himalaya ``RidgeCV`` encoders fitted on the context
    predict the test responses; a ``RidgeCV`` map from voxels to embedding fitted on the same
    context decodes them.
    """
    from sklearn.model_selection import KFold

    from .ridge import ridge_cv

    cv = KFold(n_splits=min(5, len(X_c)), shuffle=True, random_state=seed)
    # primal ridge, or its linear-kernel (dual) form when samples < features
    enc, dec = ridge_cv(X_c, Y_c, alphas, cv), ridge_cv(Y_c, X_c, alphas, cv)
    return np.asarray(enc.predict(X_test)), np.asarray(dec.predict(Y_test))


def context_order(n_train: int, seed: int) -> np.ndarray:
    """Seeded order of a subject's training images; context k is its first k (nested over k)."""
    return np.random.default_rng(seed).permutation(n_train)


def evaluate_subject(enc, dec, data: SubjectData, candidates: np.ndarray, candidate_names, cfg: dict,
                     seed: int = 0, device: str = "cpu") -> dict:
    """Evaluate both methods on a held-out subject for every context size that its data allows.

    Returns a dict ``{(method, k): result}`` with ``top1``, ``top5``, ``cosine``, ``n_candidates``,
    ``ranking``, ``decoded`` (n, E), ``r`` (V,) stage-1 Pearson r on the test images and ``r2``
    (V,) their explained variance ``1 - SSE/SST``.
    """
    cfg = resolve_config(cfg)
    device = resolve_device(device)
    ks = [k for k in cfg["context_sizes"] if k <= len(data.X_train)]
    if not ks:
        raise ValueError(f"sub-{data.subject}: {len(data.X_train)} training images, fewer than every "
                         f"context size {cfg['context_sizes']}")
    order = context_order(len(data.X_train), seed)
    out = {}
    sst = ((data.Y_test - data.Y_test.mean(0)) ** 2).sum(0)
    for k in ks:
        if k < cfg["min_context"]:
            raise ValueError(f"context size k={k} is below the minimum of {cfg['min_context']} images")
        c = order[:k]
        X_c, Y_c = data.X_train[c], data.Y_train[c]
        W, b, nv = infer_encoders(enc, X_c, Y_c, device=device, return_noise=True)
        preds = {"incontext": (data.X_test @ W.T + b,
                               decode_images(dec, W, b, data.Y_test, cfg["max_voxels"], device=device, seed=seed,
                                             noise=nv))}
        preds["ridge_context"] = ridge_context(X_c, Y_c, data.X_test, data.Y_test, cfg["ridge_alphas"], seed)
        for method, (Y_pred, decoded) in preds.items():
            res = retrieve(decoded, candidates, candidate_names, data.test_images)
            res["decoded"] = decoded
            res["r"] = _pearson(data.Y_test, Y_pred)
            res["r2"] = 1 - ((data.Y_test - Y_pred) ** 2).sum(0) / np.where(sst > 0, sst, np.nan)
            out[(method, k)] = res
            log.info("sub-%s %s k=%d: top1 %.3f top5 %.3f cos %.3f median r %.3f (n=%d)", data.subject, method,
                     k, res["top1"], res["top5"], res["cosine"], np.nanmedian(res["r"]), res["n_candidates"])
    return out
