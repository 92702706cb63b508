/*
 * fuzz_lists.c - cond_list_match_strong / cond_list_match_weak (precond.c),
 * the entity-tag list matchers behind If-Match and If-None-Match.
 *
 * Input: "<list>\n<etag>\n<flags>". Invariants beyond "no crash":
 *  - strong gives 1, 0 or -1 (malformed); weak gives 1 or 0;
 *  - a strong match is a weak match;
 *  - "*" alone matches exactly when the resource exists;
 *  - for a well-formed strong tag: the tag alone matches strongly, its W/
 *    form matches weakly but never strongly, and appending the tag to a
 *    list the strong matcher could parse (and that is not "*", which must
 *    stand alone) makes it match;
 *  - with no current tag a list without "*" never matches;
 *  - cond_if_match_version (the claim's hint) names a version only for a
 *    list the strong matcher parses, and the highest: a tag of a newer
 *    version appended to it raises it to that one, an older one does not
 *    move it.
 */
#include "fuzz.h"
#include "precond.h"

/* DQUOTE *etagc DQUOTE */
static int fuzz_strong_tag(const char *t)
{
    size_t n = strlen(t), i;

    if (n < 2 || t[0] != '"' || t[n - 1] != '"') {
        return 0;
    }
    for (i = 1; i < n - 1; i++) {
        unsigned char u = (unsigned char)t[i];
        if (!(u == 0x21 || (u >= 0x23 && u <= 0x7e) || u >= 0x80)) {
            return 0;
        }
    }
    return 1;
}

#define FUZZ_PFX "\"5f2a9c01d3e4b6a7-"

/* The hint of list, then of list with a tag of version v appended. */
static void fuzz_hint(const char *list, int s)
{
    apr_int64_t v = cond_if_match_version(list, FUZZ_PFX);
    size_t n = strlen(list) + 64;
    char *more;

    FUZZ_CHECK(v >= 0);
    if (v <= 0) {
        return;
    }
    FUZZ_CHECK(s != -1);
    more = malloc(n);
    FUZZ_CHECK(more != NULL);
    snprintf(more, n, "%s, " FUZZ_PFX "1\"", list);
    FUZZ_CHECK(cond_if_match_version(more, FUZZ_PFX) == v);
    if (v < APR_INT64_MAX) {
        snprintf(more, n, "%s, " FUZZ_PFX "%" APR_UINT64_T_HEX_FMT "\"",
                 list, (apr_uint64_t)(v + 1));
        FUZZ_CHECK(cond_if_match_version(more, FUZZ_PFX) == v + 1);
    }
    free(more);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *parts[3];
    char *in = fuzz_split(data, size, parts, 3);
    const char *list = parts[0], *etag = parts[1];
    int exists = parts[2][0] & 1;
    int s = cond_list_match_strong(list, etag, exists);
    int w = cond_list_match_weak(list, etag, exists);

    FUZZ_CHECK(s == 1 || s == 0 || s == -1);
    FUZZ_CHECK(w == 1 || w == 0);
    FUZZ_CHECK(s != 1 || w == 1);
    FUZZ_CHECK(cond_list_match_strong("*", etag, exists) == exists);
    FUZZ_CHECK(cond_list_match_weak("*", etag, exists) == exists);
    if (exists && fuzz_strong_tag(etag)) {
        size_t n = strlen(list) + strlen(etag) + 8;
        char *both = malloc(n), *weak = malloc(strlen(etag) + 3);

        FUZZ_CHECK(both && weak);
        FUZZ_CHECK(cond_list_match_strong(etag, etag, 1) == 1);
        snprintf(weak, strlen(etag) + 3, "W/%s", etag);
        FUZZ_CHECK(cond_list_match_weak(weak, etag, 1) == 1);
        FUZZ_CHECK(cond_list_match_strong(weak, etag, 1) != 1);
        if (s != -1 && !strchr(list, '*')) {
            snprintf(both, n, "%s, %s", list, etag);
            FUZZ_CHECK(cond_list_match_strong(both, etag, 1) == 1);
            FUZZ_CHECK(cond_list_match_weak(both, etag, 1) == 1);
        }
        free(both);
        free(weak);
    }
    if (!strchr(list, '*')) {
        FUZZ_CHECK(cond_list_match_strong(list, NULL, exists) != 1);
        FUZZ_CHECK(cond_list_match_weak(list, NULL, exists) == 0);
    }
    fuzz_hint(list, s);
    free(in);
    return 0;
}
