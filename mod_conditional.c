/*
 * mod_conditional - ETags, 304 Not Modified and optimistic concurrency for
 * any API behind Apache httpd, without touching the backend.
 *
 * This file holds the module, its hooks and the read path; the glue is
 * split by concern (mod_conditional_private.h lists what each file does):
 * _config.c directives, _write.c a write from claim to settlement,
 * _response.c validators and problem bodies, _status.c notes and counters.
 * The RFC 9110 evaluator lives in precond.c and the version stores behind
 * store.h (store.c, sqlite_store.c); neither knows about httpd.
 *
 * Life of a request (see docs/design.md):
 *   quick_handler (opt-in)          ConditionalQuickHandler: a 304 for a
 *                                   public representation, before URL
 *                                   mapping and access control
 *                                   (mod_conditional_quick.c)
 *   fixups (after access control)   look the key up, evaluate preconditions;
 *                                   writes take the key's claim here
 *   handler (really first)          answers 304/412/428/409/503 itself, so
 *                                   the backend never runs for them
 *   output filter                   reads: tag a 200 if nothing changed while
 *                                   the backend ran; writes: commit a 2xx
 *                                   with its headers, settle the claim when
 *                                   the response is complete
 *   log_transaction, pool cleanup   settle a claim the filter did not see
 *                                   (error pages, internal redirects, a
 *                                   child torn down mid-request)
 */

#include "mod_conditional_private.h"

#include "apr_optional.h"
#include "mod_status.h"

/* The filters' records, kept at registration: adding a filter by its
 * handle skips the lookup by name on every request. */
ap_filter_rec_t *conditional_tag_frec;
ap_filter_rec_t *conditional_commit_frec;

/* ------------------------------------------------------------------ */
/* Startup                                                              */

/* The process that ran post_config: the only one that may mark a store as
 * stopped cleanly. */
static pid_t conditional_parent_pid;

/*
 * httpd stops for good (a restart clears pconf too, but not in this
 * state), and its MPM has reaped the children: let each store record a
 * clean stop, so a reboot after it keeps the store's identity and every
 * client's cached tags (docs/design.md, "Power cuts"). Children that exit
 * never get here: the state and the pid are the parent's.
 */
static apr_status_t conditional_stores_shutdown(void *data)
{
    server_rec *s = data;
    int i;

    if (ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_EXITING
        || getpid() != conditional_parent_pid) {
        return APR_SUCCESS;
    }
    for (i = 0; i < conditional_stores->nelts; i++) {
        conditional_store_inst *inst =
            APR_ARRAY_IDX(conditional_stores, i, conditional_store_inst *);
        apr_status_t rv = inst->provider->shutdown
                          ? inst->provider->shutdown(inst->store,
                                                     s->process->pool)
                          : APR_ENOTIMPL;
        ap_log_error(APLOG_MARK, APLOG_INFO, rv, s, "COND00023: store %s %s",
                     inst->spec, rv == APR_SUCCESS ? "stopped cleanly"
                     : "not marked as stopped cleanly (still in use "
                       "elsewhere, or unusable)");
    }
    return APR_SUCCESS;
}

