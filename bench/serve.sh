#!/usr/bin/env bash
# Static serving: flextype against nginx in the same run, on the same files, over loopback.
#
#   bench/serve.sh            full run (DURATION=10 s per measurement, 256 MiB large file)
#   bench/serve.sh --quick    smoke run (DURATION=3, LARGE_MB=32)
#
# Environment: DURATION (s, default 10), LARGE_MB (default 256), LARGE_ROUNDS (default 2),
# SMALL_ROUNDS (default 2), FLEXTYPE_BIN (default target/release/flextype), START_TIMEOUT (s,
# default 30), STRICT=1 (exit 3 when a target is missed), KEEP_TMP=1 (keep the temp dir).
set -euo pipefail

quick() {
    DURATION=3
    LARGE_MB=32
}
# shellcheck source-path=SCRIPTDIR source=args.sh
. "$(dirname "${BASH_SOURCE[0]}")/args.sh"

DURATION=${DURATION:-10}
LARGE_MB=${LARGE_MB:-256}
LARGE_ROUNDS=${LARGE_ROUNDS:-2}
SMALL_ROUNDS=${SMALL_ROUNDS:-2}
SMALL_TARGET=1.00
LARGE_TARGET=0.90

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

need curl:curl wrk:wrk sha256sum:coreutils
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || need nginx:nginx
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
ensure_flextype

# --- the files -------------------------------------------------------------------------------
UPLOADS=$TMP/project/uploads
mkdir -p "$UPLOADS/bench"
head -c 4096 /dev/urandom >"$UPLOADS/bench/small.bin"
log "writing large.bin ($LARGE_MB MiB)"
random_file "$UPLOADS/bench/large.bin" "$LARGE_MB"
LARGE_BYTES=$((LARGE_MB * 1024 * 1024))

# --- flextype --------------------------------------------------------------------------------
FT_PORT=$(free_port)
write_flextype_config "$FT_PORT"
start_flextype
FT_URL=http://127.0.0.1:$FT_PORT/project/uploads/bench
wait_200 "$FT_URL/small.bin" "$FT_PID" "$TMP/flextype.log"
log "flextype pid $FT_PID on 127.0.0.1:$FT_PORT"

# --- nginx: two instances, each with its own prefix, config, pid and logs in $TMP -----------
# "nginx" is the peer the targets are set against: sendfile on, access log off, otherwise
# Debian's defaults (keep-alive connections are not closed after 1000 requests, as flextype
# closes none). "nginx-ofc" adds open_file_cache and tcp_nopush: it keeps descriptors and stat
# results for 30 s, so it answers a hit without looking at the disk at all. It is printed for
# comparison; flextype stats the file on every hit so that a file changed by hand is never
# served stale.
start_nginx() { # NAME EXTRA_DIRECTIVES — sets NG_PORT, NG_PID
    local name=$1 extra=$2 prefix=$TMP/$1
    NG_PORT=$(free_port)
    mkdir -p "$prefix/logs"
    cat >"$prefix/nginx.conf" <<EOF
daemon off;
master_process on;
user root;
worker_processes 2;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log warn;
events { worker_connections 1024; }
http {
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    $extra
    client_body_temp_path $prefix/client_body;
    proxy_temp_path $prefix/proxy;
    fastcgi_temp_path $prefix/fastcgi;
    uwsgi_temp_path $prefix/uwsgi;
    scgi_temp_path $prefix/scgi;
    server {
        listen 127.0.0.1:$NG_PORT;
        location /project/uploads/ {
            root $TMP;
        }
    }
}
EOF
    "$NGINX" -p "$prefix" -e "$prefix/logs/error.log" -c "$prefix/nginx.conf" \
        >"$prefix/logs/stdout.log" 2>&1 &
    NG_PID=$!
    PIDS+=("$NG_PID")
    wait_200 "http://127.0.0.1:$NG_PORT/project/uploads/bench/small.bin" "$NG_PID" \
        "$prefix/logs/error.log"
    log "$name pid $NG_PID on 127.0.0.1:$NG_PORT"
}
start_nginx nginx ""
NG_URL=http://127.0.0.1:$NG_PORT/project/uploads/bench
start_nginx nginx-ofc "tcp_nopush on; open_file_cache max=1000 inactive=60s; open_file_cache_valid 30s;"
NO_URL=http://127.0.0.1:$NG_PORT/project/uploads/bench

