/*
 * test_store.c - tests for the SQLite version store (sqlite_store.c)
 * through the provider table the httpd glue uses.
 *
 * Every test works in its own store file under a temporary directory. The
 * contention tests fork processes and start threads that race for the same
 * keys while a shared "backend" counter is incremented, unlocked, by
 * whoever holds the claim: a lost update shows up as a counter behind the
 * number of commits. Prints every failing check and a last line
 * "N passed, M failed"; exits non-zero when anything failed.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include <sqlite3.h>

#include "store.h"

#define SQ          (&cond_sqlite_store)
#define LEASE       apr_time_from_sec(60)
#define NOBODY      65534

/* Counters live in shared memory so forked children can report. */
typedef struct {
    int passed;
    int failed;
} test_counts;

static test_counts *counts;
static char *tmpdir;
static apr_pool_t *root;

static const char *test_status_name(apr_status_t rv)
{
    static char buf[64];

    switch (rv) {
    case APR_SUCCESS:  return "APR_SUCCESS";
    case APR_NOTFOUND: return "APR_NOTFOUND";
    case APR_EBUSY:    return "APR_EBUSY";
    case APR_EAGAIN:   return "APR_EAGAIN";
    case APR_EEXIST:   return "APR_EEXIST";
    case APR_TIMEUP:   return "APR_TIMEUP";
    case APR_EACCES:   return "APR_EACCES";
    case APR_ENOENT:   return "APR_ENOENT";
    case APR_EGENERAL: return "APR_EGENERAL";
    case APR_EINVAL:   return "APR_EINVAL";
    }
    apr_snprintf(buf, sizeof(buf), "status %d", rv);
    return buf;
}

static int test_check(int ok, int line, const char *what)
{
    if (ok) {
        __sync_fetch_and_add(&counts->passed, 1);
    }
    else {
        __sync_fetch_and_add(&counts->failed, 1);
        printf("FAIL line %d: %s\n", line, what);
        fflush(stdout);
    }
    return ok;
}

static int test_check_rv(apr_status_t got, apr_status_t want, int line,
                         const char *what)
{
    char msg[256];

    if (got == want) {
        return test_check(1, line, what);
    }
    apr_snprintf(msg, sizeof(msg), "%s: got %s", what,
                 test_status_name(got));
    apr_snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), ", want %s",
                 test_status_name(want));
    return test_check(0, line, msg);
}

#define CHECK(cond)         test_check((cond) != 0, __LINE__, #cond)
#define CHECK_RV(expr, rv)  test_check_rv((expr), (rv), __LINE__, #expr)

/* A fresh store file path under the temporary directory. */
static const char *test_path(apr_pool_t *p, const char *name)
{
    return apr_pstrcat(p, tmpdir, "/", name, NULL);
}

/* create + init + child_init, as httpd does around the fork. */
static cond_store *test_open(apr_pool_t *p, const char *path)
{
    cond_store *s = NULL;
    const char *err = SQ->create(&s, path, p);

    if (!test_check(err == NULL, __LINE__, "create")) {
        printf("  %s\n", err);
        return NULL;
    }
    CHECK_RV(SQ->init(s, -1, -1, p), APR_SUCCESS);
    CHECK_RV(SQ->child_init(s, p), APR_SUCCESS);
    return s;
}

/* A second view of an existing store without running init, like a child
 * that was forked after the parent's init. */
static cond_store *test_attach(apr_pool_t *p, const char *path,
                               apr_status_t *rv)
{
    cond_store *s = NULL;

    if (SQ->create(&s, path, p)) {
        return NULL;
    }
    *rv = SQ->child_init(s, p);
    return s;
}

static apr_int64_t test_sequence(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    apr_int64_t v = -1;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK
        && sqlite3_prepare_v2(db, "SELECT last FROM sequence", -1, &st,
                              NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            v = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return v;
}

static int test_exists(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0;
}

/* ------------------------------------------------------------------ */

static void test_create_errors(apr_pool_t *p)
{
    cond_store *s = NULL;
    const char *err;

    err = SQ->create(&s, "relative/store.db", p);
    CHECK(err != NULL && strstr(err, "absolute"));
    CHECK(SQ->create(&s, "", p) != NULL);
    CHECK(SQ->create(&s, "store.db", p) != NULL);
    CHECK(SQ->create(&s, "/var/lib/somewhere/", p) != NULL);
    s = NULL;
    CHECK(SQ->create(&s, test_path(p, "never-opened.db"), p) == NULL);
    CHECK(s != NULL);
    /* create opens nothing */
    CHECK(!test_exists(test_path(p, "never-opened.db")));
    /* no call works before child_init */
    if (s) {
        cond_state st;
        CHECK(SQ->lookup(s, "k", &st, p) != APR_SUCCESS);
    }
}

static int test_is_hex_id(const char *id)
{
    int i;

    if (!id || strlen(id) != 16) {
        return 0;
    }
    for (i = 0; i < 16; i++) {
        if (!strchr("0123456789abcdef", id[i])) {
            return 0;
        }
    }
    return 1;
}

static void test_init_identity(apr_pool_t *p)
{
    const char *dir = test_path(p, "nested/deeper/store");
    const char *path = apr_pstrcat(p, dir, "/conditional.db", NULL);
    cond_store *s, *again, *other, *attached;
    const char *id;
    struct stat sb;
    apr_status_t rv;

    s = test_open(p, path);
    if (!s) {
        return;
    }
    id = SQ->identity(s);
    CHECK(test_is_hex_id(id));
    CHECK(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)
          && (sb.st_mode & 07777) == (0750 & ~(mode_t)022));

    /* httpd runs post_config twice: init again on the same instance */
    CHECK_RV(SQ->init(s, -1, -1, p), APR_SUCCESS);
    CHECK(id && SQ->identity(s) && !strcmp(id, SQ->identity(s)));

    /* a new instance on the same file: same identity */
    again = test_open(p, path);
    CHECK(again && id && !strcmp(id, SQ->identity(again)));

    /* a child that never ran init reads it from the file */
    attached = test_attach(p, path, &rv);
    CHECK_RV(rv, APR_SUCCESS);
    CHECK(attached && id && SQ->identity(attached)
          && !strcmp(id, SQ->identity(attached)));

    /* a new store: a new identity */
    other = test_open(p, test_path(p, "other.db"));
    CHECK(other && id && test_is_hex_id(SQ->identity(other))
          && strcmp(id, SQ->identity(other)));
}

static void test_lookup_claim(apr_pool_t *p)
{
    cond_store *s = test_open(p, test_path(p, "claim.db"));
    apr_time_t now = apr_time_now();
    apr_int64_t v = 0, v2 = 0;
    cond_state st;

    if (!s) {
        return;
    }
    CHECK_RV(SQ->lookup(s, "/missing", &st, p), APR_NOTFOUND);

    /* claiming an unknown key at a version other than 0 creates nothing */
    CHECK_RV(SQ->claim(s, "/new", 7, "A", now + LEASE, now), APR_EAGAIN);
    CHECK_RV(SQ->lookup(s, "/new", &st, p), APR_NOTFOUND);

    /* an unknown key at 0: created absent at version 0, claimed */
    CHECK_RV(SQ->claim(s, "/new", 0, "A", now + LEASE, now), APR_SUCCESS);
    CHECK_RV(SQ->lookup(s, "/new", &st, p), APR_SUCCESS);
    CHECK(st.version == 0 && !st.exists && st.mtime == 0);
    CHECK(st.claim_owner && !strcmp(st.claim_owner, "A"));
    CHECK(st.claim_expires == now + LEASE);

    /* a held claim is EBUSY, at the right version or not */
    CHECK_RV(SQ->claim(s, "/new", 0, "B", now + LEASE, now), APR_EBUSY);
    CHECK_RV(SQ->claim(s, "/new", 3, "B", now + LEASE, now), APR_EBUSY);
    /* even for its own owner: a claim is taken once */
    CHECK_RV(SQ->claim(s, "/new", 0, "A", now + LEASE, now), APR_EBUSY);

    CHECK_RV(SQ->commit(s, "/new", "A", 1, now, &v), APR_SUCCESS);
    CHECK(v > 0);

    /* unclaimed but at another version: EAGAIN */
    CHECK_RV(SQ->claim(s, "/new", v - 1, "B", now + LEASE, now),
             APR_EAGAIN);
    CHECK_RV(SQ->claim(s, "/new", 0, "B", now + LEASE, now), APR_EAGAIN);
    CHECK_RV(SQ->lookup(s, "/new", &st, p), APR_SUCCESS);
    CHECK(st.version == v && st.claim_owner == NULL);

    /* the right version: claimed, version untouched until commit */
    CHECK_RV(SQ->claim(s, "/new", v, "B", now + LEASE, now), APR_SUCCESS);
    CHECK_RV(SQ->lookup(s, "/new", &st, p), APR_SUCCESS);
    CHECK(st.version == v && st.claim_owner && !strcmp(st.claim_owner, "B"));
    CHECK_RV(SQ->commit(s, "/new", "B", 1, now, &v2), APR_SUCCESS);
    CHECK(v2 > v);
}

