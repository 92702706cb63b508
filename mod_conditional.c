/*
 * mod_conditional - ETags, 304 Not Modified and optimistic concurrency for
 * any API behind Apache httpd, without touching the backend.
 *
 * This file is the httpd glue: configuration, directives and hooks. The
 * RFC 9110 evaluator lives in precond.c and the version store behind
 * store.h (sqlite_store.c); neither knows about httpd.
 *
 * Life of a request (see docs/design.md):
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

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "ap_expr.h"
#include "util_filter.h"
#include "unixd.h"
#include "mod_status.h"

#include "apr_strings.h"
#include "apr_atomic.h"
#include "apr_network_io.h"
#include "apr_shm.h"
#include "apr_optional.h"

#include <errno.h>
#include <unistd.h>

#include "precond.h"
#include "store.h"

module AP_MODULE_DECLARE_DATA conditional_module;
APLOG_USE_MODULE(conditional);

#ifndef COND_DEFAULT_STORE
#define COND_DEFAULT_STORE "/var/lib/apache2/conditional/conditional.db"
#endif
#define COND_DEFAULT_LEASE     60
#define COND_DEFAULT_LOCKWAIT  10
#define COND_UNSET             (-1)
#define COND_FILTER_TAG        "CONDITIONAL_TAG"
#define COND_FILTER_COMMIT     "CONDITIONAL_COMMIT"
#define COND_INVALIDATE_HDR    "Conditional-Invalidate"

/* The filters' records, kept at registration: adding a filter by its
 * handle skips the lookup by name on every request. */
static ap_filter_rec_t *conditional_tag_frec;
static ap_filter_rec_t *conditional_commit_frec;

/* A configured store, shared by every server_rec that names the same spec. */
typedef struct {
    const char *spec;                    /* "sqlite:/path" as configured */
    const cond_store_provider *provider;
    cond_store *store;
    const char *tag_prefix;              /* "\"<identity>-", after child_init */
    int explicit;                        /* named by ConditionalStore */
} conditional_store_inst;

typedef struct {
    conditional_store_inst *inst;        /* NULL: unset (default applies) */
    int lease;                           /* seconds, COND_UNSET */
} conditional_server_conf;

typedef struct {
    int enabled;                         /* COND_UNSET, 0, 1 */
    int require;
    int lockwait;
    int invalidate_parent;
    ap_expr_info_t *key;                 /* NULL: default key */
    int key_set;
} conditional_dir_conf;

/* What the fixup decided, for the handler and the filters. */
typedef struct {
    conditional_store_inst *inst;
    const char *key;
    int respond;             /* status the module answers itself, 0: none */
    const char *problem;     /* why: problem+json type / 412 reason */
    int found;               /* 'before' is valid */
    cond_state before;       /* key state before the backend ran */
    const char *owner;       /* claim we hold, NULL when none */
    int is_delete;
    int committed;           /* 2xx: new version committed, claim kept
                              * until the backend's response is complete */
    int headers_seen;        /* the commit filter saw the first brigade */
    const char *listed;      /* the backend's Conditional-Invalidate */
    int invalidate_parent;
    int custom_key;
    request_rec *r;          /* for the cleanup that resolves a claim */
} conditional_req;

/* Per-config-cycle list of distinct stores; rebuilt on every (re)load. */
static apr_array_header_t *conditional_stores;
/* This child's identity for claim owners, "host:pid:nonce:": unique, and
 * telling an administrator (conditionalctl show) who holds a claim. */
static const char *conditional_owner_prefix;
static apr_uint32_t conditional_owner_seq;

/* Decisions counted across all children for mod_status, since the last
 * (re)start. Each is recognised by the start of its r->notes value, so the
 * note is the one place a decision is recorded. */
#define COND_COUNTER(note, key, label) { note, sizeof(note) - 1, key, label }
static const struct {
    const char *note;        /* prefix of the note */
    apr_size_t len;          /* its length */
    const char *key;         /* ?auto name */
    const char *label;
} conditional_counters[] = {
    COND_COUNTER("304",           "NotModified",
                 "304 Not Modified, backend not run"),
    COND_COUNTER("412-",          "Failed",       "412 Precondition Failed"),
    COND_COUNTER("428",           "Required",     "428 Precondition Required"),
    COND_COUNTER("409-",          "Busy",
                 "409, another write in flight"),
    COND_COUNTER("503-",          "Unavailable",
                 "503, store unusable for a write"),
    COND_COUNTER("pass-",         "PassedThrough",
                 "reads passed through, store unusable"),
    COND_COUNTER("tag ",          "Tagged",       "200s tagged"),
    COND_COUNTER("untagged",      "Untagged",
                 "200s left untagged (a write ran)"),
    COND_COUNTER("commit ",       "Committed",    "writes committed"),
    COND_COUNTER("release ",      "Refused",
                 "writes refused by the backend (4xx)"),
    COND_COUNTER("invalidate ",   "Invalidated",
                 "writes ended 3xx/5xx, version moved"),
    COND_COUNTER("pending ",      "Pending",
                 "writes ended unseen, claim kept"),
    COND_COUNTER("claim-lost",    "ClaimLost",
                 "writes whose lease ran out"),
    COND_COUNTER("commit-failed", "CommitFailed", "commits the store refused"),
    COND_COUNTER("absent",        "Absent",
                 "resources found gone (404/410)"),
    COND_COUNTER("broken",        "ClaimsBroken", "expired claims broken"),
};
#undef COND_COUNTER
#define COND_NCOUNTERS \
    (sizeof(conditional_counters) / sizeof(conditional_counters[0]))
