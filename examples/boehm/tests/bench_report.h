/* bench_report.h — what a benchmark program reports about itself, to stderr,
   for examples/boehm/run.sh bench. Include it after <gc.h>; call
   bench_start() right after GC_INIT() and bench_report() at the end.

   bench_report() prints two lines to stderr:
       bench: pause_max_us X pauses N
       bench: maxrss_kib N
   Pauses: under real Boehm GC, every stop of the world from
   GC_EVENT_PRE_STOP_WORLD to GC_EVENT_POST_START_WORLD (callbacks set by
   GC_set_on_collection_event, timed with CLOCK_MONOTONIC; Boehm calls them
   with its lock held, so the plain statics below need no lock). Under the
   wbgc layer (its gc.h defines GC_WBGC) the layer's own counters:
   GC_wbgc_pause_max_ns() and GC_wbgc_pause_count(). Peak RSS:
   getrusage(RUSAGE_SELF).ru_maxrss. Nothing goes to stdout: the tests
   compare stdout between the two builds. */
#ifndef BOEHM_TESTS_BENCH_REPORT_H
#define BOEHM_TESTS_BENCH_REPORT_H

#include <stdio.h>
#include <time.h>
#include <sys/resource.h>

#ifndef GC_WBGC
static unsigned long long bench_stop_t0, bench_pause_max_ns, bench_pauses;

static unsigned long long bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static void GC_CALLBACK bench_on_event(GC_EventType e) {
    if (e == GC_EVENT_PRE_STOP_WORLD) {
        bench_stop_t0 = bench_now_ns();
    } else if (e == GC_EVENT_POST_START_WORLD && bench_stop_t0) {
        unsigned long long d = bench_now_ns() - bench_stop_t0;
        if (d > bench_pause_max_ns) bench_pause_max_ns = d;
        bench_pauses++;
        bench_stop_t0 = 0;
    }
}
#endif

__attribute__((unused)) static void bench_start(void) {
#ifndef GC_WBGC
    GC_set_on_collection_event(bench_on_event);
#endif
}

__attribute__((unused)) static void bench_report(void) {
    unsigned long long max_ns, n;
#ifdef GC_WBGC
    max_ns = GC_wbgc_pause_max_ns();
    n = GC_wbgc_pause_count();
#else
    max_ns = bench_pause_max_ns;
    n = bench_pauses;
#endif
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(stderr, "bench: pause_max_us %llu pauses %llu\n", max_ns / 1000, n);
    fprintf(stderr, "bench: maxrss_kib %ld\n", ru.ru_maxrss);
}

#endif
