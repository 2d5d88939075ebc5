/* gcb.h -- the thin layer that lets one benchmark source run on three memory
 * managers: wbgc, Boehm GC and plain malloc/free. Pick one at compile time:
 *
 *   -DGCB_WBGC    wbgc.h (this repository); modes conc (default), incr, stw
 *   -DGCB_BOEHM   Boehm GC (<gc/gc.h>, -lgc); modes parallel (default),
 *                 single, incr
 *   -DGCB_MALLOC  calloc/malloc/free; the program frees what it drops
 *
 *   gcc -O2 -Wall -Wextra -Werror -DGCB_WBGC  examples/bench/gc/gcbench.c -o build/gcb/gcbench.wbgc -pthread -lm
 *   gcc -O2 -Wall -Wextra -Werror -DGCB_BOEHM examples/bench/gc/gcbench.c -o build/gcb/gcbench.boehm -pthread -lm -lgc
 *
 * A benchmark includes this file once, calls gcb_init with the mode named on
 * its command line, does its work through gcb_alloc / gcb_alloc_noscan /
 * gcb_write / gcb_write2 / gcb_free (and gcb_safepoint in loops that do not
 * allocate), runs threads through gcb_thread_create,
 * gcb_thread_enter/leave and gcb_join, and ends with gcb_done. Everything is
 * static inline or static: the layer costs what the backend's own call costs.
 *
 * What gcb_init starts besides the backend: a sampler thread that wakes every
 * GCB_SAMPLE_MS milliseconds, reads the process's resident size from
 * /proc/self/statm and, for wbgc, the collector's stats (heap_alloc, and the
 * new entries of the 256-entry pause ring, so that no pause is missed unless
 * more than 256 happen within one period; those are counted as lost). The
 * sampler touches no GC memory; under Boehm it is created with the real
 * pthread_create, so it is not a registered thread and Boehm never stops or
 * scans it. Under Boehm the stop-the-world windows are taken from
 * GC_set_on_collection_event (see gcb__boehm_event).
 *
 * Results: when the environment names a file in GCB_OUT, gcb_done writes to
 * it one "key value" line per fact, then "p NS" per pause, "c NS" per whole
 * collection (Boehm), "s MS RSS_KIB HEAP_KIB" per sample. examples/bench/gc/
 * report.c reads it. */
#ifndef GCB_H
#define GCB_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>

#if defined(GCB_WBGC) + defined(GCB_BOEHM) + defined(GCB_MALLOC) != 1
#error "define exactly one of GCB_WBGC, GCB_BOEHM, GCB_MALLOC"
#endif

/* The sampler must not be a Boehm-registered thread (it would be stopped and
   its stack scanned at every collection, a cost no program pays), and gc.h
   turns pthread_create into GC_pthread_create (and pthread_join into
   GC_pthread_join, which knows only registered threads): keep the real ones. */
typedef int (*gcb__create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
static const gcb__create_fn gcb__raw_pthread_create = pthread_create;
static int (*const gcb__raw_pthread_join)(pthread_t, void **) = pthread_join;

#if defined(GCB_WBGC)
#define WBGC_IMPLEMENTATION
#include "../../../wbgc.h"
#define GCB_BACKEND "wbgc"
#define GCB_DEFAULT_MODE "conc"
#define GCB_EXPLICIT_FREE 0
#elif defined(GCB_BOEHM)
#define GC_THREADS /* pthread_create registers the new thread with the collector */
#include <gc/gc.h>
#define GCB_BACKEND "boehm"
#define GCB_DEFAULT_MODE "parallel"
#define GCB_EXPLICIT_FREE 0
#else
#define GCB_BACKEND "malloc"
#define GCB_DEFAULT_MODE "malloc"
#define GCB_EXPLICIT_FREE 1 /* the programs free what they drop */
#endif

/* Not every program uses every helper. */
#define GCB_MAYBE_UNUSED __attribute__((unused))

#ifndef GCB_SAMPLE_MS
#define GCB_SAMPLE_MS 5
#endif

/* One per thread that allocates: the backend's context and the thread's own
   allocation counters (summed at gcb_thread_leave, read by --demo). */
typedef struct gcb_t {
#if defined(GCB_WBGC)
    wbgc_p *p;
#endif
    uint64_t nobj, nbytes;
} gcb_t;

__attribute__((noreturn, format(printf, 1, 2))) static void gcb_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "gcb: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static inline uint64_t gcb_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- growable arrays, malloc memory (invisible to every collector) ------ */

typedef struct { uint64_t *v; size_t n, cap; } gcb__vec;

static void gcb__push(gcb__vec *a, uint64_t x) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4096;
        uint64_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) gcb_die("out of memory for samples");
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
}

