/* mutate.c -- a mutation-heavy benchmark over gcb.h: a large live graph whose
 * pointers are rewritten all the time while garbage is allocated. Here every
 * collector's cost of keeping up with a changing heap shows: wbgc's write
 * barrier (and the marking it feeds), Boehm's re-marking of dirty pages in
 * incremental mode, and both collectors' marking of a big live set.
 * Collector backends only (wbgc and Boehm): with malloc nobody could know
 * when a node stops being reachable.
 *
 * The graph: a table of N nodes (N chosen so that the whole graph is about
 * --live-mb MiB, default 100: 874,000 nodes), each node 64 bytes {tag, 6
 * edges, leaf}, each leaf 48 bytes {tag, owner, 4 words of data}. The edges
 * start pointing at random nodes. Then --ops operations (default 16 M), each:
 *
 *   - rewrites two random edges of random nodes to point at random nodes;
 *   - every second operation, replaces one node's leaf by a new one (the old
 *     leaf becomes garbage: it was reachable only from that node);
 *   - allocates one 32-byte temporary {two node pointers, two words} that is
 *     dropped at once (the short-lived garbage real programs make).
 *
 * Nodes are never replaced, so the live set stays the same size throughout.
 * The random numbers come from a fixed seed, so every backend does exactly
 * the same work. At the end every node's tag, edges and leaf (tag and
 * owner) are checked; a wrong one exits 1.
 *
 *   ./build.sh                   # builds build/gcb/mutate.{wbgc,boehm}
 *   build/gcb/mutate.wbgc --mode conc
 *   build/gcb/mutate.boehm --mode incr --live-mb 200 --ops 4000000
 *   build/gcb/mutate.wbgc --quick
 *
 * Options: --mode M (see gcb.h), --live-mb N, --ops N, --quick (8 MiB,
 * 1 M operations, for smoke runs). report.c runs it for the tables. */
#include "gcb.h"

#if GCB_EXPLICIT_FREE
#error "mutate.c needs a collector: build it with GCB_WBGC or GCB_BOEHM"
#endif

enum { NEDGE = 6 };
#define NODE_TAG 0x6e6f64655f5f5f5fULL /* "node____" xor the node's index */
#define LEAF_TAG 0x6c6561665f5f5f5fULL

typedef struct Leaf Leaf;
typedef struct Node {
    uint64_t tag;
    struct Node *edge[NEDGE];
    Leaf *leaf;
} Node;

struct Leaf {
    uint64_t tag;
    Node *owner;
    uint64_t data[4];
};

typedef struct Temp {
    Node *a, *b;
    uint64_t x, y;
} Temp;

_Static_assert(sizeof(Node) == 64 && sizeof(Leaf) == 48 && sizeof(Temp) == 32, "object sizes");

/* xorshift64*: fast, and the same sequence everywhere */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static inline uint64_t rng(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}
/* a number below n, without a division */
static inline size_t rnd(size_t n) { return (size_t)(((unsigned __int128)rng() * n) >> 64); }

static Leaf *new_leaf(gcb_t *t, Node *owner, uint64_t id, uint64_t gen) {
    Leaf *l = gcb_alloc(t, sizeof(Leaf));
    l->tag = LEAF_TAG ^ id;
    for (int k = 0; k < 4; k++) l->data[k] = gen + (uint64_t)k;
    gcb_write(t, &l->owner, owner);
    return l;
}

static void usage(FILE *f) {
    fprintf(f, "usage: mutate [--mode M] [--live-mb N] [--ops N] [--quick]\n");
}

int main(int argc, char **argv) {
    const char *mode = NULL;
    long live_mb = 100, ops = 16000000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mode") && i + 1 < argc) mode = argv[++i];
        else if (!strcmp(argv[i], "--live-mb") && i + 1 < argc) live_mb = atol(argv[++i]);
        else if (!strcmp(argv[i], "--ops") && i + 1 < argc) ops = atol(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) { live_mb = 8; ops = 1000000; }
        else if (!strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        else { usage(stderr); return 2; }
    }
    if (live_mb < 1 || ops < 0) { usage(stderr); return 2; }
    /* per node: itself, its leaf, its table slot */
    size_t n = (size_t)live_mb * 1024 * 1024 / (sizeof(Node) + sizeof(Leaf) + sizeof(Node *));

    gcb_t *t = gcb_init("mutate", mode, 0);
    /* the table is a GC object too: it holds the only references to the
       nodes that no edge points at */
    Node **table = gcb_alloc(t, n * sizeof *table);
    for (size_t i = 0; i < n; i++) {
        Node *x = gcb_alloc(t, sizeof(Node));
        x->tag = NODE_TAG ^ i;
        gcb_write(t, &table[i], x);
        gcb_write(t, &x->leaf, new_leaf(t, x, i, 0));
    }
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < NEDGE; k++) gcb_write(t, &table[i]->edge[k], table[rnd(n)]);

    uint64_t sink = 0;
    for (long op = 0; op < ops; op++) {
        for (int w = 0; w < 2; w++) {
            /* one statement each: the order of a call's arguments is
               unspecified in C (gcc and clang drew these two the other
               way round, and so did different work) */
            Node *a = table[rnd(n)];
            Node *to = table[rnd(n)];
            gcb_write(t, &a->edge[rnd(NEDGE)], to);
        }
        if (op & 1) {
            size_t i = rnd(n);
            Node *a = table[i];
            gcb_write(t, &a->leaf, new_leaf(t, a, i, (uint64_t)op));
        }
        Temp *tmp = gcb_alloc(t, sizeof(Temp));
        Node *a = table[rnd(n)], *b = a->edge[rnd(NEDGE)];
        gcb_write2(t, &tmp->a, a, &tmp->b, b);
        tmp->x = (uint64_t)op;
        tmp->y = b->tag;
        sink += tmp->y ^ tmp->a->tag;
    }

    const char *bad = NULL;
    for (size_t i = 0; i < n && !bad; i++) {
        gcb_safepoint(t); /* this loop does not allocate */
        Node *x = table[i];
        if (x->tag != (NODE_TAG ^ i)) bad = "a node's tag changed";
        else if (!x->leaf || x->leaf->tag != (LEAF_TAG ^ i) || x->leaf->owner != x) bad = "a leaf is wrong";
        for (int k = 0; k < NEDGE && !bad; k++) {
            Node *y = x->edge[k];
            if (!y || (y->tag ^ NODE_TAG) >= n || table[y->tag ^ NODE_TAG] != y) bad = "an edge points at a non-node";
        }
    }
    printf("mutate: %zu nodes, %ld operations (sink %llx)\n", n, ops, (unsigned long long)(sink & 0xffff));
    uint64_t live = (uint64_t)n * (sizeof(Node) + sizeof(Leaf) + sizeof(Node *));
    return gcb_done(t, bad ? bad : "ok", live);
}
