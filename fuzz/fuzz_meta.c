/*
 * fuzz_meta.c - the metadata format (variant.c): what the store keeps per
 * key of the representations a 304 replays (cond_variants_parse /
 * cond_variants_serialise). build/fuzz.sh builds it once variant.c is in
 * the tree (issue 11 moves the format there); until then it is skipped.
 *
 * Input: "<meta>\n<names>\n<public id>\n<name>\n<value>\n<name>\n<value>".
 * Invariants beyond "no crash":
 *  - anything, parsed, gives well-formed variants (names, hash and lines
 *    set), at most COND_MAX_VARIANTS of them;
 *  - serialising what was parsed and parsing it again gives the same
 *    string again (the format is a fixed point after one round);
 *  - metadata of one version is never read as another version's;
 *  - a variant made of header lines (no CR, LF or NUL in a value, a token
 *    for a name) comes back from serialise + parse with every line, in
 *    order, byte for byte, and with its public id (none for "-").
 */
#include <apr_general.h>
#include <apr_lib.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "fuzz.h"
#include "variant.h"

static apr_pool_t *pool;

static void fuzz_well_formed(const apr_array_header_t *vs)
{
    int i;

    FUZZ_CHECK(vs != NULL);
    FUZZ_CHECK(vs->nelts <= COND_MAX_VARIANTS);
    for (i = 0; i < vs->nelts; i++) {
        const cond_variant *v = APR_ARRAY_IDX(vs, i, cond_variant *);
        FUZZ_CHECK(v && v->names && v->hash && v->lines);
    }
}

/* A header field name: token characters only. */
static const char *fuzz_token(const char *s)
{
    char *t = apr_pstrdup(pool, s), *o = t;

    for (; *s; s++) {
        if (strchr("!#$%&'*+-.^_`|~", *s) || apr_isalnum((unsigned char)*s)) {
            *o++ = *s;
        }
    }
    *o = '\0';
    return *t ? t : "X-Fuzz";
}

/* A header field value: no CR, LF (nor NUL, which ends the string). */
static const char *fuzz_value(const char *s)
{
    char *v = apr_pstrdup(pool, s), *o = v;

    for (; *s; s++) {
        if (*s != '\r' && *s != '\n') {
            *o++ = *s;
        }
    }
    *o = '\0';
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *parts[7];
    char *in;
    apr_array_header_t *vs, *back;
    const char *s1, *s2, *names;
    cond_variant *v;
    const cond_variant *b;
    int i;

    if (!pool) {
        apr_initialize();
        apr_pool_create(&pool, NULL);
    }
    in = fuzz_split(data, size, parts, 7);

    vs = cond_variants_parse(pool, parts[0], 7);
    fuzz_well_formed(vs);
    s1 = cond_variants_serialise(pool, 7, vs);
    FUZZ_CHECK(s1 != NULL);
    back = cond_variants_parse(pool, s1, 7);
    fuzz_well_formed(back);
    FUZZ_CHECK(back->nelts == vs->nelts);
    s2 = cond_variants_serialise(pool, 7, back);
    FUZZ_CHECK(!strcmp(s1, s2));
    FUZZ_CHECK(cond_variants_parse(pool, s1, 8)->nelts == 0);

    names = cond_vary_names(pool, parts[1]);
    if (names) {
        v = cond_variant_make(pool, names, *names ? "0123456789abcdef" : "");
        /* the third part, as a token, is the variant's public id */
        v->public_id = fuzz_token(parts[2]);
        cond_variant_add(v, fuzz_token(parts[3]), fuzz_value(parts[4]));
        cond_variant_add(v, fuzz_token(parts[5]), fuzz_value(parts[6]));
        vs = apr_array_make(pool, 1, sizeof(cond_variant *));
        cond_variants_put(vs, v);
        back = cond_variants_parse(pool,
                                   cond_variants_serialise(pool, 7, vs), 7);
        FUZZ_CHECK(back->nelts == 1);
        b = APR_ARRAY_IDX(back, 0, cond_variant *);
        FUZZ_CHECK(!strcmp(b->names, v->names));
        FUZZ_CHECK(!strcmp(b->hash, v->hash));
        FUZZ_CHECK(!strcmp(b->public_id, strcmp(v->public_id, "-")
                                         ? v->public_id : ""));
        FUZZ_CHECK(b->lines->nelts == v->lines->nelts);
        for (i = 0; i < v->lines->nelts; i++) {
            const cond_meta_line *x = &APR_ARRAY_IDX(v->lines, i,
                                                     cond_meta_line);
            const cond_meta_line *y = &APR_ARRAY_IDX(b->lines, i,
                                                     cond_meta_line);
            FUZZ_CHECK(!strcasecmp(x->name, y->name));
            FUZZ_CHECK(!strcmp(x->value, y->value));
        }
    }
    apr_pool_clear(pool);
    free(in);
    return 0;
}
