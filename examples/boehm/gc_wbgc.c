/* gc_wbgc.c — the implementation of gc.h (Boehm GC's interface) on wbgc.
   Compile it with the program, or into a library, once. gc.h says what
   each call does and where it differs from Boehm GC; this file says how.

   The pieces, in order: the heap (made at the first call that needs it,
   so that settings made after GC_INIT still apply), each thread's P,
   allocation, uncollectable objects, collection and counters, roots,
   finalization and links, threads and the blocking wrappers. */

#define _GNU_SOURCE
#define GC_WBGC_IMPLEMENTATION  /* gc.h: no redirects in this file */
#define WBGC_IMPLEMENTATION
#include "gc.h"

#include <errno.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- state -------------------------------------------------------------
   L guards the settings made before the heap exists, the thread records,
   the uncollectable table and the program's root list. It is taken with
   gcw_lock (below) by threads that hold a P, so that waiting for it never
   holds up a collection. */

static pthread_mutex_t L = PTHREAD_MUTEX_INITIALIZER;
static wbgc_heap *gcw_h;                 /* atomic: made once */
static int gcw_init_called, gcw_incremental, gcw_on_demand, gcw_disabled;
static GC_word gcw_fsd = 3;              /* free space divisor */
static size_t gcw_max_heap;
static GC_warn_proc gcw_warn_fn;         /* NULL: the default (stderr) */
static GC_oom_func gcw_oom_fn;
__thread wbgc_p *GC_wbgc_self_p;         /* this thread's P, once attached */
static __thread int gcw_blocking;        /* inside GC_do_blocking or a wrapper */

static void gcw_lock(pthread_mutex_t *m);

/* gcw_warn passes a message to the warn proc, which takes a printf
   format with one GC_word argument, as Boehm's does. */
static void gcw_warn(const char *msg)
{
    char fmt[1100];
    size_t n = 0;
    for (const char *c = msg; *c && n + 3 < sizeof fmt; c++) {
        if (*c == '%') fmt[n++] = '%';  /* the message is not a format */
        fmt[n++] = *c;
    }
    fmt[n++] = '\n';
    fmt[n] = 0;
    GC_warn_proc w = __atomic_load_n(&gcw_warn_fn, __ATOMIC_ACQUIRE);
    if (w) w(fmt, 0);
    else fprintf(stderr, "GC Warning (wbgc): %s\n", msg);
}

/* wbgc's errors: misuse and corruption abort as wbgc's default handler
   does; the rest (out of memory, a stop held up) are warnings, as Boehm
   makes them. */
static void gcw_on_error(const char *msg, void *user)
{
    if (strstr(msg, "misuse") || strstr(msg, "fatal")) wbgc_default_on_error(msg, user);
    else gcw_warn(msg);
}

/* Boehm's free space divisor d: a larger d collects more often in a
   smaller heap. As a gc_percent, 200/(d-1): the default d = 3 gives wbgc's
   default, 100, at which wbgc's heap stays smaller than Boehm's at d = 3
   (examples/boehm/run.sh bench: peak RSS 0.8x on GCBench and
   binary-trees); d = 2 gives 200, d = 5 gives 50. */
static int gcw_percent(void)
{
    if (gcw_disabled) return -1;
    GC_word d = gcw_fsd < 2 ? 2 : gcw_fsd;
    return (int)(200 / (d - 1));
}

/* The loaded objects' writable segments (.data, .bss) are roots, as Boehm
   scans them: registered for rescanning, since programs store into them
   with plain stores. */
static int gcw_add_segment_roots(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W) || ph->p_memsz == 0) continue;
        uintptr_t lo = (info->dlpi_addr + ph->p_vaddr) & ~(uintptr_t)(sizeof(void *) - 1);
        uintptr_t hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
        wbgc_add_roots_rescan((wbgc_heap *)arg, (void *)lo, hi - lo);
    }
    return 0;
}

