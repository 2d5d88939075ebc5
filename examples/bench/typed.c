/* typed.c -- precise layouts against conservative scanning: what a cycle
 * costs, and what integers keep alive, when the heap is a graph of records
 * that hold integers beside their pointers.
 *
 * Two heaps in one process, built the same way with the same random
 * numbers, one with wbgc_alloc (every word scanned) and one with
 * wbgc_alloc_typed (a layout naming the two pointer words):
 *
 *   a live graph of --records records of 64 bytes: two pointers (the next
 *   record, so that one root holds them all, and a random earlier record)
 *   and six 64-bit integers, random; a fraction (--fake, per mille) of the
 *   integer words hold instead the address of a garbage record: one
 *   allocated beside the live ones (so that they share spans, as garbage
 *   does), laid out the same way, and referenced by nothing but that
 *   integer. With --chain K each garbage record is the head of K garbage
 *   records linked by their pointer words (a dead list, as a dead part of a
 *   structure keeps its links): what one false pointer keeps alive grows.
 *
 * Then --collects wbgc_collect calls on each heap, alternated (conservative,
 * typed, conservative, ...), each timed: wall clock and the process's CPU
 * time (the collector's threads included), medians reported. The cycle is
 * stop-the-world by default (WBGC_STW: the whole mark on the calling thread,
 * then the sweep, in one pause; the sweep is a few percent of it here), or
 * concurrent with --concurrent (the default config: mark workers beside the
 * caller, which helps). heap_live after the collects: what the cycle found
 * live; the live graph alone is records x 64 bytes, and what a heap keeps
 * beyond it is false retention (the typed heap keeps none: its integers are
 * never read as pointers).
 *
 *   gcc -O2 -Wall -Wextra -Werror -pthread examples/bench/typed.c -o build/bench_typed
 *   ./build/bench_typed                 # the real run: 1.5M records, 7 collects each
 *   ./build/bench_typed --quick         # smoke run: 100k records, 3 collects
 *   ./build/bench_typed --help          # the other options
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

typedef struct rec {
    struct rec *next;   /* the next record: the graph's spine */
    struct rec *other;  /* a random earlier record */
    uint64_t    n[6];   /* integers; a few hold a garbage record's address */
} rec;

static struct {
    long records;     /* live records per heap */
    int  fake;        /* integer words holding a garbage address, per mille */
    int  chain;       /* garbage records reached from each such word */
    int  collects;    /* timed wbgc_collect calls per heap */
    int  concurrent;  /* the default collector instead of WBGC_STW */
} opt = { 1500000, 10, 1, 7, 0 };

static void usage(FILE *f) {
    fprintf(f,
        "usage: typed [options]\n"
        "  --quick         short smoke run: 100000 records, 3 collects\n"
        "  --records N     live records per heap (default 1500000)\n"
        "  --fake N        integer words holding a garbage record's address, per mille (default 10)\n"
        "  --chain N       garbage records linked from each of those (default 1)\n"
        "  --collects N    timed wbgc_collect calls per heap (default 7)\n"
        "  --concurrent    the default concurrent collector (default: WBGC_STW)\n");
}

static void parse_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quick")) { opt.records = 100000; opt.collects = 3; }
        else if (!strcmp(a, "--records")) opt.records = bench_arg_long(argc, argv, &i, 1, usage, "typed");
        else if (!strcmp(a, "--fake")) opt.fake = (int)bench_arg_long(argc, argv, &i, 0, usage, "typed");
        else if (!strcmp(a, "--chain")) opt.chain = (int)bench_arg_long(argc, argv, &i, 1, usage, "typed");
        else if (!strcmp(a, "--collects")) opt.collects = (int)bench_arg_long(argc, argv, &i, 1, usage, "typed");
        else if (!strcmp(a, "--concurrent")) opt.concurrent = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else { fprintf(stderr, "typed: unknown option '%s'\n", a); usage(stderr); exit(2); }
    }
    if (opt.fake > 1000) { fprintf(stderr, "typed: --fake is per mille: at most 1000\n"); exit(2); }
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* One heap and what the benchmark keeps of it. root: a registered root
   region holding the graph's first record. */
typedef struct side {
    const char *name;
    wbgc_heap *h;
    wbgc_p *p;
    const wbgc_layout *layout;   /* NULL: wbgc_alloc */
    rec *root[1];
    uint64_t fakes, garbage;     /* integer words made fake; garbage records made */
    double *wall, *cpu;          /* per collect, ms */
} side;

static rec *new_rec(side *s) {
    rec *r = s->layout ? wbgc_alloc_typed(s->p, sizeof(rec), s->layout) : wbgc_alloc(s->p, sizeof(rec));
    if (!r) { fprintf(stderr, "typed: %s: allocation failed\n", s->name); exit(1); }
    return r;
}

/* build: the graph, from the same random numbers on either side. index:
   malloc memory the collector does not see (the records live through
   their spine). */
