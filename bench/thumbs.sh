#!/usr/bin/env bash
# Thumbnails: flextype against vipsthumbnail (first generation) and nginx (a cached thumbnail
# served again), in the same run, on the same files, over loopback.
#
#   bench/thumbs.sh           full run (ROUNDS=9 generations each, DURATION=10 s per wrk run)
#   bench/thumbs.sh --quick   smoke run (ROUNDS=3, DURATION=3)
#
# Environment: ROUNDS (default 9), DURATION (s, default 10), SERVE_ROUNDS (default 2),
# FLEXTYPE_BIN (default target/release/flextype), START_TIMEOUT (s, default 30), STRICT=1
# (exit 3 when a target is missed), KEEP_TMP=1 (keep the temp dir).
set -euo pipefail

quick() {
    ROUNDS=3
    DURATION=3
}
# shellcheck source-path=SCRIPTDIR source=args.sh
. "$(dirname "${BASH_SOURCE[0]}")/args.sh"

ROUNDS=${ROUNDS:-9}
DURATION=${DURATION:-10}
SERVE_ROUNDS=${SERVE_ROUNDS:-2}
# flextype's first thumbnail may take at most this many times vipsthumbnail's.
GEN_TARGET=1.50
# A cached thumbnail served by flextype, req/s relative to nginx serving the same bytes.
SERVE_TARGET=1.00
SPEC=256x256f

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

need curl:curl wrk:wrk vips:libvips-tools vipsthumbnail:libvips-tools vipsheader:libvips-tools
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || need nginx:nginx
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
ensure_flextype

# --- the photo -------------------------------------------------------------------------------
# 6000×4000 (24 MP), JPEG quality 90: smooth colour gradients under blurred and fine noise,
# about 8 MB, like a camera photo of a plain scene. Made with vips, so it is the same in
# every run (fixed noise seeds).
UPLOADS=$TMP/project/uploads
mkdir -p "$UPLOADS/bench"
PHOTO=$UPLOADS/bench/photo.jpg
make_photo() {
    local d=$TMP/photo c
    mkdir -p "$d"
    vips gaussnoise "$d/coarse.v" 6000 4000 --mean 0 --sigma 60 --seed 1
    vips gaussblur "$d/coarse.v" "$d/tex.v" 4
    vips gaussnoise "$d/fine.v" 6000 4000 --mean 0 --sigma 8 --seed 2
    vips add "$d/tex.v" "$d/fine.v" "$d/noise.v"
    vips xyz "$d/xy.v" 6000 4000
    vips extract_band "$d/xy.v" "$d/x.v" 0
    vips extract_band "$d/xy.v" "$d/y.v" 1
    vips linear "$d/x.v" "$d/r0.v" 0.03 40
    vips linear "$d/y.v" "$d/g0.v" 0.04 30
    vips add "$d/x.v" "$d/y.v" "$d/xpy.v"
    vips linear "$d/xpy.v" "$d/b0.v" 0.018 50
    for c in r g b; do
        vips add "$d/${c}0.v" "$d/noise.v" "$d/$c.v"
    done
    vips bandjoin "$d/r.v $d/g.v $d/b.v" "$d/rgb.v"
    vips cast "$d/rgb.v" "$d/rgb8.v" uchar
    vips copy "$d/rgb8.v" "$d/photo.v" --interpretation srgb
    vips jpegsave "$d/photo.v" "$PHOTO" --Q 90
    rm -rf "$d"
}
log "making a 6000x4000 JPEG with vips"
make_photo
log "photo.jpg: $(vipsheader "$PHOTO" | cut -d: -f2-), $(($(stat -c %s "$PHOTO") / 1024)) KiB"

# --- flextype, first generation ----------------------------------------------------------------
# The in-memory cache is off for this part, so every request after the cache folder is
# removed makes the thumbnail again (with it on, the served copy in memory would answer).
start_flextype_with() { # HOT_CACHE_BYTES — sets FT_PORT, FT_PID and THUMB_URL
    FT_PORT=$(free_port)
    THUMB_URL="http://127.0.0.1:$FT_PORT/project/uploads/bench/photo.jpg?thumb=$SPEC"
    cat >"$TMP/flextype.yaml" <<EOF
project: $TMP/project
server: { address: 127.0.0.1:$FT_PORT, workers: 2, hot_cache_bytes: $1 }
watch: { enabled: false }
media: { thumbs: { sizes: ["$SPEC"] } }
EOF
    start_flextype
    wait_200 "$THUMB_URL" "$FT_PID" "$TMP/flextype.log"
    log "flextype pid $FT_PID on 127.0.0.1:$FT_PORT (hot_cache_bytes: $1)"
}
stop_flextype() {
    kill -TERM "$FT_PID"
    wait "$FT_PID" 2>/dev/null || true
}
CACHE=$TMP/project/cache/thumbs
start_flextype_with 0

