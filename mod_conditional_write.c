/*
 * mod_conditional_write.c - a write in reading order: take the key's claim
 * (fixups), commit a 2xx as soon as its headers are known (commit filter),
 * settle the claim once the response is complete (filter, log_transaction,
 * pool cleanup), and invalidate the keys the write may have changed.
 */
#include "mod_conditional_private.h"

#include "apr_atomic.h"

#include <signal.h>
#include <unistd.h>

/* Bytes of a write's response body read ahead of the client before they
 * are passed on, while the module waits for the backend's end */
#define COND_READ_AHEAD 65536
/* How long the commit filter waits for a CGI to finish its output before
 * it commits holding the claim instead (conditional_read_now) */
#define COND_SETTLE_WAIT apr_time_from_msec(50)

/* This child's identity for claim owners, "host:pid:nonce:": unique, and
 * telling an administrator (conditionalctl show) who holds a claim. */
static const char *conditional_owner_prefix;
static apr_uint32_t conditional_owner_seq;

/* Set when pchild is destroyed, before its subpools are. A request whose
 * pool is still alive then is torn down in the middle of whatever it was
 * doing: prefork's children die in their signal handler (just_die), which
 * destroys pchild there and then - perhaps in a store call of this very
 * request, with SQLite's mutexes, the writers' lock or the allocator's
 * state held by the interrupted code. Its claim is then left to its lease,
 * as a killed child's is: settling it from there is a store call inside
 * a store call (a child that deadlocked in SQLite's -shm mutex, killed
 * only by the parent's SIGKILL, in t/childexit.t). */
static volatile sig_atomic_t conditional_child_ending;

static apr_status_t conditional_child_end(void *data)
{
    (void)data;
    conditional_child_ending = 1;
    return APR_SUCCESS;
}

/* Called from child_init: "host:pid:nonce:", this child's claim owners. */
void conditional_owner_init(apr_pool_t *pchild)
{
    char host[APRMAXHOSTLEN + 1];
    unsigned char nonce[4];

    apr_pool_pre_cleanup_register(pchild, NULL, conditional_child_end);

    if (apr_gethostname(host, sizeof(host), pchild) != APR_SUCCESS) {
        apr_cpystrn(host, "localhost", sizeof(host));
    }
    apr_generate_random_bytes(nonce, sizeof(nonce));
    conditional_owner_prefix = apr_psprintf(pchild, "%s:%" APR_PID_T_FMT
                                            ":%02x%02x%02x%02x:", host,
                                            getpid(), nonce[0], nonce[1],
                                            nonce[2], nonce[3]);
}

static void conditional_invalidate_related(request_rec *r, conditional_req *rq,
                                           const char *listed);
static apr_status_t conditional_unresolved_cleanup(void *data);

/* The claim is no longer ours to keep alive: settled, lost, or left to
 * run out its lease. */
static void conditional_let_go(conditional_req *rq)
{
    conditional_renew_remove(rq->held);
    rq->held = NULL;
    rq->owner = NULL;
}

/* Clear a claim whose lease ran out. The store bumps the version: the dead
 * write may or may not have reached the backend, so every tag handed out
 * before it must stop matching (its parent's too). COND_STORE_NOT_HELD
 * (someone else broke or resolved it first) counts as success. */
apr_status_t conditional_break(request_rec *r, conditional_req *rq,
                                      const char *dead, const char *why)
{
    apr_int64_t v = 0;
    apr_status_t rv = rq->inst->provider->break_claim(rq->inst->store,
                                                      rq->key, dead,
                                                      apr_time_now(), &v,
                                                      r->pool);
    if (rv == APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "COND00005: broke "
                      "the claim of %s on key %s (%s); version is now %"
                      APR_UINT64_T_HEX_FMT, dead, rq->key, why,
                      (apr_uint64_t)v);
        conditional_count("broken");
        conditional_invalidate_related(r, rq, NULL);
    }
    else if (rv != COND_STORE_NOT_HELD) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "COND00013: cannot "
                      "break the dead claim of %s on key %s%s", dead, rq->key,
                      conditional_store_error(r->pool));
        return rv;
    }
    return APR_SUCCESS;
}

