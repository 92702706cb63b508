/*
 * mod_conditional_renew.c - keep the claims of live requests alive.
 *
 * A write's claim is taken in fixups with a lease of ConditionalLeaseTime,
 * before the request body is read and long before the backend is done. A
 * slow upload or a slow backend must not outlive it while the request that
 * holds it is alive, or another client would break the claim and write in
 * between (a lost update). So every child keeps a registry of the claims
 * its requests hold, and one thread per child - in every MPM, prefork's
 * single-threaded children too - extends each one's lease every third of
 * the lease. An entry leaves the registry when its claim is settled, or
 * when its request's pool is cleaned up; a child that dies stops renewing
 * with it. So a claim runs out only ConditionalLeaseTime after its holder
 * is gone, and only then can it be broken (which moves the version).
 */

#include "mod_conditional_private.h"

#include "apr_ring.h"
#include "apr_thread_cond.h"
#include "apr_thread_mutex.h"
#include "apr_thread_proc.h"

/* The longest the thread sleeps with nothing due (it is woken for a new
 * entry, and when the child exits). */
#define COND_RENEW_IDLE apr_time_from_sec(1)

struct conditional_held {
    APR_RING_ENTRY(conditional_held) link;
    const cond_store_provider *pv;
    cond_store *store;
    const char *key;              /* in the request's pool, which outlives */
    const char *owner;            /* the entry (removed by its cleanup) */
    apr_interval_time_t lease;
    apr_time_t due;               /* next renewal */
    int lost;                     /* the store says it is no longer ours */
};

APR_RING_HEAD(conditional_held_ring, conditional_held);

static struct {
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *wake;
    apr_thread_cond_t *renewed;   /* busy is done with */
    conditional_held *busy;       /* renewed now, outside the mutex */
    apr_thread_t *thread;
    struct conditional_held_ring held;
    server_rec *s;
    apr_pool_t *pool;             /* the thread's, for store calls */
    apr_time_t wake_at;           /* when the sleeping thread wakes */
    int stop;
} conditional_renewer;

/* Renew h, whose renewal is due; the mutex is held, and let go during
 * the store call, so that a store that answers slowly (locked, or a
 * database that does not answer) holds up no other request of the child:
 * only h's own request, should it end meanwhile, waits in
 * conditional_renew_remove() while h is busy, since h's strings live in
 * that request's pool. */
static void conditional_renew_one(conditional_held *h, apr_time_t now)
{
    apr_status_t rv;

    conditional_renewer.busy = h;
    apr_thread_mutex_unlock(conditional_renewer.mutex);
    rv = h->pv->renew(h->store, h->key, h->owner, h->lease,
                      conditional_renewer.pool);
    if (rv == COND_STORE_NOT_HELD) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, conditional_renewer.s,
                     "COND00020: the claim of %s on key %s was broken "
                     "while its request was still running", h->owner,
                     h->key);
    }
    else if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, conditional_renewer.s,
                     "COND00021: cannot renew the claim on key %s%s", h->key,
                     conditional_store_error(conditional_renewer.pool));
    }
    apr_pool_clear(conditional_renewer.pool);
    apr_thread_mutex_lock(conditional_renewer.mutex);
    if (rv == APR_SUCCESS) {
        h->due = now + h->lease / 3;
    }
    else if (rv == COND_STORE_NOT_HELD) {
        h->lost = 1;        /* settling the write will find out too */
    }
    else {
        /* Try again soon: the lease still has two thirds left. */
        h->due = now + apr_time_from_msec(200);
    }
    conditional_renewer.busy = NULL;
    apr_thread_cond_broadcast(conditional_renewer.renewed);
}

/* Renew every entry that is due (the mutex is held); how long after *now
 * the next one is. The ring may change while an entry is renewed, so each
 * renewal starts the walk again, at the time it ended: a store call may
 * take seconds, and the entries just renewed are not due. */
static apr_interval_time_t conditional_renew_due(apr_time_t *now)
{
    apr_interval_time_t wait;
    conditional_held *h;

again:
    wait = COND_RENEW_IDLE;
    for (h = APR_RING_FIRST(&conditional_renewer.held);
         h != APR_RING_SENTINEL(&conditional_renewer.held, conditional_held,
                                link);
         h = APR_RING_NEXT(h, link)) {
        if (!h->lost && h->due <= *now) {
            conditional_renew_one(h, *now);
            *now = apr_time_now();
            goto again;
        }
        if (!h->lost && h->due - *now < wait) {
            wait = h->due - *now;
        }
    }
    return wait;
}

/* Renew until the child stops; the mutex is held but while sleeping.
 * Never inlined: see conditional_renew_thread. */
