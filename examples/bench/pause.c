/* pause.c -- wbgc's pause, pacing and throughput benchmark: the three numbers
 * the concurrent-marking issue asks for, in each of the three modes, side by
 * side in one run:
 *
 *   concurrent   wbgc_config_default (mark_workers = -1: background markers)
 *   incremental  mark_workers = 0: no mark thread, mutators do the marking
 *   WBGC_STW     flags = WBGC_STW: every cycle stops the world
 *
 * gc_percent = 100 everywhere. Every pointer store into the heap or a
 * registered root goes through wbgc_write, in every mode.
 *
 * Part A, pauses against heap size. A long-lived structure of small linked
 * objects -- a table of 4 KiB chunks, each holding 512 pointers, each to a
 * list of four 48-byte nodes (200 bytes per slot) -- is built to --live-mb
 * (default 100 and 4096 MiB), one wbgc_collect sets the pacer from the true
 * live size, then one mutator thread runs until at least --cycles cycles
 * (default 3; 1 above 1 GiB live) and --min-secs seconds have completed.
 * Each mutator step allocates a garbage list of six nodes whose tail points
 * into the live structure, replaces one slot's list by a fresh one (the old
 * list becomes garbage; the live size stays the same) and swaps the lists of
 * two random slots. Every 1024 steps the mutator reads the stats and
 * collects the new entries of pause_recent_ns, so every pause of the steady
 * phase is seen (a "lost" mark says when more than 256 came between two
 * reads). Reported per run: the longest pause, p99 and mean of the steady
 * phase; pause_max_ns of the stats (whole run, the build included); the
 * longest gap the mutator itself saw between two of its clock readings
 * (every 16 steps: pauses, assists, lock waits and the OS scheduler all show
 * up there); cycles, wb_flushes and mark_assist_ns of the steady phase. After
 * the run the live structure is checked (every slot up to 1 GiB live, 1M
 * random slots above). A last table puts each mode's longest pause at each
 * size side by side: does it grow with the heap?
 *
 * Part B, heap against the pacer's goal. A constant live set (--goal-live-mb,
 * default 100 MiB, the same structure), one thread (then two) allocating
 * 16..256-byte objects as fast as it can and replacing a live slot's list
 * every eighth object. A sampler thread holding no P calls wbgc_get_stats
 * every ~100 µs, and each allocating thread does so every ~4600 allocations;
 * for every sample heap_alloc / heap_goal (both from the same call) is
 * computed and the largest is reported: the issue wants at most 1.10.
 *
 * Part C, throughput. binary-trees: a stretch tree, a long-lived tree of
 * depth --depth (default 18) kept all along, and for depth d = 4, 6, ...
 * 2^(depth - d + 4) short-lived trees of depth d, built bottom-up with
 * wbgc_write and checked; 16-byte nodes. Wall and process CPU time (all
 * threads, markers included), median of --reps (default 5) interleaved runs,
 * with one mutator thread and with two (which share the work). The ratio to
 * WBGC_STW of the concurrent row is the "concurrent / STW".
 *
 *   gcc -O2 -Wall -Wextra -Werror -pthread examples/bench/pause.c -o build/bench_pause
 *   ./build/bench_pause                    # the real run: 100 MiB and 4 GiB live, ~3 min
 *   ./build/bench_pause --quick            # smoke test, a few seconds
 *   ./build/bench_pause --live-mb 1024     # part A at 1 GiB only
 *   ./build/bench_pause --help             # the other options
 *
 * Part A at 4 GiB live needs about 9 GiB of memory (the heap grows to its
 * goal of twice the live size); one heap exists at a time. The machine
 * should be otherwise idle: the load average is printed at the start and at
 * the end. Nothing but the C compiler and libc is needed.
 */
#include <pthread.h>
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

enum { MAX_SIZES = 8 };

static struct {
    long   live_mb[MAX_SIZES]; /* part A: live sizes, MiB                    */
    int    nlive;
    int    pause_reps;         /* part A: runs per mode and size             */
    int    min_cycles;         /* part A: steady phase lasts this many cycles;
                                  0: 3 up to 1 GiB live, 1 above            */
    double min_secs;           /* ... and at least this long                 */
    double max_secs;           /* ... and at most this long                  */
    long   goal_live_mb;       /* part B: live set, MiB                      */
    double goal_secs;          /* part B: seconds per run                    */
    int    depth;              /* part C: binary-trees depth                 */
    int    reps;               /* part C: runs per mode                      */
    int    max_threads;        /* parts B and C: 1 .. this many mutators     */
    int    part_a, part_b, part_c;
    int    verify;
    int    quick;
} opt = { { 100, 4096 }, 2, 1, 0, 1.0, 60.0, 100, 3.0, 18, 5, 2, 1, 1, 1, 1, 0 };

enum { BIG_MB = 1024 };    /* above this live size: 1 steady cycle, sampled check */

static void usage(FILE *f) {
    fprintf(f,
        "usage: pause [options]\n"
        "  --quick           smoke run of a few seconds: live 32 and 256 MiB, 1 cycle,\n"
        "                    32 MiB and 0.3 s per run for part B, depth 14, 3 reps\n"
        "  --live-mb N[,M..] part A live sizes in MiB (default 100,4096)\n"
        "  --pause-reps N    part A runs per mode and size (default 1)\n"
        "  --cycles N        part A: cycles in the steady phase, at least (default 3,\n"
        "                    1 above 1024 MiB live)\n"
        "  --min-secs S      part A: steady phase length, at least (default 1)\n"
        "  --max-secs S      part A: steady phase length, at most (default 60)\n"
        "  --goal-live-mb N  part B live set in MiB (default 100)\n"
        "  --goal-secs S     part B seconds per run (default 3)\n"
        "  --depth N         part C binary-trees depth (default 18)\n"
        "  --reps N          part C runs per mode (default 5)\n"
        "  --threads N       parts B and C: mutator threads 1..N (default 2)\n"
        "  --only-pause      part A only    (--only-goal: B, --only-throughput: C)\n"
        "  --no-verify       do not check the live structure after the runs of A and B\n"
        "                    (default: every slot up to 1024 MiB live, 1M random slots above)\n");
}

