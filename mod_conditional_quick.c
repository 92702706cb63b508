/*
 * mod_conditional_quick.c - ConditionalQuickHandler: a matching
 * If-None-Match answered in httpd's quick_handler, before URL mapping,
 * <Location>/<Directory> sections and access control - the trade
 * mod_cache's CacheQuickHandler makes (docs/directives.md).
 *
 * Before URL mapping only the server (virtual host) is known: not whether
 * a <Location> says "Conditional On", nor its ConditionalKey, nor whether
 * the resource is behind authentication. So the quick handler trusts only
 * what the normal path recorded with the representation (variant.h): its
 * 200 was tagged under the default key, for a request that carried no
 * credentials, was given no user and read no .htaccess, under this very
 * configuration (public_id is the configuration's id, below). Adding
 * authentication and restarting changes the id, so no record made before
 * answers early again. Anything else - no record, another configuration,
 * a 200, a 412, a write, a request with credentials - declines to the
 * normal path, which then decides as it always does.
 */
#include "mod_conditional_private.h"

#include "http_main.h"
#include "apr_sha1.h"

/* This generation's configuration id: 16 hex digits of SHA-1 over every
 * directive and its arguments (Includes expanded, ${VAR} resolved, in
 * order and nesting) and the -D defines. The same configuration on
 * several nodes gives the same id; any change gives another. */
static const char *conditional_conf_id;

static void conditional_hash_str(apr_sha1_ctx_t *ctx, const char *s)
{
    s = s ? s : "";
    apr_sha1_update_binary(ctx, (const unsigned char *)s, strlen(s) + 1);
}

/* Sections are hashed with their contents, even those whose condition
 * (<IfModule>, <IfDefine>) was false: the modules and defines that decide
 * them are hashed too. */
static void conditional_hash_tree(apr_sha1_ctx_t *ctx,
                                  const ap_directive_t *d)
{
    for (; d; d = d->next) {
        conditional_hash_str(ctx, d->directive);
        conditional_hash_str(ctx, d->args);
        if (d->first_child) {
            conditional_hash_str(ctx, "{");
            conditional_hash_tree(ctx, d->first_child);
            conditional_hash_str(ctx, "}");
        }
    }
}

static const char *conditional_config_hash(apr_pool_t *p)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[APR_SHA1_DIGESTSIZE];
    apr_sha1_ctx_t ctx;
    char *id = apr_palloc(p, 17);
    int i;

    apr_sha1_init(&ctx);
    conditional_hash_tree(&ctx, ap_conftree);
    for (i = 0; ap_server_config_defines
                && i < ap_server_config_defines->nelts; i++) {
        conditional_hash_str(&ctx, APR_ARRAY_IDX(ap_server_config_defines,
                                                 i, const char *));
    }
    apr_sha1_final(digest, &ctx);
    for (i = 0; i < 8; i++) {
        id[2 * i] = hex[digest[i] >> 4];
        id[2 * i + 1] = hex[digest[i] & 0xf];
    }
    id[16] = '\0';
    return id;
}

/* post_config, every generation: the configuration's id, and a line per
 * server that answers early, so the administrator sees where. */
void conditional_quick_init(apr_pool_t *pconf, server_rec *s)
{
    server_rec *vs;

    conditional_conf_id = conditional_config_hash(pconf);
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return;
    }
    for (vs = s; vs; vs = vs->next) {
        conditional_server_conf *sc =
            ap_get_module_config(vs->module_config, &conditional_module);
        if (sc->quick == 1) {
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "COND00120: "
                         "ConditionalQuickHandler On for %s: 304s of "
                         "representations last served without credentials "
                         "under configuration %s are answered before "
                         "access control", vs->server_hostname,
                         conditional_conf_id);
        }
    }
}

/*
 * What the record filter keeps as the representation's public_id: this
 * configuration's id when the quick handler may answer for it later, ""
 * when not. Only on servers with the quick handler On (elsewhere nothing
 * reads it, and a flag that flips would cost a store write). The request
 * the key was made for (rq->r, not an internal redirect) and the one that
 * answered (r) must both have carried no credentials, have no user and
 * have read no .htaccess (a .htaccess can add authentication without a
 * restart, so a directory that allows one never counts as public).
 */
