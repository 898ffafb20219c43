"""Keep the leads (issue 19, section 4): the checks to run on a quiet machine before a release.

Run from the repository root, on an idle machine (timings under load are not evidence):

    python benchmarks/keep_leads.py                       # all three checks
    python benchmarks/keep_leads.py --only routing        # one of: routing, noop, wall
    python benchmarks/keep_leads.py --configfile config/tiny.yaml --only noop wall

1. ``routing``: ``benchmarks/routing_step.py --no-bf16`` on 1 and on 2 threads (NSD scale; add
   ``--small`` for a quick smoke run at 1/8 scale). Passes when the float32 ``speedup`` (published
   readout / ours, median step) is >= 2.0 and ours peaks at no more memory (``memory_ratio`` <= 1).
2. ``noop``: with the workflow complete in ``results_dir``, ``snakemake -n`` (planning only) and
   a rerun ``snakemake --cores 2`` (nothing to do) must each take <= 20 s. Fails, saying so and
   without starting any job, when the dry run lists jobs (the workflow is not complete: run it
   first).
3. ``wall``: the wall time of the workflow's complete Snakemake run in this checkout, from its
   log (``.snakemake/log/*.snakemake.log``: the log's start to its last timestamp; of the logs
   that end with ``(100%) done``, the one with the most jobs, or ``--log``), against the 10-minute
   goal (meaningful for a run from an empty ``results_dir`` on an idle machine); also the summed job seconds and the five
   longest jobs from the rules' benchmark files (``<results_dir>/benchmarks/**/*.tsv``).

Output (one line per check, then a summary; measured figures and the date they were taken:
benchmarks/README.md)::

    routing threads=1: float32: speedup=... memory_ratio=... PASS|FAIL (>= 2.0, <= 1.0)
    routing threads=2: float32: speedup=... memory_ratio=... PASS|FAIL (>= 2.0, <= 1.0)
    noop: dry run ... s, rerun ... s (nothing to do) PASS|FAIL (<= 20 s)
    wall: complete run <log>: ... min (N jobs) PASS|FAIL (<= 10 min); job seconds ...
    keep_leads: K of 4 checks pass

Exit status 1 when a check fails. ``--snakemake`` names the snakemake executable (default: the
one next to this Python), extra ``--configfile`` files are passed to Snakemake as given.
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEEDUP_MIN, NOOP_MAX_S, WALL_MAX_MIN = 2.0, 20.0, 10.0


def check_routing(threads: int, small: bool) -> bool:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "routing_step.py"), "--threads", str(threads), "--no-bf16"]
    if small:
        cmd.append("--small")
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    m = re.search(r"float32: speedup=([\d.]+).*?memory_ratio=([\d.]+)", out.stdout)
    if out.returncode or not m:
        print(f"routing threads={threads}: FAILED to run ({(out.stderr or out.stdout).strip()[-300:]})")
        return False
    sp, mem = float(m.group(1)), float(m.group(2))
    ok = sp >= SPEEDUP_MIN and mem <= 1.0
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("float32:"))
    print(f"routing threads={threads}: {line} {'PASS' if ok else 'FAIL'} (>= {SPEEDUP_MIN}, <= 1.0)")
    return ok


def _snakemake(args, smk, configfiles):
    # as `make run` calls it: without --configfile config/config.yaml the report rules' params
    # (the config files used) differ and Snakemake plans them again
    cmd = [smk, "--profile", "profiles/local", *args, "--configfile", "config/config.yaml", *configfiles]
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    return time.perf_counter() - t, out


def check_noop(smk, configfiles) -> bool:
    dry_s, dry = _snakemake(["-n"], smk, configfiles)
    if dry.returncode:
        print(f"noop: snakemake -n failed ({(dry.stdout + dry.stderr).strip()[-300:]})")
        return False
    if "Nothing to be done" not in dry.stdout + dry.stderr:  # never start real jobs from a check
        print(f"noop: FAIL - the workflow is not complete (snakemake -n lists jobs; run it first); "
              f"dry run {dry_s:.1f} s")
        return False
    run_s, run = _snakemake(["--cores", "2"], smk, configfiles)
    if run.returncode or "Nothing to be done" not in run.stdout + run.stderr:
        print(f"noop: FAIL - the rerun did not end with 'Nothing to be done' ({run.stderr.strip()[-300:]})")
        return False
    ok = dry_s <= NOOP_MAX_S and run_s <= NOOP_MAX_S
    print(f"noop: dry run {dry_s:.1f} s, rerun {run_s:.1f} s (nothing to do) "
          f"{'PASS' if ok else 'FAIL'} (<= {NOOP_MAX_S:.0f} s)")
    return ok


_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def run_wall_times(log_dir: Path):
    """(log name, seconds, finished jobs) of every complete run log in ``log_dir``, oldest first."""
    out = []
    for log in sorted(log_dir.glob("*.snakemake.log")):
        text = log.read_text(errors="replace")
        if not re.search(r"\(100%\) done", text):
            continue
        start = datetime.strptime(log.name.split(".snakemake")[0], "%Y-%m-%dT%H%M%S.%f")
        stamps = [datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
                  for m in map(_STAMP.match, text.splitlines()) if m]
        jobs = len(re.findall(r"^Finished job", text, flags=re.M))
        if stamps and jobs:
            out.append((log.name, (max(stamps) - start).total_seconds(), jobs))
    return out


def check_wall(results_dir: Path, log: str | None = None) -> bool:
    runs = run_wall_times(Path(log).parent if log else ROOT / ".snakemake" / "log")
    if log:
        runs = [r for r in runs if r[0] == Path(log).name]
    if not runs:
        print("wall: no complete Snakemake run log under .snakemake/log (run the workflow first)")
        return False
    # the whole workflow: of the complete runs, the one with the most jobs (the latest of those);
    # a later partial rerun (a few forced jobs) is not the workflow's wall time
    name, sec, jobs = max(runs, key=lambda r: (r[2], r[0]))
    ok = sec <= WALL_MAX_MIN * 60
    bench = []
    for f in glob.glob(str(results_dir / "benchmarks" / "**" / "*.tsv"), recursive=True):
        lines = Path(f).read_text().splitlines()
        if len(lines) >= 2 and lines[0].startswith("s\t"):
            bench.append((float(lines[1].split("\t")[0]), os.path.relpath(f, results_dir / "benchmarks")))
    bench.sort(reverse=True)
    top = ", ".join(f"{n} {s:.0f} s" for s, n in bench[:5])
    print(f"wall: complete run {name}: {sec / 60:.1f} min ({jobs} jobs) {'PASS' if ok else 'FAIL'} "
          f"(<= {WALL_MAX_MIN:.0f} min); job seconds summed over {len(bench)} benchmark files "
          f"{sum(s for s, _ in bench):.0f} s; longest: {top}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=["routing", "noop", "wall"], default=["routing", "noop", "wall"])
    ap.add_argument("--small", action="store_true", help="routing at 1/8 scale (smoke run, not evidence)")
    ap.add_argument("--snakemake", default=str(Path(sys.executable).with_name("snakemake")))
    ap.add_argument("--configfile", nargs="*", default=[])
    ap.add_argument("--results-dir", help="default: results_dir of the merged config")
    ap.add_argument("--log", help="the Snakemake log of the run to time (default: of the complete runs "
                                  "under .snakemake/log, the one with the most jobs)")
    a = ap.parse_args()
    results_dir = Path(a.results_dir) if a.results_dir else None
    if results_dir is None:
        import yaml

        cfg = {}
        for f in ["config/config.yaml", *a.configfile]:
            cfg.update(yaml.safe_load((ROOT / f).read_text()) or {})
        results_dir = ROOT / cfg.get("results_dir", "results")
    print(f"keep_leads: {ROOT}, load average {os.getloadavg()[0]:.1f} (timings are evidence only on an idle machine)",
          flush=True)
    results = []
    if "routing" in a.only:
        results += [check_routing(t, a.small) for t in (1, 2)]
    if "noop" in a.only:
        results.append(check_noop(a.snakemake, a.configfile))
    if "wall" in a.only:
        results.append(check_wall(results_dir, a.log))
    print(f"keep_leads: {sum(results)} of {len(results)} checks pass")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
