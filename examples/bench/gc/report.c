/* report.c -- runs the cross-collector benchmarks (gcbench.c, binarytrees.c,
 * mutate.c, each built once per backend by gcb.h, and their Go twins in
 * examples/bench/go) and writes the tables and charts: examples/bench/RESULTS.md
 * and the SVG files in examples/bench/charts.
 *
 *   ./build.sh                          # builds everything in build/gcb, report too
 *   build/gcb/report                    # the real run: 5 interleaved runs, ~25 min
 *   build/gcb/report --quick            # smoke run: 1 run, small sizes, results
 *                                       # in build/gcb/quick/ (RESULTS.md untouched)
 *   build/gcb/report --runs 3 --only binarytrees
 *   ./build.sh bench [--quick]          # the older benchmarks, then this
 *
 * Options: --runs N (default 5), --quick, --only NAME (a benchmark, e.g.
 * gcbench-2t, or a program, e.g. gcbench; repeatable), --bin DIR (where the
 * binaries are; default: this program's directory), --results FILE and
 * --charts DIR (default examples/bench/RESULTS.md and examples/bench/charts
 * for a full run, build/gcb/quick/... with --quick), --no-write.
 *
 * HOW IT MEASURES
 *
 * Each benchmark x backend x mode is a separate process, started with fork
 * and exec. Runs are interleaved: run 1 of every benchmark and backend, then
 * run 2, ..., so that a slow spell of the (shared, noisy) machine hits every
 * backend alike. The figures per row are medians over runs, except pauses,
 * which are pooled over all runs.
 *
 *   wall      measured by the child itself, from gcb_init (before the
 *             collector starts) to gcb_done (after the last check): process
 *             start-up and teardown are left out.
 *   CPU       user + system time of the child and all its threads (marker
 *             threads included), from wait4's rusage.
 *   peak RSS  ru_maxrss from wait4: the most resident memory the process had.
 *   cycles    wbgc: wbgc_stats.cycles. Boehm: GC_get_gc_no() at the end
 *             minus at start-up. Go: runtime.MemStats.NumGC, likewise.
 *   pauses    wbgc: every stop-the-world pause wbgc records (its stats keep
 *             the count, the maximum and a ring of the last 256 durations);
 *             a sampler thread in the child that holds no P calls
 *             wbgc_get_stats every 5 ms and takes the ring's new entries, so
 *             every pause is seen unless more than 256 come within 5 ms
 *             (those are counted as lost and reported). Boehm:
 *             GC_set_on_collection_event; a pause is the window from
 *             GC_EVENT_PRE_STOP_WORLD to GC_EVENT_POST_START_WORLD (before
 *             the first thread is signalled to stop until after the last is
 *             restarted), timed with CLOCK_MONOTONIC into preallocated
 *             buffers. Go (examples/bench/go/gcb/gcb.go says how, with
 *             the runtime source it was checked in): one per GC cycle, the
 *             cycle's runtime.MemStats.PauseNs entry, which is the SUM of
 *             the cycle's stop-the-world phases (sweep termination and mark
 *             termination, each from the request to stop), taken from the
 *             256-entry ring without missing any; the number of single
 *             phases and the longest one (to its histogram bucket's upper
 *             edge) come from runtime/metrics' /gc/pauses:seconds and are
 *             reported below the table. None of the counts includes time a
 *             thread spends marking on its own while the others run (wbgc's
 *             and Go's assists, Boehm's incremental steps).
 *   longest collection
 *             Boehm: the longest GC_EVENT_START -> GC_EVENT_END, a whole
 *             collection: with one marker the thread that triggered it is
 *             held for all of it. Boehm's incremental mode does not report
 *             these events ("-"). wbgc and Go: the longest pause, since
 *             their marking and sweeping run beside the program.
 *   ratios    wall / Boehm: this row's wall time over Boehm parallel's
 *             (Boehm's default configuration) in the same run, median over
 *             runs. RSS / Boehm likewise with the medians. Boehm max pause /
 *             this: Boehm parallel's longest pause over this row's.
 *
 * The charts are SVG written by this program: per benchmark, the
 * distribution of pauses (a CDF over a log time axis) and the resident size
 * over time in the last run (the child samples /proc/self/statm every 5 ms;
 * for wbgc conc and Go also the bytes in objects: heap_alloc, HeapAlloc).
 *
 * A backend whose binaries are missing (Boehm without libgc-dev, Go without
 * golang-go) is skipped with one line. A child that fails (exit status, signal, wrong check) is
 * reported with its log, and its row says FAILED. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "../bench.h"

/* ---- what runs ------------------------------------------------------------ */

typedef struct {
    const char *name, *title, *prog;
    const char *args[4];
    int collectors_only;   /* no malloc variant */
    int chart;             /* draw its charts */
    int wall_target;       /* the wall-time target applies */
} bench;

static const bench BENCHES[] = {
    { "gcbench-1t", "GCBench, 1 thread", "gcbench", { "--threads", "1" }, 0, 1, 1 },
    { "gcbench-2t", "GCBench, 2 threads (each does the full tree work)", "gcbench", { "--threads", "2" }, 0, 1, 1 },
    { "gcbench-4t", "GCBench, 4 threads (each does the full tree work)", "gcbench", { "--threads", "4" }, 0, 1, 0 },
    { "binarytrees-1t", "binary-trees, depth 21, 1 thread", "binarytrees", { "21", "--threads", "1" }, 0, 1, 1 },
    { "binarytrees-2t", "binary-trees, depth 21, 2 threads (sharing the work)", "binarytrees", { "21", "--threads", "2" }, 0, 1, 1 },
    { "mutate", "mutate: 100 MiB live graph, 16 M operations", "mutate", { NULL }, 1, 1, 0 },
};
enum { NB = sizeof BENCHES / sizeof BENCHES[0] };

