/*
 * test_powercut.c - power cuts at the fsync boundary, through a SQLite VFS
 * of this test's own that keeps, beside every file, a copy of it as it was
 * at its last xSync ("NAME.durable"). A cut puts every file back to that
 * copy (a file never synced is gone) and removes -shm: all that was
 * written since the last fsync is lost, as it may be when the power goes.
 *
 * unit/test_store.c ("power cut") takes its sync point by hand, after a
 * checkpoint; here the store's own fsyncs are the only sync points, so the
 * durability of what the store must make durable is what is tested: the
 * version reservation, the boot record, the removal of the clean-stop
 * marker. After the cut and a new boot, no version number may be handed
 * out again and no identity from before may come back.
 *
 * The VFS is registered as the default before the store's first use, so
 * the store's own mmap VFS (sqlite_mmap.c) wraps it. Exits non-zero when
 * anything failed.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include <sqlite3.h>

#include "store.h"

static int failures, passes;

#define CHECK(cond) check((cond), __LINE__, #cond)

static void check(int ok, int line, const char *what)
{
    if (ok) {
        passes++;
    }
    else {
        failures++;
        printf("FAIL powercut line %d: %s\n", line, what);
    }
}

/* ------------------------------------------------------------------ */
/* The VFS: the default one, plus a copy of each file at its last sync. */

typedef struct {
    sqlite3_file base;
    char path[512];
    sqlite3_file *real;           /* right after this struct */
} pc_file;

static sqlite3_vfs *pc_real;
static sqlite3_vfs pc_vfs;
static sqlite3_io_methods pc_io;

#define PC_REAL(f) (((pc_file *)(f))->real)

static void pc_durable_name(char *buf, size_t len, const char *path)
{
    snprintf(buf, len, "%s.durable", path);
}

/* Copy path to its durable twin, through a temporary file and rename, so
 * the twin is always a whole copy. */
static int pc_copy_durable(const char *path)
{
    char to[700], tmp[720], buf[65536];
    int in, out, ok = 1;
    ssize_t n;

    pc_durable_name(to, sizeof(to), path);
    snprintf(tmp, sizeof(tmp), "%s.tmp", to);
    in = open(path, O_RDONLY);
    if (in < 0) {
        return SQLITE_IOERR_FSYNC;
    }
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out < 0) {
        close(in);
        return SQLITE_IOERR_FSYNC;
    }
    while ((n = read(in, buf, sizeof(buf))) > 0) {
        if (write(out, buf, (size_t)n) != n) {
            ok = 0;
            break;
        }
    }
    ok = ok && n == 0;
    close(in);
    close(out);
    if (!ok || rename(tmp, to) != 0) {
        unlink(tmp);
        return SQLITE_IOERR_FSYNC;
    }
    return SQLITE_OK;
}

static int pc_close(sqlite3_file *f)
{
    return PC_REAL(f)->pMethods->xClose(PC_REAL(f));
}
static int pc_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{
    return PC_REAL(f)->pMethods->xRead(PC_REAL(f), b, n, o);
}
static int pc_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
    return PC_REAL(f)->pMethods->xWrite(PC_REAL(f), b, n, o);
}
static int pc_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return PC_REAL(f)->pMethods->xTruncate(PC_REAL(f), size);
}
/* The one method that does anything of its own. */
static int pc_sync(sqlite3_file *f, int flags)
{
    int rc = PC_REAL(f)->pMethods->xSync(PC_REAL(f), flags);

    if (rc == SQLITE_OK && ((pc_file *)f)->path[0]) {
        rc = pc_copy_durable(((pc_file *)f)->path);
    }
    return rc;
}
static int pc_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return PC_REAL(f)->pMethods->xFileSize(PC_REAL(f), size);
}
static int pc_lock(sqlite3_file *f, int l)
{
    return PC_REAL(f)->pMethods->xLock(PC_REAL(f), l);
}
static int pc_unlock(sqlite3_file *f, int l)
{
    return PC_REAL(f)->pMethods->xUnlock(PC_REAL(f), l);
}
static int pc_check_reserved(sqlite3_file *f, int *out)
{
    return PC_REAL(f)->pMethods->xCheckReservedLock(PC_REAL(f), out);
}
static int pc_file_control(sqlite3_file *f, int op, void *arg)
{
    return PC_REAL(f)->pMethods->xFileControl(PC_REAL(f), op, arg);
}
static int pc_sector_size(sqlite3_file *f)
{
    return PC_REAL(f)->pMethods->xSectorSize(PC_REAL(f));
}
static int pc_device(sqlite3_file *f)
{
    return PC_REAL(f)->pMethods->xDeviceCharacteristics(PC_REAL(f));
}
static int pc_shm_map(sqlite3_file *f, int pg, int sz, int ext,
                      void volatile **pp)
{
    return PC_REAL(f)->pMethods->xShmMap(PC_REAL(f), pg, sz, ext, pp);
}
static int pc_shm_lock(sqlite3_file *f, int o, int n, int flags)
{
    return PC_REAL(f)->pMethods->xShmLock(PC_REAL(f), o, n, flags);
}
static void pc_shm_barrier(sqlite3_file *f)
{
    PC_REAL(f)->pMethods->xShmBarrier(PC_REAL(f));
}
static int pc_shm_unmap(sqlite3_file *f, int del)
{
    return PC_REAL(f)->pMethods->xShmUnmap(PC_REAL(f), del);
}
static int pc_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **pp)
{
    return PC_REAL(f)->pMethods->xFetch(PC_REAL(f), o, n, pp);
}
static int pc_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p)
{
    return PC_REAL(f)->pMethods->xUnfetch(PC_REAL(f), o, p);
}

