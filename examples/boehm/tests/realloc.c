/* realloc.c — GC_REALLOC, GC_size, GC_base, GC_is_heap_ptr.

   - GC_REALLOC(NULL, n) allocates (gc.h: "equivalent to GC_malloc
     regardless of new size")
   - a chain of reallocs from 1 byte up to 4 MiB and back down to 1, for
     GC_MALLOC and GC_MALLOC_ATOMIC objects: at each step the old contents up
     to the smaller size are kept (each step fills its new bytes with a
     pattern of its own), GC_size(p) >= the size asked for, GC_base of an
     interior pointer (the middle, the last byte) is p, GC_is_heap_ptr(p);
     a GC_MALLOC object's new bytes are zero (gc.h promises it; not for
     atomic objects, so not checked for them)
   - a scanned object's pointers keep their targets alive across reallocs
     that move it, with collections in between
   - GC_REALLOC(p, n) with n == 0 and p != NULL: gc.h says it is
     GC_free(p) and returns NULL; only that return value is checked
   - GC_base and GC_is_heap_ptr of non-heap pointers (a static, a local,
     malloc memory): NULL and 0
   - GC_size of small and large objects >= the size asked for */
#include <gc.h>
#include "check.h"

enum { TOP = 4 << 20 };

static unsigned char pattern(size_t i, unsigned step) { return (unsigned char)(i * 31u + step * 7u + 1u); }

/* The sizes of a chain's steps, in order. A step that grows the object
   writes pattern(i, step) into every new byte i; a step that shrinks it
   writes nothing. So byte i holds the pattern of the last growing step s
   with sizes[s-1] <= i < sizes[s] (sizes[-1] = 0). */
struct chain { size_t sizes[128]; unsigned nsteps; };

static unsigned writer_of(size_t i, const struct chain *c) {
    unsigned w = 0;
    for (unsigned s = 0; s < c->nsteps; s++)
        if ((s ? c->sizes[s - 1] : 0) <= i && i < c->sizes[s]) w = s;
    return w;
}

/* Every byte while the object is small (a full check per step costs
   steps * size), samples above. */
static int contents_ok(const unsigned char *p, size_t n, const struct chain *c) {
    if (n <= 4096) {
        for (size_t i = 0; i < n; i++)
            if (p[i] != pattern(i, writer_of(i, c))) return 0;
        return 1;
    }
    size_t probe[] = { 0, 1, 4095, 4096, n / 3, n / 2, n - 2, n - 1 };
    for (unsigned k = 0; k < sizeof probe / sizeof probe[0]; k++)
        if (p[probe[k]] != pattern(probe[k], writer_of(probe[k], c))) return 0;
    return 1;
}

/* One realloc chain. atomic: GC_MALLOC_ATOMIC as the first allocation. */
static int realloc_chain(int atomic, int *size_ok, int *base_ok, int *heap_ok, int *zero_ok) {
    struct chain c = { .nsteps = 0 };
    unsigned char *p = atomic ? GC_MALLOC_ATOMIC(1) : GC_REALLOC(NULL, 1);
    if (!p) return 0;
    size_t n = 1;
    int contents = 1;
    *size_ok = *base_ok = *heap_ok = *zero_ok = 1;
    c.sizes[c.nsteps] = 1;
    p[0] = pattern(0, c.nsteps);
    c.nsteps++;
    /* Up: n grows by half plus one each step; then down, halving. */
    int going_up = 1;
    while (c.nsteps < 128) {
        size_t next;
        if (going_up) {
            next = n + n / 2 + 1;
            if (next > TOP) { next = TOP; going_up = 0; }
        } else {
            next = n / 2;
            if (next == 0) break;
        }
        unsigned char *q = GC_REALLOC(p, next);
        if (!q) return 0;
        p = q;
        if (next > n) {
            for (size_t i = n; i < next; i++) *zero_ok &= p[i] == 0;
            for (size_t i = n; i < next; i++) p[i] = pattern(i, c.nsteps);
        }
        c.sizes[c.nsteps++] = next;
        n = next;
        contents &= contents_ok(p, n, &c);
        *size_ok &= GC_size(p) >= n;
        *base_ok &= GC_base(p + n / 2) == p && GC_base(p + n - 1) == p && GC_base(p) == p;
        *heap_ok &= GC_is_heap_ptr(p) != 0 && GC_is_heap_ptr(p + n - 1) != 0;
        if (c.nsteps % 8 == 0) GC_gcollect();
    }
    return contents && n == 1 && !going_up;
}

