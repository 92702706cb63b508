/*
 * mod_conditional_private.h - types and prototypes shared by the httpd glue
 * (the mod_conditional*.c files). Nothing outside the glue includes it: the
 * evaluator (precond.h) and the stores (store.h) know nothing of httpd.
 */
#ifndef MOD_CONDITIONAL_PRIVATE_H
#define MOD_CONDITIONAL_PRIVATE_H

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "ap_expr.h"
#include "util_cfgtree.h"
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
#include "pgsql_store.h"
#include "variant.h"

/* One claim a request in this child holds (mod_conditional_renew.c). */
typedef struct conditional_held conditional_held;


APLOG_USE_MODULE(conditional);

#ifndef COND_DEFAULT_STORE
#define COND_DEFAULT_STORE "/var/lib/apache2/conditional/conditional.db"
#endif
#define COND_DEFAULT_LEASE     60
#define COND_DEFAULT_LOCKWAIT  10
#define COND_UNSET             (-1)
#define COND_FILTER_TAG        "CONDITIONAL_TAG"
#define COND_FILTER_COMMIT     "CONDITIONAL_COMMIT"
#define COND_FILTER_RECORD     "CONDITIONAL_RECORD"
#define COND_FILTER_SINK       "CONDITIONAL_SINK"
#define COND_FILTER_EMPTY      "CONDITIONAL_EMPTY"
#define COND_INVALIDATE_HDR    "Conditional-Invalidate"

/* The filters' records, kept at registration (mod_conditional.c). */
extern ap_filter_rec_t *conditional_tag_frec;
extern ap_filter_rec_t *conditional_commit_frec;
extern ap_filter_rec_t *conditional_record_frec;
extern ap_filter_rec_t *conditional_sink_frec;
extern ap_filter_rec_t *conditional_empty_frec;

/* A configured store: shared by every server_rec that names the same spec,
 * or, for a provider that depends on its server's own settings (dbd), one
 * per server_rec. */
typedef struct {
    const char *spec;                    /* "sqlite:/path" as configured */
    const char *arg;                     /* what follows "name:", or NULL */
    const cond_store_provider *provider;
    cond_store *store;
    server_rec *server;                  /* per-server stores: their server */
    apr_pool_t *pchild;                  /* for tag_prefix, once known */
    void *tag_prefix;                    /* "\"<identity>-", NULL until the
                                          * store's identity is known */
    int explicit;                        /* named by ConditionalStore */
    /* The store got a new identity while the server ran (deleted,
     * replaced, its -wal lost): until then no tags and no writes, so a
     * write still in flight from before cannot be missed */
    apr_time_t quiet_until;
} conditional_store_inst;

typedef struct {
    conditional_store_inst *inst;        /* NULL: unset (default applies) */
    int lease;                           /* seconds, COND_UNSET */
    /* The site part of this server's keys (mod_conditional_key.c), set at
     * post_config: */
    const char *site;                    /* "host:port[~tell]" */
    const char *site_base;               /* "host:port" */
    const char *site_tell;               /* what tells twins apart, or NULL */
    int site_by_host;                    /* mass vhost: the request's host */
    int quick;                           /* ConditionalQuickHandler:
                                          * COND_UNSET, 0, 1 */
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
    conditional_held *held;  /* its entry for the renewal thread */
    int is_delete;
    int committed;           /* 2xx: new version committed, claim kept
                              * until the backend's response is complete */
    int headers_seen;        /* the commit filter saw the first brigade */
    const char *listed;      /* the backend's Conditional-Invalidate */
    int invalidate_parent;
    int custom_key;
    int pass;                /* store unusable: no validators either way */
    request_rec *r;          /* for the cleanup that resolves a claim */
    const cond_variant *variant;  /* reads: the representation the request
                                   * gets, as last sent at this version */
    int range_allowed;       /* reads: If-Range held, Range left in */
    apr_int64_t vtag_of;     /* the version vtag is the tag of (0 none) */
    const char *vtag;        /* conditional_version_tag's last answer */
    apr_int64_t tagged;      /* reads: the version a 200 was tagged with */
    const char *tagged_meta; /* the store's metadata at that version */
    int backend_has;         /* writes on a key never seen: 0 not asked,
                              * 1 yes, 2 no, 3 unknown */
} conditional_req;


/* mod_conditional_config.c: configuration and directives */
extern const command_rec conditional_cmds[];
extern apr_array_header_t *conditional_stores;
void *conditional_create_server_conf(apr_pool_t *p, server_rec *s);
void *conditional_merge_server_conf(apr_pool_t *p, void *basev, void *addv);
void *conditional_create_dir_conf(apr_pool_t *p, char *dir);
void *conditional_merge_dir_conf(apr_pool_t *p, void *basev, void *addv);
const char *conditional_make_store(apr_pool_t *p, const char *spec,
                                   int explicit, server_rec *s,
                                   conditional_store_inst **out);
conditional_store_inst *conditional_store_for(apr_pool_t *p,
                                              conditional_store_inst *inst,
                                              server_rec *s);
int conditional_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                           apr_pool_t *ptemp);
void conditional_store_generation(server_rec *s,
                                  conditional_store_inst *inst, int lease);
int conditional_store_lease(server_rec *s, const conditional_store_inst *inst);
int conditional_store_quiet(const conditional_store_inst *inst,
                            apr_time_t now);

