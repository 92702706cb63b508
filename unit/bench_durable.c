/*
 * bench_durable.c - what one write costs the store, as the module makes
 * it: claim, commit (holding the claim), release - three transactions -
 * on keys spread over a small set, one thread. Built twice by
 * `make bench-durable`: as shipped (synchronous=NORMAL, versions reserved
 * durably 65536 at a time) and with an fsync per commit
 * (synchronous=FULL), to price the two ways of surviving a power cut
 * (docs/design.md, "Power cuts").
 *
 *   bench_durable DIR [WRITES]
 */

#include <stdio.h>
#include <stdlib.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "store.h"

#define SQ (&cond_sqlite_store)

int main(int argc, char **argv)
{
    apr_pool_t *p;
    cond_store *s = NULL;
    const char *path, *err;
    apr_time_t t0, t1;
    int n, i;

    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [WRITES]\n", argv[0]);
        return 2;
    }
    n = argc > 2 ? atoi(argv[2]) : 2000;
    apr_initialize();
    apr_pool_create(&p, NULL);
    path = apr_pstrcat(p, argv[1], "/bench_durable.db", NULL);
    err = SQ->create(&s, path, p);
    if (err || SQ->init(s, p) != APR_SUCCESS
        || SQ->child_init(s, p) != APR_SUCCESS) {
        fprintf(stderr, "bench_durable: cannot open %s\n", path);
        return 1;
    }
    t0 = apr_time_now();
    for (i = 0; i < n; i++) {
        const char *key = apr_psprintf(p, "/bench/%d", i % 64);
        apr_time_t now = apr_time_now();
        cond_state st;
        apr_int64_t v = 0;

        if (SQ->lookup(s, key, &st, p) != APR_SUCCESS) {
            st.version = 0;
        }
        if (SQ->claim(s, key, st.version, "bench", 60000000, p)
                != APR_SUCCESS
            || SQ->commit(s, key, "bench", COND_COMMIT_EXISTS
                          | COND_COMMIT_HOLD, NULL, now, &v, p) != APR_SUCCESS
            || SQ->release(s, key, "bench", NULL, p) != APR_SUCCESS) {
            fprintf(stderr, "bench_durable: write %d failed\n", i);
            return 1;
        }
    }
    t1 = apr_time_now();
    printf("%s: %d writes, %.1f us per write\n", SQ_SYNC_NAME, n,
           (double)(t1 - t0) / n);
    apr_pool_destroy(p);
    apr_terminate();
    return 0;
}
