#!/usr/bin/env bash
# Fuzzes a development CAS with schemathesis (PyPI) against its own OpenAPI
# document: no request may get a server error (5xx), and every response must
# conform to the document (status codes, content types, schemas).
#
#   scripts/schemathesis.sh            # builds target/debug/veil if missing
#
# Environment:
#   VEIL_BIN            veil binary (default: target/debug/veil, built if absent)
#   ST_MAX_EXAMPLES     test cases per operation and phase (default: 30)
#   ST_SEED             schemathesis seed (default: random; printed in the output)
#   ST_ARGS             more `schemathesis run` arguments (word-split), e.g.
#                       "--report har --report-dir /tmp/st" or "--phases fuzzing"
#   ST_VENV             venv holding schemathesis; reused if it has it, else
#                       created and installed into (default: a temp dir,
#                       removed afterwards). A schemathesis 4 on PATH is used first.
#   ST_PIP_SPEC         what pip installs (default: schemathesis==4.32.5, the
#                       version this script was checked with)
#
# Only loopback traffic to the CAS; pip talks to PyPI when it has to install.
# Exit status: 0 clean, 1 schemathesis found failures or crashed, 2 setup failed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
server_pid=""
cleanup() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() {
    echo "schemathesis.sh: $*" >&2
    exit 2
}

veil=${VEIL_BIN:-$root/target/debug/veil}
if [[ ! -x $veil ]]; then
    (cd "$root" && cargo build -p veil) || die "cannot build veil"
fi

# schemathesis 4 (the flags below are v4's): from PATH, else a venv.
is_v4() { [[ -x $1 && $("$1" --version 2>/dev/null) == *"version 4."* ]]; }
st=$(command -v schemathesis || true)
if [[ -z $st ]] || ! is_v4 "$st"; then
    venv=${ST_VENV:-$tmp/venv}
    st=$venv/bin/schemathesis
    if ! is_v4 "$st"; then
        python3 -m venv "$venv" || die "cannot create a venv in $venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "${ST_PIP_SPEC:-schemathesis==4.32.5}" || die "cannot install schemathesis from PyPI"
        is_v4 "$st" || die "$st is not schemathesis 4"
    fi
fi
echo "using $("$st" --version 2>&1 | head -n1)"

# A development CAS on a random loopback port.
unset VEIL_CAS
"$veil" cas serve --dev --state "$tmp/state" --listen 127.0.0.1:0 \
    --ready-file "$tmp/ready" >"$tmp/cas.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 600); do
    [[ -s $tmp/ready ]] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/cas.log" >&2; die "the CAS exited"; }
    sleep 0.1
done
[[ -s $tmp/ready ]] || { cat "$tmp/cas.log" >&2; die "the CAS did not start within 60 s"; }
read -r url _ <"$tmp/ready"
case $url in https://127.0.0.1:*) ;; *) die "unexpected CAS URL $url" ;; esac
echo "CAS at $url"

# An owner identity, its certificate and key as separate files, and one
# session it owns (so owner endpoints have something to return).
export VEIL_HOME=$tmp/home
"$veil" identity create >/dev/null || die "identity create failed"
fp=$("$veil" identity show) || die "identity show failed"
awk '/-BEGIN CERTIFICATE-/,/-END CERTIFICATE-/' "$VEIL_HOME/identity.pem" >"$tmp/cert.pem"
awk '/-BEGIN PRIVATE KEY-/,/-END PRIVATE KEY-/' "$VEIL_HOME/identity.pem" >"$tmp/key.pem"
[[ -s $tmp/cert.pem && -s $tmp/key.pem ]] || die "cannot split $VEIL_HOME/identity.pem"
"$veil" cas verify "$url" --dev >/dev/null || die "cas verify failed"
cat >"$tmp/policy.yaml" <<EOF
name: shop/db
version: 1
owners: [$fp]
secrets:
  - { name: db_password, kind: password, length: 20 }
  - { name: api_token, kind: supplied }
services:
  - name: app
    accept:
      - tee: sim
        measurement: any
    command: [/bin/app]
    env:
      TOKEN: "{{ api_token }}"
EOF
"$veil" session apply "$tmp/policy.yaml" >/dev/null || die "session apply failed"

# Half the generated path parameters name that session and its secrets, so
# the fuzzer gets past "404 no such session"; the other half stay random.
cat >"$tmp/schemathesis.toml" <<'TOML'
[dictionaries.ns]
values = ["shop"]
[dictionaries.name]
values = ["db"]
[dictionaries.secret]
values = ["api_token", "db_password"]
[parameters]
"path.ns" = { dictionary = "ns", probability = 0.5 }
"path.name" = { dictionary = "name", probability = 0.5 }
"path.secret" = { dictionary = "secret", probability = 0.5 }
TOML

seed_args=()
[[ -n ${ST_SEED:-} ]] && seed_args=(--seed "$ST_SEED")
rc=0
# Run in $tmp so no stray schemathesis.toml is read and reports stay there.
(cd "$tmp" && "$st" --config-file "$tmp/schemathesis.toml" run "$url/v1/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --tls-verify false \
    --request-cert "$tmp/cert.pem" --request-cert-key "$tmp/key.pem" \
    --max-examples "${ST_MAX_EXAMPLES:-30}" \
    --workers 2 \
    --request-timeout 10 \
    --generation-database none \
    --no-color \
    "${seed_args[@]}" ${ST_ARGS:-}) || rc=$?

if grep -q panicked "$tmp/cas.log"; then
    echo "schemathesis.sh: the CAS panicked:" >&2
    grep -A5 panicked "$tmp/cas.log" >&2
    rc=1
fi
kill -0 "$server_pid" 2>/dev/null || { echo "schemathesis.sh: the CAS died" >&2; rc=1; }
if [[ $rc -ne 0 ]]; then
    echo "--- CAS log (last 40 lines) ---" >&2
    tail -n 40 "$tmp/cas.log" >&2
    exit 1
fi
echo "schemathesis: no server errors, responses conform to the OpenAPI document"
