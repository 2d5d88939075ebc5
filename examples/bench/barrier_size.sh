#!/usr/bin/env bash
# barrier_size.sh -- what a barrier site costs in code, and what the barrier
# costs the register allocator: the amd64 asm of wbgc_write against its
# portable C twin (the same source compiled with -DWBGC_NO_ASM) and against
# plain stores.
#
# One small translation unit includes wbgc.h (declarations only) and
# examples/bench/barrier_sites.inc, defining one function per object file:
#   sites32  32 stores into 32 fields: bytes per site, hot (.text, the
#            function itself) and cold (.text.unlikely: the asm's enabled
#            path, or any part the compiler moved there)
#   regp8    a loop with 8 (12) accumulators live across each of its two
#   regp12   stores: the stack loads and stores inside the loop (spills and
#            reloads), counted in the objdump of the loop body (from the
#            target of the function's outermost backward branch to that
#            branch; code the compiler placed after it, such as a portable
#            barrier's enabled path, is outside)
# compiled three ways: plain stores, wbgc_write (asm), wbgc_write with
# -DWBGC_NO_ASM (portable).
#
#   examples/bench/barrier_size.sh                 # gcc, and clang if present
#   CCS=gcc examples/bench/barrier_size.sh         # the compilers to use
#
# Needs a C compiler and binutils (objdump, nm, size).
set -eu
cd "$(dirname "$0")/../.."
for tool in objdump nm size; do
    command -v "$tool" >/dev/null 2>&1 || { echo "barrier_size: skipped: $tool not found (apt-get install binutils)"; exit 0; }
done
CCS=${CCS:-"gcc clang"}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat > "$tmp/sites.c" <<'EOF'
#include "wbgc.h"
#ifdef SITES_PLAIN
#define SITES_STORE(p, slot, val) ((void)(p), *(void **)(slot) = (val))
#else
#define SITES_STORE(p, slot, val) wbgc_write(p, slot, val)
#endif
#define SITES_FN(name) name
#define SITES_LINKAGE __attribute__((noinline))
#include "examples/bench/barrier_sites.inc"
EOF

modes="plain asm portable"
mode_flags() {
    case $1 in plain) echo "-DSITES_PLAIN" ;; asm) echo "" ;; portable) echo "-DWBGC_NO_ASM" ;; esac
}
mode_label() {
    case $1 in plain) echo "plain store" ;; asm) echo "wbgc_write (asm)" ;; portable) echo "wbgc_write, WBGC_NO_ASM (portable)" ;; esac
}

# build CC FN MODE: compiles the one function; prints the object's path.
build() {
    local o="$tmp/$1-$2-$3.o" upper
    upper=$(echo "$2" | tr '[:lower:]' '[:upper:]')
    # shellcheck disable=SC2046
    "$1" -O2 -Wall -Wextra -Werror -I. -DSITES_ONLY_"$upper" $(mode_flags "$3") -c "$tmp/sites.c" -o "$o"
    echo "$o"
}

