/*
 * pgsql_store.c - the PostgreSQL version store, "ConditionalStore dbd"
 * (see store.h), spoken through apr_dbd so that the module uses the very
 * connections mod_dbd pools for its server (pgsql_store.h). No httpd.
 *
 * Tables (created on first use, under an advisory lock, so several nodes
 * starting at once do not trip over each other):
 *
 *   cond_resources  one row per key (bytea: a key need not be UTF-8):
 *                   version, present, mtime (seconds), claim_owner and
 *                   claim_expires (the database's clock), meta (bytea)
 *   cond_version    the sequence every new version is drawn from: unique
 *                   and increasing on one primary, with gaps
 *   cond_meta       name/value; "identity" is the store's random id
 *
 * Every operation is one statement, a compare-and-set where it decides
 * anything, correct under READ COMMITTED with any number of nodes; no
 * transaction is ever opened (apr_dbd's transaction API crashes on a dead
 * connection). claim_checked too is one statement in the common case (a
 * claim at the version an If-Match names, or of a key a create finds
 * without a resource or unknown - inserted claimed -, returning the
 * state it was taken at), and a second only when the caller's check
 * disagrees with what that statement decided. Leases are set and read
 * back with the database's clock, so the nodes' clocks play no part in
 * when a claim runs out.
 *
 * Each call is handed to one of a few worker threads per store and child,
 * which borrows a connection for that call only, and the caller waits at
 * most PG_CALL_DEADLINE for the answer: a database that is stopped (not
 * refusing, just silent) costs a request a bounded wait and a 503, never
 * a thread stuck with it. Statements are prepared lazily on each physical
 * session and again after it was replaced (a reset after a restart loses
 * them). A failed statement is triaged: on a session that is still there,
 * the statement took no effect; on a connection that died under it, the
 * outcome is unknown, and only operations that are safe to repeat are
 * repeated on a new session.
 */

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <apr_atomic.h>
#include <apr_general.h>
#include <apr_reslist.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "pgsql_store.h"

/* Server-side bound on one statement; a single-row statement that takes
 * this long is waiting for something that is not coming. */
#define PG_STATEMENT_MS   2000
/* How long a caller waits for its answer, queueing included. */
#define PG_CALL_DEADLINE  apr_time_from_msec(3000)
/* Worker threads per store and child; keep DBDMax at least this. */
#define PG_WORKERS        8
/* A connection idle this long is checked before a write that must not
 * be repeated is sent on it: after a restart it is dead. */
#define PG_IDLE_CHECK     apr_time_from_sec(1)
/* An unknown identity is asked for at most this often. */
#define PG_IDENTITY_RETRY apr_time_from_sec(1)
/* Connections of a store opened with PARAMS (the CLI, the tests). */
#define PG_DIRECT_CONNS   16
#define PG_ID_BYTES       8
#define PG_SESSION_KEY    "cond_pgsql_session"

enum {
    PG_LOOKUP,
    PG_CLAIM_NEW,
    PG_CLAIM,
    PG_RESOLVE,
    PG_RENEW,
    PG_BREAK,
    PG_BUMP,
    PG_REGISTER,
    PG_SET_EXISTS,
    PG_SET_META,
    PG_FORGET,
    PG_LIST_FROM,
    PG_LIST_RANGE,
    PG_IDENTITY,
    PG_RESOLVE_REL,
    PG_RELEASE_REL,
    PG_CLAIM_READ,
    PG_NSTMT
};

/* Placeholders are apr_dbd's: %pDb bytea, %pDt text, %lld bigint, %d int;
 * each one is a parameter of its own. */
#define PG_LEFT "CASE WHEN claim_owner IS NULL THEN 0 ELSE " \
    "floor(extract(epoch FROM claim_expires - clock_timestamp()) " \
    "* 1000000)::bigint END"
#define PG_COLUMNS "version, present, mtime, claim_owner, " PG_LEFT \
    ", encode(meta, 'hex')"
#define PG_LEASE "clock_timestamp() + %lld * interval '1 microsecond'"
#define PG_NEXT  "nextval('cond_version')"
/* The related keys of a commit or release (store.h), hex and
 * comma-separated in one text parameter: the known ones, other than the
 * statement's own key, get a new version - only when the claim took (c
 * is the CTE that hit the claimed row). */
#define PG_BUMP_RELATED(c) \
    "UPDATE cond_resources SET version = " PG_NEXT ", " \
    "mtime = greatest(mtime + 1, %lld) WHERE key IN (SELECT decode(h, " \
    "'hex') FROM unnest(string_to_array(%pDt, ',')) AS h) " \
    "AND key <> %pDb AND EXISTS (SELECT 1 FROM " c ")"

