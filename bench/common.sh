# shellcheck shell=bash
# Helpers shared by the bench scripts; sourced, never run.
#
# Sourcing this file: moves to the repository root, makes the temp dir $TMP and installs the
# EXIT trap that kills every process recorded in PIDS and removes $TMP (KEEP_TMP=1 keeps it).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

FLEXTYPE_BIN=${FLEXTYPE_BIN:-target/release/flextype}
# Seconds to wait for a server to answer after it was started.
START_TIMEOUT=${START_TIMEOUT:-30}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

PIDS=()
TMP=$(mktemp -d "${TMPDIR:-/tmp}/flextype-bench.XXXXXX")

cleanup() {
    local rc=$? pid _
    set +e
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# need CMD:PACKAGE... — installs from Debian the packages whose command is missing.
need() {
    local pair missing=() sudo=()
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    ((${#missing[@]})) || return 0
    [[ $(id -u) == 0 ]] || sudo=(sudo)
    log "installing ${missing[*]} from Debian"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || die "${pair%%:*} is still missing"
    done
}

# free_port — a loopback TCP port nobody listens on (and not handed out before in this run).
TAKEN_PORTS=" "
free_port() {
    local port _
    for _ in $(seq 1 200); do
        port=$((20000 + RANDOM % 12000)) # below the ephemeral range (32768+)
        [[ $TAKEN_PORTS == *" $port "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            TAKEN_PORTS+="$port "
            echo "$port"
            return 0
        fi
    done
    die "found no free port"
}

ensure_flextype() {
    if [[ ! -x $FLEXTYPE_BIN && $FLEXTYPE_BIN == target/release/flextype ]]; then
        log "$FLEXTYPE_BIN is missing: cargo build --release"
        cargo build --release
    fi
    [[ -x $FLEXTYPE_BIN ]] || die "$FLEXTYPE_BIN is not an executable"
}

# write_flextype_config PORT [EXTRA_YAML] — $TMP/flextype.yaml for the project in $TMP/project.
write_flextype_config() {
    cat >"$TMP/flextype.yaml" <<EOF
project: $TMP/project
server: { address: 127.0.0.1:$1, workers: 2 }
watch: { enabled: false }
${2:-}
EOF
}

# create_token KIND — a new files or access token for the project in $TMP/flextype.yaml, printed.
create_token() {
    local t
    t=$("$FLEXTYPE_BIN" token create --kind "$1" --title bench --config "$TMP/flextype.yaml" \
        2>>"$TMP/token.log" | tail -n1)
    [[ $t =~ ^[0-9a-f]{32}$ ]] || die "flextype token create --kind $1 printed '$t', not a 32-hex token"
    echo "$t"
}

# start_flextype — runs the server in the background; sets FT_PID.
start_flextype() {
    "$FLEXTYPE_BIN" serve --config "$TMP/flextype.yaml" >"$TMP/flextype.log" 2>&1 &
    FT_PID=$!
    PIDS+=("$FT_PID")
}

# wait_200 URL PID LOGFILE — polls until URL answers 200, at most START_TIMEOUT seconds.
wait_200() {
    local url=$1 pid=$2 logfile=$3 code deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$logfile" >&2 || true
            die "the server (pid $pid) exited before answering $url"
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
        [[ $code == 200 ]] && return 0
        sleep 0.2
    done
    tail -n 20 "$logfile" >&2 || true
    die "$url did not answer 200 within ${START_TIMEOUT}s (last status: ${code:-none})"
}

# status_kib PID FIELD — a VmRSS/VmHWM-style field of /proc/PID/status, in KiB.
status_kib() {
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# random_file PATH MIB — MIB mebibytes from /dev/urandom.
random_file() {
    dd if=/dev/urandom of="$1" bs=1M count="$2" status=none
}

# calc EXPR — floating-point arithmetic through awk.
calc() {
    awk "BEGIN { printf \"%.6f\", $1 }"
}

# verdict VALUE TARGET — "PASS" when VALUE >= TARGET, else "MISS".
verdict() {
    awk -v v="$1" -v t="$2" 'BEGIN { print (v + 0 >= t + 0) ? "PASS" : "MISS" }'
}