static const char *arg_str(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) { usage(stderr); exit(2); }
    return argv[++*i];
}

static long to_long(const char *opt_name, const char *s, long max) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v <= 0 || v > max) {
        fprintf(stderr, "pause: %s wants a positive number up to %ld, not '%s'\n", opt_name, max, s);
        exit(2);
    }
    return v;
}

static double to_secs(const char *opt_name, const char *s) {
    char *end;
    double v = strtod(s, &end);
    if (*end || !(v > 0) || v > 86400) {
        fprintf(stderr, "pause: %s wants a positive number of seconds, not '%s'\n", opt_name, s);
        exit(2);
    }
    return v;
}

static void parse_args(int argc, char **argv) {
    /* --quick first, wherever it stands, so that other options refine it */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--quick")) {
            opt.quick = 1;
            opt.live_mb[0] = 32; opt.live_mb[1] = 256; opt.nlive = 2;
            opt.min_cycles = 1; opt.min_secs = 0.2; opt.max_secs = 10;
            opt.goal_live_mb = 32; opt.goal_secs = 0.3;
            opt.depth = 14; opt.reps = 3;
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quick")) continue;
        else if (!strcmp(a, "--live-mb")) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", arg_str(argc, argv, &i));
            opt.nlive = 0;
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                if (opt.nlive == MAX_SIZES) { fprintf(stderr, "pause: at most %d sizes\n", MAX_SIZES); exit(2); }
                opt.live_mb[opt.nlive++] = to_long("--live-mb", tok, 1L << 20);
            }
            if (!opt.nlive) { usage(stderr); exit(2); }
        }
        else if (!strcmp(a, "--pause-reps"))   opt.pause_reps = (int)to_long(a, arg_str(argc, argv, &i), 1000);
        else if (!strcmp(a, "--cycles"))       opt.min_cycles = (int)to_long(a, arg_str(argc, argv, &i), 1000000);
        else if (!strcmp(a, "--min-secs"))     opt.min_secs = to_secs(a, arg_str(argc, argv, &i));
        else if (!strcmp(a, "--max-secs"))     opt.max_secs = to_secs(a, arg_str(argc, argv, &i));
        else if (!strcmp(a, "--goal-live-mb")) opt.goal_live_mb = to_long(a, arg_str(argc, argv, &i), 1L << 20);
        else if (!strcmp(a, "--goal-secs"))    opt.goal_secs = to_secs(a, arg_str(argc, argv, &i));
        else if (!strcmp(a, "--depth"))        opt.depth = (int)to_long(a, arg_str(argc, argv, &i), 28);
        else if (!strcmp(a, "--reps"))         opt.reps = (int)to_long(a, arg_str(argc, argv, &i), 1000);
        else if (!strcmp(a, "--threads"))      opt.max_threads = (int)to_long(a, arg_str(argc, argv, &i), 64);
        else if (!strcmp(a, "--only-pause"))      { opt.part_b = 0; opt.part_c = 0; }
        else if (!strcmp(a, "--only-goal"))       { opt.part_a = 0; opt.part_c = 0; }
        else if (!strcmp(a, "--only-throughput")) { opt.part_a = 0; opt.part_b = 0; }
        else if (!strcmp(a, "--no-verify"))    opt.verify = 0;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else { fprintf(stderr, "pause: unknown option '%s'\n", a); usage(stderr); exit(2); }
    }
    if (opt.depth < 4) opt.depth = 4;
    if (opt.max_secs < opt.min_secs) opt.max_secs = opt.min_secs;
}

/* ---- clocks, medians, the machine -------------------------------------- */



/* median sorts v in place; an even count gives the mean of the middle two */

/* dur formats a duration with a unit that fits it: 850 ns, 41.3 µs,
   213.50 ms, 7.54 s. Up to 32 results may be in use at once. */
static const char *dur(double ns) {
    static char buf[32][24];
    static unsigned k;
    char *b = buf[k++ % 32];
    if (ns <= 0) snprintf(b, sizeof buf[0], "0");
    else if (ns < 1e3) snprintf(b, sizeof buf[0], "%.0f ns", ns);
    else if (ns < 1e6) snprintf(b, sizeof buf[0], "%.1f µs", ns / 1e3);
    else if (ns < 1e9) snprintf(b, sizeof buf[0], "%.2f ms", ns / 1e6);
    else snprintf(b, sizeof buf[0], "%.2f s", ns / 1e9);
    return b;
}


static void print_machine(void) {
    bench_print_machine();
    printf("- load average at start: %s (other work on the machine skews every number)\n", loadavg());
    printf("- wbgc.h: version %d.%d\n", WBGC_VERSION_MAJOR, WBGC_VERSION_MINOR);
    printf("- modes: concurrent = wbgc_config_default (mark_workers = -1); "
           "incremental = mark_workers 0; WBGC_STW = flags WBGC_STW. gc_percent = 100 throughout.\n");
    bench_print_env();
}

static void die(const char *what) {
    fprintf(stderr, "pause: %s\n", what);
    exit(1);
}

static void *xmalloc(size_t n) {
    void *v = malloc(n ? n : 1);
    if (!v) die("out of memory (malloc)");
    return v;
}

/* The runs' results pass through here so no loop can be optimised away. */
static volatile uintptr_t sink;

/* xorshift64*: the mutators' random numbers */
static inline uint64_t rnd(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Du;
}