static wbgc_heap *gcw_make_heap(void)
{
    pthread_mutex_lock(&L);
    wbgc_heap *h = gcw_h;
    if (h) {
        pthread_mutex_unlock(&L);
        return h;
    }
    wbgc_config cfg;
    wbgc_config_default(&cfg);
    cfg.flags = WBGC_NO_ENV_MODE | (gcw_incremental ? 0 : WBGC_STW);
    const char *mode = getenv("WBGC_MODE");
    if (mode && *mode) {
        if (!strcmp(mode, "stw")) cfg.flags |= WBGC_STW;
        else if (!strcmp(mode, "concurrent")) cfg.flags &= ~WBGC_STW;
        else if (!strcmp(mode, "incremental")) cfg.flags &= ~WBGC_STW, cfg.mark_workers = 0;
        else if (!strcmp(mode, "check")) cfg.flags |= WBGC_CHECK | WBGC_VERIFY;
        else gcw_warn("WBGC_MODE ignored: want stw, concurrent, incremental or check");
    }
    if (gcw_on_demand) cfg.flags |= WBGC_FINALIZE_ON_DEMAND;
    cfg.gc_percent = gcw_percent();
    cfg.memory_limit = gcw_max_heap;
    cfg.on_error = gcw_on_error;
    h = wbgc_heap_new(&cfg);
    if (!h) {
        fprintf(stderr, "gc_wbgc: the heap could not be made\n");
        abort();
    }
    dl_iterate_phdr(gcw_add_segment_roots, h);
    __atomic_store_n(&gcw_h, h, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&L);
    return h;
}

static inline wbgc_heap *gcw_heap(void)
{
    wbgc_heap *h = __atomic_load_n(&gcw_h, __ATOMIC_ACQUIRE);
    return h ? h : gcw_make_heap();
}

wbgc_heap *GC_wbgc_heap(void) { return gcw_heap(); }

/* A thread's P: attached at its first call (Boehm would require
   GC_register_my_thread of a thread it did not create; attaching is
   kinder). wbgc detaches it when the thread exits. */
wbgc_p *GC_wbgc_self_slow(void)
{
    wbgc_p *p = wbgc_attach(gcw_heap());
    if (!p) {
        fprintf(stderr, "gc_wbgc: this thread could not be attached to the heap\n");
        abort();
    }
    GC_wbgc_self_p = p;
    return p;
}

static inline wbgc_p *gcw_self(void)
{
    wbgc_p *p = GC_wbgc_self_p;
    return p ? p : GC_wbgc_self_slow();
}

/* gcw_lock takes m without holding up a collection: a thread with a P
   that has to wait does so inside a blocking region. */
static void gcw_lock(pthread_mutex_t *m)
{
    if (pthread_mutex_trylock(m) == 0) return;
    wbgc_p *p = GC_wbgc_self_p;
    if (!p || gcw_blocking) {
        pthread_mutex_lock(m);
        return;
    }
    wbgc_blocking_begin(p);
    pthread_mutex_lock(m);
    wbgc_blocking_end(p);
}

/* ---- start-up and settings --------------------------------------------- */

void GC_init(void) { __atomic_store_n(&gcw_init_called, 1, __ATOMIC_RELAXED); }
int GC_is_init_called(void) { return __atomic_load_n(&gcw_init_called, __ATOMIC_RELAXED); }

void GC_enable_incremental(void)
{
    pthread_mutex_lock(&L);
    if (gcw_h && !gcw_incremental)
        gcw_warn("GC_enable_incremental after the first allocation: the collector stays "
                 "stop-the-world (call it right after GC_INIT)");
    else
        gcw_incremental = 1;
    pthread_mutex_unlock(&L);
}

int GC_is_incremental_mode(void)
{
    wbgc_heap *h = __atomic_load_n(&gcw_h, __ATOMIC_ACQUIRE);
    return h ? !(h->cfg.flags & WBGC_STW) : gcw_incremental;
}

void GC_set_finalize_on_demand(int on)
{
    pthread_mutex_lock(&L);
    if (gcw_h && !on != !gcw_on_demand)
        gcw_warn("GC_set_finalize_on_demand after the first allocation has no effect");
    else
        gcw_on_demand = on != 0;
    pthread_mutex_unlock(&L);
}

int GC_get_finalize_on_demand(void) { return gcw_on_demand; }

void GC_set_free_space_divisor(GC_word d)
{
    pthread_mutex_lock(&L);
    gcw_fsd = d;
    if (gcw_h) wbgc_set_gc_percent(gcw_h, gcw_percent());
    pthread_mutex_unlock(&L);
}

