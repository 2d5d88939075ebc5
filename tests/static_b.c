/* The second translation unit of the WBGC_STATIC check (see static_a.c). */
#define WBGC_IMPLEMENTATION
#include "../wbgc.h"

int static_b_run(void);

int static_b_run(void)
{
    wbgc_heap *h = wbgc_heap_new(NULL);
    wbgc_p *p = wbgc_attach(h);
    long *x = (long *)wbgc_alloc_noscan(p, 64);
    x[7] = 7;
    wbgc_collect(p);
    int ok = (x[7] == 7 && x[0] == 0);
    wbgc_detach(p);
    wbgc_heap_free(h);
    return ok;
}