/* clear_stack zeroes 16 KiB of stack below the caller's frame. Every part
   and every run starts with it, and the run and part functions are
   noinline so that each has a frame of its own: dead frames of an earlier
   run leave pointers on the stack, and a later frame's uninitialised slots
   would show them to the conservative stack scan -- into a new heap that
   reuses the old one's addresses, where they kept a dead tree alive and
   changed the live size of one run in three. */
static __attribute__((noinline)) void clear_stack(void) {
    volatile uintptr_t junk[2048];
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) junk[i] = 0;
}

/* ---- modes ------------------------------------------------------------- */

enum { M_CONC, M_INCR, M_STW, NMODES };
static const char *const mode_name[NMODES] = { "concurrent", "incremental", "WBGC_STW" };

static wbgc_heap *new_heap(int mode) {
    wbgc_config cfg;
    wbgc_config_default(&cfg);
    cfg.gc_percent = 100;
    if (mode == M_INCR) cfg.mark_workers = 0;
    if (mode == M_STW) cfg.flags |= WBGC_STW;
    wbgc_heap *h = wbgc_heap_new(&cfg);
    if (!h) die("wbgc_heap_new failed");
    return h;
}

static wbgc_p *attach(wbgc_heap *h) {
    wbgc_p *p = wbgc_attach(h);
    if (!p) die("wbgc_attach failed");
    return p;
}

static const double MiB = 1048576.0;

/* ---- the long-lived structure of parts A and B -------------------------- */

/* node: 48 bytes. A live node's check is LIVE_CHECK(id); garbage nodes get a
   different pattern, so a live node freed and reused shows up in the walk. */
typedef struct node { struct node *next; uint64_t id, check, pay[3]; } node;
enum { CHUNK_SLOTS = 512, LIST_LEN = 4, GARBAGE_LEN = 6 };
typedef struct chunk { node *slot[CHUNK_SLOTS]; } chunk;   /* 4 KiB */
typedef struct live { size_t nchunks, nslots; chunk *c[]; } live;
#define LIVE_CHECK(id) ((uint64_t)(id) * 0x9E3779B97F4A7C15u)
#define JUNK_CHECK(id) (~LIVE_CHECK(id))
#define SLOT_BYTES (sizeof(node *) + LIST_LEN * sizeof(node))

static live *g_live;     /* registered root: the only way in */

static node *new_list(wbgc_p *p, uint64_t *ids) {
    node *head = NULL;
    for (int k = 0; k < LIST_LEN; k++) {
        node *n = wbgc_alloc(p, sizeof *n);
        if (!n) die("wbgc_alloc returned NULL");
        n->id = (*ids)++;
        n->check = LIVE_CHECK(n->id);
        wbgc_write(p, &n->next, head);
        head = n;
    }
    return head;
}

static inline node **slot_at(live *L, size_t s) {
    return &L->c[s / CHUNK_SLOTS]->slot[s % CHUNK_SLOTS];
}

static live *build_live(wbgc_p *p, long mb, uint64_t *ids) {
    size_t nslots = (size_t)mb * 1048576 / SLOT_BYTES;
    if (nslots < 2) nslots = 2;
    size_t nchunks = (nslots + CHUNK_SLOTS - 1) / CHUNK_SLOTS;
    live *L = wbgc_alloc(p, sizeof *L + nchunks * sizeof(chunk *));
    if (!L) die("wbgc_alloc of the live table returned NULL");
    L->nchunks = nchunks;
    L->nslots = nslots;
    wbgc_write(p, &g_live, L);
    for (size_t i = 0; i < nchunks; i++) {
        chunk *c = wbgc_alloc(p, sizeof *c);
        if (!c) die("wbgc_alloc returned NULL");
        wbgc_write(p, &L->c[i], c);
        size_t n = nslots - i * CHUNK_SLOTS;
        if (n > CHUNK_SLOTS) n = CHUNK_SLOTS;
        for (size_t k = 0; k < n; k++) wbgc_write(p, &c->slot[k], new_list(p, ids));
    }
    return L;
}

/* verify_live walks every slot's list (or, above BIG_MB, 1M random slots'):
   LIST_LEN nodes each, every one intact. */
static void verify_live(live *L, long mb) {
    size_t n = L->nslots;
    uint64_t rng = 0x853C49E6748FEA9Bu;
    int sampled = mb > BIG_MB && n > (1u << 20);
    if (sampled) n = 1u << 20;
    for (size_t i = 0; i < n; i++) {
        size_t s = sampled ? (size_t)(rnd(&rng) % L->nslots) : i;
        size_t len = 0;
        for (const node *x = *slot_at(L, s); x; x = x->next, len++) {
            if (x->check != LIVE_CHECK(x->id) || len >= LIST_LEN) {
                fprintf(stderr, "pause: slot %zu: node %zu at %p (id %llu, check %llx) is not a "
                        "live node: freed while live?\n", s, len, (const void *)x,
                        (unsigned long long)x->id, (unsigned long long)x->check);
                exit(1);
            }
        }
        if (len != LIST_LEN) {
            fprintf(stderr, "pause: slot %zu holds %zu nodes, not %d\n", s, len, LIST_LEN);
            exit(1);
        }
    }
}

static void drop_live(wbgc_heap *h) {
    g_live = NULL;      /* a plain store: the heap dies next */
    wbgc_remove_roots(h, &g_live);
}

/* ---- part A: pauses against heap size ----------------------------------- */

typedef struct { uint64_t *v; size_t n, cap; } u64vec;

static void vec_push(u64vec *a, uint64_t x) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 256;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
        if (!a->v) die("out of memory (realloc)");
    }
    a->v[a->n++] = x;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* harvest appends the pauses recorded since *seen (pause k sits at
   pause_recent_ns[k % 256]); more than 256 new ones: the oldest are lost. */
