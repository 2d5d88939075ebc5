/* lisp.c -- a small multi-threaded Scheme-flavoured Lisp on the wbgc heap.
 *
 * Every Lisp object (numbers, strings, symbols, pairs, vectors, closures,
 * environment frames, threads, mutexes) is a wbgc object. The interpreter's
 * own tables (symbol table, small-integer cache, thread hand-over slots) sit
 * in one static struct registered with wbgc_add_roots; everything else the
 * interpreter holds lives in C locals, seen by the conservative stack scan.
 * Every store of a Lisp value into a heap object or the root struct goes
 * through wbgc_write / wbgc_write2 / wbgc_write_n.
 *
 * The symbol table holds symbols through weak handles (wbgc_weak_new): a
 * symbol nothing else reaches is collected (intern_n says what keeps one).
 *
 *   build/lisp                  REPL (prompt when stdin is a terminal)
 *   build/lisp file.scm ...     run files; an uncaught error exits 1
 *   LISP_GC=concurrent|incremental|stw|check   collector mode (default concurrent)
 *   LISP_GC_PERCENT=N           wbgc_config.gc_percent (default 100)
 *
 *   gcc -O2 -Wall -Wextra -Werror -pthread examples/lisp.c -o build/lisp
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#define WBGC_IMPLEMENTATION
#include "../wbgc.h"

/* ---- objects ------------------------------------------------------------ */
enum { T_NIL = 1, T_BOOL, T_UNSPEC, T_UNBOUND, T_EOF, T_INT, T_FLOAT, T_STR, T_SYM,
       T_PAIR, T_VEC, T_CLOS, T_PRIM, T_FRAME, T_THREAD, T_MUTEX, T_PORT };

typedef struct Obj { long tag; } Obj;
typedef Obj *V;
typedef struct { long tag; int64_t v; } Int;
typedef struct { long tag; double v; } Flo;
typedef struct { long tag; long len; char s[]; } Str;
typedef struct { long tag; long sf; long pinned; V name; V value; } Sym;
typedef struct { long tag; V car, cdr; } Pair;
typedef struct { long tag; long len; V items[]; } Vec;
typedef struct { long tag; long nreq; long rest; V params, body, env, name; } Clos;
typedef V (*PrimFn)(V *argv, int n);
typedef struct { long tag; PrimFn fn; const char *name; int min, max; } Prim;
typedef struct { long tag; V parent, vars, vals; } Frame;
typedef struct { long tag; V thunk, result, errmsg; pthread_t tid; int state; int joined; } Thread;
typedef struct { long tag; pthread_mutex_t m; pthread_cond_t cv; } Mutex;
/* noscan, like Mutex: the FILE is stdio's (malloc) memory, not the heap's */
typedef struct { long tag; int input; FILE *f; pthread_mutex_t m; char path[]; } Port;

/* Constants live outside the heap. nil is pair-shaped so that CAR/CDR of it
   read nil rather than past the end. */
static Pair nil_o = { T_NIL, (V)&nil_o, (V)&nil_o };
static Obj true_o = { T_BOOL }, false_o = { T_BOOL }, unspec_o = { T_UNSPEC },
           unbound_o = { T_UNBOUND }, eof_o = { T_EOF };
#define NIL ((V)&nil_o)
#define TRUE_V (&true_o)
#define FALSE_V (&false_o)
#define UNSPEC (&unspec_o)
#define UNBOUND (&unbound_o)
#define EOF_V (&eof_o)
#define BOOL(c) ((c) ? TRUE_V : FALSE_V)
#define CAR(x) (((Pair *)(x))->car)
#define CDR(x) (((Pair *)(x))->cdr)
#define TAG(x) ((x)->tag)

enum { SF_NONE, SF_QUOTE, SF_IF, SF_DEFINE, SF_SET, SF_LAMBDA, SF_BEGIN, SF_LET, SF_LETSTAR,
       SF_LETREC, SF_COND, SF_AND, SF_OR, SF_WHEN, SF_UNLESS, SF_DO, SF_QUASI };

/* ---- roots: one registered static region -------------------------------- */
#define MAXSPAWN 256
#define INTCACHE_LO (-128)
#define INTCACHE_HI 1024
static struct {
    V symtab;                 /* Vec of buckets, each a list of weak entries */
    V pinned;                 /* symbols the table holds strongly (see intern_n) */
    V intcache;               /* Vec of Int */
    V handoff[MAXSPAWN];      /* a spawned thread's object until the child has it */
    V s_quote, s_else, s_arrow, s_quasi, s_unquote, s_splice, s_define, s_lambda;
} R;
static long symcount;                       /* not a pointer */
static pthread_mutex_t symtab_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t handoff_lock = PTHREAD_MUTEX_INITIALIZER;
static char handoff_used[MAXSPAWN];
static int live_threads;
static wbgc_heap *H;
static uint64_t ports_opened, ports_closed, ports_finalized;   /* atomic; see "ports" */

/* ---- per-thread context: lives in the thread's start frame -------------- */
typedef struct Ctx {
    wbgc_p *p;
    jmp_buf *jb;
    V cur;             /* the expression being applied, for error messages */
    char *limit;       /* stack limit */
    char msg[512];     /* the last error's message */
    char where[256];   /* ... and the expression it happened in */
} Ctx;
static __thread Ctx *T;
#define P (T->p)

/* ---- output buffer (plain chars, malloc is fine) ------------------------ */
typedef struct { char *p; size_t n, cap; } Buf;
static void bput(Buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap * 2 : 64;
        while (c < b->n + n + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) { fprintf(stderr, "lisp: out of memory\n"); exit(2); }
        b->p = q; b->cap = c;
    }
    memcpy(b->p + b->n, s, n); b->n += n; b->p[b->n] = 0;
}
static void bputs(Buf *b, const char *s) { bput(b, s, strlen(s)); }
static void bprintf(Buf *b, const char *fmt, ...) {
    char tmp[128]; va_list ap; va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap); va_end(ap);
    if (k > 0) bput(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}
static void print_obj(Buf *b, V x, int write);

/* ---- errors ------------------------------------------------------------- */
static _Noreturn void errf(V obj, const char *fmt, ...) {
    va_list ap; va_start(ap, fmt);
    vsnprintf(T->msg, sizeof T->msg, fmt, ap); va_end(ap);
    if (obj) {
        Buf b = {0}; print_obj(&b, obj, 1);
        size_t k = strlen(T->msg);
        snprintf(T->msg + k, sizeof T->msg - k, ": %.300s%s", b.p, b.n > 300 ? "..." : "");
        free(b.p);
    }
    T->where[0] = 0;
    if (T->cur) {
        Buf b = {0}; print_obj(&b, T->cur, 1);
        snprintf(T->where, sizeof T->where, "%.200s%s", b.p, b.n > 200 ? "..." : "");
        free(b.p);
    }
    longjmp(*T->jb, 1);
}
static void report_error(FILE *f) {
    fprintf(f, "error: %s\n", T->msg);
    if (T->where[0]) fprintf(f, "  in: %s\n", T->where);
    fflush(f);
}

/* ---- allocation --------------------------------------------------------- */
static void *gc_alloc(size_t n) {
    void *o = wbgc_alloc(P, n);
    if (!o) errf(NULL, "out of memory");
    return o;
}
static void *gc_alloc_noscan(size_t n) {
    void *o = wbgc_alloc_noscan(P, n);
    if (!o) errf(NULL, "out of memory");
    return o;
}
static V cons(V a, V d) {
    Pair *c = gc_alloc(sizeof *c);
    c->tag = T_PAIR;
    wbgc_write2(P, &c->car, a, &c->cdr, d);
    return (V)c;
}
static V mkint(int64_t v) {
    if (v >= INTCACHE_LO && v < INTCACHE_HI && R.intcache)
        return ((Vec *)R.intcache)->items[v - INTCACHE_LO];
    Int *i = gc_alloc_noscan(sizeof *i);
    i->tag = T_INT; i->v = v;
    return (V)i;
}
static V mkflo(double v) {
    Flo *f = gc_alloc_noscan(sizeof *f);
    f->tag = T_FLOAT; f->v = v;
    return (V)f;
}
static V mkstr(const char *s, long n) {
    Str *o = gc_alloc_noscan(sizeof *o + (size_t)n + 1);
    o->tag = T_STR; o->len = n;
    if (n) memcpy(o->s, s, (size_t)n);
    return (V)o;
}
static V mkvec(long n, V fill) {
    if (n < 0 || n > (1L << 32)) errf(mkint(n), "make-vector: bad length");
    Vec *v = gc_alloc(sizeof *v + (size_t)n * sizeof(V));
    v->tag = T_VEC; v->len = n;
    for (long i = 0; i < n; i++) wbgc_write(P, &v->items[i], fill);
    return (V)v;
}
static V mkframe(V parent, V vars, V vals) {
    Frame *f = gc_alloc(sizeof *f);
    f->tag = T_FRAME;
    void *slots[3] = { &f->parent, &f->vars, &f->vals };
    void *vs[3] = { parent, vars, vals };
    wbgc_write_n(P, slots, vs, 3);
    return (V)f;
}

/* ---- symbols ------------------------------------------------------------ */
/* Acquire a pthread mutex without holding up a collection: a thread that
   waits is in a blocking region. */
