/*
 * key.h - the text of a resource's key in the store. No httpd types: the
 * glue (mod_conditional.c) decides which site a request is for and which
 * path and query it names; this file only writes them down, in a form
 * where two different (site, path, query) never give the same key.
 * Unit-tested in unit/test_key.c and fuzzed by fuzz/fuzz_key.c.
 */
#ifndef COND_KEY_H
#define COND_KEY_H

#include <apr_pools.h>

/*
 * The site part: "host:port", and "host:port~tell" when several virtual
 * hosts share a host name and port and are told apart by tell (their
 * ServerAlias). host is lowercased; it never contains '/'. tell may be
 * NULL.
 */
const char *cond_key_site(apr_pool_t *p, const char *host, unsigned port,
                          const char *tell);

/*
 * The key of path (decoded, normalised; starts with '/') at site. With
 * query NULL: site + path, as it always was. With a query (r->args, ""
 * when there is none): site + path with '%', '?', '#', controls, space
 * and non-ASCII bytes percent-encoded + '?' + query, so the first '?'
 * after the site is always where the query starts and two requests have
 * the same key only when site, path and query are the same.
 */
const char *cond_key_make(apr_pool_t *p, const char *site, const char *path,
                          const char *query);

#endif /* COND_KEY_H */
