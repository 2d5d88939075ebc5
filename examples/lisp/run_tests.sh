#!/usr/bin/env bash
# run_tests.sh BINARY — runs every tests/*.scm in every collector mode and
# compares stdout+stderr with tests/NAME.out. Tests named err_* must exit
# non-zero, all others zero. A test may write files in $LISP_TEST_DIR (a
# fresh directory, removed at the end). One line per test x mode; last line
# "N passed, N failed"; exit status non-zero when any failed.
#   LISP_GC_PERCENT (default 25 here) makes collections frequent.
#   MODES="stw check" restricts the modes; UPDATE=1 rewrites the .out files
#   from the stw run (review them before keeping).
set -u
BIN=${1:?usage: run_tests.sh BINARY}
DIR=$(cd "$(dirname "$0")" && pwd)
MODES=${MODES:-"concurrent incremental stw check"}
export LISP_GC_PERCENT=${LISP_GC_PERCENT:-25}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export LISP_TEST_DIR="$TMP/files"
mkdir -p "$LISP_TEST_DIR"
pass=0; fail=0
for t in "$DIR"/tests/*.scm; do
    name=$(basename "$t" .scm)
    exp="$DIR/tests/$name.out"
    for mode in $MODES; do
        start=$(date +%s.%N)
        LISP_GC=$mode timeout 120 "$BIN" "$t" > "$TMP/out" 2>&1
        rc=$?
        secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
        if [ "${UPDATE:-0}" = 1 ] && [ "$mode" = stw ]; then cp "$TMP/out" "$exp"; fi
        why=""
        case $name in
            err_*) [ $rc -ne 0 ] && [ $rc -lt 124 ] || why="exit $rc, want 1" ;;
            *) [ $rc -eq 0 ] || why="exit $rc" ;;
        esac
        if [ -z "$why" ] && ! cmp -s "$TMP/out" "$exp"; then why="output differs"; fi
        if [ -z "$why" ]; then
            pass=$((pass + 1)); printf 'ok   %-14s %-12s %ss\n' "$name" "$mode" "$secs"
        else
            fail=$((fail + 1)); printf 'FAIL %-14s %-12s %s\n' "$name" "$mode" "$why"
            diff "$exp" "$TMP/out" 2>&1 | head -n 10 | sed 's/^/     /'
        fi
    done
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
