/* misc.c — the rest of the everyday API.

   GC_INIT; GC_get_gc_no grows with GC_gcollect; GC_get_heap_size > 0;
   GC_get_free_bytes <= heap size; GC_get_total_bytes grows by what was
   allocated; GC_disable/GC_enable nest (GC_gcollect does nothing while
   disabled, GC_is_disabled says so); GC_collect_a_little (called; its result
   is not checked); GC_expand_hp returns 1 and the heap does not shrink;
   GC_set_free_space_divisor; GC_add_roots on a malloc'd block holding the
   only pointers to GC lists (they survive while it is registered;
   GC_remove_roots, after which the lists are collected: disappearing links
   to them cleared, at least 90%); a static variable holding the only
   pointer to a list (static data is a root); GC_strdup, GC_strndup,
   GC_STRDUP; GC_NEW_ATOMIC; GC_reachable_here; GC_HIDE_POINTER /
   GC_REVEAL_POINTER round trip; GC_FREE of a normal object, then more
   allocation; GC_MALLOC(0) returns non-NULL;
   objects from GC_MALLOC are zeroed.

   (Boehm 8.2's gc.h declares GC_noop1 only for compilers other than GCC,
   where GC_reachable_here is an asm statement: so only GC_reachable_here.)

   This program includes <gc/gc.h>, the other spelling Boehm installs, so
   that the layer's forwarder examples/boehm/gc/gc.h is used by one test. */
#include <gc/gc.h>
#include "check.h"
#include "lists.h"


static struct node *static_list;   /* static data: a root */


static void churn(void) {
    for (int k = 0; k < 50000; k++) memset(GC_MALLOC(sizeof(struct node)), 0x5a, sizeof(struct node));
}

static void *read_link(void *p) {
    GC_hidden_pointer h = *(GC_hidden_pointer *)p;
    return h ? GC_REVEAL_POINTER(h) : NULL;
}

/* GC_add_roots: a malloc'd block of NR list heads, the lists made on a
   thread of their own; hidden links to the heads in atomic memory. */
enum { NR = 100, LEN = 50 };
static struct node **root_block;
static GC_hidden_pointer *root_links;

static void make_rooted(void *unused) {
    (void)unused;
    for (int i = 0; i < NR; i++) {
        root_block[i] = make_list(i * 100L, LEN);
        root_links[i] = GC_HIDE_POINTER(root_block[i]);
        GC_general_register_disappearing_link((void **)&root_links[i], root_block[i]);
    }
}

static void make_static_list(void *unused) {
    (void)unused;
    static_list = make_list(9000, 1000);
}