static const sqlite3_io_methods pc_io_methods = {
    3, pc_close, pc_read, pc_write, pc_truncate, pc_sync, pc_file_size,
    pc_lock, pc_unlock, pc_check_reserved, pc_file_control, pc_sector_size,
    pc_device, pc_shm_map, pc_shm_lock, pc_shm_barrier, pc_shm_unmap,
    pc_fetch, pc_unfetch
};

static int pc_open(sqlite3_vfs *v, const char *name, sqlite3_file *f,
                   int flags, int *out)
{
    pc_file *pf = (pc_file *)f;
    int rc;

    (void)v;
    memset(pf, 0, sizeof(*pf));
    pf->real = (sqlite3_file *)(pf + 1);
    rc = pc_real->xOpen(pc_real, name, pf->real, flags, out);
    if (rc != SQLITE_OK) {
        return rc;
    }
    /* The files that are on disk across a reboot (not -shm, which SQLite
     * opens through xShmMap, nor temporary files). */
    if (name && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL
                          | SQLITE_OPEN_MAIN_JOURNAL))) {
        apr_cpystrn(pf->path, name, sizeof(pf->path));
    }
    pc_io = pc_io_methods;
    pc_io.iVersion = pf->real->pMethods->iVersion;
    pf->base.pMethods = &pc_io;
    return SQLITE_OK;
}

/* A file SQLite deletes is gone from the disk too (its durable copy). */
static int pc_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
    char durable[700];

    (void)v;
    pc_durable_name(durable, sizeof(durable), name);
    unlink(durable);
    return pc_real->xDelete(pc_real, name, sync_dir);
}

static void pc_register(void)
{
    pc_real = sqlite3_vfs_find(NULL);
    pc_vfs = *pc_real;
    pc_vfs.zName = "powercut-test";
    pc_vfs.szOsFile = (int)sizeof(pc_file) + pc_real->szOsFile;
    pc_vfs.xOpen = pc_open;
    pc_vfs.xDelete = pc_delete;
    sqlite3_vfs_register(&pc_vfs, 1);
}

/* The power is cut: each file is as it was at its last sync, or gone. */
static void pc_cut(const char *path)
{
    static const char *const suffix[] = { "", "-wal", "-journal" };
    char file[600], durable[700];
    size_t i;

    for (i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        snprintf(file, sizeof(file), "%s%s", path, suffix[i]);
        pc_durable_name(durable, sizeof(durable), file);
        if (rename(durable, file) != 0) {
            unlink(file);
        }
    }
    snprintf(file, sizeof(file), "%s-shm", path);
    unlink(file);
}

/* ------------------------------------------------------------------ */

typedef struct {
    char identity[64];
    apr_int64_t highest;          /* the highest version handed out */
    int ok;
} pc_seen;

/* In a child on boot "boot" (init too when init is set, as httpd's parent
 * does before forking): hand out versions, then die without closing
 * anything. */
static void pc_write_then_die(const char *path, const char *boot, int init,
                              int writes, pc_seen *out)
{
    pid_t pid = fork();
    apr_pool_t *p;
    cond_store *s = NULL;
    apr_int64_t v = 0;
    int i;

    if (pid != 0) {
        waitpid(pid, NULL, 0);
        return;
    }
    setenv("CONDITIONAL_BOOT_ID", boot, 1);
    apr_pool_create(&p, NULL);
    if (cond_sqlite_store.create(&s, path, p)
        || (init && cond_sqlite_store.init(s, p) != APR_SUCCESS)
        || cond_sqlite_store.child_init(s, p) != APR_SUCCESS) {
        _exit(1);
    }
    apr_cpystrn(out->identity, cond_sqlite_store.identity(s, p),
                sizeof(out->identity));
    for (i = 0; i < writes; i++) {
        if (cond_sqlite_store.bump(s, "/k", apr_time_now(), &v, p)
            != APR_SUCCESS) {
            _exit(1);
        }
        out->highest = v;
    }
    out->ok = 1;
    _exit(0);               /* no close, no checkpoint: the power goes */
}

