#!/usr/bin/env bash
# Load test: DURATION seconds of mixed traffic on loopback against the release server over a
# seeded library, then a check that nothing acknowledged was lost.
#
#   bench/load.sh            full run (DURATION=60, a library of about 300 files)
#   bench/load.sh --quick    smoke run (DURATION=10, SCALE=0.3: about 90 files)
#
# Reads: wrk (bench/load/reads.lua) rotates over static files, hash URLs, API objects, folder
# listings, searches and thumbnails. Writes, at the same time, from bench/load/clients.py:
# uploads of 1 KiB-10 MiB (log-uniform) and of images whose thumbnails are then asked for
# (some under one shared name with rename=true, some over earlier ones with overwrite=true),
# meta edits, moves, copies and deletes. Afterwards every acknowledged write must be on disk
# with its BLAKE3, in the API and in search, and `flextype verify` must pass. The server's
# VmRSS is sampled every second: start (seeded, before the load), peak, end, and after IDLE s.
# Exits 1 on any 5xx, lost write, unexpected 4xx, transport error or verify failure.
#
# Environment: DURATION (s, default 60), SCALE (library size factor, default 1), CONNECTIONS
# (wrk connections, default 16), WRK_THREADS (default 2), UPLOADERS (3), EDITORS (2),
# MOVERS (1), IDLE (s after the load before the last RSS sample, default 10),
# FLEXTYPE_BIN (default target/release/flextype), START_TIMEOUT (s, default 30),
# KEEP_TMP=1 (keep the temp dir).
set -euo pipefail

quick() {
    DURATION=10
    SCALE=0.3
    IDLE=3
}
# shellcheck source-path=SCRIPTDIR source=args.sh
. "$(dirname "${BASH_SOURCE[0]}")/args.sh"

DURATION=${DURATION:-60}
SCALE=${SCALE:-1}
CONNECTIONS=${CONNECTIONS:-16}
WRK_THREADS=${WRK_THREADS:-2}
IDLE=${IDLE:-10}
export UPLOADERS=${UPLOADERS:-3} EDITORS=${EDITORS:-2} MOVERS=${MOVERS:-1}

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

need curl:curl jq:jq wrk:wrk python3:python3 b3sum:b3sum vips:libvips-tools vipsheader:libvips-tools
ensure_flextype
CLIENTS=(python3 "$ROOT/bench/load/clients.py")

# --- the library -------------------------------------------------------------------------------
# Images are crops of one large texture (colour gradients under blurred noise, fixed seeds), so
# that every image is different content and each thumbnail is real work.
UPLOADS=$TMP/project/uploads
POOL=$TMP/pool
mkdir -p "$UPLOADS"
make_texture() { # OUT — a 4000x3000 sRGB image
    local d=$TMP/texture c
    mkdir -p "$d"
    vips gaussnoise "$d/coarse.v" 4000 3000 --mean 0 --sigma 60 --seed 1
    vips gaussblur "$d/coarse.v" "$d/tex.v" 3
    vips xyz "$d/xy.v" 4000 3000
    vips extract_band "$d/xy.v" "$d/x.v" 0
    vips extract_band "$d/xy.v" "$d/y.v" 1
    vips linear "$d/x.v" "$d/r0.v" 0.04 40
    vips linear "$d/y.v" "$d/g0.v" 0.05 30
    vips add "$d/x.v" "$d/y.v" "$d/xpy.v"
    vips linear "$d/xpy.v" "$d/b0.v" 0.025 50
    for c in r g b; do
        vips add "$d/${c}0.v" "$d/tex.v" "$d/$c.v"
    done
    vips bandjoin "$d/r.v $d/g.v $d/b.v" "$d/rgb.v"
    vips cast "$d/rgb.v" "$d/rgb8.v" uchar
    vips copy "$d/rgb8.v" "$1" --interpretation srgb
    rm -rf "$d"
}
log "seeding the library (SCALE=$SCALE)"
make_texture "$TMP/texture.v"
SEEDED=$("${CLIENTS[@]}" seed "$UPLOADS" "$POOL" "$TMP/texture.v" "$SCALE")
rm -f "$TMP/texture.v"
[[ $(find "$UPLOADS" -type f | wc -l) == "$SEEDED" ]] || die "seed made $SEEDED files, found others"
log "$SEEDED files, $(du -sm "$UPLOADS" | cut -f1) MB;" \
    "$(find "$POOL" -type f | wc -l) images to upload"

