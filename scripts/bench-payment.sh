#!/usr/bin/env bash
# Benchmark of payments (issue 10): WeChat Pay v3 callbacks (verification
# alone, verified and applied, duplicates) on one core, and the order page
# of a paid order (`GET /orders/{id}`) under load with wrk, on SQLite and,
# when TEST_DATABASE_URL is set, PostgreSQL. Run by scripts/bench.sh (unless
# --no-payment) or alone:
#
#   scripts/bench-payment.sh [--out FILE] [--n 2000] [--rounds 3]
#                            [--duration 30s] [--connections 64] [--threads 2]
#                            [--no-build] [--no-callbacks] [--no-page]
#                            [--wait-quiet]
#
#   --out FILE        also append the results (markdown) to FILE
#   --n N             distinct callbacks per round (default 2000)
#   --rounds R        rounds of the callback measurements (default 3)
#   --duration D      wrk duration for the order page (default 30s)
#   --connections N   wrk connections (default 64)
#   --threads N       wrk threads (default 2)
#   --no-build        use the existing target/release/examples/payment_bench
#   --no-callbacks    skip the callback part
#   --no-page         skip the order-page part
#   --wait-quiet      first wait (up to 15 min) until the machine is idle
#                     (< 5% busy over 5 s): on the shared box another build
#                     running alongside halves the numbers
#
# PostgreSQL: TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test
# (each run uses a fresh schema there, dropped afterwards).
#
# The code is crates/testkit/examples/payment_bench.rs (release build):
#   1. `taskset -c 0 payment_bench callbacks`: one core, tokio current-thread
#      runtime; N callbacks signed by the demo platform key, verified only,
#      then through Services::payment_callback (each applied once), then the
#      same N again (all must be stored as `duplicate` and no order may
#      change); each phase timed; `openssl speed -seconds 3 rsa2048` on the
#      same core as a reference;
#   2. `payment_bench serve --backend B`: the test app's router
#      (certhall_web::app, the one `certhall serve` runs) on a multi-thread
#      runtime, an order brought to paid through the real flow, its
#      applicant logged in over HTTP; it prints URL and COOKIE lines and
#      serves until its stdin closes. wrk then loads the order page (5 s
#      warm-up, then -t2 -c64 -d30s --latency), and the server's own
#      /metrics counters must show a 200 for every request.
#
# A benchmark, not a test: exit 1 only when the measurement is invalid (a
# request not answered 200, a callback not applied or not a duplicate, a
# setup step failing).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=scripts/lib/bench-common.sh
. "$REPO/scripts/lib/bench-common.sh"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[1;31mbench-payment: %s\033[0m\n' "$*" >&2; exit 1; }

OUT=""
N=2000
ROUNDS=3
DURATION=30s
CONNECTIONS=64
THREADS=2
BUILD=1
CALLBACKS=1
PAGE=1
WAIT_QUIET=0
while (($#)); do
  case "$1" in
    --out) OUT=${2:?--out needs a file}; shift 2 ;;
    --n) N=${2:?}; shift 2 ;;
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --duration) DURATION=${2:?}; shift 2 ;;
    --connections) CONNECTIONS=${2:?}; shift 2 ;;
    --threads) THREADS=${2:?}; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --no-callbacks) CALLBACKS=0; shift ;;
    --no-page) PAGE=0; shift ;;
    --wait-quiet) WAIT_QUIET=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[[ $N =~ ^[0-9]+$ && $ROUNDS =~ ^[0-9]+$ && $CONNECTIONS =~ ^[0-9]+$ && $THREADS =~ ^[0-9]+$ ]] \
  || die "--n, --rounds, --connections and --threads take numbers"
