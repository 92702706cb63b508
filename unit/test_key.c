/*
 * test_key.c - tests for the text of a resource's key (key.c). Prints
 * every failing check and a last line "N passed, M failed"; exits
 * non-zero when anything failed.
 */
#include <stdio.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>

#include "key.h"

static int passed, failed;

#define CHECK_STR(got, want) check_str((got), (want), __LINE__)
#define CHECK(cond) check((cond) != 0, #cond, __LINE__)

static void check(int ok, const char *what, int line)
{
    if (ok) {
        passed++;
        return;
    }
    failed++;
    printf("FAIL line %d: %s\n", line, what);
}

static void check_str(const char *got, const char *want, int line)
{
    int ok = got && !strcmp(got, want);

    check(ok, want, line);
    if (!ok) {
        printf("  got: %s\n", got ? got : "(null)");
    }
}

int main(void)
{
    apr_pool_t *p;
    const char *site;

    apr_initialize();
    apr_pool_create(&p, NULL);

    /* sites: lowercase host, port, a tell for twins */
    CHECK_STR(cond_key_site(p, "Example.COM", 8080, NULL),
              "example.com:8080");
    CHECK_STR(cond_key_site(p, "localhost", 80, "site2.test"),
              "localhost:80~site2.test");
    site = cond_key_site(p, "localhost", 80, NULL);

    /* the default key is as it always was: existing stores keep theirs */
    CHECK_STR(cond_key_make(p, site, "/api/docs/a?", NULL),
              "localhost:80/api/docs/a?");

    /* the query form: the two URLs the naive form let collide */
    CHECK_STR(cond_key_make(p, site, "/qapi/docs/eN?", "doc=b"),
              "localhost:80/qapi/docs/eN%3F?doc=b");
    CHECK_STR(cond_key_make(p, site, "/qapi/docs/eN", "?doc=b"),
              "localhost:80/qapi/docs/eN??doc=b");
    /* a literal percent sign is escaped too, so escapes cannot collide */
    CHECK_STR(cond_key_make(p, site, "/a%3F", ""), "localhost:80/a%253F?");
    CHECK(strcmp(cond_key_make(p, site, "/a%3F", ""),
                 cond_key_make(p, site, "/a?", "")));
    /* controls, space, '#' and non-ASCII bytes */
    CHECK_STR(cond_key_make(p, site, "/a b#c\x01\xc3\xa9", "x"),
              "localhost:80/a%20b%23c%01%C3%A9?x");
    /* no query and an empty one are the same resource */
    CHECK_STR(cond_key_make(p, site, "/x", ""), "localhost:80/x?");

    printf("%d passed, %d failed\n", passed, failed);
    apr_pool_destroy(p);
    apr_terminate();
    return failed ? 1 : 0;
}
