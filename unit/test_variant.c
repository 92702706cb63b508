/*
 * test_variant.c - table-driven tests for variant tags and the metadata
 * of each representation (variant.c).
 *
 * Prints every failing row and a last line "N passed, M failed"; exits
 * non-zero when anything failed.
 */

#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "precond.h"
#include "variant.h"

static int passed, failed;
static apr_pool_t *pool;

static void check_str(const char *table, const char *name, const char *got,
                      const char *want)
{
    int ok = (!got && !want) || (got && want && !strcmp(got, want));

    if (ok) {
        passed++;
        return;
    }
    failed++;
    printf("FAIL %s: %s: got [%s], want [%s]\n", table, name,
           got ? got : "(null)", want ? want : "(null)");
}

static void check(int ok, const char *table, const char *name)
{
    if (ok) {
        passed++;
        return;
    }
    failed++;
    printf("FAIL %s: %s\n", table, name);
}

/* A request's headers: "name\0value" pairs in a NULL-terminated list,
 * names lowercase as cond_vary_names gives them. */
static const char *get_header(void *baton, const char *name)
{
    const char *const *h = baton;

    for (; *h; h += 2) {
        if (!strcasecmp(h[0], name)) {
            return h[1];
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ */

typedef struct {
    const char *vary;
    const char *names;
} names_case;

static const names_case names_cases[] = {
    { NULL, "" },
    { "", "" },
    { " , ,", "" },
    { "Accept", "accept" },
    { "Accept-Language, Accept", "accept,accept-language" },
    { "accept, ACCEPT, Accept", "accept" },
    /* two field lines joined */
    { "Accept-Encoding, Accept-Language", "accept-encoding,accept-language" },
    { "Accept,\tCookie ,User-Agent", "accept,cookie,user-agent" },
    { "*", NULL },
    { "Accept, *", NULL },
    { "Accept, Acc\"ept", NULL },
    { "Accept; q=1", NULL },
};

static void test_names(void)
{
    size_t i;

    for (i = 0; i < sizeof(names_cases) / sizeof(names_cases[0]); i++) {
        const names_case *c = &names_cases[i];
        check_str("vary names", c->vary ? c->vary : "(null)",
                  cond_vary_names(pool, c->vary), c->names);
    }
}

/* ------------------------------------------------------------------ */

static const char *const req_none[] = { NULL };
static const char *const req_json[] = { "accept", "application/json", NULL };
static const char *const req_xml[] = { "accept", "application/xml", NULL };
static const char *const req_empty[] = { "accept", "", NULL };
static const char *const req_json_fr[] = { "Accept", "application/json",
                                           "Accept-Language", "fr", NULL };
static const char *const req_json_en[] = { "accept", "application/json",
                                           "accept-language", "en", NULL };
static const char *const req_lang_fr[] = { "accept-language", "fr", NULL };

typedef struct {
    const char *name;
    const char *names;
    const char *const *a, *const *b;
    int same;           /* the two requests get the same hash */
} hash_case;

static const hash_case hash_cases[] = {
    { "same values", "accept", req_json, req_json, 1 },
    { "other values", "accept", req_json, req_xml, 0 },
    { "absent vs empty", "accept", req_none, req_empty, 0 },
    { "empty vs value", "accept", req_empty, req_json, 0 },
    { "unnamed header ignored", "accept", req_json, req_json_fr, 1 },
    { "second name differs", "accept,accept-language", req_json_fr,
      req_json_en, 0 },
    { "name case", "accept,accept-language", req_json_fr, req_json_fr, 1 },
    { "value not shifted into name", "accept,accept-language", req_json,
      req_lang_fr, 0 },
    { "no names", "", req_json, req_xml, 1 },
};

static void test_hash(void)
{
    size_t i;

    for (i = 0; i < sizeof(hash_cases) / sizeof(hash_cases[0]); i++) {
        const hash_case *c = &hash_cases[i];
        const char *a = cond_vary_hash(pool, c->names, get_header,
                                       (void *)c->a);
        const char *b = cond_vary_hash(pool, c->names, get_header,
                                       (void *)c->b);
        check((!strcmp(a, b)) == c->same, "vary hash", c->name);
        check(!*a || (strlen(a) == 16 && strspn(a, "0123456789abcdef") == 16),
              "vary hash form", c->name);
    }
    /* The hash is kept in the store's metadata: the same request must hash
     * alike across versions of the module (values from before one name
     * was hashed apart from several). */
    {
        static const char *const req_json_gz[] = {
            "accept", "application/json", "accept-encoding", "gzip", NULL };

        check_str("vary hash", "pinned, one name", cond_vary_hash(pool,
                  "accept", get_header, (void *)req_json),
                  "259d4bc244a7c75c");
        check_str("vary hash", "pinned, two names", cond_vary_hash(pool,
                  "accept,accept-encoding", get_header, (void *)req_json_gz),
                  "cced10f7aeacddfb");
        check_str("vary hash", "pinned, one of two present",
                  cond_vary_hash(pool, "accept,accept-language", get_header,
                                 (void *)req_json), "1c6f3859c978aae5");
    }
    check_str("vary hash", "none present", cond_vary_hash(pool, "accept",
              get_header, (void *)req_none), "");
    check_str("vary hash", "no names", cond_vary_hash(pool, "", get_header,
              (void *)req_json), "");
    check_str("vary hash", "NULL names", cond_vary_hash(pool, NULL,
              get_header, (void *)req_json), "");
}

/* ------------------------------------------------------------------ */

static void test_tags(void)
{
    const char *vt = cond_tag(pool, "5f2a9c01d3e4b6a7", 0x1c, NULL);
    const char *t = cond_tag(pool, "5f2a9c01d3e4b6a7", 0x1c,
                             "0123456789abcdef");

    check_str("tag", "version", vt, "\"5f2a9c01d3e4b6a7-1c\"");
    check_str("tag", "empty hash", cond_tag(pool, "5f2a9c01d3e4b6a7", 0x1c,
                                            ""), vt);
    check_str("tag", "variant", t,
              "\"5f2a9c01d3e4b6a7-1c-0123456789abcdef\"");
    check_str("tag", "big version", cond_tag(pool, "ab", APR_INT64_C(1) << 40,
                                             NULL), "\"ab-10000000000\"");
    /* every variant tag, compressed or not, belongs to its version */
    check(cond_tag_of_version(t, vt), "tag", "variant of version");
    check(cond_tag_of_version("\"5f2a9c01d3e4b6a7-1c-0123456789abcdef-gzip\"",
                              vt), "tag", "gzip variant of version");
    check(!cond_tag_of_version(t, cond_tag(pool, "5f2a9c01d3e4b6a7", 0x1d,
                                           NULL)), "tag", "not of next");
}

/* ------------------------------------------------------------------ */

static apr_array_header_t *two_variants(void)
{
    apr_array_header_t *vs = apr_array_make(pool, 2, sizeof(cond_variant *));
    const char *names = cond_vary_names(pool, "Accept, Accept-Encoding");
    cond_variant *v = cond_variant_make(pool, names,
                                        cond_vary_hash(pool, names,
                                                       get_header,
                                                       (void *)req_json));

    cond_variant_add(v, "ETag", "\"x-1c-aa\"");
    cond_variant_add(v, "Vary", "Accept");
    cond_variant_add(v, "Vary", "Accept-Encoding");
    cond_variant_add(v, "Cache-Control", "max-age=2");
    cond_variant_add(v, "Cache-Control", "private");
    cond_variant_add(v, "Content-Location", "/doc.json");
    cond_variants_put(vs, v);
    v = cond_variant_make(pool, names, cond_vary_hash(pool, names,
                                                      get_header,
                                                      (void *)req_xml));
    cond_variant_add(v, "ETag", "\"x-1c-bb\"");
    cond_variant_add(v, "Content-Location", "/doc.xml");
    cond_variant_add(v, "Expires", "+60");
    cond_variants_put(vs, v);
    return vs;
}

static void test_round_trip(void)
{
    apr_array_header_t *vs = two_variants(), *back;
    const char *meta = cond_variants_serialise(pool, 0x1c, vs);
    const cond_variant *v;
    const cond_meta_line *l;

    back = cond_variants_parse(pool, meta, 0x1c);
    check(back->nelts == 2, "meta", "two variants back");
    if (back->nelts != 2) {
        return;
    }
    check_str("meta", "same text", cond_variants_serialise(pool, 0x1c, back),
              meta);
    v = APR_ARRAY_IDX(back, 0, cond_variant *);
    check(v->lines->nelts == 6, "meta", "every line kept");
    l = &APR_ARRAY_IDX(v->lines, 2, cond_meta_line);
    check_str("meta", "repeated Vary, second line", l->value,
              "Accept-Encoding");
    check_str("meta", "get first", cond_variant_get(v, "cache-control"),
              "max-age=2");
    check_str("meta", "get missing", cond_variant_get(v, "Expires"), NULL);

    /* the request selects its own variant, and only a known one */
    v = cond_variants_select(pool, back, get_header, (void *)req_xml);
    check_str("select", "xml", v ? cond_variant_get(v, "ETag") : NULL,
              "\"x-1c-bb\"");
    v = cond_variants_select(pool, back, get_header, (void *)req_json_fr);
    check_str("select", "json, language not in Vary",
              v ? cond_variant_get(v, "ETag") : NULL, "\"x-1c-aa\"");
    check(!cond_variants_select(pool, back, get_header, (void *)req_none),
          "select", "unknown variant");

    /* only for the version they were stored at */
    check(cond_variants_parse(pool, meta, 0x1d)->nelts == 0, "meta",
          "other version");
    check(cond_variants_parse(pool, meta, 0x1)->nelts == 0, "meta",
          "version prefix");
    check(cond_variants_parse(pool, NULL, 0x1c)->nelts == 0, "meta", "NULL");
    check(cond_variants_parse(pool, "Cache-Control: max-age=60\n", 0x1c)
          ->nelts == 0, "meta", "old format");
    check(cond_variants_parse(pool, "variants 2 1c\nETag: \"a\"\n", 0x1c)
          ->nelts == 0, "meta", "line before any variant");
    check(cond_variants_parse(pool, apr_pstrcat(pool, meta, "junk\n", NULL),
                              0x1c)->nelts == 0, "meta", "damaged");
    check(cond_variants_parse(pool, "variants 2 1c\n", 0x1c)->nelts == 0,
          "meta", "none");
    check(cond_variants_parse(pool, "variants 1 1c\n= - -\nETag: \"a\"\n",
                              0x1c)->nelts == 0, "meta", "format 1");
}

/* ------------------------------------------------------------------ */

/* Two variants at version 0x1c of store "x", tagged as the tag filter
 * tags them; 'c' fills their hash suffixes (so two such metadata strings
 * have the same length and differ in every tag). */
static const char *memo_meta(char c)
{
    apr_array_header_t *vs = apr_array_make(pool, 2, sizeof(cond_variant *));
    const char *names = cond_vary_names(pool, "Accept");
    char hash[17];
    cond_variant *v;

    memset(hash, c, 16);
    hash[16] = '\0';
    v = cond_variant_make(pool, names, cond_vary_hash(pool, names,
                                                      get_header,
                                                      (void *)req_json));
    cond_variant_add(v, "ETag", apr_pstrcat(pool, "\"x-1c-", hash, "\"",
                                            NULL));
    cond_variant_add(v, "Vary", "Accept");
    cond_variants_put(vs, v);
    v = cond_variant_make(pool, names, cond_vary_hash(pool, names,
                                                      get_header,
                                                      (void *)req_xml));
    cond_variant_add(v, "ETag", apr_pstrcat(pool, "\"x-1c-", hash,
                                            "-gzip\"", NULL));
    cond_variant_add(v, "Vary", "Accept, Accept-Encoding");
    cond_variant_add(v, "Expires", "+60");
    cond_variants_put(vs, v);
    return cond_variants_serialise(pool, 0x1c, vs);
}

static const char *memo_etag(cond_variants_memo *m, apr_pool_t *p,
                             const char *meta, apr_int64_t version,
                             const char *version_tag,
                             const char *const *req)
{
    const cond_variant *v = cond_variants_memo_select(m, p, meta, version,
                                                      version_tag,
                                                      get_header, (void *)req);
    return v ? cond_variant_get(v, "ETag") : NULL;
}

/* The memo answers what parsing and checking every time answers, on a
 * miss and on a hit; a change of metadata, version or identity is never
 * answered from what it kept; nothing it returns points into it. */
static void test_memo(void)
{
    const char *a = memo_meta('a'), *b = memo_meta('b');
    const char *json_a = "\"x-1c-aaaaaaaaaaaaaaaa\"";
    const char *xml_a = "\"x-1c-aaaaaaaaaaaaaaaa-gzip\"";
    cond_variants_memo *m = cond_variants_memo_make();
    cond_variants_memo *ms[2];
    const cond_variant *v;
    apr_pool_t *q;
    int i, round;

    check(m != NULL, "memo", "made");
    ms[0] = NULL;
    ms[1] = m;
    for (i = 0; i < 2; i++) {
        for (round = 0; round < 2; round++) {   /* a miss, then a hit */
            const char *name = i ? (round ? "memo, hit" : "memo, miss")
                                 : "no memo";
            check_str(name, "json", memo_etag(ms[i], pool, a, 0x1c,
                                              "\"x-1c\"", req_json), json_a);
            check_str(name, "xml", memo_etag(ms[i], pool, a, 0x1c,
                                             "\"x-1c\"", req_xml), xml_a);
            check_str(name, "unknown variant", memo_etag(ms[i], pool, a,
                      0x1c, "\"x-1c\"", req_none), NULL);
        }
        check_str("memo", "version moved, same tag", memo_etag(ms[i], pool,
                  a, 0x1d, "\"x-1c\"", req_json), NULL);
        check_str("memo", "the version back", memo_etag(ms[i], pool, a,
                  0x1c, "\"x-1c\"", req_json), json_a);
        check_str("memo", "identity moved", memo_etag(ms[i], pool, a, 0x1c,
                  "\"y-1c\"", req_json), NULL);
        check_str("memo", "version moved", memo_etag(ms[i], pool, a, 0x1d,
                  "\"x-1d\"", req_json), NULL);
        check_str("memo", "other metadata", memo_etag(ms[i], pool, b, 0x1c,
                  "\"x-1c\"", req_json), "\"x-1c-bbbbbbbbbbbbbbbb\"");
        check_str("memo", "first metadata again", memo_etag(ms[i], pool, a,
                  0x1c, "\"x-1c\"", req_json), json_a);
        check_str("memo", "no metadata", memo_etag(ms[i], pool, NULL, 0x1c,
                  "\"x-1c\"", req_json), NULL);
    }

    /* Kept once a key misses twice in a row; keys that come and go (the
     * 304s of random keys) are parsed each time and never fill it. */
    {
        const char *cycle[3];
        apr_uint64_t hits = cond_variants_memo_hits(m);

        check(hits >= 4, "memo", "a key asked for again is kept");
        cycle[0] = memo_meta('c');
        cycle[1] = memo_meta('d');
        cycle[2] = memo_meta('e');
        for (i = 0; i < 9; i++) {
            const char *want = apr_psprintf(pool, "\"x-1c-%.16s\"",
                                            i % 3 == 0 ? "cccccccccccccccccc"
                                            : i % 3 == 1 ? "dddddddddddddddd"
                                            : "eeeeeeeeeeeeeeee");
            check_str("memo", "keys in turn", memo_etag(m, pool, cycle[i % 3],
                      0x1c, "\"x-1c\"", req_json), want);
        }
        check(cond_variants_memo_hits(m) == hits, "memo",
              "keys in turn: none kept");
        memo_etag(m, pool, cycle[2], 0x1c, "\"x-1c\"", req_json);
        check(cond_variants_memo_hits(m) == hits + 1, "memo",
              "the same key twice: kept");
    }

    /* A variant handed out stays whole while the memo moves on to other
     * keys (its pool reuses the memory for the next metadata). */
    apr_pool_create(&q, pool);
    memo_etag(m, pool, a, 0x1c, "\"x-1c\"", req_xml);
    memo_etag(m, pool, a, 0x1c, "\"x-1c\"", req_xml);
    v = cond_variants_memo_select(m, q, a, 0x1c, "\"x-1c\"", get_header,
                                  (void *)req_xml);
    for (i = 0; i < 8; i++) {
        memo_etag(m, pool, i % 2 ? a : b, 0x1c, "\"y-1c\"", req_xml);
        memo_etag(m, pool, b, 0x1c, "\"x-1c\"", req_xml);
    }
    check(v && v->lines->nelts == 3, "memo", "copy: every line");
    if (v && v->lines->nelts == 3) {
        check_str("memo", "copy: ETag", cond_variant_get(v, "ETag"), xml_a);
        check_str("memo", "copy: Vary", cond_variant_get(v, "vary"),
                  "Accept, Accept-Encoding");
        check_str("memo", "copy: Expires", cond_variant_get(v, "Expires"),
                  "+60");
        check_str("memo", "copy: names", v->names, "accept");
    }
    apr_pool_destroy(q);
    cond_variants_memo_destroy(m);
}

/* Format 3 keeps, per variant, the configuration it was public under;
 * format 2 (before it) is still read, as not public. */
static void test_public(void)
{
    apr_array_header_t *vs = two_variants(), *back;
    const cond_variant *v;
    const char *meta;

    APR_ARRAY_IDX(vs, 1, cond_variant *)->public_id = "5d0f3a9e71c2b846";
    meta = cond_variants_serialise(pool, 0x1c, vs);
    back = cond_variants_parse(pool, meta, 0x1c);
    check(back->nelts == 2, "public", "two variants back");
    if (back->nelts != 2) {
        return;
    }
    check_str("public", "not public",
              APR_ARRAY_IDX(back, 0, cond_variant *)->public_id, "");
    check_str("public", "public id kept",
              APR_ARRAY_IDX(back, 1, cond_variant *)->public_id,
              "5d0f3a9e71c2b846");
    check_str("public", "same text", cond_variants_serialise(pool, 0x1c,
                                                             back), meta);

    back = cond_variants_parse(pool, "variants 2 1c\n= - accept\n"
                               "ETag: \"x-1c\"\n", 0x1c);
    check(back->nelts == 1, "public", "format 2 still read");
    v = back->nelts ? APR_ARRAY_IDX(back, 0, cond_variant *) : NULL;
    check_str("public", "format 2: names", v ? v->names : NULL, "accept");
    check_str("public", "format 2: not public", v ? v->public_id : NULL, "");
    check(cond_variants_parse(pool, "variants 3 1c\n= - accept\n"
                              "ETag: \"x-1c\"\n", 0x1c)->nelts == 0,
          "public", "format 3 without the field");
    check(cond_variants_parse(pool, "variants 3 1c\n= - accept a b\n"
                              "ETag: \"x-1c\"\n", 0x1c)->nelts == 0,
          "public", "format 3 with a field too many");
    /* an id that would not read back as itself is written as not public */
    APR_ARRAY_IDX(vs, 1, cond_variant *)->public_id = "a b";
    back = cond_variants_parse(pool, cond_variants_serialise(pool, 0x1c, vs),
                               0x1c);
    check(back->nelts == 2 && !*APR_ARRAY_IDX(back, 1, cond_variant *)
          ->public_id, "public", "an id with a space is not kept");
}

/* The module never writes more than COND_MAX_VARIANTS; metadata with more
 * is not its own and is trusted no more than damaged metadata. */
static void test_parse_bound(void)
{
    const char *meta = "variants 3 1c\n";
    int i;

    for (i = 0; i < COND_MAX_VARIANTS; i++) {
        meta = apr_psprintf(pool, "%s= %016x accept -\nETag: \"x-1c-%d\"\n",
                            meta, i, i);
    }
    check(cond_variants_parse(pool, meta, 0x1c)->nelts == COND_MAX_VARIANTS,
          "meta", "COND_MAX_VARIANTS variants read");
    meta = apr_pstrcat(pool, meta, "= ffffffffffffffff accept -\n", NULL);
    check(cond_variants_parse(pool, meta, 0x1c)->nelts == 0, "meta",
          "one more: none read");
    /* Vary names are tokens joined by ','; format 2 has no field after
     * them, so a space there is not ours (written as format 3 it would
     * read back as a public id) */
    check(cond_variants_parse(pool, "variants 2 1c\n= - accept x\n"
                              "ETag: \"x-1c\"\n", 0x1c)->nelts == 0,
          "meta", "format 2: a space in the names");
}

static void test_put(void)
{
    apr_array_header_t *vs = two_variants();
    cond_variant *v = cond_variant_make(pool, "accept,accept-encoding",
                                        APR_ARRAY_IDX(vs, 0, cond_variant *)
                                        ->hash);
    char hash[17];
    int i;

    cond_variant_add(v, "ETag", "\"x-1c-cc\"");
    cond_variants_put(vs, v);
    check(vs->nelts == 2, "put", "same variant replaced");
    check_str("put", "replacement", cond_variant_get(
              APR_ARRAY_IDX(vs, 0, cond_variant *), "ETag"), "\"x-1c-cc\"");
    for (i = 0; i < COND_MAX_VARIANTS + 3; i++) {
        apr_snprintf(hash, sizeof(hash), "%016x", i);
        cond_variants_put(vs, cond_variant_make(pool, "accept",
                                                apr_pstrdup(pool, hash)));
    }
    check(vs->nelts == COND_MAX_VARIANTS, "put", "bounded");
    check_str("put", "oldest dropped",
              APR_ARRAY_IDX(vs, 0, cond_variant *)->hash,
              "0000000000000003");
    /* a value with a newline is never written out */
    v = cond_variant_make(pool, "", "");
    cond_variant_add(v, "Cache-Control", "a\nETag: \"forged\"");
    apr_array_clear(vs);
    cond_variants_put(vs, v);
    check_str("put", "newline dropped", cond_variants_serialise(pool, 1, vs),
              "variants 3 1\n= - : -\n");
    /* a Vary naming a header called "-" (a token) is not "no Vary" */
    apr_array_clear(vs);
    cond_variants_put(vs, cond_variant_make(pool, "-", "0123456789abcdef"));
    vs = cond_variants_parse(pool, cond_variants_serialise(pool, 1, vs), 1);
    check(vs->nelts == 1, "put", "a header named - round-trips");
    check_str("put", "names -", vs->nelts ? APR_ARRAY_IDX(vs, 0,
              cond_variant *)->names : "", "-");
}

/* A copy of o that shares no array with it. */
static cond_variant *copy_variant(const cond_variant *o)
{
    cond_variant *v = cond_variant_make(pool, o->names, o->hash);
    int i;

    v->public_id = o->public_id;
    for (i = 0; i < o->lines->nelts; i++) {
        const cond_meta_line *l = &APR_ARRAY_IDX(o->lines, i, cond_meta_line);
        cond_variant_add(v, l->name, l->value);
    }
    return v;
}

/* cond_variants_hold says what putting v and serialising would: meta as
 * it is, or not. */
static void check_hold(const char *meta, cond_variant *v, int want,
                       const char *name)
{
    apr_array_header_t *vs = cond_variants_parse(pool, meta, 0x1c);
    int hold = cond_variants_hold(meta, vs, v);
    const char *after;

    check(hold == want, "hold", name);
    vs = cond_variants_parse(pool, meta, 0x1c);
    cond_variants_put(vs, v);
    after = cond_variants_serialise(pool, 0x1c, vs);
    check(hold == (meta && !strcmp(after, meta)), "hold, as put and "
          "serialise say", name);
}

/* A 200 with the headers of the last one writes nothing; any difference
 * that would change the kept text is written. */
static void test_hold(void)
{
    apr_array_header_t *vs = two_variants();
    const char *meta;
    cond_variant *v;
    cond_meta_line *l;

    APR_ARRAY_IDX(vs, 1, cond_variant *)->public_id = "5d0f3a9e71c2b846";
    meta = cond_variants_serialise(pool, 0x1c, vs);
    check_hold(meta, copy_variant(APR_ARRAY_IDX(vs, 0, cond_variant *)), 1,
               "the same lines");
    check_hold(meta, copy_variant(APR_ARRAY_IDX(vs, 1, cond_variant *)), 1,
               "the same lines, public");
    v = copy_variant(APR_ARRAY_IDX(vs, 0, cond_variant *));
    APR_ARRAY_IDX(v->lines, 3, cond_meta_line).value = "max-age=3";
    check_hold(meta, v, 0, "a value changed");
    v = copy_variant(APR_ARRAY_IDX(vs, 0, cond_variant *));
    cond_variant_add(v, "Expires", "+5");
    check_hold(meta, v, 0, "a line more");
    v = copy_variant(APR_ARRAY_IDX(vs, 0, cond_variant *));
    v->lines->nelts--;
    check_hold(meta, v, 0, "a line fewer");
    v = copy_variant(APR_ARRAY_IDX(vs, 0, cond_variant *));
    l = &APR_ARRAY_IDX(v->lines, 1, cond_meta_line);
    l->value = "Accept-Encoding";
    APR_ARRAY_IDX(v->lines, 2, cond_meta_line).value = "Accept";
    check_hold(meta, v, 0, "two lines swapped");
    v = copy_variant(APR_ARRAY_IDX(vs, 0, cond_variant *));
    APR_ARRAY_IDX(v->lines, 0, cond_meta_line).name = "etag";
    check_hold(meta, v, 0, "a name in other case");
    v = copy_variant(APR_ARRAY_IDX(vs, 0, cond_variant *));
    v->public_id = "5d0f3a9e71c2b846";
    check_hold(meta, v, 0, "now public");
    v = copy_variant(APR_ARRAY_IDX(vs, 1, cond_variant *));
    v->public_id = "";
    check_hold(meta, v, 0, "no longer public");
    v = copy_variant(APR_ARRAY_IDX(vs, 0, cond_variant *));
    v->public_id = "a b";
    check_hold(meta, v, 1, "an id that is not kept");
    v = copy_variant(APR_ARRAY_IDX(vs, 0, cond_variant *));
    cond_variant_add(v, "Cache-Control", "a\nETag: \"forged\"");
    check_hold(meta, v, 1, "a line with a newline, never kept");
    v = copy_variant(APR_ARRAY_IDX(vs, 0, cond_variant *));
    v->hash = "0123456789abcdef";
    check_hold(meta, v, 0, "a variant not kept yet");
    v = cond_variant_make(pool, "accept", "0123456789abcdef");
    cond_variant_add(v, "ETag", "\"x-1c-aa\"");
    check_hold("variants 2 1c\n= 0123456789abcdef accept\n"
               "ETag: \"x-1c-aa\"\n", v, 0, "format 2 is written anew");
    check_hold(cond_variants_serialise(pool, 0x1d, vs),
               copy_variant(APR_ARRAY_IDX(vs, 0, cond_variant *)), 0,
               "another version's");
    check_hold(NULL, copy_variant(APR_ARRAY_IDX(vs, 0, cond_variant *)), 0,
               "none kept");
}

/* ------------------------------------------------------------------ */

typedef struct {
    const char *expires;
    long long date;         /* seconds */
    const char *offset;
} expires_case;

#define T 784111777LL       /* Sun, 06 Nov 1994 08:49:37 GMT */

static const expires_case expires_cases[] = {
    { "Sun, 06 Nov 1994 08:50:37 GMT", T, "+60" },
    { "Sun, 06 Nov 1994 08:49:37 GMT", T, "+0" },
    { "Sun, 06 Nov 1994 08:48:37 GMT", T, "-60" },
    { "Sunday, 06-Nov-94 09:49:37 GMT", T, "+3600" },
    { "0", T, NULL },
    { "-1", T, NULL },
    { "", T, NULL },
    { NULL, T, NULL },
    { "Sun, 06 Nov 1994 08:50:37 GMT", 0, NULL },
};

static void test_expires(void)
{
    size_t i;

    for (i = 0; i < sizeof(expires_cases) / sizeof(expires_cases[0]); i++) {
        const expires_case *c = &expires_cases[i];
        check_str("expires offset", c->expires ? c->expires : "(null)",
                  cond_expires_offset(pool, c->expires,
                                      apr_time_from_sec(c->date)), c->offset);
    }
    check_str("expires at", "+60", cond_expires_at(pool, "+60",
              apr_time_from_sec(T)), "Sun, 06 Nov 1994 08:50:37 GMT");
    check_str("expires at", "-60", cond_expires_at(pool, "-60",
              apr_time_from_sec(T)), "Sun, 06 Nov 1994 08:48:37 GMT");
    check_str("expires at", "later request", cond_expires_at(pool, "+60",
              apr_time_from_sec(T + 7200)), "Sun, 06 Nov 1994 10:50:37 GMT");
    check_str("expires at", "no sign", cond_expires_at(pool, "60",
              apr_time_from_sec(T)), NULL);
    check_str("expires at", "junk", cond_expires_at(pool, "+6x",
              apr_time_from_sec(T)), NULL);
    check_str("expires at", "sign only", cond_expires_at(pool, "+",
              apr_time_from_sec(T)), NULL);
    check_str("expires at", "huge", cond_expires_at(pool,
              "+99999999999999999999", apr_time_from_sec(T)), NULL);
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
    test_names();
    test_hash();
    test_tags();
    test_round_trip();
    test_memo();
    test_public();
    test_parse_bound();
    test_put();
    test_hold();
    test_expires();
    apr_pool_destroy(pool);
    apr_terminate();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
