/*
 * variant.h - one tag per representation, one version per resource.
 *
 * A resource has one version in the store; each representation of it (the
 * variants a backend selects by the request headers it names in Vary, and
 * the codings mod_deflate / mod_brotli add) gets its own strong tag derived
 * from that version:
 *
 *   "<store identity>-<hex version>"                  no Vary, or none of
 *                                                     the named request
 *                                                     headers present
 *   "<store identity>-<hex version>-<16 hex>"         a hash of the values
 *                                                     of the named headers
 *   ...-gzip" / ...-br"                               added by the
 *                                                     compressing filter
 *
 * The store's opaque metadata string holds, for the current version only,
 * what each variant seen so far went out with (its final ETag, Vary and
 * Cache-Control lines, Content-Location, Expires), so a 304 repeats what
 * that variant's 200 carried. Pure logic: APR and apr-util only, no httpd.
 * Unit-tested in unit/test_variant.c.
 */
#ifndef COND_VARIANT_H
#define COND_VARIANT_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

/* Every field line of request header 'name' joined with ", ", or NULL
 * when the request has none. */
typedef const char *cond_header_fn(void *baton, const char *name);

/* Most variants remembered per key; the oldest is dropped beyond. */
#define COND_MAX_VARIANTS 16

/*
 * The field names of a Vary value (several lines joined with ", "),
 * lowercased, sorted, without duplicates, joined with ",": the canonical
 * form hashed and stored. "" when it names none; NULL when it holds "*"
 * (the representation depends on more than request headers: no variant
 * of it can be named, so it gets no tag).
 */
const char *cond_vary_names(apr_pool_t *p, const char *vary);

/*
 * The request's variant hash for canonical names: 16 lowercase hex digits
 * of SHA-1 over each name and its value (absent and empty differ), or ""
 * when names is "" or the request carries none of the named headers.
 */
const char *cond_vary_hash(apr_pool_t *p, const char *names,
                           cond_header_fn *get, void *baton);

/* v in lowercase hex without leading zeros into buf (17 bytes, the
 * terminating NUL included), as versions appear in tags and metadata;
 * returns its length. */
apr_size_t cond_hex(char *buf, apr_uint64_t v);

/* The tag of one representation: "\"<id>-<hex version>\"", with "-<vhash>"
 * before the closing quote when vhash is not "" (or NULL). */
const char *cond_tag(apr_pool_t *p, const char *id, apr_int64_t version,
                     const char *vhash);

/* One field line of a remembered variant. */
typedef struct {
    const char *name;
    const char *value;
} cond_meta_line;

/* One representation as it last went out at the current version. */
typedef struct {
    const char *names;          /* canonical final Vary names ("" none) */
    const char *hash;           /* the request's hash over them ("" none) */
    apr_array_header_t *lines;  /* cond_meta_line, in order; repeated
                                 * names stay separate lines */
    const char *public_id;      /* the configuration this 200 was served
                                 * under to a request without credentials
                                 * (an opaque id without spaces, set by the
                                 * glue); "" when it was not */
} cond_variant;

/* A new, empty variant (not public). */
cond_variant *cond_variant_make(apr_pool_t *p, const char *names,
                                const char *hash);

/* Add one field line (name and value are not copied). */
void cond_variant_add(cond_variant *v, const char *name, const char *value);

/* The first value of 'name' (case-insensitive) in v, or NULL. */
const char *cond_variant_get(const cond_variant *v, const char *name);

/*
 * The variants a metadata string holds for 'version' (cond_variant *
 * elements). Format 2 (no public flag: none of its variants is public)
 * and 3 are read. Metadata of any other version, of an older format,
 * unparsable, or with more than COND_MAX_VARIANTS variants gives none:
 * every variant then goes to the backend once.
 */
apr_array_header_t *cond_variants_parse(apr_pool_t *p, const char *meta,
                                        apr_int64_t version);

/* The metadata string for 'version' holding 'variants' (format 3). */
const char *cond_variants_serialise(apr_pool_t *p, apr_int64_t version,
                                    const apr_array_header_t *variants);

/* Put v in place of the variant with the same names and hash, or add it,
 * dropping the oldest beyond COND_MAX_VARIANTS. */
void cond_variants_put(apr_array_header_t *variants, cond_variant *v);

/*
 * Whether 'meta' already says all cond_variants_put and
 * cond_variants_serialise would write of v: meta is of the current
 * format, and its variant with v's names and hash (the one put would
 * replace; 'variants' is meta parsed) has v's public id and v's lines, in
 * order, byte for byte. Then a 200 whose headers did not change writes
 * nothing, and need not serialise anything to find out.
 */
int cond_variants_hold(const char *meta, const apr_array_header_t *variants,
                       const cond_variant *v);

/* The variant the request would get: the latest whose names, hashed over
 * the request's headers, give its hash. NULL when none is known. */
const cond_variant *cond_variants_select(apr_pool_t *p,
                                         const apr_array_header_t *variants,
                                         cond_header_fn *get, void *baton);

/*
 * The last metadata string one thread parsed, kept for the next request
 * of the same key at the same version: a 304 of a busy key then neither
 * parses it nor checks its tags again (callgrind: about 1.5k instructions
 * of a 304). Not shared: one per thread, no lock.
 */
typedef struct cond_variants_memo cond_variants_memo;

/* A new, empty memo with a pool of its own (no parent, so any thread may
 * make one); NULL when memory is short. */
cond_variants_memo *cond_variants_memo_make(void);

/* Frees the memo and everything it kept. */
void cond_variants_memo_destroy(cond_variants_memo *m);

/*
 * What cond_variants_select(cond_variants_parse(meta, version)) gives,
 * kept only when its ETag is a tag of 'version_tag' (cond_tag_of_version),
 * as a copy in p: nothing returned points into the memo, which the next
 * call may start over. m NULL parses in p every time.
 */
const cond_variant *cond_variants_memo_select(cond_variants_memo *m,
                                              apr_pool_t *p,
                                              const char *meta,
                                              apr_int64_t version,
                                              const char *version_tag,
                                              cond_header_fn *get,
                                              void *baton);

/* How many calls the memo answered from a parse it kept. */
apr_uint64_t cond_variants_memo_hits(const cond_variants_memo *m);

/*
 * Expires kept relative to the response's own Date, so a 304 sent later
 * carries what a 200 sent then would: "+N" / "-N" seconds, or NULL when
 * either date is not a valid HTTP-date (the value is then kept as is).
 */
const char *cond_expires_offset(apr_pool_t *p, const char *expires,
                                apr_time_t date);

/* The Expires value for an offset "+N"/"-N" at time 'now'; NULL when the
 * offset is malformed. */
const char *cond_expires_at(apr_pool_t *p, const char *offset,
                            apr_time_t now);

#endif /* COND_VARIANT_H */