static void lock_blocking(pthread_mutex_t *m) {
    if (pthread_mutex_trylock(m) == 0) return;
    wbgc_blocking_begin(P);
    pthread_mutex_lock(m);
    wbgc_blocking_end(P);
}
static uint64_t hash_bytes(const char *s, long n) {
    uint64_t h = 1469598103934665603ull;
    for (long i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}
/* The symbol table is weak. Each bucket is a list of entry cells (Pairs
   the Lisp never sees) whose car is the symbol's wbgc_weak handle, so the
   table alone does not keep a symbol alive: one that no data, code or
   variable reaches is collected, its handle then yields NULL, and its cell
   is unlinked by the next lookup or insertion that walks its bucket (or
   when the table grows). That keeps the table small for a program that
   makes symbols and drops them: each insertion unlinks the dead entries
   of the bucket it walks, so they stay about one per bucket, and the
   count (dead ones included) that decides growth comes near twice the
   buckets only when the live symbols do.
   The rule for what else holds a symbol: a global variable lives in its
   symbol (Sym.value), and a special form's id too (Sym.sf), so a symbol
   that gets either is pinned, held strongly by R.pinned, for good. A
   collected symbol had neither, so a fresh one interned under its name
   is indistinguishable from it: eq? holds between any two symbols of one
   name that are alive at once. Entries are looked at through
   wbgc_weak_get, which during a mark keeps what it returns alive for that
   cycle: a bucket walked then keeps its unreachable symbols one cycle more.
   symcount counts entries (dead ones not yet unlinked included), symdropped
   the dead entries unlinked so far; both under symtab_lock. */
static long symdropped;

/* unlink_dead: *link is an entry cell whose handle yields NULL: drop it.
   symtab_lock held. */
static void unlink_dead(V *link) {
    wbgc_write(P, link, CDR(*link));
    symcount--;
    symdropped++;
}
/* symtab_grow moves every live entry into a table of nl buckets, and drops
   the dead ones. symtab_lock held. */
static void symtab_grow(long nl) {
    Vec *t = (Vec *)R.symtab;
    Vec *nt = (Vec *)mkvec(nl, NIL);
    for (long i = 0; i < t->len; i++)
        for (V b = t->items[i]; b != NIL; b = CDR(b)) {
            Sym *y = wbgc_weak_get(P, (wbgc_weak *)CAR(b));
            if (!y) { symcount--; symdropped++; continue; }
            Str *nm = (Str *)y->name;
            V *nb = &nt->items[hash_bytes(nm->s, nm->len) % (uint64_t)nl];
            wbgc_write(P, nb, cons(CAR(b), *nb));
        }
    wbgc_write(P, &R.symtab, (V)nt);
}
static V intern_n(const char *s, long n) {
    lock_blocking(&symtab_lock);
    Vec *t = (Vec *)R.symtab;
    uint64_t h = hash_bytes(s, n);
    V *link = &t->items[h % (uint64_t)t->len];
    while (*link != NIL) {
        /* a strong pointer on this stack from here on (or NULL: dead) */
        Sym *y = wbgc_weak_get(P, (wbgc_weak *)CAR(*link));
        if (!y) { unlink_dead(link); continue; }
        Str *nm = (Str *)y->name;
        if (nm->len == n && memcmp(nm->s, s, (size_t)n) == 0) {
            pthread_mutex_unlock(&symtab_lock);
            return (V)y;
        }
        link = &CDR(*link);
    }
    /* Allocation below is a safepoint while symtab_lock is held: fine,
       because every waiter for it is in a blocking region. Only this
       stack holds y until it is returned (its handle in the table does not). */
    V name = mkstr(s, n);
    Sym *y = gc_alloc(sizeof *y);
    y->tag = T_SYM;
    wbgc_write2(P, &y->name, name, &y->value, UNBOUND);
    wbgc_weak *w = wbgc_weak_new(P, y);
    if (!w) { pthread_mutex_unlock(&symtab_lock); errf(NULL, "out of memory"); }
    V *bucket = &t->items[h % (uint64_t)t->len];
    wbgc_write(P, bucket, cons((V)w, *bucket));
    if (++symcount > 2 * t->len) symtab_grow(t->len * 4);
    pthread_mutex_unlock(&symtab_lock);
    return (V)y;
}
/* pin_symbol: y gets a global value or a special-form id; from now on the
   table holds it strongly (the rule above). */
static void pin_symbol(V sym) {
    Sym *y = (Sym *)sym;
    if (__atomic_load_n(&y->pinned, __ATOMIC_ACQUIRE)) return;
    lock_blocking(&symtab_lock);
    if (!y->pinned) {
        wbgc_write(P, &R.pinned, cons(sym, R.pinned));
        __atomic_store_n(&y->pinned, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&symtab_lock);
}
/* symtab_stats: the table's counters, and how many entries yield a
   symbol now (a walk that unlinks nothing). */
typedef struct { long entries, live, dropped, pinned, buckets; } SymStats;
static SymStats symtab_stats(void) {
    SymStats st = { 0, 0, 0, 0, 0 };
    lock_blocking(&symtab_lock);
    Vec *t = (Vec *)R.symtab;
    for (long i = 0; i < t->len; i++)
        for (V b = t->items[i]; b != NIL; b = CDR(b))
            if (wbgc_weak_get(P, (wbgc_weak *)CAR(b))) st.live++;
    for (V b = R.pinned; b != NIL; b = CDR(b)) st.pinned++;
    st.entries = symcount;
    st.dropped = symdropped;
    st.buckets = t->len;
    pthread_mutex_unlock(&symtab_lock);
    return st;
}
static V intern(const char *s) { return intern_n(s, (long)strlen(s)); }

/* ---- printer ------------------------------------------------------------ */
static void print_double(Buf *b, double d) {
    if (isnan(d)) { bputs(b, "+nan.0"); return; }
    if (isinf(d)) { bputs(b, d > 0 ? "+inf.0" : "-inf.0"); return; }
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%.15g", d);
    if (strtod(tmp, NULL) != d) snprintf(tmp, sizeof tmp, "%.16g", d);
    if (strtod(tmp, NULL) != d) snprintf(tmp, sizeof tmp, "%.17g", d);
    if (!strpbrk(tmp, ".eninf")) strcat(tmp, ".0");
    bputs(b, tmp);
}
static void print_obj(Buf *b, V x, int write) {
    char here;
    if (T && &here < T->limit - (512u << 10)) { bputs(b, "..."); return; }
    switch (TAG(x)) {
    case T_NIL: bputs(b, "()"); return;
    case T_BOOL: bputs(b, x == TRUE_V ? "#t" : "#f"); return;
    case T_UNSPEC: bputs(b, "#<unspecified>"); return;
    case T_UNBOUND: bputs(b, "#<unbound>"); return;
    case T_EOF: bputs(b, "#<eof>"); return;
    case T_INT: bprintf(b, "%lld", (long long)((Int *)x)->v); return;
    case T_FLOAT: print_double(b, ((Flo *)x)->v); return;
    case T_STR: {
        Str *s = (Str *)x;
        if (!write) { bput(b, s->s, (size_t)s->len); return; }
        bput(b, "\"", 1);
        for (long i = 0; i < s->len; i++) {
            char c = s->s[i];
            if (c == '"' || c == '\\') { bput(b, "\\", 1); bput(b, &c, 1); }
            else if (c == '\n') bputs(b, "\\n");
            else if (c == '\t') bputs(b, "\\t");
            else bput(b, &c, 1);
        }
        bput(b, "\"", 1);
        return;
    }
    case T_SYM: { Str *s = (Str *)((Sym *)x)->name; bput(b, s->s, (size_t)s->len); return; }
    case T_PAIR: {
        if (CAR(x) == R.s_quote && TAG(CDR(x)) == T_PAIR && CDR(CDR(x)) == NIL) {
            bput(b, "'", 1); print_obj(b, CAR(CDR(x)), write); return;
        }
        bput(b, "(", 1);
        long count = 0;
        for (;;) {
            print_obj(b, CAR(x), write);
            x = CDR(x);
            if (TAG(x) != T_PAIR) break;
            bput(b, " ", 1);
            if (++count > 10000000) { bputs(b, "..."); break; }
        }
        if (x != NIL) { bputs(b, " . "); print_obj(b, x, write); }
        bput(b, ")", 1);
        return;
    }
    case T_VEC: {
        Vec *v = (Vec *)x;
        bputs(b, "#(");
        for (long i = 0; i < v->len; i++) { if (i) bput(b, " ", 1); print_obj(b, v->items[i], write); }
        bput(b, ")", 1);
        return;
    }
    case T_CLOS: {
        Clos *c = (Clos *)x;
        if (c->name) { bputs(b, "#<procedure "); print_obj(b, c->name, 0); bputs(b, ">"); }
        else bputs(b, "#<procedure>");
        return;
    }
    case T_PRIM: bprintf(b, "#<primitive %s>", ((Prim *)x)->name); return;
    case T_FRAME: bputs(b, "#<environment>"); return;
    case T_THREAD: bputs(b, "#<thread>"); return;
    case T_MUTEX: bputs(b, "#<mutex>"); return;
    case T_PORT: {
        Port *pt = (Port *)x;
        bprintf(b, "#<%s-port ", pt->input ? "input" : "output");
        bputs(b, pt->path);
        bputs(b, __atomic_load_n(&pt->f, __ATOMIC_ACQUIRE) ? ">" : " (closed)>");
        return;
    }
    }
    bputs(b, "#<?>");
}
static void print_to(FILE *f, V x, int write) {
    Buf b = {0}; print_obj(&b, x, write);
    if (b.n) fwrite(b.p, 1, b.n, f);
    free(b.p);
}

/* ---- reader ------------------------------------------------------------- */
typedef struct { const char *s; size_t i, n; int line; } Rd;
static void skip_ws(Rd *r) {
    while (r->i < r->n) {
        char c = r->s[r->i];
        if (c == '\n') { r->line++; r->i++; }
        else if (c == ' ' || c == '\t' || c == '\r' || c == '\f') r->i++;
        else if (c == ';') { while (r->i < r->n && r->s[r->i] != '\n') r->i++; }
        else break;
    }
}
static int delim(char c) { return strchr(" \t\r\n\f()\";'`,", c) != NULL || c == 0; }
static V read_form(Rd *r);
static long list_len(V x);
static V p_list2vec(V *a, int n);
static V read_list(Rd *r, int line0) {
    V head = NIL, tail = NIL;
    for (;;) {
        skip_ws(r);
        if (r->i >= r->n) { T->cur = NULL; errf(NULL, "reader error: unterminated list (opened at line %d)", line0); }
        char c = r->s[r->i];
        if (c == ')') { r->i++; return head; }
        if (c == '.' && r->i + 1 < r->n && delim(r->s[r->i + 1]) && head != NIL) {
            r->i++;
            V last = read_form(r);
            if (last == EOF_V) { T->cur = NULL; errf(NULL, "reader error: unterminated list (opened at line %d)", line0); }
            wbgc_write(P, &CDR(tail), last);
            skip_ws(r);
            if (r->i >= r->n || r->s[r->i] != ')') { T->cur = NULL; errf(NULL, "reader error: bad dotted list at line %d", r->line); }
            r->i++;
            return head;
        }
        V x = read_form(r);
        if (x == EOF_V) { T->cur = NULL; errf(NULL, "reader error: unterminated list (opened at line %d)", line0); }
        V cell = cons(x, NIL);
        if (head == NIL) head = cell; else wbgc_write(P, &CDR(tail), cell);
        tail = cell;
    }
}
static V read_form(Rd *r) {
    char here;
    if (&here < T->limit) { T->cur = NULL; errf(NULL, "reader error: nesting too deep"); }
    skip_ws(r);
    if (r->i >= r->n) return EOF_V;
    char c = r->s[r->i];
    int line = r->line;
    if (c == '(' || c == '[') { r->i++; return read_list(r, line); }
    if (c == '#' && r->i + 1 < r->n && r->s[r->i + 1] == '(') {   /* #(vector literal) */
        r->i += 2;
        V lst = read_list(r, line);
        if (list_len(lst) < 0) { T->cur = NULL; errf(NULL, "reader error: bad vector literal at line %d", line); }
        return p_list2vec(&lst, 1);
    }
    if (c == ')' || c == ']') { r->i++; T->cur = NULL; errf(NULL, "reader error: unexpected ')' at line %d", line); }
    if (c == '\'' || c == '`' || c == ',') {
        V q = R.s_quote;
        r->i++;
        if (c == '`') q = R.s_quasi;
        if (c == ',') {
            q = R.s_unquote;
            if (r->i < r->n && r->s[r->i] == '@') { r->i++; q = R.s_splice; }
        }
        V x = read_form(r);
        if (x == EOF_V) { T->cur = NULL; errf(NULL, "reader error: nothing after quote at line %d", line); }
        return cons(q, cons(x, NIL));
    }
    if (c == '"') {
        Buf b = {0};
        r->i++;
        for (;;) {
            if (r->i >= r->n) { free(b.p); T->cur = NULL; errf(NULL, "reader error: unterminated string (opened at line %d)", line); }
            char d = r->s[r->i++];
            if (d == '"') break;
            if (d == '\n') r->line++;
            if (d == '\\' && r->i < r->n) {
                d = r->s[r->i++];
                if (d == 'n') d = '\n'; else if (d == 't') d = '\t'; else if (d == '0') d = 0;
            }
            bput(&b, &d, 1);
        }
        V s = mkstr(b.p ? b.p : "", (long)b.n);
        free(b.p);
        return s;
    }
    size_t st = r->i;
    while (r->i < r->n && !delim(r->s[r->i])) r->i++;
    size_t len = r->i - st;
    char tok[256];
    if (len >= sizeof tok) { T->cur = NULL; errf(NULL, "reader error: token too long at line %d", line); }
    memcpy(tok, r->s + st, len); tok[len] = 0;
    if (len == 0) { r->i++; T->cur = NULL; errf(NULL, "reader error: unexpected character '%c' at line %d", c, line); }
    if (tok[0] == '#') {
        if (!strcmp(tok, "#t") || !strcmp(tok, "#true")) return TRUE_V;
        if (!strcmp(tok, "#f") || !strcmp(tok, "#false")) return FALSE_V;
        T->cur = NULL; errf(NULL, "reader error: unknown syntax '%s' at line %d", tok, line);
    }
    char *q = tok;
    if (*q == '+' || *q == '-') q++;
    if (*q == '.') q++;
    if (*q >= '0' && *q <= '9') {
        char *end; errno = 0;
        long long v = strtoll(tok, &end, 10);
        if (*end == 0 && errno == 0) return mkint(v);
        double d = strtod(tok, &end);
        if (*end == 0) return mkflo(d);
        T->cur = NULL; errf(NULL, "reader error: bad number '%s' at line %d", tok, line);
    }
    return intern_n(tok, (long)len);
}

/* ---- environments ------------------------------------------------------- */
static V *lookup_slot(V sym, V env) {
    for (V e = env; e != NIL; e = ((Frame *)e)->parent) {
        V vs = ((Frame *)e)->vars, vl = ((Frame *)e)->vals;
        for (; vs != NIL; vs = CDR(vs), vl = CDR(vl))
            if (CAR(vs) == sym) return &CAR(vl);
    }
    return &((Sym *)sym)->value;
}
static V lookup(V sym, V env) {
    V v = *lookup_slot(sym, env);
    if (v == UNBOUND) errf(sym, "unbound variable");
    return v;
}
static void define_var(V sym, V val, V env) {
    if (env == NIL) { pin_symbol(sym); wbgc_write(P, &((Sym *)sym)->value, val); return; }
    Frame *f = (Frame *)env;
    for (V vs = f->vars, vl = f->vals; vs != NIL; vs = CDR(vs), vl = CDR(vl))
        if (CAR(vs) == sym) { wbgc_write(P, &CAR(vl), val); return; }
    V nv = cons(sym, f->vars);
    V nl = cons(val, f->vals);
    wbgc_write2(P, &f->vars, nv, &f->vals, nl);
}

/* ---- eval ----------------------------------------------------------------- */
static V eval(V x, V env);
static long list_len(V x) {   /* -1 if improper */
    long n = 0;
    for (; TAG(x) == T_PAIR; x = CDR(x)) n++;
    return x == NIL ? n : -1;
}
static V make_closure(V params, V body, V env, V name, V form) {
    if (body == NIL) errf(form, "lambda: empty body");
    long nreq = 0;
    V q = params;
    for (; TAG(q) == T_PAIR; q = CDR(q)) {
        if (TAG(CAR(q)) != T_SYM) errf(CAR(q), "lambda: parameter is not a symbol");
        nreq++;
    }
    long rest = 0;
    V plist = params;
    if (q != NIL) {
        if (TAG(q) != T_SYM) errf(q, "lambda: bad parameter list");
        rest = 1;
        V rev = cons(q, NIL);       /* copy into a proper list: a b . r -> (a b r) */
        V tmp = NIL;
        for (V a = params; TAG(a) == T_PAIR; a = CDR(a)) tmp = cons(CAR(a), tmp);
        for (; tmp != NIL; tmp = CDR(tmp)) rev = cons(CAR(tmp), rev);
        plist = rev;
    }
    Clos *c = gc_alloc(sizeof *c);
    c->tag = T_CLOS; c->nreq = nreq; c->rest = rest;
    void *slots[4] = { &c->params, &c->body, &c->env, &c->name };
    void *vals[4] = { plist, body, env, name };
    wbgc_write_n(P, slots, vals, 4);
    return (V)c;
}
static V bind(Clos *c, V *argv, int n) {
    if (n < c->nreq || (!c->rest && n > c->nreq)) {
        if (c->name) errf(c->name, "wrong number of arguments (expected %s%ld, got %d) to", c->rest ? "at least " : "", c->nreq, n);
        errf(NULL, "wrong number of arguments to anonymous procedure (expected %s%ld, got %d)", c->rest ? "at least " : "", c->nreq, n);
    }
    V vals = NIL;
    if (c->rest) {
        V rest = NIL;
        for (int i = n - 1; i >= c->nreq; i--) rest = cons(argv[i], rest);
        vals = cons(rest, NIL);
    }
    for (long i = c->nreq - 1; i >= 0; i--) vals = cons(argv[i], vals);
    return mkframe(c->env, c->params, vals);
}
static V apply_proc(V f, V *argv, int n) {
    if (TAG(f) == T_PRIM) {
        Prim *p = (Prim *)f;
        if (n < p->min || (p->max >= 0 && n > p->max))
            errf(NULL, "%s: wrong number of arguments (got %d)", p->name, n);
        return p->fn(argv, n);
    }
    if (TAG(f) == T_CLOS) {
        V env = bind((Clos *)f, argv, n);
        V body = ((Clos *)f)->body;
        for (; CDR(body) != NIL; body = CDR(body)) eval(CAR(body), env);
        return eval(CAR(body), env);
    }
    errf(f, "not a procedure");
}
static V quasi(V x, V env, int depth) {
    if (TAG(x) != T_PAIR) return x;
    if (CAR(x) == R.s_unquote) {
        if (list_len(x) != 2) errf(x, "unquote: bad syntax");
        return eval(CAR(CDR(x)), env);
    }
    V head = quasi(CAR(x), env, depth + 1);
    if (TAG(CAR(x)) == T_PAIR && CAR(CAR(x)) == R.s_splice) {
        V lst = eval(CAR(CDR(CAR(x))), env);
        V rest = quasi(CDR(x), env, depth + 1);
        if (list_len(lst) < 0) errf(lst, "unquote-splicing: not a list");
        V tmp = NIL;
        for (; lst != NIL; lst = CDR(lst)) tmp = cons(CAR(lst), tmp);
        for (; tmp != NIL; tmp = CDR(tmp)) rest = cons(CAR(tmp), rest);
        return rest;
    }
    return cons(head, quasi(CDR(x), env, depth + 1));
}

static V eval(V x, V env) {
    char here;
    if (&here < T->limit) errf(NULL, "stack overflow (recursion too deep)");
    for (;;) {
        V body;
        if (TAG(x) == T_SYM) return lookup(x, env);
        if (TAG(x) != T_PAIR) {
            if (x == NIL) errf(NULL, "cannot evaluate the empty combination ()");
            return x;
        }
        T->cur = x;
        V op = CAR(x), args = CDR(x);
        long sf = TAG(op) == T_SYM ? ((Sym *)op)->sf : SF_NONE;
        if (sf != SF_NONE) {
            long na = list_len(args);
            if (na < 0) errf(x, "bad syntax (improper list)");
            switch (sf) {
            case SF_QUOTE:
                if (na != 1) errf(x, "quote: bad syntax");
                return CAR(args);
            case SF_QUASI:
                if (na != 1) errf(x, "quasiquote: bad syntax");
                return quasi(CAR(args), env, 0);
            case SF_IF: {
                if (na != 2 && na != 3) errf(x, "if: bad syntax");
                V c = eval(CAR(args), env);
                if (c != FALSE_V) x = CAR(CDR(args));
                else if (na == 3) x = CAR(CDR(CDR(args)));
                else return UNSPEC;
                continue;
            }
            case SF_DEFINE: {
                if (na < 1) errf(x, "define: bad syntax");
                V target = CAR(args);
                if (TAG(target) == T_PAIR) {   /* (define (f . params) body...) */
                    V name = CAR(target);
                    if (TAG(name) != T_SYM) errf(x, "define: bad syntax");
                    V c = make_closure(CDR(target), CDR(args), env, name, x);
                    define_var(name, c, env);
                    return UNSPEC;
                }
                if (TAG(target) != T_SYM || na > 2) errf(x, "define: bad syntax");
                V v = na == 2 ? eval(CAR(CDR(args)), env) : UNSPEC;
                if (TAG(v) == T_CLOS && ((Clos *)v)->name == NULL) wbgc_write(P, &((Clos *)v)->name, target);
                define_var(target, v, env);
                return UNSPEC;
            }
            case SF_SET: {
                if (na != 2 || TAG(CAR(args)) != T_SYM) errf(x, "set!: bad syntax");
                V v = eval(CAR(CDR(args)), env);
                V *slot = lookup_slot(CAR(args), env);
                if (*slot == UNBOUND) errf(CAR(args), "set!: unbound variable");
                wbgc_write(P, slot, v);
                return UNSPEC;
            }
            case SF_LAMBDA:
                if (na < 2) errf(x, "lambda: bad syntax");
                return make_closure(CAR(args), CDR(args), env, NULL, x);
            case SF_BEGIN:
                if (na == 0) return UNSPEC;
                body = args;
                goto run_body;
            case SF_LET: case SF_LETSTAR: case SF_LETREC: {
                if (na < 2) errf(x, "let: bad syntax");
                V name = NULL, binds = CAR(args);
                body = CDR(args);
                if (sf == SF_LET && TAG(binds) == T_SYM) {
                    if (na < 3) errf(x, "let: bad syntax");
                    name = binds; binds = CAR(body); body = CDR(body);
                }
                long nb = list_len(binds);
                if (nb < 0) errf(x, "let: bad bindings");
                for (V b = binds; b != NIL; b = CDR(b)) {
                    V bd = CAR(b);
                    if (TAG(bd) != T_PAIR || TAG(CAR(bd)) != T_SYM || list_len(bd) != 2)
                        errf(bd, "let: bad binding");
                }
                if (sf != SF_LET) {  /* let*, letrec: one frame, bound in order */
                    V fr = mkframe(env, NIL, NIL);
                    for (V b = binds; b != NIL; b = CDR(b)) {
                        V v = eval(CAR(CDR(CAR(b))), sf == SF_LETREC ? fr : fr);
                        if (TAG(v) == T_CLOS && ((Clos *)v)->name == NULL) wbgc_write(P, &((Clos *)v)->name, CAR(CAR(b)));
                        define_var(CAR(CAR(b)), v, fr);
                    }
                    env = fr;
                    goto run_body;
                }
                V vars = NIL, vals = NIL, tv = NIL, tl = NIL;
                for (V b = binds; b != NIL; b = CDR(b)) {
                    V v = eval(CAR(CDR(CAR(b))), env);
                    V cv = cons(CAR(CAR(b)), NIL), cl = cons(v, NIL);
                    if (vars == NIL) { vars = cv; vals = cl; }
                    else wbgc_write2(P, &CDR(tv), cv, &CDR(tl), cl);
                    tv = cv; tl = cl;
                }
                if (name) {
                    V fr = mkframe(env, cons(name, NIL), cons(UNSPEC, NIL));
                    V c = make_closure(vars, body, fr, name, x);
                    wbgc_write(P, &CAR(((Frame *)fr)->vals), c);
                    env = mkframe(fr, vars, vals);
                } else {
                    env = mkframe(env, vars, vals);
                }
                goto run_body;
            }
            case SF_COND:
                for (V cl = args; cl != NIL; cl = CDR(cl)) {
                    V clause = CAR(cl);
                    if (TAG(clause) != T_PAIR || list_len(clause) < 1) errf(clause, "cond: bad clause");
                    V v = CAR(clause) == R.s_else ? TRUE_V : eval(CAR(clause), env);
                    if (v == FALSE_V) continue;
                    body = CDR(clause);
                    if (body == NIL) return v;
                    if (CAR(body) == R.s_arrow) {
                        if (list_len(body) != 2) errf(clause, "cond: bad => clause");
                        V f = eval(CAR(CDR(body)), env);
                        T->cur = x;
                        return apply_proc(f, &v, 1);
                    }
                    goto run_body;
                }
                return UNSPEC;
            case SF_AND:
                if (na == 0) return TRUE_V;
                for (; CDR(args) != NIL; args = CDR(args))
                    if (eval(CAR(args), env) == FALSE_V) return FALSE_V;
                x = CAR(args);
                continue;
            case SF_OR:
                if (na == 0) return FALSE_V;
                for (; CDR(args) != NIL; args = CDR(args)) {
                    V v = eval(CAR(args), env);
                    if (v != FALSE_V) return v;
                }
                x = CAR(args);
                continue;
            case SF_WHEN: case SF_UNLESS: {
                if (na < 2) errf(x, "when/unless: bad syntax");
                V c = eval(CAR(args), env);
                if ((c != FALSE_V) != (sf == SF_WHEN)) return UNSPEC;
                body = CDR(args);
                goto run_body;
            }
            case SF_DO: {  /* (do ((var init step)...) (test expr...) body...) */
                if (na < 2 || list_len(CAR(args)) < 0 || list_len(CAR(CDR(args))) < 1) errf(x, "do: bad syntax");
                V fr = mkframe(env, NIL, NIL);
                for (V b = CAR(args); b != NIL; b = CDR(b)) {
                    V bd = CAR(b);
                    long bl = list_len(bd);
                    if (bl < 2 || bl > 3 || TAG(CAR(bd)) != T_SYM) errf(bd, "do: bad binding");
                    define_var(CAR(bd), eval(CAR(CDR(bd)), env), fr);
                }
                for (;;) {
                    V test = CAR(CDR(args));
                    if (eval(CAR(test), fr) != FALSE_V) {
                        if (CDR(test) == NIL) return UNSPEC;
                        env = fr; body = CDR(test);
                        goto run_body;
                    }
                    for (V b = CDR(CDR(args)); b != NIL; b = CDR(b)) eval(CAR(b), fr);
                    V nf = mkframe(env, NIL, NIL);
                    for (V b = CAR(args); b != NIL; b = CDR(b)) {
                        V bd = CAR(b);
                        V v = CDR(CDR(bd)) != NIL ? eval(CAR(CDR(CDR(bd))), fr) : lookup(CAR(bd), fr);
                        define_var(CAR(bd), v, nf);
                    }
                    fr = nf;
                }
            }
            }
        }
        {   /* application */
            long n = list_len(args);
            if (n < 0) errf(x, "improper argument list");
            if (n > 100000) errf(NULL, "too many arguments");
            V f = eval(op, env);
            V argv[n > 0 ? n : 1];
            long i = 0;
            for (V a = args; i < n; a = CDR(a)) argv[i++] = eval(CAR(a), env);
            T->cur = x;
            if (TAG(f) == T_PRIM) {
                Prim *p = (Prim *)f;
                if (n < p->min || (p->max >= 0 && n > p->max))
                    errf(NULL, "%s: wrong number of arguments (got %ld)", p->name, n);
                return p->fn(argv, (int)n);
            }
            if (TAG(f) != T_CLOS) errf(f, "not a procedure");
            env = bind((Clos *)f, argv, (int)n);
            body = ((Clos *)f)->body;
        }
    run_body:
        for (; CDR(body) != NIL; body = CDR(body)) eval(CAR(body), env);
        x = CAR(body);
    }
}

/* ---- primitives ----------------------------------------------------------- */
static const char *type_name(V x) {
    switch (TAG(x)) {
    case T_NIL: return "empty list"; case T_BOOL: return "boolean"; case T_INT: return "integer";
    case T_FLOAT: return "float"; case T_STR: return "string"; case T_SYM: return "symbol";
    case T_PAIR: return "pair"; case T_VEC: return "vector"; case T_CLOS: case T_PRIM: return "procedure";
    case T_THREAD: return "thread"; case T_MUTEX: return "mutex"; case T_PORT: return "port";
    }
    return "object";
}
static _Noreturn void type_err(const char *who, const char *want, V got) {
    errf(got, "%s: expected %s, got %s", who, want, type_name(got));
}
static int64_t want_int(const char *who, V x) { if (TAG(x) != T_INT) type_err(who, "integer", x); return ((Int *)x)->v; }
static int isnum(V x) { return TAG(x) == T_INT || TAG(x) == T_FLOAT; }
static double num_d(const char *who, V x) {
    if (TAG(x) == T_INT) return (double)((Int *)x)->v;
    if (TAG(x) == T_FLOAT) return ((Flo *)x)->v;
    type_err(who, "number", x);
}
static Str *want_str(const char *who, V x) { if (TAG(x) != T_STR) type_err(who, "string", x); return (Str *)x; }
static V want_pair(const char *who, V x) { if (TAG(x) != T_PAIR) type_err(who, "pair", x); return x; }
static Vec *want_vec(const char *who, V x) { if (TAG(x) != T_VEC) type_err(who, "vector", x); return (Vec *)x; }

static V arith(const char *who, int op, V *a, int n) {
    if (n == 0) return mkint(op == '*' ? 1 : 0);
    int flo = 0;
    for (int i = 0; i < n; i++) { if (!isnum(a[i])) type_err(who, "number", a[i]); if (TAG(a[i]) == T_FLOAT) flo = 1; }
    if (n == 1 && op == '-') return flo ? mkflo(-((Flo *)a[0])->v) : mkint(-((Int *)a[0])->v);
    if (flo) {
        double r = num_d(who, a[0]);
        for (int i = 1; i < n; i++) {
            double d = num_d(who, a[i]);
            r = op == '+' ? r + d : op == '-' ? r - d : r * d;
        }
        return mkflo(r);
    }
    int64_t r = ((Int *)a[0])->v;
    for (int i = 1; i < n; i++) {
        int64_t d = ((Int *)a[i])->v, o;
        int ov = op == '+' ? __builtin_add_overflow(r, d, &o) : op == '-' ? __builtin_sub_overflow(r, d, &o)
                                                                            : __builtin_mul_overflow(r, d, &o);
        if (ov) errf(NULL, "%s: integer overflow", who);
        r = o;
    }
    return mkint(r);
}
static V p_add(V *a, int n) { return arith("+", '+', a, n); }
static V p_sub(V *a, int n) { return arith("-", '-', a, n); }
static V p_mul(V *a, int n) { return arith("*", '*', a, n); }
static V p_div(V *a, int n) {
    if (n == 1) { V b[2] = { mkint(1), a[0] }; return p_div(b, 2); }
    V r = a[0];
    for (int i = 1; i < n; i++) {
        if (TAG(r) == T_INT && TAG(a[i]) == T_INT) {
            int64_t x = ((Int *)r)->v, y = ((Int *)a[i])->v;
            if (y == 0) errf(NULL, "/: division by zero");
            if (x % y == 0 && !(x == INT64_MIN && y == -1)) { r = mkint(x / y); continue; }
        }
        double y = num_d("/", a[i]);
        r = mkflo(num_d("/", r) / y);
    }
    return r;
}
static V intdiv(const char *who, V *a, int kind) {
    int64_t x = want_int(who, a[0]), y = want_int(who, a[1]);
    if (y == 0) errf(NULL, "%s: division by zero", who);
    if (y == -1) return mkint(kind == 0 ? (x == INT64_MIN ? (errf(NULL, "%s: integer overflow", who), 0) : -x) : 0);
    int64_t q = x / y, r = x % y;
    if (kind == 0) return mkint(q);
    if (kind == 1) return mkint(r);
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return mkint(r);
}
static V p_quotient(V *a, int n) { (void)n; return intdiv("quotient", a, 0); }
static V p_remainder(V *a, int n) { (void)n; return intdiv("remainder", a, 1); }
static V p_modulo(V *a, int n) { (void)n; return intdiv("modulo", a, 2); }
static int numcmp(const char *who, V x, V y) {
    if (TAG(x) == T_INT && TAG(y) == T_INT) {
        int64_t a = ((Int *)x)->v, b = ((Int *)y)->v;
        return a < b ? -1 : a > b;
    }
    double a = num_d(who, x), b = num_d(who, y);
    return a < b ? -1 : a > b;
}
#define CMP(fname, sym, test)                                                   \
    static V fname(V *a, int n) {                                               \
        int ok = 1;                                                             \
        for (int i = 0; i + 1 < n; i++) { int c = numcmp(sym, a[i], a[i + 1]); if (!(test)) ok = 0; } \
        if (n == 1) num_d(sym, a[0]);                                           \
        return BOOL(ok);                                                        \
    }
CMP(p_numeq, "=", c == 0)
CMP(p_lt, "<", c < 0)
CMP(p_gt, ">", c > 0)
CMP(p_le, "<=", c <= 0)
CMP(p_ge, ">=", c >= 0)
/* build.sh links no libm: square root and rounding by hand. */
static double my_fabs(double d) { return d < 0 ? -d : d; }
static double my_trunc(double d) { return my_fabs(d) < 4503599627370496.0 ? (double)(int64_t)d : d; }
static double my_floor(double d) { double t = my_trunc(d); return t > d ? t - 1 : t; }
static double my_ceil(double d) { double t = my_trunc(d); return t < d ? t + 1 : t; }
static double my_sqrt(double d) {
#if defined(__x86_64__)
    double r;
    __asm__("sqrtsd %1, %0" : "=x"(r) : "x"(d));
    return r;
#else
    if (!(d > 0) || isinf(d)) return d == 0 || isinf(d) ? d : NAN;
    double r = d > 1 ? d / 2 : 1;
    for (int i = 0; i < 200; i++) { double nr = (r + d / r) / 2; if (nr == r) break; r = nr; }
    return r;
#endif
}
static double my_round(double d) {   /* half to even */
    double f = my_floor(d), diff = d - f;
    if (diff > 0.5) return f + 1;
    if (diff < 0.5) return f;
    return my_floor(f / 2) * 2 == f ? f : f + 1;
}
static V p_abs(V *a, int n) { (void)n; if (TAG(a[0]) == T_INT) { int64_t v = ((Int *)a[0])->v; if (v == INT64_MIN) errf(NULL, "abs: integer overflow"); return mkint(v < 0 ? -v : v); } return mkflo(my_fabs(num_d("abs", a[0]))); }
static V p_sqrt(V *a, int n) {
    (void)n;
    double d = num_d("sqrt", a[0]);
    if (TAG(a[0]) == T_INT && d >= 0) { int64_t r = (int64_t)my_sqrt(d); if (r * r == ((Int *)a[0])->v) return mkint(r); }
    return mkflo(my_sqrt(d));
}
static V p_expt(V *a, int n) {
    (void)n;
    if (TAG(a[0]) == T_INT && TAG(a[1]) == T_INT && ((Int *)a[1])->v >= 0) {
        int64_t b = ((Int *)a[0])->v, e = ((Int *)a[1])->v, r = 1;
        while (e-- > 0) if (__builtin_mul_overflow(r, b, &r)) errf(NULL, "expt: integer overflow");
        return mkint(r);
    }
    double b = num_d("expt", a[0]), e = num_d("expt", a[1]);
    if (e != my_floor(e) || my_fabs(e) > 1e9) errf(a[1], "expt: only integer exponents are supported");
    double r = 1, x = b;
    for (int64_t k = (int64_t)my_fabs(e); k; k >>= 1) { if (k & 1) r *= x; x *= x; }
    return mkflo(e < 0 ? 1 / r : r);
}
static V rounding(const char *who, V x, double (*fn)(double)) {
    if (TAG(x) == T_INT) return x;
    return mkflo(fn(num_d(who, x)));
}
static V p_floor(V *a, int n) { (void)n; return rounding("floor", a[0], my_floor); }
static V p_ceiling(V *a, int n) { (void)n; return rounding("ceiling", a[0], my_ceil); }
static V p_round(V *a, int n) { (void)n; return rounding("round", a[0], my_round); }
static V p_truncate(V *a, int n) { (void)n; return rounding("truncate", a[0], my_trunc); }
static V p_exact(V *a, int n) {
    (void)n;
    if (TAG(a[0]) == T_INT) return a[0];
    double d = num_d("exact", a[0]);
    if (!(d >= -9.2e18 && d <= 9.2e18)) errf(a[0], "exact: out of range");
    return mkint((int64_t)d);
}
static V p_inexact(V *a, int n) { (void)n; return mkflo(num_d("inexact", a[0])); }
static V p_numberp(V *a, int n) { (void)n; return BOOL(isnum(a[0])); }
static V p_integerp(V *a, int n) { (void)n; return BOOL(TAG(a[0]) == T_INT); }
static V p_floatp(V *a, int n) { (void)n; return BOOL(TAG(a[0]) == T_FLOAT); }

static V p_cons(V *a, int n) { (void)n; return cons(a[0], a[1]); }
static V p_car(V *a, int n) { (void)n; return CAR(want_pair("car", a[0])); }
static V p_cdr(V *a, int n) { (void)n; return CDR(want_pair("cdr", a[0])); }
static V p_setcar(V *a, int n) { (void)n; wbgc_write(P, &CAR(want_pair("set-car!", a[0])), a[1]); return UNSPEC; }
static V p_setcdr(V *a, int n) { (void)n; wbgc_write(P, &CDR(want_pair("set-cdr!", a[0])), a[1]); return UNSPEC; }
static V p_pairp(V *a, int n) { (void)n; return BOOL(TAG(a[0]) == T_PAIR); }
static V p_nullp(V *a, int n) { (void)n; return BOOL(a[0] == NIL); }
static V p_list(V *a, int n) { V r = NIL; for (int i = n - 1; i >= 0; i--) r = cons(a[i], r); return r; }
static V p_length(V *a, int n) {
    (void)n;
    long k = list_len(a[0]);
    if (k < 0) type_err("length", "proper list", a[0]);
    return mkint(k);
}
static V p_reverse(V *a, int n) {
    (void)n;
    if (list_len(a[0]) < 0) type_err("reverse", "proper list", a[0]);
    V r = NIL;
    for (V x = a[0]; x != NIL; x = CDR(x)) r = cons(CAR(x), r);
    return r;
}
static V p_append(V *a, int n) {
    if (n == 0) return NIL;
    V head = a[n - 1];
    for (int i = n - 2; i >= 0; i--) {
        if (list_len(a[i]) < 0) type_err("append", "proper list", a[i]);
        V tmp = p_reverse(&a[i], 1);
        for (; tmp != NIL; tmp = CDR(tmp)) head = cons(CAR(tmp), head);
    }
    return head;
}
static int eqv(V x, V y) {
    if (x == y) return 1;
    if (TAG(x) != TAG(y)) return 0;
    if (TAG(x) == T_INT) return ((Int *)x)->v == ((Int *)y)->v;
    if (TAG(x) == T_FLOAT) return ((Flo *)x)->v == ((Flo *)y)->v;
    return 0;
}
static int equal(V x, V y) {
    for (;;) {
        if (eqv(x, y)) return 1;
        if (TAG(x) != TAG(y)) return 0;
        if (TAG(x) == T_STR) return ((Str *)x)->len == ((Str *)y)->len && !memcmp(((Str *)x)->s, ((Str *)y)->s, (size_t)((Str *)x)->len);
        if (TAG(x) == T_VEC) {
            Vec *a = (Vec *)x, *b = (Vec *)y;
            if (a->len != b->len) return 0;
            for (long i = 0; i < a->len; i++) if (!equal(a->items[i], b->items[i])) return 0;
            return 1;
        }
        if (TAG(x) != T_PAIR) return 0;
        if (!equal(CAR(x), CAR(y))) return 0;
        x = CDR(x); y = CDR(y);
    }
}
static V p_eq(V *a, int n) { (void)n; return BOOL(eqv(a[0], a[1])); }
static V p_equal(V *a, int n) { (void)n; return BOOL(equal(a[0], a[1])); }
static V p_not(V *a, int n) { (void)n; return BOOL(a[0] == FALSE_V); }
static V p_booleanp(V *a, int n) { (void)n; return BOOL(TAG(a[0]) == T_BOOL); }
static V p_symbolp(V *a, int n) { (void)n; return BOOL(TAG(a[0]) == T_SYM); }
static V p_stringp(V *a, int n) { (void)n; return BOOL(TAG(a[0]) == T_STR); }
static V p_procp(V *a, int n) { (void)n; return BOOL(TAG(a[0]) == T_CLOS || TAG(a[0]) == T_PRIM); }
static V p_vectorp(V *a, int n) { (void)n; return BOOL(TAG(a[0]) == T_VEC); }
static V p_sym2str(V *a, int n) { (void)n; if (TAG(a[0]) != T_SYM) type_err("symbol->string", "symbol", a[0]); return ((Sym *)a[0])->name; }
static V p_str2sym(V *a, int n) { (void)n; Str *s = want_str("string->symbol", a[0]); return intern_n(s->s, s->len); }
static V p_strlen(V *a, int n) { (void)n; return mkint(want_str("string-length", a[0])->len); }
static V p_strappend(V *a, int n) {
    long len = 0;
    for (int i = 0; i < n; i++) len += want_str("string-append", a[i])->len;
    Str *r = (Str *)mkstr("", 0);
    if (len) {
        r = gc_alloc_noscan(sizeof *r + (size_t)len + 1);
        r->tag = T_STR; r->len = len;
        long k = 0;
        for (int i = 0; i < n; i++) { Str *s = (Str *)a[i]; memcpy(r->s + k, s->s, (size_t)s->len); k += s->len; }
    }
    return (V)r;
}
static V p_substring(V *a, int n) {
    Str *s = want_str("substring", a[0]);
    int64_t st = want_int("substring", a[1]), en = n > 2 ? want_int("substring", a[2]) : s->len;
    if (st < 0 || en > s->len || st > en) errf(NULL, "substring: index out of range (%lld..%lld of length %ld)", (long long)st, (long long)en, s->len);
    return mkstr(s->s + st, en - st);
}
static V p_strref(V *a, int n) {
    (void)n;
    Str *s = want_str("string-ref", a[0]);
    int64_t i = want_int("string-ref", a[1]);
    if (i < 0 || i >= s->len) errf(a[1], "string-ref: index out of range");
    return mkstr(s->s + i, 1);
}
static int strcmp_v(const char *who, V x, V y) {
    Str *a = want_str(who, x), *b = want_str(who, y);
    long m = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->s, b->s, (size_t)m);
    if (c) return c;
    return a->len < b->len ? -1 : a->len > b->len;
}
static V p_streq(V *a, int n) { (void)n; return BOOL(strcmp_v("string=?", a[0], a[1]) == 0); }
static V p_strlt(V *a, int n) { (void)n; return BOOL(strcmp_v("string<?", a[0], a[1]) < 0); }
static V p_num2str(V *a, int n) {
    (void)n;
    if (!isnum(a[0])) type_err("number->string", "number", a[0]);
    Buf b = {0}; print_obj(&b, a[0], 0);
    V s = mkstr(b.p, (long)b.n); free(b.p);
    return s;
}
static V p_str2num(V *a, int n) {
    (void)n;
    Str *s = want_str("string->number", a[0]);
    char tmp[64];
    if (s->len == 0 || s->len >= 64) return FALSE_V;
    memcpy(tmp, s->s, (size_t)s->len); tmp[s->len] = 0;
    char *end; errno = 0;
    long long v = strtoll(tmp, &end, 10);
    if (*end == 0 && errno == 0) return mkint(v);
    double d = strtod(tmp, &end);
    if (*end == 0) return mkflo(d);
    return FALSE_V;
}
static V p_tostring(V *a, int n) {   /* (->string x): display form */
    (void)n;
    Buf b = {0}; print_obj(&b, a[0], 0);
    V s = mkstr(b.p ? b.p : "", (long)b.n); free(b.p);
    return s;
}
static V p_strupcase(V *a, int n) {
    (void)n;
    Str *s = want_str("string-upcase", a[0]);
    Str *r = (Str *)mkstr(s->s, s->len);
    for (long i = 0; i < r->len; i++) if (r->s[i] >= 'a' && r->s[i] <= 'z') r->s[i] -= 32;
    return (V)r;
}
static V p_strindex(V *a, int n) {   /* (string-index s sub) -> index or #f */
    (void)n;
    Str *s = want_str("string-index", a[0]), *t = want_str("string-index", a[1]);
    for (long i = 0; i + t->len <= s->len; i++)
        if (!memcmp(s->s + i, t->s, (size_t)t->len)) return mkint(i);
    return FALSE_V;
}

static V p_makevec(V *a, int n) { return mkvec(want_int("make-vector", a[0]), n > 1 ? a[1] : FALSE_V); }
static V p_vector(V *a, int n) {
    Vec *v = (Vec *)mkvec(n, NIL);
    if (n) { void *slots[n]; for (int i = 0; i < n; i++) slots[i] = &v->items[i]; wbgc_write_n(P, slots, (void *const *)a, (size_t)n); }
    return (V)v;
}
static V p_vecref(V *a, int n) {
    (void)n;
    Vec *v = want_vec("vector-ref", a[0]);
    int64_t i = want_int("vector-ref", a[1]);
    if (i < 0 || i >= v->len) errf(a[1], "vector-ref: index out of range");
    return v->items[i];
}
static V p_vecset(V *a, int n) {
    (void)n;
    Vec *v = want_vec("vector-set!", a[0]);
    int64_t i = want_int("vector-set!", a[1]);
    if (i < 0 || i >= v->len) errf(a[1], "vector-set!: index out of range");
    wbgc_write(P, &v->items[i], a[2]);
    return UNSPEC;
}
static V p_veclen(V *a, int n) { (void)n; return mkint(want_vec("vector-length", a[0])->len); }
static V p_vec2list(V *a, int n) {
    (void)n;
    Vec *v = want_vec("vector->list", a[0]);
    V r = NIL;
    for (long i = v->len - 1; i >= 0; i--) r = cons(v->items[i], r);
    return r;
}
static V p_list2vec(V *a, int n) {
    (void)n;
    long k = list_len(a[0]);
    if (k < 0) type_err("list->vector", "proper list", a[0]);
    Vec *v = (Vec *)mkvec(k, NIL);
    long i = 0;
    for (V x = a[0]; x != NIL; x = CDR(x)) wbgc_write(P, &v->items[i++], CAR(x));
    return (V)v;
}
static V p_vecfill(V *a, int n) {
    (void)n;
    Vec *v = want_vec("vector-fill!", a[0]);
    for (long i = 0; i < v->len; i++) wbgc_write(P, &v->items[i], a[1]);
    return UNSPEC;
}

static V p_apply(V *a, int n) {
    V lst = a[n - 1];
    long k = list_len(lst);
    if (k < 0) type_err("apply", "proper list", lst);
    long total = n - 2 + k;
    if (total > 1000000) errf(NULL, "apply: too many arguments (more than 1000000)");
    V argv[total > 0 ? total : 1];
    long i = 0;
    for (; i < n - 2; i++) argv[i] = a[i + 1];
    for (; lst != NIL; lst = CDR(lst)) argv[i++] = CAR(lst);
    return apply_proc(a[0], argv, (int)total);
}
static V p_display(V *a, int n) { (void)n; print_to(stdout, a[0], 0); return UNSPEC; }
static V p_write(V *a, int n) { (void)n; print_to(stdout, a[0], 1); return UNSPEC; }
static V p_newline(V *a, int n) { (void)a; (void)n; fputc('\n', stdout); return UNSPEC; }
static V p_error(V *a, int n) {
    Buf b = {0};
    print_obj(&b, a[0], 0);
    for (int i = 1; i < n; i++) { bput(&b, " ", 1); print_obj(&b, a[i], 1); }
    snprintf(T->msg, sizeof T->msg, "%s", b.p);
    free(b.p);
    T->where[0] = 0;
    longjmp(*T->jb, 1);
}
static V p_exit(V *a, int n) { fflush(stdout); exit(n ? (int)want_int("exit", a[0]) : 0); }
static V p_catch(V *a, int n) {   /* (catch-error thunk): the value, or the error message string */
    (void)n;
    jmp_buf jb, *saved = T->jb;
    V volatile thunk = a[0];
    T->jb = &jb;
    if (setjmp(jb)) {
        T->jb = saved;
        return mkstr(T->msg, (long)strlen(T->msg));
    }
    V r = apply_proc(thunk, NULL, 0);
    T->jb = saved;
    return r;
}
/* (gc): a whole cycle, then the finalizers it queued (and any queued
   before). (gc #f): the cycle alone, its finalizers left queued for the
   next safe point (tests show where those are). */
static V p_gc(V *a, int n) {
    wbgc_collect(P);
    if (n == 0 || a[0] != FALSE_V) wbgc_run_finalizers(P, 0);
    return UNSPEC;
}
static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}
/* pause_p99: the 99th percentile of the pauses still in the stats' ring */
static uint64_t pause_p99(const wbgc_stats *st) {
    static uint64_t v[256];
    size_t n = st->pause_count < 256 ? (size_t)st->pause_count : 256;
    if (!n) return 0;
    memcpy(v, st->pause_recent_ns, n * sizeof *v);
    qsort(v, n, sizeof *v, cmp_u64);
    return v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
}
static V p_gcstats(V *a, int n) {
    (void)a; (void)n;
    SymStats sy = symtab_stats();
    wbgc_stats st;
    wbgc_get_stats(H, &st);
    struct { const char *k; uint64_t v; } f[] = {
        { "cycles", st.cycles }, { "heap-alloc", st.heap_alloc }, { "heap-live", st.heap_live },
        { "heap-goal", st.heap_goal }, { "heap-sys", st.heap_sys }, { "total-alloc", st.total_alloc },
        { "pause-count", st.pause_count }, { "pause-total-ns", st.pause_total_ns },
        { "pause-max-ns", st.pause_max_ns }, { "wb-flushes", st.wb_flushes },
        { "mark-assist-ns", st.mark_assist_ns }, { "pause-p99-ns", pause_p99(&st) },
        { "finalizers-queued", st.finalizers_queued }, { "finalizers-run", st.finalizers_run },
        { "finalizers-pending", st.finalizers_pending },
        { "weak-cleared", st.weak_cleared }, { "weak-live", st.weak_live },
        /* the symbol table (intern_n): entries, dead ones not yet unlinked
           included; those whose symbol lives; dead ones unlinked so far;
           symbols held strongly; buckets */
        { "symbols", (uint64_t)sy.entries }, { "symbols-live", (uint64_t)sy.live },
        { "symbols-dropped", (uint64_t)sy.dropped }, { "symbols-pinned", (uint64_t)sy.pinned },
        { "symbol-buckets", (uint64_t)sy.buckets },
        /* ports: opened; closed by close-port; closed by their finalizer */
        { "ports-opened", __atomic_load_n(&ports_opened, __ATOMIC_RELAXED) },
        { "ports-closed", __atomic_load_n(&ports_closed, __ATOMIC_RELAXED) },
        { "ports-finalized", __atomic_load_n(&ports_finalized, __ATOMIC_RELAXED) },
    };
    V r = NIL;
    for (int i = (int)(sizeof f / sizeof f[0]) - 1; i >= 0; i--)
        r = cons(cons(intern(f[i].k), mkint((int64_t)f[i].v)), r);
    return r;
}

