"""Stage-1 in-context inference vs RidgeCV on the same context, timed in one run.

10,000 voxels, 200 context images (defaults), synthetic linear voxels on random unit-norm
embeddings, the CPU-default stage-1 network (untrained weights time the same as trained ones).
Usage: OMP_NUM_THREADS=2 python benchmarks/incontext.py [--voxels N] [--context K] [--threads T]
Goal (issue 6): <= 30 s for stage 1 on 2 CPU cores.
"""
import argparse
import time

import numpy as np
import torch
from himalaya.ridge import RidgeCV

from neuroattn.models import metatrain as mt
from neuroattn.models.incontext import infer_encoders


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voxels", type=int, default=10_000)
    ap.add_argument("--context", type=int, default=200)
    ap.add_argument("--embed-dim", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--voxel-batch", type=int, default=1024)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.context, args.embed_dim)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Y, _, W, _ = mt.synthetic_voxels(rng, X, args.voxels)
    cfg = mt.resolve_config({"embed_dim": args.embed_dim})
    torch.manual_seed(0)
    enc, _ = mt.build_nets(args.embed_dim, cfg)
    infer_encoders(enc, X[:20], Y[:20, :64], device=args.device)           # warm-up
    t = time.perf_counter()
    W_ic, _ = infer_encoders(enc, X, Y, voxel_batch=args.voxel_batch, device=args.device)
    t_ic = time.perf_counter() - t
    t = time.perf_counter()
    ridge = RidgeCV(alphas=np.asarray(cfg["ridge_alphas"], float), fit_intercept=True, cv=5).fit(X, Y)
    t_ridge = time.perf_counter() - t
    print(f"stage-1 in-context inference: {args.voxels} voxels x {args.context} context images, "
          f"E={args.embed_dim}, encoder {cfg['encoder']}: {t_ic:.2f} s ({args.threads} threads, {args.device})")
    print(f"himalaya RidgeCV (5-fold, {len(cfg['ridge_alphas'])} alphas) on the same context: {t_ridge:.2f} s")
    print(f"goal <= 30 s for stage 1: {'met' if t_ic <= 30 else 'NOT met'}")
    cos = np.sum(W_ic * W, 1) / (np.linalg.norm(W_ic, axis=1) * np.linalg.norm(W, axis=1))
    print(f"(untrained net, ridge-path head) median cosine to planted weights: {np.median(cos):.3f}")


if __name__ == "__main__":
    main()
