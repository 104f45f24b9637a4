#!/usr/bin/env bash
# Business-license OCR: field accuracy and time per license on the
# independent evaluation corpus (scripts/license-corpus.sh), read exactly as
# step 3 reads an upload. Results go in docs/benchmarks.md by hand.
#
# Usage: scripts/bench-ocr.sh [SPLIT] [ocr_eval options]
#   SPLIT: heldout (default; the half no tuning looks at), heldout2 (a
#   second held-out half, 120 images, measured once per landed change), or
#   a tuning half: dev, dev2.
#   Options: --misses (print every wrong field), --jobs N (accuracy only:
#   the times are only meaningful with one job, pinned to one core).
set -euo pipefail
cd "$(dirname "$0")/.."

SPLIT="${1:-heldout}"
shift || true
scripts/fetch-ocr-models.sh
if [ ! -s "target/license-corpus/$SPLIT/truth.jsonl" ]; then
  case "$SPLIT" in
    dev|heldout) scripts/license-corpus.sh ;;
    *) python3 scripts/license-corpus/generate.py --split "$SPLIT" --count 120 --out target/license-corpus ;;
  esac
fi
cargo build --release --quiet -p certhall-ocr --example ocr_eval
pin=()
command -v taskset >/dev/null 2>&1 && pin=(taskset -c 0)
exec "${pin[@]}" target/release/examples/ocr_eval "target/license-corpus/$SPLIT" "$@"