static __attribute__((noinline)) void conditional_renew_loop(void)
{
    while (!conditional_renewer.stop) {
        apr_time_t now = apr_time_now();
        apr_interval_time_t wait = conditional_renew_due(&now);

        conditional_renewer.wake_at = now + wait;
        if (wait > 0) {
            apr_thread_cond_timedwait(conditional_renewer.wake,
                                      conditional_renewer.mutex, wait);
        }
    }
}

/* The loop runs in a frame of its own: apr_thread_exit() ends the thread
 * from this one, and a frame that pthread_exit() leaves keeps the ASan
 * redzones of its locals poisoned (a false report at thread exit in the
 * SANITIZE=1 build), so this one has none whose address is taken. */
static void *APR_THREAD_FUNC conditional_renew_thread(apr_thread_t *t,
                                                      void *data)
{
    (void)data;
    /* Its own pool, not one of pchild's: only this thread uses it. */
    apr_pool_create(&conditional_renewer.pool, NULL);
    apr_thread_mutex_lock(conditional_renewer.mutex);
    conditional_renew_loop();
    apr_thread_mutex_unlock(conditional_renewer.mutex);
    apr_pool_destroy(conditional_renewer.pool);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static apr_status_t conditional_renew_stop(void *data)
{
    apr_status_t rv;
    (void)data;

    apr_thread_mutex_lock(conditional_renewer.mutex);
    conditional_renewer.stop = 1;
    apr_thread_cond_signal(conditional_renewer.wake);
    apr_thread_mutex_unlock(conditional_renewer.mutex);
    apr_thread_join(&rv, conditional_renewer.thread);
    conditional_renewer.thread = NULL;
    return APR_SUCCESS;
}

apr_status_t conditional_renew_start(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    conditional_renewer.s = s;
    conditional_renewer.stop = 0;
    APR_RING_INIT(&conditional_renewer.held, conditional_held, link);
    rv = apr_thread_mutex_create(&conditional_renewer.mutex,
                                 APR_THREAD_MUTEX_DEFAULT, pchild);
    if (rv == APR_SUCCESS) {
        rv = apr_thread_cond_create(&conditional_renewer.wake, pchild);
    }
    if (rv == APR_SUCCESS) {
        rv = apr_thread_cond_create(&conditional_renewer.renewed, pchild);
    }
    if (rv == APR_SUCCESS) {
        rv = apr_thread_create(&conditional_renewer.thread, NULL,
                               conditional_renew_thread, NULL, pchild);
    }
    if (rv != APR_SUCCESS) {
        conditional_renewer.thread = NULL;
        return rv;
    }
    /* A pre-cleanup: it runs before pchild destroys its subpools (the
     * thread's own pool among them, which apr_thread_exit destroys) and
     * before any cleanup, so the thread is gone before a store
     * connection closes. */
    apr_pool_pre_cleanup_register(pchild, NULL, conditional_renew_stop);
    return APR_SUCCESS;
}

static apr_status_t conditional_renew_cleanup(void *data)
{
    conditional_renew_remove(data);
    return APR_SUCCESS;
}

conditional_held *conditional_renew_add(apr_pool_t *p,
                                        const cond_store_provider *pv,
                                        cond_store *store, const char *key,
                                        const char *owner, int lease)
{
    conditional_held *h;

    if (!conditional_renewer.thread || !pv->renew) {
        return NULL;        /* the lease alone bounds the write */
    }
    h = apr_pcalloc(p, sizeof(*h));
    h->pv = pv;
    h->store = store;
    h->key = key;
    h->owner = owner;
    h->lease = apr_time_from_sec(lease);
    h->due = apr_time_now() + h->lease / 3;
    APR_RING_ELEM_INIT(h, link);
    apr_thread_mutex_lock(conditional_renewer.mutex);
    APR_RING_INSERT_TAIL(&conditional_renewer.held, h, conditional_held,
                         link);
    /* Wake the thread only if it would sleep past this entry's renewal:
     * it never sleeps longer than COND_RENEW_IDLE, so with a lease of
     * three seconds or more a write costs no thread switch here. */
    if (h->due < conditional_renewer.wake_at) {
        apr_thread_cond_signal(conditional_renewer.wake);
    }
    apr_thread_mutex_unlock(conditional_renewer.mutex);
    apr_pool_cleanup_register(p, h, conditional_renew_cleanup,
                              apr_pool_cleanup_null);
    return h;
}

void conditional_renew_remove(conditional_held *h)
{
    if (!h || !conditional_renewer.mutex) {
        return;
    }
    apr_thread_mutex_lock(conditional_renewer.mutex);
    while (conditional_renewer.busy == h) {
        apr_thread_cond_wait(conditional_renewer.renewed,
                             conditional_renewer.mutex);
    }
    if (APR_RING_NEXT(h, link) != h) {
        APR_RING_REMOVE(h, link);
        APR_RING_ELEM_INIT(h, link);
    }
    apr_thread_mutex_unlock(conditional_renewer.mutex);
}