/* ---- threads ---------------------------------------------------------------- */
static size_t THREAD_STACK = 64u << 20;
static void run_in_ctx(Ctx *c, char *stack_top, size_t stack_size) {
    c->limit = (char *)((uintptr_t)stack_top - stack_size + (1u << 20));
}
static void *thread_main(void *arg) {
    int slot = (int)(intptr_t)arg;
    Ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    char top;
    run_in_ctx(&ctx, &top, THREAD_STACK);
    ctx.p = wbgc_attach(H);
    T = &ctx;
    /* The thread object was handed over through a root slot: take it onto
       this stack, then clear the slot. */
    Thread *volatile t = (Thread *)R.handoff[slot];
    wbgc_write(P, &R.handoff[slot], NULL);
    pthread_mutex_lock(&handoff_lock);       /* held briefly, never across a safepoint */
    handoff_used[slot] = 0;
    pthread_mutex_unlock(&handoff_lock);
    jmp_buf jb;
    ctx.jb = &jb;
    if (setjmp(jb)) {
        V m = mkstr(T->msg, (long)strlen(T->msg));
        wbgc_write(P, &t->errmsg, m);
    } else {
        V r = apply_proc(t->thunk, NULL, 0);
        wbgc_write(P, &t->result, r);
    }
    __atomic_store_n(&t->state, 2, __ATOMIC_RELEASE);
    wbgc_detach(P);
    T = NULL;
    /* only now: the main thread frees the heap when no thread is live */
    __atomic_fetch_sub(&live_threads, 1, __ATOMIC_RELEASE);
    return NULL;
}
static V p_spawn(V *a, int n) {
    (void)n;
    if (TAG(a[0]) != T_CLOS && TAG(a[0]) != T_PRIM) type_err("spawn", "procedure", a[0]);
    Thread *t = gc_alloc(sizeof *t);
    t->tag = T_THREAD;
    void *slots[3] = { &t->thunk, &t->result, &t->errmsg };
    void *vals[3] = { a[0], UNSPEC, NULL };
    wbgc_write_n(P, slots, vals, 3);
    int slot = -1;
    pthread_mutex_lock(&handoff_lock);
    for (int i = 0; i < MAXSPAWN; i++) if (!handoff_used[i]) { handoff_used[i] = 1; slot = i; break; }
    pthread_mutex_unlock(&handoff_lock);
    if (slot < 0) errf(NULL, "spawn: too many threads starting at once");
    wbgc_write(P, &R.handoff[slot], (V)t);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, THREAD_STACK);
    t->state = 1;
    __atomic_fetch_add(&live_threads, 1, __ATOMIC_RELAXED);
    int rc = pthread_create(&t->tid, &attr, thread_main, (void *)(intptr_t)slot);
    pthread_attr_destroy(&attr);
    if (rc) {
        __atomic_fetch_sub(&live_threads, 1, __ATOMIC_RELAXED);
        wbgc_write(P, &R.handoff[slot], NULL);
        pthread_mutex_lock(&handoff_lock); handoff_used[slot] = 0; pthread_mutex_unlock(&handoff_lock);
        errf(NULL, "spawn: pthread_create failed: %s", strerror(rc));
    }
    return (V)t;
}
static V p_join(V *a, int n) {
    (void)n;
    if (TAG(a[0]) != T_THREAD) type_err("join", "thread", a[0]);
    Thread *t = (Thread *)a[0];
    if (__atomic_exchange_n(&t->joined, 1, __ATOMIC_ACQ_REL) == 0) {
        wbgc_blocking_begin(P);
        pthread_join(t->tid, NULL);
        wbgc_blocking_end(P);
        __atomic_store_n(&t->joined, 2, __ATOMIC_RELEASE);
    } else {
        while (__atomic_load_n(&t->joined, __ATOMIC_ACQUIRE) != 2) {
            wbgc_blocking_begin(P);
            usleep(1000);
            wbgc_blocking_end(P);
        }
    }
    if (t->errmsg) errf(t->errmsg, "join: the thread failed with");
    return t->result;
}
static Mutex *want_mutex(const char *who, V x) { if (TAG(x) != T_MUTEX) type_err(who, "mutex", x); return (Mutex *)x; }
static V p_makemutex(V *a, int n) {
    (void)a; (void)n;
    /* noscan: the pthread objects hold no GC pointers. No finalizers, so
       never destroyed: fine for Linux's mutexes and condition variables. */
    Mutex *m = gc_alloc_noscan(sizeof *m);
    m->tag = T_MUTEX;
    pthread_mutex_init(&m->m, NULL);
    pthread_cond_init(&m->cv, NULL);
    return (V)m;
}
static V p_lock(V *a, int n) { (void)n; lock_blocking(&want_mutex("lock", a[0])->m); return UNSPEC; }
static V p_unlock(V *a, int n) { (void)n; pthread_mutex_unlock(&want_mutex("unlock", a[0])->m); return UNSPEC; }
static V p_wait(V *a, int n) {   /* (wait m): wait on m's condition; m must be locked */
    (void)n;
    Mutex *m = want_mutex("wait", a[0]);
    wbgc_blocking_begin(P);
    pthread_cond_wait(&m->cv, &m->m);
    pthread_mutex_unlock(&m->m);     /* re-take it outside the blocking region ordering issue */
    wbgc_blocking_end(P);
    lock_blocking(&m->m);
    return UNSPEC;
}
static V p_notify(V *a, int n) { (void)n; pthread_cond_broadcast(&want_mutex("notify-all", a[0])->cv); return UNSPEC; }
static V p_sleep(V *a, int n) {
    (void)n;
    int64_t ms = want_int("sleep-ms", a[0]);
    wbgc_blocking_begin(P);
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
    wbgc_blocking_end(P);
    return UNSPEC;
}