static volatile apr_uint64_t *conditional_counts;   /* shared, or NULL */

/* ------------------------------------------------------------------ */
/* Configuration                                                        */

static void *conditional_create_server_conf(apr_pool_t *p, server_rec *s)
{
    conditional_server_conf *c = apr_pcalloc(p, sizeof(*c));
    (void)s;
    c->lease = COND_UNSET;
    return c;
}

static void *conditional_merge_server_conf(apr_pool_t *p, void *basev,
                                           void *addv)
{
    conditional_server_conf *base = basev, *add = addv;
    conditional_server_conf *c = apr_pcalloc(p, sizeof(*c));
    c->inst = add->inst ? add->inst : base->inst;
    c->lease = add->lease != COND_UNSET ? add->lease : base->lease;
    return c;
}

static void *conditional_create_dir_conf(apr_pool_t *p, char *dir)
{
    conditional_dir_conf *c = apr_pcalloc(p, sizeof(*c));
    (void)dir;
    c->enabled = c->require = c->lockwait = COND_UNSET;
    c->invalidate_parent = COND_UNSET;
    return c;
}

static void *conditional_merge_dir_conf(apr_pool_t *p, void *basev,
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

static const cond_store_provider *conditional_find_provider(const char *name)
{
    if (!strcmp(name, cond_sqlite_store.name)) {
        return &cond_sqlite_store;
    }
    return NULL;
}

/* Parse "sqlite:PATH" and create (not open) the store instance. A relative
 * path is taken relative to ServerRoot, like every other httpd path. */
static const char *conditional_make_store(apr_pool_t *p, const char *spec,
                                          int explicit,
                                          conditional_store_inst **out)
{
    conditional_store_inst *inst;
    const char *colon = ap_strchr_c(spec, ':');
    const char *name, *arg, *err;
    int i;

    if (!colon || colon == spec || !colon[1]) {
        return apr_psprintf(p, "ConditionalStore: '%s' is not of the form "
                            "sqlite:/path/to/file.db", spec);
    }
    name = apr_pstrmemdup(p, spec, colon - spec);
    arg = colon + 1;
    if (!conditional_find_provider(name)) {
        return apr_psprintf(p, "ConditionalStore: unknown store type '%s' "
                            "(this build supports: sqlite)", name);
    }
    if (!strcmp(name, "sqlite")) {
        arg = ap_server_root_relative(p, arg);
        if (!arg) {
            return apr_psprintf(p, "ConditionalStore: invalid path in '%s'",
                                spec);
        }
        spec = apr_pstrcat(p, name, ":", arg, NULL);
    }
    for (i = 0; i < conditional_stores->nelts; i++) {
        inst = APR_ARRAY_IDX(conditional_stores, i, conditional_store_inst *);
        if (!strcmp(inst->spec, spec)) {
            inst->explicit |= explicit;
            *out = inst;
            return NULL;
        }
    }
    inst = apr_pcalloc(p, sizeof(*inst));
    inst->spec = spec;
    inst->explicit = explicit;
    inst->provider = conditional_find_provider(name);
    err = inst->provider->create(&inst->store, arg, p);
    if (err) {
        return apr_psprintf(p, "ConditionalStore %s: %s", spec, err);
    }
    APR_ARRAY_PUSH(conditional_stores, conditional_store_inst *) = inst;
    *out = inst;
    return NULL;
}

static const char *conditional_set_store(cmd_parms *cmd, void *dummy,
                                         const char *arg)
{
    conditional_server_conf *sc =
        ap_get_module_config(cmd->server->module_config, &conditional_module);
    (void)dummy;
    return conditional_make_store(cmd->pool, arg, 1, &sc->inst);
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

static const command_rec conditional_cmds[] = {
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
    {NULL}
};

/* ------------------------------------------------------------------ */
/* Startup                                                              */

static int conditional_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                                  apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    conditional_stores = apr_array_make(pconf, 2,
                                        sizeof(conditional_store_inst *));
    return OK;
}

/* Anonymous shared memory, made before the fork so every child of this
 * generation counts into the same place. Without it there are no counts,
 * nothing else changes. */
static void conditional_counters_create(apr_pool_t *pconf, server_rec *s)
{
    apr_shm_t *shm;
    apr_status_t rv;

    conditional_counts = NULL;
    rv = apr_shm_create(&shm, COND_NCOUNTERS * sizeof(apr_uint64_t), NULL,
                        pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, "COND00016: no shared "
                     "memory for the counters shown by mod_status");
        return;
    }
    conditional_counts = apr_shm_baseaddr_get(shm);
    memset((void *)conditional_counts, 0,
           COND_NCOUNTERS * sizeof(apr_uint64_t));
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
                                     &main_sc->inst);
        if (err) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "COND00001: %s", err);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    for (vs = s; vs; vs = vs->next) {
        conditional_server_conf *sc =
            ap_get_module_config(vs->module_config, &conditional_module);
        if (!sc->inst) {
            sc->inst = main_sc->inst;
        }
    }
    /* The first pass is httpd's dry run: nothing to create yet. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    conditional_counters_create(pconf, s);
    for (i = 0; i < conditional_stores->nelts; i++) {
        conditional_store_inst *inst =
            APR_ARRAY_IDX(conditional_stores, i, conditional_store_inst *);
        apr_status_t rv = inst->provider->init(inst->store,
                                               (long)ap_unixd_config.user_id,
                                               (long)ap_unixd_config.group_id,
                                               ptemp);
        /* An unusable store is not fatal: reads pass through untagged and
         * writes get 503 until it is fixed. */
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, inst->explicit ? APLOG_ERR : APLOG_WARNING,
                         rv, s, "COND00002: cannot initialise store %s; "
                         "reads will pass through untagged and writes get "
                         "503 until it is usable", inst->spec);
        }
    }
    return OK;
}

