/*
 * mod_conditional_response.c - what the module puts on responses: entity
 * tags and Last-Modified, the representation headers a 304 replays, and the
 * problem+json bodies of the 412, 428, 409 and 503 it answers itself.
 */
#include "mod_conditional_private.h"

const char *conditional_etag(apr_pool_t *p,
                                    const conditional_store_inst *inst,
                                    apr_int64_t version)
{
    apr_size_t n = strlen(inst->tag_prefix);
    char *tag = apr_palloc(p, n + 17 + 1);

    memcpy(tag, inst->tag_prefix, n);
    n += cond_hex(tag + n, (apr_uint64_t)version);
    tag[n++] = '"';
    tag[n] = '\0';
    return tag;
}

/* conditional_etag, formatted once per request and version: a read asks
 * for it when it picks the representation and again when it evaluates. */
const char *conditional_version_tag(request_rec *r, conditional_req *rq,
                                    apr_int64_t version)
{
    if (rq->vtag_of != version || !rq->vtag) {
        rq->vtag = conditional_etag(r->pool, rq->inst, version);
        rq->vtag_of = version;
    }
    return rq->vtag;
}

/* "<word><hex version>" for r->notes, e.g. "tag 1c", "commit 1d" */
const char *conditional_version_note(apr_pool_t *p, const char *word,
                                            apr_int64_t version)
{
    apr_size_t n = strlen(word);
    char *note = apr_palloc(p, n + 17);

    memcpy(note, word, n);
    cond_hex(note + n, (apr_uint64_t)version);
    return note;
}

/* CGI puts backend headers in err_headers_out, mod_proxy in headers_out. */
const char *conditional_hdr_get(request_rec *r, const char *name)
{
    const char *v = apr_table_get(r->headers_out, name);
    return v ? v : apr_table_get(r->err_headers_out, name);
}

void conditional_hdr_unset(request_rec *r, const char *name)
{
    apr_table_unset(r->headers_out, name);
    apr_table_unset(r->err_headers_out, name);
}

/* The four preconditions, the first field of each as apr_table_get would
 * give it (httpd has joined repeated lines), in one pass over the request's
 * headers: every read asks for all four, and most headers do not start
 * with "If-". */
void conditional_fill_request(request_rec *r, cond_request *cr,
                                     cond_method m)
{
    const apr_array_header_t *h = apr_table_elts(r->headers_in);
    const apr_table_entry_t *e = (const apr_table_entry_t *)h->elts;
    int i;

    cr->method = m;
    cr->if_match = cr->if_none_match = NULL;
    cr->if_modified_since = cr->if_unmodified_since = NULL;
    for (i = 0; i < h->nelts; i++) {
        const char *k = e[i].key;
        const char **slot;

        if (!k || (k[0] != 'I' && k[0] != 'i') || (k[1] != 'F' && k[1] != 'f')
            || k[2] != '-') {
            continue;
        }
        slot = !strcasecmp(k + 3, "None-Match") ? &cr->if_none_match
               : !strcasecmp(k + 3, "Match") ? &cr->if_match
               : !strcasecmp(k + 3, "Modified-Since") ? &cr->if_modified_since
               : !strcasecmp(k + 3, "Unmodified-Since")
                 ? &cr->if_unmodified_since : NULL;
        if (slot && !*slot) {
            *slot = e[i].val;
        }
    }
}

/* The module is the authority on validators for its keys: once it has
 * decided to let a request through, the backend must not second-guess tags
 * it never issued (nor answer 304/412 on its own). */
void conditional_strip_validators(request_rec *r)
{
    apr_table_unset(r->headers_in, "If-Match");
    apr_table_unset(r->headers_in, "If-None-Match");
    apr_table_unset(r->headers_in, "If-Modified-Since");
    apr_table_unset(r->headers_in, "If-Unmodified-Since");
}

void conditional_resource(request_rec *r, conditional_req *rq,
                                 cond_resource *res)
{
    const cond_state *st = &rq->before;
    int present = rq->found && st->exists && st->version > 0;
    /* While a write is in flight the backend may already have changed the
     * representation: no validator of it is known. */
    int known = present && !st->claim_owner;

    res->exists = present;
    res->version_tag = known ? conditional_version_tag(r, rq, st->version)
                             : NULL;
    /* A read's 304 needs the tag of the representation it would get;
     * without one the version tag stands in, but no 304 follows. */
    res->etag = rq->variant ? cond_variant_get(rq->variant, "ETag")
                            : res->version_tag;
    res->mtime = known ? st->mtime : 0;
}

/* Validators on a response: the ETag always, Last-Modified only once its
 * second is over, so an If-Modified-Since can never hide a later write made
 * in the same second (nor an If-Range date a second version). */
void conditional_set_validators(request_rec *r, conditional_req *rq,
                                       apr_int64_t version, apr_time_t mtime)
{
    apr_table_setn(r->headers_out, "ETag",
                   conditional_etag(r->pool, rq->inst, version));
    conditional_set_last_modified(r, mtime);
}

