"""Pieces of ``benchmarks/gpu_check.sh``: each prints one ``gpu_check <part>: ...`` line on CUDA.

Parts: ``routing`` (NSD-scale routing step, float32 and bf16 autocast, ours vs the published
readout), ``basenet`` (one BaseNet training epoch at BCI IV 2a size), ``incontext`` (in-context
meta-training steps, stage 1, at the CPU defaults and at config/incontext_paper.yaml's sizes),
``vit`` (feature extraction of a torchvision vit_b_16 with random weights at 224 px).
Every figure is printed with the GPU name and the peak GPU memory of the part
(``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``).

Usage: python benchmarks/gpu_check.py PART [PART ...]; without CUDA prints one line, exits 0.
``--dry-run-cpu`` runs the same code on the CPU at toy sizes (no figures worth reading: it checks
that the calls are right on a machine without a GPU; tests/test_gpu_check.py runs it).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

NO_CUDA = "gpu_check: no CUDA device (torch.cuda.is_available() is False): nothing run"
DEV = "cuda"            # "cpu" under --dry-run-cpu (toy sizes, no CUDA calls)


def _cuda():
    return DEV == "cuda"


def _sync():
    if _cuda():
        import torch

        torch.cuda.synchronize()


def _gpu():
    import torch

    return torch.cuda.get_device_name(0) if _cuda() else "none (CPU dry run)"


def _timed(fn, repeats):
    """Median seconds of ``fn`` over ``repeats`` calls after one warm-up, with CUDA synchronisation."""
    fn()
    _sync()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def _peak_reset():
    import torch

    if not _cuda():
        return
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


def _peak_mib():
    import torch

    if not _cuda():
        return 0.0
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def _line(part, text, peak):
    print(f"gpu_check {part}: {text}  [GPU {_gpu()}, peak {peak:.0f} MiB]", flush=True)


def routing(steps=5):
    from routing_step import make_step

    cfg = dict(queries=50, side=31, channels=768, voxels=40_000, batch=16, d_model=768, heads=16, ff=1024)
    if not _cuda():
        cfg.update(side=5, channels=32, voxels=500, batch=2, d_model=32, heads=4, ff=64)
        steps = 1
    for bf16 in (False, True):
        tag = "bf16 autocast" if bf16 else "float32"
        times = {}
        for variant in ("published", "ours"):
            _peak_reset()
            step, _ = make_step(variant, cfg, DEV, bf16)
            times[variant] = _timed(step, steps)
            _line("routing", f"{tag} {variant:9s} step {times[variant] * 1e3:8.1f} ms ({cfg['side'] ** 2} tokens x "
                  f"{cfg['channels']}, {cfg['voxels']:,} voxels, batch {cfg['batch']})", _peak_mib())
            del step
        print(f"gpu_check routing: {tag} speedup {times['published'] / times['ours']:.2f}x (published / ours)",
              flush=True)


def basenet(repeats=3):
    import torch

    from eeg import BATCH, C, K, N, T, _epoch
    from neuroattn.models.eeg_attention import BaseNet

    n = N if _cuda() else BATCH
    repeats = repeats if _cuda() else 1
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, C, T, generator=g).to(DEV)
    y = torch.randint(0, K, (n,), generator=g).to(DEV)
    for fast in (True, False):
        _peak_reset()
        torch.manual_seed(0)
        net = BaseNet(C, K, T, fast=fast).to(DEV)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        dt = _timed(lambda: _epoch(net, X, y, opt), repeats)
        _line("basenet", f"{'fast block' if fast else 'layer order'} epoch {dt * 1e3:8.1f} ms "
              f"({n} trials x {C} x {T}, batch {BATCH})", _peak_mib())


def incontext(steps=10):
    import numpy as np
    import yaml

    from neuroattn.models import metatrain as mt
    from neuroattn.models.metalearn import synthetic_pool, train_encoder

    paper = yaml.safe_load((ROOT / "config" / "incontext_paper.yaml").read_text())["incontext"]
    sizes = [("cpu defaults", {}), ("incontext_paper.yaml", paper)]
    if not _cuda():      # the paper's 20 x 640 network: only its config is checked on a CPU
        sizes[1] = ("incontext_paper.yaml, 1 layer, batch 2", {**paper, "batch_size": 2,
                                                                "encoder": {**paper["encoder"], "n_layers": 1}})
        steps = 1
    for name, over in sizes:
        cfg = mt.resolve_config(over)
        E = cfg["embed_dim"]
        rng = np.random.default_rng(0)
        X = rng.standard_normal((2000, E)).astype(np.float32)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        pools = [synthetic_pool(rng, X, 1024) for _ in range(2)]
        enc, _ = mt.build_nets(E, cfg)
        _peak_reset()
        train_encoder(enc, pools, cfg, 1, 0, DEV)                  # warm-up
        t = time.perf_counter()
        train_encoder(enc, pools, cfg, steps, 1, DEV)
        _sync()
        dt = (time.perf_counter() - t) / steps
        _line("incontext", f"{name}: stage-1 meta-training step {dt * 1e3:8.1f} ms (E={E}, batch "
              f"{cfg['batch_size']}, encoder {cfg['encoder']})", _peak_mib())


def vit(n=256, batch=64):
    import numpy as np

    from neuroattn.features import load_backbone
    from neuroattn.features.extract import extract

    size = 224 if _cuda() else 32
    if not _cuda():
        n, batch = 4, 2
    _peak_reset()
    bb = load_backbone("vit_b_16", image_size=size, device=DEV)
    imgs = np.random.default_rng(0).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    extract(bb, imgs[:batch], batch_size=batch)                   # warm-up
    t = time.perf_counter()
    feats = extract(bb, imgs, batch_size=batch)
    dt = time.perf_counter() - t
    _line("vit", f"vit_b_16 (random weights) {size} px, {n} images, layers {list(bb.layers)}: {dt:.2f} s, "
          f"{n / dt:.0f} images/s ({type(feats).__name__})", _peak_mib())


PARTS = {"routing": routing, "basenet": basenet, "incontext": incontext, "vit": vit}


def main(argv):
    global DEV
    import torch

    if "--dry-run-cpu" in argv:
        DEV = "cpu"
        argv = [a for a in argv if a != "--dry-run-cpu"]
    elif not torch.cuda.is_available():
        print(NO_CUDA)
        return 0
    bad = [p for p in argv if p not in PARTS]
    if bad or not argv:
        print(f"gpu_check: parts must be among {sorted(PARTS)}, got {argv}", file=sys.stderr)
        return 2
    for p in argv:
        PARTS[p]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
