#!/usr/bin/env bash
# CRL at scale (issue 14): the time and peak memory to build and sign one
# CRL with N revoked certificates (default 1,000,000), per family, with
# CertHall's CRL engine (crates/ca/examples/crl_bench.rs, release build),
# each family in its own process so its peak RSS is its own; and, as an
# outside yardstick, the time `openssl crl` takes to parse the result.
#
#   scripts/bench-crl.sh [--entries N] [--out FILE]
#
# Prints a markdown table; --out appends it to FILE. Needs cargo and
# openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
ENTRIES=1000000
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --entries) ENTRIES="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
command -v openssl >/dev/null || { echo "openssl is needed: apt-get install -y openssl" >&2; exit 1; }
cargo build --release --quiet -p certhall-ca --example crl_bench
BIN=target/release/examples/crl_bench
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

table="| family | entries | CRL size | build + sign | of it: signature | peak RSS (input alone) | openssl crl parse |
|---|---:|---:|---:|---:|---:|---:|"
for family in p256 sm2 rsa; do
  json=$("$BIN" "$family" "$ENTRIES" "$WORK/$family.der")
  t0=$(date +%s.%N)
  openssl crl -inform DER -in "$WORK/$family.der" -noout
  t1=$(date +%s.%N)
  row=$(python3 - "$json" "$t0" "$t1" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
parse = float(sys.argv[3]) - float(sys.argv[2])
print(f"| {r['family']} | {r['entries']:,} | {r['crl_bytes']/1e6:.1f} MB | {r['build_s']:.2f} s | "
      f"{r['sign_only_s']*1000:.0f} ms | {r['rss_peak_mib']:.0f} MiB ({r['rss_with_input_mib']:.0f} MiB) | {parse:.2f} s |")
PY
)
  table+=$'\n'"$row"
done
echo "$table"
if [ -n "$OUT" ]; then
  printf '\n%s\n' "$table" >> "$OUT"
fi
