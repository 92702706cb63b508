/*
 * pgsql_store.h - how the PostgreSQL store ("dbd", pgsql_store.c) gets its
 * connections. No httpd types: the module hands it mod_dbd's pool through
 * two callbacks (mod_conditional_dbd.c); conditionalctl and the unit tests
 * give it a connection string instead ("dbd:PARAMS") and it keeps a small
 * pool of its own.
 */
#ifndef COND_PGSQL_STORE_H
#define COND_PGSQL_STORE_H

#include <apr_dbd.h>

#include "store.h"

/* One borrowed connection. */
typedef struct {
    const apr_dbd_driver_t *driver;
    apr_dbd_t *handle;
    apr_pool_t *pool;       /* lives exactly as long as the connection */
    void *opaque;           /* the lender's own record */
} cond_dbd_conn;

/* Borrow a connection for one store call (mod_dbd: ap_dbd_open); p lives
 * for that call only. Anything but APR_SUCCESS: none is available. */
typedef apr_status_t cond_dbd_acquire_fn(void *baton, apr_pool_t *p,
                                         cond_dbd_conn *c);
/* Give it back (mod_dbd: ap_dbd_close). */
typedef void cond_dbd_release_fn(void *baton, cond_dbd_conn *c);

/* Make s borrow its connections through acquire/release, called with
 * baton (the server_rec). For a store created without PARAMS this must be
 * done before child_init. */
void cond_dbd_set_source(cond_store *s, cond_dbd_acquire_fn *acquire,
                         cond_dbd_release_fn *release, void *baton);

#endif /* COND_PGSQL_STORE_H */