static void test_lease_expiry(apr_pool_t *p)
{
    cond_store *s = test_open(p, test_path(p, "lease.db"));
    apr_time_t now = apr_time_now();
    apr_int64_t v0 = 0, v1 = 0, v2 = 0;
    cond_state st;

    if (!s) {
        return;
    }
    CHECK_RV(SQ->register_key(s, "/k", NULL, now, &v0), APR_SUCCESS);
    /* a claim whose lease has already run out */
    CHECK_RV(SQ->claim(s, "/k", v0, "dead", now - 1, now - LEASE),
             APR_SUCCESS);

    /* an expired claim is not taken over silently: the dead write may
     * have reached the backend */
    CHECK_RV(SQ->claim(s, "/k", v0, "next", now + LEASE, now), APR_EBUSY);

    /* it is broken (new version), then the key can be claimed again */
    CHECK_RV(SQ->lookup(s, "/k", &st, p), APR_SUCCESS);
    CHECK(st.claim_owner && st.claim_expires <= now);
    CHECK_RV(SQ->break_claim(s, "/k", "dead", now, &v1), APR_SUCCESS);
    CHECK(v1 > v0);
    CHECK_RV(SQ->claim(s, "/k", v0, "next", now + LEASE, now), APR_EAGAIN);
    CHECK_RV(SQ->claim(s, "/k", v1, "next", now + LEASE, now), APR_SUCCESS);

    /* the dead owner waking up cannot commit or release */
    CHECK_RV(SQ->commit(s, "/k", "dead", 1, now, &v2), APR_NOTFOUND);
    CHECK_RV(SQ->release(s, "/k", "dead"), APR_NOTFOUND);
    CHECK_RV(SQ->lookup(s, "/k", &st, p), APR_SUCCESS);
    CHECK(st.version == v1 && st.claim_owner
          && !strcmp(st.claim_owner, "next"));
    CHECK_RV(SQ->commit(s, "/k", "next", 1, now, &v2), APR_SUCCESS);
    CHECK(v2 > v1);
}

static void test_commit(apr_pool_t *p)
{
    const char *path = test_path(p, "commit.db");
    cond_store *s = test_open(p, path);
    apr_time_t t0 = apr_time_from_sec(1700000000);
    apr_int64_t v0 = 0, v1 = 0, v2 = 0, seq;
    cond_state st;

    if (!s) {
        return;
    }
    CHECK_RV(SQ->register_key(s, "/c", "Cache-Control: max-age=5\n",
                              t0, &v0), APR_SUCCESS);
    CHECK_RV(SQ->claim(s, "/c", v0, "W", t0 + LEASE, t0), APR_SUCCESS);
    CHECK_RV(SQ->commit(s, "/c", "W", 1, t0 + apr_time_from_sec(10) + 123,
                        &v1), APR_SUCCESS);
    CHECK(v1 > v0);
    CHECK_RV(SQ->lookup(s, "/c", &st, p), APR_SUCCESS);
    CHECK(st.version == v1 && st.exists && !st.claim_owner);
    CHECK(st.claim_expires == 0);
    /* whole seconds */
    CHECK(st.mtime == t0 + apr_time_from_sec(10));
    /* meta is the last 200's business, not the write's */
    CHECK(st.meta && !strcmp(st.meta, "Cache-Control: max-age=5\n"));

    /* a clock that stepped back never moves mtime backwards, and the
     * write still moves it forward: If-Modified-Since must not hide it */
    CHECK_RV(SQ->claim(s, "/c", v1, "W", t0 + LEASE, t0), APR_SUCCESS);
    CHECK_RV(SQ->commit(s, "/c", "W", 1, t0, &v2), APR_SUCCESS);
    CHECK_RV(SQ->lookup(s, "/c", &st, p), APR_SUCCESS);
    CHECK(st.mtime == t0 + apr_time_from_sec(11));
    /* so do a break and a bump in that same second */
    CHECK_RV(SQ->claim(s, "/c", v2, "X", t0 + LEASE, t0), APR_SUCCESS);
    CHECK_RV(SQ->break_claim(s, "/c", "X", t0 + apr_time_from_sec(11),
                             &v2), APR_SUCCESS);
    CHECK_RV(SQ->bump(s, "/c", t0 + apr_time_from_sec(11), &v2),
             APR_SUCCESS);
    CHECK_RV(SQ->lookup(s, "/c", &st, p), APR_SUCCESS);
    CHECK(st.mtime == t0 + apr_time_from_sec(13));

    /* a DELETE: absent, version still moves on */
    CHECK_RV(SQ->claim(s, "/c", v2, "D", t0 + LEASE, t0), APR_SUCCESS);
    CHECK_RV(SQ->commit(s, "/c", "D", 0, t0 + apr_time_from_sec(20), &v1),
             APR_SUCCESS);
    CHECK(v1 > v2);
    CHECK_RV(SQ->lookup(s, "/c", &st, p), APR_SUCCESS);
    CHECK(!st.exists && st.version == v1
          && st.mtime == t0 + apr_time_from_sec(20));
    v2 = v1;

    /* commit by an owner that does not hold the claim: nothing changes,
     * not even the sequence */
    CHECK_RV(SQ->claim(s, "/c", v1, "owner", t0 + LEASE, t0), APR_SUCCESS);
    seq = test_sequence(path);
    v2 = -1;
    CHECK_RV(SQ->commit(s, "/c", "intruder", 1, t0, &v2), APR_NOTFOUND);
    CHECK(v2 == -1);
    CHECK_RV(SQ->commit(s, "/nokey", "owner", 1, t0, &v2), APR_NOTFOUND);
    CHECK(test_sequence(path) == seq);
    CHECK_RV(SQ->lookup(s, "/c", &st, p), APR_SUCCESS);
    CHECK(st.version == v1 && !st.exists && st.claim_owner
          && !strcmp(st.claim_owner, "owner"));

    /* after the claim was broken, the former owner's commit fails */
    CHECK_RV(SQ->break_claim(s, "/c", "owner", t0, &v2), APR_SUCCESS);
    seq = test_sequence(path);
    CHECK_RV(SQ->commit(s, "/c", "owner", 1, t0, &v0), APR_NOTFOUND);
    CHECK(test_sequence(path) == seq);
    CHECK_RV(SQ->lookup(s, "/c", &st, p), APR_SUCCESS);
    CHECK(st.version == v2 && !st.exists && !st.claim_owner);

    /* HOLD: the new version is committed, the claim (and its lease) stays
     * until release, which leaves the version alone */
    CHECK_RV(SQ->claim(s, "/c", v2, "H", t0 + LEASE, t0), APR_SUCCESS);
    CHECK_RV(SQ->commit(s, "/c", "H", COND_COMMIT_EXISTS | COND_COMMIT_HOLD,
                        t0, &v1), APR_SUCCESS);
    CHECK(v1 > v2);
    CHECK_RV(SQ->lookup(s, "/c", &st, p), APR_SUCCESS);
    CHECK(st.version == v1 && st.exists && st.claim_owner
          && !strcmp(st.claim_owner, "H") && st.claim_expires == t0 + LEASE);
    CHECK_RV(SQ->claim(s, "/c", v1, "other", t0 + LEASE, t0), APR_EBUSY);
    CHECK_RV(SQ->release(s, "/c", "H"), APR_SUCCESS);
    CHECK_RV(SQ->lookup(s, "/c", &st, p), APR_SUCCESS);
    CHECK(st.version == v1 && st.exists && !st.claim_owner);
}

