"""Benchmark: simulated EEG generation time, EEG preprocessing time and peak memory per subject.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/eeg_preprocessing.py            # default config
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/eeg_preprocessing.py --bids-root /path/to/bids

Each subject is preprocessed in its own process (as the workflow's per-subject jobs are), so the
peak resident memory printed is that subject's alone and shows whether memory grows with data.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CHILD = r"""
import json, resource, sys, time
from neuroattn.data.eeg import preprocess_subject, write_epochs
root, sub, out, cfg = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
t = time.perf_counter()
epochs, table = preprocess_subject(root, sub, cfg)
write_epochs(epochs, table, f"{out}/sub-{sub}_epo.fif", f"{out}/sub-{sub}_desc-epochs.tsv")
print(json.dumps({"seconds": time.perf_counter() - t, "n_epochs": len(epochs), "n_dropped": int((~table.kept).sum()),
                  "n_runs": int(table.groupby(["session", "run"]).ngroups), "shape": list(epochs.get_data().shape[1:]),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bids-root", default=None, help="an EEG BIDS dataset (default: simulate the default one)")
    ap.add_argument("--config", default=str(REPO / "config/config.yaml"))
    ap.add_argument("--subjects", nargs="*", default=None)
    args = ap.parse_args(argv)
    cfg = yaml.safe_load(Path(args.config).read_text())
    eeg = {k: v for k, v in cfg["eeg"].items() if k not in ("bids_root", "subjects")}
    with tempfile.TemporaryDirectory(prefix="neuroattn-bench-eeg-") as tmp:
        root = args.bids_root
        if root is None:
            from neuroattn.data.simulate_eeg import simulate_from_config

            root = f"{tmp}/eeg"
            t = time.perf_counter()
            simulate_from_config(root, cfg["simulate"]["eeg"], task=eeg["task"], events=eeg["events"], seed=cfg["seed"])
            dt = time.perf_counter() - t
            size = sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file()) / 2**20
            print(f"simulate default EEG dataset ({cfg['simulate']['eeg']}): {dt:.1f} s, {size:.1f} MiB")
        from neuroattn.data.eeg import list_subjects

        subjects = args.subjects or list_subjects(root)
        print(f"{'subject':>8} {'runs':>5} {'epochs':>7} {'dropped':>8} {'shape':>10} {'seconds':>8} {'peak MB':>8}")
        times = []
        for sub in subjects:
            res = subprocess.run(
                [sys.executable, "-c", CHILD, str(root), sub, tmp, json.dumps(eeg)],
                capture_output=True, text=True, cwd=REPO, check=True,
            )
            r = json.loads(res.stdout.strip().splitlines()[-1])
            times.append(r["seconds"])
            shape = "x".join(map(str, r["shape"]))
            print(f"{sub:>8} {r['n_runs']:>5} {r['n_epochs']:>7} {r['n_dropped']:>8} {shape:>10} "
                  f"{r['seconds']:>8.2f} {r['peak_rss_mb']:>8.0f}")
        print(f"preprocessing: {sum(times) / len(times):.2f} s per subject on average "
              f"(min {min(times):.2f}, max {max(times):.2f}; process start-up and imports excluded)")


if __name__ == "__main__":
    main()