/*
 * A claim is dead only when its lease has run out, by the store's clock (a
 * node whose clock runs ahead must not end a live claim early). That its
 * owner process
 * is gone proves nothing: a CGI or a proxied backend outlives the httpd
 * child that started it and may still write, so the lease is the one bound
 * on how long a write can take (ConditionalLeaseTime).
 */
const char *conditional_claim_dead(const cond_state *st)
{
    return st->claim_owner && st->claim_left <= 0 ? "lease expired" : NULL;
}

/* A write's preconditions, as the claim evaluates them. */
typedef struct {
    request_rec *r;
    conditional_req *rq;
    const cond_request *cr;
    int status;              /* 0 go on, 412, 503, or DECLINED: ask the
                              * backend first (conditional_write_probe) */
    cond_why why;            /* of a 412 */
    apr_int64_t expect;      /* the claim's hint (conditional_expect) */
} conditional_check;

/* What the store may claim before the preconditions are checked
 * (claim_checked's expect_version): the version an If-Match of this
 * store's tags names (of a list, the newest); any state, an unknown key
 * included, when nothing could fail; for a create-only write
 * (If-None-Match: *, nothing else) a key known to have no resource, and
 * once the backend said it has none (conditional_write_probe) an unknown
 * key too; for If-Match: * (and no If-None-Match) a key known to have
 * one, and once the backend said it has it an unknown key too; for
 * If-Unmodified-Since alone what its second accepts; else none, so that a
 * write refused with 412 never claims, and never writes, in a store that
 * claims before it checks (dbd). */
static apr_int64_t conditional_expect(request_rec *r, conditional_req *rq,
                                      const cond_request *cr)
{
    apr_int64_t v;

    if (!cond_has_write_precondition(cr)) {
        return COND_EXPECT_ANY;
    }
    if (!cr->if_match && !cr->if_unmodified_since
        && cond_list_match_weak(cr->if_none_match, NULL, 1) == 1) {
        return rq->backend_has == 2 ? COND_EXPECT_ABSENT : COND_EXPECT_GONE;
    }
    if (!cr->if_none_match
        && cond_list_match_strong(cr->if_match, NULL, 1) == 1) {
        return rq->backend_has == 1 ? COND_EXPECT_EXISTS
                                    : COND_EXPECT_PRESENT;
    }
    if (!cr->if_match && !cr->if_none_match) {
        /* If-Unmodified-Since alone (valid, or there would be no write
         * precondition at all) */
        v = apr_time_sec(cond_parse_date(cr->if_unmodified_since));
        return v >= 0 ? COND_EXPECT_UNMODIFIED(v) : COND_EXPECT_NONE;
    }
    v = cond_if_match_version(cr->if_match,
                              conditional_tag_prefix(rq->inst, r->pool));
    return v > 0 && !cr->if_none_match ? v : COND_EXPECT_NONE;
}

/* The preconditions against the key's state (NULL: unknown to the store).
 * Called inside the store's claim transaction when the store can
 * (claim_checked), so it asks neither the store nor the backend. */
static int conditional_check_state(void *baton, const cond_state *st)
{
    conditional_check *k = baton;
    conditional_req *rq = k->rq;
    cond_resource res;

    rq->found = st != NULL;
    if (!st) {
        memset(&rq->before, 0, sizeof(rq->before));
    }
    else if (st != &rq->before) {
        rq->before = *st;
    }
    k->status = conditional_write_resource(k->r, rq, k->cr, &res);
    if (k->status == OK
        && cond_evaluate(k->cr, &res, k->r->request_time, &k->why)
           != COND_PROCEED) {
        k->status = HTTP_PRECONDITION_FAILED;
    }
    return k->status != OK;
}

/* One try at the claim: read, check and claim in one store step where
 * the store can (told the version an If-Match names, so a store that
 * claims before it checks need not claim a stale key), else a lookup, the
 * check and claim()'s compare-and-set on the version looked at
 * (APR_EAGAIN when it moved in between). APR_EBUSY: claimed by another,
 * rq->before says whose. */
