/*
 * variant.c - one tag per representation, one version per resource.
 *
 * The metadata string kept per key (store.h) looks like this:
 *
 *   variants 3 1c                      format 3, for version 0x1c
 *   = 0123456789abcdef accept,accept-encoding 5d0f3a9e71c2b846
 *   ETag: "5f2a9c01d3e4b6a7-1c-89ab...-gzip"
 *   Vary: Accept
 *   Vary: Accept-Encoding
 *   Cache-Control: max-age=60
 *   Expires: +60
 *   = - : -                            a variant with no Vary, not
 *   ...                                public
 *
 * The head of a variant is "= <hash> <names> <public>": the last field is
 * the configuration id its 200 was served under to a request without
 * credentials (ConditionalQuickHandler answers only such), '-' when it was
 * not. Format 2, the same without that field, is still read (as not
 * public), so metadata kept before an upgrade keeps its 304s.
 *
 * One line per field line, so a header a backend repeats is replayed line
 * by line. A field value never holds a newline (RFC 9110 5.5), so lines
 * need no escaping; a value that does is not stored.
 */

#include <string.h>
#include <stdlib.h>

#include <apr_allocator.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_sha1.h>

#include "precond.h"
#include "variant.h"

#define VARIANT_MAGIC "variants 3 "
#define VARIANT_MAGIC2 "variants 2 "
#define VARIANT_MAGIC_LEN (sizeof(VARIANT_MAGIC) - 1)

/* ------------------------------------------------------------------ */
/* Vary and the request's hash                                          */

/*
 * The next field of *pos up to 'sep' (empty fields skipped, as apr_strtok
 * does), cut there with a NUL; NULL at the end. A 304 splits the stored
 * metadata into lines and Vary names into fields on every request:
 * strchr finds a field's end in one pass, where apr_strtok tests every
 * byte against each separator (callgrind: 2.5k instructions a 304 for
 * the metadata alone).
 */
static char *variant_next(char **pos, char sep)
{
    char *field = *pos, *end;

    while (*field == sep) {
        field++;
    }
    if (!*field) {
        *pos = field;
        return NULL;
    }
    end = strchr(field, sep);
    if (end) {
        *end = '\0';
        *pos = end + 1;
    }
    else {
        *pos = field + strlen(field);
    }
    return field;
}

static int variant_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int variant_is_tchar(char c)
{
    return apr_isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

const char *cond_vary_names(apr_pool_t *p, const char *vary)
{
    apr_array_header_t *names = apr_array_make(p, 4, sizeof(char *));
    char *copy, *tok, *state;
    const char *out = "";
    int i;

    if (!vary) {
        return "";
    }
    copy = apr_pstrdup(p, vary);
    for (tok = apr_strtok(copy, ", \t", &state); tok;
         tok = apr_strtok(NULL, ", \t", &state)) {
        char *c;
        if (!strcmp(tok, "*")) {
            return NULL;
        }
        for (c = tok; *c; c++) {
            if (!variant_is_tchar(*c)) {
                return NULL;    /* not a field name: nothing can be known */
            }
            *c = apr_tolower(*c);
        }
        APR_ARRAY_PUSH(names, char *) = tok;
    }
    qsort(names->elts, names->nelts, sizeof(char *), variant_cmp);
    for (i = 0; i < names->nelts; i++) {
        const char *n = APR_ARRAY_IDX(names, i, const char *);
        if (i && !strcmp(n, APR_ARRAY_IDX(names, i - 1, const char *))) {
            continue;
        }
        out = *out ? apr_pstrcat(p, out, ",", n, NULL) : n;
    }
    return out;
}

/* One name and its value into the request's hash: name NUL flag value
 * NUL, so absent and empty never collide. */
static void vary_hash_add(apr_sha1_ctx_t *ctx, const char *name,
                          const char *v)
{
    apr_sha1_update_binary(ctx, (const unsigned char *)name,
                           strlen(name) + 1);
    apr_sha1_update_binary(ctx, (const unsigned char *)(v ? "1" : "0"), 1);
    if (v) {
        apr_sha1_update_binary(ctx, (const unsigned char *)v, strlen(v) + 1);
    }
}

const char *cond_vary_hash(apr_pool_t *p, const char *names,
                           cond_header_fn *get, void *baton)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[APR_SHA1_DIGESTSIZE];
    apr_sha1_ctx_t ctx;
    char *copy, *name, *out;
    int present = 0, i;

    if (!names || !*names) {
        return "";
    }
    apr_sha1_init(&ctx);
    if (!strchr(names, ',')) {
        /* One name (an API's Accept, say): asked once, and when the
         * request does not carry it "" without hashing anything. */
        const char *v = get(baton, names);
        if (!v) {
            return "";
        }
        vary_hash_add(&ctx, names, v);
        present = 1;
    }
    else {
        copy = apr_pstrdup(p, names);
        while ((name = variant_next(&copy, ',')) != NULL) {
            const char *v = get(baton, name);
            vary_hash_add(&ctx, name, v);
            present |= v != NULL;
        }
    }
    if (!present) {
        return "";
    }
    apr_sha1_final(digest, &ctx);
    out = apr_palloc(p, 17);
    for (i = 0; i < 8; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 0xf];
    }
    out[16] = '\0';
    return out;
}

