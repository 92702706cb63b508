/*
 * key.c - the text of a resource's key (see key.h).
 */
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "key.h"

const char *cond_key_site(apr_pool_t *p, const char *host, unsigned port,
                          const char *tell)
{
    char *h = apr_pstrdup(p, host ? host : "");
    char *c;

    for (c = h; *c; c++) {
        *c = (char)apr_tolower((unsigned char)*c);
    }
    return apr_psprintf(p, "%s:%u%s%s", h, port, tell ? "~" : "",
                        tell ? tell : "");
}

/* Bytes the escaped path keeps as they are: everything printable but the
 * escape itself and the two that end a path in a URL. */
static int key_plain(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '%' && c != '?' && c != '#';
}

static const char *key_escape_path(apr_pool_t *p, const char *path)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s;
    apr_size_t n = 0;
    char *out, *o;

    for (s = (const unsigned char *)path; *s; s++) {
        n += key_plain(*s) ? 1 : 3;
    }
    o = out = apr_palloc(p, n + 1);
    for (s = (const unsigned char *)path; *s; s++) {
        if (key_plain(*s)) {
            *o++ = (char)*s;
        }
        else {
            *o++ = '%';
            *o++ = hex[*s >> 4];
            *o++ = hex[*s & 0xf];
        }
    }
    *o = '\0';
    return out;
}

const char *cond_key_make(apr_pool_t *p, const char *site, const char *path,
                          const char *query)
{
    if (!query) {
        /* Every read builds its key: two lengths and one allocation, not
         * apr_pstrcat's walk over its argument list (twice). */
        apr_size_t ns = strlen(site), np = strlen(path);
        char *key = apr_palloc(p, ns + np + 1);

        memcpy(key, site, ns);
        memcpy(key + ns, path, np + 1);
        return key;
    }
    return apr_pstrcat(p, site, key_escape_path(p, path), "?", query, NULL);
}
