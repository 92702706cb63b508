/*
 * sqlite_mmap.h - an SQLite VFS that reads a database file through one
 * memory mapping per process, shared by all of that process's connections.
 *
 * SQLite's own memory-mapped I/O (PRAGMA mmap_size) maps the file once per
 * connection. A child holds a connection per thread that was ever inside
 * the store at once, so every page read would be mapped, faulted in and
 * counted in its resident size a dozen times. With this VFS a connection
 * opened on it and given a PRAGMA mmap_size reads the pages of its main
 * database file from the process's one mapping; all other I/O, locking and
 * the WAL go to the default VFS unchanged.
 */
#ifndef COND_SQLITE_MMAP_H
#define COND_SQLITE_MMAP_H

/* Register the VFS (once per process; safe from any thread). Returns its
 * name for sqlite3_open_v2, or NULL when it could not be registered, in
 * which case the default VFS should be used. */
const char *smap_vfs(void);

#endif
