/* gc.h — Boehm GC's interface, on wbgc.

   A program written for Boehm GC (bdwgc) builds unchanged against this
   header and gc_wbgc.c beside it:

       cc -I path/to/examples/boehm -DGC_THREADS prog.c \
          path/to/examples/boehm/gc_wbgc.c -pthread

   (<gc.h> and <gc/gc.h> both find it). It covers the part of Boehm's API
   that ordinary programs call: allocation, explicit collection and the
   heap's counters, roots, finalization and disappearing links, threads.
   Each function has Boehm's meaning, or where wbgc cannot give it a safe
   stand-in, said below in WHAT DIFFERS. README.md, "Coming from Boehm GC",
   has the short version.

   WHICH MODE A PROGRAM GETS

   Boehm programs store pointers with plain stores, which wbgc's concurrent
   collector cannot follow (its rule 2: stores go through wbgc_write). So
   by default the layer runs wbgc stop-the-world (WBGC_STW): each cycle
   stops every thread, marks, and sweeps, and plain stores are safe.

   A program written for Boehm's manual-dirtying incremental mode stores
   every pointer into the heap with GC_PTR_STORE_AND_DIRTY (here:
   wbgc_write) and calls GC_enable_incremental() before its first
   allocation: it gets wbgc's concurrent collector (pauses well under a
   millisecond). Its static data still takes plain stores: the layer
   registers it with wbgc_add_roots_rescan, scanned once more in the pause
   that ends each mark. GC_enable_incremental() after the first allocation
   is too late to switch: the collector stays stop-the-world (a warning).

   Environment: WBGC_MODE=stw|concurrent|incremental forces a mode (the
   last two are for programs that mark their stores); WBGC_MODE=check keeps
   the program's mode and turns on wbgc's check mode and verifier
   (WBGC_CHECK | WBGC_VERIFY): a program that asked for concurrency without
   marking its stores then fails loudly ("wbgc: fatal: verifier: ...") at
   the first cycle that would have lost an object, instead of losing it.
   WBGC_GC_PERCENT, WBGC_TRACE, WBGC_VERIFY work as for any wbgc heap.

   THREADS

   With GC_THREADS (and without GC_NO_THREAD_REDIRECTS) pthread_create,
   pthread_join, pthread_detach and pthread_exit become the GC_pthread_*
   wrappers, as in Boehm's gc.h: a new thread is attached to the heap
   (its own wbgc P, kept in thread-local storage) before it runs, and
   detached when it returns or exits; its argument and its return value
   are kept alive meanwhile (until joined). A thread made elsewhere calls
   GC_register_my_thread first, or is attached at its first call.

   wbgc stops threads cooperatively: at an allocation or another GC call.
   A thread that blocks where the layer cannot see it would hold up every
   collection (Boehm stops threads with signals and has no such rule). So
   the layer also redirects the common blocking calls — pthread_mutex_lock,
   pthread_cond_wait, pthread_cond_timedwait, sleep, usleep, nanosleep —
   to wrappers that run them inside a blocking region (wbgc_blocking_begin
   /end). Other blocking calls (read, poll, accept, sem_wait, a spin that
   does not allocate) should be wrapped in GC_do_blocking; a stop held up
   longer than 100 ms is reported (through the warn proc) with the thread.

   WHAT DIFFERS

   GC_FREE does nothing for a collectable object (wbgc frees only what is
   unreachable; an explicitly freed object is reclaimed once the program
   drops it); for an uncollectable one it ends its life.
   GC_MALLOC_UNCOLLECTABLE: an object that is a root and never collected,
   kept in a table the collector scans. GC_set_max_heap_size is wbgc's
   memory_limit: bytes in objects, not the heap's address space.
   GC_expand_hp does nothing and succeeds; GC_get_heap_size is the memory
   the heap has or, while that is smaller, its goal. GC_collect_a_little
   runs a safepoint and returns 0. Every finalizer ignores pointers from
   its object to itself (Boehm's _ignore_self: with a plain
   GC_register_finalizer, an object that points to itself is never
   finalized in Boehm, and is here); GC_register_finalizer_no_order is
   ordered (a cycle of finalizable objects is not finalized, and in a
   chain a->b, b's finalizer runs a cycle after a's). Finalizers run on
   a thread of the heap's own unless GC_set_finalize_on_demand(1) is
   called before the first allocation; then only in GC_invoke_finalizers.
   A value passed to pthread_exit is kept alive until the join, as a
   returned one is (Boehm keeps only the returned one). Shared libraries' data is a root
   when the heap is made (dl_iterate_phdr); a library opened later with
   dlopen is not scanned unless the program adds its data with
   GC_add_roots. In incremental mode a disappearing link is read inside
   GC_call_with_alloc_lock (as Boehm asks), which keeps every link's
   object alive through a mark that is under way. */