if [ -n "$OUT" ]; then
  case "$OUT" in /*) ;; *) OUT="$REPO/$OUT" ;; esac
fi

# --- Tools -------------------------------------------------------------------
if ((PAGE)) && ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    say "Installing wrk"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk
  else
    die "wrk is missing: sudo apt-get install -y --no-install-recommends wrk"
  fi
fi
for tool in cargo curl python3; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
PIN=()
command -v taskset >/dev/null 2>&1 && PIN=(taskset -c 0)

# --- Build -------------------------------------------------------------------
BIN="$REPO/target/release/examples/payment_bench"
BUILT_FROM="commit $(git_state)"
if ((BUILD)); then
  say "cargo build --release -p certhall-testkit --example payment_bench ($BUILT_FROM)"
  cargo build --release --locked -q -p certhall-testkit --example payment_bench
else
  BUILT_FROM="binary built $(date -u -r "$BIN" '+%Y-%m-%d %H:%M UTC' 2>/dev/null || echo '?') (--no-build)"
fi
[ -x "$BIN" ] || die "$BIN not found (build it or drop --no-build)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/certhall-bench-payment.XXXXXX")
SERVER_PID=""
KEEP=0
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    exec 3>&- 2>/dev/null || true # closing its stdin ends the serve mode
    for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
cleanup() {
  local rc=$?
  stop_server
  if ((KEEP)) || ((rc != 0)); then
    echo "bench-payment: logs kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Quiet machine -----------------------------------------------------------
BUSY=$(machine_busy)
if ((WAIT_QUIET)); then
  deadline=$((SECONDS + 900))
  while ((BUSY >= 5 && SECONDS < deadline)); do
    say "Machine ${BUSY}% busy with other work; waiting for it to be idle"
    BUSY=$(machine_busy)
  done
fi
((BUSY < 5)) || say "WARNING: the machine is ${BUSY}% busy with other work; the numbers will be low"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 1. Callbacks ------------------------------------------------------------
CALLBACK_REPORT=""
if ((CALLBACKS)); then
  say "Callbacks: ${PIN[*]} payment_bench callbacks --n $N --rounds $ROUNDS"
  CALLBACK_REPORT=$("${PIN[@]}" "$BIN" callbacks --n "$N" --rounds "$ROUNDS") \
    || die "the callback benchmark failed (invalid measurement or setup)"
fi

# --- 2. The order page under load -------------------------------------------

ROUTE='/orders/{id}'
ROWS=()
FAILURES=()
NOISY=()
PAGE_NOTES=()
page_run() { # backend
  local backend=$1 out="$WORK/serve-$1.out" err="$WORK/serve-$1.err"
  say "Order page, $backend: setting up a paid order through the real flow"
  mkfifo "$WORK/stdin-$backend"
  "$BIN" serve --backend "$backend" <"$WORK/stdin-$backend" >"$out" 2>"$err" &
  SERVER_PID=$!
  exec 3>"$WORK/stdin-$backend" # hold its stdin open while it serves
  for _ in $(seq 600); do
    grep -q '^READY' "$out" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$err" >&2; die "payment_bench serve ($backend) exited during setup"; }
    sleep 0.1
  done
  grep -q '^READY' "$out" || die "payment_bench serve ($backend) not ready within 60 s"
  local url cookie metrics bytes events
  url=$(awk '$1 == "URL" { print $2 }' "$out")
  cookie=$(sed -n 's/^COOKIE //p' "$out")
  metrics=$(awk '$1 == "METRICS" { print $2 }' "$out")
  bytes=$(awk '$1 == "BYTES" { print $2 }' "$out")
  events=$(awk '$1 == "EVENTS" { print $2 }' "$out")
  [ -n "$url" ] && [ -n "$cookie" ] || die "no URL/COOKIE from payment_bench serve"
  local status
  status=$(curl -sS -o "$WORK/page-$backend.html" -w '%{http_code}' -H "Cookie: $cookie" "$url")
  [ "$status" = 200 ] || die "GET $url answered $status with the session cookie"
  grep -q '已支付' "$WORK/page-$backend.html" || die "the order page does not show a paid order"
  say "Server pid $SERVER_PID: $url ($bytes B, $events timeline events)"

  say "Warm-up: $backend (5 s)"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d5s -H "Cookie: $cookie" "$url" >/dev/null
  local t0 t1 m0 m1 c0 c1 p0 p1
  curl -fsS "$metrics" >"$WORK/metrics.before"
  m0=$(machine_ticks); p0=$(pg_ticks); t0=$(server_ticks); times >"$WORK/times.before"
  say "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency $url"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Cookie: $cookie" "$url" >"$WORK/wrk-$backend.txt"
  t1=$(server_ticks); times >"$WORK/times.after"; p1=$(pg_ticks); m1=$(machine_ticks)
  sleep 0.2 # requests in flight when wrk stopped reach the counters
  curl -fsS "$metrics" >"$WORK/metrics.after"
  cat "$WORK/wrk-$backend.txt" >&2
  c0=$(children_cpu "$WORK/times.before"); c1=$(children_cpu "$WORK/times.after")
  local w="$WORK/wrk-$backend.txt" rps p50 p90 p99 max reqs non2xx sockerr secs
  rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$w")
  p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$w")")
  p90=$(to_ms "$(awk '$1 == "90%" { print $2 }' "$w")")
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$w")")
  max=$(to_ms "$(awk '$1 == "Latency" && NF >= 4 { print $4; exit }' "$w")")
  reqs=$(awk '/requests in/ { print $1 }' "$w")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$w"); non2xx=${non2xx:-0}
  sockerr=$(awk '/Socket errors:/ { gsub(/[^0-9]+/, " "); s = 0; for (i = 1; i <= NF; i++) s += $i; print s }' "$w")
  sockerr=${sockerr:-0}
  secs=$(awk '/requests in/ { sub(/s,$/, "", $4); print $4 }' "$w")
  local all not200 srv_mean srv_p99 srv_cpu wrk_cpu srv_us other_cpu pg_cpu pg_us
  read -r all not200 srv_mean srv_p99 \
    <<<"$(metrics_delta "$WORK/metrics.before" "$WORK/metrics.after" "$ROUTE")"
  srv_cpu=$(awk -v a="$t0" -v b="$t1" -v s="$secs" -v hz="$CLK_TCK" 'BEGIN { printf "%.0f%%", (b - a) / hz / s * 100 }')
  wrk_cpu=$(awk -v a="$c0" -v b="$c1" -v s="$secs" 'BEGIN { printf "%.0f%%", (b - a) / s * 100 }')
  pg_cpu=$(awk -v a="$p0" -v b="$p1" -v s="$secs" -v hz="$CLK_TCK" 'BEGIN { printf "%.0f%%", (b - a) / hz / s * 100 }')
  pg_us=$(awk -v a="$p0" -v b="$p1" -v n="$all" -v hz="$CLK_TCK" \
    'BEGIN { if (n > 0) printf "%.0f", (b - a) / hz / n * 1e6; else print "-" }')
  if [ "$backend" = sqlite ]; then pg_cpu="—"; pg_us="—"; fi
  other_cpu=$(awk -v m0="$m0" -v m1="$m1" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" \
    -v p0="$p0" -v p1="$p1" -v s="$secs" -v hz="$CLK_TCK" 'BEGIN { split(m0, a, " "); split(m1, b, " ")
      o = ((b[1] - a[1]) - (t1 - t0) - (p1 - p0)) / hz - (c1 - c0); if (o < 0) o = 0
      printf "%.0f%% (steal %.0f%%)", o / s * 100, (b[2] - a[2]) / hz / s * 100 }')
  srv_us=$(awk -v a="$t0" -v b="$t1" -v n="$all" -v hz="$CLK_TCK" \
    'BEGIN { if (n > 0) printf "%.0f", (b - a) / hz / n * 1e6; else print "-" }')
  if ((non2xx > 0 || sockerr > 0 || not200 > 0 || all < reqs)); then
    FAILURES+=("$backend: wrk non-2xx/3xx $non2xx, socket errors $sockerr, server counted $all requests of which $not200 not 200 (wrk completed $reqs)")
  fi
  awk -v o="$other_cpu" 'BEGIN { exit !(o + 0 >= 10) }' \
    && NOISY+=("$backend: other work took $other_cpu of a core during the run")
  ROWS+=("| $backend | $rps | $p50 | $p90 | $p99 | $max | $reqs | $non2xx / $sockerr / $not200 | $srv_mean / ≤$srv_p99 | $srv_cpu | $srv_us | $pg_cpu | $pg_us | $wrk_cpu | $other_cpu |")
  PAGE_NOTES+=("$backend: $bytes B of HTML, $events timeline events, RSS peak $(awk '$1 == "VmHWM:" { printf "%.1f MB", $2 / 1024 }' "/proc/$SERVER_PID/status")")
  stop_server
}

if ((PAGE)); then
  page_run sqlite
  if [ -n "${TEST_DATABASE_URL:-}" ]; then
    page_run postgres
  else
    say "PostgreSQL skipped for the order page (set TEST_DATABASE_URL)"
  fi
fi

# --- Report ------------------------------------------------------------------
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
report=$(
  echo "### $(date -u '+%Y-%m-%d %H:%M UTC') — $BUILT_FROM"
  echo
  echo "Machine: $(nproc) CPUs ($CPU_MODEL), $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r); $(rustc --version 2>/dev/null | awk '{ print $1, $2 }'); load average before: $LOAD_BEFORE; machine busy with other work just before: ${BUSY}% of all CPUs."
  if ((CALLBACKS)); then
    echo
    echo "Callbacks (\`${PIN[*]} target/release/examples/payment_bench callbacks --n $N --rounds $ROUNDS\`):"
    echo
    printf '%s\n' "$CALLBACK_REPORT"
  fi
  if ((PAGE)); then
    echo
    echo "Order page of a paid order, \`GET /orders/{id}\` logged in (session cookie), wrk on 127.0.0.1: $THREADS threads, $CONNECTIONS connections, $DURATION after a 5 s warm-up; server: \`payment_bench serve\` (\`certhall_web::app\`, multi-thread runtime, both cores):"
    echo
    echo "| backend | Req/s | p50 ms | p90 ms | p99 ms | max ms | Requests | Errors: wrk non-2xx/3xx / socket / server non-200 | Server-side mean ms / p99 bucket | Server CPU | Server CPU µs/req | PostgreSQL CPU | PostgreSQL µs/req | wrk CPU | Other CPU |"
    echo "|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "Pages: $(printf '%s; ' "${PAGE_NOTES[@]}" | sed 's/; $//')."
    echo "CPU columns are percent of one core ($(nproc) cores: $(($(nproc) * 100))% is the whole machine). PostgreSQL CPU: the \`postgres\` server processes (any other client of that server counts too). Other CPU: everything else during the run, the noise indicator."
    if ((${#NOISY[@]})); then
      echo
      echo "**Noisy measurement** — other processes competed for the CPUs: $(printf '%s; ' "${NOISY[@]}" | sed 's/; $//')."
    fi
  fi
)
echo
printf '%s\n' "$report"
if [ -n "$OUT" ]; then
  { echo; printf '%s\n' "$report"; } >>"$OUT"
  say "Appended to $OUT"
fi
if ((${#FAILURES[@]})); then
  printf '\033[1;31mbench-payment: INVALID MEASUREMENT — not every request was answered 200:\033[0m\n' >&2
  printf '  %s\n' "${FAILURES[@]}" >&2
  KEEP=1
  exit 1
fi
