"""Benchmark: time to simulate the default fMRI dataset (config/config.yaml ``simulate``), its size,
and the quality figures the downstream tests rely on. Run by hand::

    PYTHONPATH=. .venv/bin/python benchmarks/simulate.py [--root DIR] [--config config/config.yaml] [--no-check]

Prints wall time (target: < 120 s on 2 cores for the default), dataset size, ROI voxel counts, and
with the checks (on sub-01):
- nilearn FirstLevelModel LSA (glover, cosine 0.008 Hz, AR(1)) on run 1: per-voxel Pearson r of the
  single-trial betas against the true trial responses (target: median >= 0.9);
- OLS LSA betas of every run, NSD ncsnr on the shared (repeated) images, noise ceiling, and its
  Spearman correlation with the true reliability (target: >= 0.8).
"""
import argparse
import os
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _size(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**20


def _check(root: Path, task: str, tr: float):
    import h5py
    import nibabel as nib
    import pandas as pd
    from nilearn.glm.first_level import FirstLevelModel, make_first_level_design_matrix
    from scipy.stats import spearmanr

    from neuroattn.metrics.ceiling import ncsnr, nsd_noise_ceiling

    s = "01"
    with h5py.File(root / "derivatives" / "truth" / f"sub-{s}" / f"sub-{s}_desc-truth.h5") as f:
        ijk, truth, run_of, rel = f["voxel_ijk"][()], f["trial_response"][()], f["trial_run"][()], f["reliability"][()]
    func = root / f"sub-{s}" / "func"
    bolds = sorted(func.glob("*_bold.nii.gz"), key=lambda p: int(p.name.split("run-")[1].split("_")[0]))
    # 1. nilearn LSA on run 1
    img = nib.load(bolds[0])
    ev = pd.read_csv(str(bolds[0]).replace("_bold.nii.gz", "_events.tsv"), sep="\t")
    ev = ev.assign(trial_type=[f"t{i:04d}" for i in range(len(ev))])
    mask = np.zeros(img.shape[:3], np.uint8)
    mask[tuple(ijk.T)] = 1
    t0 = time.perf_counter()
    glm = FirstLevelModel(t_r=tr, hrf_model="glover", drift_model="cosine", high_pass=0.008, noise_model="ar1",
                          mask_img=nib.Nifti1Image(mask, img.affine), minimize_memory=True)
    glm.fit(img, events=ev[["onset", "duration", "trial_type"]])
    b = np.stack([np.asarray(glm.compute_contrast(c, output_type="effect_size").dataobj)[tuple(ijk.T)]
                  for c in ev.trial_type])
    t_glm = time.perf_counter() - t0
    tr1 = truth[run_of == 1]
    r = np.array([np.corrcoef(b[:, v], tr1[:, v])[0, 1] for v in range(tr1.shape[1])])
    print(f"nilearn LSA (AR1) run 1, {len(ev)} trials x {tr1.shape[1]} voxels in {t_glm:.1f} s: "
          f"r vs truth median {np.median(r):.3f}, 5th pct {np.percentile(r, 5):.3f}, min {r.min():.3f}")
    # 2. OLS LSA on every run -> ncsnr on the repeated images -> noise ceiling vs true reliability
    betas, images = [], []
    for bold in bolds:
        img = nib.load(bold)
        y = np.asarray(img.dataobj)[tuple(ijk.T)].T.astype(float)
        y = (y / y.mean(0) - 1) * 100
        ev = pd.read_csv(str(bold).replace("_bold.nii.gz", "_events.tsv"), sep="\t")
        X = make_first_level_design_matrix(np.arange(img.shape[3]) * tr,
                                           ev.assign(trial_type=[f"t{i:04d}" for i in range(len(ev))])[["onset", "duration", "trial_type"]],
                                           hrf_model="glover", drift_model="cosine", high_pass=0.008)
        betas.append(np.linalg.lstsq(X.to_numpy(), y, rcond=None)[0][: len(ev)])
        images += ev.stim_file.tolist()
    betas, images = np.concatenate(betas), np.array(images)
    r_all = np.array([np.corrcoef(betas[:, v], truth[:, v])[0, 1] for v in range(truth.shape[1])])
    print(f"OLS LSA all runs: r vs truth median {np.median(r_all):.3f}, 5th pct {np.percentile(r_all, 5):.3f}")
    names, counts = np.unique(images, return_counts=True)
    n_rep = counts.max()
    rep = names[counts == n_rep]
    R = np.stack([np.stack([betas[images == im][k] for im in rep]) for k in range(n_rep)])
    z = (betas - betas.mean(0)) / betas.std(0)
    Rz = np.stack([np.stack([z[images == im][k] for im in rep]) for k in range(n_rep)])
    nc = nsd_noise_ceiling(ncsnr(Rz), np.full(len(rep), n_rep))
    rho = spearmanr(nc, rel).statistic
    print(f"noise ceiling ({len(rep)} images x {n_rep} repeats): median {np.median(nc):.3f}; "
          f"Spearman vs true reliability {rho:.3f}  (raw betas: {spearmanr(ncsnr(R), rel).statistic:.3f})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/tmp/neuroattn_bench_sim/fmri")
    ap.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    ap.add_argument("--no-check", action="store_true")
    args = ap.parse_args()
    cfg = yaml.safe_load(open(args.config))
    base = yaml.safe_load(open(ROOT / "config" / "config.yaml"))
    sim = {**base["simulate"], **cfg.get("simulate", {})}
    task, seed = base["fmri"]["task"], cfg.get("seed", base["seed"])

    t0 = time.perf_counter()
    from neuroattn.data.simulate import simulate_fmri_from_config  # noqa: E402  (import time counted)
    t_import = time.perf_counter() - t0
    summary = simulate_fmri_from_config(args.root, sim, task=task, seed=seed, overwrite=True)
    wall = time.perf_counter() - t0
    root = Path(args.root)
    print(f"simulate_fmri ({args.config}): {wall:.1f} s wall (imports {t_import:.1f} s), "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {os.cpu_count()} CPUs; "
          f"{_size(root):.1f} MiB on disk")
    for s in summary["subjects"]:
        print(f"  sub-{s}: {summary[s]['n_trials']} trials in {summary[s]['n_runs']} runs, "
              f"{summary[s]['n_voxels']} ROI voxels {summary[s]['rois']}")
    if not args.no_check:
        _check(root, task, float(sim["fmri"]["tr"]))


if __name__ == "__main__":
    main()