static void test_release_break(apr_pool_t *p)
{
    cond_store *s = test_open(p, test_path(p, "release.db"));
    apr_time_t now = apr_time_now();
    apr_int64_t v0 = 0, v1 = 0, v2 = 0;
    cond_state st;

    if (!s) {
        return;
    }
    CHECK_RV(SQ->register_key(s, "/r", "m", now, &v0), APR_SUCCESS);
    CHECK_RV(SQ->release(s, "/r", "nobody"), APR_NOTFOUND);
    CHECK_RV(SQ->release(s, "/none", "nobody"), APR_NOTFOUND);
    CHECK_RV(SQ->claim(s, "/r", v0, "R", now + LEASE, now), APR_SUCCESS);
    CHECK_RV(SQ->release(s, "/r", "other"), APR_NOTFOUND);
    CHECK_RV(SQ->release(s, "/r", "R"), APR_SUCCESS);
    CHECK_RV(SQ->lookup(s, "/r", &st, p), APR_SUCCESS);
    CHECK(st.version == v0 && st.exists && !st.claim_owner
          && st.meta && !strcmp(st.meta, "m"));
    CHECK_RV(SQ->release(s, "/r", "R"), APR_NOTFOUND);

    /* a first write that failed leaves no trace of the key */
    CHECK_RV(SQ->claim(s, "/fresh", 0, "F", now + LEASE, now), APR_SUCCESS);
    CHECK_RV(SQ->release(s, "/fresh", "F"), APR_SUCCESS);
    CHECK_RV(SQ->lookup(s, "/fresh", &st, p), APR_NOTFOUND);

    /* break_claim is a compare-and-set on the dead owner */
    CHECK_RV(SQ->claim(s, "/r", v0, "R2", now + LEASE, now), APR_SUCCESS);
    CHECK_RV(SQ->break_claim(s, "/r", "someone-else", now, &v1),
             APR_EAGAIN);
    CHECK_RV(SQ->break_claim(s, "/none", "R2", now, &v1), APR_EAGAIN);
    CHECK_RV(SQ->lookup(s, "/r", &st, p), APR_SUCCESS);
    CHECK(st.version == v0 && st.claim_owner
          && !strcmp(st.claim_owner, "R2"));
    CHECK_RV(SQ->break_claim(s, "/r", "R2", now, &v1), APR_SUCCESS);
    CHECK(v1 > v0);
    CHECK_RV(SQ->lookup(s, "/r", &st, p), APR_SUCCESS);
    CHECK(st.version == v1 && st.exists && !st.claim_owner);
    /* a second breaker lost the race */
    CHECK_RV(SQ->break_claim(s, "/r", "R2", now, &v2), APR_EAGAIN);
    /* breaking an unclaimed key does nothing */
    CHECK_RV(SQ->lookup(s, "/r", &st, p), APR_SUCCESS);
    CHECK(st.version == v1);
}

static void test_renew(apr_pool_t *p)
{
    cond_store *s = test_open(p, test_path(p, "renew.db"));
    apr_time_t now = apr_time_now();
    apr_int64_t v0 = 0, v1 = 0;
    cond_state st;

    if (!s) {
        return;
    }
    CHECK_RV(SQ->register_key(s, "/n", NULL, now, &v0), APR_SUCCESS);
    CHECK_RV(SQ->claim(s, "/n", v0, "N", now + 1, now), APR_SUCCESS);
    CHECK_RV(SQ->renew(s, "/n", "N", now + LEASE), APR_SUCCESS);
    CHECK_RV(SQ->lookup(s, "/n", &st, p), APR_SUCCESS);
    CHECK(st.version == v0 && st.claim_expires == now + LEASE
          && st.claim_owner && !strcmp(st.claim_owner, "N"));
    /* never shortened (a late renewal from a slow thread) */
    CHECK_RV(SQ->renew(s, "/n", "N", now + 5), APR_SUCCESS);
    CHECK_RV(SQ->lookup(s, "/n", &st, p), APR_SUCCESS);
    CHECK(st.claim_expires == now + LEASE);
    /* only the owner renews; nobody renews a key that has no claim */
    CHECK_RV(SQ->renew(s, "/n", "other", now + LEASE), APR_NOTFOUND);
    CHECK_RV(SQ->renew(s, "/none", "N", now + LEASE), APR_NOTFOUND);
    /* a claim that was broken stays broken */
    CHECK_RV(SQ->break_claim(s, "/n", "N", now, &v1), APR_SUCCESS);
    CHECK_RV(SQ->renew(s, "/n", "N", now + LEASE), APR_NOTFOUND);
    CHECK_RV(SQ->lookup(s, "/n", &st, p), APR_SUCCESS);
    CHECK(st.version == v1 && !st.claim_owner);
}

/* What a process that was cut off reports back (shared memory). */
typedef struct {
    char identity[32];
    apr_int64_t highest;     /* the highest version it was handed */
} test_cut;

static void test_copy_file(const char *from, const char *to)
{
    char *cmd = apr_psprintf(root, "cp -p '%s' '%s' 2>/dev/null", from, to);

    if (system(cmd) != 0) {
        printf("note: cp %s failed\n", from);
    }
}

/* A sync point as SQLite makes one: a checkpoint fsyncs the WAL and the
 * database. Then keep what is on disk at that moment. */
static void test_sync_point(const char *path, const char *snap)
{
    sqlite3 *db;

    if (sqlite3_open(path, &db) == SQLITE_OK) {
        sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_FULL, NULL,
                                  NULL);
    }
    sqlite3_close(db);
    test_copy_file(path, snap);
    test_copy_file(apr_pstrcat(root, path, "-wal", NULL),
                   apr_pstrcat(root, snap, "-wal", NULL));
}

/* The power comes back: the disk holds the sync point, and -shm (memory,
 * not disk) is gone. */
static void test_power_back(const char *path, const char *snap)
{
    rename(snap, path);
    rename(apr_pstrcat(root, snap, "-wal", NULL),
           apr_pstrcat(root, path, "-wal", NULL));
    unlink(apr_pstrcat(root, path, "-shm", NULL));
}

/* In a child process on boot "boot", which dies without closing anything:
 * write keys before and after a sync point (saved to snap). */
static void test_until_cut(const char *path, const char *snap,
                           const char *boot, int init, test_cut *out)
{
    apr_time_t now = apr_time_now();
    apr_int64_t v = 0;
    apr_status_t rv = APR_SUCCESS;
    pid_t pid = fork();
    cond_store *s;
    int i, status;

    if (pid != 0) {
        waitpid(pid, &status, 0);
        return;
    }
    setenv("CONDITIONAL_BOOT_ID", boot, 1);
    /* without init: a child of another httpd that started earlier */
    s = init ? test_open(root, path) : test_attach(root, path, &rv);
    if (!s || rv != APR_SUCCESS) {
        _exit(1);
    }
    apr_cpystrn(out->identity, SQ->identity(s), sizeof(out->identity));
    CHECK_RV(SQ->bump(s, "/synced", now, &v), APR_SUCCESS);
    if (snap) {
        test_sync_point(path, snap);
    }
    for (i = 0; i < 20; i++) {
        CHECK_RV(SQ->bump(s, "/lost", now, &v), APR_SUCCESS);
    }
    out->highest = v;
    _exit(0);               /* no close, no checkpoint: the power is cut */
}

