/*
 * mod_conditional_dbd.c - "ConditionalStore dbd": hands the PostgreSQL
 * store (pgsql_store.c) the connections mod_dbd pools for each server, as
 * set up by that server's DBDriver pgsql / DBDParams.
 *
 * A connection is borrowed for one store call (ap_dbd_open) and given back
 * at once (ap_dbd_close), never held while a backend runs: ap_dbd_acquire
 * would pin one for the whole request. No prepared statements are
 * registered with mod_dbd (DBDPrepareSQL): the store prepares its own on
 * each session, and again after a restart of the database.
 */

#include "mod_conditional_private.h"

#include "mod_dbd.h"

static APR_OPTIONAL_FN_TYPE(ap_dbd_open) *conditional_dbd_open;
static APR_OPTIONAL_FN_TYPE(ap_dbd_close) *conditional_dbd_close;

static apr_status_t conditional_dbd_acquire(void *baton, apr_pool_t *p,
                                            cond_dbd_conn *c)
{
    ap_dbd_t *rec = conditional_dbd_open(p, baton);

    /* mod_dbd has logged why (its own AH tags) */
    if (!rec) {
        return APR_ECONNREFUSED;
    }
    c->driver = rec->driver;
    c->handle = rec->handle;
    c->pool = rec->pool;
    c->opaque = rec;
    return APR_SUCCESS;
}

static void conditional_dbd_release(void *baton, cond_dbd_conn *c)
{
    conditional_dbd_close(baton, c->opaque);
}

/* post_config: give every dbd store its server's mod_dbd pool. Returns an
 * error message for a configuration that cannot work. */
const char *conditional_dbd_bind(void)
{
    int i;

    conditional_dbd_open = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open);
    conditional_dbd_close = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);
    for (i = 0; i < conditional_stores->nelts; i++) {
        conditional_store_inst *inst =
            APR_ARRAY_IDX(conditional_stores, i, conditional_store_inst *);

        if (inst->provider != &cond_dbd_store) {
            continue;
        }
        if (!conditional_dbd_open || !conditional_dbd_close) {
            return "ConditionalStore dbd needs mod_dbd: LoadModule "
                   "dbd_module, DBDriver pgsql and DBDParams";
        }
        cond_dbd_set_source(inst->store, conditional_dbd_acquire,
                            conditional_dbd_release, inst->server);
    }
    return NULL;
}
