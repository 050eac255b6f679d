#!/usr/bin/env bash
# The whole test suite: what CI runs (.ci/run calls exactly this).
# Installs the system packages the tests need when they are missing, then
# checks formatting, lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use, as "command:package" pairs.
# Real programs `veil run` starts in the launcher tests are looked up at their
# Debian paths.
needs=(
  "mkfifo:coreutils"
  "/usr/bin/python3:python3"
  "/usr/bin/sqlite3:sqlite3"
  "/usr/bin/redis-server:redis-server"
  "/usr/bin/redis-cli:redis-tools"
  "/usr/bin/memcached:memcached"
  "/usr/bin/redis-benchmark:redis-tools"
  "/usr/bin/tcpdump:tcpdump"
)
missing=()
for pair in "${needs[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== fuzz targets build (cargo check, outside the workspace)"
cargo check --manifest-path fuzz/Cargo.toml --locked --quiet

echo "== cargo test"
# (the API fuzzing below runs after the tests, against the binary they built)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole suite (cargo prints one per test binary),
# printed last.
summary=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log")
if [ "$status" -ne 0 ]; then
  echo "$summary"
  exit "$status"
fi

echo "== schemathesis against the CAS OpenAPI document (fixed seed in CI)"
set +e
VEIL_BIN=target/debug/veil ST_SEED="${ST_SEED:-20261125}" bash scripts/schemathesis.sh
st=$?
set -e
echo "$summary"
exit "$st"