static int conditional_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                                   apr_pool_t *ptemp, server_rec *s)
{
    conditional_server_conf *main_sc =
        ap_get_module_config(s->module_config, &conditional_module);
    server_rec *vs;
    const char *err;
    int i;
    (void)plog;

    if (!main_sc->inst) {
        err = conditional_make_store(pconf, "sqlite:" COND_DEFAULT_STORE, 0,
                                     s, &main_sc->inst);
        if (err) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "COND00001: %s", err);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    /* A vhost without a ConditionalStore of its own has the main server's
     * merged in; a per-server store (dbd) must not be shared that way: the
     * vhost's own DBDParams name its database. */
    for (vs = s; vs; vs = vs->next) {
        conditional_server_conf *sc =
            ap_get_module_config(vs->module_config, &conditional_module);
        sc->inst = conditional_store_for(pconf, sc->inst ? sc->inst
                                                         : main_sc->inst, vs);
    }
    if ((err = conditional_dbd_bind()) != NULL) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "COND00030: %s", err);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    conditional_quick_init(pconf, s);
    /* The first pass is httpd's dry run: nothing to create yet. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        conditional_sites_init(pconf, s, 0);
        return OK;
    }
    conditional_sites_init(pconf, s, 1);
    conditional_counters_create(pconf, s);
    conditional_parent_pid = getpid();
    apr_pool_cleanup_register(pconf, s, conditional_stores_shutdown,
                              apr_pool_cleanup_null);
    for (i = 0; i < conditional_stores->nelts; i++) {
        conditional_store_inst *inst =
            APR_ARRAY_IDX(conditional_stores, i, conditional_store_inst *);
        apr_status_t rv = inst->provider->init(inst->store, ptemp);

        if (rv == APR_SUCCESS && inst->provider->set_owner) {
            rv = inst->provider->set_owner(inst->store,
                                           (long)ap_unixd_config.user_id,
                                           (long)ap_unixd_config.group_id,
                                           ptemp);
        }
        /* An unusable store is not fatal: reads pass through untagged and
         * writes get 503 until it is fixed. */
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, inst->explicit ? APLOG_ERR : APLOG_WARNING,
                         rv, s, "COND00002: cannot initialise store %s%s; "
                         "reads will pass through untagged and writes get "
                         "503 until it is usable", inst->spec,
                         conditional_store_error(ptemp));
            continue;
        }
        conditional_store_generation(s, inst,
                                     conditional_store_lease(s, inst));
    }
    return OK;
}

static void conditional_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;
    int i;

    conditional_owner_init(pchild);
    conditional_memo_init(pchild);
    for (i = 0; i < conditional_stores->nelts; i++) {
        conditional_store_inst *inst =
            APR_ARRAY_IDX(conditional_stores, i, conditional_store_inst *);
        apr_status_t rv;

        inst->pchild = pchild;
        inst->tag_prefix = NULL;
        rv = inst->provider->child_init(inst->store, pchild);
        if (rv != APR_SUCCESS || !conditional_tag_prefix(inst, pchild)) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, "COND00003: store %s "
                         "is not usable in this child yet%s; reads pass "
                         "through untagged and writes get 503 until it is",
                         inst->spec, conditional_store_error(pchild));
        }
    }
    rv = conditional_renew_start(pchild, s);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, "COND00022: cannot start "
                     "the thread that renews claims; a write that outlives "
                     "ConditionalLeaseTime can lose its claim");
    }
}

/* The start of every tag the store hands out, NULL while its identity is
 * unknown. A store that was unreachable when the child started (a database
 * being restarted) is asked again, so the child tags once it is back. */
const char *conditional_tag_prefix(conditional_store_inst *inst,
                                   apr_pool_t *p)
{
    const char *id;
    char *prefix;

    if (inst->tag_prefix) {
        return inst->tag_prefix;
    }
    if (!inst->pchild || !(id = inst->provider->identity(inst->store, p))) {
        return NULL;
    }
    prefix = apr_pstrcat(inst->pchild, "\"", id, "-", NULL);
    /* Threads may race here: all compute the same string, one is kept. */
    apr_atomic_casptr((volatile void **)&inst->tag_prefix, prefix, NULL);
    return inst->tag_prefix;
}

/* The store's own words about the last failure of a call made with p,
 * ready to append to a log message ("" when it said nothing). */
const char *conditional_store_error(apr_pool_t *p)
{
    const char *msg = cond_store_error(p);

    return msg ? apr_pstrcat(p, " (", msg, ")", NULL) : "";
}

/* ------------------------------------------------------------------ */
/* Keys and the read path                                               */

