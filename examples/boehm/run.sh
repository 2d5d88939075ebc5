#!/usr/bin/env bash
# run.sh — builds the Boehm-GC-API programs in examples/boehm/tests/ twice,
# against the wbgc layer (examples/boehm/gc.h + gc_wbgc.c) and against real
# Boehm GC (libgc, -lgc), and runs them.
#
#   examples/boehm/run.sh test  [OUTDIR]   (default OUTDIR: build/boehm)
#       Every tests/*.c (except the extra files named below) is built and run
#       with each collector that is available: the layer when gc_wbgc.c
#       exists (else one line "layer not built yet"), libgc when -lgc links
#       (else one line "skipped real Boehm GC: apt-get install libgc-dev").
#       A run passes when it exits 0 and, where both builds ran and libgc's
#       passed, the layer's stdout is identical to libgc's (the diff is
#       shown otherwise). One line per program and build, then
#       "N passed, N failed"; the exit status is nonzero on any failure.
#   examples/boehm/run.sh bench [OUTDIR]
#       gcbench, binarytrees and incremental against both, RUNS (default 5)
#       times each, interleaved (libgc, layer, libgc, layer, ...); a table per
#       program of medians: wall seconds, peak RSS, longest pause and pause
#       count (the programs report those on stderr through
#       tests/bench_report.h), and the ratio layer/libgc.
#
# A test made of more than one file names the others on lines of its own:
#       // extra: threads_extern.c -DGC_NO_THREAD_REDIRECTS
# Each extra file is compiled separately with the flags that follow it and
# linked in; extra files are not run as tests of their own.
#
# Environment: CC (default gcc); TESTS="finalize misc" runs only those;
# TIMEOUT seconds per run (default 60); RUNS for bench (default 5);
# ONLY=layer|libgc builds only that one; CFLAGS_EXTRA is added to every
# compile (e.g. "-fsanitize=thread -DWBGC_NO_ASM"); CHECK_MODE=0 leaves out
# the layer's check-mode pair (its plain-stores half races on purpose).
set -u

HERE=$(cd "$(dirname "$0")" && pwd)          # examples/boehm
ROOT=$(cd "$HERE/../.." && pwd)
CC=${CC:-gcc}
TIMEOUT=${TIMEOUT:-60}
MODE=${1:-test}
OUT=${2:-$ROOT/build/boehm}
case $MODE in test|bench) ;; *) echo "usage: run.sh test|bench [OUTDIR]" >&2; exit 2 ;; esac
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)

FLAGS=(-O2 -Wall -Wextra -Werror -DGC_THREADS)
# shellcheck disable=SC2206  # CFLAGS_EXTRA is a list of words on purpose
FLAGS+=(${CFLAGS_EXTRA:-})
LAYER_SRC=$HERE/gc_wbgc.c

# ---- which builds are possible -------------------------------------------

# The layer: present once gc_wbgc.c exists; compiled once into an object that
# every layer build links (wbgc.h is big: no need to compile it per test).
HAVE_LAYER=0
if [ -f "$LAYER_SRC" ]; then
    mkdir -p "$OUT/layer"
    if "$CC" "${FLAGS[@]}" -I"$HERE" -pthread -c "$LAYER_SRC" -o "$OUT/layer/gc_wbgc.o" 2> "$OUT/layer/gc_wbgc.err"; then
        HAVE_LAYER=1
    else
        HAVE_LAYER=broken   # every layer build then fails, with this error
    fi
else
    echo "layer not built yet"
fi

# Real Boehm GC: a probe that includes <gc.h> (the system one: no -I here,
# or the layer's gc.h would be found) and links -lgc. Boehm's header is
# clean under -Wall -Wextra with gcc 12 and libgc 8.2; if some compiler or
# version makes it warn, -Werror is dropped for the libgc builds only (the
# warnings would be Boehm's, not the tests'), and a line says so.
HAVE_LIBGC=0
LIBGC_FLAGS=("${FLAGS[@]}")
mkdir -p "$OUT/libgc"
printf '#include <gc.h>\nint main(void) { GC_INIT(); return GC_MALLOC(8) == 0; }\n' > "$OUT/libgc/probe.c"
if "$CC" "${FLAGS[@]}" "$OUT/libgc/probe.c" -o "$OUT/libgc/probe" -pthread -lgc 2> /dev/null; then
    HAVE_LIBGC=1