# --- correctness, once -----------------------------------------------------------------------
want=$(sha256sum <"$UPLOADS/bench/small.bin" | cut -d' ' -f1)
got_ft=$(curl -sS -f --max-time 10 -D "$TMP/ft-headers.txt" "$FT_URL/small.bin" | sha256sum | cut -d' ' -f1)
for url in "$NG_URL" "$NO_URL"; do
    got_ng=$(curl -sS -f --max-time 10 "$url/small.bin" | sha256sum | cut -d' ' -f1)
    [[ $got_ng == "$want" ]] || die "nginx at $url returned different bytes for small.bin"
done
[[ $got_ft == "$want" ]] || die "flextype returned different bytes for small.bin ($got_ft, want $want)"
etag=$(awk -F': *' 'tolower($1) == "etag" { sub(/\r$/, "", $2); print $2 }' "$TMP/ft-headers.txt")
[[ -n $etag ]] || {
    cat "$TMP/ft-headers.txt" >&2
    die "flextype's response for small.bin has no ETag header"
}
for side in "flextype:$FT_URL" "nginx:$NG_URL" "nginx-ofc:$NO_URL"; do
    len=$(curl -sS -f --max-time 10 -o /dev/null -w '%{size_download}' "${side#*:}/large.bin")
    [[ $len == "$LARGE_BYTES" ]] || die "${side%%:*} sent $len bytes of large.bin, want $LARGE_BYTES"
done
log "small.bin: identical sha256 from all servers; flextype ETag $etag; large.bin: full length"

# --- measuring -------------------------------------------------------------------------------
cat >"$TMP/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d bytes=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.bytes, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout))
end
EOF

