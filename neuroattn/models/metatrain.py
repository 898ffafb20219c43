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

Training is episodic (a fresh task per step), so it has its own small loop rather than
:func:`neuroattn.train.fit_torch`, which iterates over a fixed data set.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..utils import resolve_device, seed_everything
from .incontext import ContextEncoderNet, EmbeddingSpace, ImageDecoderNet, decode_images, infer_encoders, retrieve
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
    """Phase 2: continue meta-training on real voxels (one :class:`Pool` per training subject)."""
    cfg = resolve_config(cfg)
    seed_everything(seed)
    device = resolve_device(device)
    steps = cfg["real_steps"]
    if steps == 0:
        return enc, dec, {"stage1": [], "stage2": []}
    lr = cfg["lr"] * 0.5
    h1 = train_encoder(enc, pools, cfg, steps, seed, device, lr=lr)
    h2 = train_decoder(dec, enc, pools, cfg, steps, seed + 1, device, lr=lr)
    return enc.cpu(), dec.cpu(), {"stage1": h1, "stage2": h2}


# ----------------------------------------------------------------------------- checkpoints
def save_prior(path, enc, dec, emb: EmbeddingSpace, cfg: dict, meta: dict | None = None) -> None:
    """Save both networks, the embedding space and the config (torch tensors and plain types only)."""
    from ..utils import atomic_path

    state = {"encoder": enc.state_dict(), "decoder": dec.state_dict(), "embedding": emb.state_dict(),
             "config": resolve_config(cfg), "meta": dict(meta or {})}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_prior(path):
    """Load a prior saved by :func:`save_prior`: ``(enc, dec, emb, cfg, meta)``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - name the file whatever went wrong
        raise ValueError(f"{path}: not a readable in-context prior ({exc})") from exc
    emb = EmbeddingSpace.from_state(state["embedding"])
    enc, dec = build_nets(emb.dim, state["config"])
    enc.load_state_dict(state["encoder"])
    dec.load_state_dict(state["decoder"])
    return enc.eval(), dec.eval(), emb, state["config"], state["meta"]


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


def subject_data(betas, embed: dict, train_images, test_images, noise_ceiling=None) -> SubjectData:
    """Gather a subject's train / test rows from a :class:`~neuroattn.data.betas.Betas`.

    ``embed`` maps image name -> embedding. Raises naming the subject when it saw none of the test
    (shared) images or no training image.
    """
    seen = set(betas.images)
    tr = np.array([im for im in np.asarray(train_images).astype(str) if im in seen])
    te = np.array([im for im in np.asarray(test_images).astype(str) if im in seen])
    if len(te) == 0:
        raise ValueError(f"sub-{betas.subject}: saw none of the {len(test_images)} shared test images; "
                         "cross-subject decoding needs images every subject saw")
    if len(tr) == 0:
        raise ValueError(f"sub-{betas.subject}: has no training images")
    missing = [im for im in np.concatenate([tr, te]) if im not in embed]
    if missing:
        raise KeyError(f"no embedding for image(s) {missing[:5]} (sub-{betas.subject})")
    return SubjectData(subject=str(betas.subject), train_images=tr,
                       X_train=np.stack([embed[i] for i in tr]), Y_train=betas.select(tr),
                       test_images=te, X_test=np.stack([embed[i] for i in te]), Y_test=betas.select(te),
                       noise_ceiling=noise_ceiling)


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
        W, b = infer_encoders(enc, X_c, Y_c, device=device)
        preds = {"incontext": (data.X_test @ W.T + b,
                               decode_images(dec, W, b, data.Y_test, cfg["max_voxels"], device=device, seed=seed))}
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


# ----------------------------------------------------------------------------- workflow entry points
def _embedding_lookup(features_path, layer, train_images, test_images, embed_dim, emb=None):
    """Embed every split image (the space fitted on the training images unless given); name -> embedding."""
    from ..features import FeatureStore

    store = FeatureStore(features_path)
    images = np.concatenate([np.asarray(train_images).astype(str), np.asarray(test_images).astype(str)])
    feats = store.pooled(layer, images)
    if emb is None:
        emb = EmbeddingSpace(embed_dim).fit(feats[: len(train_images)])
    elif feats.shape[1] != emb.mean_.shape[0]:
        raise ValueError(f"{features_path}: layer {layer!r} has {feats.shape[1]} channels, the prior's "
                         f"embedding space expects {emb.mean_.shape[0]}")
    return emb, dict(zip(images, emb.transform(feats)))


def run_prior(features_path, split_path, out_path, cfg: dict, layer: str, seed: int = 0, device: str = "cpu"):
    """Rule ``incontext_prior``: phase-1 meta-training on synthetic voxels over the training images."""
    from ..data.splits import read_split

    cfg = resolve_config(cfg)
    train, test = read_split(split_path)
    if len(train) < cfg["min_context"] + 8:
        raise ValueError(f"{split_path}: {len(train)} training images, too few for a synthetic prior "
                         f"(need at least {cfg['min_context'] + 8})")
    emb, lookup = _embedding_lookup(features_path, layer, train, test, cfg["embed_dim"])
    X = np.stack([lookup[i] for i in train])
    enc, dec, hist = train_prior(X, cfg, seed=seed, device=device)
    save_prior(out_path, enc, dec, emb, cfg, {"layer": layer, "features": str(features_path),
                                              "final_stage1_mse": float(np.mean(hist["stage1"][-20:] or [np.nan])),
                                              "final_stage2_loss": float(np.mean(hist["stage2"][-20:] or [np.nan]))})


def score_rows(subject: str, results: dict, noise_ceiling: np.ndarray) -> list[dict]:
    """Leaderboard rows (``incontext_k<k>``, ``ridge_context_k<k>``; top1, top5, cosine, noise_normalized_r2)."""
    from ..leaderboard import score_row
    from ..metrics import noise_normalized_r2

    rows = []
    nc = np.asarray(noise_ceiling, dtype=np.float64)
    ceil = float(np.nanmedian(nc)) if np.isfinite(nc).any() else None
    for (method, k), res in sorted(results.items()):
        model = f"{method}_k{k}"
        n_c = res["n_candidates"]
        rows.append(score_row(subject, "fmri", model, "all", "top1", res["top1"], error=res["top1_error"], n=n_c))
        rows.append(score_row(subject, "fmri", model, "all", "top5", res["top5"], error=res["top5_error"], n=n_c))
        rows.append(score_row(subject, "fmri", model, "all", "cosine", res["cosine"], n=len(res["decoded"])))
        nnr2 = noise_normalized_r2(res["r"], nc)
        if np.isfinite(nnr2).any():
            rows.append(score_row(subject, "fmri", model, "all", "noise_normalized_r2", float(np.nanmedian(nnr2)),
                                  ceiling=ceil, n=int(np.isfinite(nnr2).sum())))
    return rows


def write_predictions(path, data: SubjectData, results: dict, candidate_names, train_subjects, cfg: dict) -> None:
    """The pred HDF5: decoded embeddings, retrieval rankings and accuracy-vs-k curves of both methods.

    Layout: attrs ``subject``, ``train_subjects``, ``default_k``, ``n_candidates``; datasets
    ``test_images``, ``candidate_images``, ``true_embedding`` (n, E), ``k`` (n_k,);
    ``curves/<method>/{top1,top5,cosine,median_r,median_r2}`` (n_k,);
    ``decoded/<method>_k<k>`` (n, E); ``top5/<method>_k<k>`` (n, 5) candidate indices;
    ``stage1_r/<method>_k<k>`` (V,) per-voxel Pearson r on the test images.
    """
    import h5py

    from ..utils import atomic_path

    str_dt = h5py.string_dtype("utf-8")
    ks = sorted({k for _, k in results})
    methods = sorted({m for m, _ in results})
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["subject"] = data.subject
        f.attrs["train_subjects"] = ",".join(train_subjects)
        f.attrs["default_k"] = int(cfg["default_k"])
        f.attrs["n_candidates"] = len(candidate_names)
        f.create_dataset("test_images", data=data.test_images.astype(object), dtype=str_dt)
        f.create_dataset("candidate_images", data=np.asarray(candidate_names).astype(object), dtype=str_dt)
        f.create_dataset("true_embedding", data=data.X_test.astype(np.float32))
        f.create_dataset("k", data=np.asarray(ks, dtype=np.int32))
        for m in methods:
            g = f.create_group(f"curves/{m}")
            for key in ("top1", "top5", "cosine"):
                g.create_dataset(key, data=np.array([results[(m, k)][key] for k in ks], dtype=np.float32))
            g.create_dataset("median_r", data=np.array([np.nanmedian(results[(m, k)]["r"]) for k in ks], np.float32))
            g.create_dataset("median_r2", data=np.array([np.nanmedian(results[(m, k)]["r2"]) for k in ks], np.float32))
            for k in ks:
                res = results[(m, k)]
                f.create_dataset(f"decoded/{m}_k{k}", data=res["decoded"].astype(np.float32))
                f.create_dataset(f"top5/{m}_k{k}", data=res["ranking"][:, :5].astype(np.int32))
                f.create_dataset(f"stage1_r/{m}_k{k}", data=np.asarray(res["r"], dtype=np.float32))


def aligned_rows(held_out: str, betas: dict, subjects: dict, candidates, candidate_names, alphas) -> list[dict]:
    """Rows of the anatomical-alignment baseline (``aligned_ridge``: top1, top5, noise_normalized_r2).

    Empty when the subjects are not on one grid (then the baseline does not apply).
    """
    from ..leaderboard import score_row
    from ..metrics import noise_normalized_r2
    from .alignment import aligned_ridge_decoding

    data = subjects[held_out]
    pos = {im: i for i, im in enumerate(np.asarray(candidate_names).astype(str))}
    test_rows = np.array([pos[im] for im in data.test_images])
    train = [(betas[s], d.X_train, d.Y_train) for s, d in sorted(subjects.items()) if s != held_out]
    res = aligned_ridge_decoding(train, (betas[held_out], data.Y_test), candidates, test_rows, alphas)
    if res is None:
        return []
    n_c = len(candidates)
    rows = [score_row(held_out, "fmri", "aligned_ridge", "all", m, res[m].value, error=res[m].error, n=n_c)
            for m in ("top1", "top5")]
    nnr2 = noise_normalized_r2(res["r"], np.asarray(data.noise_ceiling, dtype=np.float64))
    if np.isfinite(nnr2).any():
        nc = np.asarray(data.noise_ceiling, dtype=np.float64)
        rows.append(score_row(held_out, "fmri", "aligned_ridge", "all", "noise_normalized_r2",
                              float(np.nanmedian(nnr2)), ceiling=float(np.nanmedian(nc)),
                              n=int(np.isfinite(nnr2).sum())))
    log.info("sub-%s aligned_ridge: top1 %.3f, top5 %.3f (%d matched voxels)", held_out, res["top1"].value,
             res["top5"].value, res["n_matched"])
    return rows


def run_loso(prior_path, features_path, split_path, betas_paths, held_out: str, pred_path, scores_path,
             cfg: dict, seed: int = 0, device: str = "cpu"):
    """Rule ``incontext_loso``: phase 2 on the other subjects, then evaluate on ``held_out``."""
    from ..data.betas import Betas
    from ..data.splits import read_split
    from ..leaderboard import write_scores
    from ..metrics.commitment import subject_noise_ceiling

    enc, dec, emb, prior_cfg, meta = load_prior(prior_path)
    cfg = resolve_config({**prior_cfg, **(cfg or {})})
    train, test = read_split(split_path)
    _, lookup = _embedding_lookup(features_path, meta.get("layer", cfg.get("layer")), train, test,
                                  cfg["embed_dim"], emb=emb)
    subjects, all_betas = {}, {}
    for p in betas_paths:
        b = Betas.read(p)
        all_betas[b.subject] = b
        nc = subject_noise_ceiling(b, [im for im in test if im in set(b.images)]) if b.subject == held_out else None
        subjects[b.subject] = subject_data(b, lookup, train, test, nc)
    pools = loso_training_pools(subjects, held_out)
    enc, dec, _ = train_real(enc, dec, pools, cfg, seed=seed, device=device)
    data = subjects[held_out]
    candidates = np.stack([lookup[i] for i in test])
    results = evaluate_subject(enc, dec, data, candidates, test, cfg, seed=seed, device=device)
    write_predictions(pred_path, data, results, test, [p.name for p in pools], cfg)
    rows = score_rows(held_out, results, data.noise_ceiling)
    rows += aligned_rows(held_out, all_betas, subjects, candidates, test, cfg["aligned_ridge_alphas"])
    write_scores(scores_path, rows)
    return results
