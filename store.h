/*
 * store.h - the version store behind mod_conditional.
 *
 * A store is an opaque instance plus a provider: a table of functions, each
 * documented below. The httpd glue only talks to this interface, so a second
 * store (mod_dbd/PostgreSQL) drops in without touching the glue. No httpd
 * types here: only APR, so stores can be unit-tested in plain C.
 *
 * Per key the store keeps: a version (unique across the whole store and
 * never reused, so a forgotten and re-created key never repeats a tag), a
 * presence flag, a last-modified time (seconds), an in-flight write claim
 * (owner string + lease expiry) and an opaque metadata string (the
 * representation headers of the last 200, serialised by the glue).
 *
 * Every function is safe to call from any thread of a child process after
 * child_init; each call is atomic on its own. Return codes common to all:
 *   APR_SUCCESS   done
 *   APR_NOTFOUND  no such key (lookup, forget) / claim not ours (commit)
 *   APR_EBUSY     a live claim by another owner is held on the key
 *   APR_EAGAIN    the key is no longer at the expected version (or is
 *                 claimed); nothing was written - look it up again
 *   APR_EEXIST    register: the key already exists
 *   APR_TIMEUP    the store stayed locked past its busy timeout
 *   APR_EACCES    the store is read-only
 *   anything else the store is unusable (corrupt, missing, I/O error)
 */
#ifndef COND_STORE_H
#define COND_STORE_H

#include <apr_pools.h>
#include <apr_time.h>

typedef struct cond_store cond_store;

/* commit() flags */
#define COND_COMMIT_EXISTS 1u   /* a representation exists afterwards */
#define COND_COMMIT_HOLD   2u   /* keep the claim until release() */

/* One key's state as read in one consistent snapshot. */
typedef struct {
    apr_int64_t version;       /* 0: never committed (absent placeholder) */
    int exists;                /* a current representation exists */
    apr_time_t mtime;          /* last modification (whole seconds), 0 none */
    const char *claim_owner;   /* owner of a claim, NULL when unclaimed */
    apr_time_t claim_expires;  /* when that claim's lease runs out */
    const char *meta;          /* opaque metadata, NULL when none */
} cond_state;

/* Called once per key by list(); return non-zero to stop early. */
typedef int cond_store_list_fn(void *baton, const char *key,
                               const cond_state *st);

typedef struct cond_store_provider {
    const char *name;           /* "sqlite" */

    /* Config time: parse the argument after "name:" (e.g. a file path) and
     * allocate an instance in p. Opens nothing. Returns NULL, or an error
     * message for the administrator. */
    const char *(*create)(cond_store **s, const char *arg, apr_pool_t *p);

    /* Once in the parent after configuration, possibly as root: create the
     * store (directories, schema, identity) if missing and make it usable by
     * uid/gid (ignored when (uid_t)-1 or not running as root). Opens and
     * closes; keeps no handle across the fork. */
    apr_status_t (*init)(cond_store *s, long uid, long gid, apr_pool_t *p);

    /* In each child: prepare per-thread handles, opened lazily; everything is
     * closed by a cleanup on pchild. */
    apr_status_t (*child_init)(cond_store *s, apr_pool_t *pchild);

    /* The store's identity: short lowercase hex, stable for the life of the
     * store, different for every store ever created. Valid after init or
     * child_init. */
    const char *(*identity)(cond_store *s);

    /* Read one key: a single indexed read. APR_NOTFOUND when unknown.
     * Strings in st are allocated from p. */
    apr_status_t (*lookup)(cond_store *s, const char *key, cond_state *st,
                           apr_pool_t *p);

    /* Take the write claim on key with one compare-and-set: succeeds only
     * when the key is at expect_version (0 also matches an unknown key,
     * which is then created absent at version 0) and carries no claim at
     * all. An expired claim is not silently taken over: it must be cleared
     * with break_claim, which bumps the version, because the dead write may
     * have reached the backend. The claim's lease runs until lease_until.
     * APR_EBUSY: a claim is held (live or expired); APR_EAGAIN: version
     * differs. */
    apr_status_t (*claim)(cond_store *s, const char *key,
                          apr_int64_t expect_version, const char *owner,
                          apr_time_t lease_until, apr_time_t now);

    /* Resolve owner's claim after a successful write: in one transaction
     * give the key a new version, set exists (COND_COMMIT_EXISTS in flags),
     * set mtime to max(now, mtime) and clear the claim - or, with
     * COND_COMMIT_HOLD, keep it (same lease) until release(): the version
     * is known before the backend has finished. *version receives the new
     * version. APR_NOTFOUND: owner no longer holds the claim (it expired
     * and was broken); nothing is written. */
    apr_status_t (*commit)(cond_store *s, const char *key, const char *owner,
                           unsigned flags, apr_time_t now,
                           apr_int64_t *version);

    /* Drop owner's claim, leaving version, presence and mtime unchanged.
     * APR_NOTFOUND when owner does not hold it. */
    apr_status_t (*release)(cond_store *s, const char *key,
                            const char *owner);

    /* Extend owner's claim on key to lease_until (never shortening it):
     * the request holding it is still alive. APR_NOTFOUND when owner no
     * longer holds the claim (it was broken or settled). */
    apr_status_t (*renew)(cond_store *s, const char *key, const char *owner,
                          apr_time_t lease_until);

    /* Take over a claim whose owner is dead or whose lease expired: only if
     * the claim is still held by dead_owner, clear it and give the key a new
     * version (the dead write's outcome is unknown, so every tag handed out
     * before it must stop matching). APR_EAGAIN if the claim changed. */
    apr_status_t (*break_claim)(cond_store *s, const char *key,
                                const char *dead_owner, apr_time_t now,
                                apr_int64_t *version);

    /* Give key a new version and mtime regardless of claims (invalidation,
     * the CLI). Creates the key, present, when unknown. */
    apr_status_t (*bump)(cond_store *s, const char *key, apr_time_t now,
                         apr_int64_t *version);

    /* First sight of a key through a 200: create it present with a fresh
     * version and meta. APR_EEXIST when the key exists already. */
    apr_status_t (*register_key)(cond_store *s, const char *key,
                                 const char *meta, apr_time_t now,
                                 apr_int64_t *version);

    /* The backend showed a different presence than the store has (a 200 for
     * an absent key, a 404/410 for a present one): only if key is still at
     * expect_version and unclaimed, set exists and give it a new version.
     * APR_EAGAIN otherwise. */
    apr_status_t (*set_exists)(cond_store *s, const char *key,
                               apr_int64_t expect_version, int exists,
                               const char *meta, apr_time_t now,
                               apr_int64_t *version);

    /* Store new metadata for key, only if still at expect_version.
     * APR_EAGAIN otherwise. Does not change the version. */
    apr_status_t (*set_meta)(cond_store *s, const char *key,
                             apr_int64_t expect_version, const char *meta);

    /* Remove key entirely (the CLI). APR_NOTFOUND when unknown. */
    apr_status_t (*forget)(cond_store *s, const char *key);

    /* Call fn for every key whose name starts with prefix ("" for all), in
     * key order. Strings are allocated from p. */
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
} cond_store_provider;

/* The embedded SQLite store (sqlite_store.c). */
extern const cond_store_provider cond_sqlite_store;

#endif /* COND_STORE_H */