static apr_status_t conditional_try_claim(request_rec *r, conditional_req *rq,
                                          conditional_check *k,
                                          const char *owner, int lease)
{
    const cond_store_provider *pv = rq->inst->provider;
    apr_status_t rv;

    if (pv->claim_checked) {
        return pv->claim_checked(rq->inst->store, rq->key, k->expect,
                                 owner, apr_time_from_sec(lease),
                                 conditional_check_state, k, &rq->before,
                                 &rq->found, r->pool);
    }
    rv = pv->lookup(rq->inst->store, rq->key, &rq->before, r->pool);
    if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
        return rv;
    }
    rq->found = rv == APR_SUCCESS;
    if (rq->found && rq->before.claim_owner) {
        return APR_EBUSY;
    }
    if (conditional_check_state(k, rq->found ? &rq->before : NULL)) {
        return COND_STORE_DECLINED;
    }
    return pv->claim(rq->inst->store, rq->key,
                     rq->found ? rq->before.version : 0, owner,
                     apr_time_from_sec(lease), r->pool);
}

/*
 * Take the key's claim for a write: evaluate the preconditions against the
 * settled state and claim at the version evaluated, waiting while another
 * write is in flight and breaking a claim whose lease ran out. Returns 0
 * when the claim is held, or the status to answer.
 */
static int conditional_claim(request_rec *r, conditional_req *rq,
                             const cond_request *cr, int lockwait, int lease)
{
    apr_time_t deadline = apr_time_now() + apr_time_from_sec(lockwait);
    apr_interval_time_t pause = 2000;
    const char *owner = apr_psprintf(r->pool, "%s%u", conditional_owner_prefix,
                                     apr_atomic_inc32(&conditional_owner_seq));
    conditional_check k = { r, rq, cr, OK, COND_WHY_NONE,
                            conditional_expect(r, rq, cr) };
    int waited = 0;

    for (;;) {
        const char *dead;
        apr_status_t rv = conditional_try_claim(r, rq, &k, owner, lease);

        if (rv == APR_SUCCESS) {
            rq->owner = owner;
            rq->held = conditional_renew_add(r->pool, rq->inst->provider,
                                             rq->inst->store, rq->key, owner,
                                             lease);
            if (waited) {
                ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "COND00007: "
                              "claimed key %s after waiting", rq->key);
            }
            return 0;
        }
        if (rv == COND_STORE_DECLINED && k.status == DECLINED) {
            /* The backend must say whether it has the resource: ask it
             * outside the store's transaction, then evaluate again. */
            if (conditional_write_probe(r, rq, cr) != OK) {
                return HTTP_SERVICE_UNAVAILABLE;
            }
            k.expect = conditional_expect(r, rq, cr);
            continue;
        }
        if (rv == COND_STORE_DECLINED && k.status == HTTP_PRECONDITION_FAILED) {
            conditional_respond_with(rq, HTTP_PRECONDITION_FAILED,
                                     cond_why_str(k.why));
            return HTTP_PRECONDITION_FAILED;
        }
        if (rv == COND_STORE_DECLINED) {
            return HTTP_SERVICE_UNAVAILABLE;
        }
        if (rv == APR_EAGAIN) {
            goto again;     /* changed under us: evaluate the new state */
        }
        if (rv != APR_EBUSY) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "COND00008: cannot "
                          "claim key %s%s", rq->key,
                          conditional_store_error(r->pool));
            return HTTP_SERVICE_UNAVAILABLE;
        }
        if ((dead = conditional_claim_dead(&rq->before)) != NULL) {
            if (conditional_break(r, rq, rq->before.claim_owner, dead)
                != APR_SUCCESS) {
                return HTTP_SERVICE_UNAVAILABLE;
            }
            goto again;
        }
        if (apr_time_now() + pause > deadline) {
            return HTTP_CONFLICT;
        }
        waited = 1;
        apr_sleep(pause);
        pause = pause < 50000 ? pause * 2 : 50000;
        continue;
again:
        /* Progress by others; bounded all the same. */
        if (apr_time_now() > deadline) {
            return HTTP_CONFLICT;
        }
    }
}

