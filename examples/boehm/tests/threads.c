/* threads.c — threads made through pthread_create as <gc.h> redirects it
   (GC_THREADS), and one thread that registers itself.

   - A "hammer" thread collects (GC_gcollect) and makes garbage while the
     workers start, so collections run in the window between pthread_create
     and the new thread's first instruction.
   - Each of NW workers gets a GC object as its pthread_create argument and
     nothing else holds it (it is made in a helper that returns nothing);
     the worker checks it, builds a list of GC objects while the others
     allocate and collect, and hands back a GC object: worker 0 and 2 by
     returning it, worker 1 by pthread_exit. Main collects several times
     after they have finished and before it joins them, so the returned
     results live only in the thread library's hands meanwhile (Boehm keeps
     a returned value in its thread table); pthread_join fetches them.
     Real Boehm GC 8.2 does NOT keep a value passed to pthread_exit alive
     until the join (seen: worker 1's result was freed and reused by worker
     3), so worker 1 also keeps its result in a static variable, and for it
     only the value's passage through pthread_exit/pthread_join is checked.
   - Worker 3 calls pthread_detach(pthread_self()) and leaves its result in
     a static variable.
   - threads_extern.c (compiled with -DGC_NO_THREAD_REDIRECTS) makes a thread
     with the real pthread_create that registers itself
     (GC_register_my_thread after GC_get_stack_base) and unregisters; main
     calls GC_allow_register_threads() first.
   - Main waits with GC_do_blocking around a sleep.
   stdout: one ok/FAIL line per check, in a fixed order. */
// extra: threads_extern.c -DGC_NO_THREAD_REDIRECTS
#include <gc.h>
#include <pthread.h>
#include <time.h>
#include "check.h"
#include "threads_extern.h"

enum { NW = 4, DETACHED = 3, SEED = 100, NODES = 20000, MAGIC_ARG = 0x61726731, MAGIC_RES = 0x72657331 };

struct node { struct node *next; long v; };
struct targ { long magic; int id; struct node *seed; };            /* the pthread_create argument */
struct tres { long magic; int id; long n; struct node *list; };     /* what a worker hands back */

static pthread_t tids[NW];
static int arg_ok[NW], list_ok[NW];
static volatile int finished[NW], hammer_stop;
static struct tres *detached_result;   /* a static: a root */
static struct tres *exit_keep;         /* worker 1's result: see the top */

/* A list of n nodes, values base+n-1 down to base (newest first), with a
   garbage object between nodes (filled, so that a node freed too early and
   reused shows). */
static struct node *make_list(long base, long n, int collect_every) {
    struct node *list = NULL;
    for (long k = 0; k < n; k++) {
        struct node *x = GC_NEW(struct node);
        x->v = base + k;
        x->next = list;
        list = x;
        char *junk = GC_MALLOC(sizeof(struct targ));
        memset(junk, 0x5a, sizeof(struct targ));
        if (collect_every && k % collect_every == collect_every - 1) GC_gcollect();
    }
    return list;
}

static int list_intact(const struct node *x, long base, long n) {
    for (long k = n - 1; k >= 0; k--, x = x->next)
        if (!x || x->v != base + k) return 0;
    return x == NULL;
}

static void *sleep_ms(void *ms) {
    struct timespec ts = { 0, (long)(size_t)ms * 1000000L };
    nanosleep(&ts, NULL);
    return NULL;
}

static void *worker(void *p) {
    struct targ *a = p;
    int id = a->id;   /* read before anything: if a was freed, id may be junk */
    if (id < 0 || id >= NW) { fprintf(stderr, "threads: argument corrupt\n"); exit(3); }
    make_list(-1, 2000, 0);   /* garbage, so that a freed argument gets reused */
    arg_ok[id] = a->magic == MAGIC_ARG && list_intact(a->seed, id * 1000, SEED);
    a = NULL;

    if (id == DETACHED) pthread_detach(pthread_self());
    struct node *list = make_list(id * 1000000L, NODES, id == 0 ? 5000 : 0);
    list_ok[id] = list_intact(list, id * 1000000L, NODES);

    struct tres *r = GC_NEW(struct tres);
    r->magic = MAGIC_RES;
    r->id = id;
    r->n = NODES;
    r->list = list;
    if (id == DETACHED) detached_result = r;
    __atomic_store_n(&finished[id], 1, __ATOMIC_RELEASE);
    if (id == 1) {
        exit_keep = r;
        pthread_exit(r);
    }
    return id == DETACHED ? NULL : r;
}