#ifndef GC_WBGC_H
#define GC_WBGC_H

#define GC_WBGC 1  /* this is the wbgc layer, not Boehm GC */

#include <stddef.h>
#include <stdint.h>
#include "../../wbgc.h"

#if defined(GC_THREADS) || defined(GC_PTHREADS) || defined(GC_LINUX_THREADS)
#  ifndef GC_THREADS
#    define GC_THREADS 1
#  endif
#  include <pthread.h>
#  include <time.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define GC_API   extern
#define GC_CALL
#define GC_CALLBACK

typedef uintptr_t GC_word;
typedef intptr_t  GC_signed_word;
typedef GC_word   GC_hidden_pointer;

#define GC_SUCCESS       0
#define GC_DUPLICATE     1
#define GC_NO_THREADS    2
#define GC_NO_MEMORY     2
#define GC_UNIMPLEMENTED 3
#define GC_NOT_FOUND     4

typedef void (*GC_finalization_proc)(void *obj, void *client_data);
typedef void (*GC_warn_proc)(char *msg, GC_word arg);
typedef void *(*GC_oom_func)(size_t bytes_requested);
typedef void *(*GC_fn_type)(void *client_data);
struct GC_stack_base { void *mem_base; };
typedef void *(*GC_stack_base_func)(struct GC_stack_base *sb, void *arg);

/* ---- start-up and settings --------------------------------------------- */
GC_API void   GC_init(void);
#define GC_INIT() GC_init()
GC_API int    GC_is_init_called(void);
GC_API void   GC_enable_incremental(void);
GC_API int    GC_is_incremental_mode(void);
GC_API void   GC_set_finalize_on_demand(int on);
GC_API int    GC_get_finalize_on_demand(void);
GC_API void   GC_set_free_space_divisor(GC_word divisor);
GC_API GC_word GC_get_free_space_divisor(void);
GC_API void   GC_set_max_heap_size(GC_word bytes);
GC_API int    GC_expand_hp(size_t bytes);
GC_API void   GC_set_manual_vdb_allowed(int on);    /* always: the barrier is there */
GC_API void   GC_set_warn_proc(GC_warn_proc proc);
GC_API GC_warn_proc GC_get_warn_proc(void);
GC_API void   GC_set_oom_fn(GC_oom_func fn);
GC_API GC_oom_func GC_get_oom_fn(void);
GC_API void   GC_disable(void);
GC_API void   GC_enable(void);
GC_API int    GC_is_disabled(void);
GC_API void   GC_set_all_interior_pointers(int on);   /* always on in wbgc */
GC_API void   GC_set_dont_expand(int on);             /* ignored */

/* ---- allocation -------------------------------------------------------- */
GC_API void  *GC_malloc(size_t bytes);
GC_API void  *GC_malloc_atomic(size_t bytes);
GC_API void  *GC_malloc_uncollectable(size_t bytes);
GC_API void  *GC_malloc_atomic_uncollectable(size_t bytes);
GC_API void  *GC_malloc_ignore_off_page(size_t bytes);
GC_API void  *GC_malloc_atomic_ignore_off_page(size_t bytes);
GC_API void  *GC_realloc(void *obj, size_t bytes);
GC_API void   GC_free(void *obj);
GC_API char  *GC_strdup(const char *s);
GC_API char  *GC_strndup(const char *s, size_t n);
GC_API void  *GC_base(void *ptr);
GC_API int    GC_is_heap_ptr(const void *ptr);
GC_API size_t GC_size(const void *obj);