# --- correctness, once -------------------------------------------------------------------------
rm -rf "$CACHE"
curl -sS -f --max-time 60 -D "$TMP/ft-headers.txt" -o "$TMP/ft-thumb.jpg" "$THUMB_URL"
ft_dims=$(vipsheader "$TMP/ft-thumb.jpg" | awk '{ print $2 }')
vipsthumbnail "$PHOTO" -s "${SPEC%f}" -o "$TMP/vips-thumb.jpg"
vips_dims=$(vipsheader "$TMP/vips-thumb.jpg" | awk '{ print $2 }')
[[ $ft_dims == "$vips_dims" ]] || die "flextype made $ft_dims, vipsthumbnail $vips_dims"
grep -qi '^content-type: image/jpeg' "$TMP/ft-headers.txt" || die "flextype's thumbnail is not image/jpeg"
etag=$(awk -F': *' 'tolower($1) == "etag" { sub(/\r$/, "", $2); print $2 }' "$TMP/ft-headers.txt")
[[ $etag == *-$SPEC\" ]] || die "flextype's thumbnail ETag is $etag"
log "both make a $ft_dims thumbnail; flextype's ETag $etag"

# --- first generation: alternating rounds, medians ----------------------------------------------
now() { date +%s.%N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# vipsthumbnail is a new process every time: its start-up is measured apart, on a 16×16
# JPEG, and printed as a second comparison.
vips black "$TMP/tiny.jpg" 16 16
: >"$TMP/start.times"
for _ in $(seq 0 "$ROUNDS"); do
    t0=$(now)
    vipsthumbnail "$TMP/tiny.jpg" -s 8 -o "$TMP/tiny-thumb.jpg"
    t1=$(now)
    calc "$t1 - $t0" >>"$TMP/start.times"
    echo >>"$TMP/start.times"
done
: >"$TMP/vips.times"
: >"$TMP/ft.times"
log "first generation of a $SPEC thumbnail: 1 warm-up + $ROUNDS rounds, vipsthumbnail then flextype"
for round in $(seq 0 "$ROUNDS"); do
    t0=$(now)
    vipsthumbnail "$PHOTO" -s "${SPEC%f}" -o "$TMP/vips-thumb.jpg"
    t1=$(now)
    rm -rf "$CACHE"
    ft=$(curl -sS -f --max-time 60 -o /dev/null -w '%{time_total}' "$THUMB_URL")
    ((round == 0)) && continue
    calc "$t1 - $t0" >>"$TMP/vips.times"
    echo >>"$TMP/vips.times"
    echo "$ft" >>"$TMP/ft.times"
    log "$(printf 'round %d: vipsthumbnail %6.1f ms, flextype %6.1f ms' "$round" \
        "$(calc "($t1 - $t0) * 1000")" "$(calc "$ft * 1000")")"
done
VIPS_MED=$(median <"$TMP/vips.times")
FT_MED=$(median <"$TMP/ft.times")
START_MED=$(median <"$TMP/start.times")
generated=$(curl -sS -f "http://127.0.0.1:$FT_PORT/api/health" | grep -o '"generated":[0-9]*' | cut -d: -f2)
((generated >= ROUNDS + 2)) || die "flextype made $generated thumbnails, want at least $((ROUNDS + 2))"
stop_flextype

# --- a cached thumbnail, served again: flextype (defaults) vs nginx on the same bytes ---------
start_flextype_with 67108864
curl -sS -f --max-time 60 -o "$TMP/ft-thumb.jpg" "$THUMB_URL"
NG_ROOT=$TMP/nginx-root
mkdir -p "$NG_ROOT/bench"
cp "$TMP/ft-thumb.jpg" "$NG_ROOT/bench/thumb.jpg"
THUMB_BYTES=$(stat -c %s "$NG_ROOT/bench/thumb.jpg")

NG_PORT=$(free_port)
prefix=$TMP/nginx
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
    types { image/jpeg jpg; }
    access_log off;
    sendfile on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    client_body_temp_path $prefix/client_body;
    proxy_temp_path $prefix/proxy;
    fastcgi_temp_path $prefix/fastcgi;
    uwsgi_temp_path $prefix/uwsgi;
    scgi_temp_path $prefix/scgi;
    server {
        listen 127.0.0.1:$NG_PORT;
        root $NG_ROOT;
    }
}
EOF
"$NGINX" -p "$prefix" -e "$prefix/logs/error.log" -c "$prefix/nginx.conf" \
    >"$prefix/logs/stdout.log" 2>&1 &
NG_PID=$!
PIDS+=("$NG_PID")
NG_URL=http://127.0.0.1:$NG_PORT/bench/thumb.jpg
wait_200 "$NG_URL" "$NG_PID" "$prefix/logs/error.log"
log "nginx pid $NG_PID on 127.0.0.1:$NG_PORT serving the same $THUMB_BYTES bytes"
cmp -s <(curl -sS -f "$NG_URL") <(curl -sS -f "$THUMB_URL") || die "nginx and flextype sent different bytes"

cat >"$TMP/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
end
EOF
# bench NAME URL — wrk -t2 -c64; sets RPS.
bench() {
    local name=$1 url=$2 out result kv
    out=$(wrk -t2 -c64 -d"${DURATION}s" --timeout 30s -s "$TMP/report.lua" "$url" 2>&1) ||
        die "wrk failed against $name: $out"
    result=$(grep '^RESULT ' <<<"$out") || die "wrk printed no result for $name: $out"
    local -A r=()
    for kv in ${result#RESULT }; do
        r[${kv%%=*}]=${kv#*=}
    done
    ((r[status] == 0)) || die "$name answered ${r[status]} non-2xx/3xx responses"
    ((r[requests] > 0)) || die "$name completed no request"
    RPS=$(calc "${r[requests]} / (${r[duration_us]} / 1e6)")
    log "$(printf '%-8s %12.1f req/s' "$name" "$RPS")"
}
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (b + 0 > a + 0) ? b : a }'; }

log "warm-up"
wrk -t2 -c64 -d2s "$NG_URL" >/dev/null
wrk -t2 -c64 -d2s "$THUMB_URL" >/dev/null
FT_RPS=0 NG_RPS=0
LOAD_START=$(cut -d" " -f1-3 /proc/loadavg)
log "cached thumbnail: wrk -t2 -c64 -d${DURATION}s, $SERVE_ROUNDS round(s) alternating, best of each"
for _ in $(seq 1 "$SERVE_ROUNDS"); do
    bench nginx "$NG_URL"
    NG_RPS=$(best "$NG_RPS" "$RPS")
    bench flextype "$THUMB_URL"
    FT_RPS=$(best "$FT_RPS" "$RPS")
done
kill -0 "$FT_PID" 2>/dev/null || die "flextype exited during the run"

# --- summary -----------------------------------------------------------------------------------
GEN_RATIO=$(calc "$FT_MED / $VIPS_MED")
SERVE_RATIO=$(calc "$FT_RPS / $NG_RPS")
GEN_VERDICT=$(awk -v v="$GEN_RATIO" -v t="$GEN_TARGET" 'BEGIN { print (v + 0 <= t + 0) ? "PASS" : "MISS" }')
SERVE_VERDICT=$(verdict "$SERVE_RATIO" "$SERVE_TARGET")
echo
echo "thumbnails — $(nproc) cores; $SPEC of a 6000x4000 JPEG (q90, $(($(stat -c %s "$PHOTO") / 1024)) KiB)"
printf '%-44s %12s %12s %8s %9s\n' "" flextype peer ratio target
printf '%-44s %12.1f %12.1f %7.2fx %8sx  %s\n' "first thumbnail, median ms (peer: vipsthumbnail)" \
    "$(calc "$FT_MED * 1000")" "$(calc "$VIPS_MED * 1000")" "$GEN_RATIO" "<=$GEN_TARGET" "$GEN_VERDICT"
printf '%-44s %12.1f %12.1f %7.2fx %9s  %s\n' "  same, vipsthumbnail minus its start-up" \
    "$(calc "$FT_MED * 1000")" "$(calc "($VIPS_MED - $START_MED) * 1000")" \
    "$(calc "$FT_MED / ($VIPS_MED - $START_MED)")" "" "(start-up $(calc "$START_MED * 1000" | cut -d. -f1) ms)"
printf '%-44s %12.0f %12.0f %7.2fx %8sx  %s\n' "cached thumbnail, req/s -c64 (peer: nginx)" \
    "$FT_RPS" "$NG_RPS" "$SERVE_RATIO" ">=$SERVE_TARGET" "$SERVE_VERDICT"
echo "(first thumbnail: $ROUNDS rounds after a warm-up, flextype over HTTP with its cache folder removed"
echo " before each request, vipsthumbnail as a new process each time; cached: ${THUMB_BYTES} bytes,"
echo " best of $SERVE_ROUNDS alternating ${DURATION}s runs; load average before: $LOAD_START, after: $(cut -d" " -f1-3 /proc/loadavg))"

if [[ ${STRICT:-0} == 1 && ($GEN_VERDICT != PASS || $SERVE_VERDICT != PASS) ]]; then
    exit 3
fi
