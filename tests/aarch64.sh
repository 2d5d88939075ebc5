#!/usr/bin/env bash
# tests/aarch64.sh — builds test.c for aarch64 and runs the suite under qemu
# user-mode emulation. On aarch64 wbgc.h uses its portable C barrier.
#
#   bash tests/aarch64.sh OUTDIR [TEST...]   (OUTDIR: the build dir, e.g. build)
#
# Last line: the test binary's "N passed, N failed"; exit status non-zero when
# a test fails. Without the cross compiler or qemu it prints one "skipped"
# line and exits 0. It never installs anything.
#
# qemu on an x86-64 host runs guest loads and stores in host (TSO) order, so
# this catches code that does not build, crashes or misbehaves on aarch64,
# but not, in general, a missing memory barrier: only real aarch64 hardware
# reorders like aarch64.
set -u
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash tests/aarch64.sh OUTDIR [TEST...]}
shift

have() { command -v "$1" >/dev/null 2>&1; }

CC=aarch64-linux-gnu-gcc
QEMU=qemu-aarch64
have "$QEMU" || QEMU=qemu-aarch64-static
if ! have "$CC" || ! have "$QEMU"; then
    echo "== skipped aarch64: apt-get install gcc-aarch64-linux-gnu qemu-user"
    exit 0
fi

# -static rather than `qemu -L /usr/aarch64-linux-gnu`: the binary carries its
# own libc, so it runs the same under qemu-aarch64, qemu-aarch64-static or a
# binfmt handler, with no loader path to find and no host library confusion
# (both work here; static has one moving part fewer).
mkdir -p "$OUT"
"$CC" -O2 -g -Wall -Wextra -Werror -static test.c -o "$OUT/test_aarch64" -pthread -lm || {
    echo "!! aarch64: build failed"
    exit 1
}

# No WBGC_TEST_* / WBGC_STRESS_* settings: every test runs at full size.
# Measured on this 2-core box, build (~5 s) included: 45 s wall idle, 85 s
# with both cores kept busy, 103 s at load average 4.5 (57 tests); long_list
# is the longest at 14-39 s. That is inside the ~4 minute budget and far from
# the 300 s per-test watchdog, so nothing is scaled down. Settings from the
# caller's environment pass through.
#
# qemu-user (7.2 here) aborts ("qemu_plugin_vcpu_init_hook: assertion
# failed", exit 127) when the forked child of a multi-threaded program starts
# a thread; a 20-line program without wbgc does the same. The fork_* tests
# do exactly that (and so does wbgc, starting its mark workers again), so
# they are not run here unless named.
if [ $# -eq 0 ]; then
    echo "== aarch64: fork_* tests not run: qemu-user aborts when a forked child of a threaded program starts a thread"
    set -- $("$QEMU" "$OUT/test_aarch64" --list | grep -v '^fork_')
fi
exec "$QEMU" "$OUT/test_aarch64" "$@"
