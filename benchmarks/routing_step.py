"""One training step (forward + backward) of the routing encoder at NSD scale, against the published
readout.

Scale (references.md section 1): 50 queries (25 ROIs x 2 hemispheres), 961 tokens (31 x 31) x 768
channels, 40,000 voxels, batch 16, one pre-norm cross-attention layer 768 wide, 16 heads,
feed-forward 1024.

- ``ours``: :class:`neuroattn.models.routing.RoutingModule` (per-ROI readout on voxels sorted by
  ROI, keys/values folded into the input projection when that saves work).
- ``published``: a faithful re-implementation of the published design: input projection, a pre-norm
  decoder layer built on ``nn.MultiheadAttention`` (keys = memory + positional encoding,
  values = memory), then ``Linear(768, n_voxels)`` applied to every ROI token and masked so that
  each voxel keeps the output of its own ROI's token.
- ``ours_unfused``: ours with the key/value fold switched off (isolates the readout's share).

Each variant runs in its own subprocess; peak memory is the growth of the resident set during the
first step over the state just before it (VmHWM reset through /proc/self/clear_refs) on CPU,
``max_memory_allocated`` growth on CUDA; times are the median of the following ``--steps`` steps.
Prints one line per variant and ``speedup=X`` (published / ours, median step time) for float32,
then the same under bfloat16 autocast (CPU) reported separately.

Usage: ``python benchmarks/routing_step.py [--steps 3] [--threads N] [--device cpu|cuda]
[--small]`` (``--small``: a quick smoke run at 1/8 scale).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rss_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def build(variant, cfg):
    import numpy as np
    import torch
    from torch import nn

    from neuroattn.models.positional import sine_2d
    from neuroattn.models.routing import RoutingModule

    Q, side, C, V, d = cfg["queries"], cfg["side"], cfg["channels"], cfg["voxels"], cfg["d_model"]
    rng = np.random.default_rng(0)
    sizes = rng.dirichlet(np.ones(Q) * 2.0) * V  # uneven ROI sizes, every ROI non-empty
    counts = np.maximum(1, np.floor(sizes)).astype(int)
    counts[-1] += V - counts.sum()
    group = rng.permutation(np.repeat(np.arange(Q), counts))
    torch.manual_seed(0)
    if variant in ("ours", "ours_unfused"):
        return RoutingModule(C, (side, side), group, Q, d_model=d, n_heads=cfg["heads"], n_layers=1,
                             dim_feedforward=cfg["ff"], dropout=0.1,
                             fuse_kv=(variant == "ours") and "auto")

    class Published(nn.Module):
        """Input projection + pre-norm cross-attention decoder layer + masked full readout."""

        def __init__(self):
            super().__init__()
            self.input_proj = nn.Linear(C, d)
            self.register_buffer("pos", sine_2d(side, side, d))
            self.query = nn.Parameter(torch.randn(Q, d) * 0.02)
            self.norm1, self.norm2, self.norm = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
            self.attn = nn.MultiheadAttention(d, cfg["heads"], dropout=0.1, batch_first=True)
            self.ff = nn.Sequential(nn.Linear(d, cfg["ff"]), nn.ReLU(), nn.Dropout(0.1), nn.Linear(cfg["ff"], d))
            self.drop = nn.Dropout(0.1)
            self.readout = nn.Linear(d, V)
            mask = torch.zeros(Q, V)
            mask[torch.as_tensor(group), torch.arange(V)] = 1.0
            self.register_buffer("mask", mask)

        def forward(self, x):
            mem = self.input_proj(x)
            t = self.query.unsqueeze(0).expand(x.shape[0], -1, -1)
            q = self.norm1(t)
            t = t + self.drop(self.attn(q, mem + self.pos, mem, need_weights=False)[0])
            t = t + self.drop(self.ff(self.norm2(t)))
            full = self.readout(self.norm(t))  # (B, Q, V): every voxel from every ROI token
            return (full * self.mask).sum(dim=1)

    return Published()


def run_variant(variant, cfg, steps, device, bf16, threads):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    model = build(variant, cfg).to(device).train()
    B, T, C, V = cfg["batch"], cfg["side"] ** 2, cfg["channels"], cfg["voxels"]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, T, C, generator=g).to(device)
    y = torch.randn(B, V, generator=g).to(device)
    ctx = (lambda: torch.autocast(device, dtype=torch.bfloat16)) if bf16 else (lambda: torch.autocast(device, enabled=False))

    def step():
        with ctx():
            pred = model(x)
        loss = F.mse_loss(pred.float(), y)
        loss.backward()
        for p in model.parameters():
            p.grad = None
        if device == "cuda":
            torch.cuda.synchronize()

    # memory: the first step, measured from the state right before it (model, optimizer-free, inputs)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        _reset_peak()
        base = _rss_kb("VmRSS") * 1024
    step()
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _rss_kb("VmHWM") * 1024 - base
    times = []  # time: the following steps (the first one warmed allocator and kernels up)
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    n_params = sum(p.numel() for p in model.parameters())
    return {"variant": variant, "median_s": times[len(times) // 2], "min_s": times[0], "peak_bytes": peak,
            "params": n_params,
            "fused_kv": model._use_fused(B * T) if hasattr(model, "_use_fused") else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--small", action="store_true", help="1/8-scale smoke run")
    ap.add_argument("--no-bf16", action="store_true")
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    cfg = dict(queries=50, side=31, channels=768, voxels=40_000, batch=16, d_model=768, heads=16, ff=1024)
    if a.small:
        cfg.update(side=11, voxels=5000, batch=4)
    if a._child:
        spec = json.loads(a._child)
        sys.path.insert(0, ROOT)
        print(json.dumps(run_variant(spec["variant"], cfg, a.steps, a.device, spec["bf16"], a.threads)))
        return
    print(f"routing_step: {cfg} device={a.device} threads={a.threads} steps={a.steps}", flush=True)
    precisions = [False] if (a.no_bf16 or a.device == "cuda") else [False, True]
    for bf16 in precisions:
        res = {}
        for variant in ("published", "ours", "ours_unfused"):
            cmd = [sys.executable, os.path.abspath(__file__), "--steps", str(a.steps), "--threads", str(a.threads),
                   "--device", a.device, "--_child", json.dumps({"variant": variant, "bf16": bf16})]
            if a.small:
                cmd.append("--small")
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            res[variant] = r
            print(f"  [{'bf16' if bf16 else 'fp32'}] {variant:13s} step {r['median_s']:.3f} s (min {r['min_s']:.3f})"
                  f"  peak {r['peak_bytes'] / 2**20:8.1f} MiB  params {r['params'] / 1e6:.1f} M"
                  f"  fused_kv={r['fused_kv']}", flush=True)
        sp = res["published"]["median_s"] / res["ours"]["median_s"]
        sp_ro = res["published"]["median_s"] / res["ours_unfused"]["median_s"]
        mem = res["ours"]["peak_bytes"] / max(res["published"]["peak_bytes"], 1)
        tag = "bf16_autocast" if bf16 else "float32"
        print(f"{tag}: speedup={sp:.2f} (readout only: {sp_ro:.2f}) memory_ratio={mem:.2f} "
              f"(ours {res['ours']['peak_bytes'] / 2**20:.0f} MiB vs published "
              f"{res['published']['peak_bytes'] / 2**20:.0f} MiB)", flush=True)
        if not math.isfinite(sp):
            sys.exit(1)


if __name__ == "__main__":
    main()
