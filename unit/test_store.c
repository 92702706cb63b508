/*
 * test_store.c - the SQLite store (sqlite_store.c): the store contract
 * suite (store_contract.c) through the provider table the httpd glue uses,
 * then what only this store promises - its file, directory and ownership,
 * read-only and locked files, a missing or corrupt file, the per-connection
 * memory of lookups and the bounded page cache.
 *
 * Every test works in its own store file under a temporary directory.
 * Exits non-zero when anything failed.
 */

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_atomic.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include <sqlite3.h>

#include "sqlite_wlock.h"
#include "store_contract.h"

#define NOBODY      65534

/* A fresh store file path under the temporary directory. */
static const char *test_path(apr_pool_t *p, const char *name)
{
    return apr_pstrcat(p, tmpdir, "/", name, NULL);
}

/* create + init + child_init, as httpd does around the fork. */
static cond_store *test_open(apr_pool_t *p, const char *path)
{
    cond_store *s = NULL;
    const char *err = PV->create(&s, path, p);

    if (!test_check(err == NULL, __LINE__, "create")) {
        printf("  %s\n", err);
        return NULL;
    }
    CHECK_RV(PV->init(s, p), APR_SUCCESS);
    CHECK_RV(PV->child_init(s, p), APR_SUCCESS);
    return s;
}

/* A second view of an existing store without running init, like a child
 * that was forked after the parent's init. */
static cond_store *test_attach(apr_pool_t *p, const char *path,
                               apr_status_t *rv)
{
    cond_store *s = NULL;

    if (PV->create(&s, path, p)) {
        return NULL;
    }
    *rv = PV->child_init(s, p);
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

    err = PV->create(&s, "relative/store.db", p);
    CHECK(err != NULL && strstr(err, "absolute"));
    CHECK(PV->create(&s, "", p) != NULL);
    CHECK(PV->create(&s, "store.db", p) != NULL);
    CHECK(PV->create(&s, "/var/lib/somewhere/", p) != NULL);
    s = NULL;
    CHECK(PV->create(&s, test_path(p, "never-opened.db"), p) == NULL);
    CHECK(s != NULL);
    /* create opens nothing */
    CHECK(!test_exists(test_path(p, "never-opened.db")));
    /* no call works before child_init */
    if (s) {
        cond_state st;
        CHECK(PV->lookup(s, "k", &st, p) != APR_SUCCESS);
    }
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
    id = PV->identity(s, p);
    CHECK(test_is_hex_id(id));
    CHECK(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)
          && (sb.st_mode & 07777) == (0750 & ~(mode_t)022));

    /* httpd runs post_config twice: init again on the same instance */
    CHECK_RV(PV->init(s, p), APR_SUCCESS);
    CHECK(id && PV->identity(s, p) && !strcmp(id, PV->identity(s, p)));

    /* a new instance on the same file: same identity */
    again = test_open(p, path);
    CHECK(again && id && !strcmp(id, PV->identity(again, p)));

    /* a child that never ran init reads it from the file */
    attached = test_attach(p, path, &rv);
    CHECK_RV(rv, APR_SUCCESS);
    CHECK(attached && id && PV->identity(attached, p)
          && !strcmp(id, PV->identity(attached, p)));

    /* a new store: a new identity */
    other = test_open(p, test_path(p, "other.db"));
    CHECK(other && id && test_is_hex_id(PV->identity(other, p))
          && strcmp(id, PV->identity(other, p)));
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
    CHECK_RV(PV->lookup(s, "localhost:80/api/docs/000001", &st, sp),
             APR_SUCCESS);
    before = sqlite3_memory_used();
    CHECK(before > 0);      /* SQLite counts its memory (memstatus) */
    for (i = 1; i <= 80000; i++) {
        char key[64];

        snprintf(key, sizeof(key), "localhost:80/api/docs/%06d", i);
        found += PV->lookup(s, key, &st, sp) == APR_SUCCESS;
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
        found += PV->claim(s, key, APR_INT64_C(1) << 40, "C", LEASE, p)
                 == APR_EAGAIN;
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
    CHECK_RV(PV->register_key(s, "/m", NULL, apr_time_now(), &v0, p),
             APR_SUCCESS);
    for (i = 0; i < 3; i++) {
        CHECK_RV(PV->lookup(s, "/m", &st, p), APR_SUCCESS);
        CHECK(st.version == v0 && st.meta == NULL);
        CHECK_RV(PV->lookup(s, "/none", &st, p), APR_NOTFOUND);
    }

    /* another connection of this process */
    CHECK(test_sql(path, "UPDATE resources SET version = version + 1000, "
                   "meta = 'Vary: x' WHERE key = '/m'"));
    CHECK_RV(PV->lookup(s, "/m", &st, p), APR_SUCCESS);
    CHECK(st.version == v0 + 1000 && st.meta && !strcmp(st.meta, "Vary: x"));
    CHECK(test_sql(path, "INSERT INTO resources (key, version, present, "
                   "mtime) VALUES ('/none', 7, 1, 0)"));
    CHECK_RV(PV->lookup(s, "/none", &st, p), APR_SUCCESS);
    CHECK(st.version == 7);

    /* another store instance, as another child would have */
    other = test_attach(p, path, &rv);
    CHECK_RV(rv, APR_SUCCESS);
    if (other) {
        CHECK_RV(PV->bump(other, "/m", apr_time_now(), &v, p), APR_SUCCESS);
        CHECK_RV(PV->lookup(s, "/m", &st, p), APR_SUCCESS);
        CHECK(st.version == v);
    }

    /* another process, killed right after its commit */
    CHECK_RV(PV->lookup(s, "/m", &st, p), APR_SUCCESS);
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
        CHECK_RV(PV->lookup(s, "/m", &st, p), APR_SUCCESS);
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
        CHECK_RV(PV->lookup(s, "/m", &st, p), APR_SUCCESS);
        CHECK(st.version == 424242);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        CHECK_RV(PV->lookup(s, "/m", &st, p), APR_SUCCESS);
        CHECK(st.version == 424242);
        CHECK(test_sql(path, "UPDATE resources SET version = 424243 "
                       "WHERE key = '/m'"));
        CHECK_RV(PV->lookup(s, "/m", &st, p), APR_SUCCESS);
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
    CHECK_RV(PV->register_key(s, "/l", NULL, now, &v0, p), APR_SUCCESS);
    if (!CHECK(sqlite3_open(path, &db) == SQLITE_OK
               && sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL)
                  == SQLITE_OK)) {
        sqlite3_close(db);
        return;
    }
    t = apr_time_now();
    CHECK_RV(PV->claim(s, "/l", v0, "L", LEASE, p), APR_TIMEUP);
    t = apr_time_now() - t;
    CHECK(t >= apr_time_from_msec(1500) && t < apr_time_from_sec(5));
    CHECK_RV(PV->lookup(s, "/l", &st, p), APR_SUCCESS);
    CHECK(st.version == v0 && !st.claim_owner);
    CHECK_RV(PV->bump(s, "/l", now, &v, p), APR_TIMEUP);

    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);

    /* no wedge: the same connections go on */
    CHECK_RV(PV->claim(s, "/l", v0, "L", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->commit(s, "/l", "L", 1, NULL, now, &v, p), APR_SUCCESS);
    CHECK(v > v0);
}

