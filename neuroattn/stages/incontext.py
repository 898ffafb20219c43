"""Stages of the in-context rule family: the synthetic prior (:func:`incontext_prior`) and the
leave-one-subject-out fold of one held-out subject (:func:`incontext_loso`)."""
from __future__ import annotations

import logging

import numpy as np

from . import register

# torch and the in-context models are imported inside the functions: the workflow's other stages
# load this module (every stage registers on import) and should not pay torch's ~2 s import.

log = logging.getLogger("neuroattn")


# ----------------------------------------------------------------------------- checkpoints
def save_prior(path, enc, dec, emb: EmbeddingSpace, cfg: dict, meta: dict | None = None) -> None:
    """Save both networks, the embedding space and the config (torch tensors and plain types only)."""
    import torch

    from ..models import metatrain as mt
    from ..utils import atomic_path

    state = {"encoder": enc.state_dict(), "decoder": dec.state_dict(), "embedding": emb.state_dict(),
             "config": mt.resolve_config(cfg), "meta": dict(meta or {})}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_prior(path):
    """Load a prior saved by :func:`save_prior`: ``(enc, dec, emb, cfg, meta)``."""
    import torch

    from ..models import metatrain as mt
    from ..models.incontext import EmbeddingSpace

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - name the file whatever went wrong
        raise ValueError(f"{path}: not a readable in-context prior ({exc})") from exc
    emb = EmbeddingSpace.from_state(state["embedding"])
    enc, dec = mt.build_nets(emb.dim, state["config"])
    enc.load_state_dict(state["encoder"])
    dec.load_state_dict(state["decoder"])
    return enc.eval(), dec.eval(), emb, state["config"], state["meta"]


def subject_data(betas, embed: dict, train_images, test_images, noise_ceiling=None) -> "mt.SubjectData":
    """Gather a subject's train / test rows from a :class:`~neuroattn.data.betas.Betas`.

    ``embed`` maps image name -> embedding. Raises naming the subject when it saw none of the test
    (shared) images or no training image.
    """
    from ..models import metatrain as mt

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
    return mt.SubjectData(subject=str(betas.subject), train_images=tr,
                       X_train=np.stack([embed[i] for i in tr]), Y_train=betas.select(tr),
                       test_images=te, X_test=np.stack([embed[i] for i in te]), Y_test=betas.select(te),
                       noise_ceiling=noise_ceiling)


# ----------------------------------------------------------------------------- workflow entry points
def _embedding_lookup(features_path, layer, train_images, test_images, embed_dim, emb=None):
    """Embed every split image (the space fitted on the training images unless given); name -> embedding."""
    from ..features import FeatureStore
    from ..models.incontext import EmbeddingSpace

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
    from ..models import metatrain as mt

    cfg = mt.resolve_config(cfg)
    train, test = read_split(split_path)
    if len(train) < cfg["min_context"] + 8:
        raise ValueError(f"{split_path}: {len(train)} training images, too few for a synthetic prior "
                         f"(need at least {cfg['min_context'] + 8})")
    emb, lookup = _embedding_lookup(features_path, layer, train, test, cfg["embed_dim"])
    X = np.stack([lookup[i] for i in train])
    enc, dec, hist = mt.train_prior(X, cfg, seed=seed, device=device)
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


