/*
 * store.h - the version store behind mod_conditional.
 *
 * A store is an opaque instance plus a provider: a table of functions, each
 * documented below (the shape of httpd's ap_socache.h and mod_md's
 * md_store.h). The httpd glue only talks to this interface; providers are
 * found by name in one registry (store.c) shared by the module and
 * conditionalctl. No httpd types here: only APR, so every provider passes
 * the same plain-C contract suite (unit/test_store.c).
 *
 * Per key the store keeps: a version (unique across the whole store and
 * never reused, so a forgotten and re-created key never repeats a tag), a
 * presence flag, a last-modified time (seconds), an in-flight write claim
 * (owner string + lease) and an opaque metadata string (the representation
 * headers of the last 200, serialised by the glue). Keys are byte strings
 * without NUL; they need not be valid UTF-8.
 *
 * Lease time is the store's own clock: the caller passes durations and
 * reads back the time a claim has left, so the clocks of several nodes
 * sharing one store never enter the compare-and-set.
 *
 * Every call takes a pool: results and scratch memory come from it, and a
 * failing call leaves the store's own error text in it (cond_store_error).
 * Every function is safe to call from any thread of a child process after
 * child_init; each call is atomic on its own. Return codes common to all:
 *   APR_SUCCESS          done
 *   APR_NOTFOUND         no such key (lookup, forget)
 *   COND_STORE_NOT_HELD  the named owner does not hold the claim (commit,
 *                        release, renew, break_claim); nothing written
 *   APR_EBUSY            a claim by another owner is held on the key
 *   APR_EAGAIN           the key is no longer at the expected version (or
 *                        is claimed); nothing was written - look it up again
 *   APR_EEXIST           register: the key already exists
 *   APR_TIMEUP           the store stayed locked or silent past its deadline
 *   APR_EACCES           the store is read-only
 *   anything else        the store is unusable (corrupt, missing, down)
 */
#ifndef COND_STORE_H
#define COND_STORE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

typedef struct cond_store cond_store;

/* The one spelling of "owner does not hold this claim". */
#define COND_STORE_NOT_HELD APR_NOTFOUND

/* commit() flags */
#define COND_COMMIT_EXISTS 1u   /* a representation exists afterwards */
#define COND_COMMIT_HOLD   2u   /* keep the claim until release() */

/* One key's state as read in one consistent snapshot. */
typedef struct {
    apr_int64_t version;       /* 0: never committed (absent placeholder) */
    int exists;                /* a current representation exists */
    apr_time_t mtime;          /* last modification (whole seconds), 0 none */
    const char *claim_owner;   /* owner of a claim, NULL when unclaimed */
    apr_interval_time_t claim_left; /* lease left by the store's clock at
                                     * the read; <= 0: expired; 0 when
                                     * unclaimed */
    const char *meta;          /* opaque metadata, NULL when none */
} cond_state;

/* Called by claim_checked() with the key's state (NULL: the key is
 * unknown) as the claim is taken at it: 0 lets the claim go on; anything
 * else leaves nothing claimed, and claim_checked() returns
 * COND_STORE_DECLINED. It may run while the store holds its write lock
 * (sqlite), or just after the store claimed the key in the same step as
 * it read it (dbd, which releases the claim again when check says no): it
 * must be quick and must not call the store. */
typedef int cond_claim_check_fn(void *baton, const cond_state *st);

/* claim_checked(): the check said no; nothing written */
#define COND_STORE_DECLINED (APR_OS_START_USERERR + 1)

/* claim_checked()'s expect_version other than a version (see there) */
#define COND_EXPECT_ANY      0
#define COND_EXPECT_NONE    (-1)
#define COND_EXPECT_GONE    (-2)
#define COND_EXPECT_ABSENT  (-3)
#define COND_EXPECT_PRESENT (-4)
#define COND_EXPECT_EXISTS  (-5)
/* The states an If-Unmodified-Since of second sec (>= 0) accepts; the
 * second is carried in the hint itself, below every other value. */
