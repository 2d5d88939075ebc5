#!/usr/bin/env bash
# build.sh — builds wbgc's examples, runs the demo, the test matrix, the benchmarks.
#
#   ./build.sh          build everything, run the demo (GCBench on wbgc, explained)
#   ./build.sh test     run the whole test matrix; last line "N passed, N failed"
#   ./build.sh bench    run the benchmarks (examples/bench)
#   ./build.sh soak [S] the stress, randomized and tree tests with the verifier
#                       on, S seconds each (default 60) in every collector mode,
#                       then the long run (tests/longrun.c) for 3 x S seconds
#   ./build.sh clean    remove build/
#
# Needs only a C compiler (gcc or cc) and the C library. clang, g++, the
# sanitizer runtimes, and the benchmarks' peers Boehm GC (libgc-dev) and Go
# (golang-go) are used when present and skipped with a line when not.
set -u
cd "$(dirname "$0")"
OUT=build
mkdir -p "$OUT"
CC=${CC:-gcc}
command -v "$CC" >/dev/null 2>&1 || CC=cc
WARN="-Wall -Wextra -Werror"
LIBS="-pthread -lm"

have() { command -v "$1" >/dev/null 2>&1; }

# can_build CC FLAGS...: does a trivial program build and run with these flags?
can_build() {
    local cc=$1; shift
    printf 'int main(void){return 0;}\n' > "$OUT/probe.c"
    "$cc" "$@" "$OUT/probe.c" -o "$OUT/probe" >/dev/null 2>&1 && "$OUT/probe" >/dev/null 2>&1
}

