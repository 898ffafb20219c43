"""Memory and time of one encoder fit + prediction at growing numbers of training images.

A synthetic subject per size: a feature store (float16 HDF5, as the workflow writes it) of
``n`` training + ``--test`` test images with ``--side``^2 tokens x ``--channels`` channels (the
channels after PCA), betas for ``--voxels`` voxels in 8 ROIs x 2 hemispheres (voxels read planted
linear maps of pooled ROI-specific token groups, plus noise), an image split.  Then, in a fresh
process per size, ``load_encoding_data`` + ``fit_encoder`` (``--model``, ``--epochs``) + the
test prediction, the way ``neuroattn.stages.encode`` runs them; peak RSS is the process's VmHWM
(high-water mark of resident memory) over the state right before loading (reset through
/proc/self/clear_refs), so the script's own imports are not counted.

Prints one row per size (seconds, peak RSS, the in-memory token array ``n x T x C x 4 B`` and
beta array ``n x V x 4 B`` for comparison, store size on disk), then fits time and memory linearly in ``n`` and extrapolates to
NSD (about 9,000 training images per subject, 8 subjects; 961 tokens, PCA 256, ~40,000 voxels).
Goal of issue 19: memory flat in ``n`` (within 20%), time linear.

``--roots A B``: run every size with the package of each code root (e.g. a checkout before
streaming and one after; default: this checkout), on the same synthetic subjects; one table and
one memory line per root. Memory is not time: these numbers hold on a busy machine too.

Usage: python benchmarks/scale.py [--sizes 1000 2000 4000 8000] [--side 31] [--channels 256]
       [--voxels 40000] [--model routing] [--epochs 1] [--workdir DIR] [--roots DIR ...]
The defaults are NSD scale and need tens of GB of memory and disk at 8k images; on a small
machine run e.g. ``--sizes 250 500 1000 2000 --side 11 --channels 64 --voxels 4000``.
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
if "--_child" not in sys.argv:  # a child imports the package of its --roots entry (PYTHONPATH)
    sys.path.insert(0, str(ROOT))

NSD_TRAIN, NSD_SUBJECTS = 9000, 8


def _kb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def make_subject(folder: Path, n_train, n_test, side, channels, voxels, seed=0):
    """Write features.h5, betas.h5 and split.tsv for one synthetic subject; returns the store's bytes."""
    import pandas as pd

    from neuroattn.data.betas import Betas
    from neuroattn.data.splits import write_split
    from neuroattn.features import FeatureWriter

    rng = np.random.default_rng(seed)
    n = n_train + n_test
    T = side * side
    names = np.array([f"img{i:06d}" for i in range(n)])
    rois = np.repeat([f"roi{r}" for r in range(8)], 2)                  # 8 ROIs x 2 hemispheres
    groups = np.array_split(np.arange(T), len(rois))                     # each ROI-hemi reads its tokens
    maps = rng.normal(size=(len(rois), channels, -(-voxels // len(rois)))).astype(np.float32) / np.sqrt(channels)
    roi_of = np.repeat(np.arange(len(rois)), -(-voxels // len(rois)))[:voxels]
    Y = np.empty((n, voxels), dtype=np.float32)
    batch = 256
    with FeatureWriter(folder / "features.h5", list(names), attrs={"backbone": "synthetic"}) as w:
        for s in range(0, n, batch):
            X = rng.normal(size=(min(batch, n - s), T, channels)).astype(np.float32)
            w.add({"layer": X}, {"layer": (side, side)})
            for g, idx in enumerate(groups):
                cols = np.flatnonzero(roi_of == g)
                Y[s:s + len(X), cols] = X[:, idx].mean(axis=1) @ maps[g, :, :len(cols)] * np.sqrt(len(idx))
    Y += rng.normal(size=Y.shape).astype(np.float32)
    Betas(subject="01", trial_betas=Y, trial_image=names, voxel_roi=np.array([r for r in rois])[roi_of],
          voxel_hemi=np.where(roi_of % 2 == 0, "lh", "rh")).write(folder / "betas.h5")
    write_split(pd.DataFrame({"image": names, "split": ["train"] * n_train + ["test"] * n_test}),
                folder / "split.tsv")
    return (folder / "features.h5").stat().st_size


def child(spec):
    """One fit + prediction in this (fresh) process; prints a JSON line."""
    from neuroattn.models.encoding import fit_encoder
    from neuroattn.stages.encode import load_encoding_data

    folder = Path(spec["folder"])
    Path("/proc/self/clear_refs").write_text("5")                       # reset VmHWM to the current RSS
    base = _kb("VmRSS")
    t = time.perf_counter()
    data = load_encoding_data(folder / "betas.h5", folder / "features.h5", folder / "split.tsv", "layer")
    t_load = time.perf_counter() - t
    load_peak = _kb("VmHWM") - base
    params = {"max_epochs": spec["epochs"], "patience": spec["epochs"], "n_ensemble": 1} \
        if spec["model"] in ("routing",) else ({"max_epochs": spec["epochs"]} if spec["model"] == "spatial_feature" else {})
    res = fit_encoder(data, spec["model"], params, seed=0, device="cpu", voxel_maps=0)
    dt = time.perf_counter() - t
    pred = res["predictions"]
    r = np.nanmedian([np.corrcoef(pred[:, j], data.Y_test[:, j])[0, 1] for j in range(0, pred.shape[1], 50)])
    print(json.dumps({"seconds": dt, "load_seconds": t_load, "peak_kib": _kb("VmHWM") - base,
                      "load_peak_kib": load_peak, "test_r": float(r)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    ap.add_argument("--test", type=int, default=100)
    ap.add_argument("--side", type=int, default=31)
    ap.add_argument("--channels", type=int, default=256)
    ap.add_argument("--voxels", type=int, default=40_000)
    ap.add_argument("--model", default="routing")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--workdir", help="where the synthetic subjects go (default: a temporary folder)")
    ap.add_argument("--roots", nargs="+", default=[str(ROOT)], help="code roots to compare (PYTHONPATH)")
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._child:
        import torch

        torch.set_num_threads(a.threads)
        return child(json.loads(a._child))
    T = a.side ** 2
    print(f"scale: model {a.model}, {a.epochs} epoch(s), {T} tokens x {a.channels} channels, {a.voxels} voxels, "
          f"{a.test} test images, {a.threads} thread(s); load average {os.getloadavg()[0]:.1f}", flush=True)
    print(f"{'n_train':>8s} {'fit+pred s':>10s} {'load s':>7s} {'peak RSS MiB':>12s} {'load peak':>10s} "
          f"{'tokens f32 MiB':>14s} {'betas f32 MiB':>13s} {'store MiB':>9s} {'test r':>7s}", flush=True)
    results = {root: [] for root in a.roots}
    with tempfile.TemporaryDirectory(dir=a.workdir) as tmp:
        for n in a.sizes:
            folder = Path(tmp) / f"n{n}"
            folder.mkdir()
            store = make_subject(folder, n, a.test, a.side, a.channels, a.voxels)
            spec = {"folder": str(folder), "model": a.model, "epochs": a.epochs}
            for root in a.roots:
                rows = results[root]
                env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
                out = subprocess.run([sys.executable, __file__, "--threads", str(a.threads), "--_child",
                                      json.dumps(spec)], capture_output=True, text=True, env=env)
                tag = f"{n:8d}" + (f"  [{root}]" if len(a.roots) > 1 else "")
                if out.returncode:
                    print(f"{tag} FAILED: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}")
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                r.update(n=n, store=store, tokens=(n + a.test) * T * a.channels * 4)
                rows.append(r)
                print(f"{n:8d} {r['seconds']:10.1f} {r['load_seconds']:7.1f} {r['peak_kib'] / 1024:12.0f} "
                      f"{r['load_peak_kib'] / 1024:10.0f} {r['tokens'] / 2**20:14.0f} "
                      f"{(n + a.test) * a.voxels * 4 / 2**20:13.0f} {store / 2**20:9.0f} "
                      f"{r['test_r']:7.3f}" + (f"  {root}" if len(a.roots) > 1 else ""), flush=True)
            for f in folder.iterdir():
                f.unlink()
    for root in a.roots:
        if len(a.roots) > 1:
            print(f"-- {root}")
        summarize(results[root], a, T)


def summarize(rows, a, T):
    """Memory flatness, time per image and the extrapolation to NSD of one root's rows."""
    if len(rows) >= 2:
        n = np.array([r["n"] for r in rows], float)
        mem = np.array([r["peak_kib"] * 1024 for r in rows], float)
        sec = np.array([r["seconds"] for r in rows], float)
        mslope, mcept = np.polyfit(n, mem, 1)
        tslope, tcept = np.polyfit(n, sec, 1)
        flat = mem.max() / mem.min()
        print(f"memory: {flat:.2f}x from {int(n[0])} to {int(n[-1])} images (goal: flat within 1.20x); "
              f"{mslope / 2**20:.3f} MiB per training image")
        print(f"time: {tslope:.4f} s per training image + {tcept:.1f} s")
        store_per = np.mean([r["store"] / (r["n"] + a.test) for r in rows])
        print(f"extrapolated to NSD ({NSD_TRAIN} training images, at these token/channel/voxel sizes): peak "
              f"{(mslope * NSD_TRAIN + mcept) / 2**30:.1f} GiB and {(tslope * NSD_TRAIN + tcept) / 60:.1f} min per "
              f"subject and {a.epochs} epoch(s); {NSD_SUBJECTS} subjects {NSD_SUBJECTS * (tslope * NSD_TRAIN + tcept) / 3600:.1f} h; "
              f"feature store {store_per * (NSD_TRAIN + a.test) / 2**30:.1f} GiB on disk per subject's images")
        # the same growth per image in units of the image's float32 token row, carried to NSD's rows
        row = T * a.channels * 4
        nsd_row = 961 * 256 * 4
        print(f"growth per training image = {mslope / row:.1f}x its float32 token row ({T} x {a.channels}); at "
              f"NSD's 961 tokens x PCA 256 that is {mslope / row * nsd_row * NSD_TRAIN / 2**30:.1f} GiB for "
              f"{NSD_TRAIN} images (proportional estimate), store {961 * 256 * 2 * (NSD_TRAIN + a.test) / 2**30:.1f} "
              f"GiB (float16)")


if __name__ == "__main__":
    main()
