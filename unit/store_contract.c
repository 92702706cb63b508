/*
 * store_contract.c - the store contract suite: what store.h promises,
 * checked against any provider through the target a test program passes
 * to test_main (see store_contract.h).
 *
 * Every test works in its own store. The contention tests fork processes
 * and start threads that race for the same keys while a shared "backend"
 * counter is incremented, unlocked, by whoever holds the claim: a lost
 * update shows up as a counter behind the number of commits. Prints every
 * failing check and a last line "N passed, M failed".
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "store_contract.h"

/* Counters live in shared memory so forked children can report. */
typedef struct {
    int passed;
    int failed;
} test_counts;

const test_target *T;
char *tmpdir;
apr_pool_t *test_root;
static test_counts *counts;

const char *test_status_name(apr_status_t rv)
{
    static char buf[64];

    switch (rv) {
    case APR_SUCCESS:  return "APR_SUCCESS";
    case APR_NOTFOUND: return "APR_NOTFOUND";
    case APR_EBUSY:    return "APR_EBUSY";
    case APR_EAGAIN:   return "APR_EAGAIN";
    case APR_EEXIST:   return "APR_EEXIST";
    case APR_TIMEUP:   return "APR_TIMEUP";
    case APR_EACCES:   return "APR_EACCES";
    case APR_ENOENT:   return "APR_ENOENT";
    case APR_EGENERAL: return "APR_EGENERAL";
    case APR_EINVAL:   return "APR_EINVAL";
    }
    apr_snprintf(buf, sizeof(buf), "status %d", rv);
    return buf;
}

int test_check(int ok, int line, const char *what)
{
    if (ok) {
        __sync_fetch_and_add(&counts->passed, 1);
    }
    else {
        __sync_fetch_and_add(&counts->failed, 1);
        printf("FAIL %s line %d: %s\n", T ? T->name : "", line, what);
        fflush(stdout);
    }
    return ok;
}

int test_check_rv(apr_status_t got, apr_status_t want, int line,
                  const char *what)
{
    char msg[256];

    if (got == want) {
        return test_check(1, line, what);
    }
    apr_snprintf(msg, sizeof(msg), "%s: got %s", what,
                 test_status_name(got));
    apr_snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), ", want %s",
                 test_status_name(want));
    return test_check(0, line, msg);
}

int test_is_hex_id(const char *id)
{
    int i;

    if (!id || strlen(id) != 16) {
        return 0;
    }
    for (i = 0; i < 16; i++) {
        if (!strchr("0123456789abcdef", id[i])) {
            return 0;
        }
    }
    return 1;
}

static apr_int64_t test_sequence(const char *name)
{
    return T->sequence ? T->sequence(name) : -1;
}

/* ------------------------------------------------------------------ */

static void test_identity(apr_pool_t *p)
{
    cond_store *s = T->open(p, "ident"), *again, *other, *attached;
    const char *id;
    apr_status_t rv = APR_SUCCESS;

    if (!s) {
        return;
    }
    id = PV->identity(s, p);
    CHECK(test_is_hex_id(id));

    /* httpd runs post_config twice: init again on the same instance */
    CHECK_RV(PV->init(s, p), APR_SUCCESS);
    CHECK(id && PV->identity(s, p) && !strcmp(id, PV->identity(s, p)));

    /* a child that never ran init learns the same identity */
    attached = T->attach(p, "ident", &rv);
    CHECK_RV(rv, APR_SUCCESS);
    CHECK(attached && id && PV->identity(attached, p)
          && !strcmp(id, PV->identity(attached, p)));
    again = T->attach(p, "ident", &rv);
    CHECK(again && id && PV->init(again, p) == APR_SUCCESS
          && PV->identity(again, p) && !strcmp(id, PV->identity(again, p)));

    /* a new store: a new identity */
    other = T->open(p, "ident-other");
    CHECK(other && id && test_is_hex_id(PV->identity(other, p))
          && strcmp(id, PV->identity(other, p)));
}

/* Keys are bytes: any byte but NUL, valid UTF-8 or not, is kept as is. */
static void test_byte_keys(apr_pool_t *p)
{
    static const char *const keys[] = {
        "h:80/caf\xc3\xa9", "h:80/\xff\xfe", "h:80/a'b\"c\\d", "h:80/%00",
        "h:80/\x01\x7f", NULL
    };
    cond_store *s = T->open(p, "bytes");
    apr_int64_t v[8];
    cond_state st;
    int i;

    if (!s) {
        return;
    }
    for (i = 0; keys[i]; i++) {
        CHECK_RV(PV->register_key(s, keys[i], keys[i], apr_time_now(), &v[i],
                                  p), APR_SUCCESS);
    }
    for (i = 0; keys[i]; i++) {
        CHECK_RV(PV->lookup(s, keys[i], &st, p), APR_SUCCESS);
        CHECK(st.version == v[i] && st.meta && !strcmp(st.meta, keys[i]));
    }
    CHECK_RV(PV->lookup(s, "h:80/\xff", &st, p), APR_NOTFOUND);
}

