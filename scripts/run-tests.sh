#!/usr/bin/env bash
# run-tests.sh - runs the unit tests (Criterion) and the integration tests (the real binary on
# loopback) and ends with one line "N passed, M failed". Exits non-zero on any failure.
# Environment:
#   BUILD      build directory (build)
#   SAN        0, 1 (AddressSanitizer + UBSan build) or thread (ThreadSanitizer build)
#   ONLY       unit | integration | all (default: all); under SAN=thread always integration:
#              Criterion cannot run under ThreadSanitizer (its shared arena fails to map:
#              "Could not initialize inheritable arena"), and the unit tests are single-threaded
#   IT_FILTER  space-separated substrings; each runs `tests/integration/run.py -k SUBSTRING`
#              (a test whose "module.function" contains it). Default: every test, except under
#              SAN=thread: TSAN_TESTS below. A substring that matches no test is a failure.
# See docs/testing.md.
set -u
BUILD=${BUILD:-build}
SAN=${SAN:-0}
ONLY=${ONLY:-}
passed=0
failed=0
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

# The integration tests that exercise what races could break: reloads (under load, refused),
# control changes (weights, drains, roles, under load), certificate rotation (listener, upstream
# client certificate, admin API), active health checks, gated shift plans. Module prefixes end
# with "." so that no filter matches a test another one already ran.
TSAN_TESTS="test_lifecycle. test_control. test_health_checks. test_release_safety. test_dns.
test_durability. test_control_limits. test_failover.
test_tls.test_tls_rotation_under_load
test_tls.test_tls_bad_key_does_not_block_a_new_crl
test_upstream_tls.test_upstream_client_certificate_rotation
test_admin_https.test_admin_reload_roles_and_rotation
test_fleet.
test_fleet_plans.
test_cohorts.
test_routing.test_split_holds_while_other_routes_change"

report_dir=""
it_args=()
case "$SAN" in
1)
    # A small quarantine: the default (256 MiB) keeps freed memory resident, which the memory
    # bound tests would otherwise measure instead of cutover's own use.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=66:quarantine_size_mb=8}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=67}
    ;;
thread)
    # A data race stops the process at once with exit code 68 (the test then fails as a rule:
    # cutover stops answering, or stop() sees the code), and every report is written to a file
    # per process under $report_dir, which this script counts as failures at the end, so a race
    # in a process whose exit code no test asserts is not lost. tests/tsan.supp silences races
    # inside libraries that are not instrumented (never cutover's own code).
    report_dir="$PWD/$BUILD/tsan-reports"
    rm -rf "$report_dir"
    mkdir -p "$report_dir"
    export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:exitcode=68:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp:log_path=$report_dir/tsan}
    # Every test's work directory is kept (--keep) under a directory of our own, so a report
    # (named after the PID) is traced back to the test that started the process (its "pids"
    # file); all removed at the end when nothing failed. A short path: control sockets live
    # there.
    it_tmp=$(mktemp -d /tmp/cutover-tsan.XXXXXX)
    chmod 755 "$it_tmp" # tests run clients as other users below it
    export TMPDIR=$it_tmp
    it_args=(--keep)
    if [ "${ONLY:-all}" != "integration" ]; then
        echo "unit: not run under ThreadSanitizer (Criterion cannot map its shared arena next to"
        echo "      TSan's shadow memory; the unit tests are single-threaded anyway)"
    fi
    ONLY=integration
    IT_FILTER=${IT_FILTER-$TSAN_TESTS}
    ;;
esac
[ "$ONLY" = "all" ] && ONLY=""
IT_FILTER=${IT_FILTER:-}

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

# Runs tests/integration/run.py with the given arguments and adds its counts.
run_integration() {
    local out line p f
    out=$(mktemp)
    # Debian's interpreter: the packages deps.sh installs (python3-h2) live there, whatever
    # other python3 comes first on PATH.
    CUTOVER_BIN="$PWD/$BUILD/cutover" CUTOVERCTL_BIN="$PWD/$BUILD/cutoverctl" \
        "$PY" tests/integration/run.py ${it_args[@]+"${it_args[@]}"} "$@" 2>&1 | tee "$out"
    line=$(grep -E '^integration: [0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
    if [ -z "$line" ]; then
        echo "integration: the runner did not report"
        failed=$((failed + 1))
    else
        p=$(echo "$line" | sed -E 's/integration: ([0-9]+) passed.*/\1/')
        f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
        passed=$((passed + p))
        failed=$((failed + f))
        if [ $((p + f)) -eq 0 ]; then
            echo "integration: no test matched $*"
            failed=$((failed + 1))
        fi
    fi
    rm -f "$out"
}

if [ "$ONLY" != "unit" ]; then
    echo "== integration tests (tests/integration, binary $BUILD/cutover)"
    if [ -z "$IT_FILTER" ]; then
        run_integration
    else
        for k in $IT_FILTER; do
            echo "-- run.py -k $k"
            run_integration -k "$k"
        done
    fi
fi

if [ -n "$report_dir" ]; then
    n=0
    for r in "$report_dir"/tsan*; do
        [ -s "$r" ] || continue
        n=$((n + 1))
        # The test whose pids file lists this PID (cutover and upstreams are registered there;
        # cutoverctl is not: then the report's own stacks tell).
        pid=${r##*.}
        pf=$(grep -l "^$pid " "$it_tmp"/cutover-it-*/*/pids 2>/dev/null | head -1)
        who="a process no test registered (cutoverctl?)"
        [ -n "$pf" ] && who="test $(basename "$(dirname "$pf")"), work directory $(dirname "$pf")"
        echo "== ThreadSanitizer report $r"
        echo "   from $who"
        head -n 80 "$r"
        echo "   (whole report: $r)"
    done
    echo "tsan: $n report file(s) in $report_dir"
    failed=$((failed + n))
    if [ "$failed" -eq 0 ]; then
        rm -rf "$it_tmp"
    else
        echo "tsan: the tests' work directories are kept in $it_tmp"
    fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