int main(void) {
    GC_INIT();
    check_init();

    GC_word gc0 = GC_get_gc_no();
    GC_gcollect();
    check(GC_get_gc_no() > gc0, "misc: GC_get_gc_no() grows with GC_gcollect()");
    size_t heap = GC_get_heap_size();
    check(heap > 0, "misc: GC_get_heap_size() > 0");
    check(GC_get_free_bytes() <= heap, "misc: GC_get_free_bytes() <= GC_get_heap_size()");
    size_t total0 = GC_get_total_bytes();
    for (int k = 0; k < 1000; k++) GC_MALLOC_ATOMIC(1024);
    check(GC_get_total_bytes() >= total0 + 1000 * 1024, "misc: GC_get_total_bytes() grows by what was allocated");

    /* Nested disable/enable. */
    check(!GC_is_disabled(), "misc: GC_is_disabled() == 0 at start");
    GC_disable();
    GC_disable();
    GC_word gc1 = GC_get_gc_no();
    GC_gcollect();
    int disabled_twice = GC_is_disabled() && GC_get_gc_no() == gc1;
    GC_enable();
    GC_gcollect();
    int disabled_once = GC_is_disabled() && GC_get_gc_no() == gc1;
    GC_enable();
    check(disabled_twice && disabled_once, "misc: GC_disable() nests: GC_gcollect() does nothing until the second GC_enable()");
    GC_gcollect();
    check(!GC_is_disabled() && GC_get_gc_no() > gc1, "misc: after the second GC_enable() GC_gcollect() collects again");

    (void)GC_collect_a_little();
    check(1, "misc: GC_collect_a_little() returns");
    heap = GC_get_heap_size();
    check(GC_expand_hp(4 << 20) == 1, "misc: GC_expand_hp(4 MiB) == 1");
    check(GC_get_heap_size() >= heap, "misc: the heap did not shrink after GC_expand_hp");
    GC_set_free_space_divisor(4);
    struct node *after_divisor = make_list(1, 1000);
    check(list_ok(after_divisor, 1, 1000), "misc: allocation after GC_set_free_space_divisor(4)");

    /* GC_add_roots / GC_remove_roots. */
    root_block = malloc(NR * sizeof *root_block);
    root_links = GC_MALLOC_ATOMIC(NR * sizeof *root_links);
    GC_add_roots(root_block, root_block + NR);
    on_thread(make_rooted, NULL);
    scrub_stack();
    int ok = 1;
    for (int c = 0; c < 5; c++) {
        churn();
        GC_gcollect();
        for (int i = 0; i < NR; i++) ok &= list_ok(root_block[i], i * 100L, LEN);
    }
    check(ok, "misc: lists held only by a GC_add_roots block survive 5 cycles");
    GC_remove_roots(root_block, root_block + NR);
    for (int c = 0; c < 3; c++) {
        churn();
        GC_gcollect();
    }
    int cleared = 0;
    for (int i = 0; i < NR; i++) cleared += GC_call_with_alloc_lock(read_link, &root_links[i]) == NULL;
    check(at_least(cleared, NR, 90), "misc: after GC_remove_roots they are collected (at least 90%% of %d)", NR);
    fprintf(stderr, "misc: %d of %d lists collected after GC_remove_roots\n", cleared, NR);
    free(root_block);

    /* A static holds the only pointer. */
    on_thread(make_static_list, NULL);
    for (int c = 0; c < 3; c++) {
        churn();
        GC_gcollect();
    }
    check(list_ok(static_list, 9000, 1000), "misc: a list held only by a static variable survives");

    /* Strings. */
    char *s1 = GC_strdup("hello, world");
    char *s2 = GC_strndup("hello, world", 5);
    char *s3 = GC_STRDUP("boehm");
    char *s4 = GC_strndup("abc", 10);
    check(s1 && strcmp(s1, "hello, world") == 0, "misc: GC_strdup");
    check(s2 && strcmp(s2, "hello") == 0, "misc: GC_strndup(s, 5) copies 5 bytes and terminates");
    check(s4 && strcmp(s4, "abc") == 0, "misc: GC_strndup(s, n) with n past the end copies the string");
    check(s3 && strcmp(s3, "boehm") == 0, "misc: GC_STRDUP");
    check(GC_base(s1) == s1 && GC_base(s3) == s3, "misc: the copies are GC objects");

    double *d = GC_NEW_ATOMIC(double);
    *d = 2.5;
    struct node *z = GC_NEW(struct node);
    check(d && *d == 2.5 && z && z->next == NULL && z->v == 0, "misc: GC_NEW_ATOMIC, and GC_NEW's object is zeroed");
    GC_reachable_here(d);

    struct node *h = make_list(3, 10);
    GC_hidden_pointer hidden = GC_HIDE_POINTER(h);
    check(hidden != (GC_hidden_pointer)h && GC_REVEAL_POINTER(hidden) == (void *)h,
          "misc: GC_REVEAL_POINTER(GC_HIDE_POINTER(p)) == p");
    GC_reachable_here(h);

    struct node *f = GC_NEW(struct node);
    GC_FREE(f);
    GC_FREE(NULL);
    struct node *more = make_list(4, 10000);
    check(list_ok(more, 4, 10000), "misc: GC_FREE of a normal object (and of NULL), then more allocation");

    void *z1 = GC_MALLOC(0), *z2 = GC_MALLOC(0);
    check(z1 != NULL && z2 != NULL, "misc: GC_MALLOC(0) returns non-NULL");
    GC_reachable_here(z1);
    GC_reachable_here(z2);

    check(list_ok(after_divisor, 1, 1000) && list_ok(static_list, 9000, 1000), "misc: everything kept is intact at the end");
    return check_exit();
}
