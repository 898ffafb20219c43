"""Benchmark: single-trial GLM time per run and per subject, and peak memory, on the default-size
simulated subject (config/config.yaml ``simulate``), ROI voxels only and with the whole brain
(``keep_other``). Run by hand::

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/fmri_glm.py [--root DIR] [--subjects 2] [--method lsa]

The dataset is simulated once into ``--root`` (default /tmp/neuroattn_bench_fmri) in a child
process, so the numbers below are those of preprocessing alone. Peak memory: tracemalloc's peak
per subject (NumPy allocations are traced) and the process's max RSS; subjects run one after the
other in this process to show that memory does not grow with the number of subjects.
"""
import argparse
import multiprocessing as mp
import resource
import time
import tracemalloc
import warnings
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _simulate(root, n_subjects):
    from neuroattn.data.simulate import simulate_fmri_from_config

    cfg = yaml.safe_load(open(ROOT / "config" / "config.yaml"))
    sim = dict(cfg["simulate"])
    sim["fmri"] = {**sim["fmri"], "n_subjects": n_subjects}
    simulate_fmri_from_config(root, sim, task=cfg["fmri"]["task"], seed=cfg["seed"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/tmp/neuroattn_bench_fmri")
    ap.add_argument("--subjects", type=int, default=2)
    ap.add_argument("--method", default="lsa", choices=["lsa", "lss"])
    ap.add_argument("--no-full-brain", action="store_true", help="skip the keep_other (whole brain) pass")
    args = ap.parse_args()
    root = Path(args.root)
    if not (root / "dataset_description.json").exists():
        t0 = time.perf_counter()
        p = mp.get_context("spawn").Process(target=_simulate, args=(str(root), args.subjects))
        p.start()
        p.join()
        if p.exitcode:
            raise SystemExit(f"simulation failed (exit {p.exitcode})")
        print(f"simulated {args.subjects} subject(s) into {root} in {time.perf_counter() - t0:.1f} s")
    from neuroattn.data.fmri import preprocess_subject

    warnings.simplefilter("ignore")
    subjects = sorted(p.name[4:] for p in root.glob("sub-*"))[: args.subjects]
    passes = [("roi", False)] + ([] if args.no_full_brain else [("brain", True)])
    for name, keep_other in passes:
        for s in subjects:
            tracemalloc.start()
            t0 = time.perf_counter()
            res = preprocess_subject(root, s, "vision", glm={"method": args.method}, keep_other=keep_other)
            dt = time.perf_counter() - t0
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            runs = res.provenance["glm_seconds_per_run"]
            b = res.betas
            print(f"{args.method} {name:5s} sub-{s}: {len(runs)} runs, {b.trial_betas.shape[0]} trials x "
                  f"{b.trial_betas.shape[1]} voxels | per run mean {sum(runs) / len(runs):.2f} s "
                  f"(min {min(runs):.2f}, max {max(runs):.2f}) | per subject {dt:.1f} s | "
                  f"traced peak {peak / 2**20:.0f} MiB | max RSS so far "
                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
            del res, b


if __name__ == "__main__":
    main()