/* The Last-Modified a response carries: none before its second is over. */
apr_time_t conditional_last_modified(request_rec *r, apr_time_t mtime)
{
    return mtime && apr_time_sec(mtime) < apr_time_sec(r->request_time)
           ? mtime : 0;
}

/*
 * mtime as an HTTP-date. A key's mtime moves only when it is written, so
 * its 304s format the same few dates over and over: each thread keeps the
 * last ones it formatted, by second (callgrind: apr_rfc822_date is 0.5k
 * instructions a 304, a hit here under 0.1k).
 */
#define COND_DATE_SLOTS 16
static const char *conditional_http_date(apr_pool_t *p, apr_time_t mtime)
{
    static __thread struct {
        apr_time_t sec;                  /* 0: empty (never a valid mtime) */
        char text[APR_RFC822_DATE_LEN];
    } slot[COND_DATE_SLOTS];
    apr_time_t sec = apr_time_sec(mtime);
    unsigned int i = (unsigned int)sec % COND_DATE_SLOTS;

    if (slot[i].sec != sec) {
        apr_rfc822_date(slot[i].text, apr_time_from_sec(sec));
        slot[i].sec = sec;
    }
    return apr_pstrmemdup(p, slot[i].text, APR_RFC822_DATE_LEN - 1);
}

void conditional_set_last_modified(request_rec *r, apr_time_t mtime)
{
    if (conditional_last_modified(r, mtime)) {
        apr_table_setn(r->headers_out, "Last-Modified",
                       conditional_http_date(r->pool, mtime));
    }
}

void conditional_respond_with(conditional_req *rq, int status,
                                     const char *problem)
{
    rq->respond = status;
    rq->problem = problem;
}

static const char *conditional_problem_title(int status)
{
    switch (status) {
    case HTTP_PRECONDITION_FAILED:   return "Precondition Failed";
    case HTTP_PRECONDITION_REQUIRED: return "Precondition Required";
    case HTTP_CONFLICT:              return "Write In Progress";
    default:                         return "Version Store Unavailable";
    }
}

static const char *conditional_problem_detail(conditional_req *rq)
{
    switch (rq->respond) {
    case HTTP_PRECONDITION_REQUIRED:
        return "This resource requires a conditional write: send If-Match "
               "with the ETag from your last GET (or If-None-Match: * to "
               "create).";
    case HTTP_CONFLICT:
        return "Another write to this resource is in progress; retry.";
    case HTTP_SERVICE_UNAVAILABLE:
        return "The version store cannot be written right now; retry.";
    }
    if (!strcmp(rq->problem, "absent")) {
        return "The resource does not exist.";
    }
    if (!strcmp(rq->problem, "exists")) {
        return "The resource already exists (If-None-Match: *).";
    }
    if (!strcmp(rq->problem, "malformed")) {
        return "The If-Match header could not be parsed.";
    }
    if (!strcmp(rq->problem, "weak")) {
        return "A weak entity-tag never satisfies If-Match.";
    }
    if (!strcmp(rq->problem, "modified")) {
        return "The resource was modified after If-Unmodified-Since.";
    }
    return "The resource has changed since the given entity-tag was "
           "issued; fetch it again and retry.";
}

/* JSON string escaping for the few strings we emit (keys come from URLs). */
static const char *conditional_json_str(apr_pool_t *p, const char *s)
{
    apr_size_t n = strlen(s);
    char *out = apr_palloc(p, n * 6 + 3), *o = out;

    *o++ = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = c;
        }
        else if (c < 0x20 || c == 0x7f) {
            o += apr_snprintf(o, 7, "\\u%04x", c);
        }
        else {
            *o++ = c;
        }
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

int conditional_send_problem(request_rec *r, conditional_req *rq)
{
    const char *type = rq->respond == HTTP_PRECONDITION_FAILED
                       ? "precondition-failed" : rq->problem;
    const char *detail = conditional_problem_detail(rq);

    if (rq->respond == HTTP_PRECONDITION_FAILED && rq->found
        && rq->before.exists && rq->before.version > 0
        && !rq->before.claim_owner) {
        apr_table_setn(r->headers_out, "ETag",
                       conditional_etag(r->pool, rq->inst,
                                        rq->before.version));
    }
    if (rq->respond == HTTP_CONFLICT
        || rq->respond == HTTP_SERVICE_UNAVAILABLE) {
        apr_table_setn(r->headers_out, "Retry-After", "1");
    }
    conditional_note(r, rq->respond == HTTP_PRECONDITION_FAILED
                        ? apr_pstrcat(r->pool, "412-", rq->problem, NULL)
                        : rq->respond == HTTP_CONFLICT ? "409-busy"
                        : rq->respond == HTTP_SERVICE_UNAVAILABLE
                        ? "503-store" : "428");
    r->status = rq->respond;
    ap_set_content_type(r, "application/problem+json");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (!r->header_only) {
        ap_rprintf(r, "{\"type\":\"urn:conditional:%s\",\"title\":\"%s\","
                   "\"status\":%d,\"detail\":%s,\"instance\":%s}\n", type,
                   conditional_problem_title(rq->respond), rq->respond,
                   conditional_json_str(r->pool, detail),
                   conditional_json_str(r->pool, r->uri));
    }
    return OK;
}