/* ---- process-wide state -------------------------------------------------- */

static struct {
    const char *prog, *mode;
    int demo;
    uint64_t t0;              /* gcb_init's clock: wall time counts from here */
    pthread_t sampler;
    int sampler_stop;         /* atomic */
    gcb__vec samples;         /* triples: ms since t0, RSS KiB, heap KiB */
    gcb__vec pauses;          /* ns, every pause seen */
    gcb__vec colls;           /* ns, whole collections (Boehm) */
    uint64_t lost;            /* pauses that fell out of the ring unseen */
    uint64_t nobj, nbytes;    /* summed over threads */
    uint64_t peak_heap;       /* largest heap_alloc sampled (wbgc) */
    uint64_t peak_live;       /* largest heap_live sampled: what a cycle found live */
    gcb_t main;
#if defined(GCB_WBGC)
    wbgc_heap *h;
    uint64_t pauses_seen;     /* pause_count already taken from the ring */
#elif defined(GCB_BOEHM)
    uint64_t gc_no0;
#endif
} gcb__g;

#if defined(GCB_BOEHM)
/* Boehm's collection events arrive with the allocation lock held, so there
   is one writer at a time. Nothing in them may allocate, not even with
   malloc: some arrive while the other threads are suspended, perhaps inside
   malloc holding its lock. So the buffers are preallocated in gcb_init (with
   malloc, which Boehm does not scan as roots, unlike a static array) and
   overflow is only counted. */
enum { GCB__BOEHM_CAP = 1 << 20 };
static uint64_t *gcb__bp, *gcb__bc;       /* stop windows, whole collections */
static size_t gcb__bpn, gcb__bcn;
static uint64_t gcb__stop_t0, gcb__coll_t0, gcb__blost;

/* The window in which Boehm holds every mutator: from just before it stops
   the world (PRE_STOP_WORLD) to just after it restarts it
   (POST_START_WORLD). With GC_enable_incremental there are several per
   collection. A whole collection (START..END) is kept separately: in the
   single-marker mode the thread that triggered it is held for all of it. */
static void GC_CALLBACK gcb__boehm_event(GC_EventType e) {
    switch (e) {
    case GC_EVENT_PRE_STOP_WORLD: gcb__stop_t0 = gcb_now_ns(); break;
    case GC_EVENT_POST_START_WORLD:
        if (gcb__stop_t0) {
            if (gcb__bpn < GCB__BOEHM_CAP) gcb__bp[gcb__bpn++] = gcb_now_ns() - gcb__stop_t0;
            else gcb__blost++;
            gcb__stop_t0 = 0;
        }
        break;
    case GC_EVENT_START: gcb__coll_t0 = gcb_now_ns(); break;
    case GC_EVENT_END:
        if (gcb__coll_t0) {
            if (gcb__bcn < GCB__BOEHM_CAP) gcb__bc[gcb__bcn++] = gcb_now_ns() - gcb__coll_t0;
            gcb__coll_t0 = 0;
        }
        break;
    default: break;
    }
}
#endif

/* ---- allocation and stores ---------------------------------------------- */

/* gcb_alloc: zeroed memory the collector scans for pointers. */
static inline void *gcb_alloc(gcb_t *t, size_t n) {
    t->nobj++;
    t->nbytes += n;
#if defined(GCB_WBGC)
    void *r = wbgc_alloc(t->p, n);
#elif defined(GCB_BOEHM)
    void *r = GC_MALLOC(n);
#else
    void *r = calloc(1, n);
#endif
    if (__builtin_expect(!r, 0)) gcb_die("out of memory (%zu bytes)", n);
    return r;
}

/* gcb_alloc_noscan: memory that never holds GC pointers (numbers, text).
   Not zeroed under Boehm and malloc: the programs initialise what they read. */
