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
``max_memory_allocated`` growth on CUDA. Times: all variants built in one process, one warm-up step
each, then ``--steps`` rounds in which every variant does one step (interleaved, so that load from
other processes on a shared machine hits all variants alike); the median wall time per variant
is reported, and the median process CPU time (less sensitive to time-slicing on a busy machine).
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


def make_step(variant, cfg, device, bf16):
    """A training step (forward, MSE, backward) of ``variant`` on fixed random inputs."""
    import torch
    import torch.nn.functional as F

    model = build(variant, cfg).to(device).train()
    B, T, C, V = cfg["batch"], cfg["side"] ** 2, cfg["channels"], cfg["voxels"]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, T, C, generator=g).to(device)
    y = torch.randn(B, V, generator=g).to(device)

    def step():
        ctx = torch.autocast(device, dtype=torch.bfloat16) if bf16 else torch.autocast(device, enabled=False)
        with ctx:
            pred = model(x)
        F.mse_loss(pred.float(), y).backward()
        for p in model.parameters():
            p.grad = None
        if device == "cuda":
            torch.cuda.synchronize()

    info = {"variant": variant, "params": sum(p.numel() for p in model.parameters()),
            "fused_kv": model._use_fused(B * T) if hasattr(model, "_use_fused") else None}
    return step, info


def measure_memory(variant, cfg, device, bf16, threads):
    """Peak memory growth of the first step over the state right before it (fresh process)."""
    import torch

    torch.set_num_threads(threads)
    step, info = make_step(variant, cfg, device, bf16)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        _reset_peak()
        base = _rss_kb("VmRSS") * 1024
    step()
    if device == "cuda":
        info["peak_bytes"] = torch.cuda.max_memory_allocated() - base
    else:
        info["peak_bytes"] = _rss_kb("VmHWM") * 1024 - base
    return info


def measure_time(cfg, device, bf16, threads, steps, variants):
    """Median step time per variant, the variants' steps interleaved (fair under shared CPUs)."""
    import torch

    torch.set_num_threads(threads)
    fns = {v: make_step(v, cfg, device, bf16)[0] for v in variants}
    for f in fns.values():  # warm-up
        f()
    times = {v: [] for v in variants}
    cpu = {v: [] for v in variants}
    for _ in range(steps):
        for v, f in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            f()
            times[v].append(time.perf_counter() - t0)
            cpu[v].append(time.process_time() - c0)
    med = lambda t: sorted(t)[len(t) // 2]  # noqa: E731
    return {v: (med(times[v]), min(times[v]), med(cpu[v])) for v in variants}


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
    variants = ("published", "ours", "ours_unfused")
    if a._child:
        spec = json.loads(a._child)
        sys.path.insert(0, ROOT)
        print(json.dumps(measure_memory(spec["variant"], cfg, a.device, spec["bf16"], a.threads)))
        return
    sys.path.insert(0, ROOT)
    print(f"routing_step: {cfg} device={a.device} threads={a.threads} steps={a.steps}", flush=True)
    precisions = [False] if (a.no_bf16 or a.device == "cuda") else [False, True]
    for bf16 in precisions:
        res = {}
        for variant in variants:
            cmd = [sys.executable, os.path.abspath(__file__), "--threads", str(a.threads),
                   "--device", a.device, "--_child", json.dumps({"variant": variant, "bf16": bf16})]
            if a.small:
                cmd.append("--small")
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
            res[variant] = json.loads(out.stdout.strip().splitlines()[-1])
        for v, (med, mn, cp) in measure_time(cfg, a.device, bf16, a.threads, a.steps, variants).items():
            res[v]["median_s"], res[v]["min_s"], res[v]["cpu_s"] = med, mn, cp
        for variant, r in res.items():
            print(f"  [{'bf16' if bf16 else 'fp32'}] {variant:13s} step {r['median_s']:.3f} s (min {r['min_s']:.3f}, "
                  f"cpu {r['cpu_s']:.3f} s)"
                  f"  peak {r['peak_bytes'] / 2**20:8.1f} MiB  params {r['params'] / 1e6:.1f} M"
                  f"  fused_kv={r['fused_kv']}", flush=True)
        sp = res["published"]["median_s"] / res["ours"]["median_s"]
        sp_ro = res["published"]["median_s"] / res["ours_unfused"]["median_s"]
        mem = res["ours"]["peak_bytes"] / max(res["published"]["peak_bytes"], 1)
        tag = "bf16_autocast" if bf16 else "float32"
        sp_cpu = res["published"]["cpu_s"] / res["ours"]["cpu_s"]
        print(f"{tag}: speedup={sp:.2f} (cpu-time speedup {sp_cpu:.2f}; readout only: {sp_ro:.2f}) "
              f"memory_ratio={mem:.2f} "
              f"(ours {res['ours']['peak_bytes'] / 2**20:.0f} MiB vs published "
              f"{res['published']['peak_bytes'] / 2**20:.0f} MiB)", flush=True)
        if not math.isfinite(sp):
            sys.exit(1)


if __name__ == "__main__":
    main()