#define GC_MALLOC(n)                        GC_malloc(n)
#define GC_MALLOC_ATOMIC(n)                 GC_malloc_atomic(n)
#define GC_MALLOC_UNCOLLECTABLE(n)          GC_malloc_uncollectable(n)
#define GC_MALLOC_ATOMIC_UNCOLLECTABLE(n)   GC_malloc_atomic_uncollectable(n)
#define GC_MALLOC_IGNORE_OFF_PAGE(n)        GC_malloc_ignore_off_page(n)
#define GC_MALLOC_ATOMIC_IGNORE_OFF_PAGE(n) GC_malloc_atomic_ignore_off_page(n)
#define GC_REALLOC(p, n)                    GC_realloc(p, n)
#define GC_FREE(p)                          GC_free(p)
#define GC_STRDUP(s)                        GC_strdup(s)
#define GC_STRNDUP(s, n)                    GC_strndup(s, n)
#define GC_NEW(t)                           ((t *)GC_MALLOC(sizeof(t)))
#define GC_NEW_ATOMIC(t)                    ((t *)GC_MALLOC_ATOMIC(sizeof(t)))
#define GC_NEW_UNCOLLECTABLE(t)             ((t *)GC_MALLOC_UNCOLLECTABLE(sizeof(t)))

/* ---- collection and counters ------------------------------------------ */
GC_API void   GC_gcollect(void);
GC_API void   GC_gcollect_and_unmap(void);
GC_API int    GC_collect_a_little(void);
GC_API size_t GC_get_heap_size(void);
GC_API size_t GC_get_free_bytes(void);
GC_API size_t GC_get_unmapped_bytes(void);
GC_API size_t GC_get_bytes_since_gc(void);
GC_API size_t GC_get_total_bytes(void);
GC_API GC_word GC_get_gc_no(void);

/* ---- roots ------------------------------------------------------------ */
GC_API void   GC_add_roots(void *low, void *high_plus_1);
GC_API void   GC_remove_roots(void *low, void *high_plus_1);
GC_API void   GC_clear_roots(void);

/* ---- finalization and disappearing links ------------------------------ */
GC_API void   GC_register_finalizer(void *obj, GC_finalization_proc fn, void *cd,
                                    GC_finalization_proc *ofn, void **ocd);
GC_API void   GC_register_finalizer_ignore_self(void *obj, GC_finalization_proc fn, void *cd,
                                                GC_finalization_proc *ofn, void **ocd);
GC_API void   GC_register_finalizer_no_order(void *obj, GC_finalization_proc fn, void *cd,
                                             GC_finalization_proc *ofn, void **ocd);
GC_API int    GC_invoke_finalizers(void);
GC_API int    GC_should_invoke_finalizers(void);
GC_API int    GC_register_disappearing_link(void **link);
GC_API int    GC_general_register_disappearing_link(void **link, const void *obj);
GC_API int    GC_unregister_disappearing_link(void **link);
GC_API void  *GC_call_with_alloc_lock(GC_fn_type fn, void *client_data);

#define GC_REGISTER_FINALIZER(p, f, d, of, od) GC_register_finalizer(p, f, d, of, od)
#define GC_REGISTER_FINALIZER_IGNORE_SELF(p, f, d, of, od) \
    GC_register_finalizer_ignore_self(p, f, d, of, od)
#define GC_REGISTER_FINALIZER_NO_ORDER(p, f, d, of, od) \
    GC_register_finalizer_no_order(p, f, d, of, od)
#define GC_GENERAL_REGISTER_DISAPPEARING_LINK(link, obj) \
    GC_general_register_disappearing_link(link, obj)

