"""Time and peak memory per layer of the layer commitment (PLS predictivity), layers streamed.

Issue 19 section 3: layer commitment over many layers stays streamed (memory flat in the number
of layers), with the time per layer printed for a torchvision resnet50 at 224 px on a few hundred
images.

1. A torchvision ``--arch`` (default resnet50) with random weights (``load_backbone(arch,
   None)``: nothing downloaded) extracts ``--layers`` (default: the output of every bottleneck
   block, ``layer1.0`` ... ``layer4.2``, 16 for resnet50) of ``--images`` random-noise images at
   ``--size`` px into a float16 feature cache, as rule ``extract_features`` does
   (``cache_features``; seconds and store size printed).
2. Synthetic voxel responses: ``--voxels`` units in ``--rois`` regions; region r reads a random
   linear map of the global-average-pooled features of a planted layer (spread over depth), plus
   noise of the same variance.
3. The commitment as rule ``layer_commitment`` runs it: ``stream_layers`` (tokens read 128 images
   at a time, pooled to ``scoring.pool_grid`` cells, PCA ``scoring.pca`` fitted on the public
   images) feeding ``commit_layers`` (``scoring.regression``, ``n_splits``, ``n_components`` from
   config/config.yaml), ``--heldout`` of the images held out. One layer is in memory at a time.

Per layer it prints: tokens x channels, seconds to read + pool + PCA the layer, seconds to score
it (every region: the cross-validated predictivity and the held-out fit), peak RSS during that
layer (VmHWM, reset through /proc/self/clear_refs before each layer) and the RSS still held after
it, both over the RSS before the first layer. Memory is flat in the number of layers when the
held RSS does not grow from layer to layer (printed: its growth from the first layer to the last)
and the peak follows the layer's own size, not its depth. Then the committed layer of each region
against the planted one (a sanity check, not a goal).

Full size (about 3.3 GB of float16 store on disk, minutes of CPU; run it on an idle machine)::

    OMP_NUM_THREADS=1 python benchmarks/commitment_layers.py --images 300 --size 224

Small size, to see it work::

    OMP_NUM_THREADS=1 python benchmarks/commitment_layers.py --images 60 --size 112

Options: ``--arch resnet50 --layers L ... --voxels 1000 --rois 4 --heldout 0.2 --batch-size 16
--threads 1 --workdir DIR --seed 0``.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def block_layers(backbone) -> list[str]:
    """Every residual block of a torchvision ResNet (``layer<i>.<j>``), in depth order."""
    names = [n for n, _ in backbone.model.named_modules() if re.fullmatch(r"layer\d\.\d+", n)]
    return names or list(backbone.layers)


def planted_responses(store, layers, images, n_voxels, n_rois, rng):
    """(Y (n, n_voxels), regions (n_voxels,), planted {region: layer}): region r reads a linear
    map of the mean-pooled features of a layer at depth fraction (r + 0.5) / n_rois, plus noise."""
    per = -(-n_voxels // n_rois)
    regions = np.repeat([f"roi{r}" for r in range(n_rois)], per)[:n_voxels]
    planted = {f"roi{r}": layers[min(len(layers) - 1, int((r + 0.5) / n_rois * len(layers)))] for r in range(n_rois)}
    Y = np.empty((len(images), n_voxels))
    for roi, layer in planted.items():
        X = store.pooled(layer, images).astype(np.float64)
        X = (X - X.mean(0)) / (X.std(0) + 1e-8)
        cols = np.flatnonzero(regions == roi)
        signal = X @ rng.normal(size=(X.shape[1], len(cols))) / np.sqrt(X.shape[1])
        Y[:, cols] = signal + rng.normal(size=signal.shape) * signal.std(0)
    return Y, regions, planted


def timed_layers(stream, rows):
    """Pass ``stream``'s (layer, Xp, Xh) through, recording per layer the read seconds, the
    scoring seconds (until the next layer is asked for), peak and held RSS (KiB)."""
    base = _kib("VmRSS")
    can_reset = _reset_peak()
    t = time.perf_counter()
    for layer, Xp, Xh in stream:
        read = time.perf_counter() - t
        row = {"layer": layer, "read_s": read, "features": Xp.shape[1]}
        t = time.perf_counter()
        yield layer, Xp, Xh
        row["score_s"] = time.perf_counter() - t
        row["peak_kib"] = _kib("VmHWM") - base if can_reset else float("nan")
        row["held_kib"] = _kib("VmRSS") - base
        rows.append(row)
        _reset_peak()
        t = time.perf_counter()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--layers", nargs="+", help="default: every residual block")
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--voxels", type=int, default=1000)
    ap.add_argument("--rois", type=int, default=4)
    ap.add_argument("--heldout", type=float, default=0.2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--workdir", help="where the feature store goes (default: a temporary folder)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    import torch

    from neuroattn.config import section_defaults
    from neuroattn.features.backbones import load_backbone
    from neuroattn.features.cache import cache_features
    from neuroattn.features.store import FeatureStore
    from neuroattn.metrics.commitment import commit_layers
    from neuroattn.stages.scoring import stream_layers
    from neuroattn.utils import set_threads

    set_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    sc = section_defaults("scoring")
    bb = load_backbone(a.arch, None, image_size=a.size)                 # random weights: no download
    layers = a.layers or block_layers(bb)
    images = rng.integers(0, 256, (a.images, a.size, a.size, 3), dtype=np.uint8)
    names = np.array([f"img{i:04d}" for i in range(a.images)])
    n_held = max(3, int(round(a.heldout * a.images)))
    public, heldout = names[:-n_held], names[-n_held:]
    print(f"commitment_layers: {a.arch} (random weights) at {a.size} px, {a.images} images ({len(public)} public, "
          f"{n_held} held out), {len(layers)} layers, {a.voxels} voxels in {a.rois} regions; {sc['regression']} "
          f"{sc['n_components']} components, {sc['n_splits']} splits, pool_grid {sc['pool_grid']}, PCA {sc['pca']}; "
          f"{a.threads} thread(s), load average {os.getloadavg()[0]:.1f}", flush=True)

    if a.workdir:
        os.makedirs(a.workdir, exist_ok=True)  # a new folder is fine; the store goes in a temporary one in it
    with tempfile.TemporaryDirectory(dir=a.workdir) as tmp:
        path = Path(tmp) / "features.h5"
        t = time.perf_counter()
        cache_features(bb, images, path, names=list(names), layers=layers, batch_size=a.batch_size, dtype="float16")
        del images, bb
        print(f"extraction: {time.perf_counter() - t:.1f} s, store {path.stat().st_size / 2**20:.0f} MiB "
              f"(float16)", flush=True)
        store = FeatureStore(path)
        Y, regions, planted = planted_responses(store, layers, names, a.voxels, a.rois, rng)
        Yp, Yh = Y[:len(public)], Y[len(public):]

        rows: list[dict] = []
        t = time.perf_counter()
        stream = stream_layers(store, layers, public, heldout, pool_grid=sc["pool_grid"], pca=sc["pca"],
                               random_state=a.seed)
        com = commit_layers(timed_layers(stream, rows), Yp, Yh, regions, regression=sc["regression"],
                            n_splits=sc["n_splits"], train_size=sc["train_size"], random_state=sc["random_state"],
                            n_components=sc["n_components"])
        total = time.perf_counter() - t
        shapes = {k: (store.grid(k), store.channels(k)) for k in layers}

    print(f"{'layer':>10s} {'tokens x channels':>18s} {'features':>8s} {'read s':>7s} {'score s':>8s} "
          f"{'peak RSS MiB':>12s} {'held MiB':>9s}")
    for r in rows:
        (h, w), c = shapes[r["layer"]]
        print(f"{r['layer']:>10s} {f'{h * w} x {c}':>18s} {r['features']:8d} {r['read_s']:7.2f} {r['score_s']:8.2f} "
              f"{r['peak_kib'] / 1024:12.0f} {r['held_kib'] / 1024:9.0f}")
    per = np.array([r["read_s"] + r["score_s"] for r in rows])
    held = np.array([r["held_kib"] for r in rows]) / 1024
    peak = np.array([r["peak_kib"] for r in rows]) / 1024
    print(f"total {total:.1f} s for {len(rows)} layers: {per.mean():.2f} s per layer (min {per.min():.2f}, "
          f"max {per.max():.2f}); reading {sum(r['read_s'] for r in rows):.1f} s, scoring "
          f"{sum(r['score_s'] for r in rows):.1f} s")
    print(f"memory: peak {np.nanmax(peak):.0f} MiB over the RSS before the first layer (at "
          f"{rows[int(np.nanargmax(peak))]['layer']}); held RSS after the first layer {held[0]:.0f} MiB, after the "
          f"last {held[-1]:.0f} MiB (growth {held[-1] - held[0]:+.0f} MiB over {len(rows) - 1} more layers)")
    for roi in planted:
        print(f"{roi}: planted {planted[roi]}, committed {com.committed[roi]}")


if __name__ == "__main__":
    main()