typedef struct {
    const char *backend, *mode, *label, *color, *dash;
} variant;

static const variant VARIANTS[] = {
    { "wbgc", "conc", "wbgc conc", "#1f77b4", "" },
    { "wbgc", "incr", "wbgc incr", "#17becf", "" },
    { "wbgc", "stw", "wbgc stw", "#9467bd", "" },
    { "boehm", "single", "Boehm single", "#ff7f0e", "7 4" },
    { "boehm", "parallel", "Boehm parallel", "#d62728", "7 4" },
    { "boehm", "incr", "Boehm incr", "#8c8c00", "7 4" },
    { "go", "conc", "Go", "#2ca02c", "10 3 2 3" },
    { "malloc", "malloc", "malloc/free", "#7f7f7f", "2 3" },
};
enum { NV = sizeof VARIANTS / sizeof VARIANTS[0], V_WBGC_CONC = 0, V_BOEHM_PAR = 4, V_GO = 6, MAX_RUNS = 50 };

/* ---- results ------------------------------------------------------------- */

typedef struct { double *v; size_t n, cap; } dvec;

static void dpush(dvec *a, double x) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 1024;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
        if (!a->v) { fprintf(stderr, "report: out of memory\n"); exit(1); }
    }
    a->v[a->n++] = x;
}

typedef struct {
    int ran, ok;
    double wall, cpu, rss_mib, cycles;
    long lost;
    int markers;
    char why[256];           /* what failed */
    dvec pauses, colls;      /* ns */
    dvec st, srss, sheap;    /* samples: s, MiB, MiB */
    double stw_phases, stw_max;   /* Go: single stop-the-world phases, longest (ns, bucket edge) */
    char version[64];        /* Go: runtime.Version(), GOGC, GOMAXPROCS */
    int gogc, gomaxprocs;
} result;

static result R[NB][NV][MAX_RUNS];

static struct {
    int runs, quick, write, nonly;
    const char *only[16];
    char bin[1024], results[4096], charts[4096], tmp[4096];
} O = { .runs = 5, .write = 1 };

static int have_backend[NV];

/* ---- running one child ---------------------------------------------------- */

static int parse_result(const char *path, result *r) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[512], check[256] = "missing";
    int got_wall = 0;
    while (fgets(line, sizeof line, f)) {
        double a, b, c;
        if (line[0] == 'p' && line[1] == ' ') dpush(&r->pauses, strtod(line + 2, NULL));
        else if (line[0] == 'c' && line[1] == ' ') dpush(&r->colls, strtod(line + 2, NULL));
        else if (line[0] == 's' && sscanf(line + 1, "%lf %lf %lf", &a, &b, &c) == 3) {
            dpush(&r->st, a / 1000);
            dpush(&r->srss, b / 1024);
            dpush(&r->sheap, c / 1024);
        } else if (sscanf(line, "wall_s %lf", &a) == 1) { r->wall = a; got_wall = 1; }
        else if (sscanf(line, "cycles %lf", &a) == 1) r->cycles = a;
        else if (sscanf(line, "lost %ld", &r->lost) == 1) {}
        else if (sscanf(line, "markers %d", &r->markers) == 1) {}
        else if (sscanf(line, "stw_phases %lf", &r->stw_phases) == 1) {}
        else if (sscanf(line, "stw_max_ns %lf", &r->stw_max) == 1) {}
        else if (sscanf(line, "version %63s", r->version) == 1) {}
        else if (sscanf(line, "gogc %d", &r->gogc) == 1) {}
        else if (sscanf(line, "gomaxprocs %d", &r->gomaxprocs) == 1) {}
        else if (!strncmp(line, "check ", 6)) {
            snprintf(check, sizeof check, "%.200s", line + 6);
            check[strcspn(check, "\n")] = 0;
        }
    }
    fclose(f);
    if (!got_wall || strcmp(check, "ok")) {
        snprintf(r->why, sizeof r->why, "check: %s", check);
        return -1;
    }
    return 0;
}

static void print_log_tail(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    char lines[20][512];
    int n = 0;
    while (fgets(lines[n % 20], sizeof lines[0], f)) n++;
    fclose(f);
    for (int i = n > 20 ? n - 20 : 0; i < n; i++) fprintf(stderr, "    | %s", lines[i % 20]);
}

static void run_one(int b, int v, int run) {
    const bench *B = &BENCHES[b];
    const variant *V = &VARIANTS[v];
    result *r = &R[b][v][run];
    char exe[4200], out[4200], log[4200];
    snprintf(exe, sizeof exe, "%s/%s.%s", O.bin, B->prog, V->backend);
    snprintf(out, sizeof out, "%s/%s.%s.%s.out", O.tmp, B->name, V->backend, V->mode);
    snprintf(log, sizeof log, "%s/%s.%s.%s.log", O.tmp, B->name, V->backend, V->mode);
    const char *argv[12];
    int n = 0;
    argv[n++] = exe;
    argv[n++] = "--mode";
    argv[n++] = V->mode;
    for (int i = 0; i < 4 && B->args[i]; i++) argv[n++] = B->args[i];
    if (O.quick) argv[n++] = "--quick";
    argv[n] = NULL;
    unlink(out);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) { perror("report: fork"); exit(1); }
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); close(fd); }
        setenv("GCB_OUT", out, 1);
        execv(exe, (char *const *)argv);
        fprintf(stderr, "report: cannot run %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) { perror("report: wait4"); exit(1); }
    r->ran = 1;
    r->cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
             ru.ru_stime.tv_usec / 1e6;
    r->rss_mib = (double)ru.ru_maxrss / 1024;   /* Linux: KiB */
    int pr = parse_result(out, r);
    if (WIFSIGNALED(status)) snprintf(r->why, sizeof r->why, "killed by signal %d", WTERMSIG(status));
    else if (WEXITSTATUS(status)) {
        char was[sizeof r->why];
        memcpy(was, r->why, sizeof was);
        snprintf(r->why, sizeof r->why, "exit status %d%s%.200s", WEXITSTATUS(status), was[0] ? ", " : "", was);
    }
    r->ok = pr == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!r->ok) {
        if (!r->why[0]) snprintf(r->why, sizeof r->why, "no results");
        fprintf(stderr, "!! %s %s: FAILED (%s); log %s:\n", B->name, V->label, r->why, log);
        print_log_tail(log);
    } else {
        fprintf(stderr, "   run %d %-15s %-15s %7.2f s wall %7.2f s cpu %7.1f MiB\n", run + 1, B->name,
                V->label, r->wall, r->cpu, r->rss_mib);
    }
}

