#!/usr/bin/env bash
# Fetches the PaddleOCR PP-OCRv4 detection and recognition models that the
# business-license OCR (crates/ocr) runs with tract.
#
# The models ship inside the PyPI wheel `rapidocr_onnxruntime`; the
# recognition dictionary is in the rec model's ONNX metadata (`character`).
# Nothing is downloaded at run time: the server only reads this directory.
#
# Usage: scripts/fetch-ocr-models.sh [DIR]     (default: models/ocr)
# Idempotent: when both models are present and non-empty, does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned so every machine gets the same models (and the same accuracy).
VERSION="${RAPIDOCR_VERSION:-1.4.4}"
DIR="${1:-models/ocr}"
MODELS=(ch_PP-OCRv4_det_infer.onnx ch_PP-OCRv4_rec_infer.onnx)

have_all=1
for m in "${MODELS[@]}"; do
  [ -s "$DIR/$m" ] || have_all=0
done
if [ "$have_all" = 1 ]; then
  echo "OCR models already present in $DIR: ${MODELS[*]}"
  exit 0
fi

command -v python3 >/dev/null 2>&1 || { echo "fetch-ocr-models: python3 is required (pip download)" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "Downloading rapidocr_onnxruntime==$VERSION (wheel only, no dependencies)"
python3 -m pip download --quiet --no-deps --only-binary=:all: \
  --dest "$tmp" "rapidocr_onnxruntime==$VERSION"
wheel="$(ls "$tmp"/rapidocr_onnxruntime-*.whl)"

mkdir -p "$DIR"
# The models are large and must not be committed: the directory ignores itself.
[ -f "$DIR/.gitignore" ] || printf '*\n' > "$DIR/.gitignore"

# A wheel is a zip; python's zipfile avoids needing `unzip` on the machine.
python3 - "$wheel" "$DIR" "${MODELS[@]}" <<'PY'
import os, sys, zipfile
wheel, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    members = {os.path.basename(n): n for n in z.namelist()}
    for name in names:
        if name not in members:
            sys.exit(f"fetch-ocr-models: {name} not found in {os.path.basename(wheel)}")
        dest = os.path.join(out, name)
        with z.open(members[name]) as src, open(dest + ".part", "wb") as dst:
            dst.write(src.read())
        os.replace(dest + ".part", dest)
        print(f"Extracted {name} ({os.path.getsize(dest)} bytes) to {out}")
PY