/* ---- ports ------------------------------------------------------------------ */
/* A port holds a FILE. close-port closes it; a port the program drops
   unclosed is closed by its finalizer (port_finalizer), once a cycle has
   found it unreachable. Whoever swaps the FILE out of the port (atomically)
   closes it, so it is closed once: close-port twice, or close-port and then
   the finalizer, close nothing more. The port's mutex keeps close-port on
   one thread from closing the FILE under read-line on another; the
   finalizer needs none (nothing else can reach the port then).
   Finalizers run on demand (WBGC_FINALIZE_ON_DEMAND, set in main), at safe
   points of the Lisp threads: after each top-level form (run_string), in
   (gc) after its cycle, and in open-input-file / open-output-file before
   opening and, when the process is out of descriptors, after a cycle, once
   more before giving up. Why not the heap's finalizer thread: then (gc)
   could not promise that the ports it found dropped are closed when it
   returns (a test, or a program about to reopen a file it wrote, would
   have to wait for another thread), and an open that fails with EMFILE
   could not collect and then know the descriptors came back. The cost:
   while every Lisp thread is busy in one long form that opens nothing, or
   blocked (an idle REPL), dropped ports keep their descriptors. */
static Port *want_port(const char *who, V x, int input) {
    if (TAG(x) != T_PORT) type_err(who, "port", x);
    Port *pt = (Port *)x;
    if (input >= 0 && pt->input != input) type_err(who, input ? "input port" : "output port", x);
    return pt;
}
/* port_finalizer: obj is a port that a cycle found unreachable. Runs in
   wbgc_run_finalizers, on a Lisp thread's P (p), but uses nothing of the
   thread's: only the port, the C library and an atomic counter. */
