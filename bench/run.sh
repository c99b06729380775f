#!/usr/bin/env bash
# run.sh - builds the benchmark origin and runs the benchmarks (see bench/README.md).
#   BUILD=build bench/run.sh            full run (~25 min on 2 cores); appends to bench/RESULTS.md
#   BUILD=build SMOKE=1 bench/run.sh    harness check (~4 min); fails on errors, never on speed
#   ONLY=small,idle bench/run.sh        only some scenarios
#   ORIGIN=h2o bench/run.sh             h2o 2.2.5 as the origins instead of bench/origin.c
# (split small access_log access_log_all large h2c h1_h2up h2c_h2up h2tls tls_handshakes latency
#  idle callgrind callgrind_pairs scaling switch; callgrind runs callgrind_pairs too)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
mkdir -p "$BUILD/bench"
if [ ! -x "$BUILD/bench/origin" ] || [ bench/origin.c -nt "$BUILD/bench/origin" ]; then
    cc -std=c17 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o "$BUILD/bench/origin" bench/origin.c -lnghttp2
fi
[ -x "$BUILD/cutover" ] || { echo "bench: $BUILD/cutover missing (run make)" >&2; exit 1; }
SMOKE=${SMOKE:-0}
limit=$(( SMOKE == 1 ? 600 : 2700 ))
export BUILD SMOKE
exec timeout --signal=TERM --kill-after=30 "$limit" python3 bench/bench.py
