"""Feature extraction: overhead against a bare forward pass, peak memory vs n_images, cache sizes.

Run by hand (prints numbers, asserts nothing)::

    OMP_NUM_THREADS=2 python benchmarks/extract.py [--backbone smallcnn] [--n 512] [--device auto]

1. ``extract`` (preprocessing + hooks + token reshaping + copies to NumPy, all default layers)
   against a bare ``torch.inference_mode()`` forward pass of the same model on the same,
   already preprocessed batches (preprocessing is charged to ``extract`` only); whole runs
   alternated ``--repeats`` times; prints the ratio of the best runs and the median paired ratio
   (target <= 1.10).
2. Peak resident memory of the streamed cache writer (``cache_features`` on image files) for
   two numbers of images, each in a fresh process: it should not grow with n_images.
3. Cache sizes on the default data (float32, float16, float16 + PCA) and the storage arithmetic
   at NSD scale (73k images, 31 x 31 tokens x 768 channels).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _images(n, size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def overhead(args):
    import torch

    from neuroattn.features import extract, load_backbone

    bb = load_backbone(args.backbone, image_size=args.size, device=args.device)
    imgs = _images(args.n, args.size)
    batches = [imgs[i:i + args.batch_size] for i in range(0, args.n, args.batch_size)]
    sync = torch.cuda.synchronize if bb.device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        pre = [bb.preprocess(b) for b in batches]

    def bare():
        with torch.inference_mode():
            for x in pre:
                bb.model(x)
        sync()

    def ours():
        extract(bb, imgs, layers=bb.layers, batch_size=args.batch_size)
        sync()

    bare(), ours()  # warm-up
    # Whole runs over all images, alternating which goes first, so that the load of a shared
    # machine drifts alike for both; best and median over the repeats.
    t_bare, t_ours = [], []
    for r in range(args.repeats):
        for f, acc in (((bare, t_bare), (ours, t_ours)) if r % 2 == 0 else ((ours, t_ours), (bare, t_bare))):
            t = time.perf_counter()
            f()
            acc.append(time.perf_counter() - t)
    b, o = min(t_bare), min(t_ours)
    ratios = np.array(t_ours) / np.array(t_bare)
    print(f"[overhead] {args.backbone} {args.size}px, {args.n} images, batch {args.batch_size}, layers "
          f"{bb.layers}, device {bb.device}, torch threads {torch.get_num_threads()}")
    print(f"[overhead] bare forward (preprocessed batches) {b:.3f} s ({args.n / b:.0f} img/s); extract "
          f"(uint8 in, NumPy tokens out) {o:.3f} s ({args.n / o:.0f} img/s); ratio of bests = {o / b:.3f}, "
          f"median of paired ratios = {np.median(ratios):.3f} (target <= 1.10)")
    print(f"[overhead] runs: bare {np.round(t_bare, 3).tolist()}, extract {np.round(t_ours, 3).tolist()}")


def _child_peak(n, folder, backbone, size, batch_size, device):
    """Peak RSS (MB) of a fresh process caching features of the first n image files."""
    code = f"""
import resource, sys, json
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from neuroattn.features import load_backbone
from neuroattn.features.extract import cache_features
bb = load_backbone({backbone!r}, image_size={size}, device={device!r})
files = sorted(Path({str(folder)!r}).glob('*.png'))[:{n}]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cache_features(bb, files, Path({str(folder)!r}) / 'out_{n}.h5', batch_size={batch_size})
print(json.dumps({{'base': base / 1024, 'peak': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory(args):
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        n_max = max(args.mem_n)
        for i, im in enumerate(_images(n_max, args.size, seed=1)):
            Image.fromarray(im).save(Path(tmp) / f"img{i:05d}.png")
        for n in args.mem_n:
            r = _child_peak(n, tmp, args.backbone, args.size, args.batch_size, args.device)
            size = os.path.getsize(Path(tmp) / f"out_{n}.h5") / 2**20
            print(f"[memory] {n:6d} images: peak RSS {r['peak']:.0f} MB (after model load {r['base']:.0f} MB, "
                  f"+{r['peak'] - r['base']:.0f} MB while streaming); cache {size:.1f} MB")


def sizes(args):
    from neuroattn.features import FeatureStore, load_backbone
    from neuroattn.features.extract import cache_features

    bb = load_backbone(args.backbone, image_size=args.size, device=args.device)
    imgs = _images(args.size_n, args.size, seed=2)
    fit_on = np.arange(args.size_n) >= args.size_n // 10
    with tempfile.TemporaryDirectory() as tmp:
        for label, kw in [("float32", dict(dtype="float32")), ("float16", dict(dtype="float16")),
                          (f"float16 + PCA {args.pca}", dict(dtype="float16", pca=args.pca, fit_on=fit_on))]:
            p = Path(tmp) / "f.h5"
            t = time.perf_counter()
            cache_features(bb, imgs, p, batch_size=args.batch_size, **kw)
            dt = time.perf_counter() - t
            st = FeatureStore(p)
            per = {layer: f"{st.grid(layer)[0]}x{st.grid(layer)[1]}x{st.channels(layer)}" for layer in st.layers}
            pooled = sum(st.channels(layer) for layer in st.layers) * 4 * args.size_n / 2**20
            print(f"[size] {args.backbone} {args.size}px, {args.size_n} images, {label}: "
                  f"{os.path.getsize(p) / 2**20:.1f} MB ({per}; pooled part {pooled:.2f} MB), {dt:.1f} s")
    n, t, c = 73_000, 31 * 31, 768
    gb = 1e9
    print(f"[nsd] 73k images x 31x31 tokens x 768 channels, one layer: float32 {n * t * c * 4 / gb:.1f} GB, "
          f"float16 {n * t * c * 2 / gb:.1f} GB, float16 + PCA 256 {n * t * 256 * 2 / gb:.1f} GB, "
          f"+ PCA 64 {n * t * 64 * 2 / gb:.1f} GB, pooled (73k x 768 float32) {n * c * 4 / gb:.3f} GB")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="smallcnn")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--mem-n", type=int, nargs="+", default=[256, 2048])
    ap.add_argument("--size-n", type=int, default=1000)
    ap.add_argument("--pca", type=int, default=16)
    ap.add_argument("--only", choices=["overhead", "memory", "sizes"], nargs="*")
    args = ap.parse_args()
    for name in args.only or ["overhead", "memory", "sizes"]:
        globals()[name](args)


if __name__ == "__main__":
    main()
