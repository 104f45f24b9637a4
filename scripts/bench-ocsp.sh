#!/usr/bin/env bash
# OCSP throughput (issue 14), as ratios measured in one run on this
# machine: CertHall's /ocsp beside nginx serving a file of the same size
# as CertHall's answer and beside `openssl ocsp` as a responder, all on
# 127.0.0.1 under wrk at 64 connections.
#
#   scripts/bench-ocsp.sh [--duration 10] [--rounds 3] [--connections 64]
#                         [--out FILE] [--no-build]
#
# Cases (each round runs every case once, interleaved; the table gives the
# median round):
#   certhall POST cached   a request without nonce: pre-signed answer
#   certhall GET cached    the same as GET /ocsp/{base64}
#   certhall POST nonce    a request with a nonce: signed per request
#   nginx file GET         a static file of the answer's size
#   openssl ocsp POST      `openssl ocsp -index … -multi 2`: signs every
#                          answer (OpenSSL's own P-256 CA and responder)
# plus `openssl speed ecdsap256` for the cost of one signature.
#
# CertHall runs in demo mode (`certhall serve --demo`, SQLite, fresh data
# folder). Needs wrk, nginx, openssl, curl, python3 (installed with apt-get
# when running as root; otherwise the script prints the command).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=scripts/lib/bench-common.sh
. "$REPO/scripts/lib/bench-common.sh"

DURATION=10
ROUNDS=3
CONNS=64
OUT=""
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --connections) CONNS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

need=()
command -v wrk >/dev/null || need+=(wrk)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || need+=(nginx-light)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  else
    echo "Missing: sudo apt-get install -y --no-install-recommends ${need[*]}" >&2
    exit 1
  fi
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [ "$BUILD" = 1 ]; then
  cargo build --release --quiet -p certhall
fi
BIN="$REPO/target/release/certhall"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  # `openssl ocsp -multi` forks workers that spin once their parent is
  # gone: stop the children first.
  for p in "${PIDS[@]}"; do pkill -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- CertHall ------------------------------------------------------------
CH_PORT=$(free_port)
DATA="$WORK/data"
RUST_LOG=warn CERTHALL_DEMO_AGENT=false "$BIN" serve --demo --listen "127.0.0.1:$CH_PORT" \
  --data-dir "$DATA" >"$WORK/certhall.out" 2>"$WORK/certhall.err" &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
for _ in $(seq 1 300); do
  curl -fs "http://127.0.0.1:$CH_PORT/readyz" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/certhall.err" >&2; exit 1; }
  sleep 0.2
done
# The demo CA exists once /ca lists P-256.
for _ in $(seq 1 300); do
  curl -fs "http://127.0.0.1:$CH_PORT/ca" | grep -q "P-256" && break
  sleep 0.2
done
cd "$WORK"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out ee.key 2>/dev/null
openssl req -new -key ee.key -out ee.csr -subj "/CN=ignored" 2>/dev/null
CLI=("$BIN" --demo --data-dir "$DATA")
RUST_LOG=warn "${CLI[@]}" ca issue --family p256 --profile enterprise --csr ee.csr \
  --subject "C=CN,O=枣庄某某建设有限公司,USCC=91350100M000100Y43,CN=枣庄某某建设有限公司" >ee.pem 2>/dev/null
RUST_LOG=warn "${CLI[@]}" ca chain --family p256 >chain.pem 2>/dev/null
awk '/BEGIN/{n++} n==1' chain.pem >issuing.pem
openssl ocsp -issuer issuing.pem -cert ee.pem -no_nonce -reqout req.der 2>/dev/null
openssl ocsp -issuer issuing.pem -cert ee.pem -reqout req_nonce.der 2>/dev/null
CH="http://127.0.0.1:$CH_PORT"
curl -fs -o answer.der --data-binary @req.der -H 'Content-Type: application/ocsp-request' "$CH/ocsp"
openssl ocsp -respin answer.der -issuer issuing.pem -cert ee.pem -CAfile chain.pem 2>&1 | grep -q "ee.pem: good" \
  || { echo "CertHall's OCSP answer does not verify" >&2; exit 1; }
SIZE=$(stat -c %s answer.der)
GET_PATH="/ocsp/$(python3 -c 'import base64,sys,urllib.parse; print(urllib.parse.quote(base64.b64encode(open("req.der","rb").read()).decode(), safe=""))')"
curl -fs -o /dev/null "$CH$GET_PATH" || { echo "GET /ocsp failed" >&2; exit 1; }

post_lua() { # file -> lua script path
  cat >"$1.lua" <<LUA
local f = io.open("$WORK/$1", "rb")
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "application/ocsp-request"
LUA
  echo "$WORK/$1.lua"
}
POST_CACHED=$(post_lua req.der)
POST_NONCE=$(post_lua req_nonce.der)

# --- nginx, a file of the same size --------------------------------------
NG_PORT=$(free_port)
mkdir -p nginx/www nginx/tmp
head -c "$SIZE" /dev/urandom >nginx/www/answer.der
# nginx's workers run as another user: let them read the file.
chmod 755 "$WORK" nginx nginx/www
chmod 644 nginx/www/answer.der
cat >nginx/nginx.conf <<NGX
worker_processes 2;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/tmp;
  proxy_temp_path $WORK/nginx/tmp;
  fastcgi_temp_path $WORK/nginx/tmp;
  uwsgi_temp_path $WORK/nginx/tmp;
  scgi_temp_path $WORK/nginx/tmp;
  server {
    listen 127.0.0.1:$NG_PORT;
    root $WORK/nginx/www;
    default_type application/ocsp-response;
  }
}
NGX
"$NGINX" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
PIDS+=($!)

