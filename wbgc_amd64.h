/* wbgc_amd64.h — the x86-64 write-barrier fast path and its flush trampoline.

   Included by wbgc.h on x86-64 with GCC or Clang unless WBGC_NO_ASM is
   defined; not a header to include on its own. Its portable twin is
   wbgc__arch_write in wbgc.h, which always compiles and is always tested.

   The barrier's enabled path lives out of line (a cold section) and, when
   an append fills the buffer, calls a trampoline instead of a C function.
   The trampoline saves every register a C function may clobber, so at a
   barrier site the compiler sees no call: it spills nothing around it and
   needs no frame. Only the two scratch registers the asm asks for, and the
   flags, change.

   Facts relied on (x86-64 System V):
   - The 128 bytes below rsp (the red zone) may hold a leaf function's data:
     the cold path steps over them before it pushes anything.
   - A C function may clobber rax, rcx, rdx, rsi, rdi, r8-r11, the flags and
     every vector register (and the x87/MXCSR state it restores by
     convention): the trampoline saves all of them, the vector state with
     xsavec or xsave (size from CPUID leaf 0xD, as glibc's lazy-binding
     trampoline does; xrstor reads either form) or fxsave where XSAVE is
     missing.
   - Saving the vector state costs more than most flushes (~160 ns for an
     AVX-512 state here), so the trampoline first calls a flush compiled to
     use general registers only (wbgc__wb_flush_fast, which calls nothing
     but functions compiled the same way), and saves the vector state only
     when that one cannot finish. In check mode, where the buffer has one
     entry and every store comes here, that flush validates the store too,
     as far as it can without a lock or a call; a store it cannot prove
     valid, and every store to report, go to the full flush.
   - The flush is called with rsp aligned to 16 (here to 64, for xsave).

   The offsets below read wbgc__pfast by hand: wbgc.h pins them with static
   asserts next to the struct. Change both together. */
#ifndef WBGC_AMD64_H
#define WBGC_AMD64_H

#ifndef WBGC__INSIDE_WBGC_H
#error "wbgc_amd64.h is part of wbgc.h: include wbgc.h instead"
#endif

#include <stddef.h>
#include <stdint.h>

/* WBGC__AMD64_FAST_FLUSH: whether the trampoline tries the general-register
   flush first. Not under ThreadSanitizer or MemorySanitizer: they put a
   call to their runtime, which may use vector registers, at every memory
   access of the flush. (AddressSanitizer checks inline.) */
#if defined(__SANITIZE_THREAD__)
#define WBGC__AMD64_FAST_FLUSH 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define WBGC__AMD64_FAST_FLUSH 0
#endif
#endif
#ifndef WBGC__AMD64_FAST_FLUSH
#define WBGC__AMD64_FAST_FLUSH 1
#endif

#define WBGC__AMD64_WB_NEXT 0   /* offsetof(wbgc__pfast, wb_next) */
#define WBGC__AMD64_WB_END  8   /* offsetof(wbgc__pfast, wb_end)  */
#define WBGC__AMD64_WB_ON   16  /* offsetof(wbgc__pfast, wb_on)   */
#define WBGC__AMD64_STR2(x) #x
#define WBGC__AMD64_STR(x)  WBGC__AMD64_STR2(x)

/* The frame the cold path builds below the caller's stack pointer, as the
   trampoline finds it on entry (offsets from its rsp):
     0   return address into the cold path
     8   unwind PC: the address of the store in the hot path, which the
         trampoline's CFI reports as the caller's PC, so a debugger unwinds
         into the caller's own frame description at a point where rsp is
         back where the caller left it
     16  p
     24  slot
     32  val
     40  128 bytes stepped over (the red zone)
     168 the caller's rsp
   The flushes get a pointer to p (args: p, slot, val in a row), from which
   check mode finds the caller's rsp. */
#define WBGC__AMD64_FRAME 168
#define WBGC__AMD64_ARGS  16
#define WBGC__AMD64_CALLER_SP(args) \
    ((uintptr_t)(args) - WBGC__AMD64_ARGS + WBGC__AMD64_FRAME)

/* wbgc__amd64_write: the barrier and the store.
   The test of wb_on and the store are C, so that the compiler can share one
   load of wb_on between adjacent barriers (nothing on the not-taken path can
   change it: it changes only at safepoints) and can schedule the store.
   The enabled path is one asm block whose body lives in .text.unlikely.
   Reads: p->wb_next, p->wb_end, *slot. Writes: the two buffer entries and
   p->wb_next. Clobbers: two scratch registers (outputs e and t), the flags,
   memory (the flush changes the P). It appends (val, *slot); when the
   append lands on wb_end it calls wbgc__amd64_flush_tramp, which preserves
   every register; then control comes back to the store. No safepoint
   anywhere in between. */