/* httpd's parent at a clean stop: no connection of its own is open. */
static apr_status_t test_clean_stop(const char *path)
{
    cond_store *s = NULL;
    apr_pool_t *p;
    apr_status_t rv = APR_EGENERAL;

    apr_pool_create(&p, root);
    if (!SQ->create(&s, path, p)) {
        rv = SQ->shutdown(s, p);
    }
    apr_pool_destroy(p);
    return rv;
}

static void test_power_cut(apr_pool_t *p)
{
    const char *path = test_path(root, "cut.db");
    const char *snap = test_path(root, "cut.snap");
    test_cut *cut = mmap(NULL, sizeof(*cut), PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    apr_time_t now = apr_time_now();
    apr_int64_t v = 0;
    cond_store *s;
    cond_state st;

    if (cut == MAP_FAILED) {
        CHECK(!"mmap");
        return;
    }
    /* A crash of httpd alone, same boot: nothing lost, nothing moves. */
    test_until_cut(path, NULL, "boot-A", 1, cut);
    setenv("CONDITIONAL_BOOT_ID", "boot-A", 1);
    s = test_open(p, path);
    CHECK(s && !strcmp(SQ->identity(s), cut->identity));
    CHECK_RV(SQ->lookup(s, "/lost", &st, p), APR_SUCCESS);
    CHECK(st.version == cut->highest);
    apr_pool_clear(p);

    /* A power cut: what was written after the sync point is gone. */
    test_until_cut(path, snap, "boot-A", 1, cut);
    test_power_back(path, snap);
    setenv("CONDITIONAL_BOOT_ID", "boot-B", 1);
    s = test_open(p, path);
    if (!s) {
        return;
    }
    CHECK_RV(SQ->lookup(s, "/lost", &st, p), APR_SUCCESS);
    CHECK(st.version < cut->highest);       /* the store went back */
    /* no tag handed out before matches: the identity moved */
    CHECK(strcmp(SQ->identity(s), cut->identity) != 0);
    /* no version number is handed out again */
    CHECK_RV(SQ->bump(s, "/lost", now, &v), APR_SUCCESS);
    CHECK(v > cut->highest);
    apr_cpystrn(cut->identity, SQ->identity(s), sizeof(cut->identity));
    apr_pool_clear(p);

    /* A clean stop, then a reboot: the identity stays. */
    CHECK_RV(test_clean_stop(path), APR_SUCCESS);
    setenv("CONDITIONAL_BOOT_ID", "boot-C", 1);
    s = test_open(p, path);
    CHECK(s && !strcmp(SQ->identity(s), cut->identity));
    apr_pool_clear(p);

    /* Not when a process that skipped init (another httpd's child)
     * opened the store after the clean stop and wrote. */
    CHECK_RV(test_clean_stop(path), APR_SUCCESS);
    test_until_cut(path, NULL, "boot-C", 0, cut);
    setenv("CONDITIONAL_BOOT_ID", "boot-D", 1);
    s = test_open(p, path);
    CHECK(s && strcmp(SQ->identity(s), cut->identity) != 0);
    CHECK_RV(SQ->bump(s, "/lost", now, &v), APR_SUCCESS);
    CHECK(v > cut->highest);

    /* No clean stop while another process has the store open. */
    CHECK_RV(SQ->lookup(s, "/lost", &st, p), APR_SUCCESS);
    if (fork() == 0) {
        _exit(test_clean_stop(path) == APR_EBUSY ? 0 : 1);
    }
    CHECK(wait(&(int){0}) > 0);
    unsetenv("CONDITIONAL_BOOT_ID");
    munmap(cut, sizeof(*cut));
}

static void test_versions(apr_pool_t *p)
{
    const char *path = test_path(p, "versions.db");
    cond_store *s = test_open(p, path);
    apr_time_t now = apr_time_now();
    apr_int64_t last = 0, v = 0, seen[64];
    int n = 0, i, j, dup = 0, increasing = 1;
    cond_state st;

    if (!s) {
        return;
    }
#define RECORD(expr) do {                                                   \
        v = 0;                                                              \
        CHECK_RV((expr), APR_SUCCESS);                                      \
        if (v <= last) {                                                    \
            increasing = 0;                                                 \
        }                                                                   \
        last = v;                                                           \
        seen[n++] = v;                                                      \
    } while (0)

    RECORD(SQ->register_key(s, "/a", NULL, now, &v));
    RECORD(SQ->register_key(s, "/b", NULL, now, &v));
    RECORD(SQ->bump(s, "/a", now, &v));
    CHECK_RV(SQ->claim(s, "/b", last - 1, "x", now + LEASE, now),
             APR_SUCCESS);
    RECORD(SQ->commit(s, "/b", "x", 1, now, &v));
    RECORD(SQ->bump(s, "/c", now, &v));
    RECORD(SQ->set_exists(s, "/a", seen[2], 0, NULL, now, &v));
    CHECK_RV(SQ->claim(s, "/a", last, "y", now + LEASE, now), APR_SUCCESS);
    RECORD(SQ->break_claim(s, "/a", "y", now, &v));

    /* forget and re-create: the key never gets an old version back */
    CHECK_RV(SQ->forget(s, "/a"), APR_SUCCESS);
    CHECK_RV(SQ->forget(s, "/a"), APR_NOTFOUND);
    CHECK_RV(SQ->lookup(s, "/a", &st, p), APR_NOTFOUND);
    RECORD(SQ->register_key(s, "/a", NULL, now, &v));
    CHECK_RV(SQ->forget(s, "/a"), APR_SUCCESS);
    CHECK_RV(SQ->claim(s, "/a", 0, "z", now + LEASE, now), APR_SUCCESS);
    RECORD(SQ->commit(s, "/a", "z", 1, now, &v));
    /* forgetting the key that holds the highest version */
    CHECK_RV(SQ->forget(s, "/a"), APR_SUCCESS);
    RECORD(SQ->bump(s, "/a", now, &v));
#undef RECORD

    CHECK(increasing);
    for (i = 0; i < n; i++) {
        for (j = i + 1; j < n; j++) {
            dup += seen[i] == seen[j];
        }
    }
    CHECK(dup == 0);
    CHECK(test_sequence(path) == last);

    /* bump creates an unknown key present, and keeps meta and presence */
    CHECK_RV(SQ->lookup(s, "/c", &st, p), APR_SUCCESS);
    CHECK(st.exists && st.version > 0 && !st.meta);
    CHECK_RV(SQ->register_key(s, "/m", "meta", now, &v), APR_SUCCESS);
    CHECK_RV(SQ->set_exists(s, "/m", v, 0, "meta", now, &v), APR_SUCCESS);
    CHECK_RV(SQ->bump(s, "/m", now, &v), APR_SUCCESS);
    CHECK_RV(SQ->lookup(s, "/m", &st, p), APR_SUCCESS);
    CHECK(!st.exists && st.version == v && st.meta
          && !strcmp(st.meta, "meta"));
    /* bump goes through a claim without touching it */
    CHECK_RV(SQ->claim(s, "/m", v, "held", now + LEASE, now), APR_SUCCESS);
    CHECK_RV(SQ->bump(s, "/m", now, &v), APR_SUCCESS);
    CHECK_RV(SQ->lookup(s, "/m", &st, p), APR_SUCCESS);
    CHECK(st.version == v && st.claim_owner
          && !strcmp(st.claim_owner, "held"));
}

