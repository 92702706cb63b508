/*
 * mod_conditional_config.c - per-server and per-directory configuration,
 * the directives, and the store instances they name.
 */
#include "mod_conditional_private.h"

/* Per-config-cycle list of distinct stores; rebuilt on every (re)load. */
apr_array_header_t *conditional_stores;

void *conditional_create_server_conf(apr_pool_t *p, server_rec *s)
{
    conditional_server_conf *c = apr_pcalloc(p, sizeof(*c));
    (void)s;
    c->lease = COND_UNSET;
    c->quick = COND_UNSET;
    return c;
}

void *conditional_merge_server_conf(apr_pool_t *p, void *basev,
                                           void *addv)
{
    conditional_server_conf *base = basev, *add = addv;
    conditional_server_conf *c = apr_pcalloc(p, sizeof(*c));
    c->inst = add->inst ? add->inst : base->inst;
    c->lease = add->lease != COND_UNSET ? add->lease : base->lease;
    c->quick = add->quick != COND_UNSET ? add->quick : base->quick;
    return c;
}

void *conditional_create_dir_conf(apr_pool_t *p, char *dir)
{
    conditional_dir_conf *c = apr_pcalloc(p, sizeof(*c));
    (void)dir;
    c->enabled = c->require = c->lockwait = COND_UNSET;
    c->invalidate_parent = COND_UNSET;
    return c;
}

void *conditional_merge_dir_conf(apr_pool_t *p, void *basev,
                                        void *addv)
{
    conditional_dir_conf *base = basev, *add = addv;
    conditional_dir_conf *c = apr_pcalloc(p, sizeof(*c));
#define COND_MERGE(f) c->f = (add->f != COND_UNSET) ? add->f : base->f
    COND_MERGE(enabled);
    COND_MERGE(require);
    COND_MERGE(lockwait);
    COND_MERGE(invalidate_parent);
#undef COND_MERGE
    c->key_set = add->key_set || base->key_set;
    c->key = add->key_set ? add->key : base->key;
    return c;
}

/* A new instance of pv for arg, listed for init and child_init. */
static const char *conditional_new_store(apr_pool_t *p, const char *spec,
                                         const cond_store_provider *pv,
                                         const char *arg, server_rec *s,
                                         conditional_store_inst **out)
{
    conditional_store_inst *inst = apr_pcalloc(p, sizeof(*inst));
    const char *err;

    inst->spec = spec;
    inst->arg = arg;
    inst->provider = pv;
    inst->server = pv->per_server ? s : NULL;
    err = pv->create(&inst->store, arg, p);
    if (err) {
        return apr_psprintf(p, "ConditionalStore %s: %s", spec, err);
    }
    APR_ARRAY_PUSH(conditional_stores, conditional_store_inst *) = inst;
    *out = inst;
    return NULL;
}

/* Parse a ConditionalStore value (store.c, shared with conditionalctl) and
 * create (not open) the store instance. A relative sqlite path is taken
 * relative to ServerRoot, like every other httpd path. A store that is
 * only a file is shared by every server naming it; one that depends on its
 * server's own settings (dbd: that server's DBDParams) is made per server. */
const char *conditional_make_store(apr_pool_t *p, const char *spec,
                                   int explicit, server_rec *s,
                                   conditional_store_inst **out)
{
    const cond_store_provider *pv;
    conditional_store_inst *inst;
    const char *arg, *err;
    int i;

    err = cond_store_parse(spec, ap_server_root_relative(p, ""), 0, &pv,
                           &arg, p);
    if (err) {
        return apr_pstrcat(p, "ConditionalStore: ", err, NULL);
    }
    if (pv->per_server && arg) {
        /* "dbd:PARAMS" is conditionalctl's; in httpd, mod_dbd connects */
        return apr_psprintf(p, "ConditionalStore %s: in httpd the "
                            "connection comes from mod_dbd; write "
                            "\"ConditionalStore %s\" and set DBDriver and "
                            "DBDParams", spec, pv->name);
    }
    spec = arg ? apr_pstrcat(p, pv->name, ":", arg, NULL) : pv->name;
    for (i = 0; i < conditional_stores->nelts && !pv->per_server; i++) {
        inst = APR_ARRAY_IDX(conditional_stores, i, conditional_store_inst *);
        if (!strcmp(inst->spec, spec)) {
            inst->explicit |= explicit;
            *out = inst;
            return NULL;
        }
    }
    err = conditional_new_store(p, spec, pv, arg, s, out);
    if (!err) {
        (*out)->explicit = explicit;
    }
    return err;
}

