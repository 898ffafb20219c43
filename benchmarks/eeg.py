"""EEG decoder speed at BCI IV 2a sizes (288 trials x 22 channels x 1000 samples, batch 64).

Prints, per model, the training time per epoch (forward + backward + Adam step over 288 trials)
and the inference time per trial; for BaseNet also the straightforward layer order of the first
block (``fast=False``) and the first block alone, so the speed-up is measured in the same run on
the same (possibly shared) CPU. Run by hand::

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/eeg.py [--threads 1] [--repeats 3]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from neuroattn.models.eeg_attention import BaseNet, TemporalSpatialBlock
from neuroattn.models.eeg_estimators import make_eeg_estimator
from neuroattn.models.eeg_nets import EEGNet, ShallowConvNet

N, C, T, K, BATCH = 288, 22, 1000, 4, 64


def _epoch(module, X, y, opt):
    module.train()
    for start in range(0, len(X), BATCH):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(module(X[start:start + BATCH]), y[start:start + BATCH]).backward()
        opt.step()


def time_net(module, X, y, repeats):
    """(median seconds per training epoch, seconds per trial of inference)."""
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    _epoch(module, X[:BATCH], y[:BATCH], opt)  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _epoch(module, X, y, opt)
        ts.append(time.perf_counter() - t0)
    module.eval()
    with torch.no_grad():
        t0 = time.perf_counter()
        for start in range(0, len(X), 256):
            module(X[start:start + 256])
        inf = (time.perf_counter() - t0) / len(X)
    return float(np.median(ts)), inf


def time_block(fast, X, repeats):
    torch.manual_seed(0)
    blk = TemporalSpatialBlock(C, 40, 25, fast=fast)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for start in range(0, len(X), BATCH):
            blk(X[start:start + BATCH]).square().mean().backward()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def time_classic(name, Xn, yn):
    est = make_eeg_estimator(name)
    t0 = time.perf_counter()
    est.fit(Xn, yn)
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    est.predict(Xn)
    return fit, (time.perf_counter() - t0) / len(Xn)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    X = torch.randn(N, C, T, generator=g)
    y = torch.randint(0, K, (N,), generator=g)
    print(f"EEG benchmark: {N} trials x {C} channels x {T} samples, batch {BATCH}, "
          f"{torch.get_num_threads()} torch thread(s)")
    print(f"{'model':24s} {'train s/epoch':>14s} {'infer ms/trial':>15s} {'params':>8s}")
    nets = {
        "basenet (fast block)": lambda: BaseNet(C, K, T),
        "basenet (layer order)": lambda: BaseNet(C, K, T, fast=False),
        "basenet_se": lambda: BaseNet(C, K, T, attention="se"),
        "basenet_eca": lambda: BaseNet(C, K, T, attention="eca"),
        "basenet_cbam": lambda: BaseNet(C, K, T, attention="cbam"),
        "basenet_cat": lambda: BaseNet(C, K, T, attention="cat"),
        "eegnet": lambda: EEGNet(C, K, T),
        "eegnet (layer order)": lambda: EEGNet(C, K, T, fast=False),
        "shallow": lambda: ShallowConvNet(C, K, T),
    }
    res = {}
    for name, build in nets.items():
        torch.manual_seed(0)
        m = build()
        res[name] = time_net(m, X, y, args.repeats)
        print(f"{name:24s} {res[name][0]:14.3f} {res[name][1] * 1e3:15.3f} "
              f"{sum(p.numel() for p in m.parameters()):8d}", flush=True)
    Xn, yn = X.numpy(), y.numpy()
    for name in ("csp_lda", "ts_lr"):
        fit, inf = time_classic(name, Xn, yn)
        print(f"{name:24s} {fit:14.3f} {inf * 1e3:15.3f} {'(fit s)':>8s}", flush=True)
    fast_b, slow_b = time_block(True, X, args.repeats), time_block(False, X, args.repeats)
    print(f"first block alone (fwd+bwd, 288 trials): fast {fast_b:.3f} s, layer order {slow_b:.3f} s, "
          f"{slow_b / fast_b:.1f}x")
    ratio = res["basenet (layer order)"][0] / res["basenet (fast block)"][0]
    print(f"BaseNet per-epoch speed-up (same run): {ratio:.1f}x (goal >= 3x)")


if __name__ == "__main__":
    main()