static void harvest(const wbgc_stats *st, uint64_t *seen, u64vec *out, uint64_t *lost) {
    uint64_t from = *seen;
    if (st->pause_count - from > 256) {
        *lost += st->pause_count - from - 256;
        from = st->pause_count - 256;
    }
    for (uint64_t k = from; k < st->pause_count; k++) vec_push(out, st->pause_recent_ns[k % 256]);
    *seen = st->pause_count;
}

/* mutate: one step of part A's mutator. */
static inline void mutate(wbgc_p *p, live *L, uint64_t *rng, uint64_t *ids) {
    size_t n = L->nslots;
    /* garbage: a short list whose tail points at a live list */
    node *g = *slot_at(L, (size_t)(rnd(rng) % n));
    for (int k = 0; k < GARBAGE_LEN; k++) {
        node *x = wbgc_alloc(p, sizeof *x);
        if (!x) die("wbgc_alloc returned NULL");
        x->id = (uint64_t)k;
        x->check = JUNK_CHECK(k);
        wbgc_write(p, &x->next, g);
        g = x;
    }
    sink += (uintptr_t)g->id;
    /* a slot gets a fresh list: its old list is garbage now */
    wbgc_write(p, slot_at(L, (size_t)(rnd(rng) % n)), new_list(p, ids));
    /* two slots swap lists: for a moment one list is only in a local */
    node **a = slot_at(L, (size_t)(rnd(rng) % n)), **b = slot_at(L, (size_t)(rnd(rng) % n));
    node *t = *a;
    wbgc_write(p, a, *b);
    wbgc_write(p, b, t);
}

typedef struct {
    long   live_mb;
    int    mode;
    double build_s, steady_s;
    double live_mib, sys_peak_mib, alloc_mbs;
    uint64_t cycles, pauses, lost;
    double max_ns, p99_ns, mean_ns, statmax_ns, gap_ns;
    uint64_t wb_flushes, assist_ns;
    int    capped;
} pause_result;

static __attribute__((noinline)) pause_result run_pause(long mb, int mode) {
    pause_result r;
    memset(&r, 0, sizeof r);
    r.live_mb = mb;
    r.mode = mode;
    wbgc_heap *h = new_heap(mode);
    wbgc_p *p = attach(h);
    if (wbgc_add_roots(h, &g_live, sizeof g_live)) die("wbgc_add_roots failed");
    uint64_t ids = 1, rng = 0x9E3779B97F4A7C15u ^ (uint64_t)mb;
    int min_cycles = opt.min_cycles ? opt.min_cycles : mb > BIG_MB ? 1 : 3;

    double b0 = now_ns(CLOCK_MONOTONIC);
    live *L = build_live(p, mb, &ids);
    wbgc_collect(p);              /* the pacer starts from the true live size */
    r.build_s = (now_ns(CLOCK_MONOTONIC) - b0) / 1e9;

    static wbgc_stats st0, st;    /* 2 KiB each: kept off the stack */
    wbgc_get_stats(h, &st0);
    u64vec pauses = { 0, 0, 0 };
    uint64_t seen = st0.pause_count, sys_peak = st0.heap_sys;
    double t0 = now_ns(CLOCK_MONOTONIC), tick = t0, gap = 0, t = t0;
    for (uint64_t step = 1;; step++) {
        mutate(p, L, &rng, &ids);
        if (step & 15) continue;
        t = now_ns(CLOCK_MONOTONIC);
        if (t - tick > gap) gap = t - tick;
        tick = t;
        if (step & 1023) continue;
        wbgc_get_stats(h, &st);
        harvest(&st, &seen, &pauses, &r.lost);
        if (st.heap_sys > sys_peak) sys_peak = st.heap_sys;
        double el = (t - t0) / 1e9;
        if (st.cycles - st0.cycles >= (uint64_t)min_cycles && el >= opt.min_secs) break;
        if (el >= opt.max_secs) { r.capped = 1; break; }
    }
    wbgc_get_stats(h, &st);
    r.steady_s = (now_ns(CLOCK_MONOTONIC) - t0) / 1e9;
    harvest(&st, &seen, &pauses, &r.lost);
    if (st.heap_sys > sys_peak) sys_peak = st.heap_sys;
    if (opt.verify) verify_live(L, mb);

    r.cycles = st.cycles - st0.cycles;
    r.pauses = st.pause_count - st0.pause_count;
    r.mean_ns = r.pauses ? (double)(st.pause_total_ns - st0.pause_total_ns) / (double)r.pauses : 0;
    if (pauses.n) {
        qsort(pauses.v, pauses.n, sizeof *pauses.v, cmp_u64);
        r.max_ns = (double)pauses.v[pauses.n - 1];
        size_t rank = (pauses.n * 99 + 99) / 100;      /* nearest rank, ceil(0.99 n) */
        r.p99_ns = (double)pauses.v[rank - 1];
    }
    r.statmax_ns = (double)st.pause_max_ns;
    r.gap_ns = gap;
    r.live_mib = (double)st.heap_live / MiB;
    r.sys_peak_mib = (double)sys_peak / MiB;
    r.alloc_mbs = (double)(st.total_alloc - st0.total_alloc) / MiB / r.steady_s;
    r.wb_flushes = st.wb_flushes - st0.wb_flushes;
    r.assist_ns = st.mark_assist_ns - st0.mark_assist_ns;
    free(pauses.v);

    drop_live(h);
    wbgc_detach(p);
    wbgc_heap_free(h);
    return r;
}

