/* wbgc.h — a garbage collector for C built around Go's buffered write barrier.

   Drop this file, with wbgc_amd64.h beside it, into a project (wbgc.h
   alone works too: without wbgc_amd64.h it uses its portable barrier, a
   little slower on x86-64). In exactly one .c file write

       #define WBGC_IMPLEMENTATION
       #include "wbgc.h"

   and include it plainly everywhere else. Link with -pthread.

   QUICK START

       wbgc_heap *h = wbgc_heap_new(NULL);          // defaults
       wbgc_p *p = wbgc_attach(h);                  // this thread's context
       struct node { struct node *next; long v; };
       struct node *list = NULL;                    // locals are roots
       for (long i = 0; i < 1000000; i++) {
           struct node *n = wbgc_alloc(p, sizeof *n);   // zeroed
           n->v = i;                                // plain data: plain store
           wbgc_write(p, &n->next, list);           // GC pointer: barrier
           list = n;                                // own stack: plain store
       }
       wbgc_collect(p);                             // a whole cycle now
       wbgc_stats st; wbgc_get_stats(h, &st);
       printf("%llu cycles, %llu bytes live\n",
              (unsigned long long)st.cycles, (unsigned long long)st.heap_live);
       list = NULL;
       wbgc_detach(p);
       wbgc_heap_free(h);

   THE RULES (misuse reports cite them by number; README.md has them too)

   1. Every thread that touches the heap holds its own P (wbgc_attach) and
      passes it to every call.
   2. Every store of a GC pointer into memory other than the storing
      thread's own stack (a heap object, a registered root region) goes
      through wbgc_write or wbgc_memmove, NULL stores included. In WBGC_STW
      mode plain stores are allowed.
   3. A P reaches a safepoint often (allocation is one; wbgc_safepoint in
      long loops that do not allocate); a thread that blocks brackets the
      blocking with wbgc_blocking_begin/end.
   4. GC pointers kept in malloc memory or in thread-local storage are
      invisible to the collector unless that memory is registered with
      wbgc_add_roots.
   5. No wbgc call is async-signal-safe: a signal handler calls none, and
      no wbgc call is left by longjmp or siglongjmp (out of on_error, or out
      of a handler of a signal that came during the call): the heap's locks
      and the P would stay as the jump left them.

   OPTIONS (wbgc_config; wbgc_config_default fills the defaults)

       gc_percent    100   a cycle starts when the heap has grown this many
                           percent over what the last cycle found live (but
                           never aims below min_heap); negative: no automatic
                           cycles. Environment: WBGC_GC_PERCENT=N|off
       min_heap      0     the floor of the heap goal, in bytes: a cycle never
                           aims at a smaller heap. 0: 4 MiB scaled by
                           gc_percent/100, at least 256 KiB. Set, it is the
                           floor as given (not scaled), at least 64 KiB
                           (smaller values count as 64 KiB). Lower it to make
                           a small program collect often (tests, debugging).
                           Environment: WBGC_MIN_HEAP=N, NK, NM or NG bytes
       memory_limit  0     soft limit on bytes in objects: cycles run to stay
                           under it; an allocation that would still exceed it
                           after a full cycle fails (NULL, after on_error)
       mark_workers  -1    background mark threads; -1 picks from the CPU count
                           (a quarter of the CPUs, at least 1; in WBGC_STW
                           mode one per CPU but one, which mark beside the
                           collecting thread while the world is stopped);
                           0: none: incremental mode, where marking runs only
                           in assists (allocation) and wbgc_collect (in
                           WBGC_STW mode: the collecting thread marks alone)
       flags         0     WBGC_STW, WBGC_CHECK, WBGC_TRACE, WBGC_NO_STACK_SCAN,
                           WBGC_VERIFY, WBGC_FINALIZE_ON_DEMAND (ON
                           FINALIZERS). Environment: WBGC_TRACE=1 adds
                           WBGC_TRACE, WBGC_VERIFY=1 adds WBGC_VERIFY
       on_error      wbgc_default_on_error: prints to stderr; aborts on misuse
                     and on internal corruption

   COMPILE-TIME OPTIONS (define before the include)

       WBGC_STATIC            every public function static to the including file
       WBGCDEF                the storage class of public functions (overrides)
       WBGC_ASSERT(x)         internal assertions; default: checked, abort
       WBGC_NO_ASM            never use the amd64 inline-asm barrier (the
                              portable C twin instead)
       WBGC_WBBUF_ENTRIES     barrier buffer entries per P; default 256
       WBGC_WORKBUF_ENTRIES   grey objects per mark work buffer; default 510
       WBGC_UNBUFFERED        the eager barrier that shades at every store,
                              kept only to measure the buffered one against

   ON THREADS

   Every thread that touches the heap holds its own P (wbgc_attach) and passes
   it to every call. Allocation and wbgc_safepoint are safepoints: the collector
   can stop a P there. A thread that blocks (I/O, locks, sleep, join) brackets
   the blocking with wbgc_blocking_begin/end, so that it never holds up a
   collection; between the two it must not read, write or move GC pointers
   (its stack is scanned as it was at wbgc_blocking_begin). Non-pointer data
   in objects it already holds (a mutex, a byte buffer) may be used. A thread
   leaving wbgc_blocking_end while the world is stopped waits.

   Waiting for a lock is blocking: if the lock's holder may allocate while
   holding it, a thread that waits for it outside a blocking region can hold
   up a stop of the world that the holder waits for (deadlock). Take such
   locks as: if (pthread_mutex_trylock(m)) { wbgc_blocking_begin(p);
   pthread_mutex_lock(m); wbgc_blocking_end(p); }

   To hand an object to a new thread, store it in a registered root slot
   (the argument of pthread_create is memory the collector cannot see); the
   new thread attaches, copies it to its stack, and clears the slot. A
   thread detaches before it tells anyone that it is done (the heap may be
   freed only when no P is attached). Thread-local storage is not a root
   (ON ROOTS). A stack is scanned from its stack pointer to its base, so a
   big stack costs nothing until it is used.

   ON FORK

   fork() is safe at any time, while threads allocate and cycles run, and
   the child can go on using every heap. Before the fork (pthread_atfork
   handlers, installed by the first wbgc_heap_new) the world of each heap
   is stopped and its locks are taken, so that nothing is half done; the
   parent goes on as before (the stop counts as a pause). The child has
   one thread, the one that called fork. It keeps its P, if it had one,
   running or inside its blocking region as it was; every other thread's
   P is detached for it (what only those threads held is garbage now); a
   cycle that was marking is finished at once by a stop-the-world mark
   from the child's roots (one mark of the live heap, in the child); the
   mark workers and the sweeper start again at the child's first cycle.
   Threads the child creates attach as usual. Because fork stops the
   world: a thread that may fork while another thread forks does so
   inside a blocking region (the C library runs one fork at a time, and a
   thread waiting for its turn outside one holds up the other's stop), and
   a thread waiting for a lock that a forking thread may hold waits inside
   one. Threads holding Ps in more than one heap can deadlock a fork, as
   they can deadlock two collections run at once. posix_spawn (glibc's)
   runs no fork handlers and stops nothing. Under ThreadSanitizer a child
   that collects needs TSAN_OPTIONS=die_after_fork=0 (its first cycle
   starts the mark workers again).

   ON ROOTS

   Roots are each attached thread's stack and registers (scanned
   conservatively: any aligned word that points into an allocated object,
   interior pointers included, keeps it alive) and the regions registered with
   wbgc_add_roots. Memory from malloc is invisible to the collector unless it
   is registered. Objects from wbgc_alloc are scanned conservatively in whole;
   objects from wbgc_alloc_noscan are never scanned (strings, numbers);
   objects from wbgc_alloc_typed only at their layout's pointer words (ON
   LAYOUTS).

   Thread-local storage (__thread and _Thread_local variables, values kept
   with pthread_setspecific) is not a root, on any thread. A GC pointer that
   lives in a thread-local variable needs the variable registered: the
   thread (or any thread, with its address) calls wbgc_add_roots(h, &var,
   sizeof var), stores into it with wbgc_write (rule 2), and the region is
   removed with wbgc_remove_roots before the thread exits (its storage goes
   with it). glibc puts a pthread's static TLS inside its stack mapping,
   above the stack, where the stack scan happens to see it; that is not
   promised (the main thread's TLS lies elsewhere), and a program must not
   rely on it.

   ON WRITE BARRIERS

   Every store of a GC pointer into memory other than the storing thread's own
   stack — a heap object, a registered root region — goes through wbgc_write
   or wbgc_memmove, NULL stores included: the barrier records the old value
   too. wbgc_write2 / wbgc_write_n do several stores with one check (for
   initialising a new object's fields). In WBGC_STW mode plain stores are
   allowed. A store of a non-pointer into a heap object is a plain store.
   The barrier costs one load and one predicted branch while no cycle
   marks; while one marks, it appends the old and new pointer to this P's
   buffer, and a full buffer is shaded in one batch. WBGC_CHECK validates
   every store (where it lands, what it points to) and poisons freed
   objects, reporting a write into one when its memory is reused. It sees
   only the stores that go through the barrier: a missing barrier (a plain
   store of a GC pointer where this section asks for wbgc_write) never
   reaches it, and check mode cannot report it. What a missing barrier
   does, an object freed while it is still reachable, is what WBGC_VERIFY
   finds (ON VERIFYING).

   ON MISUSE

   p must be a P that wbgc_attach returned to the calling thread and that
   is still attached; wbgc does not survive a NULL or made-up p. A detached
   P, and another thread's P, are reported (on_error, "wbgc: misuse: ...",
   naming the call, the P, both threads and rule 1) by every call that is
   not inline (wbgc_detach, wbgc_collect, wbgc_blocking_begin/end,
   wbgc_memmove in check mode) and by the slow paths of the inline ones
   (an allocation that refills a span or is large, a safepoint where the
   collector asked something). Outside check mode the fast paths check
   nothing, so that they stay a few instructions: an allocation from the
   cached span, a barrier with room in the buffer, a safepoint with nothing
   asked. In WBGC_CHECK mode every allocation, safepoint, barrier (the
   inline ones, wbgc_write2 and wbgc_write_n included) and wbgc_memmove
   checks the calling thread. A reported call does nothing else (an
   allocation returns NULL), except a barrier, whose store goes ahead.
   A missing barrier (a plain store where rule 2 asks for wbgc_write) is
   invisible to check mode: WBGC_VERIFY finds the object it loses once a
   marked object or a root region points to it (see below).

   Rule 5 in WBGC_CHECK mode: every call marks its P while it runs (check
   mode sends every call out of line, but for the few instructions of the
   inline barrier's append), and a call that finds its P marked is
   reported, naming the call, the P, its thread and the call the P is
   inside: a signal handler that calls wbgc on the P of the thread it
   interrupted inside a wbgc call, an on_error that calls wbgc with the P
   of the call reporting (on_error runs inside that call), and a longjmp or
   siglongjmp out of a call, found at the P's next call (when that call is
   made from the jump's target frame or above, the report says a jump left
   the call, and is made once). The reported call does nothing else (a
   barrier's store goes ahead). A handler that calls wbgc while its thread
   runs its own code is not seen, nor is anything outside check mode.

   ON VERIFYING (WBGC_VERIFY)

   A debug mode, like Go's GODEBUG=gccheckmark=1: in the final pause of
   every cycle, after marking and before any sweep, the collector marks the
   heap once more from the roots, world stopped, with code of its own, and
   reports through on_error ("wbgc: fatal: verifier: ...", which the default
   handler aborts on) every reachable object the cycle's mark left white,
   with the object's address, size and span and the word that points to it
   (a root region, or a marked object and the offset), and any P whose stack
   the cycle did not scan. A handler that returns lets the program go on
   with those objects kept. It reports what a marked object or a root region
   points to; an object lost while only a thread's stack holds it is
   reported once the program stores it back into the heap (stack words may
   be stale, so they prove nothing alone). Cost: one stop-the-world mark per
   cycle (wbgc_stats.verify_ns).

   ON FINALIZERS (wbgc_set_finalizer, wbgc_run_finalizers)

   A finalizer runs once, after a cycle found its object unreachable. That
   cycle keeps the object, and everything it reaches, alive and queues the
   finalizer; the object is freed by a later cycle if it is still
   unreachable then. The finalizer may store the object somewhere
   reachable (resurrect it): it then lives on, without a finalizer (it may
   register a new one). Finalizers never run inside a pause, nor on a
   thread that allocates or collects: by default the heap starts a thread
   of its own (attached, with its own P) the first time one is registered,
   and it runs them, oldest first (there a finalizer has the P it is given
   and nothing of the program's threads: not their thread-local data); with WBGC_FINALIZE_ON_DEMAND they run only
   when the program calls wbgc_run_finalizers (a single-threaded runtime,
   an event loop). Queued finalizers that have not run when the heap is
   freed are dropped.
   What a finalizable object points to is kept alive until its finalizer
   has run, so that the finalizer can use it. Hence the order, as in Go
   and Boehm GC: in a chain of finalizable objects (a points to b), a's
   finalizer runs first, and b's at a later cycle. A cycle through two or
   more finalizable objects keeps itself alive: it is never collected and
   its finalizers never run (break such cycles, or put the finalizer on an
   object outside the cycle). A pointer from a finalizable object into
   itself does not keep it alive (Boehm's "ignore self").
   A finalizable object is scanned like a root at every cycle while it
   lives (one root job, concurrent): a million of them add some 40 ms of
   marking to each cycle (examples/bench/runtime.c).

   ON WEAK REFERENCES (wbgc_weak_new, wbgc_weak_get)

   A weak handle yields its object while the object is reachable; the
   cycle that finds the object unreachable clears every handle to it (one
   per object) while it sweeps the object's span: before the object's
   finalizer, if any, is queued, and so before it runs. A handle is never
   cleared while its object is reachable, and never yields an object that
   a cycle found dead: during a mark, wbgc_weak_get shades what it returns
   (a read barrier on this path only), so the mark cannot then find it
   dead; between the end of a mark and the end of its sweep it reads the
   mark bit. A resurrected object's handle stays cleared. Handles are GC
   objects (noscan, 16 bytes): the program stores them like any pointer,
   and the collector frees them once unreachable; the heap keeps each
   live object's handle alive for it (so weak_new returns the same one).

   ON EPHEMERONS (wbgc_ephemeron_new)

   An ephemeron (key, value) keeps its value alive only while its key is
   alive for another reason: reachable from the roots through strong
   pointers and through the values of ephemerons whose keys are reachable.
   So a weak-keyed table (a JavaScript WeakMap, a Lua table with weak
   keys) of ephemerons lets an entry go when nothing but the table
   reaches its key, even when the entry's value points back to the key.
   When the key dies, the cycle clears the ephemeron's key and value
   together (both read NULL). The marker reaches the fixpoint as it goes,
   in every mode: an ephemeron found with its key unmarked waits on the
   key, and marking the key greys the waiting values; no ephemeron is
   looked at more than twice a cycle. Ephemerons are GC objects (32
   bytes); the ephemeron itself is strong (a table holds it as usual).

   ON LAYOUTS (wbgc_layout_new, wbgc_alloc_typed)

   Objects from wbgc_alloc are scanned conservatively, every word. An
   object from wbgc_alloc_typed is scanned only at the words its layout
   names (for an array, at those of each record), so integers and floats
   in it are never taken for pointers (nothing kept alive by accident,
   less work per object). A pointer into a typed object, from anywhere,
   keeps it alive as usual (interior pointers too). Its GC pointers are
   stored with wbgc_write like any others; WBGC_CHECK reports a GC pointer
   stored with wbgc_write into a word the layout does not name (no scan
   would see it), and WBGC_VERIFY's own mark reads the same words the
   marker does. wbgc_realloc of a typed object keeps its layout. A layout
   is a heap's (another heap's is refused), made once per record type; a
   layout with no pointer words gives noscan objects.

   WHAT WBGC DOES NOT DO

   It does not move objects, or see GC pointers hidden in malloc memory or
   thread-local storage that is not registered (ON ROOTS), or in disguised
   form (xor-ed, compressed).

   See README.md for the design, the rules in full, and measured numbers.
   Licence at the end of the file. */

#ifndef WBGC_H
#define WBGC_H

#include <stddef.h>
#include <stdint.h>

#ifndef WBGCDEF
#  ifdef WBGC_STATIC
#    if defined(__GNUC__) || defined(__clang__)
#      define WBGCDEF static __attribute__((unused))
#    else
#      define WBGCDEF static
#    endif
#  else
#    define WBGCDEF extern
#  endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define WBGC_VERSION_MAJOR 0
#define WBGC_VERSION_MINOR 1

typedef struct wbgc_heap wbgc_heap;   /* one collector: arenas, spans, marker  */
typedef struct wbgc_p    wbgc_p;      /* one mutator thread's context ("P")    */

/* Flags for wbgc_config.flags */
#define WBGC_STW           0x1u  /* stop-the-world cycles, barrier never on  */
#define WBGC_CHECK         0x2u  /* check mode: every barrier validated      */
#define WBGC_TRACE         0x4u  /* one line per cycle on stderr             */
#define WBGC_NO_STACK_SCAN 0x8u  /* do not scan thread stacks conservatively */
#define WBGC_VERIFY        0x10u /* re-mark every cycle stop-the-world and
                                    compare: reports any object lost      */
#define WBGC_FINALIZE_ON_DEMAND 0x20u /* finalizers run only in
                                    wbgc_run_finalizers, never on a thread
                                    of the heap's own                      */
#define WBGC_NO_ENV_MODE   0x40u /* WBGC_MODE in the environment is ignored:
                                    for a layer that picks the mode itself
                                    (examples/boehm)                       */

typedef struct wbgc_config {
    int      gc_percent;    /* heap growth over live before the next cycle;
                               default 100; negative: no automatic cycles   */
    size_t   memory_limit;  /* soft limit in bytes; 0: none                 */
    int      mark_workers;  /* background mark threads; -1: automatic
                               (default); 0: none (incremental mode). In
                               WBGC_STW mode they mark in the pause       */
    unsigned flags;         /* WBGC_* flags above                           */
    /* called with a message when the collector detects misuse or runs out
       of memory; default prints to stderr (and aborts on misuse)           */
    void   (*on_error)(const char *message, void *user);
    void    *user;
    /* a stop of the world (or a hand-shake) that has waited this long for
       threads to reach a safepoint is reported once, through on_error as a
       "wbgc: warning", naming each P that holds it up and its thread;
       default 100; 0: never                                                */
    unsigned stall_report_ms;
    /* the floor of the heap goal in bytes; 0: 4 MiB x gc_percent/100, at
       least 256 KiB; else at least 64 KiB                                  */
    size_t   min_heap;
} wbgc_config;

typedef struct wbgc_stats {
    uint64_t cycles;          /* completed collection cycles               */
    uint64_t heap_alloc;      /* bytes in allocated objects now            */
    uint64_t heap_live;       /* bytes marked live at the last cycle's end */
    uint64_t heap_goal;       /* heap size at which the next cycle aims to end */
    uint64_t heap_sys;        /* bytes of address space backed for the heap */
    uint64_t total_alloc;     /* bytes ever allocated                      */
    uint64_t pause_count;     /* stop-the-world pauses so far              */
    uint64_t pause_total_ns;
    uint64_t pause_max_ns;
    uint64_t pause_recent_ns[256]; /* the most recent pauses, ring buffer:
                                      pause number k (from 0) is at [k % 256] */
    uint64_t wb_flushes;      /* barrier buffer flushes                    */
    uint64_t mark_assist_ns;  /* time mutators spent assisting             */
    uint64_t verify_runs;     /* WBGC_VERIFY: cycles verified              */
    uint64_t verify_lost;     /* objects the verifier found lost           */
    uint64_t verify_ns;       /* time spent verifying (inside pauses)      */
    uint64_t finalizers_queued; /* finalizers whose object a cycle found
                                   unreachable, queued to run              */
    uint64_t finalizers_run;  /* finalizers that have returned             */
    uint64_t finalizers_pending; /* registered, object not yet found dead  */
    uint64_t weak_cleared;    /* weak handles cleared (their object died)  */
    uint64_t weak_live;       /* weak handles whose object lives           */
} wbgc_stats;

/* wbgc_config_default fills cfg with the defaults listed above. */
WBGCDEF void       wbgc_config_default(wbgc_config *cfg);

/* wbgc_heap_new makes a collector. NULL cfg: the defaults. The environment
   (WBGC_GC_PERCENT, WBGC_MIN_HEAP, WBGC_TRACE, WBGC_VERIFY, WBGC_MODE)
   overrides cfg. Returns NULL on failure, after
   calling cfg->on_error. Until wbgc_heap_free, a fork() stops the heap's
   world and leaves the child a usable heap (ON FORK, above). */
WBGCDEF wbgc_heap *wbgc_heap_new(const wbgc_config *cfg);

/* wbgc_heap_free returns all of the heap's memory to the OS. Every P must be
   detached first; if one is not, the misuse is reported and nothing is
   freed. */
WBGCDEF void       wbgc_heap_free(wbgc_heap *h);

/* wbgc_attach gives the calling thread a P. One P per thread and heap: a
   second attach from the same thread is reported and returns NULL. Returns
   NULL (after on_error) when memory for the P cannot be had. Safe while a
   collection runs (it waits for the world to restart). */
WBGCDEF wbgc_p    *wbgc_attach(wbgc_heap *h);

/* wbgc_detach gives the P back; call it on the P's own thread. While a
   cycle marks, it first pays for what the P allocated with mark work, as
   an allocation does (past the heap's goal, that may wait for the cycle to
   end). The P's handle stays valid memory until wbgc_heap_free, so that
   later use of it is reported rather than undefined. A thread that ends
   without it (returning, pthread_exit, also inside a blocking region) has
   its Ps detached as it exits, by a thread-specific-data destructor; check
   mode reports that as misuse. No wbgc call is async-signal-safe: a signal
   handler must not call one, nor longjmp out of one (rule 5; check mode
   reports both, ON MISUSE). */
WBGCDEF void       wbgc_detach(wbgc_p *p);

/* wbgc_blocking_begin/end bracket code that may block. Between them the
   thread must not touch the heap, and collections proceed without it.
   wbgc_blocking_begin is static inline (below): it saves the caller's
   registers in the caller's frame. */
static inline void wbgc_blocking_begin(wbgc_p *p);
WBGCDEF void       wbgc_blocking_end(wbgc_p *p);

/* wbgc_alloc returns size zeroed bytes, 16-byte aligned, scanned
   conservatively for pointers. wbgc_alloc_noscan: the same, never scanned.
   p must be the calling thread's P; NULL is reported as misuse.
   Both are safepoints. Both return NULL (after on_error) when the request
   cannot be met: size overflow, memory limit, or the OS refusing memory.
   size 0 is valid and returns a unique object. */
WBGCDEF void      *wbgc_alloc(wbgc_p *p, size_t size);
WBGCDEF void      *wbgc_alloc_noscan(wbgc_p *p, size_t size);

/* wbgc_memmove moves n bytes that may hold GC pointers, with barriers, as
   memmove does (overlap allowed), for any n and any alignment of dst and
   src. Every aligned word of dst that the move overwrites goes through the
   barrier: a word covered whole is stored whole (a pointer is never split,
   and one read from an unaligned src arrives whole); a word covered only in
   part (the first or last word of an unaligned or odd-sized move) has its
   old value shaded, so whatever pointer it held survives this cycle, and
   then only the bytes inside [dst, dst+n) are written (a pointer cut in two
   that way is no longer a pointer; the bytes outside are left alone). */
WBGCDEF void       wbgc_memmove(wbgc_p *p, void *dst, const void *src, size_t n);

/* wbgc_add_roots registers [start, start+size) as a root region: every
   aligned word in it is scanned conservatively at each cycle. Stores of GC
   pointers into it use wbgc_write. Returns 0, or -1 (after on_error) for a
   NULL or empty region or when memory runs out. wbgc_remove_roots
   unregisters the region that starts at start. Callable from any thread, at
   any time: while a cycle marks, a region added after the cycle scanned the
   root regions has what it holds greyed at once (so pointers stored into
   malloc memory with plain stores, then registered, are safe), and a region
   removed before that scan has what it holds greyed before it goes (so an
   object loaded from it survives the cycle). Either costs one scan of the
   region, only then. */
WBGCDEF int        wbgc_add_roots(wbgc_heap *h, void *start, size_t size);
WBGCDEF void       wbgc_remove_roots(wbgc_heap *h, void *start);

/* wbgc_add_roots_rescan is wbgc_add_roots for a region that the program
   stores GC pointers into with plain stores, in any mode (an exception to
   rule 2: static data of code written for a collector without barriers):
   the region is scanned once more, world stopped, in the pause that ends
   each mark, and marking goes on if that finds an object unmarked. Costs
   one scan of the region per such pause. wbgc_remove_roots removes it. */
WBGCDEF int        wbgc_add_roots_rescan(wbgc_heap *h, void *start, size_t size);

/* wbgc_collect runs a whole cycle, mark and sweep, before returning. */
WBGCDEF void       wbgc_collect(wbgc_p *p);

/* wbgc_get_stats fills out with a snapshot of the collector's counters.
   Callable from any thread. */
WBGCDEF void       wbgc_get_stats(wbgc_heap *h, wbgc_stats *out);

/* wbgc_default_on_error is the default error handler: it prints message to
   stderr, and aborts when the message reports misuse or corruption. A custom
   handler may call it. */
WBGCDEF void       wbgc_default_on_error(const char *message, void *user);

/* ---- for language runtimes: finalizers, weak references, ephemerons,
   precise layouts (ON FINALIZERS ..., ON LAYOUTS, above) ------------------ */

/* A finalizer: called once, on a P of the heap (p), after a cycle found
   obj unreachable; obj and everything it reaches are intact while it runs.
   See ON FINALIZERS. */
typedef void (*wbgc_finalizer)(wbgc_p *p, void *obj, void *arg);

/* wbgc_set_finalizer registers fn(p, obj, arg) to run once after obj
   becomes unreachable, replacing obj's finalizer if it has one; fn NULL
   removes it. obj must be the start of an object of this heap (what an
   allocation returned); arg is kept alive with obj's registration (it is
   scanned as a root while registered, if it points into the heap).
   Returns 0, or -1 (after on_error) for an obj that is not an object's
   start or when memory runs out. Thread: p's. Not a safepoint. May wait
   briefly for a lock. */
WBGCDEF int        wbgc_set_finalizer(wbgc_p *p, void *obj, wbgc_finalizer fn, void *arg);

/* wbgc_run_finalizers runs up to max queued finalizers (0: until none is
   queued, those queued meanwhile included) on the calling thread, with p,
   oldest first; returns how many ran.
   With WBGC_FINALIZE_ON_DEMAND this is the only place they run; without
   it the heap's finalizer thread runs them too. Thread: p's. A safepoint
   (the finalizers allocate, collect, block as they like). */
WBGCDEF size_t     wbgc_run_finalizers(wbgc_p *p, size_t max);

/* A weak reference: a handle that yields its object until a cycle finds
   the object unreachable, NULL after. See ON WEAK REFERENCES. */
typedef struct wbgc_weak wbgc_weak;

/* wbgc_weak_new returns the weak handle of obj (the start of an object of
   this heap): a GC object itself, collected when unreachable, and the same
   handle for the same object as long as the handle lives. Store it like
   any GC pointer (wbgc_write). Returns NULL (after on_error) for a NULL
   obj, one that is not an object's start, or when memory runs out.
   Thread: p's. A safepoint (it may allocate the handle). */
WBGCDEF wbgc_weak *wbgc_weak_new(wbgc_p *p, void *obj);

/* wbgc_weak_get returns w's object, now a strong pointer held by the
   caller, or NULL once a cycle has found the object unreachable (w NULL:
   NULL). Thread: p's. Not a safepoint. Takes a lock only between the end
   of a cycle's mark and the end of its sweep. */
WBGCDEF void      *wbgc_weak_get(wbgc_p *p, wbgc_weak *w);

/* An ephemeron: a pair (key, value) whose value is kept alive by the pair
   only as long as the key is alive for other reasons. See ON EPHEMERONS. */
typedef struct wbgc_ephemeron wbgc_ephemeron;

/* wbgc_ephemeron_new makes an ephemeron: a GC object, collected when
   unreachable. key: the start of an object of this heap (not NULL);
   value: any GC pointer or NULL. Returns NULL (after on_error) for a bad
   key or when memory runs out. Thread: p's. A safepoint (it allocates). */
WBGCDEF wbgc_ephemeron *wbgc_ephemeron_new(wbgc_p *p, void *key, void *value);

/* wbgc_ephemeron_key / _value return e's key / value, both NULL once a
   cycle has found the key unreachable. wbgc_ephemeron_set_value replaces
   the value (with the barrier); after the key died it does nothing.
   Thread: p's. Not safepoints. As wbgc_weak_get about locks. */
WBGCDEF void      *wbgc_ephemeron_key(wbgc_p *p, wbgc_ephemeron *e);
WBGCDEF void      *wbgc_ephemeron_value(wbgc_p *p, wbgc_ephemeron *e);
WBGCDEF void       wbgc_ephemeron_set_value(wbgc_p *p, wbgc_ephemeron *e, void *value);

/* A precise layout: which words of a record may hold GC pointers. */
typedef struct wbgc_layout wbgc_layout;

/* wbgc_layout_new makes the layout of a record of record_size bytes (a
   multiple of the word size, at most 64 KiB) whose GC pointers are the
   words at the n byte offsets given (each a multiple of the word size,
   below record_size; n may be 0: nothing to scan). Made once per record
   type; it lives as long as the heap (at most 65000 per heap). Returns
   NULL (after on_error) for a bad layout. Thread: any. May block. */
WBGCDEF const wbgc_layout *wbgc_layout_new(wbgc_heap *h, size_t record_size,
                                           const size_t *ptr_offsets, size_t n);

/* wbgc_alloc_typed is wbgc_alloc for an object laid out as layout says,
   repeated from the object's start (an array of such records; a size not
   a multiple of the record size ends with part of one): the collector
   scans only the pointer words. A GC pointer kept in any other word does
   not keep its object alive (check mode reports a wbgc_write into one).
   Thread: p's. A safepoint. As wbgc_alloc about failures; a NULL layout,
   or one another heap made, is misuse (reported, NULL). */
WBGCDEF void      *wbgc_alloc_typed(wbgc_p *p, size_t size, const wbgc_layout *layout);

/* wbgc_realloc returns an object of at least size bytes holding obj's
   first min(size, old size) bytes, as realloc does (obj NULL: wbgc_alloc).
   The old size is obj's usable size: what its size class (or, for a
   large object, its pages) holds, at least the size it was allocated
   with. obj itself when that is big enough (its contents untouched), else
   a new object of the same kind (scanned, noscan, or typed with the same
   layout) filled with wbgc_memmove, so that its pointers are moved with
   the barrier (a typed object's other words with plain stores); the
   bytes past the old size are zero. obj is not freed (the collector frees
   it once it is unreachable). Returns NULL (after on_error) as wbgc_alloc
   does, or for an obj that is not an object's start (reported as
   misuse); obj is then unchanged. Thread: p's. A safepoint. */
WBGCDEF void      *wbgc_realloc(wbgc_p *p, void *obj, size_t size);

/* wbgc_strdup returns a noscan copy of the string s. Thread: p's. A
   safepoint. NULL (after on_error) as wbgc_alloc. */
WBGCDEF char      *wbgc_strdup(wbgc_p *p, const char *s);

/* ---- for layers over other collectors' interfaces (examples/boehm) ----- */

/* wbgc_base returns the start of the allocated object of h that ptr points
   into (at its start or any byte inside it), or NULL when ptr points into
   no allocated object of h. An object the caller holds stays allocated;
   for any other pointer the answer may be stale at once (a sweep may free
   the object). Thread: any. Not a safepoint; takes no lock. */
WBGCDEF void      *wbgc_base(wbgc_heap *h, const void *ptr);

/* wbgc_usable_size returns how many bytes the object that starts at obj
   holds (its size class or its pages: at least what it was allocated
   with), or 0 when obj is not the start of an allocated object of h.
   Thread: any. Not a safepoint; takes no lock. */
WBGCDEF size_t     wbgc_usable_size(wbgc_heap *h, const void *obj);

/* wbgc_set_gc_percent sets gc_percent (OPTIONS; negative: no automatic
   cycles) and returns the old value. The heap's goal follows at once when
   no cycle marks, else when the cycle ends. wbgc_set_memory_limit sets
   memory_limit (0: none) and returns the old one; the next allocation
   obeys it. Thread: any. Not safepoints; take no lock. */
WBGCDEF int        wbgc_set_gc_percent(wbgc_heap *h, int percent);
WBGCDEF size_t     wbgc_set_memory_limit(wbgc_heap *h, size_t bytes);

/* wbgc_get_finalizer: 1 when obj has a finalizer, with its function and
   argument in *fn and *arg (either may be NULL); 0, with NULLs, when it
   has none or obj is not the start of an object of p's heap. Thread: p's.
   Not a safepoint. May wait briefly for a lock. */
WBGCDEF int        wbgc_get_finalizer(wbgc_p *p, void *obj, wbgc_finalizer *fn, void **arg);

/* Disappearing links (Boehm GC's name for them): a word that the
   collector clears when an object dies.

   wbgc_link_register: once a cycle finds obj (the start of an object of
   p's heap) unreachable, the pause that ends that cycle's mark stores NULL
   into *link, before obj's finalizer (if any) is queued, and the
   registration ends. link is an aligned word anywhere (a heap object,
   static data, malloc memory) that stays valid while registered; a link
   inside a heap object goes when that object dies (cleared first if obj
   dies in the same cycle, as when the link is inside obj itself). The
   word is not a root for this: what it holds (usually obj hidden, as
   ~(uintptr_t)obj, or obj in noscan memory) keeps obj alive only if the
   memory holding it is scanned. Returns 0; 1 when link was registered
   already (it now names obj); -1 (after on_error) for a NULL or unaligned
   link, an obj that is not an object's start, or no memory. Each link
   costs the pause that ends a mark a few nanoseconds.
   wbgc_link_unregister ends link's registration: 1, or 0 if it had none.
   wbgc_links_keep: a thread that reads a link while a concurrent cycle
   marks may hold obj where the mark has looked already (its stack); so,
   during a mark, this shades every registered link's object (the first
   call of each cycle does the work, later calls cost a load). Call it
   before reading links in concurrent or incremental mode; in WBGC_STW
   mode links need no care. Thread: p's. Not safepoints. May wait briefly
   for a lock. */
WBGCDEF int        wbgc_link_register(wbgc_p *p, void **link, void *obj);
WBGCDEF int        wbgc_link_unregister(wbgc_p *p, void **link);
WBGCDEF void       wbgc_links_keep(wbgc_p *p);

/* ---- fast paths, inline: the part of a P they read ----------------------
   wbgc__pfast opens every wbgc_p; the inline functions below (and the amd64
   asm, which reads these fields by offset) see only this. Private. */
typedef struct wbgc__pfast {
    void   **wb_next;   /* next free barrier-buffer entry (INV-WBBUF)        */
    void   **wb_end;    /* one past the last entry                           */
    uint32_t wb_on;     /* take the barrier's slow path: marking, or check
                           mode; written only while the P is stopped         */
    uint32_t preempt;   /* nonzero: take the slow path of a safepoint or an
                           allocation. Bit 0: the collector asks something
                           of this P; bit 1: check mode (the slow path checks
                           the calling thread). Written under sched_lock,
                           read with relaxed loads */
} wbgc__pfast;

/* The flush has a fixed symbol name: the amd64 trampoline calls it. */
WBGCDEF void wbgc__wb_flush(wbgc_p *p, void *slot, void *val) __asm__("wbgc__wb_flush_impl");
WBGCDEF int  wbgc__safepoint_slow(wbgc_p *p);
WBGCDEF void wbgc__write_unbuffered(wbgc_p *p, void *slot, void *val);
WBGCDEF void wbgc__blocking_begin(wbgc_p *p, const uintptr_t *ctx);

/* WBGC__CAPTURE(ctx) stores the callee-saved registers and the stack pointer
   of the frame it is expanded in into uintptr_t ctx[WBGC__NCTX]: the roots a
   blocked or parked thread keeps outside its stack. x86-64 SysV: rbx, rbp,
   r12-r15 are callee-saved; everything else is dead across a call. The asm
   reads those registers and rsp, writes only ctx, clobbers nothing. */
#if defined(__cplusplus)
#define WBGC__PFAST_ASSERT(c, m) static_assert(c, m)
#else
#define WBGC__PFAST_ASSERT(c, m) _Static_assert(c, m)
#endif

#define WBGC__NCTX   8
#define WBGC__CTX_SP 6
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define WBGC__HAVE_CAPTURE 1
#define WBGC__CAPTURE(ctx)                                   \
    __asm__ volatile("movq %%rbx,  0(%0)\n\t"                \
                     "movq %%rbp,  8(%0)\n\t"                \
                     "movq %%r12, 16(%0)\n\t"                \
                     "movq %%r13, 24(%0)\n\t"                \
                     "movq %%r14, 32(%0)\n\t"                \
                     "movq %%r15, 40(%0)\n\t"                \
                     "movq %%rsp, 48(%0)\n\t"                \
                     : : "r"(ctx) : "memory")
#else
#define WBGC__HAVE_CAPTURE 0
#define WBGC__CAPTURE(ctx) ((void)(ctx))
#endif

/* The amd64 asm reads wbgc__pfast by offset (wbgc_amd64.h): pinned here. */
WBGC__PFAST_ASSERT(offsetof(wbgc__pfast, wb_next) == 0, "wbgc_amd64.h: WBGC__AMD64_WB_NEXT");
WBGC__PFAST_ASSERT(offsetof(wbgc__pfast, wb_end) == 8, "wbgc_amd64.h: WBGC__AMD64_WB_END");
WBGC__PFAST_ASSERT(offsetof(wbgc__pfast, wb_on) == 16, "wbgc_amd64.h: WBGC__AMD64_WB_ON");

/* wbgc__arch_write: the portable barrier, the twin of the amd64 asm (and
   the one in use with WBGC_NO_ASM or elsewhere). With marking on it
   appends (new, old) and, when that fills the buffer, calls the flush. */
static inline void wbgc__arch_write(wbgc_p *p, void *slot, void *val)
{
    wbgc__pfast *f = (wbgc__pfast *)(void *)p;
    if (__builtin_expect(f->wb_on != 0, 0)) {
        void **e = f->wb_next;
        f->wb_next = e + 2;
        e[0] = val;
        e[1] = *(void *const *)slot;  /* the old value: *slot, before the store */
        if (__builtin_expect(e + 2 == f->wb_end, 0)) wbgc__wb_flush(p, slot, val);
    }
    *(void **)slot = val;
}

/* The amd64 barrier lives in wbgc_amd64.h; a copy of wbgc.h alone (a
   compiler that can tell the file is missing) falls back to the portable one. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(WBGC_NO_ASM) && \
    defined(__has_include)
#if !__has_include("wbgc_amd64.h")
#define WBGC_NO_ASM 1
#endif
#endif
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(WBGC_NO_ASM)
#define WBGC__HAVE_AMD64 1
#define WBGC__INSIDE_WBGC_H 1
#include "wbgc_amd64.h"
#else
#define WBGC__HAVE_AMD64 0
#endif

/* wbgc_write stores val into *(void **)slot with the write barrier. Use it
   for every store of a GC pointer into a heap object or a root region. With
   the barrier off it costs one load and one predicted branch beside the
   store. With it on (while a cycle marks) it appends the new and the old
   pointer to this P's buffer; when that fills the buffer, the flush shades
   the batch. There is no safepoint between the test and the store. On
   x86-64 it is inline asm whose enabled path is out of line and calls a
   register-saving trampoline (wbgc_amd64.h); WBGC_NO_ASM selects the
   portable C. */
static inline void wbgc_write(wbgc_p *p, void *slot, void *val)
{
#if defined(WBGC_UNBUFFERED)
    /* The eager barrier Go had before its buffered one, kept as a build
       option only to measure the buffered barrier against. */
    if (__builtin_expect(((wbgc__pfast *)(void *)p)->wb_on != 0, 0))
        wbgc__write_unbuffered(p, slot, val);
    *(void **)slot = val;
#elif WBGC__HAVE_AMD64
    wbgc__amd64_write(p, slot, val);
#else
    wbgc__arch_write(p, slot, val);
#endif
}

/* wbgc_write_n stores vals[i] into *(void **)slots[i] for i < n, with one
   barrier check for all of them: with marking on, it reserves room for n
   entries at once and appends them (or, when the buffer lacks room, takes
   the stores one at a time). For initialising several pointer fields of a
   new object: cons cells, closures, vectors. */
static inline void wbgc_write_n(wbgc_p *p, void *const *slots, void *const *vals, size_t n)
{
#if !defined(WBGC_UNBUFFERED)
    wbgc__pfast *f = (wbgc__pfast *)(void *)p;
    if (__builtin_expect(f->wb_on != 0, 0)) {
        void **e = f->wb_next;
        if (__builtin_expect((size_t)(f->wb_end - e) <= 2 * n, 0)) {
            /* The batch would fill the buffer (always, in check mode): one
               at a time, each flush where it falls. */
            for (size_t i = 0; i < n; i++) wbgc_write(p, slots[i], vals[i]);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            e[2 * i] = vals[i];
            e[2 * i + 1] = *(void *const *)slots[i];  /* old values, before any store */
        }
        f->wb_next = e + 2 * n;
    }
    for (size_t i = 0; i < n; i++) *(void **)slots[i] = vals[i];
#else
    for (size_t i = 0; i < n; i++) wbgc_write(p, slots[i], vals[i]);
#endif
}

/* wbgc_write2: wbgc_write_n for two stores, a into *slot_a and b into
   *slot_b: a pair's car and cdr. */
static inline void wbgc_write2(wbgc_p *p, void *slot_a, void *a, void *slot_b, void *b)
{
#if !defined(WBGC_UNBUFFERED)
    wbgc__pfast *f = (wbgc__pfast *)(void *)p;
    if (__builtin_expect(f->wb_on != 0, 0)) {
        void **e = f->wb_next;
        if (__builtin_expect(f->wb_end - e <= 4, 0)) {
            wbgc_write(p, slot_a, a);
            wbgc_write(p, slot_b, b);
            return;
        }
        e[0] = a;
        e[1] = *(void *const *)slot_a;
        e[2] = b;
        e[3] = *(void *const *)slot_b;
        f->wb_next = e + 4;
    }
    *(void **)slot_a = a;
    *(void **)slot_b = b;
#else
    wbgc_write(p, slot_a, a);
    wbgc_write(p, slot_b, b);
#endif
}

/* wbgc_safepoint lets the collector stop or ask work of this P. One relaxed
   load and a predicted branch when nothing is asked. Call it in long loops
   that do not allocate. */
static inline void wbgc_safepoint(wbgc_p *p)
{
    const wbgc__pfast *f = (const wbgc__pfast *)(const void *)p;
    if (__builtin_expect(__atomic_load_n(&f->preempt, __ATOMIC_RELAXED) != 0, 0))
        (void)wbgc__safepoint_slow(p);
}

static inline void wbgc_blocking_begin(wbgc_p *p)
{
    uintptr_t ctx[WBGC__NCTX] = {0};
    WBGC__CAPTURE(ctx);
    wbgc__blocking_begin(p, ctx);
}

#ifdef __cplusplus
}
#endif
#endif /* WBGC_H */

/* =========================================================================
   IMPLEMENTATION
   ========================================================================= */
#ifdef WBGC_IMPLEMENTATION
#ifndef WBGC__IMPLEMENTED
#define WBGC__IMPLEMENTED

/* How a cycle runs (numbered as in DESIGN.md):

   1. Trigger. Allocation reports its bytes to the pacer when a P refills a
      span or allocates a large object. When the heap reaches the trigger
      (70% of the way from what the last cycle found live to the goal,
      live * (1 + gc_percent/100)), that P starts a cycle. wbgc_collect
      starts one at once and helps it to its end.
   2. Sweep termination and mark start (pause 1). The starting P sweeps what
      the last cycle left unswept, concurrently; then it stops the world
      (every running P parks at its next safepoint; a P in a blocking region
      counts as stopped), turns the barrier on and allocation black in every
      P, asks every P to scan its own stack, and restarts the world. O(Ps).
   3. Concurrent mark. Background workers (wbgc__worker_main), assists (a P
      that allocates while marking pays with mark work) and Ps waiting in
      wbgc_collect drain grey objects: registered roots first (one marker
      claims them), then stacks (each running P scans its own at its next
      safepoint; a marker takes over a blocked P and scans it for it), then
      the work lists. Every pointer store appends (new, old) to the storing
      P's barrier buffer; a full buffer is flushed into that P's gcWork
      (the old values; the new ones too while that P's stack is grey: a
      stack scan drains the buffer first, then marks the stack black).
   4. Mark termination (pause 2). When no work is left anywhere a marker can
      see, every P hands over its buffer and gcWork at its next safepoint
      (ragged); if nothing turned up, the world stops, every buffer is checked
      once more (a barrier may have run after the hand-over: then the world
      restarts and marking goes on), the barrier goes off, caches go back,
      and every span becomes unswept. O(Ps + size classes).
   5. Sweep. Lazily: a P sweeps spans of the class it needs before it
      allocates from them (at most 32 a refill), and a background sweeper
      sweeps the rest. A span's mark bits become its allocation bits; an
      empty span goes back to the page heap. Free page runs go back to the
      OS (wbgc__scavenge): long ones idle for two cycles, and any while the
      heap keeps more backed than its goal plus a tenth and 4 MiB.

   WBGC_STW runs 2-5 with the world stopped throughout, the barrier never
   on; the mark workers, if any, mark beside the collecting thread in that
   pause (wbgc__stw_mark). mark_workers = 0 runs no collector thread:
   marking progresses only through assists and wbgc_collect (incremental
   mode).

   INVARIANTS (named where code relies on them)

   INV-MARKCLEAR  Outside a cycle every mark bit is clear.
   INV-ALLOCBITS  A span's allocation bits are written only by the P that has
                  it cached, or by the collector with the world stopped.
   INV-WBBUF      Outside a cycle's mark phase the barrier is off and every
                  barrier buffer is empty.
   INV-POWNER     A P's fields are touched only by its thread, or by another
                  thread while the P is parked, blocked or detached (all under
                  sched_lock).
   INV-TRICOLOUR  A black object never points to a white one unless a grey
                  object or a barrier buffer holds a path to it. Kept by the
                  hybrid barrier (old value shaded; new value too while the
                  writer's stack is grey), allocation black during
                  marking, and each stack scanned once; needs the barrier
                  on in every P before any object is black.
   INV-ZERO       Memory returned by an allocation is zeroed: a span or page
                  run with needzero clear holds only zero bytes in its free
                  slots.
   INV-PAGEMAP    Every page of an in-use span maps to the span; the first
                  and last page of a free run map to the run; other pages of
                  free runs map to NULL.
   INV-LOCKORDER  markdone_lock -> gc_lock -> sched_lock -> sweeper_lock
                  -> central[i].lock -> heap lock -> specials_gate -> a
                  specials shard's lock -> fin_lock -> links_lock ->
                  roots_lock, work_lock, stats_lock. Never wait for the
                  world or a hand-shake while holding a central, heap,
                  roots, links or work lock. Fork: wbgc__heaps_lock first,
                  then each heap's in this order (not links_lock: only a
                  running P or the pause takes it, and neither is there).

   MEMORY ORDER (who publishes what to whom; x86 forgives a missing pair,
   aarch64 does not, so ./build.sh test runs the suite there too)

   arena       wbgc__grow stores arena_index[i] RELEASE after the arena is
               filled in; wbgc__span_of / wbgc__page_entry load it ACQUIRE.
   span        wbgc__pages_alloc initialises the span, maps its pages
               (wbgc__set_page: RELEASE) and then stores state = INUSE
               RELEASE; wbgc__span_of loads the page entry and the state
               ACQUIRE, so a marker that finds a span sees it whole.
   object      wbgc__alloc_publish stores the allocation word RELEASE after
               the object is zeroed (and, during marking, after its mark
               bit); wbgc__shade_in loads it ACQUIRE before it scans the
               object (INV-ZERO for what the marker reads).
   mark bits   set with relaxed fetch-or (a set bit publishes nothing but
               itself); what a cycle marked is read at termination and by
               the sweep after the world stopped: sched_lock (every P
               parked) and work_lock (wbgc__quiescent: every marker gave
               back its work) order the markers' bits before those reads.
   phase       written with the world stopped (P-less readers: under
               roots_lock, where the phase opens and closes); Ps see it
               through sched_lock as they park and resume, workers through
               work_cv/sched_lock. Relaxed loads elsewhere are hints.
   roots       roots_state: stored 2 RELEASE after the regions were scanned,
               loaded ACQUIRE by wbgc__quiescent; stacks_pending: decremented
               RELEASE after a stack scan, loaded ACQUIRE the same way.
   work lists  under work_lock; the relaxed peeks at work_full
               (wbgc__gcw_balance, wbgc__drain) only decide whether to look.
   preempt     written under sched_lock, read relaxed: a missed request is
               seen at the next safepoint, the bit stays set.
   weak        a sweep clears a dead object's handle (RELEASE) under its
               shard lock, stamps the span (specials_gen RELEASE), then
               clears the marks (RELEASE stores); a weak get loads the
               stamp, the mark word and the stamp again (ACQUIRE), under
               the same lock: section "Finalizers and weak references".
               sweep_done is stored RELEASE once every span is swept.
   ephemeron   the waiter publishes the span's waiting lists and pushes
               itself (CAS), then loads the key's mark word; the key's
               marker sets the mark bit, then loads the lists and takes
               the key's (exchange): all SEQ_CST, so one sees the other
               (section "Finalizers and weak references"). */

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#if WBGC__HAVE_AMD64
#include "wbgc_amd64.h"  /* the trampoline, once */
#endif

/* glibc declares this only under _GNU_SOURCE, which the includer may not
   have defined before its first system header. */
extern int pthread_getattr_np(pthread_t thread, pthread_attr_t *attr);

/* =========================================================================
   Config and platform
   ========================================================================= */

#ifndef WBGC_ASSERT
#define WBGC_ASSERT(x) \
    ((x) ? (void)0 : wbgc__panic("assertion failed: %s (%s:%d)", #x, __FILE__, __LINE__))
#endif

#if defined(__cplusplus)
#define WBGC__STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define WBGC__STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif

#define WBGC__NOINLINE   __attribute__((noinline))
#define WBGC__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define WBGC__LIKELY(x)   __builtin_expect(!!(x), 1)
#if defined(__clang__)
#define WBGC__NO_SANITIZE __attribute__((no_sanitize("address", "thread")))
#else
#define WBGC__NO_SANITIZE __attribute__((no_sanitize_address, no_sanitize_thread))
#endif

/* WBGC__GPR_ONLY: code the barrier's flush trampoline may call without
   saving the vector state (wbgc__wb_flush_fast and what it inlines): only
   general registers, no vector or x87 instruction. A function with it can be
   inlined anywhere; one without it is never inlined into one with it (the
   compilers call it instead), so every helper of the fast flush has it. */
#if WBGC__HAVE_AMD64
#define WBGC__GPR_ONLY __attribute__((target("general-regs-only"), no_instrument_function))
#else
#define WBGC__GPR_ONLY
#endif
/* The small helpers with it are also always inlined: gcc inlines a function
   whose target options differ from its caller's only when told to, and the
   marker's loops call them for every word they scan. */
#define WBGC__GPR_INLINE static inline __attribute__((always_inline)) WBGC__GPR_ONLY

#define WBGC__LOAD(x)      __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define WBGC__STORE(x, v)  __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define WBGC__ADD(x, v)    __atomic_fetch_add(&(x), (v), __ATOMIC_RELAXED)

/* Tunables. Each is a trade-off, written beside it. */

/* Page: the unit the page heap hands out. Larger pages waste more in the tail
   of small spans' last page; smaller ones make the page map larger. */
#define WBGC__PAGE_SHIFT   13
#define WBGC__PAGE         ((uintptr_t)1 << WBGC__PAGE_SHIFT)
/* Arena: the unit reserved from the OS, aligned to its size so that the
   arena index is one shift. 64 MiB: few mmap calls, 64 KiB of page map each. */
#define WBGC__ARENA_SHIFT  26
#define WBGC__ARENA        ((uintptr_t)1 << WBGC__ARENA_SHIFT)
#define WBGC__ARENA_PAGES  ((size_t)1 << (WBGC__ARENA_SHIFT - WBGC__PAGE_SHIFT))
/* User-space addresses on x86-64 and aarch64 Linux are below 2^47. */
#define WBGC__ADDR_BITS    47
#define WBGC__ARENA_SLOTS  ((size_t)1 << (WBGC__ADDR_BITS - WBGC__ARENA_SHIFT))
/* Largest small object; larger ones get a span of their own. */
#define WBGC__MAX_SMALL    32768
#define WBGC__MAX_CLASSES  96
/* Span kinds: how the marker treats a span's objects. A span class (spc)
   is class * WBGC__KINDS + kind; class 0 is "large", so spc 0..KINDS-1
   are the large kinds and the small classes start at WBGC__KINDS. */
enum {
    WBGC__KIND_SCAN = 0,    /* every word scanned (wbgc_alloc) */
    WBGC__KIND_NOSCAN = 1,  /* never scanned (wbgc_alloc_noscan) */
    WBGC__KIND_TYPED = 2,   /* scanned at its layout's pointer words
                               (wbgc_alloc_typed; layout ids per object) */
    WBGC__KINDS = 3
};
#define WBGC__NSPC         (WBGC__MAX_CLASSES * WBGC__KINDS)
/* Objects per span at most (16-byte class in one page: 512). */
#define WBGC__MAX_ELEMS    1024
#define WBGC__BITMAP_WORDS (WBGC__MAX_ELEMS / 64)
/* Anything larger is refused before asking the OS: no address space has it. */
#define WBGC__MAX_ALLOC    ((size_t)1 << WBGC__ADDR_BITS)
/* Free page runs in lists by length up to this many pages, then one list. */
#define WBGC__FREE_LISTS   128
/* Work buffer entries: larger buffers mean fewer trips to the global lists
   (each takes a lock) but more grey objects held back by one P. */
/* Barrier buffer entries (each a (new, old) pair). Larger: fewer flushes
   (each costs a call and a pass that finds objects), and a longer delay
   before grey objects reach the marker; 256 entries (4 KiB) is Go's choice.
   Check mode uses one entry whatever this says. */
#ifndef WBGC_WBBUF_ENTRIES
#define WBGC_WBBUF_ENTRIES 256
#endif
#ifndef WBGC_WORKBUF_ENTRIES
#define WBGC_WORKBUF_ENTRIES 510
#endif
/* The smallest heap goal at gc_percent 100 (scaled by gc_percent, at least
   256 KiB) unless min_heap says otherwise: below it, cycles would run too
   often to be worth their fixed cost. */
#define WBGC__MIN_HEAP     ((uint64_t)4 << 20)
/* The lowest floor min_heap can set: 64 KiB, two spans of the largest
   small size class. A P reports its allocation a span at a time, so below
   a few spans nearly every refill would start a cycle, and a cycle has a
   fixed cost (two pauses, a hand-shake with every P, a pass over every
   size class) that no heap that small repays. */
#define WBGC__MIN_HEAP_LOWEST ((uint64_t)64 << 10)

/* wbgc__goal_floor: the smallest heap goal that min_heap allows at
   gc_percent gcp. */
static uint64_t wbgc__goal_floor(size_t min_heap, int gcp)
{
    if (min_heap) return min_heap < WBGC__MIN_HEAP_LOWEST ? WBGC__MIN_HEAP_LOWEST : min_heap;
    uint64_t floor = WBGC__MIN_HEAP * (uint64_t)(gcp < 0 ? 0 : gcp) / 100;
    return floor < (256u << 10) ? (256u << 10) : floor;
}

static void wbgc__panic(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void wbgc__panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("wbgc: fatal: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static uint64_t wbgc__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned long wbgc__thread_id(pthread_t t)
{
    unsigned long id = 0;
    memcpy(&id, &t, sizeof id < sizeof t ? sizeof id : sizeof t);
    return id;
}

/* =========================================================================
   Size classes
   ========================================================================= */

/* Classes step by 16 bytes up to 128, then by an eighth of the power of two
   below, so rounding up wastes at most 12.5%; each class gets the fewest
   pages whose tail waste is at most 12.5% too. Classes with the same pages
   and object count merge into the larger. Class 0 means "large". */
static struct {
    uint32_t nclasses;
    uint32_t size[WBGC__MAX_CLASSES];
    uint32_t npages[WBGC__MAX_CLASSES];
    uint32_t nelems[WBGC__MAX_CLASSES];
    uint32_t divmagic[WBGC__MAX_CLASSES];  /* idx = (off * divmagic) >> 32 */
    uint8_t  by16[1024 / 16 + 1];             /* size <= 1024, by (size+15)/16 */
    uint8_t  by128[WBGC__MAX_SMALL / 128 + 1]; /* size > 1024, by (size+127)/128 */
} wbgc__classes;
static pthread_once_t wbgc__classes_once = PTHREAD_ONCE_INIT;

static void wbgc__classes_init(void)
{
#if WBGC__HAVE_AMD64
    wbgc__amd64_init();
#endif
    uint32_t n = 1, size = 16;
    while (size <= WBGC__MAX_SMALL) {
        uint32_t pages = 1, elems;
        while ((pages * WBGC__PAGE) < size ||
               ((pages * WBGC__PAGE) % size) * 8 > pages * WBGC__PAGE)
            pages++;
        elems = (uint32_t)(pages * WBGC__PAGE / size);
        WBGC_ASSERT(elems <= WBGC__MAX_ELEMS);
        if (n > 1 && wbgc__classes.npages[n - 1] == pages && wbgc__classes.nelems[n - 1] == elems) {
            wbgc__classes.size[n - 1] = size;
        } else {
            WBGC_ASSERT(n < WBGC__MAX_CLASSES);
            wbgc__classes.npages[n] = pages;
            wbgc__classes.nelems[n] = elems;
            wbgc__classes.size[n] = size;
            n++;
        }
        if (size < 128) {
            size += 16;
        } else {
            uint32_t p2 = 1u << (31 - __builtin_clz(size));
            size += p2 / 8;
        }
    }
    wbgc__classes.nclasses = n;
    for (uint32_t c = 1; c < n; c++) {
        uint32_t sz = wbgc__classes.size[c];
        uint32_t magic = (uint32_t)(0xffffffffu / sz + 1);
        wbgc__classes.divmagic[c] = magic;
        /* The multiply-shift is monotonic, so it is exact for every offset
           in the span when it is exact at each object's first and last byte. */
        for (uint64_t k = 1; k <= wbgc__classes.nelems[c]; k++) {
            if (((k * sz - 1) * magic) >> 32 != k - 1 || ((k * sz) * magic) >> 32 != k)
                wbgc__panic("size class %u: divmagic inexact at object %llu", sz,
                            (unsigned long long)k);
        }
    }
    for (uint32_t s = 0, c = 1; s <= 1024; s += 16) {
        while (wbgc__classes.size[c] < s) c++;
        wbgc__classes.by16[s / 16] = (uint8_t)c;
    }
    for (uint32_t s = 1024, c = 1; s <= WBGC__MAX_SMALL; s += 128) {
        while (wbgc__classes.size[c] < s) c++;
        wbgc__classes.by128[s / 128] = (uint8_t)c;
    }
}

static inline uint32_t wbgc__size_class(size_t size)
{
    if (size <= 1024) return wbgc__classes.by16[(size + 15) >> 4];
    return wbgc__classes.by128[(size + 127) >> 7];
}

/* =========================================================================
   Heap: arenas, page heap, spans
   ========================================================================= */

enum { WBGC__SPAN_FREE = 0, WBGC__SPAN_INUSE = 1, WBGC__SPAN_DEAD = 2 };

/* wbgc__span is a run of pages: in use (objects of one size class, or one
   large object) or free (a page run in the page heap). Objects carry no
   header: allocbits and markbits have one bit per object. */
typedef struct wbgc__span {
    uintptr_t base;
    size_t    npages;
    size_t    elemsize;     /* large: npages * PAGE */
    uint32_t  nelems;       /* large: 1 */
    uint32_t  divmagic;     /* large: 0, so every offset maps to object 0 */
    uint32_t  freeindex;    /* allocation resumes its search here */
    uint16_t  spc;          /* span class: class * WBGC__KINDS + kind;
                               below WBGC__KINDS: large */
    uint8_t   state;        /* WBGC__SPAN_* */
    uint8_t   kind;         /* WBGC__KIND_*: spc % WBGC__KINDS */
    uint8_t   needzero;     /* INV-ZERO: free slots may hold old data */
    uint8_t   cached;       /* in a P's allocation cache */
    uint16_t  list;         /* which free list holds a free run */
    uint16_t  layout;       /* large typed: the object's layout id */
    uint64_t  freed_cycle;  /* free runs: the cycle that freed them */
    uint16_t *layout_ids;   /* small typed: each object's layout id (0: no
                               object yet), nelems of them; malloc'd with
                               the span's pages, freed with them; NULL in
                               every other span */
    struct wbgc__span *next, *prev;
    uint64_t  allocbits[WBGC__BITMAP_WORDS];
    uint64_t  markbits[WBGC__BITMAP_WORDS];
    uint64_t  vbits[WBGC__BITMAP_WORDS];  /* WBGC_VERIFY's own marks; clear
                                             outside the verifier */
    uint64_t  owedbits[WBGC__BITMAP_WORDS]; /* WBGC_VERIFY: objects that a
                                             barrier entry drained this mark
                                             phase obliged it to shade
                                             (wbgc__v_note_entries) */
    uint64_t  specialbits[WBGC__BITMAP_WORDS]; /* objects with a special
                                             record (a finalizer, a weak
                                             handle); set and cleared
                                             atomically under the record's
                                             shard lock */
    uintptr_t *waitheads;   /* this mark: per object, the ephemerons that
                               wait for it to be marked (a list through
                               their `waiting`), or NULL: none in this
                               span; made by the first (CAS), freed at the
                               span's sweep; SEQ_CST (wbgc__scan_ephemeron) */
    uint64_t  specials_gen; /* h->marks_done as of the sweep that last did
                               this span's special records (or its start);
                               RELEASE/ACQUIRE: a weak get between a mark
                               and its sweep reads it (wbgc__weak_obj) */
} wbgc__span;

/* wbgc_layout: a record's pointer words (wbgc_layout_new). A typed object
   repeats its record from its start; the marker shades only the words at
   ptrs[] of each record, the verifier and check mode read bits[]. Made
   once, never changed, freed with the heap. */
struct wbgc_layout {
    wbgc_heap *heap;
    uint32_t   id;      /* index in heap->layouts; >= WBGC__LAYOUT_FIRST */
    uint32_t   words;   /* record size in words */
    uint32_t   nptrs;   /* pointer words per record */
    uint32_t  *ptrs;    /* their word offsets in the record, ascending */
    uint64_t  *bits;    /* the same as a bitmap: bit w set, word w a pointer */
};

/* Layout ids: 0 none, WBGC__LAYOUT_EPHEMERON the ephemeron's (made by the
   heap itself, not by wbgc_layout_new); wbgc_layout_new hands out ids from
   WBGC__LAYOUT_FIRST on, at most WBGC__LAYOUT_MAX of them. */
#define WBGC__LAYOUT_EPHEMERON 1
#define WBGC__LAYOUT_FIRST     2
#define WBGC__LAYOUT_MAX       65000
#define WBGC__LAYOUT_SLOTS     (WBGC__LAYOUT_FIRST + WBGC__LAYOUT_MAX)
/* A record is at most this big (its bitmap: 128 words). */
#define WBGC__LAYOUT_MAX_BYTES ((size_t)64 << 10)

/* A sentinel with no free slot: a P's empty cache entries point here, so the
   allocation fast path needs no NULL test. */
static wbgc__span wbgc__empty_span;

typedef struct wbgc__arena {
    uintptr_t   base;                        /* aligned to WBGC__ARENA */
    struct wbgc__arena *next;                /* all arenas */
    int         mapping_head;                /* first arena of an mmap */
    size_t      mapping_bytes;               /* of that mmap */
    wbgc__span *pages[WBGC__ARENA_PAGES];    /* INV-PAGEMAP */
} wbgc__arena;

/* Intrusive doubly-linked lists of spans. */
static void wbgc__list_push(wbgc__span **head, wbgc__span *s)
{
    s->prev = NULL;
    s->next = *head;
    if (*head) (*head)->prev = s;
    *head = s;
}

static void wbgc__list_remove(wbgc__span **head, wbgc__span *s)
{
    if (s->prev) s->prev->next = s->next;
    else *head = s->next;
    if (s->next) s->next->prev = s->prev;
    s->next = s->prev = NULL;
}

static wbgc__span *wbgc__list_pop(wbgc__span **head)
{
    wbgc__span *s = *head;
    if (s) wbgc__list_remove(head, s);
    return s;
}

/* =========================================================================
   Mark work: work buffers and gcWork
   ========================================================================= */

/* wbgc__wbuf is a fixed-size buffer of grey objects. Full and empty buffers
   move through the heap's global lists; a gcWork holds two locally, so a
   push or pop touches the global lists (and their lock) only once per
   WBGC_WORKBUF_ENTRIES operations. Buffers come from mmap, never from the
   GC heap, so taking one can neither run a barrier nor wait for the marker. */
typedef struct wbgc__wbuf {
    struct wbgc__wbuf *next;
    size_t    n;
    uintptr_t obj[WBGC_WORKBUF_ENTRIES];
} wbgc__wbuf;

/* wbgc__gcwork is one marker's local queue of grey objects.
   Invariant: w1 and w2 are both NULL or neither is. */
typedef struct wbgc__gcwork {
    wbgc__wbuf *w1, *w2;
    uint64_t    bytes_marked;
} wbgc__gcwork;

/* =========================================================================
   The heap and the P
   ========================================================================= */

/* P status. RUNNING: its thread runs mutator code. PARKED: stopped at a
   safepoint while the world is stopped. BLOCKED: inside a blocking region
   (or waiting inside wbgc): counts as stopped. TAKEN: blocked, and a marker
   works on its behalf; its thread cannot leave the blocking region until
   the P is given back. DETACHED: gone. */
enum { WBGC__P_RUNNING = 1, WBGC__P_PARKED, WBGC__P_BLOCKED, WBGC__P_TAKEN, WBGC__P_DETACHED };
#define WBGC__P_MAGIC   0x77626770u  /* "wbgp" */
#define WBGC__P_DEAD    0x64656164u  /* "dead" */
#define WBGC__H_MAGIC   0x77626768u  /* "wbgh" */

struct wbgc_p {
    wbgc__pfast fast;               /* first: read by the inline fast paths */
    wbgc_heap  *heap;
    uint32_t    magic;              /* WBGC__P_MAGIC while attached */
    int         status;             /* WBGC__P_*; written under sched_lock */
    uint32_t    req;                /* WBGC__REQ_*: asked of this P; sched_lock */
    pthread_t   thread;
    uintptr_t   stack_lo, stack_hi; /* the thread's stack; hi is its base */
    uintptr_t   saved_sp;           /* where the stack scan starts */
    uintptr_t   ctx[WBGC__NCTX];    /* callee-saved registers at park/block */
    jmp_buf     jb;                 /* the same, where no capture exists */
    uint32_t    alloc_black;        /* new objects born marked (mark phase) */
    uint32_t    check;              /* check mode: verify poison on reuse */
    /* Check mode (rule 5, wbgc__enter): the wbgc call this P's thread is
       inside, or NULL; its caller's stack pointer (the call's frames lie
       below it); inside wbgc_memmove, the words the move writes, whose
       barriers are its own. Owner only: written and read by the P's
       thread, a signal handler on it included (signal fences order them
       against the call). */
    const char *in_call;
    uintptr_t   in_call_sp;
    uintptr_t   in_call_lo, in_call_hi;
    /* Check mode: the root region the P's last store into one went to, as
       of the heap's roots_gen (wbgc__check_store_fast). Owner only. */
    uintptr_t   root_lo, root_hi;
    uint64_t    root_gen;
    uint32_t    stack_black;        /* this cycle's scan of its stack is done,
                                       with the buffer drained just before:
                                       entries appended since need only their
                                       old half (INV-TRICOLOUR) */
    uint64_t    allocd;             /* bytes allocated; owner writes, relaxed */
    uint64_t    allocd_reported;    /* part of allocd the pacer has seen */
    int64_t     assist_debt;        /* scan work owed, bytes (mark phase) */
    uint64_t    black_bytes;        /* bytes allocated black this cycle */
    uint64_t    wb_flushes;         /* owner writes, relaxed */
    uint64_t    wb_full_flushes;    /* of those, through wbgc__wb_flush (on
                                       amd64: with the vector state saved) */
    wbgc__gcwork gcw;               /* grey objects from its barrier and stack */
    wbgc_p     *next;               /* heap's attached or free list */
    wbgc_p     *thread_next;        /* its thread's other Ps (wbgc__exit_key) */
    wbgc__span *cache[WBGC__NSPC];  /* current span per span class */
    void       *wbbuf[WBGC_WBBUF_ENTRIES * 2];  /* (new, old) pairs */
};

WBGC__STATIC_ASSERT(offsetof(struct wbgc_p, fast) == 0,
                    "wbgc__pfast must open wbgc_p: the inline fast paths read it there");

typedef struct wbgc__central {
    pthread_mutex_t lock;
    wbgc__span *partial;     /* swept, not cached, with free slots */
    wbgc__span *full;        /* swept, not cached, no free slot */
    wbgc__span *unswept[3];  /* marked by the last cycle, not swept yet */
} wbgc__central;

typedef struct wbgc__root {
    void     *start;
    uintptr_t lo, hi;
    int       rescan;  /* stored into with plain stores: scanned again at
                          the end of every mark (wbgc_add_roots_rescan) */
} wbgc__root;
typedef struct wbgc__link { uintptr_t link, obj; } wbgc__link;  /* link 0: empty */

/* An object's special record: its finalizer and its weak handle (section
   "Finalizers and weak references"). Kept in a hash table of its own,
   split in shards by the object's address, each under its own lock. */
typedef struct wbgc__special {
    uintptr_t      obj;      /* the object's start; 0: an empty slot */
    wbgc_finalizer fn;       /* its finalizer, or NULL */
    void          *arg;
    uintptr_t      handle;   /* its weak handle (a GC object), or 0 */
} wbgc__special;

#define WBGC__SHARDS 64

typedef struct wbgc__shard {
    pthread_mutex_t lock;
    wbgc__special  *tab;     /* open addressing, linear probing */
    size_t          cap, n;  /* cap: 0 or a power of two */
} wbgc__shard;

/* A weak handle: one word, its object or 0, in a 16-byte noscan object. */
struct wbgc_weak { uintptr_t obj; uintptr_t unused; };

/* An ephemeron: a 32-byte GC object of the ephemeron layout
   (WBGC__LAYOUT_EPHEMERON), which the marker scans its own way
   (wbgc__scan_ephemeron). */
struct wbgc_ephemeron {
    wbgc_weak             *key;      /* strong: the key's weak handle */
    void                  *value;    /* marked only once the key is */
    struct wbgc_ephemeron *waiting;  /* the marker's: the next one waiting
                                        on the same key this mark */
    uintptr_t              unused;
};

/* A finalizer queued to run: its object found unreachable. */
typedef struct wbgc__finq {
    struct wbgc__finq *next;
    uintptr_t          obj;
    wbgc_finalizer     fn;
    void              *arg;
} wbgc__finq;

typedef struct wbgc__wbchunk { struct wbgc__wbchunk *next; size_t bytes; } wbgc__wbchunk;

struct wbgc_heap {
    uint32_t     magic;
    wbgc_config  cfg;
    uint64_t     start_ns;

    /* Page heap, arenas, span structs: under lock. */
    pthread_mutex_t lock;
    wbgc__arena **arena_index;   /* WBGC__ARENA_SLOTS entries, lazily backed */
    wbgc__arena  *arenas;
    uintptr_t     lo, hi;        /* bounds of all arenas; relaxed reads */
    wbgc__span   *free_runs[WBGC__FREE_LISTS + 1]; /* [n]: n pages; [max]: larger */
    wbgc__span   *large;         /* in-use large spans, swept */
    wbgc__span   *large_unswept; /* in-use large spans, not swept yet */
    wbgc__span   *spare_spans;   /* recycled span structs */
    uint64_t      mapped_bytes;  /* all arenas */
    uint64_t      fresh_bytes;   /* free runs never touched, or returned to the OS */

    /* Layouts (wbgc_layout_new): [id], WBGC__LAYOUT_SLOTS entries (mmap,
       untouched until used). An id is claimed by an atomic add on
       nlayouts, its entry stored RELEASE once the layout is whole, and
       never changed; a marker reads the entry of an id it found in an
       allocated object, which was written before the object was
       published (wbgc__alloc_publish). */
    const wbgc_layout **layouts;
    uint32_t      nlayouts;      /* ids handed out, FIRST included; atomic */

    wbgc__central central[WBGC__NSPC];

    /* Scheduling: Ps, stopping the world. */
    pthread_mutex_t sched_lock;
    pthread_cond_t  parked_cv;   /* a P parked, blocked or left */
    pthread_cond_t  resume_cv;   /* the world restarted */
    int             stopping;    /* the world is stopped or stopping; written
                                    under sched_lock, atomically (the
                                    background sweeper reads it without) */
    wbgc_p         *stopper;     /* the P that stopped it */
    wbgc_p         *ps;          /* attached */
    wbgc_p         *free_ps;     /* detached, kept for misuse reports */
    int             nps;

    /* The world and the phase change under gc_lock, one at a time. */
    pthread_mutex_t gc_lock;
    uint64_t        cycles_started;  /* atomic */
    int             phase;           /* WBGC__PHASE_*; set with the world
                                        stopped, relaxed reads */

    /* Marking. */
    pthread_mutex_t markdone_lock;   /* one termination attempt at a time */
    pthread_cond_t  work_cv;         /* sched_lock: workers, sweeper wait */
    pthread_cond_t  cycle_cv;        /* sched_lock: a cycle ended */
    int             roots_state;     /* 0 unclaimed, 1 claimed, 2 scanned */
    int             stacks_pending;  /* Ps whose stack is unscanned; atomic */
    int             nactive;         /* markers that may hold global work;
                                        work_lock */
    uint64_t        cycle_marked;    /* bytes marked this cycle; atomic */
    uint64_t        assist_ratio;    /* scan bytes owed per byte, x 2^16 */
    int64_t         bg_credit;       /* scan work the background markers did
                                        this mark phase that no assist has
                                        counted yet, bytes; atomic */
    uint64_t        mark_start_ns;   /* these three: gc_lock */
    uint64_t        start_pause_ns;
    const char     *start_why;       /* what started the cycle, for the trace */
    int             shutdown;        /* sched_lock: threads exit */
    /* A stop-the-world mark's helpers (wbgc__stw_mark): the workers join
       the collecting thread while the world is stopped. */
    uint64_t        stw_round;       /* sched_lock: +1 calls the workers */
    int             stw_open;        /* work_lock: a round takes helpers */
    int             stw_markers;     /* work_lock: markers in the round */
    int             stw_idle;        /* work_lock: of them, out of work */
    int             stw_done;        /* work_lock: all idle, no work left */
    pthread_cond_t  stw_cv;          /* work_lock: idle markers, the end */
    int             nworkers;
    pthread_t      *workers;
    int             has_sweeper;
    uint64_t        swept_cycle;     /* the last cycle whose sweep a
                                        finish_sweep completed; atomic */
    pthread_t       sweeper;
    int             sweep_pending;   /* sched_lock: spans await sweeping */
    int             sweep_active;    /* spans being swept off-list; atomic */

    /* Registered roots. */
    pthread_mutex_t roots_lock;
    wbgc__root     *roots;
    size_t          nroots, roots_cap;
    size_t          nroots_rescan;   /* of them, wbgc_add_roots_rescan's */
    uint64_t        roots_gen;    /* +1 at every add and remove (roots_lock;
                                     release): the Ps' check-mode caches of
                                     one region go stale */

    /* Mark work lists. */
    pthread_mutex_t work_lock;
    wbgc__wbuf     *work_full, *work_empty;
    wbgc__wbchunk  *work_chunks;
    wbgc__gcwork    gcw;          /* the stop-the-world marker's */
    uint64_t        wb_flushes_base; /* of detached Ps */

    /* Pacer. */
    uint64_t        heap_marked;  /* bytes found live by the last cycle */
    uint32_t        trigger_pm;   /* trigger, per mille of the growth to the goal
                                     (concurrent cycles; pacer feedback) */
    int             start_paced;  /* this cycle started at the trigger */
    uint64_t        start_est;    /* the heap estimate at its mark start */
    uint64_t        alloc_since;  /* reported bytes allocated since; atomic */
    uint64_t        goal;         /* relaxed reads */
    uint64_t        trigger;      /* relaxed reads */
    uint64_t        freed_total;  /* bytes freed by sweeps, ever */
    uint64_t        total_alloc_base; /* allocd of detached Ps */

    /* Stats: under stats_lock. */
    pthread_mutex_t stats_lock;
    uint64_t        cycles;
    uint64_t        pause_count, pause_total_ns, pause_max_ns;
    uint64_t        pause_recent_ns[256];
    uint64_t        wb_flushes, mark_assist_ns;
    uint64_t        verify_runs, verify_lost, verify_ns;

    /* Fork (section "Fork"). */
    pthread_mutex_t sweeper_lock;    /* the background sweeper holds it while it
                                        sweeps a span (wbgc__finish_sweep) */
    wbgc_heap      *fork_next;       /* the list of live heaps; wbgc__heaps_lock */
    int             fork_restart;    /* a forked child: start the background
                                        threads at the next cycle; gc_lock */
    uint64_t        fork_t0;         /* when the fork's stop began; gc_lock */

    /* Finalizers and weak handles (section "Finalizers and weak
       references"). */
    wbgc__shard     specials[WBGC__SHARDS];
    pthread_mutex_t specials_gate;   /* the root job holds it with each shard
                                        lock it takes; a fork takes it instead
                                        of every shard lock (section "Fork") */
    uint64_t        marks_done;      /* marks completed; written with the
                                        world stopped */
    uint64_t        sweep_done;      /* marks_done as of the last time every
                                        span was swept (weak gets need no
                                        lock then); RELEASE/ACQUIRE */
    pthread_mutex_t fin_lock;        /* the queue and the thread's state */
    pthread_cond_t  fin_cv;          /* fin_lock: a finalizer was queued */
    wbgc__finq     *fin_head, *fin_tail;
    int             fin_started;     /* the finalizer thread was started */
    int             fin_shutdown;    /* it is to exit */
    pthread_t       fin_thread;
    wbgc_p         *fin_p;           /* its P; fin_lock */
    uint64_t        fin_queued, fin_run, fin_pending, weak_cleared, weak_live; /* atomic */

    /* Disappearing links (section "Disappearing links"): an open-addressed
       table keyed by the link's address, in malloc memory (never scanned:
       it keeps nothing alive). */
    pthread_mutex_t links_lock;
    wbgc__link     *links;
    size_t          links_cap, links_n, links_used; /* used: live + gone */
    uint64_t        links_kept;      /* cycles_started when wbgc_links_keep
                                        last shaded them all; atomic */
};

/* =========================================================================
   Errors
   ========================================================================= */

/* Three tiers: what the caller can handle returns NULL or -1 after on_error
   ("wbgc: out of memory: ..."); misuse is reported ("wbgc: misuse: ...") and
   the call does nothing; corruption panics. */
static void wbgc__report(wbgc_heap *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void wbgc__report(wbgc_heap *h, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (h && h->cfg.on_error) h->cfg.on_error(msg, h->cfg.user);
    else wbgc_default_on_error(msg, NULL);
}

WBGCDEF void wbgc_default_on_error(const char *message, void *user)
{
    (void)user;
    fprintf(stderr, "%s\n", message);
    if (strncmp(message, "wbgc: misuse", 12) == 0 || strncmp(message, "wbgc: fatal", 11) == 0)
        abort();
}

/* wbgc__check_p reports a P that is not usable by the calling thread:
   detached, not a P at all, or another thread's. Returns 0 when usable. */
static int wbgc__check_p(wbgc_p *p, const char *fn)
{
    if (!p) {
        wbgc__report(NULL, "wbgc: misuse: %s called with a NULL P", fn);
        return -1;
    }
    if (p->magic != WBGC__P_MAGIC) {
        wbgc__report(p->magic == WBGC__P_DEAD ? p->heap : NULL,
                     "wbgc: misuse: %s(p=%p): %s", fn, (void *)p,
                     p->magic == WBGC__P_DEAD ? "the P was detached" : "not a wbgc P");
        return -1;
    }
    if (!pthread_equal(p->thread, pthread_self())) {
        wbgc__report(p->heap,
                     "wbgc: misuse: %s(p=%p) called from thread %#lx, but the P belongs to "
                     "thread %#lx (rule 1: each thread uses its own P)",
                     fn, (void *)p, wbgc__thread_id(pthread_self()), wbgc__thread_id(p->thread));
        return -1;
    }
    return 0;
}

/* Check mode's guard against re-entering the heap on one P (rule 5). No
   wbgc call is async-signal-safe, and none may be left by a jump. In check
   mode a P is marked while its thread is inside a wbgc call (every call
   check mode sends out of line: all of them but for the few instructions
   of the inline barrier's append), and a call that finds its P marked
   reports it: a signal handler that called wbgc on the P of the thread it
   interrupted inside a call (or an on_error that called wbgc on the P of
   the call reporting), or a longjmp or siglongjmp out of a call, found at
   the P's next call. The two look alike; the stack pointer of the calls'
   callers tells them apart when it can. While a call runs, everything
   that runs meanwhile on its thread (a signal handler too) runs below its
   caller's stack pointer, or on another stack, and it gets control only
   through a signal frame (over 1 KiB on x86-64 and aarch64) or through
   on_error (below wbgc__report's 1 KiB message); so a new call whose
   caller is above that, on the thread's stack, proves the marked call's
   frame gone: a jump, reported once, the mark dropped. WBGC__REENTRY_SLACK
   leaves room for inline wrappers that were not inlined (-O0) between a
   caller and the function that reads its stack pointer. Anything else may
   be either (a jump followed by a call from deeper down): reported naming
   both, the mark kept for the marked call to clear when it returns.

   WBGC__CALLER_SP: the stack pointer of the caller of the function it is
   expanded in (its CFA: on x86-64 and aarch64 alike, the same for every
   function called from one place, whatever the size of its frame). */
#define WBGC__CALLER_SP() ((uintptr_t)__builtin_dwarf_cfa())
#define WBGC__REENTRY_SLACK 512

static const char wbgc__fn_memmove[] = "wbgc_memmove";

/* wbgc__reentered: wbgc__enter found p marked. Reports; returns 1 when the
   marked call's frame is gone (the mark dropped), else -1. */
static WBGC__NOINLINE int wbgc__reentered(wbgc_p *p, const char *fn, uintptr_t sp)
{
    const char *inside = p->in_call;
    int on_stack = p->stack_lo == p->stack_hi || (sp >= p->stack_lo && sp <= p->stack_hi);
    if (on_stack && sp + WBGC__REENTRY_SLACK >= p->in_call_sp) {
        p->in_call = NULL;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        wbgc__report(p->heap, "wbgc: misuse: %s(p=%p) on thread %#lx: the P's call to %s never "
                     "returned: a longjmp or siglongjmp left it, and left the P and the heap as "
                     "they were at that moment (rule 5: no wbgc call is async-signal-safe, and none "
                     "may be left by a jump)", fn, (void *)p, wbgc__thread_id(p->thread), inside);
        return 1;
    }
    wbgc__report(p->heap, "wbgc: misuse: %s(p=%p) on thread %#lx while the P is inside %s: a "
                 "signal handler (or on_error) called wbgc on the P of a thread inside a wbgc "
                 "call, or a longjmp or siglongjmp left that call (rule 5: no wbgc call is "
                 "async-signal-safe, and none may be left by a jump)",
                 fn, (void *)p, wbgc__thread_id(p->thread), inside);
    return -1;
}

/* wbgc__enter marks p inside call fn, sp its caller's stack pointer, and
   returns 0; or, p marked already, reports and returns what
   wbgc__reentered does: the call then does nothing else (but for a
   barrier, whose store goes ahead). Check mode; p's own thread
   (wbgc__check_p first). */
static inline int wbgc__enter(wbgc_p *p, const char *fn, uintptr_t sp)
{
    if (WBGC__UNLIKELY(p->in_call != NULL)) return wbgc__reentered(p, fn, sp);
    p->in_call = fn;
    p->in_call_sp = sp;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    return 0;
}

/* wbgc__leave ends what wbgc__enter marked (general registers only: the
   amd64 trampoline's general-register flush marks the P too). */
WBGC__GPR_INLINE void wbgc__leave(wbgc_p *p)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    p->in_call = NULL;
}

/* wbgc__memmove_own: is a barrier on slot one that wbgc_memmove runs for a
   word it writes (not a re-entry)? */
WBGC__GPR_INLINE int wbgc__memmove_own(const wbgc_p *p, const void *slot)
{
    return p->in_call == wbgc__fn_memmove &&
           (uintptr_t)slot - p->in_call_lo < p->in_call_hi - p->in_call_lo;
}

/* =========================================================================
   Heap: page map lookups and the page heap (all under h->lock unless said)
   ========================================================================= */

/* wbgc__page_entry returns the page map slot for addr, or NULL outside every
   arena. Any thread; the arena index only ever gains entries while the heap
   lives. */
static inline wbgc__span **wbgc__page_entry(wbgc_heap *h, uintptr_t addr)
{
    if (addr >> WBGC__ADDR_BITS) return NULL;
    wbgc__arena *a = __atomic_load_n(&h->arena_index[addr >> WBGC__ARENA_SHIFT], __ATOMIC_ACQUIRE);
    if (!a) return NULL;
    return &a->pages[(addr >> WBGC__PAGE_SHIFT) & (WBGC__ARENA_PAGES - 1)];
}

/* Page map entries are read by markers without a lock: written with
   release (after the span they name is initialised), read with acquire. */
static inline wbgc__span *wbgc__get_page(wbgc_heap *h, uintptr_t addr)
{
    wbgc__span **e = wbgc__page_entry(h, addr);
    return e ? __atomic_load_n(e, __ATOMIC_ACQUIRE) : NULL;
}

static inline void wbgc__set_page(wbgc_heap *h, uintptr_t addr, wbgc__span *s)
{
    __atomic_store_n(wbgc__page_entry(h, addr), s, __ATOMIC_RELEASE);
}

/* wbgc__span_of returns the in-use span holding addr, or NULL. Any value may
   come here (conservative roots, integers): it never faults. */
WBGC__GPR_INLINE wbgc__span *wbgc__span_of(wbgc_heap *h, uintptr_t addr)
{
    uintptr_t lo = WBGC__LOAD(h->lo), hi = WBGC__LOAD(h->hi);
    if (addr - lo >= hi - lo) return NULL;
    wbgc__arena *a = __atomic_load_n(&h->arena_index[addr >> WBGC__ARENA_SHIFT], __ATOMIC_ACQUIRE);
    if (!a) return NULL;
    wbgc__span *s = __atomic_load_n(&a->pages[(addr >> WBGC__PAGE_SHIFT) & (WBGC__ARENA_PAGES - 1)],
                                    __ATOMIC_ACQUIRE);
    if (!s || __atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != WBGC__SPAN_INUSE) return NULL;
    if (addr - s->base >= (s->npages << WBGC__PAGE_SHIFT)) return NULL;
    return s;
}

/* wbgc__object_start: is obj the start of an allocated object of h (what
   an allocation returned, not an interior pointer, not a free slot)? If
   so returns 1 with its span and index in *span and *idx; else 0. Any
   thread; any value (it never faults). An object the caller holds stays
   allocated; for any other value the answer may be stale at once (a
   sweep may free or reuse the slot). */
static int wbgc__object_start(wbgc_heap *h, const void *obj, wbgc__span **span, uint32_t *idx)
{
    uintptr_t v = (uintptr_t)obj;
    wbgc__span *s = wbgc__span_of(h, v);
    if (!s) return 0;
    uint32_t i = (uint32_t)(((uint64_t)(v - s->base) * s->divmagic) >> 32);
    if (i >= s->nelems || v != s->base + (uintptr_t)i * s->elemsize) return 0;
    if (!((__atomic_load_n(&s->allocbits[i >> 6], __ATOMIC_ACQUIRE) >> (i & 63)) & 1)) return 0;
    *span = s;
    *idx = i;
    return 1;
}

/* wbgc__layout_id: the layout id of object idx of a typed span s: its
   entry in the side array (small spans), or the span's own (large). */
WBGC__GPR_INLINE uint32_t wbgc__layout_id(const wbgc__span *s, uint32_t idx)
{
    return s->layout_ids ? s->layout_ids[idx] : s->layout;
}

/* wbgc__layout_of: the layout that object idx of typed span s is scanned
   by, or NULL: scan it conservatively. */
WBGC__GPR_INLINE const wbgc_layout *wbgc__layout_of(wbgc_heap *h, const wbgc__span *s, uint32_t idx)
{
    uint32_t id = wbgc__layout_id(s, idx);
    /* WBGC__LAYOUT_EPHEMERON: an ephemeron, which the marker scans its own
       way (wbgc__scan_object sends it to wbgc__scan_ephemeron before it
       asks); to everyone else (check mode, wbgc_realloc) every word of it
       may hold a pointer. */
    if (id == WBGC__LAYOUT_EPHEMERON) return NULL;
    const wbgc_layout *l = __atomic_load_n(&h->layouts[id], __ATOMIC_ACQUIRE);
    if (WBGC__UNLIKELY(!l))
        wbgc__panic("typed object %u of span %#lx has layout id %u, which names no layout",
                    (unsigned)idx, (unsigned long)s->base, (unsigned)id);
    return l;
}

/* wbgc__layout_names: does the layout of typed object idx of s (at obj)
   name the word at slot as a pointer? Unknown layouts (the ephemeron's)
   say yes. */
WBGC__GPR_INLINE int wbgc__layout_names(wbgc_heap *h, const wbgc__span *s, uint32_t idx,
                                        uintptr_t obj, uintptr_t slot)
{
    const wbgc_layout *l = wbgc__layout_of(h, s, idx);
    if (!l) return 1;
    uintptr_t w = ((slot - obj) / sizeof(uintptr_t)) % l->words;
    return (int)((l->bits[w / 64] >> (w % 64)) & 1);
}

static wbgc__span *wbgc__span_struct(wbgc_heap *h)
{
    wbgc__span *s = h->spare_spans;
    if (s) {
        h->spare_spans = s->next;
    } else {
        s = (wbgc__span *)malloc(sizeof *s);
        if (!s) return NULL;
    }
    memset(s, 0, sizeof *s);
    return s;
}

static void wbgc__span_struct_free(wbgc_heap *h, wbgc__span *s)
{
    WBGC__STORE(s->state, WBGC__SPAN_DEAD);
    s->next = h->spare_spans;
    h->spare_spans = s;
}

static size_t wbgc__free_list_of(size_t npages)
{
    return npages < WBGC__FREE_LISTS ? npages : WBGC__FREE_LISTS;
}

/* wbgc__run_insert puts a free run in its list and maps its ends
   (INV-PAGEMAP). */
static void wbgc__run_insert(wbgc_heap *h, wbgc__span *s)
{
    WBGC__STORE(s->state, WBGC__SPAN_FREE);
    s->list = (uint16_t)wbgc__free_list_of(s->npages);
    wbgc__list_push(&h->free_runs[s->list], s);
    wbgc__set_page(h, s->base, s);
    wbgc__set_page(h, s->base + ((s->npages - 1) << WBGC__PAGE_SHIFT), s);
    if (!s->needzero) h->fresh_bytes += s->npages << WBGC__PAGE_SHIFT;
}

static void wbgc__run_remove(wbgc_heap *h, wbgc__span *s)
{
    wbgc__list_remove(&h->free_runs[s->list], s);
    if (!s->needzero) h->fresh_bytes -= s->npages << WBGC__PAGE_SHIFT;
}

/* wbgc__grow maps at least npages of new arena memory and adds it as one
   free run. Returns 0, or -1 with errno from mmap. */
static int wbgc__grow(wbgc_heap *h, size_t npages)
{
    size_t bytes = (npages << WBGC__PAGE_SHIFT) + WBGC__ARENA - 1;
    bytes &= ~(WBGC__ARENA - 1);
    /* Over-reserve by one arena, then trim, to get an aligned mapping. */
    char *raw = (char *)mmap(NULL, bytes + WBGC__ARENA, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return -1;
    uintptr_t base = ((uintptr_t)raw + WBGC__ARENA - 1) & ~(WBGC__ARENA - 1);
    if (base > (uintptr_t)raw) munmap(raw, base - (uintptr_t)raw);
    uintptr_t end = (uintptr_t)raw + bytes + WBGC__ARENA;
    if (end > base + bytes) munmap((void *)(base + bytes), end - (base + bytes));
    if ((base + bytes - 1) >> WBGC__ADDR_BITS) {
        munmap((void *)base, bytes);
        errno = ENOMEM;
        return -1;
    }
    size_t narenas = bytes / WBGC__ARENA;
    wbgc__arena **made = (wbgc__arena **)calloc(narenas, sizeof *made);
    wbgc__span *run = wbgc__span_struct(h);
    for (size_t i = 0; made && run && i < narenas; i++) {
        made[i] = (wbgc__arena *)calloc(1, sizeof(wbgc__arena));
        if (!made[i]) {
            while (i-- > 0) free(made[i]);
            free(made);
            made = NULL;
        }
    }
    if (!made || !run) {
        if (run) wbgc__span_struct_free(h, run);
        free(made);
        munmap((void *)base, bytes);
        errno = ENOMEM;
        return -1;
    }
    for (size_t i = 0; i < narenas; i++) {
        wbgc__arena *a = made[i];
        a->base = base + i * WBGC__ARENA;
        a->mapping_head = (i == 0);
        a->mapping_bytes = bytes;
        a->next = h->arenas;
        h->arenas = a;
        __atomic_store_n(&h->arena_index[a->base >> WBGC__ARENA_SHIFT], a, __ATOMIC_RELEASE);
    }
    free(made);
    if (!h->lo || base < h->lo) WBGC__STORE(h->lo, base);
    if (base + bytes > h->hi) WBGC__STORE(h->hi, base + bytes);
    h->mapped_bytes += bytes;
    run->base = base;
    run->npages = bytes >> WBGC__PAGE_SHIFT;
    run->needzero = 0;
    wbgc__run_insert(h, run);
    return 0;
}

/* wbgc__span_init readies a span of class spc (below WBGC__KINDS: large)
   for use. */
static void wbgc__span_init(wbgc__span *s, uint32_t spc)
{
    uint32_t cls = spc / WBGC__KINDS;
    s->spc = (uint16_t)spc;
    s->kind = (uint8_t)(spc % WBGC__KINDS);
    if (cls) {
        s->elemsize = wbgc__classes.size[cls];
        s->nelems = wbgc__classes.nelems[cls];
        s->divmagic = wbgc__classes.divmagic[cls];
    } else {
        s->elemsize = s->npages << WBGC__PAGE_SHIFT;
        s->nelems = 1;
        s->divmagic = 0;
    }
    s->freeindex = 0;
    s->cached = 0;
    memset(s->allocbits, 0, sizeof s->allocbits);
    memset(s->markbits, 0, sizeof s->markbits);  /* INV-MARKCLEAR */
    memset(s->vbits, 0, sizeof s->vbits);
    memset(s->owedbits, 0, sizeof s->owedbits);
    memset(s->specialbits, 0, sizeof s->specialbits);
    WBGC_ASSERT(!s->waitheads);  /* freed at the sweep that freed the span */
}

/* wbgc__pages_alloc takes npages from the page heap, growing it when no
   free run fits (best fit among the long runs), for a span of class spc.
   The span is initialised before its pages are mapped to it and before it
   reads as in use, so a marker that finds it sees it whole. Returns it
   (INV-PAGEMAP), or NULL with errno set. */
static wbgc__span *wbgc__pages_alloc(wbgc_heap *h, size_t npages, uint32_t spc)
{
    wbgc__span *s = NULL;
    for (int tries = 0; !s && tries < 2; tries++) {
        for (size_t l = wbgc__free_list_of(npages); l < WBGC__FREE_LISTS && !s; l++)
            s = h->free_runs[l];
        if (!s) {
            for (wbgc__span *r = h->free_runs[WBGC__FREE_LISTS]; r; r = r->next)
                if (r->npages >= npages && (!s || r->npages < s->npages ||
                                            (r->npages == s->npages && r->base < s->base)))
                    s = r;
        }
        if (!s && (tries > 0 || wbgc__grow(h, npages) < 0)) return NULL;
    }
    wbgc__run_remove(h, s);
    if (s->npages > npages) {
        wbgc__span *rest = wbgc__span_struct(h);
        if (!rest) {
            wbgc__run_insert(h, s);
            errno = ENOMEM;
            return NULL;
        }
        rest->base = s->base + (npages << WBGC__PAGE_SHIFT);
        rest->npages = s->npages - npages;
        rest->needzero = s->needzero;
        rest->freed_cycle = s->freed_cycle;
        s->npages = npages;
        wbgc__run_insert(h, rest);
    }
    wbgc__span_init(s, spc);
    s->specials_gen = WBGC__LOAD(h->marks_done);  /* nothing of it to sweep */
    for (size_t i = 0; i < npages; i++) wbgc__set_page(h, s->base + (i << WBGC__PAGE_SHIFT), s);
    __atomic_store_n(&s->state, (uint8_t)WBGC__SPAN_INUSE, __ATOMIC_RELEASE);
    return s;
}

/* wbgc__run_file merges a free run that is on no list, and of whose pages
   none is mapped, with its free neighbours that are as clean (or dirty) as
   it is, and files the result (INV-PAGEMAP). */
static void wbgc__run_file(wbgc_heap *h, wbgc__span *s)
{
    wbgc__span *prev = wbgc__get_page(h, s->base - WBGC__PAGE);
    if (prev && prev->state == WBGC__SPAN_FREE && prev->needzero == s->needzero) {
        wbgc__run_remove(h, prev);
        wbgc__set_page(h, prev->base + ((prev->npages - 1) << WBGC__PAGE_SHIFT), NULL);
        prev->npages += s->npages;
        prev->freed_cycle = s->freed_cycle;
        wbgc__span_struct_free(h, s);
        s = prev;
    }
    wbgc__span *next = wbgc__get_page(h, s->base + (s->npages << WBGC__PAGE_SHIFT));
    if (next && next->state == WBGC__SPAN_FREE && next->needzero == s->needzero) {
        wbgc__run_remove(h, next);
        wbgc__set_page(h, next->base, NULL);
        wbgc__set_page(h, s->base + ((s->npages - 1) << WBGC__PAGE_SHIFT), NULL);
        s->npages += next->npages;
        wbgc__span_struct_free(h, next);
    }
    wbgc__run_insert(h, s);
}

/* wbgc__pages_free gives an in-use span's pages back as a dirty free run,
   merged with dirty free neighbours. */
static void wbgc__pages_free(wbgc_heap *h, wbgc__span *s, uint64_t cycle)
{
    WBGC__STORE(s->state, WBGC__SPAN_FREE);
    free(s->layout_ids);  /* no object left to read it */
    s->layout_ids = NULL;
    for (size_t i = 0; i < s->npages; i++) wbgc__set_page(h, s->base + (i << WBGC__PAGE_SHIFT), NULL);
    s->needzero = 1;
    s->freed_cycle = cycle;
    wbgc__run_file(h, s);
}

/* The scavenger returns memory in pieces of at most this much, dropping
   the heap lock for each madvise, so that allocation never waits long. */
#define WBGC__SCAVENGE_CHUNK ((size_t)4 << 20)

/* wbgc__scavenge_pick: the next dirty free run to return to the OS, or
   NULL: one idle for a cycle or more among the long runs, as always;
   while the heap keeps more than `keep` bytes backed, any dirty run,
   the longest lists first. h->lock held. */
static wbgc__span *wbgc__scavenge_pick(wbgc_heap *h, uint64_t cycle, uint64_t keep)
{
    int over = h->mapped_bytes - h->fresh_bytes > keep;
    for (size_t l = WBGC__FREE_LISTS; l >= 1; l--) {
        for (wbgc__span *r = h->free_runs[l]; r; r = r->next)
            if (r->needzero && (over || (l == WBGC__FREE_LISTS && r->freed_cycle + 1 < cycle)))
                return r;
        if (!over) break;
    }
    return NULL;
}

/* wbgc__scavenge returns free pages to the OS: long runs idle for a cycle
   or more, and, while the heap keeps more memory backed than its goal and
   a tenth (Go keeps the same margin) plus 4 MiB, any free run, until it
   does not. So memory comes back within a cycle of the live set
   shrinking. Returned pages read back as zero: their runs become clean.
   A run being returned is on no list and unmapped, so neither allocation
   nor a neighbour's free touches it while the lock is dropped; a fork
   waits for it (sweeper_lock, held by the background sweeper here; a P
   doing this is not at a safepoint). Takes h->lock. */
static void wbgc__scavenge(wbgc_heap *h, uint64_t cycle, int background)
{
    uint64_t goal = WBGC__LOAD(h->goal);
    uint64_t keep = goal ? goal + goal / 10 + ((uint64_t)4 << 20) : UINT64_MAX;
    for (;;) {
        if (background && WBGC__LOAD(h->stopping)) {
            /* step aside, as the sweep does: a P waiting for the heap lock
               while the OS runs this thread instead makes the stop wait */
            pthread_mutex_lock(&h->sched_lock);
            while (h->stopping) pthread_cond_wait(&h->resume_cv, &h->sched_lock);
            pthread_mutex_unlock(&h->sched_lock);
        }
        if (background) pthread_mutex_lock(&h->sweeper_lock);
        pthread_mutex_lock(&h->lock);
        wbgc__span *r = wbgc__scavenge_pick(h, cycle, keep);
        if (r) {
            wbgc__run_remove(h, r);
            wbgc__set_page(h, r->base, NULL);
            wbgc__set_page(h, r->base + ((r->npages - 1) << WBGC__PAGE_SHIFT), NULL);
            size_t chunk = WBGC__SCAVENGE_CHUNK >> WBGC__PAGE_SHIFT;
            wbgc__span *rest = r->npages > chunk ? wbgc__span_struct(h) : NULL;
            if (rest) {  /* the part past the chunk stays dirty, filed */
                rest->base = r->base + (chunk << WBGC__PAGE_SHIFT);
                rest->npages = r->npages - chunk;
                rest->needzero = 1;
                rest->freed_cycle = r->freed_cycle;
                r->npages = chunk;
                wbgc__run_insert(h, rest);
            }
        }
        pthread_mutex_unlock(&h->lock);
        if (!r) {
            if (background) pthread_mutex_unlock(&h->sweeper_lock);
            return;
        }
        int ok = madvise((void *)r->base, r->npages << WBGC__PAGE_SHIFT, MADV_DONTNEED) == 0;
        pthread_mutex_lock(&h->lock);
        r->needzero = !ok;
        wbgc__run_file(h, r);
        pthread_mutex_unlock(&h->lock);
        if (background) pthread_mutex_unlock(&h->sweeper_lock);
        if (!ok) return;
    }
}

/* =========================================================================
   Ps and safepoints: stopping the world, handshakes
   ========================================================================= */

#define WBGC__REQ_SCAN  0x1u  /* scan your stack: a root job of the mark phase */
#define WBGC__REQ_FLUSH 0x2u  /* hand over your barrier buffer and mark work */

enum { WBGC__PHASE_OFF = 0, WBGC__PHASE_MARK = 1 };

/* The marker, which safepoints serve (defined below). */
static void wbgc__scan_own_stack(wbgc_heap *h, wbgc_p *p);
static void wbgc__flush_p(wbgc_heap *h, wbgc_p *p);

/* WBGC__SAVE_CONTEXT records, in the frame that stays live while p is
   parked or blocked (or scans itself), the callee-saved registers and the
   stack pointer where p's stack scan starts: a pointer may live only in a
   register of a stopped thread. Caller-saved registers are dead across the
   call that brought the thread here, by the ABI. Called by p's own thread. */
#if WBGC__HAVE_CAPTURE
#define WBGC__SAVE_CONTEXT(p) \
    do { WBGC__CAPTURE((p)->ctx); (p)->saved_sp = (p)->ctx[WBGC__CTX_SP]; } while (0)
#else
/* glibc mangles the stack and frame pointers it keeps in a jmp_buf, but
   not the general callee-saved registers, where pointers live. */
#define WBGC__SAVE_CONTEXT(p) \
    do { volatile uintptr_t wbgc__sp_ = 0; (void)setjmp((p)->jb); \
         (p)->saved_sp = (uintptr_t)&wbgc__sp_; } while (0)
#endif

#define WBGC__PREEMPT_ASK   1u  /* something is asked of the P (or it is detached) */
#define WBGC__PREEMPT_CHECK 2u  /* check mode: every safepoint and allocation checks its thread */

/* wbgc__update_preempt sets p->fast.preempt from what is asked of p.
   sched_lock held. */
static void wbgc__update_preempt(wbgc_heap *h, wbgc_p *p)
{
    uint32_t ask = (p->magic != WBGC__P_MAGIC) || (h->stopping && h->stopper != p) || p->req;
    WBGC__STORE(p->fast.preempt, (ask ? WBGC__PREEMPT_ASK : 0u) | (p->check ? WBGC__PREEMPT_CHECK : 0u));
}

/* wbgc__park stops p at a safepoint until the world restarts. sched_lock
   held; called by p's own thread, from inside the frame that stays live
   while parked. */
static WBGC__NOINLINE void wbgc__park(wbgc_heap *h, wbgc_p *p)
{
    WBGC__SAVE_CONTEXT(p);
    p->status = WBGC__P_PARKED;
    pthread_cond_broadcast(&h->parked_cv);
    while (h->stopping)
        pthread_cond_wait(&h->resume_cv, &h->sched_lock);
    p->status = WBGC__P_RUNNING;
}

static void wbgc__deadline(struct timespec *ts, uint64_t ns);

/* wbgc__stop_holder: is q one that a stop of the world by self waits for? */
static int wbgc__stop_holder(const wbgc_p *q, const wbgc_p *self)
{
    return q != self && (q->status == WBGC__P_RUNNING || q->status == WBGC__P_TAKEN);
}

/* wbgc__flush_holder: is q one that a hand-shake still waits for? */
static int wbgc__flush_holder(const wbgc_p *q, const wbgc_p *self)
{
    (void)self;
    return (q->req & WBGC__REQ_FLUSH) != 0;
}

/* wbgc__wait_for_ps waits on parked_cv once (sched_lock held) for the Ps
   that `holds` picks, a stop begun at t0. Past cfg.stall_report_ms it
   reports them, once (*reported): a thread in a long loop that calls no
   wbgc function holds up every thread that allocates, and this is the only
   sign of it. The report goes out with sched_lock released. */
static void wbgc__wait_for_ps(wbgc_heap *h, wbgc_p *self, uint64_t t0, int *reported,
                              const char *what, int (*holds)(const wbgc_p *, const wbgc_p *))
{
    uint64_t limit = (uint64_t)h->cfg.stall_report_ms * 1000000u;
    if (*reported || !limit) {
        pthread_cond_wait(&h->parked_cv, &h->sched_lock);
        return;
    }
    uint64_t waited = wbgc__now_ns() - t0;
    if (waited < limit) {
        struct timespec ts;
        wbgc__deadline(&ts, limit - waited);
        pthread_cond_timedwait(&h->parked_cv, &h->sched_lock, &ts);
        return;
    }
    *reported = 1;
    char list[512];
    size_t len = 0;
    int n = 0;
    list[0] = 0;
    for (wbgc_p *q = h->ps; q; q = q->next) {
        if (!holds(q, self)) continue;
        if (n++ < 6 && len < sizeof list)
            len += (size_t)snprintf(list + len, sizeof list - len, "%sP %p (thread %#lx, %s)",
                                    n > 1 ? ", " : "", (void *)q, wbgc__thread_id(q->thread),
                                    q->status == WBGC__P_TAKEN ? "being helped by a marker"
                                                               : "running");
    }
    pthread_mutex_unlock(&h->sched_lock);
    wbgc__report(h, "wbgc: warning: %s has waited %llu ms for %d P(s) to reach a safepoint: %s%s. "
                 "Meanwhile no thread can allocate. A thread that runs long without calling "
                 "wbgc must call wbgc_safepoint now and then, or run inside "
                 "wbgc_blocking_begin/end", what, (unsigned long long)(waited / 1000000u), n,
                 list, n > 6 ? ", ..." : "");
    pthread_mutex_lock(&h->sched_lock);
}

/* wbgc__stop_world stops every P but self (which may be NULL): it returns
   when each is parked, blocked or detached, and none is being worked on by
   a marker. gc_lock held. O(Ps). */
static void wbgc__stop_world(wbgc_heap *h, wbgc_p *self)
{
    pthread_mutex_lock(&h->sched_lock);
    WBGC_ASSERT(!h->stopping);
    WBGC__STORE(h->stopping, 1);  /* the background sweeper peeks at it */
    h->stopper = self;
    for (wbgc_p *q = h->ps; q; q = q->next)
        wbgc__update_preempt(h, q);
    uint64_t t0 = wbgc__now_ns();
    int reported = 0;
    for (;;) {
        int running = 0;
        for (wbgc_p *q = h->ps; q; q = q->next) running += wbgc__stop_holder(q, self);
        if (!running) break;
        wbgc__wait_for_ps(h, self, t0, &reported, "a stop of the world", wbgc__stop_holder);
    }
    pthread_mutex_unlock(&h->sched_lock);
}

static void wbgc__start_world(wbgc_heap *h)
{
    pthread_mutex_lock(&h->sched_lock);
    WBGC__STORE(h->stopping, 0);
    h->stopper = NULL;
    for (wbgc_p *q = h->ps; q; q = q->next)
        wbgc__update_preempt(h, q);
    pthread_cond_broadcast(&h->resume_cv);
    pthread_mutex_unlock(&h->sched_lock);
}

/* wbgc__enter_blocked / wbgc__leave_blocked bracket a wait: p counts as
   stopped in between, and markers may work on its behalf (status TAKEN).
   The context must already be saved, in a frame that outlives the wait. */
static void wbgc__enter_blocked(wbgc_heap *h, wbgc_p *p)
{
    pthread_mutex_lock(&h->sched_lock);
    p->status = WBGC__P_BLOCKED;
    pthread_cond_broadcast(&h->parked_cv);
    pthread_mutex_unlock(&h->sched_lock);
}

/* sched_lock held. */
static void wbgc__wake_blocked(wbgc_heap *h, wbgc_p *p)
{
    while ((h->stopping && h->stopper != p) || p->status == WBGC__P_TAKEN)
        pthread_cond_wait(&h->resume_cv, &h->sched_lock);
    p->status = WBGC__P_RUNNING;
    wbgc__update_preempt(h, p);
}

static void wbgc__leave_blocked(wbgc_heap *h, wbgc_p *p)
{
    pthread_mutex_lock(&h->sched_lock);
    wbgc__wake_blocked(h, p);
    pthread_mutex_unlock(&h->sched_lock);
}

/* wbgc__lock_as_blocked takes m; self (may be NULL) counts as blocked while
   it waits, so that whoever holds m can stop the world or hand-shake. */
static WBGC__NOINLINE void wbgc__lock_as_blocked(wbgc_heap *h, wbgc_p *self, pthread_mutex_t *m)
{
    if (pthread_mutex_trylock(m) == 0) return;
    if (!self) {
        pthread_mutex_lock(m);
        return;
    }
    WBGC__SAVE_CONTEXT(self);
    wbgc__enter_blocked(h, self);
    pthread_mutex_lock(m);
    wbgc__leave_blocked(h, self);
}

static void wbgc__deadline(struct timespec *ts, uint64_t ns)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ns += (uint64_t)ts->tv_nsec;
    ts->tv_sec += (time_t)(ns / 1000000000u);
    ts->tv_nsec = (long)(ns % 1000000000u);
}

/* wbgc__sleep_blocked waits up to ns for a cycle to end, self (may be
   NULL) counting as blocked. */
static WBGC__NOINLINE void wbgc__sleep_blocked(wbgc_heap *h, wbgc_p *self, uint64_t ns)
{
    struct timespec ts;
    wbgc__deadline(&ts, ns);
    if (self) WBGC__SAVE_CONTEXT(self);
    pthread_mutex_lock(&h->sched_lock);
    if (self) {
        self->status = WBGC__P_BLOCKED;
        pthread_cond_broadcast(&h->parked_cv);
    }
    pthread_cond_timedwait(&h->cycle_cv, &h->sched_lock, &ts);
    if (self) wbgc__wake_blocked(h, self);
    pthread_mutex_unlock(&h->sched_lock);
}

/* wbgc__safepoint_at: the slow path of every safepoint; fn names the public
   call, for misuse reports. Parks while the world is stopped, and does what
   the collector asked: scan this P's stack, hand over its buffers. Returns
   -1 when p is not usable. Called by p's thread. */
static int wbgc__safepoint_at(wbgc_p *p, const char *fn)
{
    if (wbgc__check_p(p, fn) < 0) return -1;
    /* Nothing asked (check mode comes here every time): no lock. A request
       missed by this relaxed look keeps the bit set for the next one. */
    if (!(WBGC__LOAD(p->fast.preempt) & WBGC__PREEMPT_ASK)) return 0;
    wbgc_heap *h = p->heap;
    pthread_mutex_lock(&h->sched_lock);
    for (;;) {
        if (h->stopping && h->stopper != p) {
            wbgc__park(h, p);
            continue;
        }
        uint32_t r = p->req;
        if (!r) break;
        pthread_mutex_unlock(&h->sched_lock);
        if (r & WBGC__REQ_SCAN) {
            wbgc__scan_own_stack(h, p);
            __atomic_fetch_sub(&h->stacks_pending, 1, __ATOMIC_RELEASE);
        }
        if (r & WBGC__REQ_FLUSH) wbgc__flush_p(h, p);
        pthread_mutex_lock(&h->sched_lock);
        /* Cleared only now: a hand-shake waits for the work, not the ask. */
        p->req &= ~r;
        pthread_cond_broadcast(&h->parked_cv);
    }
    wbgc__update_preempt(h, p);
    pthread_mutex_unlock(&h->sched_lock);
    return 0;
}

/* wbgc__safepoint_check: wbgc_safepoint's slow path in check mode (every
   safepoint comes): the P marked inside the call (rule 5). */
static WBGC__NOINLINE int wbgc__safepoint_check(wbgc_p *p, uintptr_t sp)
{
    if (wbgc__check_p(p, "wbgc_safepoint") < 0 || wbgc__enter(p, "wbgc_safepoint", sp) != 0) return -1;
    int r = wbgc__safepoint_at(p, "wbgc_safepoint");
    wbgc__leave(p);
    return r;
}

WBGCDEF int wbgc__safepoint_slow(wbgc_p *p)
{
    if (WBGC__UNLIKELY(WBGC__LOAD(p->fast.preempt) & WBGC__PREEMPT_CHECK))
        return wbgc__safepoint_check(p, WBGC__CALLER_SP());
    return wbgc__safepoint_at(p, "wbgc_safepoint");
}

/* wbgc__stack_of returns a non-NULL description when addr lies in the stack
   of an attached P's thread. Any attached thread. */
static const char *wbgc__stack_of(wbgc_heap *h, uintptr_t addr)
{
    const char *found = NULL;
    pthread_mutex_lock(&h->sched_lock);
    for (wbgc_p *q = h->ps; q && !found; q = q->next)
        if (addr >= q->stack_lo && addr < q->stack_hi) found = "a thread stack";
    pthread_mutex_unlock(&h->sched_lock);
    return found;
}

/* wbgc__blocking_begin: ctx holds the caller's registers and stack pointer,
   captured in the caller's frame by the inline wbgc_blocking_begin (that
   frame outlives the blocking region; this one does not). */
WBGCDEF void wbgc__blocking_begin(wbgc_p *p, const uintptr_t *ctx)
{
    if (wbgc__check_p(p, "wbgc_blocking_begin") < 0) return;
    if (WBGC__UNLIKELY(p->check) && wbgc__enter(p, "wbgc_blocking_begin", WBGC__CALLER_SP()) != 0)
        return;
    if (p->status != WBGC__P_RUNNING) {
        wbgc__report(p->heap, "wbgc: misuse: wbgc_blocking_begin(p=%p): already in a blocking region",
                     (void *)p);
    } else {
#if WBGC__HAVE_CAPTURE
        memcpy(p->ctx, ctx, sizeof p->ctx);
        p->saved_sp = ctx[WBGC__CTX_SP];
#else
        /* Without a capture for this architecture, save here: a pointer held
           only in a callee-saved register that this frame reuses may be missed. */
        (void)ctx;
        __builtin_unwind_init();
        WBGC__SAVE_CONTEXT(p);
#endif
        wbgc__enter_blocked(p->heap, p);
    }
    if (p->check) wbgc__leave(p);  /* the call is marked, not the region it opens */
}

WBGCDEF void wbgc_blocking_end(wbgc_p *p)
{
    if (wbgc__check_p(p, "wbgc_blocking_end") < 0) return;
    if (WBGC__UNLIKELY(p->check) && wbgc__enter(p, "wbgc_blocking_end", WBGC__CALLER_SP()) != 0)
        return;
    wbgc_heap *h = p->heap;
    pthread_mutex_lock(&h->sched_lock);  /* a marker may be giving p back */
    int ok = p->status == WBGC__P_BLOCKED || p->status == WBGC__P_TAKEN;
    if (ok) wbgc__wake_blocked(h, p);
    pthread_mutex_unlock(&h->sched_lock);
    if (p->check) wbgc__leave(p);
    if (!ok)
        wbgc__report(h, "wbgc: misuse: wbgc_blocking_end(p=%p) without wbgc_blocking_begin",
                     (void *)p);
}

/* =========================================================================
   Pacer (the parts allocation calls)
   ========================================================================= */

static void wbgc__gc_start(wbgc_p *self, int forced, const char *why);
static void wbgc__collect_stw(wbgc_p *self, int forced, const char *why);
static void wbgc__collect_full(wbgc_p *self, const char *why);
static void wbgc__assist(wbgc_p *p, uint64_t bytes, int leaving);
static void wbgc__sweep_large(wbgc_heap *h);

/* wbgc__heap_estimate: bytes in objects as the pacer sees them: what the
   last cycle marked, plus what was allocated since it ended. */
static uint64_t wbgc__heap_estimate(wbgc_heap *h)
{
    return WBGC__LOAD(h->heap_marked) + WBGC__LOAD(h->alloc_since);
}

/* wbgc__trigger returns the heap size at which the next cycle starts, or
   UINT64_MAX when automatic cycles are off. */
static uint64_t wbgc__trigger(wbgc_heap *h)
{
    uint64_t t = WBGC__LOAD(h->cfg.gc_percent) < 0 ? UINT64_MAX : WBGC__LOAD(h->trigger);
    size_t limit = WBGC__LOAD(h->cfg.memory_limit);
    if (limit && limit < t) t = limit;
    return t;
}

/* wbgc__report_alloc hands p's unreported allocation, plus `charge` bytes
   about to be allocated (a large object: charged before, like a span's
   worth of small ones is after), to the pacer: during marking p pays for
   it with mark work (an assist); otherwise a cycle starts when the heap
   reached the trigger. Then, under a memory limit, makes room for `more`
   bytes: a full cycle, then failure. Returns 0, or -1 after reporting (the
   charge taken back). Called by p's thread, holding no lock. */
static int wbgc__report_alloc(wbgc_p *p, uint64_t charge, uint64_t more)
{
    wbgc_heap *h = p->heap;
    uint64_t delta = p->allocd - p->allocd_reported + charge;
    p->allocd_reported = p->allocd;
    WBGC__ADD(h->alloc_since, delta);
    if (WBGC__LOAD(h->phase) == WBGC__PHASE_MARK) {
        wbgc__assist(p, delta, 0);
    } else if (wbgc__heap_estimate(h) >= wbgc__trigger(h)) {
        if (h->cfg.flags & WBGC_STW) wbgc__collect_stw(p, 0, "heap reached its goal");
        else wbgc__gc_start(p, 0, "heap reached its trigger");
    }
    size_t limit = WBGC__LOAD(h->cfg.memory_limit);
    if (limit && wbgc__heap_estimate(h) + more > limit) {
        wbgc__collect_full(p, "memory limit");
        if (wbgc__heap_estimate(h) + more > limit) {
            wbgc__report(h, "wbgc: out of memory: allocating %llu bytes would exceed the memory "
                         "limit of %zu bytes (%llu bytes live after a full collection)",
                         (unsigned long long)more, limit,
                         (unsigned long long)wbgc__heap_estimate(h));
            WBGC__ADD(h->alloc_since, (uint64_t)0 - charge);
            return -1;
        }
    }
    return 0;
}

/* =========================================================================
   Allocation
   ========================================================================= */

static wbgc__span *wbgc__sweep_for_alloc(wbgc_heap *h, uint32_t spc);

/* wbgc__next_free finds the next free slot of s from its freeindex, or
   returns UINT32_MAX. Only p's thread calls it on a cached span
   (INV-ALLOCBITS). */
static inline uint32_t wbgc__next_free(wbgc__span *s)
{
    uint32_t i = s->freeindex, n = s->nelems;
    if (i >= n) return UINT32_MAX;  /* wbgc__empty_span, shared: never written */
    while (i < n) {
        uint64_t w = ~s->allocbits[i >> 6] >> (i & 63);
        if (w) {
            i += (uint32_t)__builtin_ctzll(w);
            if (i >= n) break;
            s->freeindex = i + 1;
            return i;
        }
        i = (i | 63) + 1;
    }
    s->freeindex = n;
    return UINT32_MAX;
}

/* Check mode fills freed objects with this byte and verifies it when the
   memory is handed out again: a write through a dangling pointer shows. */
#define WBGC__POISON 0xa5

/* wbgc__check_poison verifies that free memory about to be reused holds
   only poison or zero bytes (never-used slots and pages returned to the OS
   read as zero); anything else was written after it was freed. */
static WBGC__NOINLINE void wbgc__check_poison(wbgc_p *p, void *obj, size_t size)
{
    const unsigned char *b = (const unsigned char *)obj;
    for (size_t i = 0; i < size; i++) {
        if (b[i] != WBGC__POISON && b[i] != 0) {
            wbgc__report(p->heap, "wbgc: misuse: free object %p (%zu bytes) was written after it "
                         "was freed: byte %zu holds %#x, not the poison %#x (a dangling pointer "
                         "was used)", obj, size, i, b[i], WBGC__POISON);
            return;
        }
    }
}

static void wbgc__report_oom(wbgc_heap *h, size_t bytes, int err)
{
    wbgc__report(h, "wbgc: out of memory: the OS refused %zu bytes for the heap (%s); "
                 "heap has %llu bytes mapped",
                 bytes, strerror(err), (unsigned long long)h->mapped_bytes);
}

/* wbgc__new_span takes pages for a span of class spc (large: npages, spc
   its kind), or NULL after reporting. A small typed span comes with its
   side array of layout ids, all zero: no marker reads one before an
   allocation wrote it (wbgc__alloc_publish). */
static wbgc__span *wbgc__new_span(wbgc_heap *h, uint32_t spc, size_t npages)
{
    uint16_t *ids = NULL;
    if (spc >= WBGC__KINDS && spc % WBGC__KINDS == WBGC__KIND_TYPED) {
        ids = (uint16_t *)calloc(wbgc__classes.nelems[spc / WBGC__KINDS], sizeof *ids);
        if (!ids) {
            wbgc__report_oom(h, wbgc__classes.nelems[spc / WBGC__KINDS] * sizeof *ids, ENOMEM);
            return NULL;
        }
    }
    pthread_mutex_lock(&h->lock);
    wbgc__span *s = wbgc__pages_alloc(h, npages, spc);
    int err = errno;
    if (s) s->layout_ids = ids;
    pthread_mutex_unlock(&h->lock);
    if (!s) {
        free(ids);
        wbgc__report_oom(h, npages << WBGC__PAGE_SHIFT, err);
    }
    return s;
}

/* wbgc__zero_slots zeroes the slots of s whose bit is set in mask (one bit
   per object, WBGC__BITMAP_WORDS words), each run of neighbours with one
   memset. The caller owns the slots: cached by its P, or a span it sweeps. */
static void wbgc__zero_slots(wbgc__span *s, const uint64_t *mask)
{
    uint32_t n = s->nelems, i = 0;
    while (i < n) {
        uint64_t w = mask[i >> 6] >> (i & 63);   /* the run's start */
        if (!w) {
            i = (i | 63) + 1;
            continue;
        }
        i += (uint32_t)__builtin_ctzll(w);
        if (i >= n) break;
        uint32_t j = i;                           /* and its end */
        while (j < n) {
            uint64_t o = ~mask[j >> 6] >> (j & 63);
            if (o) {
                j += (uint32_t)__builtin_ctzll(o);
                break;
            }
            j = (j | 63) + 1;
        }
        if (j > n) j = n;
        memset((void *)(s->base + (uintptr_t)i * s->elemsize), 0, (size_t)(j - i) * s->elemsize);
        i = j;
    }
}

/* wbgc__refill replaces p's full span of class spc with one that has a free
   slot: a swept span from the central list, one it sweeps itself, or a new
   one. Returns it, or NULL after reporting. Called by p's thread. */
static WBGC__NOINLINE wbgc__span *wbgc__refill(wbgc_p *p, uint32_t spc)
{
    wbgc_heap *h = p->heap;
    uint32_t cls = spc / WBGC__KINDS;
    uint64_t span_bytes = (uint64_t)wbgc__classes.npages[cls] << WBGC__PAGE_SHIFT;
    if (wbgc__report_alloc(p, 0, span_bytes) < 0) return NULL;

    /* No safepoint from here on: a span held off every list must not be
       held across a stop of the world. */
    wbgc__central *c = &h->central[spc];
    pthread_mutex_lock(&c->lock);
    wbgc__span *old = p->cache[spc];
    if (old != &wbgc__empty_span) {
        old->cached = 0;
        wbgc__list_push(&c->full, old);
    }
    p->cache[spc] = &wbgc__empty_span;
    wbgc__span *s = wbgc__list_pop(&c->partial);
    pthread_mutex_unlock(&c->lock);
    if (!s) s = wbgc__sweep_for_alloc(h, spc);
    if (!s) s = wbgc__new_span(h, spc, wbgc__classes.npages[cls]);
    if (!s) return NULL;
    s->cached = 1;
    /* INV-ZERO: zero a dirty span's free slots now, in one go (usually one
       run: a span from reused pages), so the allocation fast path never
       calls memset. Check mode verifies each slot's poison as it is handed
       out instead. */
    if (s->needzero && !p->check) {
        uint64_t mask[WBGC__BITMAP_WORDS];
        for (uint32_t w = 0; w < WBGC__BITMAP_WORDS; w++) mask[w] = ~s->allocbits[w];
        wbgc__zero_slots(s, mask);
        s->needzero = 0;
    }
    p->cache[spc] = s;
    return s;
}

static WBGC__NOINLINE void *wbgc__alloc_large(wbgc_p *p, size_t size, uint32_t kind,
                                              uint32_t layout)
{
    wbgc_heap *h = p->heap;
    if (size > WBGC__MAX_ALLOC - WBGC__PAGE) {
        wbgc__report(h, "wbgc: out of memory: allocation of %zu bytes is larger than any heap "
                     "can be (size overflow?)", size);
        return NULL;
    }
    size_t npages = (size + WBGC__PAGE - 1) >> WBGC__PAGE_SHIFT;
    size_t bytes = npages << WBGC__PAGE_SHIFT;
    /* Charged before: the pacer sees it (a cycle may start) and, while a
       cycle marks, p pays for it with an assist like any allocation. */
    if (wbgc__report_alloc(p, bytes, bytes) < 0) return NULL;
    /* Lazy sweeping, as refill does for small objects: the large objects
       the last cycle found dead go back to the page heap before this one
       takes pages, else they stay until the next cycle starts and the heap
       holds up to a cycle's worth of them over its goal. */
    wbgc__sweep_large(h);
    wbgc__span *s = wbgc__new_span(h, kind, npages);
    if (!s) {
        WBGC__ADD(h->alloc_since, (uint64_t)0 - bytes);
        return NULL;
    }
    /* INV-ZERO. Large runs are zeroed by the kernel, page by page on first
       touch: no long memset between two safepoints, and untouched pages
       cost no memory. */
    if (s->needzero && (bytes < ((size_t)256 << 10) ||
                        madvise((void *)s->base, bytes, MADV_DONTNEED) != 0))
        memset((void *)s->base, 0, bytes);
    s->layout = (uint16_t)layout;  /* before the allocation bit: as wbgc__alloc_publish */
    pthread_mutex_lock(&h->lock);
    if (p->alloc_black) {                                /* allocate black */
        __atomic_fetch_or(&s->markbits[0], (uint64_t)1, __ATOMIC_RELAXED);
        p->black_bytes += bytes;
    }
    __atomic_store_n(&s->allocbits[0], (uint64_t)1, __ATOMIC_RELEASE);
    wbgc__list_push(&h->large, s);
    pthread_mutex_unlock(&h->lock);
    WBGC__STORE(p->allocd, p->allocd + bytes);
    p->allocd_reported += bytes;  /* charged above */
    return (void *)s->base;
}

/* wbgc__alloc_publish ends both allocation paths once slot idx of s is
   zeroed: a typed object's layout id written, born marked while a cycle
   marks, then its allocation bit set, last, so that a marker that sees
   the bit sees a zeroed object (INV-ALLOCBITS) and its layout id, and
   the bytes counted. */
static inline __attribute__((always_inline)) void wbgc__alloc_publish(wbgc_p *p, wbgc__span *s,
                                                                      uint32_t idx, uint32_t kind,
                                                                      uint32_t layout)
{
    /* The id is a plain store, ordered before any marker's read by the
       allocation bit's release (wbgc__shade_in greys only an allocated
       object, loading the bit with acquire; the verifier runs with the
       world stopped). Even without that order nothing could go wrong: a
       new object is all zeros (INV-ZERO) and one allocated while a cycle
       marks is born black, so no marker scans it this cycle, and the next
       cycle starts at a safepoint, long after this store; the only id a
       marker could meet instead is the slot's previous occupant's, which
       would make it look at words that are all zero. */
    if (kind == WBGC__KIND_TYPED) s->layout_ids[idx] = (uint16_t)layout;
    uint64_t bit = (uint64_t)1 << (idx & 63);
    if (WBGC__UNLIKELY(p->alloc_black)) {                 /* allocate black */
        __atomic_fetch_or(&s->markbits[idx >> 6], bit, __ATOMIC_RELAXED);
        p->black_bytes += s->elemsize;
    }
    uint64_t *aw = &s->allocbits[idx >> 6];
    __atomic_store_n(aw, *aw | bit, __ATOMIC_RELEASE);    /* INV-ALLOCBITS */
    WBGC__STORE(p->allocd, p->allocd + s->elemsize);
}

/* wbgc__alloc_in: allocation in full after its safepoint, every case: a
   large object, a span to scan for a free slot or to refill, check mode's
   poison check and zeroing. No lock and no atomic read-modify-write unless
   marking (allocate black) or refilling. */
static inline __attribute__((always_inline)) void *wbgc__alloc_in(wbgc_p *p, size_t size,
                                                                  uint32_t kind, uint32_t layout)
{
    if (WBGC__UNLIKELY(size > WBGC__MAX_SMALL)) return wbgc__alloc_large(p, size, kind, layout);
    uint32_t spc = wbgc__size_class(size) * WBGC__KINDS + kind;
    wbgc__span *s = p->cache[spc];
    uint32_t idx;
    /* A partial span's freeindex is only a hint: it may turn out full. */
    while (WBGC__UNLIKELY((idx = wbgc__next_free(s)) == UINT32_MAX)) {
        s = wbgc__refill(p, spc);
        if (!s) return NULL;
    }
    void *obj = (void *)(s->base + idx * s->elemsize);
    if (s->needzero) {                                     /* INV-ZERO */
        if (WBGC__UNLIKELY(p->check)) wbgc__check_poison(p, obj, s->elemsize);
        memset(obj, 0, s->elemsize);
    }
    wbgc__alloc_publish(p, s, idx, kind, layout);
    return obj;
}

/* wbgc__alloc_fn: the public call that allocates objects of a kind. */
static const char *wbgc__alloc_fn(uint32_t kind)
{
    return kind == WBGC__KIND_NOSCAN ? "wbgc_alloc_noscan"
         : kind == WBGC__KIND_TYPED  ? "wbgc_alloc_typed" : "wbgc_alloc";
}

/* wbgc__alloc_check: wbgc__alloc_slow in check mode, where every
   allocation comes: the calling thread checked (rule 1), the P marked
   inside the call (rule 5) from its safepoint to its end. sp: the
   caller's stack pointer. */
static WBGC__NOINLINE void *wbgc__alloc_check(wbgc_p *p, size_t size, uint32_t kind,
                                              uint32_t layout, uintptr_t sp)
{
    const char *fn = wbgc__alloc_fn(kind);
    if (wbgc__check_p(p, fn) < 0 || wbgc__enter(p, fn, sp) != 0) return NULL;
    void *obj = wbgc__safepoint_at(p, fn) < 0 ? NULL : wbgc__alloc_in(p, size, kind, layout);
    wbgc__leave(p);
    return obj;
}

/* wbgc__alloc_slow: allocation when the fast path cannot: a safepoint
   first when one is asked, then wbgc__alloc_in; check mode (whose preempt
   bit sends every allocation here) in wbgc__alloc_check. */
static WBGC__NOINLINE void *wbgc__alloc_slow(wbgc_p *p, size_t size, uint32_t kind,
                                             uint32_t layout)
{
    uint32_t pre = WBGC__LOAD(p->fast.preempt);
    if (WBGC__UNLIKELY(pre)) {
        if (pre & WBGC__PREEMPT_CHECK)
            return wbgc__alloc_check(p, size, kind, layout, WBGC__CALLER_SP());
        if (wbgc__safepoint_at(p, wbgc__alloc_fn(kind)) < 0) return NULL;
    }
    return wbgc__alloc_in(p, size, kind, layout);
}

/* wbgc__alloc: the allocation fast path, the common case of
   wbgc__alloc_slow: no safepoint pending, a small size, and a free slot in
   the same allocation word of the cached span (kept clean: needzero is
   clear outside check mode, INV-ZERO). It calls nothing, so it needs no
   frame; anything else goes to the slow path. */
static inline __attribute__((always_inline)) void *wbgc__alloc(wbgc_p *p, size_t size,
                                                               uint32_t kind, uint32_t layout)
{
    if (WBGC__UNLIKELY(WBGC__LOAD(p->fast.preempt) || size > WBGC__MAX_SMALL))
        return wbgc__alloc_slow(p, size, kind, layout);
    wbgc__span *s = p->cache[wbgc__size_class(size) * WBGC__KINDS + kind];
    uint32_t idx = s->freeindex;
    if (WBGC__UNLIKELY(idx >= s->nelems || s->needzero))
        return wbgc__alloc_slow(p, size, kind, layout);
    uint64_t *aw = &s->allocbits[idx >> 6];
    uint64_t free = ~*aw >> (idx & 63);
    if (WBGC__UNLIKELY(!free)) return wbgc__alloc_slow(p, size, kind, layout);
    idx += (uint32_t)__builtin_ctzll(free);
    if (WBGC__UNLIKELY(idx >= s->nelems)) return wbgc__alloc_slow(p, size, kind, layout);
    s->freeindex = idx + 1;
    wbgc__alloc_publish(p, s, idx, kind, layout);
    return (void *)(s->base + idx * s->elemsize);
}

/* wbgc__alloc_null: wbgc_alloc(NULL, ...): reported, never dereferenced. */
static WBGC__NOINLINE void *wbgc__alloc_null(const char *fn, size_t size)
{
    wbgc__report(NULL, "wbgc: misuse: %s(p=NULL, size=%zu): p must be the calling thread's P "
                 "from wbgc_attach (rule 1)", fn, size);
    return NULL;
}

WBGCDEF void *wbgc_alloc(wbgc_p *p, size_t size)
{
    if (WBGC__UNLIKELY(!p)) return wbgc__alloc_null("wbgc_alloc", size);
    return wbgc__alloc(p, size, WBGC__KIND_SCAN, 0);
}

WBGCDEF void *wbgc_alloc_noscan(wbgc_p *p, size_t size)
{
    if (WBGC__UNLIKELY(!p)) return wbgc__alloc_null("wbgc_alloc_noscan", size);
    return wbgc__alloc(p, size, WBGC__KIND_NOSCAN, 0);
}

static int wbgc__cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

WBGCDEF const wbgc_layout *wbgc_layout_new(wbgc_heap *h, size_t record_size,
                                           const size_t *ptr_offsets, size_t n)
{
    if (!h || h->magic != WBGC__H_MAGIC) {
        wbgc__report(NULL, "wbgc: misuse: wbgc_layout_new(h=%p): not a live wbgc heap", (void *)h);
        return NULL;
    }
    const size_t W = sizeof(uintptr_t);
    const char *bad = NULL;
    size_t badi = 0;
    if (record_size == 0 || record_size > WBGC__LAYOUT_MAX_BYTES || record_size % W)
        bad = "record_size must be a multiple of the word size (8), from 8 to 65536 bytes";
    else if (n && !ptr_offsets)
        bad = "ptr_offsets is NULL but n is not 0";
    for (size_t i = 0; !bad && i < n; i++)
        if (ptr_offsets[i] % W || ptr_offsets[i] >= record_size) {
            bad = ptr_offsets[i] % W ? "a pointer offset is not a multiple of the word size (8)"
                                     : "a pointer offset is not below record_size";
            badi = i;
        }
    if (bad) {
        char at[96] = "";
        if (n && ptr_offsets && badi < n && strstr(bad, "offset"))
            snprintf(at, sizeof at, " (ptr_offsets[%zu] = %zu)", badi, ptr_offsets[badi]);
        wbgc__report(h, "wbgc: error: wbgc_layout_new(h=%p, record_size=%zu, n=%zu): %s%s; no "
                     "layout made", (void *)h, record_size, n, bad, at);
        return NULL;
    }
    size_t words = record_size / W, nbits = (words + 63) / 64;
    wbgc_layout *l = (wbgc_layout *)calloc(1, sizeof *l + nbits * sizeof(uint64_t) +
                                              (n ? n : 1) * sizeof(uint32_t));
    if (!l) {
        wbgc__report(h, "wbgc: out of memory: wbgc_layout_new(record_size=%zu, n=%zu)",
                     record_size, n);
        return NULL;
    }
    l->heap = h;
    l->words = (uint32_t)words;
    l->bits = (uint64_t *)(void *)(l + 1);
    l->ptrs = (uint32_t *)(void *)(l->bits + nbits);
    for (size_t i = 0; i < n; i++) {
        size_t w = ptr_offsets[i] / W;
        if (!((l->bits[w / 64] >> (w % 64)) & 1)) l->ptrs[l->nptrs++] = (uint32_t)w;  /* once */
        l->bits[w / 64] |= (uint64_t)1 << (w % 64);
    }
    qsort(l->ptrs, l->nptrs, sizeof *l->ptrs, wbgc__cmp_u32);  /* wbgc__scan_typed wants them ascending */
    uint32_t id = __atomic_fetch_add(&h->nlayouts, 1, __ATOMIC_RELAXED);
    if (id >= WBGC__LAYOUT_SLOTS) {
        free(l);
        wbgc__report(h, "wbgc: error: wbgc_layout_new(h=%p, record_size=%zu, n=%zu): the heap "
                     "has made its %d layouts already; no layout made", (void *)h, record_size,
                     n, WBGC__LAYOUT_MAX);
        return NULL;
    }
    l->id = id;
    __atomic_store_n(&h->layouts[id], (const wbgc_layout *)l, __ATOMIC_RELEASE);
    return l;
}

/* wbgc__alloc_typed_bad: a NULL layout, or another heap's. */
static WBGC__NOINLINE void *wbgc__alloc_typed_bad(wbgc_p *p, size_t size, const wbgc_layout *l)
{
    wbgc__report(p->heap, "wbgc: misuse: wbgc_alloc_typed(p=%p, size=%zu, layout=%p): %s",
                 (void *)p, size, (const void *)l,
                 l ? "the layout was made by another heap (wbgc_layout_new(h, ...) is per heap)"
                   : "NULL layout (wbgc_alloc allocates an object scanned in whole)");
    return NULL;
}

WBGCDEF void *wbgc_alloc_typed(wbgc_p *p, size_t size, const wbgc_layout *layout)
{
    if (WBGC__UNLIKELY(!p)) return wbgc__alloc_null("wbgc_alloc_typed", size);
    if (WBGC__UNLIKELY(!layout || layout->heap != p->heap))
        return wbgc__alloc_typed_bad(p, size, layout);
    if (WBGC__UNLIKELY(layout->nptrs == 0))  /* nothing to scan */
        return wbgc__alloc(p, size, WBGC__KIND_NOSCAN, 0);
    return wbgc__alloc(p, size, WBGC__KIND_TYPED, layout->id);
}

/* wbgc__copy_typed copies n bytes of typed object src (object idx of s)
   into the new object dst of the same layout: the words the layout names
   through the barrier, the others (integers that may look like pointers,
   which check mode would report as pointers stored where no scan looks)
   with plain stores. */
static void wbgc__copy_typed(wbgc_p *p, wbgc__span *s, uint32_t idx, void *dst, const void *src,
                             size_t n)
{
    const wbgc_layout *l = wbgc__layout_of(p->heap, s, idx);
    if (!l) {  /* the ephemeron's layout: every word a pointer */
        wbgc_memmove(p, dst, src, n);
        return;
    }
    size_t nw = n / sizeof(uintptr_t);
    uintptr_t *d = (uintptr_t *)dst;
    const uintptr_t *sw = (const uintptr_t *)src;
    for (size_t w = 0; w < nw; w++) {
        size_t k = w % l->words;
        if ((l->bits[k / 64] >> (k % 64)) & 1) wbgc_write(p, &d[w], (void *)sw[w]);
        else d[w] = sw[w];
    }
    memcpy(d + nw, sw + nw, n - nw * sizeof(uintptr_t));  /* a tail shorter than a word */
}

WBGCDEF void *wbgc_realloc(wbgc_p *p, void *obj, size_t size)
{
    if (WBGC__UNLIKELY(!p)) return wbgc__alloc_null("wbgc_realloc", size);
    if (!obj) return wbgc_alloc(p, size);
    wbgc__span *s;
    uint32_t idx;
    if (!wbgc__object_start(p->heap, obj, &s, &idx)) {
        wbgc__report(p->heap, "wbgc: misuse: wbgc_realloc(p=%p, obj=%p, size=%zu): obj is not the "
                     "start of an allocated object of this heap (what wbgc_alloc returned); "
                     "nothing done", (void *)p, obj, size);
        return NULL;
    }
    size_t have = s->elemsize;  /* obj's usable size */
    if (size <= have) return obj;
    uint32_t kind = s->kind, layout = kind == WBGC__KIND_TYPED ? wbgc__layout_id(s, idx) : 0;
    /* obj stays alive meanwhile: the caller holds it (an argument) */
    void *q = wbgc__alloc(p, size, kind, layout);
    if (!q) return NULL;
    if (kind == WBGC__KIND_NOSCAN) memcpy(q, obj, have);
    else if (kind == WBGC__KIND_TYPED) wbgc__copy_typed(p, s, idx, q, obj, have);
    else wbgc_memmove(p, q, obj, have);
    return q;
}

WBGCDEF char *wbgc_strdup(wbgc_p *p, const char *s)
{
    if (WBGC__UNLIKELY(!p)) return (char *)wbgc__alloc_null("wbgc_strdup", 0);
    if (!s) {
        wbgc__report(p->heap, "wbgc: misuse: wbgc_strdup(p=%p, s=NULL): no string to copy",
                     (void *)p);
        return NULL;
    }
    size_t n = strlen(s) + 1;
    char *q = (char *)wbgc_alloc_noscan(p, n);
    if (q) memcpy(q, s, n);
    return q;
}

/* wbgc__release_caches hands every cached span of p back to its central
   list: unswept at mark termination, swept otherwise. World stopped, or p's
   own thread holding sched_lock. */
static void wbgc__release_caches(wbgc_heap *h, wbgc_p *p, int unswept)
{
    for (uint32_t spc = WBGC__KINDS; spc < WBGC__KINDS * wbgc__classes.nclasses; spc++) {
        wbgc__span *s = p->cache[spc];
        if (s == &wbgc__empty_span) continue;
        wbgc__central *c = &h->central[spc];
        pthread_mutex_lock(&c->lock);
        s->cached = 0;
        if (unswept) wbgc__list_push(&c->unswept[0], s);
        else if (s->freeindex < s->nelems) wbgc__list_push(&c->partial, s);
        else wbgc__list_push(&c->full, s);
        pthread_mutex_unlock(&c->lock);
        p->cache[spc] = &wbgc__empty_span;
    }
}

/* =========================================================================
   Barrier buffers
   ========================================================================= */

static inline void wbgc__shade(wbgc_heap *h, wbgc__gcwork *g, uintptr_t v);
WBGC__GPR_INLINE void wbgc__shade_in(wbgc_heap *h, wbgc__gcwork *g, wbgc__span *s, uintptr_t v);
static const char *wbgc__stack_of(wbgc_heap *h, uintptr_t addr);
static void wbgc__gcw_make_room(wbgc_heap *h, wbgc__gcwork *g);

/* wbgc__wb_reset empties p's barrier buffer: one entry in check mode, so
   that every barrier takes the slow path. INV-WBBUF: (end - next) is a
   whole number of entries, so an append lands exactly on end (PITFALLS 2).
   Called by p's thread, or with p stopped. */
WBGC__GPR_INLINE void wbgc__wb_reset(wbgc_heap *h, wbgc_p *p)
{
    size_t n = (h->cfg.flags & WBGC_CHECK) ? 1 : WBGC_WBBUF_ENTRIES;
    p->fast.wb_next = p->wbbuf;
    p->fast.wb_end = p->wbbuf + 2 * n;
    WBGC_ASSERT((p->fast.wb_end - p->fast.wb_next) % 2 == 0);  /* INV-WBBUF */
}

/* wbgc__wb_drain_to shades every pointer in p's barrier buffer into g and
   empties it; returns 1. While it runs the buffer is poisoned: a barrier
   reaching it (which nothing should: PITFALLS 9) faults at once. With
   `local`, it never lets g reach the global work lists: it works in chunks
   of as many entries as g's two buffers have room for (an entry greys at
   most two objects) and, when no whole entry fits, moves the entries left
   to the front of the buffer and returns 0. Then it called nothing, so it
   may run without the vector state saved (wbgc__wb_flush_fast). Called by
   p's thread, or with p stopped or taken. */
/* wbgc__v_note_entries (WBGC_VERIFY): before a drain, sets the owed bit
   of every allocated object that an entry of p's buffer, up to e, obliges
   the drain to shade: every old half (the deletion half), and every new
   half while p's stack is grey (the insertion half). At the end of the
   cycle the verifier reports any of them left white (wbgc__v_owed): the
   barrier's contract, checked apart from the code that keeps it. It
   catches what the re-mark cannot: an overwritten pointer that only a
   black stack still holds. Entries are (new, old) pairs. Mark phase. */
WBGC__GPR_INLINE void wbgc__v_note_entries(wbgc_heap *h, wbgc_p *p, void **e)
{
    for (void **b = p->wbbuf + (p->stack_black ? 1 : 0); b < e; b += p->stack_black ? 2 : 1) {
        uintptr_t v = (uintptr_t)*b;
        wbgc__span *s = wbgc__span_of(h, v);
        if (!s) continue;
        uint32_t idx = (uint32_t)(((uint64_t)(v - s->base) * s->divmagic) >> 32);
        uint64_t bit = (uint64_t)1 << (idx & 63);
        if (idx >= s->nelems || !(__atomic_load_n(&s->allocbits[idx >> 6], __ATOMIC_ACQUIRE) & bit))
            continue;
        __atomic_fetch_or(&s->owedbits[idx >> 6], bit, __ATOMIC_RELAXED);
    }
}

static WBGC__GPR_ONLY int wbgc__wb_drain_to(wbgc_heap *h, wbgc_p *p, wbgc__gcwork *g, int local)
{
    void **e = p->fast.wb_next;
    p->fast.wb_next = NULL;
    if (WBGC__LOAD(h->phase) == WBGC__PHASE_MARK) {
        if (WBGC__UNLIKELY(h->cfg.flags & WBGC_VERIFY)) wbgc__v_note_entries(h, p, e);
        /* Neighbouring entries repeat values and spans (a node's old and new
           children, fields of one object): skip a value seen in the last two
           entries, and reuse the last span found while v falls inside it.
           In-use spans do not change while marking runs. */
        uintptr_t lo = WBGC__LOAD(h->lo), hi = WBGC__LOAD(h->hi), seen1 = 0, seen2 = 0;
        wbgc__span *ls = NULL;
        uintptr_t ls_base = 0, ls_bytes = 0;
        /* The last mark word read, and what it held. While a cycle marks,
           mark bits only go from clear to set (INV-MARKCLEAR: only the sweep
           clears them), so a bit once seen set needs no second look: the
           next values in the same word (64 objects) skip the load, which
           often misses, because the marker is setting bits in that word
           too. A bit seen clear is read again. */
        const uint64_t *mw_last = NULL;
        uint64_t mw_seen = 0;
        /* The new half of an entry matters only while the writer's stack is
           grey (Go's hybrid barrier: Dijkstra's insertion half covers
           pointers moved out of a stack not yet scanned). Once p's stack is
           black, the buffer holds only entries appended since, and the old
           halves (Yuasa's deletion half) are what keeps INV-TRICOLOUR. So
           `step` is 1 (both halves) or 2 (old halves), and an entry greys
           at most 3 - step objects. Between chunks b points at the first
           word to read of the next entry (its old half when step is 2). */
        ptrdiff_t step = p->stack_black ? 2 : 1;
        void **b = p->wbbuf + (step - 1);
        while (b < e) {
            void **stop = e;
            if (local) {
                size_t room = 2 * WBGC_WORKBUF_ENTRIES - g->w1->n - g->w2->n;
                ptrdiff_t fit = (ptrdiff_t)(room / (size_t)(3 - step));  /* whole entries */
                if (fit == 0) {
                    void **from = b - (step - 1), **to = p->wbbuf;
                    while (from < e) *to++ = *from++;
                    p->fast.wb_next = to;
                    return 0;
                }
                if (e - b > 2 * fit) stop = b + 2 * fit;
            }
            for (; b < stop; b += step) {
                uintptr_t v = (uintptr_t)*b;
                if (v - lo >= hi - lo || v == seen1 || v == seen2) continue;  /* NULL, non-heap */
                seen2 = seen1;
                seen1 = v;
                if (v - ls_base >= ls_bytes) {
                    ls = wbgc__span_of(h, v);
                    if (!ls) {
                        ls_bytes = 0;  /* no span cached: the next value looks again */
                        continue;
                    }
                    ls_base = ls->base;
                    ls_bytes = ls->npages << WBGC__PAGE_SHIFT;
                }
                uint32_t idx = (uint32_t)(((uint64_t)(v - ls_base) * ls->divmagic) >> 32);
                const uint64_t *mw = &ls->markbits[idx >> 6];
                uint64_t bit = (uint64_t)1 << (idx & 63);
                if (mw == mw_last && (mw_seen & bit)) continue;  /* marked */
                mw_last = mw;
                mw_seen = WBGC__LOAD(*mw);
                if (!(mw_seen & bit)) wbgc__shade_in(h, g, ls, v);
            }
        }
    }
    wbgc__wb_reset(h, p);
    return 1;
}

WBGC__GPR_INLINE void wbgc__wb_drain(wbgc_heap *h, wbgc_p *p, wbgc__gcwork *g)
{
    (void)wbgc__wb_drain_to(h, p, g, 0);
}

/* wbgc__check_store validates a barriered store in check mode: a GC pointer
   must land where the collector looks (a scanned heap object, a registered
   root, a thread stack) and must point into an allocated object. Reports
   misuse with both addresses; the store itself goes ahead. own: p is the
   calling thread's: a root region found is kept in its cache. */
static WBGC__NOINLINE void wbgc__check_store(wbgc_p *p, void *slot, void *val, int own)
{
    wbgc_heap *h = p->heap;
    uintptr_t v = (uintptr_t)val, sl = (uintptr_t)slot;
    const char *why = NULL, *dangling = NULL;
    char typed_why[256];
    /* Under the page heap's lock, spans cannot appear or go meanwhile. */
    pthread_mutex_lock(&h->lock);
    wbgc__span *vs = wbgc__span_of(h, v);
    if (!vs) {
        uintptr_t lo = WBGC__LOAD(h->lo), hi = WBGC__LOAD(h->hi);
        if (v - lo < hi - lo && __atomic_load_n(&h->arena_index[v >> WBGC__ARENA_SHIFT], __ATOMIC_ACQUIRE))
            dangling = "into free heap pages";
    } else {
        uint32_t vi = (uint32_t)(((uint64_t)(v - vs->base) * vs->divmagic) >> 32);
        if (vi >= vs->nelems || !(WBGC__LOAD(vs->allocbits[vi >> 6]) & ((uint64_t)1 << (vi & 63))))
            dangling = "into a free object";
    }
    wbgc__span *ss = vs && !dangling ? wbgc__span_of(h, sl) : NULL;
    if (vs && !dangling && ss) {
        uint32_t si = (uint32_t)(((uint64_t)(sl - ss->base) * ss->divmagic) >> 32);
        if (si >= ss->nelems || !(WBGC__LOAD(ss->allocbits[si >> 6]) & ((uint64_t)1 << (si & 63))))
            why = "the slot is in a free object";
        else if (ss->kind == WBGC__KIND_NOSCAN)
            why = "the slot is in a noscan object, which is never scanned";
        else if (ss->kind == WBGC__KIND_TYPED &&
                 !wbgc__layout_names(h, ss, si, ss->base + (uintptr_t)si * ss->elemsize, sl)) {
            uintptr_t obj = ss->base + (uintptr_t)si * ss->elemsize;
            const wbgc_layout *l = wbgc__layout_of(h, ss, si);
            snprintf(typed_why, sizeof typed_why,
                     "the slot is at offset %lu of typed object %p (%zu bytes), a word its layout "
                     "(a record of %lu bytes, this word at offset %lu of one) does not name as a "
                     "pointer, so no scan sees it",
                     (unsigned long)(sl - obj), (void *)obj, ss->elemsize,
                     (unsigned long)(l->words * sizeof(uintptr_t)),
                     (unsigned long)((sl - obj) % (l->words * sizeof(uintptr_t))));
            why = typed_why;
        }
    }
    pthread_mutex_unlock(&h->lock);
    if (dangling) {
        wbgc__report(h, "wbgc: misuse: wbgc_write(p=%p, slot=%p, val=%p): the value points %s: "
                     "a dangling pointer", (void *)p, slot, val, dangling);
        return;
    }
    if (!vs) return;  /* not a GC pointer: NULL, an integer, malloc memory */
    if (sl & (sizeof(void *) - 1)) {
        why = "the slot is not pointer-aligned, so no scan sees it";
    } else if (!ss) {
        int seen = 0;
        pthread_mutex_lock(&h->roots_lock);
        for (size_t i = 0; i < h->nroots && !seen; i++) {
            seen = sl >= h->roots[i].lo && sl < h->roots[i].hi;
            if (seen && own) {
                p->root_lo = h->roots[i].lo;
                p->root_hi = h->roots[i].hi;
                p->root_gen = h->roots_gen;
            }
        }
        pthread_mutex_unlock(&h->roots_lock);
        if (!seen && !wbgc__stack_of(h, sl))
            why = "memory the collector cannot see: not the heap, not a registered root, not a "
                  "thread stack (rule 4: register it with wbgc_add_roots)";
    }
    if (why)
        wbgc__report(h, "wbgc: misuse: wbgc_write(p=%p, slot=%p, val=%p): GC pointer stored where "
                     "%s", (void *)p, slot, val, why);
}

/* wbgc__allocated_at: is addr inside an allocated object of its in-use
   span s? */
WBGC__GPR_INLINE int wbgc__allocated_at(const wbgc__span *s, uintptr_t addr)
{
    uint32_t i = (uint32_t)(((uint64_t)(addr - s->base) * s->divmagic) >> 32);
    return i < s->nelems && (WBGC__LOAD(s->allocbits[i >> 6]) >> (i & 63)) & 1;
}

/* wbgc__check_store_fast: check mode's validation of a barriered store
   with no lock and no call, for the amd64 trampoline's general-register
   flush (so that check mode's stores do not save the vector state).
   Returns 1 when the store is certainly one wbgc__wb_flush_check would
   pass without a report: made on p's own thread (rule 1: a live P, and the
   barrier's caller, at sp, on p's stack; the stacks of live threads never
   overlap) outside another call on p (rule 5, but for wbgc_memmove's own
   barriers), of a value that is no GC pointer (NULL, an integer, memory
   outside the heap) or points into an allocated object, stored into an
   allocated scanned object (a typed one: at a word its layout names; its
   layout id is read as the marker reads it, and a span whose objects are
   all dead could lose its side array to a sweep meanwhile only if the
   program were writing into a dead object), p's own stack, or the root
   region p's last
   store into one went to (as the full check found it, and while no region
   was added or removed since). 0: the full validation decides, and
   reports: anything else, a store into another root region (listed under
   a lock) or another thread's stack included. It reads span state as the
   marker does (acquire loads, never faulting); the full check's lock on
   the page heap orders nothing this needs. */
WBGC__GPR_INLINE int wbgc__check_store_fast(wbgc_heap *h, wbgc_p *p, void *slot, void *val,
                                            uintptr_t sp)
{
    if (p->magic != WBGC__P_MAGIC || sp - p->stack_lo >= p->stack_hi - p->stack_lo) return 0;
    if (p->in_call && !wbgc__memmove_own(p, slot)) return 0;
    uintptr_t v = (uintptr_t)val, sl = (uintptr_t)slot;
    uintptr_t lo = WBGC__LOAD(h->lo), hi = WBGC__LOAD(h->hi);
    if (v - lo >= hi - lo) return 1;  /* no GC pointer: nothing to validate */
    wbgc__span *vs = wbgc__span_of(h, v);
    if (!vs || !wbgc__allocated_at(vs, v)) return 0;
    if (sl & (sizeof(void *) - 1)) return 0;
    wbgc__span *ss = wbgc__span_of(h, sl);
    if (ss) {
        if (ss->kind == WBGC__KIND_NOSCAN || !wbgc__allocated_at(ss, sl)) return 0;
        if (ss->kind != WBGC__KIND_TYPED) return 1;
        uint32_t si = (uint32_t)(((uint64_t)(sl - ss->base) * ss->divmagic) >> 32);
        return wbgc__layout_names(h, ss, si, ss->base + (uintptr_t)si * ss->elemsize, sl);
    }
    if (sl - p->root_lo < p->root_hi - p->root_lo &&
        p->root_gen == __atomic_load_n(&h->roots_gen, __ATOMIC_ACQUIRE))
        return 1;
    return sl - p->stack_lo < p->stack_hi - p->stack_lo;
}

/* wbgc__wb_flush_body shades the batch in p's buffer into p's mark work and
   empties the buffer: the flush, once check mode is done with the store. */
static inline __attribute__((always_inline)) void wbgc__wb_flush_body(wbgc_heap *h, wbgc_p *p)
{
    wbgc__wb_drain(h, p, &p->gcw);
    wbgc__gcw_make_room(h, &p->gcw);
    WBGC__STORE(p->wb_flushes, p->wb_flushes + 1);
    WBGC__STORE(p->wb_full_flushes, p->wb_full_flushes + 1);
}

/* wbgc__wb_flush_check: the flush in check mode, where every barrier
   comes: the calling thread (rule 1) and the store validated, the P marked
   inside the call (rule 5), then the flush. sp: the stack pointer of the
   barrier's caller. A barrier that re-entered a call that may still run (a
   signal handler's) leaves its entry in the buffer, which grows by one
   entry for it (a flush would change the P's mark work, which that call
   may be using): the P's next flush shades it. The store goes ahead after
   every report, as it must. */
static WBGC__NOINLINE void wbgc__wb_flush_check(wbgc_p *p, void *slot, void *val, uintptr_t sp)
{
    wbgc_heap *h = p->heap;
    int marked = 0, r = 0, own = wbgc__check_p(p, "wbgc_write") == 0;
    if (own && !wbgc__memmove_own(p, slot)) {
        r = wbgc__enter(p, "wbgc_write", sp);
        if (r > 0) r = wbgc__enter(p, "wbgc_write", sp);  /* a jump left the P: it is this call's */
        marked = r == 0;
    }
    wbgc__check_store(p, slot, val, own);
    if (r < 0 && p->fast.wb_end < p->wbbuf + 2 * WBGC_WBBUF_ENTRIES) {
        p->fast.wb_end += 2;  /* INV-WBBUF: a whole entry */
        return;
    }
    wbgc__wb_flush_body(h, p);
    if (marked) wbgc__leave(p);
}

/* wbgc__wb_flush: the barrier's slow path, reached when an append filled
   p's buffer (every time, in check mode), from C (wbgc__arch_write,
   wbgc_memmove); the amd64 trampoline calls its twin wbgc__wb_flush_tramp.
   Validates the store in check mode, shades the batch into p's mark work,
   empties the buffer. Never a safepoint, never runs a barrier, never waits
   for the marker (PITFALLS 5, 9). The caller stores val into slot after it
   returns. */
WBGCDEF WBGC__NOINLINE __attribute__((used)) void wbgc__wb_flush(wbgc_p *p, void *slot, void *val)
{
    wbgc_heap *h = p->heap;
    if (WBGC__UNLIKELY(h->cfg.flags & WBGC_CHECK)) {
        wbgc__wb_flush_check(p, slot, val, WBGC__CALLER_SP());
        return;
    }
    wbgc__wb_flush_body(h, p);
}

#if WBGC__HAVE_AMD64
/* wbgc__wb_flush_tramp: wbgc__wb_flush as the amd64 trampoline calls it,
   after saving the vector state: args points at p, slot and val in the
   frame the barrier's cold path built (wbgc_amd64.h), whose top is the
   stack pointer of the barrier's caller, which check mode wants. */
WBGCDEF void wbgc__wb_flush_tramp(void *const *args) __asm__("wbgc__wb_flush_tramp_impl");
WBGCDEF WBGC__NOINLINE __attribute__((used)) void wbgc__wb_flush_tramp(void *const *args)
{
    wbgc_p *p = (wbgc_p *)args[0];
    wbgc_heap *h = p->heap;
    if (WBGC__UNLIKELY(h->cfg.flags & WBGC_CHECK)) {
        wbgc__wb_flush_check(p, args[1], args[2], WBGC__AMD64_CALLER_SP(args));
        return;
    }
    wbgc__wb_flush_body(h, p);
}
#endif

#if WBGC__HAVE_AMD64
#define WBGC__TRAMP_CALLER_SP(args) WBGC__AMD64_CALLER_SP(args)
#else
#define WBGC__TRAMP_CALLER_SP(args) ((void)(args), (uintptr_t)0)  /* no trampoline */
#endif

/* wbgc__wb_flush_fast_check: wbgc__wb_flush_fast in check mode (one
   entry: every store comes here): the store validated as far as it can be
   without a lock (wbgc__check_store_fast), the P marked inside the call
   while the entry is shaded (rule 5). Returns as wbgc__wb_flush_fast. */
static WBGC__GPR_ONLY WBGC__NOINLINE int wbgc__wb_flush_fast_check(wbgc_heap *h, wbgc_p *p,
                                                                    void *const *args)
{
    uintptr_t sp = WBGC__TRAMP_CALLER_SP(args);
    if (!wbgc__check_store_fast(h, p, args[1], args[2], sp)) return 0;
    int mark = !p->in_call;  /* else wbgc_memmove's own barrier: its call is marked */
    if (mark) {              /* wbgc__enter, but for its report (a call) */
        p->in_call = "wbgc_write";
        p->in_call_sp = sp;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    }
    int done = !(WBGC__LOAD(h->phase) == WBGC__PHASE_MARK && !p->gcw.w1) &&
               wbgc__wb_drain_to(h, p, &p->gcw, 1);
    if (mark) wbgc__leave(p);
    if (!done) return 0;  /* the full flush validates the store again, and shades the rest */
    WBGC__STORE(p->wb_flushes, p->wb_flushes + 1);
    return 1;
}

/* wbgc__wb_flush_fast: the flush the amd64 trampoline tries first, before
   it saves the vector state (xsave and xrstor of an AVX-512 state cost more
   than shading a whole buffer); args as for wbgc__wb_flush_tramp. General
   registers only (WBGC__GPR_ONLY) and no call but to functions of the same
   kind: it shades as long as p's two mark work buffers have room, so
   wbgc__gcw_put never leaves them. Returns 1 when it emptied the buffer; 0
   when the full flush must run instead, on what is left: no mark work
   buffers yet, or both full; in check mode, a store it cannot prove valid
   too (wbgc__wb_flush_fast_check). */
WBGCDEF int wbgc__wb_flush_fast(void *const *args) __asm__("wbgc__wb_flush_fast_impl");
WBGCDEF WBGC__GPR_ONLY WBGC__NOINLINE __attribute__((used)) int wbgc__wb_flush_fast(void *const *args)
{
    wbgc_p *p = (wbgc_p *)args[0];
    wbgc_heap *h = p->heap;
    if (WBGC__UNLIKELY(h->cfg.flags & WBGC_CHECK)) return wbgc__wb_flush_fast_check(h, p, args);
    if (WBGC__LOAD(h->phase) == WBGC__PHASE_MARK && !p->gcw.w1) return 0;
    if (!wbgc__wb_drain_to(h, p, &p->gcw, 1)) return 0;
    WBGC__STORE(p->wb_flushes, p->wb_flushes + 1);
    return 1;
}

/* wbgc__write_unbuffered: the eager barrier (WBGC_UNBUFFERED builds, for
   measuring): shades the old and the new value at once, at every store. */
WBGCDEF WBGC__NOINLINE void wbgc__write_unbuffered(wbgc_p *p, void *slot, void *val)
{
    wbgc_heap *h = p->heap;
    if (WBGC__UNLIKELY(h->cfg.flags & WBGC_CHECK)) wbgc__check_store(p, slot, val, 0);
    if (WBGC__LOAD(h->phase) != WBGC__PHASE_MARK) return;
    uintptr_t lo = WBGC__LOAD(h->lo), hi = WBGC__LOAD(h->hi);
    uintptr_t vals[2] = {(uintptr_t)val, (uintptr_t)*(void *const *)slot};
    for (int i = 0; i < 2; i++)
        if (vals[i] - lo < hi - lo) wbgc__shade(h, &p->gcw, vals[i]);
}

/* wbgc__copy_words moves n aligned words, never splitting a pointer
   (PITFALLS 8), front to back or back to front as the overlap needs. */
static void wbgc__copy_words(uintptr_t *dst, const uintptr_t *src, size_t n)
{
    if (dst < src) {
        for (size_t i = 0; i < n; i++) WBGC__STORE(dst[i], WBGC__LOAD(src[i]));
    } else {
        for (size_t i = n; i-- > 0;) WBGC__STORE(dst[i], WBGC__LOAD(src[i]));
    }
}

/* wbgc__memmove_slow moves word by word, each through the barrier, in the
   order the overlap needs. The barrier and the copy of each word are back
   to back, with no safepoint between (PITFALLS 5). */
static WBGC__NOINLINE void wbgc__memmove_slow(wbgc_p *p, uintptr_t *dst, const uintptr_t *src,
                                             size_t n)
{
    if (dst < src) {
        for (size_t i = 0; i < n; i++) wbgc_write(p, &dst[i], (void *)WBGC__LOAD(src[i]));
    } else {
        for (size_t i = n; i-- > 0;) wbgc_write(p, &dst[i], (void *)WBGC__LOAD(src[i]));
    }
}

/* wbgc__wb_record: the barrier without its store, for a word that is about
   to be changed other than by one whole store (wbgc__memmove_bytes): appends
   (val, *slot) and flushes when that fills the buffer. val is what the
   word's bytes will make, data rather than a pointer the program stored, so
   check mode does not validate it as one (the flush gets no value). The
   caller changes the word at once after, with no safepoint between
   (PITFALLS 5). */
static inline void wbgc__wb_record(wbgc_p *p, void *slot, void *val)
{
    wbgc__pfast *f = &p->fast;
    void **e = f->wb_next;
    f->wb_next = e + 2;
    e[0] = val;
    e[1] = *(void *const *)slot;
    if (e + 2 == f->wb_end) wbgc__wb_flush(p, slot, NULL);
}

/* wbgc__memmove_bytes moves n bytes in any alignment with the barrier on,
   one aligned word of the destination at a time, in the order the overlap
   needs. A word that the move covers whole gets its new value (read from
   src whatever src's alignment) in one store through the barrier. A word
   it covers only in part is recorded first with its old value (a pointer
   it held is shaded: the deletion half) and the value its bytes will make,
   then only the bytes inside [dst, dst+n) are written: bytes of the word
   outside the move are never rewritten, so a neighbour's concurrent store
   into them is not undone. Reading the whole word may read bytes beyond a
   malloc block's end (never beyond its page): the sanitizers are told. */
static WBGC__NOINLINE WBGC__NO_SANITIZE void wbgc__memmove_bytes(wbgc_p *p, unsigned char *dst,
                                                                 const unsigned char *src, size_t n)
{
    const uintptr_t W = sizeof(uintptr_t);
    uintptr_t d0 = (uintptr_t)dst, d1 = d0 + n;
    uintptr_t first = d0 & ~(W - 1), last = (d1 - 1) & ~(W - 1);
    int forward = dst < src;
    for (uintptr_t w = forward ? first : last;; w = forward ? w + W : w - W) {
        uintptr_t lo = w < d0 ? d0 : w, hi = w + W > d1 ? d1 : w + W;
        const unsigned char *s = src + (lo - d0);
        if (lo == w && hi == w + W) {
            uintptr_t v;
            if (((uintptr_t)s & (W - 1)) == 0) v = WBGC__LOAD(*(const uintptr_t *)s);  /* whole, once */
            else memcpy(&v, s, W);
            wbgc_write(p, (void *)w, (void *)v);
        } else {
            uintptr_t v = WBGC__LOAD(*(const uintptr_t *)w);
            memcpy((unsigned char *)&v + (lo - w), s, hi - lo);
            wbgc__wb_record(p, (void *)w, (void *)v);
            memmove((void *)lo, s, hi - lo);
        }
        if (w == (forward ? last : first)) break;
    }
}

static inline __attribute__((always_inline)) void wbgc__memmove_in(wbgc_p *p, void *dst,
                                                                   const void *src, size_t n);

/* wbgc__memmove_check: wbgc_memmove in check mode: the calling thread
   checked, and the P marked inside the call (rule 5), the words it writes
   noted so that its own barriers are told from a re-entry. */
static WBGC__NOINLINE void wbgc__memmove_check(wbgc_p *p, void *dst, const void *src, size_t n,
                                               uintptr_t sp)
{
    if (wbgc__check_p(p, wbgc__fn_memmove) < 0 || wbgc__enter(p, wbgc__fn_memmove, sp) != 0) return;
    p->in_call_lo = (uintptr_t)dst & ~(uintptr_t)(sizeof(uintptr_t) - 1);
    p->in_call_hi = (uintptr_t)dst + n;
    wbgc__memmove_in(p, dst, src, n);
    wbgc__leave(p);
}

WBGCDEF void wbgc_memmove(wbgc_p *p, void *dst, const void *src, size_t n)
{
    if (WBGC__UNLIKELY(p->check)) {
        wbgc__memmove_check(p, dst, src, n, WBGC__CALLER_SP());
        return;
    }
    wbgc__memmove_in(p, dst, src, n);
}

/* wbgc__memmove_in: wbgc_memmove's work. */
static inline __attribute__((always_inline)) void wbgc__memmove_in(wbgc_p *p, void *dst,
                                                                   const void *src, size_t n)
{
    if (dst == src || n == 0) return;
    int whole = ((((uintptr_t)dst | (uintptr_t)src | n) & (sizeof(uintptr_t) - 1)) == 0);
    if (WBGC__LIKELY(!p->fast.wb_on)) {
        /* No cycle marks (the barrier goes on only in a pause, and there is
           no safepoint in here): no barrier is owed, and nobody reads the
           words while they are copied. Aligned words still move whole. */
        if (whole) wbgc__copy_words((uintptr_t *)dst, (const uintptr_t *)src, n / sizeof(uintptr_t));
        else memmove(dst, src, n);
    } else if (whole) {
        wbgc__memmove_slow(p, (uintptr_t *)dst, (const uintptr_t *)src, n / sizeof(uintptr_t));
    } else {
        wbgc__memmove_bytes(p, (unsigned char *)dst, (const unsigned char *)src, n);
    }
}

/* =========================================================================
   Mark work
   ========================================================================= */

#define WBGC__WBUF_CHUNK 64  /* work buffers per mmap */

static wbgc__wbuf *wbgc__wbuf_get_empty(wbgc_heap *h)
{
    pthread_mutex_lock(&h->work_lock);
    wbgc__wbuf *b = h->work_empty;
    if (b) {
        WBGC__STORE(h->work_empty, b->next);
    } else {
        size_t bytes = sizeof(wbgc__wbuf) * WBGC__WBUF_CHUNK;
        char *m = (char *)mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            wbgc__panic("out of memory for mark work buffers (%zu bytes): cannot finish marking", bytes);
        /* The chunk's first buffer doubles as its record for wbgc_heap_free. */
        wbgc__wbchunk *ck = (wbgc__wbchunk *)(void *)m;
        ck->bytes = bytes;
        ck->next = h->work_chunks;
        h->work_chunks = ck;
        for (size_t i = 2; i < WBGC__WBUF_CHUNK; i++) {
            wbgc__wbuf *e = (wbgc__wbuf *)(void *)(m + i * sizeof(wbgc__wbuf));
            e->next = h->work_empty;
            WBGC__STORE(h->work_empty, e);
        }
        b = (wbgc__wbuf *)(void *)(m + sizeof(wbgc__wbuf));
    }
    pthread_mutex_unlock(&h->work_lock);
    b->next = NULL;
    b->n = 0;
    return b;
}

/* The list heads change under work_lock; they are stored with relaxed
   atomics so that a marker may glance at the full list without the lock
   (wbgc__gcw_balance) and act on what it saw, right or wrong. */
static void wbgc__wbuf_put(wbgc_heap *h, wbgc__wbuf **list, wbgc__wbuf *b)
{
    pthread_mutex_lock(&h->work_lock);
    b->next = *list;
    WBGC__STORE(*list, b);
    pthread_mutex_unlock(&h->work_lock);
}

static wbgc__wbuf *wbgc__wbuf_get_full(wbgc_heap *h)
{
    pthread_mutex_lock(&h->work_lock);
    wbgc__wbuf *b = h->work_full;
    if (b) WBGC__STORE(h->work_full, b->next);
    pthread_mutex_unlock(&h->work_lock);
    return b;
}

static WBGC__NOINLINE wbgc__wbuf *wbgc__gcw_put_slow(wbgc_heap *h, wbgc__gcwork *g)
{
    if (!g->w1) {
        g->w1 = wbgc__wbuf_get_empty(h);
        g->w2 = wbgc__wbuf_get_empty(h);
        return g->w1;
    }
    wbgc__wbuf *t = g->w1;
    g->w1 = g->w2;
    g->w2 = t;
    if (g->w1->n < WBGC_WORKBUF_ENTRIES) return g->w1;
    wbgc__wbuf_put(h, &h->work_full, g->w1);
    g->w1 = wbgc__wbuf_get_empty(h);
    return g->w1;
}

/* wbgc__gcw_make_room gives g its buffers if it has none (mark phase), or
   hands its second buffer, if that holds work, to the global list (where
   idle markers find it) and puts the emptier buffer first: so that the next
   flushes of a barrier buffer can shade without the global lists
   (wbgc__wb_flush_fast). */
static void wbgc__gcw_make_room(wbgc_heap *h, wbgc__gcwork *g)
{
    if (!g->w1) {
        if (WBGC__LOAD(h->phase) != WBGC__PHASE_MARK) return;
        g->w1 = wbgc__wbuf_get_empty(h);
        g->w2 = wbgc__wbuf_get_empty(h);
        return;
    }
    if (g->w2->n) {
        wbgc__wbuf_put(h, &h->work_full, g->w2);
        g->w2 = wbgc__wbuf_get_empty(h);
    }
    if (g->w1->n > WBGC_WORKBUF_ENTRIES / 2) {
        wbgc__wbuf *t = g->w1;
        g->w1 = g->w2;
        g->w2 = t;
    }
}

/* wbgc__gcw_put pushes a grey object. With room in w1 or w2 it calls
   nothing (wbgc__wb_flush_fast counts on it); only when both are full does
   it go to the global lists. */
WBGC__GPR_INLINE void wbgc__gcw_put(wbgc_heap *h, wbgc__gcwork *g, uintptr_t obj)
{
    wbgc__wbuf *b = g->w1;
    if (WBGC__UNLIKELY(!b || b->n == WBGC_WORKBUF_ENTRIES)) {
        if (b && g->w2->n < WBGC_WORKBUF_ENTRIES) {
            g->w1 = g->w2;
            g->w2 = b;
            b = g->w1;
        } else {
            b = wbgc__gcw_put_slow(h, g);
        }
    }
    b->obj[b->n++] = obj;
}

static WBGC__NOINLINE uintptr_t wbgc__gcw_get_slow(wbgc_heap *h, wbgc__gcwork *g)
{
    if (!g->w1) {
        g->w1 = wbgc__wbuf_get_empty(h);
        g->w2 = wbgc__wbuf_get_empty(h);
    }
    wbgc__wbuf *t = g->w1;
    g->w1 = g->w2;
    g->w2 = t;
    if (g->w1->n) return g->w1->obj[--g->w1->n];
    wbgc__wbuf *f = wbgc__wbuf_get_full(h);
    if (!f) return 0;
    wbgc__wbuf_put(h, &h->work_empty, g->w1);
    g->w1 = f;
    return f->obj[--f->n];
}

/* wbgc__gcw_get pops a grey object, or returns 0 when this gcWork and the
   global full list are empty. */
static inline uintptr_t wbgc__gcw_get(wbgc_heap *h, wbgc__gcwork *g)
{
    wbgc__wbuf *b = g->w1;
    if (WBGC__LIKELY(b && b->n)) return b->obj[--b->n];
    return wbgc__gcw_get_slow(h, g);
}

static int wbgc__gcw_empty(const wbgc__gcwork *g)
{
    return (!g->w1 || !g->w1->n) && (!g->w2 || !g->w2->n);
}

/* wbgc__gcw_balance gives away part of g's work when the global list is
   empty, so that idle markers (a worker on the other core) can help: a
   whole buffer if g holds two, else the older half of its one. */
static WBGC__NOINLINE void wbgc__gcw_balance(wbgc_heap *h, wbgc__gcwork *g)
{
    wbgc__wbuf *b;
    if (g->w2 && g->w2->n) {
        b = g->w2;
        g->w2 = wbgc__wbuf_get_empty(h);
    } else if (g->w1 && g->w1->n > 8) {
        size_t half = g->w1->n / 2;
        b = wbgc__wbuf_get_empty(h);
        memcpy(b->obj, g->w1->obj, half * sizeof(uintptr_t));
        b->n = half;
        memmove(g->w1->obj, g->w1->obj + half, (g->w1->n - half) * sizeof(uintptr_t));
        g->w1->n -= half;
    } else {
        return;
    }
    wbgc__wbuf_put(h, &h->work_full, b);
    pthread_cond_signal(&h->work_cv);
}

/* wbgc__gcw_dispose hands g's buffers back (empty ones to the empty list,
   others to the full list) and its count of marked bytes to the cycle. */
static void wbgc__gcw_dispose(wbgc_heap *h, wbgc__gcwork *g)
{
    wbgc__wbuf *bs[2] = {g->w1, g->w2};
    for (int i = 0; i < 2; i++)
        if (bs[i]) wbgc__wbuf_put(h, bs[i]->n ? &h->work_full : &h->work_empty, bs[i]);
    g->w1 = g->w2 = NULL;
    if (g->bytes_marked) {
        WBGC__ADD(h->cycle_marked, g->bytes_marked);
        g->bytes_marked = 0;
    }
}

/* wbgc__active counts markers that may hold work taken from the global
   lists. Counted under work_lock, like the lists themselves, so that "no
   global work and no active marker" is one consistent observation
   (PITFALLS 4). */
static void wbgc__active(wbgc_heap *h, int d)
{
    pthread_mutex_lock(&h->work_lock);
    h->nactive += d;
    pthread_mutex_unlock(&h->work_lock);
}

/* =========================================================================
   Marker and roots
   ========================================================================= */

/* wbgc__shade greys the object v points into (interior pointers too), if v
   points into an allocated object not yet marked. Any value may come here
   (PITFALLS 7): it never faults and never complains. wbgc__shade_in: the
   same, with v's in-use span already found. */
WBGC__GPR_INLINE void wbgc__shade_in(wbgc_heap *h, wbgc__gcwork *g, wbgc__span *s, uintptr_t v)
{
    uint32_t idx = (uint32_t)(((uint64_t)(v - s->base) * s->divmagic) >> 32);
    if (idx >= s->nelems) return;                 /* the span's tail waste */
    uint64_t bit = (uint64_t)1 << (idx & 63);
    /* The mark bit first: a set one means allocated (no span is swept
       while a cycle marks, INV-MARKCLEAR), and most values a barrier or a
       scan meets are marked already, so their allocation word, on another
       cache line, is never touched. */
    uint64_t *mw = &s->markbits[idx >> 6];
    if (WBGC__LOAD(*mw) & bit) return;
    if (!(__atomic_load_n(&s->allocbits[idx >> 6], __ATOMIC_ACQUIRE) & bit)) return;  /* free */
    /* SEQ_CST, as the load of waitheads after it (here or in
       wbgc__scan_object): the pair meets wbgc__scan_ephemeron's */
    if (__atomic_fetch_or(mw, bit, __ATOMIC_SEQ_CST) & bit) return;
    g->bytes_marked += s->elemsize;
    /* A noscan object goes on the work list only when ephemerons may wait
       on it: its "scan" shades what waits (wbgc__scan_object). */
    if (s->kind != WBGC__KIND_NOSCAN || WBGC__UNLIKELY(__atomic_load_n(&s->waitheads, __ATOMIC_SEQ_CST)))
        wbgc__gcw_put(h, g, s->base + idx * s->elemsize);
}

static inline void wbgc__shade(wbgc_heap *h, wbgc__gcwork *g, uintptr_t v)
{
    wbgc__span *s = wbgc__span_of(h, v);
    if (s) wbgc__shade_in(h, g, s, v);
}

/* wbgc__scan_range shades every aligned word in [lo, hi). It reads memory
   that others write by design: heap objects and roots that mutators update
   (the barrier covers them), other threads' dead stack words, sanitizer
   redzones. So the sanitizers are told not to look. */
static WBGC__NO_SANITIZE void wbgc__scan_range(wbgc_heap *h, wbgc__gcwork *g, uintptr_t lo,
                                               uintptr_t hi)
{
    uintptr_t hlo = WBGC__LOAD(h->lo), hhi = WBGC__LOAD(h->hi);
    lo = (lo + sizeof(uintptr_t) - 1) & ~(uintptr_t)(sizeof(uintptr_t) - 1);
    for (uintptr_t a = lo; a + sizeof(uintptr_t) <= hi; a += sizeof(uintptr_t)) {
        uintptr_t v = *(const volatile uintptr_t *)a;  /* one whole word, once */
        if (v - hlo < hhi - hlo) wbgc__shade(h, g, v);
    }
}

/* An object of more than this many bytes is scanned in pieces of this
   size ("oblets", as Go calls them), each a separate entry of the work
   list: one marker never scans a big array in one go (a 3 MiB table of
   pointers took one assisting mutator 30-50 ms), markers share it, and a
   preempt request is seen between pieces. Small, because a word that
   points into a big heap costs up to ~450 ns to shade (misses on the page
   map, the span and its bits): 16 KiB of such words take up to ~1 ms. */
#define WBGC__OBLET ((uintptr_t)16 << 10)

/* wbgc__scan_typed shades the pointer words that layout l names in
   [lo, hi), a part of the typed object at obj whose records repeat from
   obj: the record holding lo starts at obj + (lo - obj) rounded down to a
   multiple of the record size (lo is obj, or an oblet's start). A last
   record cut short by hi is scanned as far as it goes. As
   wbgc__scan_range about what it reads. */
static WBGC__NO_SANITIZE void wbgc__scan_typed(wbgc_heap *h, wbgc__gcwork *g, const wbgc_layout *l,
                                               uintptr_t obj, uintptr_t lo, uintptr_t hi)
{
    uintptr_t hlo = WBGC__LOAD(h->lo), hhi = WBGC__LOAD(h->hi);
    uintptr_t rbytes = (uintptr_t)l->words * sizeof(uintptr_t), rec = obj;
    const uint32_t *ptrs = l->ptrs;
    uint32_t n = l->nptrs;
    if (lo != obj) rec += (lo - obj) / rbytes * rbytes;  /* an oblet: its phase */
    for (; rec < hi; rec += rbytes) {
        for (uint32_t k = 0; k < n; k++) {
            uintptr_t a = rec + (uintptr_t)ptrs[k] * sizeof(uintptr_t);
            if (a < lo) continue;                      /* before an oblet's start */
            if (a + sizeof(uintptr_t) > hi) return;    /* ptrs ascend: done */
            uintptr_t v = *(const volatile uintptr_t *)a;  /* one whole word, once */
            if (v - hlo < hhi - hlo) wbgc__shade(h, g, v);
        }
    }
}

/* wbgc__scan_object scans a grey entry: a whole object, or, for an object
   alone in its span and larger than an oblet, one oblet. An entry is an
   object's base, or (such objects only) the start of its second or later
   oblet; scanning the base pushes the other oblets. A scanned object has
   every word scanned, a typed one only the words its layout names
   (wbgc__layout_of). Returns the bytes scanned (all of the object's or
   oblet's, whatever its kind: the pacer's unit of work). */
static void wbgc__scan_ephemeron(wbgc_heap *h, wbgc__gcwork *g, uintptr_t obj);
static void wbgc__key_marked(wbgc_heap *h, wbgc__gcwork *g, uintptr_t *heads, uint32_t idx);

static size_t wbgc__scan_object(wbgc_heap *h, wbgc__gcwork *g, uintptr_t obj)
{
    wbgc__span *s = wbgc__span_of(h, obj);
    WBGC_ASSERT(s);
    uint32_t idx = (uint32_t)(((uint64_t)(obj - s->base) * s->divmagic) >> 32);
    /* Ephemerons may wait on an object of this span: if on this one (an
       object's start, not an oblet's), they are owed their values now. */
    uintptr_t *heads = __atomic_load_n(&s->waitheads, __ATOMIC_SEQ_CST);
    if (WBGC__UNLIKELY(heads != NULL) && obj == s->base + (uintptr_t)idx * s->elemsize)
        wbgc__key_marked(h, g, heads, idx);
    if (s->kind == WBGC__KIND_NOSCAN) return 0;  /* here only for that */
    const wbgc_layout *l = NULL;
    if (s->kind == WBGC__KIND_TYPED) {
        if (WBGC__UNLIKELY(wbgc__layout_id(s, idx) == WBGC__LAYOUT_EPHEMERON)) {
            wbgc__scan_ephemeron(h, g, obj);
            return s->elemsize;
        }
        l = wbgc__layout_of(h, s, idx);
    }
    if (s->nelems > 1 || s->elemsize <= WBGC__OBLET) {
        if (l) wbgc__scan_typed(h, g, l, obj, obj, obj + s->elemsize);
        else wbgc__scan_range(h, g, obj, obj + s->elemsize);
        return s->elemsize;
    }
    uintptr_t end = s->base + s->elemsize;  /* the span's one object */
    if (obj == s->base)
        for (uintptr_t o = obj + WBGC__OBLET; o < end; o += WBGC__OBLET) wbgc__gcw_put(h, g, o);
    if (end - obj > WBGC__OBLET) end = obj + WBGC__OBLET;
    if (l) wbgc__scan_typed(h, g, l, s->base, obj, end);
    else wbgc__scan_range(h, g, obj, end);
    return end - obj;
}

/* Grey objects wait this many pops in a FIFO after a prefetch before they
   are scanned. The work list is LIFO, so the marker's walk through memory
   follows the heap's layout forwards or backwards by luck of allocation
   order; prefetching hides the miss either way (a tree built left-first
   marked 3x faster in the allocation benchmark). Larger: more misses in
   flight, but objects held back from the work list. Power of two. */
#define WBGC__PREFETCH_DEPTH 16

/* wbgc__drain scans grey objects from g (and the global lists) until none
   is left, budget bytes were scanned, or *stop (a P's preempt word) has
   WBGC__PREEMPT_ASK set (the collector wants this P at a safepoint);
   returns the bytes scanned. It looks around (stop, balance) every 64th
   pop and after every oblet's worth of bytes, whichever comes first. */
static uint64_t wbgc__drain(wbgc_heap *h, wbgc__gcwork *g, uint64_t budget, const uint32_t *stop)
{
    uintptr_t ring[WBGC__PREFETCH_DEPTH];
    unsigned head = 0, n = 0, polls = 0;
    uint64_t done = 0, look_at = WBGC__OBLET;
    for (;;) {
        if ((++polls & 63) == 0 || done >= look_at) {
            look_at = done + WBGC__OBLET;
            if (stop && (WBGC__LOAD(*stop) & WBGC__PREEMPT_ASK)) budget = 0;
            if (h->nworkers && !WBGC__LOAD(h->work_full)) wbgc__gcw_balance(h, g);
        }
        if (done >= budget) {  /* hand back what waits in the ring */
            for (; n; n--, head = (head + 1) & (WBGC__PREFETCH_DEPTH - 1))
                wbgc__gcw_put(h, g, ring[head]);
            break;
        }
        uintptr_t obj = wbgc__gcw_get(h, g), next;
        if (obj) {
            __builtin_prefetch((const void *)obj);
            if (n < WBGC__PREFETCH_DEPTH) {
                ring[(head + n++) & (WBGC__PREFETCH_DEPTH - 1)] = obj;
                continue;
            }
            next = ring[head];
            ring[head] = obj;
        } else {
            if (n == 0) break;
            next = ring[head];
            n--;
        }
        head = (head + 1) & (WBGC__PREFETCH_DEPTH - 1);
        done += wbgc__scan_object(h, g, next);
    }
    return done;
}

/* wbgc__scan_p scans p's stack from its saved stack pointer to its base, and
   its saved registers. p is parked, blocked and taken, or the caller. */
static uint64_t wbgc__scan_p(wbgc_heap *h, wbgc__gcwork *g, wbgc_p *p)
{
    if (h->cfg.flags & WBGC_NO_STACK_SCAN) return 0;
    uintptr_t lo = p->saved_sp;
    if (lo < p->stack_lo || lo > p->stack_hi)
        wbgc__panic("P %p: saved stack pointer %#lx outside its stack [%#lx, %#lx)", (void *)p,
                    (unsigned long)lo, (unsigned long)p->stack_lo, (unsigned long)p->stack_hi);
    wbgc__scan_range(h, g, lo, p->stack_hi);
    wbgc__scan_range(h, g, (uintptr_t)p->ctx, (uintptr_t)(p->ctx + WBGC__CTX_SP));
    wbgc__scan_range(h, g, (uintptr_t)&p->jb, (uintptr_t)&p->jb + sizeof p->jb);
    return p->stack_hi - lo;
}

/* wbgc__scan_stack_black is the root job of one P's stack in the mark
   phase: drains its barrier buffer (both halves: they were appended while
   the stack was grey), scans the stack, and marks it black, so that its
   barrier's new values need no shading from now on. p is the caller, or
   taken. */
static uint64_t wbgc__scan_stack_black(wbgc_heap *h, wbgc__gcwork *g, wbgc_p *p)
{
    wbgc__wb_drain(h, p, g);
    uint64_t n = wbgc__scan_p(h, g, p);
    p->stack_black = 1;
    return n;
}

/* wbgc__scan_own_stack: the root job a running P does at its safepoint
   (a ragged handshake: no global stop). This frame stays live while it
   scans, so saving the context here covers every caller. */
static WBGC__NOINLINE void wbgc__scan_own_stack(wbgc_heap *h, wbgc_p *p)
{
    WBGC__SAVE_CONTEXT(p);
    wbgc__scan_stack_black(h, &p->gcw, p);
}

/* wbgc__flush_p hands p's barrier buffer (shaded) and mark work to the
   global lists. By p's thread, or with p stopped or taken (INV-POWNER). */
static void wbgc__flush_p(wbgc_heap *h, wbgc_p *p)
{
    wbgc__wb_drain(h, p, &p->gcw);
    wbgc__gcw_dispose(h, &p->gcw);
}

/* wbgc__take_blocked finds a blocked P that has one of the requests in
   `want`, marks it taken (its thread cannot leave its blocking region until
   it is given back) and returns it with the requests it had; NULL if none.
   sched_lock held. */
static wbgc_p *wbgc__take_blocked(wbgc_heap *h, uint32_t want, uint32_t *got)
{
    for (wbgc_p *q = h->ps; q; q = q->next) {
        if (q->status == WBGC__P_BLOCKED && (q->req & want)) {
            q->status = WBGC__P_TAKEN;
            *got = q->req & want;
            return q;
        }
    }
    return NULL;
}

/* wbgc__give_back ends a take: clears the requests done, wakes the P's
   thread if it waits to leave its blocking region. sched_lock held. */
static void wbgc__give_back(wbgc_heap *h, wbgc_p *q, uint32_t done)
{
    q->req &= ~done;
    q->status = WBGC__P_BLOCKED;
    wbgc__update_preempt(h, q);
    pthread_cond_broadcast(&h->resume_cv);
    pthread_cond_broadcast(&h->parked_cv);
}

/* wbgc__help_blocked scans the stacks of Ps that are blocked, on their
   behalf, into g. Returns the bytes scanned. */
static uint64_t wbgc__help_blocked(wbgc_heap *h, wbgc__gcwork *g)
{
    uint64_t done = 0;
    uint32_t got;
    wbgc_p *q;
    pthread_mutex_lock(&h->sched_lock);
    while ((q = wbgc__take_blocked(h, WBGC__REQ_SCAN, &got)) != NULL) {
        pthread_mutex_unlock(&h->sched_lock);
        done += wbgc__scan_stack_black(h, g, q) + 1;
        __atomic_fetch_sub(&h->stacks_pending, 1, __ATOMIC_RELEASE);
        pthread_mutex_lock(&h->sched_lock);
        wbgc__give_back(h, q, got);
    }
    pthread_mutex_unlock(&h->sched_lock);
    return done;
}

static uint64_t wbgc__specials_roots(wbgc_heap *h, wbgc__gcwork *g);

/* wbgc__mark_some does up to budget bytes of mark work into g: the root
   regions and the special records (finalizers, weak handles) if nobody
   has claimed them, the stacks of blocked Ps, then grey
   objects. Returns the work done, 0 when it found none. dispose: hand g's
   leftover work back to the global lists first (a marker that is not a P
   must: no hand-shake would flush it). stop: see wbgc__drain. */
static uint64_t wbgc__mark_some(wbgc_heap *h, wbgc__gcwork *g, uint64_t budget, int dispose,
                                const uint32_t *stop)
{
    uint64_t done = 0;
    wbgc__active(h, 1);
    int unclaimed = 0;
    if (__atomic_load_n(&h->roots_state, __ATOMIC_ACQUIRE) == 0 &&
        __atomic_compare_exchange_n(&h->roots_state, &unclaimed, 1, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&h->roots_lock);
        for (size_t i = 0; i < h->nroots; i++) {
            wbgc__scan_range(h, g, h->roots[i].lo, h->roots[i].hi);
            done += h->roots[i].hi - h->roots[i].lo;
        }
        pthread_mutex_unlock(&h->roots_lock);
        done += wbgc__specials_roots(h, g);
        __atomic_store_n(&h->roots_state, 2, __ATOMIC_RELEASE);
        done++;
    }
    if (__atomic_load_n(&h->stacks_pending, __ATOMIC_ACQUIRE) > 0) done += wbgc__help_blocked(h, g);
    done += wbgc__drain(h, g, budget > done ? budget - done : 1, stop);
    if (dispose) wbgc__gcw_dispose(h, g);
    wbgc__active(h, -1);
    return done;
}

static void wbgc__try_mark_done(wbgc_heap *h, wbgc_p *self);

/* A background marker's round of work, bytes: its work is credited to the
   assists (wbgc__assist) after each. */
#define WBGC__BG_ROUND ((uint64_t)1 << 20)

/* wbgc__stw_drain marks, as one of a stop-the-world mark's markers, until
   no marker holds work and the global list is empty: drain, then wait
   idle; the last marker to go idle with nothing left ends the round.
   Work reaches idle markers through the global list (wbgc__drain gives
   part of its work away when the list is empty); they look for it every
   50 us. World stopped. */
static void wbgc__stw_drain(wbgc_heap *h, wbgc__gcwork *g)
{
    for (;;) {
        wbgc__drain(h, g, UINT64_MAX, NULL);  /* leaves g empty */
        pthread_mutex_lock(&h->work_lock);
        h->stw_idle++;
        while (!h->stw_done && !h->work_full) {
            if (h->stw_idle == h->stw_markers) {
                h->stw_done = 1;
                pthread_cond_broadcast(&h->stw_cv);
                break;
            }
            struct timespec ts;
            wbgc__deadline(&ts, 50000);
            pthread_cond_timedwait(&h->stw_cv, &h->work_lock, &ts);
        }
        int done = h->stw_done;
        if (!done) h->stw_idle--;
        pthread_mutex_unlock(&h->work_lock);
        if (done) return;
    }
}

/* wbgc__stw_help: a worker joins the stop-the-world mark that called it,
   unless it has ended already, and leaves with its marks counted. */
static void wbgc__stw_help(wbgc_heap *h, wbgc__gcwork *g)
{
    pthread_mutex_lock(&h->work_lock);
    int join = h->stw_open && !h->stw_done;
    if (join) h->stw_markers++;
    pthread_mutex_unlock(&h->work_lock);
    if (!join) return;
    wbgc__stw_drain(h, g);
    wbgc__gcw_dispose(h, g);  /* its marked bytes to the cycle */
    pthread_mutex_lock(&h->work_lock);
    h->stw_markers--;
    pthread_cond_broadcast(&h->stw_cv);
    pthread_mutex_unlock(&h->work_lock);
}

/* wbgc__stw_mark marks from g's grey objects to the end, world stopped:
   alone, or with the workers (WBGC_STW with mark_workers) as helpers,
   whom it waits for before it returns. */
static void wbgc__stw_mark(wbgc_heap *h, wbgc__gcwork *g)
{
    if (!h->nworkers) {
        wbgc__drain(h, g, UINT64_MAX, NULL);
        return;
    }
    pthread_mutex_lock(&h->work_lock);
    h->stw_open = 1;
    h->stw_markers = 1;
    h->stw_idle = h->stw_done = 0;
    pthread_mutex_unlock(&h->work_lock);
    pthread_mutex_lock(&h->sched_lock);
    h->stw_round++;
    pthread_cond_broadcast(&h->work_cv);
    pthread_mutex_unlock(&h->sched_lock);
    wbgc__stw_drain(h, g);
    pthread_mutex_lock(&h->work_lock);
    h->stw_open = 0;  /* a worker that wakes only now stays out */
    while (h->stw_markers > 1) pthread_cond_wait(&h->stw_cv, &h->work_lock);
    h->stw_markers = 0;
    pthread_mutex_unlock(&h->work_lock);
}

/* wbgc__worker_main: a mark worker. It marks while the phase is MARK,
   tries to end the phase when it finds nothing, helps a stop-the-world
   mark that calls it (a new stw_round), and sleeps otherwise. Not a P: it
   never allocates and never touches a P's buffers except through a take. */
static void *wbgc__worker_main(void *arg)
{
    wbgc_heap *h = (wbgc_heap *)arg;
    wbgc__gcwork g;
    memset(&g, 0, sizeof g);
    pthread_mutex_lock(&h->sched_lock);
    uint64_t round = h->stw_round;
    for (;;) {
        while (!h->shutdown && WBGC__LOAD(h->phase) != WBGC__PHASE_MARK && h->stw_round == round)
            pthread_cond_wait(&h->work_cv, &h->sched_lock);
        if (h->shutdown) break;
        if (h->stw_round != round) {  /* a stop-the-world mark calls */
            round = h->stw_round;
            pthread_mutex_unlock(&h->sched_lock);
            wbgc__stw_help(h, &g);
            pthread_mutex_lock(&h->sched_lock);
            continue;
        }
        pthread_mutex_unlock(&h->sched_lock);
        /* In rounds, so that assists can count the work as it is done. */
        uint64_t did = wbgc__mark_some(h, &g, WBGC__BG_ROUND, 1, NULL);
        if (did) __atomic_fetch_add(&h->bg_credit, (int64_t)did, __ATOMIC_RELAXED);
        else wbgc__try_mark_done(h, NULL);
        pthread_mutex_lock(&h->sched_lock);
        if (!did && !h->shutdown && WBGC__LOAD(h->phase) == WBGC__PHASE_MARK) {
            /* Work comes back from Ps at their safepoints: look again soon. */
            struct timespec ts;
            wbgc__deadline(&ts, 100000);
            pthread_cond_timedwait(&h->work_cv, &h->sched_lock, &ts);
        }
    }
    pthread_mutex_unlock(&h->sched_lock);
    return NULL;
}

/* =========================================================================
   Finalizers and weak references
   ========================================================================= */

/* Each object with a finalizer or a weak handle has a special record, in a
   hash table split in WBGC__SHARDS shards by address (each under its own
   lock: set_finalizer, weak_new and the sweep of different objects rarely
   meet), and a bit in its span's specialbits, so that the sweep looks up
   only the objects that have one. What the collector does with them:

   - Mark: a root job (wbgc__specials_roots) shades every weak handle (the
     table keeps each live object's handle alive), scans the inside of
     every finalizable object (not the object itself: what it reaches must
     outlive it, the object must not keep itself alive) and its argument,
     and shades every queued finalizer's object and argument. Registered
     while a mark runs: the registering P does the same at once.
   - Sweep: before a span's mark bits become its allocation bits, each of
     its objects with a record that the mark left white (dead) has its weak
     handle cleared and then its finalizer queued, the object marked so
     that this sweep keeps it (wbgc__sweep_specials). The finalizer, once
     run, leaves it unreferenced: the next cycle frees it if nothing else
     holds it. Then the span is stamped with the mark it was swept for
     (specials_gen), before its mark bits are cleared. Live objects'
     records cost the sweep nothing.
   - Weak get: during a mark, the handle's object is shaded (it may have
     been loaded from the handle after the P's stack was scanned: a read
     barrier); outside one, once every span has been swept since the last
     mark (sweep_done), the handle is the truth; between a mark's end and
     its sweep, in a span not yet stamped for that mark, the object's mark
     bit is read, under the shard lock that the sweep takes to clear the
     object's handle: so the sweep has either cleared it (the get sees 0)
     or not reached it, and then not cleared the marks either. */

static inline size_t wbgc__special_hash(uintptr_t obj)
{
    return (size_t)(((uint64_t)(obj >> 4) * 0x9E3779B97F4A7C15ull) >> 20);
}

static inline wbgc__shard *wbgc__shard_of(wbgc_heap *h, size_t hash)
{
    return &h->specials[hash & (WBGC__SHARDS - 1)];
}

/* wbgc__special_find: obj's record in sh, or NULL. Shard lock held. */
static wbgc__special *wbgc__special_find(wbgc__shard *sh, uintptr_t obj, size_t hash)
{
    if (!sh->cap) return NULL;
    for (size_t i = (hash >> 6) & (sh->cap - 1);; i = (i + 1) & (sh->cap - 1)) {
        if (sh->tab[i].obj == obj) return &sh->tab[i];
        if (!sh->tab[i].obj) return NULL;
    }
}

/* wbgc__special_add gives obj an empty record in sh (obj has none), or
   returns NULL when memory runs out. Records move when the table grows:
   pointers to them last only until the next add or delete. Shard lock held. */
static wbgc__special *wbgc__special_add(wbgc__shard *sh, uintptr_t obj, size_t hash)
{
    if ((sh->n + 1) * 4 > sh->cap * 3) {  /* keep the load under 3/4 */
        size_t cap = sh->cap ? sh->cap * 2 : 64;
        wbgc__special *tab = (wbgc__special *)calloc(cap, sizeof *tab);
        if (!tab) return NULL;
        for (size_t i = 0; i < sh->cap; i++) {
            if (!sh->tab[i].obj) continue;
            size_t j = (wbgc__special_hash(sh->tab[i].obj) >> 6) & (cap - 1);
            while (tab[j].obj) j = (j + 1) & (cap - 1);
            tab[j] = sh->tab[i];
        }
        free(sh->tab);
        sh->tab = tab;
        sh->cap = cap;
    }
    size_t i = (hash >> 6) & (sh->cap - 1);
    while (sh->tab[i].obj) i = (i + 1) & (sh->cap - 1);
    memset(&sh->tab[i], 0, sizeof sh->tab[i]);
    sh->tab[i].obj = obj;
    sh->n++;
    return &sh->tab[i];
}

/* wbgc__special_del deletes record r, moving back the records after it
   that probed past its slot (no tombstones). Shard lock held. */
static void wbgc__special_del(wbgc__shard *sh, wbgc__special *r)
{
    size_t mask = sh->cap - 1, i = (size_t)(r - sh->tab), j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!sh->tab[j].obj) break;
        size_t home = (wbgc__special_hash(sh->tab[j].obj) >> 6) & mask;
        int stays = i < j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            sh->tab[i] = sh->tab[j];
            i = j;
        }
    }
    memset(&sh->tab[i], 0, sizeof sh->tab[i]);
    sh->n--;
}

/* wbgc__special_bit sets or clears obj's bit in its span's specialbits. */
static void wbgc__special_bit(wbgc__span *s, uintptr_t obj, int on)
{
    uint32_t idx = (uint32_t)(((uint64_t)(obj - s->base) * s->divmagic) >> 32);
    uint64_t bit = (uint64_t)1 << (idx & 63);
    if (on) __atomic_fetch_or(&s->specialbits[idx >> 6], bit, __ATOMIC_RELAXED);
    else __atomic_fetch_and(&s->specialbits[idx >> 6], ~bit, __ATOMIC_RELAXED);
}

/* wbgc__scan_finalizable shades what the finalizable object obj points to,
   but not obj itself (a pointer into itself does not keep it alive).
   Returns the bytes scanned. */
static WBGC__NO_SANITIZE uint64_t wbgc__scan_finalizable(wbgc_heap *h, wbgc__gcwork *g,
                                                         uintptr_t obj)
{
    wbgc__span *s = wbgc__span_of(h, obj);
    if (!s || s->kind == WBGC__KIND_NOSCAN) return 0;
    const wbgc_layout *l = NULL;
    if (s->kind == WBGC__KIND_TYPED)
        l = wbgc__layout_of(h, s, (uint32_t)(((uint64_t)(obj - s->base) * s->divmagic) >> 32));
    size_t step = l ? (size_t)l->words * sizeof(uintptr_t) : sizeof(uintptr_t);
    for (uintptr_t rec = obj; rec < obj + s->elemsize; rec += step) {
        for (uint32_t k = 0; k < (l ? l->nptrs : 1); k++) {
            uintptr_t a = rec + (l ? (uintptr_t)l->ptrs[k] * sizeof(uintptr_t) : 0);
            if (a + sizeof(uintptr_t) > obj + s->elemsize) break;
            uintptr_t v = *(const volatile uintptr_t *)a;
            if (v - obj >= s->elemsize) wbgc__shade(h, g, v);
        }
    }
    return s->elemsize;
}

/* wbgc__specials_roots is the root job of the special records and the
   finalizer queue (see the top of this section). Returns the work done. */
static uint64_t wbgc__specials_roots(wbgc_heap *h, wbgc__gcwork *g)
{
    uint64_t done = 0;
    for (int k = 0; k < WBGC__SHARDS; k++) {
        wbgc__shard *sh = &h->specials[k];
        pthread_mutex_lock(&h->specials_gate);
        pthread_mutex_lock(&sh->lock);
        for (size_t i = 0; i < sh->cap; i++) {
            wbgc__special *r = &sh->tab[i];
            if (!r->obj) continue;
            if (r->handle) wbgc__shade(h, g, r->handle);
            if (r->fn) {
                done += wbgc__scan_finalizable(h, g, r->obj);
                wbgc__shade(h, g, (uintptr_t)r->arg);
            }
            done += sizeof *r;
        }
        pthread_mutex_unlock(&sh->lock);
        pthread_mutex_unlock(&h->specials_gate);
    }
    pthread_mutex_lock(&h->specials_gate);
    pthread_mutex_lock(&h->fin_lock);
    for (wbgc__finq *q = h->fin_head; q; q = q->next) {
        wbgc__shade(h, g, q->obj);
        wbgc__shade(h, g, (uintptr_t)q->arg);
        done += sizeof *q;
    }
    pthread_mutex_unlock(&h->fin_lock);
    pthread_mutex_unlock(&h->specials_gate);
    return done;
}

/* wbgc__sweep_specials does the sweep's part for the special records of
   span s's dead objects (see the top of this section): s's mark bits are
   still this cycle's verdict, and s is the caller's (on no list, or under
   the heap lock for a large span). A finalizer that cannot be queued (no
   memory) keeps its object and its record, for the next cycle. Then
   wbgc__specials_done. */
static void wbgc__sweep_specials(wbgc_heap *h, wbgc__span *s)
{
    int queued = 0;
    for (uint32_t w = 0; w < (s->nelems + 63) / 64; w++) {
        uint64_t dead = WBGC__LOAD(s->specialbits[w]) & ~WBGC__LOAD(s->markbits[w]);
        for (uint64_t m = dead; m; m &= m - 1) {
            uint64_t bit = m & -m;
            uintptr_t obj = s->base + (uintptr_t)(w * 64 + (uint32_t)__builtin_ctzll(m)) * s->elemsize;
            size_t hash = wbgc__special_hash(obj);
            wbgc__shard *sh = wbgc__shard_of(h, hash);
            pthread_mutex_lock(&sh->lock);
            wbgc__special *r = wbgc__special_find(sh, obj, hash);
            if (r) {
                if (r->handle) {
                    __atomic_store_n((uintptr_t *)r->handle, (uintptr_t)0, __ATOMIC_RELEASE);
                    r->handle = 0;
                    WBGC__ADD(h->weak_cleared, 1);
                    __atomic_fetch_sub(&h->weak_live, 1, __ATOMIC_RELAXED);
                }
                wbgc__finq *q = r->fn ? (wbgc__finq *)malloc(sizeof *q) : NULL;
                if (r->fn)  /* kept for its finalizer; atomic: a weak get may read the word */
                    __atomic_fetch_or(&s->markbits[w], bit, __ATOMIC_RELAXED);
                if (q) {
                    q->next = NULL;
                    q->obj = obj;
                    q->fn = r->fn;
                    q->arg = r->arg;
                    pthread_mutex_lock(&h->fin_lock);
                    if (h->fin_tail) h->fin_tail->next = q;
                    else h->fin_head = q;
                    h->fin_tail = q;
                    pthread_mutex_unlock(&h->fin_lock);
                    r->fn = NULL;
                    r->arg = NULL;
                    WBGC__ADD(h->fin_queued, 1);
                    __atomic_fetch_sub(&h->fin_pending, 1, __ATOMIC_RELAXED);
                    queued = 1;
                }
            }
            if (r && !r->fn && !r->handle) wbgc__special_del(sh, r), r = NULL;
            if (!r) __atomic_fetch_and(&s->specialbits[w], ~bit, __ATOMIC_RELAXED);
            pthread_mutex_unlock(&sh->lock);
        }
    }
    if (queued) {
        pthread_mutex_lock(&h->fin_lock);
        pthread_cond_broadcast(&h->fin_cv);
        pthread_mutex_unlock(&h->fin_lock);
    }
}

/* wbgc__specials_done stamps s as swept for the last mark as far as weak
   gets are concerned: its dead objects' handles are cleared, and its mark
   bits, about to become allocation bits, are no longer to be read. */
static inline void wbgc__specials_done(wbgc_heap *h, wbgc__span *s)
{
    __atomic_store_n(&s->specials_gen, WBGC__LOAD(h->marks_done), __ATOMIC_RELEASE);
}

/* wbgc__span_has_specials: does any object of s have a special record? */
static inline int wbgc__span_has_specials(const wbgc__span *s)
{
    uint64_t any = 0;
    for (uint32_t w = 0; w < WBGC__BITMAP_WORDS; w++) any |= WBGC__LOAD(s->specialbits[w]);
    return any != 0;
}

/* Ephemerons. The marker scans an ephemeron e its own way
   (wbgc__scan_ephemeron): its key's weak handle is strong; if the key is
   marked, the value is shaded; if not, e waits for the key: pushed (CAS)
   on the key's list in its span's waitheads, an array of list heads, one
   per object, that the first ephemeron to wait on an object of the span
   makes. Marking an object of a span that has one queues it for a scan
   even if it is noscan (wbgc__shade_in), and the scan takes the object's
   list (exchange) and shades the values (wbgc__key_marked). The two meet
   as a store-load pair on each side, all SEQ_CST: the waiter pushes, then
   reads the key's mark bit; the key's marker sets the bit, then reads the
   array and takes the list. So at least one of them sees the other: if
   the marker found no array or an empty list, the waiter sees the bit
   and takes the list itself. No lock and no table: each ephemeron costs a
   CAS when it waits and a share of an exchange when its key is marked,
   once per mark however the chains run. The arrays are freed at their
   span's sweep, before the next mark, so no list outlives its mark. An
   ephemeron made while a cycle marks is born black and not scanned: its
   value lives this cycle (it came from somewhere the barrier covers).
   With no memory for an array, the waiter shades its value (kept one
   cycle more than need be, never lost). */

/* wbgc__eph_shade shades the values of the list of ephemerons at e. */
static void wbgc__eph_shade(wbgc_heap *h, wbgc__gcwork *g, wbgc_ephemeron *e)
{
    for (; e; e = e->waiting) wbgc__shade(h, g, (uintptr_t)WBGC__LOAD(e->value));
}

static void wbgc__scan_ephemeron(wbgc_heap *h, wbgc__gcwork *g, uintptr_t obj)
{
    wbgc_ephemeron *e = (wbgc_ephemeron *)obj;
    wbgc_weak *kh = WBGC__LOAD(e->key);
    if (!kh) return;  /* not filled in yet: born this mark, black */
    wbgc__shade(h, g, (uintptr_t)kh);
    /* The handle is true: no sweep runs while a cycle marks. 0: the key
       died at an earlier cycle, and the value is not looked at. */
    uintptr_t key = __atomic_load_n(&kh->obj, __ATOMIC_ACQUIRE);
    wbgc__span *ks = key ? wbgc__span_of(h, key) : NULL;
    if (!ks) return;
    uint32_t idx = (uint32_t)(((uint64_t)(key - ks->base) * ks->divmagic) >> 32);
    uint64_t bit = (uint64_t)1 << (idx & 63), *mw = &ks->markbits[idx >> 6];
    uintptr_t *heads = (WBGC__LOAD(*mw) & bit) ? NULL : __atomic_load_n(&ks->waitheads, __ATOMIC_SEQ_CST);
    if (!(WBGC__LOAD(*mw) & bit) && !heads) {
        uintptr_t *fresh = (uintptr_t *)calloc(ks->nelems, sizeof *fresh), *none = NULL;
        if (fresh && __atomic_compare_exchange_n(&ks->waitheads, &none, fresh, 0, __ATOMIC_SEQ_CST,
                                                 __ATOMIC_SEQ_CST))
            heads = fresh;
        else
            free(fresh), heads = none;  /* another made it; or no memory: NULL */
    }
    if (!heads) {  /* the key is marked (or no memory): the value now */
        wbgc__shade(h, g, (uintptr_t)WBGC__LOAD(e->value));
        return;
    }
    uintptr_t old = __atomic_load_n(&heads[idx], __ATOMIC_RELAXED);
    do e->waiting = (wbgc_ephemeron *)old;
    while (!__atomic_compare_exchange_n(&heads[idx], &old, (uintptr_t)e, 1, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED));
    if (__atomic_load_n(mw, __ATOMIC_SEQ_CST) & bit)  /* marked meanwhile */
        wbgc__eph_shade(h, g, (wbgc_ephemeron *)__atomic_exchange_n(&heads[idx], 0, __ATOMIC_SEQ_CST));
}

static void wbgc__key_marked(wbgc_heap *h, wbgc__gcwork *g, uintptr_t *heads, uint32_t idx)
{
    if (__atomic_load_n(&heads[idx], __ATOMIC_SEQ_CST))
        wbgc__eph_shade(h, g, (wbgc_ephemeron *)__atomic_exchange_n(&heads[idx], 0, __ATOMIC_SEQ_CST));
}

/* wbgc__waitheads_free frees s's waiting lists: its sweep, or a forked
   child's new mark (the lists were of marks it forgets). */
static void wbgc__waitheads_free(wbgc__span *s)
{
    free(s->waitheads);
    s->waitheads = NULL;
}

/* wbgc__fin_run runs up to max queued finalizers (0: until none is
   queued) on p, oldest first. One taken off the queue during a mark is
   shaded first: the queue was a root, p's stack may be black. */
static size_t wbgc__fin_run(wbgc_p *p, size_t max)
{
    wbgc_heap *h = p->heap;
    size_t n = 0;
    for (; !max || n < max; n++) {
        pthread_mutex_lock(&h->fin_lock);
        wbgc__finq *q = h->fin_head;
        if (q) {
            h->fin_head = q->next;
            if (!h->fin_head) h->fin_tail = NULL;
        }
        pthread_mutex_unlock(&h->fin_lock);
        if (!q) break;
        void *obj = (void *)q->obj, *arg = q->arg;
        wbgc_finalizer fn = q->fn;
        free(q);
        if (WBGC__LOAD(h->phase) == WBGC__PHASE_MARK) {
            wbgc__shade(h, &p->gcw, (uintptr_t)obj);
            wbgc__shade(h, &p->gcw, (uintptr_t)arg);
        }
        fn(p, obj, arg);
        WBGC__ADD(h->fin_run, 1);
    }
    return n;
}

/* wbgc__fin_main: the finalizer thread (unless WBGC_FINALIZE_ON_DEMAND).
   It holds a P of its own and waits for finalizers inside a blocking
   region, so that it never holds up a collection. */
static void *wbgc__fin_main(void *arg)
{
    wbgc_heap *h = (wbgc_heap *)arg;
    wbgc_p *p = wbgc_attach(h);
    pthread_mutex_lock(&h->fin_lock);
    h->fin_p = p;
    pthread_cond_broadcast(&h->fin_cv);
    pthread_mutex_unlock(&h->fin_lock);
    if (!p) return NULL;
    for (;;) {
        wbgc__fin_run(p, 0);
        wbgc_blocking_begin(p);
        pthread_mutex_lock(&h->fin_lock);
        while (!h->fin_head && !h->fin_shutdown) pthread_cond_wait(&h->fin_cv, &h->fin_lock);
        int stop = h->fin_shutdown;
        pthread_mutex_unlock(&h->fin_lock);
        wbgc_blocking_end(p);
        if (stop) break;
    }
    wbgc_detach(p);
    return NULL;
}

/* wbgc__fin_start starts the finalizer thread if the heap runs one and it
   has not started (in a forked child: not since the fork). Returns 0, or
   -1 after reporting that it could not. Holding no lock but gc_lock. */
static int wbgc__fin_start(wbgc_heap *h)
{
    if (h->cfg.flags & WBGC_FINALIZE_ON_DEMAND) return 0;
    pthread_mutex_lock(&h->fin_lock);
    int err = 0;
    if (!h->fin_started) {
        h->fin_shutdown = 0;
        h->fin_p = NULL;
        err = pthread_create(&h->fin_thread, NULL, wbgc__fin_main, h);
        h->fin_started = err == 0;
    }
    pthread_mutex_unlock(&h->fin_lock);
    if (err) {
        wbgc__report(h, "wbgc: error: cannot start the finalizer thread: %s", strerror(err));
        return -1;
    }
    return 0;
}

/* wbgc__fin_stop makes the finalizer thread exit (detaching its P), and
   waits for it. Queued finalizers stay queued. */
static void wbgc__fin_stop(wbgc_heap *h)
{
    pthread_mutex_lock(&h->fin_lock);
    int started = h->fin_started;
    h->fin_shutdown = 1;
    h->fin_started = 0;
    pthread_cond_broadcast(&h->fin_cv);
    pthread_mutex_unlock(&h->fin_lock);
    if (started) pthread_join(h->fin_thread, NULL);
}

/* =========================================================================
   Verifier (WBGC_VERIFY)
   ========================================================================= */

/* wbgc__verify checks the mark that just ended, as Go's gccheckmark does:
   in the final pause, after marking found no work left and before anything
   is swept, it marks the heap again from the roots, world stopped, into
   bits of its own (vbits), with code of its own (span lookup, object index
   by division, an explicit stack of objects), and compares. At that point
   every marked object is black, so a word of a marked object, or of a root
   region, that points into an allocated object the mark left white breaks
   INV-TRICOLOUR for good: the sweep would free an object the program can
   still reach. That is a lost object, and it is reported.
   Stack words and saved registers are followed (to reach what only they
   hold) but an unmarked object found directly from one is not reported: a
   conservative scan cannot tell a live word from a stale one (a dead
   frame's slot, an argument register a variadic call saved, a register
   the barrier's trampoline spilled, pointing to an object that died before
   the cycle), and such objects are what the sweep is for. Measured: in the
   stress test about one cycle in 300 ends with such a word, even counting
   only the part of a stack that the cycle's scan covered. (Two ways to
   tell them apart were tried and dropped for false reports: keeping such
   objects one more cycle and reporting any that a marked object or a
   barrier entry then held, since garbage kept alive by a stale word is
   marked, and can be reached, like anything else.) A pointer lost while
   only a black stack holds it (what a missing deletion barrier does) is
   caught another way: every object a drained barrier entry obliged the
   drain to shade (wbgc__v_note_entries) must be marked (wbgc__v_owed).
   What the stack scan must have seen is
   checked too: a P whose stack was not scanned this cycle is reported
   itself. What could be reported falsely: a plain store of an integer that
   looks like a pointer to a dead object, into a scanned object after its
   scan.
   Each loss goes to on_error as "wbgc: fatal: verifier: ..." with the
   object (address, size, span) and the word that points to it (which root
   or object, and where); the default handler aborts. A handler that returns
   lets the cycle go on with every object the verifier reached marked, so
   nothing is freed under the program. World stopped; a calling P's context
   saved in a frame that outlives the call. */

typedef struct wbgc__verifier {
    wbgc_heap *h;
    uintptr_t *stack;          /* objects to scan; bit 0: the object is marked */
    size_t     n, cap;
    int        oom;
    uint64_t   objects, lost;
    uintptr_t  seen_lost[64];  /* lost objects reported (others: counted again) */
    uintptr_t *eph;            /* ephemerons reached whose keys were not yet;
                                  bit 0: the ephemeron is marked */
    size_t     neph, eph_cap;
    int        nmsg;
    char       msg[4][640];
} wbgc__verifier;

/* wbgc__v_object finds the allocated object holding v, its own way (the
   marker's index is a multiply and shift; here it is a division). Returns
   its span and index, or NULL. */
static wbgc__span *wbgc__v_object(wbgc_heap *h, uintptr_t v, size_t *idx)
{
    wbgc__span *s = wbgc__get_page(h, v);
    if (!s || s->state != WBGC__SPAN_INUSE) return NULL;
    if (v < s->base || v - s->base >= (s->npages << WBGC__PAGE_SHIFT)) return NULL;
    size_t i = (v - s->base) / s->elemsize;
    if (i >= s->nelems || !((s->allocbits[i / 64] >> (i % 64)) & 1)) return NULL;
    *idx = i;
    return s;
}

/* wbgc__v_where describes the word at `at` that a lost object was found
   through: in a root region, a stack, or an object. */
static void wbgc__v_where(wbgc_heap *h, uintptr_t at, uintptr_t from, char *buf, size_t len)
{
    size_t i;
    wbgc__span *s = from ? wbgc__v_object(h, from, &i) : NULL;
    if (s) {
        snprintf(buf, len, "object %#lx (%zu bytes, marked) at offset %lu", (unsigned long)from,
                 s->elemsize, (unsigned long)(at - from));
        return;
    }
    for (size_t r = 0; r < h->nroots; r++)
        if (at >= h->roots[r].lo && at < h->roots[r].hi) {
            snprintf(buf, len, "root region [%#lx, %#lx) at offset %lu",
                     (unsigned long)h->roots[r].lo, (unsigned long)h->roots[r].hi,
                     (unsigned long)(at - h->roots[r].lo));
            return;
        }
    for (wbgc_p *q = h->ps; q; q = q->next)
        if (at >= q->stack_lo && at < q->stack_hi) {
            snprintf(buf, len, "the stack of P %p (thread %#lx) at %#lx, %lu bytes below its base",
                     (void *)q, wbgc__thread_id(q->thread), (unsigned long)at,
                     (unsigned long)(q->stack_hi - at));
            return;
        }
    snprintf(buf, len, "%#lx", (unsigned long)at);
}

/* wbgc__v_word follows the word at `at`, holding v: from a root region or
   a marked object (`from`: the object, 0 for a root) when `sure`; else from
   a stack, registers or an unmarked object, whose words may be stale. */
static void wbgc__v_word(wbgc__verifier *V, uintptr_t at, uintptr_t v, uintptr_t from, int sure)
{
    size_t i;
    wbgc__span *s = wbgc__v_object(V->h, v, &i);
    if (!s) return;
    uint64_t bit = (uint64_t)1 << (i % 64);
    int marked = (s->markbits[i / 64] & bit) != 0, seen = (s->vbits[i / 64] & bit) != 0;
    uintptr_t obj = s->base + i * s->elemsize;
    if (!marked && sure && seen) {  /* reached first from a stack: lost all the same */
        for (uint64_t k = 0; k < V->lost && k < 64; k++)
            if (V->seen_lost[k] == obj) return;
    } else if (seen) {
        return;
    }
    s->vbits[i / 64] |= bit;
    V->objects += !seen;
    if (!marked && sure) {
        if (V->lost < 64) V->seen_lost[V->lost] = obj;
        if (V->nmsg < (int)(sizeof V->msg / sizeof V->msg[0])) {
            char where[256];
            wbgc__v_where(V->h, at, from, where, sizeof where);
            snprintf(V->msg[V->nmsg++], sizeof V->msg[0],
                     "wbgc: fatal: verifier: cycle %llu: object %#lx (%zu bytes, %s, span %#lx) is "
                     "reachable but the mark left it white, so the sweep would free it: %s holds "
                     "%#lx, which points into it",
                     (unsigned long long)WBGC__LOAD(V->h->cycles) + 1, (unsigned long)obj,
                     s->elemsize,
                     s->kind == WBGC__KIND_NOSCAN ? "noscan"
                     : s->kind == WBGC__KIND_TYPED ? "typed" : "scanned",
                     (unsigned long)s->base, where,
                     (unsigned long)v);
        }
        V->lost++;
    }
    if (s->kind == WBGC__KIND_NOSCAN || seen) return;
    if (V->n == V->cap) {
        size_t cap = V->cap ? V->cap * 2 : 4096;
        uintptr_t *a = (uintptr_t *)realloc(V->stack, cap * sizeof *a);
        if (!a) {
            V->oom = 1;
            return;
        }
        V->stack = a;
        V->cap = cap;
    }
    V->stack[V->n++] = obj | (uintptr_t)marked;  /* objects are 16-byte aligned */
}

static WBGC__NO_SANITIZE void wbgc__v_range(wbgc__verifier *V, uintptr_t lo, uintptr_t hi,
                                           uintptr_t from, int sure)
{
    uintptr_t hlo = V->h->lo, hhi = V->h->hi;
    lo = (lo + sizeof(uintptr_t) - 1) & ~(uintptr_t)(sizeof(uintptr_t) - 1);
    for (uintptr_t a = lo; a + sizeof(uintptr_t) <= hi; a += sizeof(uintptr_t)) {
        uintptr_t v = *(const volatile uintptr_t *)a;
        if (v - hlo < hhi - hlo) wbgc__v_word(V, a, v, from, sure);
    }
}

/* wbgc__v_typed follows the words of typed object obj (object i of s)
   that its layout names, its own way: word by word, each word's place in
   its record by division, looked up in the layout's bitmap (the marker
   walks the list of pointer offsets). The ephemeron's layout: every word,
   as the marker does until it has wbgc__scan_ephemeron. */
/* wbgc__v_eph_value follows ephemeron e's value if its key was reached;
   returns 0 if not (the key was not reached yet). Sure when e and its key
   are both marked: then the mark had to mark the value too. */
static int wbgc__v_eph_value(wbgc__verifier *V, const wbgc_ephemeron *e, int sure)
{
    uintptr_t key = e->key ? e->key->obj : 0;
    size_t ki;
    wbgc__span *ks = key ? wbgc__v_object(V->h, key, &ki) : NULL;
    if (!ks) return 1;  /* dead key: the value is not the ephemeron's to keep */
    if (!((ks->vbits[ki / 64] >> (ki % 64)) & 1)) return 0;
    int key_marked = (int)((ks->markbits[ki / 64] >> (ki % 64)) & 1);
    uintptr_t v = (uintptr_t)e->value;
    if (v - V->h->lo < V->h->hi - V->h->lo)
        wbgc__v_word(V, (uintptr_t)&e->value, v, (uintptr_t)e, sure && key_marked);
    return 1;
}

/* wbgc__v_ephemeron follows ephemeron obj: its key's handle always, its
   value once the key is reached (else it waits in V->eph). */
static void wbgc__v_ephemeron(wbgc__verifier *V, uintptr_t obj, int sure)
{
    const wbgc_ephemeron *e = (const wbgc_ephemeron *)obj;
    if (e->key) wbgc__v_word(V, (uintptr_t)&e->key, (uintptr_t)e->key, obj, sure);
    if (wbgc__v_eph_value(V, e, sure)) return;
    if (V->neph == V->eph_cap) {
        size_t cap = V->eph_cap ? V->eph_cap * 2 : 1024;
        uintptr_t *a = (uintptr_t *)realloc(V->eph, cap * sizeof *a);
        if (!a) {
            V->oom = 1;
            return;
        }
        V->eph = a;
        V->eph_cap = cap;
    }
    V->eph[V->neph++] = obj | (uintptr_t)(sure != 0);
}

static WBGC__NO_SANITIZE void wbgc__v_typed(wbgc__verifier *V, wbgc__span *s, size_t i,
                                            uintptr_t obj, int sure)
{
    size_t id = s->layout_ids ? s->layout_ids[i] : s->layout;
    if (id == WBGC__LAYOUT_EPHEMERON) {
        wbgc__v_ephemeron(V, obj, sure);
        return;
    }
    const wbgc_layout *l = V->h->layouts[id];
    uintptr_t hlo = V->h->lo, hhi = V->h->hi;
    for (size_t w = 0; w < s->elemsize / sizeof(uintptr_t); w++) {
        size_t k = w % l->words;
        if (!((l->bits[k / 64] >> (k % 64)) & 1)) continue;
        uintptr_t a = obj + w * sizeof(uintptr_t), v = *(const volatile uintptr_t *)a;
        if (v - hlo < hhi - hlo) wbgc__v_word(V, a, v, obj, sure);
    }
}

/* wbgc__v_drain scans the objects on the verifier's stack, and what they
   reach, each object's words followed as sure when it is marked. */
static void wbgc__v_drain(wbgc__verifier *V)
{
    while (V->n) {
        uintptr_t e = V->stack[--V->n], obj = e & ~(uintptr_t)1;
        size_t i;
        wbgc__span *s = wbgc__v_object(V->h, obj, &i);
        if (s->kind == WBGC__KIND_TYPED) wbgc__v_typed(V, s, i, obj, (int)(e & 1));
        else wbgc__v_range(V, obj, obj + s->elemsize, obj, (int)(e & 1));
    }
}

/* wbgc__v_specials follows what the special records and the finalizer
   queue hold, as their root job does (section "Finalizers and weak
   references"): weak handles, what a finalizable object points to (not
   into itself), finalizer arguments, queued objects. World stopped: no P
   changes them, no sweep runs. */
static WBGC__NO_SANITIZE void wbgc__v_specials(wbgc__verifier *V)
{
    wbgc_heap *h = V->h;
    for (int k = 0; k < WBGC__SHARDS; k++) {
        wbgc__shard *sh = &h->specials[k];
        for (size_t i = 0; i < sh->cap; i++) {
            wbgc__special *r = &sh->tab[i];
            size_t idx;
            wbgc__span *s = r->obj ? wbgc__v_object(h, r->obj, &idx) : NULL;
            if (!s) continue;
            if (r->handle) wbgc__v_word(V, (uintptr_t)&r->handle, r->handle, 0, 1);
            if (!r->fn) continue;
            wbgc__v_word(V, (uintptr_t)&r->arg, (uintptr_t)r->arg, 0, 1);
            size_t id = s->kind != WBGC__KIND_TYPED ? 0 : s->layout_ids ? s->layout_ids[idx] : s->layout;
            const wbgc_layout *l = id > WBGC__LAYOUT_EPHEMERON ? h->layouts[id] : NULL;
            for (uintptr_t a = r->obj; s->kind != WBGC__KIND_NOSCAN && a < r->obj + s->elemsize;
                 a += sizeof(uintptr_t)) {
                size_t w = (a - r->obj) / sizeof(uintptr_t);
                if (l && !((l->bits[w % l->words / 64] >> (w % l->words % 64)) & 1)) continue;
                uintptr_t v = *(const volatile uintptr_t *)a;
                if (v - r->obj >= s->elemsize) wbgc__v_word(V, a, v, 0, 1);
            }
        }
    }
    for (wbgc__finq *q = h->fin_head; q; q = q->next) {
        wbgc__v_word(V, (uintptr_t)&q->obj, q->obj, 0, 1);
        wbgc__v_word(V, (uintptr_t)&q->arg, (uintptr_t)q->arg, 0, 1);
    }
}

/* wbgc__v_each_span calls fn(V, s) on every in-use span, under the heap
   lock. World stopped. */
static void wbgc__v_each_span(wbgc__verifier *V, void (*fn)(wbgc__verifier *, wbgc__span *))
{
    wbgc_heap *h = V->h;
    pthread_mutex_lock(&h->lock);
    for (wbgc__arena *a = h->arenas; a; a = a->next) {
        for (size_t i = 0; i < WBGC__ARENA_PAGES; i++) {
            wbgc__span *s = a->pages[i];
            if (s && s->state == WBGC__SPAN_INUSE && s->base == a->base + (i << WBGC__PAGE_SHIFT))
                fn(V, s);
        }
    }
    pthread_mutex_unlock(&h->lock);
}

/* wbgc__v_owed: every object a barrier entry obliged a drain to shade
   this mark phase (owedbits) must be marked; one left white is reported
   as lost, and counted. Then the owed bits are cleared. Run on every span
   before wbgc__v_end. */
static void wbgc__v_owed(wbgc__verifier *V, wbgc__span *s)
{
    for (uint32_t w = 0; w < (s->nelems + 63) / 64; w++) {
        uint64_t white = s->owedbits[w] & s->allocbits[w] & ~s->markbits[w];
        s->owedbits[w] = 0;
        for (; white; white &= white - 1) {
            uintptr_t obj = s->base + (w * 64 + (uint32_t)__builtin_ctzll(white)) * s->elemsize;
            V->lost++;
            s->vbits[w] |= white & -white;  /* kept if the handler returns */
            if (V->nmsg < (int)(sizeof V->msg / sizeof V->msg[0]))
                snprintf(V->msg[V->nmsg++], sizeof V->msg[0],
                         "wbgc: fatal: verifier: cycle %llu: object %#lx (%zu bytes, span "
                         "%#lx) is white at the end of marking, though a barrier entry "
                         "drained this cycle named it (an overwritten pointer, or one "
                         "stored while its writer's stack was grey): the barrier's "
                         "shading lost it, and whatever still holds it (a stack, perhaps "
                         "only a stack) would see it freed",
                         (unsigned long long)WBGC__LOAD(V->h->cycles) + 1, (unsigned long)obj,
                         (size_t)s->elemsize, (unsigned long)s->base);
        }
    }
}

/* wbgc__v_end ends a verification on every span: its vbits cleared, and,
   when objects were lost, whatever the verifier reached marked too. */
static void wbgc__v_end(wbgc__verifier *V, wbgc__span *s)
{
    for (uint32_t w = 0; w < (s->nelems + 63) / 64; w++) {
        if (V->lost) s->markbits[w] |= s->vbits[w];
        s->vbits[w] = 0;
    }
}

static WBGC__NOINLINE void wbgc__verify(wbgc_heap *h, int concurrent)
{
    uint64_t t0 = wbgc__now_ns();
    wbgc__verifier V;
    memset(&V, 0, sizeof V);
    V.h = h;
    int unscanned = 0;
    char why[640] = "";
    pthread_mutex_lock(&h->roots_lock);
    for (size_t r = 0; r < h->nroots; r++) wbgc__v_range(&V, h->roots[r].lo, h->roots[r].hi, 0, 1);
    pthread_mutex_unlock(&h->roots_lock);
    wbgc__v_specials(&V);
    wbgc__v_drain(&V);
    if (!(h->cfg.flags & WBGC_NO_STACK_SCAN)) {
        for (wbgc_p *q = h->ps; q; q = q->next) {
            if (concurrent && !q->stack_black) {
                if (!unscanned++)
                    snprintf(why, sizeof why, "wbgc: fatal: verifier: cycle %llu: the stack of P %p "
                             "(thread %#lx) was not scanned this cycle: whatever only it holds "
                             "would be freed", (unsigned long long)WBGC__LOAD(h->cycles) + 1,
                             (void *)q, wbgc__thread_id(q->thread));
                continue;
            }
            if (q->saved_sp >= q->stack_lo && q->saved_sp <= q->stack_hi)
                wbgc__v_range(&V, q->saved_sp, q->stack_hi, 0, 0);
            wbgc__v_range(&V, (uintptr_t)q->ctx, (uintptr_t)(q->ctx + WBGC__CTX_SP), 0, 0);
            wbgc__v_range(&V, (uintptr_t)&q->jb, (uintptr_t)&q->jb + sizeof q->jb, 0, 0);
        }
    }
    wbgc__v_drain(&V);
    /* Ephemerons whose keys were reached later: their values, and what
       those reach, until nothing more is (a fixpoint, like the mark's) */
    for (int more = 1; more;) {
        more = 0;
        for (size_t k = 0; k < V.neph;) {
            if (wbgc__v_eph_value(&V, (const wbgc_ephemeron *)(V.eph[k] & ~(uintptr_t)1),
                                  (int)(V.eph[k] & 1))) {
                V.eph[k] = V.eph[--V.neph];
                wbgc__v_drain(&V);  /* may reach keys that later entries wait on */
                more = 1;
            } else {
                k++;
            }
        }
    }
    free(V.eph);
    free(V.stack);
    wbgc__v_each_span(&V, wbgc__v_owed);
    wbgc__v_each_span(&V, wbgc__v_end);
    uint64_t dt = wbgc__now_ns() - t0;
    pthread_mutex_lock(&h->stats_lock);
    h->verify_runs++;
    h->verify_lost += V.lost;
    h->verify_ns += dt;
    pthread_mutex_unlock(&h->stats_lock);
    if (V.oom) wbgc__report(h, "wbgc: error: verifier: out of memory for its mark stack; this "
                            "cycle was verified only in part");
    if (unscanned) wbgc__report(h, "%s%s", why, unscanned > 1 ? " (and other Ps)" : "");
    for (int k = 0; k < V.nmsg; k++)
        wbgc__report(h, "%s (%llu lost objects this cycle; %llu objects reached)", V.msg[k],
                     (unsigned long long)V.lost, (unsigned long long)V.objects);
}

/* =========================================================================
   Termination
   ========================================================================= */

static void wbgc__record_pause(wbgc_heap *h, uint64_t ns);
static void wbgc__pace(wbgc_heap *h, uint64_t live);
static void wbgc__trigger_feedback(wbgc_heap *h);
static void wbgc__unsweep_all(wbgc_heap *h);
static void wbgc__links_sweep(wbgc_heap *h);
static void wbgc__rescan_roots(wbgc_heap *h);

/* wbgc__quiescent: no root job left, no global work, no marker holding
   work taken from the global lists. P-local work (barrier buffers, a P's
   gcWork) is not seen here: the hand-shake and the final stop check it. */
static int wbgc__quiescent(wbgc_heap *h)
{
    if (__atomic_load_n(&h->roots_state, __ATOMIC_ACQUIRE) != 2) return 0;
    if (__atomic_load_n(&h->stacks_pending, __ATOMIC_ACQUIRE) != 0) return 0;
    pthread_mutex_lock(&h->work_lock);
    int q = h->work_full == NULL && h->nactive == 0;
    pthread_mutex_unlock(&h->work_lock);
    return q;
}

static int wbgc__p_has_work(wbgc_p *p)
{
    return p->fast.wb_next != p->wbbuf || !wbgc__gcw_empty(&p->gcw);
}

/* wbgc__handshake_flush asks every P to hand over its barrier buffer and
   mark work (ragged: each at its own next safepoint; blocked Ps are done on
   their behalf) and returns when all have. self (may be NULL) does its own
   at once and counts as blocked while it waits. markdone_lock held. */
static WBGC__NOINLINE void wbgc__handshake_flush(wbgc_heap *h, wbgc_p *self)
{
    pthread_mutex_lock(&h->sched_lock);
    for (wbgc_p *q = h->ps; q; q = q->next) {
        q->req |= WBGC__REQ_FLUSH;
        wbgc__update_preempt(h, q);
    }
    pthread_mutex_unlock(&h->sched_lock);
    if (self) {
        wbgc__flush_p(h, self);
        WBGC__SAVE_CONTEXT(self);
    }
    pthread_mutex_lock(&h->sched_lock);
    if (self) {
        self->req &= ~WBGC__REQ_FLUSH;
        self->status = WBGC__P_BLOCKED;
        pthread_cond_broadcast(&h->parked_cv);
    }
    uint64_t t0 = wbgc__now_ns();
    int reported = 0;
    for (;;) {
        uint32_t got;
        wbgc_p *q = wbgc__take_blocked(h, WBGC__REQ_FLUSH, &got);
        if (q) {
            pthread_mutex_unlock(&h->sched_lock);
            wbgc__flush_p(h, q);
            pthread_mutex_lock(&h->sched_lock);
            wbgc__give_back(h, q, got);
            continue;
        }
        int pending = 0;
        for (wbgc_p *r = h->ps; r; r = r->next) pending += wbgc__flush_holder(r, self);
        if (!pending) break;
        wbgc__wait_for_ps(h, self, t0, &reported, "the hand-shake that ends marking",
                          wbgc__flush_holder);
    }
    if (self) wbgc__wake_blocked(h, self);
    pthread_mutex_unlock(&h->sched_lock);
}

/* wbgc__mark_termination ends the mark phase. World stopped, every barrier
   buffer and gcWork empty, quiescent, the phase already closed (under
   roots_lock, by the caller). O(Ps): turns the barrier off, stops
   allocating black, hands every P's cached spans to the sweep, and makes
   every swept span list unswept (a few pointer moves per size class). */
static void wbgc__mark_termination(wbgc_heap *h)
{
    wbgc__links_sweep(h);
    WBGC__STORE(h->marks_done, h->marks_done + 1);
    wbgc__unsweep_all(h);
    for (wbgc_p *q = h->ps; q; q = q->next) {
        WBGC_ASSERT(!wbgc__p_has_work(q));  /* INV-WBBUF */
        q->fast.wb_on = (h->cfg.flags & WBGC_CHECK) != 0;
        q->alloc_black = 0;
        q->assist_debt = 0;
        WBGC__ADD(h->cycle_marked, q->black_bytes + q->gcw.bytes_marked);
        q->black_bytes = q->gcw.bytes_marked = 0;
        wbgc__release_caches(h, q, 1);
    }
    wbgc__trigger_feedback(h);
    wbgc__pace(h, WBGC__LOAD(h->cycle_marked));
}

/* wbgc__cycle_done counts a completed cycle and wakes whoever waits for
   one (wbgc_collect). Its trace line, if any, is printed before. */
static void wbgc__cycle_done(wbgc_heap *h)
{
    pthread_mutex_lock(&h->stats_lock);
    WBGC__STORE(h->cycles, h->cycles + 1);  /* read without the lock too */
    pthread_mutex_unlock(&h->stats_lock);
    pthread_mutex_lock(&h->sched_lock);
    pthread_cond_broadcast(&h->cycle_cv);
    pthread_mutex_unlock(&h->sched_lock);
}

static void wbgc__trace_cycle(wbgc_heap *h, const char *kind, uint64_t t0, uint64_t t_end,
                              uint64_t pause1, uint64_t pause2, uint64_t before, const char *why);

/* wbgc__try_mark_done ends the mark phase if no work is left anywhere:
   first a ragged flush of every P (PITFALLS 10), then a stop of the world
   that flushes every buffer once more; if a barrier ran after the flush and
   greyed an object (PITFALLS 3), the world restarts and marking goes on.
   self (may be NULL) is the calling P. Called holding no lock. */
static WBGC__NOINLINE void wbgc__try_mark_done(wbgc_heap *h, wbgc_p *self)
{
    if (WBGC__LOAD(h->phase) != WBGC__PHASE_MARK || !wbgc__quiescent(h)) return;
    wbgc__lock_as_blocked(h, self, &h->markdone_lock);
    if (WBGC__LOAD(h->phase) != WBGC__PHASE_MARK || !wbgc__quiescent(h)) {
        pthread_mutex_unlock(&h->markdone_lock);
        return;
    }
    wbgc__handshake_flush(h, self);
    if (!wbgc__quiescent(h)) {
        pthread_mutex_unlock(&h->markdone_lock);
        pthread_cond_broadcast(&h->work_cv);
        return;
    }
    wbgc__lock_as_blocked(h, self, &h->gc_lock);
    uint64_t t0 = wbgc__now_ns();
    wbgc__stop_world(h, self);
    /* Shade what the barriers appended since the hand-over; marking is done
       unless that greyed something (a buffer of marked objects is no
       reason to restart: a P that keeps storing always has one). */
    for (wbgc_p *q = h->ps; q; q = q->next)
        if (wbgc__p_has_work(q)) wbgc__flush_p(h, q);
    wbgc__rescan_roots(h);
    /* Decided under roots_lock, with the phase closed in the same hold: a
       root region that a thread without a P adds or removes meanwhile has
       either greyed what it holds before this look, or sees the phase off
       (wbgc__roots_changed). */
    pthread_mutex_lock(&h->roots_lock);
    int more = !wbgc__quiescent(h);
    if (!more) WBGC__STORE(h->phase, WBGC__PHASE_OFF);
    pthread_mutex_unlock(&h->roots_lock);
    if (!more && (h->cfg.flags & WBGC_VERIFY)) {
        if (self) WBGC__SAVE_CONTEXT(self);  /* this frame outlives the check */
        wbgc__verify(h, 1);
    }
    uint64_t before = wbgc__heap_estimate(h);
    uint64_t mark_start = h->mark_start_ns, pause1 = h->start_pause_ns;  /* gc_lock held */
    const char *why = h->start_why;
    if (!more) wbgc__mark_termination(h);
    uint64_t t_end = wbgc__now_ns();
    wbgc__start_world(h);
    wbgc__record_pause(h, t_end - t0);
    pthread_mutex_unlock(&h->gc_lock);
    pthread_mutex_unlock(&h->markdone_lock);
    pthread_mutex_lock(&h->sched_lock);
    if (!more) h->sweep_pending = 1;
    pthread_cond_broadcast(&h->work_cv);
    pthread_mutex_unlock(&h->sched_lock);
    if (more) return;
    if (h->cfg.flags & WBGC_TRACE)
        wbgc__trace_cycle(h, "concurrent", mark_start, t_end, pause1, t_end - t0, before, why);
    wbgc__cycle_done(h);
}

/* =========================================================================
   Sweep
   ========================================================================= */

enum { WBGC__SWEPT_FREE, WBGC__SWEPT_PARTIAL, WBGC__SWEPT_FULL };

/* wbgc__sweep_span: a small span's mark bits become its allocation bits.
   s is on no list: the caller owns it, and gives it back to the page heap
   (wbgc__pages_free) when this finds it empty. Returns what it found. */
static int wbgc__sweep_span(wbgc_heap *h, wbgc__span *s)
{
    if (WBGC__UNLIKELY(wbgc__span_has_specials(s))) wbgc__sweep_specials(h, s);
    wbgc__specials_done(h, s);
    if (WBGC__UNLIKELY(s->waitheads != NULL)) wbgc__waitheads_free(s);  /* this mark's lists */
    uint32_t words = (s->nelems + 63) / 64, nalloc = 0, nlive = 0;
    for (uint32_t w = 0; w < words; w++) {
        nalloc += (uint32_t)__builtin_popcountll(s->allocbits[w]);
        nlive += (uint32_t)__builtin_popcountll(s->markbits[w]);
        WBGC_ASSERT((s->markbits[w] & ~s->allocbits[w]) == 0);  /* marks only allocated */
    }
    WBGC__ADD(h->freed_total, (uint64_t)(nalloc - nlive) * s->elemsize);
    if (h->cfg.flags & WBGC_CHECK) {  /* poison every object freed here */
        for (uint32_t w = 0; w < words; w++) {
            for (uint64_t dead = s->allocbits[w] & ~s->markbits[w]; dead; dead &= dead - 1) {
                uint32_t idx = w * 64 + (uint32_t)__builtin_ctzll(dead);
                memset((void *)(s->base + idx * s->elemsize), WBGC__POISON, s->elemsize);
            }
        }
    } else if (nlive && nlive < nalloc && !s->needzero) {
        /* INV-ZERO kept here, off the allocation path: the dead objects are
           zeroed (by the background sweeper, mostly) so the span stays
           clean. Unreachable, so nobody reads them meanwhile. */
        uint64_t dead[WBGC__BITMAP_WORDS] = {0};
        for (uint32_t w = 0; w < words; w++) dead[w] = s->allocbits[w] & ~s->markbits[w];
        wbgc__zero_slots(s, dead);
    }
    if (nlive == 0) return WBGC__SWEPT_FREE;  /* the caller frees its pages */
    for (uint32_t w = 0; w < words; w++) {
        WBGC__STORE(s->allocbits[w], s->markbits[w]);  /* relaxed: check mode reads it */
        /* INV-MARKCLEAR. RELEASE: a weak get that reads the cleared word
           sees the stamp made before (wbgc__weak_obj) */
        __atomic_store_n(&s->markbits[w], 0, __ATOMIC_RELEASE);
    }
    s->freeindex = 0;
    if (nlive < nalloc && (h->cfg.flags & WBGC_CHECK)) s->needzero = 1;  /* INV-ZERO */
    return nlive == s->nelems ? WBGC__SWEPT_FULL : WBGC__SWEPT_PARTIAL;
}

/* wbgc__sweep_one sweeps one unswept span of class spc and files it. Returns
   0 when the class had none. With kept non-NULL and *kept NULL, a span
   with free slots is left in *kept instead of filed (for the allocator). */
static int wbgc__sweep_one(wbgc_heap *h, uint32_t spc, wbgc__span **kept)
{
    wbgc__central *c = &h->central[spc];
    wbgc__span *s = NULL;
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < 3 && !s; i++) s = wbgc__list_pop(&c->unswept[i]);
    if (s) __atomic_fetch_add(&h->sweep_active, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&c->lock);
    if (!s) return 0;
    int r = wbgc__sweep_span(h, s);
    if (r == WBGC__SWEPT_FREE) {
        pthread_mutex_lock(&h->lock);
        wbgc__pages_free(h, s, WBGC__LOAD(h->cycles));
        pthread_mutex_unlock(&h->lock);
    } else {
        if (r == WBGC__SWEPT_PARTIAL && kept && !*kept) {
            *kept = s;
        } else {
            pthread_mutex_lock(&c->lock);
            wbgc__list_push(r == WBGC__SWEPT_FULL ? &c->full : &c->partial, s);
            pthread_mutex_unlock(&c->lock);
        }
    }
    __atomic_fetch_sub(&h->sweep_active, 1, __ATOMIC_RELEASE);
    return 1;
}

/* wbgc__sweep_batch sweeps up to WBGC__SWEEP_BATCH unswept spans of class
   spc, taking each lock once for all of them: the central lock to take
   them and to file them, the heap lock to free the empty ones. Looping on
   one span at a time, a sweeper that frees span after span (the live set
   just shrank) takes the heap lock tens of thousands of times a second,
   and a mutator that waits for it can wait for milliseconds. Returns how
   many it swept: 0 when the class had none. */
#define WBGC__SWEEP_BATCH 16

static int wbgc__sweep_batch(wbgc_heap *h, uint32_t spc)
{
    wbgc__central *c = &h->central[spc];
    wbgc__span *batch[WBGC__SWEEP_BATCH];
    int n = 0;
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < 3; i++)
        while (n < WBGC__SWEEP_BATCH && c->unswept[i]) batch[n++] = wbgc__list_pop(&c->unswept[i]);
    if (n) __atomic_fetch_add(&h->sweep_active, n, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&c->lock);
    if (!n) return 0;
    int result[WBGC__SWEEP_BATCH], nfree = 0;
    for (int i = 0; i < n; i++) {
        result[i] = wbgc__sweep_span(h, batch[i]);
        nfree += result[i] == WBGC__SWEPT_FREE;
    }
    if (nfree) {
        uint64_t cycle = WBGC__LOAD(h->cycles);
        pthread_mutex_lock(&h->lock);
        for (int i = 0; i < n; i++)
            if (result[i] == WBGC__SWEPT_FREE) wbgc__pages_free(h, batch[i], cycle);
        pthread_mutex_unlock(&h->lock);
    }
    if (nfree < n) {
        pthread_mutex_lock(&c->lock);
        for (int i = 0; i < n; i++)
            if (result[i] != WBGC__SWEPT_FREE)
                wbgc__list_push(result[i] == WBGC__SWEPT_FULL ? &c->full : &c->partial, batch[i]);
        pthread_mutex_unlock(&c->lock);
    }
    __atomic_fetch_sub(&h->sweep_active, n, __ATOMIC_RELEASE);
    return n;
}

/* Lazy sweeping gives up after this many spans and takes a new one: when a
   class's spans are all empty (the live set just shrank) or all full, one
   refill would otherwise sweep the whole class (20 ms seen, at 400 MB). */
#define WBGC__SWEEP_BUDGET 32

/* wbgc__sweep_for_alloc: lazy sweeping. Sweeps unswept spans of class spc
   until one has a free slot, and returns it (off every list), or NULL. */
static wbgc__span *wbgc__sweep_for_alloc(wbgc_heap *h, uint32_t spc)
{
    wbgc__span *kept = NULL;
    for (int n = 0; !kept && n < WBGC__SWEEP_BUDGET && wbgc__sweep_one(h, spc, &kept); n++) {}
    return kept;
}

/* wbgc__sweep_large sweeps every unswept large span. */
static void wbgc__sweep_large(wbgc_heap *h)
{
    pthread_mutex_lock(&h->lock);
    wbgc__span *s;
    while ((s = wbgc__list_pop(&h->large_unswept)) != NULL) {
        if (WBGC__UNLIKELY(wbgc__span_has_specials(s))) wbgc__sweep_specials(h, s);
        wbgc__specials_done(h, s);
        if (WBGC__UNLIKELY(s->waitheads != NULL)) wbgc__waitheads_free(s);
        if (s->markbits[0] & 1) {
            __atomic_store_n(&s->markbits[0], 0, __ATOMIC_RELEASE);  /* INV-MARKCLEAR; as above */
            wbgc__list_push(&h->large, s);
        } else {
            WBGC__ADD(h->freed_total, (uint64_t)s->elemsize);
            /* Check mode: freed large objects read as zero from now on
               (poison or zero is what reuse accepts). */
            if (h->cfg.flags & WBGC_CHECK) madvise((void *)s->base, s->elemsize, MADV_DONTNEED);
            wbgc__pages_free(h, s, WBGC__LOAD(h->cycles));
        }
    }
    pthread_mutex_unlock(&h->lock);
}

/* Who calls wbgc__finish_sweep, which decides who returns memory. */
enum wbgc__sweeper {
    WBGC__SWEEP_START,      /* a P about to start a cycle: returning memory
                               is left to the background sweeper, if any */
    WBGC__SWEEP_WHOLE,      /* a whole collection (wbgc_collect, STW) */
    WBGC__SWEEP_BACKGROUND  /* the background sweeper */
};

/* wbgc__finish_sweep sweeps every span the last cycle left unswept, then
   returns free pages to the OS (wbgc__scavenge). self (may be NULL): the
   calling P, which keeps answering safepoints between batches. The
   background sweeper steps aside while the world is stopped (it holds no
   span between two batches), so that the stop does not wait for the OS to give its
   CPU to the mutators that have to park (2 cores, 3+ threads). It sweeps
   each batch under sweeper_lock, which a fork takes (section "Fork"): the
   one thread that touches the central lists while the world is stopped. */
static int wbgc__sweep_batch_background(wbgc_heap *h, uint32_t spc)
{
    pthread_mutex_lock(&h->sweeper_lock);
    int r = wbgc__sweep_batch(h, spc);
    pthread_mutex_unlock(&h->sweeper_lock);
    return r;
}

static void wbgc__finish_sweep(wbgc_heap *h, wbgc_p *self, enum wbgc__sweeper who)
{
    int background = who == WBGC__SWEEP_BACKGROUND;
    uint64_t cycle = WBGC__LOAD(h->cycles), gen = WBGC__LOAD(h->marks_done);
    for (uint32_t spc = WBGC__KINDS; spc < WBGC__KINDS * wbgc__classes.nclasses; spc++) {
        while (background ? wbgc__sweep_batch_background(h, spc) : wbgc__sweep_batch(h, spc)) {
            if (self && WBGC__LOAD(self->fast.preempt)) wbgc__safepoint_at(self, "wbgc_collect");
            if (background && WBGC__LOAD(h->stopping)) {
                pthread_mutex_lock(&h->sched_lock);
                while (h->stopping) pthread_cond_wait(&h->resume_cv, &h->sched_lock);
                pthread_mutex_unlock(&h->sched_lock);
            }
        }
    }
    wbgc__sweep_large(h);
    if (background)  /* spans others took are swept in a moment */
        while (__atomic_load_n(&h->sweep_active, __ATOMIC_ACQUIRE)) sched_yield();
    if (!__atomic_load_n(&h->sweep_active, __ATOMIC_ACQUIRE))
        __atomic_store_n(&h->sweep_done, gen, __ATOMIC_RELEASE);
    WBGC__STORE(h->swept_cycle, cycle);
    if (who != WBGC__SWEEP_START || !h->has_sweeper)
        wbgc__scavenge(h, WBGC__LOAD(h->cycles), background);
}

/* wbgc__sweep_behind: the heap reached its trigger while the background
   sweeper is still at the last cycle's spans. Up to halfway to the goal
   the cycle waits: the P that found the trigger sweeps a few spans and
   goes on, rather than sweeping all that is left before it can start the
   cycle (12 ms seen, at 400 MB). Returns 1 if the start is put off. */
static int wbgc__sweep_behind(wbgc_heap *h)
{
    if (!h->has_sweeper || WBGC__LOAD(h->swept_cycle) == WBGC__LOAD(h->cycles)) return 0;
    uint64_t trigger = wbgc__trigger(h), goal = WBGC__LOAD(h->goal);
    if (goal <= trigger || wbgc__heap_estimate(h) >= trigger + (goal - trigger) / 2) return 0;
    int n = 0;
    for (uint32_t spc = WBGC__KINDS; spc < WBGC__KINDS * wbgc__classes.nclasses && n < WBGC__SWEEP_BUDGET; spc++)
        for (int k; n < WBGC__SWEEP_BUDGET && (k = wbgc__sweep_batch(h, spc)) > 0;) n += k;
    return n > 0;
}

/* wbgc__unsweep_all makes every swept span unswept: the marks of the cycle
   just ended are to be swept. World stopped, marking complete, every span
   swept. The background sweeper is not stopped: it may take a span from an
   unswept list the moment one is there and file it as swept, so each list
   moves under its lock, and this runs before the caches are released
   (else a span swept meanwhile would be moved back and swept twice, its
   marks gone: every object freed). */
static void wbgc__unsweep_all(wbgc_heap *h)
{
    for (uint32_t spc = WBGC__KINDS; spc < WBGC__KINDS * wbgc__classes.nclasses; spc++) {
        wbgc__central *c = &h->central[spc];
        pthread_mutex_lock(&c->lock);
        WBGC_ASSERT(!c->unswept[0] && !c->unswept[1] && !c->unswept[2]);
        c->unswept[1] = c->partial;
        c->unswept[2] = c->full;
        c->partial = c->full = NULL;
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_lock(&h->lock);
    WBGC_ASSERT(!h->large_unswept);
    h->large_unswept = h->large;
    h->large = NULL;
    pthread_mutex_unlock(&h->lock);
}

/* wbgc__sweeper_main: the background sweeper. */
static void *wbgc__sweeper_main(void *arg)
{
    wbgc_heap *h = (wbgc_heap *)arg;
    pthread_mutex_lock(&h->sched_lock);
    for (;;) {
        while (!h->shutdown && !h->sweep_pending) pthread_cond_wait(&h->work_cv, &h->sched_lock);
        if (h->shutdown) break;
        h->sweep_pending = 0;
        pthread_mutex_unlock(&h->sched_lock);
        wbgc__finish_sweep(h, NULL, WBGC__SWEEP_BACKGROUND);
        pthread_mutex_lock(&h->sched_lock);
    }
    pthread_mutex_unlock(&h->sched_lock);
    return NULL;
}

/* =========================================================================
   Pacer
   ========================================================================= */

/* Assists start when a P owes this much scan work: smaller debts wait, so
   that a P does not stop for a few objects at every refill. */
#define WBGC__ASSIST_MIN ((int64_t)64 << 10)

/* One assist does at most this much scan work, and for at most
   WBGC__ASSIST_NS, while the heap is below its goal; the rest of the debt
   waits for the P's next allocations. It marks in rounds of
   WBGC__ASSIST_ROUND so that it looks at the clock between them. Scan
   work is counted in bytes, but a byte costs 1-60 ns: ~60 where every
   word points to a scattered object of a big heap (misses on the page
   map, the span and its bits); 130 KB of that took one assist 7 ms of
   CPU, and an unbounded assist of 800 KB stalled its mutator 10 ms. */
#define WBGC__ASSIST_MAX   ((uint64_t)128 << 10)
#define WBGC__ASSIST_ROUND ((uint64_t)32 << 10)
#define WBGC__ASSIST_NS    ((uint64_t)1000000)

/* Trigger feedback bounds, per mille of the growth from live to the goal:
   the first concurrent cycle starts at 70%; later ones as late as the last
   cycle's allocation during marking allows, never before 50% (a cycle that
   overran) nor after 90% (the runway left for assists). */
#define WBGC__TRIGGER_FIRST 700
#define WBGC__TRIGGER_MIN   500
#define WBGC__TRIGGER_MAX   900

/* wbgc__trigger_feedback moves the trigger of the next concurrent cycle so
   that, if its mark phase allocates what this one's did, it ends at 95% of
   its goal: a cycle started too early runs more often than the goal needs;
   one started too late leaves its mutators to assist hard. Halfway each
   time, to damp noise. Only cycles the trigger started count (not
   wbgc_collect's). World stopped, at mark termination, before wbgc__pace. */
static void wbgc__trigger_feedback(wbgc_heap *h)
{
    uint64_t live = WBGC__LOAD(h->heap_marked), goal = WBGC__LOAD(h->goal);
    if (!h->start_paced || goal <= live) return;
    uint64_t est = wbgc__heap_estimate(h);
    uint64_t during = est > h->start_est ? est - h->start_est : 0;
    uint64_t c = during * 1000 / (goal - live);  /* mark-phase allocation, per mille of growth */
    int64_t want = 950 - (int64_t)(c > 1000 ? 1000 : c);
    if (want < WBGC__TRIGGER_MIN) want = WBGC__TRIGGER_MIN;
    if (want > WBGC__TRIGGER_MAX) want = WBGC__TRIGGER_MAX;
    WBGC__STORE(h->trigger_pm, (uint32_t)(((int64_t)h->trigger_pm + want) / 2));
}

/* wbgc__goal_of computes the goal and trigger for a heap of live bytes;
   wbgc__pace sets the next goal and trigger from what this cycle found
   live. The goal is live * (1 + gc_percent/100); with the world stopped for
   the whole cycle the trigger is the goal, otherwise a cycle starts when
   trigger_pm of the growth is used (70% at first, then as the feedback
   above says), leaving the rest as the mark phase's runway (assists keep
   the heap inside it). */
static void wbgc__goal_of(wbgc_heap *h, uint64_t live, uint64_t *goal_out, uint64_t *trigger_out)
{
    int gcp = WBGC__LOAD(h->cfg.gc_percent);
    uint64_t goal = 0, trigger = UINT64_MAX;
    if (gcp >= 0) {
        uint64_t floor = wbgc__goal_floor(h->cfg.min_heap, gcp);
        goal = live + live / 100 * (uint64_t)gcp + live % 100 * (uint64_t)gcp / 100;
        if (goal < floor) goal = floor;
        trigger = (h->cfg.flags & WBGC_STW) ? goal
                  : live + (goal - live) / 1000 * WBGC__LOAD(h->trigger_pm);
    }
    *goal_out = goal;
    *trigger_out = trigger;
}

static void wbgc__pace(wbgc_heap *h, uint64_t live)
{
    uint64_t goal, trigger;
    wbgc__goal_of(h, live, &goal, &trigger);
    WBGC__STORE(h->heap_marked, live);
    WBGC__STORE(h->alloc_since, 0);
    WBGC__STORE(h->goal, goal);
    WBGC__STORE(h->trigger, trigger);
}

/* wbgc__assist_ratio: scan work owed per allocated byte during this mark
   phase (x 2^16): the work expected (what the last cycle found live) over
   the runway left to the goal. World stopped, at mark start. */
static uint64_t wbgc__assist_ratio(wbgc_heap *h)
{
    uint64_t est = wbgc__heap_estimate(h), goal = WBGC__LOAD(h->goal);
    uint64_t work = WBGC__LOAD(h->heap_marked) + (1u << 20);
    uint64_t runway = goal > est + (1u << 20) ? goal - est : (1u << 20);
    uint64_t r = (work << 16) / runway;
    return r ? r : 1;
}

/* wbgc__assist makes p pay for `bytes` allocated during marking with mark
   work, so that no mutator outruns the marker: once p owes
   WBGC__ASSIST_MIN, or any debt at all when it is leaving (wbgc_detach).
   The background markers' unclaimed work (bg_credit) pays first; below
   the goal one call then marks at most WBGC__ASSIST_MAX bytes and
   WBGC__ASSIST_NS, and a debt that
   finds no grey object to mark is cut to WBGC__ASSIST_MIN. When there is
   no work to do it tries to end the phase; past the goal it waits for the
   cycle to end. Called by p's thread, holding no lock. */
static void wbgc__assist(wbgc_p *p, uint64_t bytes, int leaving)
{
    wbgc_heap *h = p->heap;
    p->assist_debt += (int64_t)((bytes * WBGC__LOAD(h->assist_ratio)) >> 16);
    if (p->assist_debt < (leaving ? 1 : WBGC__ASSIST_MIN)) return;
    /* Work the background markers did counts first: a mutator marks only
       what they leave undone. */
    int64_t credit = __atomic_load_n(&h->bg_credit, __ATOMIC_RELAXED);
    if (credit > 0) {
        int64_t take = credit < p->assist_debt ? credit : p->assist_debt;
        __atomic_fetch_sub(&h->bg_credit, take, __ATOMIC_RELAXED);
        p->assist_debt -= take;
        if (p->assist_debt <= 0) return;
    }
    uint64_t t0 = wbgc__now_ns(), round = 0;
    uint64_t cycle = WBGC__LOAD(h->cycles);
    while (p->assist_debt > 0 && WBGC__LOAD(h->cycles) == cycle) {
        if (WBGC__LOAD(p->fast.preempt)) wbgc__safepoint_at(p, "wbgc_alloc");
        if (!leaving && round && (round >= WBGC__ASSIST_MAX || wbgc__now_ns() - t0 >= WBGC__ASSIST_NS) &&
            wbgc__heap_estimate(h) < WBGC__LOAD(h->goal))
            break;
        uint64_t budget = (uint64_t)p->assist_debt;
        if (budget > WBGC__ASSIST_ROUND) budget = WBGC__ASSIST_ROUND;
        uint64_t did = wbgc__mark_some(h, &p->gcw, budget, 0, &p->fast.preempt);
        p->assist_debt -= (int64_t)did;
        round += did;
        if (did) continue;
        wbgc__try_mark_done(h, p);
        if (WBGC__LOAD(h->cycles) != cycle) break;
        if (wbgc__heap_estimate(h) < WBGC__LOAD(h->goal)) {
            /* Runway left, and no grey object to be had: the other markers
               hold all the work there is. The debt is let go of down to
               one assist's worth: kept whole, it grew while work was
               scarce and was paid in one go when work came back (28 MB
               of scanning in one allocation, 60 ms, at 200 MB live). */
            if (p->assist_debt > WBGC__ASSIST_MIN) p->assist_debt = WBGC__ASSIST_MIN;
            break;
        }
        wbgc__sleep_blocked(h, p, 50000);
    }
    if (WBGC__LOAD(h->cycles) != cycle) p->assist_debt = 0;
    uint64_t dt = wbgc__now_ns() - t0;
    pthread_mutex_lock(&h->stats_lock);
    h->mark_assist_ns += dt;
    pthread_mutex_unlock(&h->stats_lock);
}

/* =========================================================================
   The cycle, stats and trace
   ========================================================================= */

static void wbgc__record_pause(wbgc_heap *h, uint64_t ns)
{
    pthread_mutex_lock(&h->stats_lock);
    h->pause_recent_ns[h->pause_count % 256] = ns;
    h->pause_count++;
    h->pause_total_ns += ns;
    if (ns > h->pause_max_ns) h->pause_max_ns = ns;
    pthread_mutex_unlock(&h->stats_lock);
}

static void wbgc__trace_cycle(wbgc_heap *h, const char *kind, uint64_t t0, uint64_t t_end,
                              uint64_t pause1, uint64_t pause2, uint64_t before, const char *why)
{
    const double mb = 1.0 / (1 << 20), ms = 1e-6;
    pthread_mutex_lock(&h->lock);
    uint64_t sys = h->mapped_bytes - h->fresh_bytes;
    pthread_mutex_unlock(&h->lock);
    fprintf(stderr,
            "wbgc: gc %llu @%.3fs %s (%s): %.3f ms; pauses %.3f + %.3f ms; "
            "heap %.1f -> %.1f MB marked, goal %.1f MB, sys %.1f MB; %d P\n",
            (unsigned long long)WBGC__LOAD(h->cycles) + 1, (double)(t0 - h->start_ns) * 1e-9, kind,
            why,
            (double)(t_end - t0) * ms, (double)pause1 * ms, (double)pause2 * ms, (double)before * mb,
            (double)WBGC__LOAD(h->heap_marked) * mb, (double)WBGC__LOAD(h->goal) * mb,
            (double)sys * mb, h->nps);
}

static void wbgc__fork_restart_threads(wbgc_heap *h);

/* wbgc__gc_start starts a concurrent cycle: sweep termination (the calling
   P sweeps what is left, concurrently), then the mark-start pause, which
   only flips state: barrier on and allocation black in every P, root jobs
   queued (each P's stack to be scanned at its next safepoint). O(Ps).
   forced: start one even if another thread started one since the call.
   Called by self's thread, holding no lock. */
static void wbgc__gc_start(wbgc_p *self, int forced, const char *why)
{
    wbgc_heap *h = self->heap;
    uint64_t seen = __atomic_load_n(&h->cycles_started, __ATOMIC_ACQUIRE);
    if (!forced && wbgc__sweep_behind(h)) return;
    wbgc__finish_sweep(h, self, WBGC__SWEEP_START);
    wbgc__lock_as_blocked(h, self, &h->gc_lock);
    if (WBGC__LOAD(h->phase) != WBGC__PHASE_OFF ||
        (!forced && __atomic_load_n(&h->cycles_started, __ATOMIC_ACQUIRE) != seen)) {
        pthread_mutex_unlock(&h->gc_lock);
        return;
    }
    wbgc__fork_restart_threads(h);  /* after a fork, in the child */
    __atomic_store_n(&h->cycles_started, h->cycles_started + 1, __ATOMIC_RELEASE);
    uint64_t t0 = wbgc__now_ns();
    wbgc__stop_world(h, self);
    /* Sweep termination: sweep what is left (normally nothing: it was swept
       above, but a whole cycle may have ended while this P waited), then
       wait for spans being swept off-list by the background sweeper, which
       is not stopped. With the lists empty it cannot take another, so after
       this every span is swept (INV-MARKCLEAR). */
    for (uint32_t spc = WBGC__KINDS; spc < WBGC__KINDS * wbgc__classes.nclasses; spc++)
        while (wbgc__sweep_batch(h, spc)) {}
    wbgc__sweep_large(h);
    while (__atomic_load_n(&h->sweep_active, __ATOMIC_ACQUIRE)) sched_yield();
    __atomic_store_n(&h->sweep_done, h->marks_done, __ATOMIC_RELEASE);

    WBGC__STORE(h->cycle_marked, 0);
    h->start_paced = !forced;            /* gc_lock held: read at termination */
    h->start_est = wbgc__heap_estimate(h);
    __atomic_store_n(&h->stacks_pending, h->nps, __ATOMIC_RELEASE);
    WBGC__STORE(h->assist_ratio, wbgc__assist_ratio(h));
    WBGC__STORE(h->bg_credit, 0);
    /* Under sched_lock too: the world is stopped, but a mark worker still
       finishing its last round may be looking for blocked Ps' requests. */
    pthread_mutex_lock(&h->sched_lock);
    for (wbgc_p *q = h->ps; q; q = q->next) {
        WBGC_ASSERT(!wbgc__p_has_work(q));  /* INV-WBBUF */
        wbgc__wb_reset(h, q);
        q->fast.wb_on = 1;   /* INV-TRICOLOUR: on everywhere before anything is black */
        q->alloc_black = 1;
        q->stack_black = 0;
        q->assist_debt = 0;
        q->req |= WBGC__REQ_SCAN;
    }
    pthread_mutex_unlock(&h->sched_lock);
    /* The phase and the root scan's state change together under roots_lock,
       so that a region added or removed by a thread holding no P (which
       the stop does not wait for) sees both or neither (wbgc__roots_changed). */
    pthread_mutex_lock(&h->roots_lock);
    __atomic_store_n(&h->roots_state, 0, __ATOMIC_RELEASE);
    WBGC__STORE(h->phase, WBGC__PHASE_MARK);
    pthread_mutex_unlock(&h->roots_lock);
    uint64_t t_end = wbgc__now_ns();
    h->mark_start_ns = t0;
    h->start_pause_ns = t_end - t0;
    h->start_why = why;
    wbgc__start_world(h);  /* sets every P's preempt from its requests */
    wbgc__record_pause(h, t_end - t0);
    pthread_mutex_unlock(&h->gc_lock);
    pthread_mutex_lock(&h->sched_lock);
    pthread_cond_broadcast(&h->work_cv);
    pthread_mutex_unlock(&h->sched_lock);
}

/* wbgc__help_until makes self help the marker until `target` cycles have
   completed: mark work, then termination attempts, then short waits. */
static void wbgc__help_until(wbgc_p *self, uint64_t target)
{
    wbgc_heap *h = self->heap;
    while (WBGC__LOAD(h->cycles) < target) {
        if (WBGC__LOAD(self->fast.preempt)) wbgc__safepoint_at(self, "wbgc_collect");
        uint64_t did = 0;
        if (WBGC__LOAD(h->phase) == WBGC__PHASE_MARK) {
            did = wbgc__mark_some(h, &self->gcw, (uint64_t)1 << 20, 0, &self->fast.preempt);
            if (!did) wbgc__try_mark_done(h, self);
        }
        if (!did && WBGC__LOAD(h->cycles) < target) wbgc__sleep_blocked(h, self, 100000);
    }
}

/* wbgc__collect_full runs one whole cycle, mark and sweep, that starts after
   the call: it helps any cycle in progress to its end, starts one, helps
   it, and sweeps everything. */
static void wbgc__collect_full(wbgc_p *self, const char *why)
{
    wbgc_heap *h = self->heap;
    if (h->cfg.flags & WBGC_STW) {
        wbgc__collect_stw(self, 1, why);
        return;
    }
    wbgc__help_until(self, __atomic_load_n(&h->cycles_started, __ATOMIC_ACQUIRE));
    wbgc__gc_start(self, 1, why);
    wbgc__help_until(self, __atomic_load_n(&h->cycles_started, __ATOMIC_ACQUIRE));
    wbgc__finish_sweep(h, self, WBGC__SWEEP_WHOLE);
    /* The lists are empty; the background sweeper may still hold a span it
       took. The cycle is whole only when that one is swept too. */
    while (__atomic_load_n(&h->sweep_active, __ATOMIC_ACQUIRE)) sched_yield();
}

/* wbgc__collect_stw runs one whole cycle with the world stopped throughout
   (WBGC_STW): mark from every root, then sweep every span. The barrier is
   never on. forced: run even if another thread completed a cycle while this
   one waited for its turn. Called by self's thread, holding no lock. */
static WBGC__NOINLINE void wbgc__collect_stw(wbgc_p *self, int forced, const char *why)
{
    wbgc_heap *h = self->heap;
    uint64_t seen = __atomic_load_n(&h->cycles_started, __ATOMIC_ACQUIRE);
    wbgc__lock_as_blocked(h, self, &h->gc_lock);
    if (!forced && __atomic_load_n(&h->cycles_started, __ATOMIC_ACQUIRE) != seen) {
        pthread_mutex_unlock(&h->gc_lock);
        return;
    }
    wbgc__fork_restart_threads(h);  /* after a fork, in the child */
    __atomic_store_n(&h->cycles_started, h->cycles_started + 1, __ATOMIC_RELEASE);
    uint64_t t0 = wbgc__now_ns();
    wbgc__stop_world(h, self);
    WBGC__SAVE_CONTEXT(self);
    uint64_t before = wbgc__heap_estimate(h);

    wbgc__gcwork *g = &h->gcw;
    WBGC__STORE(h->cycle_marked, 0);
    pthread_mutex_lock(&h->roots_lock);
    for (size_t i = 0; i < h->nroots; i++) wbgc__scan_range(h, g, h->roots[i].lo, h->roots[i].hi);
    pthread_mutex_unlock(&h->roots_lock);
    wbgc__specials_roots(h, g);
    for (wbgc_p *q = h->ps; q; q = q->next) wbgc__scan_p(h, g, q);
    wbgc__stw_mark(h, g);
    wbgc__gcw_dispose(h, g);
    WBGC_ASSERT(WBGC__LOAD(h->work_full) == NULL);
    if (h->cfg.flags & WBGC_VERIFY) wbgc__verify(h, 0);
    wbgc__links_sweep(h);
    WBGC__STORE(h->marks_done, h->marks_done + 1);
    wbgc__unsweep_all(h);
    for (wbgc_p *q = h->ps; q; q = q->next) {
        wbgc__release_caches(h, q, 1);
        wbgc__wb_reset(h, q);  /* check mode records entries that no one needs */
    }
    wbgc__pace(h, WBGC__LOAD(h->cycle_marked));
    wbgc__finish_sweep(h, NULL, WBGC__SWEEP_WHOLE);
    __atomic_store_n(&h->sweep_done, h->marks_done, __ATOMIC_RELEASE);
    uint64_t t_end = wbgc__now_ns();
    wbgc__start_world(h);
    wbgc__record_pause(h, t_end - t0);
    if (h->cfg.flags & WBGC_TRACE)
        wbgc__trace_cycle(h, "stop-the-world", t0, t_end, t_end - t0, 0, before, why);
    wbgc__cycle_done(h);
    pthread_mutex_unlock(&h->gc_lock);
}

WBGCDEF void wbgc_get_stats(wbgc_heap *h, wbgc_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!h || h->magic != WBGC__H_MAGIC) {
        wbgc__report(NULL, "wbgc: misuse: wbgc_get_stats(h=%p): not a live wbgc heap", (void *)h);
        return;
    }
    uint64_t total, flushes;
    pthread_mutex_lock(&h->sched_lock);
    total = h->total_alloc_base;
    flushes = h->wb_flushes_base;
    for (wbgc_p *q = h->ps; q; q = q->next) {
        total += WBGC__LOAD(q->allocd);
        flushes += WBGC__LOAD(q->wb_flushes);
    }
    pthread_mutex_unlock(&h->sched_lock);
    uint64_t freed = WBGC__LOAD(h->freed_total);
    out->total_alloc = total;
    out->heap_alloc = total > freed ? total - freed : 0;
    out->heap_live = WBGC__LOAD(h->heap_marked);
    out->heap_goal = WBGC__LOAD(h->goal);
    out->wb_flushes = flushes;
    pthread_mutex_lock(&h->lock);
    out->heap_sys = h->mapped_bytes - h->fresh_bytes;
    pthread_mutex_unlock(&h->lock);
    pthread_mutex_lock(&h->stats_lock);
    out->cycles = h->cycles;
    out->pause_count = h->pause_count;
    out->pause_total_ns = h->pause_total_ns;
    out->pause_max_ns = h->pause_max_ns;
    memcpy(out->pause_recent_ns, h->pause_recent_ns, sizeof out->pause_recent_ns);
    out->mark_assist_ns = h->mark_assist_ns;
    out->verify_runs = h->verify_runs;
    out->verify_lost = h->verify_lost;
    out->verify_ns = h->verify_ns;
    out->finalizers_queued = WBGC__LOAD(h->fin_queued);
    out->finalizers_run = WBGC__LOAD(h->fin_run);
    out->finalizers_pending = WBGC__LOAD(h->fin_pending);
    out->weak_cleared = WBGC__LOAD(h->weak_cleared);
    out->weak_live = WBGC__LOAD(h->weak_live);
    pthread_mutex_unlock(&h->stats_lock);
}

/* =========================================================================
   Fork
   ========================================================================= */

/* fork() copies the whole address space but only the calling thread. Left
   alone, the child inherits locks held by threads it does not have, a
   world stopped or stopping for Ps whose threads do not exist, a span the
   background sweeper had taken off the lists, and grey objects in the
   hands of dead mark workers; its first stop of the world waits forever.
   (Go's runtime only forks to exec; Boehm GC's atfork handlers, like these,
   bring the collector to a quiet point first and keep only the forking
   thread in the child.)

   Before the fork (wbgc__fork_prepare), the forking thread takes every
   live heap in turn to a point where nothing is half done: markdone_lock
   and gc_lock (no mark start, termination or stop-the-world cycle is
   running), then a stop of the world (every other P is parked at a
   safepoint or in a blocking region, so none is in an allocation's slow
   path holding a span off the lists: see wbgc__refill), then sched_lock,
   sweeper_lock (the background sweeper, which does not stop with the
   world, holds it while it sweeps a span: a span swept half, its mark
   bits half made allocation bits, could be neither finished nor undone in
   the child; and it is the only thread that could hold a central lock
   now, so those are not taken: TSan's deadlock detector stops at 64 locks
   held), and the heap, roots, work and stats locks. wbgc__heaps_lock, the
   list of live heaps, is taken first and held until the parent's or the
   child's handler, so both see the heaps the prepare saw.

   In the parent (wbgc__fork_parent) the locks go and the world restarts:
   a pause like any other.

   In the child (wbgc__fork_child) the condition variables are made anew
   (their waiters do not exist) and the locks go; every P but the forking
   thread's is detached on behalf of its thread (wbgc__fork_drop_p); the
   background threads are forgotten, to start again at the child's first
   cycle (wbgc__fork_restart_threads); and a cycle that was marking is
   finished at once by marking again, world stopped, from the child's own
   roots (wbgc__fork_remark). Nothing then waits for a thread that is not
   there: every P in the list has a thread, no marker holds global work
   (nactive), no span is being swept (sweep_active). */

static pthread_mutex_t wbgc__heaps_lock = PTHREAD_MUTEX_INITIALIZER;
static wbgc_heap *wbgc__heaps;  /* live heaps, linked by fork_next; wbgc__heaps_lock */
static pthread_once_t wbgc__fork_once = PTHREAD_ONCE_INIT;
static int wbgc__fork_err;      /* pthread_atfork's error, if it failed */

static void wbgc__start_threads(wbgc_heap *h);

/* wbgc__p_of_thread returns the P thread t holds in h, or NULL. sched_lock
   held (or the only thread of a child). */
static wbgc_p *wbgc__p_of_thread(wbgc_heap *h, pthread_t t)
{
    for (wbgc_p *q = h->ps; q; q = q->next)
        if (pthread_equal(q->thread, t)) return q;
    return NULL;
}

/* wbgc__fork_lock_heap brings h to the quiet point described above and
   holds it there. The forking thread's P (self), if it has one, counts as
   blocked while it waits for markdone_lock and gc_lock, whose holders may
   be stopping the world or hand-shaking; a P already in a blocking region
   (fork called inside one) stays as it is. */
static void wbgc__fork_lock_heap(wbgc_heap *h)
{
    pthread_mutex_lock(&h->sched_lock);
    wbgc_p *self = wbgc__p_of_thread(h, pthread_self());
    wbgc_p *waiter = self && self->status == WBGC__P_RUNNING ? self : NULL;
    pthread_mutex_unlock(&h->sched_lock);
    wbgc__lock_as_blocked(h, waiter, &h->markdone_lock);
    wbgc__lock_as_blocked(h, waiter, &h->gc_lock);
    h->fork_t0 = wbgc__now_ns();
    wbgc__stop_world(h, self);
    pthread_mutex_lock(&h->sched_lock);
    pthread_mutex_lock(&h->sweeper_lock);
    /* INV-LOCKORDER's central locks are not needed: with every P stopped
       and the sweeper held out, no thread takes one. */
    WBGC_ASSERT(__atomic_load_n(&h->sweep_active, __ATOMIC_ACQUIRE) == 0);
    pthread_mutex_lock(&h->lock);
    /* The shard locks: with every P stopped outside wbgc calls and the
       sweeper held out, only a mark worker in the specials' root job can
       hold one, and it holds the gate with it. (Taking all 64 would also
       pass ThreadSanitizer's limit of locks held at once.) */
    pthread_mutex_lock(&h->specials_gate);
    pthread_mutex_lock(&h->fin_lock);
    pthread_mutex_lock(&h->roots_lock);
    pthread_mutex_lock(&h->work_lock);
    pthread_mutex_lock(&h->stats_lock);
}

/* wbgc__fork_unlock_heap lets go of what wbgc__fork_lock_heap took after
   the stop; the world stays stopped and gc_lock, markdone_lock held. */
static void wbgc__fork_unlock_heap(wbgc_heap *h)
{
    pthread_mutex_unlock(&h->stats_lock);
    pthread_mutex_unlock(&h->work_lock);
    pthread_mutex_unlock(&h->roots_lock);
    pthread_mutex_unlock(&h->fin_lock);
    pthread_mutex_unlock(&h->specials_gate);
    pthread_mutex_unlock(&h->lock);
    pthread_mutex_unlock(&h->sweeper_lock);
    pthread_mutex_unlock(&h->sched_lock);
}

/* wbgc__fork_restart lets the world run again after a fork. */
static void wbgc__fork_restart(wbgc_heap *h)
{
    wbgc__start_world(h);
    wbgc__record_pause(h, wbgc__now_ns() - h->fork_t0);
    pthread_mutex_unlock(&h->gc_lock);
    pthread_mutex_unlock(&h->markdone_lock);
}

/* wbgc__fork_new_conds makes h's condition variables anew, as
   wbgc_heap_new makes them: in a child, threads that no longer exist may
   be counted as their waiters, and a broadcast could wait for them. */
static void wbgc__fork_new_conds(wbgc_heap *h)
{
    pthread_condattr_t ca;
    pthread_cond_init(&h->resume_cv, NULL);
    pthread_cond_init(&h->fin_cv, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->parked_cv, &ca);  /* timed, on this clock: wbgc__wait_for_ps */
    pthread_cond_init(&h->work_cv, &ca);
    pthread_cond_init(&h->cycle_cv, &ca);
    pthread_cond_init(&h->stw_cv, &ca);
    pthread_condattr_destroy(&ca);
}

static void wbgc__retire_p(wbgc_heap *h, wbgc_p *p);

/* wbgc__fork_drop_p detaches q, whose thread does not exist in this child,
   as wbgc_detach would have: its cached spans go back to their central
   lists (as swept: a P caches only swept spans), its counts to the heap.
   Its barrier buffer and mark work are dropped: outside a mark phase they
   are empty (INV-WBBUF), inside one wbgc__fork_remark marks over. Its
   handle stays valid memory, so that a later use is reported. q was parked
   or blocked at the fork (or taken: its taker is gone too), so none of its
   spans was off the lists. The child's only thread; q already unlinked. */
static void wbgc__fork_drop_p(wbgc_heap *h, wbgc_p *q)
{
    wbgc__wb_reset(h, q);
    wbgc__gcw_dispose(h, &q->gcw);
    q->req = 0;
    wbgc__retire_p(h, q);
}

/* wbgc__fork_forget_marks clears the mark bits of every in-use span (a
   large span once, at its first page, in the arena that holds it). In a
   mark phase every span is swept (INV-MARKCLEAR held at its start), so
   this is the state a cycle starts from. The child's only thread. */
static void wbgc__fork_forget_marks(wbgc_heap *h)
{
    for (wbgc__arena *a = h->arenas; a; a = a->next) {
        for (size_t i = 0; i < WBGC__ARENA_PAGES; i++) {
            wbgc__span *s = a->pages[i];
            if (s && s->state == WBGC__SPAN_INUSE && s->base == a->base + (i << WBGC__PAGE_SHIFT)) {
                memset(s->markbits, 0, sizeof s->markbits);
                wbgc__waitheads_free(s);  /* what waited on keys, with those marks */
            }
        }
    }
}

/* wbgc__fork_forget_work empties every full mark work buffer onto the
   empty list. Buffers that dead markers held are on neither list: lost
   until wbgc_heap_free unmaps their chunk. The child's only thread. */
static void wbgc__fork_forget_work(wbgc_heap *h)
{
    wbgc__wbuf *b;
    while ((b = h->work_full) != NULL) {
        WBGC__STORE(h->work_full, b->next);
        b->n = 0;
        b->next = h->work_empty;
        WBGC__STORE(h->work_empty, b);
    }
    h->nactive = 0;  /* dead markers' */
}

/* wbgc__fork_remark finishes, in the child, the cycle that was marking at
   the fork, the way WBGC_STW runs one: the cycle's marks, grey objects and
   barrier entries so far are dropped, the heap is marked again from the
   roots the child has (the root regions; the stack and registers of the
   forking thread's P, if it has one), and the mark phase ends as usual.
   Marked over rather than on, because mark workers that are gone held
   grey objects, marked and never to be scanned, whose children the old
   marks would let the sweep free. O(live heap), once. The child's only
   thread, world stopped; self's context is saved here when its P runs
   (this frame outlives the scan), and kept from wbgc_blocking_begin when
   the fork came inside a blocking region. */
static WBGC__NOINLINE void wbgc__fork_remark(wbgc_heap *h, wbgc_p *self)
{
    uint64_t before = wbgc__heap_estimate(h);
    wbgc__fork_forget_marks(h);
    if (self) {
        wbgc__wb_reset(h, self);
        wbgc__gcw_dispose(h, &self->gcw);
        self->black_bytes = 0;
        self->req = 0;
        if (self->status == WBGC__P_RUNNING) WBGC__SAVE_CONTEXT(self);
    }
    wbgc__fork_forget_work(h);
    WBGC__STORE(h->cycle_marked, 0);
    __atomic_store_n(&h->stacks_pending, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&h->roots_state, 2, __ATOMIC_RELEASE);

    wbgc__gcwork *g = &h->gcw;
    for (size_t i = 0; i < h->nroots; i++) wbgc__scan_range(h, g, h->roots[i].lo, h->roots[i].hi);
    wbgc__specials_roots(h, g);
    if (self) wbgc__scan_p(h, g, self);
    wbgc__drain(h, g, UINT64_MAX, NULL);
    wbgc__gcw_dispose(h, g);
    WBGC_ASSERT(WBGC__LOAD(h->work_full) == NULL);
    WBGC__STORE(h->phase, WBGC__PHASE_OFF);
    if (h->cfg.flags & WBGC_VERIFY) wbgc__verify(h, 0);
    wbgc__mark_termination(h);
    uint64_t t_end = wbgc__now_ns();
    if (h->cfg.flags & WBGC_TRACE)
        wbgc__trace_cycle(h, "concurrent, marked again in a forked child", h->mark_start_ns, t_end,
                          h->start_pause_ns, t_end - h->fork_t0, before, h->start_why);
    wbgc__cycle_done(h);
}

/* wbgc__fork_child_heap makes h usable by the child's only thread: see
   the top of this section. */
static void wbgc__fork_child_heap(wbgc_heap *h)
{
    wbgc__fork_new_conds(h);
    wbgc__fork_unlock_heap(h);
    wbgc_p *self = wbgc__p_of_thread(h, pthread_self());
    for (wbgc_p **pp = &h->ps; *pp;) {
        wbgc_p *q = *pp;
        if (q == self) {
            pp = &q->next;
            continue;
        }
        *pp = q->next;
        wbgc__fork_drop_p(h, q);
    }
    if (self && self->status == WBGC__P_TAKEN) self->status = WBGC__P_BLOCKED;  /* its taker is gone */
    h->fork_restart = h->nworkers > 0 || h->has_sweeper || h->fin_started;
    h->fin_started = 0;  /* its P was dropped above with the others */
    h->fin_p = NULL;
    free(h->workers);
    h->workers = NULL;
    h->nworkers = h->has_sweeper = 0;
    WBGC_ASSERT(__atomic_load_n(&h->sweep_active, __ATOMIC_ACQUIRE) == 0);
    if (WBGC__LOAD(h->phase) == WBGC__PHASE_MARK) wbgc__fork_remark(h, self);
    /* A cycle's end is counted after its locks are let go
       (wbgc__try_mark_done): one that ended just before the fork may be
       counted by nobody here, and wbgc_collect would wait for it. */
    if (WBGC__LOAD(h->cycles) < h->cycles_started) WBGC__STORE(h->cycles, h->cycles_started);
    h->sweep_pending = 1;  /* for the sweeper, when it starts again */
    wbgc__fork_restart(h);
}

static void wbgc__fork_prepare(void)
{
    pthread_mutex_lock(&wbgc__heaps_lock);
    for (wbgc_heap *h = wbgc__heaps; h; h = h->fork_next) wbgc__fork_lock_heap(h);
}

/* wbgc__fork_each_back calls fn on h and the heaps after it, last first:
   the parent and the child let the heaps go in the reverse of the order
   prepare took them, so that no heap's locks are taken while a heap taken
   after it is still held (INV-LOCKORDER, across heaps). */
static void wbgc__fork_each_back(wbgc_heap *h, void (*fn)(wbgc_heap *))
{
    if (!h) return;
    wbgc__fork_each_back(h->fork_next, fn);
    fn(h);
}

static void wbgc__fork_parent_heap(wbgc_heap *h)
{
    wbgc__fork_unlock_heap(h);
    wbgc__fork_restart(h);
}

static void wbgc__fork_parent(void)
{
    wbgc__fork_each_back(wbgc__heaps, wbgc__fork_parent_heap);
    pthread_mutex_unlock(&wbgc__heaps_lock);
}

static void wbgc__fork_child(void)
{
    wbgc__fork_each_back(wbgc__heaps, wbgc__fork_child_heap);
    pthread_mutex_unlock(&wbgc__heaps_lock);
}

static void wbgc__fork_init(void)
{
    wbgc__fork_err = pthread_atfork(wbgc__fork_prepare, wbgc__fork_parent, wbgc__fork_child);
}

/* wbgc__fork_register adds h to the heaps a fork takes care of (the
   handlers are installed once, with the first heap). */
static void wbgc__fork_register(wbgc_heap *h)
{
    pthread_once(&wbgc__fork_once, wbgc__fork_init);
    if (wbgc__fork_err)
        wbgc__report(h, "wbgc: error: pthread_atfork: %s: a child of fork() cannot use this heap",
                     strerror(wbgc__fork_err));
    pthread_mutex_lock(&wbgc__heaps_lock);
    h->fork_next = wbgc__heaps;
    wbgc__heaps = h;
    pthread_mutex_unlock(&wbgc__heaps_lock);
}

static void wbgc__fork_unregister(wbgc_heap *h)
{
    pthread_mutex_lock(&wbgc__heaps_lock);
    wbgc_heap **hp = &wbgc__heaps;
    while (*hp && *hp != h) hp = &(*hp)->fork_next;
    if (*hp) *hp = h->fork_next;
    pthread_mutex_unlock(&wbgc__heaps_lock);
}

/* wbgc__fork_restart_threads starts the background threads a forked
   child lost, at its first cycle: not in the child handler, so that a
   child that only execs never makes them. gc_lock held. */
static void wbgc__fork_restart_threads(wbgc_heap *h)
{
    if (WBGC__LIKELY(!h->fork_restart)) return;
    h->fork_restart = 0;
    wbgc__start_threads(h);
    if (WBGC__LOAD(h->fin_pending) || h->fin_head) wbgc__fin_start(h);
}

/* =========================================================================
   Public API functions
   ========================================================================= */

WBGCDEF void wbgc_config_default(wbgc_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->gc_percent = 100;
    cfg->memory_limit = 0;
    cfg->mark_workers = -1;
    cfg->flags = 0;
    cfg->on_error = wbgc_default_on_error;
    cfg->user = NULL;
    cfg->stall_report_ms = 100;
    cfg->min_heap = 0;
}

/* wbgc__env_yes: an environment switch is on unless empty, "0", "no",
   "off" or "false". */
static int wbgc__env_yes(const char *e)
{
    if (!e || !*e) return 0;
    static const char *const no[] = {"0", "no", "off", "false", "NO", "OFF", "FALSE"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (strcmp(e, no[i]) == 0) return 0;
    return 1;
}

/* wbgc__env_size parses a byte count with an optional K, M or G suffix
   (either case) into *out; returns -1 for anything else. */
static int wbgc__env_size(const char *e, size_t *out)
{
    if (*e < '0' || *e > '9') return -1;  /* strtoull would take "-1" and " 1" */
    char *end;
    errno = 0;
    unsigned long long v = strtoull(e, &end, 10);
    unsigned shift = 0;
    switch (*end) {
    case 'K': case 'k': shift = 10; end++; break;
    case 'M': case 'm': shift = 20; end++; break;
    case 'G': case 'g': shift = 30; end++; break;
    default: break;
    }
    if (errno || *end || v > (SIZE_MAX >> shift)) return -1;
    *out = (size_t)(v << shift);
    return 0;
}

/* wbgc__env_overrides applies WBGC_GC_PERCENT, WBGC_MIN_HEAP, WBGC_TRACE,
   WBGC_VERIFY and WBGC_MODE (stw, incremental, concurrent or check: the
   mode a program chose in code is replaced). */
static void wbgc__env_overrides(wbgc_heap *tmp, wbgc_config *cfg)
{
    const char *e = getenv("WBGC_GC_PERCENT");
    if (e && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (strcmp(e, "off") == 0) cfg->gc_percent = -1;
        else if (*end == 0 && v < 0) cfg->gc_percent = -1;
        else if (*end == 0 && v <= 1000000) cfg->gc_percent = (int)v;
        else wbgc__report(tmp, "wbgc: error: WBGC_GC_PERCENT=%s ignored: want an integer up to "
                          "1000000, or \"off\"", e);
    }
    e = getenv("WBGC_MIN_HEAP");
    if (e && *e && wbgc__env_size(e, &cfg->min_heap) < 0)
        wbgc__report(tmp, "wbgc: error: WBGC_MIN_HEAP=%s ignored: want a number of bytes, with an "
                     "optional K, M or G suffix (64K at least; smaller counts as 64K)", e);
    e = getenv("WBGC_TRACE");
    if (wbgc__env_yes(e)) cfg->flags |= WBGC_TRACE;
    e = getenv("WBGC_VERIFY");
    if (wbgc__env_yes(e)) cfg->flags |= WBGC_VERIFY;
    e = (cfg->flags & WBGC_NO_ENV_MODE) ? NULL : getenv("WBGC_MODE");
    if (e && *e) {
        unsigned keep = cfg->flags & ~(WBGC_STW | WBGC_CHECK);
        if (strcmp(e, "stw") == 0) {
            cfg->flags = keep | WBGC_STW;
        } else if (strcmp(e, "incremental") == 0) {
            cfg->flags = keep;
            cfg->mark_workers = 0;
        } else if (strcmp(e, "concurrent") == 0) {
            cfg->flags = keep;
            if (cfg->mark_workers == 0) cfg->mark_workers = -1;
        } else if (strcmp(e, "check") == 0) {
            cfg->flags = keep | WBGC_CHECK;
        } else {
            wbgc__report(tmp, "wbgc: error: WBGC_MODE=%s ignored: want stw, incremental, "
                         "concurrent or check", e);
        }
    }
}

/* wbgc__start_threads starts the mark workers (concurrent and
   stop-the-world modes) and the background sweeper (concurrent mode only;
   incremental mode runs neither).
   A thread that cannot be created is reported; the collector still works
   with fewer (assists and safepoints carry the marking). */
static void wbgc__start_threads(wbgc_heap *h)
{
    if (h->cfg.mark_workers <= 0) return;
    h->workers = (pthread_t *)calloc((size_t)h->cfg.mark_workers, sizeof(pthread_t));
    for (int i = 0; h->workers && i < h->cfg.mark_workers; i++) {
        int err = pthread_create(&h->workers[h->nworkers], NULL, wbgc__worker_main, h);
        if (err) {
            wbgc__report(h, "wbgc: error: cannot start mark worker %d: %s", i, strerror(err));
            break;
        }
        h->nworkers++;
    }
    if (h->cfg.flags & WBGC_STW) return;  /* it sweeps in the pause */
    int err = pthread_create(&h->sweeper, NULL, wbgc__sweeper_main, h);
    if (err) wbgc__report(h, "wbgc: error: cannot start the background sweeper: %s", strerror(err));
    else h->has_sweeper = 1;
}

static void wbgc__stop_threads(wbgc_heap *h)
{
    pthread_mutex_lock(&h->sched_lock);
    h->shutdown = 1;
    pthread_cond_broadcast(&h->work_cv);
    pthread_mutex_unlock(&h->sched_lock);
    for (int i = 0; i < h->nworkers; i++) pthread_join(h->workers[i], NULL);
    if (h->has_sweeper) pthread_join(h->sweeper, NULL);
    free(h->workers);
    h->workers = NULL;
    h->nworkers = h->has_sweeper = 0;
}

WBGCDEF wbgc_heap *wbgc_heap_new(const wbgc_config *cfg)
{
    wbgc_config c;
    if (cfg) c = *cfg;
    else wbgc_config_default(&c);
    wbgc_heap tmp;  /* for reports before the heap exists */
    memset(&tmp, 0, sizeof tmp);
    tmp.cfg = c;
    wbgc__env_overrides(&tmp, &c);
    const unsigned known = WBGC_STW | WBGC_CHECK | WBGC_TRACE | WBGC_NO_STACK_SCAN | WBGC_VERIFY |
                           WBGC_FINALIZE_ON_DEMAND | WBGC_NO_ENV_MODE;
    if (c.flags & ~known) {
        wbgc__report(&tmp, "wbgc: error: wbgc_heap_new: unknown flags %#x", c.flags & ~known);
        return NULL;
    }
    if (c.mark_workers < -1) {
        wbgc__report(&tmp, "wbgc: error: wbgc_heap_new: mark_workers = %d (want -1, 0 or more)",
                     c.mark_workers);
        return NULL;
    }
    if (c.mark_workers == -1) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        if (c.flags & WBGC_STW)  /* every CPU marks while the world is stopped */
            c.mark_workers = n > 1 ? (int)(n > 64 ? 63 : n - 1) : 0;
        else
            c.mark_workers = n >= 8 ? (int)(n / 4) : 1;  /* a quarter of the CPUs */
    }
    pthread_once(&wbgc__classes_once, wbgc__classes_init);

    wbgc_heap *h = (wbgc_heap *)calloc(1, sizeof *h);
    void *index = mmap(NULL, WBGC__ARENA_SLOTS * sizeof(wbgc__arena *), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    void *layouts = mmap(NULL, WBGC__LAYOUT_SLOTS * sizeof(wbgc_layout *), PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (!h || index == MAP_FAILED || layouts == MAP_FAILED) {
        int err = errno;
        free(h);
        if (index != MAP_FAILED) munmap(index, WBGC__ARENA_SLOTS * sizeof(wbgc__arena *));
        if (layouts != MAP_FAILED) munmap(layouts, WBGC__LAYOUT_SLOTS * sizeof(wbgc_layout *));
        wbgc__report(&tmp, "wbgc: out of memory: wbgc_heap_new: %s", strerror(err));
        return NULL;
    }
    h->magic = WBGC__H_MAGIC;
    h->cfg = c;
    h->start_ns = wbgc__now_ns();
    h->arena_index = (wbgc__arena **)index;
    h->layouts = (const wbgc_layout **)layouts;
    h->nlayouts = WBGC__LAYOUT_FIRST;
    pthread_mutex_init(&h->lock, NULL);
    pthread_mutex_init(&h->sched_lock, NULL);
    pthread_cond_init(&h->resume_cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->parked_cv, &ca);  /* timed: wbgc__wait_for_ps */
    pthread_cond_init(&h->work_cv, &ca);
    pthread_cond_init(&h->cycle_cv, &ca);
    pthread_cond_init(&h->stw_cv, &ca);  /* timed: wbgc__stw_drain */
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&h->markdone_lock, NULL);
    pthread_mutex_init(&h->gc_lock, NULL);
    pthread_mutex_init(&h->roots_lock, NULL);
    pthread_mutex_init(&h->work_lock, NULL);
    pthread_mutex_init(&h->stats_lock, NULL);
    pthread_mutex_init(&h->sweeper_lock, NULL);
    for (size_t i = 0; i < WBGC__NSPC; i++) pthread_mutex_init(&h->central[i].lock, NULL);
    for (int k = 0; k < WBGC__SHARDS; k++) pthread_mutex_init(&h->specials[k].lock, NULL);
    pthread_mutex_init(&h->specials_gate, NULL);
    pthread_mutex_init(&h->fin_lock, NULL);
    pthread_cond_init(&h->fin_cv, NULL);
    pthread_mutex_init(&h->links_lock, NULL);
    h->trigger_pm = WBGC__TRIGGER_FIRST;
    wbgc__pace(h, 0);
    wbgc__start_threads(h);
    wbgc__fork_register(h);
    return h;
}

WBGCDEF void wbgc_heap_free(wbgc_heap *h)
{
    if (!h) return;
    if (h->magic != WBGC__H_MAGIC) {
        wbgc__report(NULL, "wbgc: misuse: wbgc_heap_free(h=%p): not a live wbgc heap", (void *)h);
        return;
    }
    wbgc__fin_stop(h);  /* its P first (restarted lazily if nothing is freed) */
    pthread_mutex_lock(&h->sched_lock);
    if (h->ps) {
        char list[512];
        size_t len = 0;
        for (wbgc_p *q = h->ps; q && len < sizeof list - 64; q = q->next)
            len += (size_t)snprintf(list + len, sizeof list - len, " %p (thread %#lx)", (void *)q,
                                    wbgc__thread_id(q->thread));
        pthread_mutex_unlock(&h->sched_lock);
        wbgc__report(h, "wbgc: misuse: wbgc_heap_free(h=%p) with %d P(s) still attached:%s; "
                     "detach every P first. Nothing was freed.", (void *)h, h->nps, list);
        return;
    }
    pthread_mutex_unlock(&h->sched_lock);
    wbgc__fork_unregister(h);
    wbgc__stop_threads(h);
    h->magic = 0;
    for (wbgc_p *q = h->free_ps, *n; q; q = n) {
        n = q->next;
        free(q);
    }
    /* Span structs: every list that holds one. */
    wbgc__span **lists[WBGC__NSPC * 5 + WBGC__FREE_LISTS + 4];
    size_t nl = 0;
    for (size_t i = 0; i < WBGC__NSPC; i++) {
        lists[nl++] = &h->central[i].partial;
        lists[nl++] = &h->central[i].full;
    }
    for (size_t i = 0; i <= WBGC__FREE_LISTS; i++) lists[nl++] = &h->free_runs[i];
    lists[nl++] = &h->large;
    for (size_t i = 0; i < WBGC__NSPC; i++)
        for (int k = 0; k < 3; k++) lists[nl++] = &h->central[i].unswept[k];
    lists[nl++] = &h->large_unswept;
    for (size_t i = 0; i < nl; i++) {
        wbgc__span *s;
        while ((s = wbgc__list_pop(lists[i])) != NULL) {
            free(s->layout_ids);
            free(s->waitheads);  /* freed mid-mark */
            free(s);
        }
    }
    for (wbgc__span *s = h->spare_spans, *n; s; s = n) {
        n = s->next;
        free(s);
    }
    for (wbgc__arena *a = h->arenas, *n; a; a = n) {
        n = a->next;
        if (a->mapping_head) munmap((void *)a->base, a->mapping_bytes);
        free(a);
    }
    for (wbgc__wbchunk *ck = h->work_chunks, *n; ck; ck = n) {
        n = ck->next;
        munmap(ck, ck->bytes);
    }
    free(h->roots);
    for (int k = 0; k < WBGC__SHARDS; k++) {
        free(h->specials[k].tab);
        pthread_mutex_destroy(&h->specials[k].lock);
    }
    for (wbgc__finq *q = h->fin_head, *n; q; q = n) {  /* dropped, not run */
        n = q->next;
        free(q);
    }
    pthread_mutex_destroy(&h->specials_gate);
    pthread_mutex_destroy(&h->fin_lock);
    pthread_cond_destroy(&h->fin_cv);
    pthread_mutex_destroy(&h->links_lock);
    free(h->links);
    munmap(h->arena_index, WBGC__ARENA_SLOTS * sizeof(wbgc__arena *));
    uint32_t nl_made = h->nlayouts < WBGC__LAYOUT_SLOTS ? h->nlayouts : WBGC__LAYOUT_SLOTS;
    for (uint32_t id = WBGC__LAYOUT_FIRST; id < nl_made; id++) free((void *)h->layouts[id]);
    munmap((void *)h->layouts, WBGC__LAYOUT_SLOTS * sizeof(wbgc_layout *));
    pthread_mutex_destroy(&h->lock);
    pthread_mutex_destroy(&h->sched_lock);
    pthread_cond_destroy(&h->parked_cv);
    pthread_cond_destroy(&h->resume_cv);
    pthread_cond_destroy(&h->work_cv);
    pthread_cond_destroy(&h->cycle_cv);
    pthread_cond_destroy(&h->stw_cv);
    pthread_mutex_destroy(&h->markdone_lock);
    pthread_mutex_destroy(&h->gc_lock);
    pthread_mutex_destroy(&h->roots_lock);
    pthread_mutex_destroy(&h->work_lock);
    pthread_mutex_destroy(&h->stats_lock);
    pthread_mutex_destroy(&h->sweeper_lock);
    for (size_t i = 0; i < WBGC__NSPC; i++) pthread_mutex_destroy(&h->central[i].lock);
    free(h);
}

/* A thread that ends without wbgc_detach would leave its P running for
   ever (every stop of the world would wait for it) and its stack, soon
   unmapped or another thread's, to be scanned. So each thread's Ps are
   listed in a thread-specific value whose destructor, run by the exiting
   thread itself while its stack is still there, detaches them. */
static pthread_key_t  wbgc__exit_key;
static pthread_once_t wbgc__exit_once = PTHREAD_ONCE_INIT;
static int            wbgc__exit_key_ok;

/* wbgc__thread_exit: the destructor. In check mode the exit is reported
   (a program should detach: rule 1); the P is detached all the same. */
static void wbgc__thread_exit(void *first)
{
    pthread_setspecific(wbgc__exit_key, NULL);
    for (wbgc_p *p = (wbgc_p *)first, *n; p; p = n) {
        n = p->thread_next;
        p->thread_next = NULL;
        if (p->magic != WBGC__P_MAGIC) continue;
        if (p->check)
            wbgc__report(p->heap, "wbgc: misuse: thread %#lx exited holding P %p without "
                         "wbgc_detach (rule 1); it was detached for it",
                         wbgc__thread_id(p->thread), (void *)p);
        /* A thread that ends inside a wbgc call (pthread_exit in on_error)
           leaves its P marked inside it (rule 5); nothing of that call runs
           any more. */
        p->in_call = NULL;
        if (p->status != WBGC__P_RUNNING) wbgc_blocking_end(p);  /* pthread_exit inside one */
        wbgc_detach(p);
    }
}

static void wbgc__exit_key_init(void)
{
    wbgc__exit_key_ok = pthread_key_create(&wbgc__exit_key, wbgc__thread_exit) == 0;
}

/* wbgc__exit_watch lists p as its (calling) thread's, or unlists it. */
static void wbgc__exit_watch(wbgc_p *p, int add)
{
    pthread_once(&wbgc__exit_once, wbgc__exit_key_init);
    if (!wbgc__exit_key_ok) return;
    wbgc_p *first = (wbgc_p *)pthread_getspecific(wbgc__exit_key);
    if (add) {
        p->thread_next = first;
        pthread_setspecific(wbgc__exit_key, p);
        return;
    }
    wbgc_p **pp = &first;
    while (*pp && *pp != p) pp = &(*pp)->thread_next;
    if (*pp) *pp = p->thread_next;
    p->thread_next = NULL;
    pthread_setspecific(wbgc__exit_key, first);
}

WBGCDEF wbgc_p *wbgc_attach(wbgc_heap *h)
{
    if (!h || h->magic != WBGC__H_MAGIC) {
        wbgc__report(NULL, "wbgc: misuse: wbgc_attach(h=%p): not a live wbgc heap", (void *)h);
        return NULL;
    }
    pthread_t self = pthread_self();
    pthread_attr_t attr;
    void *stack_addr = NULL;
    size_t stack_size = 0;
    if (pthread_getattr_np(self, &attr) == 0) {
        pthread_attr_getstack(&attr, &stack_addr, &stack_size);
        pthread_attr_destroy(&attr);
    }
    if (!stack_addr && !(h->cfg.flags & WBGC_NO_STACK_SCAN)) {
        wbgc__report(h, "wbgc: error: wbgc_attach: cannot find the bounds of thread %#lx's stack "
                     "to scan it (use WBGC_NO_STACK_SCAN and registered roots)",
                     wbgc__thread_id(self));
        return NULL;
    }
    pthread_mutex_lock(&h->sched_lock);
    for (wbgc_p *q = h->ps; q; q = q->next) {
        if (pthread_equal(q->thread, self)) {
            pthread_mutex_unlock(&h->sched_lock);
            wbgc__report(h, "wbgc: misuse: wbgc_attach(h=%p): thread %#lx already holds P %p "
                         "(rule 1: one P per thread)", (void *)h, wbgc__thread_id(self), (void *)q);
            return NULL;
        }
    }
    while (h->stopping) pthread_cond_wait(&h->resume_cv, &h->sched_lock);
    wbgc_p *p = h->free_ps;
    if (p) h->free_ps = p->next;
    else p = (wbgc_p *)malloc(sizeof *p);
    if (!p) {
        pthread_mutex_unlock(&h->sched_lock);
        wbgc__report(h, "wbgc: out of memory: wbgc_attach: no memory for a P");
        return NULL;
    }
    memset(p, 0, sizeof *p);
    p->heap = h;
    p->magic = WBGC__P_MAGIC;
    p->status = WBGC__P_RUNNING;
    p->thread = self;
    p->stack_lo = (uintptr_t)stack_addr;
    p->stack_hi = (uintptr_t)stack_addr + stack_size;
    for (size_t i = 0; i < WBGC__NSPC; i++) p->cache[i] = &wbgc__empty_span;
    wbgc__wb_reset(h, p);
    p->fast.wb_on = (h->cfg.flags & WBGC_CHECK) != 0;  /* every barrier validated */
    p->check = (h->cfg.flags & WBGC_CHECK) != 0;
    if (WBGC__LOAD(h->phase) == WBGC__PHASE_MARK) {
        /* Attached while marking: barrier on, allocation black, and its own
           stack to scan (its thread may hold pointers it was handed). */
        p->fast.wb_on = 1;
        p->alloc_black = 1;
        p->stack_black = 0;
        p->req |= WBGC__REQ_SCAN;
        __atomic_fetch_add(&h->stacks_pending, 1, __ATOMIC_RELEASE);
    }
    p->next = h->ps;
    h->ps = p;
    h->nps++;
    wbgc__update_preempt(h, p);
    pthread_mutex_unlock(&h->sched_lock);
    wbgc__exit_watch(p, 1);
    return p;
}

/* wbgc__retire_p ends p, already unlinked from h->ps, its work handed
   over or dropped: its cached spans go back to their central lists (as
   swept), its counts to the heap, and its handle to the free list, where
   it stays valid memory so that a later use is reported (sticky preempt:
   every use takes a slow path, which checks). sched_lock held, or the only
   thread of a forked child. */
static void wbgc__retire_p(wbgc_heap *h, wbgc_p *p)
{
    wbgc__release_caches(h, p, 0);
    h->total_alloc_base += p->allocd;
    h->wb_flushes_base += p->wb_flushes;
    WBGC__ADD(h->alloc_since, p->allocd - p->allocd_reported);
    h->nps--;
    p->magic = WBGC__P_DEAD;
    p->status = WBGC__P_DETACHED;
    wbgc__update_preempt(h, p);
    p->next = h->free_ps;
    h->free_ps = p;
}

WBGCDEF void wbgc_detach(wbgc_p *p)
{
    if (wbgc__check_p(p, "wbgc_detach") < 0) return;
    if (WBGC__UNLIKELY(p->check) && wbgc__enter(p, "wbgc_detach", WBGC__CALLER_SP()) != 0) return;
    wbgc_heap *h = p->heap;
    if (p->status != WBGC__P_RUNNING) {
        wbgc__report(h, "wbgc: misuse: wbgc_detach(p=%p) inside a blocking region", (void *)p);
        if (p->check) wbgc__leave(p);
        return;
    }
    /* A P pays for what it allocated while a cycle marks before it goes,
       however little. Threads that attach, allocate a little and detach in
       a loop would otherwise never assist (each P starts with no debt and
       owes less than WBGC__ASSIST_MIN when it leaves): they crowd the
       marker off the CPUs, the cycle runs on, and all they allocate
       meanwhile is born marked (measured: 64 such threads beside two
       allocators, cycles that marked 1970 MB for a few MB live). */
    uint64_t unreported = p->allocd - p->allocd_reported;
    p->allocd_reported = p->allocd;
    WBGC__ADD(h->alloc_since, unreported);
    if (WBGC__LOAD(h->phase) == WBGC__PHASE_MARK) wbgc__assist(p, unreported, 1);
    wbgc__exit_watch(p, 0);
    pthread_mutex_lock(&h->sched_lock);
    while (h->stopping) wbgc__park(h, p);
    /* Leaving hides nothing (PITFALLS 10): its barrier buffer and mark work
       go to the global lists; its stack needs no scan any more. */
    wbgc__flush_p(h, p);
    WBGC__ADD(h->cycle_marked, p->black_bytes);
    if (p->req & WBGC__REQ_SCAN) __atomic_fetch_sub(&h->stacks_pending, 1, __ATOMIC_RELEASE);
    p->req = 0;
    wbgc_p **pp = &h->ps;
    while (*pp != p) pp = &(*pp)->next;
    *pp = p->next;
    p->in_call = NULL;  /* check mode: the P's last call ends here */
    wbgc__retire_p(h, p);
    pthread_cond_broadcast(&h->parked_cv);  /* a hand-shake may wait for it */
    pthread_mutex_unlock(&h->sched_lock);
    pthread_cond_broadcast(&h->work_cv);
}

/* wbgc__roots_changed greys what a root region points to when it is added
   or removed while a cycle marks, where the cycle's scan of the root
   regions would otherwise miss it: a region added after that scan began
   (roots_state 1 or 2) is not scanned this cycle, and a region removed
   before it ended (0 or 1) takes its pointers away with no barrier; an
   object that the program loaded from it, or stored into it with plain
   stores before registering it (rule 4), would be freed while its stack
   holds it. roots_lock held: the scan, the phase's start and its end take
   it too, so the look at phase and state cannot race them. Any thread. */
static void wbgc__roots_changed(wbgc_heap *h, uintptr_t lo, uintptr_t hi, int adding)
{
    if (WBGC__LOAD(h->phase) != WBGC__PHASE_MARK) return;
    int st = __atomic_load_n(&h->roots_state, __ATOMIC_ACQUIRE);
    if (adding ? st == 0 : st == 2) return;
    wbgc__gcwork g;
    memset(&g, 0, sizeof g);
    wbgc__scan_range(h, &g, lo, hi);
    wbgc__gcw_dispose(h, &g);  /* under roots_lock: termination sees it */
    pthread_cond_broadcast(&h->work_cv);
}

static int wbgc__add_roots(wbgc_heap *h, void *start, size_t size, int rescan, const char *fn)
{
    if (!h || h->magic != WBGC__H_MAGIC) {
        wbgc__report(NULL, "wbgc: misuse: %s(h=%p): not a live wbgc heap", fn, (void *)h);
        return -1;
    }
    uintptr_t lo = (uintptr_t)start;
    if (!start || size == 0 || lo + size < lo) {
        wbgc__report(h, "wbgc: error: %s(start=%p, size=%zu): %s", fn, start, size,
                     !start ? "NULL start" : size == 0 ? "empty region" : "region wraps around");
        return -1;
    }
    pthread_mutex_lock(&h->roots_lock);
    if (h->nroots == h->roots_cap) {
        size_t cap = h->roots_cap ? h->roots_cap * 2 : 16;
        wbgc__root *r = (wbgc__root *)realloc(h->roots, cap * sizeof *r);
        if (!r) {
            pthread_mutex_unlock(&h->roots_lock);
            wbgc__report(h, "wbgc: out of memory: %s(start=%p, size=%zu)", fn, start, size);
            return -1;
        }
        h->roots = r;
        h->roots_cap = cap;
    }
    h->roots[h->nroots].start = start;
    h->roots[h->nroots].lo = lo;
    h->roots[h->nroots].hi = lo + size;
    h->roots[h->nroots].rescan = rescan;
    h->nroots++;
    h->nroots_rescan += rescan != 0;
    __atomic_store_n(&h->roots_gen, h->roots_gen + 1, __ATOMIC_RELEASE);
    wbgc__roots_changed(h, lo, lo + size, 1);
    pthread_mutex_unlock(&h->roots_lock);
    return 0;
}

WBGCDEF int wbgc_add_roots(wbgc_heap *h, void *start, size_t size)
{
    return wbgc__add_roots(h, start, size, 0, "wbgc_add_roots");
}

WBGCDEF int wbgc_add_roots_rescan(wbgc_heap *h, void *start, size_t size)
{
    return wbgc__add_roots(h, start, size, 1, "wbgc_add_roots_rescan");
}

/* wbgc__rescan_roots scans the regions registered with
   wbgc_add_roots_rescan once more, in the pause that would end a mark: a
   plain store may have put there, after the region's first scan, the only
   pointer to an object that the mark has not reached. What it greys keeps
   the mark going (the caller sees work). World stopped. */
static void wbgc__rescan_roots(wbgc_heap *h)
{
    pthread_mutex_lock(&h->roots_lock);
    if (h->nroots_rescan) {
        wbgc__gcwork g;
        memset(&g, 0, sizeof g);
        for (size_t i = 0; i < h->nroots; i++)
            if (h->roots[i].rescan) wbgc__scan_range(h, &g, h->roots[i].lo, h->roots[i].hi);
        wbgc__gcw_dispose(h, &g);
    }
    pthread_mutex_unlock(&h->roots_lock);
}

WBGCDEF void wbgc_remove_roots(wbgc_heap *h, void *start)
{
    if (!h || h->magic != WBGC__H_MAGIC) {
        wbgc__report(NULL, "wbgc: misuse: wbgc_remove_roots(h=%p): not a live wbgc heap", (void *)h);
        return;
    }
    pthread_mutex_lock(&h->roots_lock);
    for (size_t i = h->nroots; i-- > 0;) {
        if (h->roots[i].start == start) {
            __atomic_store_n(&h->roots_gen, h->roots_gen + 1, __ATOMIC_RELEASE);
            wbgc__roots_changed(h, h->roots[i].lo, h->roots[i].hi, 0);
            h->nroots_rescan -= h->roots[i].rescan != 0;
            h->roots[i] = h->roots[--h->nroots];
            pthread_mutex_unlock(&h->roots_lock);
            return;
        }
    }
    pthread_mutex_unlock(&h->roots_lock);
    wbgc__report(h, "wbgc: misuse: wbgc_remove_roots(start=%p): no root region starts there", start);
}

/* ---- finalizers and weak references (section "Finalizers and weak
   references"; each body below runs inside its public function's check) */

/* wbgc__not_object reports that obj, passed to fn, is not the start of an
   object of p's heap (misuse), and returns -1. */
static int wbgc__not_object(wbgc_p *p, const char *fn, const void *obj)
{
    wbgc__report(p->heap, "wbgc: misuse: %s(p=%p, obj=%p): obj is not the start of an allocated "
                 "object of this heap (pass what wbgc_alloc returned)", fn, (void *)p, obj);
    return -1;
}

static int wbgc__set_finalizer(wbgc_p *p, void *obj, wbgc_finalizer fn, void *arg)
{
    wbgc_heap *h = p->heap;
    wbgc__span *s;
    uint32_t idx;
    if (!wbgc__object_start(h, obj, &s, &idx)) return wbgc__not_object(p, "wbgc_set_finalizer", obj);
    size_t hash = wbgc__special_hash((uintptr_t)obj);
    wbgc__shard *sh = wbgc__shard_of(h, hash);
    pthread_mutex_lock(&sh->lock);
    wbgc__special *r = wbgc__special_find(sh, (uintptr_t)obj, hash);
    if (!fn) {  /* remove */
        if (r && r->fn) {
            r->fn = NULL;
            r->arg = NULL;
            __atomic_fetch_sub(&h->fin_pending, 1, __ATOMIC_RELAXED);
            if (!r->handle) {
                wbgc__special_del(sh, r);
                wbgc__special_bit(s, (uintptr_t)obj, 0);
            }
        }
        pthread_mutex_unlock(&sh->lock);
        return 0;
    }
    if (!r) {
        r = wbgc__special_add(sh, (uintptr_t)obj, hash);
        if (!r) {
            pthread_mutex_unlock(&sh->lock);
            wbgc__report(h, "wbgc: out of memory: wbgc_set_finalizer(obj=%p): no memory for "
                         "its record", obj);
            return -1;
        }
        wbgc__special_bit(s, (uintptr_t)obj, 1);
    }
    if (!r->fn) WBGC__ADD(h->fin_pending, 1);
    r->fn = fn;
    r->arg = arg;
    if (WBGC__LOAD(h->phase) == WBGC__PHASE_MARK) {
        /* the root job may have passed this shard: do its part here */
        wbgc__scan_finalizable(h, &p->gcw, (uintptr_t)obj);
        wbgc__shade(h, &p->gcw, (uintptr_t)arg);
    }
    pthread_mutex_unlock(&sh->lock);
    return wbgc__fin_start(h);
}

WBGCDEF int wbgc_set_finalizer(wbgc_p *p, void *obj, wbgc_finalizer fn, void *arg)
{
    if (wbgc__check_p(p, "wbgc_set_finalizer") < 0) return -1;
    if (WBGC__UNLIKELY(p->check) && wbgc__enter(p, "wbgc_set_finalizer", WBGC__CALLER_SP()) != 0)
        return -1;
    int r = wbgc__set_finalizer(p, obj, fn, arg);
    if (p->check) wbgc__leave(p);
    return r;
}

WBGCDEF size_t wbgc_run_finalizers(wbgc_p *p, size_t max)
{
    if (wbgc__check_p(p, "wbgc_run_finalizers") < 0) return 0;
    if (WBGC__LOAD(p->fast.preempt)) wbgc__safepoint_at(p, "wbgc_run_finalizers");
    /* Not marked as inside a call (rule 5): the finalizers call wbgc. */
    return wbgc__fin_run(p, max);
}

/* wbgc__weak_new: obj's weak handle, for fn (wbgc_weak_new, or
   wbgc_ephemeron_new's key). */
static wbgc_weak *wbgc__weak_new(wbgc_p *p, void *obj, const char *fn)
{
    wbgc_heap *h = p->heap;
    wbgc__span *s;
    uint32_t idx;
    if (!wbgc__object_start(h, obj, &s, &idx)) {
        wbgc__not_object(p, fn, obj);
        return NULL;
    }
    size_t hash = wbgc__special_hash((uintptr_t)obj);
    wbgc__shard *sh = wbgc__shard_of(h, hash);
    wbgc_weak *w = NULL;
    for (;;) {
        pthread_mutex_lock(&sh->lock);
        wbgc__special *r = wbgc__special_find(sh, (uintptr_t)obj, hash);
        if (r && r->handle) {  /* kept alive by the record (root job) */
            wbgc_weak *have = (wbgc_weak *)r->handle;
            pthread_mutex_unlock(&sh->lock);
            return have;  /* a new one, if made, is garbage */
        }
        if (w) {
            if (!r) r = wbgc__special_add(sh, (uintptr_t)obj, hash);
            if (!r) {
                pthread_mutex_unlock(&sh->lock);
                wbgc__report(h, "wbgc: out of memory: wbgc_weak_new(obj=%p): no memory for "
                             "its record", obj);
                return NULL;
            }
            if (!r->fn) wbgc__special_bit(s, (uintptr_t)obj, 1);  /* a new record */
            __atomic_store_n(&w->obj, (uintptr_t)obj, __ATOMIC_RELEASE);
            r->handle = (uintptr_t)w;
            WBGC__ADD(h->weak_live, 1);
            pthread_mutex_unlock(&sh->lock);
            return w;
        }
        pthread_mutex_unlock(&sh->lock);
        /* Allocating is a safepoint: look again after it. obj is held
           here (and by the caller), so it lives. During a mark the handle
           is born black; the table keeps it from the next mark on. */
        w = (wbgc_weak *)wbgc_alloc_noscan(p, sizeof *w);
        if (!w) return NULL;
    }
}

WBGCDEF wbgc_weak *wbgc_weak_new(wbgc_p *p, void *obj)
{
    if (wbgc__check_p(p, "wbgc_weak_new") < 0) return NULL;
    return wbgc__weak_new(p, obj, "wbgc_weak_new");  /* its allocation marks the P (rule 5) */
}

/* wbgc__weak_obj: what handle w yields now (see the top of section
   "Finalizers and weak references"). */
static uintptr_t wbgc__weak_obj(wbgc_p *p, const wbgc_weak *w)
{
    wbgc_heap *h = p->heap;
    uintptr_t obj = __atomic_load_n(&w->obj, __ATOMIC_ACQUIRE);
    if (!obj) return 0;
    if (WBGC__LOAD(h->phase) == WBGC__PHASE_MARK) {  /* every span swept: the handle is true */
        wbgc__shade(h, &p->gcw, obj);                 /* and the mark will not find it dead */
        return obj;
    }
    if (__atomic_load_n(&h->sweep_done, __ATOMIC_ACQUIRE) == WBGC__LOAD(h->marks_done))
        return __atomic_load_n(&w->obj, __ATOMIC_ACQUIRE);
    size_t hash = wbgc__special_hash(obj);
    wbgc__shard *sh = wbgc__shard_of(h, hash);
    pthread_mutex_lock(&sh->lock);
    obj = __atomic_load_n(&w->obj, __ATOMIC_ACQUIRE);  /* cleared meanwhile: stays 0 */
    wbgc__span *s = obj ? wbgc__span_of(h, obj) : NULL;
    uint64_t gen = WBGC__LOAD(h->marks_done);
    if (s && __atomic_load_n(&s->specials_gen, __ATOMIC_ACQUIRE) != gen) {
        /* Its sweep has not stamped it: the mark says. A clear bit read
           may be the sweep's clearing, made after it stamped the span
           (a release store): then the stamp is seen now, and the sweep
           passed obj without this lock, which it would need to clear
           obj's handle: obj lives. Else obj is dead. */
        uint32_t idx = (uint32_t)(((uint64_t)(obj - s->base) * s->divmagic) >> 32);
        if (!((__atomic_load_n(&s->markbits[idx >> 6], __ATOMIC_ACQUIRE) >> (idx & 63)) & 1) &&
            __atomic_load_n(&s->specials_gen, __ATOMIC_ACQUIRE) != gen)
            obj = 0;
    }
    pthread_mutex_unlock(&sh->lock);
    return obj;
}

WBGCDEF void *wbgc_weak_get(wbgc_p *p, wbgc_weak *w)
{
    if (wbgc__check_p(p, "wbgc_weak_get") < 0 || !w) return NULL;
    return (void *)wbgc__weak_obj(p, w);
}

/* ---- ephemerons (section "Finalizers and weak references": Ephemerons) */

WBGCDEF wbgc_ephemeron *wbgc_ephemeron_new(wbgc_p *p, void *key, void *value)
{
    if (wbgc__check_p(p, "wbgc_ephemeron_new") < 0) return NULL;
    wbgc_weak *kh = wbgc__weak_new(p, key, "wbgc_ephemeron_new");  /* held here */
    if (!kh) return NULL;
    wbgc_ephemeron *e = (wbgc_ephemeron *)wbgc__alloc(p, sizeof *e, WBGC__KIND_TYPED,
                                                      WBGC__LAYOUT_EPHEMERON);
    if (!e) return NULL;
    /* no safepoint since the allocation: no marker has seen e unfilled */
    wbgc_write(p, &e->key, kh);
    wbgc_write(p, &e->value, value);
    return e;
}

/* wbgc__eph_key: e's key, or 0 once it died. */
static uintptr_t wbgc__eph_key(wbgc_p *p, wbgc_ephemeron *e)
{
    wbgc_weak *kh = e ? WBGC__LOAD(e->key) : NULL;
    return kh ? wbgc__weak_obj(p, kh) : 0;
}

WBGCDEF void *wbgc_ephemeron_key(wbgc_p *p, wbgc_ephemeron *e)
{
    if (wbgc__check_p(p, "wbgc_ephemeron_key") < 0) return NULL;
    return (void *)wbgc__eph_key(p, e);
}

WBGCDEF void *wbgc_ephemeron_value(wbgc_p *p, wbgc_ephemeron *e)
{
    if (wbgc__check_p(p, "wbgc_ephemeron_value") < 0 || !wbgc__eph_key(p, e)) return NULL;
    /* The key lives, so the value does (e is held, so it was marked if a
       mark ended, and so was the value); during a mark, shaded, as a weak
       get's object is: the mark may have seen e wait on the key. */
    uintptr_t v = (uintptr_t)WBGC__LOAD(e->value);
    if (WBGC__LOAD(p->heap->phase) == WBGC__PHASE_MARK) wbgc__shade(p->heap, &p->gcw, v);
    return (void *)v;
}

WBGCDEF void wbgc_ephemeron_set_value(wbgc_p *p, wbgc_ephemeron *e, void *value)
{
    if (wbgc__check_p(p, "wbgc_ephemeron_set_value") < 0 || !wbgc__eph_key(p, e)) return;
    wbgc_write(p, &e->value, value);  /* the old value may be a dead key's: not after */
}

/* ---- object queries and pacing settings -------------------------------- */

WBGCDEF void *wbgc_base(wbgc_heap *h, const void *ptr)
{
    if (!h || h->magic != WBGC__H_MAGIC) {
        wbgc__report(NULL, "wbgc: misuse: wbgc_base(h=%p): not a live wbgc heap", (void *)h);
        return NULL;
    }
    wbgc__span *s = wbgc__span_of(h, (uintptr_t)ptr);
    if (!s) return NULL;
    uint32_t i = (uint32_t)(((uint64_t)((uintptr_t)ptr - s->base) * s->divmagic) >> 32);
    void *obj = (void *)(s->base + (uintptr_t)i * s->elemsize);
    wbgc__span *s2;
    uint32_t i2;
    return i < s->nelems && wbgc__object_start(h, obj, &s2, &i2) ? obj : NULL;
}

WBGCDEF size_t wbgc_usable_size(wbgc_heap *h, const void *obj)
{
    if (!h || h->magic != WBGC__H_MAGIC) {
        wbgc__report(NULL, "wbgc: misuse: wbgc_usable_size(h=%p): not a live wbgc heap", (void *)h);
        return 0;
    }
    wbgc__span *s;
    uint32_t idx;
    return wbgc__object_start(h, obj, &s, &idx) ? s->elemsize : 0;
}

WBGCDEF int wbgc_set_gc_percent(wbgc_heap *h, int percent)
{
    int old = __atomic_exchange_n(&h->cfg.gc_percent, percent < 0 ? -1 : percent, __ATOMIC_RELAXED);
    /* Outside a mark, the goal and trigger from what the last cycle found
       live. A cycle ending meanwhile sets its own (wbgc__pace), which
       these may overwrite with the same formula and an older live figure:
       the next cycle's goal is then a little off, nothing worse. */
    if (WBGC__LOAD(h->phase) != WBGC__PHASE_MARK) {
        uint64_t goal, trigger;
        wbgc__goal_of(h, WBGC__LOAD(h->heap_marked), &goal, &trigger);
        WBGC__STORE(h->goal, goal);
        WBGC__STORE(h->trigger, trigger);
    }
    return old;
}

WBGCDEF size_t wbgc_set_memory_limit(wbgc_heap *h, size_t bytes)
{
    return __atomic_exchange_n(&h->cfg.memory_limit, bytes, __ATOMIC_RELAXED);
}

WBGCDEF int wbgc_get_finalizer(wbgc_p *p, void *obj, wbgc_finalizer *fn, void **arg)
{
    wbgc_finalizer f = NULL;
    void *a = NULL;
    wbgc__span *s;
    uint32_t idx;
    if (wbgc__check_p(p, "wbgc_get_finalizer") == 0 && wbgc__object_start(p->heap, obj, &s, &idx)) {
        size_t hash = wbgc__special_hash((uintptr_t)obj);
        wbgc__shard *sh = wbgc__shard_of(p->heap, hash);
        pthread_mutex_lock(&sh->lock);
        wbgc__special *r = wbgc__special_find(sh, (uintptr_t)obj, hash);
        if (r) f = r->fn, a = r->arg;
        pthread_mutex_unlock(&sh->lock);
    }
    if (fn) *fn = f;
    if (arg) *arg = a;
    return f != NULL;
}

/* ---- disappearing links (section "Disappearing links") ----------------
   The table holds (link, obj) pairs, open-addressed by the link's address
   with linear probing. An entry that goes becomes a tombstone
   (WBGC__LINK_GONE: no link is at address 1), so that the pause can drop
   entries in one pass; a rehash, when live entries and tombstones fill
   three quarters of it, clears them. links_lock guards it all. */

#define WBGC__LINK_GONE ((uintptr_t)1)

static inline size_t wbgc__link_hash(uintptr_t link)
{
    uint64_t x = (uint64_t)(link >> 3) * 0x9E3779B97F4A7C15ull;
    return (size_t)(x ^ (x >> 29));
}

/* wbgc__link_find: link's entry, or NULL. links_lock held. */
static wbgc__link *wbgc__link_find(wbgc_heap *h, uintptr_t link)
{
    if (!h->links_cap) return NULL;
    size_t m = h->links_cap - 1;
    for (size_t i = wbgc__link_hash(link) & m;; i = (i + 1) & m) {
        if (h->links[i].link == link) return &h->links[i];
        if (!h->links[i].link) return NULL;
    }
}

/* wbgc__link_put places a new entry in the first empty slot of its probe
   (never a tombstone: the counts stay simple). links_lock held, room
   made. */
static void wbgc__link_put(wbgc__link *t, size_t cap, uintptr_t link, uintptr_t obj)
{
    size_t i = wbgc__link_hash(link) & (cap - 1);
    while (t[i].link) i = (i + 1) & (cap - 1);
    t[i].link = link;
    t[i].obj = obj;
}

/* wbgc__links_room makes room for one more entry: rehashes the live ones
   into a table of twice their number's power of two (at least 64). 0, or
   -1 when memory runs out (the table unchanged). links_lock held. */
static int wbgc__links_room(wbgc_heap *h)
{
    if ((h->links_used + 1) * 4 <= h->links_cap * 3) return 0;
    size_t cap = 64;
    while (cap < (h->links_n + 1) * 2) cap *= 2;
    wbgc__link *t = (wbgc__link *)calloc(cap, sizeof *t);
    if (!t) return -1;
    for (size_t i = 0; i < h->links_cap; i++)
        if (h->links[i].link > WBGC__LINK_GONE) wbgc__link_put(t, cap, h->links[i].link, h->links[i].obj);
    free(h->links);
    h->links = t;
    h->links_cap = cap;
    h->links_used = h->links_n;
    return 0;
}

static void wbgc__link_gone(wbgc_heap *h, wbgc__link *e)
{
    e->link = WBGC__LINK_GONE;
    e->obj = 0;
    h->links_n--;
}

/* wbgc__marked_at: 1 when addr lies in an object that the mark just
   ended found live (or that was allocated black), 0 when it lies in one
   it did not, -1 when it lies in no object of h. World stopped, between
   the end of a mark and the start of its sweep. */
static int wbgc__marked_at(wbgc_heap *h, uintptr_t addr)
{
    wbgc__span *s = wbgc__span_of(h, addr);
    if (!s) return -1;
    uint32_t i = (uint32_t)(((uint64_t)(addr - s->base) * s->divmagic) >> 32);
    if (i >= s->nelems) return -1;
    return (int)((WBGC__LOAD(s->markbits[i >> 6]) >> (i & 63)) & 1);
}

/* wbgc__links_sweep is the pause's part: every link whose object the mark
   did not find is cleared, and every other link inside a dead object
   dropped.
   World stopped, the mark complete, before any sweep. */
static void wbgc__links_sweep(wbgc_heap *h)
{
    pthread_mutex_lock(&h->links_lock);
    for (size_t i = 0; i < h->links_cap && h->links_n; i++) {
        wbgc__link *e = &h->links[i];
        if (e->link <= WBGC__LINK_GONE) continue;
        if (wbgc__marked_at(h, e->obj) != 1) {
            /* cleared even inside a dead object: its memory is intact
               until the sweep, and its finalizer may read the word */
            *(void **)e->link = NULL;
            wbgc__link_gone(h, e);
        } else if (wbgc__marked_at(h, e->link) == 0) {
            wbgc__link_gone(h, e);  /* the memory holding it dies */
        }
    }
    pthread_mutex_unlock(&h->links_lock);
}

WBGCDEF int wbgc_link_register(wbgc_p *p, void **link, void *obj)
{
    if (wbgc__check_p(p, "wbgc_link_register") < 0) return -1;
    wbgc_heap *h = p->heap;
    uintptr_t l = (uintptr_t)link;
    wbgc__span *s;
    uint32_t idx;
    if (!link || l % sizeof(void *)) {
        wbgc__report(h, "wbgc: misuse: wbgc_link_register(p=%p, link=%p, obj=%p): link is %s",
                     (void *)p, (void *)link, obj, link ? "not aligned to a word" : "NULL");
        return -1;
    }
    /* No shade for obj during a mark: the caller holds it, and what a P
       holds the mark finds (INV-TRICOLOUR), unless it came from
       a link read without wbgc_links_keep. */
    if (!wbgc__object_start(h, obj, &s, &idx)) return wbgc__not_object(p, "wbgc_link_register", obj);
    pthread_mutex_lock(&h->links_lock);
    wbgc__link *e = wbgc__link_find(h, l);
    int r = 1;
    if (e) {
        e->obj = (uintptr_t)obj;
    } else if (wbgc__links_room(h) == 0) {
        wbgc__link_put(h->links, h->links_cap, l, (uintptr_t)obj);
        h->links_n++;
        h->links_used++;
        r = 0;
    } else {
        r = -1;
    }
    pthread_mutex_unlock(&h->links_lock);
    if (r < 0)
        wbgc__report(h, "wbgc: out of memory: wbgc_link_register(link=%p, obj=%p): no memory for "
                     "its entry", (void *)link, obj);
    return r;
}

WBGCDEF int wbgc_link_unregister(wbgc_p *p, void **link)
{
    if (wbgc__check_p(p, "wbgc_link_unregister") < 0) return 0;
    wbgc_heap *h = p->heap;
    pthread_mutex_lock(&h->links_lock);
    wbgc__link *e = link ? wbgc__link_find(h, (uintptr_t)link) : NULL;
    if (e) wbgc__link_gone(h, e);
    pthread_mutex_unlock(&h->links_lock);
    return e != NULL;
}

WBGCDEF void wbgc_links_keep(wbgc_p *p)
{
    if (wbgc__check_p(p, "wbgc_links_keep") < 0) return;
    wbgc_heap *h = p->heap;
    if (WBGC__LOAD(h->phase) != WBGC__PHASE_MARK) return;
    uint64_t cycle = __atomic_load_n(&h->cycles_started, __ATOMIC_ACQUIRE);
    if (WBGC__LOAD(h->links_kept) == cycle) return;
    pthread_mutex_lock(&h->links_lock);
    /* The phase cannot change before this returns: p runs (a mark ends
       only with every P stopped). */
    if (WBGC__LOAD(h->links_kept) != cycle) {
        for (size_t i = 0; i < h->links_cap; i++)
            if (h->links[i].link > WBGC__LINK_GONE) wbgc__shade(h, &p->gcw, h->links[i].obj);
        WBGC__STORE(h->links_kept, cycle);
    }
    pthread_mutex_unlock(&h->links_lock);
}

WBGCDEF void wbgc_collect(wbgc_p *p)
{
    if (wbgc__check_p(p, "wbgc_collect") < 0) return;
    if (WBGC__UNLIKELY(p->check) && wbgc__enter(p, "wbgc_collect", WBGC__CALLER_SP()) != 0) return;
    if (WBGC__LOAD(p->fast.preempt)) wbgc__safepoint_at(p, "wbgc_collect");
    wbgc__collect_full(p, "wbgc_collect");
    if (p->check) wbgc__leave(p);
}

#endif /* WBGC__IMPLEMENTED */
#endif /* WBGC_IMPLEMENTATION */

/* -------------------------------------------------------------------------
   MIT License

   Copyright (c) 2026 the wbgc authors

   Permission is hereby granted, free of charge, to any person obtaining a
   copy of this software and associated documentation files (the "Software"),
   to deal in the Software without restriction, including without limitation
   the rights to use, copy, modify, merge, publish, distribute, sublicense,
   and/or sell copies of the Software, and to permit persons to whom the
   Software is furnished to do so, subject to the following conditions:

   The above copyright notice and this permission notice shall be included in
   all copies or substantial portions of the Software.

   THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
   IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
   FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
   AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
   LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING
   FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
   DEALINGS IN THE SOFTWARE.
   ------------------------------------------------------------------------- */