static const char *const pg_sql[PG_NSTMT] = {
    /* PG_LOOKUP */
    "SELECT " PG_COLUMNS " FROM cond_resources WHERE key = %pDb",
    /* PG_CLAIM_NEW: an unknown key is created absent at 0 and claimed; a
     * known one only if it is such a placeholder and unclaimed */
    "INSERT INTO cond_resources AS r (key, version, present, mtime, "
    "claim_owner, claim_expires) VALUES (%pDb, 0, false, 0, %pDt, "
    PG_LEASE ") ON CONFLICT (key) DO UPDATE SET "
    "claim_owner = excluded.claim_owner, "
    "claim_expires = excluded.claim_expires "
    "WHERE r.version = 0 AND r.claim_owner IS NULL RETURNING version",
    /* PG_CLAIM: the compare-and-set; any claim, live or expired, blocks */
    "UPDATE cond_resources SET claim_owner = %pDt, claim_expires = "
    PG_LEASE " WHERE key = %pDb AND version = %lld "
    "AND claim_owner IS NULL",
    /* PG_RESOLVE: commit owner's claim, kept when HOLD (given twice) */
    "UPDATE cond_resources SET version = " PG_NEXT ", present = %d <> 0, "
    "mtime = greatest(mtime + 1, %lld), "
    "claim_owner = CASE WHEN %d <> 0 THEN claim_owner END, "
    "claim_expires = CASE WHEN %d <> 0 THEN claim_expires END "
    "WHERE key = %pDb AND claim_owner = %pDt RETURNING version",
    /* PG_RENEW: only the owner's claim, live or expired but not broken;
     * never shortened */
    "UPDATE cond_resources SET claim_expires = greatest(claim_expires, "
    PG_LEASE ") WHERE key = %pDb AND claim_owner = %pDt",
    /* PG_BREAK */
    "UPDATE cond_resources SET version = " PG_NEXT ", "
    "mtime = greatest(mtime + 1, %lld), claim_owner = NULL, "
    "claim_expires = NULL WHERE key = %pDb AND claim_owner = %pDt "
    "RETURNING version",
    /* PG_BUMP: one nextval, used by the insert or the update */
    "INSERT INTO cond_resources AS r (key, version, present, mtime) "
    "VALUES (%pDb, " PG_NEXT ", true, %lld) ON CONFLICT (key) DO UPDATE "
    "SET version = excluded.version, "
    "mtime = greatest(r.mtime + 1, excluded.mtime) RETURNING version",
    /* PG_REGISTER (meta NULL when the flag is 0) */
    "INSERT INTO cond_resources (key, version, present, mtime, meta) "
    "VALUES (%pDb, " PG_NEXT ", true, %lld, CASE WHEN %d <> 0 THEN %pDb "
    "END) ON CONFLICT (key) DO NOTHING RETURNING version",
    /* PG_SET_EXISTS */
    "UPDATE cond_resources SET version = " PG_NEXT ", present = %d <> 0, "
    "mtime = greatest(mtime + 1, %lld), "
    "meta = CASE WHEN %d <> 0 THEN %pDb END "
    "WHERE key = %pDb AND version = %lld AND claim_owner IS NULL "
    "RETURNING version",
    /* PG_SET_META */
    "UPDATE cond_resources SET meta = CASE WHEN %d <> 0 THEN %pDb END "
    "WHERE key = %pDb AND version = %lld",
    /* PG_FORGET */
    "DELETE FROM cond_resources WHERE key = %pDb",
    /* PG_LIST_FROM, PG_LIST_RANGE: bytea compares as bytes */
    "SELECT encode(key, 'hex'), " PG_COLUMNS " FROM cond_resources "
    "WHERE key >= %pDb ORDER BY key",
    "SELECT encode(key, 'hex'), " PG_COLUMNS " FROM cond_resources "
    "WHERE key >= %pDb AND key < %pDb ORDER BY key",
    /* PG_IDENTITY */
    "SELECT value FROM cond_meta WHERE name = 'identity'",
    /* PG_RESOLVE_REL: PG_RESOLVE and its related keys in one statement */
    "WITH c AS (UPDATE cond_resources SET version = " PG_NEXT ", "
    "present = %d <> 0, mtime = greatest(mtime + 1, %lld), "
    "claim_owner = CASE WHEN %d <> 0 THEN claim_owner END, "
    "claim_expires = CASE WHEN %d <> 0 THEN claim_expires END "
    "WHERE key = %pDb AND claim_owner = %pDt RETURNING version), "
    "b AS (" PG_BUMP_RELATED("c") ") SELECT version FROM c",
    /* PG_RELEASE_REL: the release (one of u, d hits the claimed row) and
     * its related keys in one statement; a row when the claim was held */
    "WITH u AS (UPDATE cond_resources SET claim_owner = NULL, "
    "claim_expires = NULL WHERE key = %pDb AND claim_owner = %pDt "
    "AND version <> 0 RETURNING version), "
    "d AS (DELETE FROM cond_resources WHERE key = %pDb "
    "AND claim_owner = %pDt AND version = 0 RETURNING version), "
    "h AS (SELECT version FROM u UNION ALL SELECT version FROM d), "
    "b AS (" PG_BUMP_RELATED("h") ") SELECT version FROM h",
    /* PG_CLAIM_READ: claim()'s compare-and-set, at the expected version
     * (any when 0), on a row without a resource from a lowest version on,
     * or on a row with one last modified in or before a second (mtime is
     * in seconds; -1: none), and the key's state in the same statement:
     * the claimed row as the claim found it (a claim changes no other
     * column), first column 1; an unknown key inserted as claim()'s
     * placeholder when the flag says so, first column 2 (no ON CONFLICT
     * update: a row that appeared meanwhile is left alone and not
     * returned, as if unknown); else the row as the statement's snapshot
     * has it, first column 0; no row for an unknown key. Only a claim
     * writes. */
    "WITH c AS (UPDATE cond_resources SET claim_owner = %pDt, "
    "claim_expires = " PG_LEASE " WHERE key = %pDb AND claim_owner IS NULL "
    "AND (%lld = 0 OR version = %lld OR (NOT present AND version >= %lld) "
    "OR (present AND version > 0 AND mtime <= %lld)) "
    "RETURNING version, present, mtime, meta), "
    "n AS (INSERT INTO cond_resources (key, version, present, mtime, "
    "claim_owner, claim_expires) SELECT %pDb, 0, false, 0, %pDt, "
    PG_LEASE " WHERE %d <> 0 AND NOT EXISTS (SELECT 1 FROM cond_resources "
    "WHERE key = %pDb) ON CONFLICT (key) DO NOTHING RETURNING version) "
    "SELECT 1, version, present, mtime, NULL, 0, encode(meta, 'hex') "
    "FROM c UNION ALL SELECT 2, version, false, 0, NULL, 0, NULL FROM n "
    "UNION ALL SELECT 0, " PG_COLUMNS " FROM cond_resources "
    "WHERE key = %pDb AND NOT EXISTS (SELECT 1 FROM c)"
};

/* One statement, so the advisory lock (any 64-bit constant of ours) ends
 * with it; concurrent CREATE ... IF NOT EXISTS can otherwise fail. The
 * identity is inserted once: the first store's stays. */
static const char pg_schema[] =
    "DO $cond$ BEGIN "
    "PERFORM pg_advisory_xact_lock(7215883307350214563); "
    "CREATE SEQUENCE IF NOT EXISTS cond_version AS bigint; "
    "CREATE TABLE IF NOT EXISTS cond_resources ("
    " key bytea PRIMARY KEY, version bigint NOT NULL,"
    " present boolean NOT NULL, mtime bigint NOT NULL,"
    " claim_owner text, claim_expires timestamptz, meta bytea); "
    "CREATE TABLE IF NOT EXISTS cond_meta ("
    " name text PRIMARY KEY, value text NOT NULL); "
    "INSERT INTO cond_meta (name, value) VALUES ('identity', '%s') "
    "ON CONFLICT (name) DO NOTHING; "
    "END $cond$";

typedef struct pg_task pg_task;
typedef struct pg_ctx pg_ctx;

struct cond_store {
    const char *params;                   /* direct mode: conninfo */
    cond_dbd_acquire_fn *acquire;
    cond_dbd_release_fn *release;
    void *baton;
    apr_reslist_t *direct;                /* direct mode's connections */
    const apr_dbd_driver_t *driver;       /* direct mode */

    pthread_mutex_t lock;                 /* everything below */
    pthread_cond_t work;                  /* a task queued, or stopping */
    pthread_cond_t gone;                  /* a worker exited */
    pg_task *head, *tail;
    int workers, idle, stopping, started;
    int slot_used[PG_WORKERS];
    apr_time_t busy_since[PG_WORKERS];    /* 0: not running a task */

    volatile apr_uint32_t schema_ready;
    char identity[PG_ID_BYTES * 2 + 1];   /* "" until known */
    apr_time_t identity_tried;
};

/* What this process knows about one physical session, kept in the
 * connection's own pool: gone with the connection, never confused with a
 * later one at the same address. */
typedef struct {
    int ready;                            /* statements prepared */
    char pid[16];                         /* pg_backend_pid() of it */
    apr_dbd_prepared_t *st[PG_NSTMT];
    apr_time_t used;                      /* last successful statement */
} pg_session;

/* One call, from the caller to a worker and back. Inputs are copies
 * owned by the task; outputs are copied into the caller's pool by the
 * worker while the caller still waits for them. */
typedef apr_status_t pg_op_fn(pg_ctx *cx, pg_task *t);

struct pg_task {
    pg_op_fn *fn;
    pg_task *next;
    pthread_cond_t cond;
    int done;                 /* outputs are in the caller's pool */
    int abandoned;            /* the caller gave up: the worker frees */
    apr_pool_t *caller_pool;
    /* inputs */
    char *key, *owner, *meta, *end;   /* meta of commit, release: the
                                       * related keys (pg_related) */
    apr_size_t klen, mlen, elen;
    apr_int64_t expect;
    apr_interval_time_t lease;
    apr_int64_t now;          /* seconds */
    unsigned flags;
    int exists;
    /* outputs, in the worker's pool until copied */
    apr_status_t rv;
    cond_state st;
    apr_int64_t version;
    int found, claimed;       /* claim_checked's statement */
    const char *err;
    apr_array_header_t *rows; /* list: pg_row */
};

typedef struct {
    const char *key;
    cond_state st;
} pg_row;

struct pg_ctx {
    cond_store *s;
    cond_dbd_conn c;
    pg_session *sess;
    apr_pool_t *p;            /* the worker's, cleared after each call */
    pg_task *t;
    int retried;              /* a repeat after an unknown outcome */
};