# --- the server ----------------------------------------------------------------------------------
# Default settings (watcher on, default thumbnail sizes and caches), 2 workers.
FT_PORT=$(free_port)
BASE=http://127.0.0.1:$FT_PORT
cat >"$TMP/flextype.yaml" <<EOF
project: $TMP/project
server: { address: 127.0.0.1:$FT_PORT, workers: 2 }
EOF
FILES=$(create_token files)
ACCESS=$(create_token access)
start_flextype
wait_200 "$BASE/api/health" "$FT_PID" "$TMP/flextype.log"
log "flextype pid $FT_PID on 127.0.0.1:$FT_PORT; waiting for the start-up reconcile"
indexed() { curl -sS "$BASE/api/health" | jq -r '"\(.reconcile.state) \(.files_indexed)"'; }
deadline=$((SECONDS + 120))
until [[ $(indexed) == "done $SEEDED" ]]; do
    ((SECONDS < deadline)) || die "the library was not indexed within 120 s: $(indexed)"
    sleep 0.5
done
[[ $(find "$UPLOADS/.meta" -name '*.yaml' | wc -l) == "$SEEDED" ]] ||
    die "not every seeded file has meta"
"${CLIENTS[@]}" reads "$BASE" "$FILES" "$TMP/reads.txt" |
    while read -r l; do log "reads over $l"; done

# --- RSS and CPU ----------------------------------------------------------------------------------
rss_mib() { awk -v k="$(status_kib "$FT_PID" "${1:-VmRSS}")" 'BEGIN { printf "%.1f", k / 1024 }'; }
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / t }' "/proc/$FT_PID/stat"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
(
    while kill -0 "$FT_PID" 2>/dev/null; do
        echo "$(date +%s.%N) $(status_kib "$FT_PID" VmRSS)"
        sleep 1
    done
) >"$TMP/rss.log" 2>/dev/null &
PIDS+=("$!")
sleep 2
RSS_START=$(rss_mib)
LOAD_BEFORE=$(loadavg)
CPU_START=$(cpu_s)
# Reset VmHWM to the current RSS (Linux >= 4.0), so that it catches what 1 s sampling misses.
echo 5 >"/proc/$FT_PID/clear_refs" 2>/dev/null || true

# --- the load ------------------------------------------------------------------------------------
log "load: ${DURATION}s of wrk -t$WRK_THREADS -c$CONNECTIONS reads and" \
    "$UPLOADERS uploaders, $EDITORS editors, $MOVERS mover(s)"
T0=$(date +%s.%N)
"${CLIENTS[@]}" write "$BASE" "$FILES" "$ACCESS" "$POOL" "$DURATION" "$TMP/writes.jsonl" \
    >"$TMP/writers.out" 2>&1 &
WRITERS_PID=$!
PIDS+=("$WRITERS_PID")
wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 30s \
    -s "$ROOT/bench/load/reads.lua" "$BASE" -- "$TMP/reads.txt" >"$TMP/wrk.out" 2>&1 ||
    die "wrk failed: $(cat "$TMP/wrk.out")"
writers_rc=0
wait "$WRITERS_PID" || writers_rc=$?
T1=$(date +%s.%N)
if ! kill -0 "$FT_PID" 2>/dev/null; then
    tail -n 5 "$TMP/flextype.log" >&2
    die "flextype (pid $FT_PID) exited during the load; its log ends as above"
fi
RSS_END=$(rss_mib)
RSS_HWM=$(rss_mib VmHWM)
CPU_END=$(cpu_s)
LOAD_AFTER=$(loadavg)
((writers_rc == 0)) || die "the writers failed (exit $writers_rc): $(tail -n 20 "$TMP/writers.out")"
log "load done; idle for ${IDLE}s"
sleep "$IDLE"
RSS_IDLE=$(rss_mib)

