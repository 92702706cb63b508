/*
 * sqlite_store.c - the embedded SQLite version store (see store.h).
 *
 * One database file in WAL mode, so readers (the 304 path) never wait for a
 * writer. Tables:
 *
 *   resources  one row per key: version, present, mtime (seconds),
 *              claim_owner/claim_expires (the write claim; expires in
 *              microseconds) and meta
 *   sequence   one row: the last version handed out. Every new version is
 *              sequence + 1, written in the same transaction as the row that
 *              receives it, so versions are unique across the store and
 *              never reused, even for a key that was forgotten
 *   meta       name/value pairs; "identity" is the store's random id
 *
 * Each child keeps a list of connections (apr_reslist): a call borrows one
 * for its duration, so a thread never shares a connection with another and
 * statements are prepared once per connection. A connection that saw
 * anything but a lock timeout is closed instead of being reused, and any
 * transaction a call leaves open is rolled back before the connection goes
 * back, so one failure never poisons the next request.
 *
 * Each connection also remembers its recent lookups, served only while the
 * database is provably unchanged (see store_lookup), so a 304 or a tagged
 * 200 of a busy key does not open an SQLite read transaction at all. A
 * lookup that does reads its pages through one memory mapping of the file
 * per child (sqlite_mmap.c), not with a pread into each connection's cache.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <stdlib.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <apr_atomic.h>
#include <apr_general.h>
#include <apr_file_io.h>
#include <apr_file_info.h>
#include <apr_reslist.h>
#include <apr_strings.h>

#include <sqlite3.h>

#include "sqlite_mmap.h"
#include "sqlite_wlock.h"
#include "store.h"

/* How long a statement waits for another process's write lock. Writes hold
 * it for microseconds; anything longer means a stuck or foreign writer. */
#define SQ_BUSY_MS        2000
/* How a connection waits for a lock (store_busy): first this many
 * sched_yield()s - a write transaction holds the lock for some tens of
 * microseconds, so it is usually free again by then - then sleeps that
 * start at SQ_BUSY_MIN_US and double up to SQ_BUSY_MAX_US, so a longer
 * holder (a checkpoint, the CLI) is not polled in a busy loop. SQLite's
 * own handler sleeps 1, 2, 5, 10 ... 100 ms: a millisecond lost for a
 * lock that was free after twenty microseconds. */
#define SQ_BUSY_YIELDS    16
#define SQ_BUSY_MIN_US    20
#define SQ_BUSY_MAX_US    2000
/* The WAL bound (docs/design.md, "The WAL"). A commit that leaves at
 * least SQ_WAL_PAGES pages in the WAL runs a RESTART checkpoint: it waits
 * for the writer in progress and for readers of old snapshots (all of
 * them microseconds long), copies the WAL into the database, syncs it, and
 * has the next writer start the WAL again from its first frame. SQLite's
 * own passive checkpoint never waits, so under sustained writes it never
 * catches up with the writers and the WAL only grows. A checkpoint waits
 * at most SQ_CKPT_BUSY_MS (a long reader, such as conditionalctl list on a
 * big store, is not waited out: the next commit tries again). That
 * checkpoint is not sure to get the write lock, though: other writers keep
 * taking it while it waits, and on a loaded machine it has been seen to
 * wait while the WAL grew to 16 MB. So a write transaction that would
 * start with SQ_WAL_HARD_PAGES or more frames in the WAL first
 * checkpoints itself, or waits for the checkpoint in progress
 * (store_begin): writers stop adding to the WAL until it is copied.
 * 256 pages, not SQLite's 1000: every frame of a page sits in one probe
 * chain of the WAL-index's hash table until the WAL starts over, and a
 * write's hot pages are in every commit, so each page read walks a chain
 * as long as the WAL - at 1000 pages sqlite3WalFindFrame alone was 23k
 * of a conditional PUT's 268k instructions (callgrind; docs/design.md). */
#define SQ_WAL_PAGES      256
#define SQ_WAL_HARD_PAGES 384
#define SQ_GATE_SKIP_S    10
#define SQ_CKPT_BUSY_MS   100
/* Upper bound on connections per child: one per concurrently calling
 * thread is all that is ever opened. */
#define SQ_MAX_CONNS      1024
/* A WAL file is truncated back to this after a checkpoint, and to zero
 * when the last connection closes. */
#define SQ_WAL_LIMIT      "4194304"
/* Page cache per connection, in KiB (SQLite's default is 2000). A child
 * opens one connection per thread that was ever inside the store at the
 * same moment, often a dozen, so this is multiplied. Reads go through the
 * mapping below and skip this cache; it holds the pages a write
 * transaction reads and changes (and every page of a connection that
 * could not map the file). 1 MiB holds the interior pages of a store of
 * about two million keys, which every write walks. */
#define SQ_CACHE_KIB      "1024"
/* How much of the file a child maps for reading (sqlite_mmap.c): one
 * mapping per child, shared by its connections. A lookup in a store far
 * bigger than any cache then reads its pages with no system call and no
 * copy. The pages count in a child's resident size as shared file pages:
 * the OS's page cache, held once however many children map it. 1 GiB is a
 * store of some twenty million keys of the benchmark's size (53 MB per
 * million); pages past it are read as usual. */
#define SQ_MMAP_BYTES     "1073741824"
#define SQ_SCHEMA_VERSION 1
/* How commits are synced: NORMAL, an fsync per checkpoint (see "Power
 * cuts" below for why that is enough). Built with -DSQ_SYNCHRONOUS=FULL
 * only to price an fsync per commit (make bench-durable). */
#ifndef SQ_SYNCHRONOUS
#define SQ_SYNCHRONOUS    "NORMAL"
#endif
/* Versions reserved durably at a time (store_reserve): one fsync per this
 * many versions, and the most a power cut makes the sequence jump. */
#define SQ_RESERVE_STEP   "65536"
/* Versions taken from the sequence at once (store_seq_peek): the
 * sequence row is read and written by one write transaction in this many,
 * not by every one - each such write is a page of its own in the WAL and
 * some 11k instructions (docs/design.md, "Versions in blocks"). */
#define SQ_SEQ_BLOCK      64
/* Read-only connections one write may drop before it gives up */
#define SQ_RO_DROPS       16
#define SQ_ID_BYTES       8
/* Where Linux says which boot this is (a random UUID per boot) */
#define SQ_BOOT_ID        "/proc/sys/kernel/random/boot_id"
/* Byte of the -shm file every connection holds a shared lock on: after
 * 120 bytes of WAL-index header, the 8 SQLite lock bytes (os_unix.c) */
#define SQ_SHM_DMS        128
/* 0750: the store's own directory */
#define SQ_DIR_PERMS      (APR_FPROT_UREAD | APR_FPROT_UWRITE \
                           | APR_FPROT_UEXECUTE | APR_FPROT_GREAD \
                           | APR_FPROT_GEXECUTE)
/* Lookups a connection remembers (a power of two; slots are picked by a
 * hash of the key), and the most bytes of key, claim owner and meta one
 * slot keeps: enough for the hot keys, a few tens of KiB per connection. */
#define SQ_MEMO_SLOTS     256
#define SQ_MEMO_MAX       512
/* The WAL-index (-shm) is mapped in pages of this size; its first page
 * starts with two copies of the 48-byte header (sqlite.org/walformat.html). */
#define SQ_WALIDX_PAGE    32768
#define SQ_WALHDR_WORDS   12
#define SQ_WALHDR_ISINIT  12        /* byte offset of the isInit flag */
#define SQ_WALIDX_MXFRAME 4         /* word of the header: frames in the WAL */
#define SQ_WALIDX_BACKFILL 24       /* word after both headers: frames
                                       copied back by checkpoints */
#define SQ_WALIDX_WORDS   25        /* both headers and that word */
/* How long a connection may read without looking whether its files are
 * still the ones at their paths (store_conn_check); a write always looks.
 * The bound on how long a read can go on in a file deleted or replaced
 * under the server - never in a new one. */
#define SQ_CHECK_EVERY    apr_time_from_msec(100)
/* Descriptors of -shm files a process keeps for reading the WAL-index
 * header (store_shm_fd): one per -shm file it ever used */
#define SQ_SHM_FDS        64

/* The three files of a WAL store, in this order in every array below. */
enum { SQ_FILE_DB, SQ_FILE_WAL, SQ_FILE_SHM, SQ_NFILES };
static const char *const store_file_suffix[SQ_NFILES] = { "", "-wal", "-shm" };

/* Which file a path named when it was looked at. */
typedef struct {
    dev_t dev;
    ino_t ino;
} store_fileid;

struct cond_store {
    const char *path;
    apr_pool_t *pool;                     /* create's, the configuration's */
    sq_wlock *wlock;                      /* made by init; NULL: none */
    int dir_created;                      /* init made the directory */
    const char *files[SQ_NFILES];         /* path, path-wal, path-shm */
    const char *refused_path;             /* path-refused, see store_refuse */
    const char *vfs;                      /* children: sqlite_mmap's */
    char identity[SQ_ID_BYTES * 2 + 1];   /* "" until known */
    store_fileid db;                      /* the file init set up */
    apr_reslist_t *conns;                 /* NULL before child_init */
    apr_pool_t *conns_pool;               /* theirs, see store_child_exit */
    volatile apr_uint32_t closing;        /* 1: the child ended mid-call */
    volatile apr_status_t refused;        /* see store_refuse */
    char refused_msg[256];
};

/* Prepared once per connection; the index is the statement's name. */
enum {
    SQ_LOOKUP,
    SQ_BEGIN,
    SQ_COMMIT,
    SQ_ROLLBACK,
    SQ_SEQ_SET,
    SQ_PLACEHOLDER,
    SQ_CLAIM,
    SQ_RESOLVE,
    SQ_RELEASE_NEW,
    SQ_RELEASE,
    SQ_BREAK,
    SQ_BUMP,
    SQ_REGISTER,
    SQ_SET_EXISTS,
    SQ_SET_META,
    SQ_FORGET,
    SQ_LIST_FROM,
    SQ_LIST_RANGE,
    SQ_IDENTITY,
    SQ_RENEW,
    SQ_RESERVED,
    SQ_RESERVE,
    SQ_BUMP_KNOWN,
    SQ_SEQ_GET,
    SQ_NSTMT
};

#define SQ_COLUMNS "version, present, mtime, claim_owner, claim_expires, meta"
/* The version a statement hands out, read from the sequence and bound in
 * C (store_seq_peek): "RETURNING" would cost each write an ephemeral
 * table, a temporary pager and a zeroed page per statement. */
#define SQ_NEXT    "?9"
#define SQ_NEXT_ARG 9       /* numbered past every other parameter: a
                               named one would take the number after the
                               largest before it, ?1's in "SET version =" */

/* Statements that hand out a version bind it as SQ_NEXT and run through
 * store_versioned(), which moves the sequence up to match. */
static const char *const store_sql[SQ_NSTMT] = {
    /* SQ_LOOKUP */
    "SELECT " SQ_COLUMNS " FROM resources WHERE key = ?1",
    /* SQ_BEGIN: take the write lock up front, so the busy timeout applies
     * and a transaction never fails half-way on an upgrade */
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    /* SQ_SEQ_SET */
    "UPDATE sequence SET last = ?1 WHERE id = 1",
    /* SQ_PLACEHOLDER: an unknown key claimed at version 0 */
    "INSERT OR IGNORE INTO resources (key, version, present, mtime, "
    "claim_owner, claim_expires, meta) VALUES (?1, 0, 0, 0, NULL, 0, NULL)",
    /* SQ_CLAIM: the compare-and-set; any claim, live or expired, blocks */
    "UPDATE resources SET claim_owner = ?2, claim_expires = ?3 "
    "WHERE key = ?1 AND version = ?4 AND claim_owner IS NULL",
    /* SQ_RESOLVE: commit of owner's claim, kept when ?5 (HOLD) */
    "UPDATE resources SET version = " SQ_NEXT ", present = ?3, "
    "mtime = max(mtime + 1, ?4), "
    "claim_owner = CASE WHEN ?5 THEN claim_owner END, "
    "claim_expires = CASE WHEN ?5 THEN claim_expires ELSE 0 END "
    "WHERE key = ?1 AND claim_owner = ?2",
    /* SQ_RELEASE_NEW: after SQ_RELEASE in the same transaction, a
     * placeholder whose first write failed is dropped rather than left
     * behind as a row per URL ever written to */
    "DELETE FROM resources WHERE key = ?1 AND version = 0 "
    "AND claim_owner IS NULL",
    /* SQ_RELEASE */
    "UPDATE resources SET claim_owner = NULL, claim_expires = 0 "
    "WHERE key = ?1 AND claim_owner = ?2 RETURNING version",
    /* SQ_BREAK */
    "UPDATE resources SET version = " SQ_NEXT ", "
    "mtime = max(mtime + 1, ?3), claim_owner = NULL, claim_expires = 0 "
    "WHERE key = ?1 AND claim_owner = ?2",
    /* SQ_BUMP */
    "INSERT INTO resources (key, version, present, mtime, claim_owner, "
    "claim_expires, meta) VALUES (?1, " SQ_NEXT ", 1, ?2, NULL, 0, NULL) "
    "ON CONFLICT (key) DO UPDATE SET version = excluded.version, "
    "mtime = max(mtime + 1, excluded.mtime)",
    /* SQ_REGISTER */
    "INSERT OR IGNORE INTO resources (key, version, present, mtime, "
    "claim_owner, claim_expires, meta) VALUES (?1, " SQ_NEXT ", 1, ?2, "
    "NULL, 0, ?3)",
    /* SQ_SET_EXISTS */
    "UPDATE resources SET version = " SQ_NEXT ", present = ?2, "
    "mtime = max(mtime + 1, ?3), meta = ?4 "
    "WHERE key = ?1 AND version = ?5 AND claim_owner IS NULL",
    /* SQ_SET_META */
    "UPDATE resources SET meta = ?2 WHERE key = ?1 AND version = ?3",
    /* SQ_FORGET */
    "DELETE FROM resources WHERE key = ?1",
    /* SQ_LIST_FROM, SQ_LIST_RANGE: a byte range, not LIKE, so '%' and '_'
     * in a prefix are plain characters and the primary key is used */
    "SELECT key, " SQ_COLUMNS " FROM resources WHERE key >= ?1 "
    "ORDER BY key",
    "SELECT key, " SQ_COLUMNS " FROM resources WHERE key >= ?1 "
    "AND key < ?2 ORDER BY key",
    /* SQ_IDENTITY */
    "SELECT value FROM meta WHERE name = 'identity'",
    /* SQ_RENEW: only the owner's claim, live or expired but not broken */
    "UPDATE resources SET claim_expires = max(claim_expires, ?3) "
    "WHERE key = ?1 AND claim_owner = ?2",
    /* SQ_RESERVED, SQ_RESERVE: the highest version that may have been
     * handed out (see store_reserve) */
    "SELECT CAST(value AS INTEGER) FROM meta WHERE name = 'reserved'",
    "INSERT OR REPLACE INTO meta (name, value) VALUES ('reserved', ?1)",
    /* SQ_BUMP_KNOWN: a related key of a commit or release, only if known */
    "UPDATE resources SET version = " SQ_NEXT ", "
    "mtime = max(mtime + 1, ?2) WHERE key = ?1",
    /* SQ_SEQ_GET */
    "SELECT last FROM sequence WHERE id = 1"
};

