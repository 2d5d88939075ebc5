/* barrier.c -- what wbgc's write barrier costs: with marking off against a
 * plain store, with marking on against the eager barrier Go had before its
 * buffered one, the amd64 asm against its portable C twin, and the batched
 * store wbgc_write2 against two wbgc_write calls.
 *
 * The stores under test, side by side in one binary:
 *   plain       *(void **)slot = val: no barrier (the baseline)
 *   wbgc_write  the public barrier: on x86-64 the inline asm of wbgc_amd64.h
 *               (cold enabled path, register-saving flush trampoline)
 *   portable    wbgc__arch_write, the C twin (what WBGC_NO_ASM builds use)
 *   unbuffered  the eager barrier: with marking on it calls
 *               wbgc__write_unbuffered, which shades the old and the new
 *               value at once, at every store (Go before its buffered one)
 *   wbgc_write2 one check for two stores: a cons cell's two fields, a tree
 *               step's swap (the tree loops)
 *
 * The loops (every variant runs the same C code, only the store differs):
 *   big tree      Go's BenchmarkWriteBarrier: a complete binary tree of
 *                 2^22 - 1 16-byte nodes (64 MiB; --depth), built children
 *                 first, reversed in place one step at a time with an
 *                 explicit stack: a step swaps a node's two children (two
 *                 stores) and pushes them, or pops a leaf.
 *   tree 16 KiB   the same loop on a tree of depth 10, which fits in L1.
 *   32 sites      a function of 32 straight-line stores into 32 fields.
 *   regp8/regp12  a loop with 8 (12) accumulators live across each of its
 *                 two stores: what the barrier costs the register allocator.
 *   cons          initialising cons cells (two pointer fields) in a ring of
 *                 4096: wbgc_write2, or two stores.
 * The plain stores reverse a twin of each tree built inside one noscan
 * object (make_tree_in says why); with marking off the twin is as fast as
 * the collected tree, which the output shows. In the other loops every value
 * stored stays reachable from elsewhere, so plain stores there hide nothing.
 *
 * Two phases. Marking off: no cycle runs (gc_percent = -1). Marking on: a
 * second thread with its own P runs wbgc_collect back to back, so a cycle is
 * almost always marking the heap (mark_workers = 0: that thread is the only
 * marker, so the measured thread keeps a core of its own on a 2-CPU
 * machine). The measured thread polls wbgc_safepoint between batches of
 * about 8192 stores; the barrier's on/off flag (wb_on) changes only while
 * the P is stopped, that is inside wbgc_safepoint, so reading it after each
 * poll tells exactly whether the whole next batch runs with marking on. Each
 * batch is timed and counted as an on- or off-batch: "ns/store marking on"
 * is the time of the on-batches over their stores, buffer flushes included
 * (the shading they do is the barrier's work); safepoints, pauses and
 * buffer hand-overs fall between batches. The whole-run figure includes
 * everything, as Go's does. The share of each run the thread lost to the
 * OS scheduler is shown too (its wall time off the CPU outside safepoints).
 *
 * Each timed run is preceded by an untimed warm-up: a whole reversal of its
 * tree (of the big tree too: a run that followed a variant working on other
 * memory started with a colder cache than one that followed a run on the
 * same tree, which made whichever variant came second in a round 15-30%
 * slower), one batch of the other loops. Runs are interleaved
 * (every variant once per round), each figure is the median over rounds, and
 * each ratio the median of the per-round ratios. At the end the trees are
 * checked (an in-order walk must give the original node order, or its
 * mirror after an odd number of reversals), the regp checksums must agree
 * across variants, and a last cycle must find every object still live.
 *
 * Build it with every function and loop aligned to 64 bytes, as build.sh
 * does: where a kernel happens to land moves its time by several percent
 * (with gcc's default alignment the asm kernels of the 16 KiB tree, 32-site
 * and cons loops measured 7-8% slower than the portable ones with marking
 * on; aligned, 0-3%), and the variants must not differ by placement.
 *
 *   gcc -O2 -Wall -Wextra -Werror -falign-functions=64 -falign-loops=64 -pthread \
 *       examples/bench/barrier.c -o build/bench_barrier
 *   ./build/bench_barrier                 # the real run, under a minute
 *   ./build/bench_barrier --quick         # smoke run, a few seconds
 *   ./build/bench_barrier --only-on --loops big --variants write --verbose
 *                                         # one loop and store, for perf
 *   ./build/bench_barrier --callgrind regp8-write 1000000
 *                                         # one loop kind only, marking off,
 *                                         # for instruction counts
 *   ./build/bench_barrier --help
 *
 * examples/bench/barrier_callgrind.sh turns --callgrind runs into
 * instructions per store; examples/bench/barrier_size.sh measures code bytes
 * per barrier site and spills in the register-pressure loops (both compile
 * their own copies). Nothing but the C compiler and libc is needed here.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WBGC_IMPLEMENTATION
#include "../../wbgc.h"
#include "bench.h"

#define NOINLINE __attribute__((noinline))

/* ---- options ------------------------------------------------------------ */

static struct {
    int    depth;        /* big tree: 2^depth - 1 nodes of 16 bytes            */
    int    rounds;       /* runs of each variant, interleaved                  */
    long   big_passes;   /* whole reversals of the big tree per run            */
    long   stores;       /* stores per run in the other loops, about           */
    int    workers;      /* mark_workers in the marking phase                  */
    int    off, on;      /* which phases run                                   */
    int    quick;
    int    verbose;      /* one line per run on stderr                         */
    const char *loops;   /* --loops: families to run, NULL: all                */
    const char *variants;/* --variants: stores to run, NULL: all               */
    const char *cg_loop; /* --callgrind LOOP N                                 */
    long   cg_n;
} opt = { 22, 9, 2, 16000000, 0, 1, 1, 0, 0, NULL, NULL, NULL, 0 };

enum { SMALL_DEPTH = 10, BATCH = 8192, NCELLS = 4096, NPOOL = 64 };

static void usage(FILE *f) {
    fprintf(f,
        "usage: barrier [options]\n"
        "  --quick             smoke run of a few seconds: depth 18, 3 rounds, 2M stores\n"
        "  --depth N           the big tree: 2^N - 1 nodes of 16 bytes (default 22: 64 MiB)\n"
        "  --rounds N          runs of every variant, interleaved (default 9)\n"
        "  --passes N          reversals of the big tree per run (default 2)\n"
        "  --stores N          stores per run in the small loops (default 16000000)\n"
        "  --workers N         mark_workers while marking (default 0: the collecting\n"
        "                      thread is the only marker)\n"
        "  --only-off          the marking-off phase only (--only-on: the other)\n"
        "  --verbose           one line per run on stderr\n"
        "  --loops L1,L2,..    run only these loops: big (the big tree), tree (the 16 KiB\n"
        "                      tree), sites32, regp8, regp12, cons\n"
        "  --variants V1,..    run only these stores: plain, write, c, unbuf, write2,\n"
        "                      plain-gc (for profiling one of them)\n"
        "  --callgrind LOOP N  run only LOOP for N iterations with marking off and print\n"
        "                      its store count (for barrier_callgrind.sh); LOOP is\n"
        "                      FAMILY-VARIANT, FAMILY one of tree, sites32, regp8, regp12,\n"
        "                      cons; VARIANT one of plain, write, c, unbuf (tree), write2\n"
        "                      (cons). tree is the 16 KiB tree; N counts steps, calls,\n"
        "                      iterations or cells.\n");
}

