#!/usr/bin/env bash
# tests/mutate.sh — mutation testing of wbgc.h against the quick suite.
#
#   bash tests/mutate.sh              every mutant, then a Markdown table
#   bash tests/mutate.sh NAME...      only these mutants
#   bash tests/mutate.sh --list       the mutants, what each breaks, and
#                                     whether its string applies to the
#                                     current header (nothing is built)
#
# Each mutant is one exact string replacement in a copy of wbgc.h (or
# wbgc_amd64.h): the string must occur exactly once, or the entry names the
# occurrence. For each, in a temporary directory: copy the header, test.c
# and tests/, mutate, build test.c (gcc -O2 -g -w; with -DWBGC_NO_ASM for
# mutants in the portable barrier, and in both builds for mutants of the
# buffer drain, whose amd64 path differs: the general-register flush), and
# run the quick suite with the verifier on (WBGC_VERIFY=1) one test at a
# time, stopping at the first failure. A mutant is killed when a test
# fails (its "N passed, N failed" line), crashes, or hangs (the runner's
# watchdog, or this script's per-mutant timeout).
#
# The sources are copied from the work tree once, at the start of a run;
# the unmutated build must pass the quick suite first (in every build kind
# the selected mutants need).
#
# Environment:
#   MUTATE_TESTS="a b ..."   the quick suite, in order (default below;
#                            tests that test.c does not have are left out)
#   MUTATE_TIMEOUT=s         wall time per mutant and build (default 150)
#   MUTATE_TEST_TIMEOUT=s    the runner's watchdog per test (default 30)
#   MUTATE_PASSES=n          suite passes for a mutant that survives the first,
#                            pass k with WBGC_STRESS_SEED=k and WBGC_FUZZ_SEED=k
#                            (default 2)
#   MUTATE_KEEP=1            keep the temporary directories
#   CC                       the compiler (default gcc)
#
# Output: a line per mutant as it finishes, then the table, and last
#   mutants: N killed, N survived, N did not apply
# Exit status: 0 whatever the score; 1 when the unmutated build fails the
# quick suite or a mutant's string does not apply (the header changed: the
# list needs updating); 2 on a usage error.
set -u
cd "$(dirname "$0")/.." || exit 2
command -v python3 >/dev/null 2>&1 || { echo "tests/mutate.sh: needs python3"; exit 2; }
exec python3 - "$@" <<'PYTHON'
import os, re, shutil, signal, subprocess, sys, tempfile, threading, time

REPO = os.getcwd()
CC = os.environ.get("CC", "gcc")
MUTANT_TIMEOUT = float(os.environ.get("MUTATE_TIMEOUT", "150"))
TEST_TIMEOUT = int(os.environ.get("MUTATE_TEST_TIMEOUT", "30"))
KEEP = os.environ.get("MUTATE_KEEP", "") not in ("", "0")
PASSES = max(1, int(os.environ.get("MUTATE_PASSES", "2")))

# The quick suite. The targeted tests first (they take well under a second
# together), then the randomized many-cycle ones. tree_reverse_* (Go's
# barrier loop) and fuzz_* run when test.c has them.
DEFAULT_TESTS = """
    insertion_half_while_stack_grey flush_stops_when_work_full batched_stores memmove_partial_words remove_roots_while_marking
    add_roots_while_marking misuse_other_threads_p_check_mode large_alloc_assists large_object_pieces
    threads_exchange attach_detach_storm memmove_concurrent
    typed_stw typed_concurrent typed_check_mode_reports typed_layout_errors realloc
    realloc_concurrent
    stress_concurrent stress_incremental stress_stw stress_check stress_stw_markers
    stress_typed_concurrent stress_typed_check
    finalizers_concurrent finalizer_order finalizer_resurrection weak_concurrent
    ephemerons_concurrent ephemeron_chain_concurrent ephemeron_chain_incremental
    stress_specials_concurrent stress_specials_incremental stress_ephemerons_concurrent
    links_concurrent links_stw stress_links_concurrent stress_links_incremental
    stress_roots_rescan_concurrent stress_roots_rescan_incremental
    fuzz_concurrent fuzz_incremental fuzz_stw fuzz_check
    tree_reverse_concurrent tree_reverse_incremental
""".split()
TESTS = os.environ.get("MUTATE_TESTS", "").split() or DEFAULT_TESTS
TEST_ENV = {"WBGC_VERIFY": "1", "WBGC_STRESS_SECONDS": "2", "WBGC_FUZZ_SECONDS": "2",
            "WBGC_TREE_SECONDS": "1", "WBGC_TEST_TIMEOUT": str(TEST_TIMEOUT)}