static const char store_schema[] =
    "CREATE TABLE IF NOT EXISTS resources ("
    " key TEXT PRIMARY KEY NOT NULL,"
    " version INTEGER NOT NULL,"
    " present INTEGER NOT NULL,"
    " mtime INTEGER NOT NULL,"
    " claim_owner TEXT,"
    " claim_expires INTEGER NOT NULL DEFAULT 0,"
    " meta TEXT"
    ") WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS sequence ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " last INTEGER NOT NULL"
    ");"
    "INSERT OR IGNORE INTO sequence (id, last) VALUES (1, 0);"
    "CREATE TABLE IF NOT EXISTS meta ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " value TEXT NOT NULL"
    ") WITHOUT ROWID;";

/* One remembered lookup; the strings point into buf. */
typedef struct {
    apr_uint64_t epoch;     /* 0: empty */
    apr_uint32_t hash;
    apr_status_t rv;        /* APR_SUCCESS or APR_NOTFOUND */
    const char *key;
    cond_state st;
    apr_time_t claim_expires;   /* st.claim_left is recomputed from it */
    char *buf;
    apr_size_t cap;
} store_memo;

typedef struct {
    sqlite3 *db;
    int readonly;       /* the file opened read-only */
    int broken;         /* close instead of reusing */
    int wal;            /* the database is in WAL mode */
    char err[256];      /* SQLite's message for this call's failure */
    sqlite3_stmt *st[SQ_NSTMT];
    /* A descriptor of this connection's -shm (store_shm_fd), -1: none */
    int shm_fd;
    apr_uint32_t hdr[SQ_WALHDR_WORDS];  /* WAL-index header of epoch */
    apr_uint64_t epoch;
    apr_int64_t reserved;   /* a durable bound on versions; 0: read it */
    /* The children's block of versions (store_seq_peek), while this
     * connection's call holds the writers' lock; NULL otherwise */
    sq_wlock_block *shared;
    apr_time_t busy_since;  /* store_busy: when this wait began */
    int busy_ms;            /* store_busy: how long it may last */
    /* The writers' lock: held by this connection's call; how long the
     * call waited for it (counted against the busy timeout) */
    int wheld;
    apr_interval_time_t waited;
    /* The files this connection has open, as their paths named them, and
     * when they were last looked at (a monotonic clock) */
    store_fileid files[SQ_NFILES];
    apr_time_t checked;
    /* The WAL's frames as store_conn_check just read them for a write,
     * so store_begin needs no read of its own; 0: not read */
    apr_uint32_t frames_seen;
    store_memo memo[SQ_MEMO_SLOTS];
} store_conn;

/* ------------------------------------------------------------------ */
/* Errors                                                               */

/* What the checks of the store's files found wrong in this thread's last
 * call, until store_get hands it to the caller's pool. */
static __thread char store_errbuf[256];

static void store_set_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    apr_vsnprintf(store_errbuf, sizeof(store_errbuf), fmt, ap);
    va_end(ap);
}

static apr_status_t store_map(sqlite3 *db, int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return APR_SUCCESS;
    }
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return APR_TIMEUP;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return APR_EACCES;
    case SQLITE_CANTOPEN:
        /* Missing is the common case; a permission problem deserves its
         * own message in the administrator's log. */
        if (db && (sqlite3_system_errno(db) == EACCES
                   || sqlite3_system_errno(db) == EPERM)) {
            return APR_EACCES;
        }
        return APR_ENOENT;
    default:
        return APR_EGENERAL;
    }
}

/* A failed call: a lock timeout leaves the connection healthy, anything
 * else (read-only, I/O, corruption, a vanished file) gets it reopened. */
static apr_status_t store_fail(store_conn *c, int rc)
{
    int prim = rc & 0xff;

    if (prim != SQLITE_BUSY && prim != SQLITE_LOCKED) {
        c->broken = 1;
    }
    apr_cpystrn(c->err, sqlite3_errmsg(c->db), sizeof(c->err));
    return store_map(c->db, rc);
}

/* ------------------------------------------------------------------ */
/* Connections                                                          */

static void store_conn_close(store_conn *c)
{
    int i;

    for (i = 0; i < SQ_NSTMT; i++) {
        sqlite3_finalize(c->st[i]);
    }
    sqlite3_close_v2(c->db);
    for (i = 0; i < SQ_MEMO_SLOTS; i++) {
        free(c->memo[i].buf);
    }
    free(c);
}

/* ------------------------------------------------------------------ */
/* The files under the store                                            */

/*
 * An operator can delete or replace the database file, or its -wal or
 * -shm, under a running server. A connection keeps the files it opened,
 * so without a check it would go on reading and writing a file no new
 * connection will ever see - one store split in two, each handing out tags
 * the other does not know. And SQLite maps the -shm: a -shm cut short
 * makes the next read of the mapping a SIGBUS.
 *
 * So a call looks at what the three paths name (three stat()s) and goes
 * on only when they are the files its connection has open, the -shm holds
 * at least its first page and the -wal at least the frames the WAL-index
 * counts: every write, and a read when its connection has not looked for
 * SQ_CHECK_EVERY. In between, nothing reads the -shm through a mapping
 * before a descriptor has shown it whole: the WAL-index header is read
 * with pread() (store_walhdr), and a read that goes on into SQLite first
 * asks the descriptor for the file's size (store_shm_whole). A new
 * connection is opened only when all three files are there (it would
 * otherwise create a fresh -wal or -shm beside the ones other connections
 * use) and the database is the one init set up for this generation of the
 * server. Anything else is refused until httpd is restarted (init then
 * starts over cleanly; see store_init).
 */

/*
 * The marker beside the store (path-refused) names an identity no process
 * may serve tags under any more: one under which a lost database or -wal
 * may have taken commits (written by the process that found the loss), so
 * that no process starts over on fresh files under it before init has
 * given the store a new one; and the one init retired (store_init), so
 * that no child of the generation before the restart opens a connection
 * to the store under its new identity and tags with the old. Only
 * processes that serve that identity heed it: a child of the generation
 * before a graceful restart that finds the fault late (its writes were
 * still in flight) names the old identity, which the new generation no
 * longer has. Written whole (a new file renamed into place), so no one
 * reads it half-written.
 */
static void store_mark_refused(cond_store *s, const char *identity)
{
    char tmp[4096];
    apr_size_t n = strlen(identity);
    int fd;

    apr_snprintf(tmp, sizeof(tmp), "%s.%ld.%lx", s->refused_path,
                 (long)getpid(), (unsigned long)pthread_self());
    /* Readable by all: the parent writes it, the User's children read it,
     * and an identity is no secret (every tag starts with it). */
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return;
    }
    if (write(fd, identity, n) != (ssize_t)n || close(fd) != 0
        || rename(tmp, s->refused_path) != 0) {
        unlink(tmp);
    }
}

/* Does the marker refuse a process serving identity? Yes when it names
 * it, or names none (written by an older module). A process that does not
 * know its identity yet asks again once it has read it (store_conn_open). */
static int store_marked_refused(cond_store *s, const char *identity)
{
    char buf[SQ_ID_BYTES * 2 + 2];
    ssize_t n;
    int fd = open(s->refused_path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        return errno != ENOENT;     /* unreadable: the safe side */
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return 1;
    }
    buf[n] = '\0';
    return !strcmp(buf, identity);
}

/* Once a connection has seen its files go, this process refuses the
 * store until httpd is restarted: whatever was lost with them (versions
 * among it) must not be handed out again under the same identity, and
 * the next connection must not quietly start over on fresh files. */
static void store_refuse(cond_store *s, apr_status_t rv, int lost)
{
    if (lost) {
        store_mark_refused(s, s->identity);
    }
    if (!s->refused) {
        apr_cpystrn(s->refused_msg, store_errbuf, sizeof(s->refused_msg));
        __sync_synchronize();
        s->refused = rv;
    }
}

static int store_stat(const char *path, store_fileid *id, apr_off_t *size)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        return errno;
    }
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    *size = st.st_size;
    return 0;
}

static int store_same_file(const store_fileid *a, const store_fileid *b)
{
    return a->dev == b->dev && a->ino == b->ino;
}

/* What the three paths name now (a missing one as device and inode 0);
 * APR_SUCCESS when all are there and the -shm holds the WAL-index
 * header. */
static apr_status_t store_files_now(cond_store *s, store_fileid *ids,
                                    apr_off_t *sizes)
{
    apr_status_t rv = APR_SUCCESS;
    int i, err;

    for (i = 0; i < SQ_NFILES; i++) {
        if ((err = store_stat(s->files[i], &ids[i], &sizes[i])) == 0) {
            continue;
        }
        ids[i].dev = 0;
        ids[i].ino = 0;
        sizes[i] = 0;
        if (rv == APR_SUCCESS) {
            store_set_error("%s is gone (%s): it was deleted or renamed "
                            "while the server ran; the store is refused "
                            "until httpd is restarted", s->files[i],
                            strerror(err));
            rv = APR_ENOENT;
        }
    }
    if (rv == APR_SUCCESS && sizes[SQ_FILE_SHM] < SQ_WALIDX_PAGE) {
        store_set_error("%s was cut short (%" APR_OFF_T_FMT " bytes) while "
                        "the server ran; the store is refused until httpd "
                        "is restarted", s->files[SQ_FILE_SHM],
                        sizes[SQ_FILE_SHM]);
        rv = APR_EGENERAL;
    }
    return rv;
}

static int store_walhdr(const store_conn *c, apr_uint32_t *hdr);
static int store_walidx(const store_conn *c, apr_uint32_t *w);
static apr_status_t store_conn_fault(cond_store *s, store_conn *c,
                                     apr_status_t rv, int lost);

/* The -wal holds every frame the WAL-index header counts: a header and
 * mxFrame frames of a page and a 24-byte frame header each. hdr is the
 * header as read before the paths were looked at, size the -wal's size
 * from that look (store_files_now): read after the header, since a commit
 * writes its frames before it moves the header on. A short file counts
 * only if the header is still the same after it: the first commit into a
 * restarted WAL cuts the file back (journal_size_limit) before it moves
 * the header on. */