static long arg_long(int argc, char **argv, int *i, long min) {
    return bench_arg_long(argc, argv, i, min, usage, "barrier");
}

static void parse_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quick")) {
            opt.quick = 1; opt.depth = 18; opt.rounds = 3; opt.big_passes = 2; opt.stores = 2000000;
        }
        else if (!strcmp(a, "--depth"))    opt.depth = (int)arg_long(argc, argv, &i, SMALL_DEPTH);
        else if (!strcmp(a, "--rounds"))   opt.rounds = (int)arg_long(argc, argv, &i, 1);
        else if (!strcmp(a, "--passes"))   opt.big_passes = arg_long(argc, argv, &i, 1);
        else if (!strcmp(a, "--stores"))   opt.stores = arg_long(argc, argv, &i, 1000);
        else if (!strcmp(a, "--workers"))  opt.workers = (int)arg_long(argc, argv, &i, 0);
        else if (!strcmp(a, "--only-off")) opt.on = 0;
        else if (!strcmp(a, "--only-on"))  opt.off = 0;
        else if (!strcmp(a, "--verbose"))  opt.verbose = 1;
        else if (!strcmp(a, "--loops") || !strcmp(a, "--variants")) {
            if (i + 1 >= argc) { usage(stderr); exit(2); }
            *(a[2] == 'l' ? &opt.loops : &opt.variants) = argv[++i];
        }
        else if (!strcmp(a, "--callgrind")) {
            if (i + 2 >= argc) { usage(stderr); exit(2); }
            opt.cg_loop = argv[++i];
            opt.cg_n = arg_long(argc, argv, &i, 1);
        }
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else { fprintf(stderr, "barrier: unknown option '%s'\n", a); usage(stderr); exit(2); }
    }
    if (opt.depth > 28) { fprintf(stderr, "barrier: --depth at most 28\n"); exit(2); }
}


static void die(const char *what) {
    fprintf(stderr, "barrier: %s\n", what);
    exit(1);
}

/* ---- the stores under test ---------------------------------------------- */

static inline void st_plain(wbgc_p *p, void *slot, void *val) { (void)p; *(void **)slot = val; }
static inline void st_write(wbgc_p *p, void *slot, void *val) { wbgc_write(p, slot, val); }
static inline void st_c(wbgc_p *p, void *slot, void *val) { wbgc__arch_write(p, slot, val); }
/* The eager barrier, as wbgc.h's WBGC_UNBUFFERED build has it. */
static inline void st_unbuf(wbgc_p *p, void *slot, void *val) {
    if (__builtin_expect(((wbgc__pfast *)(void *)p)->wb_on != 0, 0))
        wbgc__write_unbuffered(p, slot, val);
    *(void **)slot = val;
}

static int wb_on(wbgc_p *p) { return ((const wbgc__pfast *)(const void *)p)->wb_on != 0; }

/* V_PLAIN_GC: plain stores on the collected tree itself, marking off only:
   to show that the noscan twin the plain stores use is as fast. */
enum { V_PLAIN, V_WRITE, V_C, V_UNBUF, V_WRITE2, V_PLAIN_GC, NVARIANTS };
static const char *const vname[NVARIANTS] = { "plain", "write", "c", "unbuf", "write2", "plain-gc" };
static const char *const vlabel[NVARIANTS] = {
    "plain store", WBGC__HAVE_AMD64 ? "wbgc_write (asm)" : "wbgc_write (= portable here)",
    "portable C", "unbuffered", "wbgc_write2", "plain, on the collected tree",
};

/* ---- the data: everything hangs off one registered root ----------------- */

typedef struct node { struct node *l, *r; } node;
typedef struct cell { void *car; struct cell *cdr; } cell;

static struct {
    node  *big, *small;   /* the two trees the barriers run on                */
    node  *big_copy, *small_copy; /* their twins for plain stores (see below) */
    void  *big_obj, *small_obj;   /* the noscan objects holding the twins     */
    void **o;             /* 128 words: o[0..63] written, o[64..127] values   */
    void **pool;          /* NPOOL small objects: the values stored           */
    cell **cells;         /* NCELLS cons cells                                */
    void **sites;         /* 32 fields for the 32-site function               */
} roots;

static uint64_t live_bytes;  /* everything allocated, all of it live throughout */

static void *alloc(wbgc_p *p, size_t size) {
    void *o = wbgc_alloc(p, size);
    if (!o) die("wbgc_alloc returned NULL");
    live_bytes += size;
    return o;
}

/* make_tree builds the complete tree of the given depth children first, as
   Go's mkTree does. Nothing collects meanwhile (gc_percent = -1). */
static node *make_tree(wbgc_p *p, int depth) {
    if (depth == 0) return NULL;
    node *l = make_tree(p, depth - 1), *r = make_tree(p, depth - 1);
    node *n = alloc(p, sizeof *n);
    wbgc_write(p, &n->l, l);
    wbgc_write(p, &n->r, r);
    return n;
}

/* tree_hash: the in-order sequence of node addresses, hashed in order; the
   right-first walk of a tree gives the left-first walk of its mirror. */
static uint64_t tree_hash(const node *n, int right_first, uint64_t h) {
    if (!n) return h;
    h = tree_hash(right_first ? n->r : n->l, right_first, h);
    h = (h ^ (uint64_t)(uintptr_t)n) * 0x100000001b3u;
    return tree_hash(right_first ? n->l : n->r, right_first, h);
}

/* make_tree_in builds the same tree inside one noscan object, nodes in the
   same order (so with the same layout) as make_tree. Plain stores reverse
   this twin with marking on: a swap without barrier can tear the marker's
   read of a node (it reads l, the mutator swaps, it reads r: it saw the same
   child twice and missed the other), so plain stores into the collected
   tree would get live nodes freed (a trial run doing so lost nodes every
   time). Inside a noscan object nothing is ever scanned, and every node
   lives as long as the object. */
