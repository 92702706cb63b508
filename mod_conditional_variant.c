/*
 * mod_conditional_variant.c - representations: which one a request gets
 * and what a 304 repeats for it, If-Range, and whether the backend has a
 * resource the store has never seen.
 *
 * One version per resource, one tag per representation (variant.h): the
 * tag filter derives a 200's tag from the version and the request headers
 * the backend's Vary names; the record filter, after mod_deflate and
 * mod_brotli, keeps what the 200 finally went out with (its ETag with any
 * coding suffix, every Vary and Cache-Control line, Content-Location,
 * Expires) under the request headers the final Vary names. A 304 is given
 * only for a representation kept so, and replays exactly that.
 */
#include "mod_conditional_private.h"

ap_filter_rec_t *conditional_record_frec;
ap_filter_rec_t *conditional_sink_frec;
ap_filter_rec_t *conditional_empty_frec;

static int conditional_collect(void *baton, const char *key,
                               const char *value)
{
    (void)key;
    APR_ARRAY_PUSH((apr_array_header_t *)baton, const char *) = value;
    return 1;
}

/* Every field line of 'name' in t1 then t2, joined with ",". */
static const char *conditional_join(apr_pool_t *p, apr_table_t *t1,
                                    apr_table_t *t2, const char *name)
{
    apr_array_header_t *a = apr_array_make(p, 2, sizeof(const char *));

    apr_table_do(conditional_collect, a, t1, name, NULL);
    if (t2) {
        apr_table_do(conditional_collect, a, t2, name, NULL);
    }
    if (!a->nelts) {
        return NULL;
    }
    return a->nelts == 1 ? APR_ARRAY_IDX(a, 0, const char *)
                         : apr_array_pstrcat(p, a, ',');
}

/* cond_header_fn over the request's headers; the baton is the request.
 * A header the request does not carry (wrk's and many API clients'
 * Accept) is answered by the table's index, without collecting lines. */
const char *conditional_request_header(void *baton, const char *name)
{
    request_rec *r = baton;

    if (!apr_table_get(r->headers_in, name)) {
        return NULL;
    }
    return conditional_join(r->pool, r->headers_in, NULL, name);
}

/* CGI puts a backend's headers in err_headers_out, mod_proxy and the
 * filters in headers_out; httpd sends both. */
const char *conditional_response_vary(request_rec *r)
{
    return cond_vary_names(r->pool, conditional_join(r->pool,
                                                     r->err_headers_out,
                                                     r->headers_out,
                                                     "Vary"));
}

const char *conditional_variant_etag(request_rec *r, conditional_req *rq,
                                     apr_int64_t version, const char *vhash)
{
    const char *tag = conditional_etag(r->pool, rq->inst, version);

    if (!vhash || !*vhash) {
        return tag;
    }
    return apr_pstrcat(r->pool, apr_pstrmemdup(r->pool, tag,
                                               strlen(tag) - 1),
                       "-", vhash, "\"", NULL);
}

/* Each thread's memo of the last metadata it parsed (variant.h). */
static apr_threadkey_t *conditional_memo_key;

static void conditional_memo_free(void *m)
{
    cond_variants_memo_destroy(m);
}

/* In the child: without the key every read parses its metadata. */
void conditional_memo_init(apr_pool_t *pchild)
{
    if (apr_threadkey_private_create(&conditional_memo_key,
                                     conditional_memo_free, pchild)
        != APR_SUCCESS) {
        conditional_memo_key = NULL;
    }
}

static cond_variants_memo *conditional_memo(void)
{
    void *m = NULL;

    if (!conditional_memo_key
        || apr_threadkey_private_get(&m, conditional_memo_key)
           != APR_SUCCESS) {
        return NULL;
    }
    if (!m && (m = cond_variants_memo_make()) != NULL
        && apr_threadkey_private_set(m, conditional_memo_key)
           != APR_SUCCESS) {
        cond_variants_memo_destroy(m);
        m = NULL;
    }
    return m;
}