static apr_status_t store_wal_complete(cond_store *s, store_conn *c,
                                       const apr_uint32_t *hdr,
                                       apr_off_t size)
{
    apr_uint32_t again[SQ_WALHDR_WORDS], mx, page;
    apr_uint16_t page16;

    c->frames_seen = 0;
    if (!hdr) {
        return APR_SUCCESS;     /* store_files_now has seen the -shm whole */
    }
    /* walformat.html: mxFrame is the fifth word, szPage the 16 bits at
     * byte 14 (1 meaning 65536), in the machine's byte order */
    mx = hdr[SQ_WALIDX_MXFRAME];
    c->frames_seen = mx;
    memcpy(&page16, (const char *)hdr + 14, sizeof(page16));
    page = page16 == 1 ? 65536 : page16;
    if (mx && size < 32 + (apr_off_t)mx * (page + 24)
        && store_walhdr(c, again) == 1
        && !memcmp(hdr, again, sizeof(again))) {
        store_set_error("%s was cut short (%" APR_OFF_T_FMT " bytes, %u "
                        "frames committed) while the server ran; the store "
                        "is refused until httpd is restarted",
                        s->files[SQ_FILE_WAL], size, (unsigned)mx);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* Files that must not outlive the fault: the -wal and -shm of a database
 * file no longer at the path belong to that old file and must not be
 * applied to whatever is put there next; a -wal cut short has lost
 * commits, and without it init gives the store a new identity, so no
 * version it hands out again can match an old tag. Only the files this
 * connection has open are removed. */
static void store_drop_old_wal(cond_store *s, const store_conn *c,
                               const store_fileid *ids, int wal_cut)
{
    int i;

    for (i = SQ_FILE_WAL; i < SQ_NFILES; i++) {
        if (store_same_file(&ids[i], &c->files[i])
            && (!store_same_file(&ids[SQ_FILE_DB], &c->files[SQ_FILE_DB])
                || (wal_cut && i == SQ_FILE_WAL))) {
            unlink(s->files[i]);
        }
    }
}

/* Refuse the store for a fault this connection found: it is closed, and
 * closing must not checkpoint (its -shm may be cut short, its -wal may
 * not be the one at the path any more). */
static apr_status_t store_conn_fault(cond_store *s, store_conn *c,
                                     apr_status_t rv, int lost)
{
    sqlite3_db_config(c->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    c->broken = 1;
    store_refuse(s, rv, lost);
    return rv;
}

static apr_time_t store_clock(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return apr_time_from_sec(ts.tv_sec) + ts.tv_nsec / 1000;
}

/* Before SQLite reads this connection's -shm through its mapping: does the
 * file still hold the WAL-index's first page? (A mapped page past the end
 * of a file is a SIGBUS.) One fstat() of the descriptor store_walhdr
 * reads, no path to walk. */
static apr_status_t store_shm_whole(cond_store *s, store_conn *c)
{
    struct stat st;

    if (!c->wal || c->shm_fd < 0) {
        return APR_SUCCESS;     /* store_conn_check has looked at the path */
    }
    if (fstat(c->shm_fd, &st) != 0 || st.st_size < SQ_WALIDX_PAGE) {
        store_set_error("%s was cut short (%" APR_OFF_T_FMT " bytes) while "
                        "the server ran; the store is refused until httpd "
                        "is restarted", s->files[SQ_FILE_SHM],
                        (apr_off_t)st.st_size);
        return store_conn_fault(s, c, APR_EGENERAL, 0);
    }
    return APR_SUCCESS;
}

/* Before a call on a connection: are its files still the store? Always
 * before a write; before a read once every SQ_CHECK_EVERY, since a
 * connection left on a deleted or replaced file only reads what every
 * other connection on that file sees, while no new connection can open
 * beside it (store_conn_may_open) - and three stat()s on the path of every
 * 304 cost more than the rest of it. What a read needs at once, the -shm
 * whole, it learns from a descriptor (store_walhdr, store_shm_whole). */
static apr_status_t store_conn_check(cond_store *s, store_conn *c,
                                     int for_write)
{
    store_fileid ids[SQ_NFILES];
    apr_off_t sizes[SQ_NFILES];
    apr_uint32_t hdr[SQ_WALHDR_WORDS];
    apr_time_t now;
    apr_status_t rv;
    int i, wal_cut = 0, have_hdr;

    if (!c->wal) {
        return APR_SUCCESS;
    }
    now = store_clock();
    /* Without a descriptor (none left, or the -shm was swapped while the
     * connection opened) a read looks at the paths every time. */
    if (!for_write && c->shm_fd >= 0 && now - c->checked < SQ_CHECK_EVERY) {
        return APR_SUCCESS;
    }
    c->checked = now;
    /* the WAL-index header first, the -wal's size after it (see
     * store_wal_complete): one stat() of each path, no second one */
    have_hdr = store_walhdr(c, hdr) == 1;
    rv = store_files_now(s, ids, sizes);
    for (i = 0; rv != APR_ENOENT && i < SQ_NFILES; i++) {
        if (!store_same_file(&ids[i], &c->files[i])) {
            store_set_error("%s was replaced by another file while the "
                            "server ran; the store is refused until httpd "
                            "is restarted", s->files[i]);
            rv = APR_ENOENT;
        }
    }
    if (rv == APR_SUCCESS
        && (rv = store_wal_complete(s, c, have_hdr ? hdr : NULL,
                                    sizes[SQ_FILE_WAL])) != APR_SUCCESS) {
        wal_cut = 1;
    }
    if (rv == APR_SUCCESS) {
        return APR_SUCCESS;
    }
    store_drop_old_wal(s, c, ids, wal_cut);
    return store_conn_fault(s, c, rv,
                            wal_cut
                            || !store_same_file(&ids[SQ_FILE_DB],
                                                &c->files[SQ_FILE_DB])
                            || !store_same_file(&ids[SQ_FILE_WAL],
                                                &c->files[SQ_FILE_WAL]));
}

/*
 * SQLite's memory statistics (SQLITE_CONFIG_MEMSTATUS, on by default) take
 * one mutex of the whole process around every allocation and free SQLite
 * makes - some fifty in a write, as Debian builds SQLite without lookaside
 * memory - and nothing here reads them: callgrind, 3.4k of the ~62k
 * instructions the module adds to a conditional PUT. They can only be
 * turned off before SQLite initializes in the process, so store_init does
 * it before its first open: in httpd's parent, whose children inherit it.
 * Where something else in the process started SQLite first,
 * sqlite3_config refuses (SQLITE_MISUSE) and that setting stands. What it
 * takes from other users of SQLite in the process: sqlite3_memory_used()
 * reads 0 and a soft heap limit is not enforced (docs/design.md,
 * "Per-process resources").
 */
static void store_sqlite_setup(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/*
 * Settings every connection needs. The -wal and -shm files are kept when
 * the last connection closes (emptied, not deleted): init hands them to the
 * User once, so no child ever has to create a file in the directory, and a
 * store made read-only (file and directory) can still be read - SQLite can
 * read a WAL database without write access only while both files exist.
 * WAL + synchronous=NORMAL: a commit survives a crashed process (not a
 * power cut) without an fsync per write.
 */
static int store_configure(sqlite3 *db)
{
    int persist = 1;

    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, SQ_BUSY_MS);
    sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
    return sqlite3_exec(db, "PRAGMA synchronous=" SQ_SYNCHRONOUS ";"
                        "PRAGMA journal_size_limit=" SQ_WAL_LIMIT ";"
                        "PRAGMA cache_size=-" SQ_CACHE_KIB,
                        NULL, NULL, NULL);
}

static apr_status_t store_pragma_text(sqlite3 *db, const char *sql, char *buf,
                                      apr_size_t len);
static int store_unmark_clean(sqlite3 *db);

/* The busy handler of a pooled connection (see SQ_BUSY_YIELDS): count is
 * 0 on the first call of each wait. Returning 0 ends the wait with
 * SQLITE_BUSY (APR_TIMEUP to the caller). */
static int store_busy(void *arg, int count)
{
    store_conn *c = arg;
    apr_time_t now = apr_time_now();
    apr_interval_time_t pause;

    if (count == 0) {
        sq_wlock_count_busy();
        c->busy_since = now - c->waited;
        c->waited = 0;
    }
    else if (now - c->busy_since >= apr_time_from_msec(c->busy_ms)) {
        return 0;
    }
    if (count < SQ_BUSY_YIELDS) {
        sched_yield();
        return 1;
    }
    pause = SQ_BUSY_MIN_US;
    for (count -= SQ_BUSY_YIELDS; count > 0 && pause < SQ_BUSY_MAX_US;
         count--) {
        pause *= 2;
    }
    apr_sleep(pause < SQ_BUSY_MAX_US ? pause : SQ_BUSY_MAX_US);
    return 1;
}

/* Until when this process's writers try no checkpoint, neither after a
 * commit (store_wal_hook) nor before a write (store_begin): set when
 * store_begin's wait ran out with the WAL still past its bound. Then a
 * reader holds an old snapshot (conditionalctl list of a big store), no
 * checkpoint can finish while it lasts, and each attempt would only make
 * its write wait: one write in SQ_GATE_SKIP_S waits for it, not every one
 * (every write waited 2 s, or 100 ms after its commit). */
static volatile apr_time_t store_gate_skip_until;

/* After each commit of a pooled connection, with the WAL's size in pages:
 * keep it under its bound (SQ_WAL_PAGES). The commit itself has already
 * succeeded; a checkpoint that cannot run now is tried by the next one. */
static int store_wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    store_conn *c = arg;

    if (pages >= SQ_WAL_PAGES && apr_time_now() >= store_gate_skip_until) {
        c->busy_ms = SQ_CKPT_BUSY_MS;
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_RESTART, NULL,
                                  NULL);
        c->busy_ms = SQ_BUSY_MS;
    }
    return SQLITE_OK;
}

/* SQLite's words for the last failed open on this thread: apr_reslist's
 * constructor has no way to hand them to the caller. */
static __thread char store_open_err[256];

/* Does any connection, of any process, this one included, have the
 * database file open? Each holds a shared lock on it, and /proc/locks
 * lists every lock ("... READ pid MAJ:MIN:INODE start end"). Unknown
 * counts as yes. */
static int store_db_in_use(const store_fileid *db)
{
    char needle[64], line[256];
    int used = 0;
    FILE *f;

    apr_snprintf(needle, sizeof(needle), " %02x:%02x:%lu ",
                 major(db->dev), minor(db->dev), (unsigned long)db->ino);
    if (!(f = fopen("/proc/locks", "r"))) {
        return 1;
    }
    while (!used && fgets(line, sizeof(line), f)) {
        used = strstr(line, needle) != NULL;
    }
    fclose(f);
    return used;
}

/*
 * May a new connection open the store? The database must be the one init
 * set up. A -wal or -shm that is missing or cut short is one SQLite would
 * create or rebuild - harmless when no connection has the database open
 * (SQLite itself removes both when the last connection of a program that
 * does not keep them closes, the sqlite3 shell for one), a split store
 * when connections elsewhere still use the old ones.
 */
static apr_status_t store_conn_may_open(cond_store *s)
{
    store_fileid ids[SQ_NFILES];
    apr_off_t sizes[SQ_NFILES];

    if (store_marked_refused(s, s->identity)) {
        store_set_error("%s is refused under the identity this server "
                        "started with (its database or -wal was lost, or a "
                        "restart gave it a new one) until httpd is "
                        "restarted", s->path);
        return APR_ENOENT;
    }

    if (store_stat(s->path, &ids[SQ_FILE_DB], &sizes[SQ_FILE_DB]) != 0) {
        if (s->db.ino) {
            store_set_error("%s is gone: it was deleted or renamed while "
                            "the server ran; the store is refused until "
                            "httpd is restarted", s->path);
            return APR_ENOENT;
        }
        return APR_SUCCESS;         /* SQLite says why */
    }
    if (s->db.ino && !store_same_file(&ids[SQ_FILE_DB], &s->db)) {
        store_set_error("%s is not the file the server started with: it "
                        "was replaced while the server ran; the store is "
                        "refused until httpd is restarted", s->path);
        return APR_ENOENT;
    }
    if (store_files_now(s, ids, sizes) != APR_SUCCESS
        && store_db_in_use(&ids[SQ_FILE_DB])) {
        return APR_ENOENT;          /* store_files_now said what */
    }
    store_errbuf[0] = '\0';        /* nothing wrong after all */
    return APR_SUCCESS;
}

/*
 * A descriptor of the -shm file `id` (at path), for reading the WAL-index
 * header with pread() rather than through a mapping, which a -shm cut
 * short turns into a SIGBUS. Kept for the life of the process and never
 * closed: closing any descriptor of a file drops every POSIX lock the
 * process holds on it, and SQLite's connections hold theirs on the -shm
 * (the read marks among them). There is one per -shm file a process ever
 * used, and a process that saw its -shm go refuses the store from then on,
 * so a child holds one or two. -1 when the path names another file by now
 * (that one is kept as well, for the same reason) or none is left.
 */
static int store_shm_fd(const char *path, const store_fileid *id)
{
    static struct {
        store_fileid id;
        int fd;
    } held[SQ_SHM_FDS];
    static int nheld;
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    store_fileid got = { 0, 0 };
    struct stat st;
    int i, fd = -1;

    pthread_mutex_lock(&lock);
    for (i = 0; i < nheld && fd < 0; i++) {
        if (store_same_file(&held[i].id, id)) {
            fd = held[i].fd;
        }
    }
    if (fd < 0 && nheld < SQ_SHM_FDS
        && (fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
        if (fstat(fd, &st) == 0) {
            got.dev = st.st_dev;
            got.ino = st.st_ino;
            held[nheld].id = got;
            held[nheld++].fd = fd;
        }
        if (!store_same_file(&got, id)) {
            fd = -1;
        }
    }
    pthread_mutex_unlock(&lock);
    return fd;
}

/* Once open (and a -wal and -shm made if there were none): the files it
 * has, as the paths name them, and a descriptor of its -shm. */
static apr_status_t store_conn_files(cond_store *s, store_conn *c)
{
    apr_off_t sizes[SQ_NFILES];
    apr_status_t rv = store_files_now(s, c->files, sizes);

    if (rv == APR_SUCCESS && s->db.ino
        && !store_same_file(&c->files[SQ_FILE_DB], &s->db)) {
        store_set_error("%s was replaced while a connection opened it",
                        s->path);
        rv = APR_ENOENT;
    }
    if (rv == APR_SUCCESS) {
        c->shm_fd = store_shm_fd(s->files[SQ_FILE_SHM],
                                 &c->files[SQ_FILE_SHM]);
        c->checked = store_clock();
    }
    return rv;
}

/* A process that does not know its identity yet (init could not set the
 * store up before the fork) takes the one the database has: the marker is
 * asked about that one (store_marked_refused). */
static apr_status_t store_conn_identity_ok(cond_store *s, store_conn *c)
{
    sqlite3_stmt *st = c->st[SQ_IDENTITY];
    char id[SQ_ID_BYTES * 2 + 1] = "";

    if (s->identity[0]) {
        return APR_SUCCESS;         /* store_conn_may_open asked */
    }
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
        apr_cpystrn(id, (const char *)sqlite3_column_text(st, 0),
                    sizeof(id));
    }
    sqlite3_reset(st);
    if (id[0] && store_marked_refused(s, id)) {
        store_set_error("%s is refused under the identity this server "
                        "started with (its database or -wal was lost, or a "
                        "restart gave it a new one) until httpd is "
                        "restarted", s->path);
        return APR_ENOENT;
    }
    return APR_SUCCESS;
}

/* Open an existing store: never create it here, a missing file is an
 * error (an empty store would hand out versions an old one already did,
 * under the same cached identity). */
static apr_status_t store_conn_open(cond_store *s, store_conn **out)
{
    store_conn *c = calloc(1, sizeof(*c));
    apr_status_t rv;
    char mode[16];
    int rc, i;

    if (!c) {
        return APR_ENOMEM;
    }
    c->shm_fd = -1;
    if ((rv = store_conn_may_open(s)) != APR_SUCCESS) {
        free(c);
        return rv;
    }
    rc = sqlite3_open_v2(s->path, &c->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, s->vfs);
    if (rc != SQLITE_OK) {
        rv = store_map(c->db, rc);
        apr_cpystrn(store_open_err, c->db ? sqlite3_errmsg(c->db)
                                          : sqlite3_errstr(rc),
                    sizeof(store_open_err));
        store_conn_close(c);
        return rv;
    }
    rc = store_configure(c->db);
    c->busy_ms = SQ_BUSY_MS;
    sqlite3_busy_handler(c->db, store_busy, c);
    sqlite3_wal_hook(c->db, store_wal_hook, c);
    if (rc == SQLITE_OK && s->vfs) {
        rc = sqlite3_exec(c->db, "PRAGMA mmap_size=" SQ_MMAP_BYTES,
                          NULL, NULL, NULL);
    }
    for (i = 0; rc == SQLITE_OK && i < SQ_NSTMT; i++) {
        rc = sqlite3_prepare_v3(c->db, store_sql[i], -1,
                                SQLITE_PREPARE_PERSISTENT, &c->st[i], NULL);
    }
    if (rc != SQLITE_OK) {
        rv = store_map(c->db, rc);
        apr_cpystrn(store_open_err, sqlite3_errmsg(c->db),
                    sizeof(store_open_err));
        store_conn_close(c);
        return rv;
    }
    c->readonly = sqlite3_db_readonly(c->db, "main") == 1;
    if (!c->readonly && (rc = store_unmark_clean(c->db)) != SQLITE_OK) {
        rv = store_map(c->db, rc);
        store_conn_close(c);
        return rv;
    }
    c->wal = store_pragma_text(c->db, "PRAGMA journal_mode", mode,
                               sizeof(mode)) == APR_SUCCESS
             && !strcasecmp(mode, "wal");
    if ((c->wal && (rv = store_conn_files(s, c)) != APR_SUCCESS)
        || (rv = store_conn_identity_ok(s, c)) != APR_SUCCESS) {
        sqlite3_db_config(c->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
        store_conn_close(c);
        return rv;
    }
    *out = c;
    return APR_SUCCESS;
}

static apr_status_t store_construct(void **res, void *params, apr_pool_t *p)
{
    cond_store *s = params;
    store_conn *c = NULL;
    apr_status_t rv;

    (void)p;
    rv = store_conn_open(s, &c);
    if (rv == APR_SUCCESS) {
        *res = c;
    }
    return rv;
}

/* A connection whose files are no longer the store's (a process of the
 * generation before a restart, whose init made new ones) must not
 * checkpoint when it closes: its -wal would be copied into whatever
 * database file it still shares with the new generation. */
static apr_status_t store_destruct(void *res, void *params, apr_pool_t *p)
{
    store_conn *c = res;
    cond_store *s = params;
    store_fileid ids[SQ_NFILES];
    apr_off_t sizes[SQ_NFILES];
    int i, same = 1;

    (void)p;
    if (c->wal) {
        same = !s->refused && store_files_now(s, ids, sizes) == APR_SUCCESS;
        for (i = 0; same && i < SQ_NFILES; i++) {
            same = store_same_file(&ids[i], &c->files[i]);
        }
    }
    if (!same) {
        sqlite3_db_config(c->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    }
    store_conn_close(c);
    return APR_SUCCESS;
}

/* What a borrowed connection is for (store_get). */
enum {
    SQ_GET_LOOKUP,  /* reads, after store_walhdr, with store_shm_whole first
                     * if it goes on into SQLite */
    SQ_GET_READ,    /* reads through SQLite */
    SQ_GET_WRITE    /* writes: the files are looked at every time */
};

static void store_put(cond_store *s, store_conn *c, apr_pool_t *p);

/* A write call takes the writers' lock (sqlite_wlock.h) before it looks
 * at the store's files, waiting as long as SQLite's busy timeout would;
 * the time it waited counts against that timeout. Before the look, not
 * after: no wait may come between the look and the transaction, since a
 * -shm cut short in between is a SIGBUS in SQLite's read of its mapping.
 * On failure the connection is back in the pool. */
static apr_status_t store_wlock_take(cond_store *s, store_conn *c,
                                     apr_pool_t *p)
{
    apr_time_t start;
    apr_status_t rv;

    if (!s->wlock) {
        return APR_SUCCESS;
    }
    start = store_clock();
    rv = sq_wlock_take(s->wlock, apr_time_from_msec(c->busy_ms), &c->wheld);
    if (rv != APR_SUCCESS) {
        store_put(s, c, p);
        cond_store_set_error(p, "another write held the store's writers' "
                             "lock for %d ms", c->busy_ms);
        return rv;
    }
    c->waited = store_clock() - start;
    c->shared = c->wheld ? sq_wlock_versions(s->wlock) : NULL;
    return APR_SUCCESS;
}

static void store_wlock_drop(cond_store *s, store_conn *c)
{
    c->shared = NULL;
    if (c->wheld) {
        c->wheld = 0;
        sq_wlock_give(s->wlock);
    }
}

/* Borrow a connection; a write refuses a read-only one up front, and
 * holds the writers' lock until store_put. */
static apr_status_t store_get(cond_store *s, store_conn **out, int mode,
                              apr_pool_t *p)
{
    int for_write = mode == SQ_GET_WRITE;
    void *res;
    apr_status_t rv;
    int dropped = 0;

    store_errbuf[0] = '\0';
    if (s->refused) {
        cond_store_set_error(p, "%s", s->refused_msg);
        return s->refused;
    }
    if (!s->conns) {
        cond_store_set_error(p, "the store was not opened in this process");
        return APR_EINIT;
    }
    for (;;) {
        store_open_err[0] = '\0';
        rv = apr_reslist_acquire(s->conns, &res);
        if (rv != APR_SUCCESS) {
            if (store_errbuf[0]) {
                cond_store_set_error(p, "%s", store_errbuf);
            }
            else if (store_open_err[0]) {
                cond_store_set_error(p, "cannot open %s: %s", s->path,
                                     store_open_err);
            }
            /* apr_reslist says APR_EAGAIN on its own timeout, which would
             * read as "version changed" to a caller. */
            return rv == APR_EAGAIN ? APR_TIMEUP : rv;
        }
        *out = res;
        if (for_write && !(*out)->readonly
            && (rv = store_wlock_take(s, *out, p)) != APR_SUCCESS) {
            return rv;
        }
        if ((rv = store_conn_check(s, *out, for_write)) != APR_SUCCESS
            || (mode == SQ_GET_READ
                && (rv = store_shm_whole(s, *out)) != APR_SUCCESS)) {
            store_wlock_drop(s, *out);
            apr_reslist_invalidate(s->conns, res);
            cond_store_set_error(p, "%s", store_errbuf);
            return rv;
        }
        if (!for_write || !(*out)->readonly) {
            return APR_SUCCESS;
        }
        /* A connection opened while the file was read-only stays so: drop
         * it, and when the file is writable now (the permissions were
         * fixed) take the next one, so no pooled read-only connection
         * keeps refusing writes. */
        (*out)->broken = 1;
        apr_reslist_invalidate(s->conns, res);
        /* Bounded: access() may say writable where SQLite still opens
         * read-only (effective uid, a security module). */
        if (++dropped > SQ_RO_DROPS || access(s->path, W_OK) != 0) {
            cond_store_set_error(p, "%s is read-only", s->path);
            return APR_EACCES;
        }
    }
}

/* Once the child has ended (store_child_exit) and no connection is
 * borrowed any more: close them all, once. */
static void store_close_idle(cond_store *s)
{
    apr_reslist_t *conns = s->conns;

    if (conns && apr_reslist_acquired_count(conns) == 0
        && apr_atomic_cas32(&s->closing, 2, 1) == 1) {
        s->conns = NULL;
        apr_pool_destroy(s->conns_pool);
    }
}

/* Give a connection back, first ending any transaction a failure left
 * open so the next borrower starts clean; SQLite's message for a failure
 * goes into p. */
static void store_put(cond_store *s, store_conn *c, apr_pool_t *p)
{
    c->waited = 0;
    if (c->err[0]) {
        cond_store_set_error(p, "%s", c->err);
        c->err[0] = '\0';
    }
    if (!c->broken && !sqlite3_get_autocommit(c->db)) {
        int rc = sqlite3_step(c->st[SQ_ROLLBACK]);
        sqlite3_reset(c->st[SQ_ROLLBACK]);
        if (rc != SQLITE_DONE) {
            c->broken = 1;
        }
    }
    store_wlock_drop(s, c);
    if (c->broken) {
        apr_reslist_invalidate(s->conns, c);
    }
    else {
        apr_reslist_release(s->conns, c);
    }
    if (apr_atomic_read32(&s->closing) == 1) {
        store_close_idle(s);
    }
}

/* ------------------------------------------------------------------ */
/* Statement helpers                                                    */

static void store_reset(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static void store_bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v) {
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    }
    else {
        sqlite3_bind_null(st, i);
    }
}

/* Run a statement that returns no rows; *changes gets the rows it hit. */
static apr_status_t store_run(store_conn *c, int which, int *changes)
{
    sqlite3_stmt *st = c->st[which];
    int rc = sqlite3_step(st);

    store_reset(st);
    if (rc != SQLITE_DONE) {
        return store_fail(c, rc);
    }
    if (changes) {
        *changes = sqlite3_changes(c->db);
    }
    return APR_SUCCESS;
}

static char *store_column_str(sqlite3_stmt *st, int col, apr_pool_t *p)
{
    const unsigned char *v = sqlite3_column_text(st, col);

    return v ? apr_pstrmemdup(p, (const char *)v,
                              (apr_size_t)sqlite3_column_bytes(st, col))
             : NULL;
}

/* Fill st from the SQ_COLUMNS columns starting at col; the lease left is
 * counted from now. */
static void store_read_state(sqlite3_stmt *stmt, int col, cond_state *st,
                             apr_time_t now, apr_pool_t *p)
{
    st->version = sqlite3_column_int64(stmt, col);
    st->exists = sqlite3_column_int(stmt, col + 1) != 0;
    st->mtime = apr_time_from_sec(sqlite3_column_int64(stmt, col + 2));
    st->claim_owner = store_column_str(stmt, col + 3, p);
    st->claim_left = st->claim_owner
                     ? sqlite3_column_int64(stmt, col + 4) - now : 0;
    st->meta = store_column_str(stmt, col + 5, p);
}

/*
 * Make "reserved" (the highest version that may be handed out) durable at
 * SQ_RESERVE_STEP past the sequence, with the one fsync this costs. A version
 * is handed out only below a durable reservation, so after a power cut has
 * thrown away the last commits, starting the sequence from "reserved"
 * (store_check_boot) never hands out a version number a second time.
 */
static apr_status_t store_reserve(store_conn *c)
{
    int rc;

    rc = sqlite3_exec(c->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(c->db, "BEGIN IMMEDIATE;"
                          "INSERT OR REPLACE INTO meta (name, value) "
                          "SELECT 'reserved', max(last + " SQ_RESERVE_STEP ", "
                          "coalesce((SELECT CAST(value AS INTEGER) FROM meta "
                          "WHERE name = 'reserved'), 0)) FROM sequence "
                          "WHERE id = 1; COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK && !sqlite3_get_autocommit(c->db)) {
            sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    /* Back to one fsync per checkpoint, whatever happened above. */
    if (sqlite3_exec(c->db, "PRAGMA synchronous=" SQ_SYNCHRONOUS, NULL, NULL,
                     NULL) != SQLITE_OK && rc == SQLITE_OK) {
        rc = sqlite3_errcode(c->db);
    }
    c->reserved = 0;            /* read it again inside the next write */
    return rc == SQLITE_OK ? APR_SUCCESS : store_fail(c, rc);
}

/* Inside a write transaction: is v below the durable reservation? The
 * bound is read from the store only when this connection's copy of it is
 * passed, once per SQ_RESERVE_STEP versions. */
static apr_status_t store_reserved(store_conn *c, apr_int64_t v, int *ok)
{
    sqlite3_stmt *st = c->st[SQ_RESERVED];
    int rc;

    if (v <= c->reserved) {
        *ok = 1;
        return APR_SUCCESS;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        c->reserved = sqlite3_column_int64(st, 0);
        rc = SQLITE_DONE;
    }
    store_reset(st);
    if (rc != SQLITE_DONE) {
        return store_fail(c, rc);
    }
    *ok = v <= c->reserved;
    return APR_SUCCESS;
}

/* Step a statement that ends in "RETURNING version": *v gets it, or
 * APR_NOTFOUND when the statement matched no row. Bindings stay. */
static apr_status_t store_step_version(store_conn *c, sqlite3_stmt *st,
                                       apr_int64_t *v)
{
    int rc = sqlite3_step(st), found = 0;

    if (rc == SQLITE_ROW) {
        *v = sqlite3_column_int64(st, 0);
        found = 1;
        rc = sqlite3_step(st);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        return store_fail(c, rc);          /* store_put rolls back */
    }
    return found ? APR_SUCCESS : APR_NOTFOUND;
}

/* Step a statement that gives one row the version v (bound as SQ_NEXT):
 * APR_NOTFOUND when it matched no row. Other bindings stay. */
static apr_status_t store_step_next(store_conn *c, sqlite3_stmt *st,
                                    apr_int64_t v)
{
    int rc;

    sqlite3_bind_int64(st, SQ_NEXT_ARG, v);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        return store_fail(c, rc);          /* store_put rolls back */
    }
    return sqlite3_changes(c->db) > 0 ? APR_SUCCESS : APR_NOTFOUND;
}

/*
 * The versions a write transaction hands out (docs/design.md, "Versions in
 * blocks"). They come from a block of SQ_SEQ_BLOCK: a transaction that
 * finds none in hand reads the sequence and moves it past a new block in
 * the same transaction, so no other writer, inside the writers' lock or
 * not, is handed a version of it once that transaction has committed.
 * What is left of the block after the commit is shared with the next
 * holder of the writers' lock (sq_wlock_versions), so the children of one
 * server hand out versions in the order of their commits. A version is
 * marked taken in the shared block before its statement runs, so a
 * holder that dies after its commit leaves no version of it to the next;
 * and a block taken by this transaction is shared only once it has
 * committed (store_seq_end). A writer without the lock (a child that
 * could not take it, another server on the same file) takes its versions
 * one at a time; its versions are above every block taken before, so a
 * key it wrote may get a lower version from a block next - unique still,
 * and nothing compares versions for order. What is left of a block when
 * the last process that shares it exits is never handed out: versions
 * have gaps.
 */
typedef struct {
    apr_int64_t next;       /* 0 or past end: none in hand */
    apr_int64_t end;
    int fresh;              /* taken by this transaction */
} store_seq;

static void store_seq_start(const store_conn *c, store_seq *q)
{
    q->next = c->shared ? c->shared->next : 0;
    q->end = c->shared ? c->shared->end : 0;
    q->fresh = 0;
}

/* Inside a write transaction: *v is the version the next statement that
 * hands one out gives. */
static apr_status_t store_seq_peek(store_conn *c, store_seq *q,
                                   apr_int64_t *v)
{
    sqlite3_stmt *st = c->st[SQ_SEQ_GET];
    apr_int64_t last = 0, n;
    apr_status_t rv;
    int rc;

    if (q->next && q->next <= q->end) {
        *v = q->next;
        return APR_SUCCESS;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        last = sqlite3_column_int64(st, 0);
    }
    store_reset(st);
    if (rc != SQLITE_ROW) {
        return store_fail(c, rc == SQLITE_DONE ? SQLITE_CORRUPT : rc);
    }
    n = c->shared ? SQ_SEQ_BLOCK : 1;
    sqlite3_bind_int64(c->st[SQ_SEQ_SET], 1, last + n);
    if ((rv = store_run(c, SQ_SEQ_SET, NULL)) != APR_SUCCESS) {
        return rv;
    }
    q->next = last + 1;
    q->end = last + n;
    q->fresh = 1;
    *v = q->next;
    return APR_SUCCESS;
}

/* Inside a write transaction, before the statement that hands out the
 * version store_seq_peek gave: *ok = 0 when it is past the durable
 * reservation (the caller rolls back and reserves). */
static apr_status_t store_seq_take(store_conn *c, store_seq *q, int *ok)
{
    apr_status_t rv = store_reserved(c, q->next, ok);

    if (rv == APR_SUCCESS && *ok) {
        q->next++;
        if (c->shared && !q->fresh) {
            c->shared->next = q->next;
        }
    }
    return rv;
}

/* The statement store_seq_take was for matched no row: its version was
 * not handed out, and is the next one again. */
static void store_seq_untake(store_conn *c, store_seq *q)
{
    q->next--;
    if (c->shared && !q->fresh) {
        c->shared->next = q->next;
    }
}

/* After a transaction that committed: share what is left of its block.
 * One that did not leaves the shared block as it is: the versions it took
 * of it are marked taken already, and a block it took itself was never
 * the store's to share. */
static void store_seq_end(store_conn *c, const store_seq *q, int committed)
{
    if (c->shared && committed) {
        c->shared->next = q->next;
        c->shared->end = q->end;
    }
}

/* Inside a write transaction: give every known key of related but skip a
 * new version (commit, release). */
static apr_status_t store_bump_related(store_conn *c,
                                       const apr_array_header_t *related,
                                       const char *skip, apr_int64_t now_sec,
                                       store_seq *q, int *ok)
{
    sqlite3_stmt *st = c->st[SQ_BUMP_KNOWN];
    apr_status_t rv = APR_SUCCESS;
    apr_int64_t v = 0;
    int i;

    for (i = 0; related && i < related->nelts && *ok; i++) {
        const char *key = APR_ARRAY_IDX(related, i, const char *);

        if (!key || !strcmp(key, skip)) {
            continue;
        }
        store_bind_text(st, 1, key);
        sqlite3_bind_int64(st, 2, now_sec);
        if ((rv = store_seq_peek(c, q, &v)) == APR_SUCCESS
            && (rv = store_seq_take(c, q, ok)) == APR_SUCCESS && *ok) {
            rv = store_step_next(c, st, v);
        }
        store_reset(st);
        if (rv == APR_NOTFOUND) {
            store_seq_untake(c, q);
            rv = APR_SUCCESS;           /* unknown: not invented */
            continue;
        }
        if (rv != APR_SUCCESS) {
            break;
        }
    }
    return rv;
}

/* What a versioned write does besides its one statement. */
typedef struct {
    const apr_array_header_t *related;  /* bumped when the statement hits */
    const char *key;                    /* the statement's own key */
    apr_int64_t now_sec;
} store_extra;

/* Frames in the WAL, copied back or not, from the WAL-index; 0 when it
 * cannot be read (the gate below then lets the write through). Not only
 * those not yet copied back: the passive checkpoints (store_wal_hook) keep
 * that number low while the WAL, which only a writer that finds it all
 * copied back and unread starts again, goes on growing. */
static apr_uint32_t store_wal_frames(const store_conn *c)
{
    apr_uint32_t w[SQ_WALIDX_WORDS];

    return store_walidx(c, w) == 1 ? w[SQ_WALIDX_MXFRAME] : 0;
}

/* Begin a write transaction, first holding it back while the WAL is past
 * its hard bound (SQ_WAL_HARD_PAGES): this writer runs the checkpoint, or
 * waits while another connection's runs, for at most SQ_BUSY_MS. Every
 * writer stops here, so the checkpoint gets the write lock at once. */
static apr_status_t store_begin(store_conn *c)
{
    apr_time_t now = apr_time_now(), until;
    apr_uint32_t frames = c->frames_seen ? c->frames_seen
                                         : store_wal_frames(c);
    int rc;

    c->frames_seen = 0;
    if (now >= store_gate_skip_until && frames >= SQ_WAL_HARD_PAGES) {
        until = now + apr_time_from_msec(SQ_BUSY_MS);
        do {
            rc = sqlite3_wal_checkpoint_v2(c->db, "main",
                                           SQLITE_CHECKPOINT_RESTART, NULL,
                                           NULL);
            if (rc != SQLITE_BUSY) {
                break;      /* copied back, or an error the write meets */
            }
            apr_sleep(SQ_BUSY_MAX_US);
        } while (store_wal_frames(c) >= SQ_WAL_HARD_PAGES
                 && (now = apr_time_now()) < until);
        if (now >= until) {
            store_gate_skip_until = now + apr_time_from_sec(SQ_GATE_SKIP_S);
        }
    }
    return store_run(c, SQ_BEGIN, NULL);
}

/* One attempt of store_versioned; *ok = 0: rolled back for a reservation
 * (the statement keeps its bindings for the retry). */
static apr_status_t store_versioned_steps(store_conn *c, sqlite3_stmt *st,
                                          const store_extra *x,
                                          store_seq *q, apr_int64_t *version,
                                          int *ok)
{
    apr_int64_t v = 0;
    apr_status_t rv;

    *ok = 1;
    if ((rv = store_begin(c)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = store_seq_peek(c, q, &v)) == APR_SUCCESS
        && (rv = store_seq_take(c, q, ok)) == APR_SUCCESS && *ok
        && (rv = store_step_next(c, st, v)) == APR_NOTFOUND) {
        store_seq_untake(c, q);
    }
    if (rv == APR_SUCCESS && *ok && x) {
        rv = store_bump_related(c, x->related, x->key, x->now_sec, q, ok);
    }
    if (rv == APR_NOTFOUND || (rv == APR_SUCCESS && !*ok)) {
        store_run(c, SQ_ROLLBACK, NULL);
    }
    if (rv != APR_SUCCESS || !*ok) {
        return rv;      /* any other failure: store_put rolls back */
    }
    if ((rv = store_run(c, SQ_COMMIT, NULL)) != APR_SUCCESS) {
        return rv;
    }
    *version = v;
    return APR_SUCCESS;
}

static apr_status_t store_versioned_tx(store_conn *c, sqlite3_stmt *st,
                                       const store_extra *x,
                                       apr_int64_t *version, int *ok)
{
    store_seq q;
    apr_status_t rv;

    store_seq_start(c, &q);
    rv = store_versioned_steps(c, st, x, &q, version, ok);
    store_seq_end(c, &q, rv == APR_SUCCESS && *ok);
    return rv;
}

/*
 * Run stmt (bound by the caller but for SQ_NEXT), which gives one row the
 * next version of the connection's block (store_seq_peek) - all in one
 * IMMEDIATE transaction, so the version and the row change land
 * together or not at all; with x, the known keys of x->related are bumped
 * in the same transaction. APR_NOTFOUND: stmt matched no row and nothing
 * was written (a block taken for it is dropped with the rollback).
 */
static apr_status_t store_versioned(store_conn *c, int which,
                                    const store_extra *x,
                                    apr_int64_t *version)
{
    sqlite3_stmt *st = c->st[which];
    apr_int64_t v = 0;
    apr_status_t rv;
    int ok = 0, tries;

    for (tries = 0; tries < 2; tries++) {
        rv = store_versioned_tx(c, st, x, &v, &ok);
        if (rv != APR_SUCCESS || ok) {
            break;
        }
        /* Another connection may have reserved meanwhile: one retry
         * after our own reservation is all it can take. */
        if ((rv = store_reserve(c)) != APR_SUCCESS) {
            break;
        }
    }
    store_reset(st);
    if (rv == APR_SUCCESS && !ok) {
        rv = APR_EGENERAL;
    }
    if (rv == APR_SUCCESS && version) {
        *version = v;
    }
    return rv;
}

/* ------------------------------------------------------------------ */
/* Configuration and startup                                            */

static const char *store_create(cond_store **out, const char *arg,
                                apr_pool_t *p)
{
    cond_store *s;
    apr_size_t n;

    if (!arg || arg[0] != '/') {
        return apr_psprintf(p, "the sqlite store needs an absolute file "
                            "path, not '%s'", arg ? arg : "");
    }
    n = strlen(arg);
    if (arg[n - 1] == '/') {
        return apr_psprintf(p, "the sqlite store path '%s' names a "
                            "directory; give the database file", arg);
    }
    s = apr_pcalloc(p, sizeof(*s));
    s->pool = p;
    s->path = apr_pstrdup(p, arg);
    for (n = 0; n < SQ_NFILES; n++) {
        s->files[n] = apr_pstrcat(p, s->path, store_file_suffix[n], NULL);
    }
    s->refused_path = apr_pstrcat(p, s->path, "-refused", NULL);
    *out = s;
    return NULL;
}

static int store_identity_ok(const char *id)
{
    apr_size_t i;

    for (i = 0; i < SQ_ID_BYTES * 2; i++) {
        if (!((id[i] >= '0' && id[i] <= '9')
              || (id[i] >= 'a' && id[i] <= 'f'))) {
            return 0;
        }
    }
    return id[i] == '\0';
}

/* Copy the stored identity into s. */
static apr_status_t store_read_identity(cond_store *s, sqlite3 *db)
{
    sqlite3_stmt *st;
    apr_status_t rv = APR_EGENERAL;
    int rc;

    rc = sqlite3_prepare_v2(db, store_sql[SQ_IDENTITY], -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return store_map(db, rc);
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        if (id && store_identity_ok(id)) {
            memcpy(s->identity, id, sizeof(s->identity));
            rv = APR_SUCCESS;
        }
    }
    else if (rc != SQLITE_DONE) {
        rv = store_map(db, rc);
    }
    sqlite3_finalize(st);
    return rv;
}

static apr_status_t store_pragma_text(sqlite3 *db, const char *sql, char *buf,
                                      apr_size_t len)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

    if (rc != SQLITE_OK) {
        return store_map(db, rc);
    }
    rc = sqlite3_step(st);
    buf[0] = '\0';
    if (rc == SQLITE_ROW && sqlite3_column_text(st, 0)) {
        apr_cpystrn(buf, (const char *)sqlite3_column_text(st, 0), len);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK || rc == SQLITE_DONE ? APR_SUCCESS
                                                : store_map(db, rc);
}

/* A new random identity in lowercase hex. */
static apr_status_t store_new_identity(char id[SQ_ID_BYTES * 2 + 1])
{
    unsigned char raw[SQ_ID_BYTES];
    apr_status_t rv = apr_generate_random_bytes(raw, sizeof(raw));
    int i;

    if (rv != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < SQ_ID_BYTES; i++) {
        apr_snprintf(id + 2 * i, 3, "%02x", raw[i]);
    }
    return APR_SUCCESS;
}

/* Create the schema and identity in one transaction; concurrent inits (or
 * an existing store) leave the first identity in place. */
static apr_status_t store_create_schema(sqlite3 *db)
{
    char id[SQ_ID_BYTES * 2 + 1];
    sqlite3_stmt *st = NULL;
    apr_status_t rv;
    int rc;

    if ((rv = store_new_identity(id)) != APR_SUCCESS) {
        return rv;
    }
    rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(db, store_schema, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO meta (name, value) "
                                "VALUES ('identity', ?1)", -1, &st, NULL);
    }
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(db, "PRAGMA user_version = "
                          APR_STRINGIFY(SQ_SCHEMA_VERSION) "; COMMIT",
                          NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        rv = store_map(db, rc);
        if (!sqlite3_get_autocommit(db)) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        }
        return rv;
    }
    return APR_SUCCESS;
}

/* Bring an open database to the current schema, writing only when
 * something is missing, so a store that is already set up can be opened by
 * a user who may only read it (the CLI). */
static apr_status_t store_prepare_db(cond_store *s, sqlite3 *db)
{
    char buf[32];
    apr_status_t rv;
    long uv;

    rv = store_pragma_text(db, "PRAGMA journal_mode", buf, sizeof(buf));
    if (rv == APR_SUCCESS && strcasecmp(buf, "wal")) {
        rv = store_pragma_text(db, "PRAGMA journal_mode=WAL", buf,
                               sizeof(buf));
        if (rv == APR_SUCCESS && strcasecmp(buf, "wal")) {
            rv = APR_ENOTIMPL;          /* the file system cannot do WAL */
        }
    }
    if (rv == APR_SUCCESS) {
        rv = store_pragma_text(db, "PRAGMA user_version", buf, sizeof(buf));
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    uv = strtol(buf, NULL, 10);
    if (uv > SQ_SCHEMA_VERSION) {
        return APR_EGENERAL;            /* written by a newer module */
    }
    if (uv < SQ_SCHEMA_VERSION || store_read_identity(s, db) != APR_SUCCESS) {
        rv = store_create_schema(db);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        rv = store_read_identity(s, db);
    }
    return rv;
}

/* mkdir -p: parents 0755 so the User can reach the store, the store's own
 * directory 0750. *created says whether that last one is new. */
static apr_status_t store_mkdirs(const char *dir, int *created, apr_pool_t *p)
{
    apr_finfo_t fi;
    char *parent;
    apr_status_t rv;

    *created = 0;
    if (apr_stat(&fi, dir, APR_FINFO_TYPE, p) == APR_SUCCESS) {
        return fi.filetype == APR_DIR ? APR_SUCCESS : APR_ENOTDIR;
    }
    parent = apr_pstrdup(p, dir);
    *strrchr(parent, '/') = '\0';
    if (*parent) {
        rv = apr_dir_make_recursive(parent, SQ_DIR_PERMS
                                            | APR_FPROT_WREAD
                                            | APR_FPROT_WEXECUTE, p);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    rv = apr_dir_make(dir, SQ_DIR_PERMS, p);
    if (rv == APR_SUCCESS) {
        *created = 1;
    }
    return APR_STATUS_IS_EEXIST(rv) ? APR_SUCCESS : rv;
}

/* Hand the store to the User httpd's children run as. The directory is
 * only handed over when this store created it: a path such as /tmp/x.db
 * must never give /tmp away. */
static apr_status_t store_chown(cond_store *s, const char *dir,
                                int dir_created, long uid, long gid,
                                apr_pool_t *p)
{
    const char *files[3];
    int i;

    if (dir_created && chown(dir, (uid_t)uid, (gid_t)gid) != 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    files[0] = s->path;
    files[1] = apr_pstrcat(p, s->path, "-wal", NULL);
    files[2] = apr_pstrcat(p, s->path, "-shm", NULL);
    for (i = 0; i < 3; i++) {
        if (chown(files[i], (uid_t)uid, (gid_t)gid) != 0 && errno != ENOENT) {
            return APR_FROM_OS_ERROR(errno);
        }
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Power cuts                                                           */

/*
 * WAL with synchronous=NORMAL fsyncs at checkpoints only: a crashed httpd
 * loses nothing (its writes are in the OS page cache), but a power cut can
 * take back the last commits - versions whose tags clients already hold.
 * So the store records the boot it was last opened on ("boot") and, when
 * httpd stops for good with nobody else using the file, a durable marker
 * ("clean") that every commit before it is on disk. Opening it on a later
 * boot without that marker means commits may be gone: the identity moves
 * (no tag handed out before can match) and the sequence restarts above
 * "reserved" (no version number comes back). See docs/design.md.
 */

/* This boot of the machine, "" where the kernel does not say. The tests
 * simulate a reboot by naming another one in CONDITIONAL_BOOT_ID. */
static void store_boot_id(char *buf, apr_size_t len)
{
    const char *fake = getenv("CONDITIONAL_BOOT_ID");
    FILE *f;

    if (fake) {
        apr_cpystrn(buf, fake, len);
        return;
    }
    f = fopen(SQ_BOOT_ID, "r");
    buf[0] = '\0';
    if (f) {
        if (!fgets(buf, (int)len, f)) {
            buf[0] = '\0';
        }
        fclose(f);
    }
    buf[strcspn(buf, "\r\n")] = '\0';
}

/* Run sql with every commit in it made durable (one fsync). */
static int store_exec_durable(sqlite3 *db, const char *sql)
{
    int rc = sqlite3_exec(db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);

    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK && !sqlite3_get_autocommit(db)) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    if (sqlite3_exec(db, "PRAGMA synchronous=" SQ_SYNCHRONOUS, NULL, NULL,
                     NULL) != SQLITE_OK && rc == SQLITE_OK) {
        rc = sqlite3_errcode(db);
    }
    return rc;
}

/* The meta value of name into buf ("" and 0 when absent). */
static int store_meta_get(sqlite3 *db, const char *name, char *buf,
                          apr_size_t len)
{
    sqlite3_stmt *st;
    int found = 0;

    buf[0] = '\0';
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE name = ?1", -1,
                           &st, NULL) != SQLITE_OK) {
        return 0;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
        apr_cpystrn(buf, (const char *)sqlite3_column_text(st, 0), len);
        found = 1;
    }
    sqlite3_finalize(st);
    return found;
}

/* A connection that may write removes the clean-stop marker, durably,
 * before it writes anything: from here on commits may be lost again. */
static int store_unmark_clean(sqlite3 *db)
{
    char buf[64];

    if (!store_meta_get(db, "clean", buf, sizeof(buf))) {
        return SQLITE_OK;
    }
    return store_exec_durable(db, "DELETE FROM meta WHERE name = 'clean'");
}

/* Was the store opened on another boot without being stopped cleanly
 * there? Only a store that may have handed out versions has anything to
 * lose. The sequence on disk cannot tell: a power cut before the first
 * checkpoint leaves it at 0 after versions were handed out. A version is
 * handed out only below a durable reservation, so a reservation on disk
 * is what says versions may have been. */
static int store_needs_new_epoch(sqlite3 *db, const char *boot)
{
    char last[64], clean[64];
    sqlite3_stmt *st;
    apr_int64_t seq = 0;

    if (store_meta_get(db, "boot", last, sizeof(last))
        && !strcmp(last, boot)) {
        return 0;           /* same boot: the OS page cache lost nothing */
    }
    if (store_meta_get(db, "clean", clean, sizeof(clean)) && last[0]
        && !strcmp(clean, last)) {
        return 0;           /* stopped cleanly on the boot it last ran on */
    }
    if (sqlite3_prepare_v2(db, "SELECT max(last, coalesce((SELECT "
                           "CAST(value AS INTEGER) FROM meta WHERE name = "
                           "'reserved'), 0)) FROM sequence WHERE id = 1", -1,
                           &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            seq = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
    }
    return seq > 0;
}

/* At init, in the parent: record this boot, and start a new epoch when
 * the last one may have ended in a power cut. Writes only on the first
 * start after a boot. */
static apr_status_t store_check_boot(cond_store *s, sqlite3 *db)
{
    char boot[64], last[64], id[SQ_ID_BYTES * 2 + 1], *sql;
    apr_status_t rv;
    int rc;

    store_boot_id(boot, sizeof(boot));
    if (!boot[0] || (store_meta_get(db, "boot", last, sizeof(last))
                     && !strcmp(last, boot)
                     && !store_meta_get(db, "clean", last, sizeof(last)))) {
        return APR_SUCCESS;
    }
    if ((rv = store_new_identity(id)) != APR_SUCCESS) {
        return rv;
    }
    rc = sqlite3_exec(db, "PRAGMA synchronous=FULL; BEGIN IMMEDIATE", NULL,
                      NULL, NULL);
    if (rc == SQLITE_OK && store_needs_new_epoch(db, boot)) {
        sql = sqlite3_mprintf("UPDATE meta SET value = %Q "
                              "WHERE name = 'identity';"
                              "UPDATE sequence SET last = max(last, "
                              "coalesce((SELECT CAST(value AS INTEGER) "
                              "FROM meta WHERE name = 'reserved'), 0));", id);
        rc = sql ? sqlite3_exec(db, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
        sqlite3_free(sql);
    }
    if (rc == SQLITE_OK) {
        sql = sqlite3_mprintf("INSERT OR REPLACE INTO meta (name, value) "
                              "VALUES ('boot', %Q);"
                              "DELETE FROM meta WHERE name = 'clean';"
                              "COMMIT", boot);
        rc = sql ? sqlite3_exec(db, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
        sqlite3_free(sql);
    }
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(db)) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    if (sqlite3_exec(db, "PRAGMA synchronous=" SQ_SYNCHRONOUS, NULL, NULL,
                     NULL) != SQLITE_OK && rc == SQLITE_OK) {
        rc = sqlite3_errcode(db);
    }
    return rc == SQLITE_OK ? store_read_identity(s, db) : store_map(db, rc);
}

/* Does another process have the store open? Every SQLite connection to a
 * WAL database holds a shared lock on the DMS byte of the -shm file for as
 * long as it is open (sqlite.org/walformat.html); this process must hold
 * none when it asks (closing our descriptor drops our own locks). */
static int store_open_elsewhere(cond_store *s, apr_pool_t *p)
{
    struct flock fl;
    int fd = open(apr_pstrcat(p, s->path, "-shm", NULL), O_RDONLY);
    int other = 0;

    if (fd < 0) {
        return 0;
    }
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = SQ_SHM_DMS;
    fl.l_len = 1;
    if (fcntl(fd, F_GETLK, &fl) != 0 || fl.l_type != F_UNLCK) {
        other = 1;
    }
    close(fd);
    return other;
}

/* httpd stops for good: mark the store stopped cleanly on this boot. The
 * marker's own fsync makes every commit before it durable (the WAL is
 * written in order). Left unmarked while another process still uses the
 * file; that process's next connection would remove it anyway. */
static apr_status_t store_shutdown(cond_store *s, apr_pool_t *p)
{
    char boot[64], *sql;
    sqlite3 *db = NULL;
    int rc;

    store_boot_id(boot, sizeof(boot));
    if (!boot[0] || store_open_elsewhere(s, p)) {
        return APR_EBUSY;
    }
    rc = sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READWRITE
                         | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) {
        rc = store_configure(db);
    }
    if (rc == SQLITE_OK) {
        sql = sqlite3_mprintf("INSERT OR REPLACE INTO meta (name, value) "
                              "VALUES ('clean', %Q)", boot);
        rc = sql ? store_exec_durable(db, sql) : SQLITE_NOMEM;
        sqlite3_free(sql);
    }
    sqlite3_close_v2(db);
    if (rc != SQLITE_OK) {
        return APR_EGENERAL;
    }
    /* Someone opened it while we wrote: take the marker back. */
    if (store_open_elsewhere(s, p)) {
        rc = sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READWRITE
                             | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_busy_timeout(db, SQ_BUSY_MS);
            store_unmark_clean(db);
        }
        sqlite3_close_v2(db);
        return APR_EBUSY;
    }
    return APR_SUCCESS;
}

/* Give the store a new identity: every tag handed out before stops
 * matching. */
static apr_status_t store_rotate_identity(cond_store *s, sqlite3 *db)
{
    char id[SQ_ID_BYTES * 2 + 1];
    sqlite3_stmt *st = NULL;
    apr_status_t rv;
    int rc;

    if ((rv = store_new_identity(id)) != APR_SUCCESS) {
        return rv;
    }
    rc = sqlite3_prepare_v2(db, "UPDATE meta SET value = ?1 "
                            "WHERE name = 'identity'", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) {
        return store_map(db, rc);
    }
    if (s->identity[0]) {
        store_mark_refused(s, s->identity);     /* retired */
    }
    return store_read_identity(s, db);
}

/*
 * The database file the last init in this process set up for path (the
 * parent's, across restarts): kept in the root pool, which outlives
 * every generation of the configuration.
 */
static store_fileid *store_last_db(const char *path, apr_pool_t *p)
{
    apr_pool_t *root = p, *up;
    const char *key = apr_pstrcat(p, "cond-sqlite-db:", path, NULL);
    void *was = NULL;

    while ((up = apr_pool_parent_get(root)) != NULL) {
        root = up;
    }
    apr_pool_userdata_get(&was, key, root);
    if (!was) {
        was = apr_pcalloc(root, sizeof(store_fileid));
        apr_pool_userdata_set(was, key, NULL, root);
    }
    return was;
}

/*
 * What a store's files say before it is opened. A -wal and -shm beside a
 * missing database file, or beside one that is not the file the last
 * generation used (a backup renamed into place under the running
 * server), belong to another file, and SQLite would apply that -wal to
 * it: they are removed. A database found without its -wal (the server
 * keeps the -wal, emptied, when it stops) lost what the -wal held that
 * was not yet in the database, versions among it, so versions could be
 * handed out again: *fresh_identity asks for a new identity, so no tag
 * from before can match one from after. In both cases, and for a -shm cut
 * short, the -shm goes too: processes of the generation before may still
 * have the old one open (they refuse the store), and SQLite would go on
 * with its index of a -wal that is gone instead of building a new one.
 */
static void store_init_files(cond_store *s, const store_fileid *last,
                             int *fresh_identity)
{
    store_fileid id;
    apr_off_t size;

    *fresh_identity = 0;
    if (store_stat(s->path, &id, &size) != 0
        || (last->ino && !store_same_file(&id, last))) {
        *fresh_identity = last->ino != 0;
        unlink(s->files[SQ_FILE_WAL]);
        unlink(s->files[SQ_FILE_SHM]);
    }
    else if (size > 0 && store_stat(s->files[SQ_FILE_WAL], &id, &size) != 0) {
        *fresh_identity = 1;
        unlink(s->files[SQ_FILE_SHM]);
    }
    else if (store_stat(s->files[SQ_FILE_SHM], &id, &size) == 0
             && size < SQ_WALIDX_PAGE) {
        unlink(s->files[SQ_FILE_SHM]);
    }
}

static apr_status_t store_init(cond_store *s, apr_pool_t *p)
{
    char *dir = apr_pstrdup(p, s->path);
    store_fileid *last;
    sqlite3 *db = NULL;
    apr_status_t rv;
    apr_off_t size;
    int created, rc, fresh;

    store_sqlite_setup();
    *strrchr(dir, '/') = '\0';
    rv = store_mkdirs(*dir ? dir : "/", &created, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    s->dir_created |= created;
    if (!s->wlock) {
        s->wlock = sq_wlock_create(s->pool);
    }
    last = store_last_db(s->path, p);
    store_init_files(s, last, &fresh);
    rc = sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READWRITE
                         | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) {
        rc = store_configure(db);
        rv = rc == SQLITE_OK ? store_prepare_db(s, db) : store_map(db, rc);
        /* A store that cannot be written cannot hand out versions
         * either: nothing to check (and reading it must keep working). */
        if (rv == APR_SUCCESS
            && (rv = store_check_boot(s, db)) == APR_EACCES) {
            rv = APR_SUCCESS;
        }
    }
    else {
        rv = store_map(db, rc);
    }
    /* A marker naming this identity: a process lost the database or
     * -wal under it (store_mark_refused). */
    if (rv == APR_SUCCESS && (fresh || store_marked_refused(s, s->identity))) {
        rv = store_rotate_identity(s, db);
    }
    if (rv == APR_SUCCESS && store_stat(s->path, &s->db, &size) != 0) {
        store_set_error("%s vanished while it was set up", s->path);
        rv = APR_ENOENT;
    }
    if (rv == APR_SUCCESS) {
        *last = s->db;
    }
    if (rv != APR_SUCCESS) {
        cond_store_set_error(p, "%s: %s", s->path,
                             db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    }
    sqlite3_close_v2(db);
    return rv;
}

/* The directory is handed over only when init created it (store_chown). */
static apr_status_t store_set_owner(cond_store *s, long uid, long gid,
                                    apr_pool_t *p)
{
    char *dir = apr_pstrdup(p, s->path);

    if (uid == -1 || geteuid() != 0) {
        return APR_SUCCESS;
    }
    *strrchr(dir, '/') = '\0';
    return store_chown(s, *dir ? dir : "/", s->dir_created, uid, gid, p);
}

/* The child ends: close every connection, unless one is still borrowed.
 * That happens when a restart kills a prefork child in the middle of a
 * store call (its signal handler destroys pchild there and then), and
 * apr_reslist's own cleanup would then fail an assertion and abort the
 * process. The process is ending: its locks and files go with it, and
 * SQLite needs nothing else from a connection that is not closed. Where
 * the call does go on (a thread of a child that exits), the last
 * connection given back closes them all (store_put). */
static apr_status_t store_child_exit(void *data)
{
    cond_store *s = data;

    if (s->conns) {
        apr_atomic_set32(&s->closing, 1);
        store_close_idle(s);
    }
    return APR_SUCCESS;
}

static apr_status_t store_child_init(cond_store *s, apr_pool_t *pchild)
{
    apr_status_t rv;
    store_conn *c;

    /* Registered here, in a child, never in the parent: httpd unloads and
     * reloads the module on a restart, which would leave SQLite holding a
     * VFS whose code and data are gone. */
    s->vfs = smap_vfs();
    /* In a pool of their own, which nothing but store_child_exit destroys
     * (an unmanaged one: not even apr_terminate at exit). */
    rv = apr_pool_create_unmanaged_ex(&s->conns_pool, NULL, NULL);
    if (rv == APR_SUCCESS) {
        rv = apr_reslist_create(&s->conns, 0, SQ_MAX_CONNS, SQ_MAX_CONNS, 0,
                                store_construct, store_destruct, s,
                                s->conns_pool);
    }
    if (rv != APR_SUCCESS) {
        s->conns = NULL;
        return rv;
    }
    apr_pool_cleanup_register(pchild, s, store_child_exit,
                              apr_pool_cleanup_null);
    if (s->identity[0]) {
        return APR_SUCCESS;     /* learned by init before the fork */
    }
    rv = store_get(s, &c, SQ_GET_READ, pchild);
    if (rv == APR_SUCCESS) {
        rv = store_read_identity(s, c->db);
        store_put(s, c, pchild);
    }
    return rv;
}

static const char *store_identity(cond_store *s, apr_pool_t *p)
{
    (void)p;
    return s->identity[0] ? s->identity : NULL;
}


/* ------------------------------------------------------------------ */
/* Operations                                                           */

/*
 * Lookups are remembered per connection, and a remembered one is served
 * only while the database is provably unchanged since it was read, so it
 * is exactly what the SELECT would return now:
 *
 * - In WAL mode a commit becomes visible to readers only by rewriting the
 *   WAL-index header in the -shm file, whoever makes it: any httpd child,
 *   another httpd sharing the file, conditionalctl, the sqlite3 shell
 *   (sharing a WAL database needs one host; -shm is shared memory there).
 *   Recovery after a crashed writer rewrites it too. A writer killed
 *   before its header update has committed nothing anyone can see: there
 *   is no invalidation step apart from the commit itself.
 * - No header value ever comes back: mxFrame only grows within a WAL
 *   generation and each new generation has new salts.
 * - The header is read (both copies, equal, as SQLite reads it) before the
 *   SELECT whose result is remembered under it. A commit landing between
 *   the two moves the header on for good, so that result is never served.
 *   While the header is the same, nothing was committed since.
 * - It is read with pread() from a descriptor of this connection's own
 *   -shm file (store_shm_fd); while the connection is open it holds a
 *   shared lock on the database, so no one can leave WAL mode, lock the
 *   database exclusively or delete the -shm: every writer goes through
 *   it. A pread() of a file cut short comes back short, where a read of
 *   its mapping would be a SIGBUS; and unlike a mapping, it copies the
 *   bytes in no promised order, so the header's own checksum is checked
 *   as well (as SQLite does), and a torn copy is never taken for a whole
 *   one.
 *
 * Anything unexpected (read-only or not WAL, no descriptor, a header being
 * written or not initialised) runs the SELECT and remembers nothing.
 */

/* walformat.html: the header's checksum over its first 40 bytes, in the
 * machine's byte order, is its last two words. */
static int store_walhdr_sound(const apr_uint32_t *h)
{
    apr_uint32_t s1 = 0, s2 = 0;
    int i;

    for (i = 0; i < SQ_WALHDR_WORDS - 2; i += 2) {
        s1 += h[i] + s2;
        s2 += h[i + 1] + s1;
    }
    return ((const unsigned char *)h)[SQ_WALHDR_ISINIT] != 0
           && s1 == h[SQ_WALHDR_WORDS - 2] && s2 == h[SQ_WALHDR_WORDS - 1];
}

/* The first SQ_WALIDX_WORDS words of the WAL-index (both copies of the
 * header, then nBackfill) into w. 1: the header is whole; 0: there is
 * none to rely on; -1: the -shm is cut short (the store is refused:
 * store_lookup). */
static int store_walidx(const store_conn *c, apr_uint32_t *w)
{
    const ssize_t want = SQ_WALIDX_WORDS * sizeof(*w);

    if (c->readonly || !c->wal || c->shm_fd < 0) {
        return 0;
    }
    if (pread(c->shm_fd, w, want, 0) != want) {
        return -1;
    }
    return !memcmp(w, w + SQ_WALHDR_WORDS, SQ_WALHDR_WORDS * sizeof(*w))
           && store_walhdr_sound(w);
}

/* The WAL-index header into hdr, as store_walidx says. */
static int store_walhdr(const store_conn *c, apr_uint32_t *hdr)
{
    apr_uint32_t w[SQ_WALIDX_WORDS];
    int rv = store_walidx(c, w);

    if (rv == 1) {
        memcpy(hdr, w, SQ_WALHDR_WORDS * sizeof(*hdr));
    }
    return rv;
}

/* FNV-1a of the length and the last bytes of key: keys mostly differ at
 * the end (they start with the same "host:port/"). */
static apr_uint32_t store_hash(const char *key)
{
    apr_size_t n = strlen(key);
    const unsigned char *at = (const unsigned char *)key
                              + (n > 24 ? n - 24 : 0);
    apr_uint32_t h = 2166136261U ^ (apr_uint32_t)n;

    while (*at) {
        h = (h ^ *at++) * 16777619U;
    }
    return h;
}

static apr_status_t store_memo_get(const store_memo *m, cond_state *st,
                                   apr_pool_t *p)
{
    *st = m->st;
    if (st->claim_owner) {
        st->claim_left = m->claim_expires - apr_time_now();
    }
    st->claim_owner = st->claim_owner ? apr_pstrdup(p, st->claim_owner)
                                      : NULL;
    st->meta = st->meta ? apr_pstrdup(p, st->meta) : NULL;
    return m->rv;
}

static void store_memo_set(store_memo *m, apr_uint64_t epoch,
                           apr_uint32_t hash, const char *key,
                           apr_status_t rv, const cond_state *st,
                           apr_time_t read_at)
{
    apr_size_t kn = strlen(key) + 1;
    apr_size_t on = rv == APR_SUCCESS && st->claim_owner
                    ? strlen(st->claim_owner) + 1 : 0;
    apr_size_t mn = rv == APR_SUCCESS && st->meta ? strlen(st->meta) + 1 : 0;
    char *at;

    m->epoch = 0;
    if (kn + on + mn > SQ_MEMO_MAX) {
        return;
    }
    if (kn + on + mn > m->cap) {
        char *buf = realloc(m->buf, kn + on + mn);
        if (!buf) {
            return;
        }
        m->buf = buf;
        m->cap = kn + on + mn;
    }
    if (rv == APR_SUCCESS) {
        m->st = *st;
        m->claim_expires = read_at + st->claim_left;
    }
    else {
        memset(&m->st, 0, sizeof(m->st));
    }
    m->key = memcpy(m->buf, key, kn);
    at = m->buf + kn;
    if (on) {
        m->st.claim_owner = memcpy(at, st->claim_owner, on);
        at += on;
    }
    if (mn) {
        m->st.meta = memcpy(at, st->meta, mn);
    }
    m->hash = hash;
    m->rv = rv;
    m->epoch = epoch;
}

static apr_status_t store_select(store_conn *c, const char *key,
                                 cond_state *st, apr_time_t now,
                                 apr_pool_t *p)
{
    sqlite3_stmt *stmt = c->st[SQ_LOOKUP];
    apr_status_t rv = APR_SUCCESS;
    int rc;

    store_bind_text(stmt, 1, key);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        store_read_state(stmt, 0, st, now, p);
    }
    else {
        rv = rc == SQLITE_DONE ? APR_NOTFOUND : store_fail(c, rc);
    }
    store_reset(stmt);
    return rv;
}

/* The -shm was found cut short under a lookup: refused from now on. */
static apr_status_t store_lookup_refused(cond_store *s, store_conn *c,
                                         apr_pool_t *p)
{
    if (!s->refused) {
        store_set_error("%s was cut short while the server ran; the store "
                        "is refused until httpd is restarted",
                        s->files[SQ_FILE_SHM]);
        store_conn_fault(s, c, APR_EGENERAL, 0);
    }
    c->broken = 1;
    cond_store_set_error(p, "%s", s->refused_msg);
    store_put(s, c, p);
    return s->refused;
}

static apr_status_t store_lookup(cond_store *s, const char *key,
                                 cond_state *st, apr_pool_t *p)
{
    apr_uint32_t hdr[SQ_WALHDR_WORDS];
    apr_uint32_t hash = 0;
    store_memo *m = NULL;
    store_conn *c;
    apr_time_t now;
    apr_status_t rv;

    if ((rv = store_get(s, &c, SQ_GET_LOOKUP, p)) != APR_SUCCESS) {
        return rv;
    }
    switch (store_walhdr(c, hdr)) {
    case -1:
        return store_lookup_refused(s, c, p);
    case 1:
        if (memcmp(hdr, c->hdr, sizeof(hdr))) {
            memcpy(c->hdr, hdr, sizeof(hdr));
            c->epoch++;                 /* everything remembered is stale */
        }
        hash = store_hash(key);
        m = &c->memo[hash & (SQ_MEMO_SLOTS - 1)];
        if (m->epoch == c->epoch && m->hash == hash && !strcmp(m->key, key)) {
            rv = store_memo_get(m, st, p);
            store_put(s, c, p);
            return rv;
        }
    }
    if (store_shm_whole(s, c) != APR_SUCCESS) {
        return store_lookup_refused(s, c, p);
    }
    now = apr_time_now();
    rv = store_select(c, key, st, now, p);
    if (m && (rv == APR_SUCCESS || rv == APR_NOTFOUND)) {
        store_memo_set(m, c->epoch, hash, key, rv, st, now);
    }
    store_put(s, c, p);
    return rv;
}

/* Why a claim did not take: a held claim wins over a version mismatch, so
 * the caller waits for the write in flight rather than re-evaluating. */
static apr_status_t store_claim_refused(store_conn *c, const char *key)
{
    sqlite3_stmt *stmt = c->st[SQ_LOOKUP];
    apr_status_t rv = APR_EAGAIN;
    int rc;

    store_bind_text(stmt, 1, key);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_type(stmt, 3) != SQLITE_NULL) {
            rv = APR_EBUSY;
        }
    }
    else if (rc != SQLITE_DONE) {
        rv = store_fail(c, rc);
    }
    store_reset(stmt);
    return rv;
}

/* The compare-and-set of a claim, inside a transaction already begun;
 * *changes 0: the key is not at expect or is claimed. */
static apr_status_t store_claim_set(store_conn *c, const char *key,
                                    apr_int64_t expect, const char *owner,
                                    apr_time_t lease_until, int *changes)
{
    apr_status_t rv;

    if (expect == 0) {
        store_bind_text(c->st[SQ_PLACEHOLDER], 1, key);
        if ((rv = store_run(c, SQ_PLACEHOLDER, NULL)) != APR_SUCCESS) {
            return rv;
        }
    }
    store_bind_text(c->st[SQ_CLAIM], 1, key);
    store_bind_text(c->st[SQ_CLAIM], 2, owner);
    sqlite3_bind_int64(c->st[SQ_CLAIM], 3, lease_until);
    sqlite3_bind_int64(c->st[SQ_CLAIM], 4, expect);
    return store_run(c, SQ_CLAIM, changes);
}

static apr_status_t store_claim_tx(store_conn *c, const char *key,
                                   apr_int64_t expect, const char *owner,
                                   apr_time_t lease_until)
{
    apr_status_t rv;
    int changes = 0;

    if ((rv = store_begin(c)) != APR_SUCCESS
        || (rv = store_claim_set(c, key, expect, owner, lease_until,
                                 &changes)) != APR_SUCCESS) {
        return rv;
    }
    if (changes == 0) {
        rv = store_claim_refused(c, key);
        store_run(c, SQ_ROLLBACK, NULL);
        return rv;
    }
    return store_run(c, SQ_COMMIT, NULL);
}

static apr_status_t store_claim(cond_store *s, const char *key,
                                apr_int64_t expect_version, const char *owner,
                                apr_interval_time_t lease, apr_pool_t *p)
{
    /* The lease is counted on this host's clock, the one every process
     * sharing the file reads it back with (store_read_state). */
    apr_time_t lease_until = apr_time_now() + lease;
    store_conn *c;
    apr_status_t rv;

    if (!owner || !*owner || expect_version < 0) {
        return APR_EINVAL;
    }
    if ((rv = store_get(s, &c, SQ_GET_WRITE, p)) != APR_SUCCESS) {
        return rv;
    }
    rv = store_claim_tx(c, key, expect_version, owner, lease_until);
    store_put(s, c, p);
    return rv;
}

/* The read, the check and the compare-and-set of claim_checked, under one
 * write lock: what check sees is what is claimed. A transaction left open
 * by a failure is rolled back by store_put. */
static apr_status_t store_claim_checked_tx(store_conn *c, const char *key,
                                           const char *owner,
                                           apr_interval_time_t lease,
                                           cond_claim_check_fn *check,
                                           void *baton, cond_state *st,
                                           int *found, apr_pool_t *p)
{
    apr_time_t now;
    apr_status_t rv;
    int changes = 0;

    if ((rv = store_begin(c)) != APR_SUCCESS) {
        return rv;
    }
    now = apr_time_now();
    rv = store_select(c, key, st, now, p);
    if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
        return rv;
    }
    *found = rv == APR_SUCCESS;
    if (*found && st->claim_owner) {
        rv = APR_EBUSY;
    }
    else if (check(baton, *found ? st : NULL)) {
        rv = COND_STORE_DECLINED;
    }
    else if ((rv = store_claim_set(c, key, *found ? st->version : 0, owner,
                                   now + lease, &changes)) == APR_SUCCESS) {
        /* The row read above, unclaimed, under the write lock: the
         * compare-and-set cannot miss. */
        return changes == 1 ? store_run(c, SQ_COMMIT, NULL) : APR_EGENERAL;
    }
    store_run(c, SQ_ROLLBACK, NULL);
    return rv;
}

