"""Snakemake keeps to ``--cores``: the pin in pyproject.toml (snakemake < 9.10) rests on this.

Snakemake 9.10-9.16 does not charge a job to ``--cores`` (or to ``mem_mb``) when it is the only
ready job (snakemake issues #3913, #3815; fixed in 9.17, which needs packaging < 26 and so an older
nilearn). The default workflow then ran 3-5 one-thread jobs at once on 2 cores, and a laptop's
memory limit was not kept either.
"""
import subprocess
import sys
from pathlib import Path

SNAKEFILE = '''
import time
rule all:
    input: expand("out/{i}.txt", i=range(3))
rule first:  # runs alone: the case the broken scheduler does not count
    output: "first.txt"
    threads: 1
    run:
        open(output[0], "w").write(f"{time.time()} {time.time()}")
rule job:  # three ready together on --cores 1: must run one after the other
    input: "first.txt"
    output: "out/{i}.txt"
    threads: 1
    run:
        t0 = time.time(); time.sleep(1.0); open(output[0], "w").write(f"{t0} {time.time()}")
'''


def test_snakemake_runs_no_more_jobs_than_cores(tmp_path: Path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--quiet", "rules", "all"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    spans = sorted(tuple(map(float, (tmp_path / "out" / f"{i}.txt").read_text().split())) for i in range(3))
    overlaps = [(a, b) for a, b in zip(spans, spans[1:]) if b[0] < a[1]]
    assert not overlaps, f"jobs overlapped on --cores 1 (snakemake's scheduler ignores --cores): {spans}"