GC_word GC_get_free_space_divisor(void) { return gcw_fsd; }

void GC_set_max_heap_size(GC_word bytes)
{
    pthread_mutex_lock(&L);
    gcw_max_heap = bytes;
    if (gcw_h) wbgc_set_memory_limit(gcw_h, bytes);
    pthread_mutex_unlock(&L);
}

int GC_expand_hp(size_t bytes) { (void)bytes; return 1; }
void GC_set_manual_vdb_allowed(int on) { (void)on; }  /* GC_PTR_STORE_AND_DIRTY is wbgc_write */
void GC_set_warn_proc(GC_warn_proc proc) { __atomic_store_n(&gcw_warn_fn, proc, __ATOMIC_RELEASE); }
GC_warn_proc GC_get_warn_proc(void) { return __atomic_load_n(&gcw_warn_fn, __ATOMIC_ACQUIRE); }
void GC_set_oom_fn(GC_oom_func fn) { __atomic_store_n(&gcw_oom_fn, fn, __ATOMIC_RELEASE); }
GC_oom_func GC_get_oom_fn(void) { return __atomic_load_n(&gcw_oom_fn, __ATOMIC_ACQUIRE); }
void GC_set_all_interior_pointers(int on) { (void)on; }
void GC_set_dont_expand(int on) { (void)on; }

/* GC_disable nests: collection resumes when every disable is matched. */
void GC_disable(void)
{
    pthread_mutex_lock(&L);
    if (gcw_disabled++ == 0 && gcw_h) wbgc_set_gc_percent(gcw_h, -1);
    pthread_mutex_unlock(&L);
}

void GC_enable(void)
{
    pthread_mutex_lock(&L);
    if (gcw_disabled > 0 && --gcw_disabled == 0 && gcw_h) wbgc_set_gc_percent(gcw_h, gcw_percent());
    pthread_mutex_unlock(&L);
}

int GC_is_disabled(void) { return __atomic_load_n(&gcw_disabled, __ATOMIC_RELAXED) != 0; }

/* ---- allocation -------------------------------------------------------- */

/* A failed allocation (wbgc has reported it to the warn proc) goes to the
   program's out-of-memory function, as in Boehm, or returns NULL. */
static void *gcw_failed(size_t bytes)
{
    GC_oom_func f = GC_get_oom_fn();
    return f ? f(bytes) : NULL;
}

void *GC_malloc(size_t bytes)
{
    void *r = wbgc_alloc(gcw_self(), bytes);
    return r ? r : gcw_failed(bytes);
}

void *GC_malloc_atomic(size_t bytes)
{
    void *r = wbgc_alloc_noscan(gcw_self(), bytes);
    return r ? r : gcw_failed(bytes);
}

void *GC_malloc_ignore_off_page(size_t bytes) { return GC_malloc(bytes); }
void *GC_malloc_atomic_ignore_off_page(size_t bytes) { return GC_malloc_atomic(bytes); }

char *GC_strdup(const char *s)
{
    if (!s) return NULL;
    return GC_strndup(s, strlen(s));
}

char *GC_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *r = (char *)GC_malloc_atomic(len + 1);
    if (r) {
        memcpy(r, s, len);
        r[len] = 0;
    }
    return r;
}

void *GC_base(void *ptr) { return wbgc_base(gcw_heap(), ptr); }
int GC_is_heap_ptr(const void *ptr) { return wbgc_base(gcw_heap(), ptr) != NULL; }
size_t GC_size(const void *obj) { return wbgc_usable_size(gcw_heap(), obj); }

/* ---- uncollectable objects ----------------------------------------------
   Ordinary heap objects whose addresses sit in the pin table: a malloc'd
   open-addressed set registered as a root region (rescanned, since it
   takes plain stores), so each pinned object is marked, and scanned, at
   every cycle. GC_free takes one out. L guards the table. */

#define GCW_PIN_GONE ((uintptr_t)1)
static uintptr_t *gcw_pins;
static size_t gcw_pins_cap, gcw_pins_used, gcw_pins_n;