static apr_status_t store_claim_checked(cond_store *s, const char *key,
                                        apr_int64_t expect_version,
                                        const char *owner,
                                        apr_interval_time_t lease,
                                        cond_claim_check_fn *check,
                                        void *baton, cond_state *st,
                                        int *found, apr_pool_t *p)
{
    store_conn *c;
    apr_status_t rv;

    (void)expect_version;   /* check runs inside the transaction */
    memset(st, 0, sizeof(*st));
    *found = 0;
    if (!owner || !*owner || !check) {
        return APR_EINVAL;
    }
    if ((rv = store_get(s, &c, SQ_GET_WRITE, p)) != APR_SUCCESS) {
        return rv;
    }
    rv = store_claim_checked_tx(c, key, owner, lease, check, baton, st,
                                found, p);
    store_put(s, c, p);
    return rv;
}

static apr_status_t store_commit(cond_store *s, const char *key,
                                 const char *owner, unsigned flags,
                                 const apr_array_header_t *related,
                                 apr_time_t now, apr_int64_t *version,
                                 apr_pool_t *p)
{
    store_extra x;
    store_conn *c;
    sqlite3_stmt *st;
    apr_status_t rv;

    if ((rv = store_get(s, &c, SQ_GET_WRITE, p)) != APR_SUCCESS) {
        return rv;
    }
    x.related = related;
    x.key = key;
    x.now_sec = apr_time_sec(now);
    st = c->st[SQ_RESOLVE];
    store_bind_text(st, 1, key);
    store_bind_text(st, 2, owner);
    sqlite3_bind_int(st, 3, (flags & COND_COMMIT_EXISTS) != 0);
    sqlite3_bind_int64(st, 4, x.now_sec);
    sqlite3_bind_int(st, 5, (flags & COND_COMMIT_HOLD) != 0);
    rv = store_versioned(c, SQ_RESOLVE, &x, version);
    store_put(s, c, p);
    return rv;
}