static void conditional_child_init(apr_pool_t *pchild, server_rec *s)
{
    char host[APRMAXHOSTLEN + 1];
    unsigned char nonce[4];
    int i;

    if (apr_gethostname(host, sizeof(host), pchild) != APR_SUCCESS) {
        apr_cpystrn(host, "localhost", sizeof(host));
    }
    apr_generate_random_bytes(nonce, sizeof(nonce));
    conditional_owner_prefix = apr_psprintf(pchild, "%s:%" APR_PID_T_FMT
                                            ":%02x%02x%02x%02x:", host,
                                            getpid(), nonce[0], nonce[1],
                                            nonce[2], nonce[3]);
    for (i = 0; i < conditional_stores->nelts; i++) {
        conditional_store_inst *inst =
            APR_ARRAY_IDX(conditional_stores, i, conditional_store_inst *);
        apr_status_t rv = inst->provider->child_init(inst->store, pchild);
        const char *id = rv == APR_SUCCESS
                         ? inst->provider->identity(inst->store) : NULL;
        if (!id) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, "COND00003: store %s "
                         "is not usable in this child", inst->spec);
            continue;
        }
        inst->tag_prefix = apr_pstrcat(pchild, "\"", id, "-", NULL);
    }
}

/* ------------------------------------------------------------------ */
/* Helpers                                                              */

/* Lowercase hex of v, no leading zeros, into buf (16 bytes at least);
 * returns its length. The 304 and tag paths format a version two or three
 * times per request, and apr_psprintf costs several times as much. */
static apr_size_t conditional_hex(char *buf, apr_uint64_t v)
{
    char rev[16];
    apr_size_t n = 0, i;

    do {
        rev[n++] = "0123456789abcdef"[v & 0xf];
        v >>= 4;
    } while (v);
    for (i = 0; i < n; i++) {
        buf[i] = rev[n - 1 - i];
    }
    return n;
}

static const char *conditional_etag(apr_pool_t *p,
                                    const conditional_store_inst *inst,
                                    apr_int64_t version)
{
    apr_size_t n = strlen(inst->tag_prefix);
    char *tag = apr_palloc(p, n + 16 + 2);

    memcpy(tag, inst->tag_prefix, n);
    n += conditional_hex(tag + n, (apr_uint64_t)version);
    tag[n++] = '"';
    tag[n] = '\0';
    return tag;
}

/* "<word><hex version>" for r->notes, e.g. "tag 1c", "commit 1d" */
static const char *conditional_version_note(apr_pool_t *p, const char *word,
                                            apr_int64_t version)
{
    apr_size_t n = strlen(word);
    char *note = apr_palloc(p, n + 16 + 1);

    memcpy(note, word, n);
    note[n + conditional_hex(note + n, (apr_uint64_t)version)] = '\0';
    return note;
}

/* CGI puts backend headers in err_headers_out, mod_proxy in headers_out. */
static const char *conditional_hdr_get(request_rec *r, const char *name)
{
    const char *v = apr_table_get(r->headers_out, name);
    return v ? v : apr_table_get(r->err_headers_out, name);
}

static void conditional_hdr_unset(request_rec *r, const char *name)
{
    apr_table_unset(r->headers_out, name);
    apr_table_unset(r->err_headers_out, name);
}

/* The representation headers a 304 must repeat (RFC 9110 15.4.5). */
static const char *const conditional_meta_names[] = {
    "Cache-Control", "Expires", "Vary", "Content-Location", NULL
};

static const char *conditional_meta_serialise(request_rec *r)
{
    const char *out = "";
    int i;

    for (i = 0; conditional_meta_names[i]; i++) {
        const char *v = conditional_hdr_get(r, conditional_meta_names[i]);
        if (v) {
            out = apr_pstrcat(r->pool, out, conditional_meta_names[i], ": ",
                              v, "\n", NULL);
        }
    }
    return *out ? out : NULL;
}

static void conditional_meta_apply(request_rec *r, const char *meta)
{
    char *line, *next;

    if (!meta) {
        return;
    }
    for (line = apr_pstrdup(r->pool, meta); *line; line = next) {
        char *end = strchr(line, '\n'), *colon;

        next = end ? end + 1 : line + strlen(line);
        if (end) {
            *end = '\0';
        }
        colon = strchr(line, ':');
        if (colon && colon[1] == ' ') {
            *colon = '\0';
            apr_table_setn(r->headers_out, line, colon + 2);
        }
    }
}

