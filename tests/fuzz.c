/* tests/fuzz.c -- a seeded, randomized test of the whole API against shadow
 * models (fuzz_concurrent, fuzz_incremental, fuzz_stw, fuzz_check).
 *
 * Not a program: test.c includes it just before its table of tests, and it
 * uses test.c's harness (CHECK, FAILF, note, errlog, open_heap, get_stats,
 * rnd, mix64, pat_word, fill_pat, count_nonzero, join_blocking, ...).
 * Everything here is static and named fz_.
 *
 * FZ_THREADS threads (the test's own thread and three it starts) each own a
 * graph of objects and a shadow model of it, kept in malloc memory (which
 * the collector never sees, so the model keeps nothing alive):
 *   - a scan object is [id word][header word][pointer slots][payload]: the
 *     model knows every slot word's expected contents byte for byte and, for
 *     a word that holds a whole pointer, the object it points into; a
 *     noscan object is payload only. Payloads are fill_pat patterns seeded
 *     from the object's id, and ids are unique, so an object whose memory
 *     was freed and handed out again shows another id or a broken pattern;
 *   - roots are the thread's volatile locals (in its stack frame), its
 *     malloc'd root regions (registered), and a park region that holds the
 *     locals while the thread is detached.
 * The operations, chosen at random with weights: allocation of every size
 * class (0 B .. 32 KiB) and of large objects (to 1 MiB), scan and noscan;
 * wbgc_write / wbgc_write2 / wbgc_write_n (NULL stores too); wbgc_memmove of
 * any size at any alignment, overlapping or not, into objects and root
 * regions, the model following memmove's bytes (a pointer cut in part is no
 * pointer any more); holding an object only in a local while its slot is
 * overwritten (store, odd-sized memmove, partial memmove, removal of its
 * root region) across allocation; wbgc_add_roots of a region filled with
 * plain stores, wbgc_remove_roots of a region whose object the thread keeps
 * in a local; wbgc_detach then wbgc_attach again; blocking regions around a
 * sleep or a contended lock; wbgc_collect; wbgc_safepoint; garbage; weak
 * handles of reachable objects (kept in a registered region: each must give
 * its object while the model reaches it, and a get never gives another
 * object) and finalizers on reachable objects (fz_fin records the ids it
 * finalizes: a walk that reaches one fails).
 * Words the moves make out of bytes (a pointer cut in part, a pointer's
 * bytes moved out of line) are data to the model: they reach the barrier
 * and the scan as the non-pointers they are, some looking like heap
 * addresses (PITFALLS 7). Under check mode and WBGC_VERIFY (fz_strict) no
 * move makes one that looks like a pointer: both would rightly take it for
 * a dangling one.
 *
 * Two kinds of operation aim at moments the collector gets wrong:
 *   - a window: allocate until a pause happens in this thread's allocation
 *     with no cycle completing (a mark start; or block, and look whether
 *     one happened meanwhile), then at once do what a
 *     mark start makes delicate: overwrite a slot whose object the (scanned)
 *     stack holds, remove a root region whose object it holds, register a
 *     region filled with plain stores and drop the locals (a stack still
 *     unscanned if this thread started the cycle), or hand an object to a
 *     new thread;
 *   - a spawn: X, allocated before the cycle, goes to a new thread through
 *     pthread_create's argument; the spawner keeps X in a volatile local until
 *     the new thread has attached and put X on its own stack, then drops it;
 *     the new thread allocates for two cycles and verifies X. A collector
 *     that does not scan the stack of a P attached while a cycle marks loses X.
 * Each thread verifies everything its model says is reachable after every
 * completed cycle (and at the end). The first failure prints the seed, the
 * thread, the operation number and name, what was wrong (id, address,
 * expected, found) and the thread's last FZ_RING operations, and stops every
 * thread.
 *
 * In check mode (fz_probe_misuse), a thread now and then calls wbgc_alloc
 * with another thread's P: the call must return NULL and report rule 1;
 * those reports, and nothing else, may reach on_error. fuzz_incremental also
 * checks that an allocator of only large objects, each dropped, stays
 * bounded with no mark worker (fz_large_bound).
 *
 * Environment:
 *   WBGC_FUZZ_SECONDS=s      time per mode (default 2)
 *   WBGC_FUZZ_SEED=n|random  the threads' random choices (default 1); the
 *                            seed is printed, to run again with it
 *   WBGC_FUZZ_GC_PERCENT=n   gc_percent of the fuzz heaps (default 1)
 *   WBGC_FUZZ_PROBE=0        no misuse probe in check mode */

#define FZ_THREADS 4       /* fuzz threads: the test's own (0) and three it starts */
#define FZ_LOCALS 16       /* volatile locals per thread: its stack roots */
#define FZ_REGIONS 4       /* malloc'd root regions per thread */
#define FZ_REGION_W 128    /* words in a region, at most */
#define FZ_MAX_SLOTS 256   /* pointer slots in an object, at most */
#define FZ_RING 16         /* operations each thread remembers for a failure report */
#define FZ_BUDGET ((uint64_t)1536 * 1024)   /* bytes a thread keeps reachable, about */
#define FZ_MAX_PROBES 8    /* misuse probes per run (each prints an on_error line) */
#define FZ_LARGE_SYS_MAX ((uint64_t)64 * 1024 * 1024)
#define FZ_WEAKS 64        /* weak handles a thread keeps (a registered region) */
#define FZ_FINALIZED 65536 /* ids of finalized objects remembered, at most */

static int fz_probe_misuse = 1;   /* check mode: use another thread's P, expect the report */

enum {
    FZ_ALLOC, FZ_ALLOC_NOSCAN, FZ_ALLOC_LARGE, FZ_WRITE, FZ_WRITE2, FZ_WRITE_N, FZ_MEMMOVE,
    FZ_HOLD, FZ_ADD_ROOTS, FZ_REMOVE_ROOTS, FZ_REATTACH, FZ_BLOCKING, FZ_LOCK, FZ_COLLECT,
    FZ_SAFEPOINT, FZ_DROP, FZ_CHURN, FZ_WINDOW, FZ_SPAWN, FZ_PROBE, FZ_WEAK, FZ_FINALIZER,
    FZ_VERIFY, FZ_NOPS
};
static const char *const fz_op_names[FZ_NOPS] = {
    "alloc", "alloc_noscan", "alloc_large", "write", "write2", "write_n", "memmove",
    "hold", "add_roots", "remove_roots", "detach+attach", "blocking", "lock", "collect",
    "safepoint", "drop", "churn", "window", "spawn", "probe", "weak", "finalizer", "verify"};

/* the weights of the operations, per 1000 (the rest: alloc) */
static const int fz_weights[FZ_NOPS] = {
    [FZ_ALLOC_NOSCAN] = 80, [FZ_ALLOC_LARGE] = 4, [FZ_WRITE] = 90, [FZ_WRITE2] = 40,
    [FZ_WRITE_N] = 40, [FZ_MEMMOVE] = 150, [FZ_HOLD] = 90, [FZ_ADD_ROOTS] = 25,
    [FZ_REMOVE_ROOTS] = 22, [FZ_REATTACH] = 5, [FZ_BLOCKING] = 12, [FZ_LOCK] = 12,
    [FZ_COLLECT] = 1, [FZ_SAFEPOINT] = 20, [FZ_DROP] = 40, [FZ_CHURN] = 30, [FZ_WINDOW] = 25,
    [FZ_SPAWN] = 3, [FZ_PROBE] = 3, [FZ_WEAK] = 20, [FZ_FINALIZER] = 8};

enum {
    FZ_S_MM_ODD, FZ_S_MM_UNALIGNED, FZ_S_MM_OVERLAP, FZ_S_MM_CUT, FZ_S_MM_REJECTED,
    FZ_S_WINDOWS, FZ_S_FRESH, FZ_S_HELPERS, FZ_S_OBJS, FZ_S_BYTES, FZ_S_ALLOC_BYTES,
    FZ_S_HELD, FZ_NSTATS
};

/* ---- shared state (reset by each run) ------------------------------------ */

static wbgc_heap *fz_heap;
static unsigned fz_flags;
static int fz_strict;     /* no word that is no pointer may look like one (fz_memmove) */
static uint64_t fz_seed;
static uint64_t fz_t0;                          /* when the threads started */
static int fz_stop, fz_failed;                  /* atomic */
static uint64_t fz_next_id;                     /* atomic */
static uint64_t fz_ops[FZ_NOPS], fz_stats[FZ_NSTATS];   /* atomic, added once per thread */
static pthread_mutex_t fz_p_mu = PTHREAD_MUTEX_INITIALIZER;
static wbgc_p *fz_pub[FZ_THREADS];              /* each thread's P while attached; fz_p_mu */
static int fz_probes;                           /* misuse reports seen as expected; fz_p_mu */
static errlog *fz_log;
static pthread_mutex_t fz_lock_mu = PTHREAD_MUTEX_INITIALIZER;   /* the lock operation's */
static const uint64_t fz_zero_words[FZ_MAX_SLOTS + 8];
static const uint32_t fz_zero_tags[FZ_MAX_SLOTS + 8];

/* ---- the model ------------------------------------------------------------ */

typedef struct fz_obj {
    uint64_t id;            /* unique, never 0; 0: a free record */
    unsigned char *addr;
    size_t size;
    uint32_t nslots;        /* scan objects: pointer slots after the two header words */
    uint32_t noscan;
    uint32_t mark;          /* the generation of the last walk that reached it */
    uint32_t fin;           /* a finalizer was registered for it (fz_op_finalizer) */
    uint32_t next_free;     /* free list: record index + 1 */
    uint64_t *sval;         /* nslots: what each slot word holds */
    uint32_t *stag;         /* nslots: record index + 1 of the object a word points
                               into (a whole, aligned pointer); 0: no pointer */
} fz_obj;

/* a root region: malloc'd, registered for as long as mem is set */
typedef struct fz_region {
    uint64_t *mem;
    uint32_t nw;
    uint64_t *sval;
    uint32_t *stag;
} fz_region;

/* an area of words that pointers are stored and moved in: an object's slots
   or a region (or the zero source of a memmove) */
typedef struct fz_area {
    unsigned char *base;
    uint32_t nw;
    uint64_t *sval;
    uint32_t *stag;
    int region;             /* 1: region ix, 0: record ix, -1: zeros */
    uint32_t ix;
} fz_area;

typedef struct fz_ring_ent {
    uint64_t nop;
    const char *op;
    char what[160];
} fz_ring_ent;

typedef struct fz_model {
    fz_obj *obj;
    uint32_t nobj, cap, free_head;
    uint64_t loc_val[FZ_LOCALS];
    uint32_t loc_tag[FZ_LOCALS];
    fz_region reg[FZ_REGIONS];
    fz_region park;         /* registered all along: the locals across a detach */
    uint32_t gen;
    uint32_t *dfs;
    size_t dfs_cap;
    uint64_t live_bytes, alloc_since_walk;
    uint64_t mm_val[FZ_MAX_SLOTS + 8];   /* memmove scratch */
    uint32_t mm_tag[FZ_MAX_SLOTS + 8];
    fz_ring_ent ring[FZ_RING];
    uint64_t count[FZ_NOPS], stat[FZ_NSTATS];
    wbgc_weak **weak;       /* FZ_WEAKS handles, registered */
    uint64_t weak_id[FZ_WEAKS];          /* the id of each handle's object; 0: none */
    unsigned char *weak_addr[FZ_WEAKS];
    uint32_t weak_ix[FZ_WEAKS];          /* its record, if weak_id still names it */
} fz_model;

/* the ids of finalized objects (a set, open addressing), filled by the
   finalizer thread: a walk that finds one reachable fails */
static pthread_mutex_t fz_fin_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t fz_fin_ids[FZ_FINALIZED];
static uint64_t fz_fin_count, fz_fin_broken;   /* fz_fin_mu */

