/* check_mode.c -- what a barriered store costs in check mode (WBGC_CHECK),
 * where every store is validated: the amd64 asm barrier (wbgc_write on
 * x86-64) against its portable C twin (wbgc__arch_write, what WBGC_NO_ASM
 * builds use), side by side in one run.
 *
 * Check mode gives the barrier buffer one entry, so every store takes the
 * barrier's slow path. The portable barrier calls the flush as a C function
 * (the compiler saves what it needs around the call); the asm barrier calls
 * a trampoline that saves every register, so that its call sites cost the
 * compiler nothing, and the vector state (xsavec/xsave) only for a flush
 * that its general-register flush cannot finish. The last column says how
 * many stores took that vector-saving path.
 *
 * The stores (no cycle runs: gc_percent -1; check mode's barrier is on all
 * the same), each a loop of stores through one store site:
 *   heap        a pointer to a live object into a field of a scanned object
 *   heap NULL   NULL into the same fields
 *   stack       a pointer into a local array of the storing thread
 *   root        a pointer into a registered root region
 * Each timed run makes --stores stores; every variant runs once per round,
 * interleaved, and each figure is the median over --rounds rounds, in ns per
 * store.
 *
 *   gcc -O2 -Wall -Wextra -Werror -pthread examples/bench/check_mode.c -o build/bench_check_mode
 *   ./build/bench_check_mode              # the real run, a few seconds
 *   ./build/bench_check_mode --quick      # smoke run
 *   ./build/bench_check_mode --help
 *
 * Nothing but the C compiler and libc is needed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WBGC_IMPLEMENTATION
#include "../../wbgc.h"
#include "bench.h"

#define NOINLINE __attribute__((noinline))
#define NSLOTS 256
#define NVALS 64

static struct {
    long stores;   /* stores per timed run */
    int  rounds;   /* runs of each variant */
} opt = { 2000000, 9 };

static void usage(FILE *f) {
    fprintf(f,
        "usage: check_mode [options]\n"
        "  --quick         short smoke run: 100000 stores, 3 rounds\n"
        "  --stores N      stores per timed run (default 2000000)\n"
        "  --rounds N      runs of each variant, interleaved (default 9)\n");
}

static void parse_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quick")) { opt.stores = 100000; opt.rounds = 3; }
        else if (!strcmp(a, "--stores")) opt.stores = bench_arg_long(argc, argv, &i, 1, usage, "check_mode");
        else if (!strcmp(a, "--rounds")) opt.rounds = (int)bench_arg_long(argc, argv, &i, 1, usage, "check_mode");
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else { fprintf(stderr, "check_mode: unknown option '%s'\n", a); usage(stderr); exit(2); }
    }
}

/* The kernels: n stores of vals[k] into slots[j], both cycling; only the
   store differs. */
#define KERNEL(name, STORE)                                                        \
    static NOINLINE void name(wbgc_p *p, void **slots, void *const *vals, long n) \
    {                                                                              \
        long j = 0, k = 0;                                                         \
        for (long i = 0; i < n; i++) {                                             \
            STORE(p, &slots[j], vals[k]);                                          \
            if (++j == NSLOTS) j = 0;                                              \
            if (++k == NVALS) k = 0;                                               \
        }                                                                          \
    }
KERNEL(kernel_write, wbgc_write)
KERNEL(kernel_portable, wbgc__arch_write)

typedef void (*kernel_fn)(wbgc_p *, void **, void *const *, long);

static void *g_root[NSLOTS];

enum { T_HEAP, T_NULL, T_STACK, T_ROOT, NTARGETS };
static const char *const target_name[NTARGETS] = {"heap", "heap NULL", "stack", "root"};

int main(int argc, char **argv) {
    parse_args(argc, argv);
    wbgc_config cfg;
    wbgc_config_default(&cfg);
    cfg.gc_percent = -1;
    cfg.mark_workers = 0;
    cfg.flags = WBGC_CHECK;
    wbgc_heap *h = wbgc_heap_new(&cfg);
    wbgc_p *p = h ? wbgc_attach(h) : NULL;
    if (!p) { fprintf(stderr, "check_mode: no heap\n"); return 1; }
    if (wbgc_add_roots(h, g_root, sizeof g_root) != 0) return 1;
    void **field = wbgc_alloc(p, NSLOTS * sizeof(void *));
    void **vals = wbgc_alloc(p, NVALS * sizeof(void *));
    void *nulls[NVALS] = {0};
    void *local[NSLOTS];
    memset(local, 0, sizeof local);
    if (!field || !vals) return 1;
    for (int k = 0; k < NVALS; k++) wbgc_write(p, &vals[k], wbgc_alloc(p, 32));

    const int nvariants = WBGC__HAVE_AMD64 ? 2 : 1;
    kernel_fn kernels[2] = {kernel_portable, kernel_write};
    void **slots[NTARGETS] = {field, field, local, g_root};
    void *const *values[NTARGETS] = {vals, nulls, vals, vals};
    double *ns = calloc((size_t)(NTARGETS * 2 * opt.rounds), sizeof *ns);
    uint64_t full[NTARGETS] = {0};
    if (!ns) return 1;
    for (int r = 0; r < opt.rounds; r++) {
        for (int t = 0; t < NTARGETS; t++) {
            for (int v = 0; v < nvariants; v++) {
                kernels[v](p, slots[t], values[t], opt.stores / 16);   /* warm-up */
                uint64_t full0 = p->wb_full_flushes;
                double t0 = now_ns(CLOCK_MONOTONIC);
                kernels[v](p, slots[t], values[t], opt.stores);
                double dt = now_ns(CLOCK_MONOTONIC) - t0;
                ns[(t * 2 + v) * opt.rounds + r] = dt / (double)opt.stores;
                if (v == 1) full[t] += p->wb_full_flushes - full0;
            }
        }
    }

    bench_print_machine();
    bench_print_env();
    printf("## Check mode: ns per barriered store (median of %d interleaved rounds, %ld stores each)\n\n",
           opt.rounds, opt.stores);
    printf("| store | amd64 asm | portable C | asm / portable | asm: stores that saved the vector state |\n");
    printf("| --- | ---: | ---: | ---: | ---: |\n");
    for (int t = 0; t < NTARGETS; t++) {
        double c = median(&ns[(t * 2) * opt.rounds], opt.rounds);
        if (nvariants == 2) {
            double a = median(&ns[(t * 2 + 1) * opt.rounds], opt.rounds);
            printf("| %s | %.1f | %.1f | %.2f | %.0f%% |\n", target_name[t], a, c, a / c,
                   100.0 * (double)full[t] / ((double)opt.stores * opt.rounds));
        } else {
            printf("| %s | - | %.1f | - | - |\n", target_name[t], c);
        }
    }
    printf("\n");
    memset(g_root, 0, sizeof g_root);
    wbgc_remove_roots(h, g_root);
    free(ns);
    wbgc_detach(p);
    wbgc_heap_free(h);
    return 0;
}