/* ---- statistics ------------------------------------------------------------ */

static double pctile(double *v, size_t n, double q) {   /* v sorted */
    if (!n) return NAN;
    size_t k = (size_t)ceil(q * (double)n);
    if (k < 1) k = 1;
    return v[k - 1];
}

typedef struct {
    int nok, nruns;
    double wall, cpu, rss, cycles, npauses;
    double pmax, p99, pmean, cmax, wall_ratio, rss_ratio;
    long lost;
    int markers;
    double stw_phases, stw_max;   /* Go: median single phases per run, longest over runs */
    const result *last;           /* the last successful run (Go: its version, GOGC...) */
    dvec all;   /* pooled pauses, sorted */
} summary;

static summary S[NB][NV];

static void summarise(int b, int v) {
    summary *s = &S[b][v];
    double wall[MAX_RUNS], cpu[MAX_RUNS], rss[MAX_RUNS], cyc[MAX_RUNS], np[MAX_RUNS], ratio[MAX_RUNS];
    double stw[MAX_RUNS];
    int n = 0, nr = 0;
    s->cmax = NAN;
    for (int r = 0; r < O.runs; r++) {
        result *x = &R[b][v][r];
        if (!x->ran) continue;
        s->nruns++;
        if (!x->ok) continue;
        wall[n] = x->wall;
        cpu[n] = x->cpu;
        rss[n] = x->rss_mib;
        cyc[n] = x->cycles;
        np[n] = (double)x->pauses.n;
        stw[n] = x->stw_phases;
        n++;
        s->last = x;
        if (x->stw_max > s->stw_max) s->stw_max = x->stw_max;
        s->lost += x->lost;
        s->markers = x->markers;
        for (size_t i = 0; i < x->pauses.n; i++) dpush(&s->all, x->pauses.v[i]);
        for (size_t i = 0; i < x->colls.n; i++)
            if (isnan(s->cmax) || x->colls.v[i] > s->cmax) s->cmax = x->colls.v[i];
        result *bp = &R[b][V_BOEHM_PAR][r];
        if (bp->ran && bp->ok) ratio[nr++] = x->wall / bp->wall;
    }
    s->nok = n;
    if (!n) return;
    s->wall = median(wall, n);
    s->cpu = median(cpu, n);
    s->rss = median(rss, n);
    s->cycles = median(cyc, n);
    s->npauses = median(np, n);
    s->stw_phases = median(stw, n);
    s->wall_ratio = nr ? median(ratio, nr) : NAN;
    qsort(s->all.v, s->all.n, sizeof(double), cmp_double);
    s->pmax = s->all.n ? s->all.v[s->all.n - 1] : NAN;
    s->p99 = pctile(s->all.v, s->all.n, 0.99);
    double sum = 0;
    for (size_t i = 0; i < s->all.n; i++) sum += s->all.v[i];
    s->pmean = s->all.n ? sum / (double)s->all.n : NAN;
    /* wbgc and Go mark and sweep beside the program: their longest
       collection, for the mutator, is their longest pause */
    if (VARIANTS[v].backend[0] == 'w' || !strcmp(VARIANTS[v].backend, "go")) s->cmax = s->pmax;
}

/* ---- formatting ----------------------------------------------------------- */

static const char *fmt_ns(double ns, char *buf, size_t n) {
    if (isnan(ns)) snprintf(buf, n, "-");
    else if (ns < 1e6) snprintf(buf, n, "%.1f µs", ns / 1e3);
    else if (ns < 1e9) snprintf(buf, n, "%.2f ms", ns / 1e6);
    else snprintf(buf, n, "%.2f s", ns / 1e9);
    return buf;
}

static const char *fmt_ratio(double x, char *buf, size_t n) {
    if (isnan(x) || isinf(x)) snprintf(buf, n, "-");
    else if (x >= 100) snprintf(buf, n, "%.0fx", x);
    else snprintf(buf, n, "%.2fx", x);
    return buf;
}

static int selected(const bench *B) {
    if (!O.nonly) return 1;
    for (int i = 0; i < O.nonly; i++)
        if (!strcmp(O.only[i], B->name) || !strcmp(O.only[i], B->prog)) return 1;
    return 0;
}

static int applies(int b, int v) {
    if (!have_backend[v]) return 0;
    return !(BENCHES[b].collectors_only && !strcmp(VARIANTS[v].backend, "malloc"));
}

