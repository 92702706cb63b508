/*
 * sqlite_wlock.h - the writers' lock of the SQLite store: one mutex per
 * store, in memory shared by every child of the parent that made it, taken
 * around each write call so that a writer waiting for another sleeps in
 * the kernel until it is woken, instead of polling SQLite's file lock
 * (docs/design.md, "Writers take turns").
 */
#ifndef SQLITE_WLOCK_H
#define SQLITE_WLOCK_H

#include <apr_pools.h>
#include <apr_time.h>

typedef struct sq_wlock sq_wlock;

/* The versions the children share between write transactions
 * (sqlite_store.c, "Versions in blocks"): next to end, already moved past
 * in the store's sequence; none when next is 0 or past end. Only the
 * lock's holder reads or changes it. */
typedef struct {
    apr_int64_t next;
    apr_int64_t end;
} sq_wlock_block;

/* In the parent, before the fork: a lock every child of this process
 * shares; unmapped when p goes. NULL when no shared mapping can be made
 * (the store then works as without it: SQLite's own lock decides). */
sq_wlock *sq_wlock_create(apr_pool_t *p);

/* Wait for the lock for at most timeout. APR_SUCCESS and *held = 1:
 * taken, give it back
 * with sq_wlock_give; APR_SUCCESS and *held = 0: go on without it (this
 * thread holds it already, or it cannot be used); APR_TIMEUP: another
 * writer held it all that time. A holder that died is taken over: SQLite's
 * own locks died with it, and its transaction was never committed. */
apr_status_t sq_wlock_take(sq_wlock *l, apr_interval_time_t timeout,
                           int *held);
void sq_wlock_give(sq_wlock *l);

/* The shared block; only for the lock's holder. */
sq_wlock_block *sq_wlock_versions(sq_wlock *l);

/* Counted for the tests (unit/test_store.c): waits this process's
 * connections still made in SQLite's busy handler, and holders found dead. */
void sq_wlock_count_busy(void);
apr_uint32_t sq_wlock_busy_waits(void);
apr_uint32_t sq_wlock_owner_deaths(void);

#endif