static inline void *gcb_alloc_noscan(gcb_t *t, size_t n) {
    t->nobj++;
    t->nbytes += n;
#if defined(GCB_WBGC)
    void *r = wbgc_alloc_noscan(t->p, n);
#elif defined(GCB_BOEHM)
    void *r = GC_MALLOC_ATOMIC(n);
#else
    void *r = malloc(n);
#endif
    if (__builtin_expect(!r, 0)) gcb_die("out of memory (%zu bytes)", n);
    return r;
}

/* gcb_free: only malloc frees; the collectors find garbage themselves. */
static inline void gcb_free(void *q) {
#if GCB_EXPLICIT_FREE
    free(q);
#else
    (void)q;
#endif
}

/* gcb_write: *slot = val for a pointer field of a heap object. wbgc needs
   its write barrier on every such store; the others take a plain store. */
static inline void gcb_write(gcb_t *t, void *slot, void *val) {
#if defined(GCB_WBGC)
    wbgc_write(t->p, slot, val);
#else
    (void)t;
    *(void **)slot = val;
#endif
}

/* gcb_write2: two initialising stores into a new object (one barrier test). */
static inline void gcb_write2(gcb_t *t, void *slot_a, void *a, void *slot_b, void *b) {
#if defined(GCB_WBGC)
    wbgc_write2(t->p, slot_a, a, slot_b, b);
#else
    (void)t;
    *(void **)slot_a = a;
    *(void **)slot_b = b;
#endif
}

/* gcb_safepoint: for loops that do not allocate (walking a tree to check
   it). wbgc stops threads only at safepoints, and allocations are its only
   other ones: without this, a thread walking a big tree holds up every other
   thread's pause until it is done (wbgc's rule 3). Boehm stops threads with
   signals and malloc never stops them: nothing to do there. */
static inline void gcb_safepoint(gcb_t *t) {
#if defined(GCB_WBGC)
    wbgc_safepoint(t->p);
#else
    (void)t;
#endif
}

static inline void gcb_collect(gcb_t *t) {
#if defined(GCB_WBGC)
    wbgc_collect(t->p);
#elif defined(GCB_BOEHM)
    (void)t;
    GC_gcollect();
#else
    (void)t;
#endif
}

/* gcb_blocking_begin/end bracket a wait: wbgc must not wait for a thread
   that is blocked. Macros, so that wbgc's register capture happens in the
   caller's own frame. */
#if defined(GCB_WBGC)
#define gcb_blocking_begin(t) wbgc_blocking_begin((t)->p)
#define gcb_blocking_end(t) wbgc_blocking_end((t)->p)
#else
#define gcb_blocking_begin(t) ((void)(t))
#define gcb_blocking_end(t) ((void)(t))
#endif

/* ---- threads ------------------------------------------------------------- */

/* gcb_thread_create: a thread that may allocate (Boehm registers it: gc.h
   maps pthread_create to GC_pthread_create). arg must not be the only
   reference to a GC object: wbgc cannot see it. */
GCB_MAYBE_UNUSED static void gcb_thread_create(pthread_t *th, void *(*fn)(void *), void *arg) {
    if (pthread_create(th, NULL, fn, arg)) gcb_die("pthread_create failed");
}

/* gcb_thread_enter: first thing in a new thread; returns its context. */
GCB_MAYBE_UNUSED static gcb_t *gcb_thread_enter(void) {
    gcb_t *t = calloc(1, sizeof *t);
    if (!t) gcb_die("out of memory");
#if defined(GCB_WBGC)
    t->p = wbgc_attach(gcb__g.h);
    if (!t->p) gcb_die("wbgc_attach failed");
#endif
    return t;
}

/* gcb_thread_leave: last thing in the thread (wbgc: detach before anyone can
   learn that the thread is done). */
GCB_MAYBE_UNUSED static void gcb_thread_leave(gcb_t *t) {
    __atomic_fetch_add(&gcb__g.nobj, t->nobj, __ATOMIC_RELAXED);
    __atomic_fetch_add(&gcb__g.nbytes, t->nbytes, __ATOMIC_RELAXED);
#if defined(GCB_WBGC)
    wbgc_detach(t->p);
#endif
    free(t);
}