static void print_table(FILE *f, int b) {
    const bench *B = &BENCHES[b];
    char a1[32], a2[32], a3[32], a4[32], a5[32], a6[32], a7[32];
    fprintf(f, "### %s%s\n\n", B->title, O.quick ? " (--quick: reduced size)" : "");
    fprintf(f, "`%s.<backend> --mode <mode>", B->prog);
    for (int i = 0; i < 4 && B->args[i]; i++) fprintf(f, " %s", B->args[i]);
    fprintf(f, "%s`\n\n", O.quick ? " --quick" : "");
    fprintf(f, "| backend / mode | wall (s) | CPU (s) | peak RSS (MiB) | GC cycles | pauses | "
               "max pause | p99 pause | mean pause | longest collection | wall / Boehm | RSS / Boehm | "
               "Boehm max pause / this |\n");
    fprintf(f, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    summary *bp = &S[b][V_BOEHM_PAR];
    for (int v = 0; v < NV; v++) {
        if (!applies(b, v)) continue;
        summary *s = &S[b][v];
        if (!s->nok) {
            fprintf(f, "| %s | FAILED (%d of %d runs) | | | | | | | | | | | |\n", VARIANTS[v].label,
                    s->nruns - s->nok, s->nruns);
            continue;
        }
        int gc = strcmp(VARIANTS[v].backend, "malloc") != 0;
        fprintf(f, "| %s%s | %.3f | %.3f | %.1f | ", VARIANTS[v].label,
                s->nok < s->nruns ? " (some runs FAILED)" : "", s->wall, s->cpu, s->rss);
        if (gc) fprintf(f, "%.0f | %.0f | ", s->cycles, s->npauses);
        else fprintf(f, "- | - | ");
        fprintf(f, "%s | %s | %s | %s | %s | %s | %s |\n", fmt_ns(gc ? s->pmax : NAN, a1, sizeof a1),
                fmt_ns(gc ? s->p99 : NAN, a2, sizeof a2), fmt_ns(gc ? s->pmean : NAN, a3, sizeof a3),
                fmt_ns(gc ? s->cmax : NAN, a4, sizeof a4), fmt_ratio(s->wall_ratio, a5, sizeof a5),
                fmt_ratio(bp->nok ? s->rss / bp->rss : NAN, a6, sizeof a6),
                fmt_ratio(gc && bp->nok ? bp->pmax / s->pmax : NAN, a7, sizeof a7));
    }
    fprintf(f, "\n");
    long lost = 0;
    for (int v = 0; v < NV; v++) if (applies(b, v)) lost += S[b][v].lost;
    if (lost) fprintf(f, "Pauses lost (not recorded: more than the ring held between two samples): %ld.\n\n", lost);
    if (have_backend[V_BOEHM_PAR] && S[b][V_BOEHM_PAR].nok)
        fprintf(f, "Boehm parallel ran %d markers (GC_get_parallel() + 1); wbgc conc ran %ld background "
                   "mark worker(s) (mark_workers = -1: a quarter of the CPUs, at least 1).\n\n",
                S[b][V_BOEHM_PAR].markers, (long)(sysconf(_SC_NPROCESSORS_ONLN) / 4 > 1 ? sysconf(_SC_NPROCESSORS_ONLN) / 4 : 1));
    summary *g = &S[b][V_GO];
    if (applies(b, V_GO) && g->nok) {
        char m[32];
        fprintf(f, "Go (%s, GOGC=%d, GOMAXPROCS=%d; background mark workers take a quarter of GOMAXPROCS): "
                   "each of its pauses is one GC cycle's `MemStats.PauseNs`, the sum of that cycle's "
                   "stop-the-world phases (sweep termination + mark termination). ",
                g->last->version, g->last->gogc, g->last->gomaxprocs);
        if (g->stw_max > 0)
            fprintf(f, "Counted one by one (`/gc/pauses:seconds`) there were %.0f phases in %.0f cycles "
                       "(medians per run), and the longest single phase was at most %s (its histogram "
                       "bucket's upper edge).\n\n",
                    g->stw_phases, g->cycles, fmt_ns(g->stw_max, m, sizeof m));
        else fprintf(f, "\n\n");
    }
}

/* The targets, for wbgc's default (conc) against Boehm's default. */
static void print_targets(FILE *f) {
    if (!have_backend[V_BOEHM_PAR]) return;
    fprintf(f, "### Targets (wbgc conc against Boehm parallel)\n\n");
    fprintf(f, "| benchmark | wall / Boehm (target <= 1.0, aim 0.8) | Boehm max pause / wbgc (target >= 20) | "
               "wbgc max pause (target < 1 ms) | RSS / Boehm (target <= 1.3) |\n");
    fprintf(f, "| --- | --- | --- | --- | --- |\n");
    for (int b = 0; b < NB; b++) {
        if (!selected(&BENCHES[b]) || !have_backend[V_BOEHM_PAR]) continue;
        summary *w = &S[b][V_WBGC_CONC], *bp = &S[b][V_BOEHM_PAR];
        if (!w->nok || !bp->nok) continue;
        char a[32], c[32], d[32], e[32];
        double pr = bp->pmax / w->pmax, rr = w->rss / bp->rss;
        if (BENCHES[b].wall_target)
            snprintf(a, sizeof a, "%.2fx %s", w->wall_ratio,
                     w->wall_ratio <= 0.8 ? "met (aim too)" : w->wall_ratio <= 1.0 ? "met" : "MISSED");
        else snprintf(a, sizeof a, "%.2fx (no target)", w->wall_ratio);
        snprintf(c, sizeof c, "%.0fx %s", pr, pr >= 20 ? "met" : "MISSED");
        fmt_ns(w->pmax, d, sizeof d);
        snprintf(d + strlen(d), sizeof d - strlen(d), " %s", w->pmax < 1e6 ? "met" : "MISSED");
        snprintf(e, sizeof e, "%.2fx %s", rr, rr <= 1.3 ? "met" : "MISSED");
        fprintf(f, "| %s | %s | %s | %s | %s |\n", BENCHES[b].name, a, c, d, e);
    }
    fprintf(f, "\n");
}

/* ---- SVG charts ------------------------------------------------------------ */

enum { W = 760, H = 440, ML = 70, MR = 190, MT = 40, MB = 55 };

static FILE *svg_open(const char *path, const char *title) {
    FILE *f = fopen(path, "w");
    if (!f) { fprintf(stderr, "report: cannot write %s: %s\n", path, strerror(errno)); return NULL; }
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n"
               "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n"
               "<text x=\"%d\" y=\"22\" font-size=\"15\" font-weight=\"bold\">%s</text>\n",
            W, H, W, H, W, H, ML, title);
    return f;
}

