/* longrun.c -- the long soak of issue 12 (item 7): a big live set churned by
 * two mutators for minutes in the default (concurrent) mode, then shrunk.
 *
 * What it builds. A table of slots (a GC object held by a registered root),
 * each slot a list of 1..7 nodes of 16..448 bytes, one in eight lists
 * carrying a 1..8 KiB pointer-free buffer, built until the lists hold
 * --live-mb MiB (default 205) of requested bytes. Every node carries a check
 * word computed from its slot, the list's generation and its position, and
 * the buffer's first and last words the same: a node freed while reachable
 * and handed out again shows as a wrong check.
 *
 * What runs. --threads mutators (default 2), each owning its share of the
 * slots, loop: build a fresh list (every store through wbgc_write), swap it
 * into a random slot of theirs (the old list becomes garbage), and every
 * 16th step walk another slot's list and verify it. After 5/6 of --secs
 * (default 180) the mutators drop all but --small-mb (default 10) MiB of
 * their slots and go on churning what is left.
 *
 * What it reports, every 10 s and for the whole run:
 *   - pauses: every stop of the world, read by a monitor thread holding no P
 *     from pause_recent_ns every 20 ms (a "lost" count says if more than 256
 *     came between two reads): longest, p99, count;
 *   - stalls: the longest gap each mutator saw between the ends of two
 *     consecutive steps (a step is a few microseconds of work: pauses,
 *     assists, waits at the goal and the OS scheduler all show up here);
 *   - assists: mark_assist_ns over the mutators' thread time (wall time x
 *     threads), the share of the mutators' time spent marking;
 *   - memory: RSS (/proc/self/statm), heap_sys, heap_live, heap_goal; after
 *     the shrink, how many cycles and seconds RSS took to fall to
 *     4 x the small live set + 32 MiB (the program's own tables and the C
 *     runtime are about 30 MiB).
 * It exits 1 if a check word is wrong (an object lost), else 0. The timing
 * figures are reported, not judged: the machine is shared.
 *
 *   gcc -O2 -pthread tests/longrun.c -o build/longrun && ./build/longrun
 *   ./build/longrun --secs 30 --live-mb 64       # shorter
 */
#define WBGC_IMPLEMENTATION
#include "../wbgc.h"
#include "../examples/bench/bench.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct node {
    struct node *next;
    void        *buf;     /* NULL, or a pointer-free buffer (first node only) */
    uint64_t     check;
    uint32_t     size;    /* requested bytes of this node */
    uint32_t     bufsize; /* requested bytes of buf */
} node;

typedef struct slot_meta {
    uint64_t gen;     /* the generation of the list in the slot now */
    uint32_t bytes;   /* requested bytes of that list */
} slot_meta;

static struct {
    double   secs;
    long     live_mb, small_mb;
    int      threads;
} opt = { 180, 205, 10, 2 };

static wbgc_heap *heap;
static node     **table;      /* the GC table of slots; root: table_root */
static node     **table_root;
static slot_meta *meta;       /* malloc memory: no GC pointers */
static size_t     nslots;     /* slots in use by the build */
static atomic_int shrink_now, stop_now, failed;
static atomic_ullong live_bytes;

typedef struct mut {
    pthread_t t;
    int       id;
    size_t    lo, hi;         /* its slots [lo, hi) */
    size_t    small_hi;       /* after the shrink: [lo, small_hi) */
    uint64_t  rng;
    uint64_t  steps;
    _Atomic uint64_t stall_max_ns;   /* reset by the reporter each interval */
    _Atomic uint64_t stall_cpu_ns;   /* the CPU time this thread ran in it */
    uint64_t  cpu0, cpu_ns;           /* its CPU time over the churn */
} mut;

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return *s;
}

static uint64_t check_of(size_t slot, uint64_t gen, unsigned pos)
{
    uint64_t x = (uint64_t)slot * 0x9e3779b97f4a7c15ull ^ gen * 0xbf58476d1ce4e5b9ull ^ pos;
    return x ^ (x >> 29);
}