struct fz_helper;

/* fz_thread lives in the thread's stack frame: loc[] is scanned with it. */
typedef struct fz_thread {
    void *volatile loc[FZ_LOCALS];
    int idx;
    int op;
    wbgc_p *p;
    uint64_t rng;
    uint64_t nop;
    uint64_t cycles_seen;
    fz_model *m;
    pthread_t helper;
    struct fz_helper *harg;  /* the running (or finished, not joined) helper, or NULL */
    uint64_t nhelpers;
} fz_thread;

/* the thread that X is handed to */
typedef struct fz_helper {
    uintptr_t x;            /* X until the helper has it on its stack (atomic) */
    int attached, done;     /* atomic */
    int spawner, fresh;
    uint64_t spawn_op, n;
    uint64_t xid, cid;
    size_t xsize, csize;
    uintptr_t cptr;
} fz_helper;

static int fz_stopping(void)
{
    return __atomic_load_n(&fz_failed, __ATOMIC_RELAXED) ||
           __atomic_load_n(&fz_stop, __ATOMIC_RELAXED);
}

static void *fz_xmalloc(size_t n)
{
    void *q = calloc(1, n ? n : 1);
    if (!q) {
        FAILF("fuzz: out of malloc memory (%zu bytes)", n);
        abort();
    }
    return q;
}

static uint64_t fz_idword(uint64_t id) { return id ^ 0xF1D0000000000000ULL; }
static uint64_t fz_hdrword(size_t size, uint32_t nslots)
{
    return 0xF2E0000000000000ULL | ((uint64_t)size << 16) | nslots;
}
static uint64_t fz_patseed(uint64_t id) { return mix64(id ^ 0xF022F022ULL); }
static uint64_t fz_junk(uint64_t r) { return r | 0x8000000000000001ULL; }   /* never a pointer */
/* fz_ptrlike: could check mode take v for a heap pointer? */
static int fz_ptrlike(uint64_t v) { return v >= 4096 && v < ((uint64_t)1 << 47); }

/* ---- failure reports ------------------------------------------------------ */

static uint64_t fz_cycles(void) { return get_stats(fz_heap).cycles; }