static node *make_tree_in(node *arr, long *next, int depth) {
    if (depth == 0) return NULL;
    node *l = make_tree_in(arr, next, depth - 1), *r = make_tree_in(arr, next, depth - 1);
    node *n = &arr[(*next)++];
    n->l = l;
    n->r = r;
    return n;
}

static long count_nodes(int depth) { return (1L << depth) - 1; }

/* make_twin builds the twin of tree t. wbgc hands out 16-byte objects at
   consecutive addresses, so t's nodes lie in the same order as the twin's;
   the twin also starts at the same offset within an 8 KiB page pair as t's
   first node (its leftmost leaf), so that the two share their layout in
   cache lines and pages too. */
static void make_twin(wbgc_p *p, const node *t, int depth, node **copy, void **obj) {
    enum { PHASE = 8192 };
    long next = 0;
    size_t bytes = (size_t)count_nodes(depth) * sizeof(node) + 2 * PHASE;
    char *raw = wbgc_alloc_noscan(p, bytes);
    if (!raw) die("wbgc_alloc_noscan returned NULL");
    live_bytes += bytes;
    wbgc_write(p, obj, raw);
    while (t->l) t = t->l;
    uintptr_t base = ((uintptr_t)raw + PHASE - 1) & ~(uintptr_t)(PHASE - 1);
    node *arr = (node *)(base + ((uintptr_t)t & (PHASE - 1)));
    wbgc_write(p, copy, make_tree_in(arr, &next, depth));
}

static void setup(wbgc_p *p, int big_depth) {
    roots.o = alloc(p, 128 * sizeof(void *));
    roots.pool = alloc(p, NPOOL * sizeof(void *));
    for (int i = 0; i < NPOOL; i++) wbgc_write(p, &roots.pool[i], alloc(p, 32));
    for (int i = 0; i < 64; i++) {
        wbgc_write(p, &roots.o[64 + i], roots.pool[(i * 7) % NPOOL]);
        wbgc_write(p, &roots.o[i], roots.pool[i % NPOOL]);
    }
    roots.sites = alloc(p, 32 * sizeof(void *));
    roots.cells = alloc(p, NCELLS * sizeof(cell *));
    for (int i = 0; i < NCELLS; i++) wbgc_write(p, &roots.cells[i], alloc(p, sizeof(cell)));
    node *small = make_tree(p, SMALL_DEPTH);
    wbgc_write(p, &roots.small, small);
    make_twin(p, small, SMALL_DEPTH, &roots.small_copy, &roots.small_obj);
    if (big_depth) {
        node *big = make_tree(p, big_depth);
        wbgc_write(p, &roots.big, big);
        make_twin(p, big, big_depth, &roots.big_copy, &roots.big_obj);
    }
}

/* ---- the loops ----------------------------------------------------------- */

/* A kernel runs n iterations of its loop and returns the stores it did. */
typedef uint64_t (*kernel_fn)(wbgc_p *p, void *ctx, long n);

/* The tree reversal: Go's loop, step for step. The walker's stack is static
   memory the collector does not see, and is written without barriers: no
   harm, since every node stays reachable from the tree all along (a step
   only swaps two children). */
typedef struct {
    node    *root;
    node    *stack[64];
    int      tos;        /* -1: a pass is complete                          */
    long     nodes;      /* steps per whole pass                            */
    long     passes;     /* whole passes done                               */
    uint64_t hash_lf, hash_rf;  /* tree_hash of the tree as built, and of its mirror */
    const char *name;
} walker;

#define DEFINE_REVERSE(NAME, STORE, PAIRED)                             \
    static NOINLINE uint64_t NAME(wbgc_p *p, void *ctx, long n) {       \
        walker *w = ctx;                                                \
        node **stack = w->stack, *root = w->root;                       \
        int tos = w->tos;                                               \
        uint64_t stores = 0;                                            \
        for (; n > 0; n--) {                                            \
            if (tos < 0) { stack[0] = root; tos = 0; }                  \
            node *x = stack[tos], *l = x->l;                            \
            if (!l) { tos--; continue; }                                \
            node *r = x->r;                                             \
            if (PAIRED) {                                               \
                wbgc_write2(p, &x->l, r, &x->r, l);                     \
            } else {                                                    \
                STORE(p, &x->l, r);                                     \
                STORE(p, &x->r, l);                                     \
            }                                                           \
            stack[tos] = r;                                             \
            stack[tos + 1] = l;                                         \
            tos++;                                                      \
            stores += 2;                                                \
        }                                                               \
        w->tos = tos;                                                   \
        return stores;                                                  \
    }
DEFINE_REVERSE(rev_plain, st_plain, 0)
DEFINE_REVERSE(rev_write, st_write, 0)
DEFINE_REVERSE(rev_c, st_c, 0)
DEFINE_REVERSE(rev_unbuf, st_unbuf, 0)
DEFINE_REVERSE(rev_write2, st_write, 1)  /* one wbgc_write2 for the swap's two stores */

/* The 32-site function and the register-pressure loops, one set per store. */
#define SITES_STORE(p, slot, val) st_plain(p, slot, val)
#define SITES_FN(name) name##_plain
#include "barrier_sites.inc"
#define SITES_STORE(p, slot, val) st_write(p, slot, val)
#define SITES_FN(name) name##_write
#include "barrier_sites.inc"
#define SITES_STORE(p, slot, val) st_c(p, slot, val)
#define SITES_FN(name) name##_c
#include "barrier_sites.inc"

typedef struct { void **o, **vals; long k; } sites_ctx;

#define DEFINE_SITES(NAME, FN)                                          \
    static NOINLINE uint64_t NAME(wbgc_p *p, void *ctx, long n) {       \
        sites_ctx *s = ctx;                                             \
        for (long i = 0; i < n; i++) FN(p, s->o, s->vals[s->k++ & (NPOOL - 1)]); \
        return 32 * (uint64_t)n;                                        \
    }
DEFINE_SITES(sites_plain, sites32_plain)
DEFINE_SITES(sites_write, sites32_write)
DEFINE_SITES(sites_c, sites32_c)

typedef struct { void **o; long done; uint64_t check; } regp_ctx;

#define DEFINE_REGP(NAME, FN)                                           \
    static NOINLINE uint64_t NAME(wbgc_p *p, void *ctx, long n) {       \
        regp_ctx *r = ctx;                                              \
        r->check = r->check * 31 + FN(p, r->o, n, (uint64_t)r->done);   \
        r->done += n;                                                   \
        return 2 * (uint64_t)n;                                         \
    }
DEFINE_REGP(regp8_plain_k, regp8_plain)
DEFINE_REGP(regp8_write_k, regp8_write)
DEFINE_REGP(regp8_c_k, regp8_c)
DEFINE_REGP(regp12_plain_k, regp12_plain)
DEFINE_REGP(regp12_write_k, regp12_write)
DEFINE_REGP(regp12_c_k, regp12_c)