# hot_bytes OBJ FN: the size of the function's symbol.
hot_bytes() {
    local hex
    hex=$(nm -S --defined-only "$1" | awk -v f="$2" '$4 == f { print $2 }')
    echo $((16#${hex:-0}))
}

# cold_bytes OBJ: the size of .text.unlikely (the asm's enabled paths, fn.cold).
cold_bytes() {
    size -A "$1" | awk '$1 == ".text.unlikely" { n += $2 } END { print n + 0 }'
}

# loop_stats OBJ FN: "bytes instructions stack_loads stack_stores push_pop" of
# the function's outermost loop (AT&T syntax: the destination comes last).
loop_stats() {
    objdump -d --no-show-raw-insn "$1" | awk -v f="$2" '
        function hex(s,   i, v) {
            sub(/:$/, "", s); v = 0
            for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
            return v
        }
        # operands: splits o on the commas outside parentheses into ops[1..n]
        function operands(o, ops,   i, c, depth, n, cur) {
            n = 0; cur = ""; depth = 0
            for (i = 1; i <= length(o); i++) {
                c = substr(o, i, 1)
                if (c == "(") depth++
                if (c == ")") depth--
                if (c == "," && depth == 0) { ops[++n] = cur; cur = ""; continue }
                cur = cur c
            }
            if (cur != "") ops[++n] = cur
            return n
        }
        $0 ~ "^[0-9a-f]+ <" f ">:$" { infn = 1; next }
        infn && /^$/ { infn = 0 }
        infn && /^ *[0-9a-f]+:/ {
            addr = hex($1); n++; a[n] = addr; line[n] = $0
            if ($2 ~ /^j/ && match($0, /[0-9a-f]+ <[^>]*>$/)) {
                split(substr($0, RSTART), t, " ")
                tgt = hex(t[1])
                if (tgt < addr && (lo == "" || tgt < lo)) { lo = tgt; hi = addr }
            }
        }
        END {
            if (lo == "") { print "0 0 0 0 0"; exit }
            for (i = 1; i <= n; i++) {
                if (a[i] < lo || a[i] > hi) continue
                ins++
                text = line[i]; sub(/^[^\t]*\t/, "", text)    # drop the address
                split(text, w, " "); mn = w[1]; rest = substr(text, length(mn) + 1)
                gsub(/^ +| +$/, "", rest)
                if (mn ~ /^(push|pop)/) { pp++; continue }
                if (rest !~ /\(%rsp/) continue
                m = operands(rest, ops)
                dst = ops[m]; src = 0
                for (j = 1; j < m; j++) if (ops[j] ~ /\(%rsp/) src = 1
                if (dst ~ /\(%rsp/) {
                    if (mn ~ /^(cmp|test|bt[lqw]?$|call|jmp|push)/ || m == 1 && mn !~ /^(inc|dec|neg|not|set)/) ld++
                    else if (mn ~ /^(mov|set|lea)/) { if (mn !~ /^lea/) st++ }
                    else { ld++; st++ }    # read-modify-write
                }
                if (src) ld++
            }
            print hi - lo, ins, ld + 0, st + 0, pp + 0
        }'
}

echo "# wbgc write barrier: code bytes per site, spills under register pressure"
echo
for cc in $CCS; do
    if ! command -v "$cc" >/dev/null 2>&1; then
        echo "(skipped $cc: not found)"
        echo
        continue
    fi
    echo "## $("$cc" --version | head -n 1), -O2"
    echo
    echo "### 32 barrier sites in a row (sites32: 32 stores into 32 fields of one object)"
    echo
    echo "| store | hot bytes (.text) | cold bytes (.text.unlikely) | total | hot per site | total per site | hot per site over plain |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    plain_hot=0
    for m in $modes; do
        o=$(build "$cc" sites32 "$m")
        h=$(hot_bytes "$o" sites32)
        c=$(cold_bytes "$o")
        [ "$m" = plain ] && plain_hot=$h
        awk -v l="$(mode_label "$m")" -v h="$h" -v c="$c" -v p="$plain_hot" 'BEGIN {
            printf "| %s | %d | %d | %d | %.1f | %.1f | %+.1f |\n", l, h, c, h + c, h / 32, (h + c) / 32, (h - p) / 32 }'
    done
    echo
    for fn in regp8 regp12; do
        echo "### $fn: the loop's stack traffic ($(echo "$fn" | tr -dc 0-9) accumulators live across each of two stores)"
        echo
        echo "| store | function bytes (hot + cold) | loop bytes | loop instructions | stack loads in loop | stack stores in loop | push/pop in loop |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
        for m in $modes; do
            o=$(build "$cc" "$fn" "$m")
            h=$(hot_bytes "$o" "$fn")
            c=$(cold_bytes "$o")
            read -r lb li ld st pp <<< "$(loop_stats "$o" "$fn")"
            echo "| $(mode_label "$m") | $h + $c | $lb | $li | $ld | $st | $pp |"
        done
        echo
    done
done
echo "Hot bytes: the function's own symbol. The asm keeps each site's enabled path in"
echo ".text.unlikely (cold), so its hot bytes are the check and the store; the compilers"
echo "keep the portable barrier's enabled paths inside the function (in the same .text,"
echo "after the fast path), so its hot bytes include them: compare totals for the whole"
echo "cost, hot bytes for what sits between the fast paths."
echo
echo "Stack loads and stores: instructions in the loop body that read or write (%rsp)-relative"
echo "memory (at -O2 neither compiler keeps a frame pointer, so every spill slot is there);"
echo "a read-modify-write counts as both. Static counts: every instruction in the loop's"
echo "address range, which for the portable barrier may include an enabled path the"
echo "compiler laid out inside the loop. Executed instructions: barrier_callgrind.sh."