static inline void wbgc__amd64_write(wbgc_p *p, void *slot, void *val)
{
    const wbgc__pfast *f = (const wbgc__pfast *)(const void *)p;
    if (__builtin_expect(f->wb_on != 0, 0)) {
        void **e, *t;
        __asm__ volatile(
            "jmp 2f\n"
            "1:\n\t"
            ".pushsection .text.unlikely,\"ax\",@progbits\n"
            "2:\n\t"
            "movq " WBGC__AMD64_STR(WBGC__AMD64_WB_NEXT) "(%[p]), %[e]\n\t"
            "movq %[val], (%[e])\n\t"              /* e[0] = new */
            "movq (%[slot]), %[t]\n\t"
            "movq %[t], 8(%[e])\n\t"               /* e[1] = old, read before the store */
            "leaq 16(%[e]), %[e]\n\t"
            "movq %[e], " WBGC__AMD64_STR(WBGC__AMD64_WB_NEXT) "(%[p])\n\t"
            "cmpq %[e], " WBGC__AMD64_STR(WBGC__AMD64_WB_END) "(%[p])\n\t"
            "jne 1b\n\t"
            "leaq -128(%%rsp), %%rsp\n\t"          /* step over the red zone */
            "pushq %[val]\n\t"
            "pushq %[slot]\n\t"
            "pushq %[p]\n\t"
            "leaq 1b(%%rip), %[t]\n\t"
            "pushq %[t]\n\t"                       /* unwind PC: back in the hot path */
            "call wbgc__amd64_flush_tramp\n\t"
            "leaq " WBGC__AMD64_STR(WBGC__AMD64_FRAME) "-8(%%rsp), %%rsp\n\t"
            "jmp 1b\n\t"
            ".popsection\n"
            : [e] "=&r"(e), [t] "=&r"(t)
            : [p] "r"(p), [slot] "r"(slot), [val] "r"(val)
            : "cc", "memory");
    }
    *(void **)slot = val;
}

#endif /* WBGC_AMD64_H */

/* ---- the trampoline: emitted once, with the implementation -------------- */
#if defined(WBGC_IMPLEMENTATION) && !defined(WBGC__AMD64_IMPLEMENTED)
#define WBGC__AMD64_IMPLEMENTED

/* Bytes of xsave area for the state enabled in XCR0; 0 until
   wbgc__amd64_init has run, and where XSAVE is missing: fxsave then. */
static uint32_t wbgc__amd64_xsave_size __asm__("wbgc__amd64_xsave_size") __attribute__((used));
/* Nonzero where XSAVEC exists: the compacted form writes only the state
   in use, the cheaper save (glibc's lazy-binding trampoline prefers it). */
static uint32_t wbgc__amd64_xsavec __asm__("wbgc__amd64_xsavec") __attribute__((used));

/* wbgc__amd64_init sizes the vector save area from CPUID. Called once,
   before any barrier can be on. */
static void wbgc__amd64_init(void)
{
    uint32_t a, b, c, d;
    __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    int osxsave = (c >> 27) & 1;  /* XSAVE supported and enabled by the OS */
    if (!osxsave) return;
    __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0xd), "c"(0));
    uint32_t size = b;  /* standard form, XCR0's state: also enough for compacted */
    __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0xd), "c"(1));
    __atomic_store_n(&wbgc__amd64_xsavec, (a >> 1) & 1, __ATOMIC_RELAXED);
    __atomic_store_n(&wbgc__amd64_xsave_size, size, __ATOMIC_RELAXED);
}

/* wbgc__amd64_flush_tramp: called from a barrier's cold path with the frame
   described at WBGC__AMD64_FRAME. Saves rbp, the flags, rax, rcx, rdx, rsi,
   rdi, r8-r11, aligns the stack and calls wbgc__wb_flush_fast(args), which
   uses general registers only; when that could not empty the buffer, saves
   the vector state too (xsave, or fxsave) and calls
   wbgc__wb_flush_tramp(args). args: the address of p in the frame
   (WBGC__AMD64_ARGS). Restores everything, returns. CFI describes every
   save, so gdb and perf unwind through it into the caller.
   Local to the translation unit with WBGC_STATIC (each has its own). */