# --- no lost writes ------------------------------------------------------------------------------
log "checking every acknowledged write"
check_rc=0
"${CLIENTS[@]}" check "$BASE" "$FILES" "$UPLOADS" "$TMP/writes.jsonl" >"$TMP/check.out" 2>&1 ||
    check_rc=$?
HEALTH=$(curl -sS "$BASE/api/health")
kill -TERM "$FT_PID"
wait "$FT_PID" 2>/dev/null || true
verify_rc=0
"$FLEXTYPE_BIN" verify --config "$TMP/flextype.yaml" >"$TMP/verify.out" 2>&1 || verify_rc=$?

# --- summary -------------------------------------------------------------------------------------
SECS=$(calc "$T1 - $T0")
per_s() { calc "$1 / $SECS"; }
# wrk_line KEY NAME — the number on wrk's `LOAD KEY NAME N` line (0 when there is none).
wrk_line() {
    awk -v k="$1" -v n="$2" '$1 == "LOAD" && $2 == k && $3 == n { v = $4 } END { print v + 0 }' \
        "$TMP/wrk.out"
}
R2=$(wrk_line status 2xx)
R3=$(wrk_line status 3xx)
R4=$(wrk_line status 4xx)
R5=$(wrk_line status 5xx)
READS=$((R2 + R3 + R4 + R5))
SOCKET_ERRORS=$(awk '$1 == "LOAD" && $2 == "errors" {
    for (i = 3; i <= NF; i++) { split($i, a, "="); s += a[2] } } END { print s + 0 }' "$TMP/wrk.out")
# The writers' counters: answers by operation and status class, and the bytes uploaded.
STATS=$(jq -c 'select(.op == "stats")' "$TMP/writes.jsonl")
wcount() { jq -r --arg op "$1" --arg c "$2" '.counts[$op][$c] // 0' <<<"$STATS"; }
wsum() { jq -r --arg c "$1" '[.counts[][$c] // 0] | add // 0' <<<"$STATS"; }
acked() { jq -r --arg op "$1" 'select(.op == $op) | .op' "$TMP/writes.jsonl" | wc -l; }
W4=$(wsum 4xx)
W5=$(wsum 5xx)
WERR=$(wsum error)
MISMATCH=$(wsum mismatch)
UPLOADS_ACKED=$(acked upload)
UPLOAD_MIB=$(calc "$(jq -r '.bytes' <<<"$STATS") / 1048576")
META_ACKED=$(acked meta)
LOST=$(grep -c '^LOST' "$TMP/check.out" || true)
PROBLEMS=$(jq -r '.problems | length' <<<"$HEALTH")
# The highest RSS sample of the middle and of the last third of the load: whether the last
# third still adds to the middle one says whether it keeps growing.
read -r RSS_PEAK RSS_MID RSS_LAST < <(awk -v t0="$T0" -v t1="$T1" '
    $1 >= t0 && $1 <= t1 {
        k = $2 / 1024; third = ($1 - t0) / (t1 - t0)
        if (k > p) p = k
        if (third >= 1 / 3 && third < 2 / 3 && k > m) m = k
        if (third >= 2 / 3 && k > l) l = k
    }
    END { printf "%.1f %.1f %.1f\n", p, m, l }' "$TMP/rss.log")
RSS_PEAK=$(awk -v a="$RSS_PEAK" -v b="$RSS_HWM" 'BEGIN { printf "%.1f", (b > a) ? b : a }')
CPU=$(calc "$CPU_END - $CPU_START")

row() { printf '%-36s %s\n' "$1" "$2"; }
echo
echo "load test: ${DURATION}s of mixed traffic on loopback, $SEEDED seeded files"
row "duration" "$(printf '%.1f s' "$SECS")"
row "reads (wrk -t$WRK_THREADS -c$CONNECTIONS)" \
    "$(printf '%d answered, %.0f req/s; sent by kind:' "$READS" "$(per_s "$READS")")"
for k in static hash object listing search thumb; do
    n=$(wrk_line sent "$k")
    row "  $k" "$(printf '%d (%.0f/s)' "$n" "$(per_s "$n")")"
done
row "  latency" "$(awk '$1 == "LOAD" && $2 == "latency" { print $3, $4, $5, "ms" }' "$TMP/wrk.out")"
row "  status classes" "2xx $R2, 3xx $R3, 4xx $R4, 5xx $R5; socket errors $SOCKET_ERRORS"
row "uploads acked" "$(printf '%d (%d images), %.1f MiB, %.1f/s' "$UPLOADS_ACKED" \
    "$(wcount upload-image 2xx)" "$UPLOAD_MIB" "$(per_s "$UPLOADS_ACKED")")"
row "  under a shared name (rename=true)" \
    "$(jq -r 'select(.op == "upload") | .path' "$TMP/writes.jsonl" | grep -c '^incoming/shared/')"
row "overwrites acked (overwrite=true)" "$(acked overwrite)"
row "  uploads read back by hash" \
    "$(wcount read-back 2xx) of $((UPLOADS_ACKED + $(acked overwrite)))"
row "  thumbnails of new images" "$(wcount thumb-new 2xx)"
row "meta edits acked" "$(printf '%d (%.1f/s)' "$META_ACKED" "$(per_s "$META_ACKED")")"
row "moves / copies / deletes acked" "$(acked move) / $(acked copy) / $(acked delete)"
row "  write status classes" \
    "2xx $(wsum 2xx), 4xx $W4, 5xx $W5; transport errors $WERR; mismatches $MISMATCH"
row "thumbnails made by the server" "$(jq -r '.thumbs.generated' <<<"$HEALTH")"
row "lost writes" "$LOST ($(grep '^CHECKED' "$TMP/check.out" || echo 'the check did not finish'))"
row "flextype verify" "exit $verify_rc"
row "server log: WARN / ERROR lines" "$(sed 's/\x1b\[[0-9;]*m//g' "$TMP/flextype.log" |
    awk '$2 == "WARN" { w++ } $2 == "ERROR" { e++ } END { printf "%d / %d", w, e }')"