/* a fresh list for slot `slot`, generation gen; *bytes gets its size */
static node *build_list(wbgc_p *p, uint64_t *rng, size_t slot, uint64_t gen, uint32_t *bytes)
{
    unsigned n = 1 + (unsigned)(rnd(rng) % 7);
    node *head = NULL;
    uint32_t total = 0;
    for (unsigned i = n; i-- > 0;) {
        uint32_t size = 16 * (2 + (uint32_t)(rnd(rng) % 27)); /* 32..448 */
        node *x = wbgc_alloc(p, size);
        if (!x) { fprintf(stderr, "longrun: allocation failed\n"); exit(2); }
        x->check = check_of(slot, gen, i);
        x->size = size;
        wbgc_write(p, (void **)&x->next, head);
        head = x;
        total += size;
    }
    if (rnd(rng) % 8 == 0) {
        uint32_t bs = 1024 * (1 + (uint32_t)(rnd(rng) % 8));
        uint64_t *b = wbgc_alloc_noscan(p, bs);
        if (!b) { fprintf(stderr, "longrun: allocation failed\n"); exit(2); }
        b[0] = b[bs / 8 - 1] = check_of(slot, gen, 99);
        head->bufsize = bs;
        wbgc_write(p, &head->buf, b);
        total += bs;
    }
    *bytes = total;
    return head;
}

static void lost(size_t slot, const char *what, const void *at)
{
    fprintf(stderr, "longrun: LOST: slot %zu: %s at %p\n", slot, what, at);
    atomic_store(&failed, 1);
}

static void verify_slot(size_t slot)
{
    node *x = table[slot];
    uint64_t gen = meta[slot].gen;
    uint32_t bytes = 0;
    if (!x) return;
    for (unsigned i = 0; x; x = x->next, i++) {
        if (x->check != check_of(slot, gen, i)) { lost(slot, "node check word", x); return; }
        bytes += x->size;
        if (x->buf) {
            uint64_t *b = x->buf;
            if (b[0] != check_of(slot, gen, 99) || b[x->bufsize / 8 - 1] != b[0]) {
                lost(slot, "buffer check word", b);
                return;
            }
            bytes += x->bufsize;
        }
    }
    if (bytes != meta[slot].bytes) lost(slot, "list size", table[slot]);
}

static void replace(wbgc_p *p, mut *m, size_t slot)
{
    uint32_t bytes;
    uint64_t gen = meta[slot].gen + 1;
    node *l = build_list(p, &m->rng, slot, gen, &bytes);
    atomic_fetch_add(&live_bytes, bytes);
    atomic_fetch_sub(&live_bytes, meta[slot].bytes);
    meta[slot].gen = gen;
    meta[slot].bytes = bytes;
    wbgc_write(p, (void **)&table[slot], l);
}

static void *mutator(void *arg)
{
    mut *m = arg;
    wbgc_p *p = wbgc_attach(heap);
    size_t hi = m->hi;
    int shrunk = 0;
    uint64_t last = (uint64_t)now_ns(CLOCK_MONOTONIC), last_cpu = (uint64_t)now_ns(CLOCK_THREAD_CPUTIME_ID);
    m->cpu0 = last_cpu;
    while (!atomic_load_explicit(&stop_now, memory_order_relaxed)) {
        if (!shrunk && atomic_load_explicit(&shrink_now, memory_order_relaxed)) {
            for (size_t s = m->small_hi; s < m->hi; s++) {
                atomic_fetch_sub(&live_bytes, meta[s].bytes);
                meta[s].bytes = 0;
                wbgc_write(p, (void **)&table[s], NULL);
            }
            hi = m->small_hi;
            shrunk = 1;
        }
        size_t span = hi - m->lo;
        replace(p, m, m->lo + rnd(&m->rng) % span);
        if ((m->steps++ & 15) == 0) verify_slot(m->lo + rnd(&m->rng) % span);
        uint64_t t = (uint64_t)now_ns(CLOCK_MONOTONIC), gap = t - last;
        last = t;
        uint64_t cpu = (uint64_t)now_ns(CLOCK_THREAD_CPUTIME_ID);
        if (gap > atomic_load_explicit(&m->stall_max_ns, memory_order_relaxed)) {
            atomic_store_explicit(&m->stall_max_ns, gap, memory_order_relaxed);
            atomic_store_explicit(&m->stall_cpu_ns, cpu - last_cpu, memory_order_relaxed);
        }
        last_cpu = cpu;
    }
    m->cpu_ns = (uint64_t)now_ns(CLOCK_THREAD_CPUTIME_ID) - m->cpu0;
    for (size_t s = m->lo; s < hi; s++) verify_slot(s);
    wbgc_detach(p);
    return NULL;
}