/* A scanned array of pointers, the only holder of its targets, grown and
   shrunk by realloc with collections in between. */
struct tgt { long magic, id; };

__attribute__((noinline)) static int pointers_survive(void) {
    size_t cap = 0;
    struct tgt **a = NULL;
    long made = 0;
    for (int round = 0; round < 12; round++) {
        size_t ncap = cap ? cap * 2 : 4;
        struct tgt **b = GC_REALLOC(a, ncap * sizeof *b);
        if (!b) return 0;
        a = b;
        for (size_t i = cap; i < ncap; i++) {
            a[i] = GC_NEW(struct tgt);
            a[i]->magic = 0x7a7;
            a[i]->id = made++;
        }
        cap = ncap;
        for (int k = 0; k < 2000; k++) memset(GC_MALLOC(sizeof(struct tgt)), 0x5a, sizeof(struct tgt));
        GC_gcollect();
    }
    /* Shrink to the first quarter and collect again. */
    cap /= 4;
    a = GC_REALLOC(a, cap * sizeof *a);
    GC_gcollect();
    for (size_t i = 0; i < cap; i++)
        if (!a[i] || a[i]->magic != 0x7a7 || a[i]->id != (long)i) return 0;
    return 1;
}

static int a_static;

int main(void) {
    GC_INIT();
    check_init();

    int size_ok, base_ok, heap_ok, zero_ok;
    check(realloc_chain(0, &size_ok, &base_ok, &heap_ok, &zero_ok),
          "realloc: GC_REALLOC(NULL, 1), then 1 byte up to 4 MiB and back to 1 keeps the contents");
    check(size_ok, "realloc: GC_size(p) >= the size asked for at every step");
    check(base_ok, "realloc: GC_base of p, its middle and its last byte is p at every step");
    check(heap_ok, "realloc: GC_is_heap_ptr(p) at every step");
    check(zero_ok, "realloc: the bytes a GC_MALLOC object grows by are zero (gc.h; not promised for atomic)");
    check(realloc_chain(1, &size_ok, &base_ok, &heap_ok, &zero_ok),
          "realloc: the same chain from GC_MALLOC_ATOMIC(1) keeps the contents");
    check(size_ok && base_ok && heap_ok, "realloc: GC_size, GC_base, GC_is_heap_ptr along the atomic chain");
    check(pointers_survive(), "realloc: pointers in a reallocated object keep their targets alive");

    void *p = GC_MALLOC(100);
    check(p != NULL && GC_REALLOC(p, 0) == NULL, "realloc: GC_REALLOC(p, 0) returns NULL (gc.h: it is GC_free)");
    p = GC_MALLOC(100);   /* allocation goes on after that */
    check(p != NULL && GC_size(p) >= 100, "realloc: GC_size(GC_MALLOC(100)) >= 100");
    void *big = GC_MALLOC_ATOMIC(3 << 20);
    check(big != NULL && GC_size(big) >= (3 << 20), "realloc: GC_size(GC_MALLOC_ATOMIC(3 MiB)) >= 3 MiB");
    check(GC_base((char *)big + (2 << 20)) == big, "realloc: GC_base of a pointer 2 MiB into a 3 MiB object");

    int a_local = 0;
    void *m = malloc(64);
    check(GC_base(&a_static) == NULL, "realloc: GC_base(&a static) == NULL");
    check(GC_base(&a_local) == NULL, "realloc: GC_base(&a local) == NULL");
    check(GC_base(m) == NULL, "realloc: GC_base(malloc memory) == NULL");
    check(!GC_is_heap_ptr(&a_static) && !GC_is_heap_ptr(&a_local) && !GC_is_heap_ptr(m),
          "realloc: GC_is_heap_ptr of a static, a local, malloc memory == 0");
    free(m);
    GC_reachable_here(p);
    GC_reachable_here(big);
    return check_exit();
}