elif "$CC" -O2 -DGC_THREADS "$OUT/libgc/probe.c" -o "$OUT/libgc/probe" -pthread -lgc 2> /dev/null; then
    HAVE_LIBGC=1
    LIBGC_FLAGS=(-O2 -Wall -Wextra -DGC_THREADS)
    echo "note: Boehm's gc.h warns with $CC -Wall -Wextra: -Werror dropped for the libgc builds"
else
    echo "skipped real Boehm GC: apt-get install libgc-dev"
fi

# ---- building ------------------------------------------------------------

# extras FILE: prints "NAME FLAGS..." for each "// extra:" line of FILE.
extras() { sed -n 's|^// extra: *||p' "$1"; }

# is_extra NAME: whether some test names tests/NAME as an extra file.
is_extra() {
    local f
    for f in "$HERE"/tests/*.c; do
        extras "$f" | awk '{ print $1 }' | grep -qx "$1" && return 0
    done
    return 1
}

# build NAME BUILD: builds tests/NAME.c for BUILD (layer|libgc) into
# $OUT/BUILD/NAME; compiler messages in $OUT/BUILD/NAME.build. Returns 0 on
# success.
build() {
    local name=$1 b=$2 dir="$OUT/$2" src="$HERE/tests/$1.c"
    local -a cflags objs=() link
    if [ "$b" = layer ]; then
        cflags=("${FLAGS[@]}" -I"$HERE")
        link=("$OUT/layer/gc_wbgc.o" -pthread -lm)
        if [ "$HAVE_LAYER" != 1 ]; then cp "$OUT/layer/gc_wbgc.err" "$dir/$name.build"; return 1; fi
    else
        cflags=("${LIBGC_FLAGS[@]}")
        link=(-pthread -lgc)
    fi
    : > "$dir/$name.build"
    local xname xflags
    while read -r xname xflags; do
        [ -n "$xname" ] || continue
        # shellcheck disable=SC2086  # the flags are words on purpose
        "$CC" "${cflags[@]}" $xflags -pthread -c "$HERE/tests/$xname" -o "$dir/$name.${xname%.c}.o" \
            >> "$dir/$name.build" 2>&1 || return 1
        objs+=("$dir/$name.${xname%.c}.o")
    done < <(extras "$src")
    "$CC" "${cflags[@]}" "$src" "${objs[@]}" -o "$dir/$name" "${link[@]}" >> "$dir/$name.build" 2>&1
}

# The builds to make, in the order they run.
BUILDS=()
[ "$HAVE_LIBGC" = 1 ] && [ "${ONLY:-libgc}" = libgc ] && BUILDS+=(libgc)
[ "$HAVE_LAYER" != 0 ] && [ "${ONLY:-layer}" = layer ] && BUILDS+=(layer)
[ "${ONLY:-}" = layer ] && HAVE_LIBGC=0   # nothing to compare with

# ---- test ----------------------------------------------------------------

run_tests() {
    local pass=0 fail=0 f name b rc why secs start
    for b in "${BUILDS[@]}"; do mkdir -p "$OUT/$b"; done
    for f in "$HERE"/tests/*.c; do
        name=$(basename "$f" .c)
        is_extra "$name.c" && continue
        if [ -n "${TESTS:-}" ] && ! grep -qw -- "$name" <<< "$TESTS"; then continue; fi
        local libgc_ok=0
        for b in "${BUILDS[@]}"; do
            why=""
            secs=""
            if ! build "$name" "$b"; then
                why="build failed"
            else
                start=$(date +%s.%N)
                timeout "$TIMEOUT" "$OUT/$b/$name" > "$OUT/$b/$name.out" 2> "$OUT/$b/$name.err"
                rc=$?
                secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2fs", b - a }')
                if [ $rc -eq 124 ]; then why="timed out after ${TIMEOUT}s"
                elif [ $rc -ne 0 ]; then why="exit $rc"
                elif [ "$b" = layer ] && [ $libgc_ok = 1 ] && ! cmp -s "$OUT/libgc/$name.out" "$OUT/layer/$name.out"; then
                    why="stdout differs from libgc's"
                fi
                [ "$b" = libgc ] && [ -z "$why" ] && libgc_ok=1
                if [ "$b" = layer ] && [ "$HAVE_LIBGC" = 1 ] && [ $libgc_ok = 0 ]; then
                    secs="$secs (not compared: libgc's run failed)"
                fi
            fi
            if [ -z "$why" ]; then
                pass=$((pass + 1))
                printf 'ok   %-28s %s\n' "boehm/$name ($b)" "$secs"
            else
                fail=$((fail + 1))
                printf 'FAIL %-28s %s %s\n' "boehm/$name ($b)" "$why" "$secs"
                case $why in
                build*) head -n 15 "$OUT/$b/$name.build" | sed 's/^/     /' ;;
                stdout*) diff "$OUT/libgc/$name.out" "$OUT/layer/$name.out" | head -n 20 | sed 's/^/     /' ;;
                *) { grep -v '^ok ' "$OUT/$b/$name.out"; tail -n 5 "$OUT/$b/$name.err"; } | head -n 20 | sed 's/^/     /' ;;
                esac
            fi
        done
    done
    # Check mode (layer only): incremental.c, whose every store is marked,
    # passes with wbgc's verifier on; built with -DPLAIN_STORES it asks for
    # concurrency without marking its stores, and must fail loudly (the
    # verifier's report, abort) rather than lose objects quietly.
    if [ "$HAVE_LAYER" = 1 ] && [ "${CHECK_MODE:-1}" != 0 ] && [ "${ONLY:-layer}" = layer ] &&
       { [ -z "${TESTS:-}" ] || grep -qw incremental <<< "$TESTS"; }; then
        local src="$HERE/tests/incremental.c" bin="$OUT/layer/incremental-plain"
        if [ -x "$OUT/layer/incremental" ] &&
           WBGC_MODE=check timeout "$TIMEOUT" "$OUT/layer/incremental" > /dev/null 2> "$OUT/layer/incremental.check.err"; then
            pass=$((pass + 1)); echo "ok   boehm/incremental (layer, WBGC_MODE=check: nothing lost)"
        else
            fail=$((fail + 1)); echo "FAIL boehm/incremental (layer, WBGC_MODE=check)"
            tail -n 5 "$OUT/layer/incremental.check.err" | sed 's/^/     /'
        fi
        if "$CC" "${FLAGS[@]}" -I"$HERE" -DPLAIN_STORES "$src" "$OUT/layer/gc_wbgc.o" -o "$bin" -pthread -lm \
               > "$bin.build" 2>&1 &&
           ! (WBGC_MODE=check timeout "$TIMEOUT" "$bin" > /dev/null 2> "$bin.err"; exit $?) 2> /dev/null &&
           grep -q "wbgc: fatal: verifier" "$bin.err"; then
            pass=$((pass + 1)); echo "ok   boehm/incremental -DPLAIN_STORES (layer, WBGC_MODE=check: fails loudly)"
        else
            fail=$((fail + 1)); echo "FAIL boehm/incremental -DPLAIN_STORES (layer, WBGC_MODE=check): no verifier report"
            tail -n 5 "$bin.err" "$bin.build" 2> /dev/null | sed 's/^/     /'
        fi
    fi
    echo "$pass passed, $fail failed"
    [ $fail -eq 0 ]
}

# ---- bench ---------------------------------------------------------------

# Programs and their arguments (sized for about 1-2 s each under libgc).
BENCH=("gcbench 2" "binarytrees 17" "incremental 5")
RUNS=${RUNS:-5}

# median FILE COLUMN: the median of a column of numbers.
median() {
    awk -v c="$2" '{ print $c }' "$1" | sort -g | awk '{ v[NR] = $1 } END {
        if (!NR) { print "nan"; exit }
        print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

run_bench() {
    local entry name args b r start rc wall rss pmax pn
    local -a built
    local -A med
    echo "bench: $RUNS runs per build, interleaved; medians. wall: seconds; rss: peak RSS, MiB;"
    echo "pause: longest stop of the world, ms; pauses: how many (libgc: GC_EVENT_PRE_STOP_WORLD..POST_START_WORLD)"
    for entry in "${BENCH[@]}"; do
        read -r name args <<< "$entry"
        built=()
        for b in "${BUILDS[@]}"; do
            mkdir -p "$OUT/$b"
            if build "$name" "$b"; then built+=("$b"); : > "$OUT/$b/$name.bench"
            else echo "$name ($b): build failed"; head -n 5 "$OUT/$b/$name.build" | sed 's/^/     /'; fi
        done
        [ ${#built[@]} -gt 0 ] || continue
        for r in $(seq "$RUNS"); do
            for b in "${built[@]}"; do
                start=$(date +%s.%N)
                # shellcheck disable=SC2086  # args are words
                timeout "$TIMEOUT" "$OUT/$b/$name" $args > "$OUT/$b/$name.out" 2> "$OUT/$b/$name.err"
                rc=$?
                wall=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
                if [ $rc -ne 0 ] || grep -q '^FAIL' "$OUT/$b/$name.out"; then
                    echo "$name ($b) run $r: failed (exit $rc)"; continue
                fi
                rss=$(sed -n 's/^bench: maxrss_kib //p' "$OUT/$b/$name.err")
                read -r pmax pn < <(sed -n 's/^bench: pause_max_us \([0-9]*\) pauses \([0-9]*\)/\1 \2/p' "$OUT/$b/$name.err")
                echo "$wall ${rss:-nan} ${pmax:-nan} ${pn:-nan}" >> "$OUT/$b/$name.bench"
            done
        done
        echo
        echo "$name $args"
        printf '  %-12s %8s %9s %10s %8s\n' build wall rss pause pauses
        med=()
        for b in "${built[@]}"; do
            med[$b.wall]=$(median "$OUT/$b/$name.bench" 1)
            med[$b.rss]=$(median "$OUT/$b/$name.bench" 2)
            med[$b.pmax]=$(median "$OUT/$b/$name.bench" 3)
            med[$b.pn]=$(median "$OUT/$b/$name.bench" 4)
            awk -v b="$b" -v w="${med[$b.wall]}" -v r="${med[$b.rss]}" -v p="${med[$b.pmax]}" -v n="${med[$b.pn]}" \
                'BEGIN { printf "  %-12s %8.3f %9.1f %10.2f %8d\n", b, w, r / 1024, p / 1000, n }'
        done
        if [ -n "${med[layer.wall]:-}" ] && [ -n "${med[libgc.wall]:-}" ]; then
            awk -v w1="${med[layer.wall]}" -v w0="${med[libgc.wall]}" -v r1="${med[layer.rss]}" -v r0="${med[libgc.rss]}" \
                -v p1="${med[layer.pmax]}" -v p0="${med[libgc.pmax]}" -v n1="${med[layer.pn]}" -v n0="${med[libgc.pn]}" '
                function ratio(a, b) { return (b > 0) ? sprintf("%.2fx", a / b) : "-" }
                BEGIN { printf "  %-12s %8s %9s %10s %8s\n", "layer/libgc", ratio(w1, w0), ratio(r1, r0), ratio(p1, p0), ratio(n1, n0) }'
        fi
    done
}

if [ "$MODE" = test ]; then run_tests; else run_bench; fi
