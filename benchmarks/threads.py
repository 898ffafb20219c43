"""BLAS/OpenMP oversubscription: one ``threads: 1`` routing encode job alone and beside another.

Snakemake sets ``OMP_NUM_THREADS`` & co. for ``shell:`` rules only; our rules are ``script:``
rules, so before :func:`neuroattn.utils.set_threads` limited BLAS and OpenMP (threadpoolctl), a
``threads: 1`` job ran torch on 1 thread but NumPy/SciPy's OpenBLAS and the OpenMP pools on one
thread per core. Two such jobs side by side then ran more busy threads than cores.

For each code root given (e.g. a checkout before the change and one after), on one synthetic
subject (``benchmarks/scale.py``'s generator; the default sizes are those of the default
workflow's routing job: 500 training + 100 test images, 12 x 12 tokens x 64 channels, ~3,000
voxels): the encode stage (``neuroattn.stages.run_stage("encode", ..., threads=1)``, exactly what
the rule runs) alone, then two copies at once. Prints each job's wall time and process CPU time
(all its threads: spinning BLAS threads show up there even on a busy machine), the pool sizes the job
saw after ``set_threads`` (threadpoolctl), and ``ratio = pair / alone`` per root. The thread
environment variables are removed for the jobs (as under Snakemake). Ratios are only comparable
within one run; on a busy machine state them as ratios, not times.

Usage: python benchmarks/threads.py --roots /path/before /path/after [--epochs 3] [--repeats 1]
Expected: ratio well above 1 (towards 2x on 2 cores, more with spinning BLAS threads) before, about
1 after on a machine with >= 2 idle cores.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CHILD = r"""
import json, resource, sys, time
import torch, sklearn.linear_model, scipy.linalg  # imports before the clock: they are not the job's work
from neuroattn.stages import run_stage, get_stage
get_stage("encode")
spec = json.loads(sys.argv[1])
t, c = time.perf_counter(), time.process_time()
run_stage("encode", spec["kwargs"], threads=1)
dt, cpu = time.perf_counter() - t, time.process_time() - c
try:
    from threadpoolctl import threadpool_info
    pools = sorted({f"{p['prefix']}={p['num_threads']}" for p in threadpool_info()})
except ImportError:
    pools = []
import torch
print(json.dumps({"seconds": dt, "cpu": cpu, "pools": pools, "torch": torch.get_num_threads()}))
"""

_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def start(root, folder, tag, epochs):
    kw = {"betas": str(folder / "betas.h5"), "features": str(folder / "features.h5"),
          "split": str(folder / "split.tsv"), "pred": str(folder / f"{tag}_pred.h5"),
          "scores": str(folder / f"{tag}_scores.tsv"), "subject": "01", "backbone": "synthetic",
          "layer": "layer", "model": "routing",
          "model_cfg": {"d_model": 256, "n_heads": 1, "n_layers": 1, "dim_feedforward": 256,
                        "dropout": 0.0, "lr": 5e-4, "weight_decay": 1e-4, "grad_clip": 0.1,
                        "batch_size": 16, "max_epochs": epochs, "patience": epochs,
                        "val_fraction": 0.1, "n_ensemble": 2},
          "hemispheres": "auto", "voxel_maps": 64, "seed": 0, "device": "cpu",
          "checkpoint_dir": str(folder / f"{tag}_ck")}
    env = {k: v for k, v in os.environ.items() if k not in _THREAD_ENV}
    env["PYTHONPATH"] = str(root)
    return subprocess.Popen([sys.executable, "-c", CHILD, json.dumps({"kwargs": kw})], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(root))


def finish(p):
    out, err = p.communicate()
    if p.returncode:
        raise RuntimeError(err.strip().splitlines()[-1] if err.strip() else f"exit {p.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--roots", nargs="+", required=True, help="code roots (PYTHONPATH) to compare")
    ap.add_argument("--train", type=int, default=500)
    ap.add_argument("--test", type=int, default=100)
    ap.add_argument("--side", type=int, default=12)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--voxels", type=int, default=3000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=1, help="alone/pair rounds per root (interleaved)")
    a = ap.parse_args()
    from scale import make_subject

    print(f"threads: routing encode, {a.train}+{a.test} images, {a.side}x{a.side} tokens x {a.channels}, "
          f"{a.voxels} voxels, {a.epochs} epochs; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    res = {r: {"alone": [], "pair": []} for r in a.roots}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_subject(folder, a.train, a.test, a.side, a.channels, a.voxels)
        for rep in range(a.repeats):
            for root in a.roots:
                r = finish(start(root, folder, "alone", a.epochs))
                res[root]["alone"].append(r["seconds"])
                print(f"{root}: alone {r['seconds']:.1f} s, CPU {r['cpu']:.1f} s (torch {r['torch']}, pools {' '.join(r['pools'])})",
                      flush=True)
                ps = [start(root, folder, f"pair{i}", a.epochs) for i in range(2)]
                rs = [finish(p) for p in ps]
                res[root]["pair"].append(max(x["seconds"] for x in rs))
                times = " / ".join(f"{x['seconds']:.1f} s (CPU {x['cpu']:.1f} s)" for x in rs)
                print(f"{root}: pair  {times}", flush=True)
    for root in a.roots:
        al, pr = min(res[root]["alone"]), min(res[root]["pair"])
        print(f"ratio pair/alone = {pr / al:.2f}  ({root}: alone {al:.1f} s, pair {pr:.1f} s)")


if __name__ == "__main__":
    main()
