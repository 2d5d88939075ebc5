/* tests/cxx.c — compiled as C++ by build.sh (g++ -x c++): the header, the
   implementation included, must build and work in a C++ translation unit. */
#define WBGC_IMPLEMENTATION
#include "../wbgc.h"
#include <stdio.h>

struct cell { struct cell *next; long v; };

int main(void)
{
    int failed = 0;
    wbgc_heap *h = wbgc_heap_new(NULL);
    wbgc_p *p = wbgc_attach(h);
    struct cell *list = NULL;
    for (long i = 0; i < 100000; i++) {
        struct cell *c = (struct cell *)wbgc_alloc(p, sizeof *c);
        c->v = i;
        wbgc_write(p, &c->next, list);
        list = c;
    }
    wbgc_collect(p);
    long want = 100000;
    for (struct cell *c = list; c; c = c->next) failed |= (c->v != --want);
    failed |= (want != 0);
    wbgc_detach(p);
    wbgc_heap_free(h);
    printf("%d passed, %d failed\n", !failed, failed);
    return failed;
}
