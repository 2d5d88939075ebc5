/* threads_extern.h — the interface between threads.c and threads_extern.c. */
#ifndef BOEHM_TESTS_THREADS_EXTERN_H
#define BOEHM_TESTS_THREADS_EXTERN_H

struct threads_extern_report {
    int registered_before;   /* GC_thread_is_registered() before registering: 0 */
    int get_stack_base;      /* GC_get_stack_base: GC_SUCCESS */
    int register_first;      /* GC_register_my_thread: GC_SUCCESS */
    int register_again;      /* GC_register_my_thread a second time: GC_DUPLICATE */
    int registered_after;    /* GC_thread_is_registered() after: nonzero */
    int list_built;          /* its list checked before unregistering */
    int unregister;          /* GC_unregister_my_thread: GC_SUCCESS */
};

/* Creates the thread with the real pthread_create; 0 on success. */
int threads_extern_start(void);
/* Nonzero once the thread has unregistered. */
int threads_extern_done(void);
/* Joins it with the real pthread_join (call after threads_extern_done). */
void threads_extern_join(struct threads_extern_report *rep);
/* The list the thread left in a static variable is still intact. */
int threads_extern_list_ok(void);

#endif