static int conditional_meta_equal(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

static void conditional_count(const char *decision)
{
    apr_size_t i;

    if (!conditional_counts) {
        return;
    }
    for (i = 0; i < COND_NCOUNTERS; i++) {
        const char *n = conditional_counters[i].note;
        if (n[0] == decision[0]
            && !strncmp(decision, n, conditional_counters[i].len)) {
            apr_atomic_inc64(&conditional_counts[i]);
            return;
        }
    }
}

static void conditional_note(request_rec *r, const char *decision)
{
    apr_table_setn(r->notes, "conditional", decision);
    conditional_count(decision);
}

/* Default key: the virtual host as configured (never the client's Host
 * header, so one resource cannot be reached under two keys) plus the
 * decoded, normalised path. */
static const char *conditional_default_key(request_rec *r, const char *path)
{
    server_rec *s = r->server;
    apr_port_t port = s->port;

    if (!port && s->addrs && s->addrs->host_port) {
        port = s->addrs->host_port;
    }
    if (!port && r->connection->local_addr) {
        port = r->connection->local_addr->port;
    }
    return apr_pstrcat(r->pool, s->server_hostname, ":",
                       apr_itoa(r->pool, port), path, NULL);
}

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

static void conditional_fill_request(request_rec *r, cond_request *cr,
                                     cond_method m)
{
    cr->method = m;
    cr->if_match = apr_table_get(r->headers_in, "If-Match");
    cr->if_none_match = apr_table_get(r->headers_in, "If-None-Match");
    cr->if_modified_since = apr_table_get(r->headers_in, "If-Modified-Since");
    cr->if_unmodified_since = apr_table_get(r->headers_in,
                                            "If-Unmodified-Since");
}

/* The module is the authority on validators for its keys: once it has
 * decided to let a request through, the backend must not second-guess tags
 * it never issued (nor answer 304/412 on its own). */
static void conditional_strip_validators(request_rec *r)
{
    apr_table_unset(r->headers_in, "If-Match");
    apr_table_unset(r->headers_in, "If-None-Match");
    apr_table_unset(r->headers_in, "If-Modified-Since");
    apr_table_unset(r->headers_in, "If-Unmodified-Since");
}

static void conditional_resource(request_rec *r, conditional_req *rq,
                                 cond_resource *res)
{
    const cond_state *st = &rq->before;
    int present = rq->found && st->exists && st->version > 0;
    /* While a write is in flight the backend may already have changed the
     * representation: no validator of it is known. */
    int known = present && !st->claim_owner;

    res->exists = present;
    res->etag = known ? conditional_etag(r->pool, rq->inst, st->version)
                      : NULL;
    res->mtime = known ? st->mtime : 0;
}

/* Validators on a response: the ETag always, Last-Modified only once its
 * second is over, so an If-Modified-Since can never hide a later write made
 * in the same second. */
static void conditional_set_validators(request_rec *r, conditional_req *rq,
                                       apr_int64_t version, apr_time_t mtime)
{
    apr_table_setn(r->headers_out, "ETag",
                   conditional_etag(r->pool, rq->inst, version));
    if (mtime && apr_time_sec(mtime) < apr_time_sec(r->request_time)) {
        char *date = apr_palloc(r->pool, APR_RFC822_DATE_LEN);
        apr_rfc822_date(date, mtime);
        apr_table_setn(r->headers_out, "Last-Modified", date);
    }
}

static void conditional_respond_with(conditional_req *rq, int status,
                                     const char *problem)
{
    rq->respond = status;
    rq->problem = problem;
}

/* ------------------------------------------------------------------ */
/* Claims                                                               */

static void conditional_invalidate_related(request_rec *r, conditional_req *rq,
                                           const char *listed);
static apr_status_t conditional_unresolved_cleanup(void *data);
static int conditional_log_transaction(request_rec *r);

/* Clear a claim whose lease ran out. The store bumps the version: the dead
 * write may or may not have reached the backend, so every tag handed out
 * before it must stop matching (its parent's too). APR_EAGAIN (someone else
 * broke or resolved it first) counts as success. */
static apr_status_t conditional_break(request_rec *r, conditional_req *rq,
                                      const char *dead, const char *why)
{
    apr_int64_t v = 0;
    apr_status_t rv = rq->inst->provider->break_claim(rq->inst->store,
                                                      rq->key, dead,
                                                      apr_time_now(), &v);
    if (rv == APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "COND00005: broke "
                      "the claim of %s on key %s (%s); version is now %"
                      APR_UINT64_T_HEX_FMT, dead, rq->key, why,
                      (apr_uint64_t)v);
        conditional_count("broken");
        conditional_invalidate_related(r, rq, NULL);
    }
    else if (rv != APR_EAGAIN) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "COND00013: cannot "
                      "break the dead claim of %s on key %s", dead, rq->key);
        return rv;
    }
    return APR_SUCCESS;
}

/*
 * A claim is dead only when its lease has run out. That its owner process
 * is gone proves nothing: a CGI or a proxied backend outlives the httpd
 * child that started it and may still write, so the lease is the one bound
 * on how long a write can take (ConditionalLeaseTime).
 */
static const char *conditional_claim_dead(const cond_state *st,
                                          apr_time_t now)
{
    return st->claim_owner && st->claim_expires <= now ? "lease expired"
                                                       : NULL;
}

/*
 * Take the key's claim for a write: look up, wait while another write is in
 * flight, evaluate the preconditions against the settled state, then claim
 * with a compare-and-set on the version evaluated. Returns 0 when the claim
 * is held, or the status to answer.
 */
