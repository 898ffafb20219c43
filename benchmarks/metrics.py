"""Speed and memory of neuroattn.metrics (run by hand; prints numbers).

1. PLS predictivity, 1,000 stimuli x 2,000 units from 512 features, 10 splits (Brain-Score's
   workload): neuroattn's exact PLS vs brainscore_vision's own ``pls`` metric (run in a separate
   venv, see below) and vs bare scikit-learn PLSRegression(25, scale=False) (NIPALS, the path
   brainscore_vision uses) on the same arrays and splits, in the same run: wall and cpu time, and
   the scores.  brainscore_vision needs numpy<2 and scikit-learn<1.6, so it cannot share the
   project's environment: ``--bs-venv PATH`` names a venv that has it (default /tmp/bsvenv, built
   there on first use with python3.11 and only the packages its ``pls`` metric imports: no torch),
   the arrays go to .npy files and ``benchmarks/_brainscore_pls.py`` scores them there.
2. Layer commitment of a torchvision resnet18 (random weights) over 5 layers: features of a few
   hundred small images written to a FeatureStore, then streamed one layer at a time; time and
   peak traced memory, with 2 and 5 layers (memory should not grow with the number of layers).

Usage: OMP_NUM_THREADS=1 python benchmarks/metrics.py [--quick] [--skip-sklearn] [--bs-venv PATH | --no-bs]
Both sides run with the same BLAS thread settings (the environment's).  The machine may be shared:
compare the ratio within one run (cpu seconds are the steadier figure under load), not absolute
times across runs.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from neuroattn.metrics import linear_predictivity, pearson_r  # noqa: E402
from neuroattn.metrics.commitment import commit_layers  # noqa: E402
from neuroattn.stages.scoring import stream_layers  # noqa: E402
from neuroattn.metrics.predictivity import shuffle_splits  # noqa: E402


def measure(fn, trace=True):
    """(result, wall seconds, peak traced MiB); CPU seconds of this process go to LAST_CPU.

    ``trace=False`` times without tracemalloc (which slows every allocation, and so code made of
    many small array operations more than code made of few large ones); the peak is then NaN.
    """
    global LAST_CPU
    if trace:
        tracemalloc.start()
    c = time.process_time()
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    LAST_CPU = time.process_time() - c
    peak = np.nan
    if trace:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return out, dt, peak


LAST_CPU = 0.0


def sklearn_pls_score(X, Y, n_splits=10):
    from sklearn.cross_decomposition import PLSRegression

    per_split = []
    for tr, te in shuffle_splits(len(X), n_splits, 0.9, 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = PLSRegression(25, scale=False).fit(X[tr], Y[tr]).predict(X[te])
        per_split.append(np.nanmedian(pearson_r(Y[te], pred)))
    return float(np.mean(per_split))


#: what the brainscore_vision venv gets: its ``pls`` metric's imports, pinned as brainscore_core pins
#: them (xarray<2022.6), without torch / jupyter / opencv
BS_DEPS = ["numpy<2", "scikit-learn<1.6", "scipy", "pandas<2", "xarray<2022.6", "tqdm", "boto3", "netCDF4",
           "pillow", "psutil"]
BS_NODEPS = ["brainscore_vision==2.4.2", "brainscore_core==2.5.0", "result-caching"]
BS_SCRIPT = Path(__file__).resolve().parent / "_brainscore_pls.py"


def bs_python(venv):
    """The python of a brainscore_vision venv at ``venv``, built there when absent."""
    py = Path(venv) / "bin" / "python"
    if py.exists():
        return py
    print(f"  building the brainscore_vision venv at {venv} (python3.11; once)", flush=True)
    subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True)
    pip = [str(Path(venv) / "bin" / "pip"), "install", "-q"]
    subprocess.run(pip + BS_DEPS, check=True)
    subprocess.run(pip + ["--no-deps"] + BS_NODEPS, check=True)
    return py


def brainscore_pls(X, Y, venv):
    """brainscore_vision's ``pls`` (CrossRegressedCorrelation, unstratified splits) on X, Y: its JSON."""
    py = bs_python(venv)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/X.npy", X)
        np.save(f"{tmp}/Y.npy", Y)
        env = {**os.environ, "TQDM_DISABLE": "1", "BS_INSTALL_DEPENDENCIES": "no", "PYTHONWARNINGS": "ignore"}
        env.pop("PYTHONPATH", None)
        out = subprocess.run([str(py), str(BS_SCRIPT), f"{tmp}/X.npy", f"{tmp}/Y.npy"], env=env,
                             capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"brainscore_vision run failed ({py}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_pls(n=1000, m=2000, p=512, skip_sklearn=False, bs_venv=None, repeats=3):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, p))
    # low-rank signal spread over many feature directions, plus unit noise
    Y = (X @ rng.normal(size=(p, 40)) / np.sqrt(p)) @ rng.normal(size=(40, m)) / np.sqrt(40) + rng.normal(size=(n, m))
    print(f"[pls] {n} stimuli x {m} units from {p} features, 10 splits; load average {os.getloadavg()[0]:.1f}")
    runs = []
    for _ in range(repeats):           # timed untraced (as the brainscore_vision run is)
        sc, dt, _ = measure(lambda: linear_predictivity(X, Y, regression="pls"), trace=False)
        runs.append((dt, LAST_CPU))
    mem = measure(lambda: linear_predictivity(X, Y, regression="pls"))[2]
    dt, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
    print(f"  neuroattn exact PLS  : {dt:7.2f} s wall {cpu:7.2f} s cpu  (best of {repeats})  peak {mem:7.1f} MiB  "
          f"score {sc.value:.4f} +- {sc.error:.4f}")
    if bs_venv:
        bs = brainscore_pls(X, Y, bs_venv)
        print(f"  brainscore_vision pls: {bs['seconds']:7.2f} s wall {bs['cpu_seconds']:7.2f} s cpu  "
              f"score {bs['score']:.4f}  (numpy {bs['numpy']}, scikit-learn {bs['sklearn']})")
        print(f"  vs brainscore_vision: {bs['seconds'] / dt:.1f}x wall, {bs['cpu_seconds'] / cpu:.1f}x cpu; "
              f"|score difference| {abs(sc.value - bs['score']):.4f}")
    if not skip_sklearn:
        ref, dts, mems = measure(lambda: sklearn_pls_score(X, Y), trace=False)
        print(f"  sklearn PLSRegression: {dts:7.2f} s wall {LAST_CPU:7.2f} s cpu  score {ref:.4f}  (bare fits, no xarray)")
        print(f"  speed-up {dts / dt:.1f}x wall, {LAST_CPU / cpu:.1f}x cpu; |score difference| {abs(sc.value - ref):.4f}")
    for reg in ("ridge", "ridgecv"):
        s2, d2, m2 = measure(lambda: linear_predictivity(X, Y, regression=reg))
        print(f"  {reg:21s}: {d2:7.2f} s wall {LAST_CPU:7.2f} s cpu  peak {m2:7.1f} MiB  score {s2.value:.4f}")


def resnet18_store(path, n_images=300, size=64, layers=("relu", "layer1", "layer2", "layer3", "layer4")):
    import torch
    import torchvision

    from neuroattn.features import FeatureWriter

    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None).eval()
    rng = np.random.default_rng(0)
    imgs = torch.from_numpy(rng.random((n_images, 3, size, size), dtype=np.float32))
    names = [f"img{i:04d}.png" for i in range(n_images)]
    acts = {}
    hooks = [getattr(net, name).register_forward_hook(lambda mod, i, o, name=name: acts.__setitem__(name, o))
             for name in layers]
    with FeatureWriter(path, names, attrs={"weights": "random", "backbone": "resnet18"}, dtype="float16") as w, \
            torch.no_grad():
        for b in range(0, n_images, 50):
            net(imgs[b:b + 50])
            batch = {k: acts[k].flatten(2).transpose(1, 2).numpy() for k in layers}
            w.add(batch, {k: tuple(acts[k].shape[2:]) for k in layers})
    for h in hooks:
        h.remove()
    return names, list(layers)


