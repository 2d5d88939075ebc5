/* gcbench.c -- Hans Boehm's classic GCBench (after John Ellis and Pete
 * Kovac), written afresh over gcb.h so that one source runs on wbgc, Boehm GC
 * and malloc/free.
 *
 * The work, as in the classic: a "stretch" tree of depth 18 is built and
 * dropped; a long-lived tree of depth 16 and an array of 500,000 doubles
 * (never scanned) are built and kept to the end; then for depth d = 4, 6, ...
 * 16 the program builds 2 * treeSize(18) / treeSize(d) trees top-down (a
 * node is allocated, then its children are allocated and stored into it) and
 * as many bottom-up (the children first, then the node that points to them),
 * dropping each. A node is {left, right, i, j}. With --threads N > 1, N
 * threads each do that whole loop over depths (as the classic multi-threaded
 * GCBench does), while the main thread, which built the stretch tree, the
 * long-lived tree and the array, waits for them. With malloc the program frees
 * each tree it drops.
 *
 * Checks: the last tree of each kind at each depth, the long-lived tree and
 * the array are counted or read back at the end; a wrong answer exits 1.
 *
 *   ./build.sh                     # builds build/gcb/gcbench.{wbgc,boehm,malloc}
 *   build/gcb/gcbench.wbgc --mode conc --threads 2
 *   build/gcb/gcbench.boehm --mode single
 *   build/gcb/gcbench.wbgc --demo  # a plain-words account of what wbgc did
 *   build/gcb/gcbench.malloc --quick
 *
 * Options: --mode M (see gcb.h), --threads N (default 1), --quick (depths
 * 14/12/12 and a 50,000-double array, for smoke runs), --demo (depths 17/15/14,
 * a few seconds, and the account). report.c runs it for the tables. */
#include "gcb.h"

typedef struct Node {
    struct Node *left, *right;
    int i, j;
} Node;

static struct {
    int stretch, long_lived, min_depth, max_depth;
    long array_size;
} S = { 18, 16, 4, 16, 500000 };

static long tree_size(int d) { return (1L << (d + 1)) - 1; }
static long num_iters(int d) { return 2 * tree_size(S.stretch) / tree_size(d); }

/* Top-down: n exists; give it two children, then fill those in. */
static void populate(gcb_t *t, int depth, Node *n) {
    if (depth <= 0) return;
    depth--;
    Node *l = gcb_alloc(t, sizeof(Node));
    Node *r = gcb_alloc(t, sizeof(Node));
    gcb_write2(t, &n->left, l, &n->right, r);
    populate(t, depth, l);
    populate(t, depth, r);
}

/* Bottom-up: the subtrees first, then the node that holds them. */
static Node *make_tree(gcb_t *t, int depth) {
    if (depth <= 0) return gcb_alloc(t, sizeof(Node));
    Node *l = make_tree(t, depth - 1);
    Node *r = make_tree(t, depth - 1);
    Node *n = gcb_alloc(t, sizeof(Node));
    gcb_write2(t, &n->left, l, &n->right, r);
    return n;
}

static long count_tree(gcb_t *t, const Node *n) {
    if (!n) return 0;
    gcb_safepoint(t); /* no allocation here: let a collection stop this thread */
    return 1 + count_tree(t, n->left) + count_tree(t, n->right);
}

/* Only the malloc backend calls this; the collectors find dropped trees. */
static void free_tree(Node *n) {
    if (!n) return;
    free_tree(n->left);
    free_tree(n->right);
    gcb_free(n);
}

static void drop_tree(Node *n) {
    if (GCB_EXPLICIT_FREE) free_tree(n);
}

/* The timed loop of the classic; returns NULL or what went wrong. */
static const char *time_construction(gcb_t *t, int depth) {
    long iters = num_iters(depth);
    const char *bad = NULL;
    for (long i = 0; i < iters; i++) {
        Node *n = gcb_alloc(t, sizeof(Node));
        populate(t, depth, n);
        if (i == iters - 1 && count_tree(t, n) != tree_size(depth)) bad = "top-down tree has the wrong size";
        drop_tree(n);
    }
    for (long i = 0; i < iters; i++) {
        Node *n = make_tree(t, depth);
        if (i == iters - 1 && count_tree(t, n) != tree_size(depth)) bad = "bottom-up tree has the wrong size";
        drop_tree(n);
    }
    return bad;
}

static const char *all_depths(gcb_t *t) {
    const char *bad = NULL;
    for (int d = S.min_depth; d <= S.max_depth; d += 2) {
        const char *b = time_construction(t, d);
        if (b) bad = b;
    }
    return bad;
}

/* Plain data only: the collectors cannot see a thread's argument. */
typedef struct { const char *bad; } worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    gcb_t *t = gcb_thread_enter();
    w->bad = all_depths(t);
    gcb_thread_leave(t);
    return NULL;
}

static void usage(FILE *f) {
    fprintf(f, "usage: gcbench [--mode M] [--threads N] [--quick | --demo]\n");
}

int main(int argc, char **argv) {
    const char *mode = NULL;
    int threads = 1, demo = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mode") && i + 1 < argc) mode = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) {
            S.stretch = 14; S.long_lived = 12; S.max_depth = 12; S.array_size = 50000;
        } else if (!strcmp(argv[i], "--demo")) {
            demo = 1;
            S.stretch = 20; S.long_lived = 18; S.max_depth = 18; S.array_size = 500000;
        } else if (!strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        else { usage(stderr); return 2; }
    }
    if (threads < 1 || threads > 64) { usage(stderr); return 2; }

    gcb_t *t = gcb_init("gcbench", mode, demo);
    if (demo)
        printf("GCBench: builds and drops binary trees of 24-byte nodes, at %d growing\n"
               "depths, while keeping one tree and one array alive throughout.\n",
               (S.max_depth - S.min_depth) / 2 + 1);
    const char *bad = NULL;

    Node *n = make_tree(t, S.stretch);
    if (count_tree(t, n) != tree_size(S.stretch)) bad = "stretch tree has the wrong size";
    drop_tree(n);
    n = NULL;

    Node *long_lived = gcb_alloc(t, sizeof(Node));
    populate(t, S.long_lived, long_lived);
    double *array = gcb_alloc_noscan(t, (size_t)S.array_size * sizeof(double));
    for (long i = 0; i < S.array_size / 2; i++) array[i] = 1.0 / (double)i;
    for (long i = S.array_size / 2; i < S.array_size; i++) array[i] = 0.0; /* Java zeroes it */

    if (threads == 1) {
        const char *b = all_depths(t);
        if (b) bad = b;
    } else {
        pthread_t *th = malloc(sizeof *th * (size_t)threads);
        worker *w = calloc((size_t)threads, sizeof *w);
        if (!th || !w) gcb_die("out of memory");
        for (int k = 0; k < threads; k++) gcb_thread_create(&th[k], worker_main, &w[k]);
        for (int k = 0; k < threads; k++) gcb_join(t, th[k]);
        for (int k = 0; k < threads; k++) if (w[k].bad) bad = w[k].bad;
        free(th);
        free(w);
    }

    if (count_tree(t, long_lived) != tree_size(S.long_lived)) bad = "long-lived tree has the wrong size";
    if (array[1000] != 1.0 / 1000) bad = "array lost its contents";
    uint64_t live = (uint64_t)tree_size(S.long_lived) * sizeof(Node) + (uint64_t)S.array_size * sizeof(double);
    drop_tree(long_lived);
    gcb_free(array);
    return gcb_done(t, bad ? bad : "ok", live);
}