/* The representation the request would get, from what the store kept for
 * the current version. Its tag must still be one of this version under
 * this store's identity: after an unclean stop the identity moves while
 * the versions (and their metadata) may come back as they were. */
void conditional_select_variant(request_rec *r, conditional_req *rq)
{
    const cond_state *st = &rq->before;

    if (!rq->found || !st->exists || st->version <= 0 || st->claim_owner) {
        return;
    }
    rq->variant = cond_variants_memo_select(
        conditional_memo(), r->pool, st->meta, st->version,
        conditional_version_tag(r, rq, st->version),
        conditional_request_header, r);
}

/* ------------------------------------------------------------------ */
/* The 304                                                              */

/* How a kept line is replayed: 'x' Expires, moved to now; 's' ETag and
 * Content-Location, set; anything else ('a') added. The first letter
 * decides most names without a string comparison (Vary, Cache-Control). */
static char conditional_replay_kind(const char *name)
{
    switch (name[0]) {
    case 'E': case 'e':
        return !strcasecmp(name, "Expires") ? 'x'
               : !strcasecmp(name, "ETag") ? 's' : 'a';
    case 'C': case 'c':
        return !strcasecmp(name, "Content-Location") ? 's' : 'a';
    default:
        return 'a';
    }
}

/*
 * What the representation's 200 carried, line by line, with Expires moved
 * to what a 200 sent now would say. The compressing filters must leave it
 * alone: the ETag already has their suffix and Vary their Accept-Encoding.
 */
void conditional_replay_variant(request_rec *r, conditional_req *rq)
{
    const cond_variant *v = rq->variant;
    int i;

    for (i = 0; i < v->lines->nelts; i++) {
        const cond_meta_line *l = &APR_ARRAY_IDX(v->lines, i,
                                                 cond_meta_line);
        const char *value = l->value;

        switch (conditional_replay_kind(l->name)) {
        case 'x': {
            const char *at = cond_expires_at(r->pool, value,
                                             r->request_time);
            apr_table_setn(r->headers_out, "Expires", at ? at : value);
            break;
        }
        case 's':
            apr_table_setn(r->headers_out, l->name, value);
            break;
        default:
            apr_table_addn(r->headers_out, l->name, value);
        }
    }
    conditional_set_last_modified(r, rq->before.mtime);
    /* Only their presence counts (mod_deflate, mod_brotli): added, not
     * set, which would look through every variable for an earlier one. */
    apr_table_addn(r->subprocess_env, "no-gzip", "1");
    apr_table_addn(r->subprocess_env, "no-brotli", "1");
}

static void conditional_record_lines(request_rec *r, cond_variant *v,
                                     const char *name)
{
    apr_array_header_t *a = apr_array_make(r->pool, 2, sizeof(char *));
    int i;

    apr_table_do(conditional_collect, a, r->err_headers_out, name, NULL);
    apr_table_do(conditional_collect, a, r->headers_out, name, NULL);
    for (i = 0; i < a->nelts; i++) {
        cond_variant_add(v, name, APR_ARRAY_IDX(a, i, const char *));
    }
}

