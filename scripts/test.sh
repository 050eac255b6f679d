#!/usr/bin/env bash
# The whole test suite: what CI runs (.ci/run calls exactly this).
# Installs the system packages the tests need when they are missing, then
# checks formatting, lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use, as "command:package" pairs.
needs=(
  "mkfifo:coreutils"
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
cargo test --workspace --locked