static void svg_frame(FILE *f, const char *xlabel, const char *ylabel) {
    int pw = W - ML - MR, ph = H - MT - MB;
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n", ML, MT, pw, ph);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", ML + pw / 2, H - 12, xlabel);
    fprintf(f, "<text transform=\"translate(16 %d) rotate(-90)\" text-anchor=\"middle\">%s</text>\n", MT + ph / 2, ylabel);
}

static void svg_legend(FILE *f, int k, const variant *V, const char *suffix, const char *dash) {
    int x = W - MR + 15, y = MT + 10 + 20 * k;
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2.5\" stroke-dasharray=\"%s\"/>\n",
            x, y, x + 28, y, V->color, dash);
    fprintf(f, "<text x=\"%d\" y=\"%d\">%s%s</text>\n", x + 34, y + 4, V->label, suffix);
}

/* a polyline of at most ~1500 points (every k-th point kept, and the last) */
static void svg_line(FILE *f, const double *xs, const double *ys, size_t n, const char *color, const char *dash) {
    size_t step = n > 1500 ? n / 1500 : 1;
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" stroke-dasharray=\"%s\" points=\"", color, dash);
    for (size_t i = 0; i < n; i += step) fprintf(f, "%.1f,%.1f ", xs[i], ys[i]);
    if (n && (n - 1) % step) fprintf(f, "%.1f,%.1f", xs[n - 1], ys[n - 1]);
    fprintf(f, "\"/>\n");
}

static double nice_step(double range) {
    double e = pow(10, floor(log10(range / 5))), m = range / 5 / e;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * e;
}

/* (a) pause distribution: fraction of pauses <= x, x on a log scale */
static void chart_pauses(int b, const char *path) {
    char title[256];
    snprintf(title, sizeof title, "Pause times: %s%s", BENCHES[b].title, O.quick ? " (--quick)" : "");
    double lo = INFINITY, hi = 0;
    for (int v = 0; v < NV; v++) {
        if (!applies(b, v) || !S[b][v].all.n) continue;
        dvec *a = &S[b][v].all;
        lo = fmin(lo, fmax(a->v[0], 100));
        hi = fmax(hi, a->v[a->n - 1]);
    }
    if (!(hi > 0)) return;
    FILE *f = svg_open(path, title);
    if (!f) return;
    double l0 = floor(log10(lo / 1e3)), l1 = ceil(log10(hi / 1e3));   /* decades of µs */
    if (l1 <= l0) l1 = l0 + 1;
    int pw = W - ML - MR, ph = H - MT - MB;
#define PX(us) (ML + (log10(us) - l0) / (l1 - l0) * pw)
#define PY(q) (MT + ph - (q) * ph)
    for (double d = l0; d <= l1 + 1e-9; d++) {
        double x = ML + (d - l0) / (l1 - l0) * pw;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n", x, MT, x, MT + ph);
        double us = pow(10, d);
        char lab[32];
        if (us < 1000) snprintf(lab, sizeof lab, "%g µs", us);
        else if (us < 1e6) snprintf(lab, sizeof lab, "%g ms", us / 1e3);
        else snprintf(lab, sizeof lab, "%g s", us / 1e6);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x, MT + ph + 16, lab);
    }
    for (int i = 0; i <= 4; i++) {
        double q = i / 4.0;
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", ML, PY(q), ML + pw, PY(q));
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n", ML - 6, PY(q) + 4, q);
    }
    svg_frame(f, "pause duration (log scale)", "fraction of pauses at most this long");
    int k = 0;
    for (int v = 0; v < NV; v++) {
        if (!applies(b, v) || !S[b][v].all.n || !strcmp(VARIANTS[v].backend, "malloc")) continue;
        dvec *a = &S[b][v].all;
        double *xs = malloc(2 * a->n * sizeof *xs), *ys = malloc(2 * a->n * sizeof *ys);
        size_t m = 0;
        for (size_t i = 0; i < a->n; i++) {   /* a step: up at each pause */
            double x = PX(fmax(a->v[i], 100) / 1e3);
            xs[m] = x; ys[m++] = PY((double)i / a->n);
            xs[m] = x; ys[m++] = PY((double)(i + 1) / a->n);
        }
        svg_line(f, xs, ys, m, VARIANTS[v].color, VARIANTS[v].dash);
        free(xs);
        free(ys);
        char suffix[64];
        snprintf(suffix, sizeof suffix, "%s (%zu)", v == V_GO ? " per cycle" : "", a->n);
        svg_legend(f, k, &VARIANTS[v], suffix, VARIANTS[v].dash);
        k++;
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"#555\">(pauses, all runs)</text>\n", W - MR + 15, MT + 10 + 20 * k + 8);
    fprintf(f, "</svg>\n");
    fclose(f);
#undef PX
#undef PY
}