/* gcb_join: join a thread without holding up a collection meanwhile. */
GCB_MAYBE_UNUSED static void gcb_join(gcb_t *t, pthread_t th) {
    gcb_blocking_begin(t);
    int rc = pthread_join(th, NULL);
    gcb_blocking_end(t);
    if (rc) gcb_die("pthread_join failed");
}

/* ---- the sampler ---------------------------------------------------------- */

static uint64_t gcb__rss_kib(int fd) {
    char buf[128];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return 0;
    buf[n] = 0;
    unsigned long size, resident;
    if (sscanf(buf, "%lu %lu", &size, &resident) != 2) return 0;
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE) / 1024;
}

#if defined(GCB_WBGC)
/* Takes the pauses the ring gained since the last call; returns heap_alloc. */
static uint64_t gcb__wbgc_poll(void) {
    static wbgc_stats st; /* 2 KiB: not on the sampler's stack; one caller at a time */
    wbgc_get_stats(gcb__g.h, &st);
    uint64_t k = gcb__g.pauses_seen;
    if (st.pause_count - k > 256) {
        gcb__g.lost += st.pause_count - k - 256;
        k = st.pause_count - 256;
    }
    for (; k < st.pause_count; k++) gcb__push(&gcb__g.pauses, st.pause_recent_ns[k % 256]);
    gcb__g.pauses_seen = k;
    if (st.heap_alloc > gcb__g.peak_heap) gcb__g.peak_heap = st.heap_alloc;
    if (st.heap_live > gcb__g.peak_live) gcb__g.peak_live = st.heap_live;
    return st.heap_alloc;
}
#endif

static void gcb__sample(int fd) {
    uint64_t heap = 0;
#if defined(GCB_WBGC)
    heap = gcb__wbgc_poll();
#endif
    gcb__push(&gcb__g.samples, (gcb_now_ns() - gcb__g.t0) / 1000000u);
    gcb__push(&gcb__g.samples, gcb__rss_kib(fd));
    gcb__push(&gcb__g.samples, heap / 1024);
}

static void *gcb__sampler(void *arg) {
    (void)arg;
    int fd = open("/proc/self/statm", O_RDONLY);
    struct timespec d = { 0, GCB_SAMPLE_MS * 1000000L };
    while (!__atomic_load_n(&gcb__g.sampler_stop, __ATOMIC_ACQUIRE)) {
        gcb__sample(fd);
        nanosleep(&d, NULL);
    }
    gcb__sample(fd);
    if (fd >= 0) close(fd);
    return NULL;
}

/* ---- start and end ------------------------------------------------------- */

/* gcb_init: start the backend in the named mode (NULL: its default), start
   the clock and the sampler; returns the main thread's context. demo: print
   a plain-words account at gcb_done. */
static gcb_t *gcb_init(const char *prog, const char *mode, int demo) {
    gcb__g.prog = prog;
    gcb__g.mode = mode ? mode : GCB_DEFAULT_MODE;
    gcb__g.demo = demo;
    gcb__g.t0 = gcb_now_ns();
    mode = gcb__g.mode;
#if defined(GCB_WBGC)
    wbgc_config cfg;
    wbgc_config_default(&cfg);                 /* gc_percent 100 */
    if (!strcmp(mode, "conc")) { /* defaults: background mark workers */ }
    else if (!strcmp(mode, "incr")) cfg.mark_workers = 0;
    else if (!strcmp(mode, "stw")) cfg.flags |= WBGC_STW;
    else gcb_die("%s: wbgc modes are conc, incr, stw (not '%s')", prog, mode);
    gcb__g.h = wbgc_heap_new(&cfg);
    if (!gcb__g.h) gcb_die("wbgc_heap_new failed");
    gcb__g.main.p = wbgc_attach(gcb__g.h);
    if (!gcb__g.main.p) gcb_die("wbgc_attach failed");
#elif defined(GCB_BOEHM)
    int single = !strcmp(mode, "single"), incr = !strcmp(mode, "incr");
    if (!single && !incr && strcmp(mode, "parallel"))
        gcb_die("%s: Boehm modes are single, parallel, incr (not '%s')", prog, mode);
    if (single) GC_set_markers_count(1);
    GC_INIT();
    if (incr) GC_enable_incremental();
    /* Boehm starts its marker threads only when the program creates its
       first thread; a single-threaded program would otherwise never mark in
       parallel, whatever the marker count. Start them, as its manual
       suggests for single-threaded clients that want parallel marking. */
    if (!single) GC_start_mark_threads();
    gcb__bp = malloc(GCB__BOEHM_CAP * sizeof *gcb__bp);
    gcb__bc = malloc(GCB__BOEHM_CAP * sizeof *gcb__bc);
    if (!gcb__bp || !gcb__bc) gcb_die("out of memory");
    gcb__g.gc_no0 = GC_get_gc_no();
    GC_set_on_collection_event(gcb__boehm_event);
#else
    if (strcmp(mode, "malloc")) gcb_die("%s: the malloc backend has one mode, malloc (not '%s')", prog, mode);
#endif
    if (gcb__raw_pthread_create(&gcb__g.sampler, NULL, gcb__sampler, NULL)) gcb_die("pthread_create failed");
    return &gcb__g.main;
}

