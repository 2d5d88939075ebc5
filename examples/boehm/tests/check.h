/* check.h — the few helpers the boehm/tests programs share. Include it after
   <gc.h>. Written to Boehm GC's public API only, so that each program builds
   unchanged against real libgc and against the wbgc layer.

   check(cond, fmt, ...)   prints "ok   <what>" or "FAIL <what>" on stdout and
                           counts failures; check_exit() is the exit status.
   at_least(n, of, pct)    the loose threshold for counts that depend on
                           conservative scanning: n >= pct% of `of`.
   on_thread(fn, arg)      runs fn(arg) on a new (GC-registered, through the
                           redirected pthread_create) thread and joins it:
                           whatever fn made and dropped leaves no stale copy
                           on the caller's stack or registers.
   scrub_stack()           overwrites a few KiB of the caller's dead stack,
                           so that stale words there rarely pin objects.

   Output must be the same under both collectors: print only what the
   program decides (ok/FAIL lines, fixed values), never addresses, timings
   or counts that depend on conservative-scan luck. */
#ifndef BOEHM_TESTS_CHECK_H
#define BOEHM_TESTS_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

static int check_failures;

__attribute__((format(printf, 2, 3), unused))
static int check(int cond, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs(cond ? "ok   " : "FAIL ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
    if (!cond) check_failures++;
    return cond;
}

/* Line-buffered stdout: what was printed before a crash is kept. */
__attribute__((unused)) static void check_init(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
}

__attribute__((unused)) static int check_exit(void) {
    return check_failures ? 1 : 0;
}

__attribute__((unused)) static int at_least(long n, long of, int pct) {
    return n * 100 >= of * (long)pct;
}

/* on_thread's trampoline: pthread_create wants void *(*)(void *). */
struct on_thread_call { void (*fn)(void *); void *arg; };

static void *on_thread_main(void *v) {
    struct on_thread_call *c = v;
    c->fn(c->arg);
    return NULL;
}

__attribute__((unused)) static void on_thread(void (*fn)(void *), void *arg) {
    struct on_thread_call c = { fn, arg };
    pthread_t t;
    if (pthread_create(&t, NULL, on_thread_main, &c) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        exit(2);
    }
    pthread_join(t, NULL);
}

__attribute__((noinline, unused)) static void scrub_stack(void) {
    volatile char junk[16384];
    memset((char *)junk, 0, sizeof junk);
    __asm__ __volatile__("" : : "r"(junk) : "memory");
}

#endif
