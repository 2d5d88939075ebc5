/* tests/static_a.c and static_b.c — WBGC_STATIC in two translation units:
   each has its own private copy of the implementation, and they link. */
#define WBGC_IMPLEMENTATION
#include "../wbgc.h"
#include <stdio.h>

int static_b_run(void);

int main(void)
{
    wbgc_heap *h = wbgc_heap_new(NULL);
    wbgc_p *p = wbgc_attach(h);
    long *x = (long *)wbgc_alloc(p, sizeof *x);
    *x = 42;
    wbgc_collect(p);
    int ok_a = (*x == 42);
    wbgc_detach(p);
    wbgc_heap_free(h);
    int ok_b = static_b_run();
    printf("%d passed, %d failed\n", ok_a + ok_b, 2 - ok_a - ok_b);
    return !(ok_a && ok_b);
}
