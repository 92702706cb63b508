/*
 * precond.c - RFC 9110 section 13 precondition evaluation.
 *
 * Everything here scans the header values in place: no allocation, no
 * pool, and every loop only moves forward, so a hostile header (64 KiB of
 * commas or quotes) costs one linear pass. Nothing a client sends can make
 * these functions fail; malformed input gets the treatment the RFC asks for
 * (If-Match fails closed, a bad If-None-Match element is skipped, a bad date
 * is ignored).
 */

#include <string.h>

#include <apr_lib.h>
#include <apr_date.h>

#include "precond.h"

/* One entity-tag, pointing into the header value it came from. */
typedef struct {
    const char *opaque;     /* first byte inside the quotes */
    apr_size_t len;         /* bytes inside the quotes */
    int weak;               /* W/ prefix */
} precond_tag;

typedef enum {
    PRECOND_ELEM_END,       /* no more elements */
    PRECOND_ELEM_TAG,       /* a well-formed entity-tag */
    PRECOND_ELEM_STAR,      /* "*" */
    PRECOND_ELEM_BAD        /* anything else */
} precond_elem;

/* What a list match found beyond yes/no, for the 'why' of a verdict. */
typedef struct {
    int star;               /* the list was "*" */
    int weak_hit;           /* an element equals current but for W/ */
} precond_found;

static int precond_is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* etagc = %x21 / %x23-7E / obs-text: no controls, no space, no DQUOTE
 * (nor DEL). Written as what it excludes: a 304 scans four tags byte by
 * byte, and this form compiles to fewer instructions a byte. */
static int precond_is_etagc(char c)
{
    unsigned char u = (unsigned char)c;

    return u > 0x20 && u != 0x22 && u != 0x7f;
}

/*
 * Scan entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE at p. Returns the byte
 * after the closing quote, or NULL when p does not start with one. "W/" is
 * case-sensitive (RFC 9110 8.8.3), so "w/" is not a weak tag but junk.
 */
static const char *precond_scan_tag(const char *p, precond_tag *tag)
{
    tag->weak = 0;
    if (p[0] == 'W' && p[1] == '/') {
        tag->weak = 1;
        p += 2;
    }
    if (*p != '"') {
        return NULL;
    }
    tag->opaque = ++p;
    while (precond_is_etagc(*p)) {
        p++;
    }
    if (*p != '"') {
        return NULL;    /* unterminated, or a byte etagc does not allow */
    }
    tag->len = (apr_size_t)(p - tag->opaque);
    return p + 1;
}

/*
 * Next non-empty element of a #list at *pp (RFC 9110 5.6.1: empty elements
 * and OWS around commas are allowed). A tag counts only when OWS and then a
 * comma or the end follow it: in '"a" "b"' neither tag is an element. A bad
 * element runs to the next comma, quoted or not (once the quotes are
 * unbalanced nothing better can be known), so a broken element costs only
 * itself. A byte is looked at no more than twice: the scan stays linear.
 */
static precond_elem precond_next(const char **pp, precond_tag *tag)
{
    const char *p = *pp;
    const char *end;
    precond_elem kind;

    while (*p == ',' || precond_is_ows(*p)) {
        p++;
    }
    if (!*p) {
        *pp = p;
        return PRECOND_ELEM_END;
    }
    if (*p == '*') {
        end = p + 1;
        kind = PRECOND_ELEM_STAR;
    }
    else {
        end = precond_scan_tag(p, tag);
        kind = PRECOND_ELEM_TAG;
    }
    if (end) {
        while (precond_is_ows(*end)) {
            end++;
        }
        if (*end == ',' || !*end) {
            *pp = end;
            return kind;
        }
        p = end;
    }
    while (*p && *p != ',') {
        p++;
    }
    *pp = p;
    return PRECOND_ELEM_BAD;
}

/* The resource's own tag must be exactly one entity-tag; anything else is
 * treated as no tag at all, so that nothing can match it. */
static int precond_current(const cond_resource *res, precond_tag *cur)
{
    const char *end;

    if (!res->exists || !res->etag) {
        return 0;
    }
    end = precond_scan_tag(res->etag, cur);
    return end && !*end;
}

/* The version tag, likewise exactly one entity-tag or none. */
static int precond_version(const cond_resource *res, precond_tag *vt)
{
    const char *end;

    if (!res->exists || !res->version_tag) {
        return 0;
    }
    end = precond_scan_tag(res->version_tag, vt);
    return end && !*end;
}