const char *cond_tag(apr_pool_t *p, const char *id, apr_int64_t version,
                     const char *vhash)
{
    char ver[32];

    apr_snprintf(ver, sizeof(ver), "%" APR_UINT64_T_HEX_FMT,
                 (apr_uint64_t)version);
    return apr_pstrcat(p, "\"", id, "-", ver, vhash && *vhash ? "-" : "",
                       vhash ? vhash : "", "\"", NULL);
}

/* ------------------------------------------------------------------ */
/* Variants                                                             */

/* v in lowercase hex without leading zeros, as the serialiser writes a
 * version and the tags carry it, into buf (17 bytes); its length. The
 * version line is compared with it, and the 304 and tag paths format a
 * version two or three times a request: apr_strtoi64 and apr_psprintf
 * cost several times as much. */
apr_size_t cond_hex(char *buf, apr_uint64_t v)
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
    buf[n] = '\0';
    return n;
}

cond_variant *cond_variant_make(apr_pool_t *p, const char *names,
                                const char *hash)
{
    cond_variant *v = apr_palloc(p, sizeof(*v));

    v->names = names ? names : "";
    v->hash = hash ? hash : "";
    v->lines = apr_array_make(p, 6, sizeof(cond_meta_line));
    v->public_id = "";
    return v;
}

void cond_variant_add(cond_variant *v, const char *name, const char *value)
{
    cond_meta_line *l = apr_array_push(v->lines);

    l->name = name;
    l->value = value;
}

const char *cond_variant_get(const cond_variant *v, const char *name)
{
    int i;

    for (i = 0; i < v->lines->nelts; i++) {
        const cond_meta_line *l = &APR_ARRAY_IDX(v->lines, i, cond_meta_line);
        if (!strcasecmp(l->name, name)) {
            return l->value;
        }
    }
    return NULL;
}

/* What cond_vary_names writes: tokens joined by ',' (or ':' for none). */
static int variant_names_ok(const char *names)
{
    for (; *names; names++) {
        if (*names != ',' && !variant_is_tchar(*names)) {
            return 0;
        }
    }
    return 1;
}

/* "= <hash> <names> <public>" (format 2: no <public>): '-' stands for no
 * hash (a hash is hex) and ':' for no names (a name is a token, and ':' is
 * not a token character; '-' is, so a Vary naming a header called "-"
 * stays itself); '-' for not public (an id is never "-"). */