/* Keep what this 200 went out with as its representation's entry. */
static void conditional_record(request_rec *r, conditional_req *rq)
{
    const char *etag = conditional_hdr_get(r, "ETag");
    const char *names = conditional_response_vary(r);
    const char *cl = conditional_hdr_get(r, "Content-Location");
    const char *exp = conditional_hdr_get(r, "Expires");
    const char *meta;
    apr_array_header_t *vs;
    cond_variant *v;
    apr_status_t rv;

    if (!etag || !names) {
        return;     /* a filter dropped the tag, or Vary: * */
    }
    v = cond_variant_make(r->pool, names,
                          cond_vary_hash(r->pool, names,
                                         conditional_request_header, r));
    v->public_id = conditional_public_id(r, rq);
    cond_variant_add(v, "ETag", etag);
    conditional_record_lines(r, v, "Vary");
    conditional_record_lines(r, v, "Cache-Control");
    if (cl) {
        cond_variant_add(v, "Content-Location", cl);
    }
    if (exp) {
        const char *offset = cond_expires_offset(r->pool, exp,
                                                 r->request_time);
        cond_variant_add(v, "Expires", offset ? offset : exp);
    }
    vs = cond_variants_parse(r->pool, rq->tagged_meta, rq->tagged);
    if (cond_variants_hold(rq->tagged_meta, vs, v)) {
        return;     /* the same headers as the last 200: nothing to keep */
    }
    cond_variants_put(vs, v);
    meta = cond_variants_serialise(r->pool, rq->tagged, vs);
    if (rq->tagged_meta && !strcmp(meta, rq->tagged_meta)) {
        return;
    }
    rv = rq->inst->provider->set_meta(rq->inst->store, rq->key, rq->tagged,
                                      meta, r->pool);
    if (rv != APR_SUCCESS && rv != APR_EAGAIN) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, "COND00110: could "
                      "not keep the metadata of a representation of key "
                      "%s%s; its 304s wait for the next 200", rq->key,
                      conditional_store_error(r->pool));
    }
}

/* After every content filter (mod_deflate, mod_brotli, mod_expires,
 * mod_headers): the headers as the client gets them. */
apr_status_t conditional_record_filter(ap_filter_t *f,
                                       apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    conditional_req *rq = f->ctx;

    ap_remove_output_filter(f);
    if (rq->tagged && r->status == HTTP_OK) {
        conditional_record(r, rq);
    }
    return ap_pass_brigade(f->next, bb);
}

/* ------------------------------------------------------------------ */
/* If-Range                                                             */

/*
 * RFC 9110 13.1.5, evaluated here against the tag of the representation
 * the request would get (or the exact Last-Modified). The backend never
 * sees If-Range, and sees Range only when it holds: neither a backend that
 * cuts ranges itself nor httpd's byterange filter can then splice bytes of
 * two versions.
 */
void conditional_if_range(request_rec *r, conditional_req *rq)
{
    const char *ir = apr_table_get(r->headers_in, "If-Range");
    const cond_state *st = &rq->before;
    int known = rq->found && st->exists && st->version > 0
                && !st->claim_owner;

    if (!ir) {
        return;
    }
    apr_table_unset(r->headers_in, "If-Range");
    if (!apr_table_get(r->headers_in, "Range")
        && !apr_table_get(r->headers_in, "Request-Range")) {
        return;
    }
    if (known && cond_if_range(ir, rq->variant
                                   ? cond_variant_get(rq->variant, "ETag")
                                   : NULL,
                               conditional_last_modified(r, st->mtime))) {
        rq->range_allowed = 1;
        return;
    }
    apr_table_unset(r->headers_in, "Range");
    apr_table_unset(r->headers_in, "Request-Range");
}

/* ------------------------------------------------------------------ */
/* Does the backend have it?                                            */

apr_status_t conditional_sink_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    (void)f;
    apr_brigade_cleanup(bb);
    return APR_SUCCESS;
}

/* A probe's request body: none. A subrequest reads through the main
 * request's input filters, and a CGI handler would swallow the body of
 * the write the probe is asked for. */
apr_status_t conditional_empty_filter(ap_filter_t *f, apr_bucket_brigade *bb,
                                      ap_input_mode_t mode,
                                      apr_read_type_e block,
                                      apr_off_t readbytes)
{
    (void)mode;
    (void)block;
    (void)readbytes;
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(f->c->bucket_alloc));
    return APR_SUCCESS;
}

static ap_filter_t *conditional_lone_filter(request_rec *r,
                                            ap_filter_rec_t *frec)
{
    ap_filter_t *f = apr_pcalloc(r->pool, sizeof(*f));

    f->frec = frec;
    f->r = r;
    f->c = r->connection;
    return f;
}

/* Request headers the probe must not carry: it asks about the resource as
 * it is, whole, not the client's conditions. */
static const char *const conditional_probe_strip[] = {
    "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since",
    "If-Range", "Range", "Request-Range", "Expect", NULL
};