static int conditional_claim(request_rec *r, conditional_req *rq,
                             const cond_request *cr, int lockwait, int lease)
{
    const cond_store_provider *pv = rq->inst->provider;
    apr_time_t deadline = apr_time_now() + apr_time_from_sec(lockwait);
    apr_interval_time_t pause = 2000;
    const char *owner = apr_psprintf(r->pool, "%s%u", conditional_owner_prefix,
                                     apr_atomic_inc32(&conditional_owner_seq));
    int waited = 0;

    for (;;) {
        apr_time_t now = apr_time_now();
        cond_resource res;
        cond_verdict v;
        cond_why why;
        apr_status_t rv = pv->lookup(rq->inst->store, rq->key, &rq->before,
                                     r->pool);

        if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "COND00006: store "
                          "lookup failed for key %s", rq->key);
            return HTTP_SERVICE_UNAVAILABLE;
        }
        rq->found = rv == APR_SUCCESS;
        if (rq->found && rq->before.claim_owner) {
            const char *dead = conditional_claim_dead(&rq->before, now);
            if (!dead) {
                goto busy;
            }
            if (conditional_break(r, rq, rq->before.claim_owner, dead)
                != APR_SUCCESS) {
                return HTTP_SERVICE_UNAVAILABLE;
            }
            goto again;
        }
        conditional_resource(r, rq, &res);
        v = cond_evaluate(cr, &res, r->request_time, &why);
        if (v != COND_PROCEED) {
            conditional_respond_with(rq, HTTP_PRECONDITION_FAILED,
                                     cond_why_str(why));
            return HTTP_PRECONDITION_FAILED;
        }
        rv = pv->claim(rq->inst->store, rq->key,
                       rq->found ? rq->before.version : 0, owner,
                       now + apr_time_from_sec(lease), now);
        if (rv == APR_SUCCESS) {
            rq->owner = owner;
            if (waited) {
                ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "COND00007: "
                              "claimed key %s after waiting", rq->key);
            }
            return 0;
        }
        if (rv == APR_EAGAIN) {
            goto again;     /* changed under us: evaluate the new state */
        }
        if (rv != APR_EBUSY) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "COND00008: cannot "
                          "claim key %s", rq->key);
            return HTTP_SERVICE_UNAVAILABLE;
        }
busy:
        if (apr_time_now() + pause > deadline) {
            return HTTP_CONFLICT;
        }
        waited = 1;
        apr_sleep(pause);
        pause = pause < 50000 ? pause * 2 : 50000;
        continue;
again:
        /* Progress by others; bounded all the same. */
        if (apr_time_now() > deadline) {
            return HTTP_CONFLICT;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Hooks                                                                */

static int conditional_read(request_rec *r, conditional_req *rq)
{
    cond_request cr;
    cond_resource res;
    cond_verdict v;
    cond_why why;
    apr_status_t rv;

    rv = rq->inst->provider->lookup(rq->inst->store, rq->key, &rq->before,
                                    r->pool);
    if (rv == APR_SUCCESS) {
        /* A dead claim would keep the key untagged until the next write. */
        const char *dead = conditional_claim_dead(&rq->before, apr_time_now());
        if (dead && conditional_break(r, rq, rq->before.claim_owner, dead)
                    == APR_SUCCESS) {
            rv = rq->inst->provider->lookup(rq->inst->store, rq->key,
                                            &rq->before, r->pool);
        }
    }
    if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, "COND00009: store "
                      "lookup failed for key %s; passing through untagged",
                      rq->key);
        conditional_note(r, "pass-store-error");
        return DECLINED;
    }
    rq->found = rv == APR_SUCCESS;
    conditional_fill_request(r, &cr, COND_METHOD_READ);
    conditional_resource(r, rq, &res);
    v = cond_evaluate(&cr, &res, r->request_time, &why);
    if (v == COND_NOT_MODIFIED && rq->before.claim_owner) {
        v = COND_PROCEED;   /* If-None-Match: *, but a DELETE may be running */
    }
    if (v == COND_NOT_MODIFIED) {
        conditional_respond_with(rq, HTTP_NOT_MODIFIED, NULL);
        return OK;
    }
    if (v == COND_FAILED) {
        conditional_respond_with(rq, HTTP_PRECONDITION_FAILED,
                                 cond_why_str(why));
        return OK;
    }
    conditional_strip_validators(r);
    ap_add_output_filter_handle(conditional_tag_frec, rq, r, r->connection);
    return OK;
}

static int conditional_write(request_rec *r, conditional_req *rq,
                             conditional_dir_conf *dc)
{
    conditional_server_conf *sc =
        ap_get_module_config(r->server->module_config, &conditional_module);
    cond_request cr;
    int status;

    conditional_fill_request(r, &cr, r->method_number == M_PUT
                                     ? COND_METHOD_PUT : COND_METHOD_WRITE);
    if (!cond_has_write_precondition(&cr) && dc->require == 1) {
        conditional_respond_with(rq, HTTP_PRECONDITION_REQUIRED,
                                 "precondition-required");
        return OK;
    }
    if (!rq->inst->tag_prefix) {
        conditional_respond_with(rq, HTTP_SERVICE_UNAVAILABLE,
                                 "store-unavailable");
        return OK;
    }
    status = conditional_claim(r, rq, &cr,
                               dc->lockwait == COND_UNSET
                               ? COND_DEFAULT_LOCKWAIT : dc->lockwait,
                               sc->lease == COND_UNSET
                               ? COND_DEFAULT_LEASE : sc->lease);
    if (status == HTTP_SERVICE_UNAVAILABLE) {
        conditional_respond_with(rq, status, "store-unavailable");
        return OK;
    }
    if (status == HTTP_CONFLICT) {
        conditional_respond_with(rq, status, "write-in-progress");
        return OK;
    }
    if (status) {
        return OK;          /* 412, already recorded */
    }
    apr_pool_cleanup_register(r->pool, rq, conditional_unresolved_cleanup,
                              apr_pool_cleanup_null);
    rq->is_delete = r->method_number == M_DELETE;
    conditional_strip_validators(r);
    ap_add_output_filter_handle(conditional_commit_frec, rq, r,
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

    if (dc->enabled != 1 || r->main || !sc->inst
        || (r->handler && !strcmp(r->handler, "redirect-handler"))
        || (r->prev && ap_is_HTTP_ERROR(r->prev->status))) {
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
        if (!rq->inst->tag_prefix) {
            conditional_note(r, "pass-store-error");
            return DECLINED;
        }
        return conditional_read(r, rq);
    }
    return conditional_write(r, rq, dc);
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

static int conditional_send_problem(request_rec *r, conditional_req *rq)
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
        conditional_meta_apply(r, rq->before.meta);
        conditional_set_validators(r, rq, rq->before.version,
                                   rq->before.mtime);
        conditional_note(r, "304");
        r->status = HTTP_NOT_MODIFIED;
        return OK;
    }
    return conditional_send_problem(r, rq);
}