#define COND_EXPECT_SINCE_BASE  (-16)
#define COND_EXPECT_UNMODIFIED(sec) \
    (COND_EXPECT_SINCE_BASE - (apr_int64_t)(sec))
#define COND_EXPECT_IS_UNMODIFIED(h) ((h) <= COND_EXPECT_SINCE_BASE)
#define COND_EXPECT_SINCE(h) (COND_EXPECT_SINCE_BASE - (h))

/* Called once per key by list(); return non-zero to stop early. */
typedef int cond_store_list_fn(void *baton, const char *key,
                               const cond_state *st);

typedef struct cond_store_provider {
    const char *name;           /* "sqlite", "dbd" */

    /* How instances relate to configuration: 0 - one instance per distinct
     * spec, shared by every server that names it (a file); 1 - one instance
     * per server that names it (the store depends on that server's own
     * settings, e.g. mod_dbd's DBDParams). */
    int per_server;

    /* Config time: arg is what follows "name:" in the spec, NULL for a bare
     * "name". Allocates an instance in p; opens nothing. Returns NULL, or
     * an error message for the administrator. */
    const char *(*create)(cond_store **s, const char *arg, apr_pool_t *p);

    /* Once in the parent after configuration: create the store (schema,
     * identity) if missing. Opens and closes; keeps no handle across the
     * fork. A store that can only be reached from the children (dbd) may
     * do nothing here. */
    apr_status_t (*init)(cond_store *s, apr_pool_t *p);

    /* Optional (NULL when the store has no files): after init, as root,
     * make the store's files usable by uid/gid, the User and Group httpd's
     * children run as. */
    apr_status_t (*set_owner)(cond_store *s, long uid, long gid,
                              apr_pool_t *p);

    /* In each child: prepare per-thread handles, opened lazily; everything
     * is closed by a cleanup on pchild. */
    apr_status_t (*child_init)(cond_store *s, apr_pool_t *pchild);

    /* The store's identity: short lowercase hex, stable for the life of the
     * store, different for every store ever created. NULL while it cannot
     * be known (the database is unreachable): a store that could not learn
     * it at child_init tries again here, within its deadline, so a child
     * started while its database was down tags again once it is back. */
    const char *(*identity)(cond_store *s, apr_pool_t *p);

    /* Read one key: a single indexed read. APR_NOTFOUND when unknown. */
    apr_status_t (*lookup)(cond_store *s, const char *key, cond_state *st,
                           apr_pool_t *p);

    /* Take the write claim on key with one compare-and-set: succeeds only
     * when the key is at expect_version (0 also matches an unknown key,
     * which is then created absent at version 0) and carries no claim at
     * all. An expired claim is not silently taken over: it must be cleared
     * with break_claim, which bumps the version, because the dead write may
     * have reached the backend. The lease runs for `lease` from now by the
     * store's clock. APR_EBUSY: a claim is held (live or expired);
     * APR_EAGAIN: version differs. */
    apr_status_t (*claim)(cond_store *s, const char *key,
                          apr_int64_t expect_version, const char *owner,
                          apr_interval_time_t lease, apr_pool_t *p);

    /* Resolve owner's claim after a successful write: in one atomic step
     * give the key a new version, set exists (COND_COMMIT_EXISTS in flags),
     * set mtime to max(now, mtime + 1 s) and clear the claim - or, with
     * COND_COMMIT_HOLD, keep it (same lease) until release(): the version
     * is known before the backend has finished. *version receives the new
     * version. In the same atomic step, and only when the commit takes,
     * each key of `related` (const char *; NULL or empty for none) that
     * the store knows, other than key, gets a new version and mtime as by
     * bump() - the keys the write invalidates (its parent, the backend's
     * Conditional-Invalidate list); an unknown one is not created. So a
     * write whose response is complete costs one store transaction after
     * its claim. COND_STORE_NOT_HELD: owner no longer holds the claim (it
     * expired and was broken); nothing is written, related keys neither. */
    apr_status_t (*commit)(cond_store *s, const char *key, const char *owner,
                           unsigned flags,
                           const apr_array_header_t *related,
                           apr_time_t now, apr_int64_t *version,
                           apr_pool_t *p);

    /* Drop owner's claim, leaving version, presence and mtime unchanged,
     * and in the same atomic step bump the known keys of `related` as
     * commit() does (NULL or empty: none). COND_STORE_NOT_HELD when owner
     * does not hold it; nothing is written then. */
    apr_status_t (*release)(cond_store *s, const char *key,
                            const char *owner,
                            const apr_array_header_t *related,
                            apr_pool_t *p);

    /* Extend owner's claim on key to `lease` from now by the store's
     * clock (never shortening it): the request holding it is still alive.
     * COND_STORE_NOT_HELD when owner no longer holds the claim (it was
     * broken or settled). May be NULL: then a write must finish within
     * the lease. */
    apr_status_t (*renew)(cond_store *s, const char *key, const char *owner,
                          apr_interval_time_t lease, apr_pool_t *p);

    /* Take over a claim whose owner is dead or whose lease expired: only if
     * the claim is still held by dead_owner, clear it and give the key a new
     * version (the dead write's outcome is unknown, so every tag handed out
     * before it must stop matching). COND_STORE_NOT_HELD if the claim
     * changed. */
    apr_status_t (*break_claim)(cond_store *s, const char *key,
                                const char *dead_owner, apr_time_t now,
                                apr_int64_t *version, apr_pool_t *p);

    /* Give key a new version and mtime regardless of claims (invalidation,
     * the CLI). Creates the key, present, when unknown. */
    apr_status_t (*bump)(cond_store *s, const char *key, apr_time_t now,
                         apr_int64_t *version, apr_pool_t *p);

    /* First sight of a key through a 200: create it present with a fresh
     * version and meta. APR_EEXIST when the key exists already. */
    apr_status_t (*register_key)(cond_store *s, const char *key,
                                 const char *meta, apr_time_t now,
                                 apr_int64_t *version, apr_pool_t *p);

    /* The backend showed a different presence than the store has (a 200 for
     * an absent key, a 404/410 for a present one): only if key is still at
     * expect_version and unclaimed, set exists and give it a new version.
     * APR_EAGAIN otherwise. */
    apr_status_t (*set_exists)(cond_store *s, const char *key,
                               apr_int64_t expect_version, int exists,
                               const char *meta, apr_time_t now,
                               apr_int64_t *version, apr_pool_t *p);

    /* Store new metadata for key, only if still at expect_version.
     * APR_EAGAIN otherwise. Does not change the version. */
    apr_status_t (*set_meta)(cond_store *s, const char *key,
                             apr_int64_t expect_version, const char *meta,
                             apr_pool_t *p);

    /* Remove key entirely (the CLI). APR_NOTFOUND when unknown. */
    apr_status_t (*forget)(cond_store *s, const char *key, apr_pool_t *p);

    /* Call fn for every key whose name starts with prefix ("" for all), in
     * byte order of the keys. Strings are allocated from p. */
    apr_status_t (*list)(cond_store *s, const char *prefix,
                         cond_store_list_fn *fn, void *baton, apr_pool_t *p);

    /* Once in the parent when httpd stops for good (not on a restart),
     * after its children have exited: make every commit durable and
     * record that the store was stopped cleanly on this boot, so the next
     * init after a reboot keeps the identity (and every client's cached
     * tag). Without this, init after an unclean stop and a reboot gives
     * the store a new identity. APR_EBUSY: another process still has the
     * store open; nothing recorded. May be NULL. */
    apr_status_t (*shutdown)(cond_store *s, apr_pool_t *p);

    /* Optional (NULL: the caller looks up, checks and claims with
     * claim()'s compare-and-set, and looks up again when the version
     * moved in between). As one atomic step: read key's state into *st
     * (*found: the key is known); when the key carries no claim, call
     * check on it, and when check says 0, claim the key as claim() does at
     * the version just read. A write then costs one store transaction
     * before its backend runs, not a read and a write. APR_SUCCESS:
     * claimed. APR_EBUSY: a claim is held, live or expired (*st says
     * whose, and the lease it has left); check was not called.
     * COND_STORE_DECLINED: check said no; nothing is left written.
     *
     * expect_version is the caller's guess of what check will accept:
     * > 0 that version (the newest one an If-Match names),
     * COND_EXPECT_ANY any state, the key unknown included (the request
     * has no precondition a state could fail), COND_EXPECT_GONE a known
     * key whose resource does not exist (not present, version > 0),
     * COND_EXPECT_ABSENT that or any other state without a resource, the
     * key unknown included (If-None-Match: * once the backend said it
     * has none), COND_EXPECT_PRESENT a known key whose resource exists
     * (present, version > 0: If-Match: *), COND_EXPECT_EXISTS that or an
     * unknown key (If-Match: * once the backend said it has the
     * resource), COND_EXPECT_UNMODIFIED(sec) any state an
     * If-Unmodified-Since (alone) of that second accepts - the key
     * unknown, known without a resource, or with one last modified at or
     * before sec - COND_EXPECT_NONE none known (other preconditions). It is
     * only a hint and changes no outcome: check still runs on the state
     * read and decides, and a key at another version is still claimed
     * when check takes it. A store whose claim is a statement sent ahead
     * of the check (dbd) claims at once only what the hint allows -
     * inserting the claimed placeholder of an unknown key when the hint
     * takes an unknown key - so a refused write costs it one round trip
     * and writes nothing, and otherwise claims after check; a store that
     * checks inside its own transaction (sqlite) may ignore it. */
    apr_status_t (*claim_checked)(cond_store *s, const char *key,
                                  apr_int64_t expect_version,
                                  const char *owner,
                                  apr_interval_time_t lease,
                                  cond_claim_check_fn *check, void *baton,
                                  cond_state *st, int *found,
                                  apr_pool_t *p);
} cond_store_provider;

