/* uncollectable.c — GC_MALLOC_UNCOLLECTABLE objects are roots.

   - an uncollectable table holds the only pointers to NL lists of normal GC
     objects; the program keeps the table's address only hidden
     (GC_HIDE_POINTER), so no scan of the stack or of static data finds the
     table: its contents must be traced because it is uncollectable. The
     lists survive many GC_gcollect cycles and heavy allocation; contents
     checked each time
   - a second uncollectable object whose address is kept only in malloc
     memory (invisible to the collector) is not collected either
   - GC_FREE of the table: its lists become garbage (disappearing links to
     their heads, hidden in atomic memory, are cleared: at least 90%);
     before the free those links were kept
   - GC_MALLOC_ATOMIC_UNCOLLECTABLE (Boehm 8.2 has it): its contents survive,
     but it is not scanned: an object it alone points to is collected (its
     disappearing link cleared: at least 90%); GC_FREE of it
   - allocation goes on after the frees */
#include <gc.h>
#include "check.h"
#include "lists.h"

enum { NL = 200, LEN = 100 };


static GC_hidden_pointer table_h;   /* the table's address, hidden */
static GC_hidden_pointer *links;    /* GC_MALLOC_ATOMIC: hidden links to the heads */


/* Makes the table and its lists on a thread of its own (so no stale stack
   word holds them) and registers a link to each head. */
static void make_table(void *unused) {
    (void)unused;
    struct node **t = GC_MALLOC_UNCOLLECTABLE(NL * sizeof *t);
    for (int i = 0; i < NL; i++) {
        t[i] = make_list(i * 1000L, LEN);
        links[i] = GC_HIDE_POINTER(t[i]);
        GC_general_register_disappearing_link((void **)&links[i], t[i]);
    }
    table_h = GC_HIDE_POINTER(t);
}

__attribute__((noinline)) static int table_ok(void) {
    struct node **t = GC_REVEAL_POINTER(table_h);
    for (int i = 0; i < NL; i++)
        if (!list_ok(t[i], i * 1000L, LEN)) return 0;
    return 1;
}

static void churn(void) {
    for (int k = 0; k < 50000; k++) memset(GC_MALLOC(sizeof(struct node)), 0x5a, sizeof(struct node));
    for (int k = 0; k < 50; k++) GC_MALLOC_ATOMIC(20000);
}

static void *read_link(void *p) {
    GC_hidden_pointer h = *(GC_hidden_pointer *)p;
    return h ? GC_REVEAL_POINTER(h) : NULL;
}

static int links_kept(void) {
    int n = 0;
    for (int i = 0; i < NL; i++) n += GC_call_with_alloc_lock(read_link, &links[i]) != NULL;
    return n;
}

__attribute__((noinline)) static void free_table(void) {
    GC_FREE(GC_REVEAL_POINTER(table_h));
    table_h = 0;
}

/* Atomic uncollectable: holds bytes, and a pointer it does not keep alive. */
enum { NA = 64 };
static GC_hidden_pointer atomic_h, atomic_links[NA];
struct blob { char text[64]; struct node *ptr[NA]; };

static void make_atomic(void *unused) {
    (void)unused;
    struct blob *b = GC_MALLOC_ATOMIC_UNCOLLECTABLE(sizeof *b);
    strcpy(b->text, "atomic uncollectable");
    for (int i = 0; i < NA; i++) {
        struct node *n = GC_NEW(struct node);
        n->v = 42;
        b->ptr[i] = n;   /* not scanned: does not keep n alive */
        atomic_links[i] = GC_HIDE_POINTER(n);
        GC_general_register_disappearing_link((void **)&atomic_links[i], n);
    }
    atomic_h = GC_HIDE_POINTER(b);
}

int main(void) {
    GC_INIT();
    check_init();
    links = GC_MALLOC_ATOMIC(NL * sizeof *links);

    on_thread(make_table, NULL);
    scrub_stack();
    int ok = 1;
    for (int c = 0; c < 10; c++) {
        churn();
        GC_gcollect();
        ok &= table_ok();
    }
    check(ok, "uncollectable: lists held only by a GC_MALLOC_UNCOLLECTABLE table survive 10 cycles of heavy allocation");
    check(links_kept() == NL, "uncollectable: links to those lists are kept while the table lives");

    /* An uncollectable object whose only trace is in malloc memory. */
    struct node **m = malloc(sizeof *m);
    *m = GC_MALLOC_UNCOLLECTABLE(sizeof(struct node));
    (*m)->v = 77;
    (*m)->next = make_list(5000, LEN);
    for (int c = 0; c < 3; c++) {
        churn();
        GC_gcollect();
    }
    check((*m)->v == 77 && list_ok((*m)->next, 5000, LEN),
          "uncollectable: an uncollectable object known only to malloc memory survives, with its list");
    GC_FREE(*m);
    free(m);

    free_table();
    scrub_stack();
    for (int c = 0; c < 3; c++) {
        churn();
        GC_gcollect();
    }
    int kept = links_kept();
    check(at_least(NL - kept, NL, 90), "uncollectable: after GC_FREE of the table its lists are collected (at least 90%% of %d)", NL);

    on_thread(make_atomic, NULL);
    scrub_stack();
    for (int c = 0; c < 3; c++) {
        churn();
        GC_gcollect();
    }
    struct blob *b = GC_REVEAL_POINTER(atomic_h);
    check(strcmp(b->text, "atomic uncollectable") == 0, "uncollectable: GC_MALLOC_ATOMIC_UNCOLLECTABLE contents survive");
    int cleared = 0;
    for (int i = 0; i < NA; i++) cleared += GC_call_with_alloc_lock(read_link, &atomic_links[i]) == NULL;
    check(at_least(cleared, NA, 90),
          "uncollectable: objects only an atomic uncollectable object points to are collected (at least 90%% of %d)", NA);
    GC_FREE(b);

    int after = 1;
    for (int k = 0; k < 1000; k++) {
        struct node *n = GC_NEW(struct node);
        struct node *u = GC_MALLOC_UNCOLLECTABLE(sizeof *u);
        if (!n || !u) { after = 0; break; }
        u->next = n;
        GC_FREE(u);
    }
    check(after, "uncollectable: allocation goes on after GC_FREE of uncollectable objects");
    fprintf(stderr, "uncollectable: %d of %d links kept after the table's GC_FREE\n", kept, NL);
    return check_exit();
}