static void port_finalizer(wbgc_p *p, void *obj, void *arg) {
    (void)arg;
    Port *pt = obj;
    FILE *f = __atomic_exchange_n(&pt->f, NULL, __ATOMIC_ACQ_REL);
    if (f) {
        wbgc_blocking_begin(p);     /* fclose may block, flushing */
        fclose(f);
        wbgc_blocking_end(p);
        __atomic_fetch_add(&ports_finalized, 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_destroy(&pt->m);
}
static V open_port(const char *who, V path, int input) {
    Str *s = want_str(who, path);
    if (memchr(s->s, 0, (size_t)s->len)) errf(path, "%s: bad file name", who);
    /* the port first, with its finalizer: no path below leaks the FILE */
    Port *pt = gc_alloc_noscan(sizeof *pt + (size_t)s->len + 1);
    pt->tag = T_PORT;
    pt->input = input;
    pthread_mutex_init(&pt->m, NULL);
    memcpy(pt->path, s->s, (size_t)s->len);
    if (wbgc_set_finalizer(P, pt, port_finalizer, NULL) != 0) errf(NULL, "out of memory");
    wbgc_run_finalizers(P, 0);      /* a safe point: close the dropped ports first */
    FILE *f;
    int err;
    for (int again = 1;; again = 0) {
        wbgc_blocking_begin(P);     /* opening a FIFO blocks; pt's bytes are ours */
        f = fopen(pt->path, input ? "r" : "w");
        err = errno;
        wbgc_blocking_end(P);
        if (f || !again || (err != EMFILE && err != ENFILE)) break;
        wbgc_collect(P);            /* out of descriptors: dropped ports hold some */
        wbgc_run_finalizers(P, 0);
    }
    if (!f) errf(path, "%s: cannot open (%s)", who, strerror(err));
    __atomic_store_n(&pt->f, f, __ATOMIC_RELEASE);
    __atomic_fetch_add(&ports_opened, 1, __ATOMIC_RELAXED);
    return (V)pt;
}
static V p_open_in(V *a, int n) { (void)n; return open_port("open-input-file", a[0], 1); }
static V p_open_out(V *a, int n) { (void)n; return open_port("open-output-file", a[0], 0); }
/* port_file: pt's FILE, with pt's mutex taken (port_done gives it back);
   an error if the port is closed */
static FILE *port_file(const char *who, Port *pt) {
    lock_blocking(&pt->m);
    FILE *f = __atomic_load_n(&pt->f, __ATOMIC_ACQUIRE);
    if (!f) { pthread_mutex_unlock(&pt->m); errf((V)pt, "%s: the port is closed", who); }
    return f;
}
static void port_done(Port *pt) { pthread_mutex_unlock(&pt->m); }
static V p_read_line(V *a, int n) {   /* (read-line port): a string without the newline, or the eof object */
    (void)n;
    Port *pt = want_port("read-line", a[0], 1);
    FILE *f = port_file("read-line", pt);
    char *line = NULL;
    size_t cap = 0;
    wbgc_blocking_begin(P);
    ssize_t k = getline(&line, &cap, f);
    wbgc_blocking_end(P);
    port_done(pt);
    if (k < 0) { free(line); return EOF_V; }
    if (k > 0 && line[k - 1] == '\n') k--;
    Str *r = wbgc_alloc_noscan(P, sizeof *r + (size_t)k + 1);
    if (r) { r->tag = T_STR; r->len = k; memcpy(r->s, line, (size_t)k); }
    free(line);
    if (!r) errf(NULL, "out of memory");
    return (V)r;
}
static V p_write_string(V *a, int n) {   /* (write-string str [port]) */
    Str *s = want_str("write-string", a[0]);
    if (n < 2) { fwrite(s->s, 1, (size_t)s->len, stdout); return UNSPEC; }
    Port *pt = want_port("write-string", a[1], 0);
    FILE *f = port_file("write-string", pt);
    wbgc_blocking_begin(P);         /* s's bytes are ours to read meanwhile */
    size_t w = fwrite(s->s, 1, (size_t)s->len, f);
    wbgc_blocking_end(P);
    port_done(pt);
    if (w != (size_t)s->len) errf(a[1], "write-string: write failed");
    return UNSPEC;
}
static V p_close_port(V *a, int n) {   /* closing a closed port does nothing */
    (void)n;
    Port *pt = want_port("close-port", a[0], -1);
    lock_blocking(&pt->m);
    FILE *f = __atomic_exchange_n(&pt->f, NULL, __ATOMIC_ACQ_REL);
    if (f) {
        wbgc_blocking_begin(P);
        fclose(f);
        wbgc_blocking_end(P);
        __atomic_fetch_add(&ports_closed, 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&pt->m);
    return UNSPEC;
}
static V p_portp(V *a, int n) { (void)n; return BOOL(TAG(a[0]) == T_PORT); }
static V p_eofp(V *a, int n) { (void)n; return BOOL(a[0] == EOF_V); }
static V p_eof(V *a, int n) { (void)a; (void)n; return EOF_V; }
static V p_delete_file(V *a, int n) {
    (void)n;
    Str *s = want_str("delete-file", a[0]);
    char tmp[4096];
    if (s->len >= (long)sizeof tmp || memchr(s->s, 0, (size_t)s->len)) errf(a[0], "delete-file: bad file name");
    memcpy(tmp, s->s, (size_t)s->len); tmp[s->len] = 0;
    if (unlink(tmp) != 0) errf(a[0], "delete-file: %s", strerror(errno));
    return UNSPEC;
}
static V p_getenv(V *a, int n) {   /* (getenv name): a string, or #f */
    (void)n;
    Str *s = want_str("getenv", a[0]);
    char tmp[256];
    if (s->len >= (long)sizeof tmp) return FALSE_V;
    memcpy(tmp, s->s, (size_t)s->len); tmp[s->len] = 0;
    const char *v = getenv(tmp);
    return v ? mkstr(v, (long)strlen(v)) : FALSE_V;
}
/* (set-fd-limit! n): lowers the soft limit on open files (RLIMIT_NOFILE) to
   n, for tests that open more files than the limit; returns the old one */
static V p_set_fd_limit(V *a, int n) {
    (void)n;
    int64_t k = want_int("set-fd-limit!", a[0]);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) errf(NULL, "set-fd-limit!: %s", strerror(errno));
    rlim_t old = rl.rlim_cur;
    if (k < 0 || (rl.rlim_max != RLIM_INFINITY && (rlim_t)k > rl.rlim_max)) errf(a[0], "set-fd-limit!: out of range");
    rl.rlim_cur = (rlim_t)k;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) errf(a[0], "set-fd-limit!: %s", strerror(errno));
    return mkint(old == RLIM_INFINITY ? -1 : (int64_t)old);
}

/* ---- setup ---------------------------------------------------------------- */
static void defprim(const char *name, PrimFn fn, int min, int max) {
    V s = intern(name);
    Prim *p = gc_alloc_noscan(sizeof *p);
    p->tag = T_PRIM; p->fn = fn; p->name = name; p->min = min; p->max = max;
    pin_symbol(s);
    wbgc_write(P, &((Sym *)s)->value, (V)p);
}
static void defsf(const char *name, long sf) { V s = intern(name); pin_symbol(s); ((Sym *)s)->sf = sf; }

static const char *PRELUDE =
    "(define (caar x) (car (car x))) (define (cadr x) (car (cdr x)))\n"
    "(define (cdar x) (cdr (car x))) (define (cddr x) (cdr (cdr x)))\n"
    "(define (caddr x) (car (cddr x))) (define (cdddr x) (cdr (cddr x)))\n"
    "(define (zero? n) (= n 0)) (define (positive? n) (> n 0)) (define (negative? n) (< n 0))\n"
    "(define (even? n) (= (remainder n 2) 0)) (define (odd? n) (not (even? n)))\n"
    "(define (add1 n) (+ n 1)) (define (sub1 n) (- n 1))\n"
    "(define (min x . xs) (fold-left (lambda (a b) (if (< b a) b a)) x xs))\n"
    "(define (max x . xs) (fold-left (lambda (a b) (if (> b a) b a)) x xs))\n"
    "(define (gcd a b) (if (= b 0) (abs a) (gcd b (remainder a b))))\n"
    "(define (list? x) (cond ((null? x) #t) ((pair? x) (list? (cdr x))) (else #f)))\n"
    "(define (eq? a b) (eqv? a b))\n"
    "(define (fold-left f acc lst) (if (null? lst) acc (fold-left f (f acc (car lst)) (cdr lst))))\n"
    "(define (fold f acc lst) (if (null? lst) acc (fold f (f (car lst) acc) (cdr lst))))\n"
    "(define (fold-right f acc lst) (fold-left (lambda (a x) (f x a)) acc (reverse lst)))\n"
    "(define (reduce f init lst) (if (null? lst) init (fold-left f (car lst) (cdr lst))))\n"
    "(define (map1 f lst) (let loop ((l lst) (acc '())) (if (null? l) (reverse acc) (loop (cdr l) (cons (f (car l)) acc)))))\n"
    "(define (any-null? ls) (cond ((null? ls) #f) ((null? (car ls)) #t) (else (any-null? (cdr ls)))))\n"
    "(define (map f lst . lsts)\n"
    "  (if (null? lsts) (map1 f lst)\n"
    "      (let loop ((ls (cons lst lsts)) (acc '()))\n"
    "        (if (any-null? ls) (reverse acc)\n"
    "            (loop (map1 cdr ls) (cons (apply f (map1 car ls)) acc))))))\n"
    "(define (for-each f lst . lsts)\n"
    "  (if (null? lsts) (let loop ((l lst)) (if (null? l) #t (begin (f (car l)) (loop (cdr l)))))\n"
    "      (begin (apply map f lst lsts) #t)))\n"
    "(define (filter p lst) (let loop ((l lst) (acc '())) (cond ((null? l) (reverse acc)) ((p (car l)) (loop (cdr l) (cons (car l) acc))) (else (loop (cdr l) acc)))))\n"
    "(define (remove p lst) (filter (lambda (x) (not (p x))) lst))\n"
    "(define (delete x lst) (remove (lambda (y) (equal? x y)) lst))\n"
    "(define (assq k al) (cond ((null? al) #f) ((eqv? k (caar al)) (car al)) (else (assq k (cdr al)))))\n"
    "(define assv assq)\n"
    "(define (assoc k al) (cond ((null? al) #f) ((equal? k (caar al)) (car al)) (else (assoc k (cdr al)))))\n"
    "(define (memq x l) (cond ((null? l) #f) ((eqv? x (car l)) l) (else (memq x (cdr l)))))\n"
    "(define memv memq)\n"
    "(define (member x l) (cond ((null? l) #f) ((equal? x (car l)) l) (else (member x (cdr l)))))\n"
    "(define (list-tail l k) (if (= k 0) l (list-tail (cdr l) (- k 1))))\n"
    "(define (list-ref l k) (car (list-tail l k)))\n"
    "(define (last-pair l) (if (pair? (cdr l)) (last-pair (cdr l)) l))\n"
    "(define (list-copy l) (map1 (lambda (x) x) l))\n"
    "(define (iota n . start) (let loop ((i (- n 1)) (acc '())) (if (< i 0) acc (loop (- i 1) (cons (+ i (if (null? start) 0 (car start))) acc)))))\n"
    "(define (any p l) (cond ((null? l) #f) ((p (car l)) #t) (else (any p (cdr l)))))\n"
    "(define (every p l) (cond ((null? l) #t) ((p (car l)) (every p (cdr l))) (else #f)))\n"
    "(define (count p l) (fold-left (lambda (n x) (if (p x) (+ n 1) n)) 0 l))\n"
    "(define (merge-lists a b less?)\n"
    "  (let loop ((a a) (b b) (acc '()))\n"
    "    (cond ((null? a) (append (reverse acc) b)) ((null? b) (append (reverse acc) a))\n"
    "          ((less? (car b) (car a)) (loop a (cdr b) (cons (car b) acc)))\n"
    "          (else (loop (cdr a) b (cons (car a) acc))))))\n"
    "(define (sort lst less?)\n"
    "  (let ((n (length lst)))\n"
    "    (if (< n 2) lst\n"
    "        (let ((h (quotient n 2)))\n"
    "          (merge-lists (sort (take lst h) less?) (sort (list-tail lst h) less?) less?)))))\n"
    "(define (take l k) (let loop ((l l) (k k) (acc '())) (if (= k 0) (reverse acc) (loop (cdr l) (- k 1) (cons (car l) acc)))))\n"
    "(define (string . xs) (apply string-append (map1 ->string xs)))\n"
    "(define (string-join strs sep)\n"
    "  (if (null? strs) \"\" (fold-left (lambda (acc s) (string-append acc sep s)) (car strs) (cdr strs))))\n"
    "(define (string->list s) (let loop ((i (- (string-length s) 1)) (acc '())) (if (< i 0) acc (loop (- i 1) (cons (string-ref s i) acc)))))\n"
    "(define (list->string l) (apply string-append l))\n"
    "(define (string-reverse s) (list->string (reverse (string->list s))))\n"
    "(define (string-split s sep)\n"
    "  (let ((i (string-index s sep)))\n"
    "    (if i (cons (substring s 0 i) (string-split (substring s (+ i (string-length sep))) sep)) (list s))))\n"
    "(define (vector-map f v) (list->vector (map1 f (vector->list v))))\n"
    "(define (vector-for-each f v) (for-each f (vector->list v)))\n"
    "(define (println . xs) (for-each display xs) (newline))\n"
    "(define (assert c . msg) (if c #t (apply error \"assertion failed\" msg)))\n";

static V run_string(const char *src, size_t n, int echo, int *failed);

static void init_interp(void) {
    wbgc_write(P, &R.symtab, mkvec(256, NIL));
    wbgc_write(P, &R.pinned, NIL);
    Vec *ic = (Vec *)mkvec(INTCACHE_HI - INTCACHE_LO, NIL);
    for (long i = INTCACHE_LO; i < INTCACHE_HI; i++) {
        Int *o = gc_alloc_noscan(sizeof *o);
        o->tag = T_INT; o->v = i;
        wbgc_write(P, &ic->items[i - INTCACHE_LO], (V)o);
    }
    wbgc_write(P, &R.intcache, (V)ic);
    wbgc_write(P, &R.s_quote, intern("quote"));
    wbgc_write(P, &R.s_else, intern("else"));
    wbgc_write(P, &R.s_arrow, intern("=>"));
    wbgc_write(P, &R.s_quasi, intern("quasiquote"));
    wbgc_write(P, &R.s_unquote, intern("unquote"));
    wbgc_write(P, &R.s_splice, intern("unquote-splicing"));
    defsf("quote", SF_QUOTE); defsf("if", SF_IF); defsf("define", SF_DEFINE); defsf("set!", SF_SET);
    defsf("lambda", SF_LAMBDA); defsf("begin", SF_BEGIN); defsf("let", SF_LET); defsf("let*", SF_LETSTAR);
    defsf("letrec", SF_LETREC); defsf("letrec*", SF_LETREC); defsf("cond", SF_COND); defsf("and", SF_AND);
    defsf("or", SF_OR); defsf("when", SF_WHEN); defsf("unless", SF_UNLESS); defsf("do", SF_DO);
    defsf("quasiquote", SF_QUASI);
    defprim("+", p_add, 0, -1); defprim("-", p_sub, 1, -1); defprim("*", p_mul, 0, -1); defprim("/", p_div, 1, -1);
    defprim("quotient", p_quotient, 2, 2); defprim("remainder", p_remainder, 2, 2); defprim("modulo", p_modulo, 2, 2);
    defprim("=", p_numeq, 1, -1); defprim("<", p_lt, 1, -1); defprim(">", p_gt, 1, -1);
    defprim("<=", p_le, 1, -1); defprim(">=", p_ge, 1, -1); defprim("abs", p_abs, 1, 1);
    defprim("sqrt", p_sqrt, 1, 1); defprim("expt", p_expt, 2, 2); defprim("floor", p_floor, 1, 1);
    defprim("ceiling", p_ceiling, 1, 1); defprim("round", p_round, 1, 1); defprim("truncate", p_truncate, 1, 1);
    defprim("exact", p_exact, 1, 1); defprim("inexact", p_inexact, 1, 1);
    defprim("inexact->exact", p_exact, 1, 1); defprim("exact->inexact", p_inexact, 1, 1);
    defprim("number?", p_numberp, 1, 1); defprim("integer?", p_integerp, 1, 1); defprim("float?", p_floatp, 1, 1);
    defprim("cons", p_cons, 2, 2); defprim("car", p_car, 1, 1); defprim("cdr", p_cdr, 1, 1);
    defprim("set-car!", p_setcar, 2, 2); defprim("set-cdr!", p_setcdr, 2, 2); defprim("pair?", p_pairp, 1, 1);
    defprim("null?", p_nullp, 1, 1); defprim("list", p_list, 0, -1); defprim("length", p_length, 1, 1);
    defprim("reverse", p_reverse, 1, 1); defprim("append", p_append, 0, -1);
    defprim("eqv?", p_eq, 2, 2); defprim("equal?", p_equal, 2, 2); defprim("not", p_not, 1, 1);
    defprim("boolean?", p_booleanp, 1, 1); defprim("symbol?", p_symbolp, 1, 1); defprim("string?", p_stringp, 1, 1);
    defprim("procedure?", p_procp, 1, 1); defprim("vector?", p_vectorp, 1, 1);
    defprim("symbol->string", p_sym2str, 1, 1); defprim("string->symbol", p_str2sym, 1, 1);
    defprim("string-length", p_strlen, 1, 1); defprim("string-append", p_strappend, 0, -1);
    defprim("substring", p_substring, 2, 3); defprim("string-ref", p_strref, 2, 2);
    defprim("string=?", p_streq, 2, 2); defprim("string<?", p_strlt, 2, 2);
    defprim("number->string", p_num2str, 1, 1); defprim("string->number", p_str2num, 1, 1);
    defprim("->string", p_tostring, 1, 1); defprim("string-upcase", p_strupcase, 1, 1);
    defprim("string-index", p_strindex, 2, 2);
    defprim("make-vector", p_makevec, 1, 2); defprim("vector", p_vector, 0, -1);
    defprim("vector-ref", p_vecref, 2, 2); defprim("vector-set!", p_vecset, 3, 3);
    defprim("vector-length", p_veclen, 1, 1); defprim("vector->list", p_vec2list, 1, 1);
    defprim("list->vector", p_list2vec, 1, 1); defprim("vector-fill!", p_vecfill, 2, 2);
    defprim("apply", p_apply, 2, -1); defprim("display", p_display, 1, 1); defprim("write", p_write, 1, 1);
    defprim("newline", p_newline, 0, 0); defprim("error", p_error, 1, -1); defprim("exit", p_exit, 0, 1);
    defprim("catch-error", p_catch, 1, 1); defprim("gc", p_gc, 0, 1); defprim("gc-stats", p_gcstats, 0, 0);
    defprim("spawn", p_spawn, 1, 1); defprim("join", p_join, 1, 1); defprim("make-mutex", p_makemutex, 0, 0);
    defprim("lock", p_lock, 1, 1); defprim("unlock", p_unlock, 1, 1); defprim("wait", p_wait, 1, 1);
    defprim("notify-all", p_notify, 1, 1); defprim("sleep-ms", p_sleep, 1, 1);
    defprim("open-input-file", p_open_in, 1, 1); defprim("open-output-file", p_open_out, 1, 1);
    defprim("read-line", p_read_line, 1, 1); defprim("write-string", p_write_string, 1, 2);
    defprim("close-port", p_close_port, 1, 1); defprim("port?", p_portp, 1, 1);
    defprim("eof-object?", p_eofp, 1, 1); defprim("eof-object", p_eof, 0, 0);
    defprim("delete-file", p_delete_file, 1, 1); defprim("getenv", p_getenv, 1, 1);
    defprim("set-fd-limit!", p_set_fd_limit, 1, 1);
    int failed = 0;
    run_string(PRELUDE, strlen(PRELUDE), 0, &failed);
    if (failed) { fprintf(stderr, "lisp: prelude failed\n"); exit(2); }
}

/* Evaluates every form of src; on an error prints it and stops (sets
   *failed). echo: print each value (REPL). */
static V run_string(const char *src, size_t n, int echo, int *failed) {
    Rd rd = { src, 0, n, 1 };
    jmp_buf jb, *saved = T->jb;
    T->jb = &jb;
    V volatile last = UNSPEC;
    if (setjmp(jb)) {
        T->jb = saved;
        report_error(stderr);
        *failed = 1;
        return UNSPEC;
    }
    for (;;) {
        T->cur = NULL;
        V x = read_form(&rd);
        if (x == EOF_V) break;
        last = eval(x, NIL);
        wbgc_run_finalizers(P, 0);   /* a safe point (see "ports") */
        if (echo && last != UNSPEC) { print_to(stdout, last, 1); fputc('\n', stdout); }
        fflush(stdout);
    }
    T->jb = saved;
    T->cur = NULL;
    return last;
}

static char *read_file(FILE *f, size_t *n) {
    Buf b = {0};
    char tmp[65536];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0) bput(&b, tmp, k);
    *n = b.n;
    if (!b.p) bput(&b, "", 0);
    return b.p;
}

