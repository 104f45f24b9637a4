#!/usr/bin/env bash
# CertHall HTTP benchmark: the logged-in home page (`GET /`) and the JSON
# message list (`GET /api/v1/messages`) under load, on the SQLite backend.
# A benchmark, not a test: it measures and reports. It fails (exit 1) only
# when the measurement itself is invalid: a request answered with anything
# other than 200 (a redirect to /login would mean the wrong page was
# measured), socket errors, or a setup step that does not work.
#
# Usage (from anywhere; the repository is found from this script's path):
#
#   scripts/bench.sh [--out FILE] [--duration 30s] [--connections 64]
#                    [--threads 2] [--messages 50] [--no-ceiling]
#                    [--no-build] [--strict] [--keep] [--wait-quiet]
#                    [--postgres URL [--servers N]]
#
#   --out FILE        also append the results (markdown) to FILE
#   --duration D      wrk duration per endpoint (default 30s)
#   --connections N   concurrent connections (default 64)
#   --threads N       wrk threads (default 2, one per core of the target box)
#   --messages N      messages seeded into each benchmark account (default 50)
#   --postgres URL    run the portal part on PostgreSQL instead of SQLite:
#                     URL names a PostgreSQL server and a database to
#                     connect to (postgres://postgres@127.0.0.1:5432/test);
#                     the script creates a fresh database beside it for the
#                     run and drops it afterwards
#   --servers N       with --postgres: N `certhall serve` processes on the
#                     one database (sessions and messages shared), sharing
#                     the load: N wrk instances run at once, one per server,
#                     each with CONNECTIONS/N connections and THREADS/N
#                     threads; requests/s are summed, each latency figure is
#                     the worst instance's
#   --no-ceiling      skip the reference run against /healthz (no database,
#                     no session lookup, no template: the ceiling of the stack)
#   --no-build        use the existing target/release/certhall
#   --strict          exit 2 when a target (see below) is missed
#   --keep            keep the temporary data directory and server log
#   --wait-quiet      before measuring, wait (up to 15 min) for the machine to
#                     be idle (< 5% busy over 5 s): on a shared box another
#                     build running alongside halves the numbers
#   --no-images       skip the image part: business-license OCR
#                     (crates/ocr/examples/ocr_bench.rs, 20 licenses, and the
#                     independent corpus's held-out half, scripts/bench-ocr.sh,
#                     when the models are in models/ocr) and the upload check
#                     (crates/upload/examples/upload_bench.rs), both release
#                     builds on one core (taskset -c 0)
#   --no-agent        skip the certificate-login part (scripts/bench-agent.sh:
#                     key agent operations on SoftHSM2 and a software token,
#                     certificate login through the API), run after the rest
#   --no-payment      skip the payment part (scripts/bench-payment.sh: WeChat
#                     Pay callbacks verified, applied and repeated on one core,
#                     and the paid order's page under wrk; PostgreSQL too when
#                     TEST_DATABASE_URL is set)
#   --no-production   skip the production part (scripts/bench-production.sh:
#                     制证 per key family on SoftHSM2 and a software token,
#                     stage by stage; PostgreSQL too when TEST_DATABASE_URL
#                     is set)
#   --no-ocsp         skip the OCSP part (scripts/bench-ocsp.sh: CertHall's
#                     /ocsp beside nginx and openssl ocsp under wrk)
#   --no-crl          skip the CRL part (scripts/bench-crl.sh: a CRL with
#                     1,000,000 revoked entries per family)
#   --no-issue        skip the issuance part (scripts/bench-issue.sh: CSR to
#                     stored certificate per family, engine and service),
#                     run last
#
# What it does:
#   1. cargo build --release -p certhall
#   2. starts `certhall serve --listen 127.0.0.1:0` (the kernel picks a free
#      port; the script reads it from the start-up line) on a fresh temporary
#      data directory, demo mode, SQLite, RUST_LOG=warn so logging does not
#      dominate;
#   3. logs in like a browser (curl + cookie jar: GET /login, POST
#      /login/code, code from /dev/outbox.json, POST /login) for the page, and
#      through the API (POST /api/v1/auth/sms/send + verify) with a second
#      phone for a bearer token (the 60 s resend cooldown is per phone);
#   4. seeds N messages (mixed kinds, about a third read) into both accounts
#      with python3's sqlite3 module while the server runs (WAL mode), since
#      no public endpoint creates messages; checks that both endpoints show
#      them;
#   5. warms up each endpoint for 5 s, then runs
#        wrk -t2 -c64 -d30s --latency -H 'Cookie: ch_session=…; ch_bid=…' URL/
#        wrk -t2 -c64 -d30s --latency -H 'Authorization: Bearer …' URL/api/v1/messages
#      (and /healthz as a ceiling) and records requests/s, p50/p90/p99/max
#      latency, non-2xx/3xx and socket errors, bytes read, the server-side
#      latency from /metrics, the CPU time of the server, of wrk and of
#      everything else on the machine during the run (a noise indicator:
#      results with other work above 10% of a core are marked noisy);
#   6. cross-checks the status codes with the server's own counters at
#      /metrics: every request to the route must have answered 200 (wrk
#      itself counts only statuses >= 400 as errors, so a 303 to /login would
#      slip through wrk's "Non-2xx or 3xx responses" line);
#   7. reports the server's peak RSS (VmHWM) and RSS after the runs, the
#      machine (nproc, CPU model, kernel) and the git commit built, as a
#      markdown table on stdout (and appended to --out FILE).
#
# Exit status: 0 measured (targets met or not), 1 invalid measurement or
# setup failure (the temporary directory is kept for inspection), 2 a target
# missed under --strict.
#
# Targets (issue): >= 5,000 requests/s with p99 < 20 ms per endpoint at 64
# connections on the 2-core machine, server RSS < 100 MB. Note that wrk runs
# on the same cores as the server, so it takes part of the CPU it measures.
#
# Needs: cargo, curl, python3, wrk (installed with apt-get when running as
# root; otherwise the script prints the command).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=scripts/lib/bench-common.sh
. "$REPO/scripts/lib/bench-common.sh"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[1;31mbench: %s\033[0m\n' "$*" >&2; exit 1; }

# --- Arguments ---------------------------------------------------------------
OUT=""
DURATION=30s
CONNECTIONS=64
THREADS=2
MESSAGES=50
POSTGRES=""
SERVERS=1
CEILING=1
BUILD=1
STRICT=0
KEEP=0
WAIT_QUIET=0
AGENT=1
IMAGES=1
PAYMENT=1
PRODUCTION=1
OCSP=1
CRL=1
ISSUE=1
while (($#)); do
  case "$1" in
    --out) OUT=${2:?--out needs a file}; shift 2 ;;
    --out=*) OUT=${1#*=}; shift ;;
    --duration) DURATION=${2:?}; shift 2 ;;
    --connections) CONNECTIONS=${2:?}; shift 2 ;;
    --threads) THREADS=${2:?}; shift 2 ;;
    --messages) MESSAGES=${2:?}; shift 2 ;;
    --postgres) POSTGRES=${2:?--postgres needs a URL}; shift 2 ;;
    --servers) SERVERS=${2:?}; shift 2 ;;
    --no-ceiling) CEILING=0; shift ;;
    --no-build) BUILD=0; shift ;;
    --strict) STRICT=1; shift ;;
    --keep) KEEP=1; shift ;;
    --wait-quiet) WAIT_QUIET=1; shift ;;
    --no-agent) AGENT=0; shift ;;
    --no-images) IMAGES=0; shift ;;
    --no-payment) PAYMENT=0; shift ;;
    --no-production) PRODUCTION=0; shift ;;
    --no-ocsp) OCSP=0; shift ;;
    --no-crl) CRL=0; shift ;;
    --no-issue) ISSUE=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[[ $CONNECTIONS =~ ^[0-9]+$ && $THREADS =~ ^[0-9]+$ && $MESSAGES =~ ^[0-9]+$ && $SERVERS =~ ^[1-9][0-9]*$ ]] \
  || die "--connections, --threads, --messages and --servers take numbers"