# ---------------------------------------------------------------------------
# The mutants. name, what (what it breaks), old -> new (exact, in `file`,
# default wbgc.h), nth (which occurrence, when old occurs more than once),
# build: "asm" (the default build), "noasm" (-DWBGC_NO_ASM: the portable
# barrier) or "both" (asm first, noasm when asm did not kill it), expect:
# why the quick suite cannot kill it, when it is not expected to.
M = []
def mutant(name, what, old, new, build="asm", file="wbgc.h", nth=None, expect=None):
    M.append(dict(name=name, what=what, old=old, new=new, build=build, file=file, nth=nth,
                  expect=expect))

mutant("wb-no-deletion-half",
       "the buffer drain shades only the new halves of entries (Yuasa's deletion half dropped)",
       "        ptrdiff_t step = p->stack_black ? 2 : 1;\n"
       "        void **b = p->wbbuf + (step - 1);",
       "        ptrdiff_t step = 2;\n"
       "        void **b = p->wbbuf;", build="both")
mutant("wb-no-insertion-half",
       "the buffer drain shades only old halves, also while the writer's stack is grey "
       "(Dijkstra's insertion half dropped)",
       "        ptrdiff_t step = p->stack_black ? 2 : 1;\n"
       "        void **b = p->wbbuf + (step - 1);",
       "        ptrdiff_t step = 2;\n"
       "        void **b = p->wbbuf + 1;", build="both")
mutant("wb-records-slot-address",
       "the portable barrier records the slot's address instead of its old value",
       "        e[1] = *(void *const *)slot;  /* the old value: *slot, before the store */",
       "        e[1] = (void *)slot;  /* MUTANT */", build="noasm")
mutant("amd64-records-slot-address",
       "the amd64 asm barrier records the slot's address instead of its old value",
       r'"movq (%[slot]), %[t]\n\t"', r'"movq %[slot], %[t]\n\t"', file="wbgc_amd64.h")
mutant("write-n-no-old-values",
       "wbgc_write_n records the new value twice, no old values (deletion half of batched stores)",
       "            e[2 * i + 1] = *(void *const *)slots[i];  /* old values, before any store */",
       "            e[2 * i + 1] = vals[i];  /* MUTANT */")
mutant("alloc-white-small",
       "small objects allocated while marking are born white (allocate-black off)",
       "    if (WBGC__UNLIKELY(p->alloc_black)) {                 /* allocate black */",
       "    if (0) {  /* MUTANT */")
mutant("alloc-white-large",
       "large objects allocated while marking are born white (allocate-black off)",
       "    if (p->alloc_black) {                                /* allocate black */",
       "    if (0) {  /* MUTANT */")
mutant("final-stop-no-recheck",
       "the final stop does not shade what barriers appended since the hand-shake",
       "    for (wbgc_p *q = h->ps; q; q = q->next)\n"
       "        if (wbgc__p_has_work(q)) wbgc__flush_p(h, q);",
       "    for (wbgc_p *q = h->ps; q; q = q->next)\n"
       "        if (0) wbgc__flush_p(h, q);")
mutant("blocked-stack-not-scanned",
       "a marker helping a blocked P marks its stack black without scanning it (or its buffer)",
       "        done += wbgc__scan_stack_black(h, g, q) + 1;",
       "        done += (q->stack_black = 1);")
mutant("attach-while-marking-no-scan",
       "a P attached while a cycle marks never has its stack scanned",
       "        p->req |= WBGC__REQ_SCAN;\n"
       "        __atomic_fetch_add(&h->stacks_pending, 1, __ATOMIC_RELEASE);",
       "        /* MUTANT: no scan requested */")
mutant("scan-p-nothing",
       "wbgc__scan_p scans nothing: no stack or saved registers, concurrent or stop-the-world",
       "    if (h->cfg.flags & WBGC_NO_STACK_SCAN) return 0;\n    uintptr_t lo = p->saved_sp;",
       "    return 0;\n    uintptr_t lo = p->saved_sp;")
mutant("own-stack-scan-skipped",
       "a P's own stack scan at its safepoint only marks the stack black",
       "    WBGC__SAVE_CONTEXT(p);\n    wbgc__scan_stack_black(h, &p->gcw, p);",
       "    WBGC__SAVE_CONTEXT(p);\n    p->stack_black = 1;")
mutant("saved-registers-not-scanned",
       "a stack scan skips the P's saved callee-saved registers",
       "    wbgc__scan_range(h, g, (uintptr_t)p->ctx, (uintptr_t)(p->ctx + WBGC__CTX_SP));\n",
       "",
       expect="nearly redundant on x86-64: at a safepoint wbgc__safepoint_at's prologue pushes every "
              "callee-saved register onto the scanned stack, and wbgc_blocking_begin's inline capture "
              "leaves its ctx array in the caller's (scanned) frame; p->ctx is the only copy only if "
              "the caller reuses that slot inside the blocking region (no test does)")