/* cons: cell k gets car = a pool value, cdr = the cell initialised before. */
typedef struct { cell **cells; void **cars; long k; cell *prev; } cons_ctx;

#define PAIR_PLAIN(p, c, a, d)  (st_plain(p, &(c)->car, a), st_plain(p, &(c)->cdr, d))
#define PAIR_WRITE2(p, c, a, d) wbgc_write2(p, &(c)->car, a, &(c)->cdr, d)
#define PAIR_WRITE(p, c, a, d)  (st_write(p, &(c)->car, a), st_write(p, &(c)->cdr, d))
#define PAIR_C(p, c, a, d)      (st_c(p, &(c)->car, a), st_c(p, &(c)->cdr, d))

#define DEFINE_CONS(NAME, PAIR)                                         \
    static NOINLINE uint64_t NAME(wbgc_p *p, void *ctx, long n) {       \
        cons_ctx *s = ctx;                                              \
        cell **cells = s->cells, *prev = s->prev;                       \
        void **cars = s->cars;                                          \
        long k = s->k;                                                  \
        for (long i = 0; i < n; i++, k++) {                             \
            cell *c = cells[k & (NCELLS - 1)];                          \
            PAIR(p, c, cars[k & (NPOOL - 1)], prev);                    \
            prev = c;                                                   \
        }                                                               \
        s->k = k;                                                       \
        s->prev = prev;                                                 \
        return 2 * (uint64_t)n;                                         \
    }
DEFINE_CONS(cons_plain, PAIR_PLAIN)
DEFINE_CONS(cons_write2, PAIR_WRITE2)
DEFINE_CONS(cons_write, PAIR_WRITE)
DEFINE_CONS(cons_c, PAIR_C)

/* ---- families: a loop, its variants, its context ------------------------ */

enum { F_BIG, F_SMALL, F_SITES, F_REGP8, F_REGP12, F_CONS, NFAMILIES };

typedef struct {
    const char *name, *key;             /* key: for --loops and --callgrind   */
    kernel_fn   k[NVARIANTS];           /* NULL: not run                       */
    void       *ctx;
    void       *ctx_plain;              /* V_PLAIN's, when not ctx             */
    long        iters;                  /* per run                             */
    long        batch;                  /* iterations between safepoints       */
    double      stores_per_iter;        /* nominal, for ns per unit            */
} family;

static walker big_w, small_w, big_copy_w, small_copy_w;
static sites_ctx sites_s;
static regp_ctx regp8_s, regp12_s;
static cons_ctx cons_s;

static family fam[NFAMILIES] = {
    { "big tree (Go's loop)", "big",
      { rev_plain, rev_write, rev_c, rev_unbuf, rev_write2, rev_plain }, &big_w, &big_copy_w, 0, BATCH, 1 },
    { "tree 16 KiB (L1)", "tree",
      { rev_plain, rev_write, rev_c, rev_unbuf, rev_write2, rev_plain }, &small_w, &small_copy_w, 0, BATCH, 1 },
    { "32 sites in a row", "sites32",
      { sites_plain, sites_write, sites_c, NULL, NULL }, &sites_s, NULL, 0, BATCH / 32, 32 },
    { "regp8: 8 live accumulators", "regp8",
      { regp8_plain_k, regp8_write_k, regp8_c_k, NULL, NULL }, &regp8_s, NULL, 0, BATCH / 2, 2 },
    { "regp12: 12 live accumulators", "regp12",
      { regp12_plain_k, regp12_write_k, regp12_c_k, NULL, NULL }, &regp12_s, NULL, 0, BATCH / 2, 2 },
    { "cons cells (two fields)", "cons",
      { cons_plain, cons_write, cons_c, NULL, cons_write2 }, &cons_s, NULL, 0, BATCH / 2, 2 },
};

static walker new_walker(const char *name, node *root, int depth) {
    return (walker){ .root = root, .tos = -1, .nodes = count_nodes(depth), .name = name,
                     .hash_lf = tree_hash(root, 0, 0), .hash_rf = tree_hash(root, 1, 0) };
}

static void init_families(int big_depth) {
    big_w = new_walker("big", roots.big, big_depth);
    big_copy_w = new_walker("big twin", roots.big_copy, big_depth);
    small_w = new_walker("small", roots.small, SMALL_DEPTH);
    small_copy_w = new_walker("small twin", roots.small_copy, SMALL_DEPTH);
    sites_s = (sites_ctx){ roots.sites, roots.pool, 0 };
    regp8_s = (regp_ctx){ roots.o, 0, 0 };
    regp12_s = (regp_ctx){ roots.o, 0, 0 };
    cons_s = (cons_ctx){ roots.cells, roots.pool, 0, roots.cells[NCELLS - 1] };
    static char big_name[64];
    snprintf(big_name, sizeof big_name, "tree %.0f MiB (Go's loop)",
             (double)big_w.nodes * sizeof(node) / 1048576.0);
    fam[F_BIG].name = big_name;
    /* Whole passes per run for the trees, so every run starts at the root. */
    fam[F_BIG].iters = opt.big_passes * big_w.nodes;
    long small_passes = opt.stores / small_w.nodes;
    fam[F_SMALL].iters = (small_passes > 0 ? small_passes : 1) * small_w.nodes;
    for (int f = F_SITES; f < NFAMILIES; f++) {
        long b = fam[f].batch;
        long it = (long)(opt.stores / fam[f].stores_per_iter);
        fam[f].iters = (it + b - 1) / b * b;
    }
}

/* ---- one run ------------------------------------------------------------- */

typedef struct {
    double   on_ns, off_ns;        /* time in the batches run with marking on, off */
    uint64_t on_stores, off_stores;
    int      on_batches, off_batches;
    double   wall_ns, cpu_ns;      /* the whole run; cpu: this thread's        */
    double   safepoint_ns;         /* wall time inside wbgc_safepoint          */
    uint64_t flushes, cycles;
    uint64_t full_flushes;        /* of those, through the full flush       */
} run_result;

static double thread_cpu_ns(void) { return now_ns(CLOCK_THREAD_CPUTIME_ID); }

/* run_kernel runs k for iters iterations in batches, a safepoint before
   each; wb_on, read after the safepoint, holds for the whole batch. Each
   batch is timed on its own and counted as marking on or off. */
