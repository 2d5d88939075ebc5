/* huge.c — allocations that cannot succeed fail cleanly, with NULL.

   - GC_MALLOC((size_t)1 << 62), GC_MALLOC(SIZE_MAX),
     GC_MALLOC_ATOMIC(SIZE_MAX - 8), GC_MALLOC_UNCOLLECTABLE(SIZE_MAX),
     GC_REALLOC(p, SIZE_MAX) (p untouched, gc.h: "the memory pointed by
     old_object is untouched") all return NULL; ordinary allocation works
     after them
   - with GC_set_max_heap_size(64 MiB), keeping 1 GiB live in 1 MiB pieces
     must fail (NULL) at some point, without crashing and before 1 GiB;
     once that data is dropped (it was made on a joined thread, so no
     stale stack word holds it), small and 1 MiB allocations work again
   - the out-of-memory handler (GC_set_oom_fn, returning NULL as Boehm's
     default does) is called once per failed allocation, and what it
     returns is what the allocation returns (one that returns a reserve
     object)
   Warnings (GC_set_warn_proc) are counted, the count and the first few go
   to stderr only: Boehm and the layer word and count them differently. */
#include <gc.h>
#include <stdint.h>
#include "check.h"

static long warnings, ooms;

static void GC_CALLBACK on_warn(char *msg, GC_word arg) {
    warnings++;
    if (warnings <= 5) {
        fputs("huge: warning: ", stderr);
        fprintf(stderr, msg, arg);
    }
}

static void *GC_CALLBACK on_oom(size_t bytes) {
    (void)bytes;
    ooms++;
    return NULL;
}

/* gc.h: the oom function "must return 0 or a valid pointer to a previously
   allocated heap object", and that is what the failed allocation returns. */
static void *reserve;
static void *GC_CALLBACK on_oom_reserve(size_t bytes) {
    (void)bytes;
    return reserve;
}

enum { PIECE = 1 << 20, MAX_HEAP = 64 << 20 };

struct piece { struct piece *next; char data[PIECE - sizeof(struct piece *)]; };

static long pieces_made;
static int hit_null;

/* Keeps 1 MiB pieces live in a list until an allocation fails (or 1 GiB). */
static void fill(void *unused) {
    (void)unused;
    struct piece *list = NULL;
    for (long k = 0; k < 1024; k++) {
        struct piece *p = GC_MALLOC(sizeof *p);
        if (!p) { hit_null = 1; break; }
        p->data[0] = 1;
        p->data[sizeof p->data - 1] = 2;
        p->next = list;
        list = p;
        pieces_made++;
    }
    long n = 0;
    for (struct piece *p = list; p; p = p->next) n += p->data[0] == 1 && p->data[sizeof p->data - 1] == 2;
    if (n != pieces_made) pieces_made = -1;   /* a piece got corrupt */
}

static int small_allocations_work(void) {
    for (int k = 0; k < 10000; k++) {
        char *s = GC_MALLOC(48);
        if (!s) return 0;
        memset(s, k & 0xff, 48);
    }
    char *big = GC_MALLOC_ATOMIC(PIECE);
    if (!big) return 0;
    memset(big, 1, PIECE);
    return 1;
}

int main(void) {
    GC_INIT();
    GC_set_warn_proc(on_warn);
    GC_set_oom_fn(on_oom);
    check_init();

    check(GC_MALLOC((size_t)1 << 62) == NULL, "huge: GC_MALLOC(1 << 62) == NULL");
    check(GC_MALLOC(SIZE_MAX) == NULL, "huge: GC_MALLOC(SIZE_MAX) == NULL");
    check(GC_MALLOC_ATOMIC(SIZE_MAX - 8) == NULL, "huge: GC_MALLOC_ATOMIC(SIZE_MAX - 8) == NULL");
    check(GC_MALLOC_UNCOLLECTABLE(SIZE_MAX) == NULL, "huge: GC_MALLOC_UNCOLLECTABLE(SIZE_MAX) == NULL");
    char *p = GC_MALLOC(100);
    strcpy(p, "still here");
    check(GC_REALLOC(p, SIZE_MAX) == NULL, "huge: GC_REALLOC(p, SIZE_MAX) == NULL");
    check(strcmp(p, "still here") == 0, "huge: p untouched by the failed GC_REALLOC");
    check(small_allocations_work(), "huge: ordinary allocation works after the failures");
    check(ooms == 5, "huge: the GC_set_oom_fn handler was called once per failed allocation");
    reserve = GC_MALLOC(64);
    GC_set_oom_fn(on_oom_reserve);
    check(GC_MALLOC((size_t)1 << 62) == reserve, "huge: a failed allocation returns what the oom handler returns");
    GC_set_oom_fn(on_oom);

    GC_set_max_heap_size(MAX_HEAP);
    on_thread(fill, NULL);
    check(hit_null, "huge: with GC_set_max_heap_size(64 MiB), keeping 1 GiB live fails with NULL");
    check(pieces_made >= 0, "huge: the pieces made before the failure are intact");
    check(pieces_made < MAX_HEAP / PIECE, "huge: it failed before the heap limit was passed");
    check(ooms == 6, "huge: the oom handler was called for that failure too");
    scrub_stack();
    GC_gcollect();
    check(small_allocations_work(), "huge: once the data is dropped, small and 1 MiB allocations work again");
    GC_reachable_here(p);
    fprintf(stderr, "huge: %ld pieces of 1 MiB before NULL, %ld warnings, %ld oom calls\n", pieces_made, warnings, ooms);
    return check_exit();
}