/* One attempt of store_release; *ok as for store_versioned_tx. */
static apr_status_t store_release_steps(store_conn *c, const char *key,
                                        const char *owner,
                                        const apr_array_header_t *related,
                                        store_seq *q, int *ok)
{
    sqlite3_stmt *st = c->st[SQ_RELEASE];
    apr_int64_t v = 0;
    apr_status_t rv;

    *ok = 1;
    if ((rv = store_begin(c)) != APR_SUCCESS) {
        return rv;
    }
    store_bind_text(st, 1, key);
    store_bind_text(st, 2, owner);
    rv = store_step_version(c, st, &v);
    store_reset(st);
    if (rv == APR_NOTFOUND) {
        store_run(c, SQ_ROLLBACK, NULL);
        return COND_STORE_NOT_HELD;
    }
    if (rv == APR_SUCCESS && v == 0) {
        store_bind_text(c->st[SQ_RELEASE_NEW], 1, key);
        rv = store_run(c, SQ_RELEASE_NEW, NULL);
    }
    if (rv == APR_SUCCESS) {
        rv = store_bump_related(c, related, key,
                                apr_time_sec(apr_time_now()), q, ok);
    }
    if (rv != APR_SUCCESS || !*ok) {
        store_run(c, SQ_ROLLBACK, NULL);
        return rv;
    }
    return store_run(c, SQ_COMMIT, NULL);
}