int conditional_write(request_rec *r, conditional_req *rq,
                             conditional_dir_conf *dc)
{
    conditional_server_conf *sc =
        ap_get_module_config(r->server->module_config, &conditional_module);
    cond_request cr;
    int status;

    conditional_fill_request(r, &cr, r->method_number == M_PUT
                                     ? COND_METHOD_PUT : COND_METHOD_WRITE);
    if (!cond_has_write_precondition(&cr) && dc->require == 1) {
        conditional_respond_with(rq, HTTP_PRECONDITION_REQUIRED,
                                 "precondition-required");
        return OK;
    }
    if (!conditional_tag_prefix(rq->inst, r->pool)
        || conditional_store_quiet(rq->inst, r->request_time)) {
        conditional_respond_with(rq, HTTP_SERVICE_UNAVAILABLE,
                                 "store-unavailable");
        return OK;
    }
    status = conditional_claim(r, rq, &cr,
                               dc->lockwait == COND_UNSET
                               ? COND_DEFAULT_LOCKWAIT : dc->lockwait,
                               sc->lease == COND_UNSET
                               ? COND_DEFAULT_LEASE : sc->lease);
    if (status == HTTP_SERVICE_UNAVAILABLE) {
        conditional_respond_with(rq, status, "store-unavailable");
        return OK;
    }
    if (status == HTTP_CONFLICT) {
        conditional_respond_with(rq, status, "write-in-progress");
        return OK;
    }
    if (status) {
        return OK;          /* 412, already recorded */
    }
    apr_pool_cleanup_register(r->pool, rq, conditional_unresolved_cleanup,
                              apr_pool_cleanup_null);
    rq->is_delete = r->method_number == M_DELETE;
    conditional_strip_validators(r);
    ap_add_output_filter_handle(conditional_commit_frec, rq, r,
                                r->connection);
    return OK;
}

/* The parent of ".../items/7" (query dropped, trailing slash ignored) is
 * ".../items"; a collection is often also addressed as ".../items/". */
static void conditional_parent_keys(request_rec *r, conditional_req *rq,
                                    apr_array_header_t *keys)
{
    char *k = apr_pstrdup(r->pool, rq->key);
    char *q = strchr(k, '?'), *slash;
    apr_size_t n;

    if (q) {
        *q = '\0';
    }
    n = strlen(k);
    while (n > 1 && k[n - 1] == '/') {
        k[--n] = '\0';
    }
    slash = strrchr(k, '/');
    if (!slash || slash == k || !ap_strchr_c(k, '/')
        || slash == ap_strchr_c(k, '/')) {
        return;             /* no parent below the site root */
    }
    APR_ARRAY_PUSH(keys, const char *) = apr_pstrmemdup(r->pool, k,
                                                        slash + 1 - k);
    *slash = '\0';
    APR_ARRAY_PUSH(keys, const char *) = k;
}

static void conditional_listed_keys(request_rec *r, conditional_req *rq,
                                    const char *list,
                                    apr_array_header_t *keys)
{
    char *item;

    while ((item = ap_get_list_item(r->pool, &list)) != NULL) {
        const char *key = item;
        if (!rq->custom_key && item[0] == '/') {
            ap_unescape_url(item);
            ap_getparents(item);
            key = conditional_default_key(r, item);
        }
        APR_ARRAY_PUSH(keys, const char *) = key;
    }
}

/* Keys a write may have changed besides its own, NULL when none: the
 * store bumps those it knows in the transaction that settles the write
 * (commit, release), and invents none - an invented key would make
 * "If-Match: *" succeed on nothing. */
static const apr_array_header_t *conditional_related(request_rec *r,
                                                     conditional_req *rq,
                                                     const char *listed)
{
    apr_array_header_t *keys = apr_array_make(r->pool, 4,
                                              sizeof(const char *));

    if (rq->invalidate_parent) {
        conditional_parent_keys(r, rq, keys);
    }
    if (listed) {
        conditional_listed_keys(r, rq, listed, keys);
    }
    return keys->nelts ? keys : NULL;
}

/* The related keys of a write that did not settle with a commit or a
 * release (a broken claim, an unsure outcome, a failed settle): looked up
 * and bumped one by one. */