__attribute__((format(printf, 4, 5)))
static void fz_fail_at(const char *file, int line, fz_thread *t, const char *fmt, ...)
{
    char buf[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (__atomic_exchange_n(&fz_failed, 1, __ATOMIC_ACQ_REL)) return;   /* only the first */
    check_failf(file, line, "fuzz model holds",
                "seed %llu, thread %d, op %llu (%s), %.2f s, %llu cycles done: %s",
                (unsigned long long)fz_seed, t->idx, (unsigned long long)t->nop,
                fz_op_names[t->op], (now_ns() - fz_t0) / 1e9, (unsigned long long)fz_cycles(), buf);
    note("thread %d's last operations (rerun: WBGC_FUZZ_SEED=%llu):", t->idx,
         (unsigned long long)fz_seed);
    for (uint64_t k = t->nop >= FZ_RING ? t->nop - FZ_RING + 1 : 1; k <= t->nop; k++) {
        const fz_ring_ent *e = &t->m->ring[k % FZ_RING];
        if (e->nop == k) note("  op %llu %s: %s", (unsigned long long)k, e->op, e->what);
    }
}
#define FZ_FAIL(t, ...) fz_fail_at(__FILE__, __LINE__, t, __VA_ARGS__)

static void fz_begin(fz_thread *t, int op)
{
    fz_ring_ent *e = &t->m->ring[++t->nop % FZ_RING];
    t->op = op;
    t->m->count[op]++;
    e->nop = t->nop;
    e->op = fz_op_names[op];
    e->what[0] = 0;
}

/* fz_what appends to the running operation's line in the ring */
__attribute__((format(printf, 2, 3)))
static void fz_what(fz_thread *t, const char *fmt, ...)
{
    fz_ring_ent *e = &t->m->ring[t->nop % FZ_RING];
    size_t len = strlen(e->what);
    va_list ap;
    if (len + 2 >= sizeof e->what) return;
    va_start(ap, fmt);
    vsnprintf(e->what + len, sizeof e->what - len, fmt, ap);
    va_end(ap);
}

/* fz_pat_bad: the first word (or tail byte) of [obj, obj+n) off the pattern
   of `seed`; 0 when none, else 1 with *at, *exp, *got set. */
static int fz_pat_bad(const unsigned char *obj, size_t n, uint64_t seed, size_t *at,
                      uint64_t *exp, uint64_t *got)
{
    const uint64_t *w = (const uint64_t *)(const void *)obj;
    size_t i, nw = n / 8;
    for (i = 0; i < nw; i++)
        if (w[i] != pat_word(seed, i)) {
            *at = i * 8, *exp = pat_word(seed, i), *got = w[i];
            return 1;
        }
    for (i = nw * 8; i < n; i++)
        if (obj[i] != (unsigned char)pat_word(seed, i + 0x100000000ULL)) {
            *at = i, *exp = (unsigned char)pat_word(seed, i + 0x100000000ULL), *got = obj[i];
            return 1;
        }
    return 0;
}

/* fz_check_raw checks an object's id, header and payload (not its slots).
   Returns NULL when intact, else what is wrong (and *at, *exp, *got). */
static const char *fz_check_raw(const unsigned char *a, uint64_t id, size_t size, uint32_t nslots,
                                int noscan, size_t *at, uint64_t *exp, uint64_t *got)
{
    const uint64_t *w = (const uint64_t *)(const void *)a;
    size_t pay = noscan ? 0 : 16 + 8 * (size_t)nslots;
    if (!noscan) {
        if (w[0] != fz_idword(id)) {
            *at = 0, *exp = fz_idword(id), *got = w[0];
            return "the id word";
        }
        if (w[1] != fz_hdrword(size, nslots)) {
            *at = 8, *exp = fz_hdrword(size, nslots), *got = w[1];
            return "the header word";
        }
    }
    if (fz_pat_bad(a + pay, size - pay, fz_patseed(id), at, exp, got)) {
        *at += pay;
        return "the payload pattern";
    }
    return NULL;
}

/* fz_nonzero_ends: non-zero bytes in the first and last `c` bytes (about)
   of [q, q+n), read from 8-aligned addresses (count_nonzero reads words) */
static size_t fz_nonzero_ends(const unsigned char *q, size_t n, size_t c)
{
    if (n <= 2 * c) return count_nonzero(q, n);
    size_t tail = (n - c) & ~(size_t)7;
    return count_nonzero(q, c) + count_nonzero(q + tail, n - tail);
}

/* ---- records -------------------------------------------------------------- */

static uint32_t fz_rec_new(fz_model *m)
{
    uint32_t ix;
    if (m->free_head) {
        ix = m->free_head - 1;
        m->free_head = m->obj[ix].next_free;
    } else {
        if (m->nobj == m->cap) {
            uint32_t cap = m->cap ? m->cap * 2 : 1024;
            fz_obj *o = realloc(m->obj, cap * sizeof *o);
            if (!o) {
                FAILF("fuzz: out of malloc memory");
                abort();
            }
            m->obj = o;
            m->cap = cap;
        }
        ix = m->nobj++;
    }
    memset(&m->obj[ix], 0, sizeof m->obj[ix]);
    return ix;
}

static void fz_rec_free(fz_model *m, uint32_t ix)
{
    fz_obj *o = &m->obj[ix];
    free(o->sval);
    free(o->stag);
    memset(o, 0, sizeof *o);
    o->next_free = m->free_head;
    m->free_head = ix + 1;
}

/* fz_ptr_val: a pointer to record tag-1: its start, or now and then a
   pointer inside it (interior pointers keep objects alive too). */
static uint64_t fz_ptr_val(fz_thread *t, uint32_t tag)
{
    const fz_obj *o = &t->m->obj[tag - 1];
    uint64_t r = rnd(&t->rng);
    size_t off = ((r & 7) == 0 && o->size > 1) ? (size_t)(r >> 8) % o->size : 0;
    return (uint64_t)(uintptr_t)(o->addr + off);
}

static const char *fz_kind(const fz_obj *o)
{
    return o->noscan ? "noscan" : o->size > 32768 ? "large" : "scan";
}

/* fz_verify_obj: is record ix intact (id, header, slots, payload)? */
static int fz_verify_obj(fz_thread *t, uint32_t ix, const char *where)
{
    fz_model *m = t->m;
    const fz_obj *o = &m->obj[ix];
    size_t at;
    uint64_t exp, got;
    const char *bad = fz_check_raw(o->addr, o->id, o->size, o->nslots, (int)o->noscan, &at, &exp, &got);
    if (!bad && !o->noscan) {
        const uint64_t *w = (const uint64_t *)(const void *)o->addr;
        for (uint32_t i = 0; i < o->nslots; i++)
            if (w[2 + i] != o->sval[i]) {
                bad = o->stag[i] ? "a pointer slot" : "a slot word (no pointer)";
                at = 16 + 8 * (size_t)i, exp = o->sval[i], got = w[2 + i];
                break;
            }
    }
    m->stat[FZ_S_OBJS]++;
    m->stat[FZ_S_BYTES] += o->size;
    if (!bad) return 1;
    FZ_FAIL(t, "%s: object id %llu at %p (%s, %zu B, %u slots): %s at byte %zu: expected %#llx, "
            "found %#llx (freed and its memory reused?)",
            where, (unsigned long long)o->id, (void *)o->addr, fz_kind(o), o->size, o->nslots, bad, at,
            (unsigned long long)exp, (unsigned long long)got);
    return 0;
}

/* ---- walks: verify what the model says is reachable, forget the rest ---- */

static void fz_push(fz_model *m, uint32_t tag, size_t *sp)
{
    if (!tag) return;
    fz_obj *o = &m->obj[tag - 1];
    if (o->mark == m->gen) return;
    o->mark = m->gen;
    if (*sp == m->dfs_cap) {
        size_t cap = m->dfs_cap ? m->dfs_cap * 2 : 1024;
        uint32_t *d = realloc(m->dfs, cap * sizeof *d);
        if (!d) {
            FAILF("fuzz: out of malloc memory");
            abort();
        }
        m->dfs = d;
        m->dfs_cap = cap;
    }
    m->dfs[(*sp)++] = tag - 1;
}

static int fz_region_ok(fz_thread *t, const fz_region *g, const char *what, int k)
{
    for (uint32_t w = 0; w < g->nw; w++)
        if (g->mem[w] != g->sval[w]) {
            FZ_FAIL(t, "%s %d at %p, word %u: expected %#llx, found %#llx", what, k, (void *)g->mem, w,
                    (unsigned long long)g->sval[w], (unsigned long long)g->mem[w]);
            return 0;
        }
    return 1;
}

static int fz_finalized(uint64_t id)
{
    pthread_mutex_lock(&fz_fin_mu);
    size_t i = (size_t)mix64(id) & (FZ_FINALIZED - 1);
    while (fz_fin_ids[i] && fz_fin_ids[i] != id) i = (i + 1) & (FZ_FINALIZED - 1);
    int found = fz_fin_ids[i] == id;
    pthread_mutex_unlock(&fz_fin_mu);
    return found;
}

/* fz_fin: the finalizer of fz_op_finalizer's objects; arg: the id, with the
   top bit set (no heap address) and bit 62 for a noscan object. The object
   must be intact: a scan object still starts with its id word. */
static void fz_fin(wbgc_p *p, void *obj, void *arg)
{
    (void)p;
    uint64_t a = (uint64_t)(uintptr_t)arg, id = a & ~(3ULL << 62);
    pthread_mutex_lock(&fz_fin_mu);
    if (!(a & (1ULL << 62)) && *(const uint64_t *)obj != fz_idword(id)) fz_fin_broken++;
    if (fz_fin_count < FZ_FINALIZED / 2) {
        size_t i = (size_t)mix64(id) & (FZ_FINALIZED - 1);
        while (fz_fin_ids[i] && fz_fin_ids[i] != id) i = (i + 1) & (FZ_FINALIZED - 1);
        fz_fin_ids[i] = id;
    }
    fz_fin_count++;
    pthread_mutex_unlock(&fz_fin_mu);
}

/* fz_check_specials, in a verifying walk (the records just marked): no
   reachable object was finalized, and each weak handle of a reachable
   object gives that object. */
static int fz_check_specials(fz_thread *t)
{
    fz_model *m = t->m;
    for (uint32_t ix = 0; ix < m->nobj; ix++) {
        const fz_obj *o = &m->obj[ix];
        if (o->id && o->fin && o->mark == m->gen && fz_finalized(o->id)) {
            FZ_FAIL(t, "object id %llu at %p is reachable, but its finalizer ran",
                    (unsigned long long)o->id, (void *)o->addr);
            return 0;
        }
    }
    for (int i = 0; i < FZ_WEAKS; i++) {
        const fz_obj *o = m->weak_id[i] ? &m->obj[m->weak_ix[i]] : NULL;
        if (!o || o->id != m->weak_id[i] || o->mark != m->gen) continue;
        void *got = wbgc_weak_get(t->p, m->weak[i]);
        if (got != (void *)o->addr) {
            FZ_FAIL(t, "weak handle %d of object id %llu at %p, which is reachable, gives %p", i,
                    (unsigned long long)o->id, (void *)o->addr, got);
            return 0;
        }
    }
    return 1;
}

/* fz_walk marks every record reachable from the roots (verifying each when
   `verify`), frees the records of the rest, and sums live_bytes. Between
   operations only: a record held by an operation's local alone would go. */
static int fz_walk(fz_thread *t, int verify)
{
    fz_model *m = t->m;
    size_t sp = 0;
    uint64_t n = 0;
    int ok = 1;
    m->gen++;
    for (int i = 0; i < FZ_LOCALS; i++) {
        if (verify && ok && (uint64_t)(uintptr_t)t->loc[i] != m->loc_val[i]) {
            FZ_FAIL(t, "local %d holds %p, expected %#llx", i, t->loc[i],
                    (unsigned long long)m->loc_val[i]);
            ok = 0;
        }
        fz_push(m, m->loc_tag[i], &sp);
    }
    for (int k = 0; k <= FZ_REGIONS; k++) {
        const fz_region *g = k < FZ_REGIONS ? &m->reg[k] : &m->park;
        if (!g->mem) continue;
        if (verify && ok) ok = fz_region_ok(t, g, k < FZ_REGIONS ? "root region" : "park region", k);
        for (uint32_t w = 0; w < g->nw; w++) fz_push(m, g->stag[w], &sp);
    }
    while (sp) {
        uint32_t ix = m->dfs[--sp];
        const fz_obj *o = &m->obj[ix];
        if (verify && ok) ok = fz_verify_obj(t, ix, "verify");
        for (uint32_t i = 0; i < o->nslots; i++) fz_push(m, o->stag[i], &sp);
        if (verify && (++n & 31) == 0) wbgc_safepoint(t->p);
    }
    if (verify && ok) ok = fz_check_specials(t);
    m->live_bytes = 0;
    for (uint32_t ix = 0; ix < m->nobj; ix++) {
        fz_obj *o = &m->obj[ix];
        if (!o->id) continue;
        if (o->mark != m->gen) fz_rec_free(m, ix);
        else m->live_bytes += o->size;
    }
    m->alloc_since_walk = 0;
    return ok;
}

/* ---- picking what to work on ---------------------------------------------- */

/* fz_pick: a record reachable now, found by a random walk from a root; 0
   when none was found. want_slots: a scan object with pointer slots. */
static uint32_t fz_pick(fz_thread *t, int want_slots)
{
    fz_model *m = t->m;
    for (int tries = 0; tries < 16; tries++) {
        uint64_t r = rnd(&t->rng);
        uint32_t cur = 0;
        if (r & 1) {
            cur = m->loc_tag[(r >> 1) % FZ_LOCALS];
        } else {
            const fz_region *g = &m->reg[(r >> 1) % FZ_REGIONS];
            if (g->mem && g->nw) cur = g->stag[(r >> 8) % g->nw];
        }
        if (!cur) continue;
        int depth = (int)((r >> 24) % 8);
        for (int d = 0; d < depth; d++) {
            const fz_obj *o = &m->obj[cur - 1];
            if (!o->nslots) break;
            uint32_t j = (uint32_t)(rnd(&t->rng) % o->nslots), nx = 0;
            for (uint32_t k = 0; k < 4 && !nx; k++) nx = o->stag[(j + k) % o->nslots];
            if (!nx) break;
            cur = nx;
        }
        if (want_slots && !m->obj[cur - 1].nslots) continue;
        return cur;
    }
    return 0;
}

static void fz_obj_area(fz_thread *t, uint32_t tag, fz_area *a)
{
    fz_obj *o = &t->m->obj[tag - 1];
    a->base = o->addr + 16;
    a->nw = o->nslots;
    a->sval = o->sval;
    a->stag = o->stag;
    a->region = 0;
    a->ix = tag - 1;
}

static int fz_region_area(fz_thread *t, int k, fz_area *a)
{
    fz_region *g = &t->m->reg[k];
    if (!g->mem || !g->nw) return 0;
    a->base = (unsigned char *)g->mem;
    a->nw = g->nw;
    a->sval = g->sval;
    a->stag = g->stag;
    a->region = 1;
    a->ix = (uint32_t)k;
    return 1;
}

/* fz_pick_area: the slots of a reachable object (mostly) or a region */
static int fz_pick_area(fz_thread *t, fz_area *a)
{
    uint64_t r = rnd(&t->rng);
    int k0 = (int)((r >> 8) % FZ_REGIONS);
    if (r % 4 != 0) {
        uint32_t tag = fz_pick(t, 1);
        if (tag) {
            fz_obj_area(t, tag, a);
            return 1;
        }
    }
    for (int k = 0; k < FZ_REGIONS; k++)
        if (fz_region_area(t, (k0 + k) % FZ_REGIONS, a)) return 1;
    uint32_t tag = fz_pick(t, 1);
    if (!tag) return 0;
    fz_obj_area(t, tag, a);
    return 1;
}

static void fz_zero_area(fz_area *a, uint32_t nw)
{
    a->base = (unsigned char *)(uintptr_t)fz_zero_words;
    a->nw = nw;
    a->sval = (uint64_t *)(uintptr_t)fz_zero_words;
    a->stag = (uint32_t *)(uintptr_t)fz_zero_tags;
    a->region = -1;
    a->ix = 0;
}

static const char *fz_area_name(const fz_area *a, char *buf, size_t n)
{
    if (a->region > 0) snprintf(buf, n, "region %u", a->ix);
    else if (a->region < 0) snprintf(buf, n, "zeros");
    else snprintf(buf, n, "rec %u", a->ix);
    return buf;
}

/* ---- stores and moves ----------------------------------------------------- */

/* fz_store: one barriered store of a pointer to record `tag` (0: NULL) into
   word w of a; the model follows. */
static void fz_store(fz_thread *t, fz_area *a, uint32_t w, uint32_t tag)
{
    uint64_t v = tag ? fz_ptr_val(t, tag) : 0;
    wbgc_write(t->p, a->base + 8 * (size_t)w, (void *)(uintptr_t)v);
    a->sval[w] = v;
    a->stag[w] = tag;
}

/* fz_memmove: wbgc_memmove(d+doff, s+soff, n) and its twin in the model,
   byte for byte: a word of d covered whole by a source word at the same
   alignment keeps that word's pointer; every other word it touches holds no
   pointer any more (a pointer cut in part, or put together from bytes moved
   out of line, is data: the collector need not keep what it points to).
   Those words reach the barrier and the scan as the non-pointers they are
   (PITFALLS 7). Under fz_strict -- check mode, or WBGC_VERIFY -- a move that
   would make such a word look like a pointer (a cut pointer keeps its high
   bytes) is not made (returns 0): check mode may rightly call the value
   dangling, and the verifier would take it for a pointer to a lost object. */
static int fz_memmove(fz_thread *t, fz_area *d, size_t doff, fz_area *s, size_t soff, size_t n)
{
    fz_model *m = t->m;
    char b1[32], b2[32];
    if (n == 0) {
        wbgc_memmove(t->p, d->base + doff, s->base + soff, 0);
        return 1;
    }
    size_t w0 = doff / 8, w1 = (doff + n - 1) / 8, nw = w1 - w0 + 1;
    long rel = (long)soff - (long)doff;
    int cut = 0;
    memcpy(m->mm_val, d->sval + w0, nw * 8);
    memcpy((unsigned char *)m->mm_val + (doff - w0 * 8), (const unsigned char *)s->sval + soff, n);
    for (size_t w = w0; w <= w1; w++) {
        int whole = w * 8 >= doff && w * 8 + 8 <= doff + n;
        uint32_t tg = (whole && rel % 8 == 0) ? s->stag[(size_t)((long)(w * 8) + rel) / 8] : 0;
        m->mm_tag[w - w0] = tg;
        if (!tg && d->stag[w]) cut = 1;
        if (fz_strict && !tg && fz_ptrlike(m->mm_val[w - w0])) {
            m->stat[FZ_S_MM_REJECTED]++;
            return 0;
        }
    }
    fz_what(t, " memmove(%s+%zu, %s+%zu, %zu)", fz_area_name(d, b1, sizeof b1), doff,
            fz_area_name(s, b2, sizeof b2), soff, n);
    wbgc_memmove(t->p, d->base + doff, s->base + soff, n);
    memcpy(d->sval + w0, m->mm_val, nw * 8);
    memcpy(d->stag + w0, m->mm_tag, nw * sizeof(uint32_t));
    if (n % 8) m->stat[FZ_S_MM_ODD]++;
    if ((doff | soff) % 8) m->stat[FZ_S_MM_UNALIGNED]++;
    if (d->base == s->base && doff < soff + n && soff < doff + n) m->stat[FZ_S_MM_OVERLAP]++;
    if (cut) m->stat[FZ_S_MM_CUT]++;
    return 1;
}

/* fz_store_batch: stores (w[i] of a[i]) = tags[i] with wbgc_write_n,
   wbgc_write2 or wbgc_write, as r says. */
static void fz_store_batch(fz_thread *t, fz_area *const *a, const uint32_t *w, const uint32_t *tags,
                           int n, uint64_t r)
{
    void *slots[8], *vals[8];
    for (int i = 0; i < n; i++) {
        uint64_t v = tags[i] ? fz_ptr_val(t, tags[i]) : 0;
        slots[i] = a[i]->base + 8 * (size_t)w[i];
        vals[i] = (void *)(uintptr_t)v;
    }
    switch (r % 3) {
    case 0:
        wbgc_write_n(t->p, slots, vals, (size_t)n);
        break;
    case 1: {
        int i = 0;
        for (; i + 1 < n; i += 2) wbgc_write2(t->p, slots[i], vals[i], slots[i + 1], vals[i + 1]);
        if (i < n) wbgc_write(t->p, slots[i], vals[i]);
        break;
    }
    default:
        for (int i = 0; i < n; i++) wbgc_write(t->p, slots[i], vals[i]);
        break;
    }
    for (int i = 0; i < n; i++) {   /* in order: a slot named twice keeps the last */
        a[i]->sval[w[i]] = (uint64_t)(uintptr_t)vals[i];
        a[i]->stag[w[i]] = tags[i];
    }
}

/* ---- allocation ----------------------------------------------------------- */

static size_t fz_pick_size(fz_thread *t, int noscan)
{
    uint64_t r = rnd(&t->rng), q = r >> 8;
    switch (r % 100) {
    case 0: case 1: case 2: case 3:
        return noscan ? (size_t)(q % 16) : 16 + (size_t)(q % 16);   /* tiny, 0 included */
    default: break;
    }
    int c = (int)(r % 100);
    if (c < 45) return 16 + (size_t)(q % 113);          /* 16 .. 128 */
    if (c < 70) return 129 + (size_t)(q % 896);         /* .. 1 KiB */
    if (c < 86) return 1025 + (size_t)(q % 7168);       /* .. 8 KiB */
    return 8193 + (size_t)(q % 24576);                  /* .. 32 KiB */
}

static size_t fz_pick_large(fz_thread *t)
{
    uint64_t r = rnd(&t->rng);
    if (r % 8 == 0) return 32769 + (size_t)((r >> 8) % (1024 * 1024 - 32768));   /* to 1 MiB */
    return 32769 + (size_t)((r >> 8) % (224 * 1024));                           /* to 256 KiB */
}

static uint32_t fz_pick_nslots(fz_thread *t, size_t size)
{
    if (size < 16) return 0;
    uint64_t r = rnd(&t->rng);
    size_t most = (size - 16) / 8, cap = size <= 1024 ? FZ_MAX_SLOTS : (r & 16) ? FZ_MAX_SLOTS : 48;
    if (most > cap) most = cap;
    return (uint32_t)((r >> 8) % (most + 1));
}

/* fz_make allocates an object (header and payload written, slots NULL) into
   *out, the caller's volatile local. Returns its record index + 1; 0 after
   a failure. */
static uint32_t fz_make(fz_thread *t, size_t size, int noscan, uint32_t nslots, void *volatile *out)
{
    fz_model *m = t->m;
    unsigned char *q = noscan ? wbgc_alloc_noscan(t->p, size) : wbgc_alloc(t->p, size);
    if (!q) {
        FZ_FAIL(t, "wbgc_alloc%s(%zu) returned NULL", noscan ? "_noscan" : "", size);
        return 0;
    }
    *out = q;
    size_t nz = fz_nonzero_ends(q, size, 2048);
    if (nz) {
        FZ_FAIL(t, "fresh object %p (%zu B, %s) has %zu non-zero bytes: memory of a live object?",
                (void *)q, size, noscan ? "noscan" : "scan", nz);
        return 0;
    }
    uint32_t ix = fz_rec_new(m);
    fz_obj *o = &m->obj[ix];
    o->id = __atomic_add_fetch(&fz_next_id, 1, __ATOMIC_RELAXED);
    o->addr = q;
    o->size = size;
    o->noscan = (uint32_t)noscan;
    o->nslots = noscan ? 0 : nslots;
    o->mark = m->gen - 1;
    size_t pay = 0;
    if (!noscan) {
        uint64_t *w = (uint64_t *)(void *)q;
        w[0] = fz_idword(o->id);
        w[1] = fz_hdrword(size, o->nslots);
        if (o->nslots) {
            o->sval = fz_xmalloc(o->nslots * sizeof(uint64_t));
            o->stag = fz_xmalloc(o->nslots * sizeof(uint32_t));
        }
        pay = 16 + 8 * (size_t)o->nslots;
    }
    fill_pat(q + pay, size - pay, fz_patseed(o->id));
    m->alloc_since_walk += size;
    m->stat[FZ_S_ALLOC_BYTES] += size;
    fz_what(t, " new id %llu %p %zuB%s/%u", (unsigned long long)o->id, (void *)q, size,
            noscan ? " noscan" : "", o->nslots);
    return ix + 1;
}

/* fz_fill_slots: record tag-1's slots get pointers to reachable objects,
   NULLs (some stored, some left) and non-pointer words, in batches. */
static void fz_fill_slots(fz_thread *t, uint32_t tag)
{
    fz_area a;
    fz_area *as[8];
    uint32_t ws[8], tags[8];
    int n = 0;
    fz_obj_area(t, tag, &a);
    for (uint32_t i = 0; i < a.nw; i++) {
        uint64_t r = rnd(&t->rng);
        int k = (int)(r % 10);
        if (k < 4) continue;                     /* NULL: zeroed memory */
        if (k < 6) {                             /* a non-pointer word: a plain store */
            uint64_t v = fz_junk(rnd(&t->rng));
            ((uint64_t *)(void *)a.base)[i] = v;
            a.sval[i] = v;
            continue;
        }
        as[n] = &a, ws[n] = i, tags[n] = k == 6 ? 0 : fz_pick(t, 0);
        if (++n == 8 || (r >> 8) % 4 == 0 || i + 1 == a.nw) {
            fz_store_batch(t, as, ws, tags, n, r >> 16);
            n = 0;
        }
    }
    if (n) fz_store_batch(t, as, ws, tags, n, rnd(&t->rng));
}

/* fz_churn allocates about `bytes` of garbage, sizes 0 .. maxsz, both
   kinds, each fresh object checked for zeroes and then dirtied (so that a
   live object whose memory it gets loses its id and pattern). */
static NOINLINE void fz_churn(fz_thread *t, size_t bytes, size_t maxsz)
{
    size_t done = 0;
    while (done < bytes && !fz_stopping()) {
        uint64_t r = rnd(&t->rng);
        size_t n = (size_t)(r >> 8) % (maxsz + 1);
        unsigned char *q = (r & 1) ? wbgc_alloc(t->p, n) : wbgc_alloc_noscan(t->p, n);
        if (!q) {
            FZ_FAIL(t, "churn: wbgc_alloc of %zu bytes returned NULL", n);
            return;
        }
        if (fz_nonzero_ends(q, n, 256)) {
            FZ_FAIL(t, "churn: fresh object %p (%zu B) is not zeroed: memory of a live object?",
                    (void *)q, n);
            return;
        }
        if (n >= 8) {
            ((uint64_t *)(void *)q)[0] = fz_junk(r);
            ((uint64_t *)(void *)q)[n / 8 - 1] = fz_junk(~r);
        }
        done += n + 16;
    }
}

/* fz_link puts `val` (a pointer to record tag-1) somewhere reachable: a
   local (plain store: own stack) or a word of an area (barrier). */
static void fz_link(fz_thread *t, uint32_t tag, uint64_t r)
{
    fz_model *m = t->m;
    if (r % 3 != 0) {
        int i = (int)((r >> 8) % FZ_LOCALS);
        uint64_t v = fz_ptr_val(t, tag);
        t->loc[i] = (void *)(uintptr_t)v;
        m->loc_val[i] = v;
        m->loc_tag[i] = tag;
        fz_what(t, " -> local %d", i);
        return;
    }
    fz_area a;
    if (!fz_pick_area(t, &a) || !a.nw) {
        fz_link(t, tag, r + 1);
        return;
    }
    uint32_t w = (uint32_t)((r >> 8) % a.nw);
    fz_store(t, &a, w, tag);
    fz_what(t, " -> %s %u word %u", a.region ? "region" : "slots of rec", a.ix, w);
}

static NOINLINE void fz_op_alloc(fz_thread *t, int kind)
{
    void *volatile obj = NULL;
    uint64_t r = rnd(&t->rng);
    int noscan = kind == FZ_ALLOC_NOSCAN || (kind == FZ_ALLOC_LARGE && (r & 1));
    size_t size = kind == FZ_ALLOC_LARGE ? fz_pick_large(t) : fz_pick_size(t, noscan);
    uint32_t nslots = noscan ? 0 : fz_pick_nslots(t, size);
    uint32_t tag = fz_make(t, size, noscan, nslots, &obj);
    if (!tag) return;
    if (nslots) fz_fill_slots(t, tag);
    int where = (int)((r >> 8) % 10);
    if (kind == FZ_ALLOC_LARGE) where = where < 5 ? 7 : where;
    if (where == 7) {   /* held only by this local across allocation */
        t->m->stat[FZ_S_HELD]++;
        fz_churn(t, (size_t)(4 * KB) << ((r >> 16) % 5), (r & (1 << 20)) ? 8192 : 512);
        if (fz_stopping() || !fz_verify_obj(t, tag - 1, "object held by a local across allocation"))
            return;
        if ((uint64_t)(uintptr_t)obj != (uint64_t)(uintptr_t)t->m->obj[tag - 1].addr) {
            FZ_FAIL(t, "the local changed");
            return;
        }
    }
    if (where == 9 || (kind == FZ_ALLOC_LARGE && where == 8)) {
        fz_what(t, " -> garbage");
        obj = NULL;
        return;
    }
    fz_link(t, tag, r >> 24);
    obj = NULL;
}

/* ---- operations ----------------------------------------------------------- */

static NOINLINE void fz_op_write(fz_thread *t, int kind)
{
    fz_area ar[8];
    fz_area *as[8];
    uint32_t ws[8], tags[8];
    uint64_t r = rnd(&t->rng);
    int n = kind == FZ_WRITE ? 1 : kind == FZ_WRITE2 ? 2 : 3 + (int)(r % 6);
    for (int i = 0; i < n; i++) {
        if (!fz_pick_area(t, &ar[i])) return;
        as[i] = &ar[i];
        ws[i] = (uint32_t)(rnd(&t->rng) % ar[i].nw);
        tags[i] = (rnd(&t->rng) % 4 == 0) ? 0 : fz_pick(t, 0);
        fz_what(t, " %s%u[%u]=%u", ar[i].region ? "reg" : "rec", ar[i].ix, ws[i], tags[i]);
    }
    if (kind == FZ_WRITE) {
        fz_store(t, as[0], ws[0], tags[0]);
    } else if (kind == FZ_WRITE2) {
        uint64_t a = tags[0] ? fz_ptr_val(t, tags[0]) : 0, b = tags[1] ? fz_ptr_val(t, tags[1]) : 0;
        wbgc_write2(t->p, as[0]->base + 8 * (size_t)ws[0], (void *)(uintptr_t)a,
                    as[1]->base + 8 * (size_t)ws[1], (void *)(uintptr_t)b);
        as[0]->sval[ws[0]] = a, as[0]->stag[ws[0]] = tags[0];
        as[1]->sval[ws[1]] = b, as[1]->stag[ws[1]] = tags[1];
    } else {
        fz_store_batch(t, as, ws, tags, n, 0);   /* r % 3 == 0: wbgc_write_n */
    }
}

/* fz_pick_n: a memmove length for areas of db and sb bytes */
static size_t fz_pick_n(fz_thread *t, size_t maxn)
{
    uint64_t r = rnd(&t->rng), q = r >> 8;
    if (maxn == 0) return 0;
    switch (r % 8) {
    case 0: case 1: case 2: return 1 + (size_t)(q % (maxn < 24 ? maxn : 24));
    case 3: return maxn >= 8 ? 8 * (1 + (size_t)(q % (maxn / 8))) : maxn;
    case 4: {   /* 8k + 1..7: an odd tail */
        size_t n = 8 * (size_t)(q % (maxn / 8 + 1)) + 1 + (size_t)((q >> 16) % 7);
        return n <= maxn ? n : maxn;
    }
    case 5: case 6: return 1 + (size_t)(q % maxn);
    default: return (q & 1) ? maxn : 0;
    }
}

static size_t fz_pick_off(fz_thread *t, size_t bytes, size_t n)
{
    uint64_t r = rnd(&t->rng);
    if (r & 1) return 8 * (size_t)((r >> 8) % ((bytes - n) / 8 + 1));   /* aligned */
    return (size_t)((r >> 8) % (bytes - n + 1));
}

static NOINLINE void fz_op_memmove(fz_thread *t)
{
    fz_area d, s;
    if (!fz_pick_area(t, &d)) return;
    uint64_t r = rnd(&t->rng);
    if (r % 10 < 3) s = d;                      /* inside one area: overlap */
    else if (r % 10 == 3) fz_zero_area(&s, d.nw);
    else if (!fz_pick_area(t, &s)) return;
    size_t db = 8 * (size_t)d.nw, sb = 8 * (size_t)s.nw;
    for (int attempt = 0; attempt < 4; attempt++) {
        size_t n = fz_pick_n(t, db < sb ? db : sb);
        size_t doff = fz_pick_off(t, db, n), soff = fz_pick_off(t, sb, n);
        if (fz_memmove(t, &d, doff, &s, soff, n)) return;
    }
}

/* fz_find_ptr: an area and a word in it holding a pointer (tag != 0) */
static int fz_find_ptr(fz_thread *t, fz_area *a, uint32_t *w, int region_only)
{
    for (int tries = 0; tries < 8; tries++) {
        if (region_only) {
            if (!fz_region_area(t, (int)(rnd(&t->rng) % FZ_REGIONS), a)) continue;
        } else if (!fz_pick_area(t, a)) {
            return 0;
        }
        uint32_t j = (uint32_t)(rnd(&t->rng) % a->nw);
        for (uint32_t k = 0; k < a->nw; k++)
            if (a->stag[(j + k) % a->nw]) {
                *w = (j + k) % a->nw;
                return 1;
            }
    }
    return 0;
}

static void fz_region_free(fz_thread *t, int k);

/* hold: the deletion half of the barrier and the stack scan. The pointer in
   word w of an area is loaded into a local, then the word is overwritten --
   by a store, an odd-sized memmove over it (aligned dst and src), a memmove
   that cuts it in part, an unaligned memmove, or the removal of its region
   -- and the object, held by the local only (as far as that word goes), is
   verified after allocation, then linked again or dropped. how < 0: any. */
static NOINLINE void fz_op_hold(fz_thread *t, int how, size_t churn_bytes)
{
    fz_model *m = t->m;
    fz_area a, s;
    uint32_t w;
    uint64_t r = rnd(&t->rng);
    if (!fz_find_ptr(t, &a, &w, how == 5)) return;
    uint32_t tag = a.stag[w];
    uint64_t val = a.sval[w];
    void *volatile held = (void *)(uintptr_t)((const uint64_t *)(const void *)a.base)[w];
    if ((uint64_t)(uintptr_t)held != val) {
        FZ_FAIL(t, "hold: word %u of %s %u is %p, expected %#llx", w, a.region ? "region" : "record",
                a.ix, held, (unsigned long long)val);
        return;
    }
    if (how < 0) how = (int)(r % 6);
    if (how == 5 && !a.region) how = 1;
    int done = 0;
    size_t wb = 8 * (size_t)w, ab = 8 * (size_t)a.nw;
    fz_what(t, " rec %u id %llu from %s %u word %u, how %d:", tag - 1,
            (unsigned long long)m->obj[tag - 1].id, a.region ? "region" : "rec", a.ix, w, how);
    if (!fz_pick_area(t, &s)) fz_zero_area(&s, a.nw);
    if ((r >> 8) % 4 == 0) fz_zero_area(&s, a.nw);
    size_t sb = 8 * (size_t)s.nw;
    switch (how) {
    case 2: {   /* aligned dst and src, n = 8k + 1..7, covering word w whole */
        size_t k = (size_t)((r >> 12) % 3);
        if (k > w) k = w;
        size_t doff = wb - 8 * k, n = 8 * (k + 1) + 1 + (size_t)((r >> 16) % 7);
        if (doff + n > ab) break;   /* w is the last word: no odd tail fits */
        if (n > sb) break;
        size_t soff = 8 * (size_t)((r >> 20) % ((sb - n) / 8 + 1));
        done = fz_memmove(t, &a, doff, &s, soff, n);
        break;
    }
    case 3: {   /* a part of word w only: the pointer cut */
        size_t off = (size_t)((r >> 12) % 8), n = 1 + (size_t)((r >> 16) % (8 - off));
        if (n > sb) break;
        done = fz_memmove(t, &a, wb + off, &s, (size_t)((r >> 20) % (sb - n + 1)), n);
        break;
    }
    case 4: {   /* any alignment, covering word w */
        size_t lo = wb >= 5 ? wb - (size_t)((r >> 12) % 6) : wb;
        size_t n = (wb + 8 - lo) + (size_t)((r >> 16) % 12);
        if (lo + n > ab) n = ab - lo;
        if (n > sb) break;
        done = fz_memmove(t, &a, lo, &s, (size_t)((r >> 20) % (sb - n + 1)), n);
        break;
    }
    case 5:
        fz_region_free(t, (int)a.ix);
        done = 1;
        break;
    default:
        break;
    }
    if (!done) {   /* a store: NULL or another object */
        uint32_t other = how == 1 ? fz_pick(t, 0) : 0;
        fz_store(t, &a, w, other);
        fz_what(t, " store %u", other);
    }
    m->stat[FZ_S_HELD]++;
    fz_churn(t, churn_bytes ? churn_bytes : (size_t)(4 * KB) << ((r >> 24) % 5),
             (r & (1ULL << 30)) ? 8192 : 512);
    if (fz_stopping()) return;
    if ((uint64_t)(uintptr_t)held != val) {
        FZ_FAIL(t, "hold: the local changed");
        return;
    }
    if (!fz_verify_obj(t, tag - 1, "object held by a local after its slot was overwritten")) return;
    if ((r >> 32) % 4 == 0) {
        held = NULL;   /* dropped */
        return;
    }
    fz_link(t, tag, r >> 34);
    held = NULL;
}

/* fz_region_new registers a new region k: malloc'd, filled with plain stores
   (it is no root yet: rule 2 does not apply) of pointers this thread holds --
   from_locals: every local's, which the locals then drop -- NULLs and
   non-pointer words, then wbgc_add_roots. */
static void fz_region_new(fz_thread *t, int k, int from_locals)
{
    fz_model *m = t->m;
    fz_region *g = &m->reg[k];
    uint64_t r = rnd(&t->rng);
    uint32_t nw = 1 + (uint32_t)((r >> 8) % ((r & 3) ? 16 : FZ_REGION_W));
    int dropped = 0;
    if (from_locals && nw < FZ_LOCALS) nw = FZ_LOCALS;
    uint64_t *mem = fz_xmalloc(nw * sizeof(uint64_t));
    g->sval = fz_xmalloc(nw * sizeof(uint64_t));
    g->stag = fz_xmalloc(nw * sizeof(uint32_t));
    g->nw = nw;
    for (uint32_t w = 0; w < nw; w++) {
        uint64_t q = rnd(&t->rng);
        uint32_t tag = 0;
        uint64_t v = 0;
        if (from_locals && w < FZ_LOCALS) {
            tag = m->loc_tag[w];
            v = m->loc_val[w];
        } else if (q % 10 < 4) {
            tag = fz_pick(t, 0);
            v = tag ? fz_ptr_val(t, tag) : 0;
        } else if (q % 10 < 7) {
            v = fz_junk(q);
        }
        mem[w] = v;
        g->sval[w] = v;
        g->stag[w] = tag;
    }
    if (wbgc_add_roots(fz_heap, mem, nw * sizeof(uint64_t)) != 0) {
        FZ_FAIL(t, "wbgc_add_roots(%p, %zu) failed", (void *)mem, nw * sizeof(uint64_t));
        free(mem);
        free(g->sval);
        free(g->stag);
        memset(g, 0, sizeof *g);
        return;
    }
    g->mem = mem;
    if (from_locals)
        for (int i = 0; i < FZ_LOCALS; i++)
            if (m->loc_tag[i]) {
                t->loc[i] = NULL;
                m->loc_val[i] = 0;
                m->loc_tag[i] = 0;
                dropped++;
            }
    fz_what(t, " region %d at %p, %u words%s (%d locals dropped)", k, (void *)mem, nw,
            from_locals ? " from the locals" : "", dropped);
}

/* fz_region_free: wbgc_remove_roots, then the memory goes back to malloc */
static void fz_region_free(fz_thread *t, int k)
{
    fz_region *g = &t->m->reg[k];
    if (!g->mem) return;
    fz_what(t, " remove region %d at %p", k, (void *)g->mem);
    wbgc_remove_roots(fz_heap, g->mem);
    free(g->mem);
    free(g->sval);
    free(g->stag);
    memset(g, 0, sizeof *g);
}

static NOINLINE void fz_op_add_roots(fz_thread *t, int from_locals)
{
    int k0 = (int)(rnd(&t->rng) % FZ_REGIONS);
    for (int j = 0; j < FZ_REGIONS; j++) {
        int k = (k0 + j) % FZ_REGIONS;
        if (t->m->reg[k].mem) continue;
        fz_region_new(t, k, from_locals);
        return;
    }
    if (from_locals) {   /* all in use: make room */
        fz_region_free(t, k0);
        fz_region_new(t, k0, from_locals);
    }
}

/* remove_roots: a region goes, and (hold) an object loaded from it stays in
   a local, verified after allocation, then linked again */
static NOINLINE void fz_op_remove_roots(fz_thread *t, int hold)
{
    int k0 = (int)(rnd(&t->rng) % FZ_REGIONS);
    if (hold || rnd(&t->rng) % 2) {
        fz_op_hold(t, 5, 0);
        return;
    }
    for (int j = 0; j < FZ_REGIONS; j++)
        if (t->m->reg[(k0 + j) % FZ_REGIONS].mem) {
            fz_region_free(t, (k0 + j) % FZ_REGIONS);
            return;
        }
}

static void fz_lock(fz_thread *t, pthread_mutex_t *mu)
{
    if (pthread_mutex_trylock(mu) == 0) return;
    wbgc_blocking_begin(t->p);
    pthread_mutex_lock(mu);
    wbgc_blocking_end(t->p);
}

static void fz_publish(fz_thread *t, wbgc_p *p)
{
    fz_lock(t, &fz_p_mu);
    fz_pub[t->idx] = p;
    pthread_mutex_unlock(&fz_p_mu);
}

/* detach+attach: the locals go to the park region (barriered stores into a
   root region), the thread detaches with no heap pointer left in a local,
   attaches again (a new P, perhaps while a cycle marks) and takes them back. */
static NOINLINE void fz_op_reattach(fz_thread *t)
{
    fz_model *m = t->m;
    fz_region *g = &m->park;
    uint64_t r = rnd(&t->rng);
    fz_publish(t, NULL);
    for (int i = 0; i < FZ_LOCALS; i++) {
        wbgc_write(t->p, &g->mem[i], t->loc[i]);
        g->sval[i] = m->loc_val[i];
        g->stag[i] = m->loc_tag[i];
        t->loc[i] = NULL;
        m->loc_val[i] = 0;
        m->loc_tag[i] = 0;
    }
    wbgc_detach(t->p);
    t->p = NULL;
    if (r & 1) sleep_us((long)((r >> 8) % 300));
    t->p = wbgc_attach(fz_heap);
    if (!t->p) {
        FZ_FAIL(t, "wbgc_attach after wbgc_detach returned NULL");
        abort();   /* no P to go on with */
    }
    fz_what(t, " new P %p", (void *)t->p);
    for (int i = 0; i < FZ_LOCALS; i++) {
        t->loc[i] = (void *)(uintptr_t)g->mem[i];
        m->loc_val[i] = g->sval[i];
        m->loc_tag[i] = g->stag[i];
        wbgc_write(t->p, &g->mem[i], NULL);
        g->sval[i] = 0;
        g->stag[i] = 0;
    }
    fz_publish(t, t->p);
}

static NOINLINE void fz_op_drop(fz_thread *t)
{
    fz_model *m = t->m;
    uint64_t r = rnd(&t->rng);
    int n = 1 + (int)((r >> 8) % 4);
    for (int j = 0; j < n; j++) {
        if (r % 3 == 0) {
            int i = (int)(rnd(&t->rng) % FZ_LOCALS);
            t->loc[i] = NULL;
            m->loc_val[i] = 0;
            m->loc_tag[i] = 0;
            fz_what(t, " local %d", i);
        } else {
            fz_area a;
            uint32_t w;
            if (!fz_find_ptr(t, &a, &w, 0)) return;
            fz_store(t, &a, w, 0);
            fz_what(t, " %s %u word %u", a.region ? "region" : "rec", a.ix, w);
        }
    }
}

/* fz_trim drops roots while the thread holds more than its budget */
static void fz_trim(fz_thread *t)
{
    fz_model *m = t->m;
    for (int round = 0; round < 4 && m->live_bytes > FZ_BUDGET; round++) {
        for (int i = 0; i < FZ_LOCALS; i++)
            if (m->loc_tag[i] && (round == 3 || (rnd(&t->rng) & 1))) {
                t->loc[i] = NULL;
                m->loc_val[i] = 0;
                m->loc_tag[i] = 0;
            }
        for (int k = 0; k < FZ_REGIONS; k++) {
            fz_area a;
            if (!fz_region_area(t, k, &a)) continue;
            for (uint32_t w = 0; w < a.nw; w++)
                if (a.stag[w] && (round == 3 || (rnd(&t->rng) & 1))) fz_store(t, &a, w, 0);
        }
        fz_walk(t, 0);
    }
}

/* safepoint: verify a few reachable objects, with safepoints between */
static NOINLINE void fz_op_safepoint(fz_thread *t)
{
    int n = 1 + (int)(rnd(&t->rng) % 16);
    for (int i = 0; i < n && !fz_stopping(); i++) {
        uint32_t tag = fz_pick(t, 0);
        if (tag && !fz_verify_obj(t, tag - 1, "spot check")) return;
        wbgc_safepoint(t->p);
    }
}

/* ---- thread creation while a cycle marks --------------------------------- */

static NOINLINE void fz_helper_churn(wbgc_p *p, fz_helper *hl, uint64_t *rng)
{
    uint64_t c0 = get_stats(fz_heap).cycles, t0 = now_ns();
    for (uint64_t i = 0; !fz_stopping(); i++) {
        uint64_t r = rnd(rng);
        size_t n = (r & 3) == 0 ? (size_t)(r >> 8) % 2048 : (r & 1) ? hl->xsize : hl->csize;
        unsigned char *q = (r & 2) ? wbgc_alloc(p, n) : wbgc_alloc_noscan(p, n);
        if (!q) return;
        if (n >= 16) {
            ((uint64_t *)(void *)q)[0] = fz_junk(r);
            ((uint64_t *)(void *)q)[1] = fz_junk(~r);
        }
        if ((i & 15) == 0 &&
            (get_stats(fz_heap).cycles >= c0 + 2 || now_ns() - t0 > 300 * 1000000ull))
            return;
    }
}

static void *fz_helper_main(void *arg)
{
    fz_helper *hl = arg;
    uint64_t rng = mix64(hl->xid * 7 + 1) | 1;
    size_t at;
    uint64_t exp, got;
    wbgc_p *p = wbgc_attach(fz_heap);
    void *volatile x = (void *)__atomic_load_n(&hl->x, __ATOMIC_ACQUIRE);
    __atomic_store_n(&hl->x, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&hl->attached, 1, __ATOMIC_RELEASE);
    if (!p) {
        FAILF("fuzz: seed %llu: helper %llu of thread %d: wbgc_attach returned NULL",
              (unsigned long long)fz_seed, (unsigned long long)hl->n, hl->spawner);
        __atomic_store_n(&fz_failed, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&hl->done, 1, __ATOMIC_RELEASE);
        return NULL;
    }
    fz_helper_churn(p, hl, &rng);
    const unsigned char *xa = (const unsigned char *)x;
    const char *bad = fz_check_raw(xa, hl->xid, hl->xsize, 1, 0, &at, &exp, &got);
    const char *what = "X";
    if (!bad && ((const uint64_t *)(const void *)xa)[2] != hl->cptr) {
        bad = "its pointer to C", at = 16, exp = hl->cptr, got = ((const uint64_t *)(const void *)xa)[2];
    }
    if (!bad) {
        what = "C (X's child)";
        bad = fz_check_raw((const unsigned char *)hl->cptr, hl->cid, hl->csize, 0, 1, &at, &exp, &got);
    }
    if (bad && !__atomic_exchange_n(&fz_failed, 1, __ATOMIC_ACQ_REL))
        FAILF("seed %llu, %.2f s: helper thread %llu, spawned by thread %d at its op %llu (%s), attached "
              "and given X (id %llu at %p, %zu B; C id %llu at %#lx, %zu B): after allocating for "
              "two cycles, %s is broken: %s at byte %zu: expected %#llx, found %#llx (the stack of a "
              "P attached while a cycle marks not scanned?)",
              (unsigned long long)fz_seed, (now_ns() - fz_t0) / 1e9, (unsigned long long)hl->n,
              hl->spawner, (unsigned long long)hl->spawn_op, hl->fresh ? "right after a mark start" : "any time",
              (unsigned long long)hl->xid, (void *)xa, hl->xsize, (unsigned long long)hl->cid,
              (unsigned long)hl->cptr, hl->csize, what, bad, at, (unsigned long long)exp,
              (unsigned long long)got);
    x = NULL;
    wbgc_detach(p);
    __atomic_store_n(&hl->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* fz_join_helper: joins the last helper when it is done (wait: in any case) */
static int fz_join_helper(fz_thread *t, int wait)
{
    if (!t->harg) return 1;
    if (!wait && !__atomic_load_n(&t->harg->done, __ATOMIC_ACQUIRE)) return 0;
    join_blocking(t->p, t->helper);
    free(t->harg);
    t->harg = NULL;
    return 1;
}

/* fz_make_x: X (scan, one slot) pointing at C (noscan), X in *x */
static fz_helper *fz_make_x(fz_thread *t, void *volatile *x)
{
    void *volatile c = NULL;
    uint64_t r = rnd(&t->rng);
    fz_helper *hl = fz_xmalloc(sizeof *hl);
    hl->xsize = (r & 0x10000) ? 24 + (size_t)((r >> 8) % 40) : 24 + (size_t)((r >> 8) % 2000);
    if ((r & 0xff) == 0) hl->xsize = 40000;   /* now and then a large X */
    hl->csize = 16 + (size_t)((r >> 24) % 200);
    fz_model *m = t->m;
    uint32_t xt = fz_make(t, hl->xsize, 0, 1, x), ct = fz_make(t, hl->csize, 1, 0, &c);
    if (!xt || !ct) {
        free(hl);
        return NULL;
    }
    hl->xid = m->obj[xt - 1].id;
    hl->cid = m->obj[ct - 1].id;
    hl->cptr = (uintptr_t)c;
    wbgc_write(t->p, (unsigned char *)*x + 16, c);
    m->obj[xt - 1].sval[0] = (uint64_t)hl->cptr;
    m->obj[xt - 1].stag[0] = ct;   /* the records go at the next walk: X is not the model's */
    c = NULL;
    return hl;
}

/* fz_spawn hands X (*x, held by the caller's volatile local) to a new thread
   through pthread_create's argument, keeps it until that thread has it on
   its stack (spinning, with no safepoint, for a while: if this thread's stack
   is not scanned yet, it stays so), then drops it. */
static NOINLINE void fz_spawn(fz_thread *t, fz_helper *hl, void *volatile *x, int fresh)
{
    hl->x = (uintptr_t)*x;
    hl->spawner = t->idx;
    hl->spawn_op = t->nop;
    hl->n = ++t->nhelpers;
    hl->fresh = fresh;
    int rc = pthread_create(&t->helper, NULL, fz_helper_main, hl);
    if (rc != 0) {
        *x = NULL;
        free(hl);
        return;   /* out of threads: not the collector's fault */
    }
    t->harg = hl;
    t->m->stat[FZ_S_HELPERS]++;
    uint64_t t0 = now_ns();
    while (!__atomic_load_n(&hl->attached, __ATOMIC_ACQUIRE)) {
        if (now_ns() - t0 > 10 * 1000000ull) {   /* a stop of the world may wait for this P */
            if (!wait_flag_blocking(t->p, &hl->attached, 30.0))
                FZ_FAIL(t, "spawn: the helper did not attach in 30 s");
            break;
        }
        sched_yield();
    }
    *x = NULL;
    fz_what(t, " helper %llu got X id %llu", (unsigned long long)hl->n, (unsigned long long)hl->xid);
}

static NOINLINE void fz_op_spawn(fz_thread *t)
{
    void *volatile x = NULL;
    if (!fz_join_helper(t, 0)) return;
    fz_helper *hl = fz_make_x(t, &x);
    if (hl) fz_spawn(t, hl, &x, 0);
    x = NULL;
}

/* ---- windows: right after a mark start ----------------------------------- */

/* fz_wait_start allocates (or blocks) until a pause happens while no cycle
   completes: a mark start. Returns 1 when it saw one. big: allocate 2-16
   KiB objects, whose frequent span refills make this thread likely to be
   the one that starts the cycle (its stack then stays unscanned until its
   next safepoint); else 16-80 bytes, mostly from the cached span: the
   allocation that parked for the mark start then scans this thread's stack
   and returns with no assist, so the root regions are likely not scanned
   yet. */
static NOINLINE int fz_wait_start(fz_thread *t, uint64_t r, int big)
{
    wbgc_stats s0 = get_stats(fz_heap), s1;
    if (fz_flags & WBGC_STW) return 0;
    if ((r & 0x300) == 0) {   /* in a blocking region: a stack that may stay unscanned after */
        wbgc_blocking_begin(t->p);
        sleep_us(100 + (long)((r >> 12) % 2000));
        wbgc_blocking_end(t->p);
        s1 = get_stats(fz_heap);
        return s1.pause_count != s0.pause_count && s1.cycles == s0.cycles;
    }
    for (int i = 0; i < (big ? 4096 : 16384) && !fz_stopping(); i++) {
        uint64_t q = rnd(&t->rng);
        size_t n = big ? 2048 + (size_t)((q >> 8) % 14336) : 16 + (size_t)((q >> 8) % 64);
        uint64_t *o = (q & 1) ? wbgc_alloc(t->p, n) : wbgc_alloc_noscan(t->p, n);
        if (!o) {
            FZ_FAIL(t, "window: wbgc_alloc of %zu bytes returned NULL", n);
            return 0;
        }
        o[0] = fz_junk(q);
        s1 = get_stats(fz_heap);
        if (s1.pause_count != s0.pause_count) {
            if (s1.cycles == s0.cycles) return 1;
            s0 = s1;   /* a cycle ended: wait for the next start */
        }
    }
    return 0;
}

static NOINLINE void fz_op_window(fz_thread *t)
{
    fz_model *m = t->m;
    void *volatile x = NULL;
    fz_helper *hl = NULL;
    uint64_t r = rnd(&t->rng);
    static const int acts[8] = {0, 0, 2, 2, 2, 3, 4, 4};
    int act = acts[r % 8];   /* 0: hold; 2: remove a region; 3: add one; 4: spawn */
    if (act == 4) {
        if (!fz_join_helper(t, 0) || !(hl = fz_make_x(t, &x))) act = 0;
    }
    if (act == 3) {   /* fresh objects, held by locals only */
        int n = 1 + (int)((r >> 8) % 3);
        for (int j = 0; j < n; j++) {
            int i = (int)(rnd(&t->rng) % FZ_LOCALS);
            uint32_t tag = fz_make(t, fz_pick_size(t, 0) + 16, 0, 0, &t->loc[i]);
            if (!tag) return;
            m->loc_val[i] = (uint64_t)(uintptr_t)t->loc[i];
            m->loc_tag[i] = tag;
        }
    }
    if (act == 2) {
        int have = 0;
        for (int k = 0; k < FZ_REGIONS; k++) have |= m->reg[k].mem != NULL;
        if (!have) fz_op_add_roots(t, 0);
    }
    int fresh = fz_wait_start(t, r, act >= 3);
    m->stat[FZ_S_WINDOWS]++;
    m->stat[FZ_S_FRESH] += (uint64_t)fresh;
    fz_what(t, " %s, act %d:", fresh ? "fresh mark start" : "no mark start seen", act);
    if (fz_stopping()) {
        if (hl) free(hl);
        x = NULL;
        return;
    }
    switch (act) {
    case 0:
        fz_op_hold(t, (r >> 16) % 4 ? 2 : 3 + (int)((r >> 20) % 2), 64 * KB);
        break;
    case 2:
        fz_op_hold(t, 5, 64 * KB);
        break;
    case 3: {
        if (fresh) {   /* let a marker scan the root regions first */
            uint64_t t0 = now_ns();
            while (now_ns() - t0 < 200 * 1000) sched_yield();
        }
        fz_op_add_roots(t, 1);
        break;
    }
    default:
        fz_spawn(t, hl, &x, fresh);
        break;
    }
    x = NULL;
}

/* ---- misuse probe (check mode) --------------------------------------------- */

static int fz_is_probe_msg(const char *msg)
{
    return ci_contains(msg, "rule 1") || ci_contains(msg, "another thread") ||
           ci_contains(msg, "belongs to thread");
}

static NOINLINE void fz_op_probe(fz_thread *t)
{
    if (!(fz_flags & WBGC_CHECK) || !fz_probe_misuse) return;
    fz_lock(t, &fz_p_mu);
    int j0 = (int)(rnd(&t->rng) % FZ_THREADS), j = -1;
    for (int k = 0; k < FZ_THREADS && j < 0; k++)
        if ((j0 + k) % FZ_THREADS != t->idx && fz_pub[(j0 + k) % FZ_THREADS]) j = (j0 + k) % FZ_THREADS;
    if (fz_probes >= FZ_MAX_PROBES || j < 0) {
        pthread_mutex_unlock(&fz_p_mu);
        return;
    }
    wbgc_p *other = fz_pub[j];
    size_t sz = 16 + (size_t)(rnd(&t->rng) % 200);
    int before = errlog_count(fz_log);
    /* From inside this thread's blocking region: a collector that lets the
       call through may stop the world as `other`, and must not wait for
       this thread's own P (a hang instead of a report). */
    wbgc_blocking_begin(t->p);
    void *q = wbgc_alloc(other, sz);
    wbgc_blocking_end(t->p);
    int after = errlog_count(fz_log);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", errlog_msg(fz_log, before));
    int ok = !q && after == before + 1 && fz_is_probe_msg(msg);
    if (ok) fz_probes++;
    pthread_mutex_unlock(&fz_p_mu);
    fz_what(t, " wbgc_alloc with thread %d's P %p: %p, %d report(s)", j, (void *)other, q,
            after - before);
    if (!ok)
        FZ_FAIL(t, "check mode: wbgc_alloc with thread %d's P %p, called from thread %d, returned %p "
                "with %d on_error report(s) (expected NULL and one report of rule 1)%s%s",
                j, (void *)other, t->idx, q, after - before, after > before ? ": " : "",
                after > before ? msg : "");
}

/* fz_op_weak makes (or finds) the weak handle of a reachable object, which
   must give it, and keeps it in a slot; or gets an old slot's object, which
   must be NULL or that object, intact if the model still knows it. */
static void fz_op_weak(fz_thread *t)
{
    fz_model *m = t->m;
    int i = (int)(rnd(&t->rng) % FZ_WEAKS);
    if (m->weak_id[i] && (rnd(&t->rng) & 1)) {
        void *got = wbgc_weak_get(t->p, m->weak[i]);
        fz_what(t, " get slot %d (id %llu): %p", i, (unsigned long long)m->weak_id[i], got);
        if (got && got != (void *)m->weak_addr[i])
            FZ_FAIL(t, "weak handle %d of object id %llu at %p gives %p", i,
                    (unsigned long long)m->weak_id[i], (void *)m->weak_addr[i], got);
        else if (got && m->obj[m->weak_ix[i]].id == m->weak_id[i])
            fz_verify_obj(t, m->weak_ix[i], "weak get");
        return;
    }
    uint32_t tag = fz_pick(t, 0);
    if (!tag) return;
    unsigned char *addr = m->obj[tag - 1].addr;
    uint64_t id = m->obj[tag - 1].id;
    wbgc_weak *w = wbgc_weak_new(t->p, addr);   /* a safepoint: addr is held by the roots */
    void *got = w ? wbgc_weak_get(t->p, w) : NULL;
    fz_what(t, " new handle of id %llu %p -> slot %d: %p", (unsigned long long)id, (void *)addr, i,
            got);
    if (got != (void *)addr) {
        FZ_FAIL(t, "wbgc_weak_new(id %llu at %p) gave handle %p, which gives %p",
                (unsigned long long)id, (void *)addr, (void *)w, got);
        return;
    }
    wbgc_write(t->p, &m->weak[i], w);
    m->weak_id[i] = id;
    m->weak_addr[i] = addr;
    m->weak_ix[i] = tag - 1;
}

/* fz_op_finalizer registers fz_fin on a reachable object (or, now and then,
   removes an object's): it must not run while the model reaches it. */
static void fz_op_finalizer(fz_thread *t)
{
    fz_model *m = t->m;
    uint32_t tag = fz_pick(t, 0);
    if (!tag) return;
    fz_obj *o = &m->obj[tag - 1];
    int remove = o->fin && (rnd(&t->rng) & 3) == 0;
    void *arg = (void *)(uintptr_t)(o->id | (1ULL << 63) | ((uint64_t)o->noscan << 62));
    fz_what(t, " %s id %llu %p", remove ? "remove" : "set", (unsigned long long)o->id,
            (void *)o->addr);
    if (wbgc_set_finalizer(t->p, o->addr, remove ? NULL : fz_fin, remove ? NULL : arg) != 0)
        FZ_FAIL(t, "wbgc_set_finalizer(id %llu at %p) failed", (unsigned long long)o->id,
                (void *)o->addr);
    o->fin = !remove;
}

/* ---- the threads ----------------------------------------------------------- */

static int fz_pick_op(fz_thread *t)
{
    int r = (int)(rnd(&t->rng) % 1000);
    for (int op = 0; op < FZ_NOPS; op++) {
        if (r < fz_weights[op]) return op;
        r -= fz_weights[op];
    }
    return FZ_ALLOC;
}

static void fz_run_op(fz_thread *t, int op)
{
    fz_begin(t, op);
    switch (op) {
    case FZ_ALLOC: case FZ_ALLOC_NOSCAN: case FZ_ALLOC_LARGE: fz_op_alloc(t, op); break;
    case FZ_WRITE: case FZ_WRITE2: case FZ_WRITE_N: fz_op_write(t, op); break;
    case FZ_MEMMOVE: fz_op_memmove(t); break;
    case FZ_HOLD: fz_op_hold(t, -1, 0); break;
    case FZ_ADD_ROOTS: fz_op_add_roots(t, (rnd(&t->rng) & 3) == 0); break;
    case FZ_REMOVE_ROOTS: fz_op_remove_roots(t, 0); break;
    case FZ_REATTACH: fz_op_reattach(t); break;
    case FZ_BLOCKING:
        wbgc_blocking_begin(t->p);
        sleep_us(10 + (long)(rnd(&t->rng) % 300));
        wbgc_blocking_end(t->p);
        break;
    case FZ_LOCK:   /* held while allocating: the waiters must be in blocking regions */
        fz_lock(t, &fz_lock_mu);
        fz_churn(t, 2 * KB + (size_t)(rnd(&t->rng) % (16 * KB)), 1024);
        if (rnd(&t->rng) & 1) sleep_us(20);
        pthread_mutex_unlock(&fz_lock_mu);
        break;
    case FZ_COLLECT: wbgc_collect(t->p); break;
    case FZ_SAFEPOINT: fz_op_safepoint(t); break;
    case FZ_DROP: fz_op_drop(t); break;
    case FZ_CHURN: fz_churn(t, (size_t)(8 * KB) << (rnd(&t->rng) % 4), 32 * KB); break;
    case FZ_WINDOW: fz_op_window(t); break;
    case FZ_SPAWN: fz_op_spawn(t); break;
    case FZ_PROBE: fz_op_probe(t); break;
    case FZ_WEAK: fz_op_weak(t); break;
    case FZ_FINALIZER: fz_op_finalizer(t); break;
    default: break;
    }
}

static void fz_loop(fz_thread *t, uint64_t deadline)
{
    fz_model *m = t->m;
    uint64_t last_collect = now_ns();
    while (!fz_stopping()) {
        if (t->idx == 0) {
            uint64_t now = now_ns();
            if (now >= deadline) {
                __atomic_store_n(&fz_stop, 1, __ATOMIC_RELAXED);
                break;
            }
            if (now - last_collect > 25 * 1000000ull) {
                fz_run_op(t, FZ_COLLECT);
                last_collect = now_ns();
            }
        }
        if ((t->nop & 3) == 0) {   /* a cycle completed: check everything reachable */
            uint64_t c = fz_cycles();
            if (c != t->cycles_seen) {
                fz_begin(t, FZ_VERIFY);
                fz_what(t, " after cycle %llu", (unsigned long long)c);
                t->cycles_seen = c;
                if (!fz_walk(t, 1)) break;
                fz_trim(t);
            }
        }
        fz_run_op(t, fz_pick_op(t));
        if (m->alloc_since_walk > 256 * KB || (t->nop & 63) == 0) {
            fz_walk(t, 0);
            fz_trim(t);
        }
    }
}

/* fz_thread_init: the model, the park region, the P published */
static void fz_thread_init(fz_thread *t, int idx, wbgc_p *p)
{
    memset((void *)t, 0, sizeof *t);
    t->idx = idx;
    t->p = p;
    t->rng = mix64(fz_seed * 0x9E3779B97F4A7C15ULL + (uint64_t)idx + 1) | 1;
    t->m = fz_xmalloc(sizeof *t->m);
    fz_region *g = &t->m->park;
    g->nw = FZ_LOCALS;
    g->mem = fz_xmalloc(FZ_LOCALS * sizeof(uint64_t));
    g->sval = fz_xmalloc(FZ_LOCALS * sizeof(uint64_t));
    g->stag = fz_xmalloc(FZ_LOCALS * sizeof(uint32_t));
    if (wbgc_add_roots(fz_heap, g->mem, FZ_LOCALS * sizeof(uint64_t)) != 0)
        FZ_FAIL(t, "wbgc_add_roots of the park region failed");
    t->m->weak = fz_xmalloc(FZ_WEAKS * sizeof *t->m->weak);
    if (wbgc_add_roots(fz_heap, t->m->weak, FZ_WEAKS * sizeof *t->m->weak) != 0)
        FZ_FAIL(t, "wbgc_add_roots of the weak handles failed");
    t->cycles_seen = fz_cycles();
    fz_publish(t, p);
}

/* fz_thread_fini: a last check (before and after a collect), then everything
   goes: the helper joined, the regions removed, the model freed */
static void fz_thread_fini(fz_thread *t)
{
    fz_model *m = t->m;
    if (!__atomic_load_n(&fz_failed, __ATOMIC_RELAXED)) {
        fz_begin(t, FZ_VERIFY);
        fz_what(t, " final");
        if (fz_walk(t, 1)) {
            wbgc_collect(t->p);
            fz_begin(t, FZ_VERIFY);
            fz_what(t, " final, after a collect");
            fz_walk(t, 1);
        }
    }
    fz_join_helper(t, 1);
    for (int i = 0; i < FZ_LOCALS; i++) t->loc[i] = NULL;
    for (int k = 0; k < FZ_REGIONS; k++) fz_region_free(t, k);
    wbgc_remove_roots(fz_heap, m->park.mem);
    wbgc_remove_roots(fz_heap, m->weak);
    free(m->weak);
    free(m->park.mem);
    free(m->park.sval);
    free(m->park.stag);
    for (uint32_t ix = 0; ix < m->nobj; ix++)
        if (m->obj[ix].id) fz_rec_free(m, ix);
    for (int op = 0; op < FZ_NOPS; op++) __atomic_add_fetch(&fz_ops[op], m->count[op], __ATOMIC_RELAXED);
    for (int s = 0; s < FZ_NSTATS; s++) __atomic_add_fetch(&fz_stats[s], m->stat[s], __ATOMIC_RELAXED);
    free(m->obj);
    free(m->dfs);
    free(m);
    t->m = NULL;
    fz_publish(t, NULL);
}

static void *fz_thread_main(void *arg)
{
    fz_thread t;
    int idx = (int)(intptr_t)arg;
    wbgc_p *p = wbgc_attach(fz_heap);
    if (!p) {
        FAILF("fuzz: thread %d: wbgc_attach returned NULL", idx);
        __atomic_store_n(&fz_failed, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    fz_thread_init(&t, idx, p);
    fz_loop(&t, 0);
    fz_thread_fini(&t);
    wbgc_detach(t.p);
    return NULL;
}

/* ---- large objects with no mark worker ------------------------------------- */

/* fz_large_allocs: n objects of sz bytes, each dropped at once; returns how
   many were made before heap_sys passed the bound (or n), *peak the most
   heap_sys seen. A noinline frame: nothing of it stays on the stack. */
static NOINLINE int fz_large_allocs(wbgc_heap *h, wbgc_p *p, int n, size_t sz, uint64_t *peak)
{
    for (int i = 0; i < n; i++) {
        uint64_t *q = (i & 1) ? wbgc_alloc(p, sz) : wbgc_alloc_noscan(p, sz);
        if (!q) return -1 - i;
        q[0] = fz_junk((uint64_t)i);
        q[sz / 8 - 1] = fz_junk(~(uint64_t)i);
        if ((i & 31) == 31) {
            uint64_t sys = get_stats(h).heap_sys;
            if (sys > *peak) *peak = sys;
            if (sys > FZ_LARGE_SYS_MAX) return i + 1;
        }
    }
    return n;
}

/* fz_large_bound: with mark_workers = 0, marking advances only in assists,
   so large allocations must pay them too. 8192 objects of 64 KiB (512 MiB),
   each dropped, at gc_percent 100: nothing is live, so the goal is twice the
   4 MiB minimum, 8 MiB; a cycle starts at the trigger (below the goal) and
   the assists charged for each object as it is made end it within about a
   goal's worth of allocation, after which the sweep gives the dead runs
   back. heap_sys should stay within a few times the goal; the bound, 64 MiB
   (8 x the goal), leaves room for sweep lag and fragmentation, and a heap
   that never finishes a cycle passes it after ~1000 objects (the run stops
   there: RSS stays bounded even then). At least 10 cycles must complete
   (~60 are expected: 512 MiB / 8 MiB). */
static void fz_large_bound(void)
{
    errlog log;
    uint64_t peak = 0;
    wbgc_heap *h = open_heap(&log, 100, 0, 0, 0);
    REQUIRE(h);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    uint64_t c0 = cycles_of(h), t0 = now_ns();
    int made = fz_large_allocs(h, p, 8192, 64 * KB, &peak);
    scrub_stack();
    uint64_t c1 = cycles_of(h);
    CHECKF(made == 8192, "large objects only, incremental: heap_sys reached %.1f MiB (bound %.0f MiB) "
           "after %d of 8192 dropped 64 KiB objects, %llu cycles completed (large allocations pay no "
           "assist?)", peak / (double)MB, FZ_LARGE_SYS_MAX / (double)MB, made < 0 ? -made : made,
           (unsigned long long)(c1 - c0));
    CHECKF(c1 - c0 >= 10, "large objects only, incremental: %llu cycles completed during %d dropped "
           "64 KiB objects", (unsigned long long)(c1 - c0), made < 0 ? -made : made);
    note("large objects only, mark_workers 0, gc_percent 100: %d x 64 KiB dropped in %.2f s, %llu "
         "cycles, heap_sys peak %.1f MiB (bound %.0f MiB)", made, (now_ns() - t0) / 1e9,
         (unsigned long long)(c1 - c0), peak / (double)MB, FZ_LARGE_SYS_MAX / (double)MB);
    CLOSE_HEAP(h, p, &log);
}

/* ---- the run --------------------------------------------------------------- */

static void fz_run(unsigned flags, int mark_workers)
{
    const char *s;
    double secs = 2.0;
    int gc_percent = 1;
    errlog log;
    pthread_t th[FZ_THREADS];
    int started = 0;
    fz_seed = 1;
    if ((s = getenv("WBGC_FUZZ_SECONDS")) && atof(s) > 0) secs = atof(s);
    if ((s = getenv("WBGC_FUZZ_SEED")) && *s)
        fz_seed = !strcmp(s, "random") ? mix64(now_ns() ^ ((uint64_t)getpid() << 32)) % 1000000000u + 1
                                       : strtoull(s, NULL, 0);
    if ((s = getenv("WBGC_FUZZ_GC_PERCENT")) && *s) gc_percent = atoi(s);
    if ((s = getenv("WBGC_FUZZ_PROBE")) && *s) fz_probe_misuse = atoi(s) != 0;
    alarm(g_timeout + (unsigned)secs + 10);
    wbgc_heap *h = open_heap(&log, gc_percent, flags, mark_workers, 0);
    REQUIRE(h);
    fz_heap = h;
    fz_flags = flags | g_extra_flags;
    fz_strict = (fz_flags & WBGC_CHECK) != 0 || ((s = getenv("WBGC_VERIFY")) && *s && strcmp(s, "0"));
#ifdef WBGC_VERIFY
    fz_strict |= (fz_flags & WBGC_VERIFY) != 0;
#endif
    fz_log = &log;
    fz_t0 = now_ns();
    fz_stop = fz_failed = 0;
    fz_next_id = 0;
    fz_probes = 0;
    memset(fz_fin_ids, 0, sizeof fz_fin_ids);
    fz_fin_count = fz_fin_broken = 0;
    memset(fz_ops, 0, sizeof fz_ops);
    memset(fz_stats, 0, sizeof fz_stats);
    memset(fz_pub, 0, sizeof fz_pub);
    wbgc_p *p = wbgc_attach(h);
    REQUIRE(p);
    fz_thread t;
    fz_thread_init(&t, 0, p);
    wbgc_stats s0 = get_stats(h);
    uint64_t t0 = now_ns();
    for (int i = 1; i < FZ_THREADS; i++) {
        if (pthread_create(&th[i], NULL, fz_thread_main, (void *)(intptr_t)i) != 0) {
            FAILF("pthread_create failed");
            break;
        }
        started++;
    }
    fz_loop(&t, t0 + (uint64_t)(secs * 1e9));
    __atomic_store_n(&fz_stop, 1, __ATOMIC_RELAXED);
    wbgc_blocking_begin(t.p);
    for (int i = 1; i <= started; i++) pthread_join(th[i], NULL);
    wbgc_blocking_end(t.p);
    uint64_t t1 = now_ns();
    wbgc_stats s1 = get_stats(h);
    fz_thread_fini(&t);
    p = t.p;
    int failed = __atomic_load_n(&fz_failed, __ATOMIC_RELAXED);
    uint64_t cyc = s1.cycles - s0.cycles, nops = 0;
    for (int op = 0; op < FZ_NOPS; op++) nops += fz_ops[op];
    double dt = (t1 - t0) / 1e9;
    if (!failed) {
        CHECKF(cyc >= 10, "only %llu cycles completed in %.2f s", (unsigned long long)cyc, dt);
        CHECKF(fz_ops[FZ_MEMMOVE] > 0 && fz_ops[FZ_HOLD] > 0 && fz_ops[FZ_WINDOW] > 0,
               "operations missing: %llu memmove, %llu hold, %llu window",
               (unsigned long long)fz_ops[FZ_MEMMOVE], (unsigned long long)fz_ops[FZ_HOLD],
               (unsigned long long)fz_ops[FZ_WINDOW]);
        CHECKF(fz_ops[FZ_WEAK] > 0 && fz_ops[FZ_FINALIZER] > 0, "operations missing: %llu weak, "
               "%llu finalizer", (unsigned long long)fz_ops[FZ_WEAK],
               (unsigned long long)fz_ops[FZ_FINALIZER]);
    }
    pthread_mutex_lock(&fz_fin_mu);
    CHECKF(fz_fin_broken == 0, "%llu finalizers found their object broken",
           (unsigned long long)fz_fin_broken);
    note("%llu finalizers ran (objects the model had dropped)", (unsigned long long)fz_fin_count);
    pthread_mutex_unlock(&fz_fin_mu);
    char buf[1024];
    size_t len = 0;
    for (int op = 0; op < FZ_NOPS && len < sizeof buf - 40; op++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s %llu", op ? ", " : "", fz_op_names[op],
                                (unsigned long long)fz_ops[op]);
    note("seed %llu, %d threads, %.2f s, gc_percent %d: %llu cycles, %llu operations, %llu objects made "
         "(%.0f MiB)", (unsigned long long)fz_seed, started + 1, dt, gc_percent, (unsigned long long)cyc,
         (unsigned long long)nops, (unsigned long long)fz_next_id,
         fz_stats[FZ_S_ALLOC_BYTES] / (double)MB);
    note("operations: %s", buf);
    note("memmoves: %llu odd-sized, %llu unaligned, %llu overlapping, %llu cutting a pointer, %llu not "
         "made (strict); %llu holds; %llu windows, %llu right after a mark start; %llu threads "
         "handed an object; %d misuse probes reported",
         (unsigned long long)fz_stats[FZ_S_MM_ODD], (unsigned long long)fz_stats[FZ_S_MM_UNALIGNED],
         (unsigned long long)fz_stats[FZ_S_MM_OVERLAP], (unsigned long long)fz_stats[FZ_S_MM_CUT],
         (unsigned long long)fz_stats[FZ_S_MM_REJECTED], (unsigned long long)fz_stats[FZ_S_HELD],
         (unsigned long long)fz_stats[FZ_S_WINDOWS], (unsigned long long)fz_stats[FZ_S_FRESH],
         (unsigned long long)fz_stats[FZ_S_HELPERS], fz_probes);
    note("verified: %llu objects (%.0f MiB); heap live %.1f MiB, sys %.1f MiB at the end",
         (unsigned long long)fz_stats[FZ_S_OBJS], fz_stats[FZ_S_BYTES] / (double)MB,
         s1.heap_live / (double)MB, s1.heap_sys / (double)MB);
    if (fz_flags & WBGC_CHECK) {
        /* the misuse probes' reports, and nothing else */
        int n = errlog_count(&log), bad = -1;
        for (int i = 0; i < n && i < ERRLOG_KEEP && bad < 0; i++)
            if (!fz_is_probe_msg(log.msg[i])) bad = i;
        CHECKF(bad < 0, "unexpected on_error message: %s", bad >= 0 ? log.msg[bad] : "");
        CHECKF(n == fz_probes, "%d on_error messages, %d expected (the misuse probes)", n, fz_probes);
        fz_log = NULL;
        CLOSE_HEAP_ERRS_OK(h, p, &log);
    } else {
        fz_log = NULL;
        CLOSE_HEAP(h, p, &log);
    }
    fz_heap = NULL;
}

static void test_fuzz_concurrent(void) { fz_run(0, -1); }
static void test_fuzz_incremental(void)
{
    fz_large_bound();
    fz_run(0, 0);
}
static void test_fuzz_stw(void) { fz_run(WBGC_STW, -1); }
static void test_fuzz_check(void) { fz_run(WBGC_CHECK, -1); }