/* ------------------------------------------------------------------ */
/* Output filters                                                       */

/* A 200 from the backend: tag it only if the key's version was the same and
 * no write was in flight both before the backend ran and now. */
static void conditional_tag(request_rec *r, conditional_req *rq)
{
    const cond_store_provider *pv = rq->inst->provider;
    const char *meta = conditional_meta_serialise(r);
    apr_time_t now = apr_time_now();
    apr_int64_t v = 0;
    cond_state after;
    apr_status_t rv;

    if (!rq->found) {
        rv = pv->register_key(rq->inst->store, rq->key, meta, now, &v);
        if (rv == APR_SUCCESS) {
            conditional_set_validators(r, rq, v, now);
            conditional_note(r, conditional_version_note(r->pool, "tag ", v));
            return;
        }
        conditional_note(r, "untagged");
        return;
    }
    rv = pv->lookup(rq->inst->store, rq->key, &after, r->pool);
    if (rv != APR_SUCCESS || rq->before.claim_owner || after.claim_owner
        || after.version != rq->before.version) {
        conditional_note(r, "untagged");
        return;
    }
    v = after.version;
    if (!after.exists || after.version == 0) {
        /* The store thought it absent; the backend shows it again. */
        if (pv->set_exists(rq->inst->store, rq->key, after.version, 1, meta,
                           now, &v) != APR_SUCCESS) {
            conditional_note(r, "untagged");
            return;
        }
        after.mtime = now;
    }
    else if (!conditional_meta_equal(meta, after.meta)) {
        pv->set_meta(rq->inst->store, rq->key, after.version, meta);
    }
    conditional_set_validators(r, rq, v, after.mtime);
    conditional_note(r, conditional_version_note(r->pool, "tag ", v));
}

static apr_status_t conditional_tag_filter(ap_filter_t *f,
                                           apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    conditional_req *rq = f->ctx;

    ap_remove_output_filter(f);
    conditional_hdr_unset(r, COND_INVALIDATE_HDR);
    if (r->status == HTTP_OK) {
        conditional_hdr_unset(r, "ETag");
        conditional_hdr_unset(r, "Last-Modified");
        conditional_tag(r, rq);
    }
    else if ((r->status == HTTP_NOT_FOUND || r->status == HTTP_GONE)
             && rq->found && rq->before.exists && !rq->before.claim_owner) {
        apr_int64_t v;
        if (rq->inst->provider->set_exists(rq->inst->store, rq->key,
                                           rq->before.version, 0, NULL,
                                           apr_time_now(), &v)
            == APR_SUCCESS) {
            conditional_note(r, "absent");
        }
    }
    return ap_pass_brigade(f->next, bb);
}

/* Bump a key another write invalidated, but only one the store knows:
 * inventing a key would make "If-Match: *" succeed on nothing. */
static void conditional_invalidate(request_rec *r, conditional_req *rq,
                                   const char *key)
{
    const cond_store_provider *pv = rq->inst->provider;
    cond_state st;
    apr_int64_t v;

    if (!strcmp(key, rq->key)
        || pv->lookup(rq->inst->store, key, &st, r->pool) != APR_SUCCESS) {
        return;
    }
    if (pv->bump(rq->inst->store, key, apr_time_now(), &v) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "COND00010: could "
                      "not invalidate key %s", key);
    }
}

/* The parent of ".../items/7" (query dropped, trailing slash ignored) is
 * ".../items"; a collection is often also addressed as ".../items/". */
static void conditional_invalidate_parent(request_rec *r, conditional_req *rq)
{
    char *k = apr_pstrdup(r->pool, rq->key);
    char *q = strchr(k, '?'), *slash;
    apr_size_t n;

    if (q) {
        *q = '\0';
    }
    n = strlen(k);
    while (n > 1 && k[n - 1] == '/') {
        k[--n] = '\0';
    }
    slash = strrchr(k, '/');
    if (!slash || slash == k || !ap_strchr_c(k, '/')
        || slash == ap_strchr_c(k, '/')) {
        return;             /* no parent below the site root */
    }
    slash[1] = '\0';
    conditional_invalidate(r, rq, k);
    slash[0] = '\0';
    conditional_invalidate(r, rq, k);
}

static void conditional_invalidate_listed(request_rec *r, conditional_req *rq,
                                          const char *list)
{
    char *item;

    while ((item = ap_get_list_item(r->pool, &list)) != NULL) {
        const char *key = item;
        if (!rq->custom_key && item[0] == '/') {
            ap_unescape_url(item);
            ap_getparents(item);
            key = conditional_default_key(r, item);
        }
        conditional_invalidate(r, rq, key);
    }
}