static apr_status_t store_release_tx(store_conn *c, const char *key,
                                     const char *owner,
                                     const apr_array_header_t *related,
                                     int *ok)
{
    store_seq q;
    apr_status_t rv;

    store_seq_start(c, &q);
    rv = store_release_steps(c, key, owner, related, &q, ok);
    store_seq_end(c, &q, rv == APR_SUCCESS && *ok);
    return rv;
}

/* One transaction whatever it finds: the claim cleared (a version-0
 * placeholder dropped), the related keys bumped. */
static apr_status_t store_release(cond_store *s, const char *key,
                                  const char *owner,
                                  const apr_array_header_t *related,
                                  apr_pool_t *p)
{
    store_conn *c;
    apr_status_t rv;
    int ok = 0, tries;

    if ((rv = store_get(s, &c, SQ_GET_WRITE, p)) != APR_SUCCESS) {
        return rv;
    }
    for (tries = 0; tries < 2; tries++) {
        rv = store_release_tx(c, key, owner, related, &ok);
        if (rv != APR_SUCCESS || ok
            || (rv = store_reserve(c)) != APR_SUCCESS) {
            break;
        }
    }
    if (rv == APR_SUCCESS && !ok) {
        rv = APR_EGENERAL;
    }
    store_put(s, c, p);
    return rv;
}