/* (b) resident size over time, last successful run of each backend */
static void chart_rss(int b, const char *path) {
    char title[256];
    snprintf(title, sizeof title, "Resident memory over time: %s%s", BENCHES[b].title, O.quick ? " (--quick)" : "");
    result *pick[NV] = { 0 };
    double tmax = 0, ymax = 0;
    for (int v = 0; v < NV; v++) {
        if (!applies(b, v)) continue;
        for (int r = O.runs - 1; r >= 0 && !pick[v]; r--)
            if (R[b][v][r].ok && R[b][v][r].st.n) pick[v] = &R[b][v][r];
        if (!pick[v]) continue;
        result *x = pick[v];
        tmax = fmax(tmax, x->st.v[x->st.n - 1]);
        for (size_t i = 0; i < x->srss.n; i++) ymax = fmax(ymax, x->srss.v[i]);
    }
    if (!(tmax > 0 && ymax > 0)) return;
    FILE *f = svg_open(path, title);
    if (!f) return;
    int pw = W - ML - MR, ph = H - MT - MB;
    double xs_step = nice_step(tmax), ys_step = nice_step(ymax);
    double xm = ceil(tmax / xs_step) * xs_step, ym = ceil(ymax / ys_step) * ys_step;
#define PX(t) (ML + (t) / xm * pw)
#define PY(y) (MT + ph - (y) / ym * ph)
    for (double t = 0; t <= xm + 1e-9; t += xs_step) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n", PX(t), MT, PX(t), MT + ph);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", PX(t), MT + ph + 16, t);
    }
    for (double y = 0; y <= ym + 1e-9; y += ys_step) {
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", ML, PY(y), ML + pw, PY(y));
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", ML - 6, PY(y) + 4, y);
    }
    svg_frame(f, "time since start (s)", "resident set size (MiB)");
    int k = 0;
    for (int v = 0; v < NV; v++) {
        if (!pick[v]) continue;
        result *x = pick[v];
        size_t n = x->st.n;
        double *xs = malloc(n * sizeof *xs), *ys = malloc(n * sizeof *ys);
        for (size_t i = 0; i < n; i++) { xs[i] = PX(x->st.v[i]); ys[i] = PY(x->srss.v[i]); }
        svg_line(f, xs, ys, n, VARIANTS[v].color, VARIANTS[v].dash);
        svg_legend(f, k++, &VARIANTS[v], "", VARIANTS[v].dash);
        if (v == V_WBGC_CONC || v == V_GO) {   /* bytes in objects, to set against the RSS */
            for (size_t i = 0; i < n; i++) ys[i] = PY(x->sheap.v[i]);
            svg_line(f, xs, ys, n, VARIANTS[v].color, "3 2");
            svg_legend(f, k++, &VARIANTS[v], v == V_GO ? " HeapAlloc" : " heap_alloc", "3 2");
        }
        free(xs);
        free(ys);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"#555\">one run each; sampled</text>\n", W - MR + 15, MT + 10 + 20 * k + 8);
    fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"#555\">every 5 ms</text>\n", W - MR + 15, MT + 10 + 20 * k + 24);
    fprintf(f, "</svg>\n");
    fclose(f);
#undef PX
#undef PY
}

/* ---- the document ------------------------------------------------------------ */

