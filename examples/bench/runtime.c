/* runtime.c -- what finalizers, weak references and ephemerons cost a
 * cycle, against the same objects without them, side by side in one run.
 *
 * A live set of N (default 1M) 32-byte objects, held by a table of 4 KiB
 * chunks (a registered root array of chunk pointers), collected with
 * wbgc_collect; the time of a whole cycle (mark start, concurrent mark,
 * termination, sweep), median of --rounds (default 5), for:
 *
 *   plain        the objects alone
 *   finalizable  every object with a finalizer (all reachable: none runs;
 *                each is scanned as a root every cycle)
 *   weak         every object with a weak handle (the handles, 16-byte GC
 *                objects, kept in a second table)
 *   strong pairs N pairs (key, value) as 32-byte objects, every value
 *                pointing to the next pair's key: the table holds only the
 *                pairs and the first key, the rest is reached along the
 *                chain of values
 *   ephemerons   the same as ephemerons: each value is reached only once
 *                its key is (the marker waits on each key in turn)
 *
 * plus what setting each up costs per object, a weak get outside a mark,
 * and the cycle that finds N finalizable objects dead (queues N
 * finalizers) and running them.
 *
 *   build/bench_runtime [--objects N] [--rounds R] */
#define WBGC_IMPLEMENTATION
#include "../../wbgc.h"
#include "bench.h"

#include <pthread.h>
#include <stdint.h>

#define CHUNK 512  /* pointers per table chunk (4 KiB) */

typedef struct table {
    void ***chunks;  /* registered: a root region */
    size_t nchunks;
} table;

static void table_new(wbgc_heap *h, wbgc_p *p, table *t, size_t n)
{
    t->nchunks = (n + CHUNK - 1) / CHUNK;
    t->chunks = calloc(t->nchunks, sizeof *t->chunks);
    if (!t->chunks || wbgc_add_roots(h, t->chunks, t->nchunks * sizeof *t->chunks) != 0) exit(1);
    for (size_t c = 0; c < t->nchunks; c++) {
        void **chunk = wbgc_alloc(p, CHUNK * sizeof(void *));
        if (!chunk) exit(1);
        wbgc_write(p, &t->chunks[c], chunk);
    }
}

static void table_set(wbgc_p *p, table *t, size_t i, void *v) { wbgc_write(p, &t->chunks[i / CHUNK][i % CHUNK], v); }
static void *table_get(table *t, size_t i) { return t->chunks[i / CHUNK][i % CHUNK]; }

static void table_free(wbgc_heap *h, table *t)
{
    wbgc_remove_roots(h, t->chunks);
    free(t->chunks);
    t->chunks = NULL;
}

static uint64_t g_fin_runs;
static void fin(wbgc_p *p, void *obj, void *arg) { (void)p; (void)obj; (void)arg; g_fin_runs++; }

static double cycle_ms(wbgc_p *p, int rounds)
{
    double v[64];
    if (rounds > 64) rounds = 64;
    for (int r = 0; r < rounds; r++) {
        double t0 = now_ns(CLOCK_MONOTONIC);
        wbgc_collect(p);
        v[r] = (now_ns(CLOCK_MONOTONIC) - t0) / 1e6;
    }
    return median(v, rounds);
}

static void usage(FILE *f) { fprintf(f, "usage: bench_runtime [--objects N] [--rounds R] [--chain L]\n"); }

/* A key, and a value that points back to its key and on to the next key
   of its chain. */
typedef struct bkey { uint64_t id, pad[3]; } bkey;
typedef struct bval { bkey *key, *next; uint64_t id, pad; } bval;
typedef struct bpair { bkey *key; bval *value; uint64_t pad[2]; } bpair;

/* pairs: n pairs in chains of `chain`: value i points to key i+1 within a
   chain; the table lists them from each chain's end to its start (so a
   marker meets most before their keys), heads holds each chain's first
   key. ephemeral: ephemerons, else strong 32-byte pairs. Returns the
   median cycle time, and checks that every value is alive. */
static double pairs_ms(wbgc_heap *h, wbgc_p *p, size_t n, size_t chain, int ephemeral, int rounds)
{
    table tab, heads;
    table_new(h, p, &tab, n);
    table_new(h, p, &heads, (n + chain - 1) / chain);
    bkey *next = NULL;
    for (size_t i = n; i-- > 0;) {
        bkey *k = wbgc_alloc(p, sizeof *k);
        bval *v = wbgc_alloc(p, sizeof *v);
        if (!k || !v) exit(1);
        k->id = v->id = i;
        wbgc_write(p, &v->key, k);
        if ((i + 1) % chain) wbgc_write(p, &v->next, next);
        void *pair;
        if (ephemeral) {
            pair = wbgc_ephemeron_new(p, k, v);
        } else {
            bpair *q = wbgc_alloc(p, sizeof *q);
            if (q) wbgc_write2(p, &q->key, k, &q->value, v);
            pair = q;
        }
        if (!pair) exit(1);
        table_set(p, &tab, n - 1 - i, pair);
        if (i % chain == 0) table_set(p, &heads, i / chain, k);
        next = k;
    }
    next = NULL;
    double ms = cycle_ms(p, rounds);
    for (size_t j = 0; j < n; j++) {
        void *pair = table_get(&tab, j);
        bval *v = ephemeral ? wbgc_ephemeron_value(p, pair) : ((bpair *)pair)->value;
        if (!v || v->id != n - 1 - j) {
            fprintf(stderr, "bench_runtime: value %zu lost\n", n - 1 - j);
            exit(1);
        }
    }
    table_free(h, &tab);
    table_free(h, &heads);
    wbgc_collect(p);
    return ms;
}

