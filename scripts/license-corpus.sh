#!/usr/bin/env bash
# Generates the independent evaluation corpus for the business-license OCR:
# DIR/dev (120 images) and DIR/heldout (120 images), each with truth.jsonl.
# The images are rendered by scripts/license-corpus/generate.py (Pillow +
# numpy only), independently of the OCR crate and its synthetic renderer.
#
# Usage: scripts/license-corpus.sh [DIR]      (default: target/license-corpus)
# Deterministic: rerunning regenerates the same files.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${1:-target/license-corpus}"
COUNT="${LICENSE_CORPUS_COUNT:-120}"
PY="${PYTHON:-python3}"

if ! "$PY" -c 'import PIL, numpy' 2>/dev/null; then
    echo "installing Pillow and numpy with pip" >&2
    "$PY" -m pip install --quiet pillow numpy 2>/dev/null \
        || "$PY" -m pip install --quiet --break-system-packages pillow numpy
    "$PY" -c 'import PIL, numpy'
fi

missing=0
for f in "Noto Serif CJK SC" "Noto Sans CJK SC" "AR PL UMing CN" "AR PL UKai CN" \
         "WenQuanYi Zen Hei" "WenQuanYi Micro Hei"; do
    if ! fc-list ":lang=zh" family | tr ',' '\n' | grep -qx "$f"; then
        echo "missing font: $f" >&2
        missing=1
    fi
done
if [ "$missing" -ne 0 ]; then
    echo "install the fonts with:" >&2
    echo "  sudo apt-get install -y fonts-noto-cjk fonts-arphic-uming fonts-arphic-ukai fonts-wqy-zenhei fonts-wqy-microhei" >&2
    exit 1
fi

start=$(date +%s)
for split in dev heldout; do
    "$PY" scripts/license-corpus/generate.py --split "$split" --count "$COUNT" --out "$DIR"
done

# The two halves must not share an image or an entity.
"$PY" - "$DIR" <<'PY'
import hashlib, json, os, sys
d = sys.argv[1]
seen, codes = {}, {}
for split in ("dev", "heldout"):
    for line in open(os.path.join(d, split, "truth.jsonl"), encoding="utf-8"):
        r = json.loads(line)
        h = hashlib.sha256(open(os.path.join(d, split, r["file"]), "rb").read()).hexdigest()
        assert h not in seen, f"{split}/{r['file']} duplicates {seen[h]}"
        seen[h] = f"{split}/{r['file']}"
        u = r["fields"]["uscc"]
        if u:
            assert u not in codes or codes[u] == split, f"USCC {u} in both splits"
            codes[u] = split
print(f"ok: {len(seen)} distinct images, {len(codes)} USCCs, no overlap between dev and heldout")
PY
echo "license corpus in $DIR ($(( $(date +%s) - start ))s)"
