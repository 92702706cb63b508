/*
 * fuzz_evaluate.c - cond_evaluate (precond.c), RFC 9110 13.2.2.
 *
 * Input: "<If-Match>\n<If-None-Match>\n<If-Modified-Since>\n
 * <If-Unmodified-Since>\n<flags>", an empty line meaning an absent header.
 * flags: bit 0-1 the method, bit 2 exists, bit 3 a current tag, bit 4 a
 * last-modified time. Invariants beyond "no crash":
 *  - the verdict is proceed, 304 or 412, and the same when asked again;
 *  - 304 only for GET/HEAD; a write never gets 304;
 *  - no validators at all: proceed, for every method;
 *  - If-Match present on an absent resource: 412 (the RFC's "false" for
 *    any If-Match when there is no current representation);
 *  - If-Match that is exactly the current tag never fails on its own: the
 *    outcome is what the request would get without If-Match and without
 *    If-Unmodified-Since (which If-Match overrides);
 *  - "why" names a reason consistent with the verdict, and has a string;
 *  - cond_has_write_precondition says yes for any If-Match, and for an
 *    If-Unmodified-Since alone exactly when it is a valid date.
 */
#include <apr_time.h>

#include "fuzz.h"
#include "precond.h"

#define FUZZ_TAG   "\"5f2a9c01d3e4b6a7-1c\""
#define FUZZ_MTIME (APR_INT64_C(1700000000) * APR_USEC_PER_SEC)
#define FUZZ_NOW   (APR_INT64_C(1800000000) * APR_USEC_PER_SEC)

static const char *fuzz_header(const char *v)
{
    return *v ? v : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const cond_method methods[4] = {
        COND_METHOD_READ, COND_METHOD_WRITE, COND_METHOD_PUT,
        COND_METHOD_READ
    };
    char *parts[5];
    char *in = fuzz_split(data, size, parts, 5);
    unsigned flags = (unsigned char)parts[4][0];
    cond_request req, bare;
    cond_resource res;
    cond_verdict v, again, without;
    cond_why why, why2;

    /* every field, those added later included, starts out unset */
    memset(&req, 0, sizeof(req));
    memset(&res, 0, sizeof(res));
    req.method = methods[flags & 3];
    req.if_match = fuzz_header(parts[0]);
    req.if_none_match = fuzz_header(parts[1]);
    req.if_modified_since = fuzz_header(parts[2]);
    req.if_unmodified_since = fuzz_header(parts[3]);
    res.exists = (flags & 4) != 0;
    res.etag = res.exists && (flags & 8) ? FUZZ_TAG : NULL;
    res.mtime = res.exists && (flags & 16) ? FUZZ_MTIME : 0;
    /* the representation's tag is then also the version's */
    res.version_tag = (flags & 32) ? res.etag : NULL;

    v = cond_evaluate(&req, &res, FUZZ_NOW, &why);
    again = cond_evaluate(&req, &res, FUZZ_NOW, &why2);
    FUZZ_CHECK(v == again && why == why2);
    FUZZ_CHECK(v == COND_PROCEED || v == COND_NOT_MODIFIED
               || v == COND_FAILED);
    FUZZ_CHECK(cond_why_str(why) != NULL);
    FUZZ_CHECK(v != COND_NOT_MODIFIED || req.method == COND_METHOD_READ);
    FUZZ_CHECK(v != COND_NOT_MODIFIED
               || why == COND_WHY_NONE_MATCH
               || why == COND_WHY_NOT_MODIFIED_SINCE);
    FUZZ_CHECK(v != COND_PROCEED
               || (why == COND_WHY_NONE || why == COND_WHY_MATCH));
    if (!req.if_match && !req.if_none_match) {
        FUZZ_CHECK(cond_has_write_precondition(&req)
                   == (cond_parse_date(req.if_unmodified_since) != 0));
    }
    if (req.if_match) {
        FUZZ_CHECK(cond_has_write_precondition(&req));
    }
    if (!req.if_match && !req.if_none_match && !req.if_modified_since
        && !req.if_unmodified_since) {
        FUZZ_CHECK(v == COND_PROCEED && why == COND_WHY_NONE);
    }
    if (req.if_match && !res.exists) {
        FUZZ_CHECK(v == COND_FAILED);
    }
    if (res.etag) {
        bare = req;
        bare.if_match = NULL;
        bare.if_unmodified_since = NULL;
        without = cond_evaluate(&bare, &res, FUZZ_NOW, NULL);
        req.if_match = FUZZ_TAG;
        FUZZ_CHECK(cond_evaluate(&req, &res, FUZZ_NOW, NULL) == without);
    }
    free(in);
    return 0;
}
