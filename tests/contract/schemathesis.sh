#!/usr/bin/env bash
# Schemathesis (from PyPI) over every operation of /api/openapi.json, against a live server on
# a temp copy of the sample library, with a valid files token and access token for every auth
# scheme. Fails on any 5xx, any answer the document does not describe (status, content type,
# headers, body schema), a request that breaks the schema but is accepted, a 405 without
# `Allow`, or a server that died.
#
#   tests/contract/schemathesis.sh [--quick]
#
# Env: ST_MAX_EXAMPLES (cases per operation and phase, default 100; --quick 25),
#      ST_MAX_TIME (seconds for the whole run, default 300), ST_SEED (default fixed),
#      FLEXTYPE_BIN (default target/debug/flextype, built when missing).
set -euo pipefail
FLEXTYPE_BIN=${FLEXTYPE_BIN:-target/debug/flextype}
# shellcheck source=../../bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../bench/common.sh"

MAX_EXAMPLES=${ST_MAX_EXAMPLES:-100}
[[ ${1:-} == --quick ]] && MAX_EXAMPLES=${ST_MAX_EXAMPLES:-25}
MAX_TIME=${ST_MAX_TIME:-300}
SEED=${ST_SEED:-20261125}

# Run as a module: no dependence on where pip put the `st` script or on a shell's PATH cache.
st() { python3 -m schemathesis.cli "$@"; }
if ! st --version >/dev/null 2>&1; then
    log "installing schemathesis from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check 'schemathesis>=4.32,<5'
fi
[[ -x $FLEXTYPE_BIN ]] || cargo build
log "$(st --version)"

port=$(free_port)
mkdir -p "$TMP/project"
cp -r project/uploads "$TMP/project/uploads"
# Outbound fetches fail fast: the addresses Schemathesis makes up are refused or unreachable.
write_flextype_config "$port" "media: { from_url: { timeout_s: 2 } }"
FLEXTYPE_FILES_TOKEN=$(create_token files)
FLEXTYPE_ACCESS_TOKEN=$(create_token access)
export FLEXTYPE_FILES_TOKEN FLEXTYPE_ACCESS_TOKEN
start_flextype
wait_200 "http://127.0.0.1:$port/api/health" "$FT_PID" "$TMP/flextype.log"

rc=0
st --config-file tests/contract/schemathesis.toml run \
    "http://127.0.0.1:$port/api/openapi.json" \
    --header "Authorization: Bearer $FLEXTYPE_FILES_TOKEN" \
    --header "X-Access-Token: $FLEXTYPE_ACCESS_TOKEN" \
    --exclude-checks positive_data_acceptance \
    --max-examples "$MAX_EXAMPLES" --max-time "$MAX_TIME" --seed "$SEED" \
    --workers 2 --request-timeout 30 || rc=$?

if ! kill -0 "$FT_PID" 2>/dev/null; then
    tail -n 40 "$TMP/flextype.log" >&2
    die "the server died during the run"
fi
curl -sf -o /dev/null "http://127.0.0.1:$port/api/health" || die "the server stopped answering"
if grep -q "panicked" "$TMP/flextype.log"; then
    grep -B2 -A8 "panicked" "$TMP/flextype.log" >&2
    die "the server panicked during the run"
fi
((rc == 0)) || die "schemathesis found failures (exit $rc)"
log "schemathesis: no failures; the server is up"