static size_t gcw_pin_hash(uintptr_t v) { return (size_t)((v >> 4) * 0x9E3779B97F4A7C15ull >> 17); }

/* gcw_pin_slot: v's slot, or (add) the empty slot for it; NULL if absent. */
static uintptr_t *gcw_pin_slot(uintptr_t v, int add)
{
    if (!gcw_pins_cap) return NULL;
    size_t m = gcw_pins_cap - 1;
    for (size_t i = gcw_pin_hash(v) & m;; i = (i + 1) & m) {
        if (gcw_pins[i] == v) return &gcw_pins[i];
        if (!gcw_pins[i]) return add ? &gcw_pins[i] : NULL;
    }
}

/* gcw_pins_room: room for one more, by a rehash into a new table (added
   as a root before the old one goes, so no pinned object is ever out of
   both). 0, or -1 when memory runs out. L held. */
static int gcw_pins_room(wbgc_heap *h)
{
    if ((gcw_pins_used + 1) * 4 <= gcw_pins_cap * 3) return 0;
    size_t cap = 256;
    while (cap < (gcw_pins_n + 1) * 2) cap *= 2;
    uintptr_t *t = (uintptr_t *)calloc(cap, sizeof *t);
    if (!t || wbgc_add_roots_rescan(h, t, cap * sizeof *t) < 0) {
        free(t);
        return -1;
    }
    uintptr_t *old = gcw_pins;
    size_t old_cap = gcw_pins_cap;
    gcw_pins = t;
    gcw_pins_cap = cap;
    gcw_pins_used = gcw_pins_n;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i] > GCW_PIN_GONE) *gcw_pin_slot(old[i], 1) = old[i];
    if (old) {
        wbgc_remove_roots(h, old);
        free(old);
    }
    return 0;
}

static void *gcw_pin(void *obj)
{
    if (!obj) return NULL;
    wbgc_heap *h = gcw_heap();
    gcw_lock(&L);
    int ok = gcw_pins_room(h) == 0;
    if (ok) {
        *gcw_pin_slot((uintptr_t)obj, 1) = (uintptr_t)obj;
        gcw_pins_n++;
        gcw_pins_used++;
    }
    pthread_mutex_unlock(&L);
    if (!ok) gcw_warn("GC_malloc_uncollectable: no memory for the object's entry in the pin table");
    return ok ? obj : NULL;
}

/* gcw_unpin: 1 if obj was uncollectable (it no longer is), else 0. */
static int gcw_unpin(void *obj)
{
    gcw_lock(&L);
    uintptr_t *slot = gcw_pin_slot((uintptr_t)obj, 0);
    if (slot) {
        *slot = GCW_PIN_GONE;
        gcw_pins_n--;
    }
    pthread_mutex_unlock(&L);
    return slot != NULL;
}

void *GC_malloc_uncollectable(size_t bytes)
{
    void *r = gcw_pin(wbgc_alloc(gcw_self(), bytes));
    return r ? r : gcw_failed(bytes);
}

void *GC_malloc_atomic_uncollectable(size_t bytes)
{
    void *r = gcw_pin(wbgc_alloc_noscan(gcw_self(), bytes));
    return r ? r : gcw_failed(bytes);
}

/* GC_free: an uncollectable object becomes collectable (and, unreachable,
   is collected); a collectable one is left to the collector. */
void GC_free(void *obj)
{
    if (obj && gcw_pins_cap) gcw_unpin(obj);
}

/* GC_realloc: Boehm's meaning (n 0: free, NULL returned); an uncollectable
   object stays uncollectable. */
void *GC_realloc(void *obj, size_t bytes)
{
    if (!obj) return GC_malloc(bytes);
    if (bytes == 0) {
        GC_free(obj);
        return NULL;
    }
    wbgc_p *p = gcw_self();
    void *r = wbgc_realloc(p, obj, bytes);
    if (!r) return gcw_failed(bytes);
    if (r != obj && gcw_pins_cap && gcw_unpin(obj) && !gcw_pin(r)) return NULL;
    return r;
}

/* ---- collection and counters ------------------------------------------ */

void GC_gcollect(void)
{
    if (GC_is_disabled()) return;  /* as Boehm: disabled means no collection */
    wbgc_collect(gcw_self());
}