const char *conditional_public_id(request_rec *r, conditional_req *rq)
{
    request_rec *first = rq->r;
    conditional_server_conf *sc =
        ap_get_module_config(first->server->module_config,
                             &conditional_module);

    if (sc->quick != 1 || !conditional_conf_id || rq->custom_key
        || !ap_is_initial_req(first) || r->main
        || first->user || r->user || first->htaccess || r->htaccess
        || apr_table_get(first->headers_in, "Authorization")) {
        return "";
    }
    return conditional_conf_id;
}

/*
 * The path the normal path's default key is built from, as
 * ap_process_request_internal() makes r->uri of it: dot segments
 * removed, unreserved characters decoded, slashes merged as MergeSlashes
 * says. NULL - decline - when it cannot be known here for sure: a path
 * httpd refuses, or one still holding a %-escape, whose decoding depends
 * on AllowEncodedSlashes and on pre_translate_name hooks (mod_proxy's
 * mapping=) that run only after the quick handler.
 */
static const char *conditional_quick_path(request_rec *r)
{
    core_server_config *cs =
        ap_get_core_module_config(r->server->module_config);
    unsigned int flags = AP_NORMALIZE_NOT_ABOVE_ROOT
                         | AP_NORMALIZE_DECODE_UNRESERVED;
    char *path;

    if (!r->parsed_uri.path || r->parsed_uri.path[0] != '/') {
        return NULL;
    }
    if (cs->merge_slashes != AP_CORE_CONFIG_OFF) {
        flags |= AP_NORMALIZE_MERGE_SLASHES;
    }
    /* A copy: when we decline, httpd normalises the original itself. */
    path = apr_pstrdup(r->pool, r->parsed_uri.path);
    if (!ap_normalize_path(path, flags) || strchr(path, '%')) {
        return NULL;
    }
    return path;
}

/* Worth a store lookup: a plain GET/HEAD revalidation without
 * credentials, on a server whose store can tag right now. */
static int conditional_quick_candidate(request_rec *r,
                                       conditional_server_conf *sc)
{
    return sc->quick == 1 && !r->main && !r->prev && !r->proxyreq
           && r->method_number == M_GET && sc->inst && conditional_conf_id
           && apr_table_get(r->headers_in, "If-None-Match")
           && !apr_table_get(r->headers_in, "Authorization")
           && conditional_tag_prefix(sc->inst, r->pool)
           && !conditional_store_quiet(sc->inst, r->request_time);
}

/*
 * The read path's own verdict (conditional_read_verdict) and 304
 * (conditional_not_modified) on the key the normal path would build, for
 * a representation recorded public under this configuration. A key with
 * a claim (a write in flight, or a dead one to break) declines: breaking
 * claims is the normal path's.
 */
int conditional_quick_handler(request_rec *r, int lookup_uri)
{
    conditional_server_conf *sc =
        ap_get_module_config(r->server->module_config, &conditional_module);
    conditional_req *rq;
    const char *path;
    cond_why why;

    if (lookup_uri || !conditional_quick_candidate(r, sc)
        || !(path = conditional_quick_path(r))) {
        return DECLINED;
    }
    rq = apr_pcalloc(r->pool, sizeof(*rq));
    rq->inst = sc->inst;
    rq->r = r;
    rq->key = conditional_default_key(r, path);
    if (rq->inst->provider->lookup(rq->inst->store, rq->key, &rq->before,
                                   r->pool) != APR_SUCCESS
        || rq->before.claim_owner) {
        return DECLINED;
    }
    rq->found = 1;
    if (conditional_read_verdict(r, rq, &why) != COND_NOT_MODIFIED
        || strcmp(rq->variant->public_id, conditional_conf_id)) {
        return DECLINED;
    }
    ap_set_module_config(r->request_config, &conditional_module, rq);
    /* The output filters the normal path's handler would find added
     * (mod_headers' Header, SetOutputFilter) are added after URL mapping:
     * run that hook as mod_cache's quick handler does, so the server's
     * own ones apply here too (a <Location>'s cannot be known). */
    ap_run_insert_filter(r);
    conditional_count("quick");
    return conditional_not_modified(r, rq, "304 quick");
}
