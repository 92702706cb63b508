/*
 * bench_durable.c - what one write costs the store, as the module makes
 * it, on keys spread over a small set, one thread, every key's parent in
 * the store (so each write bumps it):
 *
 *   folded  a claim, then one commit that releases the claim and bumps
 *           the parent (a response complete at its headers): 2
 *           transactions
 *   held    a claim, a commit holding the claim, a release that bumps
 *           the parent (a backend still streaming after its headers): 3
 *
 * Run by build/bench_store.sh (`make bench-durable`) against SQLite as
 * shipped (synchronous=NORMAL, versions reserved durably 65536 at a time)
 * and with an fsync per commit (this file built with
 * -DSQ_SYNCHRONOUS=FULL), and against PostgreSQL through the dbd store
 * with synchronous_commit on (PostgreSQL's default: a WAL flush per
 * commit) and off (docs/design.md, "Power cuts").
 *
 *   bench_durable SPEC folded|held [WRITES]
 *
 * SPEC is a ConditionalStore spec: sqlite:/path/file.db, or dbd:PARAMS
 * (libpq conninfo). Prints "writes/s us/write".
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "store.h"

/* One write: *ok = 0 when the store refused it. */
static apr_status_t bench_write(const cond_store_provider *pv, cond_store *s,
                                const char *key,
                                const apr_array_header_t *rel, int folded,
                                apr_pool_t *p)
{
    apr_time_t now = apr_time_now();
    apr_int64_t v = 0;
    cond_state st;
    apr_status_t rv;

    if (pv->lookup(s, key, &st, p) != APR_SUCCESS) {
        st.version = 0;
    }
    if ((rv = pv->claim(s, key, st.version, "bench", 60000000, p))
        != APR_SUCCESS) {
        return rv;
    }
    if (folded) {
        return pv->commit(s, key, "bench", COND_COMMIT_EXISTS, rel, now, &v,
                          p);
    }
    if ((rv = pv->commit(s, key, "bench", COND_COMMIT_EXISTS
                         | COND_COMMIT_HOLD, NULL, now, &v, p))
        != APR_SUCCESS) {
        return rv;
    }
    return pv->release(s, key, "bench", rel, p);
}

int main(int argc, char **argv)
{
    const cond_store_provider *pv = NULL;
    apr_array_header_t *rel;
    apr_pool_t *p, *iter;
    cond_store *s = NULL;
    const char *arg = NULL, *err;
    apr_int64_t v;
    apr_time_t t0, t1;
    int n, i, folded;

    if (argc < 3 || (strcmp(argv[2], "folded") && strcmp(argv[2], "held"))) {
        fprintf(stderr, "usage: %s SPEC folded|held [WRITES]\n", argv[0]);
        return 2;
    }
    folded = !strcmp(argv[2], "folded");
    n = argc > 3 ? atoi(argv[3]) : 2000;
    apr_initialize();
    apr_pool_create(&p, NULL);
    err = cond_store_parse(argv[1], NULL, 0, &pv, &arg, p);
    if (!err) {
        err = pv->create(&s, arg, p);
    }
    if (err || pv->init(s, p) != APR_SUCCESS
        || pv->child_init(s, p) != APR_SUCCESS) {
        fprintf(stderr, "bench_durable: cannot open %s: %s\n", argv[1],
                err ? err : cond_store_error(p) ? cond_store_error(p) : "");
        return 1;
    }
    rel = apr_array_make(p, 1, sizeof(const char *));
    APR_ARRAY_PUSH(rel, const char *) = "/bench";
    pv->bump(s, "/bench", apr_time_now(), &v, p);
    apr_pool_create(&iter, p);
    t0 = apr_time_now();
    for (i = 0; i < n; i++) {
        const char *key = apr_psprintf(iter, "/bench/%d", i % 64);

        if (bench_write(pv, s, key, rel, folded, iter) != APR_SUCCESS) {
            fprintf(stderr, "bench_durable: write %d failed: %s\n", i,
                    cond_store_error(iter) ? cond_store_error(iter) : "");
            return 1;
        }
        apr_pool_clear(iter);
    }
    t1 = apr_time_now();
    printf("%.0f %.1f\n", n * 1e6 / (double)(t1 - t0),
           (double)(t1 - t0) / n);
    apr_pool_destroy(p);
    apr_terminate();
    return 0;
}
