/*
 * precond.h - RFC 9110 section 13 precondition evaluation.
 *
 * Pure logic: no httpd types, only APR. The httpd glue (mod_conditional.c)
 * fills a cond_request from the request headers and a cond_resource from the
 * store, and turns the verdict into a response. Unit-tested in
 * unit/test_precond.c.
 */
#ifndef COND_PRECOND_H
#define COND_PRECOND_H

#include <apr_pools.h>
#include <apr_time.h>

/* How the request method takes part in section 13.2.2. */
typedef enum {
    COND_METHOD_READ,   /* GET, HEAD: If-None-Match/If-Modified-Since give 304 */
    COND_METHOD_WRITE,  /* PUT, PATCH, DELETE, POST: every failure is 412 */
    COND_METHOD_PUT     /* PUT: a write; If-None-Match: * means create-only */
} cond_method;

/* The validator header values exactly as received (NULL when absent;
 * several instances of a list header already joined with ", "). */
typedef struct {
    cond_method method;
    const char *if_match;
    const char *if_none_match;
    const char *if_modified_since;
    const char *if_unmodified_since;
} cond_request;

/* The selected resource as the store knows it. */
typedef struct {
    int exists;           /* a current representation exists */
    const char *etag;     /* the strong entity-tag of the representation the
                           * request would get, quotes included, e.g.
                           * "\"5f2a9c01d3e4b6a7-1c\"", or NULL when none */
    apr_time_t mtime;     /* last modification, 0 when unknown */
    const char *version_tag;  /* the resource's version tag, or NULL: every
                           * representation of this version has it or it
                           * plus suffixes inside the quotes (see
                           * cond_tag_of_version); If-Match and a write's
                           * If-None-Match accept any of them */
} cond_resource;

typedef enum {
    COND_PROCEED = 0,          /* run the request */
    COND_NOT_MODIFIED = 304,   /* GET/HEAD: answer 304 */
    COND_FAILED = 412          /* answer 412 Precondition Failed */
} cond_verdict;

/* Why, as a short token for r->notes and problem+json details. */
typedef enum {
    COND_WHY_NONE = 0,             /* no precondition applied */
    COND_WHY_MATCH,                /* a precondition held */
    COND_WHY_NONE_MATCH,           /* If-None-Match matched: 304 or 412 */
    COND_WHY_NOT_MODIFIED_SINCE,   /* If-Modified-Since: 304 */
    COND_WHY_STALE,                /* If-Match: no tag matched current */
    COND_WHY_WEAK,                 /* If-Match: only W/ tags could match */
    COND_WHY_ABSENT,               /* If-Match on an absent resource */
    COND_WHY_MALFORMED,            /* If-Match could not be parsed */
    COND_WHY_MODIFIED_SINCE,       /* If-Unmodified-Since failed */
    COND_WHY_EXISTS                /* If-None-Match: * on a present resource */
} cond_why;

/*
 * Evaluate the preconditions of req against res in the order of RFC 9110
 * section 13.2.2: If-Match, else If-Unmodified-Since; then If-None-Match,
 * else If-Modified-Since (reads only). 'now' is the request time: an
 * If-Modified-Since later than it is ignored. 'why' (may be NULL) receives
 * the reason. Never fails: malformed input is handled as the RFC says.
 */
cond_verdict cond_evaluate(const cond_request *req, const cond_resource *res,
                           apr_time_t now, cond_why *why);

/* Short token for a reason ("stale", "weak", ...), never NULL. */
const char *cond_why_str(cond_why why);

/* Non-zero when req carries any precondition that applies to a write
 * (If-Match, If-None-Match, If-Unmodified-Since). Used for 428. */
int cond_has_write_precondition(const cond_request *req);

/*
 * Entity-tag list matching, exposed for tests and for the glue.
 * 'list' is a header value. Returns 1 on a match, 0 on no match, and -1
 * when the list is malformed (only cond_list_match_strong reports -1; the
 * weak matcher skips malformed elements). "*" matches when exists.
 * No suffix is special here: "-gzip" names another representation.
 */
int cond_list_match_strong(const char *list, const char *etag, int exists);
int cond_list_match_weak(const char *list, const char *etag, int exists);

/*
 * Whether 'tag' (one entity-tag, W/ and quotes included) belongs to the
 * version whose tag is 'version_tag': it is that tag, or that tag with a
 * variant suffix ("-" and 16 lowercase hex) and/or a content-coding suffix
 * mod_deflate / mod_brotli add ("-gzip", "-br", "-gunzip") inside the
 * quotes. Weak tags never belong (they are no strong validator). 1 or 0.
 */
int cond_tag_of_version(const char *tag, const char *version_tag);

/*
 * The version an If-Match names: of its strong tags of the form prefix,
 * lowercase hex version, '"' - with the suffixes cond_tag_of_version
 * allows - where prefix is the store's tag start ("\"<identity>-"), the
 * highest version; 0 when it has none (only weak tags or other stores'),
 * or is "*" or malformed. Only a hint for the store's claim: the
 * preconditions are still evaluated in full.
 */
apr_int64_t cond_if_match_version(const char *if_match, const char *prefix);

/*
 * RFC 9110 13.1.5: whether a Range may be served under this If-Range value.
 * 'etag' is the strong tag the representation would go out with (NULL when
 * not known), 'last_modified' the Last-Modified it would carry (0: none).
 * True only for a strong tag equal to 'etag', or a valid HTTP-date equal to
 * 'last_modified'; a weak tag, a stale one, a list, junk or a missing
 * validator all mean: ignore the Range, send the whole representation.
 */
int cond_if_range(const char *if_range, const char *etag,
                  apr_time_t last_modified);

/* Parse an HTTP-date in any of the three formats of RFC 9110 5.6.7;
 * returns 0 when invalid. */
apr_time_t cond_parse_date(const char *value);

#endif /* COND_PRECOND_H */