static const char *METHOD =
    "## How this was measured\n\n"
    "Every benchmark is one C source compiled once per backend with the same flags (`-O2`), through the thin "
    "layer `examples/bench/gc/gcb.h`: wbgc (every pointer store into the heap through `wbgc_write`, "
    "`wbgc_write2` for a new node's two children; each thread holds its own P; joins inside "
    "`wbgc_blocking_begin/end`), Boehm GC 8.2 (`GC_THREADS`, `GC_MALLOC`/`GC_MALLOC_ATOMIC`, plain stores) "
    "and glibc malloc/free (the program frees every tree it drops; not for `mutate`, whose garbage only a "
    "collector can find). Modes: wbgc `conc` = `wbgc_config_default` (background mark workers), `incr` = "
    "`mark_workers = 0`, `stw` = `WBGC_STW`, all with `gc_percent = 100`; Boehm `single` = "
    "`GC_set_markers_count(1)` before `GC_INIT`, `parallel` = default marker count, `incr` = "
    "`GC_enable_incremental()` after `GC_INIT`, both calling `GC_start_mark_threads()` (Boehm starts its "
    "markers only at the first thread creation otherwise, so a single-threaded program would never mark in "
    "parallel). Boehm's heap growth is its default (`GC_free_space_divisor` 3); wbgc's is `gc_percent = 100`: "
    "the two trade memory for time differently, which the RSS column shows.\n\n"
    "Go's rows run the same three programs written in Go (`examples/bench/go`, one module, built with "
    "`go build`): the same sizes, options, random numbers, checks and output, `&T{...}` for every object, "
    "plain pointer stores (the compiler adds Go's write barrier), goroutines for threads, and Go's defaults: "
    "`GOGC=100` (heap goal twice what the last cycle found live, like wbgc's `gc_percent = 100`), "
    "`GOMAXPROCS` = the CPUs, one mode (`conc`: concurrent mark and sweep, background mark workers on a "
    "quarter of the Ps, mark assists). Go decides by escape analysis what goes on the heap: in `gcbench` the "
    "root of each top-down tree stays on the stack (about 0.3% of the nodes); `mutate`'s temporaries are "
    "made in a function that is not inlined, so they are heap garbage as in C.\n\n"
    "`build/gcb/report` runs each benchmark x backend x mode as its own process (fork/exec), the runs "
    "interleaved (run 1 of everything, then run 2, ...). Per row: medians over runs of the wall time (taken by "
    "the child from its start-up to its last check), the CPU time (user + system of all threads, from "
    "`wait4`), the peak resident size (`ru_maxrss` from `wait4`) and the cycle count (wbgc: `stats.cycles`; "
    "Boehm: `GC_get_gc_no()` difference; Go: `MemStats.NumGC` difference). Pauses are pooled over all runs:\n\n"
    "- **wbgc**: the stop-the-world pauses wbgc times itself. A sampler thread in the child, holding no P, "
    "calls `wbgc_get_stats` every 5 ms and takes the new entries of its 256-entry pause ring, so no pause is "
    "missed unless 256 happen within 5 ms (counted as lost and reported below the table).\n"
    "- **Boehm**: `GC_set_on_collection_event`; a pause is the window from `GC_EVENT_PRE_STOP_WORLD` to "
    "`GC_EVENT_POST_START_WORLD` (from before the first thread is told to stop until after the last one is "
    "restarted), timed with `CLOCK_MONOTONIC` into preallocated buffers. \"Longest collection\" is the "
    "longest `GC_EVENT_START` to `GC_EVENT_END`: with one marker, the thread that triggered the collection "
    "is held for all of it. Boehm's incremental mode reports no such events (\"-\"). For wbgc and Go that "
    "column repeats the longest pause: their marking and sweeping run beside the program.\n"
    "- **Go**: `runtime.MemStats.PauseNs`, one entry per GC cycle, and that entry is the sum of the cycle's "
    "stop-the-world phases (Go's runtime, `src/runtime/mgc.go`: `gcStart` and `gcMarkDone`/"
    "`gcMarkTermination` add each stop to `work.pauseNS`, which is stored once per cycle): sweep "
    "termination and mark termination, each from the request to stop (the time for every goroutine to reach "
    "a safe point counts) to the restart (the mark-termination stop is taken just before its restart). So a "
    "Go pause is not one stop: it is at least the cycle's longest stop and, in the usual two-stop cycle, at "
    "most twice it, and Go's pause count is its cycle count, where wbgc counts its two stops apart. The note "
    "below each table gives Go's single stops as `runtime/metrics` counts them (`/gc/pauses:seconds`, a "
    "histogram: the longest to within 1/16 of its length). The child reads the cycle count and the bytes in "
    "objects from `runtime/metrics` every 5 ms (that does not stop the world) and calls "
    "`runtime.ReadMemStats` (that does) only once 128 cycles have ended since it last read the 256-entry "
    "ring, and once at the end: no cycle is missed unless more than 128 end within 5 ms.\n"
    "- None of the pause figures includes time a thread spends collecting on its own while the others run "
    "(wbgc's and Go's mark assists, Boehm's incremental marking steps).\n\n"
    "Ratios: *wall / Boehm* is this row's wall time over Boehm parallel's (Boehm's default) in the same run, "
    "median over runs; *RSS / Boehm* is the ratio of the medians; *Boehm max pause / this* is Boehm "
    "parallel's longest pause over this row's. The charts in `charts/` (SVG, drawn by `report.c`): per "
    "benchmark, the pause distribution (pooled runs, log time axis) and the resident size over time of the "
    "last run of each backend (sampled every 5 ms from `/proc/self/statm`; for wbgc conc and Go also the "
    "bytes in objects: wbgc's `heap_alloc`, Go's `HeapAlloc` as `/memory/classes/heap/objects:bytes`).\n\n";

static void capture_machine(FILE *out) {
    /* bench.h prints to stdout: point stdout at a temporary file meanwhile */
    fflush(stdout);
    FILE *tmp = tmpfile();
    int saved = dup(1);
    if (!tmp || saved < 0) return;
    dup2(fileno(tmp), 1);
    bench_print_machine();
    bench_print_env();
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    rewind(tmp);
    char buf[1024];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, tmp)) > 0) fwrite(buf, 1, n, out);
    fclose(tmp);
}

static void usage(FILE *f) {
    fprintf(f, "usage: report [--runs N] [--quick] [--only NAME]... [--bin DIR] [--results FILE] "
               "[--charts DIR] [--no-write]\n");
}

static void mkdir_p(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') { *p = 0; mkdir(buf, 0755); *p = '/'; }
    mkdir(buf, 0755);
}

