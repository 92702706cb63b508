/*
 * store_contract.h - the store contract suite (store_contract.c): the
 * behaviour store.h promises, run against every provider. Each provider's
 * test program (test_store.c for sqlite, test_pgsql.c for dbd) supplies a
 * target - how to make a fresh store and a second view of it - plus its
 * own store-specific tests, and calls test_main.
 */
#ifndef STORE_CONTRACT_H
#define STORE_CONTRACT_H

#include <apr_pools.h>

#include "store.h"

typedef struct {
    const char *name;
    const cond_store_provider *pv;
    /* A new, empty store called name: create + init + child_init, as
     * httpd does around the fork. NULL (after a failed check) on error. */
    cond_store *(*open)(apr_pool_t *p, const char *name);
    /* A second instance on the existing store name without init, like a
     * child forked after the parent's init; *rv gets child_init's result. */
    cond_store *(*attach)(apr_pool_t *p, const char *name, apr_status_t *rv);
    /* How far the store's sequence has moved: at or past every version
     * handed out, and for stores whose versions have no gaps but for
     * those of a block in hand, short of `block` past the last one
     * handed out (NULL: the checks that need it are skipped). */
    apr_int64_t (*sequence)(const char *name);
    /* Versions an instance with init takes from the sequence at once
     * (1: one at a time, the sequence is the last version handed out). An
     * instance without init (attach) takes them one at a time. */
    int block;
} test_target;

typedef struct {
    const char *name;
    void (*fn)(apr_pool_t *p);
} test_case;

/* The target under test and its provider. */
extern const test_target *T;
#define PV (T->pv)

#define LEASE          apr_time_from_sec(60)
/* A lease just taken (or kept by a HOLD commit) has nearly all of LEASE
 * left: generous for a slow, shared test machine. */
#define LEASE_FRESH(l) ((l) > LEASE - apr_time_from_sec(30) && (l) <= LEASE)

/* A scratch directory for the run, removed at the end; a pool that lasts
 * the whole run. */
extern char *tmpdir;
extern apr_pool_t *test_root;

const char *test_status_name(apr_status_t rv);
int test_check(int ok, int line, const char *what);
int test_check_rv(apr_status_t got, apr_status_t want, int line,
                  const char *what);
int test_is_hex_id(const char *id);

#define CHECK(cond)         test_check((cond) != 0, __LINE__, #cond)
#define CHECK_RV(expr, rv)  test_check_rv((expr), (rv), __LINE__, #expr)

/* The contract tests, NULL-terminated. */
extern const test_case contract_cases[];

/* Run the contract cases and then own (NULL-terminated) against t; argv[1]
 * picks the cases whose name contains it. Returns the exit status. */
int test_main(int argc, char **argv, const test_target *t,
              const test_case *own);

#endif /* STORE_CONTRACT_H */