static __attribute__((noinline)) void part_a(void) {
    printf("## A. Stop-the-world pauses against live heap size\n\n");
    char cyc[64];
    if (opt.min_cycles) snprintf(cyc, sizeof cyc, "%d cycle%s", opt.min_cycles, opt.min_cycles == 1 ? "" : "s");
    else snprintf(cyc, sizeof cyc, "3 cycles (1 above %d MiB live)", BIG_MB);
    printf("One mutator, gc_percent = 100. Steady phase: at least %s and %.1f s "
           "(at most %.0f s) after the build and one wbgc_collect. One row per run, "
           "modes interleaved.\n\n", cyc, opt.min_secs, opt.max_secs);
    printf("| live target | mode | heap_live MiB | heap_sys peak MiB | build s | steady s "
           "| alloc MiB/s | cycles | pauses | max pause | p99 pause | mean pause "
           "| pause_max_ns (whole run) | worst mutator gap | wb_flushes | mark_assist ms |\n");
    printf("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
           "| ---: | ---: | ---: | ---: |\n");
    fflush(stdout);

    int reps = opt.pause_reps;
    double *maxp = xmalloc(sizeof(double) * (size_t)(opt.nlive * NMODES * reps));
    int any_lost = 0, any_capped = 0;
    for (int s = 0; s < opt.nlive; s++) {
        for (int rep = 0; rep < reps; rep++) {
            for (int m = 0; m < NMODES; m++) {
                clear_stack();
                pause_result r = run_pause(opt.live_mb[s], m);
                maxp[(s * NMODES + m) * reps + rep] = r.max_ns;
                any_lost |= r.lost != 0;
                any_capped |= r.capped;
                printf("| %ld MiB | %s | %.0f | %.0f | %.1f | %.1f%s | %.0f | %llu | %llu%s "
                       "| %s | %s | %s | %s | %s | %llu | %.1f |\n",
                       r.live_mb, mode_name[m], r.live_mib, r.sys_peak_mib, r.build_s,
                       r.steady_s, r.capped ? " (cap)" : "", r.alloc_mbs,
                       (unsigned long long)r.cycles, (unsigned long long)r.pauses,
                       r.lost ? " (lost some)" : "",
                       dur(r.max_ns), dur(r.p99_ns), dur(r.mean_ns), dur(r.statmax_ns),
                       dur(r.gap_ns), (unsigned long long)r.wb_flushes, r.assist_ns / 1e6);
                fflush(stdout);
            }
        }
    }
    printf("\nmax / p99 / mean pause: the steady phase's stop-the-world pauses, from "
           "pause_recent_ns (read every 1024 steps) and pause_total_ns / pause_count. "
           "pause_max_ns: the stats' own maximum, over the whole run (build, its cycles "
           "and the wbgc_collect included). worst mutator gap: the longest time between two "
           "of the mutator's clock readings, taken every 16 steps of ~10 allocations: stop-the-world "
           "pauses, mark assists, lock waits and preemption by the OS all show there. "
           "cycles, wb_flushes, mark_assist: during the steady phase. alloc: bytes allocated "
           "per second of steady phase. Mutator step: 6 garbage nodes pointing into the live "
           "structure, one slot's 4-node list replaced, two slots swapped, all through "
           "wbgc_write.%s%s%s\n\n",
           opt.verify ? " After each run every slot's list was walked and checked (above 1024 MiB "
                        "live: 1M random slots)." : "",
           any_lost ? " (lost some): more than 256 pauses between two reads; the oldest "
                      "were not seen." : "",
           any_capped ? " (cap): the steady phase hit --max-secs before its cycles." : "");

    /* does the longest pause grow with the heap? */
    printf("### Longest steady-phase pause against live size%s\n\n",
           reps > 1 ? " (median of the runs)" : "");
    printf("| mode |");
    for (int s = 0; s < opt.nlive; s++) printf(" %ld MiB live |", opt.live_mb[s]);
    if (opt.nlive > 1) printf(" growth %ld → %ld MiB (live ×%.1f) |",
                              opt.live_mb[0], opt.live_mb[opt.nlive - 1],
                              (double)opt.live_mb[opt.nlive - 1] / (double)opt.live_mb[0]);
    printf("\n| --- |");
    for (int s = 0; s < opt.nlive + (opt.nlive > 1); s++) printf(" ---: |");
    printf("\n");
    for (int m = 0; m < NMODES; m++) {
        double first = 0, last = 0;
        printf("| %s |", mode_name[m]);
        for (int s = 0; s < opt.nlive; s++) {
            double v = median(&maxp[(s * NMODES + m) * reps], reps);
            if (s == 0) first = v;
            last = v;
            printf(" %s |", dur(v));
        }
        if (opt.nlive > 1) printf(" ×%.1f |", first > 0 ? last / first : 0.0);
        printf("\n");
    }
    printf("\nA pause that does not depend on the heap stays near ×1 here; a pause that "
           "marks the whole heap grows like the live size.\n\n");
    fflush(stdout);
    free(maxp);
}

/* ---- part B: heap against the pacer's goal ------------------------------ */

typedef struct {
    double   ratio;          /* largest heap_alloc / heap_goal seen */
    uint64_t alloc, goal;    /* the sample that gave it */
    uint64_t alloc_max;      /* largest heap_alloc */
    uint64_t sys_max;        /* largest heap_sys */
    uint64_t n;              /* samples */
} peak;

static void peak_add(peak *pk, const wbgc_stats *st) {
    pk->n++;
    if (st->heap_alloc > pk->alloc_max) pk->alloc_max = st->heap_alloc;
    if (st->heap_sys > pk->sys_max) pk->sys_max = st->heap_sys;
    if (!st->heap_goal) return;
    double r = (double)st->heap_alloc / (double)st->heap_goal;
    if (r > pk->ratio) { pk->ratio = r; pk->alloc = st->heap_alloc; pk->goal = st->heap_goal; }
}

static void peak_merge(peak *into, const peak *from) {
    into->n += from->n;
    if (from->alloc_max > into->alloc_max) into->alloc_max = from->alloc_max;
    if (from->sys_max > into->sys_max) into->sys_max = from->sys_max;
    if (from->ratio > into->ratio) {
        into->ratio = from->ratio; into->alloc = from->alloc; into->goal = from->goal;
    }
}

