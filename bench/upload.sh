#!/usr/bin/env bash
# Upload: one large multipart POST /api/files against `cp` of the same file on the same disk.
#
#   bench/upload.sh            full run (1 GiB file)
#   bench/upload.sh --quick    smoke run (UPLOAD_MB=64)
#
# Environment: UPLOAD_MB (default 1024), ROUNDS (default 2), UPLOAD_TIMEOUT (s per upload,
# default 600), FLEXTYPE_BIN (default target/release/flextype), START_TIMEOUT (s, default 30),
# STRICT=1 (exit 3 when a target is missed), KEEP_TMP=1 (keep the temp dir).
set -euo pipefail

quick() {
    UPLOAD_MB=64
}
# shellcheck source-path=SCRIPTDIR source=args.sh
. "$(dirname "${BASH_SOURCE[0]}")/args.sh"

UPLOAD_MB=${UPLOAD_MB:-1024}
ROUNDS=${ROUNDS:-2}
UPLOAD_TIMEOUT=${UPLOAD_TIMEOUT:-600}
SPEED_TARGET=0.70
RSS_TARGET_MIB=64

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

need curl:curl jq:jq cmp:diffutils
ensure_flextype

now() { date +%s.%N; }

# --- the project and the file ----------------------------------------------------------------
UPLOADS=$TMP/project/uploads
mkdir -p "$UPLOADS/bench"
UPLOAD_BYTES=$((UPLOAD_MB * 1024 * 1024))
BIG=$TMP/big.mp4
log "writing $BIG ($UPLOAD_MB MiB of random data)"
random_file "$BIG" "$UPLOAD_MB"
# The server sniffs content against the extension: a 24-byte MP4 `ftyp` box at the front makes
# the random bytes a video it accepts, whatever they happen to start with.
printf '\0\0\0\030ftypisom\0\0\2\0isommp41' | dd of="$BIG" conv=notrunc status=none
[[ $(stat -c %s "$BIG") == "$UPLOAD_BYTES" ]] || die "$BIG has the wrong size"

# --- flextype --------------------------------------------------------------------------------
FT_PORT=$(free_port)
# The default max_file_size (256 MiB) would refuse the upload with a 413.
write_flextype_config "$FT_PORT" "media: { max_file_size: $((UPLOAD_BYTES + 1048576)) }"
FILES=$(create_token files)
ACCESS=$(create_token access)
start_flextype
wait_200 "http://127.0.0.1:$FT_PORT/api/health" "$FT_PID" "$TMP/flextype.log"
log "flextype pid $FT_PID on 127.0.0.1:$FT_PORT"
sleep 1
RSS_BEFORE=$(status_kib "$FT_PID" VmRSS)
RSS_PEAK=$RSS_BEFORE

# time_cp — the peer: cp of the file to another path on the same disk, then sync; sets SECS.
time_cp() {
    local t0 t1
    sync
    t0=$(now)
    cp "$BIG" "$TMP/copy.mp4"
    sync
    t1=$(now)
    rm -f "$TMP/copy.mp4"
    SECS=$(calc "$t1 - $t0")
    log "$(printf 'cp:       %6.2f s, %7.1f MB/s' "$SECS" "$(calc "$UPLOAD_BYTES / 1e6 / $SECS")")"
}