static run_result run_kernel(wbgc_heap *h, wbgc_p *p, kernel_fn k, void *ctx, long iters, long batch) {
    run_result r;
    memset(&r, 0, sizeof r);
    wbgc_stats s0, s1;
    wbgc_get_stats(h, &s0);
    uint64_t full0 = p->wb_full_flushes;
    double w0 = now_ns(CLOCK_MONOTONIC), c0 = thread_cpu_ns(), t = w0;
    for (long done = 0; done < iters; done += batch) {
        long n = iters - done < batch ? iters - done : batch;
        wbgc_safepoint(p);
        int on = wb_on(p);
        double t0 = now_ns(CLOCK_MONOTONIC);
        r.safepoint_ns += t0 - t;
        uint64_t st = k(p, ctx, n);
        t = now_ns(CLOCK_MONOTONIC);
        if (on) { r.on_ns += t - t0; r.on_stores += st; r.on_batches++; }
        else    { r.off_ns += t - t0; r.off_stores += st; r.off_batches++; }
    }
    wbgc_safepoint(p);
    r.wall_ns = now_ns(CLOCK_MONOTONIC) - w0;
    r.safepoint_ns += r.wall_ns - (t - w0);
    r.cpu_ns = thread_cpu_ns() - c0;
    wbgc_get_stats(h, &s1);
    r.flushes = s1.wb_flushes - s0.wb_flushes;
    r.full_flushes = p->wb_full_flushes - full0;
    r.cycles = s1.cycles - s0.cycles;
    return r;
}

static double m_on(const run_result *r);
static double m_off(const run_result *r);
static double m_whole(const run_result *r);
static double m_desched(const run_result *r);

/* ---- checks --------------------------------------------------------------- */

static void check_trees(const char *when) {
    walker *t[4] = { &big_w, &big_copy_w, &small_w, &small_copy_w };
    for (int i = 0; i < 4; i++) {
        if (!t[i]->root) continue;
        if (t[i]->hash_lf == t[i]->hash_rf) die("tree hashes do not tell a tree from its mirror");
        uint64_t want = t[i]->passes % 2 ? t[i]->hash_rf : t[i]->hash_lf;
        if (t[i]->tos != -1 || tree_hash(t[i]->root, 0, 0) != want) {
            fprintf(stderr, "barrier: %s: the %s tree is not what %ld reversals make of it\n",
                    when, t[i]->name, t[i]->passes);
            exit(1);
        }
    }
}

static void check_after_run(int f) {
    if (f == F_SITES) {
        void *last = sites_s.vals[(sites_s.k - 1) & (NPOOL - 1)];
        for (int i = 0; i < 32; i++)
            if (sites_s.o[i] != last) die("32 sites: a field does not hold the last value stored");
    } else if (f == F_CONS) {
        for (long k = cons_s.k - NCELLS; k < cons_s.k; k++) {
            cell *c = roots.cells[k & (NCELLS - 1)];
            if (c->car != cons_s.cars[k & (NPOOL - 1)] || c->cdr != roots.cells[(k - 1) & (NCELLS - 1)])
                die("cons: a cell does not hold what was stored in it");
        }
    }
}

/* ---- the phases ------------------------------------------------------------ */

static volatile int stop_collector;
static wbgc_heap *heap;
static uint64_t collector_cycles;

static void *collector_main(void *arg) {
    (void)arg;
    wbgc_p *cp = wbgc_attach(heap);
    if (!cp) die("collector: wbgc_attach failed");
    while (!__atomic_load_n(&stop_collector, __ATOMIC_RELAXED)) {
        wbgc_collect(cp);
        __atomic_fetch_add(&collector_cycles, 1, __ATOMIC_RELAXED);
    }
    wbgc_detach(cp);
    return NULL;
}

/* res[phase][family][variant][round] */
static run_result *res[2][NFAMILIES][NVARIANTS];

/* in_list: is word in the comma-separated list (or is there no list)? */
static int in_list(const char *list, const char *word) {
    if (!list) return 1;
    size_t n = strlen(word);
    for (const char *s = list; *s; s += strcspn(s, ",") + (s[strcspn(s, ",")] != 0))
        if (strcspn(s, ",") == n && !strncmp(s, word, n)) return 1;
    return 0;
}

static void run_phase(wbgc_p *p, int on) {
    for (int f = 0; f < NFAMILIES; f++) {
        if ((f == F_BIG && !roots.big) || !in_list(opt.loops, fam[f].key)) continue;
        for (int v = 0; v < NVARIANTS; v++)
            if (fam[f].k[v] && !(v == V_PLAIN_GC && on) && in_list(opt.variants, vname[v]))
                res[on][f][v] = calloc((size_t)opt.rounds, sizeof(run_result));
        uint64_t check = 0;   /* the regp checksum: the same for every run */
        int have_check = 0;
        for (int r = 0; r < opt.rounds; r++) {
            for (int v = 0; v < NVARIANTS; v++) {
                if (!res[on][f][v]) continue;
                void *ctx = v == V_PLAIN && fam[f].ctx_plain ? fam[f].ctx_plain : fam[f].ctx;
                regp_ctx *rc = f == F_REGP8 ? &regp8_s : f == F_REGP12 ? &regp12_s : NULL;
                /* Warm-up, untimed: a whole reversal of the tree, so that
                   every variant starts from the same cache state whatever
                   ran before it; one batch of the others. */
                walker *w = f == F_BIG || f == F_SMALL ? ctx : NULL;
                long warm = !w ? fam[f].batch : w->nodes;
                if (warm) run_kernel(heap, p, fam[f].k[v], ctx, warm, fam[f].batch);
                if (w) w->passes += warm / w->nodes;
                if (rc) { rc->done = 0; rc->check = 0; }
                res[on][f][v][r] = run_kernel(heap, p, fam[f].k[v], ctx, fam[f].iters, fam[f].batch);
                if (opt.verbose) {
                    run_result *x = &res[on][f][v][r];
                    fprintf(stderr, "%s | %s | round %d: on %.2f ns/store (%d batches), off %.2f (%d), "
                            "whole %.2f, cpu/wall %.2f, in safepoints %.1f%%, descheduled %.1f%%, "
                            "%llu cycles\n", fam[f].key, vname[v], r, m_on(x), x->on_batches,
                            m_off(x), x->off_batches, m_whole(x), x->cpu_ns / x->wall_ns,
                            100 * x->safepoint_ns / x->wall_ns, 100 * m_desched(x),
                            (unsigned long long)x->cycles);
                }
                if (f == F_BIG || f == F_SMALL) ((walker *)ctx)->passes += fam[f].iters / ((walker *)ctx)->nodes;
                if (rc && have_check && rc->check != check)
                    die("regp: the variants computed different checksums");
                if (rc && !have_check) { check = rc->check; have_check = 1; }
                check_after_run(f);
            }
        }
    }
}

/* ---- the report ------------------------------------------------------------ */