static void conditional_invalidate_related(request_rec *r, conditional_req *rq,
                                           const char *listed)
{
    const cond_store_provider *pv = rq->inst->provider;
    const apr_array_header_t *keys = conditional_related(r, rq, listed);
    int i;

    for (i = 0; keys && i < keys->nelts; i++) {
        const char *key = APR_ARRAY_IDX(keys, i, const char *);
        cond_state st;
        apr_int64_t v;

        if (!strcmp(key, rq->key)
            || pv->lookup(rq->inst->store, key, &st, r->pool) != APR_SUCCESS) {
            continue;
        }
        if (pv->bump(rq->inst->store, key, apr_time_now(), &v, r->pool)
            != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "COND00010: "
                          "could not invalidate key %s", key);
        }
    }
}

/*
 * The backend answered 2xx: commit the new version. While the backend may
 * still be writing (its headers are known, its body is not) the claim is
 * kept (COND_COMMIT_HOLD) until the response is complete - a CGI may
 * print its headers first and write afterwards; until then readers get no
 * tag and writers wait. When the response is already complete, the commit
 * also releases the claim and bumps the related keys: one transaction.
 * Returns 1 when the related keys were bumped with it.
 */
static int conditional_commit(request_rec *r, conditional_req *rq,
                              unsigned hold,
                              const apr_array_header_t *related)
{
    apr_int64_t v = 0;
    apr_status_t rv;

    rv = rq->inst->provider->commit(rq->inst->store, rq->key, rq->owner,
                                    (rq->is_delete ? 0 : COND_COMMIT_EXISTS)
                                    | hold, related, apr_time_now(), &v,
                                    r->pool);
    if (rv == APR_SUCCESS) {
        rq->committed = 1;
        if (!rq->is_delete) {
            conditional_set_validators(r, rq, v, 0);
        }
        conditional_note(r, conditional_version_note(r->pool, "commit ", v));
        return 1;
    }
    conditional_let_go(rq);
    if (rv == COND_STORE_NOT_HELD) {
        /* The lease ran out while the backend ran, and the key may have
         * been written since. The write is not committed as ours, but it
         * did reach the backend: move the version, so no tag issued before
         * it (the other writer's included) names what it overwrote. */
        rv = rq->inst->provider->bump(rq->inst->store, rq->key,
                                      apr_time_now(), &v, r->pool);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "COND00011: the claim on "
                      "key %s was lost (its lease of ConditionalLeaseTime "
                      "ran out) while the backend ran; the write was not "
                      "committed, and the key was %s%s", rq->key,
                      rv == APR_SUCCESS ? "given a new version"
                                        : "NOT given a new version",
                      conditional_store_error(r->pool));
        conditional_note(r, "claim-lost");
    }
    else {
        /* The claim stays until its lease runs out; breaking it then
         * bumps the version. */
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "COND00012: commit "
                      "failed for key %s%s", rq->key,
                      conditional_store_error(r->pool));
        conditional_note(r, "commit-failed");
    }
    return 0;
}

/*
 * The response of a committed write is complete: release the claim it
 * kept. If the claim is gone, it was broken while the backend was still
 * writing (the child stalled past the lease, the store was unusable for
 * the renewals): someone may have been tagged, or written, in between, so
 * the late write moves the version, exactly as for a lost claim at commit.
 */
static int conditional_release_held(request_rec *r, conditional_req *rq,
                                    const apr_array_header_t *related)
{
    apr_int64_t v = 0;
    apr_status_t rv = rq->inst->provider->release(rq->inst->store, rq->key,
                                                  rq->owner, related,
                                                  r->pool);

    if (rv == APR_SUCCESS) {
        return 1;
    }
    if (rv != COND_STORE_NOT_HELD) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "COND00017: cannot "
                      "release the claim on key %s%s; it stays until its "
                      "lease runs out, then the key gets a new version",
                      rq->key, conditional_store_error(r->pool));
        return 0;
    }
    rv = rq->inst->provider->bump(rq->inst->store, rq->key, apr_time_now(),
                                  &v, r->pool);
    ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "COND00016: the claim on "
                  "key %s was broken while its committed write was still "
                  "running; the key was %s", rq->key,
                  rv == APR_SUCCESS ? "given a new version after the write"
                                    : "NOT given a new version");
    conditional_note(r, "claim-lost");
    return 0;
}