static void test_register_set(apr_pool_t *p)
{
    cond_store *s = test_open(p, test_path(p, "register.db"));
    apr_time_t now = apr_time_now();
    apr_time_t t1 = apr_time_from_sec(1700000000);
    apr_int64_t v0 = 0, v1 = 0, v2 = 0;
    cond_state st;

    if (!s) {
        return;
    }
    CHECK_RV(SQ->register_key(s, "/g", "Vary: Accept\n", t1, &v0),
             APR_SUCCESS);
    CHECK_RV(SQ->lookup(s, "/g", &st, p), APR_SUCCESS);
    CHECK(st.version == v0 && st.exists && st.mtime == t1 && !st.claim_owner
          && st.meta && !strcmp(st.meta, "Vary: Accept\n"));
    CHECK_RV(SQ->register_key(s, "/g", "other", now, &v1), APR_EEXIST);
    CHECK_RV(SQ->lookup(s, "/g", &st, p), APR_SUCCESS);
    CHECK(st.version == v0 && st.meta && !strcmp(st.meta, "Vary: Accept\n"));
    /* a claimed placeholder exists too */
    CHECK_RV(SQ->claim(s, "/p", 0, "o", now + LEASE, now), APR_SUCCESS);
    CHECK_RV(SQ->register_key(s, "/p", NULL, now, &v1), APR_EEXIST);

    /* set_meta: compare-and-set on the version, version unchanged */
    CHECK_RV(SQ->set_meta(s, "/g", v0 + 1000, "stale"), APR_EAGAIN);
    CHECK_RV(SQ->set_meta(s, "/nokey", 0, "x"), APR_EAGAIN);
    CHECK_RV(SQ->set_meta(s, "/g", v0, "Cache-Control: no-cache\n"),
             APR_SUCCESS);
    CHECK_RV(SQ->lookup(s, "/g", &st, p), APR_SUCCESS);
    CHECK(st.version == v0 && st.meta
          && !strcmp(st.meta, "Cache-Control: no-cache\n"));
    CHECK_RV(SQ->set_meta(s, "/g", v0, NULL), APR_SUCCESS);
    CHECK_RV(SQ->lookup(s, "/g", &st, p), APR_SUCCESS);
    CHECK(st.meta == NULL);

    /* set_exists: compare-and-set on the version and no claim */
    CHECK_RV(SQ->set_exists(s, "/g", v0 + 1000, 0, NULL, now, &v1),
             APR_EAGAIN);
    CHECK_RV(SQ->set_exists(s, "/nokey", 0, 1, NULL, now, &v1), APR_EAGAIN);
    CHECK_RV(SQ->claim(s, "/g", v0, "c", now + LEASE, now), APR_SUCCESS);
    CHECK_RV(SQ->set_exists(s, "/g", v0, 0, NULL, now, &v1), APR_EAGAIN);
    CHECK_RV(SQ->lookup(s, "/g", &st, p), APR_SUCCESS);
    CHECK(st.version == v0 && st.exists);
    CHECK_RV(SQ->release(s, "/g", "c"), APR_SUCCESS);
    CHECK_RV(SQ->set_exists(s, "/g", v0, 0, NULL, now, &v1), APR_SUCCESS);
    CHECK(v1 > v0);
    CHECK_RV(SQ->lookup(s, "/g", &st, p), APR_SUCCESS);
    CHECK(st.version == v1 && !st.exists
          && st.mtime == apr_time_from_sec(apr_time_sec(now)));
    /* back again, with the 200's metadata */
    CHECK_RV(SQ->set_exists(s, "/g", v1, 1, "Expires: x\n", now, &v2),
             APR_SUCCESS);
    CHECK(v2 > v1);
    CHECK_RV(SQ->lookup(s, "/g", &st, p), APR_SUCCESS);
    CHECK(st.version == v2 && st.exists && st.meta
          && !strcmp(st.meta, "Expires: x\n"));
    /* the old version no longer matches */
    CHECK_RV(SQ->set_exists(s, "/g", v1, 0, NULL, now, &v0), APR_EAGAIN);
}

typedef struct {
    const char *keys[16];
    int n;
    int stop_after;
} test_list_acc;

static int test_list_cb(void *baton, const char *key, const cond_state *st)
{
    test_list_acc *acc = baton;

    (void)st;
    if (acc->n < 16) {
        acc->keys[acc->n] = key;
    }
    acc->n++;
    return acc->stop_after && acc->n >= acc->stop_after;
}

static int test_list_is(cond_store *s, apr_pool_t *p, const char *prefix,
                        int stop_after, const char *const *want)
{
    test_list_acc acc;
    int i;

    memset(&acc, 0, sizeof(acc));
    acc.stop_after = stop_after;
    if (SQ->list(s, prefix, test_list_cb, &acc, p) != APR_SUCCESS) {
        return 0;
    }
    for (i = 0; want[i]; i++) {
        if (i >= acc.n || strcmp(acc.keys[i], want[i])) {
            return 0;
        }
    }
    return i == acc.n;
}

static void test_list(apr_pool_t *p)
{
    static const char *const keys[] = {
        "a%b/1", "a%b/2", "axb/1", "a_b", "aXb", "a%", "a", "b",
        "p\xff", "p\xff\x01", "p\xfe", "q", NULL
    };
    static const char *const pct[] = { "a%b/1", "a%b/2", NULL };
    static const char *const und[] = { "a_b", NULL };
    static const char *const a[] = {
        "a", "a%", "a%b/1", "a%b/2", "aXb", "a_b", "axb/1", NULL
    };
    static const char *const ff[] = { "p\xff", "p\xff\x01", NULL };
    static const char *const p_all[] = {
        "p\xfe", "p\xff", "p\xff\x01", NULL
    };
    static const char *const two[] = { "a", "a%", NULL };
    static const char *const none[] = { NULL };
    cond_store *s = test_open(p, test_path(p, "list.db"));
    apr_time_t now = apr_time_now();
    apr_int64_t v;
    int i, all_n = 0;
    test_list_acc acc;

    if (!s) {
        return;
    }
    for (i = 0; keys[i]; i++) {
        CHECK_RV(SQ->register_key(s, keys[i], NULL, now, &v), APR_SUCCESS);
    }
    CHECK(test_list_is(s, p, "a%b/", 0, pct));
    CHECK(test_list_is(s, p, "a_", 0, und));
    CHECK(test_list_is(s, p, "a", 0, a));
    CHECK(test_list_is(s, p, "p\xff", 0, ff));
    CHECK(test_list_is(s, p, "p", 0, p_all));
    CHECK(test_list_is(s, p, "a", 2, two));
    CHECK(test_list_is(s, p, "zzz", 0, none));
    CHECK(test_list_is(s, p, "%", 0, none));

    memset(&acc, 0, sizeof(acc));
    CHECK_RV(SQ->list(s, "", test_list_cb, &acc, p), APR_SUCCESS);
    while (keys[all_n]) {
        all_n++;
    }
    CHECK(acc.n == all_n);
    for (i = 1; i < acc.n && i < 16; i++) {
        CHECK(strcmp(acc.keys[i - 1], acc.keys[i]) < 0);
    }
}

/* Run sql on the store through a connection of its own. */
static int test_sql(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open(path, &db);

    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
    sqlite3_close(db);
    return rc == SQLITE_OK;
}

/* A connection's page cache is bounded: reading every page of a store
 * several MiB big through one connection grows SQLite's memory by about
 * the bound, not by SQLite's default 2000 KiB nor by the store's size. */
