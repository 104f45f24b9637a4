#!/usr/bin/env bash
# Benchmark of 数字证书登录: the key agent's operations on real tokens
# (SoftHSM2 through PKCS#11 when installed, and a software token with the
# production KDF) and CertHall's certificate login through the JSON API
# (sequential latency, then throughput with concurrent clients), SQLite.
# Run by scripts/bench.sh (unless --no-agent) or alone:
#
#   scripts/bench-agent.sh [--out FILE] [--n 50] [--clients 8]
#
# Prints a markdown table (appended to FILE with --out). A benchmark, not a
# test: it fails only when an operation fails. The code is
# crates/agent/examples/bench.rs (release build).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=""
N=50
CLIENTS=8
while (($#)); do
  case "$1" in
    --out) OUT=${2:?}; shift 2 ;;
    --n) N=${2:?}; shift 2 ;;
    --clients) CLIENTS=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 1 ;;
  esac
done
command -v softhsm2-util >/dev/null || echo "bench-agent: softhsm2 not installed: the PKCS#11 rows are skipped (apt-get install -y softhsm2)" >&2
printf '\033[1m==> %s\033[0m\n' "Building and running crates/agent/examples/bench.rs (release)" >&2
table=$(RUST_LOG=warn cargo run --release -q -p certhall-agent --example bench -- --n "$N" --clients "$CLIENTS")
report=$(
  echo "### Certificate login ($(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD), $(nproc) cores)"
  echo
  printf '%s\n' "$table"
  echo
  echo "Sequential rows: one client, n requests each. Software-token operations that need the PIN run scrypt (N = 2^15, r = 8, 32 MiB) and write the token file (fsync) twice; PKCS#11 rows open a session, log in, act and log out per request."
)
printf '%s\n' "$report"
if [ -n "$OUT" ]; then
  { echo; printf '%s\n' "$report"; } >>"$OUT"
fi