typedef double (*metric_fn)(const run_result *r);
static double m_on(const run_result *r)    { return r->on_stores ? r->on_ns / (double)r->on_stores : -1; }
static double m_off(const run_result *r)   { return r->off_stores ? r->off_ns / (double)r->off_stores : -1; }
static double m_whole(const run_result *r) { return r->wall_ns / (double)(r->on_stores + r->off_stores); }
static double m_onfrac(const run_result *r) {
    return (double)r->on_stores / (double)(r->on_stores + r->off_stores);
}
/* m_desched: the share of the run the thread was off its CPU outside
   safepoints (where it may wait for a pause on purpose): descheduled. */
static double m_desched(const run_result *r) {
    double d = r->wall_ns - r->cpu_ns - r->safepoint_ns;
    return d > 0 ? d / r->wall_ns : 0;
}

/* med: the median of a metric over the rounds (rounds where it is undefined,
   e.g. no on-batch at all, are left out); -1 when there is none. */
static double med(int on, int f, int v, metric_fn m) {
    run_result *rr = res[on][f][v];
    if (!rr) return -1;
    double x[256];
    int n = 0;
    for (int r = 0; r < opt.rounds && n < 256; r++) {
        double y = m(&rr[r]);
        if (y >= 0) x[n++] = y;
    }
    return n ? median(x, n) : -1;
}

/* med_ratio: the median over rounds of metric(a) / metric(b), each ratio
   taken within one round. */
static double med_ratio(int on, int f, int a, int b, metric_fn m) {
    run_result *ra = res[on][f][a], *rb = res[on][f][b];
    if (!ra || !rb) return -1;
    double x[256];
    int n = 0;
    for (int r = 0; r < opt.rounds && n < 256; r++) {
        double ya = m(&ra[r]), yb = m(&rb[r]);
        if (ya >= 0 && yb > 0) x[n++] = ya / yb;
    }
    return n ? median(x, n) : -1;
}

static void cell_ns(double x) { if (x >= 0) printf(" %.2f |", x); else printf(" - |"); }
static void cell_ratio(double x) { if (x >= 0) printf(" %.2f |", x); else printf(" - |"); }

/* The per-store table of one phase. */
static void print_phase_table(int on) {
    metric_fn m = on ? m_on : m_off;
    printf("| loop | %s | %s | %s | %s | %s | write / plain | portable / plain | write / portable "
           "| unbuffered / write |\n",
           vlabel[V_PLAIN], vlabel[V_WRITE], vlabel[V_C], vlabel[V_UNBUF], vlabel[V_WRITE2]);
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int f = 0; f < NFAMILIES; f++) {
        if (!res[on][f][V_PLAIN]) continue;
        printf("| %s |", fam[f].name);
        for (int v = 0; v < V_PLAIN_GC; v++) cell_ns(med(on, f, v, m));
        cell_ratio(med_ratio(on, f, V_WRITE, V_PLAIN, m));
        cell_ratio(med_ratio(on, f, V_C, V_PLAIN, m));
        cell_ratio(med_ratio(on, f, V_WRITE, V_C, m));
        cell_ratio(med_ratio(on, f, V_UNBUF, V_WRITE, m));
        printf("\n");
    }
    printf("\n");
}

/* print_desched says how much of the runs the measured thread lost to the
   OS scheduler (another process on this CPU): the runs' medians absorb a
   few such runs, not many. */
static void print_desched(int on) {
    double worst = 0, sum = 0;
    int n = 0;
    for (int f = 0; f < NFAMILIES; f++)
        for (int v = 0; v < NVARIANTS; v++) {
            if (!res[on][f][v]) continue;
            double d = med(on, f, v, m_desched);
            sum += d; n++;
            if (d > worst) worst = d;
        }
    printf("The measured thread was descheduled for %.2f%% of a run on average, %.2f%% at "
           "most (medians over rounds).\n\n", n ? 100 * sum / n : 0.0, 100 * worst);
}

/* The marking-on details: on-fraction, whole-run figures, flushes, cycles. */
static void print_on_details(void) {
    printf("| loop | variant | ns/store marking on | ns/store marking off (same runs) "
           "| whole run ns/store | stores with marking on | flushes per 1000 stores on "
           "| full flushes | cycles per run | thread cpu / wall | descheduled |\n");
    printf("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int f = 0; f < NFAMILIES; f++) {
        for (int v = 0; v < NVARIANTS; v++) {
            run_result *rr = res[1][f][v];
            if (!rr) continue;
            double fl[256], ff[256], cy[256], cw[256];
            int n = 0;
            for (int r = 0; r < opt.rounds && n < 256; r++, n++) {
                fl[n] = rr[r].on_stores ? 1000.0 * (double)rr[r].flushes / (double)rr[r].on_stores : 0;
                ff[n] = rr[r].flushes ? 100.0 * (double)rr[r].full_flushes / (double)rr[r].flushes : 0;
                cy[n] = (double)rr[r].cycles;
                cw[n] = rr[r].cpu_ns / rr[r].wall_ns;
            }
            printf("| %s | %s |", fam[f].name, vlabel[v]);
            cell_ns(med(1, f, v, m_on));
            cell_ns(med(1, f, v, m_off));
            cell_ns(med(1, f, v, m_whole));
            printf(" %.1f%% | %.2f | %.1f%% | %.1f | %.2f | %.1f%% |\n", 100 * med(1, f, v, m_onfrac),
                   median(fl, n), median(ff, n), median(cy, n), median(cw, n), 100 * med(1, f, v, m_desched));
        }
    }
    printf("\nns/store marking on: the on-batches only, buffer flushes included. whole run: "
           "wall time over all stores, pauses and marking-off stretches included. flushes: "
           "the heap's wb_flushes over the run, per 1000 stores made with marking on "
           "(one per %d barriers expected for the buffered barrier); full flushes: the share "
           "of them that went through wbgc__wb_flush (on the amd64 path, those that saved "
           "the vector state: the general-register flush could not finish). thread cpu / wall: "
           "below 1 when the measured thread waited in safepoints (pauses) or was "
           "descheduled. descheduled: the share of the run the thread was off its CPU "
           "outside safepoints.\n\n", WBGC_WBBUF_ENTRIES);
}

static const char *verdict(int ok) { return ok ? "PASS" : "FAIL"; }

/* print_summary: the five numbers the issue asks for, against its targets.
   Needs every loop and variant (not printed after --loops or --variants). */
