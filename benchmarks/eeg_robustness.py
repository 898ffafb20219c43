"""Robustness of the EEG decoders' defaults across simulated datasets (issue 17).

Simulates BIDS EEG datasets over the simulator's settings (trials per class, channels, sampling
rate, classes, session shift, file format), reads each through the BIDS reader with only
``bids_root`` and ``events`` set (every other ``eeg`` / ``eeg_models`` key from
config/config.yaml), runs every default model under the cross-session ``within`` protocol (train
session 1, test session 2), and prints every model's accuracy per setting and whether BaseNet
meets the goal: within 5 points of CSP+LDA (or better) wherever there are >= 60 trials per class,
and never at chance where CSP+LDA is 20 points above it.

The grid is one-at-a-time around a base setting (60 trials per class and session, 22 channels,
250 Hz, 3 classes, the default session shift, EDF) plus the issue's hard case (3 classes, 32
channels, 256 Hz, BrainVision, two sessions of 120 trials, a gain shift). Datasets and their
epochs are cached under ``--workdir``, so a second run (e.g. after changing a default) only
refits the models. Run by hand::

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/eeg_robustness.py --quick
    ... benchmarks/eeg_robustness.py --subjects 3 --out sweep.tsv
    ... benchmarks/eeg_robustness.py --quick --eeg-models '{"lr": 0.001}'   # try another default

``--quick``: one subject per setting and the BaseNet / EEGNet / ShallowConvNet / CSP+LDA / TS+LR
models (the attention variants are left to the full run). Accuracies, not timings: the numbers
do not depend on the machine's load.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

CLASSES = ("left_hand", "right_hand", "feet", "tongue")
BASE = dict(trials=60, n_channels=22, sfreq=250, n_classes=3, session_shift=1.0, gain_shift=0.05, format="edf")
#: name -> changes from BASE (one at a time), then the issue's hard case.
GRID = {
    "base": {},
    "trials20": {"trials": 20},
    "trials150": {"trials": 150},
    "ch16": {"n_channels": 16},
    "ch64": {"n_channels": 64},
    "sf128": {"sfreq": 128},
    "sf512": {"sfreq": 512},
    "cls2": {"n_classes": 2},
    "cls4": {"n_classes": 4},
    "noshift": {"session_shift": 0.0},
    "brainvision": {"format": "brainvision"},
    "hard": {"trials": 40, "n_channels": 32, "sfreq": 256, "n_classes": 3, "format": "brainvision",
             "gain_shift": 0.3},
}
QUICK_MODELS = ("basenet", "eegnet", "shallow", "csp_lda", "ts_lr")


def _runs(trials: int) -> tuple[int, int]:
    """(runs, trials per class per run): the fewest runs of at most 25 trials per class."""
    for r in range(1, trials + 1):
        if trials % r == 0 and trials // r <= 25:
            return r, trials // r
    raise AssertionError(trials)


def setting(name: str) -> dict:
    return {**BASE, **GRID[name]}


def load_setting(name: str, workdir: Path, n_subjects: int, seed: int = 1):
    """Simulate (once) and read the setting's dataset; returns {subject: EEGData} and classes."""
    from neuroattn.data.eeg import load_epochs, preprocess_subject, write_epochs
    from neuroattn.data.simulate_eeg import simulate_eeg_dataset

    s = setting(name)
    classes = list(CLASSES[: s["n_classes"]])
    key = json.dumps({**s, "n_subjects": n_subjects, "seed": seed}, sort_keys=True)
    root = workdir / name
    stamp = root / ".setting.json"
    if not (stamp.exists() and stamp.read_text() == key):
        n_runs, per_run = _runs(s["trials"])
        simulate_eeg_dataset(root, n_subjects=n_subjects, n_sessions=2, n_runs=n_runs,
                             trials_per_class_per_run=per_run, sfreq=float(s["sfreq"]), classes=classes,
                             format=s["format"], n_channels=s["n_channels"], session_shift=s["session_shift"],
                             gain_shift=s["gain_shift"], seed=seed, mrcp=1.0)
        stamp.write_text(key)
    datas = {}
    for k in range(1, n_subjects + 1):
        sub = f"{k:02d}"
        fif = workdir / f"{name}_sub-{sub}_epo.fif"
        if not fif.exists() or fif.stat().st_mtime < stamp.stat().st_mtime:
            # only bids_root and events set: everything else from config/config.yaml
            ep, tab = preprocess_subject(root, sub, {"bids_root": str(root), "events": classes})
            write_epochs(ep, tab, fif, workdir / f"{name}_sub-{sub}_desc-epochs.tsv")
        datas[sub] = load_epochs(fif)
    return datas, classes


