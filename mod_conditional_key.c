/*
 * mod_conditional_key.c - which resource a request names: the site part of
 * the default key, the default key itself, and the ap_expr variables that
 * let a ConditionalKey use them.
 *
 * The site is what httpd chose for the request, never the client's Host
 * header as such, so that a host name the vhost answers to under several
 * names (ServerName, ServerAlias) is one site:
 *  - a virtual host is named by its ServerName and port, as configured
 *    (identical configurations on several nodes give identical keys);
 *  - two virtual hosts with the same ServerName and port, told apart only
 *    by ServerAlias, get their first ServerAlias (or their place among
 *    such twins) appended, "~alias", so they never share a key;
 *  - a virtual host that maps host names to sites itself (mass virtual
 *    hosting: mod_vhost_alias's VirtualDocumentRoot/VirtualScriptAlias,
 *    or a wildcard ServerAlias the request matched) has one site per host
 *    name: the request's host (httpd has checked and lowercased it).
 * The site of every virtual host is logged at startup, so the keys of two
 * nodes can be compared.
 */
#include "mod_conditional_private.h"

#include "key.h"

/* The directives of mod_vhost_alias that make a vhost a mass vhost. */
static const char *const conditional_mva_directives[] = {
    "VirtualDocumentRoot", "VirtualDocumentRootIP", "VirtualScriptAlias",
    "VirtualScriptAliasIP", NULL
};

static int conditional_is_mva(const ap_directive_t *d)
{
    int i;

    for (i = 0; conditional_mva_directives[i]; i++) {
        if (!strcasecmp(d->directive, conditional_mva_directives[i])) {
            return d->args && strcasecmp(d->args, "none");
        }
    }
    return 0;
}

/* Does the configuration below d (not inside a <VirtualHost> unless d is
 * that section) use mod_vhost_alias? <IfModule> and friends are looked
 * into: the tree still holds sections whose condition was false, so this
 * may say yes for one that is not in effect - a site per host name then,
 * never a site shared by several. */
static int conditional_tree_has_mva(const ap_directive_t *d)
{
    for (; d; d = d->next) {
        if (conditional_is_mva(d)) {
            return 1;
        }
        if (d->first_child && strcasecmp(d->directive, "<VirtualHost")
            && conditional_tree_has_mva(d->first_child)) {
            return 1;
        }
    }
    return 0;
}

/* The <VirtualHost> section that defined s. */
static const ap_directive_t *conditional_vhost_section(
    const ap_directive_t *d, const server_rec *s)
{
    const ap_directive_t *found;

    for (; d; d = d->next) {
        if (!strcasecmp(d->directive, "<VirtualHost")
            && (unsigned)d->line_num == s->defn_line_number && d->filename
            && s->defn_name && !strcmp(d->filename, s->defn_name)) {
            return d;
        }
        if (d->first_child
            && (found = conditional_vhost_section(d->first_child, s))) {
            return found;
        }
    }
    return NULL;
}

static apr_port_t conditional_conf_port(const server_rec *s)
{
    if (s->port) {
        return s->port;
    }
    return s->addrs ? s->addrs->host_port : 0;
}

/* First exact ServerAlias of s, NULL when it has none. */
static const char *conditional_first_alias(const server_rec *s)
{
    return s->names && s->names->nelts
           ? APR_ARRAY_IDX(s->names, 0, const char *) : NULL;
}

static conditional_server_conf *conditional_sconf(const server_rec *s)
{
    return ap_get_module_config(s->module_config, &conditional_module);
}

/* Two servers whose ServerName and port are the same: the later one is
 * told apart by its first ServerAlias, or by its place among them. */
static void conditional_site_tell(apr_pool_t *p, server_rec *first,
                                  server_rec *s)
{
    conditional_server_conf *sc = conditional_sconf(s);
    server_rec *o;
    int twins = 0;

    for (o = first; o != s; o = o->next) {
        conditional_server_conf *oc = conditional_sconf(o);
        if (!strcmp(oc->site_base, sc->site_base)) {
            twins++;
        }
    }
    if (!twins) {
        return;
    }
    sc->site_tell = conditional_first_alias(s);
    if (!sc->site_tell) {
        sc->site_tell = apr_psprintf(p, "%d", twins + 1);
    }
}

static void conditional_site_log(apr_pool_t *p, server_rec *main_s,
                                 server_rec *s)
{
    conditional_server_conf *sc = conditional_sconf(s);
    const char *where = s->is_virtual && s->defn_name
        ? apr_psprintf(p, "virtual host at %s:%u", s->defn_name,
                       s->defn_line_number)
        : "main server";

    if (sc->site_by_host) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, main_s, "COND00024: keys "
                     "of %s (%s) start with the request's host name and "
                     "port: mass virtual hosting", s->server_hostname, where);
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, main_s, "COND00025: keys "
                     "of %s (%s) start with %s%s", s->server_hostname, where,
                     sc->site, conditional_conf_port(s) ? ""
                     : " (the port is the one the request came in on)");
    }
}