static void print_summary(void) {
    int have_off = res[0][F_SMALL][V_PLAIN] != NULL, have_on = res[1][F_SMALL][V_PLAIN] != NULL;
    printf("## Summary against the issue's targets\n\n");
    printf("Medians of per-round ratios; instructions per store come from "
           "examples/bench/barrier_callgrind.sh, code bytes and spills from "
           "examples/bench/barrier_size.sh.\n\n");

    if (have_off) {
        printf("**1. Barrier with marking off vs plain stores** (target: within 10%% in ns per store)\n\n");
        for (int f = 0; f < NFAMILIES; f++) {
            if (!res[0][f][V_PLAIN]) continue;
            double a = med_ratio(0, f, V_WRITE, V_PLAIN, m_off), c = med_ratio(0, f, V_C, V_PLAIN, m_off);
            printf("- %s: wbgc_write / plain = %.2f (%s), portable / plain = %.2f (%s); "
                   "%.2f vs %.2f ns per store\n", fam[f].name, a, verdict(a <= 1.10), c,
                   verdict(c <= 1.10), med(0, f, V_WRITE, m_off), med(0, f, V_PLAIN, m_off));
        }
        printf("\n");
    }

    if (have_on && res[1][F_BIG][V_PLAIN]) {
        double fr = med(1, F_BIG, V_WRITE, m_onfrac);
        double ub = med_ratio(1, F_BIG, V_UNBUF, V_WRITE, m_on);
        double uc = med_ratio(1, F_BIG, V_UNBUF, V_C, m_on);
        double ubw = med_ratio(1, F_BIG, V_UNBUF, V_WRITE, m_whole);
        printf("**2. Marking on, the %s: buffered vs unbuffered** (target: buffered >= 4x "
               "cheaper, aim 5x)\n\n", fam[F_BIG].name);
        printf("- marking was on for %.1f%% of the buffered barrier's stores%s\n", 100 * fr,
               fr < 0.5 ? " -- TOO LITTLE: the on-figures rest on few batches" : "");
        printf("- ns per store with marking on, flushes included: unbuffered %.2f, buffered "
               "%.2f (asm), %.2f (portable), plain stores %.2f (on the twin, which the "
               "marker does not read)\n",
               med(1, F_BIG, V_UNBUF, m_on), med(1, F_BIG, V_WRITE, m_on),
               med(1, F_BIG, V_C, m_on), med(1, F_BIG, V_PLAIN, m_on));
        printf("- unbuffered / buffered: %.2fx with wbgc_write (%s for 4x, %s for 5x), %.2fx "
               "with the portable barrier; whole-run ratio %.2fx\n", ub, verdict(ub >= 4),
               verdict(ub >= 5), uc, ubw);
        printf("- barrier cost over plain stores, marking on: unbuffered %+.2f ns, buffered "
               "%+.2f ns per store (%.1fx)\n",
               med(1, F_BIG, V_UNBUF, m_on) - med(1, F_BIG, V_PLAIN, m_on),
               med(1, F_BIG, V_WRITE, m_on) - med(1, F_BIG, V_PLAIN, m_on),
               (med(1, F_BIG, V_UNBUF, m_on) - med(1, F_BIG, V_PLAIN, m_on)) /
                   (med(1, F_BIG, V_WRITE, m_on) - med(1, F_BIG, V_PLAIN, m_on)));
        printf("- Go's figure is ns per op with two ops per step, pops included, i.e. about "
               "half of ns per store: in Go's units unbuffered %.1f, buffered %.1f "
               "(Go: 73.5 -> 19.2)\n\n",
               med(1, F_BIG, V_UNBUF, m_on) / 2, med(1, F_BIG, V_WRITE, m_on) / 2);
    }

    printf("**3. asm (wbgc_write) vs portable: no slower** (write / portable <= 1.00; "
           "1.00-1.03 is within this machine's noise)\n\n");
    for (int on = 0; on < 2; on++) {
        for (int f = 0; f < NFAMILIES; f++) {
            if (!res[on][f][V_WRITE] || !res[on][f][V_C]) continue;
            metric_fn m = on ? m_on : m_off;
            double x = med_ratio(on, f, V_WRITE, V_C, m);
            printf("- marking %s, %s: %.2f vs %.2f ns per store, ratio %.3f (%s)\n", on ? "on" : "off",
                   fam[f].name, med(on, f, V_WRITE, m), med(on, f, V_C, m), x,
                   x <= 1.00 ? "PASS" : x <= 1.03 ? "PASS within noise" : "FAIL");
        }
    }
    printf("\n");

    printf("**4. Register pressure: ns per iteration (two stores)**\n\n");
    for (int f = F_REGP8; f <= F_REGP12; f++) {
        for (int on = 0; on < 2; on++) {
            if (!res[on][f][V_WRITE]) continue;
            metric_fn m = on ? m_on : m_off;
            printf("- %s, marking %s: plain %.2f, wbgc_write %.2f, portable %.2f; "
                   "write / portable %.3f\n", fam[f].name, on ? "on" : "off",
                   2 * med(on, f, V_PLAIN, m), 2 * med(on, f, V_WRITE, m), 2 * med(on, f, V_C, m),
                   med_ratio(on, f, V_WRITE, V_C, m));
        }
    }
    printf("\n");

    printf("**5. Cons cells: wbgc_write2 vs two stores, ns per cell**\n\n");
    for (int on = 0; on < 2; on++) {
        if (!res[on][F_CONS][V_WRITE2]) continue;
        metric_fn m = on ? m_on : m_off;
        double x = med_ratio(on, F_CONS, V_WRITE2, V_WRITE, m);
        printf("- marking %s: wbgc_write2 %.2f, 2x wbgc_write %.2f, 2x portable %.2f, 2x plain %.2f; "
               "write2 / 2x wbgc_write %.3f (%s), write2 / 2x portable %.3f\n", on ? "on" : "off",
               2 * med(on, F_CONS, V_WRITE2, m), 2 * med(on, F_CONS, V_WRITE, m),
               2 * med(on, F_CONS, V_C, m), 2 * med(on, F_CONS, V_PLAIN, m), x,
               x <= 1.00 ? "write2 faster" : x <= 1.03 ? "even, within noise" : "write2 SLOWER",
               med_ratio(on, F_CONS, V_WRITE2, V_C, m));
    }
    printf("\n");
}

/* ---- --callgrind: one loop, nothing else ------------------------------------- */

static int callgrind_main(void) {
    wbgc_config cfg;
    wbgc_config_default(&cfg);
    cfg.gc_percent = -1;
    cfg.mark_workers = 0;
    heap = wbgc_heap_new(&cfg);
    if (!heap) die("wbgc_heap_new failed");
    wbgc_p *p = wbgc_attach(heap);
    if (!p) die("wbgc_attach failed");
    if (wbgc_add_roots(heap, &roots, sizeof roots)) die("wbgc_add_roots failed");
    setup(p, 0);
    init_families(SMALL_DEPTH);
    char fname[64];
    const char *dash = strrchr(opt.cg_loop, '-');
    if (!dash || (size_t)(dash - opt.cg_loop) >= sizeof fname) { usage(stderr); return 2; }
    memcpy(fname, opt.cg_loop, (size_t)(dash - opt.cg_loop));
    fname[dash - opt.cg_loop] = 0;
    for (int f = 0; f < NFAMILIES; f++) {
        if (f == F_BIG || strcmp(fam[f].key, fname)) continue;
        for (int v = 0; v < NVARIANTS; v++) {
            if (strcmp(vname[v], dash + 1) || !fam[f].k[v]) continue;
            uint64_t stores = fam[f].k[v](p, fam[f].ctx, opt.cg_n);
            printf("loop=%s iterations=%ld stores=%llu\n", opt.cg_loop, opt.cg_n,
                   (unsigned long long)stores);
            wbgc_remove_roots(heap, &roots);
            wbgc_detach(p);
            wbgc_heap_free(heap);
            return 0;
        }
    }
    fprintf(stderr, "barrier: --callgrind: no loop '%s'\n", opt.cg_loop);
    return 2;
}