static const char *conditional_key(request_rec *r, conditional_dir_conf *dc)
{
    const char *err = NULL, *key;

    if (!dc->key) {
        return conditional_default_key(r, r->uri);
    }
    key = ap_expr_str_exec(r, dc->key, &err);
    if (err || !key || !*key) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "COND00004: "
                      "ConditionalKey gave no key: %s",
                      err ? err : "empty result");
        return NULL;
    }
    return key;
}

/* The store cannot say what the current version is: the response goes
 * out with no validators at all - neither the module's nor the backend's,
 * which the module cannot vouch for (they may be what the module tagged
 * before, or collide with its tags) - and the backend never sees the
 * client's, so it cannot answer 304 or 412 on the strength of a tag it
 * never issued. Nor can an If-Range be held against any version: the
 * whole 200 (rq->found is 0), never a range of what may be a newer one. */
static int conditional_pass(request_rec *r, conditional_req *rq)
{
    rq->pass = 1;
    conditional_note(r, "pass-store-error");
    conditional_strip_validators(r);
    conditional_if_range(r, rq);
    ap_add_output_filter_handle(conditional_tag_frec, rq, r, r->connection);
    return OK;
}

/*
 * The read's verdict on the key's state in rq->before (rq->found set):
 * the representation the request would get, and its preconditions. A 304
 * only for a representation whose 200 the store has kept (not while a
 * write, a DELETE perhaps, is in flight): a variant not seen at this
 * version goes to the backend. Shared by the fixup and the quick handler,
 * so both answer the same requests with the same 304.
 */
cond_verdict conditional_read_verdict(request_rec *r, conditional_req *rq,
                                      cond_why *why)
{
    cond_request cr;
    cond_resource res;
    cond_verdict v;

    conditional_fill_request(r, &cr, COND_METHOD_READ);
    /* Only a precondition or If-Range asks which representation the
     * request would get; a plain GET's verdict is to proceed whatever it
     * is, and its 200 is recorded from the response itself. */
    if (cr.if_match || cr.if_none_match || cr.if_modified_since
        || cr.if_unmodified_since
        || apr_table_get(r->headers_in, "If-Range")) {
        conditional_select_variant(r, rq);
    }
    conditional_resource(r, rq, &res);
    v = cond_evaluate(&cr, &res, r->request_time, why);
    if (v == COND_NOT_MODIFIED && (!rq->variant || rq->before.claim_owner)) {
        v = COND_PROCEED;
    }
    return v;
}

/* The 304 of rq->variant; 'decision' is the note ("304", "304 quick"). */
int conditional_not_modified(request_rec *r, conditional_req *rq,
                             const char *decision)
{
    conditional_replay_variant(r, rq);
    conditional_note(r, decision);
    r->status = HTTP_NOT_MODIFIED;
    return OK;
}

static int conditional_read(request_rec *r, conditional_req *rq)
{
    cond_verdict v;
    cond_why why;
    apr_status_t rv;

    rv = rq->inst->provider->lookup(rq->inst->store, rq->key, &rq->before,
                                    r->pool);
    if (rv == APR_SUCCESS) {
        /* A dead claim would keep the key untagged until the next write. */
        const char *dead = conditional_claim_dead(&rq->before);
        if (dead && conditional_break(r, rq, rq->before.claim_owner, dead)
                    == APR_SUCCESS) {
            rv = rq->inst->provider->lookup(rq->inst->store, rq->key,
                                            &rq->before, r->pool);
        }
    }
    if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, "COND00009: store "
                      "lookup failed for key %s%s; passing through "
                      "without validators",
                      rq->key, conditional_store_error(r->pool));
        return conditional_pass(r, rq);
    }
    rq->found = rv == APR_SUCCESS;
    v = conditional_read_verdict(r, rq, &why);
    if (v == COND_NOT_MODIFIED) {
        conditional_respond_with(rq, HTTP_NOT_MODIFIED, NULL);
        return OK;
    }
    if (v == COND_FAILED) {
        conditional_respond_with(rq, HTTP_PRECONDITION_FAILED,
                                 cond_why_str(why));
        return OK;
    }
    conditional_if_range(r, rq);
    conditional_strip_validators(r);
    ap_add_output_filter_handle(conditional_tag_frec, rq, r, r->connection);
    ap_add_output_filter_handle(conditional_record_frec, rq, r,
                                r->connection);
    return OK;
}