/* ---- hidden pointers, keeping a value alive ---------------------------- */
#define GC_HIDE_POINTER(p)   (~(GC_hidden_pointer)(p))
#define GC_REVEAL_POINTER(p) ((void *)GC_HIDE_POINTER(p))
GC_API void   GC_noop1(GC_word x);
#define GC_noop(...)         GC_noop1(0)
#define GC_reachable_here(p) __asm__ __volatile__("" : : "g"(p) : "memory")

/* ---- the barrier of manual-dirtying incremental mode ------------------- */
/* Stores q into *p (a slot of a heap object or a root), as wbgc_write. In
   stop-the-world mode it is a plain store with a check of the thread's P. */
GC_API wbgc_p *GC_wbgc_self_slow(void);
GC_API __thread wbgc_p *GC_wbgc_self_p;
static inline void GC_ptr_store_and_dirty(void *p, const void *q)
{
    wbgc_p *self = GC_wbgc_self_p;
    if (!self) self = GC_wbgc_self_slow();
    wbgc_write(self, p, (void *)q);
}
#define GC_PTR_STORE_AND_DIRTY(p, q) GC_ptr_store_and_dirty(p, q)
GC_API void GC_end_stubborn_change(const void *obj);   /* nothing to do */
#define GC_END_STUBBORN_CHANGE(p) GC_end_stubborn_change(p)

/* ---- threads ---------------------------------------------------------- */
GC_API void   GC_allow_register_threads(void);
GC_API int    GC_register_my_thread(const struct GC_stack_base *sb);
GC_API int    GC_unregister_my_thread(void);
GC_API int    GC_thread_is_registered(void);
GC_API int    GC_get_stack_base(struct GC_stack_base *sb);
GC_API void  *GC_call_with_stack_base(GC_stack_base_func fn, void *arg);
GC_API void  *GC_do_blocking(GC_fn_type fn, void *client_data);
GC_API void  *GC_call_with_gc_active(GC_fn_type fn, void *client_data);

#ifdef GC_THREADS
GC_API int  GC_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                              void *(*start)(void *), void *arg);
GC_API int  GC_pthread_join(pthread_t t, void **ret);
GC_API int  GC_pthread_detach(pthread_t t);
GC_API void GC_pthread_exit(void *ret) __attribute__((noreturn));
GC_API int  GC_pthread_mutex_lock(pthread_mutex_t *m);
GC_API int  GC_pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m);
GC_API int  GC_pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                                      const struct timespec *abstime);
GC_API unsigned int GC_wbgc_sleep(unsigned int seconds);
GC_API int  GC_wbgc_usleep(unsigned int usec);
GC_API int  GC_wbgc_nanosleep(const struct timespec *req, struct timespec *rem);
#  if !defined(GC_NO_THREAD_REDIRECTS) && !defined(GC_WBGC_IMPLEMENTATION)
#    define pthread_create(t, a, f, x)          GC_pthread_create(t, a, f, x)
#    define pthread_join(t, r)                  GC_pthread_join(t, r)
#    define pthread_detach(t)                   GC_pthread_detach(t)
#    define pthread_exit(r)                     GC_pthread_exit(r)
#    define pthread_mutex_lock(m)               GC_pthread_mutex_lock(m)
#    define pthread_cond_wait(c, m)             GC_pthread_cond_wait(c, m)
#    define pthread_cond_timedwait(c, m, t)     GC_pthread_cond_timedwait(c, m, t)
#    define sleep(s)                            GC_wbgc_sleep(s)
#    define usleep(u)                           GC_wbgc_usleep(u)
#    define nanosleep(r, m)                     GC_wbgc_nanosleep(r, m)
#  endif
#endif

/* ---- wbgc's own: what the layer adds ----------------------------------- */
GC_API wbgc_heap *GC_wbgc_heap(void);                 /* the heap (made at need) */
GC_API unsigned long long GC_wbgc_pause_max_ns(void); /* the longest pause so far */
GC_API unsigned long long GC_wbgc_pause_count(void);

#ifdef __cplusplus
}
#endif

#endif /* GC_WBGC_H */
