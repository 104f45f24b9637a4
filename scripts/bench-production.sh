#!/usr/bin/env bash
# Benchmark of 制证 (issue 11): the time to produce one UKey, stage by stage,
# per key family — P-256 and RSA-2048 generated in SoftHSM2 through
# PKCS#11, SM2 in a software token with the production KDF — on SQLite and,
# when TEST_DATABASE_URL is set, PostgreSQL; with OpenSSL's own numbers for
# the same algorithms as a reference.
#
#   scripts/bench-production.sh [--out FILE] [--p256 60] [--rsa2048 30]
#                               [--sm2 30] [--shared-store] [--no-openssl]
#                               [--no-build] [--wait-quiet]
#
#   --out FILE        also append the results (markdown) to FILE
#   --p256 N          measured P-256 keys (default 60; one warm-up key more)
#   --rsa2048 N       measured RSA-2048 keys (default 30)
#   --sm2 N           measured SM2 keys (default 30)
#   --shared-store    one SoftHSM2 store and one software-token directory for
#                     all keys, instead of a fresh one per key
#   --no-openssl      skip the OpenSSL reference
#   --no-build        use the existing production_bench binary
#   --wait-quiet      first wait (up to 15 min) until the machine is idle
#                     (< 5% busy over 5 s)
#
# PostgreSQL: TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test
# (a fresh schema, dropped afterwards).
#
# The code is crates/agent/examples/production_bench.rs (release build): the
# flow of docs/production.md in process, each stage timed, each key checked
# afterwards (order 已制证, the token's certificate equal to the issued one
# and for the key made in the token, key record, PIN SMS, stock). A
# benchmark, not a test: exit 1 only when a key was not produced as it
# should be (no numbers are printed then) or the setup failed.
#
# Needs: cargo, openssl, softhsm2 (and opensc's pkcs11-tool, which the
# benchmark uses to look at each SoftHSM2 token independently); installed
# with apt-get when running as root, otherwise the script prints the command.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=scripts/lib/bench-common.sh
. "$REPO/scripts/lib/bench-common.sh"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[1;31mbench-production: %s\033[0m\n' "$*" >&2; exit 1; }

OUT=""
ARGS=()
BUILD=1
WAIT_QUIET=0
while (($#)); do
  case "$1" in
    --out) OUT=${2:?--out needs a file}; shift 2 ;;
    --p256|--rsa2048|--sm2)
      [[ ${2:-} =~ ^[0-9]+$ ]] || die "$1 takes a number"
      ARGS+=("$1" "$2"); shift 2 ;;
    --shared-store|--no-openssl) ARGS+=("$1"); shift ;;
    --no-build) BUILD=0; shift ;;
    --wait-quiet) WAIT_QUIET=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
if [ -n "$OUT" ]; then
  case "$OUT" in /*) ;; *) OUT="$REPO/$OUT" ;; esac
fi

# --- Tools -------------------------------------------------------------------
need=()
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ -e /usr/lib/softhsm/libsofthsm2.so ] || need+=(softhsm2)
command -v pkcs11-tool >/dev/null 2>&1 || need+=(opensc)
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ]; then
    say "Installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  else
    die "missing: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${need[*]}"
  fi
fi
command -v cargo >/dev/null 2>&1 || die "cargo is required"

# --- Build -------------------------------------------------------------------
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
case "$TARGET" in /*) ;; *) TARGET="$REPO/$TARGET" ;; esac
BIN="$TARGET/release/examples/production_bench"
BUILT_FROM="commit $(git_state)"
if ((BUILD)); then
  say "cargo build --release -p certhall-agent --example production_bench ($BUILT_FROM)"
  cargo build --release --locked -q -p certhall-agent --example production_bench
else
  BUILT_FROM="binary built $(date -u -r "$BIN" '+%Y-%m-%d %H:%M UTC' 2>/dev/null || echo '?') (--no-build)"
fi
[ -x "$BIN" ] || die "$BIN not found (build it or drop --no-build)"

# --- Quiet machine -----------------------------------------------------------
BUSY=$(machine_busy)
if ((WAIT_QUIET)); then
  deadline=$((SECONDS + 900))
  while ((BUSY >= 5 && SECONDS < deadline)); do
    say "Machine ${BUSY}% busy with other work; waiting for it to be idle"
    BUSY=$(machine_busy)
  done
fi
((BUSY < 5)) || say "WARNING: the machine is ${BUSY}% busy with other work; the numbers will be high"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- Run ---------------------------------------------------------------------
say "production_bench ${ARGS[*]}"
STARTED=$SECONDS
RESULT=$(RUST_LOG=warn "$BIN" "${ARGS[@]}") \
  || die "the production benchmark failed (a key not produced as it should be, or the setup): no numbers"
ELAPSED=$((SECONDS - STARTED))

# --- Report ------------------------------------------------------------------
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
SOFTHSM_VERSION=$(softhsm2-util --version 2>/dev/null || echo '?')
report=$(
  echo "### $(date -u '+%Y-%m-%d %H:%M UTC') — $BUILT_FROM"
  echo
  echo "Machine: $(nproc) CPUs ($CPU_MODEL), $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r); $(rustc --version 2>/dev/null | awk '{ print $1, $2 }'); SoftHSM2 $SOFTHSM_VERSION; load average before: $LOAD_BEFORE; machine busy with other work just before: ${BUSY}% of all CPUs. Command: \`scripts/bench-production.sh${ARGS[*]:+ ${ARGS[*]}}\` ($ELAPSED s in all)."
  echo
  printf '%s\n' "$RESULT"
)
echo
printf '%s\n' "$report"
if [ -n "$OUT" ]; then
  { echo; printf '%s\n' "$report"; } >>"$OUT"
  say "Appended to $OUT"
fi