static int precond_same(const precond_tag *a, const precond_tag *b)
{
    return a->len == b->len && !memcmp(a->opaque, b->opaque, a->len);
}

/* The content codings whose filters append their name to a tag. */
static const char *const precond_codings[] = { "gzip", "br", "gunzip", NULL };

/* The value of a lowercase hex digit, as versions are written in tags;
 * -1 for anything else. */
static int precond_hex_digit(char c)
{
    return apr_isdigit(c) ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                                           : -1;
}

/* s (n bytes) is "" or "-<16 lowercase hex>" and/or "-<coding>". */
static int precond_version_suffix(const char *s, apr_size_t n)
{
    apr_size_t i;
    int c;

    if (n >= 17 && s[0] == '-') {
        for (i = 1; i < 17 && precond_hex_digit(s[i]) >= 0; i++) {
        }
        if (i == 17) {
            s += 17;
            n -= 17;
        }
    }
    if (!n) {
        return 1;
    }
    for (c = 0; precond_codings[c]; c++) {
        apr_size_t len = strlen(precond_codings[c]);
        if (n == len + 1 && s[0] == '-' && !memcmp(s + 1, precond_codings[c],
                                                   len)) {
            return 1;
        }
    }
    return 0;
}

/* t belongs to the version whose tag is vt (both scanned); a strong
 * comparison never takes a weak tag. */
static int precond_in_version(const precond_tag *t, const precond_tag *vt,
                              int strong)
{
    return (!strong || (!t->weak && !vt->weak)) && t->len >= vt->len
           && !memcmp(t->opaque, vt->opaque, vt->len)
           && precond_version_suffix(t->opaque + vt->len, t->len - vt->len);
}

int cond_tag_of_version(const char *tag, const char *version_tag)
{
    precond_tag t, vt;
    const char *end;

    if (!tag || !version_tag) {
        return 0;
    }
    end = precond_scan_tag(tag, &t);
    if (!end || *end) {
        return 0;
    }
    end = precond_scan_tag(version_tag, &vt);
    return end && !*end && precond_in_version(&t, &vt, 1);
}

/* The version one strong tag of this store names (prefix: "\"<identity>-"),
 * 0 for another store's tag or junk inside the quotes. */
static apr_int64_t precond_tag_version(const precond_tag *t,
                                       const char *prefix, apr_size_t n)
{
    apr_uint64_t v = 0;
    apr_size_t i;

    if (t->len <= n || memcmp(t->opaque, prefix + 1, n)) {
        return 0;
    }
    for (i = n; i < t->len && i - n < 16
                && precond_hex_digit(t->opaque[i]) >= 0; i++) {
        v = v * 16 + (apr_uint64_t)precond_hex_digit(t->opaque[i]);
    }
    if (i == n || v > (apr_uint64_t)APR_INT64_MAX
        || !precond_version_suffix(t->opaque + i, t->len - i)) {
        return 0;
    }
    return (apr_int64_t)v;
}

/* A list of several tags names several versions, of which at most one is
 * current: the highest is the likeliest (a client's newest), and is the
 * hint. Weak tags and other stores' tags never match an If-Match here and
 * are passed over; "*" or a malformed element gives no hint at all. */
apr_int64_t cond_if_match_version(const char *if_match, const char *prefix)
{
    const char *list = if_match;
    apr_int64_t best = 0, v;
    precond_elem e;
    precond_tag t;
    apr_size_t n;

    if (!list || !prefix || *prefix != '"') {
        return 0;
    }
    n = strlen(prefix + 1);
    while ((e = precond_next(&list, &t)) == PRECOND_ELEM_TAG) {
        if (!t.weak && (v = precond_tag_version(&t, prefix, n)) > best) {
            best = v;
        }
    }
    return e == PRECOND_ELEM_END ? best : 0;
}

/*
 * Match a list against the current tag. Returns 1, 0, or -1 when the list
 * is malformed and 'weak' is 0 (the weak matcher skips bad elements).
 * "*" is the whole field value in the grammar; a list of nothing but "*"
 * (a header sent twice arrives as "*, *") is still taken as "*", while "*"
 * next to tags is a bad element. A tag matches only a resource that exists:
 * a deleted resource keeps no current representation to compare with.
 */
