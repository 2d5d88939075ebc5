/* binarytrees.c — the Computer Language Benchmarks Game's binary-trees,
   written to Boehm GC's API: a stretch tree of depth N+1, a long-lived tree
   of depth N, then for depths 4, 6, ... N, 2^(N-d+4) trees of depth d made
   bottom-up, counted and dropped; the depths are shared among NW threads
   (pthread_create as <gc.h> redirects it). Prints the benchmark's usual
   lines, plus one ok/FAIL line checking each count against 2^(d+1)-1 per
   tree.

   Usage: binarytrees [N]   (default 16; at least 6)
   stdout: the lines and checks; stderr: the bench_report lines. */
#include <gc.h>
#include <pthread.h>
#include "check.h"
#include "bench_report.h"

enum { MIN_DEPTH = 4, NW = 2, MAX_ROWS = 32 };

typedef struct tree { struct tree *left, *right; } tree;

static tree *make(int d) {
    tree *t = GC_NEW(tree);
    if (!t) { fprintf(stderr, "binarytrees: out of memory\n"); exit(2); }
    if (d > 0) {
        t->left = make(d - 1);
        t->right = make(d - 1);
    }
    return t;
}

static long count(const tree *t) {
    return t->left ? 1 + count(t->left) + count(t->right) : 1;
}

static int max_depth;
static long row_check[MAX_ROWS], row_iters[MAX_ROWS];
static int next_row;   /* taken under row_lock */
static pthread_mutex_t row_lock = PTHREAD_MUTEX_INITIALIZER;

static void *worker(void *unused) {
    (void)unused;
    for (;;) {
        pthread_mutex_lock(&row_lock);
        int row = next_row++;
        pthread_mutex_unlock(&row_lock);
        int d = MIN_DEPTH + 2 * row;
        if (d > max_depth) return NULL;
        long iters = 1L << (max_depth - d + MIN_DEPTH), sum = 0;
        for (long i = 0; i < iters; i++) sum += count(make(d));
        row_iters[row] = iters;
        row_check[row] = sum;
    }
}

static long nodes(int d) { return (1L << (d + 1)) - 1; }

int main(int argc, char **argv) {
    GC_INIT();
    bench_start();
    check_init();
    int n = argc > 1 ? atoi(argv[1]) : 16;
    max_depth = n < MIN_DEPTH + 2 ? MIN_DEPTH + 2 : n;
    if (max_depth > 2 * MAX_ROWS) max_depth = 2 * MAX_ROWS;

    long c = count(make(max_depth + 1));
    printf("stretch tree of depth %d\t check: %ld\n", max_depth + 1, c);
    check(c == nodes(max_depth + 1), "binarytrees: stretch tree count");

    tree *long_lived = make(max_depth);

    pthread_t t[NW];
    for (int i = 0; i < NW; i++) pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < NW; i++) pthread_join(t[i], NULL);

    int rows_ok = 1;
    for (int d = MIN_DEPTH, row = 0; d <= max_depth; d += 2, row++) {
        printf("%ld\t trees of depth %d\t check: %ld\n", row_iters[row], d, row_check[row]);
        rows_ok &= row_check[row] == row_iters[row] * nodes(d);
    }
    check(rows_ok, "binarytrees: every row's count");
    c = count(long_lived);
    printf("long lived tree of depth %d\t check: %ld\n", max_depth, c);
    check(c == nodes(max_depth), "binarytrees: long-lived tree count");
    bench_report();
    return check_exit();
}
