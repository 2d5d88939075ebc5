/* bench.h -- what the benchmarks in this folder share: clocks, medians, and
   the machine facts printed above every table. Include after wbgc.h. */
#ifndef WBGC_BENCH_H
#define WBGC_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/utsname.h>
#ifdef __GLIBC__
#include <gnu/libc-version.h>
#endif

static double now_ns(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

__attribute__((unused)) static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void proc_field(const char *file, const char *key, char *out, size_t n) {
    snprintf(out, n, "unknown");
    FILE *f = fopen(file, "r");
    if (!f) return;
    char line[512];
    size_t k = strlen(key);
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, key, k) || !colon) continue;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') v++;
        v[strcspn(v, "\n")] = 0;
        snprintf(out, n, "%s", v);
        break;
    }
    fclose(f);
}

/* loadavg: the first three fields of /proc/loadavg */
__attribute__((unused)) static const char *loadavg(void) {
    static char buf[64];
    snprintf(buf, sizeof buf, "unknown");
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return buf;
    double a, b, c;
    if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3) snprintf(buf, sizeof buf, "%.2f %.2f %.2f", a, b, c);
    fclose(f);
    return buf;
}

/* bench_arg_long reads the number after option argv[*i] (advancing *i): at
   least min, or the program (prog) exits 2 with a message or its usage. */
__attribute__((unused)) static long bench_arg_long(int argc, char **argv, int *i, long min,
                                                   void (*usage)(FILE *), const char *prog) {
    if (*i + 1 >= argc) { usage(stderr); exit(2); }
    char *end;
    long v = strtol(argv[++*i], &end, 10);
    if (*end || v < min) {
        fprintf(stderr, "%s: %s wants a number >= %ld, not '%s'\n", prog, argv[*i - 1], min, argv[*i]);
        exit(2);
    }
    return v;
}

__attribute__((unused)) static void bench_print_machine(void) {
    char cpu[256], mhz[64], mem[64];
    struct utsname u;
    proc_field("/proc/cpuinfo", "model name", cpu, sizeof cpu);
    proc_field("/proc/cpuinfo", "cpu MHz", mhz, sizeof mhz);
    proc_field("/proc/meminfo", "MemTotal", mem, sizeof mem);
    printf("## Machine\n\n");
    printf("- CPU: %s (%s MHz)\n", cpu, mhz);
    printf("- CPUs online (nproc): %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
    printf("- memory: %s\n", mem);
    if (uname(&u) == 0) printf("- kernel: %s %s %s\n", u.sysname, u.release, u.machine);
#ifdef __GLIBC__
    printf("- libc: glibc %s\n", gnu_get_libc_version());
#endif
    printf("- compiler: %s%s, %s\n",
#if defined(__GNUC__) && !defined(__clang__)
           "gcc ",
#else
           "",
#endif
           __VERSION__,
#ifdef __OPTIMIZE__
           "optimised"
#else
           "NOT optimised (build with -O2)"
#endif
    );
}

__attribute__((unused)) static void bench_print_env(void) {
    /* wbgc_heap_new lets these override the program's own config */
    const char *env[] = { "WBGC_GC_PERCENT", "WBGC_TRACE" };
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++)
        if (getenv(env[i]))
            printf("- environment: %s=%s (wbgc_heap_new applies it over this program's config)\n",
                   env[i], getenv(env[i]));
    printf("\n");
}

#endif
