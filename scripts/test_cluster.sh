#!/usr/bin/env bash
# `make test-cluster`: run config/tiny.yaml on a one-node Slurm cluster started here, and check the
# leaderboard equals the one of a local run. Stops the daemons it started, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
SMK=.venv/bin/snakemake
state=$(mktemp -d /tmp/neuroattn-slurm.XXXXXX)
trap 'bash scripts/slurm_local.sh stop "$state"' EXIT

bash scripts/slurm_local.sh start "$state"

local_dir=results/cluster-test/local
slurm_dir=results/cluster-test/slurm
rm -rf results/cluster-test
$SMK --profile profiles/local --configfile config/tiny.yaml --config results_dir=$local_dir --quiet rules
$SMK --profile profiles/slurm --configfile config/tiny.yaml --config results_dir=$slurm_dir \
  --executor slurm --slurm-no-account --slurm-status-command squeue \
  --slurm-init-seconds-before-status-checks 2 --seconds-between-status-checks 2 --jobs 4 --quiet rules

if cmp "$local_dir/scores/leaderboard.tsv" "$slurm_dir/scores/leaderboard.tsv"; then
  echo "cluster test: SLURM leaderboard equals the local one ($(wc -l < "$slurm_dir/scores/leaderboard.tsv") lines)"
  echo "1 passed, 0 failed"
else
  diff "$local_dir/scores/leaderboard.tsv" "$slurm_dir/scores/leaderboard.tsv" | head -20
  echo "cluster test: leaderboards differ"
  echo "0 passed, 1 failed"
  exit 1
fi