static void test_cache_bound(apr_pool_t *p)
{
    const char *path = test_path(p, "big.db");
    cond_store *s = test_open(p, path);
    sqlite3_int64 before, grown;
    cond_state st;
    apr_pool_t *sp;
    int i, found = 0;

    if (!s) {
        return;
    }
    CHECK(test_sql(path, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
                   "SELECT i + 1 FROM n WHERE i < 80000) "
                   "INSERT INTO resources (key, version, present, mtime) "
                   "SELECT printf('localhost:80/api/docs/%06d', i), i, 1, 0 "
                   "FROM n"));
    apr_pool_create(&sp, p);
    CHECK_RV(SQ->lookup(s, "localhost:80/api/docs/000001", &st, sp),
             APR_SUCCESS);
    before = sqlite3_memory_used();
    CHECK(before > 0);      /* SQLite counts its memory (memstatus) */
    for (i = 1; i <= 80000; i++) {
        char key[64];

        snprintf(key, sizeof(key), "localhost:80/api/docs/%06d", i);
        found += SQ->lookup(s, key, &st, sp) == APR_SUCCESS;
        apr_pool_clear(sp);
    }
    grown = sqlite3_memory_used() - before;
    CHECK(found == 80000);
    printf("# 80 000 lookups (mapped pages): SQLite memory grew by %lld KiB\n",
           (long long)grown / 1024);
    /* Pages read inside a write transaction go through the page cache:
     * refused claims on keys spread over every leaf */
    for (i = 1; i <= 80000; i += 16) {
        char key[64];

        snprintf(key, sizeof(key), "localhost:80/api/docs/%06d", i);
        found += SQ->claim(s, key, APR_INT64_C(1) << 40, "C",
                           apr_time_now() + LEASE,
                           apr_time_now()) == APR_EAGAIN;
    }
    grown = sqlite3_memory_used() - before;
    CHECK(found == 80000 + 5000);
    if (!CHECK(grown < 1536 * 1024)) {
        printf("  memory grew by %lld KiB\n", (long long)grown / 1024);
    }
}

/* Lookups are remembered per connection while the WAL-index header shows
 * no commit: every way a commit can reach the file must still be seen at
 * once - another connection, another process, another store instance, a
 * writer killed right after its commit - and a writer killed before it
 * commits must change nothing. */
static void test_memo(apr_pool_t *p)
{
    const char *path = test_path(p, "memo.db");
    cond_store *s = test_open(p, path), *other;
    apr_status_t rv = APR_SUCCESS;
    apr_int64_t v0 = 0, v = 0;
    cond_state st;
    int fd[2], i;
    pid_t pid;
    char c;

    if (!s) {
        return;
    }
    CHECK_RV(SQ->register_key(s, "/m", NULL, apr_time_now(), &v0),
             APR_SUCCESS);
    for (i = 0; i < 3; i++) {
        CHECK_RV(SQ->lookup(s, "/m", &st, p), APR_SUCCESS);
        CHECK(st.version == v0 && st.meta == NULL);
        CHECK_RV(SQ->lookup(s, "/none", &st, p), APR_NOTFOUND);
    }

    /* another connection of this process */
    CHECK(test_sql(path, "UPDATE resources SET version = version + 1000, "
                   "meta = 'Vary: x' WHERE key = '/m'"));
    CHECK_RV(SQ->lookup(s, "/m", &st, p), APR_SUCCESS);
    CHECK(st.version == v0 + 1000 && st.meta && !strcmp(st.meta, "Vary: x"));
    CHECK(test_sql(path, "INSERT INTO resources (key, version, present, "
                   "mtime) VALUES ('/none', 7, 1, 0)"));
    CHECK_RV(SQ->lookup(s, "/none", &st, p), APR_SUCCESS);
    CHECK(st.version == 7);

    /* another store instance, as another child would have */
    other = test_attach(p, path, &rv);
    CHECK_RV(rv, APR_SUCCESS);
    if (other) {
        CHECK_RV(SQ->bump(other, "/m", apr_time_now(), &v), APR_SUCCESS);
        CHECK_RV(SQ->lookup(s, "/m", &st, p), APR_SUCCESS);
        CHECK(st.version == v);
    }

    /* another process, killed right after its commit */
    CHECK_RV(SQ->lookup(s, "/m", &st, p), APR_SUCCESS);
    if (CHECK(pipe(fd) == 0)) {
        pid = fork();
        if (pid == 0) {
            int ok = test_sql(path, "UPDATE resources SET version = 424242 "
                              "WHERE key = '/m'");
            if (write(fd[1], ok ? "y" : "n", 1) != 1) {
                _exit(1);
            }
            pause();
            _exit(0);
        }
        CHECK(read(fd[0], &c, 1) == 1 && c == 'y');
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        CHECK_RV(SQ->lookup(s, "/m", &st, p), APR_SUCCESS);
        CHECK(st.version == 424242);

        /* killed inside its transaction: nothing changes */
        pid = fork();
        if (pid == 0) {
            sqlite3 *db = NULL;
            int ok = sqlite3_open(path, &db) == SQLITE_OK
                     && sqlite3_exec(db, "BEGIN IMMEDIATE; UPDATE resources "
                                     "SET version = 1 WHERE key = '/m'",
                                     NULL, NULL, NULL) == SQLITE_OK;
            if (write(fd[1], ok ? "y" : "n", 1) != 1) {
                _exit(1);
            }
            pause();
            _exit(0);
        }
        CHECK(read(fd[0], &c, 1) == 1 && c == 'y');
        CHECK_RV(SQ->lookup(s, "/m", &st, p), APR_SUCCESS);
        CHECK(st.version == 424242);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        CHECK_RV(SQ->lookup(s, "/m", &st, p), APR_SUCCESS);
        CHECK(st.version == 424242);
        CHECK(test_sql(path, "UPDATE resources SET version = 424243 "
                       "WHERE key = '/m'"));
        CHECK_RV(SQ->lookup(s, "/m", &st, p), APR_SUCCESS);
        CHECK(st.version == 424243);
        close(fd[0]);
        close(fd[1]);
    }
}

/* Another connection holds the write lock: writes give up with
 * APR_TIMEUP after the busy timeout, reads go on (WAL), and the store
 * works as soon as the lock is gone. */
static void test_locked(apr_pool_t *p)
{
    const char *path = test_path(p, "locked.db");
    cond_store *s = test_open(p, path);
    apr_time_t now = apr_time_now(), t;
    apr_int64_t v0 = 0, v = 0;
    cond_state st;
    sqlite3 *db = NULL;

    if (!s) {
        return;
    }
    CHECK_RV(SQ->register_key(s, "/l", NULL, now, &v0), APR_SUCCESS);
    if (!CHECK(sqlite3_open(path, &db) == SQLITE_OK
               && sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL)
                  == SQLITE_OK)) {
        sqlite3_close(db);
        return;
    }
    t = apr_time_now();
    CHECK_RV(SQ->claim(s, "/l", v0, "L", now + LEASE, now), APR_TIMEUP);
    t = apr_time_now() - t;
    CHECK(t >= apr_time_from_msec(1500) && t < apr_time_from_sec(5));
    CHECK_RV(SQ->lookup(s, "/l", &st, p), APR_SUCCESS);
    CHECK(st.version == v0 && !st.claim_owner);
    CHECK_RV(SQ->bump(s, "/l", now, &v), APR_TIMEUP);

    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);

    /* no wedge: the same connections go on */
    CHECK_RV(SQ->claim(s, "/l", v0, "L", now + LEASE, now), APR_SUCCESS);
    CHECK_RV(SQ->commit(s, "/l", "L", 1, now, &v), APR_SUCCESS);
    CHECK(v > v0);
}