typedef struct {
    wbgc_heap *h;
    int        stop;         /* __atomic */
    peak       pk;
} sampler;

/* sampler_main holds no P: wbgc_get_stats takes the heap only. */
static void *sampler_main(void *arg) {
    sampler *s = arg;
    static wbgc_stats st;   /* one sampler at a time */
    struct timespec ts = { 0, 100000 };
    while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
        wbgc_get_stats(s->h, &st);
        peak_add(&s->pk, &st);
        nanosleep(&ts, NULL);
    }
    return NULL;
}

typedef struct {
    wbgc_heap *h;
    live      *L;            /* also held by g_live */
    int        tid, nthreads;
    double     end_ns;       /* CLOCK_MONOTONIC */
    peak       pk;
    uint64_t   allocs;
} goal_worker;

static void goal_loop(wbgc_p *p, goal_worker *w) {
    wbgc_stats *st = xmalloc(sizeof *st);
    uint64_t rng = 0x2545F4914F6CDD1Du + (uint64_t)w->tid * 0x9E3779B97F4A7C15u;
    uint64_t ids = ((uint64_t)w->tid + 1) << 56;
    live *L = w->L;
    /* thread t replaces slots in the chunks c with c % nthreads == t only */
    size_t mychunks = (L->nchunks - (size_t)w->tid + (size_t)w->nthreads - 1) / (size_t)w->nthreads;
    uint64_t allocs = 0;
    for (uint64_t i = 1;; i++) {
        size_t size = 16 + 16 * (size_t)(rnd(&rng) & 15);
        uintptr_t *o = wbgc_alloc(p, size);
        if (!o) die("wbgc_alloc returned NULL");
        o[0] = (uintptr_t)i;
        allocs++;
        if ((i & 7) == 0 && mychunks) {
            uint64_t x = rnd(&rng);
            size_t c = (size_t)(x % mychunks) * (size_t)w->nthreads + (size_t)w->tid;
            size_t k = (size_t)(x >> 32) % CHUNK_SLOTS;
            if (c * CHUNK_SLOTS + k < L->nslots) {
                wbgc_write(p, &L->c[c]->slot[k], new_list(p, &ids));
                allocs += LIST_LEN;
            }
        }
        if ((i & 4095) == 0) {   /* about every 4600 allocations */
            wbgc_get_stats(w->h, st);
            peak_add(&w->pk, st);
            if (now_ns(CLOCK_MONOTONIC) >= w->end_ns) break;
        }
    }
    w->allocs = allocs;
    free(st);
}

static void *goal_thread(void *arg) {
    goal_worker *w = arg;
    wbgc_p *p = attach(w->h);
    goal_loop(p, w);
    wbgc_detach(p);
    return NULL;
}

static __attribute__((noinline)) void run_goal(int mode, int nthreads) {
    wbgc_heap *h = new_heap(mode);
    wbgc_p *p = attach(h);
    if (wbgc_add_roots(h, &g_live, sizeof g_live)) die("wbgc_add_roots failed");
    uint64_t ids = 1;
    live *L = build_live(p, opt.goal_live_mb, &ids);
    wbgc_collect(p);
    static wbgc_stats st0, st;
    wbgc_get_stats(h, &st0);

    sampler smp;
    memset(&smp, 0, sizeof smp);
    smp.h = h;
    pthread_t sth, *th = xmalloc(sizeof(pthread_t) * (size_t)nthreads);
    goal_worker *w = xmalloc(sizeof(goal_worker) * (size_t)nthreads);
    double t0 = now_ns(CLOCK_MONOTONIC), c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    for (int t = 0; t < nthreads; t++) {
        memset(&w[t], 0, sizeof w[t]);
        w[t].h = h; w[t].L = L; w[t].tid = t; w[t].nthreads = nthreads;
        w[t].end_ns = t0 + opt.goal_secs * 1e9;
    }
    if (pthread_create(&sth, NULL, sampler_main, &smp)) die("pthread_create failed");
    for (int t = 1; t < nthreads; t++)
        if (pthread_create(&th[t], NULL, goal_thread, &w[t])) die("pthread_create failed");
    goal_loop(p, &w[0]);
    wbgc_blocking_begin(p);
    for (int t = 1; t < nthreads; t++) pthread_join(th[t], NULL);
    __atomic_store_n(&smp.stop, 1, __ATOMIC_RELEASE);
    pthread_join(sth, NULL);
    wbgc_blocking_end(p);
    double wall = (now_ns(CLOCK_MONOTONIC) - t0) / 1e9;
    double cpu = (now_ns(CLOCK_PROCESS_CPUTIME_ID) - c0) / 1e9;
    wbgc_get_stats(h, &st);
    if (opt.verify) verify_live(L, opt.goal_live_mb);

    peak all = smp.pk;
    uint64_t allocs = 0;
    for (int t = 0; t < nthreads; t++) { peak_merge(&all, &w[t].pk); allocs += w[t].allocs; }
    peak_add(&all, &st);
    double ratio = all.ratio;
    printf("| %s | %d | %.1f | %.1f | %.2f | %.1f | %.1f | **%.3f** | %s | %.1f | %.1f | %llu "
           "| %.0f | %.1f | %.2f | %llu | %llu | %.1f |\n",
           mode_name[mode], nthreads, (double)st.heap_live / MiB, (double)st.heap_goal / MiB,
           st.heap_live ? (double)st.heap_goal / (double)st.heap_live : 0.0,
           (double)all.alloc / MiB, (double)all.goal / MiB, ratio,
           ratio <= 1.10 ? "yes" : "NO",
           (double)all.alloc_max / MiB, (double)all.sys_max / MiB,
           (unsigned long long)all.n,
           (double)(st.total_alloc - st0.total_alloc) / MiB / wall, wall, cpu / wall,
           (unsigned long long)(st.cycles - st0.cycles),
           (unsigned long long)(st.wb_flushes - st0.wb_flushes),
           (double)(st.mark_assist_ns - st0.mark_assist_ns) / 1e6);
    fflush(stdout);
    sink += (uintptr_t)allocs;
    free(th);
    free(w);
    drop_live(h);
    wbgc_detach(p);
    wbgc_heap_free(h);
}