/* ---- main ------------------------------------------------------------------ */

int main(int argc, char **argv) {
    parse_args(argc, argv);
    if (opt.cg_loop) return callgrind_main();

    printf("# wbgc write-barrier benchmark%s\n\n", opt.quick ? " (short run)" : "");
    double t_start = now_ns(CLOCK_MONOTONIC);
    bench_print_machine();
    printf("- load average at start: %s (other work on the machine skews every number)\n", loadavg());
    bench_print_env();

    wbgc_config cfg;
    wbgc_config_default(&cfg);
    cfg.gc_percent = -1;           /* only the collecting thread's cycles run */
    cfg.mark_workers = opt.workers;
    heap = wbgc_heap_new(&cfg);
    if (!heap) die("wbgc_heap_new failed");
    wbgc_p *p = wbgc_attach(heap);
    if (!p) die("wbgc_attach failed");
    if (wbgc_add_roots(heap, &roots, sizeof roots)) die("wbgc_add_roots failed");

    double b0 = now_ns(CLOCK_MONOTONIC);
    setup(p, opt.depth);
    double build_s = (now_ns(CLOCK_MONOTONIC) - b0) / 1e9;
    init_families(opt.depth);
    check_trees("as built");
    wbgc_collect(p);               /* as Go's benchmark does before timing */

    long big_nodes = count_nodes(opt.depth);
    printf("## Setup\n\n");
    printf("- big tree: depth %d, %ld nodes of 16 bytes = %.1f MiB, built in %.2f s; "
           "%ld stores per reversal; %ld reversals per run\n", opt.depth, big_nodes,
           big_nodes * 16 / 1048576.0, build_s, big_nodes - 1, opt.big_passes);
    printf("- small tree: depth %d, %ld nodes = %.1f KiB; other loops: about %ld stores per run\n",
           SMALL_DEPTH, count_nodes(SMALL_DEPTH), count_nodes(SMALL_DEPTH) * 16 / 1024.0, opt.stores);
    printf("- %d rounds, every variant once per round; safepoint every %d stores or so; "
           "barrier buffer %d entries\n", opt.rounds, BATCH, WBGC_WBBUF_ENTRIES);
    printf("- wbgc_write here is %s\n", WBGC__HAVE_AMD64
           ? "the amd64 inline asm (wbgc_amd64.h)" : "the portable C (WBGC_NO_ASM, or not x86-64)");
    printf("- marking on: a second thread with its own P runs wbgc_collect back to back; "
           "gc_percent = -1, mark_workers = %d\n\n", opt.workers);
    fflush(stdout);

    if (opt.off) {
        run_phase(p, 0);
        check_trees("after the marking-off runs");
        printf("## Marking off: ns per store (no cycle runs)\n\n");
        print_phase_table(0);
        print_desched(0);
        for (int f = F_BIG; f <= F_SMALL; f++)
            if (res[0][f][V_PLAIN_GC])
                printf("%s: plain stores reverse the tree's noscan twin (marking on, plain "
                       "stores into the collected tree would get live nodes freed); with "
                       "marking off, on the collected tree itself: %.2f ns per store, on the "
                       "twin: %.2f (ratio %.3f).\n\n", fam[f].name, med(0, f, V_PLAIN_GC, m_off),
                       med(0, f, V_PLAIN, m_off), med_ratio(0, f, V_PLAIN, V_PLAIN_GC, m_off));
        fflush(stdout);
    }

    if (opt.on) {
        pthread_t t;
        uint64_t c0 = __atomic_load_n(&collector_cycles, __ATOMIC_RELAXED);
        if (pthread_create(&t, NULL, collector_main, NULL)) die("pthread_create failed");
        /* Wait for a whole cycle, polling safepoints, before timing. */
        while (__atomic_load_n(&collector_cycles, __ATOMIC_RELAXED) < c0 + 1) wbgc_safepoint(p);
        double w0 = now_ns(CLOCK_MONOTONIC);
        run_phase(p, 1);
        double secs = (now_ns(CLOCK_MONOTONIC) - w0) / 1e9;
        __atomic_store_n(&stop_collector, 1, __ATOMIC_RELAXED);
        wbgc_blocking_begin(p);
        pthread_join(t, NULL);
        wbgc_blocking_end(p);
        check_trees("after the marking-on runs");
        uint64_t cycles = __atomic_load_n(&collector_cycles, __ATOMIC_RELAXED);
        printf("## Marking on: ns per store, on-batches only, flushes included\n\n");
        printf("%llu cycles in %.1f s of runs (%.0f ms per cycle).\n\n",
               (unsigned long long)cycles, secs, cycles ? secs * 1e3 / (double)cycles : 0.0);
        print_phase_table(1);
        print_on_details();
        fflush(stdout);
    }

    /* Nothing live may have been freed: a last cycle must find it all. */
    wbgc_collect(p);
    wbgc_stats st;
    wbgc_get_stats(heap, &st);
    check_trees("at the end");
    if (st.heap_live < live_bytes) {
        fprintf(stderr, "barrier: the last cycle found %llu bytes live, %llu were allocated and "
                "are all reachable: objects were freed while live\n",
                (unsigned long long)st.heap_live, (unsigned long long)live_bytes);
        exit(1);
    }
    if (!opt.loops && !opt.variants) print_summary();
    printf("Checked: the trees hold exactly what their reversals make of them (big %ld, "
           "its twin %ld, small %ld, its twin %ld), the regp checksums agree across "
           "variants, every 32-site and cons run left the values stored, and the last "
           "cycle found all %.1f MiB allocated still live (heap_live %.1f MiB).\n",
           big_w.passes, big_copy_w.passes, small_w.passes, small_copy_w.passes,
           live_bytes / 1048576.0, st.heap_live / 1048576.0);
    printf("\nTotal time %.1f s; load average at the end: %s.\n",
           (now_ns(CLOCK_MONOTONIC) - t_start) / 1e9, loadavg());

    wbgc_remove_roots(heap, &roots);
    wbgc_detach(p);
    wbgc_heap_free(heap);
    return 0;
}