static const char *gcb__human(double bytes, char *buf, size_t n) {
    if (bytes >= 1024.0 * 1024 * 1024) snprintf(buf, n, "%.2f GiB", bytes / (1024.0 * 1024 * 1024));
    else if (bytes >= 1024.0 * 1024) snprintf(buf, n, "%.1f MiB", bytes / (1024.0 * 1024));
    else snprintf(buf, n, "%.1f KiB", bytes / 1024.0);
    return buf;
}

static int gcb__cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The --demo account: what the collector did, for someone who has never
   looked at a garbage collector's statistics. */
static void gcb__demo_print(double wall, uint64_t cycles, uint64_t live_bytes) {
    char a[32], b[32], c[32], d[32];
    uint64_t peak_rss = 0;
    for (size_t i = 1; i < gcb__g.samples.n; i += 3)
        if (gcb__g.samples.v[i] > peak_rss) peak_rss = gcb__g.samples.v[i];
    uint64_t *v = gcb__g.pauses.v;
    size_t n = gcb__g.pauses.n;
    if (n) qsort(v, n, sizeof *v, gcb__cmp_u64);
    printf("\nWhat the garbage collector (%s, mode %s) did:\n\n", GCB_BACKEND, gcb__g.mode);
    printf("  The program ran for %.2f seconds and allocated %llu objects, %s in all.\n",
           wall, (unsigned long long)gcb__g.nobj, gcb__human((double)gcb__g.nbytes, a, sizeof a));
    printf("  It never freed one: the collector found the ones no longer reachable\n"
           "  and reused their memory, in %llu collection cycles.\n", (unsigned long long)cycles);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 ru.ru_stime.tv_usec / 1e6;
    printf("  Its threads, the collector's own included, used %.2f s of CPU time.\n", cpu);
    if (n) {
        uint64_t sum = 0;
        for (size_t i = 0; i < n; i++) sum += v[i];
        printf("\n  A pause is a moment when the collector stops every thread of the\n"
               "  program at once. There were %zu pauses: the longest %.1f microseconds,\n"
               "  a typical one (the median) %.1f microseconds, %.3f ms in all.\n",
               n, v[n - 1] / 1e3, v[n / 2] / 1e3, sum / 1e6);
#if defined(GCB_WBGC)
        if (strcmp(gcb__g.mode, "stw"))
            printf("  The rest of the collector's work -- finding what is still reachable,\n"
                   "  freeing the rest -- ran alongside the program, not in the pauses.\n");
#endif
    }
    printf("\n  The heap (memory in objects) peaked at %s. The most data a collection\n"
           "  found still in use was %s (the program keeps %s to the end; its\n"
           "  biggest temporary tree is live only while it is built). Each cycle aims\n"
           "  to end before the heap is twice what the last one found live\n"
           "  (gc_percent = 100), so it starts on the way there; what is allocated\n"
           "  during a cycle waits for the next one. The process's resident memory\n"
           "  peaked at %s.\n",
           gcb__human((double)gcb__g.peak_heap, a, sizeof a), gcb__human((double)gcb__g.peak_live, b, sizeof b),
           gcb__human((double)live_bytes, c, sizeof c), gcb__human((double)peak_rss * 1024, d, sizeof d));
    if (gcb__g.lost) printf("  (%llu pauses went unrecorded.)\n", (unsigned long long)gcb__g.lost);
}