/* The store server s uses when it inherits inst from the main server: the
 * same one, or for a per-server provider an instance of its own. */
conditional_store_inst *conditional_store_for(apr_pool_t *p,
                                              conditional_store_inst *inst,
                                              server_rec *s)
{
    conditional_store_inst *own;

    if (!inst->provider->per_server || inst->server == s
        || conditional_new_store(p, inst->spec, inst->provider, inst->arg, s,
                                 &own)) {
        return inst;
    }
    own->explicit = inst->explicit;
    return own;
}

/*
 * A store whose identity is not the one the previous generation of this
 * server used was made anew, or lost its -wal, while the server ran.
 * Writes that started before may still be running, with their claims in a
 * file that is gone: the new store cannot see them. For one lease (the
 * longest such a write counts as alive) the store is left quiet: reads
 * pass through untagged and writes get 503. The identity is remembered in
 * the process pool, which outlives restarts.
 */
void conditional_store_generation(server_rec *s,
                                  conditional_store_inst *inst, int lease)
{
    apr_pool_t *pp = s->process->pool;
    const char *key = apr_pstrcat(pp, "conditional-identity:", inst->spec,
                                  NULL);
    const char *id;
    void *was = NULL;

    /* Only a store with files, whose identity init has read: asking a
     * dbd store in the parent would open a connection there, before the
     * fork (and PostgreSQL is not deleted from under a running server). */
    inst->quiet_until = 0;
    if (inst->provider != &cond_sqlite_store) {
        return;
    }
    id = inst->provider->identity(inst->store, pp);
    if (!id) {
        return;
    }
    apr_pool_userdata_get(&was, key, pp);
    if (was && strcmp(was, id)) {
        inst->quiet_until = apr_time_now() + apr_time_from_sec(lease);
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "COND00026: store %s "
                     "has a new identity (%s, was %s): it was deleted, "
                     "replaced or lost its -wal while the server ran. For "
                     "%d s (ConditionalLeaseTime) reads pass through "
                     "untagged and writes get 503, so that no write still "
                     "running from before is missed", inst->spec, id,
                     (const char *)was, lease);
    }
    if (!was || strcmp(was, id)) {
        apr_pool_userdata_set(apr_pstrdup(pp, id), key, NULL, pp);
    }
}

/* The longest ConditionalLeaseTime of the servers that use inst: the
 * longest any of its writes counts as alive. */
int conditional_store_lease(server_rec *s, const conditional_store_inst *inst)
{
    int lease = 0;

    for (; s; s = s->next) {
        conditional_server_conf *sc =
            ap_get_module_config(s->module_config, &conditional_module);
        int l = sc->lease == COND_UNSET ? COND_DEFAULT_LEASE : sc->lease;
        if (sc->inst == inst && l > lease) {
            lease = l;
        }
    }
    return lease;
}

int conditional_store_quiet(const conditional_store_inst *inst,
                            apr_time_t now)
{
    return inst->quiet_until && now < inst->quiet_until;
}

static const char *conditional_set_store(cmd_parms *cmd, void *dummy,
                                         const char *arg)
{
    conditional_server_conf *sc =
        ap_get_module_config(cmd->server->module_config, &conditional_module);
    (void)dummy;
    return conditional_make_store(cmd->pool, arg, 1, cmd->server,
                                  &sc->inst);
}

