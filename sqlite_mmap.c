/*
 * sqlite_mmap.c - one read-only mapping of each database file per process
 * (see sqlite_mmap.h). The VFS wraps the default one; only xOpen, xClose,
 * xFetch, xUnfetch, xFileSize, xShmLock and the mmap-size file control of
 * main database files do anything of their own.
 *
 * Why serving pages from a shared mapping is safe:
 *
 * - The mapping is MAP_SHARED and PROT_READ. On Linux it and pwrite() go
 *   through the same page cache, so it shows every page any process has
 *   written (a checkpoint); SQLite never writes through it.
 * - SQLite asks for a mapped page only inside a read transaction, only for
 *   a page that is not in the WAL, and keeps the pointer until xUnfetch:
 *   the contract of its own unix VFS. The mapping outlives every such
 *   pointer: it is unmapped only when the last connection of this process
 *   on the file has closed.
 * - Touching a mapped page past the end of the file raises SIGBUS, so a
 *   page is served only when it lies within the file size last seen. That
 *   size is read again (fstat, or SQLite's own xFileSize) when a page lies
 *   beyond it, after the pager says the database may have changed
 *   (xUnfetch of no page: where SQLite's own VFS remaps) and at the start
 *   of every read transaction.
 *   A WAL database shrinks only in a checkpoint that every reader has
 *   caught up with, and no reader then needs a page past the new end. The
 *   last check is for a file cut short from outside SQLite, which SQLite's
 *   own mapping would touch past the end: here only a cut that lands
 *   within one read transaction can.
 * - The mapping is made from a descriptor of our own. Closing any
 *   descriptor of a file drops every POSIX lock the process holds on it,
 *   SQLite's included, so these descriptors are never closed: one per
 *   database file the process ever opened through this VFS, reused when it
 *   is opened again.
 * - That descriptor must be of the file the connection has open. It is
 *   matched by device and inode with stat() of the path, and the
 *   connection confirms with SQLITE_FCNTL_HAS_MOVED that the path still
 *   names its own file. A connection that fails either check reads as
 *   usual, through the default VFS.
 */

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "sqlite_mmap.h"

#define SMAP_NAME "conditional-mmap"

/* One database file (device and inode), kept for the life of the process. */
typedef struct smap_region {
    struct smap_region *next;
    dev_t dev;
    ino_t ino;
    int fd;                     /* never closed, see above */
    int users;                  /* connections open on the file */
    int failed;                 /* mmap refused: stop asking until unused */
    unsigned char *base;        /* NULL: not mapped */
    sqlite3_int64 len;          /* bytes mapped */
} smap_region;

typedef struct {
    sqlite3_file base;          /* pMethods: one of smap_io, or NULL */
    sqlite3_file *real;         /* the default VFS's file, right after us */
    int main;                   /* a main database file */
    int stale;                  /* check the file size before serving */
    sqlite3_int64 size;         /* the file's size as this file last saw it */
    smap_region *map;           /* NULL: read as usual */
    sqlite3_int64 limit;        /* the pager's mmap size; 0: no fetches */
} smap_file;

static pthread_mutex_t smap_lock = PTHREAD_MUTEX_INITIALIZER;
static smap_region *smap_regions;       /* under smap_lock */
static pthread_once_t smap_once = PTHREAD_ONCE_INIT;
static sqlite3_vfs smap_vfs_def;
static sqlite3_io_methods smap_io[3];  /* by the real file's iVersion */
static int smap_registered;

#define REAL(file) (((smap_file *)(file))->real)
#define REAL_VFS(vfs) ((sqlite3_vfs *)(vfs)->pAppData)

/* ------------------------------------------------------------------ */
/* Regions                                                              */

static int smap_same(const smap_region *r, const struct stat *st)
{
    return r->dev == st->st_dev && r->ino == st->st_ino;
}

/* The region of the file real has open at path, with a user added; NULL
 * when it cannot be told apart from another file. */
