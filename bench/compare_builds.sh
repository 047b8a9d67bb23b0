#!/usr/bin/env bash
# Two attestd builds side by side, in one session, alternating which goes first each round (the load of a
# shared machine drifts by tens of percent within minutes, so only figures taken together compare):
# ingest_bench (durable ingest against the verify rate), status_bench (status of 1,000 paths per request on
# one database both builds read) and gateway_bench (narinfo requests per second against nginx).
#
#   bench/compare_builds.sh --before ATTESTD --after ATTESTD [--build DIR] [--rounds N]
#       [--attestations N] [--status-attestations N] [--skip-gateway]
#
# The benchmark programs come from DIR (default build); only the attestd under test changes. Both builds
# must read the same SQLite schema (status_bench's database is filled once and shared). The status database
# lives in a temp dir removed at the end. gateway_bench needs `scripts/install-deps --bench` (wrk, nginx).
set -euo pipefail

BUILD=build
ROUNDS=3
ATTESTATIONS=60000
STATUS_ATTESTATIONS=1000000
GATEWAY=1
BEFORE=""
AFTER=""
while [ $# -gt 0 ]; do
  case "$1" in
    --before) BEFORE="$2"; shift 2 ;;
    --after) AFTER="$2"; shift 2 ;;
    --build) BUILD="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --attestations) ATTESTATIONS="$2"; shift 2 ;;
    --status-attestations) STATUS_ATTESTATIONS="$2"; shift 2 ;;
    --skip-gateway) GATEWAY=0; shift ;;
    *) echo "usage: $0 --before ATTESTD --after ATTESTD [--build DIR] [--rounds N] [--attestations N]" \
            "[--status-attestations N] [--skip-gateway]" >&2; exit 2 ;;
  esac
done
if [ -z "$BEFORE" ] || [ -z "$AFTER" ]; then
  echo "$0: --before and --after name the two attestd binaries to compare" >&2
  exit 2
fi
for bin in "$BEFORE" "$AFTER" "$BUILD/bench/ingest_bench" "$BUILD/bench/status_bench"; do
  [ -x "$bin" ] || { echo "$0: $bin is not an executable (build the benchmarks first: scripts/build normal)" >&2; exit 2; }
done

WORK="$(mktemp -d /var/tmp/attest-compare-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

# One benchmark run of one build; its figures are the lines that matter, prefixed with the build's label.
run() {
  local label="$1" attestd="$2" bench="$3"
  shift 3
  local out
  out="$("$BUILD/bench/$bench" --attestd "$attestd" "$@" 2>&1)" || {
    echo "$bench failed with the $label build:" >&2
    echo "$out" >&2
    exit 1
  }
  # ingest_bench leaves its node's state for inspection; not needed here.
  local left
  left="$(echo "$out" | sed -n 's/^state left in //p')"
  if [ -n "$left" ] && [ -d "$left" ]; then rm -rf "$left"; fi
  echo "$out" | grep -E "ratio|durable ingest|median|CPU per request|cold pass|resident" |
    sed "s/^/  [$label] $bench: /"
}

for ((round = 1; round <= ROUNDS; round++)); do
  echo "round $round of $ROUNDS"
  if ((round % 2)); then order=(before after); else order=(after before); fi
  for label in "${order[@]}"; do
    if [ "$label" = before ]; then bin="$BEFORE"; else bin="$AFTER"; fi
    run "$label" "$bin" ingest_bench --attestations "$ATTESTATIONS" --verify-seconds 3
    run "$label" "$bin" status_bench --attestations "$STATUS_ATTESTATIONS" --dir "$WORK/status" --requests 100
    if ((GATEWAY)); then run "$label" "$bin" gateway_bench --seconds 5 --rounds 1; fi
  done
done
