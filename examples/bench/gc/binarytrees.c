/* binarytrees.c -- the Benchmarks Game's binary-trees, written afresh over
 * gcb.h so that one source runs on wbgc, Boehm GC and malloc/free.
 *
 * For a maximum depth N (default 21): a stretch tree of depth N+1 is built,
 * checked and dropped; a long-lived tree of depth N is built and kept to the
 * end; then for d = 4, 6, ... N, 2^(N - d + 4) trees of depth d are built
 * bottom-up, checked (the check is the node count) and dropped. Nodes are
 * {left, right}: 16 bytes. With --threads T the iterations of every depth
 * are split among T threads (iteration i goes to thread i % T); the main
 * thread waits for them inside a blocking region. With malloc the program
 * frees each tree after checking it.
 *
 * Output: the game's lines ("stretch tree of depth 22\t check: 8388607" ...),
 * whose check values are also compared with the exact node counts; a
 * mismatch exits 1.
 *
 *   ./build.sh                     # builds build/gcb/binarytrees.{wbgc,boehm,malloc}
 *   build/gcb/binarytrees.wbgc 21 --threads 2 --mode incr
 *   build/gcb/binarytrees.boehm 21 --mode parallel
 *   build/gcb/binarytrees.malloc --quick
 *
 * Options: N (default 21), --threads T (default 1), --mode M (see gcb.h),
 * --quick (N = 16, for smoke runs). report.c runs it for the tables. */
#include "gcb.h"

typedef struct Node {
    struct Node *left, *right;
} Node;

static Node *bottom_up(gcb_t *t, int depth) {
    Node *l = NULL, *r = NULL;
    if (depth > 0) {
        l = bottom_up(t, depth - 1);
        r = bottom_up(t, depth - 1);
    }
    Node *n = gcb_alloc(t, sizeof(Node));
    if (l) gcb_write2(t, &n->left, l, &n->right, r);
    return n;
}

static long check(gcb_t *t, const Node *n) {
    gcb_safepoint(t); /* no allocation here: let a collection stop this thread */
    return n->left ? 1 + check(t, n->left) + check(t, n->right) : 1;
}

static void free_tree(Node *n) {
    if (n->left) {
        free_tree(n->left);
        free_tree(n->right);
    }
    gcb_free(n);
}

static void drop_tree(Node *n) {
    if (GCB_EXPLICIT_FREE) free_tree(n);
}

enum { MIN_DEPTH = 4, MAX_DEPTHS = 32 };

static int max_depth = 21, nthreads = 1;

/* One per thread; plain data only (the collectors cannot see it). */
typedef struct {
    int k;                   /* this thread's share: iterations i % T == k */
    long sum[MAX_DEPTHS];    /* check sums per depth */
} worker;

static long iterations(int d) { return 1L << (max_depth - d + MIN_DEPTH); }

static void work(gcb_t *t, worker *w) {
    for (int d = MIN_DEPTH; d <= max_depth; d += 2) {
        long s = 0;
        for (long i = w->k; i < iterations(d); i += nthreads) {
            Node *n = bottom_up(t, d);
            s += check(t, n);
            drop_tree(n);
        }
        w->sum[d] = s;
    }
}

static void *worker_main(void *arg) {
    gcb_t *t = gcb_thread_enter();
    work(t, arg);
    gcb_thread_leave(t);
    return NULL;
}

static void usage(FILE *f) {
    fprintf(f, "usage: binarytrees [N] [--threads T] [--mode M] [--quick]\n");
}

int main(int argc, char **argv) {
    const char *mode = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mode") && i + 1 < argc) mode = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) nthreads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) max_depth = 16;
        else if (!strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        else if (argv[i][0] >= '0' && argv[i][0] <= '9') max_depth = atoi(argv[i]);
        else { usage(stderr); return 2; }
    }
    if (max_depth < MIN_DEPTH + 2) max_depth = MIN_DEPTH + 2;
    if (max_depth >= MAX_DEPTHS - 1 || nthreads < 1 || nthreads > 64) { usage(stderr); return 2; }

    gcb_t *t = gcb_init("binarytrees", mode, 0);
    const char *bad = NULL;

    Node *n = bottom_up(t, max_depth + 1);
    long c = check(t, n);
    printf("stretch tree of depth %d\t check: %ld\n", max_depth + 1, c);
    if (c != (1L << (max_depth + 2)) - 1) bad = "stretch tree check";
    drop_tree(n);
    n = NULL;

    Node *long_lived = bottom_up(t, max_depth);

    worker *w = calloc((size_t)nthreads, sizeof *w);
    if (!w) gcb_die("out of memory");
    for (int k = 0; k < nthreads; k++) w[k].k = k;
    if (nthreads == 1) work(t, &w[0]);
    else {
        pthread_t *th = malloc(sizeof *th * (size_t)nthreads);
        if (!th) gcb_die("out of memory");
        for (int k = 0; k < nthreads; k++) gcb_thread_create(&th[k], worker_main, &w[k]);
        for (int k = 0; k < nthreads; k++) gcb_join(t, th[k]);
        free(th);
    }
    for (int d = MIN_DEPTH; d <= max_depth; d += 2) {
        long s = 0;
        for (int k = 0; k < nthreads; k++) s += w[k].sum[d];
        printf("%ld\t trees of depth %d\t check: %ld\n", iterations(d), d, s);
        if (s != iterations(d) * ((1L << (d + 1)) - 1)) bad = "trees check";
    }
    free(w);

    c = check(t, long_lived);
    printf("long lived tree of depth %d\t check: %ld\n", max_depth, c);
    if (c != (1L << (max_depth + 1)) - 1) bad = "long lived tree check";
    uint64_t live = (uint64_t)c * sizeof(Node);
    drop_tree(long_lived);
    return gcb_done(t, bad ? bad : "ok", live);
}