/* gcb_done: stop the clock and the sampler, write the results (GCB_OUT),
   shut the backend down. check: "ok" or what went wrong (then exit 1).
   live_bytes: what the program keeps live all along, for --demo. */
static int gcb_done(gcb_t *t, const char *check, uint64_t live_bytes) {
    double wall = (double)(gcb_now_ns() - gcb__g.t0) / 1e9;
    gcb__g.nobj += t->nobj;
    gcb__g.nbytes += t->nbytes;
    /* joined inside a blocking region: a collection may need this thread */
    gcb_blocking_begin(t);
    __atomic_store_n(&gcb__g.sampler_stop, 1, __ATOMIC_RELEASE);
    gcb__raw_pthread_join(gcb__g.sampler, NULL);
    gcb_blocking_end(t);

    uint64_t cycles = 0, total_alloc = gcb__g.nbytes;
    int markers = 0;
#if defined(GCB_WBGC)
    gcb__wbgc_poll();
    wbgc_stats st;
    wbgc_get_stats(gcb__g.h, &st);
    cycles = st.cycles;
    total_alloc = st.total_alloc;
    markers = !strcmp(gcb__g.mode, "conc") ? -1 : 0;
#elif defined(GCB_BOEHM)
    cycles = GC_get_gc_no() - gcb__g.gc_no0;
    GC_set_on_collection_event(0);
    for (size_t i = 0; i < gcb__bpn; i++) gcb__push(&gcb__g.pauses, gcb__bp[i]);
    for (size_t i = 0; i < gcb__bcn; i++) gcb__push(&gcb__g.colls, gcb__bc[i]);
    gcb__g.lost = gcb__blost;
    markers = GC_get_parallel() + 1;
    total_alloc = GC_get_total_bytes();
#endif

    const char *out = getenv("GCB_OUT");
    if (out && *out) {
        FILE *f = fopen(out, "w");
        if (!f) gcb_die("cannot write %s: %s", out, strerror(errno));
        fprintf(f, "backend %s\nmode %s\nwall_s %.6f\ncycles %llu\nlost %llu\nmarkers %d\n"
                   "objects %llu\nbytes %llu\ntotal_alloc %llu\npeak_heap %llu\ncheck %s\n",
                GCB_BACKEND, gcb__g.mode, wall, (unsigned long long)cycles,
                (unsigned long long)gcb__g.lost, markers, (unsigned long long)gcb__g.nobj,
                (unsigned long long)gcb__g.nbytes, (unsigned long long)total_alloc,
                (unsigned long long)gcb__g.peak_heap, check);
        for (size_t i = 0; i < gcb__g.pauses.n; i++) fprintf(f, "p %llu\n", (unsigned long long)gcb__g.pauses.v[i]);
        for (size_t i = 0; i < gcb__g.colls.n; i++) fprintf(f, "c %llu\n", (unsigned long long)gcb__g.colls.v[i]);
        for (size_t i = 0; i + 2 < gcb__g.samples.n; i += 3)
            fprintf(f, "s %llu %llu %llu\n", (unsigned long long)gcb__g.samples.v[i],
                    (unsigned long long)gcb__g.samples.v[i + 1], (unsigned long long)gcb__g.samples.v[i + 2]);
        if (fclose(f)) gcb_die("cannot write %s", out);
    }
    if (gcb__g.demo) gcb__demo_print(wall, cycles, live_bytes);
    else
        printf("%s %s/%s: %.3f s, %llu cycles, %zu pauses, check %s\n", gcb__g.prog, GCB_BACKEND,
               gcb__g.mode, wall, (unsigned long long)cycles, gcb__g.pauses.n, check);
    fflush(stdout);

#if defined(GCB_WBGC)
    wbgc_detach(t->p);
    wbgc_heap_free(gcb__g.h);
#endif
    free(gcb__g.samples.v);
    free(gcb__g.pauses.v);
    free(gcb__g.colls.v);
    if (strcmp(check, "ok")) {
        fprintf(stderr, "%s: CHECK FAILED: %s\n", gcb__g.prog, check);
        return 1;
    }
    return 0;
}

#endif
