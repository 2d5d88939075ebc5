/* hello.c -- a first tour of wbgc, start to finish in one function.
 *
 * Shows: a heap made from wbgc_config_default, this thread's P, objects that
 * are scanned for pointers (wbgc_alloc) and one that is not
 * (wbgc_alloc_noscan), every pointer store through the write barrier
 * (wbgc_write), a global registered as a root, garbage dropped and collected,
 * and a few numbers from wbgc_get_stats.
 *
 *   gcc -O2 -Wall -Wextra -Werror -pthread examples/hello.c -o examples/hello
 */
#include <stdio.h>
#define WBGC_IMPLEMENTATION
#include "../wbgc.h"

typedef struct node { struct node *next; char *name; } node;

static node *list; /* a global: invisible to the collector until registered */

int main(void) {
    wbgc_config cfg;
    wbgc_config_default(&cfg);
    cfg.gc_percent = 100;   /* a cycle when the heap doubles over what was live */
    cfg.mark_workers = -1;  /* background mark threads: chosen from the CPUs */
    wbgc_heap *h = wbgc_heap_new(&cfg);
    if (!h) return 1;
    wbgc_p *p = wbgc_attach(h);  /* every thread that touches the heap holds a P */
    wbgc_add_roots(h, &list, sizeof list);

    for (int i = 0; i < 3; i++) {
        node *n = wbgc_alloc(p, sizeof *n);     /* zeroed, scanned for pointers */
        char *name = wbgc_alloc_noscan(p, 32);  /* zeroed bytes, never scanned */
        snprintf(name, 32, "node %d", i);       /* not a pointer: plain stores */
        wbgc_write(p, &n->name, name);          /* a pointer into the heap: barrier */
        wbgc_write(p, &n->next, list);
        wbgc_write(p, &list, n);                /* into a root: barrier too */
    }
    for (int i = 0; i < 100000; i++) wbgc_alloc(p, 64);  /* garbage */
    wbgc_collect(p);                            /* a whole cycle, mark and sweep */

    for (node *n = list; n; n = n->next) printf("%s\n", n->name);
    wbgc_stats st;
    wbgc_get_stats(h, &st);
    printf("cycles %llu, heap_alloc %llu bytes, longest pause %.1f us\n",
           (unsigned long long)st.cycles, (unsigned long long)st.heap_alloc,
           st.pause_max_ns / 1e3);

    wbgc_remove_roots(h, &list);
    wbgc_detach(p);                             /* on the thread that attached */
    wbgc_heap_free(h);
    return 0;
}
