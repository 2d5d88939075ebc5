/* alloc.c -- wbgc's first benchmark: what an allocation costs, and what a
 * full collection of a big heap costs.
 *
 * Part A, allocation throughput. Small objects (16, 32, 64, 128 bytes) are
 * allocated and dropped at once, N times per run, in four ways:
 *   wbgc          wbgc_alloc with the default config (gc_percent = 100), so
 *                 collections run as the garbage piles up;
 *   wbgc gc=off   gc_percent = -1: no cycle ever runs, every object is new
 *                 memory (fewer objects: at most 512 MiB per run);
 *   malloc+memset glibc malloc, zeroed by memset, and a ring of the last 1000
 *                 pointers whose oldest is freed on each allocation: malloc
 *                 must pay for free as the collector pays for its cycles;
 *   calloc        the same with calloc.
 * Every variant hands back zeroed memory and writes one word into each object.
 * Runs are interleaved (wbgc, gc=off, malloc+memset, calloc, wbgc, ...) and
 * the median of the runs is reported, in wall-clock ns per allocation; the
 * wbgc cpu column is the whole process's CPU time, background markers
 * included.
 *
 * Part B, a full collection of a big live heap: 32-byte nodes totalling
 * --heap-mb (default 1024 MiB), held from a registered root, built with
 * gc_percent = -1 so that no cycle runs during the build; then wbgc_collect
 * is timed several times. Three shapes and two modes (the default
 * concurrent collector; WBGC_STW). The shapes: a complete binary tree built
 * depth first, left child first, then the same tree built right child first,
 * then 1024 linked lists. The two trees differ only in their layout in
 * memory, and the marker's speed depends on whether it visits objects in
 * address order, so both are shown. After the collections every node is
 * walked, to check that nothing live was freed.
 *
 *   gcc -O2 -Wall -Wextra -Werror -pthread examples/bench/alloc.c -o examples/bench/alloc
 *   ./examples/bench/alloc                 # the real run: 20M allocations, 1 GiB heap
 *   ./examples/bench/alloc --quick         # smoke test: 1M allocations, 64 MiB heap
 *   ./examples/bench/alloc --help          # the other options
 *
 * Nothing but the C compiler and libc is needed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/utsname.h>
#ifdef __GLIBC__
#include <gnu/libc-version.h>
#endif

#define WBGC_IMPLEMENTATION
#include "../../wbgc.h"
#include "bench.h"

/* ---- options ----------------------------------------------------------- */

static struct {
    long   allocs;     /* allocations per run in part A                     */
    long   nogc_mb;    /* cap on the bytes one gc=off run allocates         */
    int    reps_a;     /* runs of each variant in part A                    */
    long   heap_mb;    /* live heap of part B                               */
    int    reps_b;     /* wbgc_collect calls timed per heap in part B       */
    int    part_a, part_b;
    int    verify;     /* walk the part B heap after collecting             */
} opt = { 20000000, 512, 5, 1024, 5, 1, 1, 1 };

static void usage(FILE *f) {
    fprintf(f,
        "usage: alloc [options]\n"
        "  --quick         short smoke run: 1M allocations, 64 MiB heap, 3 reps\n"
        "  --allocs N      allocations per run in part A (default 20000000)\n"
        "  --reps N        runs per variant in part A (default 5)\n"
        "  --heap-mb N     live heap in MiB for part B (default 1024)\n"
        "  --collects N    timed wbgc_collect calls per heap in part B (default 5)\n"
        "  --only-alloc    part A only\n"
        "  --only-collect  part B only\n"
        "  --no-verify     do not walk the part B heap after collecting\n");
}

static long arg_long(int argc, char **argv, int *i) {
    return bench_arg_long(argc, argv, i, 1, usage, "alloc");
}

static void parse_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quick")) {
            opt.allocs = 1000000; opt.nogc_mb = 64; opt.reps_a = 3;
            opt.heap_mb = 64; opt.reps_b = 3;
        }
        else if (!strcmp(a, "--allocs"))       opt.allocs = arg_long(argc, argv, &i);
        else if (!strcmp(a, "--reps"))         opt.reps_a = (int)arg_long(argc, argv, &i);
        else if (!strcmp(a, "--heap-mb"))      opt.heap_mb = arg_long(argc, argv, &i);
        else if (!strcmp(a, "--collects"))     opt.reps_b = (int)arg_long(argc, argv, &i);
        else if (!strcmp(a, "--only-alloc"))   opt.part_b = 0;
        else if (!strcmp(a, "--only-collect")) opt.part_a = 0;
        else if (!strcmp(a, "--no-verify"))    opt.verify = 0;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else { fprintf(stderr, "alloc: unknown option '%s'\n", a); usage(stderr); exit(2); }
    }
}

/* ---- clocks, medians, the machine -------------------------------------- */