static apr_status_t store_renew(cond_store *s, const char *key,
                                const char *owner, apr_interval_time_t lease,
                                apr_pool_t *p)
{
    store_conn *c;
    apr_status_t rv;
    int changes = 0;

    if ((rv = store_get(s, &c, SQ_GET_WRITE, p)) != APR_SUCCESS) {
        return rv;
    }
    store_bind_text(c->st[SQ_RENEW], 1, key);
    store_bind_text(c->st[SQ_RENEW], 2, owner);
    sqlite3_bind_int64(c->st[SQ_RENEW], 3, apr_time_now() + lease);
    rv = store_run(c, SQ_RENEW, &changes);
    store_put(s, c, p);
    return rv == APR_SUCCESS && changes == 0 ? COND_STORE_NOT_HELD : rv;
}

static apr_status_t store_break_claim(cond_store *s, const char *key,
                                      const char *dead_owner, apr_time_t now,
                                      apr_int64_t *version, apr_pool_t *p)
{
    store_conn *c;
    sqlite3_stmt *st;
    apr_status_t rv;

    if ((rv = store_get(s, &c, SQ_GET_WRITE, p)) != APR_SUCCESS) {
        return rv;
    }
    st = c->st[SQ_BREAK];
    store_bind_text(st, 1, key);
    store_bind_text(st, 2, dead_owner);
    sqlite3_bind_int64(st, 3, apr_time_sec(now));
    rv = store_versioned(c, SQ_BREAK, NULL, version);
    store_put(s, c, p);
    return rv == APR_NOTFOUND ? COND_STORE_NOT_HELD : rv;
}

