/*
 * bench_lookup.c - what a remembered lookup costs the SQLite store: the
 * store's share of a 304 for a key nobody writes (docs/design.md, "When
 * the store's files change under the server"). One thread, one key, the
 * same lookup again and again after a first one that reads it.
 *
 *   bench_lookup DIR [LOOKUPS] [ROUNDS]
 *
 * Makes DIR/bench.db, prints the median of ROUNDS rounds (default 5) of
 * LOOKUPS lookups (default 200000) in microseconds per lookup, and each
 * round's. Not run by `make unit`: a timing, not a check.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "store.h"

static int bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const cond_store_provider *pv = &cond_sqlite_store;
    apr_pool_t *p, *iter;
    cond_store *s = NULL;
    double us[64];
    const char *err;
    cond_state st;
    apr_int64_t v;
    int n, rounds, i, r;

    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [LOOKUPS] [ROUNDS]\n", argv[0]);
        return 2;
    }
    n = argc > 2 ? atoi(argv[2]) : 200000;
    rounds = argc > 3 ? atoi(argv[3]) : 5;
    if (n < 1 || rounds < 1 || rounds > 64) {
        fprintf(stderr, "%s: LOOKUPS >= 1, 1 <= ROUNDS <= 64\n", argv[0]);
        return 2;
    }
    apr_initialize();
    apr_pool_create(&p, NULL);
    apr_pool_create(&iter, p);
    if ((err = pv->create(&s, apr_pstrcat(p, argv[1], "/bench.db", NULL),
                          p))
        || pv->init(s, p) != APR_SUCCESS || pv->child_init(s, p)
        || pv->register_key(s, "localhost:80/api/docs/bench", NULL,
                            apr_time_now(), &v, p) != APR_SUCCESS
        || pv->lookup(s, "localhost:80/api/docs/bench", &st, p)
           != APR_SUCCESS) {
        fprintf(stderr, "%s: cannot set up the store: %s\n", argv[0],
                err ? err : cond_store_error(p));
        return 1;
    }
    for (r = 0; r < rounds; r++) {
        apr_time_t t0 = apr_time_now();

        for (i = 0; i < n; i++) {
            if (pv->lookup(s, "localhost:80/api/docs/bench", &st, iter)
                != APR_SUCCESS || st.version != v) {
                fprintf(stderr, "%s: lookup failed: %s\n", argv[0],
                        cond_store_error(iter));
                return 1;
            }
            if ((i & 1023) == 0) {
                apr_pool_clear(iter);
            }
        }
        us[r] = (double)(apr_time_now() - t0) / n;
        printf("round %d: %.3f us/lookup\n", r + 1, us[r]);
    }
    qsort(us, rounds, sizeof(us[0]), bench_cmp);
    printf("median: %.3f us per remembered lookup\n", us[rounds / 2]);
    apr_pool_destroy(p);
    apr_terminate();
    return 0;
}
