/*
 * test_mmap.c - tests for the mapping VFS (sqlite_mmap.c) on real SQLite
 * database files in WAL mode, as the store uses them.
 *
 * What is checked: pages really come from one mapping per file per
 * process (read off /proc/self/smaps), what is read through it is
 * what another process committed while the file grew, shrank and grew
 * again, a replaced file is never read through the old file's mapping,
 * closing a connection never drops the locks of the others, and a file
 * cut short from outside SQLite is reported corrupt, not read past its
 * end. "test_mmap default" runs the same checks on SQLite's own VFS and
 * mmap, to see the one-mapping checks fail. Prints every failing check
 * and a last line "N passed, M failed".
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "sqlite_mmap.h"

#define MMAP_SIZE "1073741824"

static int passed, failed;
static char tmpdir[] = "/tmp/test_mmap.XXXXXX";

static int check(int ok, int line, const char *what)
{
    if (ok) {
        passed++;
    }
    else {
        failed++;
        printf("FAIL line %d: %s\n", line, what);
        fflush(stdout);
    }
    return ok;
}

#define CHECK(cond) check((cond) != 0, __LINE__, #cond)

static char *path_of(const char *name)
{
    static char buf[4][256];
    static int i;
    char *p = buf[i++ % 4];

    snprintf(p, sizeof(buf[0]), "%s/%s", tmpdir, name);
    return p;
}

/* A connection through the mapping VFS (vfs NULL: the default one). */
static sqlite3 *open_db(const char *path, const char *vfs, int mmap)
{
    sqlite3 *db = NULL;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                        vfs) != SQLITE_OK) {
        printf("  open %s: %s\n", path, db ? sqlite3_errmsg(db) : "?");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 2000);
    sqlite3_exec(db, mmap ? "PRAGMA mmap_size=" MMAP_SIZE
                          : "PRAGMA mmap_size=0", NULL, NULL, NULL);
    return db;
}

static int exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);

    if (rc != SQLITE_OK) {
        printf("  %s: %s\n", sql, err ? err : "?");
    }
    sqlite3_free(err);
    return rc;
}

/* The first column of the first row as an integer, -1 on error. */
static sqlite3_int64 query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    sqlite3_int64 v = -1;

    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        printf("  %s: %s\n", sql, sqlite3_errmsg(db));
        return -1;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

/* Rows k000000.. with 200-byte values tagged with gen: rows from..to-1. */
static int fill(sqlite3 *db, int from, int to, int gen)
{
    char sql[256];

    snprintf(sql, sizeof(sql),
             "WITH RECURSIVE n(i) AS (SELECT %d UNION ALL SELECT i + 1 FROM n "
             "WHERE i < %d) INSERT OR REPLACE INTO t (k, gen, v) "
             "SELECT printf('k%%06d', i), %d, randomblob(200) FROM n",
             from, to - 1, gen);
    return exec(db, "BEGIN") == SQLITE_OK && exec(db, sql) == SQLITE_OK
           && exec(db, "COMMIT") == SQLITE_OK;
}

/* A WAL database of n rows, checkpointed into the file. */
static int make_db(const char *path, int n, int gen)
{
    sqlite3 *db = open_db(path, NULL, 0);
    int ok = db
             && exec(db, "PRAGMA journal_mode=WAL") == SQLITE_OK
             && exec(db, "CREATE TABLE t (k TEXT PRIMARY KEY, gen INTEGER, "
                     "v BLOB) WITHOUT ROWID") == SQLITE_OK
             && fill(db, 0, n, gen)
             && exec(db, "PRAGMA wal_checkpoint(TRUNCATE)") == SQLITE_OK;

    sqlite3_close(db);
    return ok;
}