/* Runs after authentication and authorization (and after mod_rewrite's own
 * fixup), so an unauthorised client never learns a version. */
static int conditional_fixups(request_rec *r)
{
    conditional_dir_conf *dc =
        ap_get_module_config(r->per_dir_config, &conditional_module);
    conditional_server_conf *sc =
        ap_get_module_config(r->server->module_config, &conditional_module);
    conditional_req *rq;
    int m = r->method_number;

    if (r->prev && ap_is_HTTP_ERROR(r->prev->status)) {
        /* The ErrorDocument of a write's error: settle the write before
         * the error page is generated. */
        conditional_settle_before_error(r->prev);
        return DECLINED;
    }
    if (dc->enabled != 1 || r->main || !sc->inst
        || (r->handler && !strcmp(r->handler, "redirect-handler"))) {
        return DECLINED;
    }
    if (m != M_GET && m != M_PUT && m != M_DELETE && m != M_POST
        && m != M_PATCH) {
        return DECLINED;
    }
    rq = apr_pcalloc(r->pool, sizeof(*rq));
    rq->inst = sc->inst;
    rq->r = r;
    rq->invalidate_parent = dc->invalidate_parent != 0;
    rq->custom_key = dc->key != NULL;
    rq->key = conditional_key(r, dc);
    if (!rq->key) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_set_module_config(r->request_config, &conditional_module, rq);
    if (m == M_GET) {
        if (!conditional_tag_prefix(rq->inst, r->pool)
            || conditional_store_quiet(rq->inst, r->request_time)) {
            return conditional_pass(r, rq);
        }
        return conditional_read(r, rq);
    }
    return conditional_write(r, rq, dc);
}

/* Answers what the fixup decided, before any other handler: the backend
 * never runs for a 304, 412, 428, 409 or 503. */
static int conditional_handler(request_rec *r)
{
    conditional_req *rq =
        ap_get_module_config(r->request_config, &conditional_module);

    if (!rq || !rq->respond) {
        return DECLINED;
    }
    if (rq->respond == HTTP_NOT_MODIFIED) {
        return conditional_not_modified(r, rq, "304");
    }
    return conditional_send_problem(r, rq);
}

/* ------------------------------------------------------------------ */
/* Output filters                                                       */

/* No tag: and a range If-Range allowed is not cut from what may be a
 * newer version by httpd's byterange filter (which runs after this one). */
static void conditional_untagged(request_rec *r, conditional_req *rq)
{
    if (rq->range_allowed) {
        apr_table_unset(r->headers_in, "Range");
        apr_table_unset(r->headers_in, "Request-Range");
    }
    conditional_note(r, "untagged");
}

/* A key first seen through a whole 200: registered with a new version,
 * or 0 (someone registered it meanwhile, or the store failed). */
static apr_int64_t conditional_tag_register(request_rec *r,
                                            conditional_req *rq,
                                            apr_time_t now)
{
    apr_int64_t v = 0;
    apr_status_t rv = rq->inst->provider->register_key(rq->inst->store,
                                                       rq->key, NULL, now,
                                                       &v, r->pool);

    if (rv != APR_SUCCESS && rv != APR_EEXIST) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, "COND00113: could "
                      "not register key %s%s; its 200 goes out untagged",
                      rq->key, conditional_store_error(r->pool));
    }
    return rv == APR_SUCCESS ? v : 0;
}

