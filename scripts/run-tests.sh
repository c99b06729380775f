#!/usr/bin/env bash
# run-tests.sh - runs the unit tests (Criterion) and the integration tests (the real binary on
# loopback) and ends with one line "N passed, M failed". Exits non-zero on any failure.
# Environment: BUILD (build directory), SAN=1 (sanitizer build), ONLY=unit|integration.
set -u
BUILD=${BUILD:-build}
ONLY=${ONLY:-}
passed=0
failed=0
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

if [ "$SAN" = "1" ]; then
    # A small quarantine: the default (256 MiB) keeps freed memory resident, which the memory
    # bound tests would otherwise measure instead of cutover's own use.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=66:quarantine_size_mb=8}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=67}
fi

if [ "$ONLY" != "integration" ]; then
    echo "== unit tests ($BUILD/unit_tests)"
    out=$(mktemp)
    "$BUILD/unit_tests" --jobs 2 2>&1 | tee "$out" | grep -E '^\[(FAIL|----)\]|Synthesis' || true
    syn=$(grep 'Synthesis:' "$out" | tail -1)
    if [ -z "$syn" ]; then
        echo "unit: the test binary did not report (crashed?)"
        failed=$((failed + 1))
    else
        t=$(echo "$syn" | sed -E 's/.*Tested: ([0-9]+).*/\1/')
        p=$(echo "$syn" | sed -E 's/.*Passing: ([0-9]+).*/\1/')
        passed=$((passed + p))
        failed=$((failed + t - p))
        echo "unit: $p passed, $((t - p)) failed"
    fi
    rm -f "$out"
fi

if [ "$ONLY" != "unit" ]; then
    echo "== integration tests (tests/integration, binary $BUILD/cutover)"
    out=$(mktemp)
    CUTOVER_BIN="$PWD/$BUILD/cutover" CUTOVERCTL_BIN="$PWD/$BUILD/cutoverctl" \
        # Debian's interpreter: the packages deps.sh installs (python3-h2) live there, whatever
        # other python3 comes first on PATH.
        "$PY" tests/integration/run.py 2>&1 | tee "$out"
    line=$(grep -E '^integration: [0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
    if [ -z "$line" ]; then
        echo "integration: the runner did not report"
        failed=$((failed + 1))
    else
        p=$(echo "$line" | sed -E 's/integration: ([0-9]+) passed.*/\1/')
        f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
        passed=$((passed + p))
        failed=$((failed + f))
    fi
    rm -f "$out"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