/* Mappings of path in this process: how many, and their resident KiB. */
static int mappings(const char *path, long *rss_kib)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[1024];
    int n = 0, in = 0;

    *rss_kib = 0;
    if (!f) {
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        char *name = strchr(line, '/');
        long kib;

        if (line[0] >= '0' && line[0] <= 'f' && strchr(line, '-')
            && strchr(line, '-') < strchr(line, ' ')) {
            /* "start-end perms offset dev inode [path]" */
            in = name && !strncmp(name, path, strlen(path))
                 && (name[strlen(path)] == '\n'
                     || name[strlen(path)] == ' ');
            n += in;
        }
        else if (in && sscanf(line, "Rss: %ld kB", &kib) == 1) {
            *rss_kib += kib;
        }
    }
    fclose(f);
    return n;
}

static long file_kib(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (long)(st.st_size / 1024) : -1;
}

/* ------------------------------------------------------------------ */

static void test_one_mapping(const char *vfs)
{
    const char *path = path_of("one.db");
    sqlite3 *db[4];
    long rss = 0, size;
    int i, n;

    if (!CHECK(make_db(path, 20000, 1))) {
        return;
    }
    size = file_kib(path);
    for (i = 0; i < 4; i++) {
        db[i] = open_db(path, vfs, 1);
        CHECK(db[i] != NULL);
        CHECK(query_int(db[i], "SELECT count(*) FROM t WHERE gen = 1 "
                        "AND length(v) = 200") == 20000);
    }
    n = mappings(path, &rss);
    printf("# %d connections: %d mapping(s) of the file, %ld KiB resident "
           "(file %ld KiB)\n", i, n, rss, size);
    CHECK(n == 1);
    /* the scan's pages were read through it, not copied */
    CHECK(rss > size / 2 && rss <= size + 4);
    /* what the pragma reports is what the VFS was told */
    CHECK(query_int(db[0], "PRAGMA mmap_size") == 1073741824);
    for (i = 0; i < 4; i++) {
        sqlite3_close(db[i]);
    }
    CHECK(mappings(path, &rss) == 0);

    /* mmap_size=0 reads as usual: no mapping at all */
    db[0] = open_db(path, vfs, 0);
    CHECK(query_int(db[0], "SELECT count(*) FROM t") == 20000);
    CHECK(mappings(path, &rss) == 0);
    sqlite3_close(db[0]);
}

/* Run this program again, as "test_mmap MODE PATH [SQL]", in another
 * process: a fresh program, not a fork, which would inherit this process's
 * SQLite lock bookkeeping. Returns its wait status, -1 when it did not run. */
static int run_self(const char *mode, const char *path, const char *sql)
{
    pid_t pid;
    int status;

    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        execl("/proc/self/exe", "test_mmap", mode, path, sql, (char *)NULL);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        return -1;
    }
    return status;
}

/* Run sql in another process through the default VFS; returns the SQLite
 * result code of the script, -1 when it did not exit normally. */