static apr_uint32_t pg_generation;   /* statement names, per process */
/* apr_dbd's driver table outside httpd (mod_dbd sets it up inside) */
static apr_pool_t *pg_dbd_pool;

/* ------------------------------------------------------------------ */
/* Hex for bytea results                                                */

static int pg_unhex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static char *pg_unhex(const char *hex, apr_pool_t *p)
{
    apr_size_t n = strlen(hex) / 2, i;
    char *out = apr_palloc(p, n + 1);

    for (i = 0; i < n; i++) {
        int hi = pg_unhex_digit(hex[2 * i]);
        int lo = pg_unhex_digit(hex[2 * i + 1]);

        out[i] = (char)((hi < 0 || lo < 0) ? '?' : hi * 16 + lo);
    }
    out[n] = '\0';
    return out;
}

/* ------------------------------------------------------------------ */
/* Statements                                                           */

static const char *pg_errtext(pg_ctx *cx, int rc)
{
    const char *msg = apr_dbd_error(cx->c.driver, cx->c.handle, rc);
    char *copy = apr_pstrdup(cx->p, msg && *msg ? msg : "unknown error");
    apr_size_t n = strlen(copy);

    while (n > 0 && (copy[n - 1] == '\n' || copy[n - 1] == ' ')) {
        copy[--n] = '\0';
    }
    return copy;
}

/* pg_backend_pid() of the session, or -1 when the connection is dead. */
static int pg_backend_pid(pg_ctx *cx, char *pid, apr_size_t len)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;

    if (apr_dbd_select(cx->c.driver, cx->p, cx->c.handle, &res,
                       "SELECT pg_backend_pid()", 1) != 0
        || apr_dbd_get_row(cx->c.driver, cx->p, res, &row, -1) != 0) {
        return -1;
    }
    /* the result goes with the worker's pool */
    apr_cpystrn(pid, apr_dbd_get_entry(cx->c.driver, row, 0), len);
    return 0;
}

static apr_status_t pg_create_schema(pg_ctx *cx)
{
    unsigned char raw[PG_ID_BYTES];
    char id[PG_ID_BYTES * 2 + 1];
    apr_status_t rv;
    int i, n = 0, rc;

    if (cx->s->schema_ready) {
        return APR_SUCCESS;
    }
    if ((rv = apr_generate_random_bytes(raw, sizeof(raw))) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < PG_ID_BYTES; i++) {
        apr_snprintf(id + 2 * i, 3, "%02x", raw[i]);
    }
    rc = apr_dbd_query(cx->c.driver, cx->c.handle, &n,
                       apr_psprintf(cx->p, pg_schema, id));
    if (rc != 0) {
        cx->t->err = apr_pstrcat(cx->p, "cannot create the schema: ",
                                 pg_errtext(cx, rc), NULL);
        return APR_EGENERAL;
    }
    apr_atomic_set32(&cx->s->schema_ready, 1);
    return APR_SUCCESS;
}

/* Prepare every statement on this session under fresh names; names are
 * never reused in a process, so a session that somehow kept older ones
 * cannot clash. The statement timeout is the session's from now on. */
static apr_status_t pg_prepare(pg_ctx *cx)
{
    apr_uint32_t gen = apr_atomic_inc32(&pg_generation);
    pg_session *sess = cx->sess;
    apr_status_t rv;
    int i, n = 0, rc;

    if ((rv = pg_create_schema(cx)) != APR_SUCCESS) {
        return rv;
    }
    rc = apr_dbd_query(cx->c.driver, cx->c.handle, &n,
                       "SET statement_timeout = "
                       APR_STRINGIFY(PG_STATEMENT_MS));
    for (i = 0; rc == 0 && i < PG_NSTMT; i++) {
        sess->st[i] = NULL;
        rc = apr_dbd_prepare(cx->c.driver, cx->c.pool, cx->c.handle,
                             pg_sql[i],
                             apr_psprintf(cx->p, "cond%u_%d", gen, i),
                             &sess->st[i]);
    }
    if (rc != 0 || pg_backend_pid(cx, sess->pid, sizeof(sess->pid)) != 0) {
        cx->t->err = rc ? pg_errtext(cx, rc) : "the connection was lost";
        return APR_ECONNRESET;
    }
    sess->ready = 1;
    return APR_SUCCESS;
}

/* The connection died under us: reconnect it (bounded by the server's
 * connect_timeout) so the next statement runs on a new session. libpq
 * may only notice the dead socket on the statement after the one that
 * failed (a server stopped with -m immediate leaves an error message in
 * the socket first), so the new session is asked for its pid, and the
 * reset tried again when that fails too. */
static void pg_reset(pg_ctx *cx)
{
    char pid[16];
    int i;

    cx->sess->ready = 0;
    for (i = 0; i < 3; i++) {
        apr_dbd_check_conn(cx->c.driver, cx->p, cx->c.handle);
        if (pg_backend_pid(cx, pid, sizeof(pid)) == 0) {
            return;
        }
    }
}

/* Before a statement that must not be repeated: a connection idle for a
 * while may have died with a restart of the server; find out first, so
 * that the statement is not sent into a dead socket with an unknown
 * outcome. */
static apr_status_t pg_session_ready(pg_ctx *cx, int safe)
{
    pg_session *sess = cx->sess;
    char pid[16];

    if (sess->ready && !safe && apr_time_now() - sess->used > PG_IDLE_CHECK) {
        if (pg_backend_pid(cx, pid, sizeof(pid)) != 0) {
            pg_reset(cx);
        }
        else if (strcmp(pid, sess->pid)) {
            sess->ready = 0;
        }
    }
    return sess->ready ? APR_SUCCESS : pg_prepare(cx);
}

typedef enum {
    PG_FAILED_HERE,     /* same session: the statement took no effect */
    PG_FAILED_NEW,      /* a new session: the statement never existed */
    PG_FAILED_DEAD      /* the connection died: outcome unknown */
} pg_failure;

static pg_failure pg_triage(pg_ctx *cx)
{
    char pid[16];

    if (pg_backend_pid(cx, pid, sizeof(pid)) != 0) {
        pg_reset(cx);
        return PG_FAILED_DEAD;
    }
    if (strcmp(pid, cx->sess->pid)) {
        cx->sess->ready = 0;
        return PG_FAILED_NEW;
    }
    return PG_FAILED_HERE;
}

/*
 * Run statement which with vals: a select when res is given, else a query
 * whose row count goes to *nrows. A statement that failed without effect
 * on a replaced session is repeated once; one whose connection died is
 * repeated once only when safe (repeating it cannot do harm).
 */
static apr_status_t pg_exec(pg_ctx *cx, int which, const void **vals,
                            int safe, apr_dbd_results_t **res, int *nrows)
{
    apr_status_t rv;
    pg_failure why;
    apr_time_t start;
    int attempt, rc;

    for (attempt = 0; ; attempt++) {
        if ((rv = pg_session_ready(cx, safe)) != APR_SUCCESS) {
            return rv;
        }
        start = apr_time_now();
        if (res) {
            *res = NULL;
            rc = apr_dbd_pbselect(cx->c.driver, cx->p, cx->c.handle, res,
                                  cx->sess->st[which], 1, vals);
        }
        else {
            rc = apr_dbd_pbquery(cx->c.driver, cx->p, cx->c.handle, nrows,
                                 cx->sess->st[which], vals);
        }
        if (rc == 0) {
            cx->sess->used = apr_time_now();
            return APR_SUCCESS;
        }
        cx->t->err = pg_errtext(cx, rc);
        why = pg_triage(cx);
        if (why == PG_FAILED_HERE) {
            return apr_time_now() - start
                   >= apr_time_from_msec(PG_STATEMENT_MS - 100)
                   ? APR_TIMEUP : APR_EGENERAL;
        }
        if (attempt > 0 || (why == PG_FAILED_DEAD && !safe)) {
            return APR_ECONNRESET;
        }
        cx->retried |= why == PG_FAILED_DEAD;
    }
}