int main(int argc, char **argv) {
    const char *results = NULL, *charts = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs")) O.runs = (int)bench_arg_long(argc, argv, &i, 1, usage, "report");
        else if (!strcmp(argv[i], "--quick")) O.quick = 1;
        else if (!strcmp(argv[i], "--no-write")) O.write = 0;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc && O.nonly < 16) O.only[O.nonly++] = argv[++i];
        else if (!strcmp(argv[i], "--bin") && i + 1 < argc) snprintf(O.bin, sizeof O.bin, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--results") && i + 1 < argc) results = argv[++i];
        else if (!strcmp(argv[i], "--charts") && i + 1 < argc) charts = argv[++i];
        else if (!strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        else { usage(stderr); return 2; }
    }
    if (O.quick && O.runs == 5) O.runs = 1;
    if (O.runs > MAX_RUNS) O.runs = MAX_RUNS;
    for (int i = 0; i < O.nonly; i++) {
        int hit = 0;
        for (int b = 0; b < NB; b++) hit |= !strcmp(O.only[i], BENCHES[b].name) || !strcmp(O.only[i], BENCHES[b].prog);
        if (!hit) { fprintf(stderr, "report: no benchmark named '%s'\n", O.only[i]); return 2; }
    }
    if (!O.bin[0]) {   /* beside this program */
        snprintf(O.bin, sizeof O.bin, "%s", argv[0]);
        char *slash = strrchr(O.bin, '/');
        if (slash) *slash = 0;
        else snprintf(O.bin, sizeof O.bin, ".");
    }
    /* build/gcb -> the repository is two levels up */
    if (O.quick) {
        snprintf(O.results, sizeof O.results, "%s/quick/RESULTS.md", O.bin);
        snprintf(O.charts, sizeof O.charts, "%s/quick/charts", O.bin);
    } else {
        snprintf(O.results, sizeof O.results, "%s/../../examples/bench/RESULTS.md", O.bin);
        snprintf(O.charts, sizeof O.charts, "%s/../../examples/bench/charts", O.bin);
    }
    if (results) snprintf(O.results, sizeof O.results, "%s", results);
    if (charts) snprintf(O.charts, sizeof O.charts, "%s", charts);
    snprintf(O.tmp, sizeof O.tmp, "%s/runs", O.bin);
    mkdir_p(O.tmp);

    int missing_boehm = 0, missing_go = 0;
    for (int v = 0; v < NV; v++) {
        have_backend[v] = 1;
        for (int b = 0; b < NB; b++) {
            if (!selected(&BENCHES[b]) || (BENCHES[b].collectors_only && !strcmp(VARIANTS[v].backend, "malloc")))
                continue;
            char exe[4200];
            snprintf(exe, sizeof exe, "%s/%s.%s", O.bin, BENCHES[b].prog, VARIANTS[v].backend);
            if (access(exe, X_OK)) {
                have_backend[v] = 0;
                if (!strcmp(VARIANTS[v].backend, "boehm")) missing_boehm = 1;
                else if (!strcmp(VARIANTS[v].backend, "go")) missing_go = 1;
                else { fprintf(stderr, "report: %s is missing: run ./build.sh first\n", exe); return 1; }
            }
        }
    }
    if (missing_boehm) printf("== skipped Boehm GC backends: apt-get install libgc-dev (then ./build.sh)\n");
    if (missing_go) printf("== skipped Go peers: apt-get install golang-go (then ./build.sh)\n");

    char start_load[64], date[64];
    snprintf(start_load, sizeof start_load, "%s", loadavg());
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M %Z", localtime(&now));
    double t0 = now_ns(CLOCK_MONOTONIC);

    for (int r = 0; r < O.runs; r++) {
        fprintf(stderr, "== run %d of %d (load average %s)\n", r + 1, O.runs, loadavg());
        for (int b = 0; b < NB; b++) {
            if (!selected(&BENCHES[b])) continue;
            for (int v = 0; v < NV; v++)
                if (applies(b, v)) run_one(b, v, r);
        }
    }
    for (int b = 0; b < NB; b++)
        for (int v = 0; v < NV; v++)
            if (selected(&BENCHES[b]) && applies(b, v)) summarise(b, v);

    /* the document, into memory first: it goes to stdout and to RESULTS.md */
    char *doc = NULL;
    size_t doclen = 0;
    FILE *f = open_memstream(&doc, &doclen);
    if (!f) { perror("report: open_memstream"); return 1; }
    fprintf(f, "# wbgc against Boehm GC, Go and malloc: cross-collector benchmarks\n\n");
    fprintf(f, "Written by `build/gcb/report` (`examples/bench/gc/report.c`) on %s%s. Command:", date,
            O.quick ? " (QUICK smoke run: reduced sizes, 1 run; not for comparison)" : "");
    for (int i = 0; i < argc; i++) fprintf(f, " `%s`", argv[i]);
    fprintf(f, "; %d run%s per row, interleaved; %.1f minutes in all.\n\n", O.runs, O.runs > 1 ? "s" : "",
            (now_ns(CLOCK_MONOTONIC) - t0) / 6e10);
    capture_machine(f);
    fprintf(f, "- load average at start: %s, at end: %s (2 shared cores: other work on the machine skews "
               "every number)\n\n", start_load, loadavg());
    if (missing_boehm) fprintf(f, "Boehm GC was not installed (apt-get install libgc-dev): its rows are missing.\n\n");
    if (missing_go) fprintf(f, "Go was not installed (apt-get install golang-go): its rows are missing.\n\n");
    fprintf(f, "## Results\n\n");
    int failures = 0;
    for (int b = 0; b < NB; b++) {
        if (!selected(&BENCHES[b])) continue;
        print_table(f, b);
        if (BENCHES[b].chart && O.write)
            fprintf(f, "Charts: [pauses](charts/%s-pauses.svg), [resident memory](charts/%s-rss.svg).\n\n",
                    BENCHES[b].name, BENCHES[b].name);
        for (int v = 0; v < NV; v++)
            if (applies(b, v)) failures += S[b][v].nruns - S[b][v].nok;
    }
    print_targets(f);
    if (failures) fprintf(f, "**%d run(s) FAILED**: see the lines starting with `!!` in the output.\n\n", failures);
    fputs(METHOD, f);
    fclose(f);
    fwrite(doc, 1, doclen, stdout);

    if (O.write) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s", O.results);
        char *slash = strrchr(dir, '/');
        if (slash) { *slash = 0; mkdir_p(dir); }
        FILE *rf = fopen(O.results, "w");
        if (!rf || fwrite(doc, 1, doclen, rf) != doclen || fclose(rf)) {
            fprintf(stderr, "report: cannot write %s\n", O.results);
            return 1;
        }
        mkdir_p(O.charts);
        for (int b = 0; b < NB; b++) {
            if (!selected(&BENCHES[b]) || !BENCHES[b].chart) continue;
            char path[4400];
            snprintf(path, sizeof path, "%s/%s-pauses.svg", O.charts, BENCHES[b].name);
            chart_pauses(b, path);
            snprintf(path, sizeof path, "%s/%s-rss.svg", O.charts, BENCHES[b].name);
            chart_rss(b, path);
        }
        printf("== wrote %s and the charts in %s\n", O.results, O.charts);
    }
    free(doc);
    return failures ? 1 : 0;
}