void conditional_sites_init(apr_pool_t *p, server_rec *main_s, int log)
{
    int main_mva = conditional_tree_has_mva(ap_conftree);
    server_rec *s;

    for (s = main_s; s; s = s->next) {
        conditional_server_conf *sc = conditional_sconf(s);
        const ap_directive_t *sect = s->is_virtual
            ? conditional_vhost_section(ap_conftree, s) : NULL;

        sc->site_by_host = main_mva
            || (sect && conditional_tree_has_mva(sect->first_child));
        sc->site_base = cond_key_site(p, s->server_hostname,
                                      conditional_conf_port(s), NULL);
        sc->site_tell = NULL;
        conditional_site_tell(p, main_s, s);
        sc->site = cond_key_site(p, s->server_hostname,
                                 conditional_conf_port(s), sc->site_tell);
    }
    for (s = main_s; log && s; s = s->next) {
        conditional_site_log(p, main_s, s);
    }
}

/* The request's host matched only a wildcard ServerAlias of its vhost. */
static int conditional_wild_host(const request_rec *r)
{
    const server_rec *s = r->server;
    int i;

    if (!r->hostname || !s->wild_names || !s->wild_names->nelts
        || (s->server_hostname
            && !strcasecmp(r->hostname, s->server_hostname))) {
        return 0;
    }
    for (i = 0; s->names && i < s->names->nelts; i++) {
        if (!strcasecmp(r->hostname, APR_ARRAY_IDX(s->names, i, char *))) {
            return 0;
        }
    }
    for (i = 0; i < s->wild_names->nelts; i++) {
        if (!ap_strcasecmp_match(r->hostname,
                                 APR_ARRAY_IDX(s->wild_names, i, char *))) {
            return 1;
        }
    }
    return 0;
}

const char *conditional_site(request_rec *r)
{
    conditional_server_conf *sc = conditional_sconf(r->server);
    apr_port_t port = conditional_conf_port(r->server);

    if (!port && r->connection->local_addr) {
        port = r->connection->local_addr->port;
    }
    if (r->hostname && (sc->site_by_host || conditional_wild_host(r))) {
        return cond_key_site(r->pool, r->hostname, port, NULL);
    }
    if (sc->site && conditional_conf_port(r->server)) {
        return sc->site;
    }
    return cond_key_site(r->pool, r->server->server_hostname, port,
                         sc->site_tell);
}

/* Default key: the site plus the decoded, normalised path. */
const char *conditional_default_key(request_rec *r, const char *path)
{
    return cond_key_make(r->pool, conditional_site(r), path, NULL);
}

/* ------------------------------------------------------------------ */
/* ap_expr variables for ConditionalKey                                 */

static const char *conditional_expr_site(ap_expr_eval_ctx_t *ctx,
                                         const void *data)
{
    (void)data;
    return ctx->r ? conditional_site(ctx->r) : "";
}

static const char *conditional_expr_key(ap_expr_eval_ctx_t *ctx,
                                        const void *data)
{
    (void)data;
    return ctx->r ? conditional_default_key(ctx->r, ctx->r->uri) : "";
}

static const char *conditional_expr_query_key(ap_expr_eval_ctx_t *ctx,
                                              const void *data)
{
    request_rec *r = ctx->r;

    (void)data;
    if (!r) {
        return "";
    }
    return cond_key_make(r->pool, conditional_site(r), r->uri,
                         r->args ? r->args : "");
}

static const struct {
    const char *name;
    ap_expr_var_func_t *func;
} conditional_expr_vars[] = {
    { "CONDITIONAL_SITE", conditional_expr_site },
    { "CONDITIONAL_KEY", conditional_expr_key },
    { "CONDITIONAL_QUERY_KEY", conditional_expr_query_key },
    { NULL, NULL }
};

int conditional_expr_lookup(ap_expr_lookup_parms *parms)
{
    int i;

    if (parms->type != AP_EXPR_FUNC_VAR) {
        return DECLINED;
    }
    for (i = 0; conditional_expr_vars[i].name; i++) {
        if (!strcasecmp(parms->name, conditional_expr_vars[i].name)) {
            *parms->func = conditional_expr_vars[i].func;
            *parms->data = conditional_expr_vars[i].name;
            return OK;
        }
    }
    return DECLINED;
}
