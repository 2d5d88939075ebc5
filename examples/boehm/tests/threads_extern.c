/* threads_extern.c — the part of threads.c that needs the real, unredirected
   pthread_create: a thread the collector does not know about registers
   itself (GC_get_stack_base, GC_register_my_thread), allocates while others
   collect, leaves its result in a static variable (a root) and unregisters
   (GC_unregister_my_thread), as Boehm's gc.h describes for threads made by
   third-party code. Not a test of its own: threads.c names it on its
   "// extra:" line and run.sh compiles it with -DGC_NO_THREAD_REDIRECTS, so
   that <gc.h> leaves pthread_create and pthread_join alone here. */
#ifndef GC_NO_THREAD_REDIRECTS
#error "compile threads_extern.c with -DGC_NO_THREAD_REDIRECTS"
#endif
#include <gc.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "threads_extern.h"

enum { EXT_NODES = 20000 };

struct ext_node { struct ext_node *next; long v; };

/* Written by the registered thread before it unregisters; statics are roots. */
static struct ext_node *ext_list;
static struct threads_extern_report ext_rep;
static volatile int ext_done;
static pthread_t ext_tid;

static long ext_list_ok(const struct ext_node *n) {
    long k = EXT_NODES;
    for (; n; n = n->next) {
        if (n->v != 7000000 + k - 1) return 0;
        k--;
    }
    return k == 0;
}

static void *ext_main(void *arg) {
    (void)arg;
    struct GC_stack_base sb;
    memset(&sb, 0, sizeof sb);
    ext_rep.registered_before = GC_thread_is_registered();
    ext_rep.get_stack_base = GC_get_stack_base(&sb);
    ext_rep.register_first = GC_register_my_thread(&sb);
    ext_rep.register_again = GC_register_my_thread(&sb);
    ext_rep.registered_after = GC_thread_is_registered();

    /* A list reachable only from this thread's stack while it is built, with
       garbage and whole collections in between. */
    struct ext_node *list = NULL;
    for (long k = 0; k < EXT_NODES; k++) {
        struct ext_node *n = GC_MALLOC(sizeof *n);
        if (!n) break;
        n->v = 7000000 + k;
        n->next = list;
        list = n;
        char *junk = GC_MALLOC(sizeof *n);
        if (junk) memset(junk, 0x5a, sizeof *n);
        if (k % 5000 == 4999) GC_gcollect();
    }
    ext_rep.list_built = ext_list_ok(list);
    ext_list = list;   /* publish before unregistering, as gc.h asks */
    ext_rep.unregister = GC_unregister_my_thread();
    __atomic_store_n(&ext_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

int threads_extern_start(void) {
    return pthread_create(&ext_tid, NULL, ext_main, NULL);
}

int threads_extern_done(void) {
    return __atomic_load_n(&ext_done, __ATOMIC_ACQUIRE);
}

void threads_extern_join(struct threads_extern_report *rep) {
    pthread_join(ext_tid, NULL);   /* the real one: the thread has finished */
    *rep = ext_rep;
}

int threads_extern_list_ok(void) {
    return ext_list_ok(ext_list);
}