static smap_region *smap_attach(sqlite3_file *real, const char *path)
{
    struct stat st, fst;
    smap_region *r;
    int moved = 1;

    if (stat(path, &st) != 0) {
        return NULL;
    }
    pthread_mutex_lock(&smap_lock);
    for (r = smap_regions; r && !smap_same(r, &st); r = r->next) {
    }
    if (!r && (r = calloc(1, sizeof(*r))) != NULL) {
        r->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (r->fd < 0 || fstat(r->fd, &fst) != 0) {
            if (r->fd >= 0) {
                /* No inode to file it under and no way to close it */
                r->dev = (dev_t)-1;
                r->ino = (ino_t)-1;
                r->next = smap_regions;
                smap_regions = r;
            }
            else {
                free(r);
            }
            r = NULL;
        }
        else {
            r->dev = fst.st_dev;
            r->ino = fst.st_ino;
            r->next = smap_regions;
            smap_regions = r;
            if (!smap_same(r, &st)) {
                r = NULL;       /* the path changed between stat and open */
            }
        }
    }
    if (r && (real->pMethods->xFileControl(real, SQLITE_FCNTL_HAS_MOVED,
                                           &moved) != SQLITE_OK
              || moved || stat(path, &st) != 0 || !smap_same(r, &st))) {
        r = NULL;
    }
    if (r) {
        r->users++;
    }
    pthread_mutex_unlock(&smap_lock);
    return r;
}

static void smap_detach(smap_region *r)
{
    pthread_mutex_lock(&smap_lock);
    if (--r->users == 0) {
        if (r->base) {
            munmap(r->base, (size_t)r->len);
            __atomic_store_n(&r->base, NULL, __ATOMIC_RELEASE);
        }
        r->failed = 0;
    }
    pthread_mutex_unlock(&smap_lock);
}

/* Map len bytes once; later callers get the first mapping. */
static unsigned char *smap_map(smap_region *r, sqlite3_int64 len)
{
    unsigned char *base;

    pthread_mutex_lock(&smap_lock);
    base = r->base;
    if (!base && !r->failed) {
        void *p = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, r->fd, 0);

        if (p == MAP_FAILED) {
            r->failed = 1;
        }
        else {
            base = p;
            r->len = len;
            __atomic_store_n(&r->base, base, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&smap_lock);
    return base;
}

/* The file's size now. Each connection keeps its own: a shared one could
 * be overwritten with an older, larger reading by a slower thread. */
static sqlite3_int64 smap_size(smap_file *f)
{
    struct stat st;

    f->size = fstat(f->map->fd, &st) == 0 ? (sqlite3_int64)st.st_size : 0;
    return f->size;
}

/* ------------------------------------------------------------------ */
/* File methods                                                         */

static int smap_close(sqlite3_file *file)
{
    smap_file *f = (smap_file *)file;
    int rc = f->real->pMethods->xClose(f->real);

    if (f->map) {
        smap_detach(f->map);
        f->map = NULL;
    }
    return rc;
}

static int smap_fetch(sqlite3_file *file, sqlite3_int64 off, int amt,
                      void **pp)
{
    smap_file *f = (smap_file *)file;
    smap_region *r = f->map;
    sqlite3_int64 end = off + amt;
    unsigned char *base;

    if (!f->main) {
        return f->real->pMethods->xFetch(f->real, off, amt, pp);
    }
    *pp = NULL;
    if (!r || end > f->limit) {
        return SQLITE_OK;
    }
    base = __atomic_load_n(&r->base, __ATOMIC_ACQUIRE);
    if (!base && !(base = smap_map(r, f->limit))) {
        return SQLITE_OK;
    }
    if (end > r->len) {
        return SQLITE_OK;
    }
    if (f->stale || end > f->size) {
        f->stale = 0;
        if (smap_size(f) < end) {
            return SQLITE_OK;   /* SQLite reads it (and zero-fills) */
        }
    }
    *pp = base + off;
    return SQLITE_OK;
}

static int smap_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
    smap_file *f = (smap_file *)file;

    if (!f->main) {
        return f->real->pMethods->xUnfetch(f->real, off, p);
    }
    if (!p) {
        f->stale = 1;           /* the file may have changed size */
    }
    return SQLITE_OK;
}

static int smap_file_control(sqlite3_file *file, int op, void *arg)
{
    smap_file *f = (smap_file *)file;

    if (f->main && op == SQLITE_FCNTL_MMAP_SIZE) {
        sqlite3_int64 want = *(sqlite3_int64 *)arg;

        *(sqlite3_int64 *)arg = f->limit;
        if (want >= 0) {
            f->limit = want;
        }
        return SQLITE_OK;
    }
    return f->real->pMethods->xFileControl(f->real, op, arg);
}

/* The rest pass through. */

static int smap_read(sqlite3_file *file, void *buf, int amt,
                     sqlite3_int64 off)
{
    return REAL(file)->pMethods->xRead(REAL(file), buf, amt, off);
}