/* A key the store has absent, shown again by a whole 200: present with a
 * new version, or 0 (it moved meanwhile, or the store failed). */
static apr_int64_t conditional_tag_present(request_rec *r,
                                           conditional_req *rq,
                                           apr_int64_t was, apr_time_t now)
{
    apr_int64_t v = 0;
    apr_status_t rv = rq->inst->provider->set_exists(rq->inst->store,
                                                     rq->key, was, 1, NULL,
                                                     now, &v, r->pool);

    if (rv != APR_SUCCESS && rv != APR_EAGAIN) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, "COND00115: could "
                      "not mark key %s present again%s; its 200 goes out "
                      "untagged", rq->key,
                      conditional_store_error(r->pool));
    }
    return rv == APR_SUCCESS ? v : 0;
}

/* The version this response may be tagged with: the same before the
 * backend ran and now, no write in flight either time; a key first seen
 * (or seen again after a 404) through a whole 200 gets a new version. 0:
 * none. The store's metadata at that version goes to rq->tagged_meta. */
static apr_int64_t conditional_tag_version(request_rec *r,
                                           conditional_req *rq,
                                           apr_time_t *mtime)
{
    int whole = r->status == HTTP_OK;
    apr_time_t now = apr_time_now();
    cond_state after;
    apr_status_t rv;

    *mtime = now;
    if (!rq->found) {
        return whole ? conditional_tag_register(r, rq, now) : 0;
    }
    rv = rq->inst->provider->lookup(rq->inst->store, rq->key, &after,
                                    r->pool);
    if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, "COND00114: store "
                      "lookup failed for key %s after the backend "
                      "answered%s; its 200 goes out untagged", rq->key,
                      conditional_store_error(r->pool));
    }
    if (rv != APR_SUCCESS || rq->before.claim_owner || after.claim_owner
        || after.version != rq->before.version) {
        return 0;
    }
    if (!after.exists || after.version == 0) {
        /* The store thought it absent; the backend shows it again. */
        return whole ? conditional_tag_present(r, rq, after.version, now) : 0;
    }
    *mtime = after.mtime;
    rq->tagged_meta = after.meta;
    return after.version;
}

/*
 * A 200 or 206 from the backend gets the tag of its representation: the
 * version, and a hash of the request headers its Vary names. "Vary: *"
 * names no representation: untagged. The record filter keeps a 200's
 * final headers for the 304s of the same representation.
 */
static void conditional_tag(request_rec *r, conditional_req *rq)
{
    const char *names = conditional_response_vary(r);
    apr_time_t mtime;
    apr_int64_t v;

    if (!names || !(v = conditional_tag_version(r, rq, &mtime))) {
        conditional_untagged(r, rq);
        return;
    }
    apr_table_setn(r->headers_out, "ETag",
                   conditional_variant_etag(r, rq, v,
                                            cond_vary_hash(r->pool, names,
                                                conditional_request_header,
                                                r)));
    conditional_set_last_modified(r, mtime);
    if (r->status == HTTP_OK) {
        rq->tagged = v;
    }
    conditional_note(r, conditional_version_note(r->pool, "tag ", v));
}

/* Every 2xx of a GET carries the module's tag or none, never the
 * backend's own validators. */
