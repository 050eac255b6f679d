#!/usr/bin/env bash
# Soak the CAS's crash safety (CAS issue §8): 1,000 cycles of kill -9 during
# session applies and attestations, checking after every restart that no
# acknowledged write was lost, the audit log verifies, and the store reopens.
#
#   scripts/soak-cas.sh                 # 1,000 cycles, fresh random seed
#   VEIL_CAS_CRASH_CYCLES=5000 scripts/soak-cas.sh
#   VEIL_CAS_CRASH_SEED=1234 scripts/soak-cas.sh   # replay a failure's kill delays
#
# The test prints its seed first; a failure names the cycle and the seed and
# keeps the state directory. The suite runs the same test with 100 cycles.
set -euo pipefail
cd "$(dirname "$0")/.."

export VEIL_CAS_CRASH_CYCLES="${VEIL_CAS_CRASH_CYCLES:-1000}"
exec cargo test --release -p veil --test cas_crash -- --nocapture "$@"