/* What a write's end says about its effect on the resource. */
typedef enum {
    COND_OUTCOME_DONE,      /* 2xx, committed: release the claim */
    COND_OUTCOME_REFUSED,   /* 4xx: the backend refused it: release */
    COND_OUTCOME_UNSURE,    /* 3xx, 5xx: the backend is done but may have
                             * changed something: release with a new version */
    COND_OUTCOME_PENDING    /* 502/504 (the gateway gave up on a backend that
                             * may still be writing), or the request never
                             * finished (its process was killed or stopped):
                             * keep the claim until its lease runs out */
} conditional_outcome;

static conditional_outcome conditional_outcome_of(conditional_req *rq,
                                                  int status, int finished)
{
    if (!finished || status == HTTP_BAD_GATEWAY
        || status == HTTP_GATEWAY_TIME_OUT) {
        return COND_OUTCOME_PENDING;
    }
    if (rq->committed || ap_is_HTTP_SUCCESS(status)) {
        return COND_OUTCOME_DONE;
    }
    if (ap_is_HTTP_CLIENT_ERROR(status)) {
        return COND_OUTCOME_REFUSED;
    }
    return COND_OUTCOME_UNSURE;
}

/*
 * The backend refused the write (4xx): it changed nothing, so the claim is
 * released with the version as it was. A release the store fails leaves
 * the key claimed - no longer renewed, so until its lease runs out, when
 * the claim is broken and the key gets a new version: said in the log,
 * with the store's words, never silently.
 */
static void conditional_release_refused(request_rec *r, conditional_req *rq,
                                        int status)
{
    apr_status_t rv = rq->inst->provider->release(rq->inst->store, rq->key,
                                                  rq->owner, NULL, r->pool);

    conditional_note(r, apr_psprintf(r->pool, "release %d", status));
    if (rv == COND_STORE_NOT_HELD) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "COND00112: the "
                      "claim on key %s was broken (its lease ran out) "
                      "before the backend refused the write with %d; the "
                      "key already has a new version", rq->key, status);
    }
    else if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "COND00028: cannot "
                      "release the claim on key %s after the backend "
                      "refused the write with %d%s; the key stays claimed "
                      "until its lease runs out, then gets a new version",
                      rq->key, status, conditional_store_error(r->pool));
    }
}

/*
 * Settle the claim of a write whose response has ended (or never will).
 * A claim is never simply dropped when the write may have changed the
 * resource: every tag issued before it must stop matching.
 */
static void conditional_settle(request_rec *r, conditional_req *rq,
                               int status, int finished)
{
    const cond_store_provider *pv = rq->inst->provider;
    conditional_outcome outcome = conditional_outcome_of(rq, status,
                                                         finished);
    const apr_array_header_t *related = NULL;
    int folded = 0;
    apr_int64_t v = 0;
    apr_status_t rv;

    conditional_renew_remove(rq->held);
    switch (outcome) {
    case COND_OUTCOME_DONE:
        related = conditional_related(r, rq, rq->listed);
        folded = rq->committed ? conditional_release_held(r, rq, related)
                               : conditional_commit(r, rq, 0, related);
        break;
    case COND_OUTCOME_REFUSED:
        conditional_release_refused(r, rq, status);
        break;
    case COND_OUTCOME_UNSURE:
        rv = pv->break_claim(rq->inst->store, rq->key, rq->owner,
                             apr_time_now(), &v, r->pool);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "COND00014: cannot "
                          "invalidate key %s after its write ended with %d%s; "
                          "the claim stays until its lease runs out",
                          rq->key, status, conditional_store_error(r->pool));
        }
        conditional_note(r, apr_psprintf(r->pool, "invalidate %d", status));
        break;
    case COND_OUTCOME_PENDING:
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "COND00015: the "
                      "write to key %s ended with %d before its backend was "
                      "known to be done; the key stays claimed until its "
                      "lease runs out, then gets a new version", rq->key,
                      status);
        if (!rq->committed) {
            conditional_note(r, apr_psprintf(r->pool, "pending %d", status));
        }
        break;
    }
    conditional_let_go(rq);
    /* A pending claim's parent is bumped when the claim is broken; and a
     * child being torn down does no store I/O. */
    if ((outcome == COND_OUTCOME_DONE && !folded)
        || outcome == COND_OUTCOME_UNSURE) {
        conditional_invalidate_related(r, rq, rq->listed);
    }
}

