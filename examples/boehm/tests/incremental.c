/* incremental.c — a program written for Boehm's incremental mode with manual
   dirtying: GC_set_manual_vdb_allowed(1) and GC_enable_incremental() right
   after GC_INIT, and EVERY store of a pointer into a heap object or a
   static variable goes through GC_PTR_STORE_AND_DIRTY(&slot, value) (Boehm
   8.2 has it), NULL stores included. Stores into the thread's own locals
   are plain.

   NT threads (the main one among them) each keep a complete binary tree of
   depth 12 and a list of 2000 nodes in a context object, and for a while:
   replace a random small subtree with a new one of the same height, unlink
   a node from the list's front and append a new one at its end, publish a
   new small tree in a shared static array (under a mutex, which no thread
   holds while allocating), and make garbage. Every link also stores the
   serial number of the node it points to in a plain integer field: a node
   freed too early and reused shows as a serial that does not match. Trees,
   lists and the shared array are checked every CHECK_EVERY steps and at the
   end.

   THE CHECK-MODE VARIANT: built with -DPLAIN_STORES, GC_PTR_STORE_AND_DIRTY
   becomes a plain store, so the program misses every barrier. It is for a
   later check-mode test of the layer, which must report the missing
   barriers; do not expect it to pass against real Boehm GC in manual VDB
   mode (objects can be freed while still reachable). run.sh test does not
   run it.

   Usage: incremental [SCALE]   SCALE (default 1) multiplies the steps.
   stdout: the checks; stderr: the bench_report lines. */
#include <gc.h>
#include <pthread.h>
#include "check.h"
#include "bench_report.h"

#ifdef PLAIN_STORES
#undef GC_PTR_STORE_AND_DIRTY
#define GC_PTR_STORE_AND_DIRTY(p, q) (*(void **)(p) = (void *)(q))
#endif

enum { NT = 3, DEPTH = 12, LIST = 2000, STEPS = 6000, CHECK_EVERY = 1000, NSHARED = 64, SMALL = 3 };

typedef struct tnode {
    struct tnode *left, *right;
    long serial, left_serial, right_serial;
    long h;   /* height: 0 for a leaf */
} tnode;

typedef struct lnode {
    struct lnode *next;
    long serial, next_serial;
} lnode;

/* A thread's data, all reachable from its context object. */
typedef struct ctx {
    tnode *tree;
    lnode *head, *tail;   /* head is a sentinel that stays */
    long list_len;
    unsigned long rng;
} ctx;

static long serial_counter;
static tnode *shared[NSHARED];             /* a static array of GC pointers */
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static long steps_total = STEPS;

static long next_serial(void) { return __atomic_add_fetch(&serial_counter, 1, __ATOMIC_RELAXED); }

static unsigned long rnd(ctx *c) {
    unsigned long x = c->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return c->rng = x;
}

static tnode *make_tree(long h) {
    tnode *n = GC_NEW(tnode);
    n->serial = next_serial();
    n->h = h;
    if (h > 0) {
        tnode *l = make_tree(h - 1);
        GC_PTR_STORE_AND_DIRTY(&n->left, l);
        n->left_serial = l->serial;
        tnode *r = make_tree(h - 1);
        GC_PTR_STORE_AND_DIRTY(&n->right, r);
        n->right_serial = r->serial;
    }
    return n;
}

/* 1 when t is a complete tree of height h whose links match their serials. */
static int tree_ok(const tnode *t, long h) {
    if (!t || t->h != h) return 0;
    if (h == 0) return !t->left && !t->right;
    return t->left && t->right && t->left->serial == t->left_serial &&
           t->right->serial == t->right_serial && tree_ok(t->left, h - 1) && tree_ok(t->right, h - 1);
}

static lnode *new_lnode(void) {
    lnode *n = GC_NEW(lnode);
    n->serial = next_serial();
    return n;
}

static int list_ok(const ctx *c) {
    long n = 0;
    const lnode *x = c->head;
    for (; x->next; x = x->next, n++)
        if (x->next->serial != x->next_serial) return 0;
    return x == c->tail && n == c->list_len;
}

static int shared_ok(void) {
    int ok = 1;
    pthread_mutex_lock(&shared_lock);
    for (int i = 0; i < NSHARED; i++) ok &= shared[i] == NULL || tree_ok(shared[i], SMALL);
    pthread_mutex_unlock(&shared_lock);
    return ok;
}

