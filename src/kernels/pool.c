/* The thread pool: n - 1 persistent worker threads plus the calling thread.
 *
 * Decode calls lm_pool_run about ten times per layer per token, each call a few
 * microseconds to a millisecond of work, so the hand-off must be cheap:
 *   - a call publishes (fn, ctx) and a new `generation`; the workers watch it;
 *   - the n parts of a call are claimed, not assigned: every thread, the caller included,
 *     takes the next unclaimed index from `claim` until none is left. A worker that is
 *     late (asleep, or descheduled because the machine runs more threads than it has cores)
 *     then costs nothing: the caller runs its part. Part i is still fn(ctx, i, n), so the
 *     results do not depend on which thread ran it;
 *   - a waiting worker spins for a while (the next call usually comes within
 *     microseconds), yielding its core now and then, and then sleeps on a futex on `generation`;
 *   - the caller, out of parts, waits the same way for `done` to reach n (only parts
 *     another thread is running are left by then).
 * The wake-up syscall is skipped when nobody sleeps: a sleeper announces itself in
 * `sleepers` (seq_cst) before futex_wait re-checks the word, and the waker reads
 * `sleepers` after its seq_cst store, so one of the two always sees the other.
 *
 * A pool runs one call at a time. A call made while it is busy (from a task, or from a
 * second thread) runs all n tasks on its own caller, one after another: same results,
 * no deadlock. */
#include "kernels/kernels.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/error.h"

/* Spin steps before a thread sleeps (a pause is 10-140 cycles depending on the CPU: 50 to
 * 250 microseconds in all, enough to bridge the gaps between the calls of one decode step). */
#define LM_POOL_SPIN 4000

struct lm_pool {
    int n;                          /* threads in all, the caller included; also parts per call */
    pthread_t *threads;             /* n - 1 workers */
    lm_task_fn fn;
    void *ctx;
    _Atomic uint32_t generation;    /* bumped once per call (futex word of the workers) */
    _Atomic uint64_t claim;         /* generation << 32 | the next unclaimed part */
    _Atomic uint32_t done;          /* parts finished in this call (futex word of the caller) */
    _Atomic int worker_sleepers;
    _Atomic int caller_sleeping;
    _Atomic int stop;
    atomic_flag busy;
};