void GC_gcollect_and_unmap(void) { GC_gcollect(); }

int GC_collect_a_little(void)
{
    wbgc_safepoint(gcw_self());
    return 0;
}

static void gcw_stats(wbgc_stats *st) { wbgc_get_stats(gcw_heap(), st); }

/* The heap's size: the memory it has, or while that is smaller the goal
   it may grow to before the next cycle (Boehm's heap is never empty; a
   new wbgc heap has nothing mapped until it allocates). */
static size_t gcw_heap_size(const wbgc_stats *st)
{
    return (size_t)(st->heap_sys > st->heap_goal ? st->heap_sys : st->heap_goal);
}

size_t GC_get_heap_size(void)
{
    wbgc_stats st;
    gcw_stats(&st);
    return gcw_heap_size(&st);
}

size_t GC_get_free_bytes(void)
{
    wbgc_stats st;
    gcw_stats(&st);
    size_t size = gcw_heap_size(&st);
    return size > st.heap_alloc ? size - (size_t)st.heap_alloc : 0;
}

size_t GC_get_unmapped_bytes(void) { return 0; }

size_t GC_get_bytes_since_gc(void)
{
    wbgc_stats st;
    gcw_stats(&st);
    return st.heap_alloc > st.heap_live ? (size_t)(st.heap_alloc - st.heap_live) : 0;
}

size_t GC_get_total_bytes(void)
{
    wbgc_stats st;
    gcw_stats(&st);
    return (size_t)st.total_alloc;
}

GC_word GC_get_gc_no(void)
{
    wbgc_stats st;
    gcw_stats(&st);
    return (GC_word)st.cycles;
}

unsigned long long GC_wbgc_pause_max_ns(void)
{
    wbgc_stats st;
    gcw_stats(&st);
    return st.pause_max_ns;
}

unsigned long long GC_wbgc_pause_count(void)
{
    wbgc_stats st;
    gcw_stats(&st);
    return st.pause_count;
}

/* ---- roots --------------------------------------------------------------
   The program's regions are listed here too, so that GC_remove_roots of
   a range that was never added is the no-op it is in Boehm (wbgc reports
   it as misuse). */

typedef struct { uintptr_t lo, hi; } gcw_range;
static gcw_range *gcw_roots;
static size_t gcw_nroots, gcw_roots_cap;

void GC_add_roots(void *low, void *high_plus_1)
{
    uintptr_t lo = (uintptr_t)low, hi = (uintptr_t)high_plus_1;
    if (hi <= lo) return;
    wbgc_heap *h = gcw_heap();
    gcw_lock(&L);
    if (gcw_nroots == gcw_roots_cap) {
        size_t cap = gcw_roots_cap ? 2 * gcw_roots_cap : 16;
        gcw_range *r = (gcw_range *)realloc(gcw_roots, cap * sizeof *r);
        if (!r) {
            pthread_mutex_unlock(&L);
            gcw_warn("GC_add_roots: out of memory");
            return;
        }
        gcw_roots = r;
        gcw_roots_cap = cap;
    }
    if (wbgc_add_roots_rescan(h, low, hi - lo) == 0) gcw_roots[gcw_nroots++] = (gcw_range){lo, hi};
    pthread_mutex_unlock(&L);
}

/* Boehm removes every region inside [low, high); so does this. */
void GC_remove_roots(void *low, void *high_plus_1)
{
    uintptr_t lo = (uintptr_t)low, hi = (uintptr_t)high_plus_1;
    wbgc_heap *h = gcw_heap();
    gcw_lock(&L);
    for (size_t i = gcw_nroots; i-- > 0;) {
        if (gcw_roots[i].lo >= lo && gcw_roots[i].hi <= hi) {
            wbgc_remove_roots(h, (void *)gcw_roots[i].lo);
            gcw_roots[i] = gcw_roots[--gcw_nroots];
        }
    }
    pthread_mutex_unlock(&L);
}

void GC_clear_roots(void)
{
    GC_remove_roots((void *)0, (void *)UINTPTR_MAX);
}

/* ---- finalization and disappearing links -------------------------------
   A Boehm finalizer (fn, cd) is registered with wbgc as gcw_finalize and
   a record holding both: a GC object, so cd lives as long as the
   registration, as in Boehm. */