mutant("shade-index-off-by-one",
       "the marker's object index is one too high (greys the next object)",
       "    uint32_t idx = (uint32_t)(((uint64_t)(v - s->base) * s->divmagic) >> 32);\n"
       "    if (idx >= s->nelems) return;",
       "    uint32_t idx = (uint32_t)(((uint64_t)(v - s->base) * s->divmagic) >> 32) + 1;\n"
       "    if (idx >= s->nelems) return;")
mutant("memmove-partial-no-barrier",
       "wbgc_memmove records no barrier entry for a word it changes only in part",
       "            wbgc__wb_record(p, (void *)w, (void *)v);\n"
       "            memmove((void *)lo, s, hi - lo);",
       "            memmove((void *)lo, s, hi - lo);")
mutant("memmove-whole-no-barrier",
       "wbgc_memmove copies whole aligned words without the barrier while marking",
       "        wbgc__memmove_slow(p, (uintptr_t *)dst, (const uintptr_t *)src, n / sizeof(uintptr_t));",
       "        wbgc__copy_words((uintptr_t *)dst, (const uintptr_t *)src, n / sizeof(uintptr_t));")
mutant("sweep-large-inverted",
       "the large-object sweep frees the marked large objects and keeps the dead ones",
       "        if (s->markbits[0] & 1) {\n            s->markbits[0] = 0;  /* INV-MARKCLEAR */",
       "        if (!(s->markbits[0] & 1)) {\n            s->markbits[0] = 0;  /* INV-MARKCLEAR */")
mutant("sweep-keeps-mark-bits",
       "the small-object sweep leaves mark bits set: the next cycle starts with objects black "
       "that it never scans (INV-MARKCLEAR)",
       "        s->markbits[w] = 0;                            /* INV-MARKCLEAR */\n",
       "")
mutant("wb-reset-odd-count",
       "the barrier buffer's end is an odd number of words past its start (PITFALLS 2): "
       "an append never lands on it",
       "    p->fast.wb_end = p->wbbuf + 2 * n;",
       "    p->fast.wb_end = p->wbbuf + 2 * n - 1;")
mutant("flush-fast-drops-leftover",
       "the general-register flush, out of mark-work room, empties the barrier buffer "
       "instead of keeping the entries it did not shade",
       "                    p->fast.wb_next = to;\n                    return 0;",
       "                    p->fast.wb_next = p->wbbuf;\n                    return 0;")
mutant("mark-word-cache-trusts-clear",
       "the drain's mark-word cache skips a value whose bit it saw clear",
       "                if (mw == mw_last && (mw_seen & bit)) continue;  /* marked */",
       "                if (mw == mw_last) continue;  /* MUTANT */", build="both")
mutant("roots-not-scanned",
       "the root regions are never scanned in a concurrent cycle (yet reported done)",
       "        for (size_t i = 0; i < h->nroots; i++) {\n"
       "            wbgc__scan_range(h, g, h->roots[i].lo, h->roots[i].hi);",
       "        for (size_t i = 0; i < 0; i++) {\n"
       "            wbgc__scan_range(h, g, h->roots[i].lo, h->roots[i].hi);")
mutant("roots-changed-noop",
       "root regions added or removed while marking are not greyed",
       "    if (WBGC__LOAD(h->phase) != WBGC__PHASE_MARK) return;\n    int st = ",
       "    if (1) return;\n    int st = ")
mutant("large-alloc-not-charged",
       "large allocations are not charged to the pacer (no cycle, no assist for them)",
       "    if (wbgc__report_alloc(p, bytes, bytes) < 0) return NULL;",
       "    if (wbgc__report_alloc(p, 0, bytes) < 0) return NULL;")
mutant("check-mode-no-thread-check",
       "check mode's barrier flush does not check that the P is the calling thread's",
       '    int marked = 0, r = 0, own = wbgc__check_p(p, "wbgc_write") == 0;',
       '    int marked = 0, r = 0, own = 1;  /* MUTANT */')
mutant("oblet-last-skipped",
       "a large object's last oblet is never pushed: the end of a big pointer array is not scanned",
       "for (uintptr_t o = obj + WBGC__OBLET; o < end; o += WBGC__OBLET)",
       "for (uintptr_t o = obj + WBGC__OBLET; o + WBGC__OBLET < end; o += WBGC__OBLET)")
mutant("alloc-bit-relaxed",
       "the allocation bit is published RELAXED: a marker may scan an object not yet zeroed",
       "    __atomic_store_n(aw, *aw | bit, __ATOMIC_RELEASE);    /* INV-ALLOCBITS */",
       "    __atomic_store_n(aw, *aw | bit, __ATOMIC_RELAXED);    /* MUTANT */",
       expect="x86 is TSO: a relaxed store is a release store there (aarch64 suite's job)")
