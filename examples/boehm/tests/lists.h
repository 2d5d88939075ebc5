/* lists.h — the list of GC nodes that several boehm/tests programs build
   and check. Include it after <gc.h>; Boehm GC's public API only.

   make_list(base, len)    a list of len GC_NEW nodes, values base+len-1
                           down to base (newest first), nothing else
                           holding them
   list_ok(n, base, len)   whether n is such a list, intact */
#ifndef BOEHM_TESTS_LISTS_H
#define BOEHM_TESTS_LISTS_H

struct node { struct node *next; long v; };

__attribute__((unused)) static struct node *make_list(long base, long len) {
    struct node *list = NULL;
    for (long k = 0; k < len; k++) {
        struct node *n = GC_NEW(struct node);
        n->v = base + k;
        n->next = list;
        list = n;
    }
    return list;
}

__attribute__((unused)) static int list_ok(const struct node *n, long base, long len) {
    for (long k = len - 1; k >= 0; k--, n = n->next)
        if (!n || n->v != base + k) return 0;
    return n == NULL;
}

#endif