static int smap_write(sqlite3_file *file, const void *buf, int amt,
                      sqlite3_int64 off)
{
    return REAL(file)->pMethods->xWrite(REAL(file), buf, amt, off);
}

static int smap_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    return REAL(file)->pMethods->xTruncate(REAL(file), size);
}

static int smap_sync(sqlite3_file *file, int flags)
{
    return REAL(file)->pMethods->xSync(REAL(file), flags);
}

/* SQLite asks for the size itself at the start of a read transaction
 * whenever the WAL holds no commit: that answer is as fresh as our own
 * fstat would be, so the transaction's first fetch need not make one. */
static int smap_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    smap_file *f = (smap_file *)file;
    int rc = f->real->pMethods->xFileSize(f->real, size);

    if (rc == SQLITE_OK && f->map) {
        f->size = *size;
        f->stale = 0;
    }
    return rc;
}

static int smap_flock(sqlite3_file *file, int level)
{
    return REAL(file)->pMethods->xLock(REAL(file), level);
}

static int smap_funlock(sqlite3_file *file, int level)
{
    return REAL(file)->pMethods->xUnlock(REAL(file), level);
}

static int smap_check_lock(sqlite3_file *file, int *out)
{
    return REAL(file)->pMethods->xCheckReservedLock(REAL(file), out);
}

static int smap_sector_size(sqlite3_file *file)
{
    return REAL(file)->pMethods->xSectorSize(REAL(file));
}

static int smap_device(sqlite3_file *file)
{
    return REAL(file)->pMethods->xDeviceCharacteristics(REAL(file));
}

static int smap_shm_map(sqlite3_file *file, int page, int size, int extend,
                        void volatile **pp)
{
    return REAL(file)->pMethods->xShmMap(REAL(file), page, size, extend, pp);
}

/* A shared lock on the WAL-index is how every read transaction starts:
 * the file's size is read again before its first mapped page, so a file
 * cut short from outside SQLite (a backup copied over it) is read with
 * pread and reported corrupt, not touched past its end. */
static int smap_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
    smap_file *f = (smap_file *)file;

    if (flags == (SQLITE_SHM_LOCK | SQLITE_SHM_SHARED)) {
        f->stale = 1;
    }
    return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void smap_shm_barrier(sqlite3_file *file)
{
    REAL(file)->pMethods->xShmBarrier(REAL(file));
}

static int smap_shm_unmap(sqlite3_file *file, int del)
{
    return REAL(file)->pMethods->xShmUnmap(REAL(file), del);
}

/* ------------------------------------------------------------------ */
/* VFS methods                                                          */

static int smap_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file,
                     int flags, int *out_flags)
{
    smap_file *f = (smap_file *)file;
    int rc, v;

    memset(f, 0, (size_t)vfs->szOsFile);    /* ours and the real file's */
    f->real = (sqlite3_file *)(f + 1);
    rc = REAL_VFS(vfs)->xOpen(REAL_VFS(vfs), name, f->real, flags,
                              out_flags);
    if (!f->real->pMethods) {
        return rc;              /* base.pMethods stays NULL */
    }
    v = f->real->pMethods->iVersion;
    v = v < 1 ? 1 : v > 3 ? 3 : v;
    f->base.pMethods = &smap_io[v - 1];
    if (rc == SQLITE_OK && v == 3 && name && (flags & SQLITE_OPEN_MAIN_DB)) {
        f->main = 1;
        f->stale = 1;
        f->map = smap_attach(f->real, name);
    }
    return rc;
}

static int smap_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
    return REAL_VFS(vfs)->xDelete(REAL_VFS(vfs), name, sync);
}

static int smap_access(sqlite3_vfs *vfs, const char *name, int flags,
                       int *out)
{
    return REAL_VFS(vfs)->xAccess(REAL_VFS(vfs), name, flags, out);
}

static int smap_full_pathname(sqlite3_vfs *vfs, const char *name, int n,
                              char *out)
{
    return REAL_VFS(vfs)->xFullPathname(REAL_VFS(vfs), name, n, out);
}

static void *smap_dlopen(sqlite3_vfs *vfs, const char *name)
{
    return REAL_VFS(vfs)->xDlOpen(REAL_VFS(vfs), name);
}

static void smap_dlerror(sqlite3_vfs *vfs, int n, char *msg)
{
    REAL_VFS(vfs)->xDlError(REAL_VFS(vfs), n, msg);
}

static void (*smap_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
    return REAL_VFS(vfs)->xDlSym(REAL_VFS(vfs), h, sym);
}