/* mod_conditional_dbd.c: mod_dbd's connections for dbd stores */
const char *conditional_dbd_bind(void);

/* mod_conditional_status.c: decisions, notes, shared counters */
void conditional_counters_create(apr_pool_t *pconf, server_rec *s);
void conditional_count(const char *decision);
void conditional_note(request_rec *r, const char *decision);
int conditional_status(request_rec *r, int flags);

/* mod_conditional_response.c: validators, 304 replay, problem+json */
const char *conditional_etag(apr_pool_t *p,
                             const conditional_store_inst *inst,
                             apr_int64_t version);
const char *conditional_version_note(apr_pool_t *p, const char *word,
                                     apr_int64_t version);
const char *conditional_hdr_get(request_rec *r, const char *name);
void conditional_hdr_unset(request_rec *r, const char *name);
void conditional_fill_request(request_rec *r, cond_request *cr,
                              cond_method m);
void conditional_strip_validators(request_rec *r);
void conditional_resource(request_rec *r, conditional_req *rq,
                          cond_resource *res);
void conditional_set_validators(request_rec *r, conditional_req *rq,
                                apr_int64_t version, apr_time_t mtime);
apr_time_t conditional_last_modified(request_rec *r, apr_time_t mtime);
void conditional_set_last_modified(request_rec *r, apr_time_t mtime);
void conditional_respond_with(conditional_req *rq, int status,
                              const char *problem);
int conditional_send_problem(request_rec *r, conditional_req *rq);

/* mod_conditional_variant.c: representations, If-Range, existence */
const char *conditional_request_header(void *baton, const char *name);
const char *conditional_variant_etag(request_rec *r, conditional_req *rq,
                                     apr_int64_t version, const char *vhash);
const char *conditional_response_vary(request_rec *r);
const char *conditional_version_tag(request_rec *r, conditional_req *rq,
                                    apr_int64_t version);
void conditional_memo_init(apr_pool_t *pchild);
void conditional_select_variant(request_rec *r, conditional_req *rq);
void conditional_replay_variant(request_rec *r, conditional_req *rq);
void conditional_if_range(request_rec *r, conditional_req *rq);
apr_status_t conditional_record_filter(ap_filter_t *f,
                                       apr_bucket_brigade *bb);
apr_status_t conditional_sink_filter(ap_filter_t *f, apr_bucket_brigade *bb);
apr_status_t conditional_empty_filter(ap_filter_t *f, apr_bucket_brigade *bb,
                                      ap_input_mode_t mode,
                                      apr_read_type_e block,
                                      apr_off_t readbytes);
int conditional_write_probe(request_rec *r, conditional_req *rq,
                            const cond_request *cr);
int conditional_write_resource(request_rec *r, conditional_req *rq,
                               const cond_request *cr, cond_resource *res);

/* mod_conditional.c: the store's identity and error text */
const char *conditional_tag_prefix(conditional_store_inst *inst,
                                   apr_pool_t *p);
const char *conditional_store_error(apr_pool_t *p);

/* mod_conditional.c: the read path, shared with the quick handler */
cond_verdict conditional_read_verdict(request_rec *r, conditional_req *rq,
                                      cond_why *why);
int conditional_not_modified(request_rec *r, conditional_req *rq,
                             const char *decision);

/* mod_conditional_quick.c: ConditionalQuickHandler */
void conditional_quick_init(apr_pool_t *pconf, server_rec *s);
const char *conditional_public_id(request_rec *r, conditional_req *rq);
int conditional_quick_handler(request_rec *r, int lookup_uri);

/* mod_conditional_key.c: sites, keys and the ap_expr variables */
void conditional_sites_init(apr_pool_t *p, server_rec *main_s, int log);
const char *conditional_site(request_rec *r);
const char *conditional_default_key(request_rec *r, const char *path);
int conditional_expr_lookup(ap_expr_lookup_parms *parms);

/* mod_conditional_write.c: claims, commit, settlement, invalidation */
void conditional_owner_init(apr_pool_t *pchild);
apr_status_t conditional_break(request_rec *r, conditional_req *rq,
                               const char *dead, const char *why);
const char *conditional_claim_dead(const cond_state *st);
int conditional_write(request_rec *r, conditional_req *rq,
                      conditional_dir_conf *dc);
int conditional_log_transaction(request_rec *r);
void conditional_settle_before_error(request_rec *r);
apr_status_t conditional_commit_filter(ap_filter_t *f,
                                       apr_bucket_brigade *bb);

/* mod_conditional_renew.c: the registry of this child's held claims and
 * the thread that renews their leases */

/* child_init, after every store's child_init: start this child's renewal
 * thread; a cleanup on pchild stops and joins it. */
apr_status_t conditional_renew_start(apr_pool_t *pchild, server_rec *s);

/* A request in this child holds owner's claim on key: renew its lease
 * (lease seconds from each renewal) until conditional_renew_remove() or
 * the cleanup of p (the request's pool). NULL when no thread runs. */
conditional_held *conditional_renew_add(apr_pool_t *p,
                                        const cond_store_provider *pv,
                                        cond_store *store, const char *key,
                                        const char *owner, int lease);

/* The claim is settled (or left to its lease): stop renewing it. Safe
 * with NULL and more than once. */
void conditional_renew_remove(conditional_held *h);

#endif /* MOD_CONDITIONAL_PRIVATE_H */