typedef struct { GC_finalization_proc fn; void *cd; } gcw_fin;

static void gcw_finalize(wbgc_p *p, void *obj, void *arg)
{
    if (!GC_wbgc_self_p) GC_wbgc_self_p = p;  /* the heap's finalizer thread */
    gcw_fin *f = (gcw_fin *)arg;
    f->fn(obj, f->cd);
}

void GC_register_finalizer(void *obj, GC_finalization_proc fn, void *cd,
                           GC_finalization_proc *ofn, void **ocd)
{
    wbgc_p *p = gcw_self();
    wbgc_finalizer old = NULL;
    void *old_arg = NULL;
    int is_obj = obj && wbgc_base(gcw_heap(), obj) == obj;
    if (is_obj) wbgc_get_finalizer(p, obj, &old, &old_arg);
    gcw_fin *of = old == gcw_finalize ? (gcw_fin *)old_arg : NULL;
    if (ofn) *ofn = of ? of->fn : NULL;
    if (ocd) *ocd = of ? of->cd : NULL;
    if (!is_obj) return;  /* Boehm ignores what is not an object's start */
    if (!fn) {
        wbgc_set_finalizer(p, obj, NULL, NULL);
        return;
    }
    gcw_fin *f = (gcw_fin *)wbgc_alloc(p, sizeof *f);
    if (!f) return;
    f->fn = fn;
    wbgc_write(p, &f->cd, cd);
    wbgc_set_finalizer(p, obj, gcw_finalize, f);
}

void GC_register_finalizer_ignore_self(void *obj, GC_finalization_proc fn, void *cd,
                                       GC_finalization_proc *ofn, void **ocd)
{
    GC_register_finalizer(obj, fn, cd, ofn, ocd);  /* wbgc always ignores self */
}

void GC_register_finalizer_no_order(void *obj, GC_finalization_proc fn, void *cd,
                                    GC_finalization_proc *ofn, void **ocd)
{
    GC_register_finalizer(obj, fn, cd, ofn, ocd);  /* ordered: gc.h, WHAT DIFFERS */
}

int GC_invoke_finalizers(void) { return (int)wbgc_run_finalizers(gcw_self(), 0); }

int GC_should_invoke_finalizers(void)
{
    wbgc_stats st;
    gcw_stats(&st);
    return st.finalizers_queued > st.finalizers_run;
}

int GC_general_register_disappearing_link(void **link, const void *obj)
{
    int r = wbgc_link_register(gcw_self(), link, (void *)obj);
    return r == 0 ? GC_SUCCESS : r == 1 ? GC_DUPLICATE : GC_NO_MEMORY;
}

int GC_register_disappearing_link(void **link)
{
    return GC_general_register_disappearing_link(link, GC_base(link));
}

int GC_unregister_disappearing_link(void **link) { return wbgc_link_unregister(gcw_self(), link); }

/* GC_call_with_alloc_lock: Boehm runs fn holding its allocation lock, and
   programs read hidden links in it; here a lock of the layer's own, and
   during a concurrent mark every link's object is kept (wbgc_links_keep),
   so that what fn reads survives the mark. */
static pthread_mutex_t gcw_alloc_lock = PTHREAD_MUTEX_INITIALIZER;

void *GC_call_with_alloc_lock(GC_fn_type fn, void *client_data)
{
    wbgc_links_keep(gcw_self());
    gcw_lock(&gcw_alloc_lock);
    void *r = fn(client_data);
    pthread_mutex_unlock(&gcw_alloc_lock);
    return r;
}

void GC_noop1(GC_word x) { __asm__ __volatile__("" : : "r"(x) : "memory"); }
void GC_end_stubborn_change(const void *obj) { (void)obj; }

/* ---- threads ------------------------------------------------------------
   A thread that GC_pthread_create makes has a record, on the list under
   L: its start routine and argument, and its return value once it ends.
   The argument and the return value are a root region (they are adjacent
   in the record) until the thread has the argument on its stack, and
   until someone joins it (or it was detached and ends). */

typedef struct gcw_thread {
    struct gcw_thread *next;
    pthread_t tid;
    void *(*start)(void *);
    void *arg, *status;   /* a root region: keep together */
    int detached, finished;
} gcw_thread;

