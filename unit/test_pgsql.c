/*
 * test_pgsql.c - the PostgreSQL store (pgsql_store.c, "dbd"): the store
 * contract suite (store_contract.c) against a real PostgreSQL this program
 * starts itself (initdb and pg_ctl from PG_BIN, as an unprivileged user
 * when run as root, a Unix socket in a temporary directory, fsync off),
 * then what only this store has to survive: the server restarted under
 * it (fast and immediate), stopped, and frozen (SIGSTOP), several stores
 * creating the schema at once, keys that are not UTF-8.
 *
 * Each store is a database of its own; the store connects with a
 * connection string ("dbd:PARAMS"), as conditionalctl does. Exits non-zero
 * when anything failed.
 */

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_atomic.h>
#include <apr_general.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include "store_contract.h"

#ifndef PG_BIN
#define PG_BIN "/usr/lib/postgresql/15/bin"
#endif
#define PG_USER_FALLBACK "nobody"

static char pgdir[256];          /* data directory and socket */
static const char *runas = "";   /* "runuser -u nobody -- " as root */

static int pg_sh(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* Run a shell command (as the database's user); 0 on success. */
static int pg_sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

static int pg_ctl(const char *what)
{
    return pg_sh("%s" PG_BIN "/pg_ctl -D %s/data -l %s/log -w -t 60 "
                 "-o \"-k %s -c listen_addresses='' -c fsync=off "
                 "-c max_connections=200 "
                 "-c shared_preload_libraries=pg_stat_statements\" "
                 "%s >/dev/null",
                 runas, pgdir, pgdir, pgdir, what);
}

static const char *pg_params(apr_pool_t *p, const char *db)
{
    return apr_psprintf(p, "host=%s dbname=%s user=cond connect_timeout=3",
                        pgdir, db);
}

static int pg_createdb(const char *db)
{
    return pg_sh("%s" PG_BIN "/createdb -h %s -U cond %s", runas, pgdir,
                 db);
}

/* The postmaster's pid, from its pid file. */
static pid_t pg_postmaster(void)
{
    char path[512];
    FILE *f;
    long pid = 0;

    snprintf(path, sizeof(path), "%s/data/postmaster.pid", pgdir);
    if ((f = fopen(path, "r")) != NULL) {
        if (fscanf(f, "%ld", &pid) != 1) {
            pid = 0;
        }
        fclose(f);
    }
    return (pid_t)pid;
}

static int pg_start_server(void)
{
    char tmpl[] = "/tmp/test_pgsql.XXXXXX";

    if (!mkdtemp(tmpl)) {
        return -1;
    }
    apr_cpystrn(pgdir, tmpl, sizeof(pgdir));
    chmod(pgdir, 0755);
    if (geteuid() == 0) {
        runas = "runuser -u " PG_USER_FALLBACK " -- ";
        if (pg_sh("chown " PG_USER_FALLBACK " %s", pgdir) != 0) {
            return -1;
        }
    }
    if (pg_sh("%s" PG_BIN "/initdb -D %s/data -U cond -A trust --no-sync "
              ">%s/initdb.log 2>&1", runas, pgdir, pgdir) != 0) {
        printf("initdb failed, see %s/initdb.log\n", pgdir);
        return -1;
    }
    return pg_ctl("start");
}

/* A crash or a kill of this program must not leave the server running:
 * SIGQUIT is the postmaster's immediate shutdown (after SIGCONT, for a
 * server frozen by test_frozen). SIGALRM is test_frozen's watchdog: a
 * call that never returns fails the run instead of hanging it. */
static void pg_on_signal(int sig)
{
    pid_t pm = pg_postmaster();

    if (sig == SIGALRM) {
        static const char msg[] = "FAIL dbd: a store call did not return "
                                  "(watchdog)\n";

        fflush(stdout);
        if (write(STDOUT_FILENO, msg, sizeof(msg) - 1) < 0) {
            /* nothing more to say */
        }
    }
    if (pm > 0) {
        /* its backends, still stopped, get SIGKILL from it in the end */
        kill(pm, SIGCONT);
        kill(pm, SIGQUIT);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void pg_stop_server(void)
{
    pg_ctl("stop -m immediate");
    if (!getenv("TEST_STORE_KEEP")) {
        pg_sh("rm -rf %s", pgdir);
    }
}

/* ------------------------------------------------------------------ */
/* The target                                                           */

static cond_store *pg_attach(apr_pool_t *p, const char *name,
                             apr_status_t *rv)
{
    cond_store *s = NULL;
    const char *err = PV->create(&s, pg_params(p, name), p);

    if (err) {
        printf("  %s\n", err);
        *rv = APR_EGENERAL;
        return NULL;
    }
    *rv = PV->child_init(s, p);
    return s;
}

static cond_store *pg_open(apr_pool_t *p, const char *name)
{
    char db[64];
    apr_status_t rv;
    cond_store *s;
    int i;

    /* database names: letters, digits and underscores */
    apr_cpystrn(db, name, sizeof(db));
    for (i = 0; db[i]; i++) {
        if (!apr_isalnum(db[i])) {
            db[i] = '_';
        }
    }
    if (!CHECK(pg_createdb(db) == 0)) {
        return NULL;
    }
    s = pg_attach(p, db, &rv);
    if (!s || !CHECK(PV->init(s, p) == APR_SUCCESS)
        || !CHECK_RV(rv, APR_SUCCESS)) {
        return NULL;
    }
    return s;
}

/* Contract names such as "ident-other" are not database names. */
static cond_store *pg_attach_named(apr_pool_t *p, const char *name,
                                   apr_status_t *rv)
{
    char db[64];
    int i;

    apr_cpystrn(db, name, sizeof(db));
    for (i = 0; db[i]; i++) {
        if (!apr_isalnum(db[i])) {
            db[i] = '_';
        }
    }
    return pg_attach(p, db, rv);
}

static const test_target pg_target = {
    "dbd",
    &cond_dbd_store,
    pg_open,
    pg_attach_named,
    NULL,
    1
};

/* ------------------------------------------------------------------ */
/* Store-specific tests                                                 */

static void test_params(apr_pool_t *p)
{
    const cond_store_provider *pv;
    cond_store *s = NULL;
    const char *arg;

    /* the spec parser shared with the module accepts a bare "dbd" */
    CHECK(cond_store_parse("dbd", "/", 0, &pv, &arg, p) == NULL
          && pv == &cond_dbd_store && arg == NULL);
    CHECK(cond_store_parse("dbd:host=x", "/", 0, &pv, &arg, p) == NULL
          && pv == &cond_dbd_store && !strcmp(arg, "host=x"));
    CHECK(PV->create(&s, "", p) != NULL);
    /* without PARAMS and without mod_dbd's callbacks: not usable */
    s = NULL;
    CHECK(PV->create(&s, NULL, p) == NULL && s != NULL);
    if (s) {
        cond_state st;

        CHECK(PV->child_init(s, p) != APR_SUCCESS);
        CHECK(PV->lookup(s, "k", &st, p) != APR_SUCCESS);
        CHECK(PV->identity(s, p) == NULL);
    }
}

/* A check that takes only the version *baton. */
static int test_at_version(void *baton, const cond_state *st)
{
    return !st || st->version != *(apr_int64_t *)baton;
}

/* A restart takes every session away: the store reconnects, prepares its
 * statements again, and every call after it works - no "prepared
 * statement does not exist", no lost claim, versions above all before. */
static void test_restart(apr_pool_t *p, const char *mode)
{
    cond_store *s = pg_open(p, apr_psprintf(p, "restart_%s", mode));
    apr_int64_t v0 = 0, v1 = 0, v2 = 0;
    cond_state st;
    int i, found = 0;

    if (!s) {
        return;
    }
    CHECK_RV(PV->register_key(s, "/r", NULL, apr_time_now(), &v0, p),
             APR_SUCCESS);
    /* sessions on several workers' connections */
    for (i = 0; i < 20; i++) {
        PV->lookup(s, "/r", &st, p);
    }
    CHECK_RV(PV->claim(s, "/r", v0, "before", LEASE, p), APR_SUCCESS);
    if (!strcmp(mode, "fast")) {
        CHECK(pg_ctl("restart -m fast") == 0);
    }
    else {
        CHECK(pg_ctl("stop -m immediate") == 0 && pg_ctl("start") == 0);
    }
    /* the claim taken before the restart is still held and committable:
     * a connection idle for a while is checked before a commit goes out
     * on it, so the commit is not sent into a dead socket */
    apr_sleep(apr_time_from_msec(1200));
    CHECK_RV(PV->commit(s, "/r", "before", COND_COMMIT_EXISTS
                        | COND_COMMIT_HOLD, NULL, apr_time_now(), &v1, p),
             APR_SUCCESS);
    CHECK(v1 > v0);
    /* a lookup is repeated on a new session */
    CHECK(pg_ctl("restart -m fast") == 0);
    CHECK_RV(PV->lookup(s, "/r", &st, p), APR_SUCCESS);
    CHECK(st.version == v1 && st.claim_owner
          && !strcmp(st.claim_owner, "before") && LEASE_FRESH(st.claim_left));
    CHECK_RV(PV->release(s, "/r", "before", NULL, p), APR_SUCCESS);
    /* so is claim_checked's statement, and it claims at the version */
    CHECK(pg_ctl("restart -m fast") == 0);
    CHECK_RV(PV->claim_checked(s, "/r", v1, "after", LEASE, test_at_version,
                               &v1, &st, &found, p), APR_SUCCESS);
    CHECK(found && st.version == v1 && !st.claim_owner);
    CHECK_RV(PV->release(s, "/r", "after", NULL, p), APR_SUCCESS);
    for (i = 0; i < 20; i++) {
        CHECK_RV(PV->bump(s, "/r", apr_time_now(), &v2, p), APR_SUCCESS);
        CHECK(v2 > v1);
        v1 = v2;
    }
    CHECK(pg_sh("grep -q 'does not exist' %s/log", pgdir) != 0);
}

static void test_restart_fast(apr_pool_t *p)
{
    test_restart(p, "fast");
}

static void test_restart_immediate(apr_pool_t *p)
{
    test_restart(p, "immediate");
}

/* Stopped: calls fail at once (no connection), the identity of a store
 * that never reached the database stays unknown; started again, it is
 * learned and everything works without a new store instance. */
static void test_stopped(apr_pool_t *p)
{
    cond_store *s = pg_open(p, "stopped"), *late;
    apr_status_t rv = APR_SUCCESS;
    apr_int64_t v = 0;
    apr_time_t t0;
    cond_state st;

    if (!s) {
        return;
    }
    CHECK(PV->identity(s, p) != NULL);
    late = pg_attach(p, "stopped", &rv);
    CHECK_RV(rv, APR_SUCCESS);
    CHECK(pg_ctl("stop -m fast") == 0);
    t0 = apr_time_now();
    CHECK(PV->lookup(s, "/x", &st, p) != APR_SUCCESS);
    CHECK(PV->claim(s, "/x", 0, "o", LEASE, p) != APR_SUCCESS);
    CHECK(cond_store_error(p) != NULL);
    CHECK(late && PV->identity(late, p) == NULL);
    CHECK(apr_time_now() - t0 < apr_time_from_sec(4));
    CHECK(pg_ctl("start") == 0);
    apr_sleep(apr_time_from_msec(1100));     /* PG_IDENTITY_RETRY */
    CHECK(late && PV->identity(late, p) != NULL
          && !strcmp(PV->identity(late, p), PV->identity(s, p)));
    CHECK_RV(PV->register_key(s, "/x", NULL, apr_time_now(), &v, p),
             APR_SUCCESS);
    CHECK(late && PV->lookup(late, "/x", &st, p) == APR_SUCCESS
          && st.version == v);
}

/* Frozen (SIGSTOP): nothing answers and nothing refuses. Every call
 * fails within the store's deadline: APR_TIMEUP when its statement got
 * no answer, APR_ECONNREFUSED when the new connection it needed timed out
 * first (connect_timeout, which a loaded machine reaches sooner); once
 * every worker is stuck, calls fail at once; after SIGCONT the store works
 * again. */
static void test_frozen(apr_pool_t *p)
{
    cond_store *s = pg_open(p, "frozen");
    pid_t pm = pg_postmaster();
    apr_int64_t v = 0;
    apr_time_t t0, took, worst = 0;
    apr_status_t rv;
    cond_state st;
    int i;

    if (!s || !CHECK(pm > 0)) {
        return;
    }
    CHECK_RV(PV->register_key(s, "/f", NULL, apr_time_now(), &v, p),
             APR_SUCCESS);
    /* the whole server: postmaster and its backends; a call that waits
     * for it without end trips the watchdog (pg_on_signal) */
    alarm(120);
    CHECK(pg_sh("kill -STOP %ld; pkill -STOP -P %ld", (long)pm, (long)pm)
          == 0);
    for (i = 0; i < 12; i++) {
        t0 = apr_time_now();
        rv = PV->lookup(s, "/f", &st, p);
        if (rv != APR_TIMEUP) {
            CHECK_RV(rv, APR_ECONNREFUSED);
        }
        CHECK(cond_store_error(p) != NULL);
        took = apr_time_now() - t0;
        worst = took > worst ? took : worst;
    }
    printf("# frozen database: slowest call %d ms\n",
           (int)apr_time_as_msec(worst));
    CHECK(worst < apr_time_from_sec(5));
    CHECK(pg_sh("pkill -CONT -P %ld; kill -CONT %ld", (long)pm, (long)pm)
          == 0);
    alarm(0);
    apr_sleep(apr_time_from_msec(500));
    CHECK_RV(PV->lookup(s, "/f", &st, p), APR_SUCCESS);
    CHECK(st.version == v);
    CHECK_RV(PV->bump(s, "/f", apr_time_now(), &v, p), APR_SUCCESS);
}

/* Several stores (nodes) create the schema of an empty database at the
 * same moment: all succeed, with one identity. All are set up first and
 * then let go at once, so that their first statements, the schema's,
 * overlap as much as they can. */
static void test_schema_race(apr_pool_t *p)
{
    enum { N = 6 };
    pid_t pids[N];
    int fd[2], go[2], i, ok = 1, status;
    char ids[N][17];

    (void)p;
    if (!CHECK(pg_createdb("schema_race") == 0) || !CHECK(pipe(fd) == 0)
        || !CHECK(pipe(go) == 0)) {
        return;
    }
    fflush(stdout);
    for (i = 0; i < N; i++) {
        if ((pids[i] = fork()) == 0) {
            apr_pool_t *cp;
            apr_status_t rv;
            cond_store *s;
            const char *id;
            char buf[17];

            apr_pool_create(&cp, NULL);
            s = pg_attach(cp, "schema_race", &rv);
            close(go[1]);
            /* the parent closes its end when all are ready: EOF for all */
            while (read(go[0], buf, 1) > 0) {
            }
            id = s && rv == APR_SUCCESS ? PV->identity(s, cp) : NULL;
            memset(buf, 0, sizeof(buf));
            if (id) {
                apr_cpystrn(buf, id, sizeof(buf));
            }
            _exit(write(fd[1], buf, sizeof(buf)) == sizeof(buf) ? 0 : 1);
        }
    }
    apr_sleep(apr_time_from_msec(300));
    close(go[0]);
    close(go[1]);
    for (i = 0; i < N; i++) {
        ok &= read(fd[0], ids[i], sizeof(ids[i])) == sizeof(ids[i])
              && test_is_hex_id(ids[i]) && !strcmp(ids[i], ids[0]);
    }
    for (i = 0; i < N; i++) {
        ok &= pids[i] > 0 && waitpid(pids[i], &status, 0) == pids[i]
              && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    close(fd[0]);
    close(fd[1]);
    CHECK(ok);
}

/* A statement the database refuses: the caller gets PostgreSQL's own
 * words (cond_store_error), which the module logs. */
static void test_own_words(apr_pool_t *p)
{
    cond_store *s = pg_open(p, "words");
    apr_int64_t v = 0;
    const char *msg;
    apr_pool_t *call;
    cond_state st;

    if (!s) {
        return;
    }
    CHECK_RV(PV->register_key(s, "/w", NULL, apr_time_now(), &v, p),
             APR_SUCCESS);
    CHECK(pg_sh("%s" PG_BIN "/psql -q -h %s -U cond -d words -c "
                "'DROP TABLE cond_resources' >/dev/null", runas, pgdir)
          == 0);
    apr_pool_create(&call, p);
    CHECK(PV->lookup(s, "/w", &st, call) != APR_SUCCESS);
    msg = cond_store_error(call);
    printf("# the store's words: %s\n", msg ? msg : "(none)");
    CHECK(msg && strstr(msg, "cond_resources"));
}

/* The number the last statement of sql in db answers, -1 when it
 * fails. */
static long long pg_number(const char *db, const char *sql)
{
    char cmd[1024], out[64] = "", line[64];
    FILE *f;

    snprintf(cmd, sizeof(cmd), "%s" PG_BIN "/psql -X -At -h %s -U cond -d %s "
             "-c \"%s\"", runas, pgdir, db, sql);
    if (!(f = popen(cmd, "r"))) {
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        memcpy(out, line, sizeof(out));
    }
    return pclose(f) == 0 && out[0] && out[0] != '\n' ? atoll(out) : -1;
}

/* What the store's statements on its table cost since the last reset:
 * how many ran, and the WAL records they wrote (pg_stat_statements
 * counts both as each statement ends, before its answer is sent). */
static void pg_trips(const char *db, long long *calls, long long *wal)
{
    static const char from[] =
        " FROM pg_stat_statements WHERE dbid = (SELECT oid FROM "
        "pg_database WHERE datname = current_database()) AND query LIKE "
        "'%%cond_resources%%' AND query NOT LIKE '%%pg_stat_statements%%'";
    char sql[512];

    snprintf(sql, sizeof(sql), "SELECT coalesce(sum(calls), 0)%s", from);
    *calls = pg_number(db, sql);
    snprintf(sql, sizeof(sql), "SELECT coalesce(sum(wal_records), 0)%s",
             from);
    *wal = pg_number(db, sql);
}

/* One conditional write as the glue makes it (conditional_try_claim,
 * then the commit of a complete response) whose preconditions hold at
 * version tag only: claim_checked told hint (conditional_expect: tag for
 * a single-tag If-Match, -1 for other preconditions) where the store has
 * it, else a lookup and claim()'s compare-and-set. Returns the claim's
 * status; *v gets the new version after a commit. */
static apr_status_t test_glue_write(cond_store *s, const char *key,
                                    apr_int64_t hint, apr_int64_t tag,
                                    apr_int64_t *v, apr_pool_t *p)
{
    cond_state st;
    apr_status_t rv;
    int found = 0;

    if (PV->claim_checked) {
        rv = PV->claim_checked(s, key, hint, "w", LEASE, test_at_version,
                               &tag, &st, &found, p);
    }
    else if ((rv = PV->lookup(s, key, &st, p)) == APR_SUCCESS) {
        rv = st.claim_owner ? APR_EBUSY
             : test_at_version(&tag, &st) ? COND_STORE_DECLINED
             : PV->claim(s, key, st.version, "w", LEASE, p);
    }
    if (rv == APR_SUCCESS) {
        rv = PV->commit(s, key, "w", COND_COMMIT_EXISTS, NULL,
                        apr_time_now(), v, p);
        CHECK_RV(rv, APR_SUCCESS);
    }
    return rv;
}

/* The round trips of a write, counted by the server: a committed write
 * is the claim and the commit, two statements; a 412 (a stale If-Match,
 * an If-None-Match: * on a present key) is one statement that writes
 * nothing - no claim taken and released, no row lock, not one WAL
 * record. */
static void test_round_trips(apr_pool_t *p)
{
    enum { N = 10 };
    cond_store *s = pg_open(p, "trips");
    apr_int64_t v = 0, stale;
    long long calls = -1, wal = -1;
    cond_state st;
    int i, ok = 1;

    if (!s || !CHECK(pg_number("trips", "CREATE EXTENSION "
                               "pg_stat_statements; SELECT 1") == 1)) {
        return;
    }
    CHECK_RV(PV->bump(s, "/t", apr_time_now(), &v, p), APR_SUCCESS);
    stale = v;
    CHECK_RV(test_glue_write(s, "/t", v, v, &v, p), APR_SUCCESS);

    CHECK(pg_number("trips", "SELECT 1 FROM pg_stat_statements_reset()")
          == 1);
    for (i = 0; i < N; i++) {
        ok &= test_glue_write(s, "/t", v, v, &v, p) == APR_SUCCESS;
    }
    CHECK(ok);
    pg_trips("trips", &calls, &wal);
    printf("# %d committed writes: %lld statements, %lld WAL records\n", N,
           calls, wal);
    CHECK(calls == 2 * N);

    CHECK(pg_number("trips", "SELECT 1 FROM pg_stat_statements_reset()")
          == 1);
    for (i = 0; i < N; i++) {
        ok &= test_glue_write(s, "/t", stale, stale, &v, p)
              == COND_STORE_DECLINED;
        /* other preconditions; If-None-Match: * (create-only) before and
         * after the backend was asked */
        ok &= test_glue_write(s, "/t", COND_EXPECT_NONE, 0, &v, p)
              == COND_STORE_DECLINED;
        ok &= test_glue_write(s, "/t", COND_EXPECT_GONE, 0, &v, p)
              == COND_STORE_DECLINED;
        ok &= test_glue_write(s, "/t", COND_EXPECT_ABSENT, 0, &v, p)
              == COND_STORE_DECLINED;
    }
    CHECK(ok);
    pg_trips("trips", &calls, &wal);
    printf("# %d stale If-Match and %d other, %d If-None-Match: * writes "
           "(412): %lld statements, %lld WAL records\n", N, N, 2 * N, calls,
           wal);
    CHECK(calls == 4 * N);
    CHECK(wal == 0);
    CHECK_RV(PV->lookup(s, "/t", &st, p), APR_SUCCESS);
    CHECK(st.version == v && !st.claim_owner);
}

/* A check that takes only a state without a resource (a create), or
 * any state when *baton says so. */
static int test_absent(void *baton, const cond_state *st)
{
    return !*(int *)baton && st && st->exists;
}

/* A check that takes a key with a resource, or an unknown one (the
 * backend said it has it): If-Match: *. */
static int test_has(void *baton, const cond_state *st)
{
    (void)baton;
    return st && !st->exists;
}

/* If-Unmodified-Since alone, of the second *baton: a key whose resource
 * was last modified after it is refused. */
static int test_unmodified(void *baton, const cond_state *st)
{
    return st && st->exists && st->version > 0 && st->mtime
           && apr_time_sec(st->mtime) > *(apr_int64_t *)baton;
}

/* N writes of key/i, each as the glue makes it with hint: the claim and
 * the commit of what the backend made; exists 0 deletes instead. Returns
 * the statements the server ran for them. The check is If-None-Match: *
 * (any state for COND_EXPECT_ANY, no precondition), If-Match: * for
 * COND_EXPECT_PRESENT and _EXISTS, If-Unmodified-Since for
 * COND_EXPECT_UNMODIFIED. */
static long long test_creates(cond_store *s, const char *db,
                              const char *key, apr_int64_t hint, int exists,
                              int n, apr_pool_t *p)
{
    long long calls = -1, wal = -1;
    apr_int64_t v = 0, since = COND_EXPECT_SINCE(hint);
    cond_state st;
    int i, found, ok = 1, any = hint == COND_EXPECT_ANY;
    int star = hint == COND_EXPECT_PRESENT || hint == COND_EXPECT_EXISTS;
    int ius = COND_EXPECT_IS_UNMODIFIED(hint);

    /* the session's statements prepared before counting */
    PV->lookup(s, key, &st, p);
    CHECK(pg_number(db, "SELECT 1 FROM pg_stat_statements_reset()") == 1);
    for (i = 0; i < n; i++) {
        const char *k = apr_psprintf(p, "%s/%d", key, i);

        ok &= PV->claim_checked(s, k, hint, "w", LEASE,
                                star ? test_has
                                : ius ? test_unmodified : test_absent,
                                ius ? (void *)&since : &any, &st, &found, p)
              == APR_SUCCESS
              && PV->commit(s, k, "w", exists ? COND_COMMIT_EXISTS : 0, NULL,
                            apr_time_now(), &v, p) == APR_SUCCESS;
        ok &= PV->lookup(s, k, &st, p) == APR_SUCCESS && st.version == v
              && st.exists == exists && !st.claim_owner;
    }
    CHECK(ok);
    pg_trips(db, &calls, &wal);
    return calls - n;                  /* not the lookups */
}

/* The round trips of a create, counted by the server: a write with no
 * precondition on an unknown key, and an If-None-Match: * once the
 * backend said it has none, are the claim - which inserts the claimed
 * placeholder in the same statement - and the commit; so is an
 * If-None-Match: * over a deleted resource, which the store knows. */
static void test_round_trips_create(apr_pool_t *p)
{
    enum { N = 10 };
    cond_store *s = pg_open(p, "creates");
    long long any, absent, gone;

    if (!s || !CHECK(pg_number("creates", "CREATE EXTENSION "
                               "pg_stat_statements; SELECT 1") == 1)) {
        return;
    }
    any = test_creates(s, "creates", "/any", COND_EXPECT_ANY, 1, N, p);
    absent = test_creates(s, "creates", "/absent", COND_EXPECT_ABSENT, 1, N,
                          p);
    /* delete them (a write with no precondition), then create again */
    CHECK(test_creates(s, "creates", "/absent", COND_EXPECT_ANY, 0, N, p)
          == 2 * N);
    gone = test_creates(s, "creates", "/absent", COND_EXPECT_GONE, 1, N, p);
    printf("# %d creates each: no precondition %lld statements, "
           "If-None-Match: * %lld, over a deleted resource %lld\n", N, any,
           absent, gone);
    CHECK(any == 2 * N);
    CHECK(absent == 2 * N);
    CHECK(gone == 2 * N);
}

/* The round trips of one kind of write (the hints the glue gives it),
 * counted by the server: N on keys the store knows with a resource, N on
 * keys it never saw, each the claim (inserting the placeholder of an
 * unknown key) and the commit; then, the known keys deleted first when delete says so,
 * N refused by check (a 412) with the refused hint, each one statement
 * that writes nothing. */
typedef struct {
    const char *db, *what;
    apr_int64_t known, unknown;        /* the hints */
    int delete;
    apr_int64_t refused_hint;
    cond_claim_check_fn *check;
    void *baton;
} test_trips_case;

static void test_round_trips_of(const test_trips_case *c, apr_pool_t *p)
{
    enum { N = 10 };
    cond_store *s = pg_open(p, c->db);
    long long known, unknown, calls = -1, wal = -1;
    cond_state st;
    int i, found, ok = 1;

    if (!s || !CHECK(pg_number(c->db, "CREATE EXTENSION "
                               "pg_stat_statements; SELECT 1") == 1)) {
        return;
    }
    CHECK(test_creates(s, c->db, "/k", COND_EXPECT_ANY, 1, N, p) == 2 * N);
    known = test_creates(s, c->db, "/k", c->known, 1, N, p);
    unknown = test_creates(s, c->db, "/new", c->unknown, 1, N, p);
    if (c->delete) {
        CHECK(test_creates(s, c->db, "/k", COND_EXPECT_ANY, 0, N, p)
              == 2 * N);
    }
    CHECK(pg_number(c->db, "SELECT 1 FROM pg_stat_statements_reset()")
          == 1);
    for (i = 0; i < N; i++) {
        ok &= PV->claim_checked(s, apr_psprintf(p, "/k/%d", i),
                                c->refused_hint, "w", LEASE, c->check,
                                c->baton, &st, &found, p)
              == COND_STORE_DECLINED && found && !st.claim_owner;
    }
    CHECK(ok);
    pg_trips(c->db, &calls, &wal);
    printf("# %d %s writes each: on a known key %lld statements, on an "
           "unknown key %lld; refused (412) %lld, %lld WAL records\n", N,
           c->what, known, unknown, calls, wal);
    CHECK(known == 2 * N);
    CHECK(unknown == 2 * N);
    CHECK(calls == N);
    CHECK(wal == 0);
}

/* If-Match: *: on a key the store knows with a resource; on a key it
 * never saw, once the backend said it has the resource; refused on a key
 * known without a resource (deleted). */
static void test_round_trips_star(apr_pool_t *p)
{
    test_trips_case c = { "star", "If-Match: *", COND_EXPECT_PRESENT,
                          COND_EXPECT_EXISTS, 1, COND_EXPECT_PRESENT,
                          test_has, NULL };

    test_round_trips_of(&c, p);
}

/* If-Unmodified-Since alone: on a key last modified at or before its
 * date, and on a key the store never saw; refused on a key modified
 * since. */
static void test_round_trips_since(apr_pool_t *p)
{
    apr_int64_t early = 1;
    apr_int64_t later = COND_EXPECT_UNMODIFIED(apr_time_sec(apr_time_now())
                                               + 3600);
    test_trips_case c = { "since", "If-Unmodified-Since", later, later, 0,
                          COND_EXPECT_UNMODIFIED(early), test_unmodified,
                          &early };

    test_round_trips_of(&c, p);
}

/* ------------------------------------------------------------------ */
/* A lost reply                                                         */

/*
 * A proxy between the store and the server (a Unix socket of its own in
 * pgdir/proxy) that, when armed, loses the answer to the next statement
 * the store executes (the next Bind message of the wire protocol): it
 * passes the statement on, waits until the server has run and committed
 * it (ReadyForQuery), and then closes both sockets without passing the
 * answer back. The store sees its connection die under a statement whose
 * outcome it cannot know, though it took effect.
 */
typedef struct {
    int first;                /* the startup packet has no type byte */
    unsigned char hdr[5];
    int hlen;
    apr_uint32_t left;        /* of the current message's body */
    char type;
} pg_wire;

static volatile apr_uint32_t proxy_armed, proxy_lost;
static int proxy_fd = -1;

/* Feed n bytes of one direction: *bind when a Bind message began in
 * them, *ready when a ReadyForQuery ended. */
static void pg_wire_feed(pg_wire *w, const unsigned char *b, size_t n,
                         int *bind, int *ready)
{
    while (n > 0) {
        if (w->left > 0) {
            size_t take = n < w->left ? n : w->left;

            w->left -= (apr_uint32_t)take;
            b += take;
            n -= take;
            *ready |= !w->left && w->type == 'Z';
            continue;
        }
        w->hdr[w->hlen++] = *b++;
        n--;
        if (w->hlen == (w->first ? 4 : 5)) {
            const unsigned char *len = w->hdr + w->hlen - 4;

            w->type = w->first ? 0 : (char)w->hdr[0];
            w->left = ((apr_uint32_t)len[0] << 24 | (apr_uint32_t)len[1] << 16
                       | (apr_uint32_t)len[2] << 8 | len[3]) - 4;
            w->hlen = w->first = 0;
            *bind |= w->type == 'B';
            *ready |= !w->left && w->type == 'Z';
        }
    }
}

/* The server's socket in dir (its default port); -1 when too long. */
static int proxy_addr(struct sockaddr_un *a, const char *dir)
{
    memset(a, 0, sizeof(*a));
    a->sun_family = AF_UNIX;
    return snprintf(a->sun_path, sizeof(a->sun_path), "%s/.s.PGSQL.5432",
                    dir) < (int)sizeof(a->sun_path) ? 0 : -1;
}

static int proxy_connect(const char *dir)
{
    struct sockaddr_un a;
    int fd = proxy_addr(&a, dir) == 0 ? socket(AF_UNIX, SOCK_STREAM, 0)
                                      : -1;

    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* One client: bytes both ways until either side closes, or until the
 * answer of a doomed statement has been withheld whole. */
static void *proxy_pipe(void *arg)
{
    int fd[2] = { (int)(long)arg, proxy_connect(pgdir) };
    pg_wire w[2] = { { 1, { 0 }, 0, 0, 0 }, { 0, { 0 }, 0, 0, 0 } };
    int doomed = 0;

    while (fd[1] >= 0) {
        struct pollfd pf[2] = { { fd[0], POLLIN, 0 }, { fd[1], POLLIN, 0 } };
        unsigned char buf[8192];
        int bind = 0, ready = 0;
        ssize_t n = 0;
        int from;

        if (poll(pf, 2, -1) < 0) {
            break;
        }
        from = pf[0].revents ? 0 : 1;
        if ((n = read(fd[from], buf, sizeof(buf))) <= 0) {
            break;
        }
        pg_wire_feed(&w[from], buf, (size_t)n, &bind, &ready);
        if (from == 0 && bind && apr_atomic_cas32(&proxy_armed, 0, 1)
            == 1) {
            doomed = 1;
        }
        if (from == 1 && doomed) {
            if (ready) {
                apr_atomic_inc32(&proxy_lost);
                break;
            }
            continue;
        }
        if (write(fd[1 - from], buf, (size_t)n) != n) {
            break;
        }
    }
    close(fd[0]);
    if (fd[1] >= 0) {
        close(fd[1]);
    }
    return NULL;
}

static void *proxy_accept(void *arg)
{
    int c;

    (void)arg;
    while ((c = accept(proxy_fd, NULL, NULL)) >= 0) {
        pthread_t t;

        if (pthread_create(&t, NULL, proxy_pipe, (void *)(long)c) != 0) {
            close(c);
            continue;
        }
        pthread_detach(t);
    }
    return NULL;
}

/* Start the proxy once; its socket directory, or NULL. */
static const char *proxy_start(apr_pool_t *p)
{
    const char *dir = apr_pstrcat(p, pgdir, "/proxy", NULL);
    struct sockaddr_un a;
    pthread_t t;

    if (proxy_fd >= 0) {
        return dir;
    }
    if (proxy_addr(&a, dir) != 0 || mkdir(dir, 0755) != 0
        || (proxy_fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0
        || bind(proxy_fd, (struct sockaddr *)&a, sizeof(a)) != 0
        || listen(proxy_fd, 64) != 0
        || pthread_create(&t, NULL, proxy_accept, NULL) != 0) {
        return NULL;
    }
    pthread_detach(t);
    return dir;
}

/* A check that takes only the version *baton (-1: an unknown key), and
 * counts its calls in baton[1]. */
static int test_retry_check(void *baton, const cond_state *st)
{
    apr_int64_t *b = baton;

    b[1]++;
    return (st ? st->version : -1) != b[0];
}

/* claim_checked by owner on key through the proxy, its statement's
 * answer lost after it claimed: the store repeats the statement on a new
 * session and finds the claim its own - claimed once, at the state
 * before the claim, the check called once. */
static void test_retry_claim(cond_store *s, const char *key,
                             apr_int64_t hint, apr_int64_t at,
                             const char *owner, apr_pool_t *p)
{
    apr_uint32_t lost = apr_atomic_read32(&proxy_lost);
    apr_int64_t b[2] = { at, 0 };
    cond_state st;
    int found = -1;

    apr_atomic_set32(&proxy_armed, 1);
    CHECK_RV(PV->claim_checked(s, key, hint, owner, LEASE, test_retry_check,
                               b, &st, &found, p), APR_SUCCESS);
    CHECK(apr_atomic_read32(&proxy_lost) == lost + 1 && !proxy_armed);
    CHECK(b[1] == 1 && found == (at >= 0) && !st.claim_owner
          && (!found || st.version == at));
    CHECK_RV(PV->lookup(s, key, &st, p), APR_SUCCESS);
    CHECK(st.claim_owner && !strcmp(st.claim_owner, owner)
          && st.version == (at >= 0 ? at : 0) && LEASE_FRESH(st.claim_left));
}

/* The claim's statement repeated after its connection died under it (the
 * answer lost, the claim taken): it counts as claimed, once, at the
 * state before the claim; another writer is kept out, the write commits
 * one new version, no claim is left behind, and a writer that read the
 * old version is refused - no update lost. For a key at a version (an
 * If-Match), for an unknown key (a create, the placeholder inserted by
 * the lost statement), for If-Match: * and for If-Unmodified-Since. */
static void test_lost_answer(apr_pool_t *p)
{
    const char *dir = proxy_start(p);
    apr_int64_t v = 0, v2 = 0, b[2];
    apr_status_t rv = APR_SUCCESS;
    cond_state st;
    cond_store *s;
    int found;

    if (!CHECK(dir != NULL) || !CHECK(pg_createdb("lost") == 0)) {
        return;
    }
    s = NULL;
    if (PV->create(&s, apr_psprintf(p, "host=%s dbname=lost user=cond "
                                    "connect_timeout=3 sslmode=disable",
                                    dir), p) != NULL
        || !CHECK((rv = PV->child_init(s, p)) == APR_SUCCESS)) {
        CHECK(0);
        return;
    }
    CHECK_RV(PV->bump(s, "/l", apr_time_now(), &v, p), APR_SUCCESS);

    test_retry_claim(s, "/l", v, v, "A", p);
    b[0] = v;
    b[1] = 0;
    CHECK_RV(PV->claim_checked(s, "/l", v, "B", LEASE, test_retry_check, b,
                               &st, &found, p), APR_EBUSY);
    CHECK_RV(PV->commit(s, "/l", "A", COND_COMMIT_EXISTS, NULL,
                        apr_time_now(), &v2, p), APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/l", &st, p), APR_SUCCESS);
    CHECK(st.version == v2 && v2 > v && !st.claim_owner);
    CHECK_RV(PV->claim_checked(s, "/l", v, "B", LEASE, test_retry_check, b,
                               &st, &found, p), COND_STORE_DECLINED);

    test_retry_claim(s, "/l/new", COND_EXPECT_ANY, -1, "C", p);
    CHECK_RV(PV->commit(s, "/l/new", "C", COND_COMMIT_EXISTS, NULL,
                        apr_time_now(), &v, p), APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/l/new", &st, p), APR_SUCCESS);
    CHECK(st.version == v && v > v2 && st.exists && !st.claim_owner);

    /* If-Match: * on a present key, and on an unknown one the backend
     * has (the placeholder inserted by the lost statement) */
    test_retry_claim(s, "/l", COND_EXPECT_PRESENT, v2, "D", p);
    CHECK_RV(PV->commit(s, "/l", "D", COND_COMMIT_EXISTS, NULL,
                        apr_time_now(), &v, p), APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/l", &st, p), APR_SUCCESS);
    CHECK(st.version == v && v > v2 && st.exists && !st.claim_owner);
    test_retry_claim(s, "/l/star", COND_EXPECT_EXISTS, -1, "E", p);
    CHECK_RV(PV->commit(s, "/l/star", "E", COND_COMMIT_EXISTS, NULL,
                        apr_time_now(), &v2, p), APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/l/star", &st, p), APR_SUCCESS);
    CHECK(st.version == v2 && v2 > v && st.exists && !st.claim_owner);

    /* If-Unmodified-Since alone on a key not modified since */
    test_retry_claim(s, "/l",
                     COND_EXPECT_UNMODIFIED(apr_time_sec(apr_time_now())
                                            + 3600), v, "F", p);
    CHECK_RV(PV->commit(s, "/l", "F", COND_COMMIT_EXISTS, NULL,
                        apr_time_now(), &v2, p), APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/l", &st, p), APR_SUCCESS);
    CHECK(st.version == v2 && v2 > v && st.exists && !st.claim_owner);
}

static const test_case pg_cases[] = {
    { "dbd parameters", test_params },
    { "schema created by several at once", test_schema_race },
    { "restart -m fast", test_restart_fast },
    { "restart -m immediate", test_restart_immediate },
    { "stopped database", test_stopped },
    { "frozen database (SIGSTOP)", test_frozen },
    { "the database's own words", test_own_words },
    { "round trips of a write", test_round_trips },
    { "round trips of a create", test_round_trips_create },
    { "round trips of If-Match: *", test_round_trips_star },
    { "round trips of If-Unmodified-Since", test_round_trips_since },
    { "the claim's answer lost", test_lost_answer },
    { NULL, NULL }
};

int main(int argc, char **argv)
{
    int rc;

    if (access(PG_BIN "/initdb", X_OK) != 0) {
        printf("test_pgsql: %s/initdb not found (apt-get install "
               "postgresql; sh build/deps.sh)\n", PG_BIN);
        return 2;
    }
    if (pg_start_server() != 0) {
        printf("test_pgsql: cannot start PostgreSQL in %s\n", pgdir);
        pg_stop_server();
        return 2;
    }
    signal(SIGSEGV, pg_on_signal);
    signal(SIGABRT, pg_on_signal);
    signal(SIGTERM, pg_on_signal);
    signal(SIGINT, pg_on_signal);
    signal(SIGALRM, pg_on_signal);
    rc = test_main(argc, argv, &pg_target, pg_cases);
    pg_stop_server();
    return rc;
}