/* The status a subrequest with 'method' through the same location gets;
 * whatever it sends goes nowhere. The query string goes along only when
 * the key names resources by it (ConditionalKey): the default key is the
 * path alone. */
static int conditional_probe(request_rec *r, conditional_req *rq,
                             const char *method)
{
    const char *uri = ap_escape_uri(r->pool, r->uri);
    request_rec *rr, *last;
    int status, i;

    if (r->args && rq->custom_key) {
        uri = apr_pstrcat(r->pool, uri, "?", r->args, NULL);
    }
    rr = ap_sub_req_method_uri(method, uri, r,
                               conditional_lone_filter(r,
                                                       conditional_sink_frec));
    status = rr->status;
    if (status == HTTP_OK) {
        rr->input_filters = rr->proto_input_filters =
            conditional_lone_filter(rr, conditional_empty_frec);
        for (i = 0; conditional_probe_strip[i]; i++) {
            apr_table_unset(rr->headers_in, conditional_probe_strip[i]);
        }
        i = ap_run_sub_req(rr);
        /* After an internal redirect (mod_actions, ErrorDocument) the
         * last request of the chain holds the answer. */
        for (last = rr; last->next; last = last->next) {
        }
        status = i != OK && i != DONE ? i : last->status;
    }
    ap_destroy_sub_req(rr);
    return status;
}

/*
 * A conditional write on a key the store has never seen: the backend may
 * have the resource all the same (written before the module was on, or
 * out of band). Ask it with HEAD (GET when it knows no HEAD) through the
 * same location. Returns 1 it has, 2 it has not, 3 unknown.
 */
static int conditional_backend_has(request_rec *r, conditional_req *rq)
{
    int status = conditional_probe(r, rq, "HEAD");

    if (status == HTTP_METHOD_NOT_ALLOWED || status == HTTP_NOT_IMPLEMENTED) {
        status = conditional_probe(r, rq, "GET");
    }
    if (ap_is_HTTP_SUCCESS(status) || status == HTTP_NOT_MODIFIED) {
        return 1;
    }
    if (status == HTTP_NOT_FOUND || status == HTTP_GONE) {
        return 2;
    }
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "COND00111: asked "
                  "whether %s exists before a conditional write, the "
                  "backend answered %d; the write is refused", r->uri,
                  status);
    return 3;
}

/* On a key the store has never seen, "If-None-Match: *" and "If-Match: *"
 * are about whether the backend has the resource, which only the backend
 * can tell. */
static int conditional_needs_probe(const conditional_req *rq,
                                   const cond_request *cr)
{
    return !(rq->found && rq->before.version > 0)
           && (cond_list_match_weak(cr->if_none_match, NULL, 1) == 1
               || cond_list_match_strong(cr->if_match, NULL, 1) == 1);
}

/* Outside any store transaction (the backend runs): ask the backend once
 * per request when the preconditions need it. OK, or 503 when it cannot
 * be told. */
int conditional_write_probe(request_rec *r, conditional_req *rq,
                            const cond_request *cr)
{
    if (!rq->backend_has && conditional_needs_probe(rq, cr)) {
        rq->backend_has = conditional_backend_has(r, rq);
    }
    return rq->backend_has == 3 ? HTTP_SERVICE_UNAVAILABLE : OK;
}

/*
 * The resource a write's preconditions are evaluated against, from
 * rq->before. Never calls the backend or the store, so it may run inside
 * the store's claim transaction: DECLINED when the backend must be asked
 * first (conditional_write_probe), 503 when it could not tell, else OK.
 */
int conditional_write_resource(request_rec *r, conditional_req *rq,
                               const cond_request *cr, cond_resource *res)
{
    conditional_resource(r, rq, res);
    if (!conditional_needs_probe(rq, cr)) {
        return OK;
    }
    if (!rq->backend_has) {
        return DECLINED;
    }
    if (rq->backend_has == 3) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    res->exists = rq->backend_has == 1;
    return OK;
}
