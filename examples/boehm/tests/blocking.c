/* blocking.c — threads blocked in plain calls while others collect.
   Boehm GC stops threads with signals, so a program written for it may
   block anywhere: in pthread_mutex_lock, in pthread_cond_wait, in read(),
   in nanosleep, in pthread_join, and the collector must neither wait for
   those threads forever nor lose what their stacks hold. The wbgc layer
   redirects the pthread calls and the sleeps; read() it cannot, so that
   one is wrapped in GC_do_blocking (Boehm's own call for it).

   Each blocked thread keeps a list of GC objects only on its own stack,
   blocks, and once woken checks the list and allocates some more. Main
   waits until they are all blocked, then collects (GC_gcollect, and
   enough allocation for the collector to start cycles of its own), wakes
   them one by one and joins them. */
#include <gc.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include "check.h"
#include "lists.h"


enum { LEN = 5000 };
enum { B_MUTEX, B_COND, B_READ, B_SLEEP, B_JOIN, NB };

static const char *const what[NB] = {
    [B_MUTEX] = "pthread_mutex_lock", [B_COND] = "pthread_cond_wait", [B_READ] = "read() on a pipe",
    [B_SLEEP] = "nanosleep (300 ms)", [B_JOIN] = "pthread_join of the sleeper",
};

static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t cond_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int cond_go;
static int pipe_fd[2];
static pthread_t tid[NB];
static volatile int ready[NB];
static int ok[NB];


/* read_one: blocks in read() until the main thread writes a byte. */
static void *read_one(void *unused)
{
    (void)unused;
    char c;
    while (read(pipe_fd[0], &c, 1) != 1) {}
    return NULL;
}

static void *blocker(void *arg) {
    int kind = (int)(size_t)arg;
    struct node *list = make_list(kind * 100000L, LEN);   /* only on this stack */
    __atomic_store_n(&ready[kind], 1, __ATOMIC_RELEASE);
    switch (kind) {
    case B_MUTEX:
        pthread_mutex_lock(&held);
        pthread_mutex_unlock(&held);
        break;
    case B_COND:
        pthread_mutex_lock(&cond_lock);
        while (!cond_go) pthread_cond_wait(&cond, &cond_lock);
        pthread_mutex_unlock(&cond_lock);
        break;
    case B_READ: {
        /* GC_do_blocking, which Boehm has too: a layer over a collector
           that stops threads at safepoints (the wbgc layer, gc.h THREADS)
           cannot see a thread blocked in read(); the calls it cannot
           redirect are wrapped */
        GC_do_blocking(read_one, NULL);
        break;
    }
    case B_SLEEP: {
        struct timespec ts = { 0, 300 * 1000000L };
        while (nanosleep(&ts, &ts) != 0) {}   /* a collector's signal may cut it short */
        break;
    }
    case B_JOIN:
        pthread_join(tid[B_SLEEP], NULL);
        break;
    }
    struct node *more = make_list(-1, LEN);   /* allocation works after waking */
    ok[kind] = list_ok(list, kind * 100000L, LEN) && list_ok(more, -1, LEN);
    return NULL;
}

static void *sleep_ms(void *ms) {
    struct timespec ts = { 0, (long)(size_t)ms * 1000000L };
    nanosleep(&ts, NULL);
    return NULL;
}

int main(void) {
    GC_INIT();
    check_init();
    if (pipe(pipe_fd) != 0) return 2;
    pthread_mutex_lock(&held);

    for (int k = B_MUTEX; k < NB; k++)
        if (k != B_JOIN) pthread_create(&tid[k], NULL, blocker, (void *)(size_t)k);
    while (!__atomic_load_n(&ready[B_SLEEP], __ATOMIC_ACQUIRE)) GC_do_blocking(sleep_ms, (void *)(size_t)1);
    pthread_create(&tid[B_JOIN], NULL, blocker, (void *)(size_t)B_JOIN);
    for (int k = B_MUTEX; k < NB; k++)
        while (!__atomic_load_n(&ready[k], __ATOMIC_ACQUIRE)) GC_do_blocking(sleep_ms, (void *)(size_t)1);
    GC_do_blocking(sleep_ms, (void *)(size_t)20);   /* let them get into their calls */

    /* Collections while they are blocked: explicit ones and the collector's
       own (about 100 MB of garbage). */
    for (int c = 0; c < 5; c++) {
        for (int k = 0; k < 40000; k++) memset(GC_MALLOC(500), 0x5a, 500);
        GC_gcollect();
    }

    pthread_mutex_unlock(&held);
    pthread_mutex_lock(&cond_lock);
    cond_go = 1;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&cond_lock);
    if (write(pipe_fd[1], "x", 1) != 1) return 2;
    for (int k = B_MUTEX; k < NB; k++)
        if (k != B_SLEEP) pthread_join(tid[k], NULL);   /* B_JOIN joined the sleeper */

    for (int k = B_MUTEX; k < NB; k++)
        check(ok[k], "blocking: a thread blocked in %s while others collected kept its list", what[k]);
    return check_exit();
}