__asm__(
    ".text\n"
#ifndef WBGC_STATIC
    ".globl wbgc__amd64_flush_tramp\n"
#endif
    ".type wbgc__amd64_flush_tramp, @function\n"
    ".p2align 4\n"
    "wbgc__amd64_flush_tramp:\n\t"
    ".cfi_startproc\n\t"
    ".cfi_def_cfa %rsp, " WBGC__AMD64_STR(WBGC__AMD64_FRAME) "\n\t"
    ".cfi_offset %rip, -" WBGC__AMD64_STR(WBGC__AMD64_FRAME) "+8\n\t"
    "pushq %rbp\n\t"
    ".cfi_adjust_cfa_offset 8\n\t"
    ".cfi_offset %rbp, -" WBGC__AMD64_STR(WBGC__AMD64_FRAME) "-8\n\t"
    "movq %rsp, %rbp\n\t"
    ".cfi_def_cfa_register %rbp\n\t"
    "pushfq\n\t"
    "pushq %rax\n\t"
    ".cfi_offset %rax, -" WBGC__AMD64_STR(WBGC__AMD64_FRAME) "-24\n\t"
    "pushq %rcx\n\t"
    ".cfi_offset %rcx, -" WBGC__AMD64_STR(WBGC__AMD64_FRAME) "-32\n\t"
    "pushq %rdx\n\t"
    ".cfi_offset %rdx, -" WBGC__AMD64_STR(WBGC__AMD64_FRAME) "-40\n\t"
    "pushq %rsi\n\t"
    ".cfi_offset %rsi, -" WBGC__AMD64_STR(WBGC__AMD64_FRAME) "-48\n\t"
    "pushq %rdi\n\t"
    ".cfi_offset %rdi, -" WBGC__AMD64_STR(WBGC__AMD64_FRAME) "-56\n\t"
    "pushq %r8\n\t"
    ".cfi_offset %r8, -" WBGC__AMD64_STR(WBGC__AMD64_FRAME) "-64\n\t"
    "pushq %r9\n\t"
    ".cfi_offset %r9, -" WBGC__AMD64_STR(WBGC__AMD64_FRAME) "-72\n\t"
    "pushq %r10\n\t"
    ".cfi_offset %r10, -" WBGC__AMD64_STR(WBGC__AMD64_FRAME) "-80\n\t"
    "pushq %r11\n\t"
    ".cfi_offset %r11, -" WBGC__AMD64_STR(WBGC__AMD64_FRAME) "-88\n\t"
#if WBGC__AMD64_FAST_FLUSH
    /* First the flush that touches general registers only: done, when it
       could empty the buffer on its own. */
    "andq $-16, %rsp\n\t"
    "leaq 24(%rbp), %rdi\n\t"                /* args: rbp + 8 + WBGC__AMD64_ARGS */
    "call wbgc__wb_flush_fast_impl\n\t"
    "testl %eax, %eax\n\t"
    "jnz 6f\n\t"
#endif
    /* The vector state: below the saves, 64-byte aligned. */
    "movl wbgc__amd64_xsave_size(%rip), %eax\n\t"
    "testl %eax, %eax\n\t"
    "jz 3f\n\t"
    "subq %rax, %rsp\n\t"
    "andq $-64, %rsp\n\t"
    /* xrstor faults on a header whose reserved bytes are not zero, and
       xsave writes only its first word: clear it. */
    "xorl %eax, %eax\n\t"
    "movq %rax, 512(%rsp)\n\t"
    "movq %rax, 520(%rsp)\n\t"
    "movq %rax, 528(%rsp)\n\t"
    "movq %rax, 536(%rsp)\n\t"
    "movq %rax, 544(%rsp)\n\t"
    "movq %rax, 552(%rsp)\n\t"
    "movq %rax, 560(%rsp)\n\t"
    "movq %rax, 568(%rsp)\n\t"
    "movl $-1, %eax\n\t"
    "movl $-1, %edx\n\t"
    "cmpl $0, wbgc__amd64_xsavec(%rip)\n\t"
    "je 7f\n\t"
    "xsavec (%rsp)\n\t"
    "jmp 4f\n"
    "7:\n\t"
    "xsave (%rsp)\n\t"
    "jmp 4f\n"
    "3:\n\t"
    "subq $512, %rsp\n\t"
    "andq $-64, %rsp\n\t"
    "fxsave (%rsp)\n"
    "4:\n\t"
    /* The argument, in the cold path's frame: rbp+8 holds our return
       address, +16 the unwind PC, then p, slot, val. */
    "leaq 24(%rbp), %rdi\n\t"
    "call wbgc__wb_flush_tramp_impl\n\t"
    "movl wbgc__amd64_xsave_size(%rip), %eax\n\t"
    "testl %eax, %eax\n\t"
    "jz 5f\n\t"
    "movl $-1, %eax\n\t"
    "movl $-1, %edx\n\t"
    "xrstor (%rsp)\n\t"
    "jmp 6f\n"
    "5:\n\t"
    "fxrstor (%rsp)\n"
    "6:\n\t"
    "leaq -80(%rbp), %rsp\n\t"  /* the flags and nine registers */
    "popq %r11\n\t"
    "popq %r10\n\t"
    "popq %r9\n\t"
    "popq %r8\n\t"
    "popq %rdi\n\t"
    "popq %rsi\n\t"
    "popq %rdx\n\t"
    "popq %rcx\n\t"
    "popq %rax\n\t"
    "popfq\n\t"
    "popq %rbp\n\t"
    ".cfi_def_cfa %rsp, " WBGC__AMD64_STR(WBGC__AMD64_FRAME) "\n\t"
    "ret\n\t"
    ".cfi_endproc\n"
    ".size wbgc__amd64_flush_tramp, .-wbgc__amd64_flush_tramp\n");

#endif /* WBGC_IMPLEMENTATION */