/*
 * A claim the commit filter did not settle: the response was an error page
 * (which bypasses content filters), went through an internal redirect
 * (Action, mod_rewrite [PT]; the filter stays with the first request), or
 * never finished at all. Run from the log_transaction hook, so the access
 * log shows the decision, and from the request pool cleanup as the last
 * resort (a child torn down mid-request: no store I/O then).
 */
static void conditional_settle_as(conditional_req *rq, request_rec *last,
                                  int status, int finished)
{
    request_rec *r = rq->r;
    const char *note;

    if (!rq->headers_seen) {
        rq->listed = conditional_hdr_get(last, COND_INVALIDATE_HDR);
    }
    conditional_settle(r, rq, status, finished);
    note = apr_table_get(r->notes, "conditional");
    if (last != r && note) {
        apr_table_setn(last->notes, "conditional", note);
    }
}

static void conditional_settle_late(conditional_req *rq)
{
    request_rec *r = rq->r, *last = r;

    if (!rq->owner) {
        return;
    }
    while (last->next) {
        last = last->next;
    }
    /* An error page keeps the error in the first request's status; after
     * any other redirect the last request has the backend's. */
    conditional_settle_as(rq, last, ap_is_HTTP_ERROR(r->status) ? r->status
                                                               : last->status,
                          r->eos_sent);
}

/*
 * An error page - a handler that returned 500, a CGI that died before its
 * headers, mod_proxy's 502 - is sent without content filters, so the
 * commit filter never sees it. Its status is final here and no byte of it
 * has left: settle now, so the client's next request finds the key
 * settled (a 502/504 still keeps the claim: the backend may be writing).
 * The insert_error_filter hook, and fixups of an ErrorDocument (r is then
 * the request that failed).
 */
void conditional_settle_before_error(request_rec *r)
{
    request_rec *rr;

    for (rr = r; rr; rr = rr->prev) {
        conditional_req *rq =
            ap_get_module_config(rr->request_config, &conditional_module);
        if (rq && rq->owner) {
            conditional_settle_as(rq, r, r->status, 1);
            return;
        }
    }
}

static apr_status_t conditional_unresolved_cleanup(void *data)
{
    if (!conditional_child_ending) {
        conditional_settle_late(data);
    }
    return APR_SUCCESS;
}

int conditional_log_transaction(request_rec *r)
{
    conditional_req *rq =
        ap_get_module_config(r->request_config, &conditional_module);

    if (rq && rq->owner) {
        conditional_settle_late(rq);
    }
    return DECLINED;
}

static int conditional_has_eos(apr_bucket_brigade *bb)
{
    apr_bucket *e;

    for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb);
         e = APR_BUCKET_NEXT(e)) {
        if (APR_BUCKET_IS_EOS(e)) {
            return 1;
        }
    }
    return 0;
}

/*
 * A CGI's or proxy's body arrives as buckets that are read further down
 * the chain; the backend is done only once they are read to the end (a
 * CGI's pipe at end of file). Read them here, handing the data on in
 * pieces of COND_READ_AHEAD bytes so memory stays bounded, and return
 * with bb holding the last piece and EOS, not yet passed on.
 */
static apr_status_t conditional_read_to_eos(ap_filter_t *f,
                                            apr_bucket_brigade *bb)
{
    apr_bucket *e = APR_BRIGADE_FIRST(bb);
    apr_size_t held = 0;
    apr_status_t rv;

    while (!APR_BUCKET_IS_EOS(e)) {
        const char *data;
        apr_size_t len;

        if (!APR_BUCKET_IS_METADATA(e)) {
            rv = apr_bucket_read(e, &data, &len, APR_BLOCK_READ);
            if (rv != APR_SUCCESS) {
                return rv;
            }
            held += len;
        }
        e = APR_BUCKET_NEXT(e);
        if (held >= COND_READ_AHEAD && !APR_BUCKET_IS_EOS(e)) {
            apr_bucket_brigade *rest = apr_brigade_split(bb, e);
            rv = ap_pass_brigade(f->next, bb);
            APR_BRIGADE_CONCAT(bb, rest);
            apr_brigade_destroy(rest);
            if (rv != APR_SUCCESS) {
                return rv;
            }
            held = 0;
        }
    }
    return APR_SUCCESS;
}