static int precond_match(const char *list, const cond_resource *res,
                         int weak, int family, precond_found *found)
{
    precond_tag cur = { NULL, 0, 0 }, t = { NULL, 0, 0 }, vt = { NULL, 0, 0 };
    precond_elem e;
    int have_cur = precond_current(res, &cur);
    int have_vt = family && precond_version(res, &vt);
    int stars = 0, others = 0, bad = 0, match = 0;

    found->star = found->weak_hit = 0;
    while ((e = precond_next(&list, &t)) != PRECOND_ELEM_END) {
        if (e == PRECOND_ELEM_STAR) {
            stars++;
            continue;
        }
        others++;
        if (e == PRECOND_ELEM_BAD) {
            bad = 1;
        }
        else if (have_vt && precond_in_version(&t, &vt, !weak)) {
            match = 1;
        }
        else if (!have_cur) {
            continue;
        }
        else if (weak) {
            match |= precond_same(&t, &cur);
        }
        else if (precond_same(&t, &cur)) {
            if (!t.weak && !cur.weak) {
                match = 1;
            }
            else {
                found->weak_hit = 1;
            }
        }
    }
    if (stars && !others) {
        found->star = 1;
        return res->exists ? 1 : 0;
    }
    if (!weak && (stars || bad)) {
        return -1;
    }
    return match;
}

int cond_list_match_strong(const char *list, const char *etag, int exists)
{
    cond_resource res;
    precond_found found;

    if (!list) {
        return 0;
    }
    res.exists = exists;
    res.etag = etag;
    res.mtime = 0;
    res.version_tag = NULL;
    return precond_match(list, &res, 0, 0, &found);
}

int cond_list_match_weak(const char *list, const char *etag, int exists)
{
    cond_resource res;
    precond_found found;

    if (!list) {
        return 0;
    }
    res.exists = exists;
    res.etag = etag;
    res.mtime = 0;
    res.version_tag = NULL;
    return precond_match(list, &res, 1, 0, &found);
}

/* ------------------------------------------------------------------ */
/* HTTP-date                                                            */

/*
 * apr_date_parse_http() does the calendar work (month names, day of month
 * against month and leap year, years before 1970 rejected) but is lenient
 * by design: it ignores the weekday and everything after the time, so
 * "... 08:49:37 PST", "... GMTjunk" and two dates joined by ", " (a
 * repeated header, which RFC 9110 13.1.3 says to ignore) would all pass,
 * as would a one-digit day and second 61. So the grammar of RFC 9110 5.6.7
 * is checked here first and apr only converts what passed.
 *
 * Leniency kept on purpose: OWS around the value is skipped; the weekday
 * must be a real day name but need not agree with the date (as in httpd);
 * two-digit rfc850 years use apr's fixed pivot (00-69 -> 20xx, 70-99 ->
 * 19xx) rather than the RFC's "more than 50 years in the future" rule,
 * which in 2026 reads 70-76 as 2070-2076, a year more each year.
 * The epoch itself (1 Jan 1970 00:00:00) reads as 0, i.e. invalid.
 */
static const char *const precond_wkday[7] = {
    "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"
};
static const char *const precond_weekday[7] = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
    "Sunday"
};

/* '#' a digit, '~' a digit or SP, '@' anything (checked by name), other
 * bytes themselves; s has exactly n bytes and the mask must be as long. */
static int precond_mask(const char *s, apr_size_t n, const char *mask)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        switch (mask[i]) {
        case '\0':
            return 0;
        case '#':
            if (!apr_isdigit(s[i])) {
                return 0;
            }
            break;
        case '~':
            if (s[i] != ' ' && !apr_isdigit(s[i])) {
                return 0;
            }
            break;
        case '@':
            break;
        default:
            if (s[i] != mask[i]) {
                return 0;
            }
        }
    }
    return mask[n] == '\0';
}

static int precond_is_name(const char *s, apr_size_t n,
                           const char *const *names)
{
    int i;

    for (i = 0; i < 7; i++) {
        if (strlen(names[i]) == n && !memcmp(s, names[i], n)) {
            return 1;
        }
    }
    return 0;
}

/* Day-month-year validity is apr's; the time's upper bounds are ours
 * (apr would take second 61), "00:00:00 - 23:59:60 (leap second)". */
static int precond_time_ok(const char *t)
{
    return (t[0] - '0') * 10 + (t[1] - '0') <= 23
           && (t[3] - '0') * 10 + (t[4] - '0') <= 59
           && (t[6] - '0') * 10 + (t[7] - '0') <= 60;
}