static const char *conditional_parse_seconds(cmd_parms *cmd, const char *arg,
                                             int min, int max, int *out)
{
    char *end;
    apr_int64_t v;

    errno = 0;
    v = apr_strtoi64(arg, &end, 10);
    if (errno || end == arg || *end || v < min || v > max) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a whole number of "
                            "seconds between %d and %d", cmd->cmd->name,
                            arg, min, max);
    }
    *out = (int)v;
    return NULL;
}

static const char *conditional_set_lease(cmd_parms *cmd, void *dummy,
                                         const char *arg)
{
    conditional_server_conf *sc =
        ap_get_module_config(cmd->server->module_config, &conditional_module);
    (void)dummy;
    return conditional_parse_seconds(cmd, arg, 1, 86400, &sc->lease);
}

static const char *conditional_set_quick(cmd_parms *cmd, void *dummy,
                                         int on)
{
    conditional_server_conf *sc =
        ap_get_module_config(cmd->server->module_config, &conditional_module);

    (void)dummy;
    sc->quick = on;
    return NULL;
}

static const char *conditional_set_lockwait(cmd_parms *cmd, void *dcfg,
                                            const char *arg)
{
    conditional_dir_conf *dc = dcfg;
    return conditional_parse_seconds(cmd, arg, 0, 3600, &dc->lockwait);
}

static const char *conditional_set_key(cmd_parms *cmd, void *dcfg,
                                       const char *arg)
{
    conditional_dir_conf *dc = dcfg;
    const char *err = NULL;

    dc->key = ap_expr_parse_cmd(cmd, arg, AP_EXPR_FLAG_STRING_RESULT, &err,
                                NULL);
    if (err) {
        return apr_psprintf(cmd->pool, "ConditionalKey: cannot parse "
                            "expression '%s': %s", arg, err);
    }
    dc->key_set = 1;
    return NULL;
}

const command_rec conditional_cmds[] = {
    AP_INIT_FLAG("Conditional", ap_set_flag_slot,
                 (void *)APR_OFFSETOF(conditional_dir_conf, enabled),
                 OR_FILEINFO, "On to give this location ETags, 304s and "
                 "lost-update protection"),
    AP_INIT_TAKE1("ConditionalKey", conditional_set_key, NULL, OR_FILEINFO,
                  "ap_expr string naming the resource a request acts on"),
    AP_INIT_FLAG("ConditionalRequire", ap_set_flag_slot,
                 (void *)APR_OFFSETOF(conditional_dir_conf, require),
                 OR_FILEINFO, "On to answer 428 to writes without a "
                 "precondition"),
    AP_INIT_TAKE1("ConditionalLockWait", conditional_set_lockwait, NULL,
                  OR_FILEINFO, "seconds a write waits for an in-flight "
                  "write on the same key"),
    AP_INIT_FLAG("ConditionalInvalidateParent", ap_set_flag_slot,
                 (void *)APR_OFFSETOF(conditional_dir_conf,
                                      invalidate_parent),
                 OR_FILEINFO, "On to bump the parent collection's version "
                 "on every write"),
    AP_INIT_TAKE1("ConditionalStore", conditional_set_store, NULL, RSRC_CONF,
                  "the version store, e.g. sqlite:/var/lib/apache2/"
                  "conditional/conditional.db"),
    AP_INIT_TAKE1("ConditionalLeaseTime", conditional_set_lease, NULL,
                  RSRC_CONF, "seconds a write's claim lives before it is "
                  "presumed dead"),
    /* Server and virtual host only: before URL mapping no <Location> or
     * <Directory> section is known yet. */
    AP_INIT_FLAG("ConditionalQuickHandler", conditional_set_quick, NULL,
                 RSRC_CONF, "On to answer a matching If-None-Match of a "
                 "public representation before URL mapping and access "
                 "control (docs/directives.md)"),
    {NULL}
};

int conditional_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                                  apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    conditional_stores = apr_array_make(pconf, 2,
                                        sizeof(conditional_store_inst *));
    return OK;
}