/* median sorts v in place; an even count gives the mean of the middle two */

/* proc_field copies the value of the first "key<spaces>: value" line */

static void print_machine(void) {
    bench_print_machine();
    bench_print_env();
}

static void die(const char *what) {
    fprintf(stderr, "alloc: %s\n", what);
    exit(1);
}

/* The runs' results pass through here so no loop can be optimised away. */
static volatile uintptr_t sink;

/* ---- part A: allocation throughput -------------------------------------- */

typedef struct {
    double wall_ns, cpu_ns; /* per allocation */
    uint64_t cycles;        /* collections during the run (wbgc only) */
} run_result;

/* run_wbgc times n allocations of size bytes on a fresh heap; the heap's
   creation and destruction are outside the timing. */
static __attribute__((noinline)) run_result run_wbgc(size_t size, long n, int gc_percent) {
    wbgc_config cfg;
    wbgc_config_default(&cfg);
    cfg.gc_percent = gc_percent;
    wbgc_heap *h = wbgc_heap_new(&cfg);
    if (!h) die("wbgc_heap_new failed");
    wbgc_p *p = wbgc_attach(h);
    if (!p) die("wbgc_attach failed");

    uintptr_t acc = 0;
    double w0 = now_ns(CLOCK_MONOTONIC), c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    for (long i = 0; i < n; i++) {
        uintptr_t *o = wbgc_alloc(p, size);
        if (!o) die("wbgc_alloc returned NULL");
        acc += o[0];            /* zero, as promised */
        o[0] = (uintptr_t)i;    /* touch it, as every variant does */
    }
    double w1 = now_ns(CLOCK_MONOTONIC), c1 = now_ns(CLOCK_PROCESS_CPUTIME_ID);

    wbgc_stats st;
    wbgc_get_stats(h, &st);
    wbgc_detach(p);
    wbgc_heap_free(h);
    if (acc) die("wbgc_alloc returned memory that was not zeroed");
    sink += acc;
    return (run_result){ (w1 - w0) / n, (c1 - c0) / n, st.cycles };
}

enum { RING = 1000 };

/* run_malloc times n allocations of size bytes from glibc, zeroed with
   calloc or with malloc+memset, each freeing the allocation 1000 before. */
static __attribute__((noinline)) run_result run_malloc(size_t size, long n, int use_calloc) {
    static void *ring[RING];
    memset(ring, 0, sizeof ring);
    uintptr_t acc = 0;
    int j = 0;
    double w0 = now_ns(CLOCK_MONOTONIC), c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    for (long i = 0; i < n; i++) {
        uintptr_t *o;
        if (use_calloc) {
            o = calloc(1, size);
            if (!o) die("calloc returned NULL");
        } else {
            o = malloc(size);
            if (!o) die("malloc returned NULL");
            memset(o, 0, size);
        }
        acc += o[0];
        o[0] = (uintptr_t)i;
        free(ring[j]);
        ring[j] = o;
        if (++j == RING) j = 0;
    }
    for (int k = 0; k < RING; k++) free(ring[k]);
    double w1 = now_ns(CLOCK_MONOTONIC), c1 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    sink += acc;
    return (run_result){ (w1 - w0) / n, (c1 - c0) / n, 0 };
}

static void part_a(void) {
    static const size_t sizes[] = { 16, 32, 64, 128 };
    enum { V_GC, V_CPU, V_NOGC, V_MEMSET, V_CALLOC, NV };
    int reps = opt.reps_a;
    double *v[NV];
    for (int k = 0; k < NV; k++) v[k] = malloc(sizeof(double) * (size_t)reps);

    printf("## A. Allocation throughput\n\n");
    printf("%ld allocations per run (gc=off: at most %ld MiB per run), "
           "median of %d interleaved runs, ns per allocation (wall clock).\n\n",
           opt.allocs, opt.nogc_mb, reps);
    printf("| size | wbgc | wbgc cpu | wbgc gc=off | malloc+memset | calloc "
           "| wbgc / malloc+memset | wbgc / calloc | cycles per run |\n");
    printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    fflush(stdout);

    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t size = sizes[s];
        long n_nogc = (long)((size_t)opt.nogc_mb * 1024 * 1024 / size);
        if (n_nogc > opt.allocs) n_nogc = opt.allocs;
        double cycles = 0;
        for (int r = 0; r < reps; r++) {
            run_result g = run_wbgc(size, opt.allocs, 100);
            v[V_GC][r] = g.wall_ns;
            v[V_CPU][r] = g.cpu_ns;
            cycles += (double)g.cycles;
            v[V_NOGC][r] = run_wbgc(size, n_nogc, -1).wall_ns;
            v[V_MEMSET][r] = run_malloc(size, opt.allocs, 0).wall_ns;
            v[V_CALLOC][r] = run_malloc(size, opt.allocs, 1).wall_ns;
        }
        double m[NV];
        for (int k = 0; k < NV; k++) m[k] = median(v[k], reps);
        printf("| %zu B | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f | %.2f | %.0f |\n",
               size, m[V_GC], m[V_CPU], m[V_NOGC], m[V_MEMSET], m[V_CALLOC],
               m[V_GC] / m[V_MEMSET], m[V_GC] / m[V_CALLOC], cycles / reps);
        fflush(stdout);
    }
    printf("\nwbgc: default config (gc_percent=100, automatic mark workers), objects "
           "dropped at once. gc=off: gc_percent=-1, all fresh memory (page faults "
           "included). malloc+memset / calloc: glibc, zeroed, ring of %d live "
           "pointers, the oldest freed per allocation. wbgc cpu: process CPU time "
           "(all threads) per allocation.\n\n", RING);
    for (int k = 0; k < NV; k++) free(v[k]);
}

