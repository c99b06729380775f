#!/usr/bin/env bash
# run.sh - runs every libFuzzer harness (built by `make fuzz`) for a fixed time, one after the
# other, each from a fresh copy of its committed seed corpus (tests/fuzz/corpus/<harness>/, which
# is never written), with its dictionary (tests/fuzz/<harness>.dict). Prints one line per harness
# (executions, coverage, corpus, result) and ends with "fuzz: N passed, M failed"; exits non-zero
# when a harness crashed, leaked, timed out or failed one of its checks. The reproducer
# (crash-*, leak-*, timeout-*, oom-* file) stays under $FUZZ_BUILD/run/<harness>/ and is printed
# with the command that replays it. See docs/testing.md.
#
# Usage: tests/fuzz/run.sh [HARNESS...]     (default: every $FUZZ_BUILD/fuzz_* binary)
# Environment: FUZZ_BUILD (build-fuzz), FUZZ_SECONDS per harness (30), FUZZ_JOBS harnesses run
# at the same time (1), FUZZ_ARGS extra libFuzzer flags (e.g. -max_len=4096), FUZZ_RUN_DIR where
# the runs go ($FUZZ_BUILD/run).
set -u
cd "$(dirname "$0")/../.." || exit 1
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
FUZZ_JOBS=${FUZZ_JOBS:-1}
FUZZ_ARGS=${FUZZ_ARGS:-}
run_dir=${FUZZ_RUN_DIR:-$FUZZ_BUILD/run}

if [ $# -gt 0 ]; then
    names=("$@")
else
    names=()
    for b in "$FUZZ_BUILD"/fuzz_*; do
        [ -x "$b" ] && names+=("${b##*/fuzz_}")
    done
fi
if [ ${#names[@]} -eq 0 ]; then
    echo "fuzz: no harness in $FUZZ_BUILD (run make fuzz first)"
    echo "fuzz: 0 passed, 1 failed"
    exit 1
fi

# Runs one harness; writes its summary line to $dir/summary and returns its status.
run_one() {
    local name=$1 bin="$FUZZ_BUILD/fuzz_$1" dir="$run_dir/$1"
    rm -rf "$dir"
    mkdir -p "$dir/corpus" "$dir/artifacts"
    if [ ! -x "$bin" ]; then
        echo "fuzz_$name: FAIL (no binary $bin)" >"$dir/summary"
        return 1
    fi
    [ -d "tests/fuzz/corpus/$name" ] && cp tests/fuzz/corpus/"$name"/* "$dir/corpus/" 2>/dev/null
    local dict=()
    [ -f "tests/fuzz/$name.dict" ] && dict=(-dict="tests/fuzz/$name.dict")
    local t0=$SECONDS rc
    # -timeout: one input running longer than that is a hang (reported as timeout-*);
    # -rss_limit_mb: the default 2 GB; leaks are found by LeakSanitizer at each input's end.
    # shellcheck disable=SC2086 # FUZZ_ARGS: several flags, split on purpose
    ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$bin" -max_total_time="$FUZZ_SECONDS" -timeout=25 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$dir/artifacts/" "${dict[@]}" $FUZZ_ARGS \
        "$dir/corpus" >"$dir/log" 2>&1
    rc=$?
    local secs=$((SECONDS - t0))
    # The last status line: "#123456 DONE cov: 812 ft: 2417 corp: 160/9876b ..." (or the last
    # pulse / NEW line when it stopped early).
    local status execs cov ft corp
    status=$(grep -E '^#[0-9]+' "$dir/log" | tail -1)
    execs=$(grep -E '^stat::number_of_executed_units:' "$dir/log" | awk '{print $2}' | tail -1)
    [ -n "$execs" ] || execs=$(echo "$status" | sed -nE 's/^#([0-9]+).*/\1/p')
    cov=$(echo "$status" | sed -nE 's/.* cov: ([0-9]+).*/\1/p')
    ft=$(echo "$status" | sed -nE 's/.* ft: ([0-9]+).*/\1/p')
    corp=$(echo "$status" | sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p')
    local line
    line=$(printf 'fuzz_%-12s execs=%-9s cov=%-6s ft=%-6s corp=%-12s %3ss' "$name" \
        "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$secs")
    local found
    found=$(find "$dir/artifacts" -type f -printf '%f\n' 2>/dev/null | head -1)
    if [ "$rc" -eq 0 ] && [ -z "$found" ]; then
        echo "$line PASS" >"$dir/summary"
        return 0
    fi
    {
        echo "$line FAIL (exit $rc)"
        if [ -n "$found" ]; then
            echo "    reproducer: $dir/artifacts/$found"
            echo "    replay:     $bin $dir/artifacts/$found"
        fi
        echo "    log:        $dir/log"
        grep -E '^(==[0-9]+==ERROR|==FUZZ CHECK FAILED==|SUMMARY:)|runtime error:' "$dir/log" |
            head -5 | sed 's/^/    /'
    } >"$dir/summary"
    return 1
}

passed=0
failed=0
i=0
while [ $i -lt ${#names[@]} ]; do
    batch=("${names[@]:$i:$FUZZ_JOBS}")
    pids=()
    for n in "${batch[@]}"; do
        run_one "$n" &
        pids+=($!)
    done
    for k in "${!pids[@]}"; do
        if wait "${pids[$k]}"; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
        fi
        cat "$run_dir/${batch[$k]}/summary"
    done
    i=$((i + FUZZ_JOBS))
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
