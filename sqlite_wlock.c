/*
 * sqlite_wlock.c - the writers' lock of the SQLite store (sqlite_wlock.h).
 *
 * SQLite serialises writers with a file lock it can only poll: a writer
 * that finds it taken calls the busy handler and tries again. Under
 * sustained writes from many threads on few CPUs, the holder is often not
 * running, and every waiter burned sched_yield()s and retries (about four
 * per write at 16 connections on 2 CPUs) for a lock held a few tens of
 * microseconds. A process-shared mutex makes the waiters sleep until the
 * holder gives it back, and wakes one of them. It is an optimisation only:
 * SQLite's lock still decides, so a writer without this mutex (another
 * httpd, conditionalctl, a graceful restart's two generations) is as safe
 * as before, it only polls.
 *
 * Robust: a child killed while holding it (kill -9 in a transaction)
 * leaves it to the next taker, which is told and marks it consistent; the
 * transaction the dead child had open was never committed, and the kernel
 * dropped its file locks. Error-checking: a thread that would take it a
 * second time (it never should: a write call does not call the store) goes
 * on without it instead of deadlocking.
 */
#include "sqlite_wlock.h"

#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>
#include <time.h>

#include <apr_atomic.h>

struct sq_wlock {
    pthread_mutex_t mutex;
    sq_wlock_block versions;
};

static volatile apr_uint32_t sq_busy_waits;
static volatile apr_uint32_t sq_owner_deaths;

/* Only this process's view goes: the children of the generation that
 * made the lock still use it after a graceful restart (their mappings
 * stay), so it is not destroyed - pthread_mutex_destroy() of a robust
 * mutex marks it invalid in the shared memory itself. */
static apr_status_t sq_wlock_unmap(void *data)
{
    munmap(data, sizeof(sq_wlock));
    return APR_SUCCESS;
}

sq_wlock *sq_wlock_create(apr_pool_t *p)
{
    pthread_mutexattr_t a;
    sq_wlock *l;
    int ok;

    l = mmap(NULL, sizeof(*l), PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (l == MAP_FAILED) {
        return NULL;
    }
    ok = pthread_mutexattr_init(&a) == 0;
    ok = ok && pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) == 0
         && pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) == 0
         && pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK) == 0
         && pthread_mutex_init(&l->mutex, &a) == 0;
    pthread_mutexattr_destroy(&a);
    if (!ok) {
        munmap(l, sizeof(*l));
        return NULL;
    }
    apr_pool_cleanup_register(p, l, sq_wlock_unmap, apr_pool_cleanup_null);
    return l;
}

apr_status_t sq_wlock_take(sq_wlock *l, apr_interval_time_t timeout,
                           int *held)
{
    struct timespec ts;
    int e;

    *held = 0;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += apr_time_sec(timeout);
    ts.tv_nsec += apr_time_usec(timeout) * 1000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    e = pthread_mutex_clocklock(&l->mutex, CLOCK_MONOTONIC, &ts);
    if (e == EOWNERDEAD) {
        apr_atomic_inc32(&sq_owner_deaths);
        e = pthread_mutex_consistent(&l->mutex);
    }
    if (e == ETIMEDOUT) {
        return APR_TIMEUP;
    }
    *held = e == 0;
    return APR_SUCCESS;     /* EDEADLK, ENOTRECOVERABLE: SQLite decides */
}

void sq_wlock_give(sq_wlock *l)
{
    pthread_mutex_unlock(&l->mutex);
}

sq_wlock_block *sq_wlock_versions(sq_wlock *l)
{
    return &l->versions;
}

void sq_wlock_count_busy(void)
{
    apr_atomic_inc32(&sq_busy_waits);
}

apr_uint32_t sq_wlock_busy_waits(void)
{
    return apr_atomic_read32(&sq_busy_waits);
}

apr_uint32_t sq_wlock_owner_deaths(void)
{
    return apr_atomic_read32(&sq_owner_deaths);
}
