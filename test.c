/* test.c -- wbgc's test runner: one binary, a table of tests.
 *
 *   gcc -O2 -Wall -Wextra -Werror -pthread test.c -o test && ./test
 *   ./test --list        the names of all tests, one per line
 *   ./test NAME...       run only the named tests
 *
 * Every test makes its own heap (wbgc_heap_new with a config whose on_error
 * records the messages), attaches, works, detaches and frees the heap, so a
 * test can run alone and no test depends on another. CHECK records file:line
 * and the failed expression and keeps going. The last line of output is
 * always "N passed, N failed" (counting tests); the exit status is non-zero
 * when any test failed. A crash or a hang (watchdog) still prints that line,
 * counting the test that died and those not run as failed.
 *
 * Conservative stack scanning means a stale copy of a pointer on the stack
 * or in a register can keep "garbage" alive by accident. So tests that check
 * reclamation make the garbage in noinline helpers, wipe the dead part of the
 * stack (scrub_stack) before collecting, and assert on bulk numbers
 * (heap_alloc), never on one object. At -O0 a function keeps copies of
 * every pointer it touches in its own frame, out of the scrub's reach, so
 * a phase that holds objects which must later be reclaimed runs in a
 * noinline helper, and the caller only scrubs, collects and measures; and
 * "held" baselines are absolute, since a stale word may pin an object for
 * a while and then let it go. Tests that check survival hold pointers
 * in volatile locals (which live in the stack frame) and fill objects with a
 * pattern derived from a seed: reuse of a live object's memory zeroes or
 * overwrites the pattern, and new objects are checked not to overlap it.
 *
 * Environment:
 *   WBGC_TEST_SCALE=f       multiply the work of the heavy tests (default 1)
 *   WBGC_TEST_LIST_NODES=n  nodes in long_list (default 10000000)
 *   WBGC_TEST_TIMEOUT=s     watchdog per test, in seconds (default 300)
 *   WBGC_TEST_TRACE=1       add WBGC_TRACE to every heap the tests make
 *   WBGC_STRESS_SECONDS=s   time per mode of the stress_* tests (default 2);
 *                           e.g. WBGC_STRESS_SECONDS=300 ./test stress_concurrent
 *   WBGC_STRESS_SEED=n      seed of the stress threads' random choices (default 1)
 *   WBGC_STRESS_GC_PERCENT=n  gc_percent of the stress heaps (default 1)
 *   WBGC_CHURN_SECONDS=s    time per phase of attach_churn_memory (default 2)
 *   WBGC_CHURN_THREADS=n    its attaching and detaching threads (default 32)
 *   WBGC_TREE_SECONDS=s     time of each tree_reverse_* test (default 1)
 *   WBGC_FORK_CHILD_SECS=s  a fork_* test's child that runs longer is killed
 *                           and reported as hung (default 20)
 *   WBGC_VERIFY=1           every heap verifies every cycle (the collector
 *                           reads it; tests that expect no on_error then
 *                           fail on any object the verifier finds lost)
 * The runner unsets WBGC_GC_PERCENT, WBGC_TRACE, WBGC_MODE and WBGC_MIN_HEAP
 * at start: they override the config, and each test relies on the config it
 * sets. */

#define WBGC_IMPLEMENTATION
#include "wbgc.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define KB ((size_t)1024)
#define MB ((size_t)1024 * 1024)
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Under the sanitizers: keep locals on the real stack (the collector scans
   it; ASan's fake stack for use-after-return is heap memory it cannot see),
   and make UBSan stop at the first report instead of printing and going on. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "detect_stack_use_after_return=0"; }
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "halt_on_error=1:print_stacktrace=1"; }
/* The fork_* tests' children start threads (and wbgc starts its mark
   workers again there), which TSan refuses after a multi-threaded fork
   unless told. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return "die_after_fork=0"; }

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifndef TEST_ASAN
#define TEST_ASAN 0
#endif

/* gcc's ThreadSanitizer runtime (gcc 12) kills a forked child that starts
   a thread ("dup thread with used id": glibc gives the child's new thread
   a dead thread's stack, so its id); clang's does not. The fork_* tests
   skip under it (build.sh runs them under clang's). */
#if defined(__SANITIZE_THREAD__) && !defined(__clang__)
#define TEST_GCC_TSAN 1
#else
#define TEST_GCC_TSAN 0
#endif

/* =========================================================================
   The harness: CHECK, notes, the error log, the watchdog
   ========================================================================= */

static const char *volatile g_test_name = "";
static int g_test_fails;                 /* failed CHECKs in the running test */
static pthread_mutex_t g_out_mu = PTHREAD_MUTEX_INITIALIZER;
#define MAX_PRINTED_FAILS 30

static double g_scale = 1.0;
static size_t g_list_nodes = 10000000;
static unsigned g_timeout = 300;
static unsigned g_extra_flags;

static int fail_count_and_print(void)
{
    int n = __atomic_add_fetch(&g_test_fails, 1, __ATOMIC_RELAXED);
    if (n == MAX_PRINTED_FAILS + 1) {
        pthread_mutex_lock(&g_out_mu);
        printf("    (further failures of this test not printed)\n");
        pthread_mutex_unlock(&g_out_mu);
    }
    return n <= MAX_PRINTED_FAILS;
}

static void check_fail(const char *file, int line, const char *expr)
{
    if (!fail_count_and_print()) return;
    pthread_mutex_lock(&g_out_mu);
    printf("    FAIL %s:%d: %s\n", file, line, expr);
    pthread_mutex_unlock(&g_out_mu);
}

__attribute__((format(printf, 4, 5)))
static void check_failf(const char *file, int line, const char *expr, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    if (!fail_count_and_print()) return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&g_out_mu);
    printf("    FAIL %s:%d: %s -- %s\n", file, line, expr, buf);
    pthread_mutex_unlock(&g_out_mu);
}

#define CHECK(c) do { if (!(c)) check_fail(__FILE__, __LINE__, #c); } while (0)
#define CHECKF(c, ...) do { if (!(c)) check_failf(__FILE__, __LINE__, #c, __VA_ARGS__); } while (0)
#define FAILF(...) check_failf(__FILE__, __LINE__, "", __VA_ARGS__)
/* REQUIRE: a CHECK after whose failure the test cannot go on. */
#define REQUIRE(c) do { if (!(c)) { check_fail(__FILE__, __LINE__, #c); return; } } while (0)

__attribute__((format(printf, 1, 2)))
static void note(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&g_out_mu);
    printf("    note: %s\n", buf);
    pthread_mutex_unlock(&g_out_mu);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_us(long us)
{
    struct timespec ts;
    ts.tv_sec = us / 1000000;
    ts.tv_nsec = (us % 1000000) * 1000;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static size_t scaled(size_t n)
{
    double v = (double)n * g_scale;
    return v < 1.0 ? 1 : (size_t)v;
}

/* The error log: a test's on_error. Messages may come from any thread. */
#define ERRLOG_KEEP 32
typedef struct errlog {
    pthread_mutex_t mu;
    int count;
    int want_stalls;     /* count stall warnings too (else printed only) */
    char msg[ERRLOG_KEEP][512];
} errlog;

static void errlog_init(errlog *l)
{
    pthread_mutex_init(&l->mu, NULL);
    l->count = 0;
    l->want_stalls = 0;
}

/* errlog_cb records a message. A stall warning (a stop that waited over
   stall_report_ms) depends on the machine's load, not on the test: it is
   printed, and counted only by the test that asks for it. */
static void errlog_cb(const char *message, void *user)
{
    errlog *l = user;
    if (message && !l->want_stalls && strncmp(message, "wbgc: warning: ", 15) == 0 &&
        strstr(message, "to reach a safepoint")) {
        pthread_mutex_lock(&g_out_mu);
        printf("    note: %s\n", message);
        pthread_mutex_unlock(&g_out_mu);
        return;
    }
    pthread_mutex_lock(&l->mu);
    if (l->count < ERRLOG_KEEP)
        snprintf(l->msg[l->count], sizeof l->msg[0], "%s", message ? message : "(null message)");
    l->count++;
    pthread_mutex_unlock(&l->mu);
    pthread_mutex_lock(&g_out_mu);
    printf("    on_error: %s\n", message ? message : "(null message)");
    pthread_mutex_unlock(&g_out_mu);
}

static int errlog_count(errlog *l)
{
    int n;
    pthread_mutex_lock(&l->mu);
    n = l->count;
    pthread_mutex_unlock(&l->mu);
    return n;
}

/* errlog_msg: message i, or "" when it was not kept. */
static const char *errlog_msg(errlog *l, int i)
{
    return (i >= 0 && i < ERRLOG_KEEP && i < errlog_count(l)) ? l->msg[i] : "";
}

static int ci_contains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] &&
               (hay[i] | 0x20) == (needle[i] | 0x20))   /* ASCII fold is enough here */
            i++;
        if (i == n) return 1;
    }
    return n == 0;
}

/* errlog_any: does one of the messages from index `from` on contain one of
   the words (NULL-terminated list)? */
static int errlog_any(errlog *l, int from, const char *const *words)
{
    int i, n = errlog_count(l);
    for (i = from; i < n && i < ERRLOG_KEEP; i++)
        for (const char *const *w = words; *w; w++)
            if (ci_contains(l->msg[i], *w)) return 1;
    return 0;
}

static int errlog_has_ptr(errlog *l, int from, const void *ptr)
{
    char a[64], b[64];
    const char *words[3];
    snprintf(a, sizeof a, "%p", ptr);
    snprintf(b, sizeof b, "%#lx", (unsigned long)(uintptr_t)ptr);
    words[0] = a; words[1] = b; words[2] = NULL;
    return errlog_any(l, from, words);
}

/* Heaps for tests: every one reports to an errlog. */
static wbgc_heap *open_heap(errlog *log, int gc_percent, unsigned flags,
                            int mark_workers, size_t memory_limit)
{
    wbgc_config cfg;
    errlog_init(log);
    wbgc_config_default(&cfg);
    cfg.gc_percent = gc_percent;
    cfg.flags = flags | g_extra_flags;
    cfg.mark_workers = mark_workers;
    cfg.memory_limit = memory_limit;
    cfg.on_error = errlog_cb;
    cfg.user = log;
    return wbgc_heap_new(&cfg);
}

/* close_heap: detach p (if any), free h, and unless errors were expected
   check that on_error was never called. */
static void close_heap_at(const char *file, int line, wbgc_heap *h, wbgc_p *p,
                          errlog *log, int errors_expected)
{
    if (p) wbgc_detach(p);
    if (h) wbgc_heap_free(h);
    if (!errors_expected && errlog_count(log) != 0)
        check_failf(file, line, "no unexpected on_error", "%d message(s), first: %s",
                    errlog_count(log), errlog_msg(log, 0));
    pthread_mutex_destroy(&log->mu);
}
#define CLOSE_HEAP(h, p, log) close_heap_at(__FILE__, __LINE__, h, p, log, 0)
#define CLOSE_HEAP_ERRS_OK(h, p, log) close_heap_at(__FILE__, __LINE__, h, p, log, 1)

static wbgc_stats get_stats(wbgc_heap *h)
{
    wbgc_stats s;
    memset(&s, 0xAB, sizeof s);   /* every field must be written */
    wbgc_get_stats(h, &s);
    return s;
}
static uint64_t heap_alloc_of(wbgc_heap *h) { return get_stats(h).heap_alloc; }
static uint64_t cycles_of(wbgc_heap *h) { return get_stats(h).cycles; }

/* join with the P in a blocking region, as the rules ask. */
static void join_blocking(wbgc_p *p, pthread_t t)
{
    if (p) wbgc_blocking_begin(p);
    pthread_join(t, NULL);
    if (p) wbgc_blocking_end(p);
}

/* wait until *flag != 0 (at most `secs`), in a blocking region. */
static int wait_flag_blocking(wbgc_p *p, int *flag, double secs)
{
    uint64_t deadline = now_ns() + (uint64_t)(secs * 1e9);
    int ok;
    if (p) wbgc_blocking_begin(p);
    while (!(ok = __atomic_load_n(flag, __ATOMIC_ACQUIRE)) && now_ns() < deadline)
        sleep_us(200);
    if (p) wbgc_blocking_end(p);
    return ok;
}

/* =========================================================================
   Helpers: patterns, garbage, stack scrubbing
   ========================================================================= */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* pattern words are random 64-bit values: they never look like pointers */
static uint64_t pat_word(uint64_t seed, size_t i)
{
    return mix64(seed * 0x9E3779B97F4A7C15ULL + i + 1);
}

static void fill_pat(void *obj, size_t n, uint64_t seed)
{
    uint64_t *w = obj;
    unsigned char *b = obj;
    size_t i, nw = n / 8;
    for (i = 0; i < nw; i++) w[i] = pat_word(seed, i);
    for (i = nw * 8; i < n; i++) b[i] = (unsigned char)pat_word(seed, i + 0x100000000ULL);
}

/* check_pat: how many words (and tail bytes) differ from the pattern. */
static size_t check_pat(const void *obj, size_t n, uint64_t seed)
{
    const uint64_t *w = obj;
    const unsigned char *b = obj;
    size_t i, nw = n / 8, bad = 0;
    for (i = 0; i < nw; i++) bad += w[i] != pat_word(seed, i);
    for (i = nw * 8; i < n; i++) bad += b[i] != (unsigned char)pat_word(seed, i + 0x100000000ULL);
    return bad;
}

/* count_nonzero: non-zero bytes in [obj, obj+n). */
static size_t count_nonzero(const void *obj, size_t n)
{
    const uint64_t *w = obj;
    const unsigned char *b = obj;
    size_t i, nw = n / 8, bad = 0;
    for (i = 0; i < nw; i++)
        if (w[i]) {
            uint64_t v = w[i];
            for (int k = 0; k < 8; k++, v >>= 8) bad += (v & 0xff) != 0;
        }
    for (i = nw * 8; i < n; i++) bad += b[i] != 0;
    return bad;
}

static int overlaps(uintptr_t a, size_t an, uintptr_t b, size_t bn)
{
    if (an == 0) an = 1;
    if (bn == 0) bn = 1;
    return a < b + bn && b < a + an;
}

/* scrub_stack: zero the stack below the caller's frame, where dead frames
   left pointers that a conservative scan would otherwise find. */
#define NO_ASAN __attribute__((no_sanitize_address))   /* no redzones left unwiped */
static NOINLINE NO_ASAN void scrub_stack(void)
{
    volatile uint64_t buf[8192];
    for (size_t i = 0; i < ARRAY_LEN(buf); i++) buf[i] = 0;
}

/* scrub_stack_runner: the runner's version, before each test. Each test's
   frame lands where the previous test's frames were; its uninitialised slots
   would still hold the previous test's pointers, and a new heap is often
   mapped at the old one's addresses, so those stale words would pin
   objects of the new heap. */
static NOINLINE NO_ASAN void scrub_stack_runner(void)
{
    volatile uint64_t buf[32768];
    for (size_t i = 0; i < ARRAY_LEN(buf); i++) buf[i] = 0;
}

/* churn: allocate about `bytes` of garbage (sizes 16..16+maxsz-1, both
   kinds), each object's first word dirtied. Returns the bytes allocated. */
static NOINLINE size_t churn(wbgc_p *p, size_t bytes, size_t maxsz, uint64_t *rng)
{
    size_t done = 0;
    while (done < bytes) {
        uint64_t r = rnd(rng);
        size_t n = 16 + (size_t)(r >> 8) % maxsz;
        uint64_t *q = (r & 1) ? wbgc_alloc(p, n) : wbgc_alloc_noscan(p, n);
        if (!q) {
            FAILF("churn: allocation of %zu bytes failed", n);
            return done;
        }
        q[0] = r | 0x8000000000000001ULL;
        q[(n / 8) - 1] = ~r;
        done += n;
    }
    return done;
}

static int cmp_uptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* =========================================================================
   1. zeroed memory
   ========================================================================= */

static size_t *zero_sizes(size_t *count)
{
    static const size_t edges[] = {
        511, 512, 513, 1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096, 4097,
        8191, 8192, 8193, 16383, 16384, 16385, 32767, 32768, 32769, 32784,
        65535, 65536, 65537, 69999, 70000};
    size_t *v = malloc(2000 * sizeof *v), n = 0;
    for (size_t s = 0; s <= 300; s++) v[n++] = s;
    for (double s = 301; s <= 70000; s = s * 1.06 + 7) v[n++] = (size_t)s;
    for (size_t i = 0; i < ARRAY_LEN(edges); i++) v[n++] = edges[i];
    *count = n;
    return v;
}

/* zero_round: allocate every size (3 of each, both kinds), check zero,
   dirty every byte, drop. Addresses (not pointers: malloc memory is not
   scanned anyway) go to addrs. Returns the number of non-zero bytes seen. */
static NOINLINE size_t zero_round(wbgc_p *p, const size_t *sizes, size_t ns,
                                  uintptr_t *addrs, size_t *naddrs)
{
    size_t bad = 0, na = 0;
    for (int rep = 0; rep < 3; rep++)
        for (size_t i = 0; i < ns; i++)
            for (int kind = 0; kind < 2; kind++) {
                size_t n = sizes[i];
                unsigned char *q = kind ? wbgc_alloc_noscan(p, n) : wbgc_alloc(p, n);
                if (!q) {
                    FAILF("allocation of %zu bytes (%s) returned NULL", n, kind ? "noscan" : "scan");
                    continue;
                }
                size_t nz = count_nonzero(q, n);
                if (nz)
                    FAILF("fresh %s object of %zu bytes at %p has %zu non-zero bytes",
                          kind ? "noscan" : "scan", n, (void *)q, nz);
                bad += nz;
                memset(q, 0xFF, n);
                addrs[na++] = (uintptr_t)q;
            }
    *naddrs = na;
    return bad;
}

static void zeroed_run(unsigned flags)
{
    errlog log;
    size_t ns, na_prev = 0, na = 0, reused = 0, bad = 0;
    size_t *sizes = zero_sizes(&ns);
    uintptr_t *prev = malloc(ns * 6 * sizeof *prev), *cur = malloc(ns * 6 * sizeof *cur);
    wbgc_heap *h = open_heap(&log, -1, flags, -1, 0);
    REQUIRE(h && sizes && prev && cur);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    for (int round = 0; round < 4; round++) {
        bad += zero_round(p, sizes, ns, cur, &na);
        if (round > 0)
            for (size_t i = 0; i < na; i++)
                reused += bsearch(&cur[i], prev, na_prev, sizeof *prev, cmp_uptr) != NULL;
        qsort(cur, na, sizeof *cur, cmp_uptr);
        memcpy(prev, cur, na * sizeof *cur);
        na_prev = na;
        scrub_stack();
        wbgc_collect(p);
    }
    CHECKF(bad == 0, "%zu non-zero bytes in fresh objects", bad);
    /* the rounds after the first must have reused freed memory, or the test
       proved nothing about zeroing of reused memory */
    CHECKF(reused > na / 4, "only %zu of %zu allocations reused freed addresses", reused, na * 3);
    note("%zu sizes x 2 kinds x 3, 4 rounds; %zu allocations landed on freed addresses", ns, reused);
    CLOSE_HEAP(h, p, &log);
    free(sizes);
    free(prev);
    free(cur);
}

/* Zeroing of objects freed from spans that keep live neighbours: the
   sweep zeroes them (or, in check mode, poisons them and the allocation
   zeroes them), since such spans never go back to the page heap. Every
   other object survives; the dead ones are reused and must read as zero. */
static void partial_zero_run(unsigned flags)
{
    enum { N = 4096 };
    static const size_t sizes[] = {16, 48, 64, 208, 1024};
    errlog log;
    wbgc_heap *h = open_heap(&log, -1, flags, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    size_t bad = 0, reused = 0, total = 0;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        void **keep = wbgc_alloc(p, N * sizeof(void *));
        uintptr_t *dead = malloc(N / 2 * sizeof *dead);
        REQUIRE(keep && dead);
        for (int i = 0; i < N; i++) {
            unsigned char *q = wbgc_alloc_noscan(p, n);
            REQUIRE(q);
            memset(q, 0xFF, n);
            wbgc_write(p, &keep[i], q);
        }
        for (int i = 1; i < N; i += 2) {  /* every other one dies */
            dead[i / 2] = (uintptr_t)keep[i];
            wbgc_write(p, &keep[i], NULL);
        }
        qsort(dead, N / 2, sizeof *dead, cmp_uptr);
        scrub_stack();
        wbgc_collect(p);
        for (int i = 0; i < N / 2; i++) {
            unsigned char *q = wbgc_alloc_noscan(p, n);
            REQUIRE(q);
            size_t nz = count_nonzero(q, n);
            if (nz && bad < 5)
                FAILF("object of %zu bytes at %p, reusing a freed one: %zu non-zero bytes", n,
                      (void *)q, nz);
            bad += nz != 0;
            uintptr_t a = (uintptr_t)q;
            reused += bsearch(&a, dead, N / 2, sizeof *dead, cmp_uptr) != NULL;
            total++;
        }
        for (int i = 0; i < N; i += 2) CHECK(((unsigned char *)keep[i])[n - 1] == 0xFF);
        free(dead);
    }
    CHECKF(bad == 0, "%zu reused objects not zeroed", bad);
    CHECKF(reused > total / 2, "only %zu of %zu allocations reused a freed slot", reused, total);
    note("%zu allocations, %zu of them into slots freed beside live objects", total, reused);
    CLOSE_HEAP(h, p, &log);
}

static void test_zeroed_memory_partial_spans(void) { partial_zero_run(0); }
static void test_zeroed_memory_partial_spans_check(void) { partial_zero_run(WBGC_CHECK); }

static void test_zeroed_memory(void) { zeroed_run(0); }
static void test_zeroed_memory_check_mode(void) { zeroed_run(WBGC_CHECK); }

/* =========================================================================
   2. an object held only by a local survives
   ========================================================================= */

/* overlap_probe: allocate `count` objects of size n and count those that
   overlap any range in [ranges, ranges+2*nr) (base, size pairs, kept in
   malloc memory so that they keep nothing alive). */
static NOINLINE size_t overlap_probe(wbgc_p *p, size_t n, int count, int noscan,
                                     const uintptr_t *ranges, size_t nr)
{
    size_t bad = 0;
    for (int i = 0; i < count; i++) {
        void *q = noscan ? wbgc_alloc_noscan(p, n) : wbgc_alloc(p, n);
        if (!q) {
            FAILF("probe allocation of %zu bytes failed", n);
            return bad + 1;
        }
        for (size_t r = 0; r < nr; r++)
            if (overlaps((uintptr_t)q, n, ranges[2 * r], ranges[2 * r + 1])) {
                FAILF("new object %p (%zu bytes) overlaps live object %#lx (%zu bytes)",
                      q, n, (unsigned long)ranges[2 * r], (size_t)ranges[2 * r + 1]);
                bad++;
            }
    }
    return bad;
}

static void test_local_survives(void)
{
    errlog log;
    uint64_t rng = 0x2545F4914F6CDD1DULL;
    static const size_t sz[3] = {1000, 1000, 100000};
    uintptr_t *ranges = malloc(6 * sizeof *ranges);
    wbgc_heap *h = open_heap(&log, 100, 0, -1, 0);
    REQUIRE(h && ranges);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    unsigned char *volatile obj[3];
    obj[0] = wbgc_alloc(p, sz[0]);
    obj[1] = wbgc_alloc_noscan(p, sz[1]);
    obj[2] = wbgc_alloc(p, sz[2]);
    REQUIRE(obj[0] && obj[1] && obj[2]);
    for (int i = 0; i < 3; i++) fill_pat(obj[i], sz[i], 1000 + (uint64_t)i);
    uint64_t c0 = cycles_of(h);
    size_t bad = 0, overlap = 0;
    int rounds = 40;
    for (int r = 0; r < rounds; r++) {
        churn(p, 2 * MB, 2000, &rng);
        if (r % 2 == 0) {
            scrub_stack();
            wbgc_collect(p);
        }
        for (int i = 0; i < 3; i++) {
            size_t b = check_pat(obj[i], sz[i], 1000 + (uint64_t)i);
            if (b) FAILF("round %d: live object %d at %p: %zu words changed", r, i, (void *)obj[i], b);
            bad += b;
            ranges[2 * i] = (uintptr_t)obj[i];
            ranges[2 * i + 1] = sz[i];
        }
        overlap += overlap_probe(p, 1000, 300, r & 1, ranges, 3);
        overlap += overlap_probe(p, 100000, 3, 0, ranges, 3);
    }
    uint64_t cyc = cycles_of(h) - c0;
    CHECK(bad == 0);
    CHECK(overlap == 0);
    CHECKF(cyc >= (uint64_t)rounds / 2, "only %llu cycles ran", (unsigned long long)cyc);
    note("%llu cycles (explicit and automatic) with the object held only by a local",
         (unsigned long long)cyc);
    CLOSE_HEAP(h, p, &log);
    free(ranges);
}

/* =========================================================================
   3. unreachable objects are reclaimed
   ========================================================================= */

/* make_garbage: about `bytes` of unreachable objects: independent ones (no
   object points to another, so one stale pointer keeps one object). */
static NOINLINE size_t make_garbage(wbgc_p *p, size_t bytes, uint64_t seed)
{
    uint64_t rng = seed | 1;
    size_t done = 0;
    while (done < bytes) {
        uint64_t r = rnd(&rng);
        size_t n = (r % 16 == 0) ? 40000 + (size_t)(r >> 40) % 100000 : 8 + (size_t)(r >> 32) % 4096;
        uint64_t *q = (r & 2) ? wbgc_alloc(p, n) : wbgc_alloc_noscan(p, n);
        if (!q) {
            FAILF("garbage allocation of %zu bytes failed", n);
            return done;
        }
        q[0] = r | 0x8000000000000000ULL;
        done += n;
    }
    return done;
}

static void test_garbage_reclaimed(void)
{
    errlog log;
    wbgc_heap *h = open_heap(&log, -1, 0, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    uint64_t sys_first = 0;
    for (int round = 0; round < 3; round++) {
        uint64_t s0 = heap_alloc_of(h);
        size_t made = make_garbage(p, 50 * MB, 77 + (uint64_t)round);
        uint64_t before = heap_alloc_of(h);
        CHECKF(before >= s0 + made, "round %d: heap_alloc %llu after allocating %zu (was %llu)",
               round, (unsigned long long)before, made, (unsigned long long)s0);
        scrub_stack();
        wbgc_collect(p);
        wbgc_stats st = get_stats(h);
        CHECKF(st.heap_alloc < before / 10,
               "round %d: heap_alloc %llu after collect, %llu before", round,
               (unsigned long long)st.heap_alloc, (unsigned long long)before);
        CHECKF(st.heap_live < before / 10, "round %d: heap_live %llu", round,
               (unsigned long long)st.heap_live);
        if (round == 0) sys_first = st.heap_sys;
        else
            CHECKF(st.heap_sys <= sys_first + sys_first / 2 + 8 * MB,
                   "heap_sys grew from %llu to %llu: freed memory not reused",
                   (unsigned long long)sys_first, (unsigned long long)st.heap_sys);
        if (round == 2)
            note("heap_alloc %llu -> %llu after collect; heap_sys %llu",
                 (unsigned long long)before, (unsigned long long)st.heap_alloc,
                 (unsigned long long)st.heap_sys);
    }
    CLOSE_HEAP(h, p, &log);
}

/* freed memory goes back to the OS after a few idle cycles (heap_sys falls),
   and what is allocated on it afterwards is zeroed */
static NOINLINE size_t dirty_again(wbgc_p *p, size_t bytes)
{
    size_t nz = 0;
    for (size_t done = 0; done < bytes; done += 4 * MB) {
        unsigned char *q = wbgc_alloc_noscan(p, 4 * MB);
        if (!q) {
            FAILF("allocation failed");
            break;
        }
        nz += count_nonzero(q, 4 * MB);
        memset(q, 0x5A, 4 * MB);
    }
    return nz;
}

static void test_scavenge_returns_memory(void)
{
    errlog log;
    wbgc_heap *h = open_heap(&log, -1, 0, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    make_garbage(p, 64 * MB, 5);
    dirty_again(p, 64 * MB);
    uint64_t peak = get_stats(h).heap_sys;
    for (int i = 0; i < 4; i++) {
        scrub_stack();
        wbgc_collect(p);
    }
    wbgc_stats st = get_stats(h);
    CHECKF(st.heap_sys < peak / 4, "heap_sys %llu after 4 idle cycles, %llu at the peak (heap_alloc %llu)",
           (unsigned long long)st.heap_sys, (unsigned long long)peak, (unsigned long long)st.heap_alloc);
    size_t nz = dirty_again(p, 64 * MB);
    CHECKF(nz == 0, "%zu non-zero bytes in objects on returned memory", nz);
    note("heap_sys %llu at the peak, %llu after 4 idle cycles", (unsigned long long)peak,
         (unsigned long long)st.heap_sys);
    CLOSE_HEAP(h, p, &log);
}

/* Large pointer arrays are marked in 128 KiB pieces: every slot's referent
   survives, in the last piece and across piece boundaries too, whatever
   the array's length; in every mode, cycles run while the slots change. */
static void test_large_object_pieces(void)
{
    static const size_t sizes[] = { (128 << 10) + 8, 256 << 10, (1 << 20) + 24, 3 << 20 };
    errlog log;
    wbgc_heap *h = open_heap(&log, 100, 0, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k] / sizeof(uint64_t *);
        uint64_t **arr = wbgc_alloc(p, sizes[k]);
        REQUIRE(arr);
        for (int round = 0; round < 3; round++) {
            for (size_t i = 0; i < n; i++) {
                uint64_t *o = wbgc_alloc(p, 16);
                REQUIRE(o);
                o[0] = i * 2654435761u + (uint64_t)round;
                wbgc_write(p, (void **)&arr[i], o);
            }
            scrub_stack();
            wbgc_collect(p);
            make_garbage(p, 2 * MB, 1);  /* reuses what a lost referent freed */
            size_t bad = 0;
            for (size_t i = 0; i < n; i++)
                if (arr[i][0] != i * 2654435761u + (uint64_t)round) bad++;
            CHECKF(bad == 0, "%zu of %zu slots of a %zu-byte array lost their object", bad, n, sizes[k]);
        }
    }
    CLOSE_HEAP(h, p, &log);
}

/* The live set shrinks to an eighth, and what is freed lies in short runs
   between live objects (one 64 KiB object in eight is kept): within two
   collections the heap keeps no more backed than its goal and a tenth,
   plus 4 MiB (the free runs were too short for the idle-run rule alone:
   before the goal rule they stayed backed for good). */
static void test_scavenge_after_shrink(void)
{
    errlog log;
    wbgc_heap *h = open_heap(&log, 100, 0, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    enum { N = 2048, KEEP = 8, SZ = 64 << 10 };
    static unsigned char *keep[N];
    REQUIRE(wbgc_add_roots(h, keep, sizeof keep) == 0);
    for (int i = 0; i < N; i++) {
        unsigned char *o = wbgc_alloc_noscan(p, SZ);
        REQUIRE(o);
        memset(o, i & 0xff, SZ);
        wbgc_write(p, (void **)&keep[i], o);
    }
    for (int i = 0; i < N; i++)
        if (i % KEEP) wbgc_write(p, (void **)&keep[i], NULL);
    uint64_t peak = get_stats(h).heap_sys;
    scrub_stack();
    wbgc_collect(p);
    wbgc_collect(p);
    wbgc_stats st = get_stats(h);
    uint64_t bound = st.heap_goal + st.heap_goal / 10 + 4 * MB;
    CHECKF(st.heap_sys <= bound, "heap_sys %llu after the shrink (peak %llu), over goal %llu + 10%% + 4 MiB",
           (unsigned long long)st.heap_sys, (unsigned long long)peak, (unsigned long long)st.heap_goal);
    for (int i = 0; i < N; i += KEEP) {
        CHECKF(keep[i] && keep[i][0] == (i & 0xff) && keep[i][SZ - 1] == (i & 0xff),
               "kept object %d lost or overwritten", i);
        if (__atomic_load_n(&g_test_fails, __ATOMIC_RELAXED)) break;
    }
    note("heap_sys %llu MiB at the peak, %llu MiB after two collections (goal %llu MiB)",
         (unsigned long long)(peak >> 20), (unsigned long long)(st.heap_sys >> 20),
         (unsigned long long)(st.heap_goal >> 20));
    wbgc_remove_roots(h, keep);
    CLOSE_HEAP(h, p, &log);
}

/* =========================================================================
   4. interior pointers keep objects alive
   ========================================================================= */

/* make_interior: a new object of n bytes filled with pattern `seed`;
   returns only base+off, so no copy of the base survives the call. */
static NOINLINE unsigned char *make_interior(wbgc_p *p, size_t n, int noscan, uint64_t seed, size_t off)
{
    unsigned char *q = noscan ? wbgc_alloc_noscan(p, n) : wbgc_alloc(p, n);
    if (!q) return NULL;
    fill_pat(q, n, seed);
    return q + off;
}

/* interior_verify: check each object through its interior pointer; bases are
   computed here (so at -O0 they land in this dead frame, which the caller
   scrubs, not in the test's) and written only to malloc memory. */
static NOINLINE size_t interior_verify(unsigned char *volatile *ip, const size_t *off, const size_t *n,
                                       int nobj, int round, uintptr_t *ranges)
{
    size_t bad = 0;
    for (int i = 0; i < nobj; i++) {
        size_t b = check_pat(ip[i] - off[i], n[i], 500 + (uint64_t)i);
        if (b)
            FAILF("round %d: object of %zu bytes held by pointer at +%zu: %zu words changed",
                  round, n[i], off[i], b);
        bad += b;
        ranges[2 * i] = (uintptr_t)(ip[i] - off[i]);
        ranges[2 * i + 1] = n[i];
    }
    return bad;
}

static void test_interior_pointers(void)
{
    enum { NOBJ = 20 };
    static const size_t sizes[5] = {24, 200, 3000, 40000, 300000};
    errlog log;
    uint64_t rng = 99;
    size_t n[NOBJ], off[NOBJ];
    unsigned char *volatile ip[NOBJ];
    uintptr_t *ranges = malloc(2 * NOBJ * sizeof *ranges);
    wbgc_heap *h = open_heap(&log, -1, 0, -1, 0);
    REQUIRE(h && ranges);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    for (int i = 0; i < NOBJ; i++) {
        n[i] = sizes[i / 4];
        off[i] = (i & 1) ? n[i] - 1 : n[i] / 2;   /* last byte, or the middle */
        ip[i] = make_interior(p, n[i], (i >> 1) & 1, 500 + (uint64_t)i, off[i]);
        REQUIRE(ip[i] != NULL);
    }
    size_t bad = 0, overlap = 0;
    for (int r = 0; r < 12; r++) {
        scrub_stack();
        wbgc_collect(p);
        bad += interior_verify(ip, off, n, NOBJ, r, ranges);
        for (int s = 0; s < 5; s++)
            overlap += overlap_probe(p, sizes[s], sizes[s] > 30000 ? 4 : 200, r & 1, ranges, NOBJ);
        memset(ranges, 0, 2 * NOBJ * sizeof *ranges);
        churn(p, 4 * MB, 3000, &rng);
    }
    CHECK(bad == 0);
    CHECK(overlap == 0);
    CLOSE_HEAP(h, p, &log);
    free(ranges);
}

/* =========================================================================
   5. pointers inside noscan objects keep nothing alive
   ========================================================================= */

#define BIG_N 8
#define BIG_SZ (4 * MB)

/* fill_holder: BIG_N big objects, each only pointed to from holder[i]. */
static NOINLINE void fill_holder(wbgc_p *p, void **holder, uint64_t seed)
{
    for (int i = 0; i < BIG_N; i++) {
        unsigned char *q = wbgc_alloc_noscan(p, BIG_SZ);
        if (!q) {
            FAILF("big allocation failed");
            continue;
        }
        fill_pat(q, 64 * KB, seed + (uint64_t)i);
        fill_pat(q + BIG_SZ - 64 * KB, 64 * KB, seed + 100 + (uint64_t)i);
        wbgc_write(p, &holder[i], q);
    }
}

static NOINLINE size_t check_holder(void **holder, uint64_t seed)
{
    size_t bad = 0;
    for (int i = 0; i < BIG_N; i++) {
        unsigned char *q = holder[i];
        if (!q) { bad++; continue; }
        bad += check_pat(q, 64 * KB, seed + (uint64_t)i);
        bad += check_pat(q + BIG_SZ - 64 * KB, 64 * KB, seed + 100 + (uint64_t)i);
    }
    return bad;
}

static void test_noscan_holds_nothing(void)
{
    errlog log;
    wbgc_heap *h = open_heap(&log, -1, 0, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    void **volatile hold_ns = wbgc_alloc_noscan(p, BIG_N * sizeof(void *));
    void **volatile hold_sc = wbgc_alloc(p, BIG_N * sizeof(void *));
    REQUIRE(hold_ns && hold_sc);
    const uint64_t total = (uint64_t)BIG_N * BIG_SZ;

    /* noscan holder: the big objects go */
    wbgc_collect(p);
    uint64_t s0 = heap_alloc_of(h);
    fill_holder(p, hold_ns, 10);
    uint64_t s1 = heap_alloc_of(h);
    CHECK(s1 >= s0 + total);
    scrub_stack();
    wbgc_collect(p);
    uint64_t s2 = heap_alloc_of(h);
    CHECKF(s2 < s0 + total / 4,
           "noscan holder: heap_alloc %llu -> %llu after collect (base %llu): the pointers in a "
           "noscan object kept the objects alive",
           (unsigned long long)s1, (unsigned long long)s2, (unsigned long long)s0);
    int kept = 0;
    for (int i = 0; i < BIG_N; i++) kept += hold_ns[i] != NULL;
    CHECKF(kept == BIG_N, "the noscan holder's contents changed (%d of %d pointers left)", kept, BIG_N);

    /* scanned holder: the same objects stay, intact, through cycles */
    fill_holder(p, hold_sc, 20);
    uint64_t rng = 5;
    for (int r = 0; r < 3; r++) {
        scrub_stack();
        wbgc_collect(p);
        CHECKF(heap_alloc_of(h) >= total, "scanned holder: heap_alloc %llu < %llu held",
               (unsigned long long)heap_alloc_of(h), (unsigned long long)total);
        size_t b = check_holder(hold_sc, 20);
        CHECKF(b == 0, "round %d: %zu words of big objects held by a scanned object changed", r, b);
        churn(p, 8 * MB, 100000, &rng);
    }
    /* and go when the scanned holder lets go */
    for (int i = 0; i < BIG_N; i++) wbgc_write(p, &hold_sc[i], NULL);
    scrub_stack();
    wbgc_collect(p);
    uint64_t t2 = heap_alloc_of(h);
    CHECKF(t2 < total / 4, "after clearing the scanned holder heap_alloc %llu", (unsigned long long)t2);
    note("noscan holder: %llu -> %llu (base %llu); scanned holder cleared: -> %llu",
         (unsigned long long)s1, (unsigned long long)s2, (unsigned long long)s0,
         (unsigned long long)t2);
    CLOSE_HEAP(h, p, &log);
}

/* =========================================================================
   6. large objects
   ========================================================================= */

enum { NL = 8 };
static const size_t g_large_sz[NL] = {32 * KB + 1, 40000, 64 * KB + 8, MB + 3,
                                      8 * MB, 8 * MB + 4096, 100 * MB, 33 * MB};

/* large_make: one object of each size (alternating kinds), each checked
   zeroed and filled with its pattern. Returns the bytes made. */
static NOINLINE size_t large_make(wbgc_p *p, unsigned char *volatile *objs, size_t *nonzero)
{
    size_t total = 0;
    for (int i = 0; i < NL; i++) {
        size_t n = g_large_sz[i];
        unsigned char *q = (i & 1) ? wbgc_alloc_noscan(p, n) : wbgc_alloc(p, n);
        objs[i] = q;
        if (!q) {
            FAILF("large allocation of %zu bytes failed", n);
            continue;
        }
        size_t nz = count_nonzero(q, n);
        if (nz) FAILF("fresh large object of %zu bytes has %zu non-zero bytes", n, nz);
        *nonzero += nz;
        fill_pat(q, n, 7000 + (uint64_t)i);
        total += n;
    }
    return total;
}

/* large_hold: make the large objects, keep them in locals through cycles
   with churn, check them; return with no reference left in a live frame. */
static NOINLINE size_t large_hold(wbgc_p *p, wbgc_heap *h, size_t *nonzero)
{
    unsigned char *volatile objs[NL];
    uint64_t rng = 4242;
    uintptr_t *ranges = calloc(2 * NL, sizeof *ranges);
    if (!ranges) return 0;
    uint64_t s0 = heap_alloc_of(h);
    size_t total = large_make(p, objs, nonzero);
    CHECK(heap_alloc_of(h) >= s0 + total);
    for (int i = 0; i < NL; i++)
        for (int j = 0; j < i; j++)
            if (objs[i] && objs[j])
                CHECKF(!overlaps((uintptr_t)objs[i], g_large_sz[i], (uintptr_t)objs[j], g_large_sz[j]),
                       "large objects %d and %d overlap", i, j);
    size_t bad = 0, overlap = 0;
    for (int r = 0; r < 3; r++) {
        churn(p, 16 * MB, 200000, &rng);
        scrub_stack();
        wbgc_collect(p);
        for (int i = 0; i < NL; i++) {
            if (!objs[i]) continue;
            size_t b = check_pat(objs[i], g_large_sz[i], 7000 + (uint64_t)i);
            if (b) FAILF("round %d: large object of %zu bytes: %zu words changed", r, g_large_sz[i], b);
            bad += b;
            ranges[2 * i] = (uintptr_t)objs[i];
            ranges[2 * i + 1] = g_large_sz[i];
        }
        overlap += overlap_probe(p, 8 * MB, 3, 1, ranges, NL);
        overlap += overlap_probe(p, 40000, 20, 0, ranges, NL);
    }
    CHECK(bad == 0);
    CHECK(overlap == 0);
    for (int i = 0; i < NL; i++) objs[i] = NULL;
    free(ranges);
    return total;
}

/* large_again: allocate the sizes again (on reused memory): zeroed? */
static NOINLINE size_t large_again(wbgc_p *p)
{
    unsigned char *volatile objs[NL];
    size_t nz = 0;
    large_make(p, objs, &nz);
    for (int i = 0; i < NL; i++) objs[i] = NULL;
    return nz;
}

static void test_large_objects(void)
{
    errlog log;
    size_t nonzero = 0;
    wbgc_heap *h = open_heap(&log, -1, 0, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    size_t total = large_hold(p, h, &nonzero);
    CHECK(nonzero == 0);
    /* dropped: reclaimed */
    scrub_stack();
    wbgc_collect(p);
    uint64_t s2 = heap_alloc_of(h);
    CHECKF(s2 < total / 5, "after dropping %zu bytes of large objects heap_alloc is %llu", total,
           (unsigned long long)s2);
    /* reused memory comes back zeroed */
    size_t nz2 = large_again(p);
    CHECKF(nz2 == 0, "reallocated large objects had %zu non-zero bytes", nz2);
    note("%zu bytes of large objects: heap_alloc after drop+collect %llu", total, (unsigned long long)s2);
    CLOSE_HEAP(h, p, &log);
}

/* =========================================================================
   7. registered roots
   ========================================================================= */

#define ROOT_N 128
#define ROOT_SZ (64 * KB)
static void *g_root_static[ROOT_N];

static NOINLINE void roots_fill(wbgc_p *p, void **slots, uint64_t seed, int barrier)
{
    for (int i = 0; i < ROOT_N; i++) {
        void *q = wbgc_alloc_noscan(p, ROOT_SZ);
        if (!q) {
            FAILF("root object allocation failed");
            continue;
        }
        fill_pat(q, ROOT_SZ, seed + (uint64_t)i);
        if (barrier) wbgc_write(p, &slots[i], q);
        else slots[i] = q;   /* malloc memory that is not a root: plain store */
    }
}

static NOINLINE size_t roots_check(void **slots, uint64_t seed)
{
    size_t bad = 0;
    for (int i = 0; i < ROOT_N; i++)
        bad += slots[i] ? check_pat(slots[i], ROOT_SZ, seed + (uint64_t)i) : ROOT_SZ;
    return bad;
}

static void test_registered_roots(void)
{
    errlog log;
    uint64_t rng = 31337;
    const uint64_t one = (uint64_t)ROOT_N * ROOT_SZ;
    void **dyn = calloc(ROOT_N, sizeof *dyn);
    wbgc_heap *h = open_heap(&log, -1, 0, -1, 0);
    REQUIRE(h && dyn);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    memset(g_root_static, 0, sizeof g_root_static);

    /* A: malloc memory that is not registered is invisible */
    wbgc_collect(p);
    uint64_t a0 = heap_alloc_of(h);
    roots_fill(p, dyn, 100, 0);
    scrub_stack();
    wbgc_collect(p);
    uint64_t a1 = heap_alloc_of(h);
    CHECKF(a1 < a0 + one / 4, "objects referenced only from unregistered malloc memory were kept: "
           "heap_alloc %llu, base %llu", (unsigned long long)a1, (unsigned long long)a0);
    memset(dyn, 0, ROOT_N * sizeof *dyn);

    /* B: a registered static array and a registered malloc block keep theirs */
    CHECK(wbgc_add_roots(h, g_root_static, sizeof g_root_static) == 0);
    CHECK(wbgc_add_roots(h, dyn, ROOT_N * sizeof *dyn) == 0);
    uint64_t b0 = heap_alloc_of(h);
    roots_fill(p, g_root_static, 200, 1);
    roots_fill(p, dyn, 300, 1);
    for (int r = 0; r < 5; r++) {
        churn(p, 8 * MB, 80 * KB, &rng);
        scrub_stack();
        wbgc_collect(p);
        size_t bs = roots_check(g_root_static, 200), bd = roots_check(dyn, 300);
        CHECKF(bs == 0 && bd == 0, "round %d: objects held by roots changed: static %zu, malloc %zu",
               r, bs, bd);
    }
    uint64_t b1 = heap_alloc_of(h);
    CHECKF(b1 >= 2 * one, "heap_alloc %llu with %llu bytes held by roots",
           (unsigned long long)b1, (unsigned long long)(2 * one));

    /* C: after wbgc_remove_roots the regions (still full of pointers) hold nothing */
    wbgc_remove_roots(h, g_root_static);
    wbgc_remove_roots(h, dyn);
    scrub_stack();
    wbgc_collect(p);
    uint64_t c1 = heap_alloc_of(h);
    CHECKF(c1 < b0 + (2 * one) / 4, "after wbgc_remove_roots heap_alloc %llu (base %llu)",
           (unsigned long long)c1, (unsigned long long)b0);
    note("unregistered: %llu -> %llu; registered: %llu; removed: %llu",
         (unsigned long long)(a0 + one), (unsigned long long)a1, (unsigned long long)b1,
         (unsigned long long)c1);
    CHECK(errlog_count(&log) == 0);

    /* D: bad arguments */
    int e0 = errlog_count(&log);
    CHECK(wbgc_add_roots(h, NULL, 64) == -1);
    CHECKF(errlog_count(&log) > e0, "wbgc_add_roots(NULL, 64) returned without on_error");
    e0 = errlog_count(&log);
    CHECK(wbgc_add_roots(h, dyn, 0) == -1);   /* documented: an empty region is an error */
    CHECKF(errlog_count(&log) > e0, "wbgc_add_roots(p, 0) returned without on_error");
    e0 = errlog_count(&log);
    int r = wbgc_add_roots(h, (void *)(UINTPTR_MAX - 63), 128);   /* wraps around */
    CHECKF(r == -1, "a region that wraps around the address space was accepted (%d)", r);
    if (r == -1) CHECK(errlog_count(&log) > e0);
    if (r == 0) wbgc_remove_roots(h, (void *)(UINTPTR_MAX - 63));
    /* misaligned start: either refused, or accepted and usable */
    r = wbgc_add_roots(h, (char *)dyn + 1, 64);
    CHECK(r == 0 || r == -1);
    if (r == 0) wbgc_remove_roots(h, (char *)dyn + 1);
    /* removing a region never registered must not break anything */
    int local;
    wbgc_remove_roots(h, &local);
    wbgc_remove_roots(h, NULL);
    /* and the heap still works */
    void *volatile q = wbgc_alloc(p, 100);
    CHECK(q != NULL);
    wbgc_collect(p);
    CHECK(q != NULL && count_nonzero(q, 100) == 0);
    memset(g_root_static, 0, sizeof g_root_static);
    CLOSE_HEAP_ERRS_OK(h, p, &log);
    free(dyn);
}

/* Thread-local storage is not a root; a thread-local variable registered
   with wbgc_add_roots is one, on every thread (the header, ON ROOTS). */
#define TLS_N 3
#define TLS_SZ 200
static __thread void *g_tls_root[2];   /* [0]: a chain of TLS_N objects */

/* allocated_in: p is an allocated object of h (its allocation bit set). */
static int allocated_in(wbgc_heap *h, const void *q)
{
    wbgc__span *s = wbgc__span_of(h, (uintptr_t)q);
    if (!s) return 0;
    uint32_t i = (uint32_t)(((uint64_t)((uintptr_t)q - s->base) * s->divmagic) >> 32);
    return i < s->nelems && ((WBGC__LOAD(s->allocbits[i >> 6]) >> (i & 63)) & 1);
}

/* tls_hold: a chain of TLS_N scanned objects, each with a pattern after
   its link word, stored into this thread's g_tls_root[0] only. */
static NOINLINE void tls_hold(wbgc_p *p, uint64_t seed)
{
    void **next = NULL;
    for (int i = TLS_N - 1; i >= 0; i--) {
        void **o = wbgc_alloc(p, TLS_SZ);
        if (!o) {
            FAILF("allocation failed");
            return;
        }
        fill_pat(o + 1, TLS_SZ - sizeof(void *), seed + (uint64_t)i);
        wbgc_write(p, &o[0], next);
        next = o;
    }
    wbgc_write(p, &g_tls_root[0], next);
}

/* tls_check: the chain is whole: every object allocated, its pattern kept. */
static NOINLINE size_t tls_check(wbgc_heap *h, uint64_t seed)
{
    size_t bad = 0;
    void **o = g_tls_root[0];
    for (int i = 0; i < TLS_N; i++) {
        if (!o || !allocated_in(h, o)) return bad + (size_t)(TLS_N - i);
        bad += check_pat(o + 1, TLS_SZ - sizeof(void *), seed + (uint64_t)i) != 0;
        o = o[0];
    }
    return bad;
}

/* tls_run: on the calling thread (attached as p): register this thread's
   g_tls_root, hold a chain there only, run several full collections with
   garbage in between (its memory reused), check the chain each time; then
   unregister it, as a thread must before it exits. */
static NOINLINE void tls_run(wbgc_heap *h, wbgc_p *p, uint64_t seed, const char *who)
{
    uint64_t rng = seed;
    if (wbgc_add_roots(h, g_tls_root, sizeof g_tls_root) != 0) {
        FAILF("%s: wbgc_add_roots of a thread-local variable failed", who);
        return;
    }
    tls_hold(p, seed);
    for (int r = 0; r < 4; r++) {
        churn(p, 4 * MB, TLS_SZ, &rng);
        scrub_stack();
        wbgc_collect(p);
        size_t bad = tls_check(h, seed);
        CHECKF(bad == 0, "%s, collection %d: %zu of the %d objects held by a registered "
               "thread-local variable freed or changed", who, r + 1, bad, TLS_N);
    }
    wbgc_write(p, &g_tls_root[0], NULL);
    wbgc_remove_roots(h, g_tls_root);
}

typedef struct tls_arg { wbgc_heap *h; uint64_t seed; } tls_arg;

static void *tls_thread(void *argp)
{
    tls_arg *a = argp;
    wbgc_p *p = wbgc_attach(a->h);
    if (!p) {
        FAILF("attach failed");
        return NULL;
    }
    tls_run(a->h, p, a->seed, "a pthread");
    wbgc_detach(p);
    return NULL;
}

static void test_tls_registered_root(void)
{
    for (int check = 0; check < 2; check++) {
        errlog log;
        wbgc_heap *h = open_heap(&log, 100, check ? WBGC_CHECK : 0, -1, 0);
        REQUIRE(h);
        wbgc_p *p = wbgc_attach(h);
        REQUIRE(p);
        tls_run(h, p, 1000 + (uint64_t)check, check ? "the main thread, check mode" : "the main thread");
        tls_arg a = {h, 2000 + (uint64_t)check};
        pthread_t t;
        REQUIRE(pthread_create(&t, NULL, tls_thread, &a) == 0);
        join_blocking(p, t);
        CLOSE_HEAP(h, p, &log);   /* check mode: no store into the variables reported */
    }
}

/* =========================================================================
   8. a 10-million-node list
   ========================================================================= */

typedef struct lnode {
    struct lnode *next;
    uint64_t val;
} lnode;
#define LVAL(i) (0xC3A5000000000000ULL ^ (uint64_t)(i))

static NOINLINE lnode *list_build(wbgc_p *p, size_t n, size_t *built)
{
    lnode *head = NULL;
    size_t i;
    for (i = 0; i < n; i++) {
        lnode *x = wbgc_alloc(p, sizeof *x);
        if (!x) break;
        x->val = LVAL(i);
        wbgc_write(p, &x->next, head);
        head = x;
    }
    *built = i;
    return head;
}

/* list_check: walk from head (node i = n-1 first); returns nodes seen. */
static NOINLINE size_t list_check(const lnode *head, size_t n, size_t *bad)
{
    size_t seen = 0, i = n;
    for (const lnode *x = head; x && seen <= n; x = x->next) {
        i--;
        if (x->val != LVAL(i)) {
            if (*bad < 5) FAILF("node %zu (from the head) holds %#llx, expected %#llx", seen,
                                (unsigned long long)x->val, (unsigned long long)LVAL(i));
            (*bad)++;
        }
        seen++;
    }
    return seen;
}

static void test_long_list(void)
{
    errlog log;
    size_t n = g_list_nodes, built = 0, bad = 0;
    wbgc_heap *h = open_heap(&log, 100, 0, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    uint64_t t0 = now_ns();
    lnode *volatile head = list_build(p, n, &built);
    uint64_t t1 = now_ns();
    CHECKF(built == n, "built %zu of %zu nodes", built, n);
    uint64_t cyc_build = cycles_of(h);
    scrub_stack();
    wbgc_collect(p);
    uint64_t t2 = now_ns();
    wbgc_stats st = get_stats(h);
    /* A cycle the build started may still be marking: wbgc_collect finishes
       it, then runs its own. */
    CHECKF(st.cycles >= cyc_build + 1 && st.cycles <= cyc_build + 2, "cycles %llu after %llu",
           (unsigned long long)st.cycles, (unsigned long long)cyc_build);
    CHECKF(st.heap_live >= (uint64_t)built * sizeof(lnode),
           "heap_live %llu for %zu live nodes", (unsigned long long)st.heap_live, built);
    size_t seen = list_check(head, built, &bad);
    CHECKF(seen == built, "walked %zu nodes of %zu", seen, built);
    CHECKF(bad == 0, "%zu nodes with a wrong payload", bad);
    /* once more, with the list idle */
    wbgc_collect(p);
    bad = 0;
    seen = list_check(head, built, &bad);
    CHECK(seen == built && bad == 0);
    note("%zu nodes: build %.2f s (%llu automatic cycles), collect %.2f s, heap_live %llu",
         built, (t1 - t0) / 1e9, (unsigned long long)cyc_build, (t2 - t1) / 1e9,
         (unsigned long long)st.heap_live);
    head = NULL;
    CLOSE_HEAP(h, p, &log);
}

/* =========================================================================
   9. threads exchanging objects while collections run
   ========================================================================= */

/* A node carries its identity in every word: seq (unique, from a global
   counter), check = f(address, seq), and w[i] = f(check, i). A reference is
   a pointer plus the seq it expects, so a node freed and reused by someone
   else -- even one that passes its own check -- fails the holder's check. */
typedef struct tnode {
    struct tnode *kid[2];
    uint64_t kid_seq[2];
    uint64_t seq;
    uint64_t check;
    uint64_t nw;
    uint64_t w[];
} tnode;
#define TN_MAXW 6200

static uint64_t g_tn_seq;

static uint64_t tn_check(const tnode *o, uint64_t seq)
{
    return mix64((uint64_t)(uintptr_t)o ^ (seq * 0x9E3779B97F4A7C15ULL));
}

static tnode *tn_new(wbgc_p *p, uint64_t *rng)
{
    uint64_t r = rnd(rng);
    size_t nw = (r % 64 == 0) ? 4100 + (size_t)(r >> 20) % 2000 : (size_t)(r >> 20) % 48;
    size_t size = sizeof(tnode) + nw * sizeof(uint64_t);
    tnode *o = wbgc_alloc(p, size);
    if (!o) {
        FAILF("tnode allocation of %zu bytes failed", size);
        return NULL;
    }
    size_t nz = count_nonzero(o, size);
    if (nz) FAILF("fresh node at %p (%zu bytes) has %zu non-zero bytes: memory of a live object?",
                  (void *)o, size, nz);
    uint64_t seq = __atomic_add_fetch(&g_tn_seq, 1, __ATOMIC_RELAXED);
    o->seq = seq;
    o->nw = nw;
    o->check = tn_check(o, seq);
    for (size_t i = 0; i < nw; i++) o->w[i] = mix64(o->check + i);
    return o;
}

static int tn_ok(const tnode *o, uint64_t seq, const char *what)
{
    if (!o) {
        FAILF("%s: NULL where node seq %llu was expected", what, (unsigned long long)seq);
        return 0;
    }
    if (o->seq != seq || o->check != tn_check(o, seq) || o->nw > TN_MAXW) {
        FAILF("%s: node %p corrupt or reused: seq %llu (expected %llu), check %s, nw %llu", what,
              (const void *)o, (unsigned long long)o->seq, (unsigned long long)seq,
              o->check == tn_check(o, seq) ? "ok" : "BAD", (unsigned long long)o->nw);
        return 0;
    }
    for (size_t i = 0; i < o->nw; i++)
        if (o->w[i] != mix64(o->check + i)) {
            FAILF("%s: node %p seq %llu: word %zu of %llu corrupt", what, (const void *)o,
                  (unsigned long long)seq, i, (unsigned long long)o->nw);
            return 0;
        }
    return 1;
}

static tnode *tree_build(wbgc_p *p, uint64_t *rng, int depth)
{
    tnode *o = tn_new(p, rng);
    if (!o) return NULL;
    if (depth > 1)
        for (int k = 0; k < 2; k++) {
            tnode *c = tree_build(p, rng, depth - 1);
            wbgc_write(p, &o->kid[k], c);
            o->kid_seq[k] = c ? c->seq : 0;
        }
    return o;
}

/* tree_ok: node count, or -1 after reporting a failure. */
static long tree_ok(const tnode *o, uint64_t seq, int depth, const char *what)
{
    if (depth > 6) {
        FAILF("%s: tree deeper than any built", what);
        return -1;
    }
    if (!tn_ok(o, seq, what)) return -1;
    long n = 1;
    for (int k = 0; k < 2; k++) {
        if (o->kid[k]) {
            long c = tree_ok(o->kid[k], o->kid_seq[k], depth + 1, what);
            if (c < 0) return -1;
            n += c;
        } else if (o->kid_seq[k]) {
            FAILF("%s: NULL child where seq %llu was expected", what, (unsigned long long)o->kid_seq[k]);
            return -1;
        }
    }
    return n;
}

/* graft_swap: swap two subtrees at the same depth of trees a and b (so no
   tree grows deeper), with a safepoint between the two stores: while it
   runs, one subtree is referenced only from a local. */
static void graft_swap(wbgc_p *p, tnode *a, tnode *b, uint64_t *rng)
{
    int d = (int)(rnd(rng) % 4);
    tnode *x = a, *y = b;
    for (int l = 0; l < d; l++) {
        uint64_t r = rnd(rng);
        tnode *nx = x->kid[r & 1], *ny = y->kid[(r >> 1) & 1];
        if (!nx || !ny) break;
        x = nx;
        y = ny;
    }
    int k = (int)(rnd(rng) & 1);
    tnode *cx = x->kid[k], *cy = y->kid[k];
    uint64_t sx = x->kid_seq[k], sy = y->kid_seq[k];
    wbgc_write(p, &x->kid[k], cy);
    x->kid_seq[k] = sy;
    for (int i = 0; i < 4; i++) {
        uint64_t *g = wbgc_alloc_noscan(p, 64);   /* safepoints in the window */
        if (g) g[0] = 1;
    }
    wbgc_write(p, &y->kid[k], cx);
    y->kid_seq[k] = sx;
    if (cx) tn_ok(cx, sx, "grafted subtree");
    if (cy) tn_ok(cy, sy, "grafted subtree");
}

#define MT_THREADS 4
#define MT_SLOTS 64
#define MT_HELD 8
static void *g_mt_slots[MT_SLOTS];        /* a registered root region */
static uint64_t g_mt_slot_seq[MT_SLOTS];  /* their expected seqs; under g_mt_mu */
static pthread_mutex_t g_mt_mu = PTHREAD_MUTEX_INITIALIZER;
static wbgc_heap *g_mt_heap;
static uint64_t g_mt_verified, g_mt_exchanges;

typedef struct mt_arg {
    int id;
    int iters;
} mt_arg;

static void *mt_thread(void *argp)
{
    mt_arg *arg = argp;
    uint64_t rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(arg->id + 1);
    tnode *held[MT_HELD];
    uint64_t held_seq[MT_HELD];
    wbgc_p *p = wbgc_attach(g_mt_heap);
    if (!p) {
        FAILF("thread %d: wbgc_attach failed", arg->id);
        return NULL;
    }
    for (int i = 0; i < MT_HELD; i++) {
        held[i] = tree_build(p, &rng, 3 + (int)(rnd(&rng) % 3));
        held_seq[i] = held[i] ? held[i]->seq : 0;
    }
    for (int it = 0; it < arg->iters; it++) {
        int i = (int)(rnd(&rng) % MT_HELD), j = (int)(rnd(&rng) % MT_HELD);
        switch (rnd(&rng) % 4) {
        case 0: /* drop a tree, build a new one */
            held[i] = tree_build(p, &rng, 3 + (int)(rnd(&rng) % 3));
            held_seq[i] = held[i] ? held[i]->seq : 0;
            if (held[i]) tree_ok(held[i], held_seq[i], 0, "new tree");
            break;
        case 1: /* swap subtrees between two of our trees */
            if (held[i] && held[j] && tn_ok(held[i], held_seq[i], "graft a") &&
                tn_ok(held[j], held_seq[j], "graft b"))
                graft_swap(p, held[i], held[j], &rng);
            break;
        case 2: { /* give a tree to the shared slots, take the one there */
            int k = (int)(rnd(&rng) % MT_SLOTS);
            wbgc_blocking_begin(p);
            pthread_mutex_lock(&g_mt_mu);
            wbgc_blocking_end(p);
            tnode *got = g_mt_slots[k];
            uint64_t gs = g_mt_slot_seq[k];
            wbgc_write(p, &g_mt_slots[k], held[i]);
            g_mt_slot_seq[k] = held_seq[i];
            pthread_mutex_unlock(&g_mt_mu);
            held[i] = got;
            held_seq[i] = gs;
            if (got && tree_ok(got, gs, 0, "tree taken from a shared slot") >= 0)
                __atomic_add_fetch(&g_mt_verified, 1, __ATOMIC_RELAXED);
            __atomic_add_fetch(&g_mt_exchanges, 1, __ATOMIC_RELAXED);
            break;
        }
        default: /* touch a tree, make garbage */
            if (held[i] && tree_ok(held[i], held_seq[i], 0, "held tree") >= 0)
                __atomic_add_fetch(&g_mt_verified, 1, __ATOMIC_RELAXED);
            for (int g = 0; g < 20; g++) {
                uint64_t *q = wbgc_alloc(p, 16 + (size_t)(rnd(&rng) % 600));
                if (q) q[0] = 3;
            }
            break;
        }
        if (arg->id == 0 && it % 50 == 49) wbgc_collect(p);
        if (it % 16 == 0) wbgc_safepoint(p);
        if (it % 64 == 63)
            for (int m = 0; m < MT_HELD; m++)
                if (held[m]) tree_ok(held[m], held_seq[m], 0, "held tree (sweep)");
    }
    for (int m = 0; m < MT_HELD; m++)
        if (held[m] && tree_ok(held[m], held_seq[m], 0, "held tree (end)") >= 0)
            __atomic_add_fetch(&g_mt_verified, 1, __ATOMIC_RELAXED);
    wbgc_detach(p);
    return NULL;
}

static long mt_check_slots(const char *what)
{
    long nodes = 0;
    for (int k = 0; k < MT_SLOTS; k++)
        if (g_mt_slots[k]) {
            long c = tree_ok(g_mt_slots[k], g_mt_slot_seq[k], 0, what);
            if (c > 0) nodes += c;
        } else if (g_mt_slot_seq[k])
            FAILF("%s: slot %d is NULL, expected seq %llu", what, k, (unsigned long long)g_mt_slot_seq[k]);
    return nodes;
}

static void test_threads_exchange(void)
{
    errlog log;
    pthread_t t[MT_THREADS];
    mt_arg args[MT_THREADS];
    wbgc_heap *h = open_heap(&log, 10, 0, -1, 0);
    REQUIRE(h);
    g_mt_heap = h;
    g_tn_seq = 0;
    g_mt_verified = g_mt_exchanges = 0;
    memset(g_mt_slots, 0, sizeof g_mt_slots);
    memset(g_mt_slot_seq, 0, sizeof g_mt_slot_seq);
    CHECK(wbgc_add_roots(h, g_mt_slots, sizeof g_mt_slots) == 0);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    uint64_t c0 = cycles_of(h), t0 = now_ns();
    for (int i = 0; i < MT_THREADS; i++) {
        args[i].id = i;
        args[i].iters = (int)scaled(3000);
        CHECK(pthread_create(&t[i], NULL, mt_thread, &args[i]) == 0);
    }
    wbgc_blocking_begin(p);
    for (int i = 0; i < MT_THREADS; i++) pthread_join(t[i], NULL);
    wbgc_blocking_end(p);
    uint64_t t1 = now_ns();
    long n1 = mt_check_slots("shared slot after the threads");
    wbgc_collect(p);
    long n2 = mt_check_slots("shared slot after a last collect");
    CHECK(n1 == n2);
    uint64_t cyc = cycles_of(h) - c0;
    CHECKF(cyc >= 10, "only %llu cycles ran during the test", (unsigned long long)cyc);
    CHECK(g_mt_verified > 100);
    note("%d threads x %d iterations, %.2f s: %llu cycles, %llu exchanges, %llu trees verified, "
         "%ld nodes in the shared slots",
         MT_THREADS, args[0].iters, (t1 - t0) / 1e9, (unsigned long long)cyc,
         (unsigned long long)g_mt_exchanges, (unsigned long long)g_mt_verified, n2);
    wbgc_remove_roots(h, g_mt_slots);
    memset(g_mt_slots, 0, sizeof g_mt_slots);
    CLOSE_HEAP(h, p, &log);
}

/* ---- a thread blocked for long does not hold up collections ---- */

typedef struct sleeper {
    wbgc_heap *h;
    int blocked;     /* the sleeper is inside its blocking region */
    int release;     /* main: leave the blocking region */
    int timed_out;   /* the sleeper gave up waiting for release */
    int done;
} sleeper;

static void *sleeper_main(void *a)
{
    sleeper *s = a;
    wbgc_p *p = wbgc_attach(s->h);
    if (!p) {
        FAILF("sleeper: attach failed");
        __atomic_store_n(&s->blocked, 1, __ATOMIC_RELEASE);
        return NULL;
    }
    /* one object in a plain local (likely a callee-saved register at -O2),
       one in a volatile local (in the frame) */
    unsigned char *obj = wbgc_alloc(p, 4000);
    unsigned char *volatile vobj = wbgc_alloc_noscan(p, 4000);
    if (!obj || !vobj) {
        FAILF("sleeper: allocation failed");
        __atomic_store_n(&s->blocked, 1, __ATOMIC_RELEASE);
        wbgc_detach(p);
        return NULL;
    }
    fill_pat(obj, 4000, 61);
    fill_pat(vobj, 4000, 62);
    wbgc_blocking_begin(p);
    __atomic_store_n(&s->blocked, 1, __ATOMIC_RELEASE);
    uint64_t deadline = now_ns() + 20000000000ULL;
    while (!__atomic_load_n(&s->release, __ATOMIC_ACQUIRE)) {
        if (now_ns() > deadline) {
            __atomic_store_n(&s->timed_out, 1, __ATOMIC_RELEASE);
            break;
        }
        sleep_us(1000);
    }
    wbgc_blocking_end(p);
    size_t b1 = check_pat(obj, 4000, 61), b2 = check_pat(vobj, 4000, 62);
    CHECKF(b1 == 0, "object held in a plain local of a blocked thread: %zu words changed", b1);
    CHECKF(b2 == 0, "object held in a volatile local of a blocked thread: %zu words changed", b2);
    wbgc_detach(p);
    __atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void test_blocking_thread_does_not_stall_gc(void)
{
    errlog log;
    sleeper s;
    pthread_t t;
    uint64_t rng = 8;
    memset(&s, 0, sizeof s);
    wbgc_heap *h = open_heap(&log, 100, 0, -1, 0);
    REQUIRE(h);
    s.h = h;
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    REQUIRE(pthread_create(&t, NULL, sleeper_main, &s) == 0);
    CHECK(wait_flag_blocking(p, &s.blocked, 20));
    uint64_t c0 = cycles_of(h), t0 = now_ns();
    for (int i = 0; i < 8; i++) {
        churn(p, 4 * MB, 8000, &rng);   /* reuses the sleeper's size class */
        wbgc_collect(p);
    }
    uint64_t t1 = now_ns(), cyc = cycles_of(h) - c0;
    CHECKF(!__atomic_load_n(&s.timed_out, __ATOMIC_ACQUIRE),
           "the collections waited for the blocked thread (%.2f s for 8 cycles)", (t1 - t0) / 1e9);
    CHECKF(cyc >= 8, "%llu cycles while the other thread was blocked", (unsigned long long)cyc);
    note("8 collections in %.3f s while another P sat in a blocking region", (t1 - t0) / 1e9);
    __atomic_store_n(&s.release, 1, __ATOMIC_RELEASE);
    join_blocking(p, t);
    CHECK(s.done);
    CLOSE_HEAP(h, p, &log);
}

/* ---- a pointer held only in a callee-saved register of a parked P ---- */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_REG_TEST 1
typedef struct regtest {
    wbgc_heap *h;
    wbgc_p *p;
    int ready, stop;
} regtest;

/* reg_spin: sit at safepoints until told to stop; the collections of the
   other thread park this P here. */
static NOINLINE void reg_spin(regtest *rt)
{
    __atomic_store_n(&rt->ready, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&rt->stop, __ATOMIC_ACQUIRE)) wbgc_safepoint(rt->p);
}

static NOINLINE uintptr_t reg_make(wbgc_p *p)
{
    unsigned char *q = wbgc_alloc_noscan(p, 2000);
    if (q) fill_pat(q, 2000, 4711);
    return ~(uintptr_t)q;   /* complemented: not a pointer until the asm says so */
}

static void *reg_thread(void *a)
{
    regtest *rt = a;
    uintptr_t back;
    rt->p = wbgc_attach(rt->h);
    if (!rt->p) {
        FAILF("attach failed");
        __atomic_store_n(&rt->ready, 1, __ATOMIC_RELEASE);
        return NULL;
    }
    uintptr_t nv = reg_make(rt->p);
    /* r15 = the object, the only copy (the operand registers hold ~ptr);
       then call reg_spin, which preserves r15 (callee-saved) and, being
       small, probably never spills it: while parked, the object is reachable
       only through the registers the P saved. The 128-byte step keeps the
       call off the red zone; rsp stays 16-byte aligned. */
    __asm__ volatile("movq %[nv], %%r15\n\t"
                     "notq %%r15\n\t"
                     "movq %[rt], %%rdi\n\t"
                     "subq $128, %%rsp\n\t"
                     "callq *%[fn]\n\t"
                     "addq $128, %%rsp\n\t"
                     "movq %%r15, %[back]\n\t"
                     : [back] "=&r"(back)
                     : [nv] "r"(nv), [rt] "r"(rt), [fn] "r"(reg_spin)
                     : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r15",
                       "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                       "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");
    CHECKF(back == ~nv, "r15 came back as %#lx, not %#lx", (unsigned long)back, (unsigned long)~nv);
    size_t b = check_pat((const void *)back, 2000, 4711);
    CHECKF(b == 0, "object held only in a callee-saved register of a parked P: %zu words changed", b);
    wbgc_detach(rt->p);
    return NULL;
}
#else
#define HAVE_REG_TEST 0
#endif

static void test_registers_are_roots(void)
{
#if HAVE_REG_TEST
    errlog log;
    regtest rt;
    pthread_t t;
    uint64_t rng = 5;
    memset(&rt, 0, sizeof rt);
    wbgc_heap *h = open_heap(&log, -1, 0, -1, 0);
    REQUIRE(h);
    rt.h = h;
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    REQUIRE(pthread_create(&t, NULL, reg_thread, &rt) == 0);
    CHECK(wait_flag_blocking(p, &rt.ready, 20));
    for (int i = 0; i < 5; i++) {
        churn(p, 2 * MB, 3000, &rng);   /* reuses the object's size class if it was freed */
        wbgc_collect(p);
    }
    __atomic_store_n(&rt.stop, 1, __ATOMIC_RELEASE);
    join_blocking(p, t);
    CLOSE_HEAP(h, p, &log);
#else
    note("x86-64 only; skipped");
#endif
}

/* =========================================================================
   10. extreme sizes
   ========================================================================= */

static void test_alloc_extreme_sizes(void)
{
    static const char *const size_words[] = {"size", "large", "overflow", "too big", "memory", "bytes", NULL};
    static const size_t huge[] = {
        SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 7, SIZE_MAX - 15, SIZE_MAX - 4096,
        SIZE_MAX / 2, SIZE_MAX / 2 + 1, (size_t)1 << 62, (size_t)1 << 48, (size_t)1 << 47};
    errlog log;
    enum { NZ = 200, NP = 16 };
    wbgc_heap *h = open_heap(&log, 100, 0, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    /* objects made before, that must not be disturbed */
    unsigned char *volatile keep[NP];
    for (int i = 0; i < NP; i++) {
        size_t n = (size_t)64 << (i % 12);
        keep[i] = (i & 1) ? wbgc_alloc_noscan(p, n) : wbgc_alloc(p, n);
        REQUIRE(keep[i]);
        fill_pat(keep[i], n, 900 + (uint64_t)i);
    }
    for (size_t i = 0; i < ARRAY_LEN(huge); i++)
        for (int kind = 0; kind < 2; kind++) {
            int e0 = errlog_count(&log);
            void *q = kind ? wbgc_alloc_noscan(p, huge[i]) : wbgc_alloc(p, huge[i]);
            CHECKF(q == NULL, "%s(%#zx) returned %p", kind ? "wbgc_alloc_noscan" : "wbgc_alloc", huge[i], q);
            CHECKF(errlog_count(&log) == e0 + 1, "%s(%#zx): on_error called %d times",
                   kind ? "wbgc_alloc_noscan" : "wbgc_alloc", huge[i], errlog_count(&log) - e0);
            CHECKF(errlog_any(&log, e0, size_words), "message for size %#zx does not say what went wrong: \"%s\"",
                   huge[i], errlog_msg(&log, e0));
        }
    /* size 0: valid, unique, non-NULL; held in a scanned holder */
    void **volatile zs = wbgc_alloc(p, NZ * sizeof(void *));
    uintptr_t *sorted = malloc(2 * NZ * sizeof *sorted);
    REQUIRE(zs && sorted);
    int e0 = errlog_count(&log);
    for (int i = 0; i < NZ; i++) {
        void *q = (i & 1) ? wbgc_alloc_noscan(p, 0) : wbgc_alloc(p, 0);
        CHECKF(q != NULL, "size 0 allocation %d returned NULL", i);
        wbgc_write(p, &zs[i], q);
    }
    CHECK(errlog_count(&log) == e0);
    wbgc_collect(p);
    /* a second batch after a cycle: must not hand out the held ones again */
    for (int i = 0; i < NZ; i++) sorted[i] = (uintptr_t)zs[i];
    for (int i = 0; i < NZ; i++) {
        void *q = (i & 1) ? wbgc_alloc(p, 0) : wbgc_alloc_noscan(p, 0);
        sorted[NZ + i] = (uintptr_t)q;
    }
    qsort(sorted, 2 * NZ, sizeof *sorted, cmp_uptr);
    int dups = 0;
    for (int i = 1; i < 2 * NZ; i++) dups += sorted[i] == sorted[i - 1];
    CHECKF(dups == 0, "%d size-0 objects share an address", dups);
    for (int i = 0; i < 2 * NZ; i++)
        for (int k = 0; k < NP; k++)
            if (overlaps(sorted[i], 1, (uintptr_t)keep[k], (size_t)64 << (k % 12)))
                FAILF("size-0 object %#lx lies inside a live object", (unsigned long)sorted[i]);
    /* the heap still works and nothing earlier changed */
    uint64_t rng = 3;
    churn(p, 4 * MB, 5000, &rng);
    wbgc_collect(p);
    for (int i = 0; i < NP; i++) {
        size_t b = check_pat(keep[i], (size_t)64 << (i % 12), 900 + (uint64_t)i);
        CHECKF(b == 0, "object %d made before the failed allocations: %zu words changed", i, b);
    }
    for (int i = 0; i < NZ; i++) CHECK(zs[i] != NULL);
    free(sorted);
    CLOSE_HEAP_ERRS_OK(h, p, &log);
}

/* =========================================================================
   11. memory limit
   ========================================================================= */

static void test_memory_limit(void)
{
    static const char *const limit_words[] = {"limit", "memory", NULL};
    enum { SLOTS = 4096 };
    const size_t limit = 64 * MB, osz = 256 * KB;
    errlog log;
    wbgc_heap *h = open_heap(&log, 100, 0, -1, limit);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    void **volatile holder = wbgc_alloc(p, SLOTS * sizeof(void *));
    REQUIRE(holder);
    int n = 0, e0 = errlog_count(&log);
    while (n < SLOTS) {
        unsigned char *q = (n & 1) ? wbgc_alloc(p, osz) : wbgc_alloc_noscan(p, osz);
        if (!q) break;
        fill_pat(q, osz, 40000 + (uint64_t)n);
        wbgc_write(p, &holder[n], q);
        n++;
    }
    size_t live = (size_t)n * osz;
    CHECKF(n < SLOTS, "allocated %zu bytes of live objects with a %zu-byte limit and never got NULL",
           live, limit);
    CHECKF(errlog_count(&log) > e0, "allocation failed at the limit without on_error");
    CHECKF(errlog_any(&log, e0, limit_words), "message does not mention the limit: \"%s\"",
           errlog_msg(&log, e0));
    CHECKF(live <= limit + limit / 4 && live >= limit / 2,
           "live bytes when allocation failed: %zu (limit %zu)", live, limit);
    wbgc_stats st = get_stats(h);
    CHECKF(st.heap_alloc <= limit + limit / 4, "heap_alloc %llu over the limit %zu",
           (unsigned long long)st.heap_alloc, limit);
    note("limit %zu: %d objects (%zu bytes) before NULL; heap_alloc %llu, heap_sys %llu, %llu cycles",
         limit, n, live, (unsigned long long)st.heap_alloc, (unsigned long long)st.heap_sys,
         (unsigned long long)st.cycles);
    /* a small allocation at the limit fails too, or succeeds; either way
       nothing earlier is disturbed */
    size_t bad = 0;
    for (int i = 0; i < n; i++) bad += check_pat(holder[i], osz, 40000 + (uint64_t)i);
    CHECKF(bad == 0, "%zu words of live objects changed at the limit", bad);
    /* drop them: allocation works again */
    for (int i = 0; i < n; i++) wbgc_write(p, &holder[i], NULL);
    scrub_stack();
    wbgc_collect(p);
    int e1 = errlog_count(&log), again = 0;
    size_t nz = 0;
    for (int i = 0; i < 128; i++) {
        unsigned char *q = wbgc_alloc_noscan(p, osz);
        if (!q) break;
        nz += count_nonzero(q, osz);
        fill_pat(q, osz, 1);
        wbgc_write(p, &holder[i], q);
        again++;
    }
    CHECKF(again == 128, "after dropping everything only %d of 128 allocations (32 MB) succeeded", again);
    CHECK(errlog_count(&log) == e1);
    CHECK(nz == 0);
    CLOSE_HEAP_ERRS_OK(h, p, &log);
}

/* =========================================================================
   12. misuse
   ========================================================================= */

static void *detach_other(void *a)
{
    wbgc_detach((wbgc_p *)a);
    return NULL;
}

/* After a reported misuse the heap and the P still work: an allocation
   and a cycle report nothing. Returns the error count to close against. */
static int misuse_then_still_works(wbgc_p *p, errlog *log)
{
    int e1 = errlog_count(log);
    void *volatile q = wbgc_alloc(p, 64);
    CHECK(q != NULL);
    wbgc_collect(p);
    CHECK(errlog_count(log) == e1);
    return e1;
}

/* ...and the proper detach and free report nothing either. */
static void misuse_close_quietly(wbgc_heap *h, wbgc_p *p, errlog *log, int e1)
{
    wbgc_detach(p);
    wbgc_heap_free(h);
    CHECKF(errlog_count(log) == e1, "the proper detach and free reported: \"%s\"", errlog_msg(log, e1));
    pthread_mutex_destroy(&log->mu);
}

static void test_misuse_detach_other_thread(void)
{
    errlog log;
    pthread_t t;
    wbgc_heap *h = open_heap(&log, -1, 0, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    int e0 = errlog_count(&log);
    REQUIRE(pthread_create(&t, NULL, detach_other, p) == 0);
    join_blocking(p, t);
    CHECKF(errlog_count(&log) == e0 + 1, "detach from another thread: on_error called %d times",
           errlog_count(&log) - e0);
    CHECKF(errlog_has_ptr(&log, e0, p), "message does not name the P %p: \"%s\"", (void *)p,
           errlog_msg(&log, e0));
    /* the P is still attached and usable by its owner */
    int e1 = misuse_then_still_works(p, &log);
    misuse_close_quietly(h, p, &log, e1);
}

static void test_misuse_free_attached(void)
{
    static const char *const words[] = {"attach", "detach", NULL};
    errlog log;
    wbgc_heap *h = open_heap(&log, -1, 0, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    unsigned char *volatile keep = wbgc_alloc(p, 5000);
    REQUIRE(keep);
    fill_pat(keep, 5000, 77);
    int e0 = errlog_count(&log);
    wbgc_heap_free(h);   /* misuse: p is attached */
    CHECKF(errlog_count(&log) == e0 + 1, "heap_free with a P attached: on_error called %d times",
           errlog_count(&log) - e0);
    CHECKF(errlog_any(&log, e0, words), "message does not say a P is attached: \"%s\"", errlog_msg(&log, e0));
    /* the heap was not freed: it still works */
    int e1 = misuse_then_still_works(p, &log);
    CHECK(check_pat(keep, 5000, 77) == 0);
    wbgc_stats st = get_stats(h);
    CHECK(st.cycles == 1);
    misuse_close_quietly(h, p, &log, e1);
}

static void test_misuse_detached_p(void)
{
    static const char *const words[] = {"detach", "not attached", NULL};
    errlog log;
    wbgc_heap *h = open_heap(&log, -1, 0, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    wbgc_detach(p);
    int e0 = errlog_count(&log);
    void *q = wbgc_alloc(p, 16);
    CHECKF(q == NULL, "wbgc_alloc on a detached P returned %p", q);
    CHECKF(errlog_count(&log) == e0 + 1, "wbgc_alloc on a detached P: on_error called %d times",
           errlog_count(&log) - e0);
    CHECKF(errlog_has_ptr(&log, e0, p) || errlog_any(&log, e0, words),
           "message neither names the P nor says it is detached: \"%s\"", errlog_msg(&log, e0));
    e0 = errlog_count(&log);
    q = wbgc_alloc_noscan(p, 16);
    CHECK(q == NULL);
    CHECK(errlog_count(&log) == e0 + 1);
    e0 = errlog_count(&log);
    wbgc_detach(p);   /* twice */
    CHECKF(errlog_count(&log) == e0 + 1, "a second wbgc_detach: on_error called %d times",
           errlog_count(&log) - e0);
    /* a second attach on one thread is reported and returns NULL */
    wbgc_p *p2 = wbgc_attach(h);
    REQUIRE(p2);
    e0 = errlog_count(&log);
    wbgc_p *p3 = wbgc_attach(h);
    CHECKF(p3 == NULL, "a second attach on the same thread returned %p", (void *)p3);
    CHECK(errlog_count(&log) == e0 + 1);
    if (p3 && p3 != p2) wbgc_detach(p3);
    /* the heap still works through the new P */
    int e1 = errlog_count(&log);
    void *volatile r = wbgc_alloc(p2, 100);
    CHECK(r != NULL);
    wbgc_collect(p2);
    wbgc_detach(p2);
    wbgc_heap_free(h);
    CHECKF(errlog_count(&log) == e1, "correct use reported: \"%s\"", errlog_msg(&log, e1));
    pthread_mutex_destroy(&log.mu);
}

/* =========================================================================
   13. stats
   ========================================================================= */

static void check_ring(const wbgc_stats *st)
{
    uint64_t n = st->pause_count < 256 ? st->pause_count : 256, sum = 0;
    for (uint64_t k = st->pause_count - n; k < st->pause_count; k++) {
        uint64_t v = st->pause_recent_ns[k % 256];
        CHECKF(v > 0, "pause %llu has 0 ns in the ring", (unsigned long long)k);
        CHECKF(v <= st->pause_max_ns, "pause %llu: %llu ns > pause_max_ns %llu",
               (unsigned long long)k, (unsigned long long)v, (unsigned long long)st->pause_max_ns);
        sum += v;
    }
    if (st->pause_count <= 256) {
        CHECKF(sum <= st->pause_total_ns, "ring sums to %llu > pause_total_ns %llu",
               (unsigned long long)sum, (unsigned long long)st->pause_total_ns);
        for (uint64_t k = st->pause_count; k < 256; k++)
            CHECKF(st->pause_recent_ns[k] == 0, "ring entry %llu holds %llu, but only %llu pauses happened",
                   (unsigned long long)k, (unsigned long long)st->pause_recent_ns[k],
                   (unsigned long long)st->pause_count);
    }
}

static void test_stats(void)
{
    errlog log;
    uint64_t rng = 11;
    wbgc_heap *h = open_heap(&log, -1, 0, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    wbgc_stats s0 = get_stats(h);
    CHECK(s0.cycles == 0);
    CHECK(s0.pause_count == 0);
    CHECK(s0.pause_total_ns == 0 && s0.pause_max_ns == 0);
    CHECK(s0.heap_alloc == 0);
    unsigned char *volatile live = wbgc_alloc_noscan(p, MB);
    REQUIRE(live);
    uint64_t total = MB;
    for (int i = 0; i < 5; i++) {
        total += churn(p, 2 * MB, 3000, &rng);
        wbgc_collect(p);
    }
    wbgc_stats st = get_stats(h);
    CHECKF(st.cycles == 5, "cycles %llu after 5 wbgc_collect and no automatic cycles",
           (unsigned long long)st.cycles);
    CHECK(st.pause_count >= st.cycles);
    CHECK(st.pause_max_ns > 0);
    CHECK(st.pause_total_ns >= st.pause_max_ns);
    CHECK(st.total_alloc >= total);
    CHECK(st.total_alloc >= st.heap_alloc);
    CHECK(st.heap_sys >= st.heap_alloc);
    CHECK(st.heap_live >= MB);
    CHECKF(st.heap_live <= st.heap_alloc, "right after a collect heap_live %llu > heap_alloc %llu",
           (unsigned long long)st.heap_live, (unsigned long long)st.heap_alloc);
    CHECKF(st.heap_alloc < 2 * MB, "heap_alloc %llu with 1 MB live after a collect",
           (unsigned long long)st.heap_alloc);
    check_ring(&st);
    /* enough cycles to wrap the ring; every counter only grows */
    for (int i = 0; i < 300; i++) {
        churn(p, 64 * KB, 3000, &rng);
        wbgc_collect(p);
    }
    wbgc_stats s2 = get_stats(h);
    CHECK(s2.cycles == 305);
    CHECK(s2.pause_count >= 305 && s2.pause_count >= st.pause_count);
    CHECK(s2.pause_total_ns >= st.pause_total_ns && s2.pause_max_ns >= st.pause_max_ns);
    CHECK(s2.total_alloc >= st.total_alloc);
    CHECK(s2.pause_total_ns >= s2.pause_max_ns);
    check_ring(&s2);
    note("%llu cycles, %llu pauses, max %llu ns, total %llu ns, heap_live %llu, heap_sys %llu",
         (unsigned long long)s2.cycles, (unsigned long long)s2.pause_count,
         (unsigned long long)s2.pause_max_ns, (unsigned long long)s2.pause_total_ns,
         (unsigned long long)s2.heap_live, (unsigned long long)s2.heap_sys);
    CLOSE_HEAP(h, p, &log);

    /* a paced heap has a goal above what is live */
    wbgc_heap *h2 = open_heap(&log, 100, 0, -1, 0);
    REQUIRE(h2);
    wbgc_p *p2 = wbgc_attach(h2);
    REQUIRE(p2);
    unsigned char *volatile live2 = wbgc_alloc_noscan(p2, 8 * MB);
    REQUIRE(live2);
    wbgc_collect(p2);
    wbgc_stats s3 = get_stats(h2);
    CHECK(s3.heap_goal > 0);
    CHECKF(s3.heap_goal >= s3.heap_live, "heap_goal %llu < heap_live %llu",
           (unsigned long long)s3.heap_goal, (unsigned long long)s3.heap_live);
    /* goal = live * (1 + gc_percent/100), give or take rounding */
    CHECKF(s3.heap_goal >= 2 * s3.heap_live - s3.heap_live / 100 && s3.heap_goal <= 2 * s3.heap_live + MB,
           "heap_goal %llu at gc_percent 100 with heap_live %llu", (unsigned long long)s3.heap_goal,
           (unsigned long long)s3.heap_live);
    CLOSE_HEAP(h2, p2, &log);
}

/* =========================================================================
   14. pacing
   ========================================================================= */

#define PACE_N 4096
#define PACE_SZ 4096

static NOINLINE void pace_build(wbgc_p *p, void **holder)
{
    for (int i = 0; i < PACE_N; i++) {
        unsigned char *q = wbgc_alloc_noscan(p, PACE_SZ);
        if (!q) {
            FAILF("live set allocation failed");
            return;
        }
        fill_pat(q, 64, (uint64_t)i);
        wbgc_write(p, &holder[i], q);
    }
}

/* pace_churn: allocate `bytes` of garbage; returns the peak heap_alloc seen
   after the heap has settled (skip_cycles cycles after the start). */
static NOINLINE uint64_t pace_churn(wbgc_p *p, wbgc_heap *h, size_t bytes, uint64_t c_settled)
{
    uint64_t rng = 1234567, peak = 0;
    size_t done = 0;
    int k = 0;
    while (done < bytes) {
        uint64_t r = rnd(&rng);
        size_t n = 16 + (size_t)(r >> 16) % 4096;
        uint64_t *q = (r & 1) ? wbgc_alloc(p, n) : wbgc_alloc_noscan(p, n);
        if (!q) {
            FAILF("allocation failed while pacing");
            break;
        }
        q[0] = r | 1;
        done += n;
        if (++k % 128 == 0) {
            wbgc_stats st = get_stats(h);
            if (st.cycles >= c_settled && st.heap_alloc > peak) peak = st.heap_alloc;
        }
    }
    return peak;
}

static void test_pacing(void)
{
    errlog log;
    const uint64_t live = (uint64_t)PACE_N * PACE_SZ + PACE_N * sizeof(void *);
    wbgc_heap *h = open_heap(&log, 100, 0, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    void **volatile holder = wbgc_alloc(p, PACE_N * sizeof(void *));
    REQUIRE(holder);
    pace_build(p, holder);
    uint64_t c0 = cycles_of(h);
    uint64_t peak = pace_churn(p, h, scaled(256 * MB), c0 + 2);
    wbgc_stats st = get_stats(h);
    uint64_t bound = live * 22 / 10 + 4 * MB;
    CHECKF(st.cycles >= c0 + 4, "only %llu automatic cycles while allocating %zu bytes over a %llu-byte live set",
           (unsigned long long)(st.cycles - c0), scaled(256 * MB), (unsigned long long)live);
    CHECKF(peak > 0 && peak <= bound, "peak heap_alloc %llu with %llu live (bound %llu)",
           (unsigned long long)peak, (unsigned long long)live, (unsigned long long)bound);
    CHECKF(st.heap_live >= live, "heap_live %llu below the live set %llu",
           (unsigned long long)st.heap_live, (unsigned long long)live);
    for (int i = 0; i < PACE_N; i += 97) CHECK(check_pat(holder[i], 64, (uint64_t)i) == 0);
    note("gc_percent 100, live %llu: %llu cycles, peak heap_alloc %llu (%.2fx live), goal %llu",
         (unsigned long long)live, (unsigned long long)st.cycles, (unsigned long long)peak,
         (double)peak / (double)live, (unsigned long long)st.heap_goal);
    CLOSE_HEAP(h, p, &log);

    /* gc_percent -1: never an automatic cycle */
    h = open_heap(&log, -1, 0, -1, 0);
    REQUIRE(h);
    p = wbgc_attach(h);
    REQUIRE(p);
    pace_churn(p, h, 96 * MB, 0);
    st = get_stats(h);
    CHECKF(st.cycles == 0, "%llu cycles with gc_percent -1", (unsigned long long)st.cycles);
    CHECK(st.heap_alloc >= 96 * MB);
    CLOSE_HEAP(h, p, &log);
}

static void test_env_gc_percent(void)
{
    errlog log;
    wbgc_config cfg;
    /* "off" (as the header documents) and "-1": no automatic cycles, though
       the config asks for 100 */
    static const char *const values[] = {"-1", "off"};
    for (int v = 0; v < 2; v++) {
        setenv("WBGC_GC_PERCENT", values[v], 1);
        errlog_init(&log);
        wbgc_config_default(&cfg);
        cfg.gc_percent = 100;
        cfg.on_error = errlog_cb;
        cfg.user = &log;
        wbgc_heap *h = wbgc_heap_new(&cfg);
        unsetenv("WBGC_GC_PERCENT");
        REQUIRE(h);
        wbgc_p *p = wbgc_attach(h);
        REQUIRE(p);
        pace_churn(p, h, 48 * MB, 0);
        uint64_t c = cycles_of(h);
        CHECKF(c == 0, "WBGC_GC_PERCENT=%s: %llu automatic cycles", values[v], (unsigned long long)c);
        CLOSE_HEAP(h, p, &log);
    }
    /* a small percentage: more cycles than the config's -1 would give */
    setenv("WBGC_GC_PERCENT", "25", 1);
    wbgc_heap *h = open_heap(&log, -1, 0, -1, 0);
    unsetenv("WBGC_GC_PERCENT");
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    pace_churn(p, h, 48 * MB, 0);
    uint64_t c = cycles_of(h);
    CHECKF(c >= 3, "WBGC_GC_PERCENT=25 over a config of -1: %llu cycles for 48 MB", (unsigned long long)c);
    CLOSE_HEAP(h, p, &log);
}

/* small_program_cycles: a small program (garbage only, 64-byte objects at
   most, `bytes` in all) on heap h; returns the cycles it ran. */
static NOINLINE uint64_t small_program_cycles(wbgc_heap *h, wbgc_p *p, size_t bytes)
{
    uint64_t rng = 77, c0 = cycles_of(h);
    churn(p, bytes, 48, &rng);
    return cycles_of(h) - c0;
}

/* wbgc_config.min_heap sets the floor of the heap goal as given, not
   scaled by gc_percent; 0 keeps the default (4 MiB x gc_percent/100, at
   least 256 KiB); below 64 KiB counts as 64 KiB. A lower floor makes a small
   program collect more often; the goal still follows what is live above
   it. */
static void test_min_heap_config(void)
{
    static const struct { int gcp; size_t min_heap; uint64_t goal; } cases[] = {
        {1, 0, 256 * KB}, {50, 0, 2 * MB}, {100, 0, 4 * MB}, {200, 0, 8 * MB},
        {1, 64 * KB, 64 * KB}, {1, 1, 64 * KB}, {1, 100 * KB, 100 * KB},
        {200, 64 * KB, 64 * KB}, {1, 8 * MB, 8 * MB},
    };
    uint64_t cyc[ARRAY_LEN(cases)];
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        errlog log;
        wbgc_config cfg;
        errlog_init(&log);
        wbgc_config_default(&cfg);
        CHECK(cfg.min_heap == 0);
        cfg.gc_percent = cases[i].gcp;
        cfg.min_heap = cases[i].min_heap;
        cfg.flags = WBGC_STW | g_extra_flags;
        cfg.on_error = errlog_cb;
        cfg.user = &log;
        wbgc_heap *h = wbgc_heap_new(&cfg);
        REQUIRE(h);
        wbgc_p *p = wbgc_attach(h);
        REQUIRE(p);
        uint64_t goal = get_stats(h).heap_goal;
        CHECKF(goal == cases[i].goal, "gc_percent %d, min_heap %zu: heap goal %llu, want %llu",
               cases[i].gcp, cases[i].min_heap, (unsigned long long)goal,
               (unsigned long long)cases[i].goal);
        cyc[i] = small_program_cycles(h, p, scaled(8 * MB));
        CLOSE_HEAP(h, p, &log);
    }
    /* gc_percent 1: 64 KiB against the default 256 KiB; 8 MiB, more than
       the program ever allocates at once: hardly a cycle */
    CHECKF(cyc[4] >= 3 * cyc[0] && cyc[0] > 0, "gc_percent 1: %llu cycles with min_heap 64 KiB, "
           "%llu with the default (want at least 3x)", (unsigned long long)cyc[4],
           (unsigned long long)cyc[0]);
    CHECKF(cyc[5] >= 3 * cyc[0], "gc_percent 1, min_heap 1 (counts as 64 KiB): %llu cycles, %llu "
           "with the default", (unsigned long long)cyc[5], (unsigned long long)cyc[0]);
    CHECKF(cyc[8] <= 2, "gc_percent 1, min_heap 8 MiB, 8 MiB allocated: %llu cycles",
           (unsigned long long)cyc[8]);
    note("stop-the-world, 8 MiB of small garbage, gc_percent 1: %llu cycles under the default "
         "floor, %llu with min_heap 64 KiB, %llu with 8 MiB", (unsigned long long)cyc[0],
         (unsigned long long)cyc[4], (unsigned long long)cyc[8]);
}

/* WBGC_MIN_HEAP=N[K|M|G] lowers (or raises) the floor of the heap goal:
   with WBGC_GC_PERCENT=1 and WBGC_MIN_HEAP=64K a small program collects
   every 64 KiB or so, about four times as often as under the default floor
   of 256 KiB. Values that are not a byte count are reported and ignored;
   below 64 KiB count as 64 KiB. Stop-the-world heaps, whose cycle count is
   the allocation over the goal, and one concurrent heap, whose cycles
   overlap the allocation. */
static void test_env_min_heap(void)
{
    static const struct { const char *env; uint64_t goal; int bad; } cases[] = {
        {NULL, 256 * KB, 0},   /* the default floor: 4 MiB x 1%, at least 256 KiB */
        {"64K", 64 * KB, 0},  {"64k", 64 * KB, 0}, {"65536", 64 * KB, 0},
        {"1K", 64 * KB, 0},   /* below the lowest: 64 KiB */
        {"0", 256 * KB, 0},   /* 0: the default */
        {"1M", 1 * MB, 0},    {"2m", 2 * MB, 0},
        {"64X", 256 * KB, 1}, {"abc", 256 * KB, 1}, {"-64K", 256 * KB, 1},
        {"64KB", 256 * KB, 1}, {"99999999999999999999999", 256 * KB, 1},
    };
    uint64_t cycles_default = 0, cycles_64k = 0;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        errlog log;
        setenv("WBGC_GC_PERCENT", "1", 1);
        if (cases[i].env) setenv("WBGC_MIN_HEAP", cases[i].env, 1);
        wbgc_heap *h = open_heap(&log, 100, WBGC_STW, -1, 0);
        unsetenv("WBGC_GC_PERCENT");
        unsetenv("WBGC_MIN_HEAP");
        REQUIRE(h);
        const char *what = cases[i].env ? cases[i].env : "(unset)";
        uint64_t goal = get_stats(h).heap_goal;
        CHECKF(goal == cases[i].goal, "WBGC_MIN_HEAP=%s, WBGC_GC_PERCENT=1: heap goal %llu, want %llu",
               what, (unsigned long long)goal, (unsigned long long)cases[i].goal);
        int n = errlog_count(&log);
        if (cases[i].bad)
            CHECKF(n == 1 && ci_contains(errlog_msg(&log, 0), "WBGC_MIN_HEAP") &&
                       ci_contains(errlog_msg(&log, 0), cases[i].env),
                   "WBGC_MIN_HEAP=%s: %d report(s), want one naming the variable and value: \"%s\"",
                   what, n, errlog_msg(&log, 0));
        else
            CHECKF(n == 0, "WBGC_MIN_HEAP=%s: %d report(s): %s", what, n, errlog_msg(&log, 0));
        if (i <= 1) {
            wbgc_p *p = wbgc_attach(h);
            REQUIRE(p);
            uint64_t c = small_program_cycles(h, p, scaled(16 * MB));
            if (i == 0) cycles_default = c;
            else cycles_64k = c;
            goal = get_stats(h).heap_goal;
            CHECKF(goal == cases[i].goal, "WBGC_MIN_HEAP=%s: heap goal %llu after %llu cycles, "
                   "want %llu", what, (unsigned long long)goal, (unsigned long long)c,
                   (unsigned long long)cases[i].goal);
            CLOSE_HEAP(h, p, &log);
        } else {
            CLOSE_HEAP_ERRS_OK(h, NULL, &log);
        }
    }
    CHECKF(cycles_64k >= 3 * cycles_default && cycles_default > 0,
           "stop-the-world, gc_percent 1, 16 MiB of garbage: %llu cycles with WBGC_MIN_HEAP=64K, "
           "%llu without (want at least 3x)", (unsigned long long)cycles_64k,
           (unsigned long long)cycles_default);
    note("stop-the-world, gc_percent 1, 16 MiB of garbage: %llu cycles with WBGC_MIN_HEAP=64K, "
         "%llu with the default floor", (unsigned long long)cycles_64k,
         (unsigned long long)cycles_default);
    /* the concurrent collector (the default mode), as a program run with
       WBGC_GC_PERCENT=1 WBGC_MIN_HEAP=64K would have it */
    uint64_t conc[2];
    for (int k = 0; k < 2; k++) {
        errlog log;
        setenv("WBGC_GC_PERCENT", "1", 1);
        if (k) setenv("WBGC_MIN_HEAP", "64K", 1);
        wbgc_heap *h = open_heap(&log, 100, 0, -1, 0);
        unsetenv("WBGC_GC_PERCENT");
        unsetenv("WBGC_MIN_HEAP");
        REQUIRE(h);
        wbgc_p *p = wbgc_attach(h);
        REQUIRE(p);
        conc[k] = small_program_cycles(h, p, scaled(16 * MB));
        CLOSE_HEAP(h, p, &log);
    }
    CHECKF(conc[1] >= 2 * conc[0] && conc[0] > 0,
           "concurrent, gc_percent 1, 16 MiB of garbage: %llu cycles with WBGC_MIN_HEAP=64K, %llu "
           "without (want at least 2x)", (unsigned long long)conc[1], (unsigned long long)conc[0]);
    note("concurrent: %llu cycles with WBGC_MIN_HEAP=64K, %llu with the default floor",
         (unsigned long long)conc[1], (unsigned long long)conc[0]);
}

/* =========================================================================
   15. WBGC_NO_STACK_SCAN
   ========================================================================= */

static void *g_nss_root[1];

static void no_stack_scan_run(unsigned flags, int expect_reclaimed)
{
    errlog log;
    enum { NS = 64 };
    wbgc_heap *h = open_heap(&log, -1, flags, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    CHECK(wbgc_add_roots(h, g_nss_root, sizeof g_nss_root) == 0);
    void *rooted = wbgc_alloc(p, 3000);
    REQUIRE(rooted);
    fill_pat(rooted, 3000, 5);
    wbgc_write(p, &g_nss_root[0], rooted);
    rooted = NULL;
    wbgc_collect(p);
    uint64_t s0 = heap_alloc_of(h);
    unsigned char *volatile big = wbgc_alloc(p, 8 * MB);
    unsigned char *volatile small[NS];
    REQUIRE(big);
    fill_pat(big, 4096, 6);
    for (int i = 0; i < NS; i++) {
        small[i] = (i & 1) ? wbgc_alloc(p, 64 * KB) : wbgc_alloc_noscan(p, 64 * KB);
        REQUIRE(small[i]);
        fill_pat(small[i], 64 * KB, 100 + (uint64_t)i);
    }
    uint64_t s1 = heap_alloc_of(h);
    wbgc_collect(p);
    uint64_t s2 = heap_alloc_of(h);
    if (expect_reclaimed) {
        CHECKF(s2 < s0 + (s1 - s0) / 10,
               "WBGC_NO_STACK_SCAN: objects held only by locals were kept: heap_alloc %llu -> %llu (base %llu)",
               (unsigned long long)s1, (unsigned long long)s2, (unsigned long long)s0);
    } else {
        CHECKF(s2 >= s1, "stack scanning: objects held by locals were freed: heap_alloc %llu -> %llu",
               (unsigned long long)s1, (unsigned long long)s2);
        CHECK(check_pat(big, 4096, 6) == 0);
        for (int i = 0; i < NS; i++) CHECK(check_pat(small[i], 64 * KB, 100 + (uint64_t)i) == 0);
    }
    /* the locals still hold their (maybe dangling) values; the root region
       kept its object either way */
    CHECK(big != NULL && small[0] != NULL);
    CHECK(check_pat(g_nss_root[0], 3000, 5) == 0);
    note("%s: heap_alloc %llu -> %llu after collect (base %llu)",
         expect_reclaimed ? "no stack scan" : "stack scan", (unsigned long long)s1,
         (unsigned long long)s2, (unsigned long long)s0);
    wbgc_remove_roots(h, g_nss_root);
    g_nss_root[0] = NULL;
    CLOSE_HEAP(h, p, &log);
}

static void test_no_stack_scan(void)
{
    no_stack_scan_run(WBGC_NO_STACK_SCAN, 1);
    no_stack_scan_run(0, 0);   /* the contrast: with the scan they stay */
}

/* =========================================================================
   16. attach/detach while another thread collects in a loop
   ========================================================================= */

typedef struct bg_collector {
    wbgc_heap *h;
    int started, stop;
    uint64_t loops;
} bg_collector;

static void *bg_collector_main(void *a)
{
    bg_collector *b = a;
    uint64_t rng = 77;
    wbgc_p *p = wbgc_attach(b->h);
    if (!p) {
        FAILF("collector thread: attach failed");
        __atomic_store_n(&b->started, 1, __ATOMIC_RELEASE);
        return NULL;
    }
    __atomic_store_n(&b->started, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE)) {
        wbgc_collect(p);
        churn(p, 64 * KB, 1000, &rng);
        __atomic_add_fetch(&b->loops, 1, __ATOMIC_RELAXED);
    }
    wbgc_detach(p);
    return NULL;
}

static int bg_start(bg_collector *b, wbgc_heap *h, pthread_t *t, wbgc_p *p)
{
    memset(b, 0, sizeof *b);
    b->h = h;
    if (pthread_create(t, NULL, bg_collector_main, b) != 0) return 0;
    return wait_flag_blocking(p, &b->started, 20);
}

static void bg_stop(bg_collector *b, pthread_t t, wbgc_p *p)
{
    __atomic_store_n(&b->stop, 1, __ATOMIC_RELEASE);
    join_blocking(p, t);
}

/* what a short-lived thread is handed at creation: a GC object */
typedef struct handoff {
    int slot;        /* index into g_storm_attached */
    int pad;
    uint64_t seed;
    unsigned char data[1000];
} handoff;

static wbgc_heap *g_storm_heap;
static int g_storm_done;
/* set by each thread once it holds a P; outside the heap, because main
   waits on them inside a blocking region, where it must not touch the heap */
static int g_storm_attached[4];

static void *storm_thread(void *a)
{
    handoff *ho = a;
    uint64_t rng = ho->seed | 1;
    int slot = ho->slot;
    wbgc_p *p = wbgc_attach(g_storm_heap);
    if (!p) {
        FAILF("short-lived thread: attach failed");
        __atomic_store_n(&g_storm_attached[slot], 1, __ATOMIC_RELEASE);
        return NULL;
    }
    __atomic_store_n(&g_storm_attached[slot], 1, __ATOMIC_RELEASE);
    lnode *head = NULL;
    for (int i = 0; i < 300; i++) {
        lnode *x = wbgc_alloc(p, sizeof *x);
        if (!x) {
            FAILF("short-lived thread: allocation failed");
            break;
        }
        x->val = LVAL(i);
        wbgc_write(p, &x->next, head);
        head = x;
        if (i % 50 == 0) churn(p, 32 * KB, 1000, &rng);
    }
    wbgc_safepoint(p);
    int i = 300, bad = 0;
    for (lnode *x = head; x; x = x->next) bad += x->val != LVAL(--i);
    CHECKF(bad == 0 && i == 0, "short-lived thread's list: %d bad nodes, %d missing", bad, i);
    size_t b = check_pat(ho->data, sizeof ho->data, ho->seed);
    CHECKF(b == 0, "object handed to a new thread at creation: %zu words changed", b);
    wbgc_detach(p);
    __atomic_add_fetch(&g_storm_done, 1, __ATOMIC_RELAXED);
    return NULL;
}

static void test_attach_detach_storm(void)
{
    enum { WAVE = (int)ARRAY_LEN(g_storm_attached) };
    errlog log;
    bg_collector bg;
    pthread_t bgt, t[WAVE];
    int waves = (int)scaled(60);
    wbgc_heap *h = open_heap(&log, 100, 0, -1, 0);
    REQUIRE(h);
    g_storm_heap = h;
    g_storm_done = 0;
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    REQUIRE(bg_start(&bg, h, &bgt, p));
    uint64_t c0 = cycles_of(h), t0 = now_ns();
    int created = 0;
    for (int w = 0; w < waves; w++) {
        handoff *volatile ho[WAVE];
        int ok[WAVE];
        for (int i = 0; i < WAVE; i++) {
            ho[i] = wbgc_alloc_noscan(p, sizeof(handoff));
            ok[i] = 0;
            if (!ho[i]) { FAILF("handoff allocation failed"); continue; }
            ho[i]->seed = (uint64_t)(w * WAVE + i + 1);
            ho[i]->slot = i;
            g_storm_attached[i] = 0;
            fill_pat(ho[i]->data, sizeof ho[i]->data, ho[i]->seed);
            ok[i] = pthread_create(&t[i], NULL, storm_thread, ho[i]) == 0;
            CHECK(ok[i]);
            created += ok[i];
        }
        /* hold the objects until every thread has a P (and so a scanned
           stack), then let go: from then on only the threads hold them */
        for (int i = 0; i < WAVE; i++)
            if (ok[i]) CHECK(wait_flag_blocking(p, &g_storm_attached[i], 30));
        for (int i = 0; i < WAVE; i++) ho[i] = NULL;
        wbgc_blocking_begin(p);
        for (int i = 0; i < WAVE; i++)
            if (ok[i]) pthread_join(t[i], NULL);
        wbgc_blocking_end(p);
    }
    uint64_t t1 = now_ns();
    bg_stop(&bg, bgt, p);
    uint64_t cyc = cycles_of(h) - c0;
    CHECKF(g_storm_done == created, "%d of %d short-lived threads finished", g_storm_done, created);
    CHECK(cyc >= 10);
    note("%d threads attached/detached in %.2f s during %llu back-to-back cycles",
         created, (t1 - t0) / 1e9, (unsigned long long)cyc);
    CLOSE_HEAP(h, p, &log);
}

/* =========================================================================
   16b. attach/detach churn beside allocators: memory follows the live set
   ========================================================================= */

/* Issue 12, item 5: threads that attach, allocate a little and detach in a
   loop, next to two allocators, drove the heap (and what each cycle
   marked) to tens or hundreds of times the live set, while the same
   threads attached once stayed small. Two phases, the same threads and the same work per round:
   first the churners stay attached, then each round is attach, work,
   detach. The second phase's peaks must stay near the first's, and what
   each cycle marks near what the allocators really hold. */

#define CH_ALLOCATORS 2
#define CH_RING 64     /* lists each allocator holds */
#define CH_LIST 512    /* nodes per list */
#define CH_NODE 64     /* bytes per node: 2 MiB live per allocator */
#define CH_LIVE ((uint64_t)CH_ALLOCATORS * CH_RING * CH_LIST * CH_NODE)

static double g_churn_secs = 2.0;   /* per phase; WBGC_CHURN_SECONDS */
static int g_churn_threads = 32;    /* WBGC_CHURN_THREADS */

static wbgc_heap *g_ch_heap;
static int g_ch_phase;              /* atomic: 1 attached once, 2 churn, 3 stop */
static uint64_t g_ch_bad, g_ch_rounds[3], g_ch_lists;   /* atomic */

static uint64_t ch_val(uint64_t tag, size_t i) { return mix64(tag * 1000003u + i) | 1; }

static NOINLINE lnode *ch_list(wbgc_p *p, uint64_t tag, size_t n, size_t size)
{
    lnode *head = NULL;
    for (size_t i = 0; i < n; i++) {
        lnode *x = wbgc_alloc(p, size);
        if (!x) {
            FAILF("allocation of %zu bytes failed", size);
            break;
        }
        x->val = ch_val(tag, i);
        wbgc_write(p, &x->next, head);
        head = x;
    }
    return head;
}

/* ch_list_bad: the nodes of a ch_list that are missing or changed. */
static NOINLINE size_t ch_list_bad(const lnode *x, uint64_t tag, size_t n)
{
    size_t bad = 0, i = n;
    for (; x && i > 0; x = x->next) bad += x->val != ch_val(tag, --i);
    return bad + i + (x != NULL);
}

static void *ch_allocator_main(void *a)
{
    uint64_t seed = (uint64_t)(uintptr_t)a, tags[CH_RING];
    wbgc_p *p = wbgc_attach(g_ch_heap);
    if (!p) {
        FAILF("allocator: attach failed");
        return NULL;
    }
    lnode **ring = wbgc_alloc(p, CH_RING * sizeof *ring);
    if (!ring) FAILF("allocator: ring allocation failed");
    for (uint64_t k = 0; ring && __atomic_load_n(&g_ch_phase, __ATOMIC_RELAXED) < 3; k++) {
        size_t i = k % CH_RING;
        if (ring[i]) {
            size_t bad = ch_list_bad(ring[i], tags[i], CH_LIST);
            if (bad) FAILF("allocator %llu: list %zu lost %zu of %d nodes",
                           (unsigned long long)seed, i, bad, CH_LIST);
            __atomic_add_fetch(&g_ch_bad, bad, __ATOMIC_RELAXED);
        }
        tags[i] = seed << 40 | k;
        wbgc_write(p, &ring[i], ch_list(p, tags[i], CH_LIST, CH_NODE));
        __atomic_add_fetch(&g_ch_lists, 1, __ATOMIC_RELAXED);
    }
    wbgc_detach(p);
    return NULL;
}

/* ch_round: a churner's work while it holds a P: a short list of objects
   of mixed sizes, held in locals, checked, dropped. */
static NOINLINE size_t ch_round(wbgc_p *p, uint64_t *rng)
{
    uint64_t r = rnd(rng), tag = r >> 16;
    size_t n = 16 + r % 32, size = 16 + (r >> 8) % 200;
    lnode *head = ch_list(p, tag, n, size);
    if (r & 0x10000) wbgc_safepoint(p);
    return ch_list_bad(head, tag, n);
}

static void *ch_churner_main(void *a)
{
    uint64_t rng = (uint64_t)(uintptr_t)a * 0x9E3779B97F4A7C15ULL | 1;
    size_t bad = 0;
    wbgc_p *p = wbgc_attach(g_ch_heap);
    if (!p) {
        FAILF("churner: attach failed");
        return NULL;
    }
    while (__atomic_load_n(&g_ch_phase, __ATOMIC_RELAXED) == 1) {
        bad += ch_round(p, &rng);
        __atomic_add_fetch(&g_ch_rounds[1], 1, __ATOMIC_RELAXED);
    }
    wbgc_detach(p);
    while (__atomic_load_n(&g_ch_phase, __ATOMIC_RELAXED) == 2) {
        p = wbgc_attach(g_ch_heap);
        if (!p) {
            FAILF("churner: attach failed");
            break;
        }
        bad += ch_round(p, &rng);
        wbgc_detach(p);
        __atomic_add_fetch(&g_ch_rounds[2], 1, __ATOMIC_RELAXED);
    }
    if (bad) FAILF("churner: %zu list nodes lost or changed", bad);
    __atomic_add_fetch(&g_ch_bad, bad, __ATOMIC_RELAXED);
    return NULL;
}

static uint64_t rss_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

typedef struct ch_peaks {
    uint64_t rss, sys, live, cycles, t_ns;
} ch_peaks;

/* ch_watch samples the heap and the process every few milliseconds for
   `secs`: peaks of RSS, heap_sys and heap_live (each cycle's marked bytes;
   a sample may miss a cycle's, the peak over many rarely does). */
static void ch_watch(wbgc_heap *h, double secs, ch_peaks *pk)
{
    memset(pk, 0, sizeof *pk);
    uint64_t t0 = now_ns(), c0 = cycles_of(h);
    while (now_ns() - t0 < (uint64_t)(secs * 1e9)) {
        wbgc_stats s = get_stats(h);
        uint64_t rss = rss_bytes();
        if (rss > pk->rss) pk->rss = rss;
        if (s.heap_sys > pk->sys) pk->sys = s.heap_sys;
        if (s.heap_live > pk->live && s.cycles > c0) pk->live = s.heap_live;
        sleep_us(5000);
    }
    pk->cycles = cycles_of(h) - c0;
    pk->t_ns = now_ns() - t0;
}

static void test_attach_churn_memory(void)
{
    errlog log;
    int nch = g_churn_threads;
    pthread_t *t = calloc((size_t)(CH_ALLOCATORS + nch), sizeof *t);
    REQUIRE(t);
    alarm(g_timeout + (unsigned)(2 * g_churn_secs + 1));
    uint64_t rss0 = rss_bytes();
    wbgc_heap *h = open_heap(&log, 100, 0, -1, 0);
    REQUIRE(h);
    g_ch_heap = h;
    g_ch_bad = g_ch_lists = 0;
    memset(g_ch_rounds, 0, sizeof g_ch_rounds);
    __atomic_store_n(&g_ch_phase, 1, __ATOMIC_RELAXED);
    int started = 0;
    for (int i = 0; i < CH_ALLOCATORS + nch; i++) {
        void *(*fn)(void *) = i < CH_ALLOCATORS ? ch_allocator_main : ch_churner_main;
        if (pthread_create(&t[i], NULL, fn, (void *)(uintptr_t)(i + 1)) != 0) {
            FAILF("pthread_create failed after %d threads", i);
            break;
        }
        started++;
    }
    ch_peaks once, churn;
    ch_watch(h, g_churn_secs, &once);
    __atomic_store_n(&g_ch_phase, 2, __ATOMIC_RELAXED);
    ch_watch(h, g_churn_secs, &churn);
    __atomic_store_n(&g_ch_phase, 3, __ATOMIC_RELAXED);
    for (int i = 0; i < started; i++) pthread_join(t[i], NULL);
    free(t);

    const double mib = 1.0 / MB;
    uint64_t grow_once = once.rss > rss0 ? once.rss - rss0 : 0;
    uint64_t grow_churn = churn.rss > rss0 ? churn.rss - rss0 : 0;
    note("%d allocators (%.1f MiB live), %d churners, %.1f s per phase; %llu lists built",
         CH_ALLOCATORS, CH_LIVE * mib, nch, g_churn_secs, (unsigned long long)g_ch_lists);
    note("attached once: %llu rounds, %llu cycles; RSS +%.1f MiB, heap sys %.1f MiB, "
         "marked per cycle up to %.1f MiB",
         (unsigned long long)g_ch_rounds[1], (unsigned long long)once.cycles, grow_once * mib,
         once.sys * mib, once.live * mib);
    note("attach/detach churn: %llu rounds, %llu cycles; RSS +%.1f MiB, heap sys %.1f MiB, "
         "marked per cycle up to %.1f MiB",
         (unsigned long long)g_ch_rounds[2], (unsigned long long)churn.cycles, grow_churn * mib,
         churn.sys * mib, churn.live * mib);
    CHECKF(g_ch_bad == 0, "%llu list nodes lost or changed", (unsigned long long)g_ch_bad);
    /* a cycle in each phase, else there is nothing to compare (a slow
       build, a sanitizer's or qemu's, may run only a few) */
    CHECKF(once.cycles >= 1 && churn.cycles >= 1, "cycles: %llu attached once, %llu churning",
           (unsigned long long)once.cycles, (unsigned long long)churn.cycles);
    CHECKF(g_ch_rounds[2] >= (uint64_t)nch, "only %llu attach/detach rounds",
           (unsigned long long)g_ch_rounds[2]);
    /* What a cycle marks: the live set, what is allocated black while it
       marks, and a little that conservative stack words keep (attached
       once: up to 3.7x the live set on 2 busy cores). */
    CHECKF(churn.live <= 5 * CH_LIVE, "churning: a cycle marked %.1f MiB for %.1f MiB live",
           churn.live * mib, CH_LIVE * mib);
    CHECKF(churn.sys <= 2 * once.sys + 8 * MB,
           "churning: heap sys %.1f MiB, attached once %.1f MiB", churn.sys * mib, once.sys * mib);
    CHECKF(grow_churn <= 2 * grow_once + 32 * MB, "churning: RSS +%.1f MiB, attached once +%.1f MiB",
           grow_churn * mib, grow_once * mib);
    CLOSE_HEAP(h, NULL, &log);
}

/* =========================================================================
   17. wbgc_memmove
   ========================================================================= */

#define MM_N 64
#define MM_OBJ 256

static NOINLINE void mm_fill(wbgc_p *p, void **a)
{
    for (int i = 0; i < MM_N; i++) {
        uint64_t *q = wbgc_alloc_noscan(p, MM_OBJ);
        if (!q) { FAILF("allocation failed"); continue; }
        fill_pat(q, MM_OBJ, 3000 + (uint64_t)i);
        wbgc_write(p, &a[i], q);
    }
}

static NOINLINE size_t mm_check(void **slots, const uint64_t *seeds, int n)
{
    size_t bad = 0;
    for (int i = 0; i < n; i++) {
        if (!seeds[i]) {
            bad += slots[i] != NULL;
            continue;
        }
        bad += slots[i] ? check_pat(slots[i], MM_OBJ, seeds[i]) : 1;
    }
    return bad;
}

static void test_memmove(void)
{
    enum { BN = 2 * MM_N };
    errlog log;
    uint64_t rng = 17;
    uintptr_t shadow[BN];   /* expected pointer values */
    uint64_t *seeds = calloc(BN, sizeof *seeds);
    wbgc_heap *h = open_heap(&log, -1, 0, -1, 0);
    REQUIRE(h && seeds);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    void **volatile A = wbgc_alloc(p, MM_N * sizeof(void *));
    void **volatile B = wbgc_alloc(p, BN * sizeof(void *));
    REQUIRE(A && B);
    mm_fill(p, A);
    /* plain copy into B */
    wbgc_memmove(p, B, A, MM_N * sizeof(void *));
    memset(shadow, 0, sizeof shadow);
    for (int i = 0; i < MM_N; i++) shadow[i] = (uintptr_t)A[i], seeds[i] = 3000 + (uint64_t)i;
    int diff = 0;
    for (int i = 0; i < BN; i++) diff += (uintptr_t)B[i] != shadow[i];
    CHECKF(diff == 0, "plain wbgc_memmove: %d slots differ", diff);
    /* overlapping, forwards and backwards, against memmove on the shadow */
    static const int moves[][3] = {{8, 0, 64}, {0, 3, 100}, {1, 0, 127}, {0, 1, 127}, {5, 5, 10}, {0, 64, 64}};
    for (size_t m = 0; m < ARRAY_LEN(moves); m++) {
        int d = moves[m][0], s = moves[m][1], n = moves[m][2];
        wbgc_memmove(p, (void **)B + d, (void **)B + s, (size_t)n * sizeof(void *));
        memmove(shadow + d, shadow + s, (size_t)n * sizeof *shadow);
        memmove(seeds + d, seeds + s, (size_t)n * sizeof *seeds);
        diff = 0;
        for (int i = 0; i < BN; i++) diff += (uintptr_t)B[i] != shadow[i];
        CHECKF(diff == 0, "overlapping wbgc_memmove(B+%d, B+%d, %d words): %d slots differ", d, s, n, diff);
    }
    memset(shadow, 0, sizeof shadow);
    /* now only B holds the objects */
    for (int i = 0; i < MM_N; i++) wbgc_write(p, &A[i], NULL);
    for (int r = 0; r < 4; r++) {
        churn(p, 4 * MB, 400, &rng);   /* same size class as the objects */
        scrub_stack();
        wbgc_collect(p);
        size_t bad = mm_check(B, seeds, BN);
        CHECKF(bad == 0, "round %d: objects reachable only through the moved block: %zu words changed", r, bad);
    }
    /* bytes that hold no pointers: any length, any alignment, like memmove */
    unsigned char *volatile buf = wbgc_alloc(p, 300);
    unsigned char ref[300];
    REQUIRE(buf);
    static const size_t lens[] = {0, 1, 7, 8, 9, 15, 16, 17, 63, 100, 200};
    int bytes_bad = 0;
    for (size_t li = 0; li < ARRAY_LEN(lens); li++)
        for (int so = 0; so < 10; so += 3)
            for (int dof = 0; dof < 10; dof += 2) {
                for (int i = 0; i < 300; i++) ref[i] = buf[i] = (unsigned char)(i * 7 + li);
                wbgc_memmove(p, buf + dof, buf + so, lens[li]);
                memmove(ref + dof, ref + so, lens[li]);
                if (memcmp(buf, ref, 300) != 0) {
                    if (bytes_bad++ < 3)
                        FAILF("wbgc_memmove(buf+%d, buf+%d, %zu) differs from memmove", dof, so, lens[li]);
                }
            }
    CHECK(bytes_bad == 0);
    CLOSE_HEAP(h, p, &log);
    free(seeds);
}

/* the only references move between two blocks while cycles run */
#define MC_N 256
typedef struct mobj {
    uint64_t seed;
    uint64_t w[15];
} mobj;

static mobj *mobj_new(wbgc_p *p, uint64_t seed)
{
    mobj *m = wbgc_alloc_noscan(p, sizeof *m);
    if (!m) return NULL;
    m->seed = seed;
    for (int i = 0; i < 15; i++) m->w[i] = mix64(seed + (uint64_t)i);
    return m;
}

static int mobj_ok(const mobj *m, uint64_t seed)
{
    if (!m || m->seed != seed) return 0;
    for (int i = 0; i < 15; i++)
        if (m->w[i] != mix64(seed + (uint64_t)i)) return 0;
    return 1;
}

static NOINLINE void mc_fill(wbgc_p *p, void **x, uint64_t *seeds, uint64_t *next_seed)
{
    for (int i = 0; i < MC_N; i++) {
        seeds[i] = (*next_seed)++;
        wbgc_write(p, &x[i], mobj_new(p, seeds[i]));
    }
}

static void *const g_zero_block[MC_N];

static void test_memmove_concurrent(void)
{
    errlog log;
    bg_collector bg;
    pthread_t bgt;
    uint64_t rng = 2024, next_seed = 1;
    uint64_t *seeds = calloc(MC_N, sizeof *seeds);
    int iters = (int)scaled(20000);
    wbgc_heap *h = open_heap(&log, 100, 0, -1, 0);
    REQUIRE(h && seeds);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    void **volatile X = wbgc_alloc(p, MC_N * sizeof(void *));
    void **volatile Y = wbgc_alloc(p, MC_N * sizeof(void *));
    REQUIRE(X && Y);
    mc_fill(p, X, seeds, &next_seed);
    REQUIRE(bg_start(&bg, h, &bgt, p));
    uint64_t c0 = cycles_of(h);
    int bad = 0;
    for (int it = 0; it < iters && bad < 10; it++) {
        /* move everything X -> Y, clear X, swap names */
        wbgc_memmove(p, Y, X, MC_N * sizeof(void *));
        wbgc_memmove(p, X, g_zero_block, MC_N * sizeof(void *));
        void **volatile T = X;
        X = Y;
        Y = T;
        T = NULL;
        /* rotate X by one, either way, with the element in between held by a local */
        if (it & 1) {
            void *last = X[MC_N - 1];
            uint64_t ls = seeds[MC_N - 1];
            wbgc_memmove(p, (void **)X + 1, (void **)X, (MC_N - 1) * sizeof(void *));
            memmove(seeds + 1, seeds, (MC_N - 1) * sizeof *seeds);
            wbgc_write(p, &X[0], last);
            seeds[0] = ls;
        } else {
            void *first = X[0];
            uint64_t fs = seeds[0];
            wbgc_memmove(p, (void **)X, (void **)X + 1, (MC_N - 1) * sizeof(void *));
            memmove(seeds, seeds + 1, (MC_N - 1) * sizeof *seeds);
            wbgc_write(p, &X[MC_N - 1], first);
            seeds[MC_N - 1] = fs;
        }
        /* replace one object */
        int k = (int)(rnd(&rng) % MC_N);
        seeds[k] = next_seed++;
        wbgc_write(p, &X[k], mobj_new(p, seeds[k]));
        churn(p, 2 * KB, 200, &rng);
        for (int c = 0; c < 4; c++) {
            int i = (int)(rnd(&rng) % MC_N);
            if (!mobj_ok(X[i], seeds[i])) {
                FAILF("iteration %d: slot %d: object %p does not hold seed %llu", it, i, X[i],
                      (unsigned long long)seeds[i]);
                bad++;
            }
        }
    }
    bg_stop(&bg, bgt, p);
    for (int i = 0; i < MC_N; i++)
        if (!mobj_ok(X[i], seeds[i])) {
            FAILF("end: slot %d: object %p does not hold seed %llu", i, X[i], (unsigned long long)seeds[i]);
            break;
        }
    uint64_t cyc = cycles_of(h) - c0;
    CHECKF(cyc >= 20, "only %llu cycles overlapped the moves", (unsigned long long)cyc);
    note("%d rounds of moves over %llu cycles", iters, (unsigned long long)cyc);
    CLOSE_HEAP(h, p, &log);
    free(seeds);
}

/* =========================================================================
   Barrier workloads in every mode
   ========================================================================= */

/* shuffle_run: two containers of K slots hold the only references to K*2
   objects; random swaps and replacements move references between them (one
   at a time, through a local) while garbage keeps automatic cycles coming.
   Seeds (not pointers) are shadowed in malloc memory. */
static void shuffle_run(unsigned flags, int mark_workers, int barrier)
{
    enum { K = 4096 };
    errlog log;
    uint64_t rng = 0xABCDEF, next_seed = 1;
    uint64_t *sa = calloc(K, sizeof *sa), *sb = calloc(K, sizeof *sb);
    long iters = (long)scaled(150000);
    wbgc_heap *h = open_heap(&log, 25, flags, mark_workers, 0);
    REQUIRE(h && sa && sb);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    void **volatile A = wbgc_alloc(p, K * sizeof(void *));
    void **volatile B = wbgc_alloc(p, K * sizeof(void *));
    REQUIRE(A && B);
#define STORE(slot, v) do { if (barrier) wbgc_write(p, (slot), (v)); else *(void **)(slot) = (v); } while (0)
    for (int i = 0; i < K; i++) {
        sa[i] = next_seed++;
        STORE(&A[i], mobj_new(p, sa[i]));
        sb[i] = next_seed++;
        STORE(&B[i], mobj_new(p, sb[i]));
    }
    uint64_t c0 = cycles_of(h);
    long bad = 0;
    for (long it = 0; it < iters && bad < 10; it++) {
        int i = (int)(rnd(&rng) % K), j = (int)(rnd(&rng) % K);
        uint64_t r = rnd(&rng);
        if (r % 8 < 5) {   /* swap A[i] <-> B[j] */
            void *x = A[i];
            uint64_t xs = sa[i];
            STORE(&A[i], B[j]);
            sa[i] = sb[j];
            uint64_t *g = wbgc_alloc(p, 32 + (size_t)(r >> 32) % 2000);   /* safepoint in the window */
            if (g) g[0] = r;
            STORE(&B[j], x);
            sb[j] = xs;
        } else if (r % 8 < 7) {   /* move A[i] -> B[j] (B[j]'s object dies), refill A[i] */
            STORE(&B[j], A[i]);
            sb[j] = sa[i];
            STORE(&A[i], NULL);
            sa[i] = next_seed++;
            void *n = mobj_new(p, sa[i]);
            STORE(&A[i], n);
        } else {   /* garbage */
            for (int g = 0; g < 8; g++) {
                uint64_t *q = wbgc_alloc(p, 16 + (size_t)(rnd(&rng) % 3000));
                if (q) q[0] = 5;
            }
        }
        if (!mobj_ok(A[i], sa[i]) || !mobj_ok(B[j], sb[j])) {
            FAILF("iteration %ld: A[%d]=%p (seed %llu) or B[%d]=%p (seed %llu) broken", it, i, A[i],
                  (unsigned long long)sa[i], j, B[j], (unsigned long long)sb[j]);
            bad++;
        }
        if (it % 20000 == 19999)
            for (int m = 0; m < K; m++)
                if (!mobj_ok(A[m], sa[m]) || !mobj_ok(B[m], sb[m])) {
                    FAILF("iteration %ld: full check: slot %d broken", it, m);
                    bad++;
                    break;
                }
    }
#undef STORE
    wbgc_collect(p);
    for (int m = 0; m < K; m++)
        if (!mobj_ok(A[m], sa[m]) || !mobj_ok(B[m], sb[m])) {
            FAILF("end: slot %d broken", m);
            break;
        }
    wbgc_stats st = get_stats(h);
    CHECKF(st.cycles - c0 >= 10, "only %llu cycles ran during the shuffle", (unsigned long long)(st.cycles - c0));
    note("%ld moves over %llu cycles; %llu barrier flushes, %llu pauses",
         iters, (unsigned long long)(st.cycles - c0), (unsigned long long)st.wb_flushes,
         (unsigned long long)st.pause_count);
    CLOSE_HEAP(h, p, &log);
    free(sa);
    free(sb);
}

static void test_shuffle_concurrent(void) { shuffle_run(0, -1, 1); }
static void test_shuffle_incremental(void) { shuffle_run(0, 0, 1); }
static void test_shuffle_stw(void) { shuffle_run(WBGC_STW, -1, 1); }
static void test_shuffle_stw_plain_stores(void) { shuffle_run(WBGC_STW, -1, 0); }
static void test_shuffle_check_mode(void) { shuffle_run(WBGC_CHECK, -1, 1); }

/* threads exchanging objects in the other modes too */
static void threads_mode(unsigned flags, int mark_workers)
{
    errlog log;
    pthread_t t[MT_THREADS];
    mt_arg args[MT_THREADS];
    wbgc_heap *h = open_heap(&log, 10, flags, mark_workers, 0);
    REQUIRE(h);
    g_mt_heap = h;
    g_tn_seq = 0;
    g_mt_verified = g_mt_exchanges = 0;
    memset(g_mt_slots, 0, sizeof g_mt_slots);
    memset(g_mt_slot_seq, 0, sizeof g_mt_slot_seq);
    CHECK(wbgc_add_roots(h, g_mt_slots, sizeof g_mt_slots) == 0);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    uint64_t c0 = cycles_of(h);
    for (int i = 0; i < MT_THREADS; i++) {
        args[i].id = i;
        args[i].iters = (int)scaled(1000);
        CHECK(pthread_create(&t[i], NULL, mt_thread, &args[i]) == 0);
    }
    wbgc_blocking_begin(p);
    for (int i = 0; i < MT_THREADS; i++) pthread_join(t[i], NULL);
    wbgc_blocking_end(p);
    mt_check_slots("shared slot after the threads");
    wbgc_collect(p);
    mt_check_slots("shared slot after a last collect");
    CHECK(cycles_of(h) - c0 >= 5);
    wbgc_remove_roots(h, g_mt_slots);
    memset(g_mt_slots, 0, sizeof g_mt_slots);
    CLOSE_HEAP(h, p, &log);
}

static void test_threads_incremental(void) { threads_mode(0, 0); }
static void test_threads_stw(void) { threads_mode(WBGC_STW, -1); }
static void test_threads_check_mode(void) { threads_mode(WBGC_CHECK, -1); }

/* =========================================================================
   Stress: threads mutating random graphs while cycles run back to back
   ========================================================================= */

/* A test that can fail. ST_THREADS threads, each with its own P, mutate
   random graphs (cycles and shared children allowed) through wbgc_write and
   wbgc_memmove while cycles run back to back (tiny gc_percent, and thread 0
   calling wbgc_collect now and then). Every node has a unique id and a
   magic derived from its id and address; every parent records its
   children's ids next to the pointers. A node is verified whenever it is
   reached, so a child that was freed and reused (a new id, zeroes, check
   mode's poison) is caught at the first parent that reaches it. The first
   corruption stops every thread; it is reported with the addresses and ids.

   Ownership (so that the test's own accesses never race): a thread's graph
   is a few disjoint components, each held by one slot of a root array in
   the thread's stack frame -- its only reference. Edges stay inside a
   component; merging two components links one into the other. A whole
   component moves between threads through a registered root region guarded
   by a mutex, which gives the receiver everything the giver wrote.

   The mutations are those a broken barrier or stack scan loses:
   - hold: read a child out of a node, overwrite its slot (NULL or another
     node), allocate for several cycles while the child is held only by a
     local, verify it, store it elsewhere (or into a fresh node first):
     the deletion half of the barrier and the stack scan;
   - move / swap: pointers copied and moved between nodes, into freshly
     allocated (black) nodes, with allocations in the window;
   - memmove: whole child arrays moved between nodes, overlapping shifts
     inside a node, and into a fresh node that is held only by a local
     while the old array is cleared;
   - handoff: components swapped through the shared region, or taken out of
     it (slot cleared), held by a local across allocations and merged into
     one of the receiver's components;
   - walk: a full verification of a component (every edge, every payload
     word), in turn for each component and whenever one may have outgrown
     ST_CAP nodes (then it is dropped, whole, as garbage).

   WBGC_STRESS_SECONDS (default 2) is the time per mode, so the test stays
   short under the sanitizers and runs alone for as long as wanted:
       WBGC_STRESS_SECONDS=300 ./test stress_concurrent
   WBGC_STRESS_SEED varies the threads' random choices; the interleaving
   varies anyway. WBGC_STRESS_GC_PERCENT (default 1) sets gc_percent. */

#define SN_K 4          /* children per node */
#define SN_BIGW 4100    /* a large node's payload starts here: > 32 KiB, a span of its own */
#define SN_MAXW (SN_BIGW + 2048)

typedef struct snode {
    uint64_t id;                /* unique, never 0 */
    uint64_t magic;             /* sn_magic(node, id) */
    uint64_t visit;             /* the stamp of the last walk that reached it */
    uint64_t nw;                /* payload words */
    struct snode *child[SN_K];  /* stored only through wbgc_write / wbgc_memmove */
    uint64_t child_id[SN_K];    /* child[k]'s id, 0 with NULL */
    uint64_t w[];               /* payload: w[i] = mix64(magic + i) */
} snode;

#define ST_THREADS 4
#define ST_ROOTS 6      /* components per thread */
#define ST_SHARED 16    /* slots of the shared root region */
#define ST_MIN 32       /* a component smaller than this (as far as known) grows first */
#define ST_CAP 400      /* a component larger than this is dropped */

static double g_stress_secs = 2.0;
static uint64_t g_stress_seed = 1;
static int g_stress_gc_percent = 1;

static uint64_t g_st_next_id;            /* atomic */
static int g_st_stop, g_st_corrupt;      /* atomic */
static uint64_t g_st_stores;   /* barriered stores: wbgc_write, and words moved by wbgc_memmove */
static uint64_t g_st_ops, g_st_holds, g_st_handoffs, g_st_memmoves, g_st_walks, g_st_walked,
    g_st_checks, g_st_collects, g_st_drops;   /* atomic, added once per thread */
static pthread_mutex_t g_st_mu = PTHREAD_MUTEX_INITIALIZER;
static snode *g_st_shared[ST_SHARED];    /* registered root region; under g_st_mu */
static uint64_t g_st_shared_id[ST_SHARED], g_st_shared_size[ST_SHARED];   /* under g_st_mu */
static wbgc_heap *g_st_heap;
static const wbgc_layout *g_st_layout;   /* typed runs: nodes from wbgc_alloc_typed */
static snode *const g_st_zero[SN_K];
static uintptr_t g_st_lo = UINTPTR_MAX, g_st_hi;   /* atomic: where nodes were made */

/* st_thread: one thread's state, in its stack frame: root[] is the only
   reference to each component. */
typedef struct st_thread {
    int idx;
    wbgc_p *p;
    uint64_t rng;
    const char *op;             /* the running mutation, for failure messages */
    snode *root[ST_ROOTS];
    uint64_t root_id[ST_ROOTS];
    uint64_t size[ST_ROOTS];    /* nodes at the last walk + nodes added since: an upper bound */
    uint64_t nwalk;
    snode **dfs;                /* the walk's stack (malloc: the nodes are reachable anyway) */
    size_t dfs_cap;
    uint64_t ops, holds, handoffs, memmoves, walks, walked, checks, collects, drops, stores;
} st_thread;

static uint64_t sn_magic(const snode *n, uint64_t id)
{
    return mix64((uint64_t)(uintptr_t)n ^ mix64(id + 0x5EED)) | 1;
}

static int st_stopping(void)
{
    return __atomic_load_n(&g_st_corrupt, __ATOMIC_RELAXED) ||
           __atomic_load_n(&g_st_stop, __ATOMIC_RELAXED);
}

__attribute__((format(printf, 4, 5)))
static void st_fail(const char *file, int line, st_thread *t, const char *fmt, ...)
{
    char buf[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    __atomic_store_n(&g_st_corrupt, 1, __ATOMIC_RELAXED);
    check_failf(file, line, "graph intact", "thread %d, %s, %llu cycles done: %s", t->idx,
                t->op, (unsigned long long)cycles_of(g_st_heap), buf);
}
#define ST_FAIL(t, ...) st_fail(__FILE__, __LINE__, t, __VA_ARGS__)

/* sn_made_at: record that a node was made at n, so that sn_ok can tell a
   word that was never a node's address (poison, a stray integer) before
   reading through it. */
static void sn_made_at(const snode *n, size_t size)
{
    uintptr_t a = (uintptr_t)n, e = a + size, v;
    v = __atomic_load_n(&g_st_lo, __ATOMIC_RELAXED);
    while (a < v && !__atomic_compare_exchange_n(&g_st_lo, &v, a, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
    v = __atomic_load_n(&g_st_hi, __ATOMIC_RELAXED);
    while (e > v && !__atomic_compare_exchange_n(&g_st_hi, &v, e, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
}

/* sn_ok: is n the node `id` (NULL when id is 0)? parent/k say where n was
   found (parent NULL: a root or a local). Reads only n's header, and only
   when n is a 16-byte aligned address where nodes were made. After the
   first corruption (any thread's) it fails silently: every thread stops. */
static int sn_ok(st_thread *t, const snode *n, uint64_t id, const snode *parent, int k)
{
    if (__atomic_load_n(&g_st_corrupt, __ATOMIC_RELAXED)) return 0;
    t->checks++;
    if (!n && !id) return 1;
    char from[96];
    if (parent)
        snprintf(from, sizeof from, "child %d of node %p id %llu", k, (const void *)parent,
                 (unsigned long long)parent->id);
    else
        snprintf(from, sizeof from, "a root or a local");
    if (!n || !id) {
        ST_FAIL(t, "%s is %p but the recorded id is %llu", from, (const void *)n, (unsigned long long)id);
        return 0;
    }
    uintptr_t a = (uintptr_t)n;
    if ((a & 15) || a < __atomic_load_n(&g_st_lo, __ATOMIC_RELAXED) ||
        a + sizeof(snode) > __atomic_load_n(&g_st_hi, __ATOMIC_RELAXED)) {
        ST_FAIL(t, "%s is %p, where no node was ever made (expected id %llu): overwritten?", from,
                (const void *)n, (unsigned long long)id);
        return 0;
    }
    if (n->id != id || n->magic != sn_magic(n, id) || n->nw > SN_MAXW) {
        ST_FAIL(t, "node %p (%s) should be id %llu: found id %llu, magic %s, nw %llu: freed and reused?",
                (const void *)n, from, (unsigned long long)id, (unsigned long long)n->id,
                n->magic == sn_magic(n, id) ? "ok" : "BAD", (unsigned long long)n->nw);
        return 0;
    }
    return 1;
}

static int sn_payload_ok(st_thread *t, const snode *n)
{
    for (uint64_t i = 0; i < n->nw; i++)
        if (n->w[i] != mix64(n->magic + i)) {
            ST_FAIL(t, "node %p id %llu: payload word %llu of %llu is %#llx", (const void *)n,
                    (unsigned long long)n->id, (unsigned long long)i, (unsigned long long)n->nw,
                    (unsigned long long)n->w[i]);
            return 0;
        }
    return 1;
}

/* sn_set: parent->child[k] = child (whose id the caller knows: never read
   back from a node that may be broken), through the barrier. */
static void sn_set(st_thread *t, snode *parent, int k, snode *child, uint64_t id)
{
    t->stores++;
    wbgc_write(t->p, &parent->child[k], child);
    parent->child_id[k] = child ? id : 0;
}

/* sn_child: parent's child k, verified; *id gets its id. NULL for an empty
   slot or after a failure (st_stopping() tells which). */
static snode *sn_child(st_thread *t, snode *parent, int k, uint64_t *id)
{
    snode *c = parent->child[k];
    uint64_t cid = parent->child_id[k];
    if (!sn_ok(t, c, cid, parent, k)) c = NULL, cid = 0;
    *id = cid;
    return c;
}

static snode *sn_new(st_thread *t)
{
    uint64_t r = rnd(&t->rng);
    size_t nw = (r % 512 == 0) ? SN_BIGW + (size_t)(r >> 20) % 2048 : (size_t)(r >> 20) % 9;
    size_t size = sizeof(snode) + nw * sizeof(uint64_t);
    snode *n = g_st_layout ? wbgc_alloc_typed(t->p, size, g_st_layout) : wbgc_alloc(t->p, size);
    if (!n) {
        ST_FAIL(t, "allocation of a %zu-byte node failed", size);
        return NULL;
    }
    size_t nz = count_nonzero(n, size);
    if (nz) ST_FAIL(t, "fresh node %p (%zu bytes) has %zu non-zero bytes: memory of a live object?",
                    (void *)n, size, nz);
    sn_made_at(n, size);
    n->id = __atomic_add_fetch(&g_st_next_id, 1, __ATOMIC_RELAXED);
    n->magic = sn_magic(n, n->id);
    n->nw = nw;
    for (size_t i = 0; i < nw; i++) n->w[i] = mix64(n->magic + i);
    return n;
}

/* st_pick: a node of component c, reached by a random walk from its root
   (every step verified); *id gets its id. NULL: no root, or a failure. */
static snode *st_pick(st_thread *t, int c, uint64_t *id)
{
    snode *n = t->root[c];
    uint64_t nid = t->root_id[c];
    *id = 0;
    if (!sn_ok(t, n, nid, NULL, -1) || !n) return NULL;
    int depth = (int)(rnd(&t->rng) % 12);
    for (int d = 0; d < depth; d++) {
        int k0 = (int)(rnd(&t->rng) % SN_K), j;
        for (j = 0; j < SN_K; j++) {
            int k = (k0 + j) % SN_K;
            if (n->child[k]) {
                uint64_t cid;
                snode *c2 = sn_child(t, n, k, &cid);
                if (!c2) return NULL;
                n = c2;
                nid = cid;
                break;
            }
        }
        if (j == SN_K) break;
    }
    *id = nid;
    return n;
}

/* st_walk: visit every node reachable from n (the node `id`), verifying
   every edge and every payload. Returns the node count, -1 after a failure. */
static long st_walk(st_thread *t, snode *n, uint64_t id)
{
    if (!sn_ok(t, n, id, NULL, -1)) return -1;
    if (!n) return 0;
    uint64_t stamp = ((uint64_t)(t->idx + 1) << 48) | ++t->nwalk;
    size_t sp = 0;
    long count = 0;
    n->visit = stamp;
    t->dfs[sp++] = n;
    while (sp) {
        snode *o = t->dfs[--sp];
        if (!sn_payload_ok(t, o)) return -1;
        for (int k = 0; k < SN_K; k++) {
            uint64_t cid;
            snode *c = sn_child(t, o, k, &cid);
            if (!c) {
                if (__atomic_load_n(&g_st_corrupt, __ATOMIC_RELAXED)) return -1;
                continue;
            }
            if (c->visit == stamp) continue;
            c->visit = stamp;
            if (sp == t->dfs_cap) {
                size_t cap = t->dfs_cap * 2;
                snode **d = realloc(t->dfs, cap * sizeof *d);
                if (!d) {
                    ST_FAIL(t, "walk: out of malloc memory");
                    return -1;
                }
                t->dfs = d;
                t->dfs_cap = cap;
            }
            t->dfs[sp++] = c;
        }
        if (++count % 256 == 0) wbgc_safepoint(t->p);
    }
    t->walks++;
    t->walked += (uint64_t)count;
    return count;
}

/* st_walk_root: walk component c, learn its size; drop it when too big. */
static int st_walk_root(st_thread *t, int c)
{
    const char *op = t->op;
    t->op = "walk";
    long n = st_walk(t, t->root[c], t->root_id[c]);
    t->op = op;
    if (n < 0) return 0;
    t->size[c] = (uint64_t)n;
    if (n > ST_CAP) {
        t->root[c] = NULL;
        t->root_id[c] = 0;
        t->size[c] = 0;
        t->drops++;
    }
    return 1;
}

/* grow: a chain of fresh nodes, held only by locals while it is built (each
   allocation may run a cycle), pointing at nodes of c, linked into c. */
static NOINLINE void st_grow(st_thread *t, int c)
{
    t->op = "grow";
    if (!t->root[c]) {
        snode *n = sn_new(t);
        if (!n) return;
        t->root[c] = n;
        t->root_id[c] = n->id;
        t->size[c] = 1;
        return;
    }
    int len = 1 + (int)(rnd(&t->rng) % 4);
    snode *head = NULL;
    uint64_t head_id = 0, yid;
    for (int i = 0; i < len; i++) {
        snode *n = sn_new(t);
        if (!n) return;
        sn_set(t, n, 0, head, head_id);
        for (int k = 1; k < SN_K; k++)
            if (rnd(&t->rng) & 1) {
                snode *y = st_pick(t, c, &yid);
                if (st_stopping()) return;
                sn_set(t, n, k, y, yid);
            }
        head = n;
        head_id = n->id;
    }
    snode *a = st_pick(t, c, &yid);
    if (!a) return;
    int k = (int)(rnd(&t->rng) % SN_K);
    if (rnd(&t->rng) & 1) {   /* insert: keep a's old child below the chain */
        uint64_t oid;
        snode *old = sn_child(t, a, k, &oid);
        if (st_stopping()) return;
        sn_set(t, head, SN_K - 1, old, oid);
    }
    sn_set(t, a, k, head, head_id);
    t->size[c] += (uint64_t)len;
}

/* hold: the deletion half of the barrier and the stack scan. A child is
   read out of its slot, the slot overwritten, and the child held only by a
   local (as far as this slot goes) while cycles run; then it is stored
   again, into a node of c or into a fresh node linked into c. */
static NOINLINE void st_hold(st_thread *t, int c)
{
    uint64_t aid, xid, yid;
    t->op = "hold";
    snode *a = st_pick(t, c, &aid);
    if (!a) return;
    int k0 = (int)(rnd(&t->rng) % SN_K), k = -1;
    for (int j = 0; j < SN_K && k < 0; j++)
        if (a->child[(k0 + j) % SN_K]) k = (k0 + j) % SN_K;
    if (k < 0) return;
    snode *x = sn_child(t, a, k, &xid);
    if (!x) return;
    if (rnd(&t->rng) & 1) {
        sn_set(t, a, k, NULL, 0);
    } else {
        snode *y = st_pick(t, c, &yid);
        if (st_stopping()) return;
        sn_set(t, a, k, y, yid);
    }
    uint64_t r = rnd(&t->rng);
    churn(t->p, (4 * KB) << (r % 5), (r & 64) ? 6000 : 400, &t->rng);   /* 4 KiB .. 64 KiB */
    if (!sn_ok(t, x, xid, NULL, -1)) return;
    for (int j = 0; j < SN_K; j++) {   /* its children too: they may hang only from x */
        uint64_t cid;
        sn_child(t, x, j, &cid);
        if (st_stopping()) return;
    }
    t->holds++;
    if (r & 128) {
        snode *n = sn_new(t);   /* born black during a mark */
        if (!n) return;
        sn_set(t, n, (int)((r >> 8) % SN_K), x, xid);
        churn(t->p, 2 * KB, 200, &t->rng);
        if (!sn_ok(t, n, n->id, NULL, -1) || !sn_ok(t, x, xid, NULL, -1)) return;
        x = n;
        xid = n->id;
        t->size[c]++;
    }
    snode *b = st_pick(t, c, &yid);
    if (!b) return;
    sn_set(t, b, (int)(rnd(&t->rng) % SN_K), x, xid);
}

/* move: copy or move a child between two nodes of c; or swap two children
   through locals with allocations between the stores; or move all of a's
   children into a fresh node, held by a local while a is cleared. */
static NOINLINE void st_move(st_thread *t, int c)
{
    uint64_t aid, bid, xid, yid;
    t->op = "move";
    snode *a = st_pick(t, c, &aid), *b = st_pick(t, c, &bid);
    if (!a || !b) return;
    int i = (int)(rnd(&t->rng) % SN_K), j = (int)(rnd(&t->rng) % SN_K);
    uint64_t r = rnd(&t->rng);
    switch (r % 3) {
    case 0: { /* copy, then maybe clear the source */
        snode *x = sn_child(t, a, i, &xid);
        if (st_stopping()) return;
        sn_set(t, b, j, x, xid);
        if ((r & 8) && !(a == b && i == j)) sn_set(t, a, i, NULL, 0);
        break;
    }
    case 1: { /* swap through locals */
        if (a == b && i == j) return;
        snode *x = sn_child(t, a, i, &xid);
        snode *y = sn_child(t, b, j, &yid);
        if (st_stopping()) return;
        sn_set(t, a, i, y, yid);
        churn(t->p, 1 * KB << (r % 5), 300, &t->rng);
        if (!sn_ok(t, x, xid, NULL, -1)) return;
        sn_set(t, b, j, x, xid);
        break;
    }
    default: { /* into a fresh (black) node, a cleared, the node held by a local */
        snode *n = sn_new(t);
        if (!n) return;
        for (int k = 0; k < SN_K; k++) {
            snode *x = sn_child(t, a, k, &xid);
            if (st_stopping()) return;
            sn_set(t, n, k, x, xid);
            sn_set(t, a, k, NULL, 0);
        }
        churn(t->p, 2 * KB << (r % 5), 400, &t->rng);
        for (int k = 0; k < SN_K; k++) {
            sn_child(t, n, k, &xid);
            if (st_stopping()) return;
        }
        sn_set(t, a, j, n, n->id);
        t->size[c]++;
        break;
    }
    }
}

/* memmove: child arrays moved whole between nodes, overlapping shifts in
   one node, and a move into a fresh node held by a local while a's array
   is cleared. The ids follow with plain memmove (they are not pointers). */
static NOINLINE void st_memmove(st_thread *t, int c)
{
    uint64_t aid, bid;
    t->op = "memmove";
    snode *a = st_pick(t, c, &aid), *b = st_pick(t, c, &bid);
    if (!a || !b) return;
    uint64_t r = rnd(&t->rng);
    t->memmoves++;
    switch (r % 3) {
    case 0:
        if (a == b) return;
        wbgc_memmove(t->p, b->child, a->child, sizeof a->child);
        memcpy(b->child_id, a->child_id, sizeof a->child_id);
        if (r & 8) {
            wbgc_memmove(t->p, a->child, g_st_zero, sizeof a->child);
            memset(a->child_id, 0, sizeof a->child_id);
        }
        break;
    case 1: {
        int s = 1 + (int)((r >> 8) % (SN_K - 1));   /* shift by s, either way */
        size_t n = (size_t)(SN_K - s);
        if (r & 8) {
            wbgc_memmove(t->p, &a->child[s], &a->child[0], n * sizeof(snode *));
            memmove(&a->child_id[s], &a->child_id[0], n * sizeof(uint64_t));
        } else {
            wbgc_memmove(t->p, &a->child[0], &a->child[s], n * sizeof(snode *));
            memmove(&a->child_id[0], &a->child_id[s], n * sizeof(uint64_t));
        }
        break;
    }
    default: {
        snode *n = sn_new(t);
        if (!n) return;
        wbgc_memmove(t->p, n->child, a->child, sizeof a->child);
        memcpy(n->child_id, a->child_id, sizeof a->child_id);
        wbgc_memmove(t->p, a->child, g_st_zero, sizeof a->child);
        memset(a->child_id, 0, sizeof a->child_id);
        churn(t->p, 2 * KB << (r % 5), 400, &t->rng);
        uint64_t xid;
        for (int k = 0; k < SN_K; k++) {
            sn_child(t, n, k, &xid);
            if (st_stopping()) return;
        }
        sn_set(t, a, (int)((r >> 8) % SN_K), n, n->id);
        t->size[c]++;
        break;
    }
    }
}

/* merge: link component c2 into a node of c; c2's root slot empties. */
static NOINLINE void st_merge(st_thread *t, int c)
{
    int c2 = (int)(rnd(&t->rng) % ST_ROOTS);
    uint64_t aid;
    t->op = "merge";
    if (c2 == c || !t->root[c] || !t->root[c2] || t->size[c] + t->size[c2] > ST_CAP) return;
    if (!sn_ok(t, t->root[c2], t->root_id[c2], NULL, -1)) return;
    snode *a = st_pick(t, c, &aid);
    if (!a) return;
    sn_set(t, a, (int)(rnd(&t->rng) % SN_K), t->root[c2], t->root_id[c2]);
    t->size[c] += t->size[c2];
    t->root[c2] = NULL;
    t->root_id[c2] = 0;
    t->size[c2] = 0;
}

/* handoff: swap component c with a shared slot; or take the slot's
   component out (the slot cleared), hold it only in a local across
   allocations, then merge it into c (or make it c when too big). */
static NOINLINE void st_handoff(st_thread *t, int c)
{
    int k = (int)(rnd(&t->rng) % ST_SHARED);
    uint64_t r = rnd(&t->rng);
    int take = (r & 1) && t->root[c];
    t->op = take ? "handoff (take)" : "handoff (swap)";
    wbgc_blocking_begin(t->p);
    pthread_mutex_lock(&g_st_mu);
    wbgc_blocking_end(t->p);
    snode *got = g_st_shared[k];
    uint64_t gid = g_st_shared_id[k], gsize = g_st_shared_size[k];
    if (take) {
        wbgc_write(t->p, &g_st_shared[k], NULL);
        g_st_shared_id[k] = g_st_shared_size[k] = 0;
    } else {
        wbgc_write(t->p, &g_st_shared[k], t->root[c]);
        g_st_shared_id[k] = t->root_id[c];
        g_st_shared_size[k] = t->size[c];
    }
    pthread_mutex_unlock(&g_st_mu);
    t->handoffs++;
    if (!take) {
        t->root[c] = got;
        t->root_id[c] = gid;
        t->size[c] = gsize;
        if (sn_ok(t, got, gid, NULL, -1) && got && (r & 2)) st_walk_root(t, c);
        return;
    }
    if (!got) return;
    churn(t->p, (4 * KB) << ((r >> 8) % 5), 400, &t->rng);
    if (!sn_ok(t, got, gid, NULL, -1)) return;
    if (t->size[c] + gsize <= ST_CAP) {
        uint64_t aid;
        snode *a = st_pick(t, c, &aid);
        if (!a) return;
        sn_set(t, a, (int)((r >> 16) % SN_K), got, gid);
        t->size[c] += gsize;
    } else {
        t->root[c] = got;   /* the old component becomes garbage */
        t->root_id[c] = gid;
        t->size[c] = gsize;
        t->drops++;
    }
}

typedef struct st_arg {
    int idx;
} st_arg;

static void *st_thread_main(void *argp)
{
    st_arg *arg = argp;
    st_thread t;
    memset(&t, 0, sizeof t);
    t.idx = arg->idx;
    t.op = "start";
    t.rng = mix64(g_stress_seed * 0x9E3779B97F4A7C15ULL + (uint64_t)arg->idx + 1) | 1;
    t.dfs_cap = 1024;
    t.dfs = malloc(t.dfs_cap * sizeof *t.dfs);
    t.p = wbgc_attach(g_st_heap);
    if (!t.p || !t.dfs) {
        ST_FAIL(&t, "wbgc_attach or malloc failed");
        free(t.dfs);
        if (t.p) wbgc_detach(t.p);
        return NULL;
    }
    uint64_t last_collect = now_ns();
    while (!st_stopping()) {
        uint64_t r = rnd(&t.rng);
        int c = (int)(r % ST_ROOTS);
        if (t.size[c] < ST_MIN) st_grow(&t, c);
        switch ((r >> 8) % 16) {
        case 0: case 1: case 2: case 3: st_grow(&t, c); break;
        case 4: case 5: case 6: st_hold(&t, c); break;
        case 7: case 8: case 9: st_move(&t, c); break;
        case 10: case 11: st_memmove(&t, c); break;
        case 12: case 13: st_handoff(&t, c); break;
        case 14: st_merge(&t, c); break;
        default:
            t.op = "churn";
            churn(t.p, 4 * KB, 2000, &t.rng);
            wbgc_safepoint(t.p);
            break;
        }
        t.ops++;
        if (t.size[c] > ST_CAP && !st_walk_root(&t, c)) break;
        if (t.ops % 32 == 0 && !st_walk_root(&t, (int)(t.ops / 32 % ST_ROOTS))) break;
        if (t.idx == 0 && now_ns() - last_collect > 20 * 1000000u) {
            wbgc_collect(t.p);
            t.collects++;
            last_collect = now_ns();
        }
    }
    t.op = "final walk";
    for (int c = 0; c < ST_ROOTS && !__atomic_load_n(&g_st_corrupt, __ATOMIC_RELAXED); c++)
        st_walk_root(&t, c);
    __atomic_add_fetch(&g_st_ops, t.ops, __ATOMIC_RELAXED);
    __atomic_add_fetch(&g_st_holds, t.holds, __ATOMIC_RELAXED);
    __atomic_add_fetch(&g_st_handoffs, t.handoffs, __ATOMIC_RELAXED);
    __atomic_add_fetch(&g_st_memmoves, t.memmoves, __ATOMIC_RELAXED);
    __atomic_add_fetch(&g_st_walks, t.walks, __ATOMIC_RELAXED);
    __atomic_add_fetch(&g_st_walked, t.walked, __ATOMIC_RELAXED);
    __atomic_add_fetch(&g_st_checks, t.checks, __ATOMIC_RELAXED);
    __atomic_add_fetch(&g_st_collects, t.collects, __ATOMIC_RELAXED);
    __atomic_add_fetch(&g_st_drops, t.drops, __ATOMIC_RELAXED);
    __atomic_add_fetch(&g_st_stores, t.stores + t.memmoves * SN_K, __ATOMIC_RELAXED);
    free(t.dfs);
    wbgc_detach(t.p);
    return NULL;
}

/* st_check_shared: walk every shared slot's component (threads joined). */
static long st_check_shared(st_thread *t)
{
    long nodes = 0;
    for (int k = 0; k < ST_SHARED && !__atomic_load_n(&g_st_corrupt, __ATOMIC_RELAXED); k++) {
        long n = st_walk(t, g_st_shared[k], g_st_shared_id[k]);
        if (n > 0) nodes += n;
    }
    return nodes;
}

/* stress_run: the stress test in one mode. typed: every node comes from
   wbgc_alloc_typed, its record a whole snode whose pointer words are
   child[] alone (repeated over the payload of longer nodes: random
   words, scanned as pointers and harmless), so the marker reaches
   children through the layout only, and the ids beside them are plain
   integers. */
static void stress_run(unsigned flags, int mark_workers, int typed)
{
    errlog log;
    pthread_t th[ST_THREADS];
    st_arg args[ST_THREADS];
    int started = 0;
    /* the watchdog allows for the time asked for */
    alarm(g_timeout + (unsigned)(g_stress_secs + 1));
    wbgc_heap *h = open_heap(&log, g_stress_gc_percent, flags, mark_workers, 0);
    REQUIRE(h);
    g_st_layout = NULL;
    if (typed) {
        size_t offs[SN_K];
        for (int k = 0; k < SN_K; k++) offs[k] = offsetof(snode, child) + (size_t)k * sizeof(void *);
        g_st_layout = wbgc_layout_new(h, sizeof(snode), offs, SN_K);
        REQUIRE(g_st_layout);
    }
    g_st_heap = h;
    g_st_next_id = 0;
    g_st_lo = UINTPTR_MAX;
    g_st_hi = 0;
    g_st_stop = g_st_corrupt = 0;
    g_st_ops = g_st_holds = g_st_handoffs = g_st_memmoves = g_st_walks = g_st_walked = 0;
    g_st_stores = 0;
    g_st_checks = g_st_collects = g_st_drops = 0;
    memset(g_st_shared, 0, sizeof g_st_shared);
    memset(g_st_shared_id, 0, sizeof g_st_shared_id);
    memset(g_st_shared_size, 0, sizeof g_st_shared_size);
    CHECK(wbgc_add_roots(h, g_st_shared, sizeof g_st_shared) == 0);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    st_thread mt;   /* the main thread's, for the walks of the shared slots */
    memset(&mt, 0, sizeof mt);
    mt.idx = ST_THREADS;
    mt.op = "shared slots after the threads";
    mt.p = p;
    mt.dfs_cap = 1024;
    mt.dfs = malloc(mt.dfs_cap * sizeof *mt.dfs);
    REQUIRE(mt.dfs);
    wbgc_stats s0 = get_stats(h);
    uint64_t t0 = now_ns();
    for (int i = 0; i < ST_THREADS; i++) {
        args[i].idx = i;
        if (pthread_create(&th[i], NULL, st_thread_main, &args[i]) != 0) {
            FAILF("pthread_create failed");
            break;
        }
        started++;
    }
    uint64_t deadline = t0 + (uint64_t)(g_stress_secs * 1e9);
    wbgc_blocking_begin(p);
    while (now_ns() < deadline && !__atomic_load_n(&g_st_corrupt, __ATOMIC_RELAXED))
        sleep_us(2000);
    __atomic_store_n(&g_st_stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    wbgc_blocking_end(p);
    uint64_t t1 = now_ns();
    wbgc_stats s1 = get_stats(h);
    long n1 = st_check_shared(&mt);
    mt.op = "shared slots after a last collect";
    wbgc_collect(p);
    long n2 = st_check_shared(&mt);
    if (!__atomic_load_n(&g_st_corrupt, __ATOMIC_RELAXED))
        CHECKF(n1 == n2, "shared slots: %ld nodes before a collect, %ld after", n1, n2);
    uint64_t cyc = s1.cycles - s0.cycles;
    double secs = (t1 - t0) / 1e9;
    if (!__atomic_load_n(&g_st_corrupt, __ATOMIC_RELAXED)) {   /* else: stopped early, on purpose */
        CHECKF(cyc >= 10, "only %llu cycles ran during %.2f s", (unsigned long long)cyc, secs);
        CHECKF(g_st_ops >= 100, "only %llu mutations in %.2f s", (unsigned long long)g_st_ops, secs);
        CHECK(g_st_holds > 0 && g_st_handoffs > 0 && g_st_memmoves > 0 && g_st_walked > 0);
    }
    note("%s%d threads, %.2f s, gc_percent %d: %llu cycles (%llu wbgc_collect), %llu mutations "
         "(%llu barriered stores, %llu holds, %llu handoffs, %llu memmoves), %llu nodes made, "
         "%llu dropped components",
         typed ? "typed nodes: " : "", started, secs, g_stress_gc_percent, (unsigned long long)cyc,
         (unsigned long long)g_st_collects, (unsigned long long)g_st_ops,
         (unsigned long long)g_st_stores,
         (unsigned long long)g_st_holds, (unsigned long long)g_st_handoffs,
         (unsigned long long)g_st_memmoves, (unsigned long long)g_st_next_id,
         (unsigned long long)g_st_drops);
    note("verified: %llu nodes in %llu full walks, %llu edge/node checks; %ld nodes in the shared slots",
         (unsigned long long)g_st_walked, (unsigned long long)g_st_walks,
         (unsigned long long)(g_st_checks + mt.checks), n2);
    note("stats: %llu pauses, pause max %.1f us, total %.1f ms; %llu wb flushes; assist %.1f ms; "
         "%.0f MiB allocated; heap live %.0f KiB, sys %.0f KiB",
         (unsigned long long)(s1.pause_count - s0.pause_count), s1.pause_max_ns / 1e3,
         (s1.pause_total_ns - s0.pause_total_ns) / 1e6,
         (unsigned long long)(s1.wb_flushes - s0.wb_flushes), s1.mark_assist_ns / 1e6,
         (s1.total_alloc - s0.total_alloc) / (double)MB, s1.heap_live / 1024.0, s1.heap_sys / 1024.0);
    free(mt.dfs);
    wbgc_remove_roots(h, g_st_shared);
    memset(g_st_shared, 0, sizeof g_st_shared);
    CLOSE_HEAP(h, p, &log);
    g_st_layout = NULL;
}

static void test_stress_concurrent(void) { stress_run(0, -1, 0); }
static void test_stress_incremental(void) { stress_run(0, 0, 0); }
static void test_stress_stw(void) { stress_run(WBGC_STW, -1, 0); }
/* stop-the-world with more markers than CPUs (their round's end races
   their wake-ups), and with the collecting thread marking alone */
static void test_stress_stw_markers(void) { stress_run(WBGC_STW, 4, 0); }
static void test_stress_stw_one_marker(void) { stress_run(WBGC_STW, 0, 0); }
static void test_stress_check(void) { stress_run(WBGC_CHECK, -1, 0); }
static void test_stress_typed_concurrent(void) { stress_run(0, -1, 1); }
static void test_stress_typed_incremental(void) { stress_run(0, 0, 1); }
static void test_stress_typed_stw(void) { stress_run(WBGC_STW, -1, 1); }
static void test_stress_typed_check(void) { stress_run(WBGC_CHECK, -1, 1); }

/* =========================================================================
   fork(): the parent goes on with every thread, the child with one
   ========================================================================= */

/* A fork while threads allocate, store pointers and run cycles back to
   back. The child of a multi-threaded fork has one thread, the one that
   called fork: every P of another thread, and the mark workers and
   sweeper, are gone, and so is whatever they were doing. Each child goes
   on as a program would: it checks a list the parent made before the fork
   (held by a registered root), allocates a list of its own while garbage
   drives cycles (its first cycle needs the background threads again),
   starts a thread that attaches and does the same, collects, checks every
   node of every list, detaches, frees the heap and exits 0. A child that
   fails exits with a code saying where (fork_child_run); one that does not
   exit within WBGC_FORK_CHILD_SECS (default 20) is killed and reported as
   hung. Meanwhile the parent's threads (the stress test's, which verify
   their graphs at every step) keep going, and are checked as that test
   checks them. The child writes only with write(2) and never takes the
   test's own locks: a thread of the parent may have held them at the fork. */

typedef struct fnode {
    struct fnode *next;
    uint64_t seq, nw;
    uint64_t w[];       /* w[k] = pat_word(seed + seq, k) */
} fnode;

/* fork_child_secs: WBGC_FORK_CHILD_SECS (default 20). */
static unsigned fork_child_secs(void)
{
    const char *s = getenv("WBGC_FORK_CHILD_SECS");
    return s && atoi(s) > 0 ? (unsigned)atoi(s) : 20;
}
static fnode *g_fork_root[1];   /* registered: the parent's list, made before any fork */

/* fork_churn: churn without the harness (a child must not print through it). */
static NOINLINE int fork_churn(wbgc_p *p, size_t bytes, uint64_t *rng)
{
    for (size_t done = 0; done < bytes;) {
        uint64_t r = rnd(rng);
        size_t n = 16 + (size_t)(r >> 8) % 600;
        uint64_t *q = (r & 1) ? wbgc_alloc(p, n) : wbgc_alloc_noscan(p, n);
        if (!q) return -1;
        q[0] = r | 1;
        done += n;
    }
    return 0;
}

/* fl_build: a list of n nodes (seq n-1 at the head), with garbage between
   the nodes so that cycles run while only the stack holds the list. */
static NOINLINE fnode *fl_build(wbgc_p *p, uint64_t seed, size_t n, uint64_t *rng)
{
    fnode *head = NULL;
    for (size_t i = 0; i < n; i++) {
        size_t nw = (size_t)(rnd(rng) % 7);
        fnode *f = wbgc_alloc(p, sizeof *f + nw * sizeof(uint64_t));
        if (!f) return NULL;
        f->seq = i;
        f->nw = nw;
        for (size_t k = 0; k < nw; k++) f->w[k] = pat_word(seed + i, k);
        wbgc_write(p, &f->next, head);
        head = f;
        if (i % 64 == 63 && fork_churn(p, 8 * KB, rng) < 0) return NULL;
    }
    return head;
}

/* fl_bad: how many nodes of the list from fl_build(seed, n) are wrong or
   missing (a node out of sequence ends the walk: what follows is counted
   as missing). */
static size_t fl_bad(const fnode *head, uint64_t seed, size_t n)
{
    size_t i = n, bad = 0;
    for (const fnode *f = head; f; f = f->next) {
        if (i == 0) return bad + 1;
        i--;
        if (f->seq != i || f->nw > 6) return bad + i + 1;
        for (size_t k = 0; k < f->nw; k++) bad += f->w[k] != pat_word(seed + i, k);
    }
    return bad + i;
}

typedef struct fork_side {
    wbgc_heap *h;
    uint64_t seed;
    size_t n;
    int rc;
} fork_side;

/* fork_child_thread: a thread started in the child, attached to its heap. */
static void *fork_child_thread(void *a)
{
    fork_side *s = a;
    uint64_t rng = s->seed | 1;
    wbgc_p *p = wbgc_attach(s->h);
    if (!p) {
        s->rc = 20;
        return NULL;
    }
    fnode *l = fl_build(p, s->seed, s->n, &rng);
    if (!l) s->rc = 21;
    wbgc_collect(p);
    if (l && fl_bad(l, s->seed, s->n)) s->rc = 22;
    wbgc_detach(p);
    return NULL;
}

#define FORK_CHILD_NODES 6000

/* fork_child_run: the child's work on heap h, with the P it inherited
   (blocked: the fork happened inside its blocking region) or, with p NULL,
   a P of its own. proot: a list of pn nodes made with pseed that must
   still be there. Returns 0, or where it failed. */
static NOINLINE int fork_child_run(wbgc_heap *h, wbgc_p *p, int blocked, fnode *const *proot,
                                   uint64_t pseed, size_t pn, uint64_t seed)
{
    if (blocked) wbgc_blocking_end(p);
    if (!p && !(p = wbgc_attach(h))) return 10;
    uint64_t c0 = cycles_of(h);
    if (proot && fl_bad(*proot, pseed, pn)) return 11;
    fork_side s = {h, seed ^ 0x5eed5eedULL, FORK_CHILD_NODES / 2, 0};
    pthread_t t;
    int started = pthread_create(&t, NULL, fork_child_thread, &s) == 0;
    uint64_t rng = seed | 1;
    fnode *l = fl_build(p, seed, FORK_CHILD_NODES, &rng);
    if (!l) return 12;
    wbgc_collect(p);
    if (started) join_blocking(p, t);
    wbgc_collect(p);
    if (fl_bad(l, seed, FORK_CHILD_NODES)) return 13;
    if (proot && fl_bad(*proot, pseed, pn)) return 14;
    if (!started) return 15;
    if (s.rc) return s.rc;
    if (cycles_of(h) < c0 + 2) return 16;
    wbgc_detach(p);
    return 0;
}

/* fork_child_exit: the child's side of a fork: the harness's handlers and
   watchdog off (the parent watches), the work on each heap, the heaps
   freed (every P is detached by then: the child's threads are its own),
   and _exit with 0 or the failure's code (30: on_error was called). */
static NOINLINE __attribute__((noreturn)) void
fork_child_exit(wbgc_heap **hs, wbgc_p **ps, errlog **logs, int nh, int blocked,
                fnode *const *const *proots, const uint64_t *pseeds, size_t pn, uint64_t seed)
{
    static const int sigs[] = {SIGALRM, SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE};
    for (size_t i = 0; i < ARRAY_LEN(sigs); i++) signal(sigs[i], SIG_DFL);
    alarm(0);
    int rc = 0;
    for (int i = 0; i < nh && !rc; i++)
        rc = fork_child_run(hs[i], ps ? ps[i] : NULL, blocked, proots[i], pseeds[i], pn,
                            seed + (uint64_t)i);
    for (int i = 0; i < nh && !rc; i++) {
        wbgc_heap_free(hs[i]);
        if (__atomic_load_n(&logs[i]->count, __ATOMIC_RELAXED)) rc = 30;
    }
    if (rc) {
        char m[128];
        int n = snprintf(m, sizeof m, "    fork child %d: failed at step %d\n", (int)getpid(), rc);
        if (write(1, m, (size_t)n) < 0) rc = 31;
    }
    _exit(rc);
}

typedef struct fork_kid {
    pid_t pid;
    int idx;
    const char *how;
    uint64_t t0;
    int done;
} fork_kid;

/* fork_reap: collect children that ended (all of them with wait_all:
   each gets up to fork_child_secs(), then SIGKILL); a child that did not
   exit 0 is a failed check, counted in *bad. Returns the number still
   running. */
static int fork_reap(fork_kid *kids, int n, int wait_all, int *bad)
{
    int running;
    uint64_t limit = (uint64_t)fork_child_secs() * 1000000000u;
    for (;;) {
        running = 0;
        for (int i = 0; i < n; i++) {
            fork_kid *k = &kids[i];
            if (k->done) continue;
            int st;
            pid_t r = waitpid(k->pid, &st, WNOHANG);
            if (r == 0 && now_ns() - k->t0 > limit) {
                kill(k->pid, SIGKILL);
                r = waitpid(k->pid, &st, 0);
                FAILF("fork %d (%s): the child did not finish in %llu s: hung, killed", k->idx,
                      k->how, (unsigned long long)(limit / 1000000000u));
                ++*bad;
                k->done = 1;
                continue;
            }
            if (r == 0) {
                running++;
                continue;
            }
            k->done = 1;
            if (r < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) ++*bad;
            if (r < 0) FAILF("fork %d: waitpid: %s", k->idx, strerror(errno));
            else if (WIFSIGNALED(st))
                FAILF("fork %d (%s): the child died with signal %d", k->idx, k->how, WTERMSIG(st));
            else if (WEXITSTATUS(st) != 0)
                FAILF("fork %d (%s): the child failed at step %d", k->idx, k->how, WEXITSTATUS(st));
        }
        if (!wait_all || !running) return running;
        sleep_us(2000);
    }
}

#define FORK_N 24
#define FORK_MAX_KIDS 4   /* children alive at once (2 cores) */
#define FORK_ROOT_NODES 2000

/* fork_skip: under gcc's TSan, say why the test does nothing. */
static int fork_skip(void)
{
    if (TEST_GCC_TSAN)
        note("skipped: gcc's ThreadSanitizer kills a forked child that starts a thread");
    return TEST_GCC_TSAN;
}

static void st_reset(wbgc_heap *h)
{
    g_st_heap = h;
    g_st_next_id = 0;
    g_st_lo = UINTPTR_MAX;
    g_st_hi = 0;
    g_st_stop = g_st_corrupt = 0;
    g_st_ops = g_st_holds = g_st_handoffs = g_st_memmoves = g_st_walks = g_st_walked = 0;
    g_st_stores = 0;
    g_st_checks = g_st_collects = g_st_drops = 0;
    memset(g_st_shared, 0, sizeof g_st_shared);
    memset(g_st_shared_id, 0, sizeof g_st_shared_id);
    memset(g_st_shared_size, 0, sizeof g_st_shared_size);
}

/* fork_while_marking: the stress test's threads on a heap at gc_percent 1
   (a cycle is nearly always marking), and the main thread, attached,
   forking FORK_N times at random moments: a third of them inside its
   blocking region, the others with its P running (a short list built
   just before: barrier entries and requests pending). */
static void test_fork_while_marking(void)
{
    if (fork_skip()) return;
    errlog log;
    pthread_t th[ST_THREADS];
    st_arg args[ST_THREADS];
    fork_kid kids[FORK_N];
    int started = 0, nkids = 0, bad = 0;
    uint64_t fork_max_ns = 0;   /* the longest fork() in the parent: its world stopped */
    wbgc_heap *h = open_heap(&log, g_stress_gc_percent, 0, -1, 0);
    REQUIRE(h);
    st_reset(h);
    CHECK(wbgc_add_roots(h, g_st_shared, sizeof g_st_shared) == 0);
    CHECK(wbgc_add_roots(h, g_fork_root, sizeof g_fork_root) == 0);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    uint64_t rng = mix64(g_stress_seed + 0xf0f0) | 1, pseed = rnd(&rng);
    wbgc_write(p, &g_fork_root[0], fl_build(p, pseed, FORK_ROOT_NODES, &rng));
    REQUIRE(g_fork_root[0]);
    st_thread mt;
    memset(&mt, 0, sizeof mt);
    mt.idx = ST_THREADS;
    mt.op = "shared slots after the forks";
    mt.p = p;
    mt.dfs_cap = 1024;
    mt.dfs = malloc(mt.dfs_cap * sizeof *mt.dfs);
    REQUIRE(mt.dfs);
    uint64_t c0 = cycles_of(h);
    for (int i = 0; i < ST_THREADS; i++) {
        args[i].idx = i;
        if (pthread_create(&th[i], NULL, st_thread_main, &args[i]) != 0) {
            FAILF("pthread_create failed");
            break;
        }
        started++;
    }
    wbgc_heap *hs[1] = {h};
    wbgc_p *ps[1] = {p};
    errlog *logs[1] = {&log};
    fnode *const *proots[1] = {g_fork_root};
    wbgc_blocking_begin(p);
    for (int i = 0; i < FORK_N && !__atomic_load_n(&g_st_corrupt, __ATOMIC_RELAXED); i++) {
        sleep_us(1000 + (long)(rnd(&rng) % 20000));
        while (fork_reap(kids, nkids, 0, &bad) >= FORK_MAX_KIDS) sleep_us(2000);
        int blocked = i % 3 == 0;
        fnode *volatile tmp = NULL;
        if (!blocked) {
            wbgc_blocking_end(p);
            tmp = fl_build(p, (uint64_t)i, 64, &rng);
        }
        uint64_t seed = rnd(&rng), tf = now_ns();
        pid_t pid = fork();
        if (pid == 0)
            fork_child_exit(hs, ps, logs, 1, blocked, proots, &pseed, FORK_ROOT_NODES, seed);
        tf = now_ns() - tf;
        if (tf > fork_max_ns) fork_max_ns = tf;
        if (!blocked) {
            CHECK(fl_bad(tmp, (uint64_t)i, 64) == 0);
            tmp = NULL;
            wbgc_blocking_begin(p);
        }
        if (pid < 0) {
            FAILF("fork: %s", strerror(errno));
            break;
        }
        kids[nkids].pid = pid;
        kids[nkids].idx = i;
        kids[nkids].how = blocked ? "P blocked" : "P running";
        kids[nkids].t0 = now_ns();
        kids[nkids].done = 0;
        nkids++;
    }
    fork_reap(kids, nkids, 1, &bad);
    __atomic_store_n(&g_st_stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    wbgc_blocking_end(p);
    CHECKF(fl_bad(g_fork_root[0], pseed, FORK_ROOT_NODES) == 0, "the parent's list is damaged");
    long n1 = st_check_shared(&mt);
    wbgc_collect(p);
    long n2 = st_check_shared(&mt);
    CHECKF(fl_bad(g_fork_root[0], pseed, FORK_ROOT_NODES) == 0, "the parent's list is damaged");
    if (!__atomic_load_n(&g_st_corrupt, __ATOMIC_RELAXED)) {
        CHECKF(n1 == n2, "shared slots: %ld nodes before a collect, %ld after", n1, n2);
        CHECKF(g_st_ops >= 100, "only %llu mutations", (unsigned long long)g_st_ops);
    }
    uint64_t cyc = cycles_of(h) - c0;
    CHECKF(cyc >= 10, "only %llu cycles in the parent", (unsigned long long)cyc);
    note("%d forks, %d children ok, the longest fork() %.2f ms; parent: %llu cycles, %llu "
         "mutations by %d threads", nkids, nkids - bad, fork_max_ns / 1e6,
         (unsigned long long)cyc, (unsigned long long)g_st_ops, started);
    free(mt.dfs);
    wbgc_write(p, &g_fork_root[0], NULL);
    wbgc_remove_roots(h, g_fork_root);
    wbgc_remove_roots(h, g_st_shared);
    memset(g_st_shared, 0, sizeof g_st_shared);
    CLOSE_HEAP(h, p, &log);
}

/* fork_two_forkers: two attached threads fork at the same moment, round
   after round (a barrier lines them up), each inside its blocking region
   as ON FORK asks: the C library lets one fork run and the other wait, and
   the waiting one must not hold up the first one's stop of the world. Two
   of the stress test's threads keep mutating meanwhile. Each child goes on
   with the P of the thread that forked it. */
#define FF_FORKERS 2
#define FF_ROUNDS 6

typedef struct ff_arg {
    wbgc_heap *h;
    errlog *log;
    pthread_barrier_t *bar;
    uint64_t pseed;
    uint64_t seed;
    fork_kid kids[FF_ROUNDS];
    int nkids, bad;
} ff_arg;

static void *ff_thread(void *a)
{
    ff_arg *f = a;
    uint64_t rng = f->seed | 1;
    wbgc_p *p = wbgc_attach(f->h);
    if (!p) {
        FAILF("wbgc_attach failed");
        return NULL;
    }
    wbgc_heap *hs[1] = {f->h};
    wbgc_p *ps[1] = {p};
    errlog *logs[1] = {f->log};
    fnode *const *proots[1] = {g_fork_root};
    for (int i = 0; i < FF_ROUNDS; i++) {
        fnode *volatile l = fl_build(p, (uint64_t)i, 200, &rng);
        uint64_t seed = rnd(&rng);
        wbgc_blocking_begin(p);
        pthread_barrier_wait(f->bar);
        pid_t pid = fork();
        if (pid == 0)
            fork_child_exit(hs, ps, logs, 1, 1, proots, &f->pseed, FORK_ROOT_NODES, seed);
        wbgc_blocking_end(p);
        CHECK(fl_bad(l, (uint64_t)i, 200) == 0);
        l = NULL;
        if (pid < 0) {
            FAILF("fork: %s", strerror(errno));
            continue;
        }
        f->kids[f->nkids].pid = pid;
        f->kids[f->nkids].idx = i;
        f->kids[f->nkids].how = "two forkers, P blocked";
        f->kids[f->nkids].t0 = now_ns();
        f->kids[f->nkids].done = 0;
        f->nkids++;
        wbgc_blocking_begin(p);
        while (fork_reap(f->kids, f->nkids, 0, &f->bad) >= FORK_MAX_KIDS / FF_FORKERS) sleep_us(2000);
        wbgc_blocking_end(p);
    }
    wbgc_blocking_begin(p);
    fork_reap(f->kids, f->nkids, 1, &f->bad);
    wbgc_blocking_end(p);
    wbgc_detach(p);
    return NULL;
}

static void test_fork_two_forkers(void)
{
    if (fork_skip()) return;
    errlog log;
    pthread_t th[2], ft[FF_FORKERS];
    st_arg args[2];
    ff_arg fa[FF_FORKERS];
    pthread_barrier_t bar;
    int started = 0, forkers = 0;
    wbgc_heap *h = open_heap(&log, g_stress_gc_percent, 0, -1, 0);
    REQUIRE(h);
    st_reset(h);
    CHECK(wbgc_add_roots(h, g_st_shared, sizeof g_st_shared) == 0);
    CHECK(wbgc_add_roots(h, g_fork_root, sizeof g_fork_root) == 0);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    uint64_t rng = mix64(g_stress_seed + 0x2f0f) | 1, pseed = rnd(&rng);
    wbgc_write(p, &g_fork_root[0], fl_build(p, pseed, FORK_ROOT_NODES, &rng));
    REQUIRE(g_fork_root[0]);
    uint64_t c0 = cycles_of(h);
    for (int i = 0; i < 2; i++) {
        args[i].idx = i;
        if (pthread_create(&th[i], NULL, st_thread_main, &args[i]) == 0) started++;
    }
    pthread_barrier_init(&bar, NULL, FF_FORKERS);
    for (int i = 0; i < FF_FORKERS; i++) {
        memset(&fa[i], 0, sizeof fa[i]);
        fa[i].h = h;
        fa[i].log = &log;
        fa[i].bar = &bar;
        fa[i].pseed = pseed;
        fa[i].seed = rnd(&rng);
        if (pthread_create(&ft[i], NULL, ff_thread, &fa[i]) == 0) forkers++;
    }
    REQUIRE(forkers == FF_FORKERS);  /* else the barrier waits forever */
    wbgc_blocking_begin(p);
    for (int i = 0; i < forkers; i++) pthread_join(ft[i], NULL);
    __atomic_store_n(&g_st_stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    wbgc_blocking_end(p);
    pthread_barrier_destroy(&bar);
    int kids = 0, bad = 0;
    for (int i = 0; i < forkers; i++) kids += fa[i].nkids, bad += fa[i].bad;
    CHECKF(kids == FF_FORKERS * FF_ROUNDS, "%d forks of %d", kids, FF_FORKERS * FF_ROUNDS);
    wbgc_collect(p);
    CHECKF(fl_bad(g_fork_root[0], pseed, FORK_ROOT_NODES) == 0, "the parent's list is damaged");
    note("%d forks by %d threads at once, %d children ok; parent: %llu cycles, %llu mutations",
         kids, forkers, kids - bad, (unsigned long long)(cycles_of(h) - c0), (unsigned long long)g_st_ops);
    wbgc_write(p, &g_fork_root[0], NULL);
    wbgc_remove_roots(h, g_fork_root);
    wbgc_remove_roots(h, g_st_shared);
    memset(g_st_shared, 0, sizeof g_st_shared);
    CLOSE_HEAP(h, p, &log);
}

/* fork_unattached: three heaps -- concurrent, incremental, stop-the-world
   -- each with a thread of its own that keeps building, checking and
   dropping lists at gc_percent 1, and a list it made first in a root
   region. The main thread holds no P in any of them and forks FORK_N / 3
   times; each child attaches to every heap in turn and goes on there. */
#define FU_HEAPS 3
static fnode *g_fu_root[FU_HEAPS][1];

typedef struct fu_arg {
    wbgc_heap *h;
    int idx;
    uint64_t seed;
    int ready, stop, fail;
    uint64_t rounds;
} fu_arg;

static void *fu_thread(void *a)
{
    fu_arg *f = a;
    uint64_t rng = f->seed | 1;
    wbgc_p *p = wbgc_attach(f->h);
    if (!p) {
        __atomic_store_n(&f->fail, 1, __ATOMIC_RELEASE);
        __atomic_store_n(&f->ready, 1, __ATOMIC_RELEASE);
        return NULL;
    }
    wbgc_write(p, &g_fu_root[f->idx][0], fl_build(p, f->seed, FORK_ROOT_NODES, &rng));
    __atomic_store_n(&f->ready, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE)) {
        uint64_t s = rnd(&rng);
        fnode *l = fl_build(p, s, 500, &rng);
        if (!l || fl_bad(l, s, 500) || fl_bad(g_fu_root[f->idx][0], f->seed, FORK_ROOT_NODES)) {
            __atomic_store_n(&f->fail, 1, __ATOMIC_RELEASE);
            break;
        }
        if (++f->rounds % 8 == 0) wbgc_collect(p);
    }
    wbgc_detach(p);
    return NULL;
}

static void test_fork_unattached(void)
{
    if (fork_skip()) return;
    static const struct { unsigned flags; int workers; const char *mode; } modes[FU_HEAPS] = {
        {0, -1, "concurrent"}, {0, 0, "incremental"}, {WBGC_STW, -1, "stop-the-world"}};
    errlog logv[FU_HEAPS], *logs[FU_HEAPS];
    wbgc_heap *hs[FU_HEAPS];
    fu_arg fa[FU_HEAPS];
    pthread_t th[FU_HEAPS];
    fnode *const *proots[FU_HEAPS];
    uint64_t pseeds[FU_HEAPS], c0[FU_HEAPS];
    fork_kid kids[FORK_N];
    int nkids = 0, bad = 0, nh = 0;
    uint64_t rng = mix64(g_stress_seed + 0xabc) | 1;
    for (; nh < FU_HEAPS; nh++) {
        logs[nh] = &logv[nh];
        hs[nh] = open_heap(logs[nh], 1, modes[nh].flags, modes[nh].workers, 0);
        if (!hs[nh]) break;
        CHECK(wbgc_add_roots(hs[nh], g_fu_root[nh], sizeof g_fu_root[nh]) == 0);
        proots[nh] = g_fu_root[nh];
        pseeds[nh] = rnd(&rng);
        c0[nh] = cycles_of(hs[nh]);
        memset(&fa[nh], 0, sizeof fa[nh]);
        fa[nh].h = hs[nh];
        fa[nh].idx = nh;
        fa[nh].seed = pseeds[nh];
        if (pthread_create(&th[nh], NULL, fu_thread, &fa[nh]) != 0) {
            FAILF("pthread_create failed");
            break;
        }
    }
    REQUIRE(nh == FU_HEAPS);
    for (int i = 0; i < nh; i++)
        while (!__atomic_load_n(&fa[i].ready, __ATOMIC_ACQUIRE)) sleep_us(1000);
    for (int i = 0; i < FORK_N / 3; i++) {
        sleep_us(2000 + (long)(rnd(&rng) % 30000));
        while (fork_reap(kids, nkids, 0, &bad) >= FORK_MAX_KIDS) sleep_us(2000);
        uint64_t seed = rnd(&rng);
        pid_t pid = fork();
        if (pid == 0) fork_child_exit(hs, NULL, logs, nh, 0, proots, pseeds, FORK_ROOT_NODES, seed);
        if (pid < 0) {
            FAILF("fork: %s", strerror(errno));
            break;
        }
        kids[nkids].pid = pid;
        kids[nkids].idx = i;
        kids[nkids].how = "no P";
        kids[nkids].t0 = now_ns();
        kids[nkids].done = 0;
        nkids++;
    }
    fork_reap(kids, nkids, 1, &bad);
    note("%d forks, %d children ok", nkids, nkids - bad);
    for (int i = 0; i < nh; i++) {
        __atomic_store_n(&fa[i].stop, 1, __ATOMIC_RELEASE);
        pthread_join(th[i], NULL);
        CHECKF(!fa[i].fail, "the %s heap's thread found a list damaged", modes[i].mode);
        CHECKF(cycles_of(hs[i]) - c0[i] >= 3, "%s heap: only %llu cycles", modes[i].mode,
               (unsigned long long)(cycles_of(hs[i]) - c0[i]));
        wbgc_p *p = wbgc_attach(hs[i]);
        REQUIRE(p);
        wbgc_collect(p);
        CHECKF(fl_bad(g_fu_root[i][0], pseeds[i], FORK_ROOT_NODES) == 0,
               "the %s heap's root list is damaged", modes[i].mode);
        wbgc_write(p, &g_fu_root[i][0], NULL);
        wbgc_remove_roots(hs[i], g_fu_root[i]);
        note("%s heap: %llu rounds, %llu cycles", modes[i].mode, (unsigned long long)fa[i].rounds,
             (unsigned long long)(cycles_of(hs[i]) - c0[i]));
        CLOSE_HEAP(hs[i], p, logs[i]);
    }
}


/* =========================================================================
   Check mode, trace, config
   ========================================================================= */

static NOINLINE void make_dangling(wbgc_p *p, uintptr_t *addrs, int n)
{
    for (int i = 0; i < n; i++) {
        void *q = wbgc_alloc(p, 48);
        addrs[i] = (uintptr_t)q;
    }
}

/* make_garbage48: n objects of 48 bytes filled with a pattern, their
   addresses written to addrs (memory the collector does not scan). */
static NOINLINE void make_garbage48(wbgc_p *p, uintptr_t *addrs, int n)
{
    for (int i = 0; i < n; i++) {
        unsigned char *q = (unsigned char *)wbgc_alloc(p, 48);
        memset(q, 0x3c, 48);
        addrs[i] = (uintptr_t)q;
    }
}

/* Check mode poisons what a cycle frees, and reports a write into freed
   memory when that memory is handed out again. */
static void test_check_mode_poison(void)
{
    enum { NG = 256 };
    errlog log;
    wbgc_heap *h = open_heap(&log, -1, WBGC_CHECK, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    void *volatile keep = wbgc_alloc(p, 48);  /* keeps the span in use */
    uintptr_t *g = (uintptr_t *)malloc(NG * sizeof *g);
    REQUIRE(g && keep);
    make_garbage48(p, g, NG);
    scrub_stack();
    wbgc_collect(p);
    int poisoned = 0;
    for (int i = 0; i < NG; i++) {
        const unsigned char *q = (const unsigned char *)g[i];
        int all = 1;
        for (int k = 0; k < 48; k++) all &= q[k] == 0xa5;
        poisoned += all;
    }
    CHECKF(poisoned >= NG / 2, "only %d of %d freed objects hold the poison", poisoned, NG);
    /* a use after free: write through a stale pointer, then allocate until
       that memory comes back */
    unsigned char *victim = NULL;
    for (int i = 0; i < NG && !victim; i++)
        if (((const unsigned char *)g[i])[0] == 0xa5) victim = (unsigned char *)g[i];
    REQUIRE(victim);
    victim[17] = 0x42;
    int e0 = errlog_count(&log), reused = 0;
    for (int i = 0; i < 4 * NG && !reused; i++) reused = wbgc_alloc(p, 48) == (void *)victim;
    CHECKF(reused, "the freed object %p never came back", (void *)victim);
    CHECKF(errlog_count(&log) == e0 + 1, "the write after free was reported %d times",
           errlog_count(&log) - e0);
    CHECKF(errlog_has_ptr(&log, e0, victim), "the report does not name %p: \"%s\"", (void *)victim,
           errlog_msg(&log, e0));
    CHECK(victim[17] == 0);  /* and the object was zeroed all the same */
    free(g);
    keep = NULL;
    CLOSE_HEAP_ERRS_OK(h, p, &log);
}

static void *g_check_root[4];

static void test_check_mode_reports(void)
{
    enum { ND = 64 };
    errlog log;
    wbgc_heap *h = open_heap(&log, -1, WBGC_CHECK, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    void **volatile holder = wbgc_alloc(p, 8 * sizeof(void *));
    void *volatile obj = wbgc_alloc(p, 64);
    void **bad_slot = malloc(8 * sizeof(void *));
    uintptr_t *dang = malloc(ND * sizeof *dang);
    REQUIRE(holder && obj && bad_slot && dang);
    CHECK(wbgc_add_roots(h, g_check_root, sizeof g_check_root) == 0);
    /* legitimate stores: heap object, root region, own stack */
    int e0 = errlog_count(&log);
    void *on_stack = NULL;
    wbgc_write(p, &holder[0], obj);
    wbgc_write(p, &g_check_root[0], obj);
    wbgc_write(p, &on_stack, obj);
    CHECKF(errlog_count(&log) == e0, "check mode reported a legitimate store: \"%s\"", errlog_msg(&log, e0));
    CHECK(on_stack == obj && holder[0] == obj && g_check_root[0] == obj);
    /* a GC pointer into malloc memory: reported, with both addresses */
    e0 = errlog_count(&log);
    wbgc_write(p, &bad_slot[0], obj);
    CHECKF(errlog_count(&log) == e0 + 1, "a store of a GC pointer into malloc memory: on_error called %d times",
           errlog_count(&log) - e0);
    CHECKF(errlog_has_ptr(&log, e0, &bad_slot[0]), "message does not name the slot %p: \"%s\"",
           (void *)&bad_slot[0], errlog_msg(&log, e0));
    CHECKF(errlog_has_ptr(&log, e0, obj), "message does not name the value %p: \"%s\"", obj,
           errlog_msg(&log, e0));
    /* a pointer to a freed object: reported (in bulk: a few may survive by
       a stale reference) */
    make_dangling(p, dang, ND);
    scrub_stack();
    wbgc_collect(p);
    e0 = errlog_count(&log);
    for (int i = 0; i < ND; i++) {
        wbgc_write(p, &holder[1], (void *)dang[i]);
        wbgc_write(p, &holder[1], NULL);
    }
    int reported = errlog_count(&log) - e0;
    CHECKF(reported >= ND / 2, "stores of pointers to freed objects: %d of %d reported", reported, ND);
    note("check mode: %d of %d stores of freed-object pointers reported", reported, ND);
    wbgc_remove_roots(h, g_check_root);
    memset(g_check_root, 0, sizeof g_check_root);
    free(bad_slot);
    free(dang);
    CLOSE_HEAP_ERRS_OK(h, p, &log);
}

/* capture_stderr: run fn with fd 2 sent to a temporary file; returns the
   number of lines written (or -1). */
static int stderr_lines_during(void (*fn)(wbgc_p *), wbgc_p *p)
{
    FILE *tmp = tmpfile();
    if (!tmp) return -1;
    fflush(stderr);
    int saved = dup(2);
    if (saved < 0 || dup2(fileno(tmp), 2) < 0) {
        fclose(tmp);
        return -1;
    }
    fn(p);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    int lines = 0, c, last = '\n';
    while ((c = fgetc(tmp)) != EOF) {
        if (c == '\n') lines++;
        last = c;
    }
    if (last != '\n') lines++;
    fclose(tmp);
    return lines;
}

static void three_collects(wbgc_p *p)
{
    for (int i = 0; i < 3; i++) wbgc_collect(p);
}

static void test_trace_flag(void)
{
    errlog log;
    unsigned saved = g_extra_flags;
    g_extra_flags = 0;
    wbgc_heap *h = open_heap(&log, -1, WBGC_TRACE, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    uint64_t c0 = cycles_of(h);
    int lines = stderr_lines_during(three_collects, p);
    uint64_t cyc = cycles_of(h) - c0;
    CHECKF(lines >= 0 && (uint64_t)lines == cyc, "WBGC_TRACE: %d lines on stderr for %llu cycles", lines,
           (unsigned long long)cyc);
    CLOSE_HEAP(h, p, &log);
    /* and without the flag, nothing */
    h = open_heap(&log, -1, 0, -1, 0);
    REQUIRE(h);
    p = wbgc_attach(h);
    REQUIRE(p);
    lines = stderr_lines_during(three_collects, p);
    CHECKF(lines == 0, "without WBGC_TRACE: %d lines on stderr", lines);
    CLOSE_HEAP(h, p, &log);
    g_extra_flags = saved;
}

static void test_config_defaults(void)
{
    wbgc_config cfg;
    memset(&cfg, 0x5A, sizeof cfg);
    wbgc_config_default(&cfg);
    CHECK(cfg.gc_percent == 100);
    CHECK(cfg.memory_limit == 0);
    CHECK(cfg.mark_workers == -1);
    CHECK(cfg.flags == 0);
    CHECK(cfg.user == NULL);
    /* NULL config: the defaults */
    wbgc_heap *h = wbgc_heap_new(NULL);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    void *volatile q = wbgc_alloc(p, 100);
    CHECK(q != NULL);
    uint64_t rng = 1;
    churn(p, 16 * MB, 1000, &rng);
    CHECK(cycles_of(h) > 0);   /* gc_percent 100 by default */
    wbgc_collect(p);
    CHECK(q != NULL && count_nonzero(q, 100) == 0);
    wbgc_detach(p);
    wbgc_heap_free(h);
}

/* =========================================================================
   The table and the runner
   ========================================================================= */

/* =========================================================================
   The barrier's two paths: amd64 asm and portable C
   ========================================================================= */

/* barrier_record: n stores through one path, with the buffer's contents
   copied out before it can fill. The P's barrier is switched on by hand
   (no cycle runs: gc_percent -1), which only makes stores take the
   recording path. */
static void barrier_record(wbgc_p *p, int use_asm, void **slots, void *const *vals, int n,
                           void **out)
{
    wbgc__pfast *f = (wbgc__pfast *)(void *)p;
    f->wb_on = 1;
    f->wb_next = p->wbbuf;
    for (int i = 0; i < n; i++) {
#if WBGC__HAVE_AMD64
        if (use_asm) wbgc__amd64_write(p, &slots[i], vals[i]);
        else wbgc__arch_write(p, &slots[i], vals[i]);
#else
        (void)use_asm;
        wbgc__arch_write(p, &slots[i], vals[i]);
#endif
    }
    memcpy(out, p->wbbuf, (size_t)(f->wb_next - p->wbbuf) * sizeof(void *));
    f->wb_next = p->wbbuf;
    f->wb_on = 0;
}

/* Both paths record the same (new, old) pairs for the same stores, and old
   is what the slot held before the store (PITFALLS 1); both store. */
static void test_barrier_paths_agree(void)
{
    enum { N = 100 };
    errlog log;
    wbgc_heap *h = open_heap(&log, -1, 0, 0, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    static void *vals[N], *slots_a[N], *slots_b[N], *rec_a[2 * N], *rec_b[2 * N];
    for (int i = 0; i < N; i++) {
        vals[i] = wbgc_alloc(p, 16 + (size_t)i);
        slots_a[i] = slots_b[i] = (void *)(uintptr_t)(0x1000 + 16 * i);  /* the old values */
    }
    vals[7] = NULL;  /* a NULL store is recorded too */
    barrier_record(p, 1, slots_a, vals, N, rec_a);
    barrier_record(p, 0, slots_b, vals, N, rec_b);
    CHECKF(memcmp(rec_a, rec_b, sizeof rec_a) == 0, "asm and portable barriers recorded different buffers");
    for (int i = 0; i < N; i++) {
        CHECKF(rec_a[2 * i] == vals[i], "entry %d: new %p, stored %p", i, rec_a[2 * i], vals[i]);
        CHECKF(rec_a[2 * i + 1] == (void *)(uintptr_t)(0x1000 + 16 * i),
               "entry %d: old %p is not what the slot held", i, rec_a[2 * i + 1]);
        CHECK(slots_a[i] == vals[i] && slots_b[i] == vals[i]);
    }
    note("%s", WBGC__HAVE_AMD64 ? "asm path compared with the portable path"
                                : "portable path only (no amd64 asm in this build)");
    memset(slots_a, 0, sizeof slots_a);
    memset(slots_b, 0, sizeof slots_b);
    CLOSE_HEAP(h, p, &log);
}

/* The insertion half of the barrier while a stack is grey. After mark start
   a P's stack is grey until its scan; a pointer it moves from its stack into
   a black object and then drops is kept alive only by the new half of that
   store's buffer entry. Once the stack is black the drain shades old halves
   only (stack_black), so the entries appended while it was grey must be
   drained, both halves, before the flag is set, and the flag must start
   every cycle clear. The pointer is kept hidden (xor-ed) between calls so
   that no stale stack word keeps it alive. */
#define GREY_MASK ((uintptr_t)0x5a5a5a5a5a5a5a5aull)
static NOINLINE uintptr_t grey_make_hidden(wbgc_p *p)
{
    uint64_t *x = wbgc_alloc_noscan(p, 64);
    if (!x) return 0;
    x[0] = 0x6772657973746b21ull;
    return (uintptr_t)x ^ GREY_MASK;
}
static NOINLINE void grey_store_hidden(wbgc_p *p, void **slot, uintptr_t hidden)
{
    wbgc_write(p, slot, (void *)(hidden ^ GREY_MASK));
}
static NOINLINE int grey_allocated(wbgc_heap *h, uintptr_t hidden)
{
    uintptr_t v = hidden ^ GREY_MASK;
    wbgc__span *s = wbgc__span_of(h, v);
    if (!s) return 0;
    uint32_t i = (uint32_t)(((uint64_t)(v - s->base) * s->divmagic) >> 32);
    return (WBGC__LOAD(s->allocbits[i >> 6]) >> (i & 63)) & 1;
}

static void test_insertion_half_while_stack_grey(void)
{
    errlog log;
    wbgc_heap *h = open_heap(&log, -1, 0, 0, 0);  /* no mark threads: nothing races */
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    static void *root[1];
    REQUIRE(wbgc_add_roots(h, root, sizeof root) == 0);
    void **b = wbgc_alloc(p, 16);
    REQUIRE(b);
    wbgc_write(p, &root[0], b);
    for (int round = 0; round < 3; round++) {
        wbgc_collect(p);  /* a whole cycle: the previous one left p's stack black */
        uintptr_t hidden = grey_make_hidden(p);
        REQUIRE(hidden);
        scrub_stack();
        wbgc__gc_start(p, 1, "test");  /* mark start; p's own scan waits for its next safepoint */
        REQUIRE(WBGC__LOAD(h->phase) == WBGC__PHASE_MARK);
        CHECKF(!p->stack_black, "round %d: p's stack reads black at mark start", round);
        /* b black: shaded and scanned (it holds nothing yet) */
        wbgc__shade(h, &p->gcw, (uintptr_t)b);
        wbgc__drain(h, &p->gcw, UINT64_MAX, NULL);
        grey_store_hidden(p, &b[0], hidden);  /* the pointer now lives only in b */
        scrub_stack();
        wbgc_safepoint(p);                    /* the stack scan: it is not there */
        CHECKF(p->stack_black, "round %d: p's stack not black after its scan", round);
        wbgc_collect(p);  /* ends this cycle (and sweeps), then runs another */
        CHECKF(grey_allocated(h, hidden), "round %d: object %p stored from a grey stack into "
               "a black one was freed", round, (void *)(hidden ^ GREY_MASK));
        CHECK(b[0] == (void *)(hidden ^ GREY_MASK));
        if (b[0]) CHECK(((uint64_t *)b[0])[0] == 0x6772657973746b21ull);
        wbgc_write(p, &b[0], NULL);
    }
    wbgc_write(p, &root[0], NULL);
    wbgc_remove_roots(h, root);
    CLOSE_HEAP(h, p, &log);
}

/* The general-register flush stops before an entry that could need the
   global work lists (the P's two mark work buffers without room for all the
   entry may grey: two objects while the stack is grey), keeps the entries
   left, whole, at the front of the barrier buffer, and the full flush then
   shades them: no entry is lost. */
static int is_marked(wbgc_heap *h, const void *o)
{
    wbgc__span *s = wbgc__span_of(h, (uintptr_t)o);
    if (!s) return 0;
    uint32_t i = (uint32_t)(((uint64_t)((uintptr_t)o - s->base) * s->divmagic) >> 32);
    return (WBGC__LOAD(s->markbits[i >> 6]) >> (i & 63)) & 1;
}

static void test_flush_stops_when_work_full(void)
{
    enum { N = 8, ROOM = 4, DONE = ROOM - 1 };  /* DONE: entries shaded before the stop */
    errlog log;
    wbgc_heap *h = open_heap(&log, -1, 0, 0, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    static void *objs[N + 1];
    REQUIRE(wbgc_add_roots(h, objs, sizeof objs) == 0);
    for (int i = 0; i <= N; i++) wbgc_write(p, &objs[i], wbgc_alloc(p, 32));
    wbgc__gc_start(p, 1, "test");
    REQUIRE(WBGC__LOAD(h->phase) == WBGC__PHASE_MARK && !p->stack_black);
    /* objs[N], marked, fills the P's work buffers up to ROOM free slots */
    wbgc__shade(h, &p->gcw, (uintptr_t)objs[N]);
    REQUIRE(p->gcw.w1);
    while (p->gcw.w1->n + p->gcw.w2->n < 2 * WBGC_WORKBUF_ENTRIES - ROOM)
        wbgc__gcw_put(h, &p->gcw, (uintptr_t)objs[N]);
    for (int i = 0; i < N; i++) CHECK(!is_marked(h, objs[i]));
    /* N entries: new = objs[i] (white), old = NULL */
    for (int i = 0; i < N; i++) {
        p->wbbuf[2 * i] = objs[i];
        p->wbbuf[2 * i + 1] = NULL;
    }
    p->fast.wb_next = p->wbbuf + 2 * N;
    void *args[3] = {p, NULL, NULL};  /* as the trampoline passes them */
    CHECKF(wbgc__wb_flush_fast(args) == 0, "the general-register flush finished with no room left");
    CHECKF(p->fast.wb_next == p->wbbuf + 2 * (N - DONE), "%td words left in the buffer, want %d",
           p->fast.wb_next - p->wbbuf, 2 * (N - DONE));
    for (int i = 0; i < N; i++)
        CHECKF(is_marked(h, objs[i]) == (i < DONE), "objs[%d] %s after the stop", i,
               is_marked(h, objs[i]) ? "marked" : "not marked");
    for (int i = 0; i < N - DONE; i++)
        CHECKF(p->wbbuf[2 * i] == objs[DONE + i] && p->wbbuf[2 * i + 1] == NULL,
               "entry %d after the stop: (%p, %p), want (%p, NULL)", i, p->wbbuf[2 * i],
               p->wbbuf[2 * i + 1], objs[DONE + i]);
    static void *slot;
    wbgc__wb_flush(p, &slot, NULL);  /* the full flush, as the trampoline would call it */
    CHECK(p->fast.wb_next == p->wbbuf);
    for (int i = 0; i < N; i++) CHECKF(is_marked(h, objs[i]), "objs[%d] not marked by the full flush", i);
    wbgc_collect(p);
    for (int i = 0; i <= N; i++) wbgc_write(p, &objs[i], NULL);
    wbgc_remove_roots(h, objs);
    CLOSE_HEAP(h, p, &log);
}

/* The flush remembers the last mark word it read and skips values whose bit
   it saw set there. A value whose bit sits at the same position in another
   word, or at another position in the same word, must still be shaded: A
   (marked), then C (same word, unmarked), then B (next word, A's bit). */
static void test_flush_mark_word_cache(void)
{
    enum { N = 200 };
    errlog log;
    wbgc_heap *h = open_heap(&log, -1, 0, 0, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    static void *objs[N];
    REQUIRE(wbgc_add_roots(h, objs, sizeof objs) == 0);
    for (int i = 0; i < N; i++) wbgc_write(p, &objs[i], wbgc_alloc(p, 32));
    /* A, B = A's object index + 64 (same bit, next word), C = A's + 1 */
    void *a = NULL, *b = NULL, *c = NULL;
    for (int i = 0; i < N && !b; i++) {
        wbgc__span *s = wbgc__span_of(h, (uintptr_t)objs[i]);
        REQUIRE(s);
        uintptr_t base = (uintptr_t)objs[i];
        void *want_b = (void *)(base + 64 * s->elemsize), *want_c = (void *)(base + s->elemsize);
        int ib = -1, ic = -1;
        for (int j = 0; j < N; j++) {
            if (objs[j] == want_b && wbgc__span_of(h, (uintptr_t)want_b) == s) ib = j;
            if (objs[j] == want_c && wbgc__span_of(h, (uintptr_t)want_c) == s) ic = j;
        }
        uint32_t idx = (uint32_t)(((uint64_t)(base - s->base) * s->divmagic) >> 32);
        if (ib >= 0 && ic >= 0 && (idx & 63) != 63) {
            a = objs[i];
            b = objs[ib];
            c = objs[ic];
        }
    }
    if (!a) {
        FAILF("no three objects of 32 bytes laid out as the test needs among %d", N);
        return;
    }
    wbgc__gc_start(p, 1, "test");
    REQUIRE(WBGC__LOAD(h->phase) == WBGC__PHASE_MARK);
    wbgc__shade(h, &p->gcw, (uintptr_t)a);
    REQUIRE(is_marked(h, a) && !is_marked(h, b) && !is_marked(h, c));
    void *olds[3] = {a, c, b};
    for (int i = 0; i < 3; i++) {
        p->wbbuf[2 * i] = NULL;
        p->wbbuf[2 * i + 1] = olds[i];
    }
    p->fast.wb_next = p->wbbuf + 6;
    static void *slot;
    wbgc__wb_flush(p, &slot, NULL);
    CHECK(p->fast.wb_next == p->wbbuf);
    CHECKF(is_marked(h, c), "C (same mark word as A, another bit) not shaded");
    CHECKF(is_marked(h, b), "B (next mark word, A's bit) not shaded");
    wbgc_collect(p);
    for (int i = 0; i < N; i++) wbgc_write(p, &objs[i], NULL);
    wbgc_remove_roots(h, objs);
    CLOSE_HEAP(h, p, &log);
}

/* wbgc_write2 and wbgc_write_n record what the same stores one at a time
   would, store every value, and in check mode still validate every store
   (a bad slot in the middle of a batch is reported). */
static void test_batched_stores(void)
{
    enum { N = 40 };
    errlog log;
    wbgc_heap *h = open_heap(&log, -1, 0, 0, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    wbgc__pfast *f = (wbgc__pfast *)(void *)p;
    static void *vals[N], *slots1[N], *slotsn[N], *rec1[2 * N], *recn[2 * N];
    void *slot_addrs[N];
    for (int i = 0; i < N; i++) {
        vals[i] = wbgc_alloc(p, 32);
        slots1[i] = slotsn[i] = (void *)(uintptr_t)(0x2000 + 16 * i);
        slot_addrs[i] = &slotsn[i];
    }
    barrier_record(p, 1, slots1, vals, N, rec1);
    f->wb_on = 1;
    f->wb_next = p->wbbuf;
    wbgc_write2(p, slot_addrs[0], vals[0], slot_addrs[1], vals[1]);
    wbgc_write_n(p, slot_addrs + 2, vals + 2, N - 2);
    CHECKF(f->wb_next == p->wbbuf + 2 * N, "batched stores recorded %d entries, want %d",
           (int)(f->wb_next - p->wbbuf) / 2, N);
    memcpy(recn, p->wbbuf, sizeof recn);
    f->wb_next = p->wbbuf;
    f->wb_on = 0;
    CHECKF(memcmp(rec1, recn, sizeof rec1) == 0, "batched and single stores recorded different entries");
    for (int i = 0; i < N; i++) CHECK(slotsn[i] == vals[i]);
    /* barrier off: plain stores */
    wbgc_write2(p, slot_addrs[0], NULL, slot_addrs[1], NULL);
    CHECK(slotsn[0] == NULL && slotsn[1] == NULL && f->wb_next == p->wbbuf);
    memset(slots1, 0, sizeof slots1);
    memset(slotsn, 0, sizeof slotsn);
    CLOSE_HEAP(h, p, &log);

    /* check mode: every store of a batch validated */
    h = open_heap(&log, -1, WBGC_CHECK, 0, 0);
    REQUIRE(h);
    p = wbgc_attach(h);
    REQUIRE(p);
    void **obj = (void **)wbgc_alloc(p, 4 * sizeof(void *));
    void **bad = (void **)calloc(1, sizeof(void *));
    REQUIRE(obj && bad);
    void *v = wbgc_alloc(p, 16);
    void *bslots[3] = {&obj[0], bad, &obj[2]};
    void *bvals[3] = {v, v, v};
    int e0 = errlog_count(&log);
    wbgc_write_n(p, bslots, bvals, 3);
    CHECKF(errlog_count(&log) == e0 + 1, "check mode reported %d of the batch's stores, want the one "
           "into malloc memory", errlog_count(&log) - e0);
    CHECKF(errlog_has_ptr(&log, e0, bad), "the report does not name the bad slot %p", (void *)bad);
    CHECK(obj[0] == v && *bad == v && obj[2] == v);
    free(bad);
    CLOSE_HEAP_ERRS_OK(h, p, &log);
}

#if WBGC__HAVE_AMD64
#define TEST_FAST_FLUSH WBGC__AMD64_FAST_FLUSH  /* the general-register flush is there */
#else
#define TEST_FAST_FLUSH 0                       /* the portable barrier: every flush full */
#endif

/* Check mode sends every barriered store to the flush. On the amd64 path the
   trampoline's general-register flush validates a store into a heap object
   or the thread's own stack, of a live object, NULL or a non-pointer, with
   no lock and no call, so such a store does not pay for saving the vector
   state (p->wb_full_flushes counts the flushes that did), nor does one
   into the root region the P's last root store went to, until a region is
   added or removed; a store it cannot prove valid (into another root
   region, or a bad one) takes the full flush, which reports what is
   wrong. */
static void test_check_mode_flush_general_regs(void)
{
    enum { N = 1000 };
    errlog log;
    wbgc_heap *h = open_heap(&log, -1, WBGC_CHECK, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    static void *root[4];
    REQUIRE(wbgc_add_roots(h, root, sizeof root) == 0);
    void **volatile field = wbgc_alloc(p, 8 * sizeof(void *));
    void *volatile obj = wbgc_alloc(p, 48);
    void *local[4] = {NULL, NULL, NULL, NULL};
    REQUIRE(field && obj);
    uint64_t flushes0 = p->wb_flushes, full0 = p->wb_full_flushes;
    for (int i = 0; i < N; i++) {
        wbgc_write(p, &field[i & 7], obj);                      /* a live object, heap slot */
        wbgc_write(p, &field[(i + 1) & 7], NULL);               /* NULL */
        wbgc_write(p, &local[i & 3], obj);                      /* own stack */
        wbgc_write(p, &field[(i + 2) & 7], (void *)(uintptr_t)0x1234);  /* not a pointer */
    }
    wbgc_write2(p, &field[0], obj, &field[1], obj);
    void *const slots[2] = {&field[2], &field[3]}, *const vals[2] = {obj, NULL};
    wbgc_write_n(p, slots, vals, 2);
    void *pair[2] = {obj, obj};
    wbgc_memmove(p, (void *)&field[4], pair, sizeof pair);
    uint64_t flushes = p->wb_flushes - flushes0, full = p->wb_full_flushes - full0;
    CHECKF(flushes == 4 * N + 6, "%llu flushes for %d barriered stores", (unsigned long long)flushes,
           4 * N + 6);
    CHECKF(full == 0 || !TEST_FAST_FLUSH,
           "%llu of %llu valid stores saved the vector state (took the full flush)",
           (unsigned long long)full, (unsigned long long)flushes);
    CHECKF(errlog_count(&log) == 0, "valid stores reported: \"%s\"", errlog_msg(&log, 0));
    CHECK(field[0] == obj && field[1] == obj && field[2] == obj && field[3] == NULL &&
          field[4] == obj && field[5] == obj && local[0] == obj);
    /* a registered root region: the full flush (under the roots' lock)
       finds it, then the P remembers it until a region is added or removed */
    static void *root2[2];
    uint64_t want[4] = {1, 0, 1, 0};
    for (int step = 0; step < 4; step++) {
        if (step == 2) REQUIRE(wbgc_add_roots(h, root2, sizeof root2) == 0);  /* forgets */
        uint64_t rf0 = p->wb_full_flushes;
        for (int i = 0; i < 10; i++) wbgc_write(p, &root[i & 3], obj);
        uint64_t rf = p->wb_full_flushes - rf0;
        CHECKF(rf == (TEST_FAST_FLUSH ? want[step] : 10),
               "10 stores into a root region (step %d): %llu full flushes, want %llu", step,
               (unsigned long long)rf, (unsigned long long)(TEST_FAST_FLUSH ? want[step] : 10));
    }
    CHECKF(errlog_count(&log) == 0, "a store into a root region reported: \"%s\"", errlog_msg(&log, 0));
    /* a region removed is no place for a GC pointer any more: reported */
    for (int i = 0; i < 4; i++) wbgc_write(p, &root[i], NULL);
    wbgc_remove_roots(h, root);
    wbgc_write(p, &root[1], obj);
    CHECKF(errlog_count(&log) == 1 && errlog_has_ptr(&log, 0, &root[1]),
           "a GC pointer stored into a root region after wbgc_remove_roots: %d reports: \"%s\"",
           errlog_count(&log), errlog_msg(&log, 0));
    root[1] = NULL;
    /* a GC pointer into malloc memory: reported */
    void **bad = malloc(sizeof *bad);
    REQUIRE(bad);
    int e0 = errlog_count(&log);
    wbgc_write(p, bad, obj);
    CHECKF(errlog_count(&log) == e0 + 1 && errlog_has_ptr(&log, e0, bad),
           "a GC pointer stored into malloc memory: %d reports: \"%s\"", errlog_count(&log) - e0,
           errlog_msg(&log, e0));
    free(bad);
    note("%llu valid barriered stores in check mode, %llu through the vector-saving flush",
         (unsigned long long)flushes, (unsigned long long)full);
    wbgc_remove_roots(h, root2);
    CLOSE_HEAP_ERRS_OK(h, p, &log);
}

#if WBGC__HAVE_AMD64
/* tramp_regs (asm below) loads a known pattern into every general-purpose
   register but rsp, the flags and xmm/ymm0-15, builds the frame a barrier's
   cold path builds (red zone stepped over, val, slot, p, unwind PC), calls
   the trampoline, and writes every register as it came back to out:
   out[0..14] rax rbx rcx rdx rsi rdi rbp r8..r15, out[15] the flags, out[32..]
   the sixteen 32-byte vector registers (the low 16 bytes each without AVX).
   out[31] on entry: nonzero to use ymm (AVX). vec: 512 bytes of pattern. */
void tramp_regs(wbgc_p *p, void *slot, void *val, uint64_t *out, const void *vec);
__asm__(
    ".text\n"
    ".globl tramp_regs\n"
    ".type tramp_regs, @function\n"
    "tramp_regs:\n\t"
    "pushq %rbx\n\tpushq %rbp\n\tpushq %r12\n\tpushq %r13\n\tpushq %r14\n\tpushq %r15\n\t"
    "pushq %rcx\n\t"                         /* out */
    "leaq -128(%rsp), %rsp\n\t"
    "pushq %rdx\n\tpushq %rsi\n\tpushq %rdi\n\tpushq $0\n\t"
    "cmpq $0, 248(%rcx)\n\t"
    "je 1f\n\t"
    "vmovdqu 0(%r8), %ymm0\n\tvmovdqu 32(%r8), %ymm1\n\tvmovdqu 64(%r8), %ymm2\n\t"
    "vmovdqu 96(%r8), %ymm3\n\tvmovdqu 128(%r8), %ymm4\n\tvmovdqu 160(%r8), %ymm5\n\t"
    "vmovdqu 192(%r8), %ymm6\n\tvmovdqu 224(%r8), %ymm7\n\tvmovdqu 256(%r8), %ymm8\n\t"
    "vmovdqu 288(%r8), %ymm9\n\tvmovdqu 320(%r8), %ymm10\n\tvmovdqu 352(%r8), %ymm11\n\t"
    "vmovdqu 384(%r8), %ymm12\n\tvmovdqu 416(%r8), %ymm13\n\tvmovdqu 448(%r8), %ymm14\n\t"
    "vmovdqu 480(%r8), %ymm15\n\t"
    "jmp 2f\n"
    "1:\n\t"
    "movdqu 0(%r8), %xmm0\n\tmovdqu 32(%r8), %xmm1\n\tmovdqu 64(%r8), %xmm2\n\t"
    "movdqu 96(%r8), %xmm3\n\tmovdqu 128(%r8), %xmm4\n\tmovdqu 160(%r8), %xmm5\n\t"
    "movdqu 192(%r8), %xmm6\n\tmovdqu 224(%r8), %xmm7\n\tmovdqu 256(%r8), %xmm8\n\t"
    "movdqu 288(%r8), %xmm9\n\tmovdqu 320(%r8), %xmm10\n\tmovdqu 352(%r8), %xmm11\n\t"
    "movdqu 384(%r8), %xmm12\n\tmovdqu 416(%r8), %xmm13\n\tmovdqu 448(%r8), %xmm14\n\t"
    "movdqu 480(%r8), %xmm15\n"
    "2:\n\t"
    "movabsq $0x1111111111111101, %rax\n\t"
    "movabsq $0x2222222222222202, %rbx\n\t"
    "movabsq $0x3333333333333303, %rcx\n\t"
    "movabsq $0x4444444444444404, %rdx\n\t"
    "movabsq $0x5555555555555505, %rsi\n\t"
    "movabsq $0x6666666666666606, %rdi\n\t"
    "movabsq $0x7777777777777707, %rbp\n\t"
    "movabsq $0x8888888888888808, %r8\n\t"
    "movabsq $0x9999999999999909, %r9\n\t"
    "movabsq $0xaaaaaaaaaaaaaa0a, %r10\n\t"
    "movabsq $0xbbbbbbbbbbbbbb0b, %r11\n\t"
    "movabsq $0xcccccccccccccc0c, %r12\n\t"
    "movabsq $0xdddddddddddddd0d, %r13\n\t"
    "movabsq $0xeeeeeeeeeeeeee0e, %r14\n\t"
    "movabsq $0xffffffffffffff0f, %r15\n\t"
    "pushq $0x8d5\n\t"                       /* CF PF AF ZF SF OF */
    "popfq\n\t"
    "call wbgc__amd64_flush_tramp\n\t"
    "pushfq\n\t"
    "pushq %rax\n\t"
    "movq 176(%rsp), %rax\n\t"               /* out: past rax, flags, the frame */
    "movq %rbx, 8(%rax)\n\tmovq %rcx, 16(%rax)\n\tmovq %rdx, 24(%rax)\n\t"
    "movq %rsi, 32(%rax)\n\tmovq %rdi, 40(%rax)\n\tmovq %rbp, 48(%rax)\n\t"
    "movq %r8, 56(%rax)\n\tmovq %r9, 64(%rax)\n\tmovq %r10, 72(%rax)\n\t"
    "movq %r11, 80(%rax)\n\tmovq %r12, 88(%rax)\n\tmovq %r13, 96(%rax)\n\t"
    "movq %r14, 104(%rax)\n\tmovq %r15, 112(%rax)\n\t"
    "popq %rbx\n\tmovq %rbx, 0(%rax)\n\t"
    "popq %rbx\n\tmovq %rbx, 120(%rax)\n\t"
    "cmpq $0, 248(%rax)\n\t"
    "je 3f\n\t"
    "vmovdqu %ymm0, 256(%rax)\n\tvmovdqu %ymm1, 288(%rax)\n\tvmovdqu %ymm2, 320(%rax)\n\t"
    "vmovdqu %ymm3, 352(%rax)\n\tvmovdqu %ymm4, 384(%rax)\n\tvmovdqu %ymm5, 416(%rax)\n\t"
    "vmovdqu %ymm6, 448(%rax)\n\tvmovdqu %ymm7, 480(%rax)\n\tvmovdqu %ymm8, 512(%rax)\n\t"
    "vmovdqu %ymm9, 544(%rax)\n\tvmovdqu %ymm10, 576(%rax)\n\tvmovdqu %ymm11, 608(%rax)\n\t"
    "vmovdqu %ymm12, 640(%rax)\n\tvmovdqu %ymm13, 672(%rax)\n\tvmovdqu %ymm14, 704(%rax)\n\t"
    "vmovdqu %ymm15, 736(%rax)\n\t"
    "vzeroupper\n\t"
    "jmp 4f\n"
    "3:\n\t"
    "movdqu %xmm0, 256(%rax)\n\tmovdqu %xmm1, 288(%rax)\n\tmovdqu %xmm2, 320(%rax)\n\t"
    "movdqu %xmm3, 352(%rax)\n\tmovdqu %xmm4, 384(%rax)\n\tmovdqu %xmm5, 416(%rax)\n\t"
    "movdqu %xmm6, 448(%rax)\n\tmovdqu %xmm7, 480(%rax)\n\tmovdqu %xmm8, 512(%rax)\n\t"
    "movdqu %xmm9, 544(%rax)\n\tmovdqu %xmm10, 576(%rax)\n\tmovdqu %xmm11, 608(%rax)\n\t"
    "movdqu %xmm12, 640(%rax)\n\tmovdqu %xmm13, 672(%rax)\n\tmovdqu %xmm14, 704(%rax)\n\t"
    "movdqu %xmm15, 736(%rax)\n"
    "4:\n\t"
    "leaq 160(%rsp), %rsp\n\t"               /* the frame: unwind PC, p, slot, val, red zone */
    "popq %rcx\n\t"
    "popq %r15\n\tpopq %r14\n\tpopq %r13\n\tpopq %r12\n\tpopq %rbp\n\tpopq %rbx\n\t"
    "ret\n\t"
    ".size tramp_regs, .-tramp_regs\n");

/* The trampoline runs a real flush (a full buffer, in check mode: the store
   validated too) and gives back every register, the flags and the vector
   state as they were. The store is a misuse on purpose: a GC pointer into
   malloc memory, so the flush formats and records a report, and glibc's
   string functions clobber the vector registers on the way. */
/* tramp_check: one flush through the trampoline from inside tramp_regs,
   every register checked after it; want_full: whether it must have taken
   the full flush (vector state saved) rather than the general-register one. */
static void tramp_check(wbgc_heap *h, wbgc_p *p, errlog *log, int avx, void **slotp, void *val,
                        int want_full, int want_report, const char *what)
{
    static const uint64_t want[15] = {
        0x1111111111111101u, 0x2222222222222202u, 0x3333333333333303u, 0x4444444444444404u,
        0x5555555555555505u, 0x6666666666666606u, 0x7777777777777707u, 0x8888888888888808u,
        0x9999999999999909u, 0xaaaaaaaaaaaaaa0au, 0xbbbbbbbbbbbbbb0bu, 0xcccccccccccccc0cu,
        0xdddddddddddddd0du, 0xeeeeeeeeeeeeee0eu, 0xffffffffffffff0fu};
    static const char *const names[15] = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8",
                                          "r9", "r10", "r11", "r12", "r13", "r14", "r15"};
    static uint64_t out[96];
    unsigned char vec[512];
    for (int i = 0; i < 512; i++) vec[i] = (unsigned char)(i * 7 + 3);
    memset(out, 0, sizeof out);
    out[31] = (uint64_t)avx;
    /* One entry appended, the buffer full: as the cold path leaves it. */
    wbgc__pfast *f = (wbgc__pfast *)(void *)p;
    f->wb_next = f->wb_end;
    f->wb_end[-2] = val;
    f->wb_end[-1] = *slotp;
    uint64_t flushes0 = get_stats(h).wb_flushes, full0 = p->wb_full_flushes;
    int e0 = errlog_count(log);
    tramp_regs(p, slotp, val, out, vec);
    CHECKF(errlog_count(log) == e0 + want_report, "%s: %d reports, want %d", what,
           errlog_count(log) - e0, want_report);
    CHECKF(f->wb_next == p->wbbuf, "%s: the flush did not run (buffer not emptied)", what);
    CHECKF(get_stats(h).wb_flushes == flushes0 + 1, "%s: wb_flushes did not count it", what);
    if (!WBGC__AMD64_FAST_FLUSH) want_full = 1;  /* sanitizer builds: always the full one */
    CHECKF(p->wb_full_flushes - full0 == (uint64_t)want_full, "%s: %s flush expected", what,
           want_full ? "the full (vector-saving)" : "the general-register");
    for (int r = 0; r < 15; r++)
        CHECKF(out[r] == want[r], "%s: %s: %#llx after the trampoline, %#llx before", what,
               names[r], (unsigned long long)out[r], (unsigned long long)want[r]);
    CHECKF((out[15] & 0xcd5) == 0x8d5, "%s: flags %#llx after the trampoline, want CF PF AF ZF "
           "SF OF set and DF clear", what, (unsigned long long)out[15]);
    size_t width = avx ? 32 : 16;
    for (int v = 0; v < 16; v++)
        CHECKF(memcmp((unsigned char *)out + 256 + 32 * v, vec + 32 * v, width) == 0,
               "%s: %cmm%d changed across the trampoline", what, avx ? 'y' : 'x', v);
}

static void test_amd64_trampoline_preserves_registers(void)
{
    int avx = 0;
    void **slotp = (void **)calloc(1, sizeof(void *));
    REQUIRE(slotp);
    for (int mode = 0; mode < 2; mode++) {
        errlog log;
        wbgc_heap *h = open_heap(&log, -1, mode ? 0 : WBGC_CHECK, 0, 0);
        REQUIRE(h);
        /* the first heap sized the save area from CPUID */
        avx = __builtin_cpu_supports("avx") && wbgc__amd64_xsave_size > 0;
        wbgc_p *p = wbgc_attach(h);
        REQUIRE(p);
        void *val = wbgc_alloc(p, 32);
        if (mode == 0) {
            /* check mode: a store the general-register flush cannot prove
               valid takes the full flush, which reports the store into
               malloc memory; a valid one (into a heap object) does not */
            void **field = wbgc_alloc(p, 4 * sizeof(void *));
            REQUIRE(field);
            for (int round = 0; round < 3; round++) {
                tramp_check(h, p, &log, avx, slotp, val, 1, 1, "check mode, a bad store");
                tramp_check(h, p, &log, avx, &field[round], val, 0, 0, "check mode, a valid store");
            }
        } else {
            /* marking off: the general-register flush only resets */
            tramp_check(h, p, &log, avx, slotp, val, 0, 0, "marking off");
            wbgc__gc_start(p, 1, "test");
            REQUIRE(WBGC__LOAD(h->phase) == WBGC__PHASE_MARK);
            /* marking on, before p has mark work buffers: the full flush */
            REQUIRE(!p->gcw.w1);
            tramp_check(h, p, &log, avx, slotp, val, 1, 0, "marking on, first flush");
            /* then, with room in them, the general-register flush shades */
            for (int round = 0; round < 3; round++) {
                void *fresh = wbgc_alloc(p, 32);  /* allocated black */
                tramp_check(h, p, &log, avx, slotp, round ? val : fresh, 0, 0, "marking on");
            }
            wbgc_collect(p);
        }
        CLOSE_HEAP_ERRS_OK(h, p, &log);
    }
    note("general registers, flags and %s0-15 preserved through both flushes; vector state "
         "saved with %s (%u bytes)", avx ? "ymm" : "xmm",
         !wbgc__amd64_xsave_size ? "fxsave" : wbgc__amd64_xsavec ? "xsavec" : "xsave",
         wbgc__amd64_xsave_size ? wbgc__amd64_xsave_size : 512);
    free(slotp);
}
#endif

/* =========================================================================
   18. API edges while a cycle marks: each was a way to lose an object
   ========================================================================= */

/* Each test below drives one cycle by hand (mark_workers = 0, gc_percent
   -1: nothing marks unless asked): mark start, this P's stack scan (so the
   stack is black), then the API call under test, then the end of that
   cycle and its sweep. The object under test, X, is kept hidden (xor-ed)
   by the test, standing for a pointer the program holds on its black
   stack: the collector can find it only through what the call did. It must
   survive the cycle, contents intact. */
#define EDGE_MASK ((uintptr_t)0x3c3c3c3c3c3c3c3cull)
#define EDGE_SZ 64

static NOINLINE uintptr_t edge_make(wbgc_p *p, uint64_t seed)
{
    void *x = wbgc_alloc_noscan(p, EDGE_SZ);
    if (!x) return 0;
    fill_pat(x, EDGE_SZ, seed);
    return (uintptr_t)x ^ EDGE_MASK;
}

static NOINLINE void edge_store(wbgc_p *p, void *slot, uintptr_t hidden)
{
    wbgc_write(p, slot, (void *)(hidden ^ EDGE_MASK));
}

static NOINLINE void edge_plain_store(void **slot, uintptr_t hidden)
{
    *slot = (void *)(hidden ^ EDGE_MASK);
}

/* edge_alive: X is still an allocated object holding its pattern. */
static NOINLINE int edge_alive(wbgc_heap *h, uintptr_t hidden, uint64_t seed)
{
    uintptr_t v = hidden ^ EDGE_MASK;
    wbgc__span *s = wbgc__span_of(h, v);
    if (!s) return 0;
    uint32_t i = (uint32_t)(((uint64_t)(v - s->base) * s->divmagic) >> 32);
    if (!((WBGC__LOAD(s->allocbits[i >> 6]) >> (i & 63)) & 1)) return 0;
    return check_pat((const void *)v, EDGE_SZ, seed) == 0;
}

/* edge_start: mark start, then this P's stack scan at its safepoint. */
static int edge_start(wbgc_heap *h, wbgc_p *p)
{
    scrub_stack();
    wbgc__gc_start(p, 1, "test");
    if (WBGC__LOAD(h->phase) != WBGC__PHASE_MARK) return 0;
    wbgc_safepoint(p);
    return p->stack_black;
}

/* edge_finish: the cycle under test to its end, and its sweep. */
static void edge_finish(wbgc_heap *h, wbgc_p *p)
{
    wbgc__help_until(p, __atomic_load_n(&h->cycles_started, __ATOMIC_ACQUIRE));
    wbgc__finish_sweep(h, p, WBGC__SWEEP_WHOLE);
}

/* wbgc_memmove whose size or destination is not whole words: every word it
   overwrites, whole or in part, loses its old pointer, which must be
   shaded (the deletion half) however the bytes line up. X sits in word 1
   of a scanned object A reachable from a root; the move overwrites some or
   all of that word's bytes from a buffer of zeros or of pattern bytes. */
static void test_memmove_partial_words(void)
{
    static const struct { int dst, n, src; } cases[] = {
        {8, 9, 0}, {8, 12, 0}, {8, 15, 0}, {8, 4, 0}, {8, 1, 0}, {12, 8, 0}, {11, 6, 3},
        {4, 9, 0}, {1, 10, 5}, {7, 2, 7}, {8, 9, 3}, {8, 8, 1}, {0, 24, 4}, {15, 1, 0},
    };
    errlog log;
    wbgc_heap *h = open_heap(&log, -1, 0, 0, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    static void *root[1];
    REQUIRE(wbgc_add_roots(h, root, sizeof root) == 0);
    static unsigned char srcbuf[64] __attribute__((aligned(16)));
    int lost = 0;
    for (size_t c = 0; c < ARRAY_LEN(cases); c++) {
        uint64_t seed = 5100 + c;
        unsigned char *a = wbgc_alloc(p, 64);
        REQUIRE(a);
        wbgc_write(p, &root[0], a);
        uintptr_t hidden = edge_make(p, seed);
        REQUIRE(hidden);
        edge_store(p, a + 8, hidden);
        for (int i = 0; i < 64; i++) srcbuf[i] = (c & 1) ? (unsigned char)(0x11 * (i + 1)) : 0;
        unsigned char want[64];
        memcpy(want, a, 64);
        memmove(want + cases[c].dst, srcbuf + cases[c].src, (size_t)cases[c].n);
        REQUIRE(edge_start(h, p));
        wbgc_memmove(p, a + cases[c].dst, srcbuf + cases[c].src, (size_t)cases[c].n);
        CHECKF(memcmp(a, want, 64) == 0, "case %zu: wbgc_memmove(A+%d, src+%d, %d) moved the "
               "wrong bytes", c, cases[c].dst, cases[c].src, cases[c].n);
        edge_finish(h, p);
        if (!edge_alive(h, hidden, seed)) {
            lost++;
            FAILF("case %zu: wbgc_memmove(A+%d, src+%d, n=%d) overwrote the word holding X=%p "
                  "without shading it: X was freed", c, cases[c].dst, cases[c].src, cases[c].n,
                  (void *)(hidden ^ EDGE_MASK));
        }
        wbgc_write(p, &root[0], NULL);
    }
    note("%zu partial-word moves over a pointer while marking; %d lost", ARRAY_LEN(cases), lost);
    wbgc_remove_roots(h, root);
    CLOSE_HEAP(h, p, &log);
}

/* wbgc_memmove agrees with memmove, byte for byte, for every offset pair
   and size up to three words, overlapping both ways, with the barrier off
   and on. */
static void test_memmove_bytes_exact(void)
{
    errlog log;
    wbgc_heap *h = open_heap(&log, -1, 0, 0, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    unsigned char *obj = wbgc_alloc_noscan(p, 128);
    REQUIRE(obj);
    unsigned char want[128];
    long bad = 0, runs = 0;
    for (int marking = 0; marking < 2; marking++) {
        if (marking) {
            wbgc__gc_start(p, 1, "test");
            REQUIRE(p->fast.wb_on);
        }
        for (int d = 0; d < 40; d++)
            for (int s = 0; s < 40; s++)
                for (int n = 0; n <= 25; n++) {
                    for (int i = 0; i < 128; i++) obj[i] = want[i] = (unsigned char)(i * 7 + 1);
                    memmove(want + 32 + d, want + 32 + s, (size_t)n);
                    wbgc_memmove(p, obj + 32 + d, obj + 32 + s, (size_t)n);
                    runs++;
                    if (memcmp(obj, want, 128) != 0 && bad++ < 5)
                        FAILF("wbgc_memmove(+%d, +%d, %d)%s differs from memmove", d, s, n,
                              marking ? " while marking" : "");
                }
    }
    wbgc_collect(p);
    note("%ld moves compared, %ld differed", runs, bad);
    CLOSE_HEAP(h, p, &log);
}

/* wbgc_remove_roots while a cycle marks, before the root regions were
   scanned: the region's pointers go without a barrier, and X, loaded from
   it onto the black stack, must not be freed. */
static void test_remove_roots_while_marking(void)
{
    errlog log;
    wbgc_heap *h = open_heap(&log, -1, 0, 0, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    for (int round = 0; round < 3; round++) {
        uint64_t seed = 5200 + (uint64_t)round;
        void **region = calloc(8, sizeof(void *));
        REQUIRE(region);
        REQUIRE(wbgc_add_roots(h, region, 8 * sizeof(void *)) == 0);
        uintptr_t hidden = edge_make(p, seed);
        REQUIRE(hidden);
        edge_store(p, &region[3], hidden);
        REQUIRE(edge_start(h, p));
        wbgc_remove_roots(h, region);   /* X now only on the (black) stack */
        memset(region, 0, 8 * sizeof(void *));
        edge_finish(h, p);
        CHECKF(edge_alive(h, hidden, seed), "round %d: X=%p, loaded from a root region that was "
               "then removed while marking, was freed", round, (void *)(hidden ^ EDGE_MASK));
        free(region);
    }
    CLOSE_HEAP(h, p, &log);
}

/* wbgc_add_roots while a cycle marks, after the root regions were claimed:
   malloc memory filled with plain stores (rule 4 allows it) and then
   registered must keep what it holds, though this P's stack, still grey,
   lets go of X before its scan. */
static NOINLINE int edge_register(wbgc_heap *h, void **region, uintptr_t hidden)
{
    edge_plain_store(&region[5], hidden);
    return wbgc_add_roots(h, region, 8 * sizeof(void *));
}

static void test_add_roots_while_marking(void)
{
    errlog log;
    wbgc_heap *h = open_heap(&log, -1, 0, 0, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    for (int round = 0; round < 3; round++) {
        uint64_t seed = 5300 + (uint64_t)round;
        void **region = calloc(8, sizeof(void *));
        REQUIRE(region);
        uintptr_t hidden = edge_make(p, seed);
        REQUIRE(hidden);
        scrub_stack();
        wbgc__gc_start(p, 1, "test");
        REQUIRE(WBGC__LOAD(h->phase) == WBGC__PHASE_MARK && !p->stack_black);
        wbgc__mark_some(h, &p->gcw, 1, 0, NULL);   /* the root regions: claimed and scanned */
        REQUIRE(__atomic_load_n(&h->roots_state, __ATOMIC_ACQUIRE) == 2);
        REQUIRE(edge_register(h, region, hidden) == 0);
        scrub_stack();
        wbgc_safepoint(p);                         /* the stack scan: X is not there */
        REQUIRE(p->stack_black);
        edge_finish(h, p);
        CHECKF(edge_alive(h, hidden, seed), "round %d: X=%p, in a root region registered while "
               "marking, was freed", round, (void *)(hidden ^ EDGE_MASK));
        wbgc_collect(p);                            /* and a whole cycle after */
        CHECKF(edge_alive(h, hidden, seed), "round %d: X=%p freed by the next cycle", round,
               (void *)(hidden ^ EDGE_MASK));
        wbgc_remove_roots(h, region);
        free(region);
    }
    CLOSE_HEAP(h, p, &log);
}

/* Large allocations pay assist debt like small ones. An allocator of
   large objects only, each dropped at once: with no mark worker the
   cycles it starts must still end (its assists drive them), and in every
   mode the heap must stay near its goal. The same run with small objects
   gives the bound to compare with. */
static NOINLINE void edge_alloc_run(wbgc_p *p, wbgc_heap *h, size_t size, size_t total,
                                    uint64_t *peak_alloc, uint64_t *peak_goal)
{
    *peak_alloc = *peak_goal = 0;
    for (size_t done = 0, i = 0; done < total; done += size, i++) {
        unsigned char *q = wbgc_alloc_noscan(p, size);
        if (!q) {
            FAILF("allocation of %zu bytes failed", size);
            return;
        }
        q[0] = q[size - 1] = 1;
        if (i % (size >= 32 * KB ? 8 : 512) == 0) {
            wbgc_stats st = get_stats(h);
            if (st.heap_alloc > *peak_alloc) *peak_alloc = st.heap_alloc;
            if (st.heap_goal > *peak_goal) *peak_goal = st.heap_goal;
        }
    }
}

static void test_large_alloc_assists(void)
{
    static const struct { int workers; const char *mode; } modes[] = {{0, "incremental"},
                                                                       {-1, "concurrent"}};
    const size_t total = scaled(512 * MB);
    for (size_t m = 0; m < ARRAY_LEN(modes); m++) {
        double ratio[2] = {0, 0};
        for (int large = 0; large < 2; large++) {
            errlog log;
            wbgc_heap *h = open_heap(&log, 100, 0, modes[m].workers, 0);
            REQUIRE(h);
            wbgc_p *p = wbgc_attach(h);
            REQUIRE(p);
            size_t size = large ? 64 * KB : 4 * KB;
            uint64_t c0 = cycles_of(h), peak, goal;
            edge_alloc_run(p, h, size, total, &peak, &goal);
            wbgc_stats st = get_stats(h);
            uint64_t cyc = st.cycles - c0;
            ratio[large] = goal ? (double)peak / (double)goal : 0;
            note("%s, %zu x %zu KiB dropped: %llu cycles, peak heap %.1f MiB against a goal of "
                 "%.1f MiB (%.2fx), heap_sys %.1f MiB", modes[m].mode, total / size, size / KB,
                 (unsigned long long)cyc, peak / (double)MB, goal / (double)MB, ratio[large],
                 st.heap_sys / (double)MB);
            CHECKF(cyc >= 10, "%s, %s objects: only %llu cycles completed while %zu MiB were "
                   "allocated against a %.1f MiB goal", modes[m].mode, large ? "large" : "small",
                   (unsigned long long)cyc, total / MB, goal / (double)MB);
            CHECKF(peak <= 2 * goal + 2 * MB, "%s, %s objects: heap peaked at %.1f MiB, goal %.1f MiB",
                   modes[m].mode, large ? "large" : "small", peak / (double)MB, goal / (double)MB);
            CHECKF(st.heap_sys <= 64 * MB, "%s, %s objects: heap_sys %.1f MiB", modes[m].mode,
                   large ? "large" : "small", st.heap_sys / (double)MB);
            CLOSE_HEAP(h, p, &log);
        }
        CHECKF(ratio[1] <= ratio[0] * 1.25 + 0.1, "%s: large objects overshoot the goal %.2fx, "
               "small ones %.2fx", modes[m].mode, ratio[1], ratio[0]);
    }
}

/* Check mode reports a P used from another thread at every entry point,
   the inline allocation, safepoint and barrier paths included, and the
   call does nothing else (allocation returns NULL). */
typedef struct other_p_arg {
    wbgc_p *p;
    void **slot;
    void *val;
    void *got;
} other_p_arg;

static void *use_other_p(void *argp)
{
    other_p_arg *a = argp;
    a->got = wbgc_alloc(a->p, 32);
    wbgc_alloc_noscan(a->p, 100 * KB);
    wbgc_safepoint(a->p);
    wbgc_write(a->p, a->slot, a->val);
    void *pair[2] = {a->val, a->val};
    wbgc_write2(a->p, a->slot, a->val, a->slot, a->val);
    wbgc_memmove(a->p, a->slot, pair, sizeof(void *));
    return NULL;
}

static void test_misuse_other_threads_p_check_mode(void)
{
    /* wbgc_write2 is two stores in check mode (one barrier entry each) */
    static const char *const calls[] = {"wbgc_alloc", "wbgc_alloc_noscan", "wbgc_safepoint",
                                        "wbgc_write", "wbgc_write", "wbgc_write", "wbgc_memmove"};
    errlog log;
    pthread_t t;
    wbgc_heap *h = open_heap(&log, -1, WBGC_CHECK, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    static void *root[1];
    REQUIRE(wbgc_add_roots(h, root, sizeof root) == 0);
    void *obj = wbgc_alloc(p, 48);
    REQUIRE(obj);
    other_p_arg a = {p, root, obj, (void *)1};
    int e0 = errlog_count(&log);
    REQUIRE(pthread_create(&t, NULL, use_other_p, &a) == 0);
    join_blocking(p, t);
    int n = errlog_count(&log) - e0;
    CHECKF(a.got == NULL, "wbgc_alloc with another thread's P returned %p", a.got);
    CHECKF(n == (int)ARRAY_LEN(calls), "%d misuse reports for %zu calls with another thread's P",
           n, ARRAY_LEN(calls));
    for (int i = 0; i < n && i < (int)ARRAY_LEN(calls); i++) {
        const char *m = errlog_msg(&log, e0 + i);
        CHECKF(ci_contains(m, "rule 1") && ci_contains(m, calls[i]) && errlog_has_ptr(&log, e0 + i, p),
               "report %d should name %s, the P %p and rule 1: \"%s\"", i, calls[i], (void *)p, m);
    }
    int e1 = misuse_then_still_works(p, &log);
    wbgc_write(p, &root[0], NULL);
    wbgc_remove_roots(h, root);
    misuse_close_quietly(h, p, &log, e1);
}


/* The verifier tests' heap (WBGC_VERIFY, incremental): a root region
   holding a 64-byte object a, whose word 3 holds X (kept hidden, as
   edge_make does). */
typedef struct vfix {
    wbgc_heap *h;
    wbgc_p    *p;
    void     **a;
    uintptr_t  hidden;
} vfix;

static void *g_vroot[1];

static int vfix_open(vfix *f, errlog *log)
{
    memset(f, 0, sizeof *f);
    f->h = open_heap(log, -1, WBGC_VERIFY, 0, 0);
    if (!f->h || !(f->p = wbgc_attach(f->h)) || wbgc_add_roots(f->h, g_vroot, sizeof g_vroot) != 0)
        return 0;
    if (!(f->a = wbgc_alloc(f->p, 64)) || !(f->hidden = edge_make(f->p, 5400))) return 0;
    wbgc_write(f->p, &g_vroot[0], f->a);
    edge_store(f->p, &f->a[3], f->hidden);
    return 1;
}

static void vfix_close(vfix *f, errlog *log)
{
    wbgc_write(f->p, &g_vroot[0], NULL);
    wbgc_remove_roots(f->h, g_vroot);
    CLOSE_HEAP_ERRS_OK(f->h, f->p, log);
}

/* unmark_by_hand clears the mark bit of the object at v: a reachable object
   the mark "missed". */
static void unmark_by_hand(wbgc_heap *h, uintptr_t v)
{
    wbgc__span *s = wbgc__span_of(h, v);
    uint32_t i = (uint32_t)(((uint64_t)(v - s->base) * s->divmagic) >> 32);
    __atomic_fetch_and(&s->markbits[i >> 6], ~((uint64_t)1 << (i & 63)), __ATOMIC_RELAXED);
}

/* WBGC_VERIFY catches a lost object, and names it and what points to it:
   a mark bit cleared by hand (a reachable object the mark "missed") after
   marking, before the final pause; a handler that returns gets the object
   kept (the verifier marks what it reached). Then a P whose stack scan is
   undone by hand is reported itself. */
static void test_verifier_reports_lost(void)
{
    errlog log;
    vfix f;
    REQUIRE(vfix_open(&f, &log));
    wbgc_heap *h = f.h;
    wbgc_p *p = f.p;
    void **a = f.a;
    uintptr_t hidden = f.hidden;
    wbgc_collect(p);
    CHECKF(errlog_count(&log) == 0, "the verifier reported a sound cycle: %s", errlog_msg(&log, 0));
    REQUIRE(edge_start(h, p));
    wbgc__mark_some(h, &p->gcw, UINT64_MAX, 0, NULL);   /* everything marked */
    uintptr_t y = hidden ^ EDGE_MASK;
    REQUIRE(is_marked(h, (void *)y) && is_marked(h, a));
    unmark_by_hand(h, y);
    int e0 = errlog_count(&log);
    edge_finish(h, p);
    CHECKF(errlog_count(&log) == e0 + 1, "%d reports for one lost object", errlog_count(&log) - e0);
    const char *m = errlog_msg(&log, e0);
    char want[64];
    snprintf(want, sizeof want, "object %#lx (64 bytes, marked) at offset 24", (unsigned long)(uintptr_t)a);
    CHECKF(ci_contains(m, "verifier") && errlog_has_ptr(&log, e0, (void *)y) && ci_contains(m, want),
           "the report should name the lost object %p and \"%s\": \"%s\"", (void *)y, want, m);
    CHECKF(edge_alive(h, hidden, 5400), "the object the verifier reported was freed after all");
    wbgc_stats st = get_stats(h);
    CHECK(st.verify_runs >= 2 && st.verify_lost == 1);
    /* a P whose stack the cycle did not scan */
    REQUIRE(edge_start(h, p));
    p->stack_black = 0;
    int e1 = errlog_count(&log);
    edge_finish(h, p);
    CHECKF(errlog_count(&log) == e1 + 1 && ci_contains(errlog_msg(&log, e1), "not scanned") &&
           errlog_has_ptr(&log, e1, p), "an unscanned stack: \"%s\"", errlog_msg(&log, e1));
    note("reported: %s", m);
    vfix_close(&f, &log);
}


/* WBGC_VERIFY catches an object that a barrier entry obliged the drain to
   shade and that stayed white: here the old value of a barriered store
   during marking (the deletion half's job), its mark bit cleared by hand
   after the drain, as a drain that skipped it would leave it. Nothing
   else holds it, so the re-mark from the roots cannot see it: only the
   check of the barrier's entries reports it. */
static void test_verifier_reports_unshaded_entry(void)
{
    errlog log;
    vfix f;
    REQUIRE(vfix_open(&f, &log));
    wbgc_heap *h = f.h;
    wbgc_p *p = f.p;
    void **a = f.a;
    uintptr_t hidden = f.hidden;
    REQUIRE(edge_start(h, p));
    wbgc__mark_some(h, &p->gcw, UINT64_MAX, 0, NULL);   /* everything marked */
    uintptr_t y = hidden ^ EDGE_MASK;
    wbgc_write(p, &a[3], NULL);                          /* entry: (NULL, y) */
    wbgc__flush_p(h, p);                                 /* drained: y owed */
    REQUIRE(is_marked(h, (void *)y));
    unmark_by_hand(h, y);
    int e0 = errlog_count(&log);
    edge_finish(h, p);
    CHECKF(errlog_count(&log) == e0 + 1, "%d reports for one unshaded entry", errlog_count(&log) - e0);
    const char *m = errlog_msg(&log, e0);
    CHECKF(ci_contains(m, "verifier") && ci_contains(m, "barrier entry") && errlog_has_ptr(&log, e0, (void *)y),
           "the report should name the object %p and the barrier entry: \"%s\"", (void *)y, m);
    /* a sound cycle with the same stores reports nothing */
    wbgc_write(p, &a[3], NULL);
    REQUIRE(edge_start(h, p));
    edge_store(p, &a[3], edge_make(p, 5400));
    wbgc_write(p, &a[3], NULL);
    int e1 = errlog_count(&log);
    edge_finish(h, p);
    CHECKF(errlog_count(&log) == e1, "a sound cycle reported: \"%s\"", errlog_msg(&log, e1));
    note("reported: %s", m);
    vfix_close(&f, &log);
}

/* Barriered stores in bulk, every one checked: Go's write-barrier loop (a
   binary tree reversed in place, two pointer stores per node) while another
   thread collects back to back and the reversing thread makes garbage, so
   that marking is on for most stores. After every reversal the whole tree is
   walked: each node's id, mirror id and children must be what the reversal
   made. WBGC_TREE_SECONDS sets the time (default 1); ./build.sh soak runs it
   long with the verifier. */
typedef struct rnode {
    struct rnode *l, *r;
    uint64_t id, mirror;   /* the node's number, and the same position counted right to left */
} rnode;

static double g_tree_secs = 1.0;

static rnode *rtree_make(wbgc_p *p, int depth, uint64_t id, uint64_t mirror)
{
    rnode *n = wbgc_alloc(p, sizeof *n);
    if (!n) return NULL;
    n->id = id;
    n->mirror = mirror;
    if (depth > 1) {
        wbgc_write(p, &n->l, rtree_make(p, depth - 1, 2 * id, 2 * mirror + 1));
        wbgc_write(p, &n->r, rtree_make(p, depth - 1, 2 * id + 1, 2 * mirror));
    }
    return n;
}

static uint64_t rtree_reverse(wbgc_p *p, rnode *n)
{
    if (!n) return 0;
    rnode *l = n->l;
    wbgc_write(p, &n->l, n->r);
    wbgc_write(p, &n->r, l);
    return 2 + rtree_reverse(p, n->l) + rtree_reverse(p, n->r);
}

/* rtree_check: the tree after `flips` reversals; returns the bad nodes. */
static long rtree_check(const rnode *n, int depth, uint64_t pos, int flipped)
{
    if (!n) return 1;
    long bad = (flipped ? n->mirror : n->id) != pos;
    if (depth > 1)
        bad += rtree_check(n->l, depth - 1, 2 * pos, flipped) +
               rtree_check(n->r, depth - 1, 2 * pos + 1, flipped);
    else
        bad += n->l != NULL || n->r != NULL;
    return bad;
}

static volatile int g_rtree_stop;
static void *rtree_collector(void *arg)
{
    wbgc_p *p = wbgc_attach(arg);
    if (!p) return NULL;
    while (!__atomic_load_n(&g_rtree_stop, __ATOMIC_RELAXED)) wbgc_collect(p);
    wbgc_detach(p);
    return NULL;
}

static void tree_run(unsigned flags, int mark_workers)
{
    enum { DEPTH = 16 };
    errlog log;
    uint64_t rng = 99;
    const char *e = getenv("WBGC_TREE_SECONDS");
    if (e && atof(e) > 0) g_tree_secs = atof(e);
    alarm(g_timeout + (unsigned)(g_tree_secs + 1));
    wbgc_heap *h = open_heap(&log, 100, flags, mark_workers, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    rnode *volatile root = rtree_make(p, DEPTH, 1, 1);
    REQUIRE(root);
    pthread_t t;
    g_rtree_stop = 0;
    REQUIRE(pthread_create(&t, NULL, rtree_collector, h) == 0);
    uint64_t c0 = cycles_of(h), t0 = now_ns(), stores = 0, rounds = 0;
    long bad = 0;
    while (now_ns() - t0 < (uint64_t)(g_tree_secs * 1e9) && !bad) {
        stores += rtree_reverse(p, root);
        rounds++;
        churn(p, 64 * KB, 200, &rng);
        bad = rtree_check(root, DEPTH, 1, (int)(rounds & 1));
        CHECKF(bad == 0, "after %llu reversals, %ld nodes are not what they should be",
               (unsigned long long)rounds, bad);
    }
    __atomic_store_n(&g_rtree_stop, 1, __ATOMIC_RELAXED);
    join_blocking(p, t);
    wbgc_stats st = get_stats(h);
    double secs = (now_ns() - t0) / 1e9;
    note("%llu reversals of a %d-node tree: %llu barriered stores in %.2f s (%.1f ns each, checks "
         "and garbage included), %llu cycles, %llu verified (%llu lost; %.3f ms a verification)",
         (unsigned long long)rounds, (1 << DEPTH) - 1, (unsigned long long)stores, secs,
         secs * 1e9 / (double)(stores ? stores : 1), (unsigned long long)(st.cycles - c0),
         (unsigned long long)st.verify_runs, (unsigned long long)st.verify_lost,
         st.verify_runs ? st.verify_ns / 1e6 / (double)st.verify_runs : 0.0);
    CHECK(st.cycles - c0 >= 2);
    root = NULL;
    CLOSE_HEAP(h, p, &log);
}

static void test_tree_reverse_concurrent(void) { tree_run(0, -1); }
static void test_tree_reverse_incremental(void) { tree_run(0, 0); }


/* The flush caches the last span it found. A value inside the heap's
   address range but in no span (a non-pointer, PITFALLS 7) between two
   values of one span must not leave the cache pointing at no span with
   the old bounds (the next value would be looked up through NULL). */
static void test_flush_value_in_no_span(void)
{
    errlog log;
    wbgc_heap *h = open_heap(&log, -1, 0, 0, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    static void *objs[2];
    REQUIRE(wbgc_add_roots(h, objs, sizeof objs) == 0);
    for (int i = 0; i < 2; i++) wbgc_write(p, &objs[i], wbgc_alloc(p, 32));
    uintptr_t nospan = WBGC__LOAD(h->hi) - 64;   /* the arena's untouched end */
    REQUIRE(wbgc__span_of(h, nospan) == NULL && wbgc__span_of(h, (uintptr_t)objs[1]));
    wbgc__gc_start(p, 1, "test");
    REQUIRE(WBGC__LOAD(h->phase) == WBGC__PHASE_MARK);
    void *olds[3] = {objs[0], (void *)nospan, objs[1]};
    for (int i = 0; i < 3; i++) {
        p->wbbuf[2 * i] = NULL;
        p->wbbuf[2 * i + 1] = olds[i];
    }
    p->fast.wb_next = p->wbbuf + 6;
    static void *slot;
    wbgc__wb_flush(p, &slot, NULL);
    CHECK(is_marked(h, objs[0]) && is_marked(h, objs[1]));
    wbgc_collect(p);
    for (int i = 0; i < 2; i++) wbgc_write(p, &objs[i], NULL);
    wbgc_remove_roots(h, objs);
    CLOSE_HEAP(h, p, &log);
}


/* Check mode and wbgc_memmove: the value a partly covered word's bytes make
   is data, not a pointer the program stored, so it is not validated as one
   (here it equals the address of a free object, which a real store of it
   would rightly report). */
static NOINLINE uintptr_t cm_free_object(wbgc_p *p)
{
    return (uintptr_t)wbgc_alloc(p, 64) ^ EDGE_MASK;   /* hidden: no stack word keeps it */
}

static void test_memmove_partial_check_mode(void)
{
    errlog log;
    wbgc_heap *h = open_heap(&log, -1, WBGC_CHECK, 0, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    static void *root[2];
    REQUIRE(wbgc_add_roots(h, root, sizeof root) == 0);
    void **a = wbgc_alloc(p, 64);
    REQUIRE(a);
    wbgc_write(p, &root[0], a);
    wbgc_write(p, &a[1], wbgc_alloc(p, 64));
    uintptr_t hf = cm_free_object(p);  /* dropped: free after the next cycle */
    scrub_stack();
    wbgc_collect(p);
    REQUIRE(!edge_alive(h, hf, 0) && wbgc__span_of(h, hf ^ EDGE_MASK));
    REQUIRE(((uintptr_t)a[1] >> 32) == ((hf ^ EDGE_MASK) >> 32));   /* high halves agree */
    wbgc__gc_start(p, 1, "test");
    uint32_t low = (uint32_t)(hf ^ EDGE_MASK);
    int e0 = errlog_count(&log);
    wbgc_memmove(p, &a[1], &low, 4);    /* a[1]'s bytes now make f */
    CHECK((uintptr_t)a[1] == (hf ^ EDGE_MASK));
    CHECKF(errlog_count(&log) == e0, "a partial-word move was reported as a store: \"%s\"",
           errlog_msg(&log, e0));
    wbgc_collect(p);
    wbgc_write(p, &a[1], NULL);
    wbgc_write(p, &root[0], NULL);
    wbgc_remove_roots(h, root);
    CLOSE_HEAP(h, p, &log);
}

/* WBGC_MODE picks the mode a program chose in code: stw (one pause per
   cycle), check (a GC pointer stored into unregistered malloc memory is
   reported), concurrent (two pauses per cycle); a bad value is reported
   and ignored. */
static void test_env_mode(void)
{
    static const char *const modes[] = {"stw", "check", "concurrent", "bogus"};
    for (int m = 0; m < 4; m++) {
        errlog log;
        setenv("WBGC_MODE", modes[m], 1);
        wbgc_heap *h = open_heap(&log, -1, m == 2 ? WBGC_STW : 0, -1, 0);
        unsetenv("WBGC_MODE");
        REQUIRE(h);
        wbgc_p *p = wbgc_attach(h);
        REQUIRE(p);
        uint64_t pauses = get_stats(h).pause_count;
        wbgc_collect(p);
        pauses = get_stats(h).pause_count - pauses;
        void **slot = malloc(sizeof *slot);
        REQUIRE(slot);
        *slot = NULL;
        void *obj = wbgc_alloc(p, 32);
        int e0 = errlog_count(&log);
        wbgc_write(p, slot, obj);
        int stored_reports = errlog_count(&log) - e0;
        free(slot);
        if (m == 0) CHECKF(pauses == 1, "WBGC_MODE=stw: %llu pauses for a cycle", (unsigned long long)pauses);
        if (m == 2) CHECKF(pauses >= 2, "WBGC_MODE=concurrent over WBGC_STW: %llu pause(s) for a cycle",
                           (unsigned long long)pauses);
        CHECKF(stored_reports == (m == 1), "WBGC_MODE=%s: %d report(s) for a GC pointer stored into "
               "malloc memory", modes[m], stored_reports);
        if (m == 3)
            CHECKF(errlog_count(&log) >= 1 && ci_contains(errlog_msg(&log, 0), "WBGC_MODE=bogus"),
                   "WBGC_MODE=bogus: %d reports", errlog_count(&log));
        CLOSE_HEAP_ERRS_OK(h, p, &log);
    }
}

/* wbgc_alloc(NULL, n) is reported as misuse (the default handler aborts),
   not a crash through a NULL pointer: run in a child, whose stderr and
   signal are read. */
static void test_alloc_null_p_reported(void)
{
    static const char *const fns[] = {"wbgc_alloc", "wbgc_alloc_noscan", "wbgc_alloc_typed",
                                      "wbgc_realloc", "wbgc_strdup", "wbgc_layout_new"};
    for (int f = 0; f < (int)ARRAY_LEN(fns); f++) {
        int fd[2];
        REQUIRE(pipe(fd) == 0);
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            dup2(fd[1], 2);
            close(fd[0]);
            signal(SIGABRT, SIG_DFL);   /* not the runner's handler */
            size_t off = 0;
            void *volatile r = f == 0 ? wbgc_alloc(NULL, 24)
                             : f == 1 ? wbgc_alloc_noscan(NULL, 24)
                             : f == 2 ? wbgc_alloc_typed(NULL, 24, NULL)
                             : f == 3 ? wbgc_realloc(NULL, NULL, 24)
                             : f == 4 ? (void *)wbgc_strdup(NULL, "x")
                             : (void *)wbgc_layout_new(NULL, 8, &off, 1);
            (void)r;
            _exit(0);
        }
        close(fd[1]);
        char buf[1024];
        size_t len = 0;
        ssize_t k;
        while (len < sizeof buf - 1 && (k = read(fd[0], buf + len, sizeof buf - 1 - len)) > 0)
            len += (size_t)k;
        buf[len] = 0;
        close(fd[0]);
        int status = 0;
        waitpid(pid, &status, 0);
        CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
               "%s(NULL, 24): the child ended with status %#x, not the misuse abort", fns[f], status);
        CHECKF(ci_contains(buf, "misuse") && ci_contains(buf, fns[f]) &&
                   ci_contains(buf, f == 5 ? "not a live wbgc heap" : "p=NULL"),
               "%s(NULL, 24) printed \"%s\"", fns[f], buf);
    }
}

/* =========================================================================
   Faults a real program meets
   ========================================================================= */

typedef struct spin_arg {
    wbgc_heap *h;
    int spin_ms;
    int attached, done;          /* atomic */
    unsigned long self_id;
} spin_arg;

/* spin_no_safepoint: attach, then spin spin_ms with no wbgc call at all
   (a tight loop in foreign code), then reach a safepoint and detach. */
static void *spin_no_safepoint(void *argp)
{
    spin_arg *a = argp;
    wbgc_p *p = wbgc_attach(a->h);
    a->self_id = (unsigned long)pthread_self();
    __atomic_store_n(&a->attached, 1, __ATOMIC_RELEASE);
    uint64_t end = now_ns() + (uint64_t)a->spin_ms * 1000000u;
    volatile uint64_t x = 0;
    while (now_ns() < end) x++;
    if (p) {
        wbgc_safepoint(p);
        wbgc_detach(p);
    }
    __atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* A thread that never reaches a safepoint holds up every stop of the
   world. After stall_report_ms (here 50) the collector says which P, with
   its thread, once per stop; the stop completes when the thread comes
   back. With stall_report_ms = 0 it says nothing. */
static void test_stall_reports_stuck_thread(void)
{
    for (int quiet = 0; quiet < 2; quiet++) {
        errlog log;
        wbgc_config cfg;
        errlog_init(&log);
        log.want_stalls = 1;
        wbgc_config_default(&cfg);
        cfg.flags = WBGC_STW | g_extra_flags;
        cfg.on_error = errlog_cb;
        cfg.user = &log;
        cfg.stall_report_ms = quiet ? 0 : 50;
        wbgc_heap *h = wbgc_heap_new(&cfg);
        REQUIRE(h);
        wbgc_p *p = wbgc_attach(h);
        REQUIRE(p);
        spin_arg a = {h, 400, 0, 0, 0};
        pthread_t t;
        REQUIRE(pthread_create(&t, NULL, spin_no_safepoint, &a) == 0);
        while (!__atomic_load_n(&a.attached, __ATOMIC_ACQUIRE)) sched_yield();
        uint64_t t0 = now_ns();
        wbgc_collect(p);   /* waits for the spinning thread */
        double ms = (double)(now_ns() - t0) / 1e6;
        CHECKF(__atomic_load_n(&a.done, __ATOMIC_ACQUIRE) || ms >= 300,
               "wbgc_collect returned after %.0f ms while a thread spun 400 ms", ms);
        join_blocking(p, t);
        int n = errlog_count(&log);
        if (quiet) {
            CHECKF(n == 0, "stall_report_ms = 0, yet %d report(s): %s", n, n ? errlog_msg(&log, 0) : "");
        } else {
            CHECKF(n == 1, "%d stall reports for one stop held up 400 ms (want exactly 1)", n);
            if (n >= 1) {
                const char *m = errlog_msg(&log, 0);
                char tid[32];
                snprintf(tid, sizeof tid, "%#lx", a.self_id);
                CHECKF(ci_contains(m, "wbgc: warning") && ci_contains(m, "safepoint") &&
                           ci_contains(m, tid),
                       "the report should be a warning naming the thread %s and safepoints: \"%s\"",
                       tid, m);
            }
        }
        CLOSE_HEAP_ERRS_OK(h, p, &log);
    }
}

typedef struct exit_arg {
    wbgc_heap *h;
    int how;                     /* 0 return, 1 pthread_exit, 2 pthread_exit in a blocking region */
    void **keep;                 /* a root slot the thread stores an object into */
} exit_arg;

/* exit_without_detach: attach, allocate (one object stored into a root
   slot, the rest garbage), then end the thread without wbgc_detach. */
static void *exit_without_detach(void *argp)
{
    exit_arg *a = argp;
    wbgc_p *p = wbgc_attach(a->h);
    if (!p) return NULL;
    for (int i = 0; i < 2000; i++) {
        void **o = wbgc_alloc(p, 64);
        if (!o) break;
        if (i == 1000) {
            o[0] = (void *)(uintptr_t)0x5EEDu;
            wbgc_write(p, a->keep, o);
        }
    }
    if (a->how == 2) wbgc_blocking_begin(p);
    if (a->how >= 1) pthread_exit(NULL);
    return NULL;
}

/* A thread that ends (returns or pthread_exit, also inside a blocking
   region) without wbgc_detach is detached for it, its buffer and work
   handed over: the other threads keep allocating and collecting (with it
   still attached every stop would wait forever), objects it stored stay,
   a new thread (which may reuse its id) attaches, and the heap frees. In
   check mode the exit is reported, naming the P and the thread. */
static void test_thread_exit_detaches(void)
{
    for (int check = 0; check < 2; check++) {
        errlog log;
        wbgc_heap *h = open_heap(&log, 5, check ? WBGC_CHECK : 0, -1, 0);
        REQUIRE(h);
        wbgc_p *p = wbgc_attach(h);
        REQUIRE(p);
        static void *keep[24];
        memset(keep, 0, sizeof keep);
        REQUIRE(wbgc_add_roots(h, keep, sizeof keep) == 0);
        uint64_t c0 = cycles_of(h);
        for (int i = 0; i < 24; i++) {
            exit_arg a = {h, i % 3, &keep[i]};
            pthread_t t;
            REQUIRE(pthread_create(&t, NULL, exit_without_detach, &a) == 0);
            join_blocking(p, t);
            for (int j = 0; j < 200; j++) (void)wbgc_alloc(p, 256);   /* cycles run meanwhile */
            wbgc_collect(p);
        }
        CHECKF(cycles_of(h) >= c0 + 24, "only %llu cycles after 24 collections",
               (unsigned long long)(cycles_of(h) - c0));
        for (int i = 0; i < 24; i++)
            CHECKF(keep[i] && ((void **)keep[i])[0] == (void *)(uintptr_t)0x5EEDu,
                   "the object thread %d stored before exiting is gone (%p)", i, keep[i]);
        int n = errlog_count(&log);
        if (check) {
            CHECKF(n == 24, "check mode: %d reports for 24 threads that exited attached", n);
            if (n) {
                const char *m = errlog_msg(&log, 0);
                CHECKF(ci_contains(m, "exited") && ci_contains(m, "wbgc_detach") &&
                           ci_contains(m, "thread 0x"),
                       "the report should say the thread exited without wbgc_detach: \"%s\"", m);
            }
        } else {
            CHECKF(n == 0, "%d reports outside check mode: %s", n, n ? errlog_msg(&log, 0) : "");
        }
        memset(keep, 0, sizeof keep);
        wbgc_remove_roots(h, keep);
        CLOSE_HEAP_ERRS_OK(h, p, &log);
    }
}

/* Rule 5: no wbgc call is async-signal-safe. Check mode finds the two ways
   a program breaks it: a signal handler that calls wbgc on the P of the
   thread it interrupted while that thread is inside a wbgc call, and a
   (sig)longjmp out of a wbgc call, found at the P's next call. A user gets
   control inside a wbgc call through on_error: here the report of an
   allocation larger than any heap can be, from inside wbgc_alloc. */
#define RX_HUGE ((size_t)1 << 60)

typedef struct reentry_ctx {
    errlog log;
    int arm;            /* at the next "larger than any heap" report: 1 send
                           SIGUSR1 to this thread, 2 siglongjmp to jb */
    sigjmp_buf jb;
} reentry_ctx;

static wbgc_p *volatile g_rx_p;
static void **volatile g_rx_slot;
static void *volatile g_rx_val;
static void *volatile g_rx_got;
static volatile int g_rx_handled;

static void reentry_cb(const char *message, void *user)
{
    reentry_ctx *c = user;
    errlog_cb(message, &c->log);
    if (!c->arm || !strstr(message, "larger than any heap")) return;
    int how = c->arm;
    c->arm = 0;
    if (how == 1) pthread_kill(pthread_self(), SIGUSR1);   /* delivered before it returns */
    else siglongjmp(c->jb, 1);
}

/* reentry_handler: the SIGUSR1 handler: allocates, polls and stores
   through the barrier on the interrupted thread's P. */
static void reentry_handler(int sig)
{
    (void)sig;
    g_rx_got = wbgc_alloc(g_rx_p, 32);
    wbgc_safepoint(g_rx_p);
    wbgc_write(g_rx_p, g_rx_slot, g_rx_val);
    g_rx_handled++;
}

static wbgc_heap *reentry_heap(reentry_ctx *c)
{
    wbgc_config cfg;
    errlog_init(&c->log);
    c->arm = 0;
    wbgc_config_default(&cfg);
    cfg.gc_percent = -1;
    cfg.flags = WBGC_CHECK | g_extra_flags;
    cfg.on_error = reentry_cb;
    cfg.user = c;
    return wbgc_heap_new(&cfg);
}

/* reentry_msg_ok: report i names the call made, the call the P is inside,
   the P, the thread and rule 5. */
static int reentry_msg_ok(errlog *l, int i, const char *call, const char *inside, wbgc_p *p)
{
    char tid[32], in[64];
    snprintf(tid, sizeof tid, "%#lx", wbgc__thread_id(pthread_self()));
    snprintf(in, sizeof in, "%s(", call);
    const char *m = errlog_msg(l, i);
    return ci_contains(m, "wbgc: misuse") && ci_contains(m, in) && ci_contains(m, inside) &&
           ci_contains(m, "rule 5") && ci_contains(m, tid) && errlog_has_ptr(l, i, p);
}

static void test_reentry_from_signal_handler_check_mode(void)
{
    for (int onstack = 0; onstack < 2; onstack++) {
        reentry_ctx c;
        wbgc_heap *h = reentry_heap(&c);
        REQUIRE(h);
        wbgc_p *p = wbgc_attach(h);
        REQUIRE(p);
        void **volatile holder = wbgc_alloc(p, 4 * sizeof(void *));
        void *volatile val = wbgc_alloc(p, 48);
        REQUIRE(holder && val);
        struct sigaction sa, old;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = reentry_handler;
        sa.sa_flags = onstack ? SA_ONSTACK : 0;   /* the runner's alternate stack */
        sigemptyset(&sa.sa_mask);
        REQUIRE(sigaction(SIGUSR1, &sa, &old) == 0);
        g_rx_p = p;
        g_rx_slot = &holder[1];
        g_rx_val = val;
        g_rx_got = (void *)1;
        g_rx_handled = 0;
        c.arm = 1;
        int e0 = errlog_count(&c.log);
        void *volatile r = wbgc_alloc(p, RX_HUGE);   /* on_error, inside it, sends the signal */
        sigaction(SIGUSR1, &old, NULL);
        int n = errlog_count(&c.log) - e0;
        const char *how = onstack ? "on the alternate stack" : "on the thread's stack";
        CHECKF(r == NULL, "the oversize allocation returned %p", (void *)r);
        CHECKF(g_rx_handled == 1, "%s: the handler ran %d times", how, g_rx_handled);
        CHECKF(n == 4, "%s: %d reports (want the oversize allocation and the handler's three calls)",
               how, n);
        CHECKF(ci_contains(errlog_msg(&c.log, e0), "larger than any heap"), "first report: \"%s\"",
               errlog_msg(&c.log, e0));
        static const char *const calls[3] = {"wbgc_alloc", "wbgc_safepoint", "wbgc_write"};
        for (int i = 0; i < 3 && i + 1 < n; i++)
            CHECKF(reentry_msg_ok(&c.log, e0 + 1 + i, calls[i], "inside wbgc_alloc", p),
                   "%s: report %d should name %s, \"inside wbgc_alloc\", the P %p, this thread "
                   "and rule 5: \"%s\"", how, i + 1, calls[i], (void *)p,
                   errlog_msg(&c.log, e0 + 1 + i));
        CHECKF(g_rx_got == NULL, "%s: the handler's wbgc_alloc returned %p, not NULL", how, g_rx_got);
        CHECKF(holder[1] == val, "%s: the handler's barriered store did not go ahead", how);
        /* after the interrupted call returned, the P is quiet again */
        e0 = errlog_count(&c.log);
        void *volatile q = wbgc_alloc(p, 32);
        wbgc_write(p, &holder[2], q);
        wbgc_safepoint(p);
        wbgc_collect(p);
        CHECKF(q != NULL && holder[1] == val && holder[2] == q, "%s: the P no longer works", how);
        CHECKF(errlog_count(&c.log) == e0, "%s: correct use after the handler reported: \"%s\"", how,
               errlog_msg(&c.log, e0));
        g_rx_p = NULL;
        CLOSE_HEAP_ERRS_OK(h, p, &c.log);
    }
}

static void test_longjmp_out_of_call_check_mode(void)
{
    /* the P's next call after the jump, from this same frame */
    static const char *const next[] = {"wbgc_alloc", "wbgc_safepoint", "wbgc_collect",
                                       "wbgc_memmove", "wbgc_alloc_noscan", "wbgc_write",
                                       "wbgc_blocking_begin", "wbgc_detach"};
    for (int k = 0; k < (int)ARRAY_LEN(next); k++) {
        reentry_ctx c;
        wbgc_heap *h = reentry_heap(&c);
        REQUIRE(h);
        wbgc_p *p = wbgc_attach(h);
        REQUIRE(p);
        void **volatile holder = wbgc_alloc(p, 4 * sizeof(void *));
        REQUIRE(holder);
        volatile int jumped = 0;
        c.arm = 2;
        int e0 = errlog_count(&c.log);
        if (sigsetjmp(c.jb, 1) == 0) {
            void *volatile r = wbgc_alloc(p, RX_HUGE);   /* on_error jumps out of it */
            FAILF("on_error did not jump (wbgc_alloc returned %p)", (void *)r);
        } else {
            jumped = 1;
        }
        CHECK(jumped);
        CHECKF(errlog_count(&c.log) == e0 + 1, "%d reports before the next call",
               errlog_count(&c.log) - e0);
        e0 = errlog_count(&c.log);
        void *volatile got = (void *)1;
        void *pair[2] = {NULL, NULL};
        switch (k) {
        case 0: got = wbgc_alloc(p, 32); break;
        case 1: wbgc_safepoint(p); break;
        case 2: wbgc_collect(p); break;
        case 3: wbgc_memmove(p, holder, pair, sizeof pair); break;
        case 4: got = wbgc_alloc_noscan(p, 32); break;
        case 5: wbgc_write(p, &holder[1], holder); break;   /* the store goes ahead */
        case 6: wbgc_blocking_begin(p); break;              /* does nothing: not blocked */
        case 7: wbgc_detach(p); break;                      /* does nothing: still attached */
        }
        CHECKF(errlog_count(&c.log) == e0 + 1, "%s after a siglongjmp out of wbgc_alloc: %d reports",
               next[k], errlog_count(&c.log) - e0);
        CHECKF(reentry_msg_ok(&c.log, e0, next[k], "wbgc_alloc", p) &&
                   ci_contains(errlog_msg(&c.log, e0), "longjmp"),
               "the report should name %s, the call jumped out of (wbgc_alloc), longjmp, the P %p, "
               "this thread and rule 5: \"%s\"", next[k], (void *)p, errlog_msg(&c.log, e0));
        if (k == 0 || k == 4) CHECKF(got == NULL, "%s after the jump returned %p", next[k], got);
        if (k == 5) CHECKF(holder[1] == (void *)holder, "the reported barrier's store did not go ahead");
        /* reported once: the P works again */
        e0 = errlog_count(&c.log);
        void *volatile q = wbgc_alloc(p, 32);
        wbgc_write(p, &holder[0], q);
        wbgc_collect(p);
        CHECKF(q != NULL && holder[0] == q, "the P does not work after the report");
        CHECKF(errlog_count(&c.log) == e0, "correct use after the report was reported: \"%s\"",
               errlog_msg(&c.log, e0));
        CLOSE_HEAP_ERRS_OK(h, p, &c.log);
    }
}

/* =========================================================================
   Precise layouts (wbgc_layout_new, wbgc_alloc_typed), wbgc_realloc,
   wbgc_strdup
   ========================================================================= */

/* The typed tests' shapes: a holder of nrec records of rec bytes and a
   last, partial record of tail bytes; in each record two pointer words
   (p0, p1: word indices) and an integer word iw. A record's p0 holds a
   "keep" object, p1 a typed leaf of one record (its own p0: another keep,
   its iw: a bait's address), iw the address of a "bait": an object held
   by nothing but that integer. The second shape is a large object whose
   records do not divide an oblet (16 KiB = 341 x 48 + 16), so each oblet
   starts at another phase of the record. */
typedef struct ty_shape {
    const char *name;
    size_t rec, p0, p1, iw, nrec, tail;
} ty_shape;

static const ty_shape g_ty_shapes[2] = {
    {"64-byte records in a small object", 64, 0, 1, 3, 200, 24},
    {"48-byte records in a large object (oblets)", 48, 1, 5, 2, 2000, 16},
};

#define TY_KEEP 48           /* an object held by a pointer word: checked */
#define TY_BAIT KB           /* an object held only by an integer word */

static void *ty_obj(wbgc_p *p, size_t n, uint64_t seed)
{
    void *q = wbgc_alloc_noscan(p, n);
    if (!q) FAILF("allocation of %zu bytes failed", n);
    else fill_pat(q, n, seed);
    return q;
}

/* ty_fill fills holder w as the shape says (l NULL: leaves from
   wbgc_alloc). Returns the bytes of baits made. */
static NOINLINE size_t ty_fill(wbgc_p *p, const wbgc_layout *l, const ty_shape *sh, uint64_t *w,
                               uint64_t seed)
{
    size_t baits = 0, nw = sh->rec / 8;
    for (size_t r = 0; r <= sh->nrec; r++) {
        size_t lim = r < sh->nrec ? sh->rec : sh->tail;  /* bytes of this record */
        uint64_t *rec = w + r * nw, s = seed + r * 4;
        if (sh->p0 * 8 + 8 <= lim) wbgc_write(p, &rec[sh->p0], ty_obj(p, TY_KEEP, s));
        if (sh->p1 * 8 + 8 <= lim) {
            uint64_t *leaf = l ? wbgc_alloc_typed(p, sh->rec, l) : wbgc_alloc(p, sh->rec);
            if (!leaf) {
                FAILF("leaf allocation failed");
                return baits;
            }
            wbgc_write(p, &leaf[sh->p0], ty_obj(p, TY_KEEP, s + 1));
            leaf[sh->iw] = (uint64_t)(uintptr_t)ty_obj(p, TY_BAIT, s + 2);  /* an integer */
            baits += TY_BAIT;
            wbgc_write(p, &rec[sh->p1], leaf);
        }
        if (sh->iw * 8 + 8 <= lim) {
            rec[sh->iw] = (uint64_t)(uintptr_t)ty_obj(p, TY_BAIT, s + 3);
            baits += TY_BAIT;
        }
    }
    return baits;
}

/* ty_check: the keeps of holder w intact? Returns the bad ones. */
static NOINLINE size_t ty_check(const uint64_t *w, const ty_shape *sh, uint64_t seed, int round)
{
    size_t bad = 0, nw = sh->rec / 8;
    for (size_t r = 0; r <= sh->nrec; r++) {
        size_t lim = r < sh->nrec ? sh->rec : sh->tail;
        const uint64_t *rec = w + r * nw, s = seed + r * 4;
        const void *k0 = sh->p0 * 8 + 8 <= lim ? (const void *)(uintptr_t)rec[sh->p0] : NULL;
        const uint64_t *leaf = sh->p1 * 8 + 8 <= lim ? (const uint64_t *)(uintptr_t)rec[sh->p1] : NULL;
        if (sh->p0 * 8 + 8 <= lim && (!k0 || check_pat(k0, TY_KEEP, s))) {
            if (bad++ < 3) FAILF("%s, round %d: record %zu: the object at its pointer word %zu "
                                 "(%p) was freed", sh->name, round, r, sh->p0, k0);
        }
        if (sh->p1 * 8 + 8 <= lim) {
            const void *k1 = leaf ? (const void *)(uintptr_t)leaf[sh->p0] : NULL;
            if (!leaf || !k1 || check_pat(k1, TY_KEEP, s + 1)) {
                if (bad++ < 3) FAILF("%s, round %d: record %zu: its leaf %p or the leaf's object %p "
                                     "was freed", sh->name, round, r, (const void *)leaf, k1);
            }
        }
    }
    return bad;
}

/* typed_run: in one collector mode (every heap verifying its cycles),
   for each shape: a typed holder keeps what its pointer words hold
   through cycles and churn, and the baits its integer words hold go at
   the first collect (heap_alloc drops by their bytes); the same holder
   from wbgc_alloc keeps the baits (conservative). */
static void typed_run(unsigned flags, int mark_workers)
{
    errlog log;
    uint64_t rng = 31337;
    wbgc_heap *h = open_heap(&log, -1, flags | WBGC_VERIFY, mark_workers, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    for (int k = 0; k < 2; k++) {
        const ty_shape *sh = &g_ty_shapes[k];
        size_t offs[2] = {sh->p0 * 8, sh->p1 * 8}, size = sh->nrec * sh->rec + sh->tail;
        const wbgc_layout *l = wbgc_layout_new(h, sh->rec, offs, 2);
        REQUIRE(l);
        for (int typed = 1; typed >= 0; typed--) {
            uint64_t seed = 1000000 * (uint64_t)(k * 2 + typed + 1);
            scrub_stack();
            wbgc_collect(p);
            uint64_t s0 = heap_alloc_of(h);
            uint64_t *volatile hold = typed ? wbgc_alloc_typed(p, size, l) : wbgc_alloc(p, size);
            REQUIRE(hold);
            size_t bait = ty_fill(p, typed ? l : NULL, sh, hold, seed);
            uint64_t s1 = heap_alloc_of(h);
            scrub_stack();
            wbgc_collect(p);
            int64_t drop = (int64_t)s1 - (int64_t)heap_alloc_of(h);
            if (typed)
                CHECKF(drop >= (int64_t)(bait * 3 / 4),
                       "%s: typed holder: heap_alloc dropped %lld bytes at the collect, but its "
                       "integer words alone held %zu bytes of objects", sh->name, (long long)drop, bait);
            else
                CHECKF(drop < (int64_t)(bait / 4),
                       "%s: wbgc_alloc holder: heap_alloc dropped %lld bytes, though its integer "
                       "words (scanned conservatively) held %zu bytes", sh->name, (long long)drop, bait);
            size_t bad = 0;
            for (int r = 0; r < 3 && !bad; r++) {
                churn(p, 2 * MB, 2000, &rng);
                scrub_stack();
                wbgc_collect(p);
                bad += ty_check(hold, sh, seed, r);
            }
            CHECKF(bad == 0, "%s, %s holder: %zu objects held by pointer words were freed", sh->name,
                   typed ? "typed" : "wbgc_alloc", bad);
            note("%s, %s holder of %zu bytes: %zu bytes held by integers; heap_alloc %llu -> "
                 "%llu, %lld dropped at the collect", sh->name, typed ? "typed" : "wbgc_alloc",
                 size, bait, (unsigned long long)s0, (unsigned long long)s1, (long long)drop);
            hold = NULL;
        }
    }
    CHECK(get_stats(h).verify_runs > 0);
    CLOSE_HEAP(h, p, &log);
}

static void test_typed_concurrent(void) { typed_run(0, -1); }
static void test_typed_incremental(void) { typed_run(0, 0); }
static void test_typed_stw(void) { typed_run(WBGC_STW, -1); }
static void test_typed_check_mode(void) { typed_run(WBGC_CHECK, -1); }

/* ty_hide: a 4 MiB object held only by word 1 of o, made here so that no
   copy of its address stays in the caller's frame (a register or a slot
   that the conservative stack scan would find: seen at -O1 under TSan). */
static NOINLINE void ty_hide(wbgc_p *p, void **o)
{
    o[1] = ty_obj(p, 4 * MB, 5);
}

/* Layout validation: each bad layout is refused with one report naming
   wbgc_layout_new; good edge cases are made; a layout with no pointer
   words allocates objects that keep nothing; alloc_typed refuses a NULL
   layout and another heap's; a heap makes at most 65000 layouts. */
static void test_typed_layout_errors(void)
{
    static const struct { size_t rec; size_t off[2]; size_t n; int nulloffs; const char *what; } bad[] = {
        {0, {0, 0}, 0, 0, "record_size"},     {12, {0, 0}, 1, 0, "record_size"},
        {65544, {0, 0}, 1, 0, "record_size"}, {SIZE_MAX - 7, {0, 0}, 1, 0, "record_size"},
        {64, {4, 0}, 1, 0, "word size"},      {64, {0, 64}, 2, 0, "below record_size"},
        {64, {0, 0}, 2, 1, "ptr_offsets is NULL"},
    };
    errlog log, log2;
    wbgc_heap *h = open_heap(&log, -1, 0, -1, 0);
    wbgc_heap *h2 = open_heap(&log2, -1, 0, -1, 0);
    REQUIRE(h && h2);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int e0 = errlog_count(&log);
        const wbgc_layout *l = wbgc_layout_new(h, bad[i].rec, bad[i].nulloffs ? NULL : bad[i].off, bad[i].n);
        CHECKF(l == NULL, "bad layout %zu (record %zu) was made", i, bad[i].rec);
        CHECKF(errlog_count(&log) == e0 + 1 && ci_contains(errlog_msg(&log, e0), "wbgc_layout_new") &&
                   ci_contains(errlog_msg(&log, e0), bad[i].what),
               "bad layout %zu: %d reports, want one naming wbgc_layout_new and \"%s\": \"%s\"", i,
               errlog_count(&log) - e0, bad[i].what, errlog_msg(&log, e0));
    }
    int e0 = errlog_count(&log);
    size_t dup[3] = {8, 0, 8}, last = 65536 - 8;
    CHECK(wbgc_layout_new(h, 8, dup + 1, 1) != NULL);          /* one word, a pointer */
    CHECK(wbgc_layout_new(h, 65536, &last, 1) != NULL);        /* the largest record */
    CHECK(wbgc_layout_new(h, 24, dup, 3) != NULL);             /* an offset twice */
    const wbgc_layout *none = wbgc_layout_new(h, 32, NULL, 0);  /* nothing to scan */
    REQUIRE(none);
    CHECKF(errlog_count(&log) == e0, "a good layout was reported: \"%s\"", errlog_msg(&log, e0));
    /* no pointer words: a pointer kept in one keeps nothing alive */
    void **volatile o = wbgc_alloc_typed(p, 64, none);
    REQUIRE(o);
    scrub_stack();
    wbgc_collect(p);
    uint64_t s0 = heap_alloc_of(h);
    ty_hide(p, (void **)o);
    scrub_stack();
    wbgc_collect(p);
    CHECKF(heap_alloc_of(h) < s0 + MB, "an object held by a layout with no pointer words stayed: "
           "heap_alloc %llu -> %llu", (unsigned long long)s0, (unsigned long long)heap_alloc_of(h));
    /* alloc_typed with no layout, or another heap's */
    const wbgc_layout *other = wbgc_layout_new(h2, 16, dup + 1, 1);
    REQUIRE(other);
    e0 = errlog_count(&log);
    CHECK(wbgc_alloc_typed(p, 32, NULL) == NULL);
    CHECK(wbgc_alloc_typed(p, 32, other) == NULL);
    CHECKF(errlog_count(&log) == e0 + 2 && ci_contains(errlog_msg(&log, e0), "NULL layout") &&
               ci_contains(errlog_msg(&log, e0 + 1), "another heap"),
           "alloc_typed with a NULL layout and another heap's: \"%s\", \"%s\"", errlog_msg(&log, e0),
           errlog_msg(&log, e0 + 1));
    /* the limit: 65000 layouts per heap, 4 of them made above */
    size_t made = 4, one = 0;
    e0 = errlog_count(&log);
    while (made < 70000 && wbgc_layout_new(h, 8, &one, 1)) made++;
    CHECKF(made == 65000, "%zu layouts made before the first refusal, want 65000", made);
    CHECKF(errlog_count(&log) == e0 + 1 && ci_contains(errlog_msg(&log, e0), "65000"),
           "the refusal: \"%s\"", errlog_msg(&log, e0));
    CLOSE_HEAP_ERRS_OK(h, p, &log);
    CLOSE_HEAP(h2, NULL, &log2);
}

/* Check mode: a wbgc_write of a GC pointer into a word of a typed object
   that its layout does not name is reported (the object, the offset, the
   record size), in a small and in a large object, through wbgc_write,
   wbgc_write2 and wbgc_write_n; the store goes ahead. Stores into pointer
   words, and of integers or NULL into any word, are not. */
static void test_typed_check_mode_reports(void)
{
    errlog log;
    wbgc_heap *h = open_heap(&log, -1, WBGC_CHECK, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    size_t offs[2] = {0, 8};
    const wbgc_layout *l = wbgc_layout_new(h, 64, offs, 2);
    REQUIRE(l);
    void *volatile target = wbgc_alloc(p, 32);
    void **volatile small = wbgc_alloc_typed(p, 2 * 64 + 24, l);
    void **volatile large = wbgc_alloc_typed(p, 40000, l);
    REQUIRE(target && small && large);
    int e0 = errlog_count(&log);
    wbgc_write(p, &small[0], target);
    wbgc_write(p, &small[8 + 1], target);       /* record 1, word 1 */
    wbgc_write(p, &small[16], target);          /* the partial record's word 0 */
    wbgc_write(p, &large[600 * 8 + 1], target);
    wbgc_write(p, &small[3], (void *)(uintptr_t)12345);  /* an integer */
    wbgc_write(p, &small[3], NULL);
    CHECKF(errlog_count(&log) == e0, "a valid store into a typed object was reported: \"%s\"",
           errlog_msg(&log, e0));
    struct { void **slot; void **obj; size_t off; int how; } cases[] = {
        {&small[3], small, 24, 0},           {&small[8 + 5], small, 104, 0},
        {&small[18], small, 144, 1},         {&large[600 * 8 + 7], large, 600 * 64 + 56, 2},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        e0 = errlog_count(&log);
        if (cases[i].how == 0) {
            wbgc_write(p, cases[i].slot, target);
        } else if (cases[i].how == 1) {
            wbgc_write2(p, &small[0], target, cases[i].slot, target);
        } else {
            void *slots[2] = {&large[0], cases[i].slot}, *vals[2] = {target, target};
            wbgc_write_n(p, slots, vals, 2);
        }
        char want[64];
        snprintf(want, sizeof want, "offset %zu of typed object", cases[i].off);
        const char *m = errlog_msg(&log, e0);
        CHECKF(errlog_count(&log) == e0 + 1 && ci_contains(m, want) &&
                   errlog_has_ptr(&log, e0, (void *)cases[i].obj) && ci_contains(m, "record of 64 bytes") &&
                   errlog_has_ptr(&log, e0, cases[i].slot),
               "store %zu into a non-pointer word: %d reports, want one naming the object %p, \"%s\", "
               "the slot and the record size: \"%s\"", i, errlog_count(&log) - e0, (void *)cases[i].obj,
               want, m);
        CHECKF(*cases[i].slot == target, "store %zu: the reported store did not go ahead", i);
    }
    CLOSE_HEAP_ERRS_OK(h, p, &log);
}

/* realloc_hold: objects of each kind grown by wbgc_realloc, each holding
   a 1 MiB object by a pointer word and another by an integer word (of a
   typed object: one of a later record). What the new objects keep must
   follow their kind. Returns the new objects in out[] and the bytes their
   contents should keep alive (pointer words, and every word of a scanned
   object) in *kept. */
static NOINLINE void realloc_hold(wbgc_p *p, const wbgc_layout *l, void **out, uint64_t *kept)
{
    /* scanned: both held */
    uint64_t *a = wbgc_alloc(p, 32);
    wbgc_write(p, &a[0], ty_obj(p, MB, 1));
    a[1] = (uintptr_t)ty_obj(p, MB, 2);
    out[0] = wbgc_realloc(p, a, 5000);
    /* noscan: neither */
    uint64_t *b = wbgc_alloc_noscan(p, 32);
    b[0] = (uintptr_t)ty_obj(p, MB, 3);
    b[1] = (uintptr_t)ty_obj(p, MB, 4);
    out[1] = wbgc_realloc(p, b, 5000);
    /* typed (64-byte records, pointers at 0 and 8): the pointer words
       keep, in the old part and in a record of the new part */
    uint64_t *c = wbgc_alloc_typed(p, 64, l);
    wbgc_write(p, &c[0], ty_obj(p, MB, 5));
    c[3] = (uintptr_t)ty_obj(p, MB, 6);
    uint64_t *d = wbgc_realloc(p, c, 100000);   /* large now */
    if (d) {
        wbgc_write(p, &d[1000 * 8 + 1], ty_obj(p, MB, 7));
        d[1000 * 8 + 2] = (uintptr_t)ty_obj(p, MB, 8);
    }
    out[2] = d;
    *kept = 4 * MB;
}

/* wbgc_realloc and wbgc_strdup, one thread: NULL obj, same object when
   big enough, contents moved and the rest zero, kind kept (what the new
   object keeps alive, measured), bad objects reported; wbgc_strdup. */
static void test_realloc(void)
{
    errlog log;
    wbgc_heap *h = open_heap(&log, -1, 0, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    size_t offs[2] = {0, 8};
    const wbgc_layout *l = wbgc_layout_new(h, 64, offs, 2);
    REQUIRE(l);
    /* obj NULL: an allocation */
    unsigned char *volatile q = wbgc_realloc(p, NULL, 40);
    REQUIRE(q);
    CHECK(count_nonzero(q, 40) == 0);
    fill_pat(q, 40, 77);
    /* big enough (40 bytes live in a 48-byte slot): the same object */
    CHECK(wbgc_realloc(p, q, 40) == q);
    CHECK(wbgc_realloc(p, q, 8) == q);
    CHECK(wbgc_realloc(p, q, 48) == q);
    CHECK(check_pat(q, 40, 77) == 0);
    /* growth: contents moved, the rest zero */
    unsigned char *volatile r = wbgc_realloc(p, q, 3000);
    REQUIRE(r && r != q);
    CHECKF(check_pat(r, 40, 77) == 0 && count_nonzero(r + 48, 3000 - 48) == 0,
           "realloc 40 -> 3000: contents %zu bad words, %zu non-zero bytes past the old object",
           check_pat(r, 40, 77), count_nonzero(r + 48, 3000 - 48));
    unsigned char *volatile big = wbgc_realloc(p, r, 200000);
    REQUIRE(big);
    CHECK(check_pat(big, 40, 77) == 0 && count_nonzero(big + 48, 200000 - 48) == 0);
    CHECK(wbgc_realloc(p, big, 100000) == big);    /* a large object that is big enough */
    /* kinds kept */
    void *volatile held[3] = {NULL, NULL, NULL};
    uint64_t kept = 0;
    scrub_stack();
    wbgc_collect(p);
    uint64_t s0 = heap_alloc_of(h);
    realloc_hold(p, l, (void **)held, &kept);
    REQUIRE(held[0] && held[1] && held[2]);
    scrub_stack();
    wbgc_collect(p);
    uint64_t s1 = heap_alloc_of(h), objs = 5000 + 5008 + 100000 + 8192;  /* the holders, rounded up */
    CHECKF(s1 >= s0 + kept && s1 < s0 + kept + objs + MB / 2,
           "after realloc of a scanned, a noscan and a typed object: heap_alloc %llu -> %llu, want "
           "%llu more held (the scanned object's two, the typed object's two pointer words')",
           (unsigned long long)s0, (unsigned long long)s1, (unsigned long long)kept);
    const uint64_t *a = held[0], *d = held[2];
    CHECK(check_pat((void *)(uintptr_t)a[0], MB, 1) == 0 && check_pat((void *)(uintptr_t)a[1], MB, 2) == 0);
    CHECK(check_pat((void *)(uintptr_t)d[0], MB, 5) == 0 && check_pat((void *)(uintptr_t)d[8001], MB, 7) == 0);
    /* bad objects */
    int e0 = errlog_count(&log);
    uint64_t *volatile inner = held[0];
    void *m = malloc(64);
    CHECK(wbgc_realloc(p, (void *)(inner + 2), 100) == NULL);
    CHECK(wbgc_realloc(p, m, 100) == NULL);
    CHECKF(errlog_count(&log) == e0 + 2 && errlog_has_ptr(&log, e0, (void *)(inner + 2)) &&
               ci_contains(errlog_msg(&log, e0), "not the start") && errlog_has_ptr(&log, e0 + 1, m),
           "realloc of an interior pointer and of malloc memory: \"%s\", \"%s\"", errlog_msg(&log, e0),
           errlog_msg(&log, e0 + 1));
    CHECK(check_pat((void *)(uintptr_t)inner[0], MB, 1) == 0);   /* obj unchanged */
    free(m);
    /* strdup */
    char *volatile s = wbgc_strdup(p, "a string");
    char *volatile e = wbgc_strdup(p, "");
    CHECK(s && strcmp(s, "a string") == 0 && e && e[0] == 0);
    e0 = errlog_count(&log);
    CHECK(wbgc_strdup(p, NULL) == NULL);
    CHECKF(errlog_count(&log) == e0 + 1 && ci_contains(errlog_msg(&log, e0), "wbgc_strdup"),
           "strdup(NULL): \"%s\"", errlog_msg(&log, e0));
    scrub_stack();
    wbgc_collect(p);
    CHECK(strcmp(s, "a string") == 0);
    held[0] = held[1] = held[2] = NULL;
    CLOSE_HEAP_ERRS_OK(h, p, &log);
}

/* wbgc_realloc while cycles mark: a vector of pointers and a typed vector
   of records (a pointer and its object's seed, an integer) grow one
   element at a time, each growth a realloc that moves every pointer into
   a new (black) object; every element is checked after each growth and at
   random between. gc_percent 1: cycles run back to back, most of them
   started by this thread's own allocations, the realloc's among them;
   such a cycle starts inside the allocation, after its safepoint, so the
   copy runs while this thread's stack is grey and the old object, white,
   is about to be dropped from it: only the barrier's new-value half keeps
   the moved pointers (a plain copy loses elements here). */
static void realloc_concurrent_run(unsigned flags)
{
    enum { CAP = 16384 };
    errlog log;
    uint64_t rng = 4711, next_seed = 1, *seeds = calloc(CAP, sizeof *seeds);
    wbgc_heap *h = open_heap(&log, 1, flags, -1, 0);
    REQUIRE(h && seeds);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    size_t off0 = 0;
    const wbgc_layout *l = wbgc_layout_new(h, 16, &off0, 1);
    REQUIRE(l);
    uint64_t c0 = cycles_of(h);
    void **volatile vec = NULL;
    uint64_t *volatile tvec = wbgc_alloc_typed(p, 16, l);
    size_t n = 0, cap = 0, tcap = 1, bad = 0, grows = 0;
    int iters = (int)scaled(200000);
    for (int it = 0; it < iters && bad < 10; it++) {
        if (n == CAP) {
            vec = NULL;
            tvec = wbgc_alloc_typed(p, 16, l);
            n = cap = 0;
            tcap = 1;
        }
        /* doubling, then steps of 512 elements: many large growths, each
           a likely cycle start (gc_percent 1) */
        if (n == cap) {
            cap = !cap ? 1 : cap < 2048 ? cap * 2 : cap + 512;
            vec = wbgc_realloc(p, vec, cap * sizeof(void *));
            REQUIRE(vec);
            grows++;
        }
        if (n == tcap) {
            tcap = tcap < 2048 ? tcap * 2 : tcap + 512;
            tvec = wbgc_realloc(p, tvec, tcap * 16);
            REQUIRE(tvec);
        }
        seeds[n] = next_seed++;
        wbgc_write(p, &vec[n], mobj_new(p, seeds[n]));
        wbgc_write(p, &tvec[2 * n], mobj_new(p, seeds[n] + (1ull << 40)));
        tvec[2 * n + 1] = seeds[n];
        n++;
        churn(p, 512, 200, &rng);
        size_t from = (n & (n - 1)) == 0 ? 0 : n - 1;  /* all after a growth, else the newest */
        for (size_t i = from; i < n; i++) {
            int lost = !mobj_ok(vec[i], seeds[i]);
            int tlost = tvec[2 * i + 1] != seeds[i] ||
                        !mobj_ok((void *)(uintptr_t)tvec[2 * i], seeds[i] + (1ull << 40));
            if ((lost || tlost) && bad++ < 5)
                FAILF("iteration %d: element %zu of %zu lost from the%s%s vector (%p, typed %p)", it,
                      i, n, lost ? " scanned" : "", tlost ? " typed" : "", (void *)vec, (void *)tvec);
        }
        size_t i = (size_t)(rnd(&rng) % n);
        if (!mobj_ok(vec[i], seeds[i]) && bad++ < 5) FAILF("iteration %d: element %zu lost", it, i);
    }
    uint64_t cyc = cycles_of(h) - c0;
    CHECKF(cyc >= 20, "only %llu cycles overlapped the growths", (unsigned long long)cyc);
    CHECK(bad == 0);
    note("%d elements added, %zu growths by realloc, over %llu cycles", iters, grows,
         (unsigned long long)cyc);
    vec = NULL;
    tvec = NULL;
    CLOSE_HEAP(h, p, &log);
    free(seeds);
}

static void test_realloc_concurrent(void) { realloc_concurrent_run(0); }
static void test_realloc_concurrent_check_mode(void) { realloc_concurrent_run(WBGC_CHECK); }

/* The randomized API test: tests/fuzz.c (WBGC_FUZZ_SEED, WBGC_FUZZ_SECONDS). */
#include "tests/fuzz.c"

typedef struct test_case {
    const char *name;
    void (*fn)(void);
} test_case;

/* =========================================================================
   Finalizers and weak references
   ========================================================================= */

/* A finalizable test object: a check word derived from its id, and a child
   (noscan) with its own; a finalizer that finds either wrong saw memory
   freed under it. */
typedef struct spnode {
    uint64_t id, check;
    struct spchild *child;
    struct spnode *next;  /* chains and cycles */
} spnode;
typedef struct spchild { uint64_t id, check; } spchild;

static uint64_t fcheck(uint64_t id) { return id * 0x9E3779B97F4A7C15ull ^ 0x5EEDu; }

static spnode *spnode_new(wbgc_p *p, uint64_t id)
{
    spnode *n = wbgc_alloc(p, sizeof *n);
    spchild *c = wbgc_alloc_noscan(p, sizeof *c);
    if (!n || !c) return NULL;
    n->id = c->id = id;
    n->check = fcheck(id);
    c->check = fcheck(id) + 1;
    wbgc_write(p, &n->child, c);
    return n;
}

static int spnode_ok(const spnode *n)
{
    return n->check == fcheck(n->id) && n->child && n->child->id == n->id &&
           n->child->check == fcheck(n->id) + 1;
}

static uint64_t g_fin_runs, g_fin_bad, g_fin_order[8];
static int g_fin_norder;

static void fin_count(wbgc_p *p, void *obj, void *arg)
{
    (void)p;
    spnode *n = obj;
    if (!spnode_ok(n) || arg != (void *)&g_fin_runs) __atomic_fetch_add(&g_fin_bad, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&g_fin_runs, 1, __ATOMIC_RELAXED);
}

static void fin_reset(void)
{
    g_fin_runs = g_fin_bad = 0;
    g_fin_norder = 0;
}

/* n finalizable objects, unreachable on return; returns their ids' sum */
static NOINLINE void make_finalizable(wbgc_p *p, int n, uint64_t first_id)
{
    for (int i = 0; i < n; i++) {
        spnode *o = spnode_new(p, first_id + (uint64_t)i);
        if (!o || wbgc_set_finalizer(p, o, fin_count, &g_fin_runs) != 0) {
            FAILF("set_finalizer failed at %d", i);
            return;
        }
    }
}

static NOINLINE void collect_scrubbed(wbgc_p *p, int times)
{
    for (int i = 0; i < times; i++) {
        scrub_stack();
        wbgc_collect(p);
    }
}

/* Finalizers run once for unreachable objects, never for reachable ones,
   with the object and what it points to intact; the objects are freed at
   a later cycle. */
static void finalizers_run(unsigned flags, int workers)
{
    errlog log;
    fin_reset();
    wbgc_heap *h = open_heap(&log, 100, flags | WBGC_FINALIZE_ON_DEMAND, workers, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    enum { KEEP = 300, DROP = 3000 };
    static spnode *kept[KEEP];
    REQUIRE(wbgc_add_roots(h, kept, sizeof kept) == 0);
    for (int i = 0; i < KEEP; i++) {
        spnode *o = spnode_new(p, 1000000 + (uint64_t)i);
        REQUIRE(o);
        wbgc_write(p, &kept[i], o);
        CHECK(wbgc_set_finalizer(p, o, fin_count, &g_fin_runs) == 0);
    }
    make_finalizable(p, DROP, 1);
    uint64_t before = heap_alloc_of(h);
    collect_scrubbed(p, 1);
    CHECKF(g_fin_runs == 0, "%llu finalizers ran before wbgc_run_finalizers (on demand)",
           (unsigned long long)g_fin_runs);
    wbgc_stats st = get_stats(h);
    CHECKF(st.finalizers_queued >= DROP - 20 && st.finalizers_queued <= DROP,
           "%llu finalizers queued for %d unreachable objects", (unsigned long long)st.finalizers_queued,
           DROP);
    size_t ran = wbgc_run_finalizers(p, 0);
    CHECKF(ran == st.finalizers_queued, "ran %zu of %llu queued", ran,
           (unsigned long long)st.finalizers_queued);
    CHECKF(g_fin_bad == 0, "%llu finalizers saw a broken object", (unsigned long long)g_fin_bad);
    collect_scrubbed(p, 3);
    wbgc_run_finalizers(p, 0);
    st = get_stats(h);
    CHECKF(g_fin_runs <= DROP, "%llu finalizers ran for %d unreachable objects (one ran twice, or "
           "for a reachable one)", (unsigned long long)g_fin_runs, DROP);
    CHECKF(g_fin_runs >= DROP - 20, "only %llu of %d finalizers ran", (unsigned long long)g_fin_runs,
           DROP);
    CHECKF(st.finalizers_run == g_fin_runs, "stats say %llu run, counted %llu",
           (unsigned long long)st.finalizers_run, (unsigned long long)g_fin_runs);
    CHECKF(st.finalizers_pending >= KEEP && st.finalizers_pending <= KEEP + 20,
           "%llu finalizers pending, %d objects reachable", (unsigned long long)st.finalizers_pending,
           KEEP);
    CHECKF(st.heap_alloc < before - (uint64_t)DROP * 48 / 2,
           "finalized objects not freed: heap_alloc %llu, %llu before",
           (unsigned long long)st.heap_alloc, (unsigned long long)before);
    for (int i = 0; i < KEEP; i++) CHECKF(spnode_ok(kept[i]), "kept object %d broken", i);
    note("%llu finalizers run, %llu pending", (unsigned long long)g_fin_runs,
         (unsigned long long)st.finalizers_pending);
    /* removing a finalizer: it never runs */
    for (int i = 0; i < KEEP; i++) CHECK(wbgc_set_finalizer(p, kept[i], NULL, NULL) == 0);
    uint64_t runs = g_fin_runs;
    memset(kept, 0, sizeof kept);
    collect_scrubbed(p, 2);
    wbgc_run_finalizers(p, 0);
    CHECKF(g_fin_runs == runs, "%llu removed finalizers ran", (unsigned long long)(g_fin_runs - runs));
    CHECK(get_stats(h).finalizers_pending == 0);
    wbgc_remove_roots(h, kept);
    CLOSE_HEAP(h, p, &log);
}
static void test_finalizers_concurrent(void) { finalizers_run(0, -1); }
static void test_finalizers_incremental(void) { finalizers_run(0, 0); }
static void test_finalizers_stw(void) { finalizers_run(WBGC_STW, -1); }
static void test_finalizers_check_mode(void) { finalizers_run(WBGC_CHECK, -1); }

/* The order: in a chain a -> b of finalizable objects, a's finalizer runs
   first and b's a cycle later; a cycle of them is never finalized; an
   object pointing into itself is. */
static void fin_record(wbgc_p *p, void *obj, void *arg)
{
    (void)p;
    (void)obj;
    if (g_fin_norder < 8) g_fin_order[g_fin_norder++] = (uint64_t)(uintptr_t)arg;
    __atomic_fetch_add(&g_fin_runs, 1, __ATOMIC_RELAXED);
}

static NOINLINE void make_shapes(wbgc_p *p)
{
    spnode *a = spnode_new(p, 1), *b = spnode_new(p, 2);     /* chain a -> b */
    spnode *c = spnode_new(p, 3), *d = spnode_new(p, 4);     /* cycle c <-> d */
    spnode *e = spnode_new(p, 5);                           /* e -> e */
    if (!a || !b || !c || !d || !e) return;
    wbgc_write(p, &a->next, b);
    wbgc_write(p, &c->next, d);
    wbgc_write(p, &d->next, c);
    wbgc_write(p, &e->next, e);
    wbgc_set_finalizer(p, a, fin_record, (void *)1);
    wbgc_set_finalizer(p, b, fin_record, (void *)2);
    wbgc_set_finalizer(p, c, fin_record, (void *)3);
    wbgc_set_finalizer(p, d, fin_record, (void *)4);
    wbgc_set_finalizer(p, e, fin_record, (void *)5);
}

static void test_finalizer_order(void)
{
    errlog log;
    fin_reset();
    wbgc_heap *h = open_heap(&log, 100, WBGC_FINALIZE_ON_DEMAND, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    make_shapes(p);
    collect_scrubbed(p, 1);
    wbgc_run_finalizers(p, 0);
    int first = g_fin_norder, saw_a = 0, saw_b = 0, saw_e = 0;
    for (int i = 0; i < first; i++) {
        saw_a |= g_fin_order[i] == 1;
        saw_b |= g_fin_order[i] == 2;
        saw_e |= g_fin_order[i] == 5;
    }
    CHECKF(saw_a && !saw_b, "first cycle: a's finalizer %s, b's %s (want a first, b later)",
           saw_a ? "ran" : "did not run", saw_b ? "ran" : "did not run");
    CHECKF(saw_e, "an object pointing to itself was not finalized");
    collect_scrubbed(p, 2);
    wbgc_run_finalizers(p, 0);
    saw_b = 0;
    int cyc = 0;
    for (int i = first; i < g_fin_norder; i++) saw_b |= g_fin_order[i] == 2;
    for (int i = 0; i < g_fin_norder; i++) cyc |= g_fin_order[i] == 3 || g_fin_order[i] == 4;
    CHECKF(saw_b, "b's finalizer did not run after a's");
    CHECKF(!cyc, "a cycle of finalizable objects was finalized");
    CHECKF(g_fin_runs == 3, "%llu finalizers ran, want 3 (a, b, e)", (unsigned long long)g_fin_runs);
    CLOSE_HEAP(h, p, &log);
}

/* A finalizer that stores its object where the program reaches it brings
   it back: intact, and not finalized again once dropped again. Its weak
   handle was cleared before the finalizer ran, and stays cleared. */
static spnode *g_resurrected;
static wbgc_weak *g_res_weak;
static int g_res_weak_seen;

static void fin_resurrect(wbgc_p *p, void *obj, void *arg)
{
    (void)arg;
    g_res_weak_seen = wbgc_weak_get(p, g_res_weak) != NULL;
    wbgc_write(p, &g_resurrected, obj);
    __atomic_fetch_add(&g_fin_runs, 1, __ATOMIC_RELAXED);
}

static NOINLINE void make_resurrectable(wbgc_p *p)
{
    spnode *o = spnode_new(p, 77);
    if (!o) return;
    wbgc_write(p, &g_res_weak, wbgc_weak_new(p, o));
    wbgc_set_finalizer(p, o, fin_resurrect, NULL);
}

static void test_finalizer_resurrection(void)
{
    errlog log;
    fin_reset();
    wbgc_heap *h = open_heap(&log, 100, WBGC_FINALIZE_ON_DEMAND, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    REQUIRE(wbgc_add_roots(h, &g_resurrected, sizeof g_resurrected) == 0);
    REQUIRE(wbgc_add_roots(h, &g_res_weak, sizeof g_res_weak) == 0);
    make_resurrectable(p);
    REQUIRE(g_res_weak);
    collect_scrubbed(p, 1);
    wbgc_run_finalizers(p, 0);
    CHECK(g_fin_runs == 1);
    CHECKF(!g_res_weak_seen, "the weak handle still gave the object inside its finalizer");
    REQUIRE(g_resurrected);
    collect_scrubbed(p, 3);
    wbgc_run_finalizers(p, 0);
    CHECKF(spnode_ok(g_resurrected), "the resurrected object was freed");
    CHECKF(wbgc_weak_get(p, g_res_weak) == NULL, "a cleared weak handle came back");
    wbgc_write(p, &g_resurrected, NULL);
    collect_scrubbed(p, 3);
    wbgc_run_finalizers(p, 0);
    CHECKF(g_fin_runs == 1, "the finalizer ran %llu times", (unsigned long long)g_fin_runs);
    wbgc_write(p, &g_res_weak, NULL);
    wbgc_remove_roots(h, &g_resurrected);
    wbgc_remove_roots(h, &g_res_weak);
    CLOSE_HEAP(h, p, &log);
}

/* Without WBGC_FINALIZE_ON_DEMAND the heap's own thread runs them, with a
   P of its own; heap_free stops it. */
static pthread_t g_fin_thread_seen;

static void fin_where(wbgc_p *p, void *obj, void *arg)
{
    (void)arg;
    (void)obj;
    void *x = wbgc_alloc(p, 64);  /* a finalizer may allocate */
    if (x) g_fin_thread_seen = pthread_self();
    __atomic_fetch_add(&g_fin_runs, 1, __ATOMIC_RELEASE);
}

static NOINLINE void make_finalizable_where(wbgc_p *p, int n)
{
    for (int i = 0; i < n; i++) {
        void *o = wbgc_alloc(p, 32);
        if (o) wbgc_set_finalizer(p, o, fin_where, NULL);
    }
}

static void test_finalizer_thread(void)
{
    errlog log;
    fin_reset();
    wbgc_heap *h = open_heap(&log, 100, 0, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    make_finalizable_where(p, 100);
    collect_scrubbed(p, 1);
    uint64_t t0 = now_ns();
    wbgc_blocking_begin(p);
    while (__atomic_load_n(&g_fin_runs, __ATOMIC_ACQUIRE) < 90 && now_ns() - t0 < 10000000000ull)
        sleep_us(1000);
    wbgc_blocking_end(p);
    CHECKF(g_fin_runs >= 90, "the finalizer thread ran %llu of 100 in 10 s",
           (unsigned long long)g_fin_runs);
    CHECK(!pthread_equal(g_fin_thread_seen, pthread_self()));
    CHECK(wbgc_run_finalizers(p, 0) <= 10);
    CLOSE_HEAP(h, p, &log);
}

/* Weak handles: the object while it is reachable, NULL once a cycle found
   it unreachable; one handle per object; counted in the stats. */
static NOINLINE void make_weak_targets(wbgc_p *p, wbgc_weak **w, int n, uint64_t id0)
{
    for (int i = 0; i < n; i++) {
        spnode *o = spnode_new(p, id0 + (uint64_t)i);
        wbgc_write(p, &w[i], o ? wbgc_weak_new(p, o) : NULL);
    }
}

static void weak_run(unsigned flags, int workers)
{
    errlog log;
    wbgc_heap *h = open_heap(&log, 100, flags, workers, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    enum { N = 2000 };
    static spnode *strong[N];
    static wbgc_weak *weak[N], *dead[N];
    REQUIRE(wbgc_add_roots(h, strong, sizeof strong) == 0);
    REQUIRE(wbgc_add_roots(h, weak, sizeof weak) == 0);
    REQUIRE(wbgc_add_roots(h, dead, sizeof dead) == 0);
    for (int i = 0; i < N; i++) {
        spnode *o = spnode_new(p, (uint64_t)i);
        REQUIRE(o);
        wbgc_write(p, &strong[i], o);
        wbgc_write(p, &weak[i], wbgc_weak_new(p, o));
        REQUIRE(weak[i]);
        CHECK(wbgc_weak_new(p, o) == weak[i]);
    }
    make_weak_targets(p, dead, N, 100000);
    collect_scrubbed(p, 2);
    int cleared = 0, wrong = 0;
    for (int i = 0; i < N; i++) {
        wrong += wbgc_weak_get(p, weak[i]) != strong[i];
        cleared += wbgc_weak_get(p, dead[i]) == NULL;
    }
    CHECKF(wrong == 0, "%d weak handles of reachable objects gave something else", wrong);
    CHECKF(cleared >= N - 20, "only %d of %d weak handles of dead objects cleared", cleared, N);
    wbgc_stats st = get_stats(h);
    CHECKF(st.weak_cleared >= (uint64_t)cleared, "stats: %llu cleared, %d seen",
           (unsigned long long)st.weak_cleared, cleared);
    CHECKF(st.weak_live <= (uint64_t)(2 * N - cleared), "stats: %llu live",
           (unsigned long long)st.weak_live);
    /* every other object dropped: its handle clears, the rest stay */
    for (int i = 0; i < N; i += 2) wbgc_write(p, &strong[i], NULL);
    collect_scrubbed(p, 2);
    int kept = 0, gone = 0;
    for (int i = 0; i < N; i++) {
        spnode *o = wbgc_weak_get(p, weak[i]);
        if (i % 2) kept += o == strong[i] && spnode_ok(o);
        else gone += o == NULL;
    }
    CHECKF(kept == N / 2, "%d of %d reachable objects still behind their handles", kept, N / 2);
    CHECKF(gone >= N / 2 - 20, "%d of %d dropped objects' handles cleared", gone, N / 2);
    CHECK(wbgc_weak_get(p, NULL) == NULL);
    memset(strong, 0, sizeof strong);
    memset(weak, 0, sizeof weak);
    memset(dead, 0, sizeof dead);
    wbgc_remove_roots(h, strong);
    wbgc_remove_roots(h, weak);
    wbgc_remove_roots(h, dead);
    CLOSE_HEAP(h, p, &log);
}
static void test_weak_concurrent(void) { weak_run(0, -1); }
static void test_weak_incremental(void) { weak_run(0, 0); }
static void test_weak_stw(void) { weak_run(WBGC_STW, -1); }
static void test_weak_check_mode(void) { weak_run(WBGC_CHECK, -1); }

/* Bad objects are reported, and nothing changes. */
static void test_specials_misuse(void)
{
    errlog log;
    wbgc_heap *h = open_heap(&log, 100, WBGC_FINALIZE_ON_DEMAND, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    char *o = wbgc_alloc(p, 64);
    static long not_heap;
    CHECK(wbgc_set_finalizer(p, o + 8, fin_count, NULL) == -1);
    CHECK(errlog_has_ptr(&log, 0, o + 8));
    CHECK(wbgc_set_finalizer(p, &not_heap, fin_count, NULL) == -1);
    CHECK(wbgc_weak_new(p, NULL) == NULL);
    CHECK(wbgc_weak_new(p, o + 16) == NULL);
    CHECKF(errlog_count(&log) == 4, "%d reports, want 4", errlog_count(&log));
    CHECK(get_stats(h).finalizers_pending == 0 && get_stats(h).weak_live == 0);
    CLOSE_HEAP_ERRS_OK(h, p, &log);
}

/* The stress test of finalizers and weak handles: threads racing the
   marker register finalizers, make handles, drop objects, and get them
   back through their handles (keeping some: a weak get during a mark must
   shade what it gives, or the object is freed under its new holder).
   Every object has check words; a finalizer or a get that finds them
   wrong, or a handle cleared while its object is held, fails the test. */
enum { SPS_SLOTS = 512 };
typedef struct sps_thread {
    wbgc_heap *h;
    unsigned seed;
    spnode *strong[SPS_SLOTS];      /* registered: a root region */
    wbgc_weak *weak[SPS_SLOTS];
    uint64_t gets, hits, revived, cleared_held, broken, fins, made;
} sps_thread;
static int g_sps_stop;  /* atomic */
static uint64_t g_sps_fin_runs, g_sps_fin_bad;
static spnode *g_sps_back[64];      /* finalizers bring some objects back here */
static pthread_mutex_t g_sps_back_mu = PTHREAD_MUTEX_INITIALIZER;

/* sps_clear_back drops what the finalizers brought back (they may still
   be running on the heap's thread) */
static void sps_clear_back(wbgc_p *p)
{
    pthread_mutex_lock(&g_sps_back_mu);
    for (int i = 0; i < 64; i++) wbgc_write(p, &g_sps_back[i], NULL);
    pthread_mutex_unlock(&g_sps_back_mu);
}

static void sps_fin(wbgc_p *p, void *obj, void *arg)
{
    (void)arg;
    spnode *n = obj;
    if (!spnode_ok(n)) __atomic_fetch_add(&g_sps_fin_bad, 1, __ATOMIC_RELAXED);
    uint64_t k = __atomic_fetch_add(&g_sps_fin_runs, 1, __ATOMIC_RELAXED);
    if (k % 5 == 0) {  /* resurrect; the heap's finalizer thread and the main
                          thread's wbgc_run_finalizers may both be here */
        pthread_mutex_lock(&g_sps_back_mu);  /* no safepoint while held */
        wbgc_write(p, &g_sps_back[k / 5 % 64], n);
        pthread_mutex_unlock(&g_sps_back_mu);
    }
}

static unsigned sps_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

static void *sps_main(void *arg)
{
    sps_thread *t = arg;
    wbgc_p *p = wbgc_attach(t->h);
    if (!p) return NULL;
    uint64_t id = (uint64_t)t->seed << 32;
    while (!__atomic_load_n(&g_sps_stop, __ATOMIC_RELAXED)) {
        unsigned r = sps_rand(&t->seed), i = r % SPS_SLOTS;
        switch ((r >> 12) % 8) {
        case 0: case 1: {  /* a new object, with a handle, some finalizable */
            spnode *o = spnode_new(p, ++id);
            if (!o) break;
            wbgc_weak *w = wbgc_weak_new(p, o);
            if ((r >> 20) % 3 == 0) wbgc_set_finalizer(p, o, sps_fin, NULL);
            wbgc_write(p, &t->strong[i], o);
            wbgc_write(p, &t->weak[i], w);
            t->made++;
            break;
        }
        case 2:  /* drop the strong reference: the handle may clear */
            wbgc_write(p, &t->strong[i], NULL);
            break;
        default: {  /* get through the handle, check, sometimes keep */
            spnode *o = wbgc_weak_get(p, t->weak[i]);
            spnode *held = t->strong[i];
            t->gets++;
            if (held && o != held) t->cleared_held++;
            if (!o) break;
            t->hits++;
            for (int k = 0; k < 4; k++) (void)wbgc_alloc(p, 48);  /* held on the stack only */
            if (!spnode_ok(o)) t->broken++;
            if (!held && (r >> 20) % 2 == 0) {  /* revive: store it back */
                wbgc_write(p, &t->strong[i], o);
                t->revived++;
            }
        }
        }
    }
    wbgc_detach(p);
    return NULL;
}

/* open_stress_heap: a heap for the many-cycle tests of the runtime
   features: the stress gc_percent, a 1 MiB floor, on_error into log. */
static wbgc_heap *open_stress_heap(errlog *log, unsigned flags, int workers)
{
    wbgc_config cfg;
    errlog_init(log);
    wbgc_config_default(&cfg);
    cfg.gc_percent = g_stress_gc_percent;
    cfg.min_heap = 1 * MB;
    cfg.flags = flags | g_extra_flags;
    cfg.mark_workers = workers;
    cfg.on_error = errlog_cb;
    cfg.user = log;
    return wbgc_heap_new(&cfg);
}

static void specials_stress_run(unsigned flags, int workers)
{
    errlog log;
    wbgc_heap *h = open_stress_heap(&log, flags, workers);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    __atomic_store_n(&g_sps_stop, 0, __ATOMIC_RELAXED);
    g_sps_fin_runs = g_sps_fin_bad = 0;
    memset(g_sps_back, 0, sizeof g_sps_back);
    REQUIRE(wbgc_add_roots(h, g_sps_back, sizeof g_sps_back) == 0);
    enum { NT = 2 };
    static sps_thread th[NT];
    pthread_t tid[NT];
    memset(th, 0, sizeof th);
    for (int i = 0; i < NT; i++) {
        th[i].h = h;
        th[i].seed = (unsigned)g_stress_seed * 7919u + (unsigned)i + 1;
        CHECK(wbgc_add_roots(h, th[i].strong, sizeof th[i].strong) == 0);
        CHECK(wbgc_add_roots(h, th[i].weak, sizeof th[i].weak) == 0);
    }
    wbgc_stats s0 = get_stats(h);
    for (int i = 0; i < NT; i++) REQUIRE(pthread_create(&tid[i], NULL, sps_main, &th[i]) == 0);
    wbgc_blocking_begin(p);
    sleep_us((long)(g_stress_secs * 1e6));
    __atomic_store_n(&g_sps_stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < NT; i++) pthread_join(tid[i], NULL);
    wbgc_blocking_end(p);
    uint64_t gets = 0, hits = 0, revived = 0, bad_clear = 0, broken = 0, made = 0;
    for (int i = 0; i < NT; i++) {
        gets += th[i].gets;
        hits += th[i].hits;
        revived += th[i].revived;
        bad_clear += th[i].cleared_held;
        broken += th[i].broken;
        made += th[i].made;
    }
    wbgc_stats s1 = get_stats(h);
    CHECKF(bad_clear == 0, "%llu weak gets gave NULL or another object while the object was held",
           (unsigned long long)bad_clear);
    CHECKF(broken == 0, "%llu objects got through weak handles were broken (freed)",
           (unsigned long long)broken);
    CHECKF(g_sps_fin_bad == 0, "%llu finalizers saw a broken object", (unsigned long long)g_sps_fin_bad);
    CHECKF(s1.cycles - s0.cycles >= 10, "only %llu cycles", (unsigned long long)(s1.cycles - s0.cycles));
    CHECK(revived > 0 && hits > 0);
    /* all that is still held is intact; then everything goes */
    int held_bad = 0;
    for (int i = 0; i < NT; i++)
        for (int k = 0; k < SPS_SLOTS; k++)
            if (th[i].strong[k]) {
                held_bad += !spnode_ok(th[i].strong[k]);
                held_bad += wbgc_weak_get(p, th[i].weak[k]) != th[i].strong[k];
            }
    CHECKF(held_bad == 0, "%d held objects broken or not behind their handles", held_bad);
    for (int i = 0; i < NT; i++) memset(th[i].strong, 0, sizeof th[i].strong);
    sps_clear_back(p);
    for (int k = 0; k < 4; k++) {
        collect_scrubbed(p, 1);
        wbgc_run_finalizers(p, 0);  /* with the thread: whatever it left */
    }
    wbgc_blocking_begin(p);
    for (int k = 0; k < 500; k++) {  /* the finalizer thread's last ones */
        wbgc_stats s = get_stats(h);
        if (s.finalizers_run == s.finalizers_queued) break;
        sleep_us(10000);
    }
    wbgc_blocking_end(p);
    sps_clear_back(p);
    collect_scrubbed(p, 3);
    int live = 0, total = 0;
    for (int i = 0; i < NT; i++)
        for (int k = 0; k < SPS_SLOTS; k++)
            if (th[i].weak[k]) total++, live += wbgc_weak_get(p, th[i].weak[k]) != NULL;
    wbgc_stats s2 = get_stats(h);
    CHECKF(live <= total / 20, "%d of %d handles still give an object after everything was dropped",
           live, total);
    CHECKF(s2.finalizers_run == s2.finalizers_queued, "%llu finalizers queued, %llu run",
           (unsigned long long)s2.finalizers_queued, (unsigned long long)s2.finalizers_run);
    note("%.1f s: %llu cycles, %llu objects, %llu weak gets (%llu hits, %llu revived), %llu "
         "finalizers run, %llu handles cleared; at the end %d of %d handles live",
         g_stress_secs, (unsigned long long)(s1.cycles - s0.cycles), (unsigned long long)made,
         (unsigned long long)gets, (unsigned long long)hits, (unsigned long long)revived,
         (unsigned long long)s2.finalizers_run, (unsigned long long)s2.weak_cleared, live, total);
    for (int i = 0; i < NT; i++) {
        memset(th[i].weak, 0, sizeof th[i].weak);
        wbgc_remove_roots(h, th[i].strong);
        wbgc_remove_roots(h, th[i].weak);
    }
    wbgc_remove_roots(h, g_sps_back);
    CLOSE_HEAP(h, p, &log);
}
static void test_stress_specials_concurrent(void) { specials_stress_run(0, -1); }
static void test_stress_specials_incremental(void) { specials_stress_run(0, 0); }
static void test_stress_specials_stw(void) { specials_stress_run(WBGC_STW, -1); }
static void test_stress_specials_check(void) { specials_stress_run(WBGC_CHECK, -1); }
static void test_stress_specials_on_demand(void) { specials_stress_run(WBGC_FINALIZE_ON_DEMAND, -1); }

/* =========================================================================
   Ephemerons
   ========================================================================= */

/* A key and a value for ephemeron tests: the value points back to its key
   (so a strong pair would keep both for ever) and to the next key (chains). */
typedef struct ekey { uint64_t id, check; } ekey;
typedef struct evalue {
    uint64_t id, check;
    ekey *key, *next_key;
} evalue;

static NOINLINE wbgc_ephemeron *eph_make(wbgc_p *p, uint64_t id, ekey **key_out)
{
    /* keys with odd ids are noscan: the marker must still see them marked */
    ekey *k = id % 2 ? wbgc_alloc_noscan(p, sizeof *k) : wbgc_alloc(p, sizeof *k);
    evalue *v = wbgc_alloc(p, sizeof *v);
    if (!k || !v) return NULL;
    k->id = v->id = id;
    k->check = fcheck(id);
    v->check = fcheck(id) + 2;
    wbgc_write(p, &v->key, k);
    *key_out = k;
    return wbgc_ephemeron_new(p, k, v);
}

static int eph_ok(wbgc_p *p, wbgc_ephemeron *e, const ekey *k)
{
    const evalue *v = wbgc_ephemeron_value(p, e);
    return wbgc_ephemeron_key(p, e) == k && v && v->key == k && k->check == fcheck(k->id) &&
           v->id == k->id && v->check == fcheck(k->id) + 2;
}

/* Keys held: keys and values live. Keys dropped: both read NULL, and the
   values, which point back to their keys, are collected. In every mode. */
static void ephemeron_run(unsigned flags, int workers)
{
    errlog log;
    wbgc_heap *h = open_heap(&log, 100, flags, workers, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    enum { N = 4000 };
    static wbgc_ephemeron *eph[N];
    static ekey *keys[N];
    static wbgc_weak *vweak[N];
    REQUIRE(wbgc_add_roots(h, eph, sizeof eph) == 0);
    REQUIRE(wbgc_add_roots(h, keys, sizeof keys) == 0);
    REQUIRE(wbgc_add_roots(h, vweak, sizeof vweak) == 0);
    for (int i = 0; i < N; i++) {
        ekey *k;
        wbgc_ephemeron *e = eph_make(p, (uint64_t)i + 1, &k);
        REQUIRE(e);
        wbgc_write(p, &eph[i], e);
        wbgc_write(p, &keys[i], k);
        wbgc_write(p, &vweak[i], wbgc_weak_new(p, wbgc_ephemeron_value(p, e)));
    }
    collect_scrubbed(p, 2);
    int bad = 0;
    for (int i = 0; i < N; i++) bad += !eph_ok(p, eph[i], keys[i]);
    CHECKF(bad == 0, "%d of %d ephemerons with live keys lost their key or value", bad, N);
    for (int i = 0; i < N; i += 2) wbgc_write(p, &keys[i], NULL);  /* every other key dies */
    collect_scrubbed(p, 2);
    int kept = 0, cleared = 0, values_gone = 0;
    for (int i = 0; i < N; i++) {
        if (i % 2) {
            kept += eph_ok(p, eph[i], keys[i]);
            continue;
        }
        cleared += wbgc_ephemeron_key(p, eph[i]) == NULL && wbgc_ephemeron_value(p, eph[i]) == NULL;
        values_gone += wbgc_weak_get(p, vweak[i]) == NULL;
    }
    CHECKF(kept == N / 2, "%d of %d ephemerons with live keys intact", kept, N / 2);
    CHECKF(cleared >= N / 2 - 20, "%d of %d ephemerons of dead keys cleared", cleared, N / 2);
    CHECKF(values_gone >= N / 2 - 20, "%d of %d values of dead keys collected (each points back to "
           "its key: an ephemeron that held it strongly would keep both)", values_gone, N / 2);
    /* set_value: a live key's new value is kept, a dead key's is refused */
    evalue *nv = wbgc_alloc(p, sizeof *nv);
    REQUIRE(nv);
    nv->id = 1u << 30;
    wbgc_ephemeron_set_value(p, eph[1], nv);
    wbgc_ephemeron_set_value(p, eph[0], nv);
    nv = NULL;
    collect_scrubbed(p, 2);
    evalue *got = wbgc_ephemeron_value(p, eph[1]);
    CHECK(got && got->id == 1u << 30);
    CHECK(wbgc_ephemeron_value(p, eph[0]) == NULL);
    memset(eph, 0, sizeof eph);
    memset(keys, 0, sizeof keys);
    memset(vweak, 0, sizeof vweak);
    wbgc_remove_roots(h, eph);
    wbgc_remove_roots(h, keys);
    wbgc_remove_roots(h, vweak);
    CLOSE_HEAP(h, p, &log);
}
static void test_ephemerons_concurrent(void) { ephemeron_run(0, -1); }
static void test_ephemerons_incremental(void) { ephemeron_run(0, 0); }
static void test_ephemerons_stw(void) { ephemeron_run(WBGC_STW, -1); }
static void test_ephemerons_check_mode(void) { ephemeron_run(WBGC_CHECK, -1); }

/* A chain: value i points to key i+1, only key 0 is held, the ephemerons
   listed backwards (the marker meets each before its key is marked). The
   whole chain lives while key 0 does, and dies with it. */
static NOINLINE int eph_chain(wbgc_p *p, wbgc_ephemeron **eph, int n, ekey **first)
{
    ekey *next = NULL;
    for (int i = n - 1; i >= 0; i--) {
        ekey *k;
        wbgc_ephemeron *e = eph_make(p, (uint64_t)i + 1, &k);
        if (!e) return 0;
        evalue *v = wbgc_ephemeron_value(p, e);
        wbgc_write(p, &v->next_key, next);
        wbgc_write(p, &eph[n - 1 - i], e);
        next = k;
    }
    wbgc_write(p, first, next);
    return next != NULL;
}

/* in a helper: the values it looks at stay out of the caller's frame */
static NOINLINE int eph_chain_alive(wbgc_p *p, wbgc_ephemeron **eph, int n)
{
    int alive = 0;
    for (int i = 0; i < n; i++) {
        evalue *v = wbgc_ephemeron_value(p, eph[i]);
        alive += v && v->check == fcheck(v->id) + 2 && wbgc_ephemeron_key(p, eph[i]) == v->key;
    }
    return alive;
}

/* The chain is built and checked on threads of their own, joined before
   the main thread collects: no stale copy of a key on the main thread's
   stack or in its registers (on aarch64 one was left) can keep the chain
   alive after its first key is dropped. */
typedef struct eph_chain_job {
    wbgc_heap *h;
    wbgc_ephemeron **eph;
    ekey **first;
    int n, result, build;
} eph_chain_job;

static void *eph_chain_thread(void *arg)
{
    eph_chain_job *j = arg;
    wbgc_p *p = wbgc_attach(j->h);
    if (!p) return NULL;
    j->result = j->build ? eph_chain(p, j->eph, j->n, j->first) : eph_chain_alive(p, j->eph, j->n);
    wbgc_detach(p);
    return NULL;
}

static int eph_chain_on_thread(wbgc_p *p, eph_chain_job *j)
{
    pthread_t t;
    if (pthread_create(&t, NULL, eph_chain_thread, j) != 0) return -1;
    join_blocking(p, t);
    return j->result;
}

static void ephemeron_chain_run(unsigned flags, int workers)
{
    errlog log;
    wbgc_heap *h = open_heap(&log, 100, flags, workers, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    enum { N = 20000 };
    static wbgc_ephemeron *eph[N];
    static ekey *first;
    REQUIRE(wbgc_add_roots(h, eph, sizeof eph) == 0);
    REQUIRE(wbgc_add_roots(h, &first, sizeof first) == 0);
    eph_chain_job job = {h, eph, &first, N, 0, 1};
    REQUIRE(eph_chain_on_thread(p, &job) == 1);
    collect_scrubbed(p, 2);
    job.build = 0;
    int alive = eph_chain_on_thread(p, &job);
    CHECKF(alive == N, "%d of %d links of a chain from a live key alive", alive, N);
    wbgc_write(p, &first, NULL);
    collect_scrubbed(p, 3);
    int dead = 0;
    for (int i = 0; i < N; i++) dead += wbgc_ephemeron_key(p, eph[i]) == NULL;
    CHECKF(dead >= N - 50, "%d of %d links cleared after the chain's first key died", dead, N);
    note("chain of %d: all alive while held, %d cleared once dropped", N, dead);
    memset(eph, 0, sizeof eph);
    wbgc_remove_roots(h, eph);
    wbgc_remove_roots(h, &first);
    CLOSE_HEAP(h, p, &log);
}

static void test_ephemeron_chain_concurrent(void) { ephemeron_chain_run(0, -1); }
static void test_ephemeron_chain_incremental(void) { ephemeron_chain_run(0, 0); }
static void test_ephemeron_chain_stw(void) { ephemeron_chain_run(WBGC_STW, -1); }

/* Threads racing the marker build ephemeron chains and break them: each
   holds some keys (a registered region) and a table of ephemerons; values
   link to other ephemerons' keys. Whatever a held key reaches through
   ephemerons must be intact: each get checks the value, and walks a few
   links further. */
enum { ESS_N = 1024, ESS_HELD = 64 };
typedef struct ess_thread {
    wbgc_heap *h;
    unsigned seed;
    wbgc_ephemeron *eph[ESS_N];   /* registered */
    ekey *held[ESS_HELD];         /* registered */
    uint64_t made, gets, walks, broken, lost;
} ess_thread;
static int g_ess_stop;  /* atomic */

static void *ess_main(void *arg)
{
    ess_thread *t = arg;
    wbgc_p *p = wbgc_attach(t->h);
    if (!p) return NULL;
    uint64_t id = (uint64_t)t->seed << 32;
    while (!__atomic_load_n(&g_ess_stop, __ATOMIC_RELAXED)) {
        unsigned r = sps_rand(&t->seed), i = r % ESS_N;
        switch ((r >> 12) % 6) {
        case 0: {  /* a new ephemeron, its value linked to another's key */
            ekey *k;
            wbgc_ephemeron *e = eph_make(p, ++id, &k);
            if (!e) break;
            wbgc_ephemeron *o = t->eph[(r >> 3) % ESS_N];
            ekey *ok = o ? wbgc_ephemeron_key(p, o) : NULL;
            evalue *v = wbgc_ephemeron_value(p, e);
            if (v) wbgc_write(p, &v->next_key, ok);
            wbgc_write(p, &t->eph[i], e);
            if ((r >> 20) % 2) wbgc_write(p, &t->held[(r >> 21) % ESS_HELD], k);
            t->made++;
            break;
        }
        case 1:  /* let a key go */
            wbgc_write(p, &t->held[i % ESS_HELD], NULL);
            break;
        case 2: {  /* hold the key of some ephemeron (found alive) */
            wbgc_ephemeron *e = t->eph[i];
            ekey *k = e ? wbgc_ephemeron_key(p, e) : NULL;
            if (k) wbgc_write(p, &t->held[(r >> 20) % ESS_HELD], k);
            break;
        }
        default: {  /* get, check, walk the links */
            wbgc_ephemeron *e = t->eph[i];
            if (!e) break;
            t->gets++;
            ekey *k = wbgc_ephemeron_key(p, e);
            evalue *v = wbgc_ephemeron_value(p, e);
            if (!k != !v) t->lost++;  /* both or neither */
            for (int hop = 0; v && hop < 4; hop++) {
                for (int a = 0; a < 2; a++) (void)wbgc_alloc(p, 48);  /* held on the stack only */
                if (v->check != fcheck(v->id) + 2 || v->key != k || k->check != fcheck(k->id)) {
                    t->broken++;
                    break;
                }
                t->walks++;
                k = v->next_key;  /* alive: v is, and v points to it strongly */
                if (!k) break;
                if (k->check != fcheck(k->id)) {
                    t->broken++;
                    break;
                }
                v = NULL;  /* the value of k's ephemeron is not known from k alone */
            }
        }
        }
    }
    wbgc_detach(p);
    return NULL;
}

static void ephemeron_stress_run(unsigned flags, int workers)
{
    errlog log;
    wbgc_heap *h = open_stress_heap(&log, flags, workers);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    enum { NT = 2 };
    static ess_thread th[NT];
    pthread_t tid[NT];
    memset(th, 0, sizeof th);
    __atomic_store_n(&g_ess_stop, 0, __ATOMIC_RELAXED);
    for (int i = 0; i < NT; i++) {
        th[i].h = h;
        th[i].seed = (unsigned)g_stress_seed * 104729u + (unsigned)i + 1;
        CHECK(wbgc_add_roots(h, th[i].eph, sizeof th[i].eph) == 0);
        CHECK(wbgc_add_roots(h, th[i].held, sizeof th[i].held) == 0);
    }
    wbgc_stats s0 = get_stats(h);
    for (int i = 0; i < NT; i++) REQUIRE(pthread_create(&tid[i], NULL, ess_main, &th[i]) == 0);
    wbgc_blocking_begin(p);
    sleep_us((long)(g_stress_secs * 1e6));
    __atomic_store_n(&g_ess_stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < NT; i++) pthread_join(tid[i], NULL);
    wbgc_blocking_end(p);
    wbgc_stats s1 = get_stats(h);
    uint64_t made = 0, gets = 0, walks = 0, broken = 0, lost = 0;
    for (int i = 0; i < NT; i++) {
        made += th[i].made, gets += th[i].gets, walks += th[i].walks;
        broken += th[i].broken, lost += th[i].lost;
    }
    CHECKF(broken == 0, "%llu values or keys reached through ephemerons were broken (freed)",
           (unsigned long long)broken);
    CHECKF(lost == 0, "%llu ephemerons gave a key without a value or the reverse",
           (unsigned long long)lost);
    CHECKF(s1.cycles - s0.cycles >= 10, "only %llu cycles", (unsigned long long)(s1.cycles - s0.cycles));
    /* every held key: its ephemerons' values are all there */
    int bad = 0;
    for (int i = 0; i < NT; i++)
        for (int k = 0; k < ESS_N; k++) {
            wbgc_ephemeron *e = th[i].eph[k];
            ekey *key = e ? wbgc_ephemeron_key(p, e) : NULL;
            evalue *v = e ? wbgc_ephemeron_value(p, e) : NULL;
            if (key && (!v || v->key != key || v->check != fcheck(v->id) + 2)) bad++;
        }
    CHECKF(bad == 0, "%d ephemerons with a live key lost their value", bad);
    /* drop the held keys: every ephemeron clears */
    for (int i = 0; i < NT; i++) memset(th[i].held, 0, sizeof th[i].held);
    collect_scrubbed(p, 3);
    int live = 0, total = 0;
    for (int i = 0; i < NT; i++)
        for (int k = 0; k < ESS_N; k++)
            if (th[i].eph[k]) total++, live += wbgc_ephemeron_key(p, th[i].eph[k]) != NULL;
    CHECKF(live <= total / 20, "%d of %d ephemerons still have a key after every key was dropped",
           live, total);
    note("%.1f s: %llu cycles, %llu ephemerons made, %llu gets, %llu links walked; at the end %d "
         "of %d keys alive", g_stress_secs, (unsigned long long)(s1.cycles - s0.cycles),
         (unsigned long long)made, (unsigned long long)gets, (unsigned long long)walks, live, total);
    for (int i = 0; i < NT; i++) {
        memset(th[i].eph, 0, sizeof th[i].eph);
        wbgc_remove_roots(h, th[i].eph);
        wbgc_remove_roots(h, th[i].held);
    }
    CLOSE_HEAP(h, p, &log);
}
static void test_stress_ephemerons_concurrent(void) { ephemeron_stress_run(0, -1); }
static void test_stress_ephemerons_incremental(void) { ephemeron_stress_run(0, 0); }
static void test_stress_ephemerons_stw(void) { ephemeron_stress_run(WBGC_STW, -1); }
static void test_stress_ephemerons_check(void) { ephemeron_stress_run(WBGC_CHECK, -1); }

static void test_ephemeron_misuse(void)
{
    errlog log;
    wbgc_heap *h = open_heap(&log, 100, 0, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    char *o = wbgc_alloc(p, 64);
    CHECK(wbgc_ephemeron_new(p, NULL, o) == NULL);
    CHECK(wbgc_ephemeron_new(p, o + 8, o) == NULL);
    CHECK(errlog_count(&log) == 2);
    CHECK(wbgc_ephemeron_key(p, NULL) == NULL && wbgc_ephemeron_value(p, NULL) == NULL);
    CLOSE_HEAP_ERRS_OK(h, p, &log);
}

/* ---- disappearing links, rescanned roots, object queries and settings --- */

/* A link is cleared in the pause that finds its object dead, before that
   object's finalizer runs, and never while the object lives; a link inside
   a dead object goes with it; an unregistered link is left alone. */
enum { LK_N = 2000 };
static spnode *g_lk_strong[LK_N];      /* a root region */
static uintptr_t g_lk_link[LK_N];      /* links in memory nothing scans */
static uintptr_t *g_lk_holder[LK_N];   /* a root region: noscan holders of a hidden link */
static uint64_t g_lk_fin_runs, g_lk_fin_bad;

/* the finalizer of a self-linked object: its link (next) must be cleared */
static void lk_fin(wbgc_p *p, void *obj, void *arg)
{
    (void)p;
    (void)arg;
    spnode *n = obj;
    g_lk_fin_runs++;
    if (n->next != NULL || !spnode_ok(n)) g_lk_fin_bad++;
}

static NOINLINE void links_make(wbgc_p *p)
{
    for (int i = 0; i < LK_N; i++) {
        spnode *o = spnode_new(p, (uint64_t)i);
        REQUIRE(o);
        if (i % 2 == 0) wbgc_write(p, &g_lk_strong[i], o);
        g_lk_link[i] = (uintptr_t)o;
        CHECK(wbgc_link_register(p, (void **)&g_lk_link[i], o) == 0);
        uintptr_t *hd = wbgc_alloc_noscan(p, 2 * sizeof *hd);
        REQUIRE(hd);
        hd[0] = ~(uintptr_t)o;  /* hidden, as Boehm programs keep them */
        wbgc_write(p, &g_lk_holder[i], hd);
        CHECK(wbgc_link_register(p, (void **)&hd[0], o) == 0);
        spnode *s = spnode_new(p, 1000000 + (uint64_t)i);  /* dropped: its link inside it */
        REQUIRE(s);
        s->next = (spnode *)~(uintptr_t)s;
        CHECK(wbgc_link_register(p, (void **)&s->next, s) == 0);
        CHECK(wbgc_set_finalizer(p, s, lk_fin, NULL) == 0);
    }
    CHECK(wbgc_link_register(p, (void **)&g_lk_link[0], g_lk_strong[0]) == 1);  /* again */
}

static void links_run(unsigned flags, int workers)
{
    errlog log;
    wbgc_heap *h = open_heap(&log, 100, flags | WBGC_FINALIZE_ON_DEMAND, workers, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    g_lk_fin_runs = g_lk_fin_bad = 0;
    REQUIRE(wbgc_add_roots(h, g_lk_strong, sizeof g_lk_strong) == 0);
    REQUIRE(wbgc_add_roots(h, g_lk_holder, sizeof g_lk_holder) == 0);
    links_make(p);
    collect_scrubbed(p, 2);
    wbgc_run_finalizers(p, 0);
    int wrong = 0, cleared = 0;
    for (int i = 0; i < LK_N; i++) {
        if (i % 2 == 0) {
            wrong += g_lk_link[i] != (uintptr_t)g_lk_strong[i] || !spnode_ok(g_lk_strong[i]);
            wrong += g_lk_holder[i][0] != ~(uintptr_t)g_lk_strong[i];
        } else {
            cleared += g_lk_link[i] == 0 && g_lk_holder[i][0] == 0;
        }
    }
    CHECKF(wrong == 0, "%d links of reachable objects changed", wrong);
    CHECKF(cleared >= LK_N / 2 - 20, "only %d of %d links of dead objects cleared", cleared, LK_N / 2);
    CHECKF(g_lk_fin_runs >= LK_N - 20, "%llu of %d self-linked objects finalized",
           (unsigned long long)g_lk_fin_runs, LK_N);
    CHECKF(g_lk_fin_bad == 0, "%llu finalizers found their link set or their object broken",
           (unsigned long long)g_lk_fin_bad);
    /* unregistered links stay; registered ones of dropped objects clear */
    for (int i = 0; i < 200; i += 2) {
        if (i < 100) {
            CHECK(wbgc_link_unregister(p, (void **)&g_lk_link[i]) == 1);
            CHECK(wbgc_link_unregister(p, (void **)&g_lk_link[i]) == 0);
        }
        wbgc_write(p, &g_lk_strong[i], NULL);
    }
    /* a holder that dies takes its link with it, though the object lives */
    uintptr_t gone_link[100];
    for (int i = 200, k = 0; i < 400; i += 2, k++) {
        gone_link[k] = ~(uintptr_t)&g_lk_holder[i][0];  /* hidden: the stack is scanned */
        wbgc_write(p, &g_lk_holder[i], NULL);
    }
    collect_scrubbed(p, 2);
    int kept = 0, clear2 = 0, dropped = 0;
    for (int i = 0; i < 200; i += 2) {
        if (i < 100) kept += g_lk_link[i] != 0;
        else clear2 += g_lk_link[i] == 0;
    }
    for (int k = 0; k < 100; k++) dropped += wbgc_link_unregister(p, (void **)~gone_link[k]) == 0;
    CHECKF(kept == 50, "%d of 50 unregistered links kept their value", kept);
    CHECKF(clear2 >= 45, "%d of 50 registered links of dropped objects cleared", clear2);
    CHECKF(dropped >= 95, "%d of 100 links inside dead holders dropped", dropped);
    memset(g_lk_strong, 0, sizeof g_lk_strong);
    memset(g_lk_holder, 0, sizeof g_lk_holder);
    wbgc_remove_roots(h, g_lk_strong);
    wbgc_remove_roots(h, g_lk_holder);
    CLOSE_HEAP(h, p, &log);
}
static void test_links_concurrent(void) { links_run(0, -1); }
static void test_links_incremental(void) { links_run(0, 0); }
static void test_links_stw(void) { links_run(WBGC_STW, -1); }
static void test_links_check_mode(void) { links_run(WBGC_CHECK, -1); }

static void test_links_misuse(void)
{
    errlog log;
    wbgc_heap *h = open_heap(&log, 100, 0, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    char *o = wbgc_alloc(p, 64);
    static void *slot[2];
    CHECK(wbgc_link_register(p, NULL, o) == -1);
    CHECK(wbgc_link_register(p, (void **)((char *)slot + 1), o) == -1);
    CHECK(errlog_has_ptr(&log, 1, (char *)slot + 1));
    CHECK(wbgc_link_register(p, &slot[0], o + 8) == -1);
    CHECK(errlog_has_ptr(&log, 2, o + 8));
    CHECKF(errlog_count(&log) == 3, "%d reports, want 3", errlog_count(&log));
    CHECK(wbgc_link_unregister(p, &slot[0]) == 0 && wbgc_link_unregister(p, NULL) == 0);
    CLOSE_HEAP_ERRS_OK(h, p, &log);
}

/* Threads racing the marker: each re-points links at new objects, holds
   some of them, reads links (after wbgc_links_keep) and uses what it
   read across allocations (safepoints: a cycle may end meanwhile). An
   object got from a link must be intact; a held object's link must not
   clear. */
enum { SLK_SLOTS = 512 };
typedef struct slk_thread {
    wbgc_heap *h;
    uint64_t rng;
    spnode *strong[SLK_SLOTS];      /* a root region */
    uintptr_t link[SLK_SLOTS];      /* hidden links: not scanned */
    uintptr_t target[SLK_SLOTS];    /* what each link was registered for (hidden) */
    uint64_t reads, hits, broken, cleared_held, made;
} slk_thread;
static int g_slk_stop;

static void *slk_main(void *arg)
{
    slk_thread *t = arg;
    wbgc_p *p = wbgc_attach(t->h);
    if (!p) return NULL;
    while (!__atomic_load_n(&g_slk_stop, __ATOMIC_RELAXED)) {
        uint64_t r = rnd(&t->rng);
        int k = (int)(r % SLK_SLOTS);
        switch ((r >> 16) % 4) {
        case 0: {  /* a new object behind link k, held half the time */
            spnode *o = spnode_new(p, t->made++);
            if (!o) break;
            wbgc_write(p, &t->strong[k], (r >> 20) & 1 ? o : NULL);
            t->link[k] = ~(uintptr_t)o;  /* no safepoint before the register */
            t->target[k] = ~(uintptr_t)o;
            if (wbgc_link_register(p, (void **)&t->link[k], o) < 0) t->broken++;
            break;
        }
        case 1: {  /* read link k, use what it gave across allocations */
            wbgc_links_keep(p);
            uintptr_t v = t->link[k];
            t->reads++;
            if (t->strong[k] && t->target[k] == ~(uintptr_t)t->strong[k] && !v) t->cleared_held++;
            if (!v) break;
            spnode *o = (spnode *)~v;
            t->hits++;
            for (int i = 0; i < 8; i++) (void)spnode_new(p, 7);
            if (!spnode_ok(o)) t->broken++;
            break;
        }
        case 2:
            wbgc_write(p, &t->strong[k], NULL);
            break;
        default:
            for (int i = 0; i < 4; i++) (void)wbgc_alloc(p, 64 + (r >> 40) % 512);
        }
    }
    wbgc_detach(p);
    return NULL;
}

static void links_stress_run(unsigned flags, int workers)
{
    errlog log;
    wbgc_heap *h = open_stress_heap(&log, flags, workers);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    enum { NT = 2 };
    static slk_thread th[NT];
    pthread_t tid[NT];
    memset(th, 0, sizeof th);
    __atomic_store_n(&g_slk_stop, 0, __ATOMIC_RELAXED);
    for (int i = 0; i < NT; i++) {
        th[i].h = h;
        th[i].rng = mix64(g_stress_seed * 0x9E3779B97F4A7C15ULL + (uint64_t)i + 1) | 1;
        REQUIRE(wbgc_add_roots(h, th[i].strong, sizeof th[i].strong) == 0);
    }
    wbgc_stats s0 = get_stats(h);
    for (int i = 0; i < NT; i++) REQUIRE(pthread_create(&tid[i], NULL, slk_main, &th[i]) == 0);
    wbgc_blocking_begin(p);
    sleep_us((long)(g_stress_secs * 1e6));
    __atomic_store_n(&g_slk_stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < NT; i++) pthread_join(tid[i], NULL);
    wbgc_blocking_end(p);
    wbgc_stats s1 = get_stats(h);
    uint64_t reads = 0, hits = 0, broken = 0, cleared_held = 0;
    for (int i = 0; i < NT; i++) {
        reads += th[i].reads;
        hits += th[i].hits;
        broken += th[i].broken;
        cleared_held += th[i].cleared_held;
    }
    CHECKF(broken == 0, "%llu objects read through links were broken (freed)", (unsigned long long)broken);
    CHECKF(cleared_held == 0, "%llu links cleared while their object was held",
           (unsigned long long)cleared_held);
    CHECKF(s1.cycles - s0.cycles >= 10, "only %llu cycles", (unsigned long long)(s1.cycles - s0.cycles));
    CHECK(hits > 0);
    /* everything dropped: the links clear */
    for (int i = 0; i < NT; i++) memset(th[i].strong, 0, sizeof th[i].strong);
    collect_scrubbed(p, 2);
    int set = 0;
    for (int i = 0; i < NT; i++)
        for (int k = 0; k < SLK_SLOTS; k++) set += th[i].link[k] != 0;
    CHECKF(set <= NT * SLK_SLOTS / 20, "%d of %d links still set after everything was dropped", set,
           NT * SLK_SLOTS);
    note("%.1f s: %llu cycles, %llu link reads (%llu hits)", g_stress_secs,
         (unsigned long long)(s1.cycles - s0.cycles), (unsigned long long)reads,
         (unsigned long long)hits);
    for (int i = 0; i < NT; i++) wbgc_remove_roots(h, th[i].strong);
    CLOSE_HEAP(h, p, &log);
}
static void test_stress_links_concurrent(void) { links_stress_run(0, -1); }
static void test_stress_links_incremental(void) { links_stress_run(0, 0); }
static void test_stress_links_stw(void) { links_stress_run(WBGC_STW, -1); }
static void test_stress_links_check(void) { links_stress_run(WBGC_CHECK, -1); }

/* A region registered with wbgc_add_roots_rescan takes plain stores in
   every mode: threads shuffle the only pointers to objects around it with
   plain swaps while cycles run; every object stays intact, and the
   verifier (on here) finds none lost. With wbgc_add_roots instead, the
   concurrent mark loses objects moved from an unscanned slot to a
   scanned one (tests/mutate.sh: roots-no-rescan). */
enum { RS_SLOTS = 1 << 15 };
static spnode *g_rs_slots[RS_SLOTS];
static int g_rs_stop;
typedef struct rs_thread { wbgc_heap *h; uint64_t rng, broken, swaps; } rs_thread;

static void *rs_main(void *arg)
{
    rs_thread *t = arg;
    wbgc_p *p = wbgc_attach(t->h);
    if (!p) return NULL;
    while (!__atomic_load_n(&g_rs_stop, __ATOMIC_RELAXED)) {
        uint64_t r = rnd(&t->rng);
        size_t i = r % RS_SLOTS, j = (r >> 20) % RS_SLOTS;
        /* no barrier: the moves are plain stores as far as wbgc knows
           (atomic only so that the threads publish what they made) */
        spnode *a = __atomic_load_n(&g_rs_slots[i], __ATOMIC_ACQUIRE);
        spnode *b = __atomic_exchange_n(&g_rs_slots[j], a, __ATOMIC_ACQ_REL);
        __atomic_store_n(&g_rs_slots[i], b, __ATOMIC_RELEASE);
        t->swaps++;
        if ((r >> 40) % 16 == 0) {  /* replace one: allocation, cycles */
            spnode *o = spnode_new(p, r >> 44);
            if (!o) continue;
            spnode *old = __atomic_exchange_n(&g_rs_slots[i], o, __ATOMIC_ACQ_REL);
            if (old && !spnode_ok(old)) t->broken++;
        } else if ((r >> 40) % 16 == 1) {
            wbgc_safepoint(p);  /* swaps alone allocate nothing */
        }
    }
    wbgc_detach(p);
    return NULL;
}

static void roots_rescan_run(unsigned flags, int workers)
{
    errlog log;
    wbgc_heap *h = open_stress_heap(&log, flags | WBGC_VERIFY, workers);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    REQUIRE(wbgc_add_roots_rescan(h, g_rs_slots, sizeof g_rs_slots) == 0);
    for (size_t i = 0; i < RS_SLOTS; i++) {
        spnode *o = spnode_new(p, i);
        REQUIRE(o);
        __atomic_store_n(&g_rs_slots[i], o, __ATOMIC_RELAXED);
    }
    enum { NT = 2 };
    static rs_thread th[NT];
    pthread_t tid[NT];
    __atomic_store_n(&g_rs_stop, 0, __ATOMIC_RELAXED);
    for (int i = 0; i < NT; i++) {
        memset(&th[i], 0, sizeof th[i]);
        th[i].h = h;
        th[i].rng = mix64(g_stress_seed * 0x9E3779B97F4A7C15ULL + (uint64_t)i + 7) | 1;
    }
    wbgc_stats s0 = get_stats(h);
    for (int i = 0; i < NT; i++) REQUIRE(pthread_create(&tid[i], NULL, rs_main, &th[i]) == 0);
    wbgc_blocking_begin(p);
    sleep_us((long)(g_stress_secs * 1e6));
    __atomic_store_n(&g_rs_stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < NT; i++) pthread_join(tid[i], NULL);
    wbgc_blocking_end(p);
    wbgc_stats s1 = get_stats(h);
    uint64_t broken = 0, swaps = 0;
    for (int i = 0; i < NT; i++) broken += th[i].broken, swaps += th[i].swaps;
    int bad = 0;
    for (size_t i = 0; i < RS_SLOTS; i++) bad += g_rs_slots[i] && !spnode_ok(g_rs_slots[i]);
    CHECKF(broken + (uint64_t)bad == 0, "%llu objects broken (freed while only the region held them)",
           (unsigned long long)(broken + (uint64_t)bad));
    CHECKF(s1.verify_lost == 0, "the verifier found %llu objects lost",
           (unsigned long long)s1.verify_lost);
    CHECKF(s1.cycles - s0.cycles >= 3, "only %llu cycles", (unsigned long long)(s1.cycles - s0.cycles));
    note("%.1f s: %llu cycles, %llu plain swaps", g_stress_secs,
         (unsigned long long)(s1.cycles - s0.cycles), (unsigned long long)swaps);
    memset(g_rs_slots, 0, sizeof g_rs_slots);
    wbgc_remove_roots(h, g_rs_slots);
    CLOSE_HEAP_ERRS_OK(h, p, &log);  /* the verifier's reports are counted above */
}
static void test_stress_roots_rescan_concurrent(void) { roots_rescan_run(0, -1); }
static void test_stress_roots_rescan_incremental(void) { roots_rescan_run(0, 0); }

/* wbgc_base, wbgc_usable_size, wbgc_get_finalizer, and the settings that
   change while the heap runs. */
static void test_object_queries(void)
{
    errlog log;
    wbgc_heap *h = open_heap(&log, 100, WBGC_FINALIZE_ON_DEMAND, -1, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    char *small = wbgc_alloc(p, 40), *big = wbgc_alloc_noscan(p, 3 * MB);
    static char not_heap[64];
    REQUIRE(small && big);
    CHECK(wbgc_base(h, small) == small && wbgc_base(h, small + 39) == small);
    CHECK(wbgc_base(h, big) == big && wbgc_base(h, big + 3 * MB - 1) == big);
    CHECK(wbgc_base(h, not_heap) == NULL && wbgc_base(h, NULL) == NULL);
    size_t us = wbgc_usable_size(h, small);
    CHECKF(us >= 40 && us < 64, "usable size of a 40-byte object: %zu", us);
    CHECK(wbgc_usable_size(h, big) >= 3 * MB);
    CHECK(wbgc_usable_size(h, small + 8) == 0 && wbgc_usable_size(h, not_heap) == 0);
    wbgc_finalizer fn = fin_count;
    void *arg = small;
    CHECK(wbgc_get_finalizer(p, small, &fn, &arg) == 0 && fn == NULL && arg == NULL);
    CHECK(wbgc_set_finalizer(p, small, fin_count, big) == 0);
    CHECK(wbgc_get_finalizer(p, small, &fn, &arg) == 1 && fn == fin_count && arg == big);
    CHECK(wbgc_set_finalizer(p, small, NULL, NULL) == 0);
    CHECK(wbgc_get_finalizer(p, small, NULL, NULL) == 0);
    CHECK(wbgc_get_finalizer(p, not_heap, &fn, &arg) == 0 && fn == NULL);
    /* gc_percent off: allocation starts no cycle; back on: it does */
    wbgc_collect(p);  /* no cycle under way */
    CHECK(wbgc_set_gc_percent(h, -1) == 100);
    uint64_t c0 = get_stats(h).cycles;
    for (int i = 0; i < 4000; i++) (void)wbgc_alloc(p, 4096);  /* 16 MiB of garbage */
    CHECKF(get_stats(h).cycles == c0, "%llu cycles with gc_percent off",
           (unsigned long long)(get_stats(h).cycles - c0));
    CHECK(wbgc_set_gc_percent(h, 50) == -1);
    for (int i = 0; i < 4000; i++) (void)wbgc_alloc(p, 4096);
    CHECK(get_stats(h).cycles > c0);
    /* a memory limit set late is obeyed by the next allocation */
    CHECK(wbgc_set_memory_limit(h, 8 * MB) == 0);
    CHECK(wbgc_alloc_noscan(p, 16 * MB) == NULL);
    CHECK(errlog_count(&log) == 1 && strstr(errlog_msg(&log, 0), "memory limit"));
    CHECK(wbgc_set_memory_limit(h, 0) == 8 * MB);
    CHECK(wbgc_alloc_noscan(p, 16 * MB) != NULL);
    CLOSE_HEAP_ERRS_OK(h, p, &log);
}

/* WBGC_NO_ENV_MODE: WBGC_MODE in the environment is not read. */
static void test_no_env_mode(void)
{
    errlog log;
    setenv("WBGC_MODE", "bogus", 1);
    wbgc_heap *h = open_heap(&log, 100, WBGC_NO_ENV_MODE, -1, 0);
    CHECK(h && errlog_count(&log) == 0);
    if (h) wbgc_heap_free(h);
    wbgc_heap *h2 = open_heap(&log, 100, 0, -1, 0);
    CHECK(h2 && errlog_count(&log) == 1 && strstr(errlog_msg(&log, 0), "WBGC_MODE"));
    if (h2) wbgc_heap_free(h2);
    unsetenv("WBGC_MODE");
    pthread_mutex_destroy(&log.mu);
}

static const test_case g_tests[] = {
    {"config_defaults", test_config_defaults},
    {"zeroed_memory", test_zeroed_memory},
    {"zeroed_memory_check_mode", test_zeroed_memory_check_mode},
    {"zeroed_memory_partial_spans", test_zeroed_memory_partial_spans},
    {"zeroed_memory_partial_spans_check", test_zeroed_memory_partial_spans_check},
    {"local_survives", test_local_survives},
    {"garbage_reclaimed", test_garbage_reclaimed},
    {"scavenge_returns_memory", test_scavenge_returns_memory},
    {"scavenge_after_shrink", test_scavenge_after_shrink},
    {"large_object_pieces", test_large_object_pieces},
    {"interior_pointers", test_interior_pointers},
    {"noscan_holds_nothing", test_noscan_holds_nothing},
    {"large_objects", test_large_objects},
    {"registered_roots", test_registered_roots},
    {"tls_registered_root", test_tls_registered_root},
    {"long_list", test_long_list},
    {"threads_exchange", test_threads_exchange},
    {"threads_incremental", test_threads_incremental},
    {"threads_stw", test_threads_stw},
    {"threads_check_mode", test_threads_check_mode},
    {"blocking_thread_does_not_stall_gc", test_blocking_thread_does_not_stall_gc},
    {"registers_are_roots", test_registers_are_roots},
    {"alloc_extreme_sizes", test_alloc_extreme_sizes},
    {"memory_limit", test_memory_limit},
    {"misuse_detach_other_thread", test_misuse_detach_other_thread},
    {"misuse_free_attached", test_misuse_free_attached},
    {"misuse_detached_p", test_misuse_detached_p},
    {"stats", test_stats},
    {"pacing", test_pacing},
    {"env_gc_percent", test_env_gc_percent},
    {"env_min_heap", test_env_min_heap},
    {"min_heap_config", test_min_heap_config},
    {"no_stack_scan", test_no_stack_scan},
    {"attach_detach_storm", test_attach_detach_storm},
    {"attach_churn_memory", test_attach_churn_memory},
    {"memmove", test_memmove},
    {"memmove_concurrent", test_memmove_concurrent},
    {"shuffle_concurrent", test_shuffle_concurrent},
    {"shuffle_incremental", test_shuffle_incremental},
    {"shuffle_stw", test_shuffle_stw},
    {"shuffle_stw_plain_stores", test_shuffle_stw_plain_stores},
    {"shuffle_check_mode", test_shuffle_check_mode},
    {"check_mode_reports", test_check_mode_reports},
    {"check_mode_poison", test_check_mode_poison},
    {"trace_flag", test_trace_flag},
    {"stress_concurrent", test_stress_concurrent},
    {"stress_incremental", test_stress_incremental},
    {"stress_stw", test_stress_stw},
    {"stress_stw_markers", test_stress_stw_markers},
    {"stress_stw_one_marker", test_stress_stw_one_marker},
    {"stress_check", test_stress_check},
    {"stress_typed_concurrent", test_stress_typed_concurrent},
    {"stress_typed_incremental", test_stress_typed_incremental},
    {"stress_typed_stw", test_stress_typed_stw},
    {"stress_typed_check", test_stress_typed_check},
    {"fork_while_marking", test_fork_while_marking},
    {"fork_unattached", test_fork_unattached},
    {"fork_two_forkers", test_fork_two_forkers},
    {"barrier_paths_agree", test_barrier_paths_agree},
    {"insertion_half_while_stack_grey", test_insertion_half_while_stack_grey},
    {"flush_stops_when_work_full", test_flush_stops_when_work_full},
    {"flush_mark_word_cache", test_flush_mark_word_cache},
    {"flush_value_in_no_span", test_flush_value_in_no_span},
    {"batched_stores", test_batched_stores},
    {"memmove_partial_words", test_memmove_partial_words},
    {"memmove_bytes_exact", test_memmove_bytes_exact},
    {"memmove_partial_check_mode", test_memmove_partial_check_mode},
    {"remove_roots_while_marking", test_remove_roots_while_marking},
    {"add_roots_while_marking", test_add_roots_while_marking},
    {"large_alloc_assists", test_large_alloc_assists},
    {"misuse_other_threads_p_check_mode", test_misuse_other_threads_p_check_mode},
    {"verifier_reports_lost", test_verifier_reports_lost},
    {"verifier_reports_unshaded_entry", test_verifier_reports_unshaded_entry},
    {"env_mode", test_env_mode},
    {"alloc_null_p_reported", test_alloc_null_p_reported},
    {"stall_reports_stuck_thread", test_stall_reports_stuck_thread},
    {"thread_exit_detaches", test_thread_exit_detaches},
    {"reentry_from_signal_handler_check_mode", test_reentry_from_signal_handler_check_mode},
    {"longjmp_out_of_call_check_mode", test_longjmp_out_of_call_check_mode},
    {"check_mode_flush_general_regs", test_check_mode_flush_general_regs},
    {"tree_reverse_concurrent", test_tree_reverse_concurrent},
    {"tree_reverse_incremental", test_tree_reverse_incremental},
    {"fuzz_concurrent", test_fuzz_concurrent},
    {"fuzz_incremental", test_fuzz_incremental},
    {"fuzz_stw", test_fuzz_stw},
    {"fuzz_check", test_fuzz_check},
    {"typed_concurrent", test_typed_concurrent},
    {"typed_incremental", test_typed_incremental},
    {"typed_stw", test_typed_stw},
    {"typed_check_mode", test_typed_check_mode},
    {"typed_layout_errors", test_typed_layout_errors},
    {"typed_check_mode_reports", test_typed_check_mode_reports},
    {"realloc", test_realloc},
    {"realloc_concurrent", test_realloc_concurrent},
    {"realloc_concurrent_check_mode", test_realloc_concurrent_check_mode},
#if WBGC__HAVE_AMD64
    {"amd64_trampoline_preserves_registers", test_amd64_trampoline_preserves_registers},
#endif
    {"finalizers_concurrent", test_finalizers_concurrent},
    {"finalizers_incremental", test_finalizers_incremental},
    {"finalizers_stw", test_finalizers_stw},
    {"finalizers_check_mode", test_finalizers_check_mode},
    {"finalizer_order", test_finalizer_order},
    {"finalizer_resurrection", test_finalizer_resurrection},
    {"finalizer_thread", test_finalizer_thread},
    {"weak_concurrent", test_weak_concurrent},
    {"weak_incremental", test_weak_incremental},
    {"weak_stw", test_weak_stw},
    {"weak_check_mode", test_weak_check_mode},
    {"specials_misuse", test_specials_misuse},
    {"stress_specials_concurrent", test_stress_specials_concurrent},
    {"stress_specials_incremental", test_stress_specials_incremental},
    {"stress_specials_stw", test_stress_specials_stw},
    {"stress_specials_check", test_stress_specials_check},
    {"stress_specials_on_demand", test_stress_specials_on_demand},
    {"ephemerons_concurrent", test_ephemerons_concurrent},
    {"ephemerons_incremental", test_ephemerons_incremental},
    {"ephemerons_stw", test_ephemerons_stw},
    {"ephemerons_check_mode", test_ephemerons_check_mode},
    {"ephemeron_chain_concurrent", test_ephemeron_chain_concurrent},
    {"ephemeron_chain_incremental", test_ephemeron_chain_incremental},
    {"ephemeron_chain_stw", test_ephemeron_chain_stw},
    {"ephemeron_misuse", test_ephemeron_misuse},
    {"stress_ephemerons_concurrent", test_stress_ephemerons_concurrent},
    {"stress_ephemerons_incremental", test_stress_ephemerons_incremental},
    {"stress_ephemerons_stw", test_stress_ephemerons_stw},
    {"stress_ephemerons_check", test_stress_ephemerons_check},
    {"links_concurrent", test_links_concurrent},
    {"links_incremental", test_links_incremental},
    {"links_stw", test_links_stw},
    {"links_check_mode", test_links_check_mode},
    {"links_misuse", test_links_misuse},
    {"stress_links_concurrent", test_stress_links_concurrent},
    {"stress_links_incremental", test_stress_links_incremental},
    {"stress_links_stw", test_stress_links_stw},
    {"stress_links_check", test_stress_links_check},
    {"stress_roots_rescan_concurrent", test_stress_roots_rescan_concurrent},
    {"stress_roots_rescan_incremental", test_stress_roots_rescan_incremental},
    {"object_queries", test_object_queries},
    {"no_env_mode", test_no_env_mode},
};
#define NTESTS ((int)ARRAY_LEN(g_tests))

/* counts for the summary, also read by the signal handler */
static volatile int g_passed, g_failed, g_to_run;

static void write_str(const char *s)
{
    ssize_t r = write(1, s, strlen(s));
    (void)r;
}

static void write_int(long v)
{
    char buf[32];
    int i = (int)sizeof buf;
    int neg = v < 0;
    unsigned long u = neg ? 0UL - (unsigned long)v : (unsigned long)v;
    buf[--i] = 0;
    do buf[--i] = (char)('0' + u % 10); while ((u /= 10) && i > 1);
    if (neg) buf[--i] = '-';
    write_str(buf + i);
}

/* the test died (signal) or hung (watchdog): say so, print the summary
   line counting it and every test not run as failed, and die the same way */
static void on_fatal_signal(int sig)
{
    if (sig == SIGALRM) {
        write_str("\n    FAIL: watchdog: test '");
        write_str((const char *)g_test_name);
        write_str("' still running after ");
        write_int((long)g_timeout);
        write_str(" s (deadlock?)\n");
    } else {
        write_str("\n    FAIL: test '");
        write_str((const char *)g_test_name);
        write_str("' died with signal ");
        write_int(sig);
        write_str("\n");
    }
    write_str("[ FAIL ] ");
    write_str((const char *)g_test_name);
    write_str("\n");
    write_int(g_passed);
    write_str(" passed, ");
    write_int(g_to_run - g_passed);
    write_str(" failed\n");
    signal(sig, SIG_DFL);
    raise(sig);
    _exit(128 + sig);
}

static void install_handlers(void)
{
    static char altstack[64 * 1024];
    stack_t ss;
    struct sigaction sa;
    ss.ss_sp = altstack;
    ss.ss_size = sizeof altstack;
    ss.ss_flags = 0;
    sigaltstack(&ss, NULL);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    sigaction(SIGABRT, &sa, NULL);
    if (!TEST_ASAN) {   /* under ASan its own reports are better */
        sigaction(SIGSEGV, &sa, NULL);
        sigaction(SIGBUS, &sa, NULL);
        sigaction(SIGILL, &sa, NULL);
        sigaction(SIGFPE, &sa, NULL);
    }
}

static void read_env(void)
{
    const char *s;
    if ((s = getenv("WBGC_TEST_SCALE")) && atof(s) > 0) g_scale = atof(s);
    if ((s = getenv("WBGC_TEST_LIST_NODES")) && atol(s) > 0) g_list_nodes = (size_t)atol(s);
    if ((s = getenv("WBGC_TEST_TIMEOUT")) && atoi(s) > 0) g_timeout = (unsigned)atoi(s);
    if ((s = getenv("WBGC_TEST_TRACE")) && *s && *s != '0') g_extra_flags |= WBGC_TRACE;
    if ((s = getenv("WBGC_STRESS_SECONDS")) && atof(s) > 0) g_stress_secs = atof(s);
    if ((s = getenv("WBGC_STRESS_SEED")) && *s) g_stress_seed = strtoull(s, NULL, 0);
    if ((s = getenv("WBGC_STRESS_GC_PERCENT")) && *s) g_stress_gc_percent = atoi(s);
    if ((s = getenv("WBGC_CHURN_SECONDS")) && atof(s) > 0) g_churn_secs = atof(s);
    if ((s = getenv("WBGC_CHURN_THREADS")) && atoi(s) > 0) g_churn_threads = atoi(s);
    unsetenv("WBGC_GC_PERCENT");
    unsetenv("WBGC_TRACE");
    unsetenv("WBGC_MODE");
    unsetenv("WBGC_MIN_HEAP");
}

int main(int argc, char **argv)
{
    int selected[NTESTS], unknown = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    read_env();
    if (argc > 1 && (!strcmp(argv[1], "--list") || !strcmp(argv[1], "-l"))) {
        for (int i = 0; i < NTESTS; i++) printf("%s\n", g_tests[i].name);
        return 0;
    }
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: %s [--list] [NAME...]\n", argv[0]);
        return 0;
    }
    for (int i = 0; i < NTESTS; i++) selected[i] = argc <= 1;
    for (int a = 1; a < argc; a++) {
        int found = 0;
        for (int i = 0; i < NTESTS; i++)
            if (!strcmp(argv[a], g_tests[i].name)) selected[i] = found = 1;
        if (!found) {
            printf("unknown test: %s (see --list)\n", argv[a]);
            unknown++;
        }
    }
    int to_run = unknown;
    for (int i = 0; i < NTESTS; i++) to_run += selected[i];
    g_to_run = to_run;
    g_failed = unknown;
    install_handlers();
    for (int i = 0; i < NTESTS; i++) {
        if (!selected[i]) continue;
        g_test_name = g_tests[i].name;
        __atomic_store_n(&g_test_fails, 0, __ATOMIC_RELAXED);
        printf("[ RUN  ] %s\n", g_tests[i].name);
        uint64_t t0 = now_ns();
        scrub_stack_runner();
        alarm(g_timeout);
        g_tests[i].fn();
        alarm(0);
        double secs = (now_ns() - t0) / 1e9;
        int fails = __atomic_load_n(&g_test_fails, __ATOMIC_RELAXED);
        if (fails == 0) {
            g_passed++;
            printf("[ PASS ] %s (%.2f s)\n", g_tests[i].name, secs);
        } else {
            g_failed++;
            printf("[ FAIL ] %s (%d failed checks, %.2f s)\n", g_tests[i].name, fails, secs);
        }
    }
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