static cond_variant *variant_parse_head(apr_pool_t *p, char *line,
                                        int format)
{
    char *hash = line + 2, *names = strchr(hash, ' '), *pub = NULL;
    cond_variant *v;

    if (line[0] != '=' || line[1] != ' ' || !names) {
        return NULL;
    }
    *names++ = '\0';
    if (format == 3) {
        if (!(pub = strchr(names, ' ')) || !pub[1] || strchr(pub + 1, ' ')) {
            return NULL;
        }
        *pub++ = '\0';
    }
    if (strcmp(names, ":") && !variant_names_ok(names)) {
        return NULL;
    }
    v = cond_variant_make(p, strcmp(names, ":") ? names : "",
                          strcmp(hash, "-") ? hash : "");
    if (pub && strcmp(pub, "-")) {
        v->public_id = pub;
    }
    return v;
}

static int variant_parse_line(cond_variant *v, char *line)
{
    char *colon = strchr(line, ':');

    if (!colon || colon == line || colon[1] != ' ') {
        return 0;
    }
    *colon = '\0';
    cond_variant_add(v, line, colon + 2);
    return 1;
}

/* The format of a metadata string: 3, 2, or 0 for none we read. */
static int variant_format(const char *meta)
{
    if (!strncmp(meta, VARIANT_MAGIC, VARIANT_MAGIC_LEN)) {
        return 3;
    }
    if (!strncmp(meta, VARIANT_MAGIC2, VARIANT_MAGIC_LEN)) {
        return 2;
    }
    return 0;
}

/* The variants of 'copy' (the metadata after its magic, cut up in place:
 * every string of the result points into it or is a literal ""). */
static apr_array_header_t *variants_parse_in(apr_pool_t *p, char *copy,
                                             int format, apr_int64_t version)
{
    apr_array_header_t *out = apr_array_make(p, 2, sizeof(cond_variant *));
    cond_variant *cur = NULL;
    char *line, hex[17];

    line = variant_next(&copy, '\n');
    cond_hex(hex, (apr_uint64_t)version);
    if (!line || strcmp(line, hex)) {
        return out;
    }
    while ((line = variant_next(&copy, '\n')) != NULL) {
        if (line[0] == '=') {
            cur = variant_parse_head(p, line, format);
            /* more than cond_variants_put keeps: not written by us */
            if (!cur || out->nelts == COND_MAX_VARIANTS) {
                break;
            }
            APR_ARRAY_PUSH(out, cond_variant *) = cur;
        }
        else if (!cur || !variant_parse_line(cur, line)) {
            break;
        }
    }
    if (line) {
        apr_array_clear(out);   /* damaged: trust none of it */
    }
    return out;
}

/* The variants of meta, parsed from a copy in p: *blob, *len bytes (NULL
 * and 0 when meta is in no format read), which every string of the
 * result points into or is a literal "". */
static apr_array_header_t *variants_parse_copy(apr_pool_t *p,
                                               const char *meta,
                                               apr_int64_t version,
                                               char **blob, apr_size_t *len)
{
    int format = meta ? variant_format(meta) : 0;

    *blob = NULL;
    *len = 0;
    if (!format) {
        return apr_array_make(p, 2, sizeof(cond_variant *));
    }
    *len = strlen(meta + VARIANT_MAGIC_LEN) + 1;
    *blob = apr_pmemdup(p, meta + VARIANT_MAGIC_LEN, *len);
    return variants_parse_in(p, *blob, format, version);
}

apr_array_header_t *cond_variants_parse(apr_pool_t *p, const char *meta,
                                        apr_int64_t version)
{
    char *blob;
    apr_size_t len;

    return variants_parse_copy(p, meta, version, &blob, &len);
}

static int variant_has_newline(const char *s)
{
    return strchr(s, '\n') || strchr(s, '\r');
}

/* An id that reads back as itself: one field, not "-" (not public). */
static int variant_public_ok(const char *id)
{
    return id && *id && strcmp(id, "-") && !strpbrk(id, " \t\r\n");
}