static void smap_dlclose(sqlite3_vfs *vfs, void *h)
{
    REAL_VFS(vfs)->xDlClose(REAL_VFS(vfs), h);
}

static int smap_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    return REAL_VFS(vfs)->xRandomness(REAL_VFS(vfs), n, out);
}

static int smap_sleep(sqlite3_vfs *vfs, int us)
{
    return REAL_VFS(vfs)->xSleep(REAL_VFS(vfs), us);
}

static int smap_current_time(sqlite3_vfs *vfs, double *out)
{
    return REAL_VFS(vfs)->xCurrentTime(REAL_VFS(vfs), out);
}

static int smap_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    return REAL_VFS(vfs)->xGetLastError(REAL_VFS(vfs), n, out);
}

static int smap_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    return REAL_VFS(vfs)->xCurrentTimeInt64(REAL_VFS(vfs), out);
}

static int smap_set_syscall(sqlite3_vfs *vfs, const char *name,
                            sqlite3_syscall_ptr fn)
{
    return REAL_VFS(vfs)->xSetSystemCall(REAL_VFS(vfs), name, fn);
}

static sqlite3_syscall_ptr smap_get_syscall(sqlite3_vfs *vfs,
                                            const char *name)
{
    return REAL_VFS(vfs)->xGetSystemCall(REAL_VFS(vfs), name);
}

static const char *smap_next_syscall(sqlite3_vfs *vfs, const char *name)
{
    return REAL_VFS(vfs)->xNextSystemCall(REAL_VFS(vfs), name);
}

/* ------------------------------------------------------------------ */
/* Registration                                                         */

static void smap_register(void)
{
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    sqlite3_io_methods io = {
        3, smap_close, smap_read, smap_write, smap_truncate, smap_sync,
        smap_file_size, smap_flock, smap_funlock, smap_check_lock,
        smap_file_control, smap_sector_size, smap_device,
        smap_shm_map, smap_shm_lock, smap_shm_barrier, smap_shm_unmap,
        smap_fetch, smap_unfetch
    };
    sqlite3_vfs *v = &smap_vfs_def;

    if (!real) {
        return;
    }
    /* A real file of version 1 has no shared memory, 2 no fetches: ours
     * must not claim more than it can forward. */
    smap_io[2] = io;
    smap_io[1] = io;
    smap_io[1].iVersion = 2;
    smap_io[1].xFetch = NULL;
    smap_io[1].xUnfetch = NULL;
    smap_io[0] = smap_io[1];
    smap_io[0].iVersion = 1;
    smap_io[0].xShmMap = NULL;
    smap_io[0].xShmLock = NULL;
    smap_io[0].xShmBarrier = NULL;
    smap_io[0].xShmUnmap = NULL;

    v->iVersion = real->iVersion < 3 ? real->iVersion : 3;
    v->szOsFile = (int)sizeof(smap_file) + real->szOsFile;
    v->mxPathname = real->mxPathname;
    v->zName = SMAP_NAME;
    v->pAppData = real;
    v->xOpen = smap_open;
    v->xDelete = smap_delete;
    v->xAccess = smap_access;
    v->xFullPathname = smap_full_pathname;
    v->xDlOpen = real->xDlOpen ? smap_dlopen : NULL;
    v->xDlError = real->xDlError ? smap_dlerror : NULL;
    v->xDlSym = real->xDlSym ? smap_dlsym : NULL;
    v->xDlClose = real->xDlClose ? smap_dlclose : NULL;
    v->xRandomness = smap_randomness;
    v->xSleep = smap_sleep;
    v->xCurrentTime = smap_current_time;
    v->xGetLastError = real->xGetLastError ? smap_last_error : NULL;
    if (v->iVersion >= 2) {
        v->xCurrentTimeInt64 = real->xCurrentTimeInt64 ? smap_current_time64
                                                       : NULL;
    }
    if (v->iVersion >= 3) {
        v->xSetSystemCall = real->xSetSystemCall ? smap_set_syscall : NULL;
        v->xGetSystemCall = real->xGetSystemCall ? smap_get_syscall : NULL;
        v->xNextSystemCall = real->xNextSystemCall ? smap_next_syscall
                                                   : NULL;
    }
    smap_registered = sqlite3_vfs_register(v, 0) == SQLITE_OK;
}

const char *smap_vfs(void)
{
    pthread_once(&smap_once, smap_register);
    return smap_registered ? SMAP_NAME : NULL;
}