/* The first row of a select, or NULL. The result is freed with the
 * worker's pool. */
static apr_dbd_row_t *pg_first_row(pg_ctx *cx, apr_dbd_results_t *res)
{
    apr_dbd_row_t *row = NULL;

    return apr_dbd_get_row(cx->c.driver, cx->p, res, &row, -1) == 0 ? row
                                                                    : NULL;
}

static const char *pg_col(pg_ctx *cx, apr_dbd_row_t *row, int col)
{
    char *v = NULL;

    if (apr_dbd_datum_get(cx->c.driver, row, col, APR_DBD_TYPE_STRING, &v)
        != APR_SUCCESS) {
        return NULL;                       /* SQL NULL */
    }
    return v;
}

/* Fill st from the PG_COLUMNS columns starting at col. */
static void pg_read_state(pg_ctx *cx, apr_dbd_row_t *row, int col,
                          cond_state *st)
{
    const char *owner = pg_col(cx, row, col + 3);
    const char *meta = pg_col(cx, row, col + 5);

    st->version = apr_atoi64(pg_col(cx, row, col));
    st->exists = pg_col(cx, row, col + 1)[0] == 't';
    st->mtime = apr_time_from_sec(apr_atoi64(pg_col(cx, row, col + 2)));
    st->claim_owner = owner ? apr_pstrdup(cx->p, owner) : NULL;
    st->claim_left = apr_atoi64(pg_col(cx, row, col + 4));
    st->meta = meta ? pg_unhex(meta, cx->p) : NULL;
}

/* A statement "... RETURNING version": the version, or 0 for no row. */
static apr_status_t pg_returning(pg_ctx *cx, int which, const void **vals,
                                 int safe, apr_int64_t *version)
{
    apr_dbd_results_t *res;
    apr_dbd_row_t *row;
    apr_status_t rv = pg_exec(cx, which, vals, safe, &res, NULL);

    *version = 0;
    if (rv == APR_SUCCESS && (row = pg_first_row(cx, res)) != NULL) {
        *version = apr_atoi64(pg_col(cx, row, 0));
    }
    return rv;
}

/* ------------------------------------------------------------------ */
/* Operations, run by a worker                                          */

#define PG_KEY(t)  (t)->key, &(t)->klen, NULL, NULL
#define PG_META(t) (t)->meta ? (t)->meta : "", &(t)->mlen, NULL, NULL

static apr_status_t pg_op_lookup(pg_ctx *cx, pg_task *t)
{
    const void *vals[] = { PG_KEY(t) };
    apr_dbd_results_t *res;
    apr_dbd_row_t *row;
    apr_status_t rv = pg_exec(cx, PG_LOOKUP, vals, 1, &res, NULL);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!(row = pg_first_row(cx, res))) {
        return APR_NOTFOUND;
    }
    pg_read_state(cx, row, 0, &t->st);
    return APR_SUCCESS;
}

/* Why a claim did not take: a held claim wins over a version mismatch, so
 * the caller waits for the write in flight rather than re-evaluating. A
 * claim that is ours after a repeat was taken by the first attempt. */
