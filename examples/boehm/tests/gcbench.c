/* gcbench.c — GCBench (John Ellis and Pete Kovac's benchmark, as adapted
   for C by Hans Boehm), written afresh from its description to Boehm GC's
   public API, with every tree and the array checked.

   The benchmark: make and drop a "stretch" tree of depth 18; make a
   long-lived tree of depth 16 and a long-lived array of 500000 doubles
   (atomic: no pointers) that stay for the whole run; then for depths 4, 6,
   ... 16 make and drop as many temporary trees as make up the same number
   of nodes as two stretch trees, first top-down (the parent exists before
   its children are allocated and stored into it), then bottom-up (the
   children first). At the end the long-lived tree and array must be intact.

   Usage: gcbench [SCALE]   SCALE (default 1) repeats the temporary-tree
   phase SCALE times (more collections for the same live heap).
   stdout: the checks; stderr: the bench_report lines. */
#include <gc.h>
#include "check.h"
#include "bench_report.h"

enum {
    STRETCH_DEPTH = 18,
    LONG_LIVED_DEPTH = 16,
    ARRAY_SIZE = 500000,
    MIN_DEPTH = 4,
    MAX_DEPTH = 16,
};

typedef struct node {
    struct node *left, *right;
    int i, j;
} node;

/* Nodes in a complete binary tree with `depth` levels below the root. */
static long tree_size(int depth) { return (1L << (depth + 1)) - 1; }

/* Trees of `depth` that hold as many nodes as two stretch trees. */
static long num_iters(int depth) { return 2 * tree_size(STRETCH_DEPTH) / tree_size(depth); }

static node *new_node(node *l, node *r) {
    node *n = GC_NEW(node);
    if (!n) { fprintf(stderr, "gcbench: out of memory\n"); exit(2); }
    n->left = l;
    n->right = r;
    return n;
}

/* Top-down: n exists; give it two children, then fill each. */
static void populate(int depth, node *n) {
    if (depth <= 0) return;
    depth--;
    n->left = new_node(NULL, NULL);
    n->right = new_node(NULL, NULL);
    n->i = depth;
    populate(depth, n->left);
    populate(depth, n->right);
}

/* Bottom-up: the children are made before their parent. */
static node *make_tree(int depth) {
    if (depth <= 0) return new_node(NULL, NULL);
    node *l = make_tree(depth - 1);
    node *r = make_tree(depth - 1);
    node *n = new_node(l, r);
    n->i = depth - 1;
    return n;
}

/* Node count of a complete tree of `depth`, or -1 if it is not one (a
   missing or extra child, or a node whose field i is wrong). */
static long check_tree(const node *n, int depth) {
    if (!n) return -1;
    if (depth <= 0) return (n->left || n->right || n->i) ? -1 : 1;
    if (n->i != depth - 1) return -1;
    long l = check_tree(n->left, depth - 1);
    long r = check_tree(n->right, depth - 1);
    return (l < 0 || r < 0) ? -1 : l + r + 1;
}

/* One depth of the temporary-tree phase; returns 1 when every tree checked. */
static int time_construction(int depth) {
    long iters = num_iters(depth), good_td = 0, good_bu = 0;
    for (long k = 0; k < iters; k++) {
        node *t = new_node(NULL, NULL);
        populate(depth, t);
        if (check_tree(t, depth) == tree_size(depth)) good_td++;
    }
    for (long k = 0; k < iters; k++) {
        node *t = make_tree(depth);
        if (check_tree(t, depth) == tree_size(depth)) good_bu++;
    }
    return check(good_td == iters && good_bu == iters,
                 "gcbench: depth %d: %ld top-down and %ld bottom-up trees of %ld nodes",
                 depth, iters, iters, tree_size(depth));
}

/* The stretch tree, in a function of its own so that nothing of it stays
   in main's frame. */
__attribute__((noinline)) static void stretch(void) {
    node *t = make_tree(STRETCH_DEPTH);
    check(check_tree(t, STRETCH_DEPTH) == tree_size(STRETCH_DEPTH),
          "gcbench: stretch tree of depth %d: %ld nodes", STRETCH_DEPTH, tree_size(STRETCH_DEPTH));
}

static int array_intact(const double *a) {
    for (long k = 1; k < ARRAY_SIZE / 2; k++)
        if (a[k] != 1.0 / (double)k) return 0;
    return 1;
}

int main(int argc, char **argv) {
    GC_INIT();
    bench_start();
    check_init();
    long scale = argc > 1 ? atol(argv[1]) : 1;
    if (scale < 1) scale = 1;

    stretch();

    node *long_lived = new_node(NULL, NULL);
    populate(LONG_LIVED_DEPTH, long_lived);
    check(check_tree(long_lived, LONG_LIVED_DEPTH) == tree_size(LONG_LIVED_DEPTH),
          "gcbench: long-lived tree of depth %d: %ld nodes", LONG_LIVED_DEPTH,
          tree_size(LONG_LIVED_DEPTH));

    double *array = GC_MALLOC_ATOMIC(sizeof(double) * ARRAY_SIZE);
    if (!array) { fprintf(stderr, "gcbench: out of memory\n"); return 2; }
    for (long k = 0; k < ARRAY_SIZE / 2; k++) array[k] = 1.0 / (double)k;   /* [0] = inf */
    check(array_intact(array), "gcbench: long-lived array of %d doubles", ARRAY_SIZE);

    for (long s = 0; s < scale; s++)
        for (int d = MIN_DEPTH; d <= MAX_DEPTH; d += 2)
            time_construction(d);

    check(check_tree(long_lived, LONG_LIVED_DEPTH) == tree_size(LONG_LIVED_DEPTH),
          "gcbench: long-lived tree intact at the end");
    check(array_intact(array) && array[1000] == 1.0 / 1000, "gcbench: long-lived array intact at the end");
    GC_reachable_here(long_lived);
    GC_reachable_here(array);
    bench_report();
    return check_exit();
}