def bench_commitment(n_images=300, n_units=1000):
    from neuroattn.features import FeatureStore

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "features.h5"
        (names, layers), dt, _ = measure(lambda: resnet18_store(path, n_images))
        print(f"[commitment] resnet18 (random weights), {n_images} images 64x64, layers {layers}")
        print(f"  feature extraction + cache: {dt:.1f} s, {path.stat().st_size / 2**20:.0f} MiB on disk")
        store = FeatureStore(path)
        public, held = names[: int(0.8 * n_images)], names[int(0.8 * n_images):]
        # 4 regions of 250 units each reading pooled features of one layer
        rng = np.random.default_rng(1)
        regions = np.repeat(["ret_a", "ret_b", "cat_a", "cat_b"], n_units // 4)
        src = {"ret_a": "layer1", "ret_b": "layer2", "cat_a": "layer3", "cat_b": "layer4"}
        Y = np.zeros((n_images, n_units))
        for roi, lay in src.items():
            F = store.pooled(lay)
            F = (F - F.mean(0)) / (F.std(0) + 1e-6)
            m = regions == roi
            Y[:, m] = F @ rng.normal(size=(F.shape[1], m.sum())) / np.sqrt(F.shape[1])
        Y += rng.normal(size=Y.shape) * Y.std()
        Yp, Yh = Y[: len(public)], Y[len(public):]
        for k in (2, 5):
            com, dt, mem = measure(lambda: commit_layers(stream_layers(store, layers[:k], public, held),
                                                         Yp, Yh, regions))
            print(f"  commit over {k} layers x 4 regions (10 splits, PLS 25, 4x4 pool + PCA 256): "
                  f"{dt:6.1f} s wall {LAST_CPU:6.1f} s cpu  peak {mem:7.1f} MiB")
        print(f"  committed: {com.committed} (planted: {src})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller PLS workload")
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--bs-venv", default="/tmp/bsvenv", help="venv with brainscore_vision (built if absent)")
    ap.add_argument("--no-bs", action="store_true", help="skip the brainscore_vision comparison")
    ap.add_argument("--only", choices=["pls", "commitment"])
    a = ap.parse_args()
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, cpus={os.cpu_count()}")
    if a.only in (None, "pls"):
        bench_pls(*((300, 500, 128) if a.quick else ()), skip_sklearn=a.skip_sklearn,
                  bs_venv=None if a.no_bs else a.bs_venv)
    if a.only in (None, "commitment"):
        bench_commitment()
    print(f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