/*
 * Read bucket e without waiting for a backend that is still writing: a
 * pipe (a CGI's output) gets COND_SETTLE_WAIT to deliver what it has and
 * its end - a script that has printed everything is exiting - and a
 * script that printed its headers first and writes afterwards does not
 * make the response wait for it here.
 */
static apr_status_t conditional_read_now(apr_bucket *e, const char **data,
                                         apr_size_t *len)
{
    apr_interval_time_t was;
    apr_file_t *pipe;
    apr_status_t rv = apr_bucket_read(e, data, len, APR_NONBLOCK_READ);

    if (!APR_STATUS_IS_EAGAIN(rv) || !APR_BUCKET_IS_PIPE(e)) {
        return rv;
    }
    pipe = e->data;
    if (apr_file_pipe_timeout_get(pipe, &was) != APR_SUCCESS) {
        return rv;
    }
    apr_file_pipe_timeout_set(pipe, COND_SETTLE_WAIT);
    rv = apr_bucket_read(e, data, len, APR_BLOCK_READ);
    apr_file_pipe_timeout_set(pipe, was);
    return rv;
}

/*
 * Is the whole response in bb already: EOS, and every bucket before it
 * read (a CGI's pipe to its end, see conditional_read_now) within
 * COND_READ_AHEAD bytes, nothing passed on? Then the backend is done
 * before its headers leave, and the write settles in one store
 * transaction (conditional_settle): commit, release and related keys
 * together. Otherwise the commit keeps the claim until the end.
 */
static int conditional_complete(apr_bucket_brigade *bb)
{
    apr_bucket *e;
    apr_size_t held = 0;

    if (!conditional_has_eos(bb)) {
        return 0;
    }
    for (e = APR_BRIGADE_FIRST(bb); !APR_BUCKET_IS_EOS(e);
         e = APR_BUCKET_NEXT(e)) {
        const char *data;
        apr_size_t len;

        if (APR_BUCKET_IS_METADATA(e)) {
            continue;
        }
        if (conditional_read_now(e, &data, &len) != APR_SUCCESS
            || (held += len) > COND_READ_AHEAD) {
            return 0;
        }
    }
    return 1;
}

/* First brigade: the backend's status and headers are known; commit a 2xx,
 * keeping the claim unless the response is complete already. The brigade
 * with EOS: the backend is done; settle the claim. */
apr_status_t conditional_commit_filter(ap_filter_t *f,
                                              apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    conditional_req *rq = f->ctx;
    apr_status_t rv;

    if (!rq->headers_seen) {
        rq->headers_seen = 1;
        conditional_hdr_unset(r, "ETag");
        conditional_hdr_unset(r, "Last-Modified");
        rq->listed = conditional_hdr_get(r, COND_INVALIDATE_HDR);
        conditional_hdr_unset(r, COND_INVALIDATE_HDR);
        if (rq->owner && ap_is_HTTP_SUCCESS(r->status)
            && !conditional_complete(bb)) {
            conditional_commit(r, rq, COND_COMMIT_HOLD, NULL);
        }
    }
    if (!rq->owner) {
        ap_remove_output_filter(f);
        return ap_pass_brigade(f->next, bb);
    }
    if (!conditional_has_eos(bb)) {
        return ap_pass_brigade(f->next, bb);
    }
    ap_remove_output_filter(f);
    rv = conditional_read_to_eos(f, bb);
    if (rv != APR_SUCCESS) {
        return rv;          /* settled later: the response did not end */
    }
    /* The backend is done and the last bytes have not left: settle now,
     * so the client's next request finds the key settled. */
    if (rq->owner) {
        conditional_settle(r, rq, r->status, 1);
    }
    return ap_pass_brigade(f->next, bb);
}