static int in_child(const char *path, const char *sql)
{
    int status = run_self("--child", path, sql);

    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Cut the file to a quarter from outside SQLite while a connection that
 * has read all of it stays open, and read again. A commit left in the WAL
 * keeps the database's size in the WAL-index, so SQLite still believes in
 * the pages past the cut. Exits 0 when the second read did not see the old
 * rows (an error, not a crash). */
static int cut_main(const char *path)
{
    sqlite3 *db = open_db(path, smap_vfs(), 1);
    sqlite3_int64 n = -1;
    struct stat st;

    if (db && exec(db, "UPDATE t SET gen = 2 WHERE k = 'k000001'")
              == SQLITE_OK) {
        n = query_int(db, "SELECT count(*) FROM t WHERE length(v) = 200");
    }
    if (n <= 0 || stat(path, &st) != 0 || truncate(path, st.st_size / 4)) {
        return 2;
    }
    n = query_int(db, "SELECT count(*) FROM t WHERE length(v) = 200");
    printf("# after the cut: count %lld, %s\n", (long long)n,
           sqlite3_errmsg(db));
    sqlite3_close(db);
    return n == -1 ? 0 : 3;
}

static int child_main(const char *path, const char *sql)
{
    sqlite3 *db = open_db(path, NULL, 0);
    int rc = db ? sqlite3_exec(db, sql, NULL, NULL, NULL) : SQLITE_ERROR;

    sqlite3_close(db);
    return rc & 0xff;
}

/* The first column of the first row as text, "" when none. */
static const char *query_text(sqlite3 *db, const char *sql)
{
    static char buf[64];
    sqlite3_stmt *st;

    buf[0] = '\0';
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        printf("  %s: %s\n", sql, sqlite3_errmsg(db));
        return buf;
    }
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
        snprintf(buf, sizeof(buf), "%s", sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    return buf;
}

static void test_coherent(const char *vfs)
{
    const char *path = path_of("grow.db");
    sqlite3 *r;
    long rss, before, after;

    if (!CHECK(make_db(path, 5000, 1)) || !CHECK((r = open_db(path, vfs, 1)))) {
        return;
    }
    CHECK(query_int(r, "SELECT sum(gen) FROM t") == 5000);
    mappings(path, &rss);
    before = file_kib(path);

    /* Another process rewrites every row and grows the file to ten times
     * its size; the checkpoint puts the new pages in the file itself. */
    CHECK(in_child(path, "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL "
                   "SELECT i + 1 FROM n WHERE i < 49999) INSERT OR REPLACE "
                   "INTO t SELECT printf('k%06d', i), 2, randomblob(200) "
                   "FROM n; PRAGMA wal_checkpoint(TRUNCATE)") == SQLITE_OK);
    after = file_kib(path);
    CHECK(after > before * 5);
    CHECK(query_int(r, "SELECT count(*) FROM t WHERE gen = 2") == 50000);
    CHECK(query_int(r, "SELECT sum(gen) FROM t") == 100000);
    {
        long rss2;

        CHECK(mappings(path, &rss2) == 1);
        printf("# grown from %ld to %ld KiB: %ld KiB resident\n", before,
               after, rss2);
        CHECK(rss2 > after / 2);    /* the new pages came through it too */
    }

    /* A reader inside a transaction keeps its snapshot while a writer
     * commits; the checkpoint cannot overwrite what it reads. */
    CHECK(exec(r, "BEGIN") == SQLITE_OK);
    CHECK(query_int(r, "SELECT gen FROM t WHERE k = 'k000042'") == 2);
    CHECK(in_child(path, "UPDATE t SET gen = 3; "
                   "PRAGMA wal_checkpoint(PASSIVE)") == SQLITE_OK);
    CHECK(query_int(r, "SELECT sum(gen) FROM t") == 100000);
    CHECK(exec(r, "COMMIT") == SQLITE_OK);
    CHECK(query_int(r, "SELECT sum(gen) FROM t") == 150000);

    /* Shrink the file to a fraction: nothing past its new end is read
     * (that would be SIGBUS, killing this test). */
    CHECK(in_child(path, "DELETE FROM t WHERE k >= 'k001000'; VACUUM; "
                   "PRAGMA wal_checkpoint(TRUNCATE)") == SQLITE_OK);
    CHECK(file_kib(path) < after / 10);
    CHECK(query_int(r, "SELECT count(*) FROM t") == 1000);
    CHECK(query_int(r, "SELECT sum(gen) FROM t") == 3000);
    CHECK(!strcmp(query_text(r, "PRAGMA integrity_check"), "ok"));

    /* And grow it again over the pages that were cut off. */
    CHECK(in_child(path, "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL "
                   "SELECT i + 1 FROM n WHERE i < 29999) INSERT OR REPLACE "
                   "INTO t SELECT printf('k%06d', i), 4, randomblob(200) "
                   "FROM n; PRAGMA wal_checkpoint(TRUNCATE)") == SQLITE_OK);
    CHECK(query_int(r, "SELECT sum(gen) FROM t") == 120000);
    CHECK(!strcmp(query_text(r, "PRAGMA integrity_check"), "ok"));
    CHECK(mappings(path, &rss) == 1);
    sqlite3_close(r);
}

static void test_replaced(const char *vfs)
{
    const char *path = path_of("swap.db");
    const char *other = path_of("swap-new.db");
    char wal[300], shm[300];
    sqlite3 *old, *cur;
    long rss;

    if (!CHECK(make_db(path, 3000, 1)) || !CHECK(make_db(other, 4000, 5))
        || !CHECK((old = open_db(path, vfs, 1)))) {
        return;
    }
    CHECK(query_int(old, "SELECT sum(gen) FROM t") == 3000);
    /* Replace the file (and its WAL and index) under the open connection */
    snprintf(wal, sizeof(wal), "%s-wal", other);
    snprintf(shm, sizeof(shm), "%s-shm", other);
    unlink(wal);
    unlink(shm);
    CHECK(rename(other, path) == 0);
    cur = open_db(path, vfs, 1);
    CHECK(cur != NULL);
    CHECK(query_int(cur, "SELECT sum(gen) FROM t") == 20000);
    CHECK(query_int(cur, "SELECT count(*) FROM t") == 4000);
    /* the old connection still reads its own file, not the new mapping */
    CHECK(query_int(old, "SELECT count(*) FROM t") == 3000);
    CHECK(query_int(old, "SELECT sum(gen) FROM t") == 3000);
    sqlite3_close(cur);
    sqlite3_close(old);
    CHECK(mappings(path, &rss) == 0);
}

static void test_locks_kept(const char *vfs)
{
    const char *path = path_of("locks.db");
    sqlite3 *a, *b;

    if (!CHECK(make_db(path, 100, 1)) || !CHECK((a = open_db(path, vfs, 1)))) {
        return;
    }
    /* a holds its shared lock on the file as long as it is open in WAL
     * mode, so no other process can take the database out of WAL */
    CHECK(query_int(a, "SELECT count(*) FROM t") == 100);
    b = open_db(path, vfs, 1);
    CHECK(query_int(b, "SELECT count(*) FROM t") == 100);
    sqlite3_close(b);
    CHECK(in_child(path, "PRAGMA journal_mode=DELETE") == SQLITE_BUSY);
    CHECK(!strcmp(query_text(a, "PRAGMA journal_mode"), "wal"));
    sqlite3_close(a);

    /* the same for a connection of the default VFS, once the last one of
     * the mapping VFS has closed */
    a = open_db(path, NULL, 0);
    CHECK(query_int(a, "SELECT count(*) FROM t") == 100);
    b = open_db(path, vfs, 1);
    CHECK(query_int(b, "SELECT count(*) FROM t") == 100);
    sqlite3_close(b);
    CHECK(in_child(path, "PRAGMA journal_mode=DELETE") == SQLITE_BUSY);
    sqlite3_close(a);
    /* with no one left, the switch goes through */
    CHECK(in_child(path, "PRAGMA journal_mode=DELETE") == SQLITE_OK);
}

static void test_cut_short(void)
{
    const char *path = path_of("cut.db");
    int status;

    if (!CHECK(make_db(path, 20000, 1))) {
        return;
    }
    status = run_self("--cut", path, NULL);
    CHECK(status != -1);
    if (status != -1 && WIFSIGNALED(status)) {
        printf("# the reader died of signal %d\n", WTERMSIG(status));
    }
    CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(int argc, char **argv)
{
    /* "default" runs the same tests on SQLite's own VFS, to see them fail */
    const char *vfs = argc > 1 && !strcmp(argv[1], "default") ? NULL
                                                              : smap_vfs();
    char cmd[300];

    if (argc == 4 && !strcmp(argv[1], "--child")) {
        return child_main(argv[2], argv[3]);
    }
    if (argc == 3 && !strcmp(argv[1], "--cut")) {
        return cut_main(argv[2]);
    }
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    if (argc <= 1 && !CHECK(vfs != NULL)) {
        return 1;
    }
    printf("# one mapping per process\n");
    test_one_mapping(vfs);
    printf("# coherent with another process's writes\n");
    test_coherent(vfs);
    printf("# a replaced file\n");
    test_replaced(vfs);
    printf("# locks kept when a connection closes\n");
    test_locks_kept(vfs);
    printf("# a file cut short from outside SQLite\n");
    test_cut_short();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) {
        printf("note: could not remove %s\n", tmpdir);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