static apr_status_t conditional_tag_filter(ap_filter_t *f,
                                           apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    conditional_req *rq = f->ctx;

    ap_remove_output_filter(f);
    conditional_hdr_unset(r, COND_INVALIDATE_HDR);
    if (rq->pass) {
        conditional_hdr_unset(r, "ETag");
        conditional_hdr_unset(r, "Last-Modified");
    }
    else if (ap_is_HTTP_SUCCESS(r->status)) {
        conditional_hdr_unset(r, "ETag");
        conditional_hdr_unset(r, "Last-Modified");
        if (r->status == HTTP_OK || r->status == HTTP_PARTIAL_CONTENT) {
            conditional_tag(r, rq);
        }
    }
    else if ((r->status == HTTP_NOT_FOUND || r->status == HTTP_GONE)
             && rq->found && rq->before.exists && !rq->before.claim_owner) {
        apr_int64_t v;
        apr_status_t rv = rq->inst->provider->set_exists(
            rq->inst->store, rq->key, rq->before.version, 0, NULL,
            apr_time_now(), &v, r->pool);
        if (rv == APR_SUCCESS) {
            conditional_note(r, "absent");
        }
        else if (rv != APR_EAGAIN) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, "COND00027: "
                          "could not mark key %s absent%s", rq->key,
                          conditional_store_error(r->pool));
        }
    }
    return ap_pass_brigade(f->next, bb);
}

static void conditional_register_hooks(apr_pool_t *p)
{
    static const char *const after_rewrite[] = {"mod_rewrite.c", NULL};
    static const char *const before_cache[] = {"mod_cache.c", NULL};
    (void)p;

    ap_hook_pre_config(conditional_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(conditional_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(conditional_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ap, status_hook, conditional_status, NULL, NULL,
                      APR_HOOK_MIDDLE);
    /* Before mod_log_config, so the access log shows the decision. */
    ap_hook_log_transaction(conditional_log_transaction, NULL, NULL,
                            APR_HOOK_REALLY_FIRST);
    ap_hook_fixups(conditional_fixups, after_rewrite, NULL, APR_HOOK_LAST);
    /* Error pages bypass the commit filter: settle before they are sent. */
    ap_hook_insert_error_filter(conditional_settle_before_error, NULL, NULL,
                                APR_HOOK_MIDDLE);
    ap_hook_handler(conditional_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
    /* Before mod_cache's quick handler (same order): a 304 needs no
     * cached body, and mod_cache would answer from its own validators. */
    ap_hook_quick_handler(conditional_quick_handler, NULL, before_cache,
                          APR_HOOK_FIRST);
    ap_hook_expr_lookup(conditional_expr_lookup, NULL, NULL, APR_HOOK_MIDDLE);
    /* Before mod_deflate/mod_brotli (CONTENT_SET), so they see our ETag. */
    conditional_tag_frec =
        ap_register_output_filter(COND_FILTER_TAG, conditional_tag_filter,
                                  NULL, AP_FTYPE_CONTENT_SET - 1);
    conditional_commit_frec =
        ap_register_output_filter(COND_FILTER_COMMIT,
                                  conditional_commit_filter, NULL,
                                  AP_FTYPE_CONTENT_SET - 1);
    /* After every content filter, before the byterange and header
     * filters: what a representation's 200 finally carries. */
    conditional_record_frec =
        ap_register_output_filter(COND_FILTER_RECORD,
                                  conditional_record_filter, NULL,
                                  AP_FTYPE_PROTOCOL - 1);
    /* Never in a chain by name: the end of a probe subrequest's chain. */
    conditional_sink_frec =
        ap_register_output_filter(COND_FILTER_SINK, conditional_sink_filter,
                                  NULL, AP_FTYPE_CONTENT_SET);
    conditional_empty_frec =
        ap_register_input_filter(COND_FILTER_EMPTY, conditional_empty_filter,
                                 NULL, AP_FTYPE_CONTENT_SET);
}

module AP_MODULE_DECLARE_DATA conditional_module = {
    STANDARD20_MODULE_STUFF,
    conditional_create_dir_conf,
    conditional_merge_dir_conf,
    conditional_create_server_conf,
    conditional_merge_server_conf,
    conditional_cmds,
    conditional_register_hooks,
    /* Every virtual host gets a server configuration of its own, even one
     * that names no directive of the module: post_config writes the site
     * of its keys there, and one shared with the main server would give
     * both the same keys. */
    AP_MODULE_FLAG_ALWAYS_MERGE
};