/* Keys a write may have changed besides its own. */
static void conditional_invalidate_related(request_rec *r, conditional_req *rq,
                                           const char *listed)
{
    if (rq->invalidate_parent) {
        conditional_invalidate_parent(r, rq);
    }
    if (listed) {
        conditional_invalidate_listed(r, rq, listed);
    }
}

/*
 * The backend answered 2xx: commit the new version as soon as the headers
 * are known, so the response can carry its ETag, but keep the claim until
 * the response is complete - a CGI may print its headers first and write
 * afterwards. Until then readers get no tag and writers wait.
 */
static void conditional_commit(request_rec *r, conditional_req *rq,
                               unsigned hold)
{
    apr_int64_t v = 0;
    apr_status_t rv;

    rv = rq->inst->provider->commit(rq->inst->store, rq->key, rq->owner,
                                    (rq->is_delete ? 0 : COND_COMMIT_EXISTS)
                                    | hold, apr_time_now(), &v);
    if (rv == APR_SUCCESS) {
        rq->committed = 1;
        if (!rq->is_delete) {
            conditional_set_validators(r, rq, v, 0);
        }
        conditional_note(r, conditional_version_note(r->pool, "commit ", v));
        return;
    }
    rq->owner = NULL;
    if (rv == APR_NOTFOUND) {
        /* The lease ran out while the backend ran, and the key may have
         * been written since. The write is not committed as ours, but it
         * did reach the backend: move the version, so no tag issued before
         * it (the other writer's included) names what it overwrote. */
        rv = rq->inst->provider->bump(rq->inst->store, rq->key,
                                      apr_time_now(), &v);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "COND00011: the claim on "
                      "key %s was lost (its lease of ConditionalLeaseTime "
                      "ran out) while the backend ran; the write was not "
                      "committed, and the key was %s", rq->key,
                      rv == APR_SUCCESS ? "given a new version"
                                        : "NOT given a new version");
        conditional_note(r, "claim-lost");
    }
    else {
        /* The claim stays until its lease runs out; breaking it then
         * bumps the version. */
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "COND00012: commit "
                      "failed for key %s", rq->key);
        conditional_note(r, "commit-failed");
    }
}

/* What a write's end says about its effect on the resource. */
typedef enum {
    COND_OUTCOME_DONE,      /* 2xx, committed: release the claim */
    COND_OUTCOME_REFUSED,   /* 4xx: the backend refused it: release */
    COND_OUTCOME_UNSURE,    /* 3xx, 5xx: the backend is done but may have
                             * changed something: release with a new version */
    COND_OUTCOME_PENDING    /* 502/504 (the gateway gave up on a backend that
                             * may still be writing), or the request never
                             * finished (its process was killed or stopped):
                             * keep the claim until its lease runs out */
} conditional_outcome;

static conditional_outcome conditional_outcome_of(conditional_req *rq,
                                                  int status, int finished)
{
    if (!finished || status == HTTP_BAD_GATEWAY
        || status == HTTP_GATEWAY_TIME_OUT) {
        return COND_OUTCOME_PENDING;
    }
    if (rq->committed || ap_is_HTTP_SUCCESS(status)) {
        return COND_OUTCOME_DONE;
    }
    if (ap_is_HTTP_CLIENT_ERROR(status)) {
        return COND_OUTCOME_REFUSED;
    }
    return COND_OUTCOME_UNSURE;
}

/*
 * Settle the claim of a write whose response has ended (or never will).
 * A claim is never simply dropped when the write may have changed the
 * resource: every tag issued before it must stop matching.
 */
static void conditional_settle(request_rec *r, conditional_req *rq,
                               int status, int finished)
{
    const cond_store_provider *pv = rq->inst->provider;
    conditional_outcome outcome = conditional_outcome_of(rq, status,
                                                         finished);
    apr_int64_t v = 0;
    apr_status_t rv;

    switch (outcome) {
    case COND_OUTCOME_DONE:
        if (rq->committed) {
            pv->release(rq->inst->store, rq->key, rq->owner);
        }
        else {
            conditional_commit(r, rq, 0);  /* the 2xx bypassed the filter */
        }
        break;
    case COND_OUTCOME_REFUSED:
        pv->release(rq->inst->store, rq->key, rq->owner);
        conditional_note(r, apr_psprintf(r->pool, "release %d", status));
        break;
    case COND_OUTCOME_UNSURE:
        rv = pv->break_claim(rq->inst->store, rq->key, rq->owner,
                             apr_time_now(), &v);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "COND00014: cannot "
                          "invalidate key %s after its write ended with %d; "
                          "the claim stays until its lease runs out",
                          rq->key, status);
        }
        conditional_note(r, apr_psprintf(r->pool, "invalidate %d", status));
        break;
    case COND_OUTCOME_PENDING:
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "COND00015: the "
                      "write to key %s ended with %d before its backend was "
                      "known to be done; the key stays claimed until its "
                      "lease runs out, then gets a new version", rq->key,
                      status);
        if (!rq->committed) {
            conditional_note(r, apr_psprintf(r->pool, "pending %d", status));
        }
        break;
    }
    rq->owner = NULL;
    /* A pending claim's parent is bumped when the claim is broken; and a
     * child being torn down does no store I/O. */
    if (outcome == COND_OUTCOME_DONE || outcome == COND_OUTCOME_UNSURE) {
        conditional_invalidate_related(r, rq, rq->listed);
    }
}

/*
 * A claim the commit filter did not settle: the response was an error page
 * (which bypasses content filters), went through an internal redirect
 * (Action, mod_rewrite [PT]; the filter stays with the first request), or
 * never finished at all. Run from the log_transaction hook, so the access
 * log shows the decision, and from the request pool cleanup as the last
 * resort (a child torn down mid-request: no store I/O then).
 */