/* Which of the three formats s (n bytes, trimmed) is in; 0 if none. */
static int precond_date_form(const char *s, apr_size_t n)
{
    const char *comma;

    /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
    if (precond_mask(s, n, "@@@, ## @@@ #### ##:##:## GMT")) {
        return precond_is_name(s, 3, precond_wkday)
               && precond_time_ok(s + 17);
    }
    /* asctime-date: Sun Nov  6 08:49:37 1994 */
    if (precond_mask(s, n, "@@@ @@@ ~# ##:##:## ####")) {
        return precond_is_name(s, 3, precond_wkday)
               && precond_time_ok(s + 11);
    }
    /* rfc850-date: Sunday, 06-Nov-94 08:49:37 GMT */
    comma = memchr(s, ',', n);
    if (comma && precond_is_name(s, (apr_size_t)(comma - s), precond_weekday)
        && precond_mask(comma, n - (apr_size_t)(comma - s),
                        ", ##-@@@-## ##:##:## GMT")) {
        return precond_time_ok(comma + 12);
    }
    return 0;
}

apr_time_t cond_parse_date(const char *value)
{
    const char *end;
    apr_time_t t;

    if (!value) {
        return 0;
    }
    while (precond_is_ows(*value)) {
        value++;
    }
    end = value + strlen(value);
    while (end > value && precond_is_ows(end[-1])) {
        end--;
    }
    if (!precond_date_form(value, (apr_size_t)(end - value))) {
        return 0;
    }
    /* apr stops at the time (asctime: the year), so trailing OWS is fine. */
    t = apr_date_parse_http(value);
    return t == APR_DATE_BAD ? 0 : t;
}

/* ------------------------------------------------------------------ */
/* Evaluation                                                           */

static cond_verdict precond_verdict(cond_why *why, cond_why w,
                                    cond_verdict v)
{
    *why = w;
    return v;
}

/* Step 1: If-Match, strong comparison; fails closed when unparsable. */
static cond_verdict precond_if_match(const cond_request *req,
                                     const cond_resource *res, cond_why *why)
{
    precond_found found;
    int m = precond_match(req->if_match, res, 0, 1, &found);

    if (m < 0) {
        return precond_verdict(why, COND_WHY_MALFORMED, COND_FAILED);
    }
    if (!res->exists) {
        return precond_verdict(why, COND_WHY_ABSENT, COND_FAILED);
    }
    if (!m) {
        return precond_verdict(why, found.weak_hit ? COND_WHY_WEAK
                                                   : COND_WHY_STALE,
                               COND_FAILED);
    }
    return precond_verdict(why, COND_WHY_MATCH, COND_PROCEED);
}

/* Step 2: If-Unmodified-Since, only without If-Match. Ignored when the date
 * is invalid or there is no modification date to compare with. */
static cond_verdict precond_if_unmodified_since(const cond_request *req,
                                                const cond_resource *res,
                                                cond_why *why)
{
    apr_time_t date = cond_parse_date(req->if_unmodified_since);

    if (!date || !res->exists || !res->mtime) {
        return COND_PROCEED;
    }
    if (apr_time_sec(res->mtime) > apr_time_sec(date)) {
        return precond_verdict(why, COND_WHY_MODIFIED_SINCE, COND_FAILED);
    }
    return precond_verdict(why, COND_WHY_MATCH, COND_PROCEED);
}

/* Step 3: If-None-Match, weak comparison: 304 for reads, 412 otherwise. */
static cond_verdict precond_if_none_match(const cond_request *req,
                                          const cond_resource *res,
                                          cond_why *why)
{
    precond_found found;

    /* A read's 304 is for the one representation it would get; a write
     * must not go ahead over any representation of the version. */
    if (precond_match(req->if_none_match, res, 1,
                      req->method != COND_METHOD_READ, &found) <= 0) {
        return precond_verdict(why, COND_WHY_MATCH, COND_PROCEED);
    }
    if (req->method == COND_METHOD_READ) {
        return precond_verdict(why, COND_WHY_NONE_MATCH, COND_NOT_MODIFIED);
    }
    return precond_verdict(why, found.star ? COND_WHY_EXISTS
                                           : COND_WHY_NONE_MATCH,
                           COND_FAILED);
}

/* Step 4: If-Modified-Since, reads without If-None-Match only. A date in
 * the future is invalid (it cannot be a Last-Modified this server sent). */