static apr_status_t pg_claim_refused(pg_ctx *cx, pg_task *t)
{
    apr_status_t rv = pg_op_lookup(cx, t);

    if (rv == APR_NOTFOUND) {
        return APR_EAGAIN;
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (t->st.claim_owner) {
        return cx->retried && !strcmp(t->st.claim_owner, t->owner)
               ? APR_SUCCESS : APR_EBUSY;
    }
    return APR_EAGAIN;
}

static apr_status_t pg_op_claim(pg_ctx *cx, pg_task *t)
{
    apr_int64_t lease = t->lease, v = 0;
    apr_status_t rv;
    int n = 0;

    if (t->expect == 0) {
        const void *vals[] = { PG_KEY(t), t->owner, &lease };
        apr_dbd_results_t *res;

        rv = pg_exec(cx, PG_CLAIM_NEW, vals, 1, &res, NULL);
        n = rv == APR_SUCCESS && pg_first_row(cx, res) != NULL;
    }
    else {
        const void *vals[] = { t->owner, &lease, PG_KEY(t), &t->expect };

        rv = pg_exec(cx, PG_CLAIM, vals, 1, NULL, &n);
    }
    (void)v;
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return n ? APR_SUCCESS : pg_claim_refused(cx, t);
}

/* What PG_CLAIM_READ may claim at once for claim_checked's hint
 * (store.h): the lowest version a row without a resource is claimed at
 * (none: above every version), the latest second a row with a resource
 * was last modified in to be claimed (none: -1), and whether an unknown
 * key is inserted claimed. */
static apr_int64_t pg_gone_from(apr_int64_t expect)
{
    return expect == COND_EXPECT_GONE ? 1
           : expect == COND_EXPECT_ABSENT
             || COND_EXPECT_IS_UNMODIFIED(expect) ? 0 : APR_INT64_MAX;
}

static apr_int64_t pg_present_until(apr_int64_t expect)
{
    if (expect == COND_EXPECT_PRESENT || expect == COND_EXPECT_EXISTS) {
        return APR_INT64_MAX;
    }
    return COND_EXPECT_IS_UNMODIFIED(expect) ? COND_EXPECT_SINCE(expect)
                                             : -1;
}

static int pg_insert_unknown(apr_int64_t expect)
{
    return expect == COND_EXPECT_ANY || expect == COND_EXPECT_ABSENT
           || expect == COND_EXPECT_EXISTS
           || COND_EXPECT_IS_UNMODIFIED(expect);
}

/* claim_checked's one round trip (PG_CLAIM_READ): the claim when the key
 * is unclaimed and at what t->expect allows (pg_gone_from,
 * pg_insert_unknown), and the state it was taken at, or the state that
 * refused it. A repeat after a lost connection that finds the claim ours
 * took it the first time: the row as it was before, claimed - and a
 * placeholder at version 0 of ours is one the first attempt inserted, so
 * the key was unknown. */
static apr_status_t pg_op_claim_read(pg_ctx *cx, pg_task *t)
{
    apr_int64_t lease = t->lease, gone_from = pg_gone_from(t->expect);
    apr_int64_t until = pg_present_until(t->expect);
    int insert = pg_insert_unknown(t->expect);
    const void *vals[] = { t->owner, &lease, PG_KEY(t), &t->expect,
                           &t->expect, &gone_from, &until, PG_KEY(t),
                           t->owner, &lease, &insert, PG_KEY(t), PG_KEY(t) };
    apr_dbd_results_t *res;
    apr_dbd_row_t *row;
    apr_status_t rv = pg_exec(cx, PG_CLAIM_READ, vals, 1, &res, NULL);
    char how;

    if (rv != APR_SUCCESS || !(row = pg_first_row(cx, res))) {
        return rv;                           /* found stays 0 */
    }
    how = pg_col(cx, row, 0)[0];
    t->claimed = how != '0';
    t->found = how != '2';
    pg_read_state(cx, row, 1, &t->st);
    if (!t->claimed && cx->retried && t->st.claim_owner
        && !strcmp(t->st.claim_owner, t->owner)) {
        t->claimed = 1;
        t->found = t->st.version != 0;
        t->st.claim_owner = NULL;
        t->st.claim_left = 0;
    }
    return APR_SUCCESS;
}

/* A statement with related keys locks several rows, in no set order: two
 * such commits may deadlock, and PostgreSQL then rolls one of them back
 * whole. That one is run once more (it took no effect). */
static apr_status_t pg_returning_related(pg_ctx *cx, int which,
                                         const void **vals, int safe,
                                         apr_int64_t *version)
{
    apr_status_t rv = pg_returning(cx, which, vals, safe, version);

    if (rv == APR_EGENERAL) {
        rv = pg_returning(cx, which, vals, safe, version);
    }
    return rv;
}

/* One round trip, related keys included (t->meta holds them). */
static apr_status_t pg_op_commit(pg_ctx *cx, pg_task *t)
{
    int exists = (t->flags & COND_COMMIT_EXISTS) != 0;
    int hold = (t->flags & COND_COMMIT_HOLD) != 0;
    const void *vals[] = { &exists, &t->now, &hold, &hold, PG_KEY(t),
                           t->owner, &t->now, t->meta, PG_KEY(t) };
    apr_status_t rv = t->meta
        ? pg_returning_related(cx, PG_RESOLVE_REL, vals, 0, &t->version)
        : pg_returning(cx, PG_RESOLVE, vals, 0, &t->version);

    return rv == APR_SUCCESS && !t->version ? COND_STORE_NOT_HELD : rv;
}

/* One round trip: a held claim is released, or its version-0 placeholder
 * dropped, by one statement; a deadlock victim is run once more, as in
 * pg_returning_related. */
static apr_status_t pg_op_release(pg_ctx *cx, pg_task *t)
{
    const void *vals[] = { PG_KEY(t), t->owner, PG_KEY(t), t->owner,
                           &t->now, t->meta ? t->meta : "", PG_KEY(t) };
    apr_dbd_results_t *res;
    apr_status_t rv = pg_exec(cx, PG_RELEASE_REL, vals, 1, &res, NULL);

    if (rv == APR_EGENERAL) {
        rv = pg_exec(cx, PG_RELEASE_REL, vals, 1, &res, NULL);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return pg_first_row(cx, res) ? APR_SUCCESS : COND_STORE_NOT_HELD;
}

static apr_status_t pg_op_renew(pg_ctx *cx, pg_task *t)
{
    apr_int64_t lease = t->lease;
    const void *vals[] = { &lease, PG_KEY(t), t->owner };
    int n = 0;
    apr_status_t rv = pg_exec(cx, PG_RENEW, vals, 1, NULL, &n);

    return rv == APR_SUCCESS && n == 0 ? COND_STORE_NOT_HELD : rv;
}

static apr_status_t pg_op_break(pg_ctx *cx, pg_task *t)
{
    const void *vals[] = { &t->now, PG_KEY(t), t->owner };
    apr_status_t rv = pg_returning(cx, PG_BREAK, vals, 0, &t->version);

    return rv == APR_SUCCESS && !t->version ? COND_STORE_NOT_HELD : rv;
}

static apr_status_t pg_op_bump(pg_ctx *cx, pg_task *t)
{
    const void *vals[] = { PG_KEY(t), &t->now };
    apr_status_t rv = pg_returning(cx, PG_BUMP, vals, 1, &t->version);

    return rv == APR_SUCCESS && !t->version ? APR_EGENERAL : rv;
}

static apr_status_t pg_op_register(pg_ctx *cx, pg_task *t)
{
    int has_meta = t->meta != NULL;
    const void *vals[] = { PG_KEY(t), &t->now, &has_meta, PG_META(t) };
    apr_status_t rv = pg_returning(cx, PG_REGISTER, vals, 1, &t->version);

    return rv == APR_SUCCESS && !t->version ? APR_EEXIST : rv;
}

static apr_status_t pg_op_set_exists(pg_ctx *cx, pg_task *t)
{
    int has_meta = t->meta != NULL;
    const void *vals[] = { &t->exists, &t->now, &has_meta, PG_META(t),
                           PG_KEY(t), &t->expect };
    apr_status_t rv = pg_returning(cx, PG_SET_EXISTS, vals, 1, &t->version);

    return rv == APR_SUCCESS && !t->version ? APR_EAGAIN : rv;
}

static apr_status_t pg_op_set_meta(pg_ctx *cx, pg_task *t)
{
    int has_meta = t->meta != NULL, n = 0;
    const void *vals[] = { &has_meta, PG_META(t), PG_KEY(t), &t->expect };
    apr_status_t rv = pg_exec(cx, PG_SET_META, vals, 1, NULL, &n);

    return rv == APR_SUCCESS && n == 0 ? APR_EAGAIN : rv;
}

static apr_status_t pg_op_forget(pg_ctx *cx, pg_task *t)
{
    const void *vals[] = { PG_KEY(t) };
    int n = 0;
    apr_status_t rv = pg_exec(cx, PG_FORGET, vals, 1, NULL, &n);

    return rv == APR_SUCCESS && n == 0 ? APR_NOTFOUND : rv;
}

static apr_status_t pg_op_list(pg_ctx *cx, pg_task *t)
{
    const void *vals[] = { PG_KEY(t), t->end ? t->end : "", &t->elen,
                           NULL, NULL };
    apr_dbd_results_t *res;
    apr_dbd_row_t *row = NULL;
    apr_status_t rv;

    rv = pg_exec(cx, t->end ? PG_LIST_RANGE : PG_LIST_FROM, vals, 1, &res,
                 NULL);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    t->rows = apr_array_make(cx->p, 64, sizeof(pg_row));
    while (apr_dbd_get_row(cx->c.driver, cx->p, res, &row, -1) == 0) {
        pg_row *out = apr_array_push(t->rows);

        out->key = pg_unhex(pg_col(cx, row, 0), cx->p);
        pg_read_state(cx, row, 1, &out->st);
    }
    return APR_SUCCESS;
}

static apr_status_t pg_op_identity(pg_ctx *cx, pg_task *t)
{
    apr_dbd_results_t *res;
    apr_dbd_row_t *row;
    apr_status_t rv = pg_exec(cx, PG_IDENTITY, NULL, 1, &res, NULL);
    const char *id;
    apr_size_t i;

    if (rv != APR_SUCCESS) {
        return rv;
    }
    row = pg_first_row(cx, res);
    id = row ? pg_col(cx, row, 0) : NULL;
    if (!id || strlen(id) != PG_ID_BYTES * 2) {
        t->err = "the store has no valid identity (cond_meta)";
        return APR_EGENERAL;
    }
    for (i = 0; id[i]; i++) {
        if (pg_unhex_digit(id[i]) < 0 || (id[i] >= 'A' && id[i] <= 'F')) {
            t->err = "the store has no valid identity (cond_meta)";
            return APR_EGENERAL;
        }
    }
    t->owner = apr_pstrdup(cx->p, id);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Connections                                                          */

static pg_session *pg_session_of(cond_dbd_conn *c)
{
    void *sess = NULL;

    apr_pool_userdata_get(&sess, PG_SESSION_KEY, c->pool);
    if (!sess) {
        sess = apr_pcalloc(c->pool, sizeof(pg_session));
        apr_pool_userdata_setn(sess, PG_SESSION_KEY, NULL, c->pool);
    }
    return sess;
}

/* Direct mode: the store's own reslist of connections. */
static apr_status_t pg_direct_construct(void **res, void *params,
                                        apr_pool_t *p)
{
    cond_store *s = params;
    cond_dbd_conn *c;
    apr_pool_t *cp;
    const char *err = NULL;
    apr_status_t rv;

    /* Not a subpool of p: those are gone before the reslist's own cleanup
     * hands each connection to pg_direct_destruct. */
    (void)p;
    if ((rv = apr_pool_create(&cp, NULL)) != APR_SUCCESS) {
        return rv;
    }
    c = apr_pcalloc(cp, sizeof(*c));
    c->pool = cp;
    c->driver = s->driver;
    rv = apr_dbd_open_ex(s->driver, cp, s->params, &c->handle, &err);
    if (rv != APR_SUCCESS) {
        apr_pool_destroy(cp);
        return rv;
    }
    *res = c;
    return APR_SUCCESS;
}

static apr_status_t pg_direct_destruct(void *res, void *params,
                                       apr_pool_t *p)
{
    cond_dbd_conn *c = res;

    (void)params;
    (void)p;
    apr_dbd_close(c->driver, c->handle);
    apr_pool_destroy(c->pool);
    return APR_SUCCESS;
}

static apr_status_t pg_direct_acquire(void *baton, apr_pool_t *p,
                                      cond_dbd_conn *out)
{
    cond_store *s = baton;
    cond_dbd_conn *c;
    void *res;
    apr_status_t rv = apr_reslist_acquire(s->direct, &res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    c = res;
    if (apr_dbd_check_conn(c->driver, p, c->handle) != APR_SUCCESS) {
        apr_reslist_invalidate(s->direct, c);
        return APR_ECONNREFUSED;
    }
    *out = *c;
    out->opaque = c;
    return APR_SUCCESS;
}

static void pg_direct_release(void *baton, cond_dbd_conn *c)
{
    cond_store *s = baton;

    apr_reslist_release(s->direct, c->opaque);
}

/* ------------------------------------------------------------------ */
/* Workers                                                              */

/* Run one task on a borrowed connection, in the worker's pool. */
static void pg_call(cond_store *s, pg_task *t, apr_pool_t *p)
{
    pg_ctx cx;
    apr_status_t rv;

    memset(&cx, 0, sizeof(cx));
    cx.s = s;
    cx.p = p;
    cx.t = t;
    rv = s->acquire(s->baton, p, &cx.c);
    if (rv != APR_SUCCESS) {
        t->err = "no connection to the database (see the error log of "
                 "mod_dbd, or the server's DBDParams)";
        t->rv = APR_ECONNREFUSED;
        return;
    }
    cx.sess = pg_session_of(&cx.c);
    t->rv = t->fn(&cx, t);
    s->release(s->baton, &cx.c);
}

static void pg_state_copy(cond_state *to, const cond_state *from,
                          apr_pool_t *p)
{
    *to = *from;
    to->claim_owner = from->claim_owner ? apr_pstrdup(p, from->claim_owner)
                                        : NULL;
    to->meta = from->meta ? apr_pstrdup(p, from->meta) : NULL;
}

/* Copy a finished task's outputs into its caller's pool (under the lock,
 * while the caller waits and so does not touch that pool). */
static void pg_deliver(pg_task *t)
{
    apr_pool_t *p = t->caller_pool;
    int i;

    pg_state_copy(&t->st, &t->st, p);
    if (t->owner && t->fn == pg_op_identity) {
        t->owner = apr_pstrdup(p, t->owner);
    }
    if (t->err) {
        t->err = apr_pstrdup(p, t->err);
    }
    if (t->rows) {
        apr_array_header_t *rows = apr_array_make(p, t->rows->nelts,
                                                  sizeof(pg_row));
        for (i = 0; i < t->rows->nelts; i++) {
            pg_row *from = &APR_ARRAY_IDX(t->rows, i, pg_row);
            pg_row *to = apr_array_push(rows);

            to->key = apr_pstrdup(p, from->key);
            pg_state_copy(&to->st, &from->st, p);
        }
        t->rows = rows;
    }
}

static void pg_task_free(pg_task *t)
{
    pthread_cond_destroy(&t->cond);
    free(t);
}

static void *pg_worker(void *arg)
{
    cond_store *s = arg;
    apr_pool_t *p;
    int slot;

    apr_pool_create(&p, NULL);
    pthread_mutex_lock(&s->lock);
    for (slot = 0; slot < PG_WORKERS - 1 && s->slot_used[slot]; slot++) {
    }
    s->slot_used[slot] = 1;
    for (;;) {
        pg_task *t;

        s->idle++;
        while (!s->head && !s->stopping) {
            pthread_cond_wait(&s->work, &s->lock);
        }
        s->idle--;
        if (s->stopping) {
            s->slot_used[slot] = 0;
            pthread_mutex_unlock(&s->lock);
            break;
        }
        t = s->head;
        s->head = t->next;
        if (!s->head) {
            s->tail = NULL;
        }
        if (t->abandoned) {
            pg_task_free(t);
            continue;
        }
        s->busy_since[slot] = apr_time_now();
        pthread_mutex_unlock(&s->lock);

        pg_call(s, t, p);

        pthread_mutex_lock(&s->lock);
        s->busy_since[slot] = 0;
        if (t->abandoned) {
            pg_task_free(t);
        }
        else {
            pg_deliver(t);
            t->done = 1;
            pthread_cond_signal(&t->cond);
        }
        pthread_mutex_unlock(&s->lock);
        apr_pool_clear(p);
        pthread_mutex_lock(&s->lock);
    }
    /* The pool first: once the count says so, the store and APR may go. */
    apr_pool_destroy(p);
    pthread_mutex_lock(&s->lock);
    s->workers--;
    pthread_cond_broadcast(&s->gone);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Under the lock: a new worker when none is idle and there is room. */
static void pg_spawn(cond_store *s)
{
    pthread_attr_t attr;
    pthread_t th;

    if (s->idle > 0 || s->workers >= PG_WORKERS) {
        return;
    }
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    s->workers++;
    if (pthread_create(&th, &attr, pg_worker, s) != 0) {
        s->workers--;
    }
    pthread_attr_destroy(&attr);
}

/* Under the lock: every worker has been stuck past the deadline, so the
 * database is not answering; waiting in the queue would only add up. */
static int pg_stalled(cond_store *s)
{
    apr_time_t old = apr_time_now() - PG_CALL_DEADLINE;
    int i;

    if (s->workers < PG_WORKERS || s->idle > 0) {
        return 0;
    }
    for (i = 0; i < PG_WORKERS; i++) {
        if (!s->busy_since[i] || s->busy_since[i] > old) {
            return 0;
        }
    }
    return 1;
}

static apr_status_t pg_stop(void *data)
{
    cond_store *s = data;
    struct timespec until;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += 2;
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_cond_broadcast(&s->work);
    /* Bounded: a worker waiting for a stopped database stays behind. */
    while (s->workers > 0
           && pthread_cond_timedwait(&s->gone, &s->lock, &until) == 0) {
    }
    pthread_mutex_unlock(&s->lock);
    return APR_SUCCESS;
}

static pg_task *pg_task_new(pg_op_fn *fn, const char *key, const char *owner,
                            const char *meta, apr_pool_t *p)
{
    apr_size_t kn = key ? strlen(key) + 1 : 0;
    apr_size_t on = owner ? strlen(owner) + 1 : 0;
    apr_size_t mn = meta ? strlen(meta) + 1 : 0;
    pg_task *t = calloc(1, sizeof(*t) + kn + on + mn);
    pthread_condattr_t attr;
    char *at;

    if (!t) {
        return NULL;
    }
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &attr);
    pthread_condattr_destroy(&attr);
    t->fn = fn;
    t->caller_pool = p;
    at = (char *)(t + 1);
    if (key) {
        t->key = memcpy(at, key, kn);
        t->klen = kn - 1;
        at += kn;
    }
    if (owner) {
        t->owner = memcpy(at, owner, on);
        at += on;
    }
    if (meta) {
        t->meta = memcpy(at, meta, mn);
        t->mlen = mn - 1;
    }
    return t;
}

/*
 * Hand t to a worker and wait for it at most PG_CALL_DEADLINE. Returns the
 * task's status, its outputs copied into t->caller_pool. *ours says who
 * frees t: the caller (pg_task_free), or, when the caller gave up on it,
 * the worker still running it.
 */
static apr_status_t pg_run(cond_store *s, pg_task *t, int *ours)
{
    struct timespec until;
    apr_time_t deadline;
    apr_status_t rv;

    clock_gettime(CLOCK_MONOTONIC, &until);
    deadline = apr_time_from_sec(until.tv_sec) + until.tv_nsec / 1000
               + PG_CALL_DEADLINE;
    until.tv_sec = (time_t)apr_time_sec(deadline);
    until.tv_nsec = (long)apr_time_usec(deadline) * 1000;
    *ours = 1;
    pthread_mutex_lock(&s->lock);
    if (!s->started || s->stopping || pg_stalled(s)) {
        rv = s->started ? APR_TIMEUP : APR_EINIT;
        pthread_mutex_unlock(&s->lock);
        cond_store_set_error(t->caller_pool, "%s", rv == APR_EINIT
                             ? "the store is not open in this process"
                             : "the database has not answered for "
                               "several seconds");
        return rv;
    }
    if (s->tail) {
        s->tail->next = t;
    }
    else {
        s->head = t;
    }
    s->tail = t;
    pg_spawn(s);
    pthread_cond_signal(&s->work);
    while (!t->done) {
        if (pthread_cond_timedwait(&t->cond, &s->lock, &until) == ETIMEDOUT
            && !t->done) {
            t->abandoned = 1;
            *ours = 0;
            pthread_mutex_unlock(&s->lock);
            cond_store_set_error(t->caller_pool, "no answer from the "
                                 "database within %d ms",
                                 (int)apr_time_as_msec(PG_CALL_DEADLINE));
            return APR_TIMEUP;
        }
    }
    pthread_mutex_unlock(&s->lock);
    rv = t->rv;
    if (rv != APR_SUCCESS && t->err) {
        cond_store_set_error(t->caller_pool, "%s", t->err);
    }
    return rv;
}

/* Run t and free it; *out gets its version when asked for. */
static apr_status_t pg_run_versioned(cond_store *s, pg_task *t,
                                     apr_int64_t *out)
{
    apr_status_t rv;
    int ours;

    if (!t) {
        return APR_ENOMEM;
    }
    rv = pg_run(s, t, &ours);
    if (!ours) {
        return rv;                       /* the worker frees t */
    }
    if (out && rv == APR_SUCCESS) {
        *out = t->version;
    }
    pg_task_free(t);
    return rv;
}

/* ------------------------------------------------------------------ */
/* The provider                                                         */

static const char *pg_create(cond_store **out, const char *arg,
                             apr_pool_t *p)
{
    cond_store *s = apr_pcalloc(p, sizeof(*s));
    pthread_condattr_t attr;

    if (arg && !*arg) {
        return "dbd: takes its connection from the server's DBDriver and "
               "DBDParams (mod_dbd); write just \"dbd\"";
    }
    s->params = arg ? apr_pstrdup(p, arg) : NULL;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->gone, &attr);
    pthread_condattr_destroy(&attr);
    pthread_cond_init(&s->work, NULL);
    *out = s;
    return NULL;
}

void cond_dbd_set_source(cond_store *s, cond_dbd_acquire_fn *acquire,
                         cond_dbd_release_fn *release, void *baton)
{
    s->acquire = acquire;
    s->release = release;
    s->baton = baton;
}

/* Nothing to do in httpd's parent: mod_dbd opens connections only in the
 * children, and the schema is created on first use. */
static apr_status_t pg_init(cond_store *s, apr_pool_t *p)
{
    (void)s;
    (void)p;
    return APR_SUCCESS;
}

static apr_status_t pg_child_init(cond_store *s, apr_pool_t *pchild)
{
    apr_status_t rv;

    if (s->params) {
        if (!pg_dbd_pool) {
            apr_pool_create(&pg_dbd_pool, NULL);
            apr_dbd_init(pg_dbd_pool);
        }
        rv = apr_dbd_get_driver(pg_dbd_pool, "pgsql", &s->driver);
        if (rv == APR_SUCCESS) {
            rv = apr_reslist_create(&s->direct, 0, PG_DIRECT_CONNS,
                                    PG_DIRECT_CONNS, 0, pg_direct_construct,
                                    pg_direct_destruct, s, pchild);
        }
        if (rv != APR_SUCCESS) {
            cond_store_set_error(pchild, "cannot load apr_dbd's pgsql driver "
                                 "(libaprutil1-dbd-pgsql)");
            return rv;
        }
        cond_dbd_set_source(s, pg_direct_acquire, pg_direct_release, s);
    }
    if (!s->acquire) {
        return APR_EINIT;
    }
    pthread_mutex_lock(&s->lock);
    s->started = 1;
    s->stopping = 0;
    pthread_mutex_unlock(&s->lock);
    /* Before mod_dbd's pools (subpools of pchild) are destroyed. */
    apr_pool_pre_cleanup_register(pchild, s, pg_stop);
    return APR_SUCCESS;
}

/* Learned on first use and kept: a child started while the database was
 * down learns it once the database is back. */
static const char *pg_identity(cond_store *s, apr_pool_t *p)
{
    apr_time_t now = apr_time_now();
    pg_task *t;
    apr_status_t rv;
    int ours;

    if (s->identity[0]) {
        return s->identity;
    }
    pthread_mutex_lock(&s->lock);
    if (now - s->identity_tried < PG_IDENTITY_RETRY) {
        pthread_mutex_unlock(&s->lock);
        return NULL;
    }
    s->identity_tried = now;
    pthread_mutex_unlock(&s->lock);
    if (!(t = pg_task_new(pg_op_identity, NULL, NULL, NULL, p))) {
        return NULL;
    }
    rv = pg_run(s, t, &ours);
    if (!ours) {
        return NULL;
    }
    if (rv == APR_SUCCESS) {
        pthread_mutex_lock(&s->lock);
        apr_cpystrn(s->identity, t->owner, sizeof(s->identity));
        pthread_mutex_unlock(&s->lock);
    }
    pg_task_free(t);
    return s->identity[0] ? s->identity : NULL;
}

static apr_status_t pg_lookup(cond_store *s, const char *key, cond_state *st,
                              apr_pool_t *p)
{
    pg_task *t = pg_task_new(pg_op_lookup, key, NULL, NULL, p);
    apr_status_t rv;
    int ours;

    if (!t) {
        return APR_ENOMEM;
    }
    rv = pg_run(s, t, &ours);
    if (!ours) {
        return rv;
    }
    if (rv == APR_SUCCESS) {
        *st = t->st;
    }
    pg_task_free(t);
    return rv;
}

static apr_status_t pg_claim(cond_store *s, const char *key,
                             apr_int64_t expect_version, const char *owner,
                             apr_interval_time_t lease, apr_pool_t *p)
{
    pg_task *t;

    if (!owner || !*owner || expect_version < 0) {
        return APR_EINVAL;
    }
    t = pg_task_new(pg_op_claim, key, owner, NULL, p);
    if (t) {
        t->expect = expect_version;
        t->lease = lease;
    }
    return pg_run_versioned(s, t, NULL);
}

/* The related keys as PG_BUMP_RELATED takes them, NULL for none. */
static char *pg_related(const apr_array_header_t *related, const char *key,
                        apr_pool_t *p)
{
    apr_array_header_t *hex;
    int i;

    if (!related || related->nelts == 0) {
        return NULL;
    }
    hex = apr_array_make(p, related->nelts, sizeof(char *));
    for (i = 0; i < related->nelts; i++) {
        const char *k = APR_ARRAY_IDX(related, i, const char *);
        apr_size_t n = k ? strlen(k) : 0, j;
        char *h;

        if (!k || !strcmp(k, key)) {
            continue;
        }
        h = apr_palloc(p, 2 * n + 1);
        for (j = 0; j < n; j++) {
            apr_snprintf(h + 2 * j, 3, "%02x", (unsigned char)k[j]);
        }
        h[2 * n] = '\0';
        APR_ARRAY_PUSH(hex, char *) = h;
    }
    return hex->nelts ? apr_array_pstrcat(p, hex, ',') : NULL;
}

static apr_status_t pg_commit(cond_store *s, const char *key,
                              const char *owner, unsigned flags,
                              const apr_array_header_t *related,
                              apr_time_t now, apr_int64_t *version,
                              apr_pool_t *p)
{
    pg_task *t = pg_task_new(pg_op_commit, key, owner,
                             pg_related(related, key, p), p);

    if (t) {
        t->flags = flags;
        t->now = apr_time_sec(now);
    }
    return pg_run_versioned(s, t, version);
}

static apr_status_t pg_release(cond_store *s, const char *key,
                               const char *owner,
                               const apr_array_header_t *related,
                               apr_pool_t *p)
{
    pg_task *t = pg_task_new(pg_op_release, key, owner,
                             pg_related(related, key, p), p);

    if (t) {
        t->now = apr_time_sec(apr_time_now());
    }
    return pg_run_versioned(s, t, NULL);
}

static apr_status_t pg_renew(cond_store *s, const char *key,
                             const char *owner, apr_interval_time_t lease,
                             apr_pool_t *p)
{
    pg_task *t = pg_task_new(pg_op_renew, key, owner, NULL, p);

    if (t) {
        t->lease = lease;
    }
    return pg_run_versioned(s, t, NULL);
}

static apr_status_t pg_break_claim(cond_store *s, const char *key,
                                   const char *dead_owner, apr_time_t now,
                                   apr_int64_t *version, apr_pool_t *p)
{
    pg_task *t = pg_task_new(pg_op_break, key, dead_owner, NULL, p);

    if (t) {
        t->now = apr_time_sec(now);
    }
    return pg_run_versioned(s, t, version);
}

static apr_status_t pg_bump(cond_store *s, const char *key, apr_time_t now,
                            apr_int64_t *version, apr_pool_t *p)
{
    pg_task *t = pg_task_new(pg_op_bump, key, NULL, NULL, p);

    if (t) {
        t->now = apr_time_sec(now);
    }
    return pg_run_versioned(s, t, version);
}

static apr_status_t pg_register(cond_store *s, const char *key,
                                const char *meta, apr_time_t now,
                                apr_int64_t *version, apr_pool_t *p)
{
    pg_task *t = pg_task_new(pg_op_register, key, NULL, meta, p);

    if (t) {
        t->now = apr_time_sec(now);
    }
    return pg_run_versioned(s, t, version);
}

static apr_status_t pg_set_exists(cond_store *s, const char *key,
                                  apr_int64_t expect_version, int exists,
                                  const char *meta, apr_time_t now,
                                  apr_int64_t *version, apr_pool_t *p)
{
    pg_task *t = pg_task_new(pg_op_set_exists, key, NULL, meta, p);

    if (t) {
        t->expect = expect_version;
        t->exists = exists != 0;
        t->now = apr_time_sec(now);
    }
    return pg_run_versioned(s, t, version);
}

static apr_status_t pg_set_meta(cond_store *s, const char *key,
                                apr_int64_t expect_version, const char *meta,
                                apr_pool_t *p)
{
    pg_task *t = pg_task_new(pg_op_set_meta, key, NULL, meta, p);

    if (t) {
        t->expect = expect_version;
    }
    return pg_run_versioned(s, t, NULL);
}

static apr_status_t pg_forget(cond_store *s, const char *key, apr_pool_t *p)
{
    return pg_run_versioned(s, pg_task_new(pg_op_forget, key, NULL, NULL, p),
                            NULL);
}

static apr_status_t pg_list(cond_store *s, const char *prefix,
                            cond_store_list_fn *fn, void *baton,
                            apr_pool_t *p)
{
    const char *end = cond_store_prefix_end(prefix ? prefix : "", p);
    pg_task *t = pg_task_new(pg_op_list, prefix ? prefix : "", NULL, end, p);
    apr_status_t rv;
    int i, ours;

    if (!t) {
        return APR_ENOMEM;
    }
    /* the range's end travels in meta's place */
    t->end = t->meta;
    t->elen = t->mlen;
    t->meta = NULL;
    rv = pg_run(s, t, &ours);
    if (!ours) {
        return rv;
    }
    for (i = 0; rv == APR_SUCCESS && i < t->rows->nelts; i++) {
        pg_row *row = &APR_ARRAY_IDX(t->rows, i, pg_row);

        if (fn(baton, row->key, &row->st)) {
            break;
        }
    }
    pg_task_free(t);
    return rv;
}

/*
 * The check on what PG_CLAIM_READ found. Claimed and checked: done, one
 * round trip. Not claimed: a claim by another is APR_EBUSY, a check that
 * says no costs nothing more (a stale If-Match, any refusal the caller
 * saw coming), and a check that takes a state the statement would not
 * claim (an unknown key, a version other than expected, no expectation)
 * claims it now with claim()'s compare-and-set, as the glue does without
 * claim_checked. Claimed but refused by the check (the caller's hint was
 * wrong): released again.
 */
static apr_status_t pg_claim_decide(cond_store *s, const char *key,
                                    const char *owner,
                                    apr_interval_time_t lease,
                                    cond_claim_check_fn *check, void *baton,
                                    const cond_state *st, int found,
                                    int claimed, apr_pool_t *p)
{
    apr_status_t rv;

    if (found && st->claim_owner) {
        return APR_EBUSY;
    }
    if (check(baton, found ? st : NULL)) {
        if (!claimed) {
            return COND_STORE_DECLINED;
        }
        rv = pg_release(s, key, owner, NULL, p);
        return rv == APR_SUCCESS || rv == COND_STORE_NOT_HELD
               ? COND_STORE_DECLINED : rv;
    }
    return claimed ? APR_SUCCESS
                   : pg_claim(s, key, found ? st->version : 0, owner, lease,
                              p);
}

static apr_status_t pg_claim_checked(cond_store *s, const char *key,
                                     apr_int64_t expect_version,
                                     const char *owner,
                                     apr_interval_time_t lease,
                                     cond_claim_check_fn *check, void *baton,
                                     cond_state *st, int *found,
                                     apr_pool_t *p)
{
    pg_task *t;
    apr_status_t rv;
    int ours, claimed;

    memset(st, 0, sizeof(*st));
    *found = 0;
    if (!owner || !*owner || !check) {
        return APR_EINVAL;
    }
    if (!(t = pg_task_new(pg_op_claim_read, key, owner, NULL, p))) {
        return APR_ENOMEM;
    }
    /* < 0 matches no version; what else it lets the statement claim at
     * once: pg_gone_from, pg_present_until, pg_insert_unknown */
    t->expect = expect_version;
    t->lease = lease;
    rv = pg_run(s, t, &ours);
    if (!ours) {
        return rv;                       /* the worker frees t */
    }
    if (rv == APR_SUCCESS && t->found) {
        *st = t->st;
        *found = 1;
    }
    claimed = t->claimed;
    pg_task_free(t);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return pg_claim_decide(s, key, owner, lease, check, baton, st, *found,
                           claimed, p);
}

const cond_store_provider cond_dbd_store = {
    "dbd",
    1,
    pg_create,
    pg_init,
    NULL,
    pg_child_init,
    pg_identity,
    pg_lookup,
    pg_claim,
    pg_commit,
    pg_release,
    pg_renew,
    pg_break_claim,
    pg_bump,
    pg_register,
    pg_set_exists,
    pg_set_meta,
    pg_forget,
    pg_list,
    NULL,               /* shutdown: PostgreSQL's commits are durable */
    pg_claim_checked    /* one statement claims at the If-Match's version
                         * and returns the state; the check runs on it */
};