static __attribute__((noinline)) void part_b(void) {
    printf("## B. Peak heap against the pacer's goal\n\n");
    printf("Live set %ld MiB (the structure of part A), gc_percent = 100, %.1f s per run; "
           "allocating threads make 16..256-byte objects as fast as they can. One row per "
           "run.\n\n", opt.goal_live_mb, opt.goal_secs);
    printf("| mode | alloc threads | heap_live MiB | heap_goal MiB | goal / live "
           "| heap_alloc at peak MiB | goal then MiB | peak / goal | within 10%% "
           "| max heap_alloc MiB | max heap_sys MiB | samples | alloc MiB/s | wall s | cpu / wall "
           "| cycles | wb_flushes | mark_assist ms |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: "
           "| ---: | ---: | ---: | ---: | ---: | ---: |\n");
    fflush(stdout);
    for (int n = 1; n <= opt.max_threads; n++)
        for (int m = 0; m < NMODES; m++) {
            clear_stack();
            run_goal(m, n);
        }
    printf("\npeak / goal: the largest heap_alloc / heap_goal over all samples, each pair from "
           "one wbgc_get_stats call; samples come from a thread holding no P (every ~100 µs) "
           "and from each allocating thread (every 4096 loop turns, ~4600 allocations). heap_live, heap_goal: "
           "at the end of the run. Every eighth allocation also replaces one live slot's "
           "4-node list through wbgc_write (each thread its own slots), so the live size stays "
           "constant. cycles, wb_flushes, mark_assist: during the run. On this machine's %ld "
           "CPUs the sampler thread competes with the allocating threads and mark workers.\n\n",
           sysconf(_SC_NPROCESSORS_ONLN));
}

/* ---- part C: binary-trees throughput ------------------------------------ */

typedef struct tn { struct tn *l, *r; } tn;   /* 16 bytes */

static tn *g_tree;       /* registered root: the long-lived tree */

static tn *bottom_up(wbgc_p *p, int d) {
    tn *t = wbgc_alloc(p, sizeof *t);
    if (!t) die("wbgc_alloc returned NULL");
    if (d > 0) {
        tn *l = bottom_up(p, d - 1);
        wbgc_write(p, &t->l, l);
        tn *r = bottom_up(p, d - 1);
        wbgc_write(p, &t->r, r);
    }
    return t;
}

static long item_check(const tn *t) {
    return t->l ? 1 + item_check(t->l) + item_check(t->r) : 1;
}

/* stretch builds and checks a tree in a frame of its own, so that no
   pointer to it outlives the call in a register or a live stack slot. */
static __attribute__((noinline)) long stretch(wbgc_p *p, int d) {
    return item_check(bottom_up(p, d));
}


typedef struct {
    wbgc_heap *h;
    int        tid, nthreads;
    long       checks;
} bt_worker;

enum { MIN_DEPTH = 4 };

static void bt_loop(wbgc_p *p, bt_worker *w) {
    long sum = 0;
    for (int d = MIN_DEPTH; d <= opt.depth; d += 2) {
        long iters = 1L << (opt.depth - d + MIN_DEPTH);
        for (long i = w->tid; i < iters; i += w->nthreads) {
            tn *t = bottom_up(p, d);
            long c = item_check(t);
            if (c != (2L << d) - 1) die("binary-trees: a short-lived tree lost nodes");
            sum += c;
        }
    }
    w->checks = sum;
}

static void *bt_thread(void *arg) {
    bt_worker *w = arg;
    wbgc_p *p = attach(w->h);
    bt_loop(p, w);
    wbgc_detach(p);
    return NULL;
}

typedef struct { double wall, cpu; uint64_t cycles, pauses, wb_flushes, assist_ns; double max_pause_ns; } bt_result;

static __attribute__((noinline)) bt_result run_bt(int mode, int nthreads) {
    wbgc_heap *h = new_heap(mode);
    wbgc_p *p = attach(h);
    if (wbgc_add_roots(h, &g_tree, sizeof g_tree)) die("wbgc_add_roots failed");
    pthread_t *th = xmalloc(sizeof(pthread_t) * (size_t)nthreads);
    bt_worker *w = xmalloc(sizeof(bt_worker) * (size_t)nthreads);
    for (int t = 0; t < nthreads; t++) {
        w[t].h = h; w[t].tid = t; w[t].nthreads = nthreads; w[t].checks = 0;
    }

    double w0 = now_ns(CLOCK_MONOTONIC), c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    if (stretch(p, opt.depth + 1) != (2L << (opt.depth + 1)) - 1)
        die("binary-trees: the stretch tree lost nodes");
    clear_stack();
    wbgc_write(p, &g_tree, bottom_up(p, opt.depth));
    for (int t = 1; t < nthreads; t++)
        if (pthread_create(&th[t], NULL, bt_thread, &w[t])) die("pthread_create failed");
    bt_loop(p, &w[0]);
    wbgc_blocking_begin(p);
    for (int t = 1; t < nthreads; t++) pthread_join(th[t], NULL);
    wbgc_blocking_end(p);
    if (item_check(g_tree) != (2L << opt.depth) - 1) die("binary-trees: the long-lived tree lost nodes");
    double w1 = now_ns(CLOCK_MONOTONIC), c1 = now_ns(CLOCK_PROCESS_CPUTIME_ID);

    long expect = 0, got = 0;
    for (int d = MIN_DEPTH; d <= opt.depth; d += 2)
        expect += (1L << (opt.depth - d + MIN_DEPTH)) * ((2L << d) - 1);
    for (int t = 0; t < nthreads; t++) got += w[t].checks;
    if (got != expect) die("binary-trees: the threads did not do all the work");

    static wbgc_stats st;
    wbgc_get_stats(h, &st);
    bt_result r = { (w1 - w0) / 1e9, (c1 - c0) / 1e9, st.cycles, st.pause_count,
                    st.wb_flushes, st.mark_assist_ns, (double)st.pause_max_ns };
    sink += (uintptr_t)got;
    free(th);
    free(w);
    g_tree = NULL;      /* a plain store: the heap dies next */
    wbgc_remove_roots(h, &g_tree);
    wbgc_detach(p);
    wbgc_heap_free(h);
    return r;
}