static void test_missing_corrupt(apr_pool_t *p)
{
    const char *path = test_path(p, "missing/none.db");
    const char *junk = test_path(p, "junk.db");
    cond_store *s;
    cond_state st;
    apr_status_t rv = APR_SUCCESS;
    apr_int64_t v;
    FILE *f;

    /* a child never creates the store, it reports it missing */
    s = test_attach(p, test_path(p, "none.db"), &rv);
    CHECK_RV(rv, APR_ENOENT);
    CHECK(s && SQ->identity(s) == NULL);
    if (s) {
        CHECK_RV(SQ->lookup(s, "/x", &st, p), APR_ENOENT);
        CHECK_RV(SQ->bump(s, "/x", apr_time_now(), &v), APR_ENOENT);
    }
    CHECK(!test_exists(test_path(p, "none.db")));
    s = test_attach(p, path, &rv);
    CHECK_RV(rv, APR_ENOENT);
    CHECK(!test_exists(path));

    /* once it exists, the same instance starts working: a failed
     * connection is not kept around */
    if (s) {
        cond_store *made = test_open(p, path);
        CHECK(made != NULL);
        CHECK_RV(SQ->lookup(s, "/x", &st, p), APR_NOTFOUND);
        CHECK_RV(SQ->bump(s, "/x", apr_time_now(), &v), APR_SUCCESS);
    }

    /* not a database */
    f = fopen(junk, "w");
    if (f) {
        fputs("this is not an SQLite database, not even close......\n"
              "..............................................\n", f);
        fclose(f);
    }
    s = test_attach(p, junk, &rv);
    CHECK_RV(rv, APR_EGENERAL);
    if (s) {
        CHECK_RV(SQ->lookup(s, "/x", &st, p), APR_EGENERAL);
    }
    s = NULL;
    CHECK(SQ->create(&s, junk, p) == NULL);
    if (s) {
        CHECK_RV(SQ->init(s, -1, -1, p), APR_EGENERAL);
    }
}

/* The read-only part; runs as a user file modes apply to (not root). */
static void test_readonly_as_user(const char *path)
{
    apr_pool_t *p;
    cond_store *s;
    cond_state st;
    apr_status_t rv = APR_SUCCESS;
    apr_time_t now = apr_time_now();
    apr_int64_t v = 0;

    apr_pool_create(&p, NULL);
    s = test_attach(p, path, &rv);
    CHECK_RV(rv, APR_SUCCESS);
    if (s) {
        CHECK(test_is_hex_id(SQ->identity(s)));
        CHECK_RV(SQ->lookup(s, "/ro", &st, p), APR_SUCCESS);
        CHECK(st.exists && st.version > 0);
        CHECK_RV(SQ->lookup(s, "/other", &st, p), APR_NOTFOUND);
        CHECK_RV(SQ->claim(s, "/ro", st.version, "o", now + LEASE, now),
                 APR_EACCES);
        CHECK_RV(SQ->bump(s, "/ro", now, &v), APR_EACCES);
        CHECK_RV(SQ->register_key(s, "/new", NULL, now, &v), APR_EACCES);
        CHECK_RV(SQ->forget(s, "/ro"), APR_EACCES);
        /* reads still work after the refused writes */
        CHECK_RV(SQ->lookup(s, "/ro", &st, p), APR_SUCCESS);
    }
    /* init by a user who may only read an existing store succeeds */
    s = NULL;
    if (SQ->create(&s, path, p) == NULL) {
        CHECK_RV(SQ->init(s, -1, -1, p), APR_SUCCESS);
    }
    apr_pool_destroy(p);
}