# time_upload FOLDER — POST /api/files into FOLDER, then sync, while a background loop samples
# VmRSS every 0.1 s; checks data.filesize and the stored bytes; sets SECS and raises RSS_PEAK.
time_upload() {
    local folder=$1 t0 t1 sampler peak size path
    # Reset VmHWM to the current RSS (Linux >= 4.0), so that it catches what sampling misses.
    echo 5 >"/proc/$FT_PID/clear_refs" 2>/dev/null || true
    (
        end=$((SECONDS + UPLOAD_TIMEOUT + 10))
        while ((SECONDS < end)) && kill -0 "$FT_PID" 2>/dev/null; do
            status_kib "$FT_PID" VmRSS 2>/dev/null || true
            sleep 0.1
        done
    ) >"$TMP/rss.log" &
    sampler=$!
    PIDS+=("$sampler")
    sync
    t0=$(now)
    if ! curl -sS --fail-with-body --max-time "$UPLOAD_TIMEOUT" -o "$TMP/upload.json" -X POST \
        -H "Authorization: Bearer $FILES" -H "X-Access-Token: $ACCESS" \
        -F "folder=$folder" -F "file=@$BIG" "http://127.0.0.1:$FT_PORT/api/files"; then
        cat "$TMP/upload.json" >&2 2>/dev/null || true
        echo >&2
        tail -n 20 "$TMP/flextype.log" >&2
        die "the upload failed"
    fi
    sync
    t1=$(now)
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    SECS=$(calc "$t1 - $t0")
    log "$(printf 'flextype: %6.2f s, %7.1f MB/s' "$SECS" "$(calc "$UPLOAD_BYTES / 1e6 / $SECS")")"

    kill -0 "$FT_PID" 2>/dev/null || die "flextype exited during the upload"
    peak=$({ cat "$TMP/rss.log"; status_kib "$FT_PID" VmHWM; } | sort -n | tail -n1)
    ((peak > RSS_PEAK)) && RSS_PEAK=$peak

    size=$(jq -r '.data.filesize' "$TMP/upload.json")
    path=$(jq -r '.data.path' "$TMP/upload.json")
    [[ $size == "$UPLOAD_BYTES" ]] ||
        die "data.filesize is $size, want $UPLOAD_BYTES: $(head -c 2000 "$TMP/upload.json")"
    [[ -n $path && $path != null ]] ||
        die "the response has no data.path: $(head -c 2000 "$TMP/upload.json")"
    cmp "$BIG" "$UPLOADS/$path" || die "the stored uploads/$path differs from the uploaded file"
    log "stored as uploads/$path: data.filesize and content match"
}

# --- measuring: cp, upload, cp, upload...; the best of each ----------------------------------
# fastest BEST SECONDS — the smaller of the two; an empty BEST counts as none yet.
fastest() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b + 0 < a + 0) ? b : a }'; }
CP_SECONDS=''
FT_SECONDS=''
for round in $(seq 1 "$ROUNDS"); do
    time_cp
    CP_SECONDS=$(fastest "$CP_SECONDS" "$SECS")
    folder=bench
    ((round == 1)) || folder=bench$round
    time_upload "$folder"
    FT_SECONDS=$(fastest "$FT_SECONDS" "$SECS")
done
CP_MBPS=$(calc "$UPLOAD_BYTES / 1e6 / $CP_SECONDS")
FT_MBPS=$(calc "$UPLOAD_BYTES / 1e6 / $FT_SECONDS")

# --- summary ---------------------------------------------------------------------------------
RATIO=$(calc "$FT_MBPS / $CP_MBPS")
GROWTH_MIB=$(calc "($RSS_PEAK - $RSS_BEFORE) / 1024")
SPEED_VERDICT=$(verdict "$RATIO" "$SPEED_TARGET")
RSS_VERDICT=$(awk -v g="$GROWTH_MIB" -v t="$RSS_TARGET_MIB" 'BEGIN { print (g + 0 < t + 0) ? "PASS" : "MISS" }')
echo
echo "upload of $UPLOAD_MB MiB: flextype POST /api/files vs cp on the same disk (each timed with a final sync)"
printf '%-30s %12.1f MB/s  (%.2f s)\n' "cp" "$CP_MBPS" "$CP_SECONDS"
printf '%-30s %12.1f MB/s  (%.2f s)\n' "flextype" "$FT_MBPS" "$FT_SECONDS"
printf '%-30s %12.2fx       target >=%sx  %s\n' "ratio flextype/cp" "$RATIO" "$SPEED_TARGET" "$SPEED_VERDICT"
printf '%-30s %12.1f MiB before, %.1f MiB peak during the uploads\n' "flextype RSS" \
    "$(calc "$RSS_BEFORE / 1024")" "$(calc "$RSS_PEAK / 1024")"
printf '%-30s %12.1f MiB       target <%s MiB  %s\n' "RSS growth" "$GROWTH_MIB" "$RSS_TARGET_MIB" "$RSS_VERDICT"
echo "(MB = 10^6 bytes; best of $ROUNDS alternating round(s) each; RSS peak from 0.1 s samples and VmHWM)"

if [[ ${STRICT:-0} == 1 && ($SPEED_VERDICT != PASS || $RSS_VERDICT != PASS) ]]; then
    exit 3
fi