def run_setting(datas, models, overlay: dict, seed: int = 0, align: bool | None = None):
    """Accuracy per model (mean over subjects) and per subject, under ``within``; ``align``:
    Euclidean alignment per session (default: config ``eeg.euclidean_alignment``)."""
    from neuroattn.config import section_defaults
    from neuroattn.models.eeg_evaluation import run_protocol
    from neuroattn.stages.eeg import protocol_settings

    cfg = {**section_defaults("eeg_models"), **overlay, "models": list(models)}
    align = bool(section_defaults("eeg")["euclidean_alignment"]) if align is None else align
    models, seeds, settings = protocol_settings(cfg, "within", seed, "cpu")
    per_sub = {}
    for sub in sorted(datas):
        results, _ = run_protocol("within", datas, sub, models, seeds=seeds, settings=settings, align=align,
                                  importance=False)
        per_sub[sub] = {r.name: float(np.mean(r.accuracy)) for r in results}
    return {m: float(np.mean([per_sub[s][m] for s in per_sub])) for m in models}, per_sub


def goal(s: dict, acc: dict) -> str:
    """'ok' / 'FAIL (...)' for BaseNet against CSP+LDA (the issue's goal)."""
    if "basenet" not in acc or "csp_lda" not in acc:
        return "n/a"
    chance = 1.0 / s["n_classes"]
    b, c = acc["basenet"], acc["csp_lda"]
    fails = []
    if s["trials"] >= 60 and b < c - 0.05:
        fails.append(f"{100 * (c - b):.0f} pts below CSP+LDA")
    if c >= chance + 0.20 and b < chance + 0.05:
        fails.append("at chance")
    return "ok" if not fails else "FAIL (" + "; ".join(fails) + ")"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one subject, the plain nets and the classic pipelines")
    ap.add_argument("--subjects", type=int, default=None, help="subjects per setting (default 3, --quick 1)")
    ap.add_argument("--settings", default=",".join(GRID), help="comma-separated names of " + ",".join(GRID))
    ap.add_argument("--models", default=None, help="comma-separated models (default: config eeg_models.models)")
    ap.add_argument("--eeg-models", default="{}", help="JSON laid over the eeg_models defaults (to try a change)")
    ap.add_argument("--no-align", action="store_true", help="no Euclidean alignment (to see what it does)")
    ap.add_argument("--workdir", default="/tmp/neuroattn_eeg_robustness", help="cache of datasets and epochs")
    ap.add_argument("--out", default=None, help="also write the table as TSV")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from neuroattn.config import section_defaults

    n_sub = args.subjects or (1 if args.quick else 3)
    models = (args.models.split(",") if args.models else
              [m for m in section_defaults("eeg_models")["models"] if not args.quick or m in QUICK_MODELS])
    overlay = json.loads(args.eeg_models)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    names = [n for n in args.settings.split(",") if n]
    unknown = [n for n in names if n not in GRID]
    if unknown:
        ap.error(f"unknown setting(s) {unknown}; choose from {list(GRID)}")
    cols = ["setting", "trials", "chans", "sfreq", "classes", "shift", "gain", "format"] + models + ["basenet_goal"]
    rows = []
    print(f"# within (train session 1, test session 2), {n_sub} subject(s), eeg_models overlay {overlay}"
          + (", no Euclidean alignment" if args.no_align else ""))
    print("\t".join(cols), flush=True)
    for name in names:
        s = setting(name)
        t0 = time.perf_counter()
        datas, _ = load_setting(name, workdir, n_sub)
        t1 = time.perf_counter()
        acc, per_sub = run_setting(datas, models, overlay, align=False if args.no_align else None)
        row = [name, s["trials"], s["n_channels"], s["sfreq"], s["n_classes"], s["session_shift"], s["gain_shift"],
               s["format"]] + [f"{acc[m]:.3f}" for m in models] + [goal(s, acc)]
        rows.append(row)
        print("\t".join(map(str, row)), flush=True)
        print(f"#   {name}: data {t1 - t0:.0f} s, models {time.perf_counter() - t1:.0f} s; per subject "
              + "; ".join(f"{k}: " + " ".join(f"{m}={v:.2f}" for m, v in d.items()) for k, d in per_sub.items()),
              file=sys.stderr, flush=True)
    n_fail = sum(r[-1].startswith("FAIL") for r in rows)
    print(f"# BaseNet goal met in {len(rows) - n_fail} of {len(rows)} settings")
    if args.out:
        Path(args.out).write_text("\n".join("\t".join(map(str, r)) for r in [cols] + rows) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