static cond_verdict precond_if_modified_since(const cond_request *req,
                                              const cond_resource *res,
                                              apr_time_t now, cond_why *why)
{
    apr_time_t date = cond_parse_date(req->if_modified_since);

    if (!date || apr_time_sec(date) > apr_time_sec(now)
        || !res->exists || !res->mtime) {
        return COND_PROCEED;
    }
    if (apr_time_sec(res->mtime) <= apr_time_sec(date)) {
        return precond_verdict(why, COND_WHY_NOT_MODIFIED_SINCE,
                               COND_NOT_MODIFIED);
    }
    return precond_verdict(why, COND_WHY_MATCH, COND_PROCEED);
}

cond_verdict cond_evaluate(const cond_request *req, const cond_resource *res,
                           apr_time_t now, cond_why *why)
{
    static const cond_resource none = { 0, NULL, 0, NULL };
    cond_why ignored;
    cond_verdict v;

    if (!why) {
        why = &ignored;
    }
    *why = COND_WHY_NONE;
    if (!req) {
        return COND_PROCEED;
    }
    if (!res) {
        res = &none;
    }

    if (req->if_match) {
        v = precond_if_match(req, res, why);
    }
    else if (req->if_unmodified_since) {
        v = precond_if_unmodified_since(req, res, why);
    }
    else {
        v = COND_PROCEED;
    }
    if (v != COND_PROCEED) {
        return v;
    }

    if (req->if_none_match) {
        return precond_if_none_match(req, res, why);
    }
    if (req->if_modified_since && req->method == COND_METHOD_READ) {
        return precond_if_modified_since(req, res, now, why);
    }
    return COND_PROCEED;
}

const char *cond_why_str(cond_why why)
{
    switch (why) {
    case COND_WHY_NONE:
        return "none";
    case COND_WHY_MATCH:
        return "match";
    case COND_WHY_NONE_MATCH:
        return "none-match";
    case COND_WHY_NOT_MODIFIED_SINCE:
        return "not-modified";
    case COND_WHY_STALE:
        return "stale";
    case COND_WHY_WEAK:
        return "weak";
    case COND_WHY_ABSENT:
        return "absent";
    case COND_WHY_MALFORMED:
        return "malformed";
    case COND_WHY_MODIFIED_SINCE:
        return "modified";
    case COND_WHY_EXISTS:
        return "exists";
    }
    return "none";
}

/*
 * Whether a write is really conditional, for ConditionalRequire's 428.
 * If-Match always counts: it is evaluated whatever it says (and fails
 * closed). If-None-Match counts only with an element that could match, and
 * If-Unmodified-Since only with a valid date: the RFC has the evaluator
 * ignore the rest, so such a write would run unconditionally.
 */
int cond_has_write_precondition(const cond_request *req)
{
    const char *p;
    precond_tag t;
    precond_elem e;

    if (!req) {
        return 0;
    }
    if (req->if_match) {
        return 1;
    }
    if (req->if_none_match) {
        p = req->if_none_match;
        while ((e = precond_next(&p, &t)) != PRECOND_ELEM_END) {
            if (e != PRECOND_ELEM_BAD) {
                return 1;
            }
        }
    }
    return cond_parse_date(req->if_unmodified_since) != 0;
}

/*
 * If-Range (RFC 9110 13.1.5) holds one validator, never a list: a strong
 * entity-tag compared strongly, or an HTTP-date that must equal the
 * Last-Modified exactly. Anything else sends the whole representation.
 */
int cond_if_range(const char *if_range, const char *etag,
                  apr_time_t last_modified)
{
    precond_tag t, cur;
    const char *end;
    apr_time_t date;

    if (!if_range) {
        return 0;
    }
    while (precond_is_ows(*if_range)) {
        if_range++;
    }
    if (*if_range == '"' || (if_range[0] == 'W' && if_range[1] == '/')) {
        end = precond_scan_tag(if_range, &t);
        if (!end || !etag) {
            return 0;
        }
        while (precond_is_ows(*end)) {
            end++;
        }
        if (*end || t.weak) {
            return 0;
        }
        end = precond_scan_tag(etag, &cur);
        return end && !*end && !cur.weak && precond_same(&t, &cur);
    }
    date = cond_parse_date(if_range);
    return date && last_modified
           && apr_time_sec(date) == apr_time_sec(last_modified);
}