/* ---- part B: collecting a big live heap --------------------------------- */

/* Both node types are 32 bytes: two words of links or payload, two of data. */
typedef struct tnode { struct tnode *left, *right; uintptr_t id, check; } tnode;
typedef struct lnode { struct lnode *next; uintptr_t pad, id, check; } lnode;

enum { NLISTS = 1024 };
#define NODE_CHECK(id) ((uintptr_t)(id) * 0x9E3779B97F4A7C15u)

static tnode *tree_root;         /* registered roots: the only way in */
static lnode *list_heads[NLISTS];

static void *new_node(wbgc_p *p, uintptr_t id) {
    tnode *t = wbgc_alloc(p, 32); /* either kind: id and check sit at words 2, 3 */
    if (!t) die("wbgc_alloc returned NULL while building the heap");
    t->id = id;
    t->check = NODE_CHECK(id);
    return t;
}

/* grow_tree hangs the children of node i of a complete binary tree of n
   nodes (children 2i+1 and 2i+2) under t, the left one first or, with
   right_first, the right one. Each child is stored into its parent before
   its own subtree is built, so all of it is always reachable. The order
   decides the layout: the subtree built first lies first in memory. */
static void grow_tree(wbgc_p *p, tnode *t, size_t i, size_t n, int right_first) {
    for (int k = 0; k < 2; k++) {
        int right = k ^ right_first;
        size_t ci = 2 * i + 1 + (size_t)right;
        if (ci >= n) continue;
        tnode *c = new_node(p, ci);
        wbgc_write(p, right ? &t->right : &t->left, c);
        grow_tree(p, c, ci, n, right_first);
    }
}

static size_t walk_tree(const tnode *t, size_t i) {
    if (!t) return 0;
    if (t->id != i || t->check != NODE_CHECK(i)) {
        fprintf(stderr, "alloc: tree node %zu at %p holds id %zu: freed while live?\n",
                i, (const void *)t, (size_t)t->id);
        exit(1);
    }
    return 1 + walk_tree(t->left, 2 * i + 1) + walk_tree(t->right, 2 * i + 2);
}

enum { TREE_LEFT_FIRST, TREE_RIGHT_FIRST, LISTS, NSHAPES };
static const char *const shape_name[NSHAPES] = {
    "tree, left first", "tree, right first", "1024 lists",
};

static void build(wbgc_p *p, int shape, size_t n) {
    if (shape != LISTS) {
        tnode *r = new_node(p, 0);
        wbgc_write(p, &tree_root, r);
        grow_tree(p, r, 0, n, shape == TREE_RIGHT_FIRST);
        return;
    }
    /* list j holds ids j, j + NLISTS, ...; each list is built in one go,
       pushing at the head, so its nodes lie together in memory */
    for (size_t j = 0; j < NLISTS && j < n; j++)
        for (size_t id = j; id < n; id += NLISTS) {
            lnode *l = new_node(p, id);
            wbgc_write(p, &l->next, list_heads[j]);
            wbgc_write(p, &list_heads[j], l);
        }
}

static size_t walk(int shape, size_t n) {
    if (shape != LISTS) return walk_tree(tree_root, 0);
    size_t count = 0;
    for (size_t j = 0; j < NLISTS; j++) {
        size_t id = j + ((n > j ? (n - 1 - j) / NLISTS : 0)) * NLISTS; /* the last pushed */
        for (const lnode *l = list_heads[j]; l; l = l->next, id -= NLISTS) {
            if (l->id != id || l->check != NODE_CHECK(id)) {
                fprintf(stderr, "alloc: list node %zu at %p holds id %zu: freed while live?\n",
                        id, (const void *)l, (size_t)l->id);
                exit(1);
            }
            count++;
        }
    }
    return count;
}

