#!/usr/bin/env bash
# CertHall in demo mode, in one command: embedded SQLite in ./data, demo CA,
# demo SMS outbox, demo applications, demo key agent and counter operator.
#
# Before starting it fetches the business-license OCR models once (from the
# PyPI packages rapidocr_onnxruntime and rapidocr, see
# scripts/fetch-ocr-models.sh) so step 3 of 证书新办 reads license photos. Without python3/pip or PyPI it
# says so and CertHall runs without OCR (the applicant types the fields).
#
# Usage: scripts/demo.sh [certhall serve options, e.g. --listen 0.0.0.0:8080]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-pip >/dev/null
  else
    echo "demo: license OCR needs python3 and pip once, to fetch its models:" >&2
    echo "  sudo apt-get install -y python3 python3-pip && scripts/fetch-ocr-models.sh" >&2
  fi
fi
scripts/fetch-ocr-models.sh \
  || echo "demo: OCR models not fetched; CertHall runs without license OCR." >&2

exec cargo run --release -- serve --demo "$@"