/* The REPL: reads lines until the parentheses balance, then evaluates. */
static int paren_balance(const char *s, size_t n) {
    int depth = 0, instr = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (instr) { if (c == '\\') i++; else if (c == '"') instr = 0; continue; }
        if (c == ';') { while (i < n && s[i] != '\n') i++; continue; }
        if (c == '"') instr = 1;
        else if (c == '(' || c == '[') depth++;
        else if (c == ')' || c == ']') depth--;
    }
    return instr ? 1 : depth;
}
static void repl(int tty) {
    Buf b = {0};
    char line[4096];
    if (tty) printf("wbgc lisp -- (exit) or Ctrl-D to leave\n");
    for (;;) {
        if (tty) { fputs(b.n ? "... " : "> ", stdout); fflush(stdout); }
        /* reading a line blocks: no heap access meanwhile */
        wbgc_blocking_begin(P);
        char *got = fgets(line, sizeof line, stdin);
        wbgc_blocking_end(P);
        if (!got) break;
        bputs(&b, line);
        if (paren_balance(b.p, b.n) > 0) continue;
        int failed = 0;
        run_string(b.p, b.n, 1, &failed);
        b.n = 0; b.p[0] = 0;
    }
    if (b.n) { int failed = 0; run_string(b.p, b.n, 1, &failed); }
    free(b.p);
    if (tty) putchar('\n');
}