static void bench_collect(int shape, int stw) {
    int lists = shape == LISTS;
    size_t n = (size_t)opt.heap_mb * 1024 * 1024 / 32;
    wbgc_config cfg;
    wbgc_config_default(&cfg);
    cfg.gc_percent = -1;            /* nothing runs during the build */
    if (stw) cfg.flags |= WBGC_STW;
    wbgc_heap *h = wbgc_heap_new(&cfg);
    if (!h) die("wbgc_heap_new failed");
    wbgc_p *p = wbgc_attach(h);
    if (!p) die("wbgc_attach failed");
    if (lists ? wbgc_add_roots(h, list_heads, sizeof list_heads)
              : wbgc_add_roots(h, &tree_root, sizeof tree_root))
        die("wbgc_add_roots failed");

    double b0 = now_ns(CLOCK_MONOTONIC);
    build(p, shape, n);
    double build_s = (now_ns(CLOCK_MONOTONIC) - b0) / 1e9;

    wbgc_stats st0, st;
    wbgc_get_stats(h, &st0);
    int reps = opt.reps_b;
    double *wall = malloc(sizeof(double) * (size_t)reps);
    double *cpu = malloc(sizeof(double) * (size_t)reps);
    double first = 0, maxw = 0;
    for (int r = 0; r < reps; r++) {
        double w0 = now_ns(CLOCK_MONOTONIC), c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
        wbgc_collect(p);
        wall[r] = now_ns(CLOCK_MONOTONIC) - w0;
        cpu[r] = now_ns(CLOCK_PROCESS_CPUTIME_ID) - c0;
        if (r == 0) first = wall[r];
        if (wall[r] > maxw) maxw = wall[r];
    }
    wbgc_get_stats(h, &st);
    double mw = median(wall, reps), mc = median(cpu, reps);

    if (opt.verify) {
        size_t seen = walk(shape, n);
        if (seen != n) {
            fprintf(stderr, "alloc: walked %zu nodes of %zu after collecting\n", seen, n);
            exit(1);
        }
    }
    uint64_t cycles = st.cycles - st0.cycles, pauses = st.pause_count - st0.pause_count;
    printf("| %s | %s | %.1f M | %.0f | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f | %.1f |\n",
           shape_name[shape], stw ? "WBGC_STW" : "concurrent",
           n / 1e6, st.heap_live / 1048576.0, st.heap_sys / 1048576.0, build_s,
           mw / 1e6, first / 1e6, maxw / 1e6, mc / 1e6, mw / (double)n,
           st.pause_max_ns / 1e3, cycles ? (double)pauses / (double)cycles : 0.0,
           st.pause_count ? st.pause_total_ns / 1e3 / (double)st.pause_count : 0.0);
    fflush(stdout);
    if (cycles != (uint64_t)reps)
        fprintf(stderr, "alloc: note: %d wbgc_collect calls completed %llu cycles\n",
                reps, (unsigned long long)cycles);

    free(wall);
    free(cpu);
    if (lists) {
        memset(list_heads, 0, sizeof list_heads); /* plain stores: the heap dies next */
        wbgc_remove_roots(h, list_heads);
    } else {
        tree_root = NULL;
        wbgc_remove_roots(h, &tree_root);
    }
    wbgc_detach(p);
    wbgc_heap_free(h);
}

static void part_b(void) {
    printf("## B. Full collection of a %ld MiB live heap of 32-byte objects\n\n", opt.heap_mb);
    printf("wbgc_collect timed %d times per heap (gc_percent=-1, so no cycle runs "
           "while building); median, first and slowest in ms.\n\n", opt.reps_b);
    printf("| shape | mode | live objects | heap_live MiB | heap_sys MiB | build s "
           "| collect ms | first ms | max ms | cpu ms | ns per live object "
           "| pause_max µs | pauses per cycle | mean pause µs |\n");
    printf("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
           "| ---: | ---: | ---: |\n");
    fflush(stdout);
    for (int shape = 0; shape < NSHAPES; shape++)
        for (int stw = 0; stw < 2; stw++)
            bench_collect(shape, stw);
    printf("\ncollect ms: wall clock of wbgc_collect (mark and sweep). cpu ms: process "
           "CPU time during it, all threads. pause_max: the longest stop-the-world "
           "pause in the heap's stats. tree: a complete binary tree built depth first, "
           "the left or the right child allocated (and its subtree built) first: the "
           "two trees hold the same nodes and edges, only their layout in memory "
           "differs. 1024 lists: each list allocated in one go. %s\n\n",
           opt.verify ? "Every node was walked and checked after the collections." : "");
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    printf("# wbgc allocation benchmark%s\n\n", opt.allocs < 20000000 || opt.heap_mb < 1024 ? " (short run)" : "");
    print_machine();
    if (opt.part_a) part_a();
    if (opt.part_b) part_b();
    return (int)(sink & 0); /* sink is read, so the runs count */
}
