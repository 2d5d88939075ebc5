#!/usr/bin/env bash
# bench.sh BINARY — runs the Lisp benchmark programs (examples/lisp/bench/*.scm)
# with the concurrent and the stop-the-world collector, interleaved, 3 runs
# each, and prints a Markdown table: median wall time, and the longest and
# 99th-percentile pause of the median run (from (gc-stats), which each run
# prints last as "gc: <pause-max-ns> <pause-p99-ns> <cycles>").
set -u
BIN=${1:?usage: bench.sh BINARY}
DIR=$(cd "$(dirname "$0")" && pwd)
RUNS=${RUNS:-3}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
printf '(define s (gc-stats))\n(println "gc: " (cdr (assq (quote pause-max-ns) s)) " " (cdr (assq (quote pause-p99-ns) s)) " " (cdr (assq (quote cycles) s)))\n' > "$TMP/stats.scm"
echo "| program | mode | wall s (median of $RUNS) | cycles | max pause | p99 pause |"
echo "| --- | --- | ---: | ---: | ---: | ---: |"
for prog in "$DIR"/bench/*.scm; do
    name=$(basename "$prog" .scm)
    for mode in concurrent stw; do :> "$TMP/$mode"; done
    for _ in $(seq "$RUNS"); do
        for mode in concurrent stw; do
            start=$(date +%s.%N)
            if ! LISP_GC=$mode "$BIN" "$prog" "$TMP/stats.scm" > "$TMP/out" 2>&1; then
                echo "| $name | $mode | failed: $(tail -n 1 "$TMP/out") | | | |"; continue
            fi
            end=$(date +%s.%N)
            read -r maxns p99ns cyc < <(grep '^gc: ' "$TMP/out" | tail -n 1 | cut -d' ' -f2-)
            awk -v a="$start" -v b="$end" -v m="$maxns" -v p="$p99ns" -v c="$cyc" \
                'BEGIN { printf "%.3f %d %d %d\n", b - a, c, m, p }' >> "$TMP/$mode"
        done
    done
    for mode in concurrent stw; do
        sort -n "$TMP/$mode" | awk -v n="$name" -v mode="$mode" '
            { l[NR] = $0 }
            END { if (!NR) exit; split(l[int((NR + 1) / 2)], f, " ");
                  printf "| %s | %s | %.3f | %d | %.1f us | %.1f us |\n", n, mode, f[1], f[2], f[3] / 1e3, f[4] / 1e3 }'
    done
done