# bench NAME CONNECTIONS SECONDS URL — runs wrk; sets RPS and BPS (requests and bytes per second,
# the figures behind wrk's Requests/sec and Transfer/sec, unrounded).
bench() {
    local name=$1 conns=$2 secs=$3 url=$4 out result
    out=$(wrk -t2 -c"$conns" -d"${secs}s" --timeout 30s -s "$TMP/report.lua" "$url" 2>&1) ||
        die "wrk failed against $name: $out"
    printf '### %s %s -c%s -d%ss\n%s\n' "$name" "$url" "$conns" "$secs" "$out" >>"$TMP/wrk.log"
    result=$(grep '^RESULT ' <<<"$out") || die "wrk printed no result for $name: $out"
    local -A r=()
    local kv errors
    for kv in ${result#RESULT }; do
        r[${kv%%=*}]=${kv#*=}
    done
    errors=$((r[connect] + r[read] + r[write] + r[timeout]))
    ((r[status] == 0)) || die "$name answered ${r[status]} non-2xx/3xx responses to $url"
    ((r[requests] > 0)) || die "$name completed no request to $url"
    ((errors == 0)) || log "warning: $name: socket errors/timeouts: $result"
    RPS=$(calc "${r[requests]} / (${r[duration_us]} / 1e6)")
    BPS=$(calc "${r[bytes]} / (${r[duration_us]} / 1e6)")
    log "$(printf '%-8s %-9s %12.1f req/s %8.3f GB/s' "$name" "${url##*/}" "$RPS" "$(calc "$BPS / 1e9")")"
}

# best CURRENT NEW — the larger of two numbers.
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (b + 0 > a + 0) ? b : a }'; }

log "warm-up"
for url in "$NG_URL" "$NO_URL" "$FT_URL"; do
    wrk -t2 -c64 -d2s "$url/small.bin" >/dev/null
    curl -sS -f --max-time 60 -o /dev/null "$url/large.bin"
done

FT_SMALL=0 NG_SMALL=0 NO_SMALL=0 FT_LARGE=0 NG_LARGE=0 NO_LARGE=0
LOAD_START=$(cut -d" " -f1-3 /proc/loadavg)
log "small.bin: wrk -t2 -c64 -d${DURATION}s, $SMALL_ROUNDS round(s) alternating, best of each"
for _ in $(seq 1 "$SMALL_ROUNDS"); do
    bench nginx 64 "$DURATION" "$NG_URL/small.bin"
    NG_SMALL=$(best "$NG_SMALL" "$RPS")
    bench nginx-ofc 64 "$DURATION" "$NO_URL/small.bin"
    NO_SMALL=$(best "$NO_SMALL" "$RPS")
    bench flextype 64 "$DURATION" "$FT_URL/small.bin"
    FT_SMALL=$(best "$FT_SMALL" "$RPS")
done
log "large.bin: wrk -t2 -c4 -d${DURATION}s, $LARGE_ROUNDS round(s) alternating, best of each"
for _ in $(seq 1 "$LARGE_ROUNDS"); do
    bench nginx 4 "$DURATION" "$NG_URL/large.bin"
    NG_LARGE=$(best "$NG_LARGE" "$BPS")
    bench nginx-ofc 4 "$DURATION" "$NO_URL/large.bin"
    NO_LARGE=$(best "$NO_LARGE" "$BPS")
    bench flextype 4 "$DURATION" "$FT_URL/large.bin"
    FT_LARGE=$(best "$FT_LARGE" "$BPS")
done

kill -0 "$FT_PID" 2>/dev/null || die "flextype exited during the run"
HWM_KIB=$(status_kib "$FT_PID" VmHWM)

# --- summary ---------------------------------------------------------------------------------
SMALL_RATIO=$(calc "$FT_SMALL / $NG_SMALL")
LARGE_RATIO=$(calc "$FT_LARGE / $NG_LARGE")
SMALL_VERDICT=$(verdict "$SMALL_RATIO" "$SMALL_TARGET")
LARGE_VERDICT=$(verdict "$LARGE_RATIO" "$LARGE_TARGET")
echo
echo "flextype vs nginx (sendfile on, access_log off) — $(nproc) cores, 2 workers each, wrk -t2, ${DURATION}s per measurement"
printf '%-32s %14s %14s %8s %9s\n' "" flextype nginx ratio target
printf '%-32s %14.0f %14.0f %7.2fx %8sx  %s\n' "small.bin 4 KiB, req/s (-c64)" \
    "$FT_SMALL" "$NG_SMALL" "$SMALL_RATIO" ">=$SMALL_TARGET" "$SMALL_VERDICT"
printf '%-32s %14.0f %14.0f %7.2fx %9s  %s\n' "  same, vs nginx-ofc" \
    "$FT_SMALL" "$NO_SMALL" "$(calc "$FT_SMALL / $NO_SMALL")" "" "(comparison only)"
printf '%-32s %14.3f %14.3f %7.2fx %8sx  %s\n' "large.bin $LARGE_MB MiB, GB/s (-c4)" \
    "$(calc "$FT_LARGE / 1e9")" "$(calc "$NG_LARGE / 1e9")" "$LARGE_RATIO" ">=$LARGE_TARGET" "$LARGE_VERDICT"
printf '%-32s %14.3f %14.3f %7.2fx %9s  %s\n' "  same, vs nginx-ofc" \
    "$(calc "$FT_LARGE / 1e9")" "$(calc "$NO_LARGE / 1e9")" "$(calc "$FT_LARGE / $NO_LARGE")" "" "(comparison only)"
printf 'flextype peak RSS (VmHWM): %.1f MiB\n' "$(calc "$HWM_KIB / 1024")"
echo "(GB = 10^9 bytes; best of $SMALL_ROUNDS small / $LARGE_ROUNDS large alternating round(s) per server;"
echo " load average before measuring: $LOAD_START, after: $(cut -d" " -f1-3 /proc/loadavg))"

if [[ ${STRICT:-0} == 1 && ($SMALL_VERDICT != PASS || $LARGE_VERDICT != PASS) ]]; then
    exit 3
fi