static __attribute__((noinline)) void part_c(void) {
    int reps = opt.reps, nt = opt.max_threads;
    long nodes = 0;
    for (int d = MIN_DEPTH; d <= opt.depth; d += 2)
        nodes += (1L << (opt.depth - d + MIN_DEPTH)) * ((2L << d) - 1);
    nodes += (2L << (opt.depth + 1)) - 1 + (2L << opt.depth) - 1;
    printf("## C. Throughput: binary-trees, depth %d\n\n", opt.depth);
    printf("%.1f M nodes of 16 bytes per run (%.0f MiB allocated), long-lived tree %.1f MiB; "
           "median of %d interleaved runs; wall and CPU time in s.\n\n",
           nodes / 1e6, nodes * 16.0 / MiB, ((2L << opt.depth) - 1) * 16.0 / MiB, reps);
    printf("| mutators | mode | wall s | cpu s | cpu / wall | wall / STW | cpu / STW | cycles "
           "| pauses | max pause | wb_flushes | mark_assist ms |\n");
    printf("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    fflush(stdout);

    bt_result *all = xmalloc(sizeof(bt_result) * (size_t)(nt * NMODES * reps));
    double *v = xmalloc(sizeof(double) * (size_t)reps);
    for (int n = 1; n <= nt; n++) {
        bt_result *res = &all[(n - 1) * NMODES * reps];
        for (int rep = 0; rep < reps; rep++)
            for (int m = 0; m < NMODES; m++) {
                clear_stack();
                res[m * reps + rep] = run_bt(m, n);
            }
        double mw[NMODES], mc[NMODES];
        for (int m = 0; m < NMODES; m++) {
            for (int k = 0; k < reps; k++) v[k] = res[m * reps + k].wall;
            mw[m] = median(v, reps);
            for (int k = 0; k < reps; k++) v[k] = res[m * reps + k].cpu;
            mc[m] = median(v, reps);
        }
        for (int m = 0; m < NMODES; m++) {
            double md[5];
            for (int k = 0; k < reps; k++) v[k] = (double)res[m * reps + k].cycles;
            md[0] = median(v, reps);
            for (int k = 0; k < reps; k++) v[k] = (double)res[m * reps + k].pauses;
            md[1] = median(v, reps);
            for (int k = 0; k < reps; k++) v[k] = res[m * reps + k].max_pause_ns;
            md[2] = median(v, reps);
            for (int k = 0; k < reps; k++) v[k] = (double)res[m * reps + k].wb_flushes;
            md[3] = median(v, reps);
            for (int k = 0; k < reps; k++) v[k] = (double)res[m * reps + k].assist_ns;
            md[4] = median(v, reps);
            printf("| %d | %s | %.3f | %.3f | %.2f | **%.2f** | %.2f | %.0f | %.0f | %s | %.0f | %.1f |\n",
                   n, mode_name[m], mw[m], mc[m], mc[m] / mw[m], mw[m] / mw[M_STW],
                   mc[m] / mc[M_STW], md[0], md[1], dur(md[2]), md[3], md[4] / 1e6);
        }
        fflush(stdout);
    }
    printf("\nwall / STW, cpu / STW: this mode's median over WBGC_STW's median (the issue's "
           "concurrent / STW ratio is the concurrent row). cpu: process CPU time, all threads, "
           "mark workers included. cycles ... mark_assist: medians over the runs, whole run. "
           "With two mutators each does half of every depth's trees.\n\n");

    printf("### C, every run\n\n");
    printf("| mutators | run | mode | wall s | cpu s | cycles | pauses | max pause "
           "| wb_flushes | mark_assist ms |\n");
    printf("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int n = 1; n <= nt; n++)
        for (int rep = 0; rep < reps; rep++)
            for (int m = 0; m < NMODES; m++) {
                const bt_result *r = &all[(n - 1) * NMODES * reps + m * reps + rep];
                printf("| %d | %d | %s | %.3f | %.3f | %llu | %llu | %s | %llu | %.1f |\n",
                       n, rep + 1, mode_name[m], r->wall, r->cpu,
                       (unsigned long long)r->cycles, (unsigned long long)r->pauses,
                       dur(r->max_pause_ns), (unsigned long long)r->wb_flushes,
                       (double)r->assist_ns / 1e6);
            }
    printf("\n");
    fflush(stdout);
    free(v);
    free(all);
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    double t0 = now_ns(CLOCK_MONOTONIC);
    printf("# wbgc pause, pacing and throughput benchmark%s\n\n", opt.quick ? " (short run)" : "");
    print_machine();
    /* each part's own frame is cleared too: stale words in its slots would be scanned */
    if (opt.part_a) { clear_stack(); part_a(); }
    if (opt.part_b) { clear_stack(); part_b(); }
    if (opt.part_c) { clear_stack(); part_c(); }
    printf("Total time %.0f s; load average at the end: %s.\n",
           (now_ns(CLOCK_MONOTONIC) - t0) / 1e9, loadavg());
    return (int)(sink & 0); /* sink is read, so the runs count */
}