const char *cond_variants_serialise(apr_pool_t *p, apr_int64_t version,
                                    const apr_array_header_t *variants)
{
    apr_array_header_t *parts = apr_array_make(p, 16, sizeof(char *));
    int i, j;

    APR_ARRAY_PUSH(parts, const char *) =
        apr_psprintf(p, VARIANT_MAGIC "%" APR_UINT64_T_HEX_FMT "\n",
                     (apr_uint64_t)version);
    for (i = 0; i < variants->nelts; i++) {
        const cond_variant *v = APR_ARRAY_IDX(variants, i, cond_variant *);
        APR_ARRAY_PUSH(parts, const char *) =
            apr_pstrcat(p, "= ", *v->hash ? v->hash : "-", " ",
                        *v->names ? v->names : ":", " ",
                        variant_public_ok(v->public_id) ? v->public_id : "-",
                        "\n", NULL);
        for (j = 0; j < v->lines->nelts; j++) {
            const cond_meta_line *l = &APR_ARRAY_IDX(v->lines, j,
                                                     cond_meta_line);
            if (variant_has_newline(l->name) || variant_has_newline(l->value)) {
                continue;
            }
            APR_ARRAY_PUSH(parts, const char *) =
                apr_pstrcat(p, l->name, ": ", l->value, "\n", NULL);
        }
    }
    return apr_array_pstrcat(p, parts, 0);
}

/* What a public id reads back as: itself, or "" (not public). */
static const char *variant_public_text(const char *id)
{
    return variant_public_ok(id) ? id : "";
}

/* o's lines are v's as cond_variants_serialise writes them: those with a
 * CR or LF left out, the rest in order. */
static int variant_same_lines(const cond_variant *o, const cond_variant *v)
{
    int i, j = 0;

    for (i = 0; i < v->lines->nelts; i++) {
        const cond_meta_line *l = &APR_ARRAY_IDX(v->lines, i, cond_meta_line);
        const cond_meta_line *m;

        if (variant_has_newline(l->name) || variant_has_newline(l->value)) {
            continue;
        }
        if (j == o->lines->nelts) {
            return 0;
        }
        m = &APR_ARRAY_IDX(o->lines, j++, cond_meta_line);
        if (strcmp(l->name, m->name) || strcmp(l->value, m->value)) {
            return 0;
        }
    }
    return j == o->lines->nelts;
}

int cond_variants_hold(const char *meta, const apr_array_header_t *variants,
                       const cond_variant *v)
{
    int i;

    if (!meta || variant_format(meta) != 3) {
        return 0;   /* an older format is written anew */
    }
    for (i = 0; i < variants->nelts; i++) {
        const cond_variant *o = APR_ARRAY_IDX(variants, i, cond_variant *);

        if (!strcmp(o->names, v->names) && !strcmp(o->hash, v->hash)) {
            return !strcmp(variant_public_text(o->public_id),
                           variant_public_text(v->public_id))
                   && variant_same_lines(o, v);
        }
    }
    return 0;
}

void cond_variants_put(apr_array_header_t *variants, cond_variant *v)
{
    cond_variant **elts = (cond_variant **)variants->elts;
    int i;

    for (i = 0; i < variants->nelts; i++) {
        if (!strcmp(elts[i]->names, v->names)
            && !strcmp(elts[i]->hash, v->hash)) {
            elts[i] = v;
            return;
        }
    }
    if (variants->nelts >= COND_MAX_VARIANTS) {
        memmove(elts, elts + 1, (variants->nelts - 1) * sizeof(*elts));
        variants->nelts--;
    }
    APR_ARRAY_PUSH(variants, cond_variant *) = v;
}

