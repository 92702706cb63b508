/*
 * fuzz_meta.c - the metadata format (variant.c): what the store keeps per
 * key of the representations a 304 replays (cond_variants_parse /
 * cond_variants_serialise). build/fuzz.sh builds it once variant.c is in
 * the tree (issue 11 moves the format there); until then it is skipped.
 *
 * Input: "<names>\n<public id>\n<name>\n<value>\n<name>\n<value>\n<meta>":
 * the metadata comes last and runs to the end of the input, so it has
 * lines of its own (the format is one line per variant and per header).
 * Invariants beyond "no crash":
 *  - anything, parsed, gives well-formed variants (names, hash and lines
 *    set), at most COND_MAX_VARIANTS of them;
 *  - serialising what was parsed and parsing it again gives the same
 *    string again (the format is a fixed point after one round);
 *  - metadata of one version is never read as another version's;
 *  - a variant made of header lines (no CR, LF or NUL in a value, a token
 *    for a name) comes back from serialise + parse with every line, in
 *    order, byte for byte, and with its public id (none for "-");
 *  - putting that variant into the parsed ones replaces the one with its
 *    names and hash, or adds it last, dropping the oldest past
 *    COND_MAX_VARIANTS; it is then there exactly once;
 *  - cond_variants_hold says of that variant exactly whether putting it
 *    into the metadata and serialising gives the same text again.
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

/* cond_variants_put: v is there once, in place of its namesake or last. */
static void fuzz_put(apr_array_header_t *vs, cond_variant *v)
{
    int i, n = vs->nelts, at = -1, seen = 0;

    for (i = 0; i < n && at < 0; i++) {
        const cond_variant *o = APR_ARRAY_IDX(vs, i, cond_variant *);
        if (!strcmp(o->names, v->names) && !strcmp(o->hash, v->hash)) {
            at = i;
        }
    }
    cond_variants_put(vs, v);
    for (i = 0; i < vs->nelts; i++) {
        seen += APR_ARRAY_IDX(vs, i, cond_variant *) == v;
    }
    FUZZ_CHECK(seen == 1);
    if (at >= 0) {
        FUZZ_CHECK(vs->nelts == n);
        FUZZ_CHECK(APR_ARRAY_IDX(vs, at, cond_variant *) == v);
    }
    else {
        FUZZ_CHECK(vs->nelts == (n < COND_MAX_VARIANTS ? n + 1 : n));
        FUZZ_CHECK(APR_ARRAY_IDX(vs, vs->nelts - 1, cond_variant *) == v);
    }
    fuzz_well_formed(vs);
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

    vs = cond_variants_parse(pool, parts[6], 7);
    fuzz_well_formed(vs);
    s1 = cond_variants_serialise(pool, 7, vs);
    FUZZ_CHECK(s1 != NULL);
    back = cond_variants_parse(pool, s1, 7);
    fuzz_well_formed(back);
    FUZZ_CHECK(back->nelts == vs->nelts);
    s2 = cond_variants_serialise(pool, 7, back);
    FUZZ_CHECK(!strcmp(s1, s2));
    FUZZ_CHECK(cond_variants_parse(pool, s1, 8)->nelts == 0);

    names = cond_vary_names(pool, parts[0]);
    if (names) {
        v = cond_variant_make(pool, names, *names ? "0123456789abcdef" : "");
        /* the second part, as a token, is the variant's public id */
        v->public_id = fuzz_token(parts[1]);
        cond_variant_add(v, fuzz_token(parts[2]), fuzz_value(parts[3]));
        cond_variant_add(v, fuzz_token(parts[4]), fuzz_value(parts[5]));
        back = cond_variants_parse(pool, s1, 7);
        i = cond_variants_hold(s1, back, v);
        cond_variants_put(back, v);
        FUZZ_CHECK(i == !strcmp(cond_variants_serialise(pool, 7, back), s1));
        fuzz_put(vs, v);
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
