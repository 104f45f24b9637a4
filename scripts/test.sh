#!/usr/bin/env bash
# CertHall's whole test suite: formatting, lints, unit, storage (SQLite and
# PostgreSQL), in-process HTTP, CLI and headless-browser end-to-end tests.
#
# Installs the Debian/Ubuntu packages the tests need when they are missing
# (as root; otherwise prints the exact command). `.ci/run` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# --- System packages -------------------------------------------------------
# chromium: the real browser of the end-to-end tests;
# fonts-wqy-zenhei: so Chinese renders in screenshots;
# softhsm2: the PKCS#11 token the CA-key-in-a-token tests use;
# openssl: the independent checker of every certificate, CRL and OCSP answer;
# opensc (pkcs11-tool): an independent look at the keys a produced token holds.
need=()
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-pip)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
dpkg -s fonts-wqy-zenhei >/dev/null 2>&1 || need+=(fonts-wqy-zenhei)
command -v softhsm2-util >/dev/null 2>&1 || need+=(softhsm2)
command -v pkcs11-tool >/dev/null 2>&1 || need+=(opensc)
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ]; then
    say "Installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  else
    echo "Missing system packages. Install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${need[*]}" >&2
    exit 1
  fi
fi
# Python's `cryptography`: the second, independent X.509/OCSP parser.
if ! python3 -c "import cryptography.x509.ocsp" >/dev/null 2>&1; then
  say "Installing Python cryptography (second parser for the CA tests)"
  python3 -m pip install --quiet "cryptography>=42" \
    || python3 -m pip install --quiet --break-system-packages "cryptography>=42" \
    || { echo "Install it with: python3 -m pip install cryptography" >&2; exit 1; }
fi
# The business-license OCR models (PP-OCRv4 detection, PP-OCRv6 recognition,
# from the PyPI wheels rapidocr_onnxruntime and rapidocr) for crates/ocr's tests; idempotent.
say "OCR models (scripts/fetch-ocr-models.sh)"
scripts/fetch-ocr-models.sh
for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done

# --- PostgreSQL --------------------------------------------------------------
# The storage, HTTP and browser tests run on SQLite always and on PostgreSQL
# when TEST_DATABASE_URL is set. Under CI=true it defaults to the machine's
# PostgreSQL and an unreachable server fails the run instead of skipping.
if [ -z "${TEST_DATABASE_URL:-}" ]; then
  if (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
    export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/test"
    say "PostgreSQL found on 127.0.0.1:5432: running the PostgreSQL variants"
  elif [ "${CI:-}" = "true" ]; then
    echo "CI=true but PostgreSQL is not reachable on 127.0.0.1:5432" >&2
    exit 1
  else
    say "PostgreSQL not reachable on 127.0.0.1:5432: PostgreSQL variants will be SKIPPED"
  fi
fi

# --- Checks and tests --------------------------------------------------------
say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
say "crate boundaries"
# The web talks to Services, never to the store (STYLE.md): certhall-store
# must not be one of certhall-web's own dependencies. (It is reached
# through certhall-service, whose re-exported types the pages show; Rust
# lets a crate use only its own dependencies, so that is the boundary.)
web_deps=$(cargo tree -p certhall-web --locked -e normal,build --depth 1 --prefix none)
if printf '%s\n' "$web_deps" | grep -q '^certhall-store '; then
  echo "certhall-web depends on certhall-store directly" >&2
  exit 1
fi
say "cargo test"
# Tests that cannot run (no PostgreSQL, Chromium, SoftHSM2, OCR models)
# write a line here (certhall_store::testing::report_skip): cargo hides the
# output of passing tests, so the summary below is where they show. Under
# CI=true they fail instead.
export CERTHALL_SKIP_LOG="${TMPDIR:-/tmp}/certhall-skipped.$$"
rm -f "$CERTHALL_SKIP_LOG"
skip_summary() {
  if [ -s "$CERTHALL_SKIP_LOG" ]; then
    printf '\033[1;33m==> SKIPPED (did not run here; CI runs them):\033[0m\n'
    sort "$CERTHALL_SKIP_LOG" | uniq -c | sed 's/^ */    /'
  fi
  rm -f "$CERTHALL_SKIP_LOG"
}
trap skip_summary EXIT
cargo test --workspace --locked -- --test-threads=2
if [ -s "$CERTHALL_SKIP_LOG" ]; then
  say "Tests passed, some SKIPPED (listed below). Browser screenshots: target/e2e-artifacts/"
else
  say "All tests passed, none skipped. Browser screenshots: target/e2e-artifacts/"
fi