static void build(side *s, rec **index) {
    uint64_t rng = 12345;
    rec *prev = NULL;
    for (long i = 0; i < opt.records; i++) {
        rec *r = new_rec(s);
        index[i] = r;
        if (prev) wbgc_write(s->p, &prev->next, r);
        else wbgc_write(s->p, &s->root[0], r);
        if (i) wbgc_write(s->p, &r->other, index[mix64(rng++) % (uint64_t)i]);
        for (int k = 0; k < 6; k++) {
            uint64_t v = mix64(rng++);
            if (v % 1000 < (uint64_t)opt.fake) {   /* the address of a garbage record */
                rec *g = NULL;
                for (int c = 0; c < opt.chain; c++) {
                    rec *q = new_rec(s);
                    for (int j = 0; j < 6; j++) q->n[j] = mix64(rng++);
                    if (g) wbgc_write(s->p, &q->next, g);
                    g = q;
                    s->garbage++;
                }
                r->n[k] = (uint64_t)(uintptr_t)g;  /* an integer: a plain store */
                s->fakes++;
            } else {
                r->n[k] = v >> (v & 32);           /* large and small integers */
            }
        }
        prev = r;
    }
}

/* walk: the records reached along the spine (all of them, if the
   collects freed nothing live). */
static long walk(const side *s) {
    long n = 0;
    for (const rec *r = s->root[0]; r; r = r->next) n++;
    return n;
}

static void open_side(side *s, const char *name, int typed) {
    wbgc_config cfg;
    wbgc_config_default(&cfg);
    cfg.gc_percent = -1;  /* no cycle but the timed ones */
    if (!opt.concurrent) cfg.flags = WBGC_STW;
    memset(s, 0, sizeof *s);
    s->name = name;
    s->h = wbgc_heap_new(&cfg);
    s->p = s->h ? wbgc_attach(s->h) : NULL;
    if (!s->p || wbgc_add_roots(s->h, s->root, sizeof s->root) != 0) {
        fprintf(stderr, "typed: no heap\n");
        exit(1);
    }
    if (typed) {
        size_t offs[2] = {offsetof(rec, next), offsetof(rec, other)};
        s->layout = wbgc_layout_new(s->h, sizeof(rec), offs, 2);
        if (!s->layout) exit(1);
    }
    s->wall = calloc((size_t)opt.collects, sizeof *s->wall);
    s->cpu = calloc((size_t)opt.collects, sizeof *s->cpu);
    if (!s->wall || !s->cpu) exit(1);
}

static void timed_collect(side *s, int k) {
    double w0 = now_ns(CLOCK_MONOTONIC), c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    wbgc_collect(s->p);
    s->cpu[k] = (now_ns(CLOCK_PROCESS_CPUTIME_ID) - c0) / 1e6;
    s->wall[k] = (now_ns(CLOCK_MONOTONIC) - w0) / 1e6;
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    rec **index = malloc((size_t)opt.records * sizeof *index);
    if (!index) return 1;
    side sd[2];
    open_side(&sd[0], "wbgc_alloc (conservative)", 0);
    open_side(&sd[1], "wbgc_alloc_typed", 1);
    for (int i = 0; i < 2; i++) build(&sd[i], index);
    for (int i = 0; i < 2; i++) wbgc_collect(sd[i].p);  /* warm-up: the garbage goes */
    for (int k = 0; k < opt.collects; k++)
        for (int i = 0; i < 2; i++) timed_collect(&sd[i], k);

    bench_print_machine();
    bench_print_env();
    const double live = (double)opt.records * sizeof(rec), mib = 1.0 / (1 << 20);
    printf("## Precise layouts: a graph of %ld records of %zu bytes (2 pointers, 6 integers; "
           "%d per mille of the integers hold the address of a garbage record, %d garbage record%s "
           "behind each)\n\n", opt.records, sizeof(rec), opt.fake, opt.chain, opt.chain > 1 ? "s" : "");
    printf("%s cycles; median of %d wbgc_collect calls per heap, alternated; the live graph is "
           "%.1f MiB. Load average: %s.\n\n", opt.concurrent ? "Concurrent" : "Stop-the-world (WBGC_STW)",
           opt.collects, live * mib, loadavg());
    printf("| allocation | collect ms (wall) | collect ms (cpu) | heap_live MiB | kept beyond the "
           "live graph, MiB | garbage records made | integer words holding one |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    double mw[2], mc[2], hl[2];
    int bad = 0;
    for (int i = 0; i < 2; i++) {
        wbgc_stats st;
        wbgc_get_stats(sd[i].h, &st);
        mw[i] = median(sd[i].wall, opt.collects);
        mc[i] = median(sd[i].cpu, opt.collects);
        hl[i] = (double)st.heap_live;
        printf("| %s | %.1f | %.1f | %.1f | %.1f | %llu | %llu |\n", sd[i].name, mw[i], mc[i],
               hl[i] * mib, (hl[i] - live) * mib, (unsigned long long)sd[i].garbage,
               (unsigned long long)sd[i].fakes);
        long seen = walk(&sd[i]);
        if (seen != opt.records) {
            fprintf(stderr, "typed: %s: the spine has %ld records, not %ld: objects lost\n",
                    sd[i].name, seen, opt.records);
            bad = 1;
        }
    }
    printf("| typed / conservative | %.2f | %.2f | %.2f | | | |\n\n", mw[1] / mw[0], mc[1] / mc[0],
           hl[1] / hl[0]);
    for (int i = 0; i < 2; i++) {
        memset(sd[i].root, 0, sizeof sd[i].root);
        wbgc_remove_roots(sd[i].h, sd[i].root);
        wbgc_detach(sd[i].p);
        wbgc_heap_free(sd[i].h);
        free(sd[i].wall);
        free(sd[i].cpu);
    }
    free(index);
    return bad;
}