static void test_readonly(apr_pool_t *p)
{
    const char *dir = test_path(p, "ro");
    const char *path = apr_pstrcat(p, dir, "/store.db", NULL);
    int as_root = geteuid() == 0;
    long uid = as_root ? NOBODY : -1;
    apr_pool_t *sp;
    cond_store *s = NULL;
    apr_int64_t v;
    struct stat sb;
    pid_t pid;
    int status;

    /* As root, init hands the store to the User, as httpd does. */
    apr_pool_create(&sp, p);
    if (SQ->create(&s, path, sp) || SQ->init(s, uid, uid, sp)
        || SQ->child_init(s, sp)) {
        CHECK(!"store for the read-only test");
        return;
    }
    CHECK_RV(SQ->register_key(s, "/ro", NULL, apr_time_now(), &v),
             APR_SUCCESS);
    apr_pool_destroy(sp);       /* closes: the WAL is checkpointed */
    /* kept after the last close, so a read-only directory stays readable */
    CHECK(test_exists(apr_pstrcat(p, path, "-wal", NULL)));
    CHECK(test_exists(apr_pstrcat(p, path, "-shm", NULL)));
    if (as_root) {
        CHECK(stat(dir, &sb) == 0 && sb.st_uid == NOBODY
              && sb.st_gid == NOBODY);
        CHECK(stat(path, &sb) == 0 && sb.st_uid == NOBODY);
        CHECK(stat(apr_pstrcat(p, path, "-wal", NULL), &sb) == 0
              && sb.st_uid == NOBODY);
        CHECK(stat(apr_pstrcat(p, path, "-shm", NULL), &sb) == 0
              && sb.st_uid == NOBODY);
        chmod(tmpdir, 0755);
    }
    chmod(path, 0444);
    chmod(dir, 0555);
    if (!as_root) {
        test_readonly_as_user(path);
    }
    else if ((pid = fork()) == 0) {
        /* root ignores file modes: drop to the store's owner */
        if (setgid(NOBODY) || setuid(NOBODY)) {
            printf("note: cannot drop to uid %d, read-only test skipped\n",
                   NOBODY);
            _exit(0);
        }
        test_readonly_as_user(path);
        _exit(0);
    }
    else {
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid
              && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    chmod(dir, 0755);
    chmod(path, 0644);
}

/* ------------------------------------------------------------------ */
/* Contention                                                           */

#define RACE_KEYS    3
#define RACE_PROCS   8
#define RACE_CYCLES  200
#define RACE_THREADS 8
#define RACE_TCYCLES 100
#define RACE_MAX     (RACE_PROCS * RACE_CYCLES)

typedef struct {
    int commits[RACE_KEYS];
    int backend[RACE_KEYS];         /* written unlocked by the claimer */
    int nrec;
    apr_int64_t version[RACE_MAX];
    int key[RACE_MAX];
    int errors;
    int retries;
    int timeouts;
} test_race;

static const char *const race_keys[RACE_KEYS] = {
    "/race/0", "/race/1", "/race/2"
};

/* One writer: `cycles` successful read/claim/write/commit rounds. */
static void test_race_worker(cond_store *s, test_race *r, int id,
                             int cycles, apr_pool_t *parent)
{
    apr_pool_t *p;
    unsigned int seed = (unsigned int)id * 7919u + (unsigned int)getpid();
    int done = 0, n = 0;

    apr_pool_create(&p, parent);
    while (done < cycles) {
        int k = (int)(rand_r(&seed) % RACE_KEYS);
        const char *key = race_keys[k];
        const char *owner;
        apr_time_t now = apr_time_now();
        apr_int64_t v = 0;
        cond_state st;
        apr_status_t rv;
        int b = 0, slot;

        apr_pool_clear(p);
        owner = apr_psprintf(p, "%d:%d:%d", (int)getpid(), id, n++);
        /* A client: read the version and the representation, think, then
         * write what it computed, on condition that nothing changed. */
        rv = SQ->lookup(s, key, &st, p);
        if (rv == APR_SUCCESS && !st.claim_owner) {
            b = __sync_fetch_and_add(&r->backend[k], 0);
            if (rand_r(&seed) % 4 == 0) {
                apr_sleep(rand_r(&seed) % 100);
            }
            rv = SQ->claim(s, key, st.version, owner, now + LEASE, now);
        }
        else if (rv == APR_SUCCESS) {
            rv = APR_EBUSY;
        }
        if (rv == APR_EBUSY || rv == APR_EAGAIN || rv == APR_TIMEUP) {
            __sync_fetch_and_add(rv == APR_TIMEUP ? &r->timeouts
                                                  : &r->retries, 1);
            apr_sleep(rand_r(&seed) % 200);
            continue;
        }
        if (rv != APR_SUCCESS) {
            printf("  worker %d: %s\n", id, test_status_name(rv));
            __sync_fetch_and_add(&r->errors, 1);
            break;
        }
        /* the "backend" stores what the client computed from its read;
         * only the claim's compare-and-set protects it */
        if (rand_r(&seed) % 4 == 0) {
            apr_sleep(rand_r(&seed) % 100);
        }
        r->backend[k] = b + 1;
        rv = SQ->commit(s, key, owner, 1, apr_time_now(), &v);
        if (rv != APR_SUCCESS || v <= st.version) {
            printf("  worker %d: commit %s\n", id, test_status_name(rv));
            __sync_fetch_and_add(&r->errors, 1);
            break;
        }
        __sync_fetch_and_add(&r->commits[k], 1);
        slot = __sync_fetch_and_add(&r->nrec, 1);
        if (slot < RACE_MAX) {
            r->version[slot] = v;
            r->key[slot] = k;
        }
        done++;
    }
    apr_pool_destroy(p);
}

static void test_race_verify(cond_store *s, test_race *r, apr_int64_t seq0,
                             const char *path, int total, apr_pool_t *p)
{
    int k, i, j, dup = 0, sum = 0;

    CHECK(r->errors == 0);
    if (r->timeouts) {
        printf("note: %d lock timeouts under contention (retried)\n",
               r->timeouts);
    }
    for (k = 0; k < RACE_KEYS; k++) {
        apr_int64_t max = 0;
        int nv = 0;
        cond_state st;

        /* no lost update: every commit's backend write survived */
        CHECK(r->backend[k] == r->commits[k]);
        for (i = 0; i < r->nrec && i < RACE_MAX; i++) {
            if (r->key[i] == k) {
                nv++;
                max = r->version[i] > max ? r->version[i] : max;
            }
        }
        /* one new version per commit, and the last one is current */
        CHECK(nv == r->commits[k]);
        CHECK_RV(SQ->lookup(s, race_keys[k], &st, p), APR_SUCCESS);
        CHECK(st.version == max && st.claim_owner == NULL);
        sum += r->commits[k];
    }
    CHECK(sum == total && r->nrec == total);
    for (i = 0; i < r->nrec && i < RACE_MAX; i++) {
        for (j = i + 1; j < r->nrec && j < RACE_MAX; j++) {
            dup += r->version[i] == r->version[j];
        }
    }
    CHECK(dup == 0);
    /* failed claims and refused commits consumed no versions */
    CHECK(test_sequence(path) == seq0 + total);
}

static void test_race_processes(apr_pool_t *p)
{
    const char *path = test_path(p, "race.db");
    cond_store *s = test_open(p, path);
    test_race *r;
    apr_int64_t v, seq0;
    pid_t pids[RACE_PROCS];
    int i, status, ok = 1;

    if (!s) {
        return;
    }
    for (i = 0; i < RACE_KEYS; i++) {
        CHECK_RV(SQ->register_key(s, race_keys[i], NULL, apr_time_now(), &v),
                 APR_SUCCESS);
    }
    seq0 = test_sequence(path);
    r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (!CHECK(r != MAP_FAILED)) {
        return;
    }
    memset(r, 0, sizeof(*r));
    fflush(stdout);
    for (i = 0; i < RACE_PROCS; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            /* like an httpd child: own pool, own connections */
            apr_pool_t *cp;
            cond_store *cs;
            apr_status_t rv;

            apr_pool_create(&cp, NULL);
            cs = test_attach(cp, path, &rv);
            if (!cs || rv != APR_SUCCESS) {
                __sync_fetch_and_add(&r->errors, 1);
                _exit(1);
            }
            test_race_worker(cs, r, i, RACE_CYCLES, cp);
            apr_pool_destroy(cp);
            _exit(0);
        }
    }
    for (i = 0; i < RACE_PROCS; i++) {
        ok &= pids[i] > 0 && waitpid(pids[i], &status, 0) == pids[i]
              && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    CHECK(ok);
    printf("# %d processes x %d commits on %d keys: %d retries\n",
           RACE_PROCS, RACE_CYCLES, RACE_KEYS, r->retries);
    test_race_verify(s, r, seq0, path, RACE_PROCS * RACE_CYCLES, p);
    munmap(r, sizeof(*r));
}

typedef struct {
    cond_store *s;
    test_race *r;
    int id;
} test_thread_arg;

static void *APR_THREAD_FUNC test_race_thread(apr_thread_t *t, void *data)
{
    test_thread_arg *a = data;

    test_race_worker(a->s, a->r, a->id, RACE_TCYCLES, NULL);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

/* Threads of one process share one instance, as in the event MPM. */
static void test_race_threads(apr_pool_t *p)
{
    const char *path = test_path(p, "threads.db");
    cond_store *s = test_open(p, path);
    apr_thread_t *th[RACE_THREADS];
    test_thread_arg args[RACE_THREADS];
    test_race *r;
    apr_int64_t v, seq0;
    apr_status_t trv;
    int i;

    if (!s) {
        return;
    }
    for (i = 0; i < RACE_KEYS; i++) {
        CHECK_RV(SQ->register_key(s, race_keys[i], NULL, apr_time_now(), &v),
                 APR_SUCCESS);
    }
    seq0 = test_sequence(path);
    r = apr_pcalloc(p, sizeof(*r));
    for (i = 0; i < RACE_THREADS; i++) {
        args[i].s = s;
        args[i].r = r;
        args[i].id = i;
        CHECK_RV(apr_thread_create(&th[i], NULL, test_race_thread, &args[i],
                                   p), APR_SUCCESS);
    }
    for (i = 0; i < RACE_THREADS; i++) {
        apr_thread_join(&trv, th[i]);
    }
    printf("# %d threads x %d commits on %d keys: %d retries\n",
           RACE_THREADS, RACE_TCYCLES, RACE_KEYS, r->retries);
    test_race_verify(s, r, seq0, path, RACE_THREADS * RACE_TCYCLES, p);
}

/* ------------------------------------------------------------------ */

typedef struct {
    const char *name;
    void (*fn)(apr_pool_t *p);
} test_case;

static const test_case test_cases[] = {
    { "create errors", test_create_errors },
    { "init and identity", test_init_identity },
    { "lookup and claim", test_lookup_claim },
    { "lease expiry", test_lease_expiry },
    { "commit", test_commit },
    { "release and break_claim", test_release_break },
    { "renew", test_renew },
    { "power cut", test_power_cut },
    { "versions", test_versions },
    { "register, set_exists, set_meta", test_register_set },
    { "list", test_list },
    { "missing and corrupt store", test_missing_corrupt },
    { "read-only store", test_readonly },
    { "locked store", test_locked },
    { "remembered lookups", test_memo },
    { "page cache bound", test_cache_bound },
    { "contention: processes", test_race_processes },
    { "contention: threads", test_race_threads },
    { NULL, NULL }
};

int main(int argc, char **argv)
{
    char tmpl[] = "/tmp/test_store.XXXXXX";
    const char *only = argc > 1 ? argv[1] : NULL;
    const test_case *tc;
    int rc;

    apr_initialize();
    apr_pool_create(&root, NULL);
    counts = mmap(NULL, sizeof(*counts), PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (counts == MAP_FAILED || !mkdtemp(tmpl)) {
        perror("test_store setup");
        return 2;
    }
    tmpdir = tmpl;
    for (tc = test_cases; tc->name; tc++) {
        apr_pool_t *p;

        if (only && !strstr(tc->name, only)) {
            continue;
        }
        printf("# %s\n", tc->name);
        fflush(stdout);
        apr_pool_create(&p, root);
        tc->fn(p);
        apr_pool_destroy(p);
    }
    if (!getenv("TEST_STORE_KEEP")) {
        char *cmd = apr_psprintf(root, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) {
            printf("note: could not remove %s\n", tmpdir);
        }
    }
    else {
        printf("# kept %s\n", tmpdir);
    }
    printf("%d passed, %d failed\n", counts->passed, counts->failed);
    rc = counts->failed ? 1 : 0;
    apr_pool_destroy(root);
    apr_terminate();
    return rc;
}