static gcw_thread *gcw_threads;
static __thread gcw_thread *gcw_me;

static void gcw_thread_unlink(gcw_thread *t)  /* L held */
{
    for (gcw_thread **pp = &gcw_threads; *pp; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            return;
        }
}

static gcw_thread *gcw_thread_find(pthread_t tid)  /* L held */
{
    for (gcw_thread *t = gcw_threads; t; t = t->next)
        if (t->tid == tid) return t;
    return NULL;
}

static void gcw_thread_free(gcw_thread *t)  /* unlinked */
{
    wbgc_remove_roots(gcw_heap(), &t->arg);
    free(t);
}

/* gcw_thread_end: the calling thread (made by GC_pthread_create) is done;
   its return value is kept for the joiner, its P detached. */
static void gcw_thread_end(void *status)
{
    gcw_thread *t = gcw_me;
    wbgc_p *p = GC_wbgc_self_p;
    if (p) {
        if (t) wbgc_write(p, &t->status, status);
        wbgc_detach(p);
        GC_wbgc_self_p = NULL;
    }
    if (!t) return;
    gcw_me = NULL;
    pthread_mutex_lock(&L);
    t->finished = 1;
    int gone = t->detached;
    if (gone) gcw_thread_unlink(t);
    pthread_mutex_unlock(&L);
    if (gone) gcw_thread_free(t);
}

static void *gcw_thread_main(void *arg)
{
    gcw_thread *t = (gcw_thread *)arg;
    pthread_mutex_lock(&L);
    t->tid = pthread_self();
    pthread_mutex_unlock(&L);
    gcw_me = t;
    wbgc_p *p = GC_wbgc_self_slow();
    void *a = t->arg;               /* on this stack now, which is scanned */
    wbgc_write(p, &t->arg, NULL);   /* a root's store: through the barrier */
    void *status = t->start(a);
    gcw_thread_end(status);
    return status;
}

int GC_pthread_create(pthread_t *tid, const pthread_attr_t *attr, void *(*start)(void *), void *arg)
{
    wbgc_heap *h = gcw_heap();
    gcw_thread *t = (gcw_thread *)calloc(1, sizeof *t);
    if (!t) return EAGAIN;
    t->start = start;
    t->arg = arg;
    int ds = PTHREAD_CREATE_JOINABLE;
    if (attr) pthread_attr_getdetachstate(attr, &ds);
    t->detached = ds == PTHREAD_CREATE_DETACHED;
    if (wbgc_add_roots(h, &t->arg, 2 * sizeof(void *)) < 0) {
        free(t);
        return EAGAIN;
    }
    gcw_lock(&L);
    t->next = gcw_threads;
    gcw_threads = t;
    pthread_mutex_unlock(&L);
    int e = pthread_create(tid, attr, gcw_thread_main, t);
    /* The new thread sets its id too; it may also have ended, detached,
       and freed t already: t is touched only if it is still listed. */
    gcw_lock(&L);
    int listed = 0;
    for (gcw_thread *u = gcw_threads; u && !listed; u = u->next) listed = u == t;
    if (listed && e) gcw_thread_unlink(t);
    else if (listed) t->tid = *tid;
    pthread_mutex_unlock(&L);
    if (listed && e) gcw_thread_free(t);
    return e;
}

int GC_pthread_join(pthread_t tid, void **ret)
{
    wbgc_p *p = GC_wbgc_self_p;
    void *status = NULL;
    int e;
    if (p && !gcw_blocking) {
        wbgc_blocking_begin(p);
        e = pthread_join(tid, &status);
        wbgc_blocking_end(p);
    } else {
        e = pthread_join(tid, &status);
    }
    if (e) return e;
    gcw_lock(&L);
    gcw_thread *t = gcw_thread_find(tid);
    if (t) gcw_thread_unlink(t);
    pthread_mutex_unlock(&L);
    if (t) gcw_thread_free(t);  /* status is on this stack now */
    if (ret) *ret = status;
    return 0;
}

