#!/usr/bin/env bash
# Run every benchmark with its defaults (long: ~1 h on 2 cores; needs the network only for
# bench_download.py, which pip-installs img2dataset into bench/out/). Each prints its ratio
# against a peer or limit measured in the same run and writes bench/results/<bench>.json
# (bench/record.py: commit, machine, command, and per figure value, peer, ratio, goal, met).
# Run it on a quiet machine, then bring bench/RESULTS.md's tables up to date from those files.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/out
failed=()
for script in bench/bench_*.py; do
  echo "== $script"
  python "$script" || failed+=("$script")
done
echo "results: bench/results/*.json"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
