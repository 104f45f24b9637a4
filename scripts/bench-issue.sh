#!/usr/bin/env bash
# Issuance throughput (issue 14): CSR in -> certificate durably stored, per
# family — the engine alone, the service one at a time, 8 and 64 at once — on
# SQLite and (with TEST_DATABASE_URL) PostgreSQL, beside `openssl speed`
# for the same signature algorithms. crates/agent/examples/issue_bench.rs,
# release build.
#
#   scripts/bench-issue.sh [--n 2000] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
N=2000
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --n) N="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
cargo build --release --quiet -p certhall-agent --example issue_bench
lines=$(target/release/examples/issue_bench "$N" 2>/dev/null | grep '^{')
speed=$(openssl speed -seconds 2 ecdsap256 rsa2048 sm2 2>/dev/null || true)
table=$(python3 - "$lines" "$speed" <<'PY'
import json, re, sys
rows = [json.loads(l) for l in sys.argv[1].splitlines() if l.strip()]
speed = sys.argv[2]
def ossl(pattern):
    for line in speed.splitlines():
        if re.search(pattern, line):
            nums = re.findall(r"[\d.]+", line)
            return float(nums[-2]) if len(nums) >= 2 else None
    return None
sign = {"p256": ossl(r"256 bits ecdsa \(nistp256\)"), "sm2": ossl(r"SM2"), "rsa": None}
for line in speed.splitlines():
    if line.startswith("rsa 2048"):
        sign["rsa"] = float(line.split()[-2])
print("| family | how | backend | certificates/s | p50 ms | openssl speed: signatures/s (one core) |")
print("|---|---|---|---:|---:|---:|")
for r in rows:
    s = sign.get(r["family"])
    p50 = f"{r['p50_ms']:.2f}" if "p50_ms" in r else "–"
    print(f"| {r['family']} | {r['how']} | {r['backend']} | {r['per_s']:,.0f} | {p50} | {f'{s:,.0f}' if s else '–'} |")
PY
)
echo "$table"
if [ -n "$OUT" ]; then printf '\n%s\n' "$table" >>"$OUT"; fi
