#!/usr/bin/env bash
# The demo: the whole pipeline offline against the bundled sample mirror.
set -euo pipefail
OUT="${OUT:-demo-out}"
rm -rf "$OUT"; mkdir -p "$OUT"
export OIFORGE_HOME="$OUT/home"
echo "demo: stages land here as they are built"