typedef struct { int argc; char **argv; int rc; } MainArgs;
static size_t MAIN_STACK = 256u << 20;
static void *interp_main(void *arg) {
    MainArgs *ma = arg;
    Ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    char top;
    run_in_ctx(&ctx, &top, MAIN_STACK);
    ctx.p = wbgc_attach(H);
    T = &ctx;
    jmp_buf jb;
    ctx.jb = &jb;
    if (setjmp(jb)) { report_error(stderr); ma->rc = 2; return NULL; }
    init_interp();
    if (ma->argc > 1) {
        for (int i = 1; i < ma->argc; i++) {
            FILE *f = fopen(ma->argv[i], "rb");
            if (!f) { fprintf(stderr, "lisp: cannot open %s: %s\n", ma->argv[i], strerror(errno)); ma->rc = 1; break; }
            size_t n;
            char *src = read_file(f, &n);
            fclose(f);
            int failed = 0;
            run_string(src, n, 0, &failed);
            free(src);
            if (failed) { ma->rc = 1; break; }
        }
    } else {
        repl(isatty(0));
    }
    fflush(stdout);
    if (__atomic_load_n(&live_threads, __ATOMIC_RELAXED) == 0) {
        wbgc_detach(ctx.p);
        T = NULL;
        ma->rc |= 0x100;   /* detached: the heap may be freed */
    } else {
        exit(ma->rc);       /* threads still running: leave without freeing */
    }
    return NULL;
}