static void conditional_settle_late(conditional_req *rq)
{
    request_rec *r = rq->r, *last = r;
    const char *note;

    if (!rq->owner) {
        return;
    }
    while (last->next) {
        last = last->next;
    }
    if (!rq->headers_seen) {
        rq->listed = conditional_hdr_get(last, COND_INVALIDATE_HDR);
    }
    /* An error page keeps the error in the first request's status; after
     * any other redirect the last request has the backend's. */
    conditional_settle(r, rq, ap_is_HTTP_ERROR(r->status) ? r->status
                                                          : last->status,
                       r->eos_sent);
    note = apr_table_get(r->notes, "conditional");
    if (last != r && note) {
        apr_table_setn(last->notes, "conditional", note);
    }
}

static apr_status_t conditional_unresolved_cleanup(void *data)
{
    conditional_settle_late(data);
    return APR_SUCCESS;
}

static int conditional_log_transaction(request_rec *r)
{
    conditional_req *rq =
        ap_get_module_config(r->request_config, &conditional_module);

    if (rq && rq->owner) {
        conditional_settle_late(rq);
    }
    return DECLINED;
}

static int conditional_has_eos(apr_bucket_brigade *bb)
{
    apr_bucket *e;

    for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb);
         e = APR_BUCKET_NEXT(e)) {
        if (APR_BUCKET_IS_EOS(e)) {
            return 1;
        }
    }
    return 0;
}

/* First brigade: the backend's status and headers are known; commit a 2xx.
 * The brigade with EOS: the backend is done; settle the claim. */
static apr_status_t conditional_commit_filter(ap_filter_t *f,
                                              apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    conditional_req *rq = f->ctx;
    apr_status_t rv;

    if (!rq->headers_seen) {
        rq->headers_seen = 1;
        conditional_hdr_unset(r, "ETag");
        conditional_hdr_unset(r, "Last-Modified");
        rq->listed = conditional_hdr_get(r, COND_INVALIDATE_HDR);
        conditional_hdr_unset(r, COND_INVALIDATE_HDR);
        if (rq->owner && ap_is_HTTP_SUCCESS(r->status)) {
            conditional_commit(r, rq, COND_COMMIT_HOLD);
        }
    }
    if (!rq->owner) {
        ap_remove_output_filter(f);
        return ap_pass_brigade(f->next, bb);
    }
    if (!conditional_has_eos(bb)) {
        return ap_pass_brigade(f->next, bb);
    }
    /* A CGI's or proxy's body arrives as a bucket read further down the
     * chain: the backend is done only once the brigade has gone through. */
    ap_remove_output_filter(f);
    rv = ap_pass_brigade(f->next, bb);
    if (rq->owner) {
        conditional_settle(r, rq, r->status, 1);
    }
    return rv;
}

/* ------------------------------------------------------------------ */
/* mod_status                                                           */

static int conditional_status(request_rec *r, int flags)
{
    apr_size_t i;
    int j;

    if (!conditional_counts || !conditional_stores) {
        return OK;
    }
    if (flags & AP_STATUS_SHORT) {
        for (i = 0; i < COND_NCOUNTERS; i++) {
            ap_rprintf(r, "Conditional%s: %" APR_UINT64_T_FMT "\n",
                       conditional_counters[i].key,
                       (apr_uint64_t)conditional_counts[i]);
        }
        return OK;
    }
    ap_rputs("<hr />\n<h2>mod_conditional</h2>\n<dl>", r);
    for (j = 0; j < conditional_stores->nelts; j++) {
        conditional_store_inst *inst =
            APR_ARRAY_IDX(conditional_stores, j, conditional_store_inst *);
        const char *id = inst->provider->identity(inst->store);
        ap_rprintf(r, "<dt>Store %s: %s</dt>\n",
                   ap_escape_html(r->pool, inst->spec),
                   inst->tag_prefix ? apr_pstrcat(r->pool, "identity ", id,
                                                  NULL)
                                    : "<b>not usable</b>");
    }
    ap_rputs("</dl>\n<table>\n", r);
    for (i = 0; i < COND_NCOUNTERS; i++) {
        ap_rprintf(r, "<tr><td>%s</td><td align=\"right\">%"
                   APR_UINT64_T_FMT "</td></tr>\n",
                   conditional_counters[i].label,
                   (apr_uint64_t)conditional_counts[i]);
    }
    ap_rputs("</table>\n", r);
    return OK;
}

static void conditional_register_hooks(apr_pool_t *p)
{
    static const char *const after_rewrite[] = {"mod_rewrite.c", NULL};
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
    ap_hook_handler(conditional_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
    /* Before mod_deflate/mod_brotli (CONTENT_SET), so they see our ETag. */
    conditional_tag_frec =
        ap_register_output_filter(COND_FILTER_TAG, conditional_tag_filter,
                                  NULL, AP_FTYPE_CONTENT_SET - 1);
    conditional_commit_frec =
        ap_register_output_filter(COND_FILTER_COMMIT,
                                  conditional_commit_filter, NULL,
                                  AP_FTYPE_CONTENT_SET - 1);
}

module AP_MODULE_DECLARE_DATA conditional_module = {
    STANDARD20_MODULE_STUFF,
    conditional_create_dir_conf,
    conditional_merge_dir_conf,
    conditional_create_server_conf,
    conditional_merge_server_conf,
    conditional_cmds,
    conditional_register_hooks,
    AP_MODULE_FLAG_NONE
};
