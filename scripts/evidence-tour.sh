#!/usr/bin/env bash
# A tour of evidence verification: build veil and verify real TEE evidence bundled with the
# sources (SGX, TDX, SEV-SNP, Nitro), then do a round trip with the
# simulated TEE (collect evidence, verify it, see a tampered copy refused).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p veil
veil=target/release/veil
dcap=crates/veil-attest-dcap/testdata
snp=crates/veil-attest-snp/testdata
nitro=crates/veil-attest-nitro/testdata

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

step "An Intel SGX DCAP quote, verified offline with its collateral at the time it was fresh" \
  $veil evidence verify --tee sgx --evidence $dcap/dcapqvl_sgx_quote.bin \
  --endorsement $dcap/dcapqvl_sgx_quote.collateral.json --at 2025-07-04T10:28:44Z
step "An Intel TDX quote" \
  $veil evidence verify --tee tdx --evidence $dcap/dcapqvl_tdx_quote.bin \
  --endorsement $dcap/dcapqvl_tdx_quote.collateral.json --at 1751624655
step "An AMD SEV-SNP report signed by its VCEK (AMD's ARK and ASK are built in)" \
  $veil evidence verify --tee snp --evidence $snp/trustee_report_v2.bin \
  --endorsement $snp/trustee_vcek.der --at 2025-01-01T00:00:00Z
step "An AWS Nitro Enclaves attestation document" \
  $veil evidence verify --tee nitro --evidence $nitro/evervault_valid_doc.cbor --at 2022-10-13T09:00:00Z

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rd=$(printf 'veil quickstart' | sha256sum | cut -c1-64)
step "Evidence from the simulated TEE (a platform key in a file; no protection)" \
  $veil evidence collect --tee sim --root "$work/sim" --report-data "$rd" -o "$work/sim.evidence"
step "...verifies only against that platform key, and is marked insecure" \
  $veil evidence verify --tee sim --evidence "$work/sim.evidence" \
  --endorsement "$work/sim/platform.pub" --expect-report-data "$rd"
cp "$work/sim.evidence" "$work/tampered.evidence"
printf '\xff' | dd of="$work/tampered.evidence" bs=1 seek=100 conv=notrunc status=none
printf '\n\033[1m== A tampered copy is refused (exit code 1)\033[0m\n'
if $veil evidence verify --tee sim --evidence "$work/tampered.evidence" \
     --endorsement "$work/sim/platform.pub"; then
  echo "tampered evidence was accepted" >&2; exit 1
fi
printf '\nDone. Next: docs/spec/attestation.md and ARCHITECTURE.md.\n'