static long rss_mib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE) >> 20;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* the pauses seen so far (grown as needed) */
static uint64_t *pauses;
static size_t npauses, cap_pauses, lost_pauses;

static void take_pauses(wbgc_stats *st, uint64_t *seen)
{
    uint64_t k = *seen;
    if (st->pause_count - k > 256) { lost_pauses += st->pause_count - k - 256; k = st->pause_count - 256; }
    for (; k < st->pause_count; k++) {
        if (npauses == cap_pauses) {
            cap_pauses = cap_pauses ? 2 * cap_pauses : 4096;
            pauses = realloc(pauses, cap_pauses * sizeof *pauses);
            if (!pauses) { perror("longrun"); exit(2); }
        }
        pauses[npauses++] = st->pause_recent_ns[k % 256];
    }
    *seen = st->pause_count;
}

static uint64_t max_from(size_t from)
{
    uint64_t m = 0;
    for (size_t i = from; i < npauses; i++) if (pauses[i] > m) m = pauses[i];
    return m;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: longrun [--secs S] [--live-mb M] [--small-mb M] [--threads N]\n");
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--secs")) opt.secs = (double)bench_arg_long(argc, argv, &i, 6, usage, "longrun");
        else if (!strcmp(argv[i], "--live-mb")) opt.live_mb = bench_arg_long(argc, argv, &i, 2, usage, "longrun");
        else if (!strcmp(argv[i], "--small-mb")) opt.small_mb = bench_arg_long(argc, argv, &i, 1, usage, "longrun");
        else if (!strcmp(argv[i], "--threads")) opt.threads = (int)bench_arg_long(argc, argv, &i, 1, usage, "longrun");
        else if (!strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        else { usage(stderr); return 2; }
    }
    if (opt.small_mb >= opt.live_mb) opt.small_mb = opt.live_mb / 2;
    if (opt.threads > 64) opt.threads = 64;

    heap = wbgc_heap_new(NULL);
    if (!heap) return 2;
    wbgc_p *p = wbgc_attach(heap);

    /* the table: sized for the live set at ~660 requested bytes per list */
    size_t cap = (size_t)opt.live_mb * 2048;
    table = wbgc_alloc(p, cap * sizeof *table);
    meta = calloc(cap, sizeof *meta);
    if (!table || !meta) { fprintf(stderr, "longrun: no memory for the table\n"); return 2; }
    wbgc_add_roots(heap, &table_root, sizeof table_root);
    wbgc_write(p, (void **)&table_root, table);

    double t0 = now_ns(CLOCK_MONOTONIC);
    uint64_t rng = 88172645463325252ull;
    mut tmp = { .rng = rng };
    while (atomic_load(&live_bytes) < (uint64_t)opt.live_mb << 20 && nslots < cap)
        replace(p, &tmp, nslots++);
    wbgc_collect(p);
    wbgc_stats st;
    wbgc_get_stats(heap, &st);
    printf("longrun: %zu lists, %.1f MiB requested, heap_live %.1f MiB, RSS %ld MiB, built in %.1f s;"
           " %d mutators for %.0f s, shrink to %ld MiB at %.0f s\n",
           nslots, atomic_load(&live_bytes) / 1048576.0, st.heap_live / 1048576.0, rss_mib(),
           (now_ns(CLOCK_MONOTONIC) - t0) / 1e9, opt.threads, opt.secs, opt.small_mb, opt.secs * 5 / 6);
    printf("load average at start: %s\n", loadavg());

    mut muts[64];
    memset(muts, 0, sizeof muts);
    size_t per = nslots / (size_t)opt.threads;
    double small_frac = (double)opt.small_mb / (double)opt.live_mb;
    for (int i = 0; i < opt.threads; i++) {
        mut *m = &muts[i];
        m->id = i;
        m->lo = per * (size_t)i;
        m->hi = i == opt.threads - 1 ? nslots : per * (size_t)(i + 1);
        m->small_hi = m->lo + (size_t)((double)(m->hi - m->lo) * small_frac);
        if (m->small_hi <= m->lo) m->small_hi = m->lo + 1;
        m->rng = rng + 7919u * (uint64_t)(i + 1);
    }
    /* main gives its P back: it only watches from now on */
    wbgc_detach(p);
    p = NULL;

    uint64_t seen = st.pause_count;
    npauses = 0;
    wbgc_stats s0 = st, si = st;
    double start = now_ns(CLOCK_MONOTONIC), last_print = start, shrink_at = 0;
    double proc0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < opt.threads; i++) pthread_create(&muts[i].t, NULL, mutator, &muts[i]);

    printf("\n%6s %6s %8s %8s %8s %8s %6s %9s %17s %8s %8s\n", "t s", "cycles", "live MiB", "goal MiB",
           "sys MiB", "RSS MiB", "pauses", "max pause", "max stall (on CPU)", "assist %", "steps/s");
    uint64_t steps_i = 0, cycles_shrink = 0, back_cycles = 0;
    static const int marks[] = { 1, 2, 3, 5, 10 };  /* RSS this many cycles after the shrink */
    long rss_after[5] = { -1, -1, -1, -1, -1 };
    double back_secs = -1;
    long peak_rss = 0, rss_shrink = 0;
    size_t pauses_from = 0;
    uint64_t stall_big = 0, stall_big_shrink = 0;
    for (;;) {
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        double t = now_ns(CLOCK_MONOTONIC);
        wbgc_get_stats(heap, &st);
        take_pauses(&st, &seen);
        long rss = rss_mib();
        if (rss > peak_rss) peak_rss = rss;
        for (int k = 0; shrink_at && k < 5; k++)
            if (rss_after[k] < 0 && st.cycles - cycles_shrink >= (uint64_t)marks[k]) rss_after[k] = rss;
        if (shrink_at && back_secs < 0 && rss <= 4 * opt.small_mb + 32) {
            back_secs = (t - shrink_at) / 1e9;
            back_cycles = st.cycles - cycles_shrink;
        }
        if (!shrink_at && t - start >= opt.secs * 5 / 6 * 1e9) {
            atomic_store(&shrink_now, 1);
            shrink_at = t;
            cycles_shrink = st.cycles;
            rss_shrink = rss;
            printf("-- shrinking the live set to %ld MiB (RSS now %ld MiB)\n", opt.small_mb, rss);
        }
        if (t - last_print >= 10e9 || t - start >= opt.secs * 1e9) {
            uint64_t stall = 0, stall_cpu = 0, steps = 0;
            for (int i = 0; i < opt.threads; i++) {
                uint64_t c = atomic_load(&muts[i].stall_cpu_ns), g = atomic_exchange(&muts[i].stall_max_ns, 0);
                if (g > stall) { stall = g; stall_cpu = c; }
                steps += muts[i].steps;
            }
            if (shrink_at) { if (stall > stall_big_shrink) stall_big_shrink = stall; }
            else if (stall > stall_big) stall_big = stall;
            double wall = (t - last_print) / 1e9;
            double assist = (double)(st.mark_assist_ns - si.mark_assist_ns) / (wall * 1e9 * opt.threads);
            printf("%6.0f %6llu %8.1f %8.1f %8.1f %8ld %6zu %7.2fms %7.2fms (%5.2f) %7.1f%% %8.0f\n",
                   (t - start) / 1e9, (unsigned long long)st.cycles, st.heap_live / 1048576.0,
                   st.heap_goal / 1048576.0, st.heap_sys / 1048576.0, rss, npauses - pauses_from,
                   max_from(pauses_from) / 1e6, stall / 1e6, stall_cpu / 1e6, 100 * assist, (double)(steps - steps_i) / wall);
            fflush(stdout);
            pauses_from = npauses;
            steps_i = steps;
            si = st;
            last_print = t;
        }
        if (t - start >= opt.secs * 1e9) break;
    }
    atomic_store(&stop_now, 1);
    double proc = now_ns(CLOCK_PROCESS_CPUTIME_ID) - proc0;
    for (int i = 0; i < opt.threads; i++) pthread_join(muts[i].t, NULL);
    double end = now_ns(CLOCK_MONOTONIC);
    double mut_cpu = 0;
    for (int i = 0; i < opt.threads; i++) mut_cpu += (double)muts[i].cpu_ns;
    wbgc_get_stats(heap, &st);
    take_pauses(&st, &seen);

    uint64_t *sorted = malloc((npauses ? npauses : 1) * sizeof *sorted);
    memcpy(sorted, pauses, npauses * sizeof *sorted);
    qsort(sorted, npauses, sizeof *sorted, cmp_u64);
    uint64_t pmax = npauses ? sorted[npauses - 1] : 0, p99 = npauses ? sorted[npauses * 99 / 100] : 0;
    double wall = (end - start) / 1e9;
    printf("\nlongrun summary (%d mutators, %.0f s, default mode, live %ld MiB then %ld MiB)\n",
           opt.threads, wall, opt.live_mb, opt.small_mb);
    printf("  cycles            %llu\n", (unsigned long long)(st.cycles - s0.cycles));
    printf("  pauses            %zu; longest %.3f ms, p99 %.3f ms%s\n", npauses, pmax / 1e6, p99 / 1e6,
           lost_pauses ? " (some not seen: more than 256 between two reads)" : "");
    printf("  longest stall     %.2f ms before the shrink, %.2f ms after (gap between two mutator steps)\n",
           stall_big / 1e6, stall_big_shrink / 1e6);
    printf("  assists           %.1f of %.1f mutator thread-seconds (%.1f%%)\n",
           (st.mark_assist_ns - s0.mark_assist_ns) / 1e9, wall * opt.threads,
           100.0 * (double)(st.mark_assist_ns - s0.mark_assist_ns) / (wall * 1e9 * opt.threads));
    /* the collector's CPU: its own threads (process CPU the mutators did
       not use; the monitor's share is negligible) plus the assists (their
       wall time: a little high when an assist waits or is descheduled) */
    double assist_ns = (double)(st.mark_assist_ns - s0.mark_assist_ns);
    printf("  collector CPU     %.0f%% of the process's %.1f CPU-seconds: background threads %.0f%%,"
           " assists %.0f%%\n", 100 * (proc - mut_cpu + assist_ns) / proc, proc / 1e9,
           100 * (proc - mut_cpu) / proc, 100 * assist_ns / proc);
    printf("  peak RSS          %ld MiB\n", peak_rss);
    if (back_secs >= 0)
        printf("  after the shrink  RSS %ld -> at most %ld MiB in %.1f s, %llu cycles\n", rss_shrink,
               4 * opt.small_mb + 32, back_secs, (unsigned long long)back_cycles);
    else
        printf("  after the shrink  RSS %ld MiB did NOT fall to %ld MiB in %.0f s (%llu cycles); now %ld MiB\n",
               rss_shrink, 4 * opt.small_mb + 32, (end - shrink_at) / 1e9,
               (unsigned long long)(st.cycles - cycles_shrink), rss_mib());
    printf("  RSS after the shrink, MiB:");
    for (int k = 0; k < 5; k++) printf(" %ld (%d cycle%s)", rss_after[k], marks[k], marks[k] > 1 ? "s" : "");
    printf("\n  load average at the end: %s\n", loadavg());
    int bad = atomic_load(&failed);
    printf("longrun: %s\n", bad ? "FAILED: objects lost (see above)" : "every list checked, nothing lost");
    free(sorted);
    free(pauses);
    return bad;
}