/* Run fn in a child process (so that no connection, lock or mapping of
 * the store stays in this one); its result. */
static int pc_in_child(int (*fn)(const char *, const char *, pc_seen *),
                       const char *path, const char *boot, pc_seen *out)
{
    pid_t pid = fork();
    int status;

    if (pid == 0) {
        setenv("CONDITIONAL_BOOT_ID", boot, 1);
        _exit(fn(path, boot, out) ? 0 : 1);
    }
    return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status)
           && WEXITSTATUS(status) == 0;
}

/* After the power is back: httpd starts (init, then a child); the store's
 * identity and the next version it hands out. */
static int pc_after(const char *path, const char *boot, pc_seen *out)
{
    apr_pool_t *p;
    cond_store *s = NULL;

    (void)boot;
    apr_pool_create(&p, NULL);
    if (cond_sqlite_store.create(&s, path, p)
        || cond_sqlite_store.init(s, p) != APR_SUCCESS
        || cond_sqlite_store.child_init(s, p) != APR_SUCCESS
        || cond_sqlite_store.bump(s, "/k", apr_time_now(), &out->highest, p)
           != APR_SUCCESS) {
        return 0;
    }
    apr_cpystrn(out->identity, cond_sqlite_store.identity(s, p),
                sizeof(out->identity));
    apr_pool_destroy(p);
    return 1;
}

/* httpd stops for good: the clean-stop marker. */
static int pc_clean_stop(const char *path, const char *boot, pc_seen *out)
{
    apr_pool_t *p;
    cond_store *s = NULL;
    int ok;

    (void)boot;
    (void)out;
    apr_pool_create(&p, NULL);
    ok = !cond_sqlite_store.create(&s, path, p)
         && cond_sqlite_store.shutdown(s, p) == APR_SUCCESS;
    apr_pool_destroy(p);
    return ok;
}

int main(void)
{
    char dir[] = "/tmp/cond-powercut.XXXXXX", *cmd;
    pc_seen *seen = mmap(NULL, 2 * sizeof(*seen), PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pc_seen *after = seen + 1;
    const char *path;
    apr_pool_t *p;

    apr_initialize();
    apr_pool_create(&p, NULL);
    pc_register();
    if (seen == MAP_FAILED || !mkdtemp(dir)) {
        printf("FAIL powercut: no mmap or temporary directory\n");
        return 1;
    }
    path = apr_pstrcat(p, dir, "/cut.db", NULL);

    /* 1. A new store hands out versions and the power goes before any
     * checkpoint: only the store's own fsyncs (the boot record, the
     * version reservation) are on disk. */
    memset(seen, 0, 2 * sizeof(*seen));
    pc_write_then_die(path, "boot-A", 1, 20, seen);
    CHECK(seen->ok && seen->highest > 0);
    pc_cut(path);
    CHECK(pc_in_child(pc_after, path, "boot-B", after));
    CHECK(after->highest > seen->highest);
    CHECK(strcmp(after->identity, seen->identity) != 0);
    printf("  1: versions up to %" APR_INT64_T_FMT " before the cut, %"
           APR_INT64_T_FMT " after it\n", seen->highest, after->highest);

    /* 2. A clean stop, then a process that did not run init (another
     * httpd's child, conditionalctl) writes, and the power goes: the
     * marker's removal must have reached the disk before its writes, or
     * the cut brings the marker back and the old identity with it. */
    CHECK(pc_in_child(pc_clean_stop, path, "boot-B", NULL));
    memset(seen, 0, 2 * sizeof(*seen));
    pc_write_then_die(path, "boot-B", 0, 20, seen);
    CHECK(seen->ok);
    pc_cut(path);
    CHECK(pc_in_child(pc_after, path, "boot-C", after));
    CHECK(strcmp(after->identity, seen->identity) != 0);
    CHECK(after->highest > seen->highest);
    printf("  2: versions up to %" APR_INT64_T_FMT " before the cut, %"
           APR_INT64_T_FMT " after it\n", seen->highest, after->highest);

    /* 3. A clean stop and a reboot with nothing written in between: the
     * identity stays (every client keeps its cache). */
    apr_cpystrn(seen->identity, after->identity, sizeof(seen->identity));
    CHECK(pc_in_child(pc_clean_stop, path, "boot-C", NULL));
    pc_cut(path);
    CHECK(pc_in_child(pc_after, path, "boot-D", after));
    CHECK(strcmp(after->identity, seen->identity) == 0);

    cmd = apr_psprintf(p, "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        printf("note: %s failed\n", cmd);
    }
    printf("powercut: %d passed, %d failed\n", passes, failures);
    apr_terminate();
    return failures ? 1 : 0;
}