/* A claim that waits for a lock: its connection stays borrowed meanwhile. */
typedef struct {
    cond_store *s;
    apr_int64_t v;
    apr_status_t rv;
} test_waiter;

static void *APR_THREAD_FUNC test_wait_claim(apr_thread_t *t, void *data)
{
    test_waiter *w = data;
    apr_pool_t *p;

    apr_pool_create(&p, NULL);
    w->rv = PV->claim(w->s, "/e", w->v, "E", LEASE, p);
    apr_pool_destroy(p);
    (void)t;
    return NULL;
}

/* The child's pool goes while a call is inside the store, as when a
 * restart kills a prefork child in the middle of a request (its signal
 * handler destroys the pool there and then): apr_reslist's cleanup
 * aborted the process on a borrowed connection. */
static void test_child_exit(apr_pool_t *p)
{
    const char *path = test_path(p, "childexit.db");
    apr_pool_t *pchild;
    apr_thread_t *th;
    apr_status_t trv;
    test_waiter w;
    sqlite3 *db = NULL;

    apr_pool_create(&pchild, p);
    w.s = NULL;
    if (PV->create(&w.s, path, p)
        || !CHECK(PV->init(w.s, p) == APR_SUCCESS)
        || !CHECK(PV->child_init(w.s, pchild) == APR_SUCCESS)) {
        return;
    }
    CHECK_RV(PV->register_key(w.s, "/e", NULL, apr_time_now(), &w.v, p),
             APR_SUCCESS);
    if (!CHECK(sqlite3_open(path, &db) == SQLITE_OK
               && sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL)
                  == SQLITE_OK)) {
        sqlite3_close(db);
        return;
    }
    w.rv = APR_EGENERAL;
    CHECK_RV(apr_thread_create(&th, NULL, test_wait_claim, &w, p),
             APR_SUCCESS);
    apr_sleep(apr_time_from_msec(300));     /* waiting for the lock */
    apr_pool_destroy(pchild);               /* aborted here */
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    apr_thread_join(&trv, th);
    /* the call went on with its connection, to its own end */
    CHECK(w.rv == APR_SUCCESS || w.rv == APR_TIMEUP);
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
    CHECK(s && PV->identity(s, p) == NULL);
    if (s) {
        CHECK_RV(PV->lookup(s, "/x", &st, p), APR_ENOENT);
        CHECK_RV(PV->bump(s, "/x", apr_time_now(), &v, p), APR_ENOENT);
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
        CHECK_RV(PV->lookup(s, "/x", &st, p), APR_NOTFOUND);
        CHECK_RV(PV->bump(s, "/x", apr_time_now(), &v, p), APR_SUCCESS);
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
        CHECK_RV(PV->lookup(s, "/x", &st, p), APR_EGENERAL);
    }
    s = NULL;
    CHECK(PV->create(&s, junk, p) == NULL);
    if (s) {
        CHECK_RV(PV->init(s, p), APR_EGENERAL);
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
        CHECK(test_is_hex_id(PV->identity(s, p)));
        CHECK_RV(PV->lookup(s, "/ro", &st, p), APR_SUCCESS);
        CHECK(st.exists && st.version > 0);
        CHECK_RV(PV->lookup(s, "/other", &st, p), APR_NOTFOUND);
        CHECK_RV(PV->claim(s, "/ro", st.version, "o", LEASE, p),
                 APR_EACCES);
        CHECK_RV(PV->bump(s, "/ro", now, &v, p), APR_EACCES);
        CHECK_RV(PV->register_key(s, "/new", NULL, now, &v, p), APR_EACCES);
        CHECK_RV(PV->forget(s, "/ro", p), APR_EACCES);
        /* reads still work after the refused writes */
        CHECK_RV(PV->lookup(s, "/ro", &st, p), APR_SUCCESS);
    }
    /* init by a user who may only read an existing store succeeds */
    s = NULL;
    if (PV->create(&s, path, p) == NULL) {
        CHECK_RV(PV->init(s, p), APR_SUCCESS);
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
    if (PV->create(&s, path, sp) || PV->init(s, sp)
        || PV->set_owner(s, uid, uid, sp) || PV->child_init(s, sp)) {
        CHECK(!"store for the read-only test");
        return;
    }
    CHECK_RV(PV->register_key(s, "/ro", NULL, apr_time_now(), &v, p),
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

/* What a process that was cut off reports back (shared memory). */
typedef struct {
    char identity[32];
    apr_int64_t highest;     /* the highest version it was handed */
} test_cut;

static void test_copy_file(const char *from, const char *to)
{
    char *cmd = apr_psprintf(test_root, "cp -p '%s' '%s' 2>/dev/null", from, to);

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
    test_copy_file(apr_pstrcat(test_root, path, "-wal", NULL),
                   apr_pstrcat(test_root, snap, "-wal", NULL));
}

/* The power comes back: the disk holds the sync point, and -shm (memory,
 * not disk) is gone. */
static void test_power_back(const char *path, const char *snap)
{
    rename(snap, path);
    rename(apr_pstrcat(test_root, snap, "-wal", NULL),
           apr_pstrcat(test_root, path, "-wal", NULL));
    unlink(apr_pstrcat(test_root, path, "-shm", NULL));
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
    s = init ? test_open(test_root, path) : test_attach(test_root, path, &rv);
    if (!s || rv != APR_SUCCESS) {
        _exit(1);
    }
    apr_cpystrn(out->identity, PV->identity(s, test_root), sizeof(out->identity));
    CHECK_RV(PV->bump(s, "/synced", now, &v, test_root), APR_SUCCESS);
    if (snap) {
        test_sync_point(path, snap);
    }
    for (i = 0; i < 20; i++) {
        CHECK_RV(PV->bump(s, "/lost", now, &v, test_root), APR_SUCCESS);
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

    apr_pool_create(&p, test_root);
    if (!PV->create(&s, path, p)) {
        rv = PV->shutdown(s, p);
    }
    apr_pool_destroy(p);
    return rv;
}

static void test_power_cut(apr_pool_t *p)
{
    const char *path = test_path(test_root, "cut.db");
    const char *snap = test_path(test_root, "cut.snap");
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
    CHECK(s && !strcmp(PV->identity(s, p), cut->identity));
    CHECK_RV(PV->lookup(s, "/lost", &st, p), APR_SUCCESS);
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
    CHECK_RV(PV->lookup(s, "/lost", &st, p), APR_SUCCESS);
    CHECK(st.version < cut->highest);       /* the store went back */
    /* no tag handed out before matches: the identity moved */
    CHECK(strcmp(PV->identity(s, p), cut->identity) != 0);
    /* no version number is handed out again */
    CHECK_RV(PV->bump(s, "/lost", now, &v, p), APR_SUCCESS);
    CHECK(v > cut->highest);
    apr_cpystrn(cut->identity, PV->identity(s, p), sizeof(cut->identity));
    apr_pool_clear(p);

    /* A clean stop, then a reboot: the identity stays. */
    CHECK_RV(test_clean_stop(path), APR_SUCCESS);
    setenv("CONDITIONAL_BOOT_ID", "boot-C", 1);
    s = test_open(p, path);
    CHECK(s && !strcmp(PV->identity(s, p), cut->identity));
    apr_pool_clear(p);

    /* Not when a process that skipped init (another httpd's child)
     * opened the store after the clean stop and wrote. */
    CHECK_RV(test_clean_stop(path), APR_SUCCESS);
    test_until_cut(path, NULL, "boot-C", 0, cut);
    setenv("CONDITIONAL_BOOT_ID", "boot-D", 1);
    s = test_open(p, path);
    CHECK(s && strcmp(PV->identity(s, p), cut->identity) != 0);
    CHECK_RV(PV->bump(s, "/lost", now, &v, p), APR_SUCCESS);
    CHECK(v > cut->highest);

    /* No clean stop while another process has the store open. */
    CHECK_RV(PV->lookup(s, "/lost", &st, p), APR_SUCCESS);
    if (fork() == 0) {
        _exit(test_clean_stop(path) == APR_EBUSY ? 0 : 1);
    }
    CHECK(wait(&(int){0}) > 0);
    unsetenv("CONDITIONAL_BOOT_ID");
    munmap(cut, sizeof(*cut));
}

/* ------------------------------------------------------------------ */
/* The write path's transactions and the WAL bound                      */

/* sqlite_store.c's SQ_WAL_PAGES, and the WAL's frame and header sizes */
#define TEST_WAL_PAGES     256
#define TEST_WAL_FRAME     (4096 + 24)
#define TEST_WAL_HDR       32
/* The bound docs/design.md states: a checkpoint is due at SQ_WAL_PAGES
 * pages, and the writers that commit while it waits for the write lock
 * add at most a few frames each. */
#define TEST_WAL_BOUND     (TEST_WAL_HDR \
                            + (TEST_WAL_PAGES + 200) * TEST_WAL_FRAME)

static apr_uint32_t test_be32(const unsigned char *b)
{
    return (apr_uint32_t)b[0] << 24 | (apr_uint32_t)b[1] << 16
           | (apr_uint32_t)b[2] << 8 | b[3];
}

/* Committed write transactions in the store's WAL since it last started
 * over: frames of the current generation (the header's salts) that end a
 * transaction (a non-zero database size). A transaction that changed
 * nothing leaves no frame. */
static int test_wal_commits(const char *path, apr_pool_t *p)
{
    FILE *f = fopen(apr_pstrcat(p, path, "-wal", NULL), "rb");
    unsigned char hdr[TEST_WAL_HDR], fh[24];
    apr_uint32_t pgsz;
    int n = 0;

    if (!f) {
        return -1;
    }
    if (fread(hdr, 1, sizeof(hdr), f) != sizeof(hdr)) {
        fclose(f);
        return 0;
    }
    pgsz = test_be32(hdr + 8);
    while (fread(fh, 1, sizeof(fh), f) == sizeof(fh)) {
        if (memcmp(fh + 8, hdr + 16, 8)) {
            break;                          /* an older generation */
        }
        n += test_be32(fh + 4) != 0;
        if (fseek(f, (long)pgsz, SEEK_CUR) != 0) {
            break;
        }
    }
    fclose(f);
    return n;
}

/* The fewest transactions a write needs (store.h, commit): a complete
 * write is a claim and one commit that also bumps its parent; a write
 * whose backend still streams adds one release, which bumps the parent;
 * a refused first write is a claim and a release that drops the
 * placeholder. */
static void test_write_transactions(apr_pool_t *p)
{
    const char *path = test_path(p, "tx.db");
    cond_store *s = test_open(p, path);
    apr_array_header_t *rel = apr_array_make(p, 2, sizeof(const char *));
    apr_int64_t v = 0, vp = 0;
    cond_state st;
    int n;

    if (!s) {
        return;
    }
    APR_ARRAY_PUSH(rel, const char *) = "/d/";
    APR_ARRAY_PUSH(rel, const char *) = "/d";
    CHECK_RV(PV->register_key(s, "/d", NULL, apr_time_now(), &vp, p),
             APR_SUCCESS);

    n = test_wal_commits(path, p);
    CHECK_RV(PV->claim(s, "/d/1", 0, "W", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->commit(s, "/d/1", "W", COND_COMMIT_EXISTS, rel,
                        apr_time_now(), &v, p), APR_SUCCESS);
    CHECK(test_wal_commits(path, p) - n == 2);

    n = test_wal_commits(path, p);
    CHECK_RV(PV->claim(s, "/d/1", v, "W2", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->commit(s, "/d/1", "W2", COND_COMMIT_EXISTS
                        | COND_COMMIT_HOLD, NULL, apr_time_now(), &v, p),
             APR_SUCCESS);
    CHECK_RV(PV->release(s, "/d/1", "W2", rel, p), APR_SUCCESS);
    CHECK(test_wal_commits(path, p) - n == 3);
    CHECK_RV(PV->lookup(s, "/d", &st, p), APR_SUCCESS);
    CHECK(st.version > v && st.version > vp);

    n = test_wal_commits(path, p);
    CHECK_RV(PV->claim(s, "/d/2", 0, "R", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->release(s, "/d/2", "R", NULL, p), APR_SUCCESS);
    CHECK(test_wal_commits(path, p) - n == 2);
    CHECK_RV(PV->lookup(s, "/d/2", &st, p), APR_NOTFOUND);
}

#define WAL_THREADS 8
#define WAL_WRITES  2500

typedef struct {
    cond_store *s;
    volatile apr_uint32_t running, failed;
} test_wal_run;

/* One writer: claim, then commit with its parent, as the module writes. */
static void *APR_THREAD_FUNC test_wal_writer(apr_thread_t *t, void *data)
{
    test_wal_run *w = data;
    apr_pool_t *p;
    int i;

    apr_pool_create(&p, NULL);
    for (i = 0; i < WAL_WRITES; i++) {
        apr_array_header_t *rel = apr_array_make(p, 1, sizeof(const char *));
        char key[32];
        cond_state st;
        apr_int64_t v;

        APR_ARRAY_PUSH(rel, const char *) = "/w";
        apr_snprintf(key, sizeof(key), "/w/%d", i % 64);
        if (PV->lookup(w->s, key, &st, p) != APR_SUCCESS) {
            st.version = 0;
        }
        if (PV->claim(w->s, key, st.version, "bench", LEASE, p)
            == APR_SUCCESS
            && PV->commit(w->s, key, "bench", COND_COMMIT_EXISTS, rel,
                          apr_time_now(), &v, p) != APR_SUCCESS) {
            apr_atomic_inc32(&w->failed);
        }
        apr_pool_clear(p);
    }
    apr_atomic_dec32(&w->running);
    apr_pool_destroy(p);
    /* Returns rather than apr_thread_exit(): pthread_exit would leave this
     * frame's ASan redzones poisoned under the thread's exit handlers, a
     * false report in the SANITIZE=1 build. */
    (void)t;
    return NULL;
}

/* Sustained writes from several threads keep the WAL under its bound
 * (SQLite's own passive checkpoints let it grow to hundreds of MB). */
static void test_wal_bound(apr_pool_t *p)
{
    const char *path = test_path(p, "walbound.db");
    const char *wal = apr_pstrcat(p, path, "-wal", NULL);
    apr_thread_t *th[WAL_THREADS];
    test_wal_run w;
    apr_off_t most = 0;
    apr_int64_t vp = 0;
    apr_status_t trv;
    struct stat sb;
    int i;

    w.s = test_open(p, path);
    if (!w.s) {
        return;
    }
    w.running = WAL_THREADS;
    w.failed = 0;
    CHECK_RV(PV->register_key(w.s, "/w", NULL, apr_time_now(), &vp, p),
             APR_SUCCESS);
    for (i = 0; i < WAL_THREADS; i++) {
        CHECK_RV(apr_thread_create(&th[i], NULL, test_wal_writer, &w, p),
                 APR_SUCCESS);
    }
    while (apr_atomic_read32(&w.running) > 0) {
        if (stat(wal, &sb) == 0 && sb.st_size > most) {
            most = sb.st_size;
        }
        apr_sleep(500);
    }
    for (i = 0; i < WAL_THREADS; i++) {
        apr_thread_join(&trv, th[i]);
    }
    printf("# WAL at most %" APR_OFF_T_FMT " bytes (bound %d)\n", most,
           TEST_WAL_BOUND);
    CHECK(w.failed == 0);
    CHECK(most > 0 && most <= TEST_WAL_BOUND);
}

/* A reader that holds an old snapshot (conditionalctl list of a big store)
 * keeps any checkpoint from finishing: writes go on all the same, past the
 * WAL's bound, instead of each waiting for a checkpoint in vain (they did:
 * one write per writer every two seconds). A minute is a bound on a hang,
 * not a speed: the writes take a few seconds. */
static void test_wal_reader(apr_pool_t *p)
{
    const char *path = test_path(p, "walreader.db");
    apr_time_t until;
    apr_thread_t *th;
    apr_status_t trv;
    test_wal_run w;
    apr_int64_t vp = 0;
    sqlite3 *db = NULL;
    int done;

    if (!(w.s = test_open(p, path))) {
        return;
    }
    w.running = 1;
    w.failed = 0;
    CHECK_RV(PV->register_key(w.s, "/w", NULL, apr_time_now(), &vp, p),
             APR_SUCCESS);
    if (!CHECK(sqlite3_open(path, &db) == SQLITE_OK
               && sqlite3_exec(db, "BEGIN; SELECT count(*) FROM resources",
                               NULL, NULL, NULL) == SQLITE_OK)) {
        sqlite3_close(db);
        return;
    }
    CHECK_RV(apr_thread_create(&th, NULL, test_wal_writer, &w, p),
             APR_SUCCESS);
    until = apr_time_now() + apr_time_from_sec(60);
    while (apr_atomic_read32(&w.running) > 0 && apr_time_now() < until) {
        apr_sleep(apr_time_from_msec(50));
    }
    done = apr_atomic_read32(&w.running) == 0;
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
    apr_thread_join(&trv, th);
    CHECK(done);
    CHECK(w.failed == 0);
}

/* ------------------------------------------------------------------ */

static cond_store *test_target_open(apr_pool_t *p, const char *name)
{
    return test_open(p, test_path(p, apr_pstrcat(p, name, ".db", NULL)));
}

static cond_store *test_target_attach(apr_pool_t *p, const char *name,
                                      apr_status_t *rv)
{
    return test_attach(p, test_path(p, apr_pstrcat(p, name, ".db", NULL)),
                       rv);
}

static apr_int64_t test_target_sequence(const char *name)
{
    char path[4096];

    apr_snprintf(path, sizeof(path), "%s/%s.db", tmpdir, name);
    return test_sequence(path);
}


/* ------------------------------------------------------------------ */
/* Files deleted, replaced or cut short under an open store             */

/* rv is an error and the store's words (cond_store_error) say what the
 * test expects. */
static int test_refused(apr_pool_t *p, apr_status_t rv, const char *words,
                        int line)
{
    const char *msg = cond_store_error(p);
    int ok = rv != APR_SUCCESS && rv != APR_NOTFOUND && msg
             && strstr(msg, words);

    if (!ok) {
        printf("  got status %d, message: %s\n", rv, msg ? msg : "(none)");
    }
    return test_check(ok, line, words);
}

/* A call with a pool of its own, so that its error text is its own. */
#define CHECK_REFUSED(call, words) \
    do { \
        apr_pool_t *cp_; \
        apr_pool_create(&cp_, p); \
        test_refused(cp_, (call), (words), __LINE__); \
    } while (0)

/* A read looks at the store's files when its connection has not for
 * 100 ms (a write every time): give it the time. */
static void test_let_notice(void)
{
    apr_sleep(apr_time_from_msec(150));
}

/* A store with one key and an open connection (its locks held), the way
 * a child that has served a request is. */
static cond_store *test_busy_store(apr_pool_t *p, const char *path)
{
    cond_store *s = test_open(p, path);
    apr_int64_t v;

    if (s) {
        CHECK_RV(PV->bump(s, "/k", apr_time_now(), &v, p), APR_SUCCESS);
    }
    return s;
}

static void test_db_deleted(apr_pool_t *p)
{
    const char *path = test_path(p, "deleted.db");
    cond_store *s = test_busy_store(p, path), *later;
    const char *id;
    cond_state st;
    apr_int64_t v;

    if (!s) {
        return;
    }
    id = apr_pstrdup(p, PV->identity(s, p));
    CHECK(unlink(path) == 0);
    test_let_notice();
    CHECK_REFUSED(PV->lookup(s, "/k", &st, cp_), "deleted or renamed");
    CHECK_REFUSED(PV->bump(s, "/k", apr_time_now(), &v, cp_),
                  "deleted or renamed");
    /* its -wal and -shm went with it: a new file gets fresh ones */
    CHECK(!test_exists(apr_pstrcat(p, path, "-wal", NULL)));
    /* a restart makes a new store, whose identity no old tag has */
    later = test_open(p, path);
    CHECK(later && strcmp(id, PV->identity(later, p)));
    if (later) {
        CHECK_RV(PV->lookup(later, "/k", &st, p), APR_NOTFOUND);
    }
    /* the old generation still refuses the new file */
    CHECK_REFUSED(PV->lookup(s, "/k", &st, cp_), "until httpd is restarted");
}

static void test_db_replaced(apr_pool_t *p)
{
    const char *path = test_path(p, "replaced.db");
    const char *other = test_path(p, "replacement.db");
    cond_store *s = test_busy_store(p, path), *o, *later;
    const char *id;
    apr_pool_t *op;
    cond_state st;

    if (!s) {
        return;
    }
    id = apr_pstrdup(p, PV->identity(s, p));
    /* another store, closed: a copy complete in itself, as a backup is */
    apr_pool_create(&op, p);
    o = test_busy_store(op, other);
    if (o) {
        CHECK_RV(PV->bump(o, "/only-in-replacement", apr_time_now(), NULL,
                          op), APR_SUCCESS);
    }
    apr_pool_destroy(op);
    CHECK(test_sql(other, "PRAGMA wal_checkpoint(TRUNCATE)"));
    CHECK(rename(other, path) == 0);
    test_let_notice();
    CHECK_REFUSED(PV->lookup(s, "/k", &st, cp_), "replaced");
    CHECK_REFUSED(PV->claim(s, "/k", 1, "o", apr_time_from_sec(60), cp_),
                  "replaced");
    /* a child forked before the replacement does not take the new file */
    CHECK_REFUSED(PV->lookup(s, "/only-in-replacement", &st, cp_),
                  "replaced");
    /* the old file's -wal is not applied to the new one after a restart */
    CHECK(!test_exists(apr_pstrcat(p, path, "-wal", NULL)));
    later = test_open(p, path);
    if (later) {
        CHECK(strcmp(PV->identity(later, p), id));
        CHECK_RV(PV->lookup(later, "/only-in-replacement", &st, p),
                 APR_SUCCESS);
    }
}

/* -wal or -shm removed while connections use them: refused by those and
 * by every new one (never a second -wal beside the first), no crash. */
static void test_wal_removed(apr_pool_t *p, const char *suffix)
{
    const char *path = test_path(p, apr_pstrcat(p, "rm", suffix, ".db",
                                                NULL));
    cond_store *s = test_busy_store(p, path), *child, *later;
    const char *id;
    apr_status_t rv = APR_SUCCESS;
    cond_state st;

    if (!s) {
        return;
    }
    id = apr_pstrdup(p, PV->identity(s, p));
    /* a second child, its connection open too */
    child = test_attach(p, path, &rv);
    CHECK_RV(rv, APR_SUCCESS);
    CHECK(unlink(apr_pstrcat(p, path, suffix, NULL)) == 0);
    test_let_notice();
    CHECK_REFUSED(PV->lookup(s, "/k", &st, cp_), "is gone");
    CHECK_REFUSED(PV->bump(child, "/k", apr_time_now(), NULL, cp_),
                  "is gone");
    CHECK(!test_exists(apr_pstrcat(p, path, suffix, NULL)));
    if (!strcmp(suffix, "-wal")) {
        /* what the -wal held may be lost: after a restart no old tag
         * matches */
        later = test_open(p, path);
        CHECK(later && strcmp(id, PV->identity(later, p)));
    }
}

static void test_files_removed(apr_pool_t *p)
{
    test_wal_removed(p, "-wal");
    test_wal_removed(p, "-shm");
}

/* A -wal cut short has lost commits. */
static void test_wal_cut(apr_pool_t *p)
{
    const char *path = test_path(p, "cut.db");
    const char *wal = apr_pstrcat(p, path, "-wal", NULL);
    cond_store *s = test_busy_store(p, path);
    cond_state st;
    int i;

    if (!s) {
        return;
    }
    for (i = 0; i < 20; i++) {
        CHECK_RV(PV->bump(s, apr_psprintf(p, "/k%d", i), apr_time_now(),
                          NULL, p), APR_SUCCESS);
    }
    CHECK_RV(PV->lookup(s, "/k1", &st, p), APR_SUCCESS);
    CHECK(truncate(wal, 100) == 0);
    test_let_notice();
    CHECK_REFUSED(PV->lookup(s, "/k1", &st, cp_), "cut short");
    /* what is left of it goes, so that a restart gives a new identity */
    CHECK(!test_exists(wal));
    /* and stays refused: a new connection would start over without
     * what the -wal held */
    CHECK_REFUSED(PV->bump(s, "/k1", apr_time_now(), NULL, cp_),
                  "cut short");
}

/* A write into a -wal cut short would land past the cut, and the frames
 * the cut took would then read as zeros: a write looks at the files every
 * time, so the very next one is refused. */
static void test_wal_cut_write(apr_pool_t *p)
{
    const char *path = test_path(p, "cutw.db");
    cond_store *s = test_busy_store(p, path);
    int i;

    if (!s) {
        return;
    }
    for (i = 0; i < 20; i++) {
        CHECK_RV(PV->bump(s, apr_psprintf(p, "/k%d", i), apr_time_now(),
                          NULL, p), APR_SUCCESS);
    }
    CHECK(truncate(apr_pstrcat(p, path, "-wal", NULL), 100) == 0);
    CHECK_REFUSED(PV->bump(s, "/k1", apr_time_now(), NULL, cp_),
                  "cut short");
}

/* A child of the generation before a graceful restart that finds a lost
 * -wal only after the restart (its write was still in flight) leaves a
 * marker under the old identity: the new generation, which init gave a
 * new one, is not refused by it. The straggler is another process, as a
 * child of the old generation is (SQLite shares one WAL-index among a
 * process's connections to a file). */
static void test_straggler(apr_pool_t *p)
{
    const char *path = test_path(p, "straggler.db");
    cond_store *s = test_busy_store(p, path), *later;
    const char *id;
    int go[2], done[2];
    cond_state st;
    pid_t pid;
    char c = 0;

    if (!s || !CHECK(pipe(go) == 0 && pipe(done) == 0)) {
        return;
    }
    id = apr_pstrdup(p, PV->identity(s, p));
    if ((pid = fork()) == 0) {
        apr_status_t rv = APR_SUCCESS;
        cond_store *late;
        int ok;

        close(go[1]);               /* a parent gone is EOF, not a hang */
        close(done[0]);
        late = test_attach(p, path, &rv);
        ok = late && PV->lookup(late, "/k", &st, p) == APR_SUCCESS;

        ok = write(done[1], ok ? "y" : "n", 1) == 1 && ok
             && read(go[0], &c, 1) == 1
             && PV->bump(late, "/k", apr_time_now(), NULL, p) != APR_SUCCESS;
        _exit(write(done[1], ok ? "y" : "n", 1) == 1 ? 0 : 1);
    }
    close(go[0]);
    close(done[1]);
    CHECK(read(done[0], &c, 1) == 1 && c == 'y');
    CHECK(unlink(apr_pstrcat(p, path, "-wal", NULL)) == 0);
    CHECK_REFUSED(PV->bump(s, "/k", apr_time_now(), NULL, cp_), "is gone");
    later = test_open(p, path);         /* the restart */
    CHECK(later && PV->identity(later, p)
          && strcmp(id, PV->identity(later, p)));
    /* the straggler's write: refused, and its marker left */
    CHECK(write(go[1], "g", 1) == 1 && read(done[0], &c, 1) == 1 && c == 'y');
    close(go[1]);
    close(done[0]);
    waitpid(pid, NULL, 0);
    if (later) {
        CHECK_RV(PV->bump(later, "/k", apr_time_now(), NULL, p),
                 APR_SUCCESS);
        CHECK_RV(PV->lookup(later, "/k", &st, p), APR_SUCCESS);
    }
}

/* A backup renamed over the database and a restart before any connection
 * noticed: the old file's -wal is not applied to the backup, and the
 * store gets a new identity (the backup has the old one, and a sequence
 * behind the tags handed out since it was made). */
static void test_restored_unnoticed(apr_pool_t *p)
{
    const char *path = test_path(p, "restored.db");
    const char *copy = test_path(p, "restored-copy.db");
    cond_store *s = test_busy_store(p, path), *later;
    const char *id;
    apr_int64_t v = 0;
    cond_state st;

    if (!s) {
        return;
    }
    id = apr_pstrdup(p, PV->identity(s, p));
    CHECK(test_sql(path, apr_psprintf(p, "VACUUM INTO '%s'", copy)));
    CHECK_RV(PV->bump(s, "/after-backup", apr_time_now(), &v, p),
             APR_SUCCESS);
    CHECK(rename(copy, path) == 0);
    later = test_open(p, path);         /* the restart, at once */
    if (later) {
        CHECK(PV->identity(later, p) && strcmp(id, PV->identity(later, p)));
        CHECK_RV(PV->lookup(later, "/after-backup", &st, p), APR_NOTFOUND);
        CHECK_RV(PV->lookup(later, "/k", &st, p), APR_SUCCESS);
    }
}

/* A -shm cut to nothing would be a SIGBUS at the next read of its
 * mapping: noticed on the very next call. */
static void test_shm_cut(apr_pool_t *p)
{
    const char *path = test_path(p, "cutshm.db");
    cond_store *s = test_busy_store(p, path);
    cond_state st;

    if (!s) {
        return;
    }
    CHECK_RV(PV->lookup(s, "/k", &st, p), APR_SUCCESS);
    CHECK(truncate(apr_pstrcat(p, path, "-shm", NULL), 0) == 0);
    CHECK_REFUSED(PV->lookup(s, "/k", &st, cp_), "cut short");
    CHECK_REFUSED(PV->bump(s, "/k", apr_time_now(), NULL, cp_), "cut short");

    /* cut to less than its first page, the header still there: a lookup
     * that goes on into SQLite (whose hash tables are past the cut) */
    s = test_busy_store(p, test_path(p, "cutshm2.db"));
    if (s) {
        CHECK_RV(PV->lookup(s, "/k", &st, p), APR_SUCCESS);
        CHECK(truncate(apr_pstrcat(p, test_path(p, "cutshm2.db"), "-shm",
                                   NULL), 200) == 0);
        CHECK_REFUSED(PV->lookup(s, "/other", &st, cp_), "cut short");
    }
}

/* The store's own words reach the caller's pool. */
static void test_error_text(apr_pool_t *p)
{
    const char *junk = test_path(p, "notadb.db");
    cond_store *s = NULL;
    cond_state st;
    apr_status_t rv = APR_SUCCESS;
    FILE *f = fopen(junk, "w");

    if (f) {
        fputs("this is not an SQLite database, not even close......\n"
              "..............................................\n", f);
        fclose(f);
    }
    s = test_attach(p, junk, &rv);
    if (s) {
        CHECK_REFUSED(PV->lookup(s, "/x", &st, cp_),
                      "file is not a database");
    }
}

/* ---- The writers' lock (sqlite_wlock.c) ---- */

/* A writer that holds the lock inside its transaction: claim_checked's
 * check runs there. It tells the test through a pipe, then stays for
 * hold_ms (or until killed, hold_ms < 0). */
typedef struct {
    int fd;
    int hold_ms;
} test_holder;

static int test_hold_check(void *baton, const cond_state *st)
{
    test_holder *h = baton;

    (void)st;
    if (write(h->fd, "x", 1) != 1) {
        _exit(3);
    }
    if (h->hold_ms < 0) {
        for (;;) {
            pause();
        }
    }
    apr_sleep(apr_time_from_msec(h->hold_ms));
    return 0;
}

/* fork a child of the store's parent (made and init'ed, no connections
 * yet in this process) that claims /held and holds the writers' lock;
 * returns once the child is inside its transaction. */
static pid_t test_holder_fork(cond_store *s, int hold_ms)
{
    int fds[2];
    char x;
    pid_t pid;

    if (!CHECK(pipe(fds) == 0)) {
        return -1;
    }
    fflush(stdout);
    if ((pid = fork()) == 0) {
        test_holder h = { fds[1], hold_ms };
        apr_pool_t *cp;
        cond_state st;
        int found;

        apr_pool_create(&cp, NULL);
        if (PV->child_init(s, cp) != APR_SUCCESS) {
            _exit(1);
        }
        _exit(PV->claim_checked(s, "/held", 0, "H", LEASE, test_hold_check,
                                &h, &st, &found, cp) == APR_SUCCESS ? 0 : 2);
    }
    close(fds[1]);
    if (!CHECK(pid > 0 && read(fds[0], &x, 1) == 1)) {
        pid = -1;
    }
    close(fds[0]);
    return pid;
}

/* The parent's own store, init'ed (the lock made) but not yet opened for
 * calls, as httpd's parent before the fork. */
static cond_store *test_parent(apr_pool_t *p, const char *name)
{
    cond_store *s = NULL;
    const char *err = PV->create(&s, test_path(p, name), p);

    if (!CHECK(err == NULL) || !CHECK(PV->init(s, p) == APR_SUCCESS)) {
        return NULL;
    }
    return s;
}

static apr_status_t test_timed_claim(cond_store *s, const char *key,
                                     apr_interval_time_t *took,
                                     apr_pool_t *p)
{
    apr_time_t t = apr_time_now();
    apr_status_t rv = PV->claim(s, key, 0, "W", LEASE, p);

    *took = apr_time_now() - t;
    return rv;
}

/* A write by this process while another process's write holds the lock
 * for hold_ms: it gets want, makes no call of SQLite's busy handler (it
 * slept on the lock), and its wait is within [min_ms, max_ms). */
static void test_wlock_wait(apr_pool_t *p, const char *name, int hold_ms,
                            apr_status_t want, int min_ms, int max_ms)
{
    cond_store *s = test_parent(p, name);
    apr_interval_time_t took;
    apr_uint32_t busy;
    pid_t pid;
    int status;

    if (!s || (pid = test_holder_fork(s, hold_ms)) < 0) {
        return;
    }
    CHECK_RV(PV->child_init(s, p), APR_SUCCESS);
    busy = sq_wlock_busy_waits();
    CHECK_RV(test_timed_claim(s, "/w", &took, p), want);
    CHECK(sq_wlock_busy_waits() == busy);
    CHECK(took >= apr_time_from_msec(min_ms)
          && took < apr_time_from_msec(max_ms));
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status)
          && WEXITSTATUS(status) == 0);
    if (want != APR_SUCCESS) {          /* nothing was written: it can now */
        CHECK_RV(test_timed_claim(s, "/w", &took, p), APR_SUCCESS);
    }
}

/* A writer that finds another process's write in progress sleeps on the
 * lock until that write ends: it never polls SQLite's lock. */
static void test_wlock_sleeps(apr_pool_t *p)
{
    test_wlock_wait(p, "wlock-sleep.db", 400, APR_SUCCESS, 200, 60000);
}

/* A child killed inside its transaction, holding the lock: the next
 * writer takes the lock over at once and its write goes through; the
 * dead child's claim was never committed. */
static void test_wlock_dead_owner(apr_pool_t *p)
{
    cond_store *s = test_parent(p, "wlock-dead.db");
    apr_interval_time_t took;
    apr_uint32_t deaths;
    cond_state st;
    pid_t pid;
    int status;

    if (!s || (pid = test_holder_fork(s, -1)) < 0) {
        return;
    }
    kill(pid, SIGKILL);
    CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status));
    CHECK_RV(PV->child_init(s, p), APR_SUCCESS);
    deaths = sq_wlock_owner_deaths();
    CHECK_RV(test_timed_claim(s, "/w", &took, p), APR_SUCCESS);
    CHECK(sq_wlock_owner_deaths() == deaths + 1);
    CHECK(took < apr_time_from_sec(1));
    CHECK_RV(PV->lookup(s, "/held", &st, p), APR_NOTFOUND);
}

/* A writer waits for the lock no longer than for SQLite's own (2 s):
 * then it gets APR_TIMEUP and writes nothing. */
static void test_wlock_bounded(apr_pool_t *p)
{
    test_wlock_wait(p, "wlock-bound.db", 4000, APR_TIMEUP, 1500, 3500);
}

/* A writer that waited for the lock looks at the store's files after
 * the wait, not before: the -shm cut to nothing while it waited is found
 * and refused, not read through SQLite's mapping (a SIGBUS). */
static void test_wlock_look_after_wait(apr_pool_t *p)
{
    cond_store *s = test_parent(p, "wlock-shm.db");
    char *shm = apr_pstrcat(p, test_path(p, "wlock-shm.db"), "-shm", NULL);
    pid_t holder, waiter;
    int status;

    if (!s || (holder = test_holder_fork(s, 800)) < 0) {
        return;
    }
    fflush(stdout);
    if ((waiter = fork()) == 0) {
        apr_pool_t *cp;
        apr_status_t rv;

        apr_pool_create(&cp, NULL);
        rv = PV->child_init(s, cp);
        if (rv == APR_SUCCESS) {
            rv = PV->claim(s, "/w", 0, "W", LEASE, cp);
        }
        _exit(rv == APR_EGENERAL ? 0 : 1);
    }
    apr_sleep(apr_time_from_msec(250));     /* the waiter is on the lock */
    CHECK(truncate(shm, 0) == 0);
    waitpid(holder, &status, 0);            /* it may die in its commit */
    CHECK(waiter > 0 && waitpid(waiter, &status, 0) == waiter);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (WIFSIGNALED(status)) {
        printf("  the waiter died of signal %d\n", WTERMSIG(status));
    }
}

/* A graceful restart: the parent's configuration pool goes (and with it
 * the parent's view of the lock) while a child of that generation holds
 * the lock and another waits for it. The lock must go on working for
 * them: the waiter sleeps on it, no call of SQLite's busy handler. */
static void test_wlock_restart(apr_pool_t *p)
{
    apr_pool_t *gen;
    cond_store *s = NULL;
    pid_t holder, waiter;
    int status;

    apr_pool_create(&gen, p);
    if (!CHECK(PV->create(&s, test_path(p, "wlock-restart.db"), gen) == NULL)
        || !CHECK(PV->init(s, gen) == APR_SUCCESS)
        || (holder = test_holder_fork(s, 600)) < 0) {
        return;
    }
    fflush(stdout);
    if ((waiter = fork()) == 0) {
        apr_pool_t *cp;
        apr_uint32_t busy;
        apr_status_t rv;

        apr_pool_create(&cp, NULL);
        apr_sleep(apr_time_from_msec(200));     /* after the restart */
        busy = sq_wlock_busy_waits();
        rv = PV->child_init(s, cp);
        if (rv == APR_SUCCESS) {
            rv = PV->claim(s, "/w", 0, "W", LEASE, cp);
        }
        _exit(rv == APR_SUCCESS && sq_wlock_busy_waits() == busy ? 0 : 1);
    }
    apr_pool_destroy(gen);                      /* the parent restarts */
    CHECK(waitpid(holder, &status, 0) == holder && WIFEXITED(status)
          && WEXITSTATUS(status) == 0);
    CHECK(waiter > 0 && waitpid(waiter, &status, 0) == waiter
          && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- Versions in blocks (sqlite_store.c, store_seq_peek) ---- */

#define VB_CHILDREN 4
#define VB_CYCLES   150
#define VB_KEYS     6
#define VB_MAX      ((VB_CHILDREN + 1) * VB_CYCLES)

typedef struct {
    volatile int go;            /* the writers start together */
    int n;                      /* versions recorded */
    int errors;
    int backwards;              /* writes whose version was below one
                                   committed before them */
    apr_int64_t version[VB_MAX];
    int key[VB_MAX];
} test_vb;

static const char *const vb_keys[VB_KEYS] = {
    "/vb/0", "/vb/1", "/vb/2", "/vb/3", "/vb/4", "/vb/5"
};

static void test_vb_record(test_vb *r, int key, apr_int64_t v)
{
    int i = __sync_fetch_and_add(&r->n, 1);

    if (i < VB_MAX) {
        r->version[i] = v;
        r->key[i] = key;
    }
}

/* A claim and a commit that bumps the parent too (two versions in one
 * transaction); a claim that loses a race is tried again. */
static apr_status_t test_vb_commit(cond_store *s, const char *key,
                                   const char *owner,
                                   const apr_array_header_t *rel,
                                   apr_int64_t *v, apr_pool_t *p)
{
    cond_state st;
    apr_status_t rv;
    int tries;

    for (tries = 0; tries < 1000; tries++) {
        if ((rv = PV->lookup(s, key, &st, p)) != APR_SUCCESS) {
            return rv;
        }
        rv = st.claim_owner ? APR_EBUSY
                            : PV->claim(s, key, st.version, owner, LEASE, p);
        if (rv == APR_SUCCESS) {
            return PV->commit(s, key, owner, 1, rel, apr_time_now(), v, p);
        }
        if (rv != APR_EAGAIN && rv != APR_EBUSY) {
            return rv;
        }
        apr_sleep(100);
    }
    return APR_TIMEUP;
}

/* One writer: bumps and commits, between writes that are refused and roll
 * back after their version was peeked at - any of which can be the one
 * that takes the next block. */
static void test_vb_writer(cond_store *s, test_vb *r, int id, apr_pool_t *p)
{
    apr_array_header_t *rel = apr_array_make(p, 1, sizeof(const char *));
    unsigned int seed = (unsigned int)id * 7919u + (unsigned int)getpid();
    int i;

    APR_ARRAY_PUSH(rel, const char *) = "/vb";
    for (i = 0; i < VB_CYCLES && !r->errors; i++) {
        int k = (int)(rand_r(&seed) % VB_KEYS);
        const char *owner = apr_psprintf(p, "%d.%d", id, i);
        apr_int64_t v = 0;
        cond_state st;
        apr_status_t rv;

        if (PV->set_exists(s, vb_keys[k], APR_INT64_C(1) << 60, 1, NULL,
                           apr_time_now(), &v, p) != APR_EAGAIN
            || PV->commit(s, vb_keys[k], "nobody", 1, NULL, apr_time_now(),
                          &v, p) != COND_STORE_NOT_HELD) {
            printf("  writer %d: a refused write was not refused\n", id);
            __sync_fetch_and_add(&r->errors, 1);
            break;
        }
        rv = PV->lookup(s, vb_keys[k], &st, p);
        if (rv == APR_SUCCESS) {
            rv = i % 2 ? PV->bump(s, vb_keys[k], apr_time_now(), &v, p)
                       : test_vb_commit(s, vb_keys[k], owner, rel, &v, p);
        }
        if (rv != APR_SUCCESS) {
            printf("  writer %d: %s\n", id, test_status_name(rv));
            __sync_fetch_and_add(&r->errors, 1);
            break;
        }
        /* whatever was committed since the lookup came before this */
        if (v <= st.version) {
            __sync_fetch_and_add(&r->backwards, 1);
        }
        test_vb_record(r, k, v);
    }
}

/* Forked children of one init, as httpd's: they share the block of
 * versions through the writers' lock. Every version is unique, each key's
 * last write has its highest (the versions follow the commits), and the
 * sequence is past them all by less than a block. With a writer outside
 * the lock beside them (conditionalctl), the versions are still unique. */
static void test_versions_shared(apr_pool_t *p)
{
    const char *path = test_path(p, "vb.db");
    cond_store *s = test_parent(p, "vb.db"), *outside;
    test_vb *r;
    apr_int64_t v, vmax = 0;
    pid_t pids[VB_CHILDREN];
    int i, j, k, round, dup = 0, status, ok = 1;
    apr_status_t rv;

    outside = test_attach(p, path, &rv);
    if (!s || !CHECK(outside && rv == APR_SUCCESS)) {
        return;
    }
    for (k = 0; k < VB_KEYS; k++) {
        CHECK_RV(PV->register_key(outside, vb_keys[k], NULL, apr_time_now(),
                                  &v, p), APR_SUCCESS);
    }
    CHECK_RV(PV->register_key(outside, "/vb", NULL, apr_time_now(), &v, p),
             APR_SUCCESS);
    r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (!CHECK(r != MAP_FAILED)) {
        return;
    }
    for (round = 0; round < 2; round++) {
        memset(r, 0, sizeof(*r));
        fflush(stdout);
        for (i = 0; i < VB_CHILDREN; i++) {
            if ((pids[i] = fork()) == 0) {
                apr_pool_t *cp;

                apr_pool_create(&cp, NULL);
                if (PV->child_init(s, cp) != APR_SUCCESS) {
                    _exit(1);
                }
                while (!r->go) {
                    sched_yield();
                }
                test_vb_writer(s, r, i, cp);
                _exit(0);
            }
        }
        r->go = 1;
        /* the second round: a writer outside the lock at the same time */
        for (i = 0; round == 1 && i < VB_CYCLES; i++) {
            k = i % VB_KEYS;
            if (PV->bump(outside, vb_keys[k], apr_time_now(), &v, p)
                == APR_SUCCESS) {
                test_vb_record(r, k, v);
            }
        }
        for (i = 0; i < VB_CHILDREN; i++) {
            ok &= pids[i] > 0 && waitpid(pids[i], &status, 0) == pids[i]
                  && WIFEXITED(status) && WEXITSTATUS(status) == 0;
        }
        CHECK(ok && r->errors == 0);
        CHECK(round == 1 || r->backwards == 0);
        CHECK(r->n >= VB_CHILDREN * VB_CYCLES && r->n <= VB_MAX);
        for (i = 0, dup = 0; i < r->n && i < VB_MAX; i++) {
            vmax = r->version[i] > vmax ? r->version[i] : vmax;
            for (j = i + 1; j < r->n && j < VB_MAX; j++) {
                dup += r->version[i] == r->version[j];
            }
        }
        CHECK(dup == 0);
        CHECK(test_sequence(path) >= vmax);
        for (k = 0; round == 0 && k < VB_KEYS; k++) {
            apr_int64_t kmax = 0;
            cond_state st;

            for (i = 0; i < r->n && i < VB_MAX; i++) {
                if (r->key[i] == k && r->version[i] > kmax) {
                    kmax = r->version[i];
                }
            }
            CHECK_RV(PV->lookup(outside, vb_keys[k], &st, p), APR_SUCCESS);
            CHECK(st.version == kmax);
        }
        if (round == 0) {
            CHECK(test_sequence(path) - vmax < 64);
        }
    }
    munmap(r, sizeof(*r));
}

/* Run in a process of its own (test_memstatus): a store's init is the
 * first use of SQLite there, as in httpd's parent. Exits 0 when SQLite
 * counted none of the memory a lookup took (its statistics are off), 3
 * when it counted some, 2 when the store did not work. */
static int test_memstatus_probe(const char *dir)
{
    apr_pool_t *p;
    cond_store *s = NULL;
    cond_state st;
    const char *path;
    sqlite3_int64 used;
    int ok;

    apr_initialize();
    apr_pool_create(&p, NULL);
    path = apr_pstrcat(p, dir, "/memstatus.db", NULL);
    ok = cond_sqlite_store.create(&s, path, p) == NULL
         && cond_sqlite_store.init(s, p) == APR_SUCCESS
         && cond_sqlite_store.child_init(s, p) == APR_SUCCESS
         && cond_sqlite_store.lookup(s, "localhost:80/api/docs/1", &st, p)
            == APR_NOTFOUND;
    used = sqlite3_memory_used();
    printf("# memstatus probe: SQLite counts %lld bytes in use\n",
           (long long)used);
    apr_pool_destroy(p);
    apr_terminate();
    return !ok ? 2 : used == 0 ? 0 : 3;
}

/* The store turns SQLite's memory statistics off when its init is the
 * first use of SQLite in the process (store_sqlite_setup): with them on,
 * SQLite takes a process-wide mutex around each of its allocations and
 * frees to count them. This binary turned them on in main() for
 * test_cache_bound, so the probe runs in a fresh process. */
static void test_memstatus(apr_pool_t *p)
{
    pid_t pid;
    int status = -1;

    (void)p;
    fflush(stdout);
    if ((pid = fork()) == 0) {
        execl("/proc/self/exe", "test_store", "--memstatus-probe", tmpdir,
              (char *)NULL);
        _exit(4);
    }
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    if (!CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        printf("  probe status %d\n", status);
    }
}

static const test_target sqlite_target = {
    "sqlite",
    &cond_sqlite_store,
    test_target_open,
    test_target_attach,
    test_target_sequence,
    64                          /* SQ_SEQ_BLOCK */
};

static const test_case sqlite_cases[] = {
    { "create errors", test_create_errors },
    { "init, directory and identity", test_init_identity },
    { "missing and corrupt store", test_missing_corrupt },
    { "read-only store", test_readonly },
    { "locked store", test_locked },
    { "child exit during a call", test_child_exit },
    { "remembered lookups", test_memo },
    { "page cache bound", test_cache_bound },
    { "power cut", test_power_cut },
    { "write transactions", test_write_transactions },
    { "WAL bound", test_wal_bound },
    { "WAL bound with a long reader", test_wal_reader },
    { "database deleted under the store", test_db_deleted },
    { "database replaced under the store", test_db_replaced },
    { "-wal or -shm removed under the store", test_files_removed },
    { "-wal cut short under the store", test_wal_cut },
    { "-wal cut short under a write", test_wal_cut_write },
    { "-wal lost, found late by the generation before", test_straggler },
    { "database restored, restarted before anyone noticed",
      test_restored_unnoticed },
    { "-shm cut short under the store", test_shm_cut },
    { "error text", test_error_text },
    { "writers' lock: a waiting writer sleeps", test_wlock_sleeps },
    { "writers' lock: a holder killed in its transaction",
      test_wlock_dead_owner },
    { "writers' lock: a bounded wait", test_wlock_bounded },
    { "writers' lock: the files looked at after the wait",
      test_wlock_look_after_wait },
    { "writers' lock: a graceful restart under a holder",
      test_wlock_restart },
    { "versions in blocks, shared by the children", test_versions_shared },
    { "SQLite's memory statistics off", test_memstatus },
    { NULL, NULL }
};

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--memstatus-probe") == 0) {
        return test_memstatus_probe(argv[2]);
    }
    /* test_cache_bound counts SQLite's memory with its statistics, which
     * the store's init would turn off (test_memstatus) */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 1);
    sqlite3_initialize();
    return test_main(argc, argv, &sqlite_target, sqlite_cases);
}