mutant("quiescent-ignores-stacks",
       "mark termination does not wait for the stack scans (stacks_pending)",
       "    if (__atomic_load_n(&h->stacks_pending, __ATOMIC_ACQUIRE) != 0) return 0;\n"
       "    pthread_mutex_lock(&h->work_lock);",
       "    pthread_mutex_lock(&h->work_lock);")
mutant("quiescent-ignores-markers",
       "mark termination does not wait for markers holding work taken from the global lists "
       "(nactive)",
       "    int q = h->work_full == NULL && h->nactive == 0;",
       "    int q = h->work_full == NULL;")
mutant("quiescent-ignores-roots",
       "mark termination does not wait for the root-region scan (roots_state)",
       "    if (__atomic_load_n(&h->roots_state, __ATOMIC_ACQUIRE) != 2) return 0;\n"
       "    if (__atomic_load_n(&h->stacks_pending",
       "    if (__atomic_load_n(&h->stacks_pending",
       expect="nearly redundant: every caller of try_mark_done runs mark_some just before, which "
              "claims an unclaimed root scan and holds nactive until it is done; only a marker "
              "that sleeps between the two across a whole cycle end and start sees state 0")
mutant("mark-some-no-help-blocked",
       "markers never scan blocked Ps' stacks: a P blocked for long stalls mark termination",
       "    if (__atomic_load_n(&h->stacks_pending, __ATOMIC_ACQUIRE) > 0) done += wbgc__help_blocked(h, g);\n",
       "")
mutant("detach-no-flush",
       "wbgc_detach drops the P's barrier buffer and mark work instead of handing them over "
       "(PITFALLS 10)",
       "    wbgc__flush_p(h, p);\n    WBGC__ADD(h->cycle_marked, p->black_bytes);",
       "    WBGC__ADD(h->cycle_marked, p->black_bytes);")
mutant("cycle-start-stacks-stay-black",
       "a cycle starts with every stack still black from the last one (no scan owed seen by "
       "the drain or the verifier; insertion half off)",
       "        q->stack_black = 0;\n        q->assist_debt = 0;\n        q->req |= WBGC__REQ_SCAN;",
       "        q->assist_debt = 0;\n        q->req |= WBGC__REQ_SCAN;")
mutant("alloc-black-after-cycle",
       "allocation stays black after mark termination: objects born marked between cycles are "
       "black, unscanned, when the next cycle starts",
       "        q->alloc_black = 0;\n        q->assist_debt = 0;",
       "        q->assist_debt = 0;")
mutant("barrier-never-on",
       "the mark-start pause does not turn the barrier on",
       "        q->fast.wb_on = 1;   /* INV-TRICOLOUR",
       "        q->fast.wb_on = 0;   /* INV-TRICOLOUR")
# precise layouts, wbgc_realloc
mutant("typed-scanned-conservatively",
       "typed objects are scanned in whole, as wbgc_alloc's are (integers keep objects alive)",
       "    if (s->kind == WBGC__KIND_TYPED)\n        l = wbgc__layout_of(",
       "    if (0)\n        l = wbgc__layout_of(")
mutant("typed-oblet-phase-ignored",
       "an oblet of a large typed object is scanned as if a record started at the oblet",
       "    if (lo != obj) rec += (lo - obj) / rbytes * rbytes;  /* an oblet: its phase */",
       "    if (lo != obj) rec = lo;")
mutant("typed-last-pointer-skipped",
       "the typed scan skips the last pointer word of each record",
       "    uint32_t n = l->nptrs;\n    if (lo != obj)",
       "    uint32_t n = l->nptrs - 1;\n    if (lo != obj)")
mutant("typed-partial-record-skipped",
       "the typed scan stops before a last record cut short by the object's end",
       "    for (; rec < hi; rec += rbytes) {\n        for (uint32_t k = 0; k < n; k++) {",
       "    for (; rec + rbytes <= hi; rec += rbytes) {\n        for (uint32_t k = 0; k < n; k++) {")
mutant("verifier-typed-conservative",
       "the verifier scans typed objects in whole, and reports what the typed mark rightly left white",
       "        if (s->kind == WBGC__KIND_TYPED) wbgc__v_typed(",
       "        if (0) wbgc__v_typed(")
mutant("check-typed-word-not-reported",
       "check mode does not report a GC pointer stored into a word its typed object's layout does "
       "not name",
       "        else if (ss->kind == WBGC__KIND_TYPED &&\n                 !wbgc__layout_names(",
       "        else if (0 &&\n                 !wbgc__layout_names(")
mutant("check-fast-accepts-typed-word",
       "check mode's general-register validation accepts a store into any word of a typed object",
       "        if (ss->kind != WBGC__KIND_TYPED) return 1;",
       "        return 1;")
mutant("realloc-memcpy",
       "wbgc_realloc copies a scanned object with memcpy: no barrier on the moved pointers",
       "    else wbgc_memmove(p, q, obj, have);\n    return q;",
       "    else memcpy(q, obj, have);\n    return q;")