((SERVERS == 1)) || [ -n "$POSTGRES" ] \
  || die "--servers N needs --postgres: processes share state through PostgreSQL only"
if [ -n "$OUT" ]; then
  case "$OUT" in /*) ;; *) OUT="$REPO/$OUT" ;; esac
fi

# --- Tools -------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    say "Installing wrk"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk
  else
    echo "wrk is missing. Install it with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends wrk" >&2
    exit 1
  fi
fi
[ -z "$POSTGRES" ] || command -v psql >/dev/null 2>&1 \
  || die "psql is required with --postgres (apt-get install postgresql-client)"
for tool in cargo curl python3; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

# --- Build -------------------------------------------------------------------
BIN="$REPO/target/release/certhall"
if ((BUILD)); then
  BUILT_FROM="commit $(git_state)"
  say "cargo build --release -p certhall ($BUILT_FROM)"
  cargo build --release --locked -p certhall
else
  BUILT_FROM="binary built $(date -u -r "$BIN" '+%Y-%m-%d %H:%M UTC' 2>/dev/null || echo '?') (--no-build; HEAD now $(git_state))"
fi
[ -x "$BIN" ] || die "$BIN not found (build it or drop --no-build)"

# --- Server ------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/certhall-bench.XXXXXX")
DATA="$WORK/data"
SERVER_PID=""
SERVER_PIDS=()
BASES=()
BENCH_DB=""
cleanup() {
  local rc=$? pid
  for pid in "${SERVER_PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [ -n "$BENCH_DB" ]; then
    psql "$POSTGRES" -qc "DROP DATABASE IF EXISTS $BENCH_DB" >/dev/null 2>&1 || true
  fi
  if ((KEEP)) || ((rc != 0 && rc != 2)); then
    echo "bench: data directory and server log kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BACKEND="SQLite"
if [ -n "$POSTGRES" ]; then
  BENCH_DB="certhall_bench_$$"
  psql "$POSTGRES" -qc "CREATE DATABASE $BENCH_DB" >/dev/null || die "cannot create database $BENCH_DB"
  # Same server and credentials, the fresh database.
  export DATABASE_URL="${POSTGRES%/*}/$BENCH_DB"
  BACKEND="PostgreSQL ($(psql "$POSTGRES" -Atc 'SHOW server_version' | cut -d' ' -f1)), $SERVERS certhall serve process(es)"
fi

# One after the other: the first creates the schema and the demo data, the
# others find them (as a second process of a deployment does).
for i in $(seq "$SERVERS"); do
  say "Starting certhall #$i on a free port (data: $DATA, $BACKEND)"
  RUST_LOG=warn CERTHALL_DEMO_AGENT=false "$BIN" serve --demo --listen 127.0.0.1:0 --data-dir "$DATA" \
    >"$WORK/server$i.out" 2>"$WORK/server$i.err" &
  pid=$!
  SERVER_PIDS+=("$pid")
  url=""
  for _ in $(seq 300); do
    url=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$WORK/server$i.out" 2>/dev/null | head -1 || true)
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/server$i.err" >&2; die "server #$i exited at start"; }
    sleep 0.1
  done
  [ -n "$url" ] || die "server #$i did not print its address within 30 s"
  BASES+=("$url")
  say "Server #$i pid $pid at $url"
done
SERVER_PID=${SERVER_PIDS[0]}
BASE=${BASES[0]}

# Every server's /metrics, one after the other (metrics_delta sums them).
all_metrics() {
  local b
  for b in "${BASES[@]}"; do curl -fsS "$b/metrics"; done
}

proc_field() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# --- Logins ------------------------------------------------------------------
PAGE_PHONE=13800138000
API_PHONE=13900139000
JAR="$WORK/cookies.txt"

latest_code() { # phone -> the 6-digit code in the newest outbox entry for it
  curl -fsS "$BASE/dev/outbox.json" | python3 -c '
import json, re, sys
phone = sys.argv[1]
for e in json.load(sys.stdin):
    if e["to"] == phone:
        m = re.search(r"(?<!\d)\d{6}(?!\d)", e["body"])
        if m:
            print(m.group())
            break
' "$1"
}
csrf_of_login_page() {
  curl -fsS -c "$JAR" -b "$JAR" "$BASE/login" \
    | grep -o 'name="_csrf" value="[^"]*"' | head -1 | sed 's/.*value="//; s/"$//'
}

say "Logging in as $PAGE_PHONE (browser: cookie jar)"
CSRF=$(csrf_of_login_page)
[ -n "$CSRF" ] || die "no _csrf field on /login"
status=$(curl -sS -o /dev/null -w '%{http_code}' -c "$JAR" -b "$JAR" \
  --data-urlencode "_csrf=$CSRF" --data-urlencode "phone=$PAGE_PHONE" "$BASE/login/code")
[ "$status" = 303 ] || die "POST /login/code answered $status, expected 303"
CODE=$(latest_code "$PAGE_PHONE")
[ -n "$CODE" ] || die "no login code for $PAGE_PHONE in /dev/outbox.json"
CSRF=$(csrf_of_login_page)
status=$(curl -sS -o /dev/null -w '%{http_code}' -c "$JAR" -b "$JAR" \
  --data-urlencode "_csrf=$CSRF" --data-urlencode "phone=$PAGE_PHONE" \
  --data-urlencode "code=$CODE" "$BASE/login")
[ "$status" = 303 ] || die "POST /login answered $status, expected 303"
SESSION=$(awk '$6 == "ch_session" { print $7 }' "$JAR")
BID=$(awk '$6 == "ch_bid" { print $7 }' "$JAR")
[ -n "$SESSION" ] && [ -n "$BID" ] || die "no ch_session/ch_bid cookie after login"
COOKIE="Cookie: ch_session=$SESSION; ch_bid=$BID"

say "Logging in as $API_PHONE (API: bearer token)"
curl -fsS -o /dev/null -H 'Content-Type: application/json' \
  -d "{\"phone\":\"$API_PHONE\"}" "$BASE/api/v1/auth/sms/send" \
  || die "POST /api/v1/auth/sms/send failed"
CODE=$(latest_code "$API_PHONE")
[ -n "$CODE" ] || die "no login code for $API_PHONE in /dev/outbox.json"
TOKEN=$(curl -fsS -H 'Content-Type: application/json' \
  -d "{\"phone\":\"$API_PHONE\",\"code\":\"$CODE\"}" "$BASE/api/v1/auth/sms/verify" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
[ -n "$TOKEN" ] || die "no token from /api/v1/auth/sms/verify"
BEARER="Authorization: Bearer $TOKEN"

# --- Seed data ---------------------------------------------------------------
say "Seeding $MESSAGES messages into each account"
seed_target="$DATA/certhall.db"
[ -z "$POSTGRES" ] || seed_target="-"
python3 - "$seed_target" "$MESSAGES" "$PAGE_PHONE" "$API_PHONE" >"$WORK/seed.sql" <<'PY'
import sqlite3, sys, time
db, n, phones = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
samples = [
    ("review", "证书新办申请审核通过",
     "您提交的单位数字证书新办申请（订单号 CH{no:08d}）已审核通过，UKey 将于 1-3 个工作日内寄出，请注意查收。"),
    ("review", "证书变更申请被退回",
     "您提交的证书变更申请（订单号 CH{no:08d}）未通过审核：营业执照照片不清晰。请重新上传后再次提交。"),
    ("expiry", "数字证书即将到期",
     "您单位的数字证书（序列号 5F{no:06X}）将于 30 天后到期。为避免影响电子招投标和网上办税，请及时在线办理证书更新。"),
    ("system", "系统维护通知",
     "网上服务大厅将于本周六 22:00 至次日 02:00 进行系统升级，期间证书业务暂停办理，给您带来的不便敬请谅解。"),
]
now = int(time.time() * 1000)
def rows_for(account):
    for i in range(n):
        kind, title, body = samples[i % len(samples)]
        created = now - (n - i) * 3_600_000  # one an hour, oldest first
        read_at = created + 600_000 if i % 3 == 0 else None
        yield (account, kind, title, body.format(no=i + 1), created, read_at)
if db == "-":
    # PostgreSQL: SQL for psql on stdout (the texts hold no quotes).
    print("BEGIN;")
    for phone in phones:
        for r in rows_for(None):
            print("INSERT INTO messages (account_id, kind, title, body, created_at, read_at) "
                  f"SELECT id, '{r[1]}', '{r[2]}', '{r[3]}', {r[4]}, {'NULL' if r[5] is None else r[5]} "
                  f"FROM accounts WHERE phone = '{phone}';")
    print("COMMIT;")
    sys.exit(0)
con = sqlite3.connect(db, timeout=30)
con.execute("PRAGMA busy_timeout = 30000")
with con:
    for phone in phones:
        row = con.execute("SELECT id FROM accounts WHERE phone = ?", (phone,)).fetchone()
        if row is None:
            sys.exit(f"seed: no account for {phone}")
        con.executemany(
            "INSERT INTO messages (account_id, kind, title, body, created_at, read_at) "
            "VALUES (?, ?, ?, ?, ?, ?)", list(rows_for(row[0])))
con.close()
PY
if [ -n "$POSTGRES" ]; then
  psql "$DATABASE_URL" -q -v ON_ERROR_STOP=1 -f "$WORK/seed.sql" >/dev/null || die "seeding PostgreSQL failed"
fi
# Expected counts: the welcome message (unread) plus the seeded ones.
EXP_TOTAL=$((MESSAGES + 1))
EXP_UNREAD=$((MESSAGES - (MESSAGES + 2) / 3 + 1))

# Both endpoints must answer 200 with the seeded data before measuring.
# Every server: the session made on the first one works on the others.
for b in "${BASES[@]}"; do
  home=$(curl -sS -w '\n%{http_code}' -H "$COOKIE" "$b/")
  [ "${home##*$'\n'}" = 200 ] || die "GET $b/ answered ${home##*$'\n'} with the session cookie"
  grep -q "查看全部（$EXP_TOTAL）" <<<"$home" || die "$b/ does not show $EXP_TOTAL messages"
  grep -q "badge\">$EXP_UNREAD<" <<<"$home" || die "$b/ does not show $EXP_UNREAD unread"
done
HOME_BYTES=$(curl -sS -o /dev/null -w '%{size_download}' -H "$COOKIE" "$BASE/")
api=$(curl -fsS -H "$BEARER" "$BASE/api/v1/messages") || die "GET /api/v1/messages failed"
python3 -c '
import json, sys
d = json.loads(sys.argv[1])
total, unread = int(sys.argv[2]), int(sys.argv[3])
assert d["total"] == total and d["unread"] == unread and len(d["items"]) == min(20, total), \
    (d["total"], d["unread"], len(d["items"]))
' "$api" "$EXP_TOTAL" "$EXP_UNREAD" || die "GET /api/v1/messages does not show the seeded messages"
API_BYTES=$(curl -sS -o /dev/null -w '%{size_download}' -H "$BEARER" "$BASE/api/v1/messages")
say "Seeded: $EXP_TOTAL messages, $EXP_UNREAD unread; / is $HOME_BYTES B, /api/v1/messages is $API_BYTES B"

# --- Measurement -------------------------------------------------------------

ROWS=()
FAILURES=()
MISSES=()
NOISY=()
WRK_CMDS=()
# Several wrk outputs (one per server, run at once) -> one in wrk's own
# format: requests, requests/s, bytes and errors summed; each latency
# percentile and the maximum the worst instance's.
wrk_combine() {
  python3 - "$@" <<'PY'
import re, sys
units = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}
def ms(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v)
    n, u = float(m.group(1)), m.group(2)
    return n * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[u]
reqs = rps = read = non2xx = 0
secs = worst_max = 0.0
pct, sock = {}, [0, 0, 0, 0]
for path in sys.argv[1:]:
    for line in open(path):
        f = line.split()
        if len(f) >= 4 and f[0] == "Latency":
            worst_max = max(worst_max, ms(f[3]))
        elif len(f) == 2 and f[0] in ("50%", "75%", "90%", "99%"):
            pct[f[0]] = max(pct.get(f[0], 0.0), ms(f[1]))
        elif "requests in" in line:
            m = re.search(r"(\d+) requests in ([\d.]+)s, ([\d.]+)([KMG]?B) read", line)
            reqs += int(m.group(1)); secs = max(secs, float(m.group(2)))
            read += float(m.group(3)) * units[m.group(4)]
        elif line.startswith("Requests/sec:"):
            rps += float(f[1])
        elif line.startswith("  Non-2xx or 3xx responses:"):
            non2xx += int(f[-1])
        elif line.strip().startswith("Socket errors:"):
            for i, n in enumerate(re.findall(r"\d+", line)[:4]):
                sock[i] += int(n)
print(f"    Latency   -   -   {worst_max:.2f}ms   -")
print("  Latency Distribution")
for k in ("50%", "75%", "90%", "99%"):
    print(f"     {k}   {pct[k]:.2f}ms")
print(f"  {reqs} requests in {secs:.2f}s, {read / 1024**2:.2f}MB read")
if any(sock):
    print(f"  Socket errors: connect {sock[0]}, read {sock[1]}, write {sock[2]}, timeout {sock[3]}")
if non2xx:
    print(f"  Non-2xx or 3xx responses: {non2xx}")
print(f"Requests/sec: {rps:.2f}")
PY
}

run() { # name route url header...
  local name=$1 route=$2 path=$3; shift 3
  local hdr=() h
  for h in "$@"; do hdr+=(-H "$h"); done
  # One wrk per server, the connections and threads shared between them.
  local n=${#BASES[@]} i
  local conns=$((CONNECTIONS / n)) thr=$((THREADS / n))
  ((thr >= 1)) || thr=1
  say "Warm-up: $name (5 s)"
  # Wait for the wrk processes only: the servers are children too.
  local pids=()
  for i in "${!BASES[@]}"; do
    wrk -t"$thr" -c"$conns" -d5s "${hdr[@]}" "${BASES[$i]}$path" >/dev/null &
    pids+=($!)
  done
  wait "${pids[@]}"
  local out t0 t1 c0 c1 m0 m1 g0 g1
  all_metrics >"$WORK/metrics.before"
  # PostgreSQL's CPU is part of the system measured only with --postgres.
  g0=0; g1=0
  m0=$(machine_ticks); t0=$(server_ticks); [ -z "$POSTGRES" ] || g0=$(pg_ticks); times >"$WORK/times.before"
  say "wrk -t$thr -c$conns -d$DURATION --latency ${BASES[*]/%/$path}"
  pids=()
  for i in "${!BASES[@]}"; do
    wrk -t"$thr" -c"$conns" -d"$DURATION" --latency "${hdr[@]}" "${BASES[$i]}$path" >"$WORK/wrk.$i.out" &
    pids+=($!)
  done
  wait "${pids[@]}"
  t1=$(server_ticks); [ -z "$POSTGRES" ] || g1=$(pg_ticks); times >"$WORK/times.after"; m1=$(machine_ticks)
  sleep 0.2 # let requests in flight when wrk stopped reach the counters
  all_metrics >"$WORK/metrics.after"
  if ((n == 1)); then
    cp "$WORK/wrk.0.out" "$WORK/wrk.out"
  else
    wrk_combine "$WORK"/wrk.[0-9]*.out >"$WORK/wrk.out"
  fi
  out=$(cat "$WORK/wrk.out")
  cp "$WORK/wrk.out" "$WORK/wrk-${name//[^A-Za-z0-9]/_}.txt"
  printf '%s\n' "$out" >&2
  c0=$(children_cpu "$WORK/times.before"); c1=$(children_cpu "$WORK/times.after")

  local rps p50 p90 p99 max reqs bytes_read non2xx sockerr secs
  rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out")
  p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
  p90=$(to_ms "$(awk '$1 == "90%" { print $2 }' <<<"$out")")
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
  max=$(to_ms "$(awk '$1 == "Latency" && NF >= 4 { print $4; exit }' <<<"$out")")
  reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' <<<"$out"); non2xx=${non2xx:-0}
  sockerr=$(awk '/Socket errors:/ { gsub(/[^0-9]+/, " "); s = 0; for (i = 1; i <= NF; i++) s += $i; print s }' <<<"$out")
  sockerr=${sockerr:-0}
  secs=$(awk '/requests in/ { sub(/s,$/, "", $4); print $4 }' <<<"$out")
  bytes_read=$(awk '/requests in/ { sub(/,$/, "", $5); print $5 }' <<<"$out")

  # The server's own count: every request to the route must have been a 200.
  local all not200 srv_mean srv_p99 srv_cpu wrk_cpu srv_us other_cpu
  read -r all not200 srv_mean srv_p99 \
    <<<"$(metrics_delta "$WORK/metrics.before" "$WORK/metrics.after" "$route")"
  srv_cpu=$(awk -v a="$t0" -v b="$t1" -v s="$secs" -v hz="$CLK_TCK" \
    'BEGIN { printf "%.0f%%", (b - a) / hz / s * 100 }')
  wrk_cpu=$(awk -v a="$c0" -v b="$c1" -v s="$secs" 'BEGIN { printf "%.0f%%", (b - a) / s * 100 }')
  # Everything else the machine did meanwhile (other processes, kernel
  # threads, interrupts): a noise indicator. Steal: time the hypervisor
  # gave to other guests. With --postgres the database's processes are
  # part of the measured system: shown apart, not counted as noise.
  other_cpu=$(awk -v m0="$m0" -v m1="$m1" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" \
    -v g0="$g0" -v g1="$g1" -v s="$secs" -v hz="$CLK_TCK" 'BEGIN { split(m0, a, " "); split(m1, b, " ")
      o = ((b[1] - a[1]) - (t1 - t0) - (g1 - g0)) / hz - (c1 - c0); if (o < 0) o = 0
      pg = (g1 > 0) ? sprintf(", PostgreSQL %.0f%%", (g1 - g0) / hz / s * 100) : ""
      printf "%.0f%% (steal %.0f%%%s)", o / s * 100, (b[2] - a[2]) / hz / s * 100, pg }')
  srv_us=$(awk -v a="$t0" -v b="$t1" -v n="$all" -v hz="$CLK_TCK" \
    'BEGIN { if (n > 0) printf "%.0f", (b - a) / hz / n * 1e6; else print "-" }')

  if ((non2xx > 0 || sockerr > 0 || not200 > 0 || all < reqs)); then
    FAILURES+=("$name: wrk non-2xx/3xx $non2xx, socket errors $sockerr, server counted $all requests of which $not200 not 200 (wrk completed $reqs)")
  fi
  awk -v o="$other_cpu" 'BEGIN { exit !(o + 0 >= 10) }' \
    && NOISY+=("$name: other work took $other_cpu of a core during the run")
  if [ "$route" != /healthz ]; then
    awk -v r="$rps" 'BEGIN { exit !(r >= 5000) }' || MISSES+=("$name: $rps req/s < 5,000")
    awk -v p="$p99" 'BEGIN { exit !(p < 20) }' || MISSES+=("$name: p99 $p99 ms >= 20 ms")
  fi
  ROWS+=("| $name | $rps | $p50 | $p90 | $p99 | $max | $reqs | $non2xx / $sockerr / $not200 | $bytes_read | $srv_mean / ≤$srv_p99 | $srv_cpu | $srv_us | $wrk_cpu | $other_cpu |")
  local shown=()
  for h in "$@"; do shown+=(-H "'${h%%:*}: …'"); done
  for i in "${!BASES[@]}"; do
    WRK_CMDS+=("wrk -t$thr -c$conns -d$DURATION --latency ${shown[*]} ${BASES[$i]}$path")
  done
}

BUSY=$(machine_busy)
if ((WAIT_QUIET)); then
  deadline=$((SECONDS + 900))
  while ((BUSY >= 5 && SECONDS < deadline)); do
    say "Machine ${BUSY}% busy with other work; waiting for it to be idle"
    BUSY=$(machine_busy)
  done
fi
((BUSY < 5)) || say "WARNING: the machine is ${BUSY}% busy with other work; the numbers will be low"

IDLE_RSS=$(proc_field "$SERVER_PID" VmRSS)
run "GET / (home, logged in)" "/" "/" "$COOKIE"
run "GET /api/v1/messages" "/api/v1/messages" "/api/v1/messages" "$BEARER"
if ((CEILING)); then
  run "GET /healthz (ceiling)" "/healthz" "/healthz"
fi
# The first server's memory (with several servers, each has its own).
PEAK_RSS=$(proc_field "$SERVER_PID" VmHWM)
AFTER_RSS=$(proc_field "$SERVER_PID" VmRSS)
THREADS_SRV=$(proc_field "$SERVER_PID" Threads)
awk -v k="$PEAK_RSS" 'BEGIN { exit !(k < 100 * 1024) }' || MISSES+=("peak RSS $PEAK_RSS kB >= 100 MB")

# --- Report ------------------------------------------------------------------
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }
report=$(
  echo "### $(date -u '+%Y-%m-%d %H:%M UTC') — $BUILT_FROM"
  echo
  echo "Machine: $(nproc) CPUs ($CPU_MODEL), $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r); $(wrk -v 2>&1 | head -1 | awk '{ print $1, $2 }'); $(rustc --version 2>/dev/null | awk '{ print $1, $2 }')."
  echo "Load: wrk on 127.0.0.1, $THREADS threads, $CONNECTIONS connections, $DURATION per endpoint after a 5 s warm-up; $BACKEND backend, RUST_LOG=warn; $EXP_TOTAL messages per account ($EXP_UNREAD unread); / is $HOME_BYTES B, /api/v1/messages is $API_BYTES B (20 messages)."
  echo
  echo "| Endpoint | Req/s | p50 ms | p90 ms | p99 ms | max ms | Requests | Errors: wrk non-2xx/3xx / socket / server non-200 | Read | Server-side mean ms / p99 bucket | Server CPU | Server CPU µs/req | wrk CPU | Other CPU |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---:|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "Server RSS: idle after login and seeding $(mb "$IDLE_RSS"), peak (VmHWM) $(mb "$PEAK_RSS"), after the runs $(mb "$AFTER_RSS"); $THREADS_SRV threads."
  echo "CPU columns are percent of one core ($(nproc) cores: $(($(nproc) * 100))% is the whole machine). Other CPU: everything but the server and wrk during the run (other processes, kernel threads, interrupts), a noise indicator."
  echo "Machine busy with other work just before the runs: ${BUSY}% of all CPUs."
  if ((${#NOISY[@]})); then
    echo
    echo "**Noisy measurement** — other processes competed for the CPUs: $(IFS=';'; echo "${NOISY[*]}"). Rerun on an idle machine (--wait-quiet)."
  fi
  echo
  if ((${#MISSES[@]})); then
    echo "Targets (≥ 5,000 req/s, p99 < 20 ms, RSS < 100 MB): MISSED — $(IFS=';'; echo "${MISSES[*]}")."
  else
    echo "Targets (≥ 5,000 req/s, p99 < 20 ms, RSS < 100 MB): met."
  fi
  echo
  echo "Commands:"
  echo
  echo '```'
  printf '%s\n' "${WRK_CMDS[@]}"
  echo '```'
)
echo
printf '%s\n' "$report"
if [ -n "$OUT" ]; then
  { echo; printf '%s\n' "$report"; } >>"$OUT"
  say "Appended to $OUT"
fi

if ((IMAGES)) && ! ((${#FAILURES[@]})); then
  say "Image benchmarks (release builds, one core)"
  (cd "$REPO" && cargo build --release -q -p certhall-upload --example upload_bench \
    && cargo build --release -q -p certhall-ocr --example ocr_bench)
  pin=()
  command -v taskset >/dev/null 2>&1 && pin=(taskset -c 0)
  images=$("${pin[@]}" "$REPO/target/release/examples/upload_bench" 20)
  if [ -s "$REPO/models/ocr/PP-OCRv6_rec_small.onnx" ]; then
    images+=$'\n\n'$("${pin[@]}" "$REPO/target/release/examples/ocr_bench" 20 "$REPO/models/ocr")
    # The independent corpus's held-out half (generated once, ~4 min).
    images+=$'\n\nLicense OCR on the independent corpus (held-out half):\n'$("$REPO/scripts/bench-ocr.sh" heldout)
  else
    images+=$'\n\n(OCR skipped: no models in models/ocr; run scripts/fetch-ocr-models.sh)'
  fi
  printf '%s\n' "$images"
  if [ -n "$OUT" ]; then
    { echo; printf '%s\n' "$images"; } >>"$OUT"
  fi
fi

if ((AGENT)) && ! ((${#FAILURES[@]})); then
  if [ -n "$OUT" ]; then
    "$REPO/scripts/bench-agent.sh" --out "$OUT"
  else
    "$REPO/scripts/bench-agent.sh"
  fi
fi

if ((PAYMENT)) && ! ((${#FAILURES[@]})); then
  payment=("$REPO/scripts/bench-payment.sh")
  if ((WAIT_QUIET)); then payment+=(--wait-quiet); fi
  if [ -n "$OUT" ]; then payment+=(--out "$OUT"); fi
  "${payment[@]}"
fi

if ((PRODUCTION)) && ! ((${#FAILURES[@]})); then
  production=("$REPO/scripts/bench-production.sh")
  if ((WAIT_QUIET)); then production+=(--wait-quiet); fi
  if [ -n "$OUT" ]; then production+=(--out "$OUT"); fi
  "${production[@]}"
fi

if ((OCSP)) && ! ((${#FAILURES[@]})); then
  ocsp=("$REPO/scripts/bench-ocsp.sh" --no-build)
  if [ -n "$OUT" ]; then ocsp+=(--out "$OUT"); fi
  "${ocsp[@]}"
fi

if ((CRL)) && ! ((${#FAILURES[@]})); then
  crl=("$REPO/scripts/bench-crl.sh")
  if [ -n "$OUT" ]; then crl+=(--out "$OUT"); fi
  "${crl[@]}"
fi

if ((ISSUE)) && ! ((${#FAILURES[@]})); then
  issue=("$REPO/scripts/bench-issue.sh")
  if [ -n "$OUT" ]; then issue+=(--out "$OUT"); fi
  "${issue[@]}"
fi

if ((${#FAILURES[@]})); then
  printf '\033[1;31mbench: INVALID MEASUREMENT — not every request was answered 200:\033[0m\n' >&2
  printf '  %s\n' "${FAILURES[@]}" >&2
  KEEP=1
  exit 1
fi
if ((STRICT)) && ((${#MISSES[@]})); then
  exit 2
fi