static void futex_wait(_Atomic uint32_t *word, uint32_t expected) {
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *word) {
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Step i of a spin wait: a pause, and every 256th step a sched_yield, so that a spinning
 * thread hands its core to a runnable thread (the one it waits for, or another process's)
 * when the machine runs more threads than it has cores; on an idle core it returns at once. */
static inline void spin_step(int i) {
    if (i % 256 == 255) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Waits until *word != value: spin, then sleep on the futex. */
static void wait_while_equal(_Atomic uint32_t *word, uint32_t value, _Atomic int *sleepers) {
    for (int i = 0; i < LM_POOL_SPIN; i++) {
        if (atomic_load_explicit(word, memory_order_acquire) != value) return;
        spin_step(i);
    }
    while (atomic_load_explicit(word, memory_order_acquire) == value) {
        atomic_fetch_add(sleepers, 1);
        futex_wait(word, value);
        atomic_fetch_sub(sleepers, 1);
    }
}

/* The next unclaimed part of call `gen`, or -1 when that call has none left (or is over).
 * A successful claim keeps the call from finishing until the part is done, so fn and ctx
 * read after it are this call's. */
static int claim_part(lm_pool *pool, uint32_t gen) {
    uint64_t w = atomic_load_explicit(&pool->claim, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(w >> 32) != gen || (uint32_t)w >= (uint32_t)pool->n) return -1;
        if (atomic_compare_exchange_weak_explicit(&pool->claim, &w, w + 1, memory_order_acquire,
                                                  memory_order_acquire))
            return (int)(uint32_t)w;
    }
}

/* Claims and runs parts of call `gen` until none is left. */
static void run_parts(lm_pool *pool, uint32_t gen) {
    for (int i; (i = claim_part(pool, gen)) >= 0;) {
        pool->fn(pool->ctx, i, pool->n);
        if (atomic_fetch_add(&pool->done, 1) + 1 == (uint32_t)pool->n && /* seq_cst: pairs with caller_sleeping */
            atomic_load(&pool->caller_sleeping))
            futex_wake_all(&pool->done);
    }
}

static void *worker_main(void *p) {
    lm_pool *pool = p;
    uint32_t seen = 0;
    for (;;) {
        wait_while_equal(&pool->generation, seen, &pool->worker_sleepers);
        seen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        if (atomic_load_explicit(&pool->stop, memory_order_relaxed)) break;
        run_parts(pool, seen);
    }
    return NULL;
}

static int online_cores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

lm_status lm_pool_init(lm_pool **out, int n_threads) {
    *out = NULL;
    if (n_threads <= 0) n_threads = online_cores();
    if (n_threads > 1024) return lm_fail(LM_ERR_ARG, "thread pool: %d threads requested (at most 1024)", n_threads);
    lm_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return lm_fail(LM_ERR_NOMEM, "thread pool: out of memory");
    pool->n = n_threads;
    atomic_flag_clear(&pool->busy);
    if (n_threads > 1) {
        pool->threads = calloc((size_t)n_threads - 1, sizeof *pool->threads);
        if (!pool->threads) {
            free(pool);
            return lm_fail(LM_ERR_NOMEM, "thread pool: out of memory");
        }
    }
    for (int i = 1; i < n_threads; i++) {
        if (pthread_create(&pool->threads[i - 1], NULL, worker_main, pool) != 0) {
            pool->n = i; /* the workers started so far */
            lm_pool_free(pool);
            return lm_fail(LM_ERR_NOMEM, "thread pool: could not start thread %d of %d", i, n_threads);
        }
    }
    *out = pool;
    return LM_OK;
}

void lm_pool_free(lm_pool *pool) {
    if (!pool) return;
    atomic_store(&pool->stop, 1);
    atomic_fetch_add(&pool->generation, 1);
    futex_wake_all(&pool->generation);
    for (int i = 0; i + 1 < pool->n; i++) pthread_join(pool->threads[i], NULL);
    free(pool->threads);
    free(pool);
}

int lm_pool_size(const lm_pool *pool) { return pool ? pool->n : 1; }

void lm_pool_run(lm_pool *pool, lm_task_fn fn, void *ctx) {
    if (!pool || pool->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    if (atomic_flag_test_and_set_explicit(&pool->busy, memory_order_acquire)) {
        for (int i = 0; i < pool->n; i++) fn(ctx, i, pool->n);
        return;
    }
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    uint32_t gen = atomic_load_explicit(&pool->generation, memory_order_relaxed) + 1;
    atomic_store(&pool->claim, (uint64_t)gen << 32); /* seq_cst: publishes fn, ctx, done */
    atomic_store(&pool->generation, gen);
    if (atomic_load(&pool->worker_sleepers)) futex_wake_all(&pool->generation);

    run_parts(pool, gen);

    const uint32_t n = (uint32_t)pool->n;
    for (int i = 0; i < LM_POOL_SPIN && atomic_load_explicit(&pool->done, memory_order_acquire) != n; i++)
        spin_step(i);
    for (;;) {
        uint32_t finished = atomic_load_explicit(&pool->done, memory_order_acquire);
        if (finished == n) break;
        atomic_store(&pool->caller_sleeping, 1);
        futex_wait(&pool->done, finished);
        atomic_store(&pool->caller_sleeping, 0);
    }
    atomic_flag_clear_explicit(&pool->busy, memory_order_release);
}

void lm_pool_split(int count, int i, int n, int align, int *begin, int *end) {
    int chunks = (count + align - 1) / align;
    *begin = (int)((long long)chunks * i / n) * align;
    *end = (int)((long long)chunks * (i + 1) / n) * align;
    if (*begin > count) *begin = count;
    if (*end > count) *end = count;
}