# --- openssl ocsp responder (its own P-256 CA) -----------------------------
OS_PORT=$(free_port)
mkdir -p ossl && cd ossl
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
  -subj "/CN=Bench CA" -days 30 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ocsp.key -out ocsp.csr \
  -subj "/CN=Bench OCSP" 2>/dev/null
printf 'extendedKeyUsage=OCSPSigning\n' >ocsp.ext
openssl x509 -req -in ocsp.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile ocsp.ext -out ocsp.pem 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ee.key -out ee.csr -subj "/CN=Bench EE" 2>/dev/null
openssl x509 -req -in ee.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -out ee.pem 2>/dev/null
serial=$(openssl x509 -in ee.pem -noout -serial | cut -d= -f2)
printf 'V\t%s\t\t%s\tunknown\t/CN=Bench EE\n' "$(date -u -d '+30 days' +%y%m%d%H%M%SZ)" "$serial" >index.txt
openssl ocsp -issuer ca.pem -cert ee.pem -no_nonce -reqout req.der 2>/dev/null
cd "$WORK"
# Started afresh for each of its runs and stopped right after: under load
# its parent has been seen to exit, leaving -multi workers spinning.
OS_PID=""
start_openssl() {
  (cd "$WORK/ossl" && exec openssl ocsp -index index.txt -port "$OS_PORT" -rsigner ocsp.pem \
    -rkey ocsp.key -CA ca.pem -multi 2 -ignore_err >/dev/null 2>&1) &
  OS_PID=$!
  PIDS+=("$OS_PID")
  for _ in $(seq 1 50); do
    curl -fs -o /dev/null --data-binary @ossl/req.der -H 'Content-Type: application/ocsp-request' \
      "http://127.0.0.1:$OS_PORT/" && return 0
    sleep 0.1
  done
  echo "openssl ocsp responder did not answer" >&2
  exit 1
}
stop_openssl() {
  pkill -P "$OS_PID" 2>/dev/null || true
  kill "$OS_PID" 2>/dev/null || true
  wait "$OS_PID" 2>/dev/null || true
  pkill -f "openssl ocsp -index index.txt -port $OS_PORT" 2>/dev/null || true
}
OS_POST=$(post_lua ossl/req.der)
start_openssl
sleep 1
[ "$(curl -fs "http://127.0.0.1:$NG_PORT/answer.der" | wc -c)" = "$SIZE" ] \
  || { echo "nginx does not serve the file" >&2; cat nginx/error.log >&2; exit 1; }
curl -fs -o os_answer.der --data-binary @ossl/req.der -H 'Content-Type: application/ocsp-request' \
  "http://127.0.0.1:$OS_PORT/" || { echo "openssl ocsp responder did not answer" >&2; exit 1; }
stop_openssl

# --- runs ------------------------------------------------------------------
run_wrk() { # name url [lua]
  local name=$1 url=$2 lua=${3:-}
  local args=(-t2 "-c$CONNS" "-d${DURATION}s" --latency)
  [ -n "$lua" ] && args+=(-s "$lua")
  local out rps p99 non2xx
  out=$(wrk "${args[@]}" "$url" 2>&1)
  rps=$(awk '/^Requests\/sec/ { print $2 }' <<<"$out")
  p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
  non2xx=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
  [ -n "$rps" ] || { echo "$name: wrk gave no rate:" >&2; echo "$out" >&2; rps=0; }
  echo "$name|$rps|$(to_ms "${p99:-0ms}")|${non2xx:-0}" | tee -a "$WORK/results" >&2
}
echo "git $(git_state); wrk -t2 -c$CONNS -d${DURATION}s; $ROUNDS rounds; answer $SIZE bytes" >&2
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r/$ROUNDS" >&2
  run_wrk "certhall POST cached" "$CH/ocsp" "$POST_CACHED"
  run_wrk "certhall GET cached" "$CH$GET_PATH"
  run_wrk "certhall POST nonce" "$CH/ocsp" "$POST_NONCE"
  run_wrk "nginx file GET" "http://127.0.0.1:$NG_PORT/answer.der"
  start_openssl
  run_wrk "openssl ocsp POST" "http://127.0.0.1:$OS_PORT/" "$OS_POST"
  stop_openssl
done
SPEED=$(openssl speed -seconds 3 ecdsap256 2>/dev/null | awk '/256 bits ecdsa/ { print $(NF-1) }' | tail -1)

table=$(python3 - "$WORK/results" "$SPEED" "$SIZE" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, rps, p99, non2xx = line.strip().split("|")
    rows.setdefault(name, []).append((float(rps), float(p99), int(non2xx or 0)))
nginx = statistics.median(r[0] for r in rows["nginx file GET"]) or float("nan")
ossl = statistics.median(r[0] for r in rows["openssl ocsp POST"]) or float("nan")
print("| case | answers/s (median of rounds) | rounds | p99 ms (median) | × nginx | × openssl ocsp | non-2xx |")
print("|---|---:|---|---:|---:|---:|---:|")
for name, rs in rows.items():
    med = statistics.median(r[0] for r in rs)
    p99 = statistics.median(r[1] for r in rs)
    print(f"| {name} | {med:,.0f} | {' / '.join(f'{r[0]:,.0f}' for r in rs)} | {p99:.2f} | "
          f"{med / nginx:.2f} | {med / ossl:.2f} | {sum(r[2] for r in rs)} |")
sign = sys.argv[2]
if sign:
    print(f"\nopenssl speed ecdsap256: {float(sign):,.0f} signatures/s on one core "
          f"({1e6 / float(sign):.0f} µs each); answer size {sys.argv[3]} bytes.")
PY
)
echo "$table"
if [ -n "$OUT" ]; then
  printf '\n%s\n' "$table" >>"$OUT"
fi