int main(int argc, char **argv)
{
    size_t n = 1000000, chain = 16;
    int rounds = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--objects")) n = (size_t)bench_arg_long(argc, argv, &i, 1000, usage, "bench_runtime");
        else if (!strcmp(argv[i], "--rounds")) rounds = (int)bench_arg_long(argc, argv, &i, 1, usage, "bench_runtime");
        else if (!strcmp(argv[i], "--chain")) chain = (size_t)bench_arg_long(argc, argv, &i, 1, usage, "bench_runtime");
        else { usage(stderr); return 2; }
    }
    bench_print_machine();
    bench_print_env();
    printf("## A cycle with %zu objects: plain, finalizable, weak, strong pairs, ephemerons\n\n", n);
    printf("wbgc_collect, whole cycle, median of %d; load average %s\n\n", rounds, loadavg());

    wbgc_config cfg;
    wbgc_config_default(&cfg);
    cfg.flags |= WBGC_FINALIZE_ON_DEMAND;
    wbgc_heap *h = wbgc_heap_new(&cfg);
    wbgc_p *p = wbgc_attach(h);
    table objs, aux;
    table_new(h, p, &objs, n);
    for (size_t i = 0; i < n; i++) {
        void *o = wbgc_alloc(p, 32);
        if (!o) return 1;
        table_set(p, &objs, i, o);
    }
    double plain = cycle_ms(p, rounds);

    double t0 = now_ns(CLOCK_MONOTONIC);
    for (size_t i = 0; i < n; i++) wbgc_set_finalizer(p, table_get(&objs, i), fin, NULL);
    double set_ns = (now_ns(CLOCK_MONOTONIC) - t0) / (double)n;
    double finalizable = cycle_ms(p, rounds);
    for (size_t i = 0; i < n; i++) wbgc_set_finalizer(p, table_get(&objs, i), NULL, NULL);

    table_new(h, p, &aux, n);
    t0 = now_ns(CLOCK_MONOTONIC);
    for (size_t i = 0; i < n; i++) table_set(p, &aux, i, wbgc_weak_new(p, table_get(&objs, i)));
    double weak_new_ns = (now_ns(CLOCK_MONOTONIC) - t0) / (double)n;
    double weak = cycle_ms(p, rounds);
    t0 = now_ns(CLOCK_MONOTONIC);
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) hits += wbgc_weak_get(p, table_get(&aux, i)) == table_get(&objs, i);
    double weak_get_ns = (now_ns(CLOCK_MONOTONIC) - t0) / (double)n;
    if (hits != n) {
        fprintf(stderr, "bench_runtime: %zu of %zu weak gets wrong\n", n - hits, n);
        return 1;
    }
    table_free(h, &aux);

    /* the objects die, finalizable: one cycle queues them, then they run */
    for (size_t i = 0; i < n; i++) wbgc_set_finalizer(p, table_get(&objs, i), fin, NULL);
    table_free(h, &objs);
    t0 = now_ns(CLOCK_MONOTONIC);
    wbgc_collect(p);
    double dying_ms = (now_ns(CLOCK_MONOTONIC) - t0) / 1e6;
    t0 = now_ns(CLOCK_MONOTONIC);
    size_t ran = wbgc_run_finalizers(p, 0);
    double run_ns = ran ? (now_ns(CLOCK_MONOTONIC) - t0) / (double)ran : 0;
    wbgc_collect(p);
    wbgc_collect(p);

    double strong = pairs_ms(h, p, n, chain, 0, rounds);
    double eph = pairs_ms(h, p, n, chain, 1, rounds);

    printf("| live set | cycle, ms | vs plain | set-up per object |\n");
    printf("| --- | ---: | ---: | ---: |\n");
    printf("| plain objects | %.1f | 1.00 | |\n", plain);
    printf("| finalizable | %.1f | %.2f | wbgc_set_finalizer %.0f ns |\n", finalizable, finalizable / plain, set_ns);
    printf("| weak handles | %.1f | %.2f | wbgc_weak_new %.0f ns; wbgc_weak_get %.1f ns |\n", weak, weak / plain,
           weak_new_ns, weak_get_ns);
    printf("| %zu strong pairs, chains of %zu | %.1f | | |\n", n, chain, strong);
    printf("| the same as ephemerons | %.1f | %.2f x strong pairs | |\n", eph, eph / strong);
    printf("\nthe cycle that finds %zu finalizable objects dead: %.1f ms (queues them); running "
           "them: %.0f ns each (%zu ran)\n\n", n, dying_ms, run_ns, ran);

    wbgc_detach(p);
    wbgc_heap_free(h);
    return 0;
}