static apr_status_t store_bump(cond_store *s, const char *key, apr_time_t now,
                               apr_int64_t *version, apr_pool_t *p)
{
    store_conn *c;
    sqlite3_stmt *st;
    apr_status_t rv;

    if ((rv = store_get(s, &c, SQ_GET_WRITE, p)) != APR_SUCCESS) {
        return rv;
    }
    st = c->st[SQ_BUMP];
    store_bind_text(st, 1, key);
    sqlite3_bind_int64(st, 2, apr_time_sec(now));
    rv = store_versioned(c, SQ_BUMP, NULL, version);
    store_put(s, c, p);
    /* An upsert always hits a row. */
    return rv == APR_NOTFOUND ? APR_EGENERAL : rv;
}

static apr_status_t store_register(cond_store *s, const char *key,
                                   const char *meta, apr_time_t now,
                                   apr_int64_t *version, apr_pool_t *p)
{
    store_conn *c;
    sqlite3_stmt *st;
    apr_status_t rv;

    if ((rv = store_get(s, &c, SQ_GET_WRITE, p)) != APR_SUCCESS) {
        return rv;
    }
    st = c->st[SQ_REGISTER];
    store_bind_text(st, 1, key);
    sqlite3_bind_int64(st, 2, apr_time_sec(now));
    store_bind_text(st, 3, meta);
    rv = store_versioned(c, SQ_REGISTER, NULL, version);
    store_put(s, c, p);
    return rv == APR_NOTFOUND ? APR_EEXIST : rv;
}

static apr_status_t store_set_exists(cond_store *s, const char *key,
                                     apr_int64_t expect_version, int exists,
                                     const char *meta, apr_time_t now,
                                     apr_int64_t *version, apr_pool_t *p)
{
    store_conn *c;
    sqlite3_stmt *st;
    apr_status_t rv;

    if ((rv = store_get(s, &c, SQ_GET_WRITE, p)) != APR_SUCCESS) {
        return rv;
    }
    st = c->st[SQ_SET_EXISTS];
    store_bind_text(st, 1, key);
    sqlite3_bind_int(st, 2, exists != 0);
    sqlite3_bind_int64(st, 3, apr_time_sec(now));
    store_bind_text(st, 4, meta);
    sqlite3_bind_int64(st, 5, expect_version);
    rv = store_versioned(c, SQ_SET_EXISTS, NULL, version);
    store_put(s, c, p);
    return rv == APR_NOTFOUND ? APR_EAGAIN : rv;
}

static apr_status_t store_set_meta(cond_store *s, const char *key,
                                   apr_int64_t expect_version,
                                   const char *meta, apr_pool_t *p)
{
    store_conn *c;
    apr_status_t rv;
    int changes = 0;

    if ((rv = store_get(s, &c, SQ_GET_WRITE, p)) != APR_SUCCESS) {
        return rv;
    }
    store_bind_text(c->st[SQ_SET_META], 1, key);
    store_bind_text(c->st[SQ_SET_META], 2, meta);
    sqlite3_bind_int64(c->st[SQ_SET_META], 3, expect_version);
    rv = store_run(c, SQ_SET_META, &changes);
    store_put(s, c, p);
    return rv == APR_SUCCESS && changes == 0 ? APR_EAGAIN : rv;
}

static apr_status_t store_forget(cond_store *s, const char *key,
                                 apr_pool_t *p)
{
    store_conn *c;
    apr_status_t rv;
    int changes = 0;

    if ((rv = store_get(s, &c, SQ_GET_WRITE, p)) != APR_SUCCESS) {
        return rv;
    }
    store_bind_text(c->st[SQ_FORGET], 1, key);
    rv = store_run(c, SQ_FORGET, &changes);
    store_put(s, c, p);
    return rv == APR_SUCCESS && changes == 0 ? APR_NOTFOUND : rv;
}

static apr_status_t store_list(cond_store *s, const char *prefix,
                               cond_store_list_fn *fn, void *baton,
                               apr_pool_t *p)
{
    const char *end = cond_store_prefix_end(prefix ? prefix : "", p);
    apr_time_t now = apr_time_now();
    sqlite3_stmt *st;
    store_conn *c;
    apr_status_t rv;
    int rc;

    if ((rv = store_get(s, &c, SQ_GET_READ, p)) != APR_SUCCESS) {
        return rv;
    }
    st = c->st[end ? SQ_LIST_RANGE : SQ_LIST_FROM];
    store_bind_text(st, 1, prefix ? prefix : "");
    if (end) {
        store_bind_text(st, 2, end);
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *key = store_column_str(st, 0, p);
        cond_state state;

        store_read_state(st, 1, &state, now, p);
        if (fn(baton, key, &state)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE) {
        rv = store_fail(c, rc);
    }
    store_reset(st);
    store_put(s, c, p);
    return rv;
}

const cond_store_provider cond_sqlite_store = {
    "sqlite",
    0,
    store_create,
    store_init,
    store_set_owner,
    store_child_init,
    store_identity,
    store_lookup,
    store_claim,
    store_commit,
    store_release,
    store_renew,
    store_break_claim,
    store_bump,
    store_register,
    store_set_exists,
    store_set_meta,
    store_forget,
    store_list,
    store_shutdown,
    store_claim_checked
};
