#!/usr/bin/env bash
# barrier_callgrind.sh -- instructions per store of the write-barrier loops of
# barrier.c, counted by valgrind's callgrind, with marking off (no cycle runs).
#
# Each loop runs alone (barrier --callgrind LOOP N) twice, for N1 and N2
# iterations; everything but the loop (setup, exit) is the same in both runs,
# so (Ir(N2) - Ir(N1)) / (stores(N2) - stores(N1)) is what one store costs in
# that loop: the store, its barrier check, and its share of the loop's other
# work. The program prints how many stores it did (the tree loop does two per
# step that swaps, none on a step that pops a leaf).
#
#   examples/bench/barrier_callgrind.sh              # with gcc
#   CC=clang examples/bench/barrier_callgrind.sh
#   N1=100000 N2=600000 examples/bench/barrier_callgrind.sh
#
# Needs valgrind; without it, prints one line saying so and exits 0.
set -eu
cd "$(dirname "$0")/../.."

if ! command -v valgrind >/dev/null 2>&1; then
    echo "barrier_callgrind: skipped: valgrind not found (apt-get install valgrind)"
    exit 0
fi
CC=${CC:-gcc}
N1=${N1:-100000}
N2=${N2:-600000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$CC" -O2 -Wall -Wextra -Werror examples/bench/barrier.c -o "$tmp/barrier" -pthread

# count LOOP N: prints "Ir stores" for one run of LOOP over N iterations.
count() {
    if ! valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" \
            "$tmp/barrier" --callgrind "$1" "$2" > "$tmp/run.txt" 2> "$tmp/vg.txt"; then
        cat "$tmp/run.txt" "$tmp/vg.txt" >&2
        echo "barrier_callgrind: $1 failed" >&2
        exit 1
    fi
    local ir stores
    ir=$(awk '/^summary:/ { print $2 }' "$tmp/cg.out")
    stores=$(sed -n 's/.*stores=\([0-9]*\).*/\1/p' "$tmp/run.txt")
    echo "$ir $stores"
}

echo "# wbgc write barrier: instructions per store (callgrind)"
echo
echo "- $("$CC" --version | head -n 1), -O2; $(valgrind --version)"
echo "- each loop run for $N1 and $N2 iterations with marking off; instructions per"
echo "  store = (Ir($N2) - Ir($N1)) / (stores($N2) - stores($N1))"
echo

declare -A per_store
families="tree sites32 regp8 regp12 cons"
for fam in $families; do
    case $fam in
        tree) variants="plain write c unbuf" ;;
        cons) variants="plain write write2 c" ;;
        *)    variants="plain write c" ;;
    esac
    for v in $variants; do
        read -r ir1 st1 <<< "$(count "$fam-$v" "$N1")"
        read -r ir2 st2 <<< "$(count "$fam-$v" "$N2")"
        per_store[$fam-$v]=$(awk -v a="$ir1" -v b="$ir2" -v s="$st1" -v t="$st2" \
            'BEGIN { printf "%.3f", (b - a) / (t - s) }')
    done
done

label() {
    case $1 in
        plain) echo "plain store" ;; write) echo "wbgc_write" ;; c) echo "portable C" ;;
        unbuf) echo "unbuffered" ;; write2) echo "wbgc_write2" ;;
    esac
}
fam_label() {
    case $1 in
        tree) echo "tree reversal (Go's loop)" ;; sites32) echo "32 sites in a row" ;;
        regp8) echo "regp8: 8 live accumulators" ;; regp12) echo "regp12: 12 live accumulators" ;;
        cons) echo "cons cells (two fields)" ;;
    esac
}

echo "| loop | plain store | wbgc_write | portable C | unbuffered | wbgc_write2 | wbgc_write - plain | wbgc_write / plain | portable / plain |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for fam in $families; do
    row="| $(fam_label "$fam") |"
    for v in plain write c unbuf write2; do
        row="$row ${per_store[$fam-$v]:--} |"
    done
    p=${per_store[$fam-plain]} w=${per_store[$fam-write]} c=${per_store[$fam-c]}
    row="$row $(awk -v p="$p" -v w="$w" -v c="$c" \
        'BEGIN { printf "%+.2f | %.3f | %.3f |", w - p, w / p, c / p }')"
    echo "$row"
done
echo
echo "Instructions per store, marking off. wbgc_write is the amd64 asm on x86-64"
echo "(the portable C elsewhere). cons: wbgc_write and portable C mean two stores per"
echo "cell, each with its own barrier; wbgc_write2 checks once for both."
echo
echo "**Item 1, instructions** (target: barrier with marking off within 10% of plain"
echo "stores, i.e. wbgc_write / plain <= 1.10):"
echo
for fam in $families; do
    p=${per_store[$fam-plain]} w=${per_store[$fam-write]} c=${per_store[$fam-c]}
    awk -v f="$(fam_label "$fam")" -v p="$p" -v w="$w" -v c="$c" 'BEGIN {
        printf "- %s: wbgc_write %.2f vs plain %.2f instructions per store, ratio %.2f (%s); portable %.2f (%.2f, %s)\n",
            f, w, p, w / p, (w / p <= 1.10 ? "PASS" : "FAIL"), c, c / p, (c / p <= 1.10 ? "PASS" : "FAIL") }'
done
w2=${per_store[cons-write2]} w=${per_store[cons-write]}
awk -v a="$w2" -v b="$w" 'BEGIN {
    printf "- cons: wbgc_write2 %.2f vs two wbgc_write %.2f instructions per store (%.2f vs %.2f per cell)\n",
        a, b, 2 * a, 2 * b }'
