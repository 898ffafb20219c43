#!/usr/bin/env bash
# The GPU path, checked (issue 19 part 2): one short run (<= 8 minutes) on a CUDA machine.
#
#   1. the tiny workflow end to end with `device: cuda` (config/tiny.yaml + an overlay, results in
#      a temporary folder), wall time and the peak GPU memory any of its jobs used (nvidia-smi);
#   2. benchmarks/routing_step.py's step at NSD scale, float32 and bf16 autocast, ours vs published;
#   3. a BaseNet training epoch (BCI IV 2a size), fast block and plain layer order;
#   4. in-context meta-training steps (stage 1) at the CPU defaults and the paper sizes;
#   5. feature extraction of a torchvision vit_b_16 (random weights, 224 px).
# Each figure is printed with the GPU name and peak GPU memory (torch.cuda.max_memory_allocated).
# Without CUDA it prints one line saying so and exits 0.
#
# Usage: bash benchmarks/gpu_check.sh            (PYTHON=... to choose the interpreter;
#        GPU_CHECK_SKIP_WORKFLOW=1 skips part 1)
# Each part has its own time limit; a part that fails or runs over is reported and the rest go on;
# the exit status is the number of failed parts.
set -u
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu_check: no CUDA device (torch.cuda.is_available() is False): nothing run"
    exit 0
fi

failed=0
part() {   # part NAME SECONDS COMMAND...
    local name=$1 limit=$2 rc
    shift 2
    local t0=$SECONDS
    timeout --kill-after=10 "$limit" "$@"
    rc=$?
    if [ $rc -ne 0 ]; then
        failed=$((failed + 1))
        if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
            echo "gpu_check $name: FAILED (over its ${limit} s limit)"
        else
            echo "gpu_check $name: FAILED (exit $rc)"
        fi
    fi
    echo "gpu_check $name: part took $((SECONDS - t0)) s"
}

gpu=$("$PYTHON" -c 'import torch; p = torch.cuda.get_device_properties(0); print(f"{p.name}, {p.total_memory / 2**30:.0f} GiB")')
echo "gpu_check: GPU $gpu; torch $("$PYTHON" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)')"

if [ -z "${GPU_CHECK_SKIP_WORKFLOW:-}" ]; then
    tmp=$(mktemp -d)
    printf 'device: cuda\nresults_dir: %s/results\n' "$tmp" > "$tmp/overlay.yaml"
    # peak GPU memory of the workflow's jobs (separate processes): sample nvidia-smi every 0.5 s
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$tmp/mem.txt" 2>/dev/null &
        smi=$!
    fi
    t0=$SECONDS
    timeout --kill-after=10 300 "$PYTHON" -m snakemake --cores 4 \
        --configfile config/config.yaml config/tiny.yaml "$tmp/overlay.yaml" > "$tmp/workflow.log" 2>&1
    rc=$?
    wf_s=$((SECONDS - t0))
    if [ -n "${smi:-}" ]; then kill "$smi" 2>/dev/null; wait "$smi" 2>/dev/null; fi
    peak=$(sort -n "$tmp/mem.txt" 2>/dev/null | tail -1)
    if [ $rc -ne 0 ]; then
        failed=$((failed + 1))
        tail -20 "$tmp/workflow.log"
        echo "gpu_check workflow: FAILED (exit $rc$( [ $rc -eq 124 ] && echo ', over its 300 s limit'))"
    fi
    grep -E "steps \(100%\) done" "$tmp/workflow.log" | tail -1
    echo "gpu_check workflow: tiny workflow with device: cuda in ${wf_s} s  [GPU $gpu, peak ${peak:-?} MiB used (nvidia-smi, whole device)]"
    rm -rf "$tmp"
fi

part routing 150 "$PYTHON" benchmarks/gpu_check.py routing
part basenet 60 "$PYTHON" benchmarks/gpu_check.py basenet
part incontext 90 "$PYTHON" benchmarks/gpu_check.py incontext
part vit 60 "$PYTHON" benchmarks/gpu_check.py vit
echo "gpu_check: done, $failed part(s) failed"
exit "$failed"