/* ------------------------------------------------------------------ */
/* The registry and spec parsing (store.c), shared by module and CLI.   */

/* The provider called name, NULL when there is none. */
const cond_store_provider *cond_store_provider_get(const char *name);

/* Every provider's name, ", "-separated, for messages. */
const char *cond_store_provider_names(apr_pool_t *p);

/* Split a store spec, "name" or "name:arg", and find its provider; *arg
 * is NULL for a bare name. A relative sqlite path is resolved against base
 * (ServerRoot for the module, NULL: the current directory). With
 * bare_path, a spec that is no provider's name and has no "name:" part is
 * taken as an sqlite path (the CLI's shorthand). Returns NULL, or an error
 * message naming the spec. */
const char *cond_store_parse(const char *spec, const char *base,
                             int bare_path, const cond_store_provider **pv,
                             const char **arg, apr_pool_t *p);

/* For list(): the smallest byte string above every string that starts
 * with prefix, or NULL when there is none (empty, or all 0xff bytes), so
 * a prefix is a range of keys compared as bytes. */
char *cond_store_prefix_end(const char *prefix, apr_pool_t *p);

/* The store's own words for the last failure of a call made with pool p
 * ("database or disk is full", PostgreSQL's message), or NULL. Providers
 * set it with cond_store_set_error on the pool they were given. */
const char *cond_store_error(apr_pool_t *p);
void cond_store_set_error(apr_pool_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The providers. */
extern const cond_store_provider cond_sqlite_store;   /* sqlite_store.c */
extern const cond_store_provider cond_dbd_store;      /* pgsql_store.c */

#endif /* COND_STORE_H */