int main(int argc, char **argv) {
    wbgc_config cfg;
    wbgc_config_default(&cfg);
    cfg.flags |= WBGC_FINALIZE_ON_DEMAND;   /* finalizers at our safe points ("ports") */
    const char *mode = getenv("LISP_GC");
    if (!mode || !*mode || !strcmp(mode, "concurrent")) ;
    else if (!strcmp(mode, "incremental")) cfg.mark_workers = 0;
    else if (!strcmp(mode, "stw")) cfg.flags |= WBGC_STW;
    else if (!strcmp(mode, "check")) cfg.flags |= WBGC_CHECK;
    else { fprintf(stderr, "lisp: LISP_GC must be concurrent, incremental, stw or check\n"); return 2; }
    const char *pct = getenv("LISP_GC_PERCENT");
    if (pct && *pct) cfg.gc_percent = atoi(pct);
    H = wbgc_heap_new(&cfg);
    if (!H) return 2;
    if (wbgc_add_roots(H, &R, sizeof R) != 0) return 2;

    /* The interpreter runs on a thread with a large stack: deep (non-tail)
       recursion is C recursion. */
    MainArgs ma = { argc, argv, 0 };
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, MAIN_STACK);
    pthread_t th;
    if (pthread_create(&th, &attr, interp_main, &ma) != 0) { fprintf(stderr, "lisp: cannot start\n"); return 2; }
    pthread_join(th, NULL);
    if (ma.rc & 0x100) {
        wbgc_remove_roots(H, &R);
        wbgc_heap_free(H);
    }
    return ma.rc & 0xff;
}