mutant("realloc-typed-plain-copy",
       "wbgc_realloc copies a typed object's pointer words with plain stores",
       "        if ((l->bits[k / 64] >> (k % 64)) & 1) wbgc_write(p, &d[w], (void *)sw[w]);",
       "        if (0) wbgc_write(p, &d[w], (void *)sw[w]);")
mutant("realloc-loses-kind",
       "wbgc_realloc's new object is always a scanned one",
       "    void *q = wbgc__alloc(p, size, kind, layout);",
       "    void *q = wbgc__alloc(p, size, WBGC__KIND_SCAN, 0);")
# finalizers, weak references, ephemerons
mutant("weak-get-no-read-barrier",
       "a weak get during a mark does not shade what it returns",
       "        wbgc__shade(h, &p->gcw, obj);                 /* and the mark will not find it dead */",
       "        /* MUTANT */")
mutant("finalizable-not-kept",
       "the sweep queues a dead object's finalizer but frees the object",
       "                if (r->fn)  /* kept for its finalizer; atomic: a weak get may read the word */\n"
       "                    __atomic_fetch_or(&s->markbits[w], bit, __ATOMIC_RELAXED);",
       "                /* MUTANT */")
mutant("finalizable-insides-not-roots",
       "the root job does not scan finalizable objects' insides (what they reach dies first)",
       "                done += wbgc__scan_finalizable(h, g, r->obj);",
       "                /* MUTANT */")
mutant("weak-handle-not-root",
       "the root job does not keep live objects' weak handles alive",
       "            if (r->handle) wbgc__shade(h, g, r->handle);",
       "            /* MUTANT */")
mutant("weak-get-trusts-unswept",
       "between a mark and its sweep, a weak get trusts the handle (a dead object comes back)",
       "    if (s && __atomic_load_n(&s->specials_gen, __ATOMIC_ACQUIRE) != gen) {",
       "    if (0) {")
mutant("eph-value-strong",
       "an ephemeron's value is shaded whether or not its key is marked",
       "    if (!heads) {  /* the key is marked (or no memory): the value now */",
       "    if (1) {")
mutant("eph-key-marked-not-heard",
       "marking a key does not shade what waits on it",
       "        wbgc__key_marked(h, g, heads, idx);",
       "        (void)heads;")
mutant("eph-noscan-key-not-queued",
       "a noscan key is never queued, so what waits on it is never shaded",
       "    if (s->kind != WBGC__KIND_NOSCAN || WBGC__UNLIKELY(__atomic_load_n(&s->waitheads, __ATOMIC_SEQ_CST)))",
       "    if (s->kind != WBGC__KIND_NOSCAN)", build="both")
mutant("eph-waiter-no-recheck",
       "an ephemeron that starts to wait does not look at its key's mark bit again (the marker "
       "of the key may have read the span's flag before it was set)",
       "    if (__atomic_load_n(mw, __ATOMIC_SEQ_CST) & bit)  /* marked meanwhile */",
       "    if (0)",
       expect="a race of a few instructions: the verifier finds it in 10 s stress runs "
              "(./build.sh soak 10), not in the quick suite's 2 s")

mutant("links-not-kept",
       "wbgc_links_keep does nothing: an object read from a link during a mark, held only "
       "where the mark has looked, is freed",
       "    if (WBGC__LOAD(h->links_kept) == cycle) return;",
       "    return;")
mutant("links-not-cleared",
       "the pause that ends a mark leaves the links of dead objects set",
       "            *(void **)e->link = NULL;\n            wbgc__link_gone(h, e);",
       "            wbgc__link_gone(h, e);")
mutant("roots-no-rescan",
       "regions of wbgc_add_roots_rescan are not scanned again at the end of a mark",
       "    wbgc__rescan_roots(h);\n    /* Decided under roots_lock",
       "    /* Decided under roots_lock")

mutant("stw-helpers-not-awaited",
       "the collecting thread of a stop-the-world mark goes on to the sweep without waiting for "
       "the helpers to leave (one may still be marking)",
       "    while (h->stw_markers > 1) pthread_cond_wait(&h->stw_cv, &h->work_lock);",
       "    /* MUTANT */")

mutant("object-start-accepts-interior",
       "wbgc__object_start takes an interior pointer for an object's start",
       "    if (i >= s->nelems || v != s->base + (uintptr_t)i * s->elemsize) return 0;",
       "    if (i >= s->nelems) return 0;")
mutant("layout-offsets-unchecked",
       "wbgc_layout_new accepts pointer offsets that are unaligned or past the record",
       "        if (ptr_offsets[i] % W || ptr_offsets[i] >= record_size) {",
       "        if (0) {")

# ---------------------------------------------------------------------------

def sh(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          stdin=subprocess.DEVNULL, **kw)