def write_predictions(path, data: "mt.SubjectData", results: dict, candidate_names, train_subjects, cfg: dict) -> None:
    """The pred HDF5: decoded embeddings, retrieval rankings and accuracy-vs-k curves of both methods.

    Layout: attrs ``subject``, ``train_subjects``, ``default_k``, ``n_candidates``; datasets
    ``test_images``, ``candidate_images``, ``true_embedding`` (n, E), ``k`` (n_k,);
    ``curves/<method>/{top1,top5,cosine,median_r,median_r2}`` (n_k,);
    ``decoded/<method>_k<k>`` (n, E); ``top5/<method>_k<k>`` (n, 5) candidate indices;
    ``rank/<method>_k<k>`` (n,) 1-based rank of each true image among the candidates;
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
                if "rank" in res:
                    f.create_dataset(f"rank/{m}_k{k}", data=np.asarray(res["rank"], dtype=np.int32))
                f.create_dataset(f"stage1_r/{m}_k{k}", data=np.asarray(res["r"], dtype=np.float32))


def aligned_rows(held_out: str, betas: dict, subjects: dict, candidates, candidate_names, alphas) -> list[dict]:
    """Rows of the anatomical-alignment baseline (``aligned_ridge``: top1, top5, noise_normalized_r2).

    Empty when the subjects are not on one grid (then the baseline does not apply).
    """
    from ..leaderboard import score_row
    from ..metrics import noise_normalized_r2
    from ..models.alignment import aligned_ridge_decoding

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
    from ..models import metatrain as mt

    enc, dec, emb, prior_cfg, meta = load_prior(prior_path)
    cfg = mt.resolve_config({**prior_cfg, **(cfg or {})})
    train, test = read_split(split_path)
    _, lookup = _embedding_lookup(features_path, meta.get("layer", cfg.get("layer")), train, test,
                                  cfg["embed_dim"], emb=emb)
    subjects, all_betas = {}, {}
    for p in betas_paths:
        b = Betas.read(p)
        all_betas[b.subject] = b
        nc = subject_noise_ceiling(b, [im for im in test if im in set(b.images)]) if b.subject == held_out else None
        subjects[b.subject] = subject_data(b, lookup, train, test, nc)
    pools = mt.loso_training_pools(subjects, held_out)
    enc, dec, _ = mt.train_real(enc, dec, pools, cfg, seed=seed, device=device)
    data = subjects[held_out]
    candidates = np.stack([lookup[i] for i in test])
    results = mt.evaluate_subject(enc, dec, data, candidates, test, cfg, seed=seed, device=device)
    write_predictions(pred_path, data, results, test, [p.name for p in pools], cfg)
    rows = score_rows(held_out, results, data.noise_ceiling)
    rows += aligned_rows(held_out, all_betas, subjects, candidates, test, cfg["aligned_ridge_alphas"])
    write_scores(scores_path, rows)
    return results


@register("incontext_prior")
def incontext_prior(features: str, split: str, prior: str, cfg: dict, seed: int, device: str) -> None:
    """Meta-train the in-context encoder/decoder on synthetic voxels (no brain data).

    Parameters
    ----------
    features, split : str
        The backbone's feature cache and the image split.
    prior : str
        Output checkpoint (``.pt``).
    cfg : dict
        The ``incontext`` config section (``backbone``, ``layer``, sizes, steps).
    seed : int
    device : str
    """
    cfg = dict(cfg)
    log.info("in-context prior: backbone %s layer %s", cfg["backbone"], cfg["layer"])
    run_prior(features, split, prior, cfg, layer=cfg["layer"], seed=seed, device=device)


@register("incontext_loso")
def incontext_loso(prior: str, features: str, split: str, betas: list, pred: str, scores: str, subject: str,
                   cfg: dict, seed: int, device: str) -> None:
    """Phase-2 meta-training without held-out ``subject``, then its evaluation (both methods).

    Parameters
    ----------
    prior : str
        The checkpoint of :func:`incontext_prior`.
    features, split : str
    betas : list of str
        Every subject's beta file (the held-out one included).
    pred, scores : str
        Outputs: the prediction HDF5 and the leaderboard rows.
    subject : str
        The held-out subject.
    cfg : dict
        The ``incontext`` config section.
    seed : int
    device : str
    """
    betas = list(betas)
    log.info("in-context LOSO: held-out sub-%s, %d beta files", subject, len(betas))
    run_loso(prior, features, split, betas, subject, pred, scores, dict(cfg), seed=seed, device=device)