row "5xx" "$((R5 + W5))"
row "RSS start / peak / end / idle" \
    "$RSS_START / $RSS_PEAK / $RSS_END / $RSS_IDLE MiB (idle: ${IDLE}s after the load)"
row "RSS peak in the middle / last third" "$RSS_MID / $RSS_LAST MiB"
row "server CPU" "$(printf '%.1f s (%.0f%% of one core)' "$CPU" "$(calc "100 * $CPU / $SECS")")"
row "load average before / after" "$LOAD_BEFORE / $LOAD_AFTER ($(nproc) cores)"

failed=()
((R5 + W5 == 0)) || failed+=("$((R5 + W5)) answers were 5xx")
((LOST == 0)) || failed+=("$LOST acknowledged writes were lost")
((LOST > 0 || check_rc == 0)) || failed+=("the check failed: $(tail -n 3 "$TMP/check.out")")
((R4 + W4 == 0)) || failed+=("$((R4 + W4)) answers were 4xx")
((R3 == 0)) || failed+=("$R3 answers were 3xx")
((SOCKET_ERRORS + WERR == 0)) || failed+=("$((SOCKET_ERRORS + WERR)) transport errors")
((MISMATCH == 0)) || failed+=("$MISMATCH answers did not match what was written")
((verify_rc == 0)) || failed+=("flextype verify exited $verify_rc: $(tail -n 3 "$TMP/verify.out")")
((PROBLEMS == 0)) || failed+=("/api/health lists $PROBLEMS problems")
if ((${#failed[@]})); then
    echo
    printf 'FAIL: %s\n' "${failed[@]}"
    # What failed: wrk's first non-2xx answers, the lost writes, the writers' failed answers
    # (each distinct one once, with its count).
    { grep -h '^LOAD failure\|^LOST' "$TMP/wrk.out" "$TMP/check.out" || true; } | head -n 20
    sed -n 's/^  //p' "$TMP/writers.out" | sort | uniq -c | sort -rn | head -n 10
    exit 1
fi
echo
echo "PASS: no 5xx, no lost writes"