def apply(text, m):
    """The mutated text, or (None, why)."""
    n = text.count(m["old"])
    if n == 0:
        return None, "string not found"
    if m["nth"] is None and n != 1:
        return None, "string occurs %d times (name the occurrence)" % n
    k = m["nth"] or 0
    if k >= n:
        return None, "occurrence %d of %d" % (k, n)
    at = -1
    for _ in range(k + 1):
        at = text.index(m["old"], at + 1)
    return text[:at] + m["new"] + text[at + len(m["old"]):], None

def copy_sources(src, dst):
    for f in ("wbgc.h", "wbgc_amd64.h", "test.c"):
        shutil.copy2(os.path.join(src, f), os.path.join(dst, f))
    shutil.copytree(os.path.join(src, "tests"), os.path.join(dst, "tests"))

def build(d, kind, out):
    flags = ["-DWBGC_NO_ASM"] if kind == "noasm" else []
    t0 = time.time()
    r = sh([CC, "-O2", "-g", "-w"] + flags + ["test.c", "-o", out, "-pthread", "-lm"], cwd=d)
    return r.returncode == 0, r.stdout, time.time() - t0

EVIDENCE = re.compile(r"FAIL|wbgc: fatal|verifier:|died with signal|watchdog")

def run_test(d, binary, test, deadline, seed=1):
    """Runs one test; returns a dict: failed, rc, lines [(t, line)], secs, timed_out."""
    env = dict(os.environ)
    env.update(TEST_ENV)
    env["WBGC_STRESS_SEED"] = env["WBGC_FUZZ_SEED"] = str(seed)
    t0 = time.time()
    p = subprocess.Popen([os.path.join(d, binary), test], cwd=d, env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    lines = []
    def reader():
        for raw in p.stdout:
            lines.append((time.time() - t0, raw.decode("utf-8", "replace").rstrip("\n")))
    th = threading.Thread(target=reader, daemon=True)
    th.start()
    timed_out = False
    try:
        p.wait(timeout=max(1.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the test's own process group
        except ProcessLookupError:
            pass
        p.wait()
    th.join(timeout=5)
    secs = time.time() - t0
    summary = None
    for _, l in lines:
        mm = re.match(r"^(\d+) passed, (\d+) failed", l)
        if mm:
            summary = (int(mm.group(1)), int(mm.group(2)))
    failed = timed_out or summary is None or summary[1] > 0 or p.returncode != 0
    return dict(failed=failed, rc=p.returncode, lines=lines, secs=secs, timed_out=timed_out,
                summary=summary)

def short_verifier(line):
    """The verifier's report, shortened: what was lost and what holds it."""
    mm = re.search(r"verifier: cycle (\d+): object \S+ \((\d+) bytes, (\w+), span \S+\) is "
                   r"reachable but the mark left it white, so the sweep would free it: (.*?) holds", line)
    if mm:
        where = re.sub(r"0x[0-9a-f]+", "X", mm.group(4))
        return "cycle %s: a %s-byte %s object left white, held by %s" % (
            mm.group(1), mm.group(2), mm.group(3), where)
    mm = re.search(r"verifier: cycle (\d+): the stack of P .* was not scanned this cycle", line)
    if mm:
        return "cycle %s: a P's stack was not scanned this cycle" % mm.group(1)
    return line[line.index("verifier:"):].strip()

def describe_kill(test, r):
    """(by, first evidence time within the test, cycle) for a failed test."""
    lines = r["lines"]
    text = "\n".join(l for _, l in lines)
    ev = [(t, l) for t, l in lines if EVIDENCE.search(l) and not l.startswith("[ FAIL ]")]
    first_t = ev[0][0] if ev else r["secs"]
    fails = [l.strip() for _, l in lines if "FAIL" in l and not l.startswith("[ FAIL ]")]
    cyc = None
    mm = re.search(r"verifier: cycle (\d+)", text)
    if mm:
        cyc = int(mm.group(1))
    else:
        mm = re.search(r"(\d+) cycles done", text)
        if mm:
            cyc = int(mm.group(1))
    fatal = next((l.strip() for _, l in lines if "wbgc: fatal" in l and "verifier" not in l), None)
    if r["timed_out"]:
        kind = "timeout (%.0f s, killed by mutate.sh)" % r["secs"]
    elif "watchdog" in text:
        kind = "watchdog (hang)"
    elif "verifier:" in text:
        kind = "verifier"
    elif fatal and "assertion failed" in fatal:
        kind = "assertion"
    elif fatal:
        kind = "panic"
    elif "died with signal" in text or (r["rc"] is not None and r["rc"] < 0):
        mm = re.search(r"died with signal (\d+)", text)
        kind = "crash (signal %s)" % (mm.group(1) if mm else -r["rc"])
    elif r["summary"] is None:
        kind = "no result line (exit %s)" % r["rc"]
    else:
        kind = "check"
    detail = fails[0] if fails else ""
    vline = next((l for _, l in lines if "verifier:" in l), None)
    if kind == "verifier" and vline:
        detail = short_verifier(vline)
    elif fatal and kind in ("assertion", "panic", "crash (signal 6)"):
        detail = fatal
    detail = re.sub(r"^(on_error: |FAIL )", "", detail)
    detail = re.sub(r":\s+-- ", ": ", detail)  # FAILF's empty expression
    if len(detail) > 200:
        detail = detail[:197] + "..."
    return "%s, %s: %s" % (test, kind, detail) if detail else "%s, %s" % (test, kind), first_t, cyc

def run_suite(d, binary, tests, budget, stop_at_first=True, echo=None, seed=1):
    """Runs tests one at a time. Returns dict: killed, by, secs (until the end of the failing
    test or of the suite), kill_t (first evidence, from the suite's start), cycle, ran."""
    t0 = time.time()
    deadline = t0 + budget
    ran = []
    res = dict(killed=False, by="", secs=0.0, kill_t=None, cycle=None, ran=ran, failures=[])
    for test in tests:
        if time.time() >= deadline:
            res.update(killed=True, by="%s, timeout (per-mutant budget %.0f s used up)" % (test, budget))
            break
        start = time.time() - t0
        r = run_test(d, binary, test, deadline, seed)
        ran.append(test)
        if echo:
            echo(test, r)
        if r["failed"]:
            by, first_t, cyc = describe_kill(test, r)
            res["failures"].append((test, by, r))
            if not res["killed"]:
                res.update(killed=True, by=by, kill_t=start + first_t, cycle=cyc)
            if stop_at_first:
                break
    res["secs"] = time.time() - t0
    return res

def md(s):
    return str(s).replace("|", "\\|").replace("\n", " ")

def main(argv):
    names = [a for a in argv if not a.startswith("-")]
    opts = [a for a in argv if a.startswith("-")]
    if any(o not in ("--list", "-l", "--help", "-h") for o in opts):
        print("usage: bash tests/mutate.sh [--list] [NAME...]")
        return 2
    if "--help" in opts or "-h" in opts:
        print(open(os.path.join(REPO, "tests", "mutate.sh")).read().split("set -u")[0])
        return 0
    known = {m["name"]: m for m in M}
    unknown = [n for n in names if n not in known]
    if unknown:
        print("unknown mutant(s): %s (see --list)" % " ".join(unknown))
        return 2
    sel = [known[n] for n in names] if names else list(M)

    # the sources, once for the whole run
    snap = tempfile.mkdtemp(prefix="wbgc-mutate-")
    try:
        copy_sources(REPO, snap)
        g = sh(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
        head = g.stdout.strip() if g.returncode == 0 else "(not a git work tree)"
        g = sh(["git", "-C", REPO, "status", "--porcelain", "--", "wbgc.h", "wbgc_amd64.h",
                "test.c", "tests"])
        dirty = {l[3:] for l in g.stdout.splitlines() if l[3:] != "tests/mutate.sh"} \
            if g.returncode == 0 else set()
        src_desc = head + (" + uncommitted changes (%s)" % ", ".join(
            sorted(dirty)) if dirty else "")
        texts = {}
        for f in ("wbgc.h", "wbgc_amd64.h"):
            texts[f] = open(os.path.join(snap, f)).read()
        applies = {}
        for m in M:
            applies[m["name"]] = apply(texts[m["file"]], m)

        if "--list" in opts or "-l" in opts:
            print("mutants of %s (%s):" % ("wbgc.h", src_desc))
            for m in sel:
                txt, why = applies[m["name"]]
                st = "ok" if txt is not None else "DOES NOT APPLY: " + why
                print("  %-30s [%s, %s] %s%s" % (m["name"], m["build"], st, m["what"],
                      ("  (expected survivor: %s)" % m["expect"]) if m["expect"] else ""))
            return 0 if all(applies[m["name"]][0] is not None for m in sel) else 1

        print("== wbgc mutation run against %s, %d mutant(s)" % (src_desc, len(sel)))
        # baseline: every build kind the selection needs must pass the quick suite
        kinds = []
        for m in sel:
            for k in (("asm", "noasm") if m["build"] == "both" else (m["build"],)):
                if k not in kinds:
                    kinds.append(k)
        base_tests = None
        for k in kinds:
            ok, out, bt = build(snap, k, "t_" + k)
            if not ok:
                print(out[-3000:])
                print("!! the unmutated header does not build (%s)" % k)
                return 1
            if base_tests is None:
                have = sh([os.path.join(snap, "t_" + k), "--list"]).stdout.split()
                base_tests = [t for t in TESTS if t in have]
                missing = [t for t in TESTS if t not in have]
                print("== quick suite (%d tests): %s" % (len(base_tests), " ".join(base_tests)))
                if missing:
                    print("   (not in this test.c: %s)" % " ".join(missing))
            res = run_suite(snap, "t_" + k, base_tests, 600, stop_at_first=False)
            if res["killed"]:
                print("!! baseline (%s build) fails the quick suite:" % k)
                for test, by, r in res["failures"]:
                    print("   " + by)
                    for _, l in r["lines"][-15:]:
                        print("     | " + l)
                return 1
            print("== baseline (%s build, built in %.0f s): %d passed in %.1f s"
                  % (k, bt, len(base_tests), res["secs"]))

        rows = []
        n_k = n_s = n_na = 0
        t_run = time.time()
        for i, m in enumerate(sel):
            txt, why = applies[m["name"]]
            tag = "[%2d/%d] %-30s" % (i + 1, len(sel), m["name"])
            if txt is None:
                n_na += 1
                print("%s DID NOT APPLY: %s" % (tag, why))
                rows.append((m, "did not apply", why, ""))
                continue
            d = tempfile.mkdtemp(prefix="wbgc-mutant-")
            try:
                copy_sources(snap, d)
                with open(os.path.join(d, m["file"]), "w") as f:
                    f.write(txt)
                kinds = ("asm", "noasm") if m["build"] == "both" else (m["build"],)
                result = None
                notes = []
                for k in kinds:
                    ok, out, bt = build(d, k, "t_" + k)
                    if not ok:
                        # a mutant that does not compile is an error in this list
                        err = next((l for l in out.splitlines() if "error" in l), out[-200:])
                        result = dict(killed=None, by="does not compile (%s): %s" % (k, err.strip()),
                                      secs=0, kill_t=None, cycle=None)
                        break
                    t_k = time.time()
                    for seed in range(1, PASSES + 1):
                        r = run_suite(d, "t_" + k, base_tests,
                                      max(5.0, MUTANT_TIMEOUT - (time.time() - t_k)), seed=seed)
                        r["kind"] = k
                        if seed > 1 and r["killed"]:
                            r["by"] += " [pass %d, seed %d]" % (seed, seed)
                            if r["kill_t"] is not None:
                                r["kill_t"] += time.time() - t_k - r["secs"]
                        result = r
                        if r["killed"]:
                            break
                    notes.append("%s: %d pass%s, %.0f s" % (k, seed, "es" if seed > 1 else "",
                                                           time.time() - t_k))
                    if result["killed"]:
                        break
                if result["killed"] is None:
                    n_na += 1
                    print("%s ERROR: %s" % (tag, result["by"]))
                    rows.append((m, "did not apply", result["by"], ""))
                    continue
                build_note = "" if len(kinds) == 1 and kinds[0] == "asm" else \
                    " [%s build]" % result.get("kind", kinds[-1])
                if result["killed"]:
                    n_k += 1
                    tk = "%.1f" % result["kill_t"] if result["kill_t"] is not None else "%.1f" % result["secs"]
                    if result["cycle"] is not None:
                        tk += " / cycle %d" % result["cycle"]
                    tks = tk.replace(" / ", " s, ", 1) if " / " in tk else tk + " s"
                    status = "killed" + (" (unexpectedly)" if m["expect"] else "")
                    print("%s KILLED in %s%s by %s" % (tag, tks, build_note, result["by"]))
                    rows.append((m, status, result["by"] + build_note, tk))
                else:
                    n_s += 1
                    status = "survived" + (" (expected survivor: %s)" % m["expect"] if m["expect"] else "")
                    print("%s SURVIVED (%s)%s" % (tag, ", ".join(notes),
                          "; expected: " + m["expect"] if m["expect"] else ""))
                    rows.append((m, status, "-", "-"))
            finally:
                if KEEP:
                    print("   (kept %s)" % d)
                else:
                    shutil.rmtree(d, ignore_errors=True)

        print()
        print("Mutants of wbgc.h at %s; quick suite: %s; WBGC_VERIFY=1, WBGC_STRESS_SECONDS=2; "
              "%.0f s in all." % (src_desc, " ".join(base_tests), time.time() - t_run))
        print()
        print("| mutant | what it breaks | killed? | by (test and check, or the verifier) "
              "| time to kill (s) / cycles if known |")
        print("| --- | --- | --- | --- | --- |")
        for m, status, by, tk in rows:
            print("| %s | %s | %s | %s | %s |" % (md(m["name"]), md(m["what"]), md(status), md(by),
                                                md(tk)))
        print()
        print("mutants: %d killed, %d survived, %d did not apply" % (n_k, n_s, n_na))
        return 1 if n_na else 0
    finally:
        if KEEP:
            print("(kept the sources in %s)" % snap)
        else:
            shutil.rmtree(snap, ignore_errors=True)

sys.exit(main(sys.argv[1:]))
PYTHON
