/*
 * fuzz_date.c - cond_parse_date (precond.c), the HTTP-date parser behind
 * If-Modified-Since and If-Unmodified-Since.
 *
 * Invariants beyond "no crash":
 *  - a date is whole seconds after the epoch, or 0 (invalid);
 *  - a valid date printed as an IMF-fixdate parses back to itself, with or
 *    without OWS around it;
 *  - a valid date with a byte appended that is not OWS is invalid (nothing
 *    may trail the date: RFC 9110 13.1.3 says a list of dates is invalid).
 */
#include <apr_general.h>
#include <apr_date.h>
#include <apr_lib.h>
#include <apr_time.h>

#include "fuzz.h"
#include "precond.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *parts[1], imf[APR_RFC822_DATE_LEN], buf[APR_RFC822_DATE_LEN + 8];
    char *in = fuzz_split(data, size, parts, 1);
    apr_time_t t = cond_parse_date(parts[0]);

    FUZZ_CHECK(t >= 0);
    if (t) {
        size_t n = strlen(parts[0]);

        FUZZ_CHECK(t % APR_USEC_PER_SEC == 0);
        FUZZ_CHECK(apr_rfc822_date(imf, t) == APR_SUCCESS);
        FUZZ_CHECK(cond_parse_date(imf) == t);
        snprintf(buf, sizeof(buf), " \t%s\t ", imf);
        FUZZ_CHECK(cond_parse_date(buf) == t);
        snprintf(buf, sizeof(buf), "%s,", imf);
        FUZZ_CHECK(cond_parse_date(buf) == 0);
        /* what was accepted, with junk after it, is not */
        if (n < 200) {
            char junk[208];
            snprintf(junk, sizeof(junk), "%sX", parts[0]);
            FUZZ_CHECK(cond_parse_date(junk) == 0);
        }
    }
    free(in);
    return 0;
}