build_examples() {
    local ok=0
    for src in examples/*.c; do
        [ -e "$src" ] || continue
        local name; name=$(basename "$src" .c)
        "$CC" -O2 $WARN "$src" -o "$OUT/$name" $LIBS || ok=1
    done
    if [ -d examples/bench ]; then
        for src in examples/bench/*.c; do
            [ -e "$src" ] || continue
            local name extra=""; name=$(basename "$src" .c)
            # barrier.c compares store variants loop against loop: every
            # function and loop starts a 64-byte line, so that none gains or
            # loses by where it happens to land (barrier.c's header says why)
            [ "$name" = barrier ] && extra="-falign-functions=64 -falign-loops=64"
            "$CC" -O2 $WARN $extra "$src" -o "$OUT/bench_$name" $LIBS || ok=1
        done
    fi
    # The cross-collector benchmarks (examples/bench/gc): each program once per
    # backend (gcb.h: -DGCB_WBGC, -DGCB_BOEHM, -DGCB_MALLOC) into build/gcb, and
    # the runner. Everything here stays inside this function: the test matrix
    # runs it alone under clang with `declare -f build_examples`.
    if [ -d examples/bench/gc ]; then
        local gdir=examples/bench/gc gout="$OUT/gcb" boehm=0 pids="" pid
        mkdir -p "$gout"
        # Boehm GC only where its header and library build (libgc-dev)
        printf '#define GC_THREADS\n#include <gc/gc.h>\nint main(void){GC_INIT();return (int)GC_get_gc_no() < 0;}\n' \
            > "$OUT/probe_gc.c"
        if "$CC" "$OUT/probe_gc.c" -o "$OUT/probe_gc" -pthread -lgc >/dev/null 2>&1; then
            boehm=1
        else
            rm -f "$gout"/*.boehm
            echo "== skipped Boehm GC backends: apt-get install libgc-dev"
        fi
        # in parallel: nine builds of wbgc.h take a while one after another
        for prog in gcbench binarytrees mutate; do
            for be in wbgc malloc boehm; do
                [ "$be" = boehm ] && [ "$boehm" = 0 ] && continue
                [ "$prog.$be" = mutate.malloc ] && continue   # needs a collector
                local extra=""; [ "$be" = boehm ] && extra=-lgc
                "$CC" -O2 $WARN "-DGCB_$(echo "$be" | tr a-z A-Z)" "$gdir/$prog.c" -o "$gout/$prog.$be" $LIBS $extra &
                pids="$pids $!"
            done
        done
        # Go peers (examples/bench/go, the same programs in Go) when go is
        # here: offline (no dependencies; GOPROXY=off), caches under build/ and
        # nothing written to $HOME (newer go keeps telemetry in its config dir)
        if command -v go >/dev/null 2>&1; then
            local abs; abs=$(cd "$OUT" && pwd)
            for prog in gcbench binarytrees mutate; do
                (cd examples/bench/go && GOCACHE="$abs/gocache" GOPATH="$abs/gopath" GOPROXY=off \
                    GOFLAGS= GOTOOLCHAIN=local XDG_CONFIG_HOME="$abs/goconfig" \
                    go build -buildvcs=false -o "$abs/gcb/$prog.go" "./$prog") &
                pids="$pids $!"
            done
        else
            rm -f "$gout"/*.go
            echo "== skipped Go peers: apt-get install golang-go"
        fi
        "$CC" -O2 $WARN "$gdir/report.c" -o "$gout/report" -lm &
        pids="$pids $!"
        for pid in $pids; do wait "$pid" || ok=1; done
    fi
    return $ok
}

# ---- the test matrix ------------------------------------------------------
PASSED=0
FAILED=0
FAILED_NAMES=""

# progress LOG SECS: one line on how far the command writing LOG has got:
# the tests finished (the test runner's "[ PASS ]"/"[ FAIL ]" lines, the Lisp
# runner's "ok"/"FAIL" lines) and the test running, else LOG's last line.
progress() {
    local log=$1 secs=$2 done running what
    done=$(grep -cE '^(\[ (PASS|FAIL) \]|ok |FAIL )' "$log" 2>/dev/null)
    running=$(grep -E '^\[ RUN  \] ' "$log" 2>/dev/null | tail -n 1 | cut -c10-60)
    what="   ... $(basename "$log" .log), $secs s:"
    if [ -n "$running" ]; then
        echo "$what $done tests done; last started: $running"
    elif [ "${done:-0}" -gt 0 ]; then
        echo "$what $done tests done"
    else
        echo "$what $(tail -n 1 "$log" 2>/dev/null | cut -c1-60)"
    fi
}

# run_logged LOG CMD...: runs CMD with its output in LOG and returns its exit
# status. Meanwhile a heartbeat prints a progress line every 20 s, so that
# the matrix is never silent for long (a whole suite takes minutes, and
# prints only at its end). The heartbeat ends with CMD, or with this script
# ($$ gone: interrupted), and its sleep holds none of our output open.
run_logged() {
    local log=$1; shift
    : > "$log"
    (
        t0=$SECONDS
        while sleep 20 < /dev/null > /dev/null 2>&1; do
            kill -0 $$ 2>/dev/null || exit 0
            progress "$log" $((SECONDS - t0))
        done
    ) &
    local hb=$!
    "$@" > "$log" 2>&1
    local rc=$?
    kill "$hb" 2>/dev/null
    wait "$hb" 2>/dev/null
    return $rc
}

# run_suite NAME CMD...: runs a test command, adds its "N passed, N failed".
run_suite() {
    local name=$1 log="$OUT/$1.log" t0=$SECONDS
    shift
    echo "== $name"
    run_logged "$log" "$@"
    local rc=$?
    echo "   ($((SECONDS - t0)) s)"
    local line; line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        tail -n 20 "$log"
        echo "!! $name: no result line (exit $rc)"
        FAILED=$((FAILED + 1)); FAILED_NAMES="$FAILED_NAMES $name"
        return 1
    fi
    local p f
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
    grep -E 'FAIL' "$log" | head -n 40
    echo "   $line"
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
        [ "$f" -ne 0 ] || FAILED=$((FAILED + 1))
        FAILED_NAMES="$FAILED_NAMES $name"
        return 1
    fi
}

# check NAME CMD...: one compile-only check, counted as a test.
check() {
    local name=$1 t0=$SECONDS; shift
    if run_logged "$OUT/$name.log" "$@"; then
        PASSED=$((PASSED + 1)); echo "== $name: ok ($((SECONDS - t0)) s)"
    else
        FAILED=$((FAILED + 1)); FAILED_NAMES="$FAILED_NAMES $name"
        echo "== $name: FAILED"; tail -n 20 "$OUT/$name.log"
        return 1
    fi
}

finish() {
    [ -z "$FAILED_NAMES" ] || echo "failed builds:$FAILED_NAMES"
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
    exit $?
}

stop_on_failure() { [ -z "$FAILED_NAMES" ] || finish; }

cmd_test() {
    # 1. gcc, optimised
    check build-gcc-O2 "$CC" -O2 -g $WARN test.c -o "$OUT/test_O2" $LIBS; stop_on_failure
    run_suite test-gcc-O2 "$OUT/test_O2"; stop_on_failure
    # the same tests that run many cycles, with the collector verifying its
    # own mark at the end of every cycle (WBGC_VERIFY)
    WBGC_VERIFY=1 run_suite test-gcc-O2-verify "$OUT/test_O2" $(verify_tests "$OUT/test_O2")
    stop_on_failure

    # 1b. the portable barrier (the amd64 asm's twin), optimised
    check build-gcc-O2-noasm "$CC" -O2 -g $WARN -DWBGC_NO_ASM test.c -o "$OUT/test_noasm" $LIBS
    stop_on_failure
    run_suite test-gcc-O2-noasm "$OUT/test_noasm"; stop_on_failure
    WBGC_VERIFY=1 run_suite test-gcc-O2-noasm-verify "$OUT/test_noasm" $(verify_tests "$OUT/test_noasm")
    stop_on_failure

    # 2. debug build with AddressSanitizer + UndefinedBehaviorSanitizer
    local san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
    if can_build "$CC" $san; then
        check build-gcc-asan-ubsan "$CC" -O0 -g $san $WARN test.c -o "$OUT/test_asan" $LIBS; stop_on_failure
        # Fake stacks would move locals off the thread stack, out of the scan.
        ASAN_OPTIONS=detect_stack_use_after_return=0:detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
            run_suite test-gcc-asan-ubsan "$OUT/test_asan"; stop_on_failure
    else
        echo "== skipped: ASan/UBSan runtimes missing (apt-get install libasan8 libubsan1)"
    fi

    # 3. ThreadSanitizer (the portable barrier path): every race is a failure
    if can_build "$CC" -fsanitize=thread; then
        check build-gcc-tsan "$CC" -O1 -g -fsanitize=thread $WARN -DWBGC_NO_ASM test.c -o "$OUT/test_tsan" $LIBS
        stop_on_failure
        TSAN_OPTIONS=halt_on_error=1 run_suite test-gcc-tsan "$OUT/test_tsan"; stop_on_failure
    else
        echo "== skipped: ThreadSanitizer runtime missing (apt-get install libtsan2)"
    fi
    # 3b. the fork tests under clang's ThreadSanitizer: gcc's kills a forked
    # child that starts a thread, so under it they skip
    if have clang && can_build clang -fsanitize=thread; then
        check build-clang-tsan clang -O1 -g -fsanitize=thread $WARN -DWBGC_NO_ASM test.c -o "$OUT/test_tsan_clang" $LIBS
        stop_on_failure
        TSAN_OPTIONS=halt_on_error=1 run_suite test-clang-tsan-fork "$OUT/test_tsan_clang" \
            $("$OUT/test_tsan_clang" --list | grep -E '^fork_'); stop_on_failure
    fi

    # 4. clang, optimised
    if have clang; then
        check build-clang-O2 clang -O2 -g $WARN test.c -o "$OUT/test_clang" $LIBS; stop_on_failure
        run_suite test-clang-O2 "$OUT/test_clang"; stop_on_failure
    else
        echo "== skipped: clang not found (apt-get install clang)"
    fi

    # 5. compile checks: examples with both compilers, C++, WBGC_STATIC in two TUs
    check examples-gcc build_examples; stop_on_failure
    # the cross-collector benchmarks, reduced: every program on every backend
    # built here must run and pass its own checks (wrong checksums, crashes)
    check gcb-smoke "$OUT/gcb/report" --quick --no-write; stop_on_failure
    if have clang; then
        check examples-clang env CC=clang bash -c "$(declare -f build_examples); OUT=$OUT; WARN='$WARN'; LIBS='$LIBS'; build_examples"
        stop_on_failure
    fi
    if have g++; then
        check header-as-cxx g++ -O2 $WARN -x c++ tests/cxx.c -o "$OUT/cxx" $LIBS; stop_on_failure
        run_suite header-as-cxx-run "$OUT/cxx"; stop_on_failure
    else
        echo "== skipped: g++ not found (apt-get install g++)"
    fi
    check static-two-units "$CC" -O2 $WARN -DWBGC_STATIC tests/static_a.c tests/static_b.c -o "$OUT/static2" $LIBS
    stop_on_failure
    run_suite static-two-units-run "$OUT/static2"; stop_on_failure
    # wbgc.h copied alone (no wbgc_amd64.h beside it) builds, with the
    # portable barrier, and runs
    rm -rf "$OUT/alone" && mkdir -p "$OUT/alone/examples" && cp wbgc.h "$OUT/alone/" &&
        cp examples/hello.c "$OUT/alone/examples/"
    check header-alone "$CC" -O2 $WARN "$OUT/alone/examples/hello.c" -o "$OUT/alone/hello" $LIBS
    stop_on_failure
    check header-alone-run "$OUT/alone/hello"; stop_on_failure

    # 6. the Lisp interpreter's programs, in every collector mode
    run_suite lisp-tests bash examples/lisp/run_tests.sh "$OUT/lisp"; stop_on_failure

    # 6b. Boehm GC's interface on wbgc (examples/boehm): programs written to
    # Boehm's API, each against the layer and, when libgc-dev is there,
    # against real Boehm GC with the same output; the layer's (not the
    # benchmarks) again under AddressSanitizer + UBSan and ThreadSanitizer
    run_suite boehm-layer bash examples/boehm/run.sh test "$OUT/boehm"; stop_on_failure
    local bsan="blocking finalize huge incremental misc realloc threads uncollectable"
    if can_build "$CC" $san; then
        ONLY=layer CHECK_MODE=0 CFLAGS_EXTRA="-O1 -g $san" TESTS="$bsan" \
            ASAN_OPTIONS=detect_stack_use_after_return=0:detect_leaks=0 \
            run_suite boehm-layer-asan bash examples/boehm/run.sh test "$OUT/boehm-asan"
        stop_on_failure
    fi
    if can_build "$CC" -fsanitize=thread; then
        ONLY=layer CHECK_MODE=0 CFLAGS_EXTRA="-O1 -g -fsanitize=thread -DWBGC_NO_ASM" \
            TESTS="$bsan" TSAN_OPTIONS=halt_on_error=1 \
            run_suite boehm-layer-tsan bash examples/boehm/run.sh test "$OUT/boehm-tsan"
        stop_on_failure
    fi

    # 7. aarch64 (weakly ordered: what x86 forgives shows there), under qemu
    if have aarch64-linux-gnu-gcc && { have qemu-aarch64 || have qemu-aarch64-static; }; then
        run_suite test-aarch64-qemu bash tests/aarch64.sh "$OUT"; stop_on_failure
    else
        echo "== skipped aarch64: apt-get install gcc-aarch64-linux-gnu qemu-user"
    fi
    finish
}

cmd_demo() {
    echo "== building examples"
    build_examples || { echo "build failed"; exit 1; }
    # GCBench (examples/bench/gc/gcbench.c) on wbgc, with an account of what
    # the collector did in plain words. examples/hello.c is the API tour.
    echo "== running the demo: $OUT/gcb/gcbench.wbgc --demo"
    "$OUT/gcb/gcbench.wbgc" --demo
}

cmd_bench() {
    build_examples || { echo "build failed"; exit 1; }
    for b in "$OUT"/bench_*; do
        [ -x "$b" ] || continue
        echo "== $b"
        "$b" "$@"
    done
    echo "== examples/bench/barrier_callgrind.sh (instructions per store)"
    bash examples/bench/barrier_callgrind.sh
    echo "== examples/bench/barrier_size.sh (code bytes per barrier site, spills)"
    bash examples/bench/barrier_size.sh
    echo "== examples/lisp/bench.sh (Lisp programs, concurrent vs stop-the-world)"
    bash examples/lisp/bench.sh "$OUT/lisp"
    # against Boehm GC, Go and malloc; a full run rewrites examples/bench/RESULTS.md
    # and examples/bench/charts, --quick writes to build/gcb/quick instead
    local q=""
    for a in "$@"; do [ "$a" = --quick ] && q=--quick; done
    echo "== examples/boehm/run.sh bench (Boehm-API programs: real Boehm GC against the wbgc layer)"
    bash examples/boehm/run.sh bench "$OUT/boehm"
    echo "== $OUT/gcb/report $q (wbgc against Boehm GC, Go and malloc)"
    "$OUT/gcb/report" $q
}

# verify_tests BINARY: the tests that run many cycles (every collector
# mode), which the verifier runs and soak runs long.
verify_tests() {
    "$1" --list | grep -E '^(stress|fuzz|tree_reverse)_'
}

# soak [SECONDS]: every verify test, SECONDS each (default 60), verifier on;
# prints what each did (operations, barriered stores, cycles) and a total.
cmd_soak() {
    local secs=${1:-60}
    "$CC" -O2 -g $WARN test.c -o "$OUT/test_O2" $LIBS || { echo "build failed"; exit 1; }
    echo "== soak: $secs s per test, WBGC_VERIFY=1: $(verify_tests "$OUT/test_O2" | tr '\n' ' ')"
    WBGC_VERIFY=1 WBGC_STRESS_SECONDS=$secs WBGC_FUZZ_SECONDS=$secs WBGC_TREE_SECONDS=$secs \
        WBGC_TEST_TIMEOUT=$((secs * 2 + 300)) "$OUT/test_O2" $(verify_tests "$OUT/test_O2") \
        | tee "$OUT/soak.log" | grep -E '^\[ (PASS|FAIL)|note: [0-9]|FAIL|passed'
    local stores
    stores=$(grep -oE '[0-9]+ barriered stores' "$OUT/soak.log" | awk '{s += $1} END {printf "%.0f", s}')
    echo "soak: $stores barriered stores in all, every cycle verified"
    tail -n 1 "$OUT/soak.log" | grep -q ' 0 failed' || return 1
    # the long run: two mutators churning ~205 MiB live in the default
    # mode for 3 x SECONDS, then the live set shrinks (tests/longrun.c)
    "$CC" -O2 -g $WARN tests/longrun.c -o "$OUT/longrun" $LIBS || { echo "build failed"; exit 1; }
    echo "== longrun: $((secs * 3)) s, 2 mutators, ~205 MiB live, then 10 MiB"
    "$OUT/longrun" --secs $((secs * 3)) | tee "$OUT/longrun.log"
}

case "${1:-}" in
    "") cmd_demo ;;
    test) cmd_test ;;
    bench) shift; cmd_bench "$@" ;;
    soak) shift; cmd_soak "$@" ;;
    clean) rm -rf "$OUT" ;;
    *) echo "usage: $0 [test|bench|soak [SECONDS]|clean]"; exit 2 ;;
esac
