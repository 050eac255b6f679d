#!/usr/bin/env bash
# The main job (README's first command): build veil and run `veil demo`: a
# local development CAS (redb store, simulated TEE) in a temporary directory,
# a session, an unmodified sh program that receives a password, an argument
# and a config file that never touch the disk, then a changed program that
# the CAS refuses. Everything is cleaned up at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p veil
exec target/release/veil demo "$@"
