/*
 * fuzz_key.c - cond_key_site / cond_key_make (key.c), the text of a
 * resource's key.
 *
 * Input: two requests, "<host>\n<path>\n<query>\n<flags>" each, separated
 * by a NUL byte... as lines: host1, path1, query1, host2, path2, query2,
 * flags (bit 0: request 1 has a query, bit 1: request 2 has one, bits 2-3:
 * same port or not). Invariants beyond "no crash":
 *  - the query form is injective: two requests get the same key exactly
 *    when they have the same site, path and query;
 *  - the key starts with its site, and in the query form the first '?'
 *    after the site is the one before the query;
 *  - without a query the key is site + path, unchanged (the keys existing
 *    stores hold stay valid);
 *  - the site is lowercase and two hosts differing only in case are one
 *    site.
 */
#include <apr_general.h>
#include <apr_lib.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "fuzz.h"
#include "key.h"

static apr_pool_t *pool;

/* What the glue hands over: a host name with no '/', a path from '/'. */
static void fuzz_tidy(char *host, char **path)
{
    char *c;

    for (c = host; *c; c++) {
        if (*c == '/') {
            *c = '_';
        }
    }
    if (**path != '/') {
        *path = (char *)"/";
    }
}

static int fuzz_same_host(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        if (apr_tolower((unsigned char)*a) != apr_tolower((unsigned char)*b)) {
            return 0;
        }
    }
    return *a == *b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *parts[7];
    char *in;
    unsigned flags;
    const char *q1, *q2, *s1, *s2, *k1, *k2, *after;
    unsigned p1 = 80, p2;
    int same;

    if (!pool) {
        apr_initialize();
        apr_pool_create(&pool, NULL);
    }
    in = fuzz_split(data, size, parts, 7);
    flags = (unsigned char)parts[6][0];
    fuzz_tidy(parts[0], &parts[1]);
    fuzz_tidy(parts[3], &parts[4]);
    p2 = flags & 4 ? 8080 : 80;
    q1 = flags & 1 ? parts[2] : NULL;
    q2 = flags & 2 ? parts[5] : NULL;

    s1 = cond_key_site(pool, parts[0], p1, NULL);
    s2 = cond_key_site(pool, parts[3], p2, NULL);
    FUZZ_CHECK((strcmp(s1, s2) == 0) == (fuzz_same_host(parts[0], parts[3])
                                   && p1 == p2));
    FUZZ_CHECK(!strchr(s1, '/'));

    k1 = cond_key_make(pool, s1, parts[1], q1 ? q1 : "");
    k2 = cond_key_make(pool, s2, parts[4], q2 ? q2 : "");
    same = !strcmp(s1, s2) && !strcmp(parts[1], parts[4])
           && !strcmp(q1 ? q1 : "", q2 ? q2 : "");
    FUZZ_CHECK((strcmp(k1, k2) == 0) == same);
    FUZZ_CHECK(!strncmp(k1, s1, strlen(s1)));
    after = strchr(k1 + strlen(s1), '?');
    FUZZ_CHECK(after && !strcmp(after + 1, q1 ? q1 : ""));

    k1 = cond_key_make(pool, s1, parts[1], NULL);
    FUZZ_CHECK(!strcmp(k1, apr_pstrcat(pool, s1, parts[1], NULL)));

    apr_pool_clear(pool);
    free(in);
    return 0;
}