int GC_pthread_detach(pthread_t tid)
{
    gcw_lock(&L);
    gcw_thread *t = gcw_thread_find(tid);
    int e = pthread_detach(tid);
    int gone = 0;
    if (t && !e) {
        t->detached = 1;
        gone = t->finished;
        if (gone) gcw_thread_unlink(t);
    }
    pthread_mutex_unlock(&L);
    if (gone) gcw_thread_free(t);
    return e;
}

void GC_pthread_exit(void *ret)
{
    gcw_thread_end(ret);
    pthread_exit(ret);
}

void GC_allow_register_threads(void) { (void)gcw_heap(); }

int GC_register_my_thread(const struct GC_stack_base *sb)
{
    (void)sb;  /* wbgc finds the stack itself */
    if (GC_wbgc_self_p) return GC_DUPLICATE;
    GC_wbgc_self_slow();
    return GC_SUCCESS;
}

int GC_unregister_my_thread(void)
{
    wbgc_p *p = GC_wbgc_self_p;
    if (p) {
        wbgc_detach(p);
        GC_wbgc_self_p = NULL;
    }
    return GC_SUCCESS;
}

int GC_thread_is_registered(void) { return GC_wbgc_self_p != NULL; }

int GC_get_stack_base(struct GC_stack_base *sb)
{
    pthread_attr_t a;
    void *addr;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &a) != 0) return GC_UNIMPLEMENTED;
    int e = pthread_attr_getstack(&a, &addr, &size);
    pthread_attr_destroy(&a);
    if (e) return GC_UNIMPLEMENTED;
    sb->mem_base = (char *)addr + size;  /* stacks grow down: the base is the top */
    return GC_SUCCESS;
}

void *GC_call_with_stack_base(GC_stack_base_func fn, void *arg)
{
    struct GC_stack_base sb = {0};
    GC_get_stack_base(&sb);
    return fn(&sb, arg);
}

/* GC_do_blocking runs fn outside the collector's view: collections go on
   without waiting for this thread (fn must not touch GC pointers). */
void *GC_do_blocking(GC_fn_type fn, void *client_data)
{
    wbgc_p *p = GC_wbgc_self_p;
    if (!p || gcw_blocking) return fn(client_data);
    wbgc_blocking_begin(p);
    gcw_blocking = 1;
    void *r = fn(client_data);
    gcw_blocking = 0;
    wbgc_blocking_end(p);
    return r;
}

/* GC_call_with_gc_active: inside GC_do_blocking, fn may touch the heap. */
void *GC_call_with_gc_active(GC_fn_type fn, void *client_data)
{
    wbgc_p *p = GC_wbgc_self_p;
    if (!p || !gcw_blocking) return fn(client_data);
    gcw_blocking = 0;
    wbgc_blocking_end(p);
    void *r = fn(client_data);
    wbgc_blocking_begin(p);
    gcw_blocking = 1;
    return r;
}

/* The blocking wrappers: each runs its call inside a blocking region when
   the thread holds a P (a mutex only when it is taken: trylock first). */
#define GCW_BLOCKING(call)                                  \
    do {                                                    \
        wbgc_p *p_ = GC_wbgc_self_p;                        \
        if (!p_ || gcw_blocking) return call;               \
        wbgc_blocking_begin(p_);                            \
        gcw_blocking = 1;                                   \
        __typeof__(call) r_ = call;                         \
        gcw_blocking = 0;                                   \
        wbgc_blocking_end(p_);                              \
        return r_;                                          \
    } while (0)

int GC_pthread_mutex_lock(pthread_mutex_t *m)
{
    int e = pthread_mutex_trylock(m);
    if (e != EBUSY) return e;
    GCW_BLOCKING(pthread_mutex_lock(m));
}

int GC_pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m) { GCW_BLOCKING(pthread_cond_wait(c, m)); }

int GC_pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *abstime)
{
    GCW_BLOCKING(pthread_cond_timedwait(c, m, abstime));
}

unsigned int GC_wbgc_sleep(unsigned int seconds) { GCW_BLOCKING(sleep(seconds)); }
int GC_wbgc_usleep(unsigned int usec) { GCW_BLOCKING(usleep(usec)); }
int GC_wbgc_nanosleep(const struct timespec *req, struct timespec *rem) { GCW_BLOCKING(nanosleep(req, rem)); }