/* Replaces a random subtree of height <= 6 with a new one. */
static void replace_subtree(ctx *c) {
    tnode *x = c->tree;
    while (x->h > 7) x = (rnd(c) & 1) ? x->left : x->right;
    long h = x->h - 1 - (long)(rnd(c) % 3);   /* go down 0..2 more levels */
    while (x->h - 1 > h && x->h > 1) x = (rnd(c) & 1) ? x->left : x->right;
    tnode *t = make_tree(x->h - 1);
    if (rnd(c) & 1) {
        GC_PTR_STORE_AND_DIRTY(&x->left, t);
        x->left_serial = t->serial;
    } else {
        GC_PTR_STORE_AND_DIRTY(&x->right, t);
        x->right_serial = t->serial;
    }
}

static void append(ctx *c) {
    lnode *n = new_lnode();
    GC_PTR_STORE_AND_DIRTY(&c->tail->next, n);
    c->tail->next_serial = n->serial;
    GC_PTR_STORE_AND_DIRTY(&c->tail, n);
    c->list_len++;
}

/* Unlinks the node after the sentinel, appends a new one. */
static void rotate_list(ctx *c) {
    lnode *victim = c->head->next;
    if (victim) {
        GC_PTR_STORE_AND_DIRTY(&c->head->next, victim->next);
        c->head->next_serial = victim->next ? victim->next_serial : 0;
        if (c->tail == victim) GC_PTR_STORE_AND_DIRTY(&c->tail, c->head);
        GC_PTR_STORE_AND_DIRTY(&victim->next, NULL);   /* a NULL store, dirtied too */
        c->list_len--;
    }
    append(c);
}

static void publish(ctx *c) {
    tnode *t = make_tree(SMALL);   /* made outside the lock */
    int slot = (int)(rnd(c) % NSHARED);
    pthread_mutex_lock(&shared_lock);
    GC_PTR_STORE_AND_DIRTY(&shared[slot], t);
    pthread_mutex_unlock(&shared_lock);
}

struct result { int tree_ok, list_ok, shared_ok; };
static struct result results[NT];

static void *run(void *arg) {
    int id = (int)(size_t)arg;
    ctx *c = GC_NEW(ctx);
    c->rng = 0x9e3779b97f4a7c15ul * (unsigned long)(id + 1);
    tnode *tree = make_tree(DEPTH);
    GC_PTR_STORE_AND_DIRTY(&c->tree, tree);
    lnode *head = new_lnode();
    GC_PTR_STORE_AND_DIRTY(&c->head, head);
    GC_PTR_STORE_AND_DIRTY(&c->tail, head);
    for (long k = 0; k < LIST; k++) append(c);

    struct result r = { 1, 1, 1 };
    for (long step = 1; step <= steps_total; step++) {
        replace_subtree(c);
        rotate_list(c);
        if (step % 4 == 0) publish(c);
        for (int g = 0; g < 8; g++) memset(GC_MALLOC(48), 0x5a, 48);   /* garbage */
        if (step % CHECK_EVERY == 0 || step == steps_total) {
            r.tree_ok &= tree_ok(c->tree, DEPTH);
            r.list_ok &= list_ok(c);
            r.shared_ok &= shared_ok();
        }
    }
    results[id] = r;
    return NULL;
}

int main(int argc, char **argv) {
    GC_INIT();
    GC_set_manual_vdb_allowed(1);
    GC_enable_incremental();
    bench_start();
    check_init();
    long scale = argc > 1 ? atol(argv[1]) : 1;
    if (scale > 1) steps_total = STEPS * scale;

    check(GC_is_incremental_mode() != 0, "incremental: GC_is_incremental_mode() after GC_enable_incremental()");
    pthread_t t[NT];
    for (int i = 1; i < NT; i++) pthread_create(&t[i], NULL, run, (void *)(size_t)i);
    run((void *)0);
    for (int i = 1; i < NT; i++) pthread_join(t[i], NULL);
    GC_gcollect();

    for (int i = 0; i < NT; i++) {
        check(results[i].tree_ok, "incremental: thread %d: its tree of depth %d intact through the replacements", i, DEPTH);
        check(results[i].list_ok, "incremental: thread %d: its list of %d intact through the rotations", i, LIST);
        check(results[i].shared_ok, "incremental: thread %d: the shared static array's trees intact", i);
    }
    int filled = 1;
    for (int i = 0; i < NSHARED; i++) filled &= shared[i] != NULL;
    check(shared_ok() && filled, "incremental: the shared static array intact after a final collection");
    bench_report();
    return check_exit();
}
