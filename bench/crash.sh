#!/usr/bin/env bash
# Crash rounds: kill -9 at random moments during concurrent uploads, moves, copies, meta edits,
# deletes and folder operations; after each restart, nothing acknowledged may be lost and
# nothing torn or half-done may be left (tests/api/crash/rounds.rs, release build).
#
#   bench/crash.sh            full run (50 rounds)
#   bench/crash.sh --quick    smoke run (ROUNDS=5)
#
# Environment: ROUNDS (default 50), FLEXTYPE_CRASH_SEED (replay the random choices of a run:
# its seed is printed first), FLEXTYPE_CRASH_KEEP=1 (keep the project folder of the run).
# Exits non-zero at the first round that fails its checks.
set -euo pipefail

quick() {
    ROUNDS=${ROUNDS:-5}
}
# shellcheck source-path=SCRIPTDIR source=args.sh
. "$(dirname "${BASH_SOURCE[0]}")/args.sh"

ROUNDS=${ROUNDS:-50}

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

log "crash rounds: $ROUNDS rounds (cargo test --release builds what is missing first)"
FLEXTYPE_CRASH_ROUNDS=$ROUNDS cargo test --release --test api crash_rounds -- --ignored --nocapture