static void *hammer(void *unused) {
    (void)unused;
    for (int k = 0; k < 200 && !__atomic_load_n(&hammer_stop, __ATOMIC_ACQUIRE); k++) {
        make_list(-2, 500, 0);
        GC_gcollect();
    }
    return NULL;
}

/* Makes the worker's argument and starts it; main keeps no copy. */
__attribute__((noinline)) static void start_worker(int id) {
    struct targ *a = GC_NEW(struct targ);
    a->magic = MAGIC_ARG;
    a->id = id;
    a->seed = make_list(id * 1000, SEED, 0);
    if (pthread_create(&tids[id], NULL, worker, a) != 0) {
        fprintf(stderr, "threads: pthread_create failed\n");
        exit(2);
    }
}

static int result_ok(const struct tres *r, int id) {
    return r && r->magic == MAGIC_RES && r->id == id && r->n == NODES &&
           list_intact(r->list, id * 1000000L, NODES);
}

static int all_finished(void) {
    for (int i = 0; i < NW; i++)
        if (!__atomic_load_n(&finished[i], __ATOMIC_ACQUIRE)) return 0;
    return 1;
}

int main(void) {
    GC_INIT();
    check_init();

    pthread_t ham;
    pthread_create(&ham, NULL, hammer, NULL);
    for (int id = 0; id < NW; id++) start_worker(id);
    scrub_stack();

    while (!all_finished()) GC_do_blocking(sleep_ms, (void *)(size_t)2);
    __atomic_store_n(&hammer_stop, 1, __ATOMIC_RELEASE);
    pthread_join(ham, NULL);
    GC_do_blocking(sleep_ms, (void *)(size_t)20);   /* let the workers exit */
    for (int k = 0; k < 3; k++) {
        make_list(-3, 20000, 0);
        GC_gcollect();
    }

    for (int id = 0; id < NW; id++)
        check(arg_ok[id], "threads: worker %d found its pthread_create argument intact", id);
    for (int id = 0; id < NW; id++)
        check(list_ok[id], "threads: worker %d built its list of %d while others collected", id, NODES);
    for (int id = 0; id < NW; id++) {
        if (id == DETACHED) continue;
        void *ret = NULL;
        int rc = pthread_join(tids[id], &ret);
        check(rc == 0 && result_ok(ret, id) && (id != 1 || ret == exit_keep), "threads: worker %d's result (%s) fetched by pthread_join intact",
              id, id == 1 ? "pthread_exit" : "returned");
    }
    check(result_ok(detached_result, DETACHED), "threads: detached worker %d's result intact", DETACHED);

    /* A thread made with the real pthread_create that registers itself. */
    GC_allow_register_threads();
    struct threads_extern_report rep;
    int started = threads_extern_start() == 0;
    check(started, "threads: real pthread_create of a self-registering thread");
    if (started) {
        for (int k = 0; k < 20 && !threads_extern_done(); k++) {
            make_list(-4, 5000, 0);
            GC_gcollect();
        }
        while (!threads_extern_done()) GC_do_blocking(sleep_ms, (void *)(size_t)2);
        threads_extern_join(&rep);
        check(rep.registered_before == 0, "threads: GC_thread_is_registered() == 0 before registering");
        check(rep.get_stack_base == GC_SUCCESS, "threads: GC_get_stack_base == GC_SUCCESS");
        check(rep.register_first == GC_SUCCESS, "threads: GC_register_my_thread == GC_SUCCESS");
        check(rep.register_again == GC_DUPLICATE, "threads: GC_register_my_thread again == GC_DUPLICATE");
        check(rep.registered_after != 0, "threads: GC_thread_is_registered() != 0 after registering");
        check(rep.list_built, "threads: the registered thread built its list while collecting");
        check(rep.unregister == GC_SUCCESS, "threads: GC_unregister_my_thread == GC_SUCCESS");
        make_list(-5, 20000, 0);
        GC_gcollect();
        check(threads_extern_list_ok(), "threads: its list, left in a static, survives collections");
    }
    return check_exit();
}