const cond_variant *cond_variants_select(apr_pool_t *p,
                                         const apr_array_header_t *variants,
                                         cond_header_fn *get, void *baton)
{
    int i;

    for (i = variants->nelts - 1; i >= 0; i--) {
        const cond_variant *v = APR_ARRAY_IDX(variants, i, cond_variant *);
        if (!strcmp(cond_vary_hash(p, v->names, get, baton), v->hash)) {
            return v;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* The memo of one thread                                               */

/* What a memo keeps at most: the longest metadata it copies, and what its
 * pool keeps after a clear. */
#define MEMO_MAX_BYTES (64 * 1024)

struct cond_variants_memo {
    apr_pool_t *pool;       /* everything below; cleared when the key
                             * changes */
    const char *meta;       /* the key: the metadata as stored (NULL while
                             * empty), its version and the version's tag */
    apr_int64_t version;
    const char *version_tag;
    char *blob;             /* the metadata cut up by the parse */
    apr_size_t bloblen;
    apr_array_header_t *variants;   /* parsed from blob */
    char *tag_ok;           /* per variant: its ETag is of version_tag */
    char *seen;             /* the metadata the last miss parsed (malloc) */
    apr_size_t seen_size;
    apr_int64_t seen_version;
    apr_uint64_t hits;      /* requests answered from the kept parse */
};

cond_variants_memo *cond_variants_memo_make(void)
{
    cond_variants_memo *m = calloc(1, sizeof(*m));

    if (m && apr_pool_create_unmanaged_ex(&m->pool, NULL, NULL)
             != APR_SUCCESS) {
        free(m);
        return NULL;
    }
    /* One huge metadata string once must not stay a thread's for good:
     * what a clear frees beyond this goes back to the system. */
    if (m) {
        apr_allocator_max_free_set(apr_pool_allocator_get(m->pool),
                                   MEMO_MAX_BYTES);
    }
    return m;
}

void cond_variants_memo_destroy(cond_variants_memo *m)
{
    if (m) {
        apr_pool_destroy(m->pool);
        free(m->seen);
        free(m);
    }
}

apr_uint64_t cond_variants_memo_hits(const cond_variants_memo *m)
{
    return m->hits;
}

static int memo_holds(const cond_variants_memo *m, const char *meta,
                      apr_int64_t version, const char *version_tag)
{
    return m->meta && m->version == version && !strcmp(m->meta, meta)
           && !strcmp(m->version_tag, version_tag);
}

/* Whether the last miss was this same metadata; else it is now. A key is
 * kept from its second miss in a row on: keys that come and go (304s on
 * random keys) are parsed in the request's pool as they always were, for
 * the price of one copy of their text, not of a parse into the memo and a
 * copy out of it. */
static int memo_seen(cond_variants_memo *m, const char *meta,
                     apr_int64_t version)
{
    apr_size_t n;

    if (m->seen && m->seen_version == version && !strcmp(m->seen, meta)) {
        return 1;
    }
    n = strlen(meta) + 1;
    if (n > MEMO_MAX_BYTES) {
        return 0;           /* parsed every time rather than kept */
    }
    if (n > m->seen_size) {
        char *grown = realloc(m->seen, n);
        if (!grown) {
            return 0;
        }
        m->seen = grown;
        m->seen_size = n;
    }
    memcpy(m->seen, meta, n);
    m->seen_version = version;
    return 0;
}

/* Parse meta once and check every variant's tag once, for this key. */
static void memo_fill(cond_variants_memo *m, const char *meta,
                      apr_int64_t version, const char *version_tag)
{
    int i;

    apr_pool_clear(m->pool);
    m->variants = variants_parse_copy(m->pool, meta, version, &m->blob,
                                      &m->bloblen);
    m->tag_ok = apr_pcalloc(m->pool, (apr_size_t)m->variants->nelts + 1);
    for (i = 0; i < m->variants->nelts; i++) {
        const cond_variant *v = APR_ARRAY_IDX(m->variants, i, cond_variant *);
        m->tag_ok[i] = (char)cond_tag_of_version(cond_variant_get(v, "ETag"),
                                                 version_tag);
    }
    m->meta = apr_pstrdup(m->pool, meta);
    m->version = version;
    m->version_tag = apr_pstrdup(m->pool, version_tag);
}

/* s where it lies in the memo's blob, moved to the same place in copy;
 * anything else (a literal "") as it is. */
static const char *memo_rebase(const cond_variants_memo *m, const char *s,
                               char *copy)
{
    apr_uintptr_t at = (apr_uintptr_t)s, base = (apr_uintptr_t)m->blob;

    return at >= base && at < base + m->bloblen ? copy + (at - base) : s;
}

/* v, a variant of the memo, in p: one copy of the blob for its strings. */
static const cond_variant *memo_copy(const cond_variants_memo *m,
                                     apr_pool_t *p, const cond_variant *v)
{
    char *copy = apr_pmemdup(p, m->blob, m->bloblen);
    cond_variant *c = apr_palloc(p, sizeof(*c));
    int i;

    c->names = memo_rebase(m, v->names, copy);
    c->hash = memo_rebase(m, v->hash, copy);
    c->public_id = memo_rebase(m, v->public_id, copy);
    c->lines = apr_array_make(p, v->lines->nelts ? v->lines->nelts : 1,
                              sizeof(cond_meta_line));
    for (i = 0; i < v->lines->nelts; i++) {
        const cond_meta_line *l = &APR_ARRAY_IDX(v->lines, i, cond_meta_line);
        cond_variant_add(c, memo_rebase(m, l->name, copy),
                         memo_rebase(m, l->value, copy));
    }
    return c;
}

const cond_variant *cond_variants_memo_select(cond_variants_memo *m,
                                              apr_pool_t *p,
                                              const char *meta,
                                              apr_int64_t version,
                                              const char *version_tag,
                                              cond_header_fn *get,
                                              void *baton)
{
    const cond_variant *v;
    int i;

    if (!meta || !version_tag) {
        return NULL;
    }
    if (m && !memo_holds(m, meta, version, version_tag)) {
        if (memo_seen(m, meta, version)) {
            memo_fill(m, meta, version, version_tag);
        }
        else {
            m = NULL;
        }
    }
    if (!m) {
        v = cond_variants_select(p, cond_variants_parse(p, meta, version),
                                 get, baton);
        return v && cond_tag_of_version(cond_variant_get(v, "ETag"),
                                        version_tag) ? v : NULL;
    }
    m->hits++;
    v = cond_variants_select(p, m->variants, get, baton);
    for (i = 0; v && i < m->variants->nelts; i++) {
        if (APR_ARRAY_IDX(m->variants, i, cond_variant *) == v) {
            return m->tag_ok[i] ? memo_copy(m, p, v) : NULL;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Expires                                                              */

const char *cond_expires_offset(apr_pool_t *p, const char *expires,
                                apr_time_t date)
{
    apr_time_t t = cond_parse_date(expires);
    apr_int64_t d;

    if (!t || !date) {
        return NULL;
    }
    d = (apr_int64_t)apr_time_sec(t) - (apr_int64_t)apr_time_sec(date);
    return apr_psprintf(p, "%c%" APR_INT64_T_FMT, d < 0 ? '-' : '+',
                        d < 0 ? -d : d);
}

const char *cond_expires_at(apr_pool_t *p, const char *offset,
                            apr_time_t now)
{
    char *end, *date;
    apr_int64_t d;

    if (!offset || (offset[0] != '+' && offset[0] != '-')
        || !apr_isdigit(offset[1])) {
        return NULL;
    }
    d = apr_strtoi64(offset + 1, &end, 10);
    if (*end || d > APR_INT64_C(315360000000)) {
        return NULL;    /* junk, or ten thousand years out */
    }
    if (offset[0] == '-') {
        d = -d;
    }
    date = apr_palloc(p, APR_RFC822_DATE_LEN);
    if (apr_rfc822_date(date, apr_time_from_sec(apr_time_sec(now) + d))
        != APR_SUCCESS) {
        return NULL;
    }
    return date;
}