static void test_lookup_claim(apr_pool_t *p)
{
    cond_store *s = T->open(p, "claim");
    apr_time_t now = apr_time_now();
    apr_int64_t v = 0, v2 = 0;
    cond_state st;

    if (!s) {
        return;
    }
    CHECK_RV(PV->lookup(s, "/missing", &st, p), APR_NOTFOUND);

    /* claiming an unknown key at a version other than 0 creates nothing */
    CHECK_RV(PV->claim(s, "/new", 7, "A", LEASE, p), APR_EAGAIN);
    CHECK_RV(PV->lookup(s, "/new", &st, p), APR_NOTFOUND);

    /* an unknown key at 0: created absent at version 0, claimed */
    CHECK_RV(PV->claim(s, "/new", 0, "A", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/new", &st, p), APR_SUCCESS);
    CHECK(st.version == 0 && !st.exists && st.mtime == 0);
    CHECK(st.claim_owner && !strcmp(st.claim_owner, "A"));
    CHECK(LEASE_FRESH(st.claim_left));

    /* a held claim is EBUSY, at the right version or not */
    CHECK_RV(PV->claim(s, "/new", 0, "B", LEASE, p), APR_EBUSY);
    CHECK_RV(PV->claim(s, "/new", 3, "B", LEASE, p), APR_EBUSY);
    /* even for its own owner: a claim is taken once */
    CHECK_RV(PV->claim(s, "/new", 0, "A", LEASE, p), APR_EBUSY);

    CHECK_RV(PV->commit(s, "/new", "A", 1, NULL, now, &v, p), APR_SUCCESS);
    CHECK(v > 0);

    /* unclaimed but at another version: EAGAIN */
    CHECK_RV(PV->claim(s, "/new", v - 1, "B", LEASE, p),
             APR_EAGAIN);
    CHECK_RV(PV->claim(s, "/new", 0, "B", LEASE, p), APR_EAGAIN);
    CHECK_RV(PV->lookup(s, "/new", &st, p), APR_SUCCESS);
    CHECK(st.version == v && st.claim_owner == NULL);

    /* the right version: claimed, version untouched until commit */
    CHECK_RV(PV->claim(s, "/new", v, "B", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/new", &st, p), APR_SUCCESS);
    CHECK(st.version == v && st.claim_owner && !strcmp(st.claim_owner, "B"));
    /* a live claim blocks a second writer that read the same version */
    CHECK_RV(PV->claim(s, "/new", v, "C", LEASE, p), APR_EBUSY);
    CHECK_RV(PV->lookup(s, "/new", &st, p), APR_SUCCESS);
    CHECK(st.claim_owner && !strcmp(st.claim_owner, "B"));
    CHECK_RV(PV->commit(s, "/new", "B", 1, NULL, now, &v2, p), APR_SUCCESS);
    CHECK(v2 > v);
}

/* A check for claim_checked: counts its calls, remembers what it saw,
 * and lets the claim go on only at the version it expects (-1: an
 * unknown key). */
typedef struct {
    int calls;
    apr_int64_t expect;
    apr_int64_t saw;
} test_check_baton;

static int test_check_version(void *baton, const cond_state *st)
{
    test_check_baton *b = baton;

    b->calls++;
    b->saw = st ? st->version : -1;
    return b->saw != b->expect;
}

static void test_claim_checked(apr_pool_t *p)
{
    cond_store *s;
    test_check_baton b = { 0, -1, 0 };
    apr_time_t now = apr_time_now();
    apr_int64_t v = 0, v2 = 0;
    cond_state st;
    int found = 1;

    if (!PV->claim_checked) {
        printf("# %s has no claim_checked: the glue looks up and claims\n",
               T->name);
        return;
    }
    if (!(s = T->open(p, "checked"))) {
        return;
    }
    /* an unknown key: checked as unknown, claimed at version 0 */
    CHECK_RV(PV->claim_checked(s, "/n", 0, "A", LEASE, test_check_version, &b,
                               &st, &found, p), APR_SUCCESS);
    CHECK(b.calls == 1 && b.saw == -1 && !found);
    CHECK_RV(PV->lookup(s, "/n", &st, p), APR_SUCCESS);
    CHECK(st.version == 0 && !st.exists && st.claim_owner
          && !strcmp(st.claim_owner, "A") && LEASE_FRESH(st.claim_left));

    /* a held claim: EBUSY with its owner and lease, the check not called */
    b.calls = 0;
    CHECK_RV(PV->claim_checked(s, "/n", 0, "B", LEASE, test_check_version, &b,
                               &st, &found, p), APR_EBUSY);
    CHECK(b.calls == 0 && found && st.claim_owner
          && !strcmp(st.claim_owner, "A") && LEASE_FRESH(st.claim_left));
    CHECK_RV(PV->commit(s, "/n", "A", COND_COMMIT_EXISTS, NULL, now, &v, p),
             APR_SUCCESS);

    /* the check says no: nothing written, the key stays unclaimed */
    b.calls = 0;
    b.expect = v - 1;
    CHECK_RV(PV->claim_checked(s, "/n", 0, "B", LEASE, test_check_version, &b,
                               &st, &found, p), COND_STORE_DECLINED);
    CHECK(b.calls == 1 && b.saw == v && found && st.version == v
          && st.exists);
    CHECK_RV(PV->lookup(s, "/n", &st, p), APR_SUCCESS);
    CHECK(st.version == v && !st.claim_owner);

    /* the check says yes: claimed at the version it saw */
    b.expect = v;
    CHECK_RV(PV->claim_checked(s, "/n", 0, "B", LEASE, test_check_version, &b,
                               &st, &found, p), APR_SUCCESS);
    CHECK(b.saw == v && st.version == v && !st.claim_owner);
    CHECK_RV(PV->lookup(s, "/n", &st, p), APR_SUCCESS);
    CHECK(st.version == v && st.claim_owner
          && !strcmp(st.claim_owner, "B"));
    CHECK_RV(PV->commit(s, "/n", "B", COND_COMMIT_EXISTS, NULL, now, &v2, p),
             APR_SUCCESS);
    CHECK(v2 > v);

    /* an expired claim is reported, not taken over */
    CHECK_RV(PV->claim(s, "/n", v2, "dead", -1, p), APR_SUCCESS);
    b.calls = 0;
    b.expect = v2;
    CHECK_RV(PV->claim_checked(s, "/n", 0, "C", LEASE, test_check_version, &b,
                               &st, &found, p), APR_EBUSY);
    CHECK(b.calls == 0 && st.claim_owner && !strcmp(st.claim_owner, "dead")
          && st.claim_left <= 0);
}

/* claim_checked told the version the caller expects (a single-tag
 * If-Match): only a hint - the check on the state read decides - but a
 * key at another version is not left claimed, and the state that refused
 * is reported. */
static void test_claim_expected(apr_pool_t *p)
{
    cond_store *s;
    test_check_baton b = { 0, 0, 0 };
    apr_time_t now = apr_time_now();
    apr_int64_t v = 0, v2 = 0;
    cond_state st;
    int found = 0;

    if (!PV->claim_checked) {
        printf("# %s has no claim_checked\n", T->name);
        return;
    }
    if (!(s = T->open(p, "expected"))) {
        return;
    }
    CHECK_RV(PV->bump(s, "/e", now, &v, p), APR_SUCCESS);

    /* the right version: claimed, the check saw the state claimed at */
    b.expect = v;
    CHECK_RV(PV->claim_checked(s, "/e", v, "A", LEASE, test_check_version,
                               &b, &st, &found, p), APR_SUCCESS);
    CHECK(b.calls == 1 && b.saw == v && found && st.version == v
          && st.exists && !st.claim_owner);
    CHECK_RV(PV->lookup(s, "/e", &st, p), APR_SUCCESS);
    CHECK(st.version == v && st.claim_owner && !strcmp(st.claim_owner, "A"));

    /* claimed: EBUSY with the claim's owner, at the expected version or
     * not, the check not called, the claim left alone */
    b.calls = 0;
    CHECK_RV(PV->claim_checked(s, "/e", v, "B", LEASE, test_check_version,
                               &b, &st, &found, p), APR_EBUSY);
    CHECK(b.calls == 0 && found && st.version == v && st.claim_owner
          && !strcmp(st.claim_owner, "A") && LEASE_FRESH(st.claim_left));
    CHECK_RV(PV->claim_checked(s, "/e", v + 1, "B", LEASE,
                               test_check_version, &b, &st, &found, p),
             APR_EBUSY);
    CHECK(b.calls == 0 && st.claim_owner && !strcmp(st.claim_owner, "A"));
    CHECK_RV(PV->lookup(s, "/e", &st, p), APR_SUCCESS);
    CHECK(st.claim_owner && !strcmp(st.claim_owner, "A"));
    CHECK_RV(PV->commit(s, "/e", "A", COND_COMMIT_EXISTS, NULL, now, &v2, p),
             APR_SUCCESS);
    CHECK(v2 > v);

    /* a stale expectation the check refuses: declined, the state that
     * refused reported, nothing claimed */
    b.calls = 0;
    b.expect = v;
    CHECK_RV(PV->claim_checked(s, "/e", v, "B", LEASE, test_check_version,
                               &b, &st, &found, p), COND_STORE_DECLINED);
    CHECK(b.calls == 1 && b.saw == v2 && found && st.version == v2
          && st.exists && !st.claim_owner);
    CHECK_RV(PV->lookup(s, "/e", &st, p), APR_SUCCESS);
    CHECK(st.version == v2 && !st.claim_owner);

    /* a wrong expectation the check takes all the same: claimed at the
     * version the check saw */
    b.calls = 0;
    b.expect = v2;
    CHECK_RV(PV->claim_checked(s, "/e", v, "C", LEASE, test_check_version,
                               &b, &st, &found, p), APR_SUCCESS);
    CHECK(b.calls == 1 && b.saw == v2 && st.version == v2 && !st.claim_owner);
    CHECK_RV(PV->lookup(s, "/e", &st, p), APR_SUCCESS);
    CHECK(st.version == v2 && st.claim_owner && !strcmp(st.claim_owner, "C"));
    CHECK_RV(PV->release(s, "/e", "C", NULL, p), APR_SUCCESS);

    /* the right version, but the check says no (another precondition):
     * declined, and nothing left claimed */
    b.calls = 0;
    b.expect = v2 + 1;
    CHECK_RV(PV->claim_checked(s, "/e", v2, "D", LEASE, test_check_version,
                               &b, &st, &found, p), COND_STORE_DECLINED);
    CHECK(b.calls == 1 && b.saw == v2);
    CHECK_RV(PV->lookup(s, "/e", &st, p), APR_SUCCESS);
    CHECK(st.version == v2 && !st.claim_owner);

    /* an unknown key: checked as unknown whatever is expected; refused,
     * nothing created; taken, claimed at 0 */
    b.calls = 0;
    b.expect = v2;
    CHECK_RV(PV->claim_checked(s, "/u", v2, "E", LEASE, test_check_version,
                               &b, &st, &found, p), COND_STORE_DECLINED);
    CHECK(b.calls == 1 && b.saw == -1 && !found);
    CHECK_RV(PV->lookup(s, "/u", &st, p), APR_NOTFOUND);
    b.expect = -1;
    CHECK_RV(PV->claim_checked(s, "/u", v2, "E", LEASE, test_check_version,
                               &b, &st, &found, p), APR_SUCCESS);
    CHECK(b.calls == 2 && b.saw == -1 && !found);
    CHECK_RV(PV->lookup(s, "/u", &st, p), APR_SUCCESS);
    CHECK(st.version == 0 && st.claim_owner && !strcmp(st.claim_owner, "E"));

    /* no version known (< 0, other preconditions): the check decides on
     * the state read; refused, nothing claimed; taken, claimed at the
     * version it saw */
    b.calls = 0;
    b.expect = v2 + 1;
    CHECK_RV(PV->claim_checked(s, "/e", -1, "F", LEASE, test_check_version,
                               &b, &st, &found, p), COND_STORE_DECLINED);
    CHECK(b.calls == 1 && b.saw == v2 && found && st.version == v2);
    CHECK_RV(PV->lookup(s, "/e", &st, p), APR_SUCCESS);
    CHECK(st.version == v2 && !st.claim_owner);
    b.expect = v2;
    CHECK_RV(PV->claim_checked(s, "/e", -1, "F", LEASE, test_check_version,
                               &b, &st, &found, p), APR_SUCCESS);
    CHECK(b.calls == 2 && b.saw == v2 && st.version == v2 && !st.claim_owner);
    CHECK_RV(PV->lookup(s, "/e", &st, p), APR_SUCCESS);
    CHECK(st.version == v2 && st.claim_owner && !strcmp(st.claim_owner, "F"));
}

/* One claim_checked on key with hint by owner whose check takes only
 * want (-1: an unknown key): its status, and whether the key is left
 * claimed by owner (1), unclaimed (0) or unknown (-1). */
static apr_status_t test_create_try(cond_store *s, const char *key,
                                    apr_int64_t hint, const char *owner,
                                    apr_int64_t want, int *left,
                                    apr_pool_t *p)
{
    test_check_baton b = { 0, want, 0 };
    cond_state st;
    int found = 0;
    apr_status_t rv = PV->claim_checked(s, key, hint, owner, LEASE,
                                        test_check_version, &b, &st, &found,
                                        p);

    CHECK(b.calls == 1);
    CHECK(rv != APR_SUCCESS || (found == (want >= 0) && b.saw == want
                                && (!found || st.version == want)));
    *left = PV->lookup(s, key, &st, p) == APR_NOTFOUND ? -1
            : st.claim_owner && !strcmp(st.claim_owner, owner);
    return rv;
}

/* On a key the store knows, claim_checked with hint: a check that takes
 * only the state no (-1: an unknown key) refuses and leaves the key
 * unclaimed; one that takes the key's state yes claims it, and the claim
 * is released again. */
static void test_create_known(cond_store *s, const char *key,
                              apr_int64_t hint, apr_int64_t no,
                              apr_int64_t yes, apr_pool_t *p)
{
    int left;

    CHECK_RV(test_create_try(s, key, hint, "A", no, &left, p),
             COND_STORE_DECLINED);
    CHECK(left == 0);
    CHECK_RV(test_create_try(s, key, hint, "A", yes, &left, p), APR_SUCCESS);
    CHECK(left == 1);
    CHECK_RV(PV->release(s, key, "A", NULL, p), APR_SUCCESS);
}

/* claim_checked told that the check takes a state without a resource
 * (store.h: COND_EXPECT_ANY, _ABSENT, _GONE - a create), one with a
 * resource (_PRESENT, _EXISTS - If-Match: *), or one not modified since a
 * second (_UNMODIFIED, long ago and in an hour): still only a hint. An
 * unknown key the check takes is claimed at 0, one it refuses is left
 * unknown; a key known without a resource (deleted) is claimed at its
 * version when taken, left unclaimed when refused; a present key
 * likewise; a key claimed by another is EBUSY. */
static void test_claim_create(apr_pool_t *p)
{
    apr_time_t now = apr_time_now();
    const apr_int64_t hints[] = {
        COND_EXPECT_ANY, COND_EXPECT_ABSENT, COND_EXPECT_GONE,
        COND_EXPECT_NONE, COND_EXPECT_PRESENT, COND_EXPECT_EXISTS,
        COND_EXPECT_UNMODIFIED(0),
        COND_EXPECT_UNMODIFIED(apr_time_sec(now) + 3600) };
    cond_store *s;
    apr_int64_t v = 0, gone = 0;
    cond_state st;
    int i, left, found = 0;

    if (!PV->claim_checked || !(s = T->open(p, "create"))) {
        return;
    }
    CHECK_RV(PV->bump(s, "/c/present", now, &v, p), APR_SUCCESS);
    CHECK_RV(PV->bump(s, "/c/gone", now, &gone, p), APR_SUCCESS);
    CHECK_RV(PV->claim(s, "/c/gone", gone, "X", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->commit(s, "/c/gone", "X", 0, NULL, now, &gone, p),
             APR_SUCCESS);
    for (i = 0; i < (int)(sizeof(hints) / sizeof(hints[0])); i++) {
        const char *key = apr_psprintf(p, "/c/new%d", i);
        apr_int64_t h = hints[i];

        CHECK_RV(test_create_try(s, key, h, "A", 1, &left, p),
                 COND_STORE_DECLINED);
        CHECK(left == -1);
        CHECK_RV(test_create_try(s, key, h, "A", -1, &left, p), APR_SUCCESS);
        CHECK(left == 1);
        CHECK_RV(PV->lookup(s, key, &st, p), APR_SUCCESS);
        CHECK(st.version == 0 && !st.exists && LEASE_FRESH(st.claim_left));
        CHECK_RV(PV->claim_checked(s, key, h, "B", LEASE, test_check_version,
                                   &(test_check_baton){ 0, -1, 0 }, &st,
                                   &found, p), APR_EBUSY);
        CHECK(found && st.claim_owner && !strcmp(st.claim_owner, "A"));
        CHECK_RV(PV->release(s, key, "A", NULL, p), APR_SUCCESS);
        CHECK_RV(PV->lookup(s, key, &st, p), APR_NOTFOUND);

        test_create_known(s, "/c/gone", h, gone + 1, gone, p);
        test_create_known(s, "/c/present", h, -1, v, p);
    }
    CHECK_RV(PV->lookup(s, "/c/gone", &st, p), APR_SUCCESS);
    CHECK(st.version == gone && !st.exists && !st.claim_owner);
    CHECK_RV(PV->lookup(s, "/c/present", &st, p), APR_SUCCESS);
    CHECK(st.version == v && st.exists && !st.claim_owner);
}

static void test_lease_expiry(apr_pool_t *p)
{
    cond_store *s = T->open(p, "lease");
    apr_time_t now = apr_time_now();
    apr_int64_t v0 = 0, v1 = 0, v2 = 0;
    cond_state st;

    if (!s) {
        return;
    }
    CHECK_RV(PV->register_key(s, "/k", NULL, now, &v0, p), APR_SUCCESS);
    /* a claim whose lease has already run out */
    CHECK_RV(PV->claim(s, "/k", v0, "dead", -1, p),
             APR_SUCCESS);

    /* an expired claim is not taken over silently: the dead write may
     * have reached the backend */
    CHECK_RV(PV->claim(s, "/k", v0, "next", LEASE, p), APR_EBUSY);

    /* it is broken (new version), then the key can be claimed again */
    CHECK_RV(PV->lookup(s, "/k", &st, p), APR_SUCCESS);
    CHECK(st.claim_owner && st.claim_left <= 0);
    CHECK_RV(PV->break_claim(s, "/k", "dead", now, &v1, p), APR_SUCCESS);
    CHECK(v1 > v0);
    CHECK_RV(PV->claim(s, "/k", v0, "next", LEASE, p), APR_EAGAIN);
    CHECK_RV(PV->claim(s, "/k", v1, "next", LEASE, p), APR_SUCCESS);

    /* the dead owner waking up cannot commit or release */
    CHECK_RV(PV->commit(s, "/k", "dead", 1, NULL, now, &v2, p),
             COND_STORE_NOT_HELD);
    CHECK_RV(PV->release(s, "/k", "dead", NULL, p), COND_STORE_NOT_HELD);
    CHECK_RV(PV->lookup(s, "/k", &st, p), APR_SUCCESS);
    CHECK(st.version == v1 && st.claim_owner
          && !strcmp(st.claim_owner, "next"));
    CHECK_RV(PV->commit(s, "/k", "next", 1, NULL, now, &v2, p), APR_SUCCESS);
    CHECK(v2 > v1);
}

static void test_commit(apr_pool_t *p)
{
    const char *name = "commit";
    cond_store *s = T->open(p, name);
    apr_time_t t0 = apr_time_from_sec(1700000000);
    apr_int64_t v0 = 0, v1 = 0, v2 = 0, seq;
    cond_state st;

    if (!s) {
        return;
    }
    CHECK_RV(PV->register_key(s, "/c", "Cache-Control: max-age=5\n",
                              t0, &v0, p), APR_SUCCESS);
    CHECK_RV(PV->claim(s, "/c", v0, "W", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->commit(s, "/c", "W", 1, NULL,
                        t0 + apr_time_from_sec(10) + 123,
                        &v1, p), APR_SUCCESS);
    CHECK(v1 > v0);
    CHECK_RV(PV->lookup(s, "/c", &st, p), APR_SUCCESS);
    CHECK(st.version == v1 && st.exists && !st.claim_owner);
    CHECK(st.claim_left == 0);
    /* whole seconds */
    CHECK(st.mtime == t0 + apr_time_from_sec(10));
    /* meta is the last 200's business, not the write's */
    CHECK(st.meta && !strcmp(st.meta, "Cache-Control: max-age=5\n"));

    /* a clock that stepped back never moves mtime backwards, and the
     * write still moves it forward: If-Modified-Since must not hide it */
    CHECK_RV(PV->claim(s, "/c", v1, "W", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->commit(s, "/c", "W", 1, NULL, t0, &v2, p), APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/c", &st, p), APR_SUCCESS);
    CHECK(st.mtime == t0 + apr_time_from_sec(11));
    /* so do a break and a bump in that same second */
    CHECK_RV(PV->claim(s, "/c", v2, "X", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->break_claim(s, "/c", "X", t0 + apr_time_from_sec(11),
                             &v2, p), APR_SUCCESS);
    CHECK_RV(PV->bump(s, "/c", t0 + apr_time_from_sec(11), &v2, p),
             APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/c", &st, p), APR_SUCCESS);
    CHECK(st.mtime == t0 + apr_time_from_sec(13));

    /* a DELETE: absent, version still moves on */
    CHECK_RV(PV->claim(s, "/c", v2, "D", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->commit(s, "/c", "D", 0, NULL, t0 + apr_time_from_sec(20),
                        &v1, p),
             APR_SUCCESS);
    CHECK(v1 > v2);
    CHECK_RV(PV->lookup(s, "/c", &st, p), APR_SUCCESS);
    CHECK(!st.exists && st.version == v1
          && st.mtime == t0 + apr_time_from_sec(20));
    v2 = v1;

    /* commit by an owner that does not hold the claim: nothing changes,
     * not even the sequence */
    CHECK_RV(PV->claim(s, "/c", v1, "owner", LEASE, p), APR_SUCCESS);
    seq = test_sequence(name);
    v2 = -1;
    CHECK_RV(PV->commit(s, "/c", "intruder", 1, NULL, t0, &v2, p),
             COND_STORE_NOT_HELD);
    CHECK(v2 == -1);
    CHECK_RV(PV->commit(s, "/nokey", "owner", 1, NULL, t0, &v2, p),
             COND_STORE_NOT_HELD);
    CHECK(test_sequence(name) == seq);
    CHECK_RV(PV->lookup(s, "/c", &st, p), APR_SUCCESS);
    CHECK(st.version == v1 && !st.exists && st.claim_owner
          && !strcmp(st.claim_owner, "owner"));

    /* after the claim was broken, the former owner's commit fails */
    CHECK_RV(PV->break_claim(s, "/c", "owner", t0, &v2, p), APR_SUCCESS);
    seq = test_sequence(name);
    CHECK_RV(PV->commit(s, "/c", "owner", 1, NULL, t0, &v0, p),
             COND_STORE_NOT_HELD);
    CHECK(test_sequence(name) == seq);
    CHECK_RV(PV->lookup(s, "/c", &st, p), APR_SUCCESS);
    CHECK(st.version == v2 && !st.exists && !st.claim_owner);

    /* HOLD: the new version is committed, the claim (and its lease) stays
     * until release, which leaves the version alone */
    CHECK_RV(PV->claim(s, "/c", v2, "H", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->commit(s, "/c", "H", COND_COMMIT_EXISTS | COND_COMMIT_HOLD,
                        NULL, t0, &v1, p), APR_SUCCESS);
    CHECK(v1 > v2);
    CHECK_RV(PV->lookup(s, "/c", &st, p), APR_SUCCESS);
    CHECK(st.version == v1 && st.exists && st.claim_owner
          && !strcmp(st.claim_owner, "H") && LEASE_FRESH(st.claim_left));
    CHECK_RV(PV->claim(s, "/c", v1, "other", LEASE, p), APR_EBUSY);
    CHECK_RV(PV->release(s, "/c", "H", NULL, p), APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/c", &st, p), APR_SUCCESS);
    CHECK(st.version == v1 && st.exists && !st.claim_owner);
}

/* The keys a write invalidates, bumped in the transaction that commits or
 * releases it: only known ones, never the write's own key, and only when
 * the claim was held. */
static void test_related(apr_pool_t *p)
{
    cond_store *s = T->open(p, "related");
    apr_array_header_t *rel = apr_array_make(p, 4, sizeof(const char *));
    apr_time_t now = apr_time_now();
    apr_int64_t vp = 0, vq = 0, v = 0, v1 = 0, v2 = 0;
    cond_state st;

    if (!s) {
        return;
    }
    APR_ARRAY_PUSH(rel, const char *) = "/p/";
    APR_ARRAY_PUSH(rel, const char *) = "/p";
    APR_ARRAY_PUSH(rel, const char *) = "/p/1";     /* the own key */
    APR_ARRAY_PUSH(rel, const char *) = "/q\xff";
    CHECK_RV(PV->register_key(s, "/p", "m", now, &vp, p), APR_SUCCESS);
    CHECK_RV(PV->register_key(s, "/q\xff", NULL, now, &vq, p),
             APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/p", &st, p), APR_SUCCESS);

    /* a first write, complete: commit and related in one call */
    CHECK_RV(PV->claim(s, "/p/1", 0, "W", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->commit(s, "/p/1", "W", COND_COMMIT_EXISTS, rel,
                        now + apr_time_from_sec(5), &v, p), APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/p/1", &st, p), APR_SUCCESS);
    CHECK(st.version == v && st.exists && !st.claim_owner);
    CHECK_RV(PV->lookup(s, "/p", &st, p), APR_SUCCESS);
    CHECK(st.version > vp && st.version != v && st.exists && st.meta
          && !strcmp(st.meta, "m")
          && st.mtime == apr_time_from_sec(apr_time_sec(now) + 5));
    vp = st.version;
    CHECK_RV(PV->lookup(s, "/q\xff", &st, p), APR_SUCCESS);
    CHECK(st.version > vq && st.version != vp && st.version != v);
    vq = st.version;
    /* unknown related keys are not invented */
    CHECK_RV(PV->lookup(s, "/p/", &st, p), APR_NOTFOUND);

    /* a commit whose claim was lost bumps nothing */
    CHECK_RV(PV->commit(s, "/p/1", "W", COND_COMMIT_EXISTS, rel, now, &v1,
                        p), COND_STORE_NOT_HELD);
    CHECK_RV(PV->lookup(s, "/p", &st, p), APR_SUCCESS);
    CHECK(st.version == vp);

    /* held, then released with the related keys */
    CHECK_RV(PV->claim(s, "/p/1", v, "H", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->commit(s, "/p/1", "H", COND_COMMIT_EXISTS
                        | COND_COMMIT_HOLD, NULL, now, &v1, p), APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/p", &st, p), APR_SUCCESS);
    CHECK(st.version == vp);
    CHECK_RV(PV->release(s, "/p/1", "other", rel, p), COND_STORE_NOT_HELD);
    CHECK_RV(PV->lookup(s, "/p", &st, p), APR_SUCCESS);
    CHECK(st.version == vp);
    CHECK_RV(PV->release(s, "/p/1", "H", rel, p), APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/p/1", &st, p), APR_SUCCESS);
    CHECK(st.version == v1 && !st.claim_owner);
    CHECK_RV(PV->lookup(s, "/p", &st, p), APR_SUCCESS);
    CHECK(st.version > vp && st.version > v1);
    CHECK_RV(PV->lookup(s, "/q\xff", &st, p), APR_SUCCESS);
    CHECK(st.version > vq);
    CHECK_RV(PV->lookup(s, "/p/", &st, p), APR_NOTFOUND);

    /* a placeholder released with related keys goes, and they move */
    CHECK_RV(PV->lookup(s, "/p", &st, p), APR_SUCCESS);
    vp = st.version;
    CHECK_RV(PV->claim(s, "/p/2", 0, "F", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->release(s, "/p/2", "F", rel, p), APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/p/2", &st, p), APR_NOTFOUND);
    CHECK_RV(PV->lookup(s, "/p", &st, p), APR_SUCCESS);
    CHECK(st.version > vp);
    /* an empty list is no list */
    apr_array_clear(rel);
    CHECK_RV(PV->claim(s, "/p/2", 0, "E", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->commit(s, "/p/2", "E", COND_COMMIT_EXISTS, rel, now, &v2,
                        p), APR_SUCCESS);
    CHECK(v2 > 0);
}

static void test_release_break(apr_pool_t *p)
{
    cond_store *s = T->open(p, "release");
    apr_time_t now = apr_time_now();
    apr_int64_t v0 = 0, v1 = 0, v2 = 0;
    cond_state st;

    if (!s) {
        return;
    }
    CHECK_RV(PV->register_key(s, "/r", "m", now, &v0, p), APR_SUCCESS);
    CHECK_RV(PV->release(s, "/r", "nobody", NULL, p), COND_STORE_NOT_HELD);
    CHECK_RV(PV->release(s, "/none", "nobody", NULL, p), COND_STORE_NOT_HELD);
    CHECK_RV(PV->claim(s, "/r", v0, "R", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->release(s, "/r", "other", NULL, p), COND_STORE_NOT_HELD);
    CHECK_RV(PV->release(s, "/r", "R", NULL, p), APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/r", &st, p), APR_SUCCESS);
    CHECK(st.version == v0 && st.exists && !st.claim_owner
          && st.meta && !strcmp(st.meta, "m"));
    CHECK_RV(PV->release(s, "/r", "R", NULL, p), COND_STORE_NOT_HELD);

    /* a first write that failed leaves no trace of the key */
    CHECK_RV(PV->claim(s, "/fresh", 0, "F", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->release(s, "/fresh", "F", NULL, p), APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/fresh", &st, p), APR_NOTFOUND);

    /* break_claim is a compare-and-set on the dead owner */
    CHECK_RV(PV->claim(s, "/r", v0, "R2", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->break_claim(s, "/r", "someone-else", now, &v1, p),
             COND_STORE_NOT_HELD);
    CHECK_RV(PV->break_claim(s, "/none", "R2", now, &v1, p),
             COND_STORE_NOT_HELD);
    CHECK_RV(PV->lookup(s, "/r", &st, p), APR_SUCCESS);
    CHECK(st.version == v0 && st.claim_owner
          && !strcmp(st.claim_owner, "R2"));
    CHECK_RV(PV->break_claim(s, "/r", "R2", now, &v1, p), APR_SUCCESS);
    CHECK(v1 > v0);
    CHECK_RV(PV->lookup(s, "/r", &st, p), APR_SUCCESS);
    CHECK(st.version == v1 && st.exists && !st.claim_owner);
    /* a second breaker lost the race */
    CHECK_RV(PV->break_claim(s, "/r", "R2", now, &v2, p), COND_STORE_NOT_HELD);
    /* breaking an unclaimed key does nothing */
    CHECK_RV(PV->lookup(s, "/r", &st, p), APR_SUCCESS);
    CHECK(st.version == v1);
}

/* Renewal extends a lease on the store's clock, never shortens it, and
 * only for the owner of a claim that was not broken. */
static void test_renew(apr_pool_t *p)
{
    cond_store *s = T->open(p, "renew");
    apr_time_t now = apr_time_now();
    apr_int64_t v0 = 0, v1 = 0;
    cond_state st;

    if (!s) {
        return;
    }
    CHECK_RV(PV->register_key(s, "/n", NULL, now, &v0, p), APR_SUCCESS);
    CHECK_RV(PV->claim(s, "/n", v0, "N", apr_time_from_sec(1), p),
             APR_SUCCESS);
    CHECK_RV(PV->renew(s, "/n", "N", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/n", &st, p), APR_SUCCESS);
    CHECK(st.version == v0 && LEASE_FRESH(st.claim_left)
          && st.claim_owner && !strcmp(st.claim_owner, "N"));
    /* never shortened (a late renewal from a slow thread) */
    CHECK_RV(PV->renew(s, "/n", "N", apr_time_from_sec(5), p), APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/n", &st, p), APR_SUCCESS);
    CHECK(LEASE_FRESH(st.claim_left));
    /* only the owner renews; nobody renews a key that has no claim */
    CHECK_RV(PV->renew(s, "/n", "other", LEASE, p), COND_STORE_NOT_HELD);
    CHECK_RV(PV->renew(s, "/none", "N", LEASE, p), COND_STORE_NOT_HELD);
    /* a claim that was broken stays broken */
    CHECK_RV(PV->break_claim(s, "/n", "N", now, &v1, p), APR_SUCCESS);
    CHECK_RV(PV->renew(s, "/n", "N", LEASE, p), COND_STORE_NOT_HELD);
    CHECK_RV(PV->lookup(s, "/n", &st, p), APR_SUCCESS);
    CHECK(st.version == v1 && !st.claim_owner);
}

static void test_versions(apr_pool_t *p)
{
    const char *name = "versions";
    cond_store *s = T->open(p, name);
    apr_time_t now = apr_time_now();
    apr_int64_t last = 0, v = 0, seen[64];
    int n = 0, i, j, dup = 0, increasing = 1;
    cond_state st;

    if (!s) {
        return;
    }
#define RECORD(expr) do {                                                   \
        v = 0;                                                              \
        CHECK_RV((expr), APR_SUCCESS);                                      \
        if (v <= last) {                                                    \
            increasing = 0;                                                 \
        }                                                                   \
        last = v;                                                           \
        seen[n++] = v;                                                      \
    } while (0)

    RECORD(PV->register_key(s, "/a", NULL, now, &v, p));
    RECORD(PV->register_key(s, "/b", NULL, now, &v, p));
    RECORD(PV->bump(s, "/a", now, &v, p));
    CHECK_RV(PV->claim(s, "/b", last - 1, "x", LEASE, p),
             APR_SUCCESS);
    RECORD(PV->commit(s, "/b", "x", 1, NULL, now, &v, p));
    RECORD(PV->bump(s, "/c", now, &v, p));
    RECORD(PV->set_exists(s, "/a", seen[2], 0, NULL, now, &v, p));
    CHECK_RV(PV->claim(s, "/a", last, "y", LEASE, p), APR_SUCCESS);
    RECORD(PV->break_claim(s, "/a", "y", now, &v, p));

    /* forget and re-create: the key never gets an old version back */
    CHECK_RV(PV->forget(s, "/a", p), APR_SUCCESS);
    CHECK_RV(PV->forget(s, "/a", p), APR_NOTFOUND);
    CHECK_RV(PV->lookup(s, "/a", &st, p), APR_NOTFOUND);
    RECORD(PV->register_key(s, "/a", NULL, now, &v, p));
    CHECK_RV(PV->forget(s, "/a", p), APR_SUCCESS);
    CHECK_RV(PV->claim(s, "/a", 0, "z", LEASE, p), APR_SUCCESS);
    RECORD(PV->commit(s, "/a", "z", 1, NULL, now, &v, p));
    /* forgetting the key that holds the highest version */
    CHECK_RV(PV->forget(s, "/a", p), APR_SUCCESS);
    RECORD(PV->bump(s, "/a", now, &v, p));
#undef RECORD

    CHECK(increasing);
    for (i = 0; i < n; i++) {
        for (j = i + 1; j < n; j++) {
            dup += seen[i] == seen[j];
        }
    }
    CHECK(dup == 0);
    CHECK(!T->sequence || (test_sequence(name) >= last
                           && test_sequence(name) - last < T->block));

    /* bump creates an unknown key present, and keeps meta and presence */
    CHECK_RV(PV->lookup(s, "/c", &st, p), APR_SUCCESS);
    CHECK(st.exists && st.version > 0 && !st.meta);
    CHECK_RV(PV->register_key(s, "/m", "meta", now, &v, p), APR_SUCCESS);
    CHECK_RV(PV->set_exists(s, "/m", v, 0, "meta", now, &v, p), APR_SUCCESS);
    CHECK_RV(PV->bump(s, "/m", now, &v, p), APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/m", &st, p), APR_SUCCESS);
    CHECK(!st.exists && st.version == v && st.meta
          && !strcmp(st.meta, "meta"));
    /* bump goes through a claim without touching it */
    CHECK_RV(PV->claim(s, "/m", v, "held", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->bump(s, "/m", now, &v, p), APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/m", &st, p), APR_SUCCESS);
    CHECK(st.version == v && st.claim_owner
          && !strcmp(st.claim_owner, "held"));
}

static void test_register_set(apr_pool_t *p)
{
    cond_store *s = T->open(p, "register");
    apr_time_t now = apr_time_now();
    apr_time_t t1 = apr_time_from_sec(1700000000);
    apr_int64_t v0 = 0, v1 = 0, v2 = 0;
    cond_state st;

    if (!s) {
        return;
    }
    CHECK_RV(PV->register_key(s, "/g", "Vary: Accept\n", t1, &v0, p),
             APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/g", &st, p), APR_SUCCESS);
    CHECK(st.version == v0 && st.exists && st.mtime == t1 && !st.claim_owner
          && st.meta && !strcmp(st.meta, "Vary: Accept\n"));
    CHECK_RV(PV->register_key(s, "/g", "other", now, &v1, p), APR_EEXIST);
    CHECK_RV(PV->lookup(s, "/g", &st, p), APR_SUCCESS);
    CHECK(st.version == v0 && st.meta && !strcmp(st.meta, "Vary: Accept\n"));
    /* a claimed placeholder exists too */
    CHECK_RV(PV->claim(s, "/p", 0, "o", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->register_key(s, "/p", NULL, now, &v1, p), APR_EEXIST);

    /* set_meta: compare-and-set on the version, version unchanged */
    CHECK_RV(PV->set_meta(s, "/g", v0 + 1000, "stale", p), APR_EAGAIN);
    CHECK_RV(PV->set_meta(s, "/nokey", 0, "x", p), APR_EAGAIN);
    CHECK_RV(PV->set_meta(s, "/g", v0, "Cache-Control: no-cache\n", p),
             APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/g", &st, p), APR_SUCCESS);
    CHECK(st.version == v0 && st.meta
          && !strcmp(st.meta, "Cache-Control: no-cache\n"));
    CHECK_RV(PV->set_meta(s, "/g", v0, NULL, p), APR_SUCCESS);
    CHECK_RV(PV->lookup(s, "/g", &st, p), APR_SUCCESS);
    CHECK(st.meta == NULL);

    /* set_exists: compare-and-set on the version and no claim */
    CHECK_RV(PV->set_exists(s, "/g", v0 + 1000, 0, NULL, now, &v1, p),
             APR_EAGAIN);
    CHECK_RV(PV->set_exists(s, "/nokey", 0, 1, NULL, now, &v1, p), APR_EAGAIN);
    CHECK_RV(PV->claim(s, "/g", v0, "c", LEASE, p), APR_SUCCESS);
    CHECK_RV(PV->set_exists(s, "/g", v0, 0, NULL, now, &v1, p), APR_EAGAIN);
    CHECK_RV(PV->lookup(s, "/g", &st, p), APR_SUCCESS);
    CHECK(st.version == v0 && st.exists);
    CHECK_RV(PV->release(s, "/g", "c", NULL, p), APR_SUCCESS);
    CHECK_RV(PV->set_exists(s, "/g", v0, 0, NULL, now, &v1, p), APR_SUCCESS);
    CHECK(v1 > v0);
    CHECK_RV(PV->lookup(s, "/g", &st, p), APR_SUCCESS);
    CHECK(st.version == v1 && !st.exists
          && st.mtime == apr_time_from_sec(apr_time_sec(now)));
    /* back again, with the 200's metadata */
    CHECK_RV(PV->set_exists(s, "/g", v1, 1, "Expires: x\n", now, &v2, p),
             APR_SUCCESS);
    CHECK(v2 > v1);
    CHECK_RV(PV->lookup(s, "/g", &st, p), APR_SUCCESS);
    CHECK(st.version == v2 && st.exists && st.meta
          && !strcmp(st.meta, "Expires: x\n"));
    /* the old version no longer matches */
    CHECK_RV(PV->set_exists(s, "/g", v1, 0, NULL, now, &v0, p), APR_EAGAIN);
}

typedef struct {
    const char *keys[16];
    int n;
    int stop_after;
} test_list_acc;

static int test_list_cb(void *baton, const char *key, const cond_state *st)
{
    test_list_acc *acc = baton;

    (void)st;
    if (acc->n < 16) {
        acc->keys[acc->n] = key;
    }
    acc->n++;
    return acc->stop_after && acc->n >= acc->stop_after;
}

static int test_list_is(cond_store *s, apr_pool_t *p, const char *prefix,
                        int stop_after, const char *const *want)
{
    test_list_acc acc;
    int i;

    memset(&acc, 0, sizeof(acc));
    acc.stop_after = stop_after;
    if (PV->list(s, prefix, test_list_cb, &acc, p) != APR_SUCCESS) {
        return 0;
    }
    for (i = 0; want[i]; i++) {
        if (i >= acc.n || strcmp(acc.keys[i], want[i])) {
            return 0;
        }
    }
    return i == acc.n;
}

static void test_list(apr_pool_t *p)
{
    static const char *const keys[] = {
        "a%b/1", "a%b/2", "axb/1", "a_b", "aXb", "a%", "a", "b",
        "p\xff", "p\xff\x01", "p\xfe", "q", NULL
    };
    static const char *const pct[] = { "a%b/1", "a%b/2", NULL };
    static const char *const und[] = { "a_b", NULL };
    static const char *const a[] = {
        "a", "a%", "a%b/1", "a%b/2", "aXb", "a_b", "axb/1", NULL
    };
    static const char *const ff[] = { "p\xff", "p\xff\x01", NULL };
    static const char *const p_all[] = {
        "p\xfe", "p\xff", "p\xff\x01", NULL
    };
    static const char *const two[] = { "a", "a%", NULL };
    static const char *const none[] = { NULL };
    cond_store *s = T->open(p, "list");
    apr_time_t now = apr_time_now();
    apr_int64_t v;
    int i, all_n = 0;
    test_list_acc acc;

    if (!s) {
        return;
    }
    for (i = 0; keys[i]; i++) {
        CHECK_RV(PV->register_key(s, keys[i], NULL, now, &v, p), APR_SUCCESS);
    }
    CHECK(test_list_is(s, p, "a%b/", 0, pct));
    CHECK(test_list_is(s, p, "a_", 0, und));
    CHECK(test_list_is(s, p, "a", 0, a));
    CHECK(test_list_is(s, p, "p\xff", 0, ff));
    CHECK(test_list_is(s, p, "p", 0, p_all));
    CHECK(test_list_is(s, p, "a", 2, two));
    CHECK(test_list_is(s, p, "zzz", 0, none));
    CHECK(test_list_is(s, p, "%", 0, none));

    memset(&acc, 0, sizeof(acc));
    CHECK_RV(PV->list(s, "", test_list_cb, &acc, p), APR_SUCCESS);
    while (keys[all_n]) {
        all_n++;
    }
    CHECK(acc.n == all_n);
    for (i = 1; i < acc.n && i < 16; i++) {
        CHECK(strcmp(acc.keys[i - 1], acc.keys[i]) < 0);
    }
}

/* ------------------------------------------------------------------ */
/* Contention                                                           */

#define RACE_KEYS    3
#define RACE_PROCS   8
#define RACE_CYCLES  200
#define RACE_THREADS 8
#define RACE_TCYCLES 100
#define RACE_MAX     (RACE_PROCS * RACE_CYCLES)

typedef struct {
    int commits[RACE_KEYS];
    int backend[RACE_KEYS];         /* written unlocked by the claimer */
    int nrec;
    apr_int64_t version[RACE_MAX];
    int key[RACE_MAX];
    int errors;
    int retries;
    int timeouts;
} test_race;

static const char *const race_keys[RACE_KEYS] = {
    "/race/0", "/race/1", "/race/2"
};

/* Claim at the version the writer read: half the writers by claim()'s
 * compare-and-set, the other half (where the store has it) by
 * claim_checked with a check on that version, like an If-Match - half of
 * those telling the store the version, as the glue does for a single-tag
 * If-Match. */
static apr_status_t test_race_claim(cond_store *s, const char *key,
                                    apr_int64_t version, const char *owner,
                                    int id, apr_pool_t *p)
{
    test_check_baton b = { 0, version, 0 };
    cond_state st;
    int found;
    apr_status_t rv;

    if (!PV->claim_checked || id % 2 == 0) {
        return PV->claim(s, key, version, owner, LEASE, p);
    }
    rv = PV->claim_checked(s, key, id % 4 == 1 ? version : 0, owner, LEASE,
                           test_check_version, &b, &st, &found, p);
    return rv == COND_STORE_DECLINED ? APR_EAGAIN : rv;
}

/* One writer: `cycles` successful read/claim/write/commit rounds. */
static void test_race_worker(cond_store *s, test_race *r, int id,
                             int cycles, apr_pool_t *parent)
{
    apr_pool_t *p;
    unsigned int seed = (unsigned int)id * 7919u + (unsigned int)getpid();
    int done = 0, n = 0;

    apr_pool_create(&p, parent);
    while (done < cycles) {
        int k = (int)(rand_r(&seed) % RACE_KEYS);
        const char *key = race_keys[k];
        const char *owner;
        apr_int64_t v = 0;
        cond_state st;
        apr_status_t rv;
        int b = 0, slot;

        apr_pool_clear(p);
        owner = apr_psprintf(p, "%d:%d:%d", (int)getpid(), id, n++);
        /* A client: read the version and the representation, think, then
         * write what it computed, on condition that nothing changed. */
        rv = PV->lookup(s, key, &st, p);
        if (rv == APR_SUCCESS && !st.claim_owner) {
            b = __sync_fetch_and_add(&r->backend[k], 0);
            if (rand_r(&seed) % 4 == 0) {
                apr_sleep(rand_r(&seed) % 100);
            }
            rv = test_race_claim(s, key, st.version, owner, id, p);
        }
        else if (rv == APR_SUCCESS) {
            rv = APR_EBUSY;
        }
        if (rv == APR_EBUSY || rv == APR_EAGAIN || rv == APR_TIMEUP) {
            __sync_fetch_and_add(rv == APR_TIMEUP ? &r->timeouts
                                                  : &r->retries, 1);
            apr_sleep(rand_r(&seed) % 200);
            continue;
        }
        if (rv != APR_SUCCESS) {
            printf("  worker %d: %s\n", id, test_status_name(rv));
            __sync_fetch_and_add(&r->errors, 1);
            break;
        }
        /* the "backend" stores what the client computed from its read;
         * only the claim's compare-and-set protects it */
        if (rand_r(&seed) % 4 == 0) {
            apr_sleep(rand_r(&seed) % 100);
        }
        r->backend[k] = b + 1;
        rv = PV->commit(s, key, owner, 1, NULL, apr_time_now(), &v, p);
        if (rv != APR_SUCCESS || v <= st.version) {
            printf("  worker %d: commit %s\n", id, test_status_name(rv));
            __sync_fetch_and_add(&r->errors, 1);
            break;
        }
        __sync_fetch_and_add(&r->commits[k], 1);
        slot = __sync_fetch_and_add(&r->nrec, 1);
        if (slot < RACE_MAX) {
            r->version[slot] = v;
            r->key[slot] = k;
        }
        done++;
    }
    apr_pool_destroy(p);
}

/* block: versions the racing instances take from the sequence at once
 * (test_target's block for instances with init, 1 for attached ones) */
static void test_race_verify(cond_store *s, test_race *r, apr_int64_t seq0,
                             const char *name, int total, int block,
                             apr_pool_t *p)
{
    apr_int64_t vmax = 0;
    int k, i, j, dup = 0, sum = 0;

    CHECK(r->errors == 0);
    if (r->timeouts) {
        printf("note: %d lock timeouts under contention (retried)\n",
               r->timeouts);
    }
    for (k = 0; k < RACE_KEYS; k++) {
        apr_int64_t max = 0;
        int nv = 0;
        cond_state st;

        /* no lost update: every commit's backend write survived */
        CHECK(r->backend[k] == r->commits[k]);
        for (i = 0; i < r->nrec && i < RACE_MAX; i++) {
            if (r->key[i] == k) {
                nv++;
                max = r->version[i] > max ? r->version[i] : max;
            }
        }
        /* one new version per commit, and the last one is current */
        CHECK(nv == r->commits[k]);
        CHECK_RV(PV->lookup(s, race_keys[k], &st, p), APR_SUCCESS);
        CHECK(st.version == max && st.claim_owner == NULL);
        sum += r->commits[k];
    }
    CHECK(sum == total && r->nrec == total);
    for (i = 0; i < r->nrec && i < RACE_MAX; i++) {
        vmax = r->version[i] > vmax ? r->version[i] : vmax;
        for (j = i + 1; j < r->nrec && j < RACE_MAX; j++) {
            dup += r->version[i] == r->version[j];
        }
    }
    CHECK(dup == 0);
    /* failed claims and refused commits consumed no versions: one at a
     * time, the sequence is where the commits took it; in blocks, it is
     * past the last version by less than the block in hand */
    if (T->sequence && block == 1) {
        CHECK(test_sequence(name) == seq0 + total);
    }
    else if (T->sequence) {
        CHECK(test_sequence(name) >= vmax
              && test_sequence(name) - vmax < block);
    }
}

static void test_race_processes(apr_pool_t *p)
{
    const char *name = "race";
    cond_store *s = T->open(p, name);
    test_race *r;
    apr_int64_t v, seq0;
    pid_t pids[RACE_PROCS];
    int i, status, ok = 1;

    if (!s) {
        return;
    }
    for (i = 0; i < RACE_KEYS; i++) {
        CHECK_RV(PV->register_key(s, race_keys[i], NULL, apr_time_now(), &v,
                                  p), APR_SUCCESS);
    }
    seq0 = test_sequence(name);
    r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (!CHECK(r != MAP_FAILED)) {
        return;
    }
    memset(r, 0, sizeof(*r));
    fflush(stdout);
    for (i = 0; i < RACE_PROCS; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            /* like an httpd child: own pool, own connections */
            apr_pool_t *cp;
            cond_store *cs;
            apr_status_t rv;

            apr_pool_create(&cp, NULL);
            cs = T->attach(cp, name, &rv);
            if (!cs || rv != APR_SUCCESS) {
                __sync_fetch_and_add(&r->errors, 1);
                _exit(1);
            }
            test_race_worker(cs, r, i, RACE_CYCLES, cp);
            apr_pool_destroy(cp);
            _exit(0);
        }
    }
    for (i = 0; i < RACE_PROCS; i++) {
        ok &= pids[i] > 0 && waitpid(pids[i], &status, 0) == pids[i]
              && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    CHECK(ok);
    printf("# %d processes x %d commits on %d keys: %d retries\n",
           RACE_PROCS, RACE_CYCLES, RACE_KEYS, r->retries);
    /* the children attach: they take versions one at a time */
    test_race_verify(s, r, seq0, name, RACE_PROCS * RACE_CYCLES, 1, p);
    munmap(r, sizeof(*r));
}

typedef struct {
    cond_store *s;
    test_race *r;
    int id;
} test_thread_arg;

static void *APR_THREAD_FUNC test_race_thread(apr_thread_t *t, void *data)
{
    test_thread_arg *a = data;

    test_race_worker(a->s, a->r, a->id, RACE_TCYCLES, NULL);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

/* Threads of one process share one instance, as in the event MPM. */
static void test_race_threads(apr_pool_t *p)
{
    const char *name = "threads";
    cond_store *s = T->open(p, name);
    apr_thread_t *th[RACE_THREADS];
    test_thread_arg args[RACE_THREADS];
    test_race *r;
    apr_int64_t v, seq0;
    apr_status_t trv;
    int i;

    if (!s) {
        return;
    }
    for (i = 0; i < RACE_KEYS; i++) {
        CHECK_RV(PV->register_key(s, race_keys[i], NULL, apr_time_now(), &v,
                                  p), APR_SUCCESS);
    }
    seq0 = test_sequence(name);
    r = apr_pcalloc(p, sizeof(*r));
    for (i = 0; i < RACE_THREADS; i++) {
        args[i].s = s;
        args[i].r = r;
        args[i].id = i;
        CHECK_RV(apr_thread_create(&th[i], NULL, test_race_thread, &args[i],
                                   p), APR_SUCCESS);
    }
    for (i = 0; i < RACE_THREADS; i++) {
        apr_thread_join(&trv, th[i]);
    }
    printf("# %d threads x %d commits on %d keys: %d retries\n",
           RACE_THREADS, RACE_TCYCLES, RACE_KEYS, r->retries);
    test_race_verify(s, r, seq0, name, RACE_THREADS * RACE_TCYCLES,
                     T->block, p);
}

/* ------------------------------------------------------------------ */

const test_case contract_cases[] = {
    { "identity", test_identity },
    { "lookup and claim", test_lookup_claim },
    { "claim_checked", test_claim_checked },
    { "claim_checked at an expected version", test_claim_expected },
    { "claim_checked for a create", test_claim_create },
    { "lease expiry", test_lease_expiry },
    { "commit", test_commit },
    { "related", test_related },
    { "release and break_claim", test_release_break },
    { "renew", test_renew },
    { "versions", test_versions },
    { "register, set_exists, set_meta", test_register_set },
    { "list", test_list },
    { "byte keys", test_byte_keys },
    { "contention: processes", test_race_processes },
    { "contention: threads", test_race_threads },
    { NULL, NULL }
};

static void test_run(const test_case *tc, const char *only, apr_pool_t *root)
{
    for (; tc->name; tc++) {
        apr_pool_t *p;

        if (only && !strstr(tc->name, only)) {
            continue;
        }
        printf("# %s: %s\n", T->name, tc->name);
        fflush(stdout);
        apr_pool_create(&p, root);
        tc->fn(p);
        apr_pool_destroy(p);
    }
}

int test_main(int argc, char **argv, const test_target *t,
              const test_case *own)
{
    char tmpl[] = "/tmp/test_store.XXXXXX";
    const char *only = argc > 1 ? argv[1] : NULL;
    apr_pool_t *root;
    int rc;

    apr_initialize();
    apr_pool_create(&root, NULL);
    test_root = root;
    counts = mmap(NULL, sizeof(*counts), PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (counts == MAP_FAILED || !mkdtemp(tmpl)) {
        perror("test_store setup");
        return 2;
    }
    tmpdir = tmpl;
    T = t;
    test_run(contract_cases, only, root);
    test_run(own, only, root);
    if (!getenv("TEST_STORE_KEEP")) {
        char *cmd = apr_psprintf(root, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) {
            printf("note: could not remove %s\n", tmpdir);
        }
    }
    else {
        printf("# kept %s\n", tmpdir);
    }
    printf("%s: %d passed, %d failed\n", T->name, counts->passed,
           counts->failed);
    rc = counts->failed ? 1 : 0;
    apr_pool_destroy(root);
    apr_terminate();
    return rc;
}
