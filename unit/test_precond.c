/*
 * test_precond.c - table-driven tests for the RFC 9110 evaluator.
 *
 * Each table row is one request as a client could send it and the verdict
 * the RFC (and the product contract) demands. Prints every failing row and
 * a last line "N passed, M failed"; exits non-zero when anything failed.
 */

#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include <apr_general.h>

#include "precond.h"

static int passed, failed;

static void check(int ok, const char *table, const char *name,
                  const char *fmt_got, long long got, long long want)
{
    if (ok) {
        passed++;
        return;
    }
    failed++;
    printf("FAIL %s: %s: got %lld, want %lld%s%s\n", table, name, got, want,
           fmt_got ? " " : "", fmt_got ? fmt_got : "");
}

/* Sun, 06 Nov 1994 08:49:37 GMT, the RFC's own example. */
#define T           784111777LL
#define SEC(s)      apr_time_from_sec(s)
#define NOW         SEC(T + 3600)

#define D_IMF       "Sun, 06 Nov 1994 08:49:37 GMT"
#define D_850       "Sunday, 06-Nov-94 08:49:37 GMT"
#define D_ASC       "Sun Nov  6 08:49:37 1994"
#define D_EARLY     "Sun, 06 Nov 1994 08:49:36 GMT"      /* T - 1 */
#define D_EARLY850  "Sunday, 06-Nov-94 08:49:36 GMT"
#define D_EARLYASC  "Sun Nov  6 08:49:36 1994"
#define D_LATE      "Sun, 06 Nov 1994 08:49:38 GMT"      /* T + 1 */
#define D_NOW       "Sun, 06 Nov 1994 09:49:37 GMT"      /* NOW */
#define D_FUTURE    "Sun, 06 Nov 1994 09:49:38 GMT"      /* NOW + 1 s */

#define ETAG        "\"5f2a9c01d3e4b6a7-1c\""
#define ETAG_W      "W/\"5f2a9c01d3e4b6a7-1c\""
#define ETAG_GZ     "\"5f2a9c01d3e4b6a7-1c-gzip\""
#define ETAG_BR     "\"5f2a9c01d3e4b6a7-1c-br\""
#define OTHER       "\"5f2a9c01d3e4b6a7-1b\""

#define RD  COND_METHOD_READ
#define WR  COND_METHOD_WRITE
#define PUT COND_METHOD_PUT

#define GO      COND_PROCEED
#define N304    COND_NOT_MODIFIED
#define F412    COND_FAILED

#define W_NONE      COND_WHY_NONE
#define W_MATCH     COND_WHY_MATCH
#define W_NM        COND_WHY_NONE_MATCH
#define W_NMS       COND_WHY_NOT_MODIFIED_SINCE
#define W_STALE     COND_WHY_STALE
#define W_WEAK      COND_WHY_WEAK
#define W_ABSENT    COND_WHY_ABSENT
#define W_MAL       COND_WHY_MALFORMED
#define W_MOD       COND_WHY_MODIFIED_SINCE
#define W_EXISTS    COND_WHY_EXISTS

/* ------------------------------------------------------------------ */
/* cond_evaluate                                                        */

typedef struct {
    const char *name;
    cond_method method;
    const char *im, *inm, *ims, *ius;   /* header values, NULL = absent */
    int exists;
    const char *etag;
    apr_time_t mtime;
    cond_verdict verdict;
    cond_why why;
} eval_case;

/* The usual resource: present, tagged ETAG, modified at T. */
#define HERE    1, ETAG, SEC(T)
#define GONE    0, ETAG, SEC(T)

static const eval_case eval_cases[] = {
    /* --- nothing to evaluate ------------------------------------- */
    { "no headers read", RD, NULL, NULL, NULL, NULL, HERE, GO, W_NONE },
    { "no headers write", WR, NULL, NULL, NULL, NULL, HERE, GO, W_NONE },
    { "no headers absent", PUT, NULL, NULL, NULL, NULL, GONE, GO, W_NONE },

    /* --- If-Match ------------------------------------------------- */
    { "IM exact", WR, ETAG, NULL, NULL, NULL, HERE, GO, W_MATCH },
    { "IM exact PUT", PUT, ETAG, NULL, NULL, NULL, HERE, GO, W_MATCH },
    { "IM exact read", RD, ETAG, NULL, NULL, NULL, HERE, GO, W_MATCH },
    { "IM stale", WR, OTHER, NULL, NULL, NULL, HERE, F412, W_STALE },
    { "IM stale read", RD, OTHER, NULL, NULL, NULL, HERE, F412, W_STALE },
    { "IM stale PUT", PUT, OTHER, NULL, NULL, NULL, HERE, F412, W_STALE },
    { "IM list middle", WR, "\"a\", " ETAG ", \"b\"", NULL, NULL, NULL,
      HERE, GO, W_MATCH },
    { "IM list last", WR, "\"a\",\"b\"," ETAG, NULL, NULL, NULL,
      HERE, GO, W_MATCH },
    { "IM list none", WR, "\"a\", \"b\", " OTHER, NULL, NULL, NULL,
      HERE, F412, W_STALE },
    { "IM OWS", WR, " \t\"a\" \t,\t " ETAG " \t", NULL, NULL, NULL,
      HERE, GO, W_MATCH },
    { "IM empty elements", WR, ", ,," ETAG ",, ,", NULL, NULL, NULL,
      HERE, GO, W_MATCH },
    { "IM weak equal", WR, ETAG_W, NULL, NULL, NULL, HERE, F412, W_WEAK },
    { "IM weak equal read", RD, ETAG_W, NULL, NULL, NULL,
      HERE, F412, W_WEAK },
    { "IM weak other", WR, "W/" OTHER, NULL, NULL, NULL,
      HERE, F412, W_STALE },
    { "IM weak equal + stale", WR, ETAG_W ", " OTHER, NULL, NULL, NULL,
      HERE, F412, W_WEAK },
    { "IM stale + weak equal", WR, OTHER ", " ETAG_W, NULL, NULL, NULL,
      HERE, F412, W_WEAK },
    { "IM weak equal + strong", WR, ETAG_W ", " ETAG, NULL, NULL, NULL,
      HERE, GO, W_MATCH },
    { "IM star", WR, "*", NULL, NULL, NULL, HERE, GO, W_MATCH },
    { "IM star OWS", WR, "  * ", NULL, NULL, NULL, HERE, GO, W_MATCH },
    { "IM star twice", WR, "*, *", NULL, NULL, NULL, HERE, GO, W_MATCH },
    { "IM star absent", WR, "*", NULL, NULL, NULL, GONE, F412, W_ABSENT },
    { "IM star untagged", WR, "*", NULL, NULL, NULL, 1, NULL, SEC(T),
      GO, W_MATCH },
    { "IM tag absent", WR, ETAG, NULL, NULL, NULL, GONE, F412, W_ABSENT },
    { "IM tag absent untagged", PUT, ETAG, NULL, NULL, NULL, 0, NULL, 0,
      F412, W_ABSENT },
    { "IM tag untagged", WR, ETAG, NULL, NULL, NULL, 1, NULL, SEC(T),
      F412, W_STALE },
    { "IM empty value", WR, "", NULL, NULL, NULL, HERE, F412, W_STALE },
    { "IM only commas", WR, " , ,", NULL, NULL, NULL, HERE, F412, W_STALE },
    { "IM empty absent", WR, "", NULL, NULL, NULL, GONE, F412, W_ABSENT },
    { "IM case-sensitive", WR, "\"5F2A9C01D3E4B6A7-1C\"", NULL, NULL, NULL,
      HERE, F412, W_STALE },
    { "IM prefix only", WR, "\"5f2a9c01d3e4b6a7-1\"", NULL, NULL, NULL,
      HERE, F412, W_STALE },
    { "IM longer", WR, "\"5f2a9c01d3e4b6a7-1c0\"", NULL, NULL, NULL,
      HERE, F412, W_STALE },
    { "IM gzip not strong", WR, ETAG_GZ, NULL, NULL, NULL,
      HERE, F412, W_STALE },
    { "IM br not strong", WR, ETAG_BR, NULL, NULL, NULL,
      HERE, F412, W_STALE },
    { "IM quoted comma", WR, "\"a,b\", " ETAG, NULL, NULL, NULL,
      HERE, GO, W_MATCH },
    { "IM empty opaque", WR, "\"\"", NULL, NULL, NULL, HERE, F412, W_STALE },
    { "IM empty opaque equal", WR, "\"\"", NULL, NULL, NULL, 1, "\"\"", 0,
      GO, W_MATCH },
    { "IM obs-text", WR, "\"\xc3\xa9t\xc3\xa9\"", NULL, NULL, NULL,
      HERE, F412, W_STALE },
    { "IM obs-text equal", WR, "\"\xc3\xa9\"", NULL, NULL, NULL,
      1, "\"\xc3\xa9\"", 0, GO, W_MATCH },
    { "IM current weak", WR, "\"x\"", NULL, NULL, NULL, 1, "W/\"x\"", 0,
      F412, W_WEAK },
    { "IM current unquoted", WR, "\"x\"", NULL, NULL, NULL, 1, "x", 0,
      F412, W_STALE },
    { "IM current junk star", WR, "*", NULL, NULL, NULL, 1, "x", 0,
      GO, W_MATCH },
    { "IM current trailing junk", WR, "\"x\"", NULL, NULL, NULL,
      1, "\"x\" ", 0, F412, W_STALE },

    /* If-Match that cannot be parsed fails closed. */
    { "IM unquoted", WR, "5f2a9c01d3e4b6a7-1c", NULL, NULL, NULL,
      HERE, F412, W_MAL },
    { "IM unquoted read", RD, "abc", NULL, NULL, NULL, HERE, F412, W_MAL },
    { "IM junk after tag", WR, ETAG " junk", NULL, NULL, NULL,
      HERE, F412, W_MAL },
    { "IM match then junk", WR, ETAG ", junk", NULL, NULL, NULL,
      HERE, F412, W_MAL },
    { "IM junk then match", WR, "junk, " ETAG, NULL, NULL, NULL,
      HERE, F412, W_MAL },
    { "IM unterminated", WR, "\"abc", NULL, NULL, NULL, HERE, F412, W_MAL },
    { "IM unterminated match", WR, "\"5f2a9c01d3e4b6a7-1c", NULL, NULL,
      NULL, HERE, F412, W_MAL },
    { "IM lone quote", WR, "\"", NULL, NULL, NULL, HERE, F412, W_MAL },
    { "IM missing comma", WR, "\"a\" " ETAG, NULL, NULL, NULL,
      HERE, F412, W_MAL },
    { "IM no space no comma", WR, "\"a\"" ETAG, NULL, NULL, NULL,
      HERE, F412, W_MAL },
    { "IM star and tag", WR, "*, " ETAG, NULL, NULL, NULL,
      HERE, F412, W_MAL },
    { "IM tag and star", WR, ETAG ", *", NULL, NULL, NULL,
      HERE, F412, W_MAL },
    { "IM star junk", WR, "*x", NULL, NULL, NULL, HERE, F412, W_MAL },
    { "IM lowercase w/", WR, "w/" ETAG, NULL, NULL, NULL,
      HERE, F412, W_MAL },
    { "IM W/ space", WR, "W/ " ETAG, NULL, NULL, NULL, HERE, F412, W_MAL },
    { "IM W without slash", WR, "W" ETAG, NULL, NULL, NULL,
      HERE, F412, W_MAL },
    { "IM W/ alone", WR, "W/", NULL, NULL, NULL, HERE, F412, W_MAL },
    { "IM space inside", WR, "\"a b\"", NULL, NULL, NULL,
      HERE, F412, W_MAL },
    { "IM tab inside", WR, "\"a\tb\"", NULL, NULL, NULL,
      HERE, F412, W_MAL },
    { "IM control inside", WR, "\"a\x01\"", NULL, NULL, NULL,
      HERE, F412, W_MAL },
    { "IM DEL inside", WR, "\"a\x7f\"", NULL, NULL, NULL,
      HERE, F412, W_MAL },
    { "IM semicolon sep", WR, "\"a\"; " ETAG, NULL, NULL, NULL,
      HERE, F412, W_MAL },
    { "IM malformed absent", WR, "junk", NULL, NULL, NULL,
      GONE, F412, W_MAL },
    { "IM single quotes", WR, "'5f2a9c01d3e4b6a7-1c'", NULL, NULL, NULL,
      HERE, F412, W_MAL },

    /* --- If-Unmodified-Since (no If-Match) ------------------------ */
    { "IUS equal", WR, NULL, NULL, NULL, D_IMF, HERE, GO, W_MATCH },
    { "IUS later", WR, NULL, NULL, NULL, D_LATE, HERE, GO, W_MATCH },
    { "IUS future", WR, NULL, NULL, NULL, D_FUTURE, HERE, GO, W_MATCH },
    { "IUS earlier", WR, NULL, NULL, NULL, D_EARLY, HERE, F412, W_MOD },
    { "IUS earlier PUT", PUT, NULL, NULL, NULL, D_EARLY, HERE, F412, W_MOD },
    { "IUS earlier read", RD, NULL, NULL, NULL, D_EARLY, HERE, F412, W_MOD },
    { "IUS earlier rfc850", WR, NULL, NULL, NULL, D_EARLY850,
      HERE, F412, W_MOD },
    { "IUS earlier asctime", WR, NULL, NULL, NULL, D_EARLYASC,
      HERE, F412, W_MOD },
    { "IUS equal rfc850", WR, NULL, NULL, NULL, D_850, HERE, GO, W_MATCH },
    { "IUS equal asctime", WR, NULL, NULL, NULL, D_ASC, HERE, GO, W_MATCH },
    { "IUS sub-second mtime", WR, NULL, NULL, NULL, D_IMF,
      1, ETAG, SEC(T) + 999999, GO, W_MATCH },
    { "IUS a second later mtime", WR, NULL, NULL, NULL, D_IMF,
      1, ETAG, SEC(T + 1), F412, W_MOD },
    { "IUS invalid", WR, NULL, NULL, NULL, "yesterday", HERE, GO, W_NONE },
    { "IUS empty", WR, NULL, NULL, NULL, "", HERE, GO, W_NONE },
    { "IUS other zone", WR, NULL, NULL, NULL,
      "Sun, 06 Nov 1994 08:49:36 PST", HERE, GO, W_NONE },
    { "IUS trailing junk", WR, NULL, NULL, NULL, D_EARLY "x",
      HERE, GO, W_NONE },
    { "IUS two dates", WR, NULL, NULL, NULL, D_EARLY ", " D_EARLY,
      HERE, GO, W_NONE },
    { "IUS absent", WR, NULL, NULL, NULL, D_EARLY, GONE, GO, W_NONE },
    { "IUS no mtime", WR, NULL, NULL, NULL, D_EARLY, 1, ETAG, 0,
      GO, W_NONE },
    { "IUS before 1970", WR, NULL, NULL, NULL,
      "Sat, 01 Jan 1966 00:00:00 GMT", HERE, GO, W_NONE },

    /* --- If-None-Match, reads ------------------------------------- */
    { "INM exact", RD, NULL, ETAG, NULL, NULL, HERE, N304, W_NM },
    { "INM weak", RD, NULL, ETAG_W, NULL, NULL, HERE, N304, W_NM },
    { "INM stale", RD, NULL, OTHER, NULL, NULL, HERE, GO, W_MATCH },
    { "INM weak stale", RD, NULL, "W/" OTHER, NULL, NULL, HERE, GO, W_MATCH },
    { "INM list", RD, NULL, OTHER ", " ETAG, NULL, NULL, HERE, N304, W_NM },
    { "INM list weak", RD, NULL, OTHER ",W/\"x\"," ETAG_W, NULL, NULL,
      HERE, N304, W_NM },
    { "INM OWS empties", RD, NULL, " , \t," ETAG " ,", NULL, NULL,
      HERE, N304, W_NM },
    { "INM star", RD, NULL, "*", NULL, NULL, HERE, N304, W_NM },
    { "INM star absent", RD, NULL, "*", NULL, NULL, GONE, GO, W_MATCH },
    { "INM tag absent", RD, NULL, ETAG, NULL, NULL, GONE, GO, W_MATCH },
    { "INM star untagged", RD, NULL, "*", NULL, NULL, 1, NULL, 0,
      N304, W_NM },
    { "INM tag untagged", RD, NULL, ETAG, NULL, NULL, 1, NULL, SEC(T),
      GO, W_MATCH },
    { "INM current weak", RD, NULL, "\"x\"", NULL, NULL, 1, "W/\"x\"", 0,
      N304, W_NM },
    { "INM case-sensitive", RD, NULL, "\"5F2A9C01D3E4B6A7-1C\"", NULL, NULL,
      HERE, GO, W_MATCH },
    { "INM empty", RD, NULL, "", NULL, NULL, HERE, GO, W_MATCH },
    { "INM quoted comma", RD, NULL, "\"a,b\"," ETAG, NULL, NULL,
      HERE, N304, W_NM },

    /* a coding suffix names another representation (the one mod_deflate
     * or mod_brotli made): a read's 304 is only for its own tag */
    { "INM gzip", RD, NULL, ETAG_GZ, NULL, NULL, HERE, GO, W_MATCH },
    { "INM br", RD, NULL, ETAG_BR, NULL, NULL, HERE, GO, W_MATCH },
    { "INM weak gzip", RD, NULL, "W/" ETAG_GZ, NULL, NULL,
      HERE, GO, W_MATCH },
    { "INM gzip is current", RD, NULL, ETAG_GZ, NULL, NULL, 1, ETAG_GZ,
      SEC(T), N304, W_NM },
    { "INM plain on gzip", RD, NULL, ETAG, NULL, NULL, 1, ETAG_GZ,
      SEC(T), GO, W_MATCH },
    { "INM weak br in list", RD, NULL, OTHER ", W/" ETAG_BR, NULL, NULL,
      1, ETAG_BR, SEC(T), N304, W_NM },
    { "INM gzip twice", RD, NULL, "\"5f2a9c01d3e4b6a7-1c-gzip-gzip\"",
      NULL, NULL, 1, ETAG_GZ, SEC(T), GO, W_MATCH },
    { "INM gzip absent", RD, NULL, ETAG_GZ, NULL, NULL, 0, ETAG_GZ, SEC(T),
      GO, W_MATCH },

    /* a malformed element never matches, the others still can */
    { "INM junk then match", RD, NULL, "junk, " ETAG, NULL, NULL,
      HERE, N304, W_NM },
    { "INM match then junk", RD, NULL, ETAG ", junk", NULL, NULL,
      HERE, N304, W_NM },
    { "INM only junk", RD, NULL, "junk", NULL, NULL, HERE, GO, W_MATCH },
    { "INM unquoted current", RD, NULL, "5f2a9c01d3e4b6a7-1c", NULL, NULL,
      HERE, GO, W_MATCH },
    { "INM unterminated current", RD, NULL, "\"5f2a9c01d3e4b6a7-1c", NULL,
      NULL, HERE, GO, W_MATCH },
    { "INM unterminated then match", RD, NULL, "\"abc, " ETAG, NULL, NULL,
      HERE, N304, W_NM },
    { "INM missing comma", RD, NULL, "\"a\" " ETAG, NULL, NULL,
      HERE, GO, W_MATCH },
    { "INM lowercase w/", RD, NULL, "w/" ETAG, NULL, NULL,
      HERE, GO, W_MATCH },
    { "INM W/ space", RD, NULL, "W/ " ETAG, NULL, NULL, HERE, GO, W_MATCH },
    { "INM tag with trailing junk", RD, NULL, ETAG "x, " OTHER, NULL, NULL,
      HERE, GO, W_MATCH },
    { "INM star and match", RD, NULL, "*, " ETAG, NULL, NULL,
      HERE, N304, W_NM },
    { "INM star and stale", RD, NULL, "*, " OTHER, NULL, NULL,
      HERE, GO, W_MATCH },
    { "INM control then match", RD, NULL, "\"\x01\", " ETAG, NULL, NULL,
      HERE, N304, W_NM },

    /* --- If-None-Match, writes ------------------------------------ */
    { "INM star PUT", PUT, NULL, "*", NULL, NULL, HERE, F412, W_EXISTS },
    { "INM star write", WR, NULL, "*", NULL, NULL, HERE, F412, W_EXISTS },
    { "INM star twice PUT", PUT, NULL, "*, *", NULL, NULL,
      HERE, F412, W_EXISTS },
    { "INM star PUT absent", PUT, NULL, "*", NULL, NULL, GONE, GO, W_MATCH },
    { "INM star PUT never seen", PUT, NULL, "*", NULL, NULL, 0, NULL, 0,
      GO, W_MATCH },
    { "INM star PUT untagged", PUT, NULL, "*", NULL, NULL, 1, NULL, 0,
      F412, W_EXISTS },
    { "INM tag write", WR, NULL, ETAG, NULL, NULL, HERE, F412, W_NM },
    { "INM tag PUT", PUT, NULL, ETAG, NULL, NULL, HERE, F412, W_NM },
    { "INM weak tag PUT", PUT, NULL, ETAG_W, NULL, NULL, HERE, F412, W_NM },
    { "INM stale write", WR, NULL, OTHER, NULL, NULL, HERE, GO, W_MATCH },
    { "INM tag write absent", WR, NULL, ETAG, NULL, NULL, GONE, GO, W_MATCH },
    { "INM junk PUT", PUT, NULL, "junk", NULL, NULL, HERE, GO, W_MATCH },

    /* --- If-Modified-Since (reads, no If-None-Match) -------------- */
    { "IMS equal", RD, NULL, NULL, D_IMF, NULL, HERE, N304, W_NMS },
    { "IMS equal rfc850", RD, NULL, NULL, D_850, NULL, HERE, N304, W_NMS },
    { "IMS equal asctime", RD, NULL, NULL, D_ASC, NULL, HERE, N304, W_NMS },
    { "IMS later", RD, NULL, NULL, D_LATE, NULL, HERE, N304, W_NMS },
    { "IMS now", RD, NULL, NULL, D_NOW, NULL, HERE, N304, W_NMS },
    { "IMS earlier", RD, NULL, NULL, D_EARLY, NULL, HERE, GO, W_MATCH },
    { "IMS earlier rfc850", RD, NULL, NULL, D_EARLY850, NULL,
      HERE, GO, W_MATCH },
    { "IMS earlier asctime", RD, NULL, NULL, D_EARLYASC, NULL,
      HERE, GO, W_MATCH },
    { "IMS future", RD, NULL, NULL, D_FUTURE, NULL, HERE, GO, W_NONE },
    { "IMS sub-second mtime", RD, NULL, NULL, D_IMF, NULL,
      1, ETAG, SEC(T) + 999999, N304, W_NMS },
    { "IMS a second later mtime", RD, NULL, NULL, D_IMF, NULL,
      1, ETAG, SEC(T + 1), GO, W_MATCH },
    { "IMS invalid", RD, NULL, NULL, "yesterday", NULL, HERE, GO, W_NONE },
    { "IMS other zone", RD, NULL, NULL, "Sun, 06 Nov 1994 08:49:37 PST",
      NULL, HERE, GO, W_NONE },
    { "IMS two dates", RD, NULL, NULL, D_IMF ", " D_IMF, NULL,
      HERE, GO, W_NONE },
    { "IMS trailing junk", RD, NULL, NULL, D_IMF " x", NULL,
      HERE, GO, W_NONE },
    { "IMS OWS around", RD, NULL, NULL, " \t" D_IMF "\t ", NULL,
      HERE, N304, W_NMS },
    { "IMS absent", RD, NULL, NULL, D_IMF, NULL, GONE, GO, W_NONE },
    { "IMS no mtime", RD, NULL, NULL, D_IMF, NULL, 1, ETAG, 0, GO, W_NONE },
    { "IMS untagged", RD, NULL, NULL, D_IMF, NULL, 1, NULL, SEC(T),
      N304, W_NMS },
    { "IMS write ignored", WR, NULL, NULL, D_IMF, NULL, HERE, GO, W_NONE },
    { "IMS PUT ignored", PUT, NULL, NULL, D_LATE, NULL, HERE, GO, W_NONE },

    /* --- order of evaluation (13.2.2) and combinations ------------ */
    { "IM match hides IUS", WR, ETAG, NULL, NULL, D_EARLY,
      HERE, GO, W_MATCH },
    { "IM match hides bad IUS", WR, ETAG, NULL, NULL, "junk",
      HERE, GO, W_MATCH },
    { "IM stale with good IUS", WR, OTHER, NULL, NULL, D_LATE,
      HERE, F412, W_STALE },
    { "IM malformed with IUS", WR, "junk", NULL, NULL, D_LATE,
      HERE, F412, W_MAL },
    { "IM star hides IUS", PUT, "*", NULL, NULL, D_EARLY,
      HERE, GO, W_MATCH },
    { "IM match then INM match read", RD, ETAG, ETAG, NULL, NULL,
      HERE, N304, W_NM },
    { "IM match then INM match write", WR, ETAG, ETAG, NULL, NULL,
      HERE, F412, W_NM },
    { "IM star then INM star PUT", PUT, "*", "*", NULL, NULL,
      HERE, F412, W_EXISTS },
    { "IM stale before INM read", RD, OTHER, ETAG, NULL, NULL,
      HERE, F412, W_STALE },
    { "IM absent before INM star", PUT, ETAG, "*", NULL, NULL,
      GONE, F412, W_ABSENT },
    { "IM match then INM stale", WR, ETAG, OTHER, NULL, NULL,
      HERE, GO, W_MATCH },
    { "IUS fails before INM", RD, NULL, ETAG, NULL, D_EARLY,
      HERE, F412, W_MOD },
    { "IUS holds then INM star PUT", PUT, NULL, "*", NULL, D_IMF,
      HERE, F412, W_EXISTS },
    { "IUS holds then INM 304", RD, NULL, ETAG, NULL, D_LATE,
      HERE, N304, W_NM },
    { "IUS bad then INM stale", WR, NULL, OTHER, NULL, "junk",
      HERE, GO, W_MATCH },
    { "INM stale hides IMS", RD, NULL, OTHER, D_IMF, NULL,
      HERE, GO, W_MATCH },
    { "INM junk hides IMS", RD, NULL, "junk", D_IMF, NULL,
      HERE, GO, W_MATCH },
    { "INM empty hides IMS", RD, NULL, "", D_LATE, NULL,
      HERE, GO, W_MATCH },
    { "INM absent hides IMS", RD, NULL, "*", D_IMF, NULL,
      GONE, GO, W_MATCH },
    { "INM match with IMS earlier", RD, NULL, ETAG, D_EARLY, NULL,
      HERE, N304, W_NM },
    { "IM match then IMS 304", RD, ETAG, NULL, D_IMF, NULL,
      HERE, N304, W_NMS },
    { "IM match then IMS modified", RD, ETAG, NULL, D_EARLY, NULL,
      HERE, GO, W_MATCH },
    { "IUS holds then IMS 304", RD, NULL, NULL, D_IMF, D_IMF,
      HERE, N304, W_NMS },
    { "IUS fails before IMS", RD, NULL, NULL, D_IMF, D_EARLY,
      HERE, F412, W_MOD },
    { "all four read", RD, ETAG, OTHER, D_IMF, D_EARLY, HERE, GO, W_MATCH },
    { "all four write", WR, ETAG, OTHER, D_IMF, D_EARLY,
      HERE, GO, W_MATCH },
    { "IM match write ignores IMS", WR, ETAG, NULL, D_IMF, NULL,
      HERE, GO, W_MATCH },
    { "IM weak before INM star", PUT, ETAG_W, "*", NULL, NULL,
      HERE, F412, W_WEAK },
};

static const char *verdict_str(cond_verdict v)
{
    return v == COND_PROCEED ? "proceed" : v == COND_NOT_MODIFIED ? "304"
           : v == COND_FAILED ? "412" : "?";
}

static void test_evaluate(void)
{
    size_t i;
    char buf[128];

    for (i = 0; i < sizeof(eval_cases) / sizeof(eval_cases[0]); i++) {
        const eval_case *c = &eval_cases[i];
        cond_request req = { c->method, c->im, c->inm, c->ims, c->ius };
        cond_resource res = { c->exists, c->etag, c->mtime, NULL };
        cond_why why = (cond_why)-1;
        cond_verdict v = cond_evaluate(&req, &res, NOW, &why);
        int ok = v == c->verdict && why == c->why;

        snprintf(buf, sizeof(buf), "(%s/%s, want %s/%s)", verdict_str(v),
                 cond_why_str(why), verdict_str(c->verdict),
                 cond_why_str(c->why));
        check(ok, "evaluate", c->name, buf, v, c->verdict);
        /* 'why' is optional and must not change the verdict */
        check(cond_evaluate(&req, &res, NOW, NULL) == v, "evaluate",
              c->name, "(why NULL)", 0, 0);
    }
}

/* ------------------------------------------------------------------ */
/* One version, many representations: the version tag                   */

#define VTAG    "\"5f2a9c01d3e4b6a7-1c\""
#define VAR     "\"5f2a9c01d3e4b6a7-1c-0123456789abcdef\""
#define VAR_GZ  "\"5f2a9c01d3e4b6a7-1c-0123456789abcdef-gzip\""
#define VAR2    "\"5f2a9c01d3e4b6a7-1c-fedcba9876543210\""

typedef struct {
    const char *name;
    cond_method method;
    const char *im, *inm;
    const char *etag;         /* the representation's own tag */
    cond_verdict verdict;
    cond_why why;
} family_case;

static const family_case family_cases[] = {
    /* writes take any tag of the current version */
    { "IM version tag", WR, VTAG, NULL, NULL, GO, W_MATCH },
    { "IM variant", WR, VAR, NULL, NULL, GO, W_MATCH },
    { "IM variant gzip", PUT, VAR_GZ, NULL, NULL, GO, W_MATCH },
    { "IM version gzip", WR, ETAG_GZ, NULL, NULL, GO, W_MATCH },
    { "IM version br", WR, ETAG_BR, NULL, NULL, GO, W_MATCH },
    { "IM version gunzip", WR, "\"5f2a9c01d3e4b6a7-1c-gunzip\"", NULL,
      NULL, GO, W_MATCH },
    { "IM gzip in list", WR, OTHER ", " ETAG_GZ, NULL, NULL, GO, W_MATCH },
    { "IM other variant", WR, VAR2, NULL, VAR, GO, W_MATCH },
    /* ... and nothing else */
    { "IM stale gzip", WR, "\"5f2a9c01d3e4b6a7-1b-gzip\"", NULL, NULL,
      F412, W_STALE },
    { "IM stale variant", WR, "\"5f2a9c01d3e4b6a7-1b-0123456789abcdef\"",
      NULL, NULL, F412, W_STALE },
    { "IM weak gzip", WR, "W/" ETAG_GZ, NULL, NULL, F412, W_STALE },
    { "IM gzip twice", WR, "\"5f2a9c01d3e4b6a7-1c-gzip-gzip\"", NULL, NULL,
      F412, W_STALE },
    { "IM unknown coding", WR, "\"5f2a9c01d3e4b6a7-1c-deflate\"", NULL,
      NULL, F412, W_STALE },
    { "IM uppercase coding", WR, "\"5f2a9c01d3e4b6a7-1c-GZIP\"", NULL,
      NULL, F412, W_STALE },
    { "IM short hash", WR, "\"5f2a9c01d3e4b6a7-1c-0123456789abcde\"", NULL,
      NULL, F412, W_STALE },
    { "IM uppercase hash", WR, "\"5f2a9c01d3e4b6a7-1c-0123456789ABCDEF\"",
      NULL, NULL, F412, W_STALE },
    { "IM longer version", WR, "\"5f2a9c01d3e4b6a7-1c0\"", NULL, NULL,
      F412, W_STALE },
    { "IM version prefix", WR, "\"5f2a9c01d3e4b6a7-1\"", NULL, NULL,
      F412, W_STALE },
    { "IM suffix outside", WR, VTAG "-gzip", NULL, NULL, F412, W_MAL },
    /* a write's If-None-Match fails on any representation of it */
    { "INM gzip write", WR, NULL, ETAG_GZ, NULL, F412, W_NM },
    { "INM weak variant PUT", PUT, NULL, "W/" VAR, NULL, F412, W_NM },
    { "INM stale gzip write", WR, NULL, "\"5f2a9c01d3e4b6a7-1b-gzip\"", NULL,
      GO, W_MATCH },
    /* a read's 304 only for its own representation */
    { "INM read version tag", RD, NULL, VTAG, VAR, GO, W_MATCH },
    { "INM read other variant", RD, NULL, VAR2, VAR, GO, W_MATCH },
    { "INM read gzip of own", RD, NULL, VAR_GZ, VAR, GO, W_MATCH },
    { "INM read own", RD, NULL, VAR, VAR, N304, W_NM },
    { "INM read own weak", RD, NULL, "W/" VAR_GZ, VAR_GZ, N304, W_NM },
    { "INM read unknown", RD, NULL, VAR, NULL, GO, W_MATCH },
    { "IM read variant", RD, VAR2, NULL, VAR, GO, W_MATCH },
};

static void test_family(void)
{
    size_t i;
    char buf[128];

    for (i = 0; i < sizeof(family_cases) / sizeof(family_cases[0]); i++) {
        const family_case *c = &family_cases[i];
        cond_request req = { c->method, c->im, c->inm, NULL, NULL };
        cond_resource res = { 1, c->etag ? c->etag : VTAG, SEC(T), VTAG };
        cond_why why = (cond_why)-1;
        cond_verdict v;

        if (!c->etag && c->method == RD) {
            res.etag = NULL;
        }
        v = cond_evaluate(&req, &res, NOW, &why);
        snprintf(buf, sizeof(buf), "(%s/%s, want %s/%s)", verdict_str(v),
                 cond_why_str(why), verdict_str(c->verdict),
                 cond_why_str(c->why));
        check(v == c->verdict && why == c->why, "family", c->name, buf, v,
              c->verdict);
    }
    /* a version tag of an absent resource matches nothing */
    {
        cond_request req = { WR, ETAG_GZ, NULL, NULL, NULL };
        cond_resource res = { 0, VTAG, SEC(T), VTAG };
        check(cond_evaluate(&req, &res, NOW, NULL) == F412, "family",
              "IM gzip absent", NULL, 0, 0);
    }
}

typedef struct {
    const char *tag, *version_tag;
    int want;
} of_version_case;

static const of_version_case of_version_cases[] = {
    { VTAG, VTAG, 1 },
    { VAR, VTAG, 1 },
    { VAR_GZ, VTAG, 1 },
    { ETAG_GZ, VTAG, 1 },
    { ETAG_BR, VTAG, 1 },
    { OTHER, VTAG, 0 },
    { "W/" VAR, VTAG, 0 },
    { VAR, "W/" VTAG, 0 },
    { VAR " ", VTAG, 0 },
    { VAR, NULL, 0 },
    { NULL, VTAG, 0 },
    { "\"5f2a9c01d3e4b6a7-1c-gzip-0123456789abcdef\"", VTAG, 0 },
    { "\"5f2a9c01d3e4b6a7-1c-\"", VTAG, 0 },
    { "\"5f2a9c01d3e4b6a7-1c-0123456789abcdef-\"", VTAG, 0 },
    { "junk", VTAG, 0 },
};

static void test_of_version(void)
{
    size_t i;
    char name[96];

    for (i = 0; i < sizeof(of_version_cases) / sizeof(of_version_cases[0]);
         i++) {
        const of_version_case *c = &of_version_cases[i];
        int got = cond_tag_of_version(c->tag, c->version_tag);

        snprintf(name, sizeof(name), "#%u [%.60s]", (unsigned)i,
                 c->tag ? c->tag : "(null)");
        check(got == c->want, "of version", name, NULL, got, c->want);
    }
}

/* ------------------------------------------------------------------ */
/* The version an If-Match names (the claim's hint)                    */

typedef struct {
    const char *if_match;
    apr_int64_t want;
} if_match_version_case;

#define PFX "\"5f2a9c01d3e4b6a7-"

static const if_match_version_case if_match_version_cases[] = {
    { PFX "1c\"", 0x1c },
    { " " PFX "1c\" ", 0x1c },
    { PFX "1c-gzip\"", 0x1c },
    { PFX "1c-0123456789abcdef\"", 0x1c },
    { PFX "1c-0123456789abcdef-br\"", 0x1c },
    { PFX "7fffffffffffffff\"", APR_INT64_C(0x7fffffffffffffff) },
    { PFX "8000000000000000\"", 0 },
    { PFX "10000000000000000\"", 0 },
    { PFX "1C\"", 0 },
    { PFX "1c-zip\"", 0 },
    { PFX "\"", 0 },
    { PFX "-gzip\"", 0 },
    { "W/" PFX "1c\"", 0 },
    /* a list: the highest version of this store's strong tags */
    { PFX "1c\", " PFX "1d\"", 0x1d },
    { PFX "1d\", " PFX "1c-gzip\"", 0x1d },
    { PFX "1c\",, " PFX "1c-0123456789abcdef\" ,", 0x1c },
    { "W/" PFX "2f\", " PFX "1c\"", 0x1c },
    { "\"0000000000000000-2f\", " PFX "1c\", \"x\"", 0x1c },
    { PFX "2f-zip\", " PFX "1c\"", 0x1c },
    { "W/" PFX "1c\", \"x\"", 0 },
    { PFX "1c\", *", 0 },
    { "*, " PFX "1c\"", 0 },
    { PFX "1c\", junk", 0 },
    { PFX "1c\" " PFX "1d\"", 0 },
    { "*", 0 },
    { "\"0000000000000000-1c\"", 0 },
    { "\"5f2a9c01d3e4b6a7\"", 0 },
    { PFX "1c", 0 },
    { PFX "1c\" junk", 0 },
    { "", 0 },
    { NULL, 0 },
};

static void test_if_match_version(void)
{
    size_t i;
    char name[96];

    for (i = 0; i < sizeof(if_match_version_cases)
                    / sizeof(if_match_version_cases[0]); i++) {
        const if_match_version_case *c = &if_match_version_cases[i];
        apr_int64_t got = cond_if_match_version(c->if_match, PFX);

        snprintf(name, sizeof(name), "#%u [%.60s]", (unsigned)i,
                 c->if_match ? c->if_match : "(null)");
        check(got == c->want, "if-match version", name, NULL, got,
              c->want);
    }
    check(cond_if_match_version(PFX "1c\"", NULL) == 0, "if-match version",
          "no prefix", NULL, 0, 0);
}

/* ------------------------------------------------------------------ */
/* If-Range (RFC 9110 13.1.5)                                           */

typedef struct {
    const char *name;
    const char *if_range;
    const char *etag;
    apr_time_t lm;
    int want;             /* 1: the range may be served */
} if_range_case;

static const if_range_case if_range_cases[] = {
    { "current tag", ETAG, ETAG, SEC(T), 1 },
    { "current variant gzip", VAR_GZ, VAR_GZ, SEC(T), 1 },
    { "OWS around tag", " \t" ETAG " ", ETAG, SEC(T), 1 },
    { "stale tag", OTHER, ETAG, SEC(T), 0 },
    { "weak tag", ETAG_W, ETAG, SEC(T), 0 },
    { "weak current", ETAG, ETAG_W, SEC(T), 0 },
    { "other variant", VAR2, VAR, SEC(T), 0 },
    { "identity tag, gzip sent", VAR, VAR_GZ, SEC(T), 0 },
    { "gzip tag, identity sent", VAR_GZ, VAR, SEC(T), 0 },
    { "unknown representation", ETAG, NULL, SEC(T), 0 },
    { "list", ETAG ", " ETAG, ETAG, SEC(T), 0 },
    { "star", "*", ETAG, SEC(T), 0 },
    { "unterminated", "\"5f2a9c01d3e4b6a7-1c", ETAG, SEC(T), 0 },
    { "unquoted", "5f2a9c01d3e4b6a7-1c", ETAG, SEC(T), 0 },
    { "lowercase w/", "w/" ETAG, ETAG, SEC(T), 0 },
    { "empty", "", ETAG, SEC(T), 0 },
    { "absent", NULL, ETAG, SEC(T), 0 },
    { "date equal", D_IMF, ETAG, SEC(T), 1 },
    { "date rfc850 equal", D_850, ETAG, SEC(T), 1 },
    { "date asctime equal", D_ASC, ETAG, SEC(T), 1 },
    { "date earlier", D_EARLY, ETAG, SEC(T), 0 },
    { "date later", D_LATE, ETAG, SEC(T), 0 },
    { "date, no Last-Modified", D_IMF, ETAG, 0, 0 },
    { "date junk", D_IMF "x", ETAG, SEC(T), 0 },
    { "date twice", D_IMF ", " D_IMF, ETAG, SEC(T), 0 },
    { "date equal, no tag", D_IMF, NULL, SEC(T), 1 },
};

static void test_if_range(void)
{
    size_t i;

    for (i = 0; i < sizeof(if_range_cases) / sizeof(if_range_cases[0]);
         i++) {
        const if_range_case *c = &if_range_cases[i];
        int got = cond_if_range(c->if_range, c->etag, c->lm);
        check(got == c->want, "if-range", c->name, NULL, got, c->want);
    }
}

/* ------------------------------------------------------------------ */
/* The exported list matchers                                           */

typedef struct {
    const char *list;
    const char *etag;
    int exists;
    int strong, weak;
} list_case;

static const list_case list_cases[] = {
    { ETAG, ETAG, 1, 1, 1 },
    { ETAG, ETAG, 0, 0, 0 },
    { ETAG_W, ETAG, 1, 0, 1 },
    { ETAG, ETAG_W, 1, 0, 1 },
    { ETAG_W, ETAG_W, 1, 0, 1 },
    { OTHER, ETAG, 1, 0, 0 },
    { "*", ETAG, 1, 1, 1 },
    { "*", ETAG, 0, 0, 0 },
    { "*", NULL, 1, 1, 1 },
    { " * , , ", NULL, 1, 1, 1 },
    { ETAG, NULL, 1, 0, 0 },
    { "", ETAG, 1, 0, 0 },
    { ",,,", ETAG, 1, 0, 0 },
    { "\"a\",\"b\",\"c\"", "\"c\"", 1, 1, 1 },
    { "\"a\" , W/\"b\" ,\"c\"", "\"b\"", 1, 0, 1 },
    { ETAG_GZ, ETAG, 1, 0, 0 },
    { ETAG_BR, ETAG, 1, 0, 0 },
    { "W/" ETAG_GZ, ETAG, 1, 0, 0 },
    { ETAG_GZ, ETAG_GZ, 1, 1, 1 },
    { ETAG_GZ, ETAG, 0, 0, 0 },
    { ETAG, ETAG_GZ, 1, 0, 0 },
    { "\"5f2a9c01d3e4b6a7-1c-zip\"", ETAG, 1, 0, 0 },
    { "\"5f2a9c01d3e4b6a7-1c-b\"", ETAG, 1, 0, 0 },
    { "junk", ETAG, 1, -1, 0 },
    { "junk, " ETAG, ETAG, 1, -1, 1 },
    { ETAG ", junk", ETAG, 1, -1, 1 },
    { "\"abc", "\"abc\"", 1, -1, 0 },
    { "\"abc\"\"", "\"abc\"", 1, -1, 0 },
    { "*, " ETAG, ETAG, 1, -1, 1 },
    { "*, " ETAG, ETAG, 0, -1, 0 },
    { "**", ETAG, 1, -1, 0 },
    { "W/*", ETAG, 1, -1, 0 },
    { "W/W/" ETAG, ETAG, 1, -1, 0 },
    { "\"a\"\"b\"", "\"a\"", 1, -1, 0 },
    { "\"x\"", "x", 1, 0, 0 },
    { "\"x\"", "", 1, 0, 0 },
    { "\"\"", "\"\"", 1, 1, 1 },
    { "\"\\\"", "\"\\\"", 1, 1, 1 },    /* backslash is plain etagc */
    { "\"!#~\"", "\"!#~\"", 1, 1, 1 },  /* edges of etagc */
};

static void test_lists(void)
{
    size_t i;
    char name[96];

    for (i = 0; i < sizeof(list_cases) / sizeof(list_cases[0]); i++) {
        const list_case *c = &list_cases[i];
        int s = cond_list_match_strong(c->list, c->etag, c->exists);
        int w = cond_list_match_weak(c->list, c->etag, c->exists);

        snprintf(name, sizeof(name), "strong #%u [%.60s]", (unsigned)i,
                 c->list);
        check(s == c->strong, "lists", name, NULL, s, c->strong);
        snprintf(name, sizeof(name), "weak #%u [%.60s]", (unsigned)i,
                 c->list);
        check(w == c->weak, "lists", name, NULL, w, c->weak);
    }
    check(cond_list_match_strong(NULL, ETAG, 1) == 0, "lists",
          "strong NULL list", NULL, 0, 0);
    check(cond_list_match_weak(NULL, ETAG, 1) == 0, "lists",
          "weak NULL list", NULL, 0, 0);
}

/* Every byte inside the quotes: etagc = %x21 / %x23-7E / obs-text. */
static void test_etagc(void)
{
    int b, bad = 0;

    for (b = 1; b < 256; b++) {
        char list[4] = { '"', (char)b, '"', '\0' };
        int valid = b == 0x21 || (b >= 0x23 && b <= 0x7e) || b >= 0x80;
        int s = cond_list_match_strong(list, list, 1);

        if (s != (valid ? 1 : -1)) {
            printf("FAIL etagc: byte 0x%02x: got %d\n", b, s);
            bad++;
        }
    }
    check(bad == 0, "etagc", "all bytes", NULL, bad, 0);
}

/* ------------------------------------------------------------------ */
/* Dates                                                                */

typedef struct {
    const char *value;
    long long sec;      /* 0: invalid */
} date_case;

static const date_case date_cases[] = {
    /* the three formats of RFC 9110 5.6.7 */
    { D_IMF, T },
    { D_850, T },
    { D_ASC, T },
    { "Sun Nov 06 08:49:37 1994", T },          /* date3 allows 2DIGIT */
    { "Thu, 29 Feb 2024 12:00:00 GMT", 1709208000LL },
    { "Thursday, 29-Feb-24 12:00:00 GMT", 1709208000LL },
    { "Thu Feb 29 12:00:00 2024", 1709208000LL },
    { "Tue, 29 Feb 2000 00:00:00 GMT", 951782400LL },
    { "Fri, 31 Dec 9999 23:59:59 GMT", 253402300799LL },
    { "Thu, 01 Jan 1970 00:00:01 GMT", 1 },
    { "Wed, 31 Dec 2025 23:59:60 GMT", 1767225600LL },  /* leap second */
    { "Mon, 01 Jan 2001 00:00:00 GMT", 978307200LL },
    { "Tue Jan  1 00:00:00 2030", 1893456000LL },
    { "Sat Dec 31 23:59:59 2005", 1136073599LL },
    /* leniency kept: OWS around, weekday not checked against the date */
    { "  " D_IMF "  ", T },
    { "\t" D_ASC "\t", T },
    { "Mon, 06 Nov 1994 08:49:37 GMT", T },
    { "Monday, 06-Nov-94 08:49:37 GMT", T },
    /* apr's fixed two-digit pivot: 00-69 -> 20xx, 70-99 -> 19xx */
    { "Sunday, 06-Nov-69 08:49:37 GMT", 3150953377LL },
    { "Friday, 06-Nov-70 08:49:37 GMT", 26729377LL },
    { "Saturday, 01-Jan-00 00:00:00 GMT", 946684800LL },
    /* the epoch cannot be told from "invalid" */
    { "Thu, 01 Jan 1970 00:00:00 GMT", 0 },

    /* rejected although apr_date_parse_http() accepts them */
    { "Sun, 06 Nov 1994 08:49:37 PST", 0 },
    { "Sun, 06 Nov 1994 08:49:37 UTC", 0 },
    { "Sun, 06 Nov 1994 08:49:37 gmt", 0 },
    { D_IMF "junk", 0 },
    { D_IMF " junk", 0 },
    { D_IMF ", " D_IMF, 0 },
    { D_ASC " GMT", 0 },
    { D_ASC "x", 0 },
    { D_850 "x", 0 },
    { "Xyz, 06 Nov 1994 08:49:37 GMT", 0 },
    { "junk 06 Nov 1994 08:49:37 GMT", 0 },
    { "sun, 06 Nov 1994 08:49:37 GMT", 0 },
    { "Sun, 6 Nov 1994 08:49:37 GMT", 0 },
    { "Sun, 06 Nov 1994 08:49:61 GMT", 0 },
    { "Sunday, 06 Nov 1994 08:49:37 GMT", 0 },
    { "Sun, 06-Nov-94 08:49:37 GMT", 0 },
    { "Sunday, 06-Nov-1994 08:49:37 GMT", 0 },
    { "Sundays, 06-Nov-94 08:49:37 GMT", 0 },
    { "Sun, Nov  6 08:49:37 1994", 0 },
    { "Xyz Nov  6 08:49:37 1994", 0 },
    /* rejected by both */
    { NULL, 0 },
    { "", 0 },
    { " ", 0 },
    { "yesterday", 0 },
    { "784111777", 0 },
    { "Sun, 31 Nov 1994 08:49:37 GMT", 0 },
    { "Tue, 31 Apr 2001 00:00:00 GMT", 0 },
    { "Sun, 29 Feb 1994 08:49:37 GMT", 0 },
    { "Mon, 29 Feb 2100 00:00:00 GMT", 0 },
    { "Sun, 00 Nov 1994 08:49:37 GMT", 0 },
    { "Sun, 32 Dec 1994 08:49:37 GMT", 0 },
    { "Sun, 06 Nov 1994 24:00:00 GMT", 0 },
    { "Sun, 06 Nov 1994 08:60:00 GMT", 0 },
    { "Sun, 06 Nov 1994 08:49:99 GMT", 0 },
    { "Sun, 06 nov 1994 08:49:37 GMT", 0 },
    { "Sun, 06 NOV 1994 08:49:37 GMT", 0 },
    { "Sun, 06 Nox 1994 08:49:37 GMT", 0 },
    { "Sun, 06 Nov 1969 08:49:37 GMT", 0 },
    { "Sun, 06 Nov 0994 08:49:37 GMT", 0 },
    { "Sun, 06 Nov 1994 08:49:37", 0 },
    { "Sun, 06 Nov 1994 08:49 GMT", 0 },
    { "Sun, 06 Nov 1994  08:49:37 GMT", 0 },
    { "Sun,  06 Nov 1994 08:49:37 GMT", 0 },
    { "Sun,06 Nov 1994 08:49:37 GMT", 0 },
    { "Sun, 06 Nov 1994 08:49:37\tGMT", 0 },
    { "Sun, 0x Nov 1994 08:49:37 GMT", 0 },
    { "Sun, 06 Nov 1994 8:49:37 GMT", 0 },
    { "Sun, 06 Nov 1994 08-49-37 GMT", 0 },
    { "Sun, 06 Nov 1994 08:49:37 GMT\x01", 0 },
    { "Sun, 06 Nov 1994 08:49:3\xff GMT", 0 },
    { "Sun Nov 6 08:49:37 1994", 0 },
    { "Sun Nov  0 08:49:37 1994", 0 },
    { "Sun Nov 31 08:49:37 1994", 0 },
    { "Sun Nov  6 08:49:37 94", 0 },
    { "Sun Nov  6 08:49:37  1994", 0 },
    { "Sunday, 31-Nov-94 08:49:37 GMT", 0 },
    { "Sunday, 06-Nov-94 08:49:37", 0 },
    { "Sunday, 06-nov-94 08:49:37 GMT", 0 },
    { ", 06-Nov-94 08:49:37 GMT", 0 },
    { ",", 0 },
    { "Sun, ", 0 },
};

static void test_dates(void)
{
    size_t i;
    char name[96];

    for (i = 0; i < sizeof(date_cases) / sizeof(date_cases[0]); i++) {
        const date_case *c = &date_cases[i];
        long long got = apr_time_sec(cond_parse_date(c->value));

        snprintf(name, sizeof(name), "[%.60s]",
                 c->value ? c->value : "(null)");
        check(got == c->sec, "dates", name, NULL, got, c->sec);
    }
    /* a date is whole seconds */
    check(cond_parse_date(D_IMF) == SEC(T), "dates", "microseconds zero",
          NULL, cond_parse_date(D_IMF), SEC(T));
}

/* ------------------------------------------------------------------ */
/* cond_has_write_precondition, cond_why_str                            */

typedef struct {
    const char *name;
    const char *im, *inm, *ims, *ius;
    int want;
} write_case;

static const write_case write_cases[] = {
    { "none", NULL, NULL, NULL, NULL, 0 },
    { "If-Match", ETAG, NULL, NULL, NULL, 1 },
    { "If-Match star", "*", NULL, NULL, NULL, 1 },
    { "If-Match empty", "", NULL, NULL, NULL, 1 },
    { "If-Match junk", "junk", NULL, NULL, NULL, 1 },
    { "If-None-Match star", NULL, "*", NULL, NULL, 1 },
    { "If-None-Match tag", NULL, ETAG, NULL, NULL, 1 },
    { "If-None-Match junk then tag", NULL, "junk, " ETAG, NULL, NULL, 1 },
    { "If-None-Match junk", NULL, "junk", NULL, NULL, 0 },
    { "If-None-Match empty", NULL, "", NULL, NULL, 0 },
    { "If-None-Match commas", NULL, " , ,", NULL, NULL, 0 },
    { "If-Unmodified-Since", NULL, NULL, NULL, D_IMF, 1 },
    { "If-Unmodified-Since asctime", NULL, NULL, NULL, D_ASC, 1 },
    { "If-Unmodified-Since junk", NULL, NULL, NULL, "junk", 0 },
    { "If-Modified-Since only", NULL, NULL, D_IMF, NULL, 0 },
    { "junk INM + valid IUS", NULL, "junk", NULL, D_IMF, 1 },
    { "junk INM + junk IUS", NULL, "junk", D_IMF, "x", 0 },
};

static void test_write_precondition(void)
{
    size_t i;

    for (i = 0; i < sizeof(write_cases) / sizeof(write_cases[0]); i++) {
        const write_case *c = &write_cases[i];
        cond_request req = { COND_METHOD_WRITE, c->im, c->inm, c->ims,
                             c->ius };
        int got = cond_has_write_precondition(&req) != 0;

        check(got == c->want, "has_write_precondition", c->name, NULL,
              got, c->want);
    }
    check(cond_has_write_precondition(NULL) == 0, "has_write_precondition",
          "NULL", NULL, 1, 0);
}

static void test_why_str(void)
{
    static const struct {
        cond_why why;
        const char *str;
    } cases[] = {
        { COND_WHY_NONE, "none" },
        { COND_WHY_MATCH, "match" },
        { COND_WHY_NONE_MATCH, "none-match" },
        { COND_WHY_NOT_MODIFIED_SINCE, "not-modified" },
        { COND_WHY_STALE, "stale" },
        { COND_WHY_WEAK, "weak" },
        { COND_WHY_ABSENT, "absent" },
        { COND_WHY_MALFORMED, "malformed" },
        { COND_WHY_MODIFIED_SINCE, "modified" },
        { COND_WHY_EXISTS, "exists" },
        { (cond_why)999, "none" },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *s = cond_why_str(cases[i].why);

        check(s && !strcmp(s, cases[i].str), "why_str", cases[i].str,
              s, 0, 0);
    }
}

/* ------------------------------------------------------------------ */
/* Hostile input: NULLs and 64 KiB headers must neither crash nor hang. */

#define BIG (64 * 1024)

static char *fill(const char *unit)
{
    size_t n = strlen(unit), i;
    char *s = malloc(BIG + 1);

    if (!s) {
        abort();
    }
    for (i = 0; i + n <= BIG; i += n) {
        memcpy(s + i, unit, n);
    }
    s[i] = '\0';
    return s;
}

typedef struct {
    const char *unit;       /* repeated to 64 KiB */
    const char *tail;       /* appended after, or NULL */
    int strong, weak;
} big_case;

static const big_case big_cases[] = {
    { ",", NULL, 0, 0 },
    { " ", NULL, 0, 0 },
    { ", \t", ETAG, 1, 1 },
    { "\"", NULL, -1, 0 },
    { "\"\"", NULL, -1, 0 },
    { "\"\",", ETAG, 1, 1 },
    { "\"x\", ", ETAG, 1, 1 },
    { "W/\"x\",", "W/" ETAG, 0, 1 },
    { "W/", NULL, -1, 0 },
    { "*", NULL, -1, 0 },
    { "*,", NULL, 1, 1 },
    { "a", NULL, -1, 0 },
    { "\xff", NULL, -1, 0 },
    { "\"\xff", NULL, -1, 0 },
    { "\x01,", ETAG, -1, 1 },
    { "\", ", ETAG, -1, 1 },     /* bad elements end at a comma */
    { "\"a\" ", NULL, -1, 0 },
};

static void test_hostile(void)
{
    size_t i;
    char name[64];
    char *tagged = malloc(BIG + sizeof("W/" ETAG));

    if (!tagged) {
        abort();
    }
    for (i = 0; i < sizeof(big_cases) / sizeof(big_cases[0]); i++) {
        const big_case *c = &big_cases[i];
        char *s = fill(c->unit);
        cond_request req = { COND_METHOD_READ, NULL, NULL, s, s };
        cond_resource res = { 1, ETAG, SEC(T), NULL };
        const char *list = s;
        int got;

        if (c->tail) {
            /* leave room for the tail so it is still the last element */
            size_t n = strlen(s) - strlen(c->tail) - strlen(c->unit);

            n -= n % strlen(c->unit);
            memcpy(tagged, s, n);
            strcpy(tagged + n, c->tail);
            list = tagged;
        }
        snprintf(name, sizeof(name), "64K of [%s]%s", c->unit,
                 c->tail ? " + tag" : "");
        got = cond_list_match_strong(list, ETAG, 1);
        check(got == c->strong, "hostile strong", name, NULL, got, c->strong);
        got = cond_list_match_weak(list, ETAG, 1);
        check(got == c->weak, "hostile weak", name, NULL, got, c->weak);

        /* the same value in every header: must just not crash */
        req.if_match = list;
        req.if_none_match = list;
        (void)cond_evaluate(&req, &res, NOW, NULL);
        req.if_match = NULL;
        (void)cond_evaluate(&req, &res, NOW, NULL);
        req.if_none_match = NULL;
        check(cond_evaluate(&req, &res, NOW, NULL) == COND_PROCEED,
              "hostile dates", name, NULL, 0, 0);
        check(cond_parse_date(list) == 0, "hostile dates", name, NULL, 1, 0);
        (void)cond_has_write_precondition(&req);
        free(s);
    }
    free(tagged);
}

static void test_nulls(void)
{
    cond_request req = { COND_METHOD_READ, NULL, NULL, NULL, NULL };
    cond_resource res = { 1, ETAG, SEC(T), NULL };
    cond_why why = COND_WHY_STALE;

    check(cond_evaluate(NULL, &res, NOW, &why) == COND_PROCEED
          && why == COND_WHY_NONE, "nulls", "NULL request", NULL, 0, 0);
    check(cond_evaluate(NULL, NULL, 0, NULL) == COND_PROCEED, "nulls",
          "all NULL", NULL, 0, 0);

    /* a NULL resource is an absent one */
    req.if_match = "*";
    check(cond_evaluate(&req, NULL, NOW, &why) == COND_FAILED
          && why == COND_WHY_ABSENT, "nulls", "NULL resource If-Match",
          NULL, why, COND_WHY_ABSENT);
    req.if_match = NULL;
    req.if_none_match = "*";
    check(cond_evaluate(&req, NULL, NOW, &why) == COND_PROCEED, "nulls",
          "NULL resource If-None-Match", NULL, 0, 0);
    req.if_none_match = NULL;
    req.if_modified_since = D_IMF;
    check(cond_evaluate(&req, NULL, NOW, &why) == COND_PROCEED, "nulls",
          "NULL resource If-Modified-Since", NULL, 0, 0);

    /* 'now' of 0: every If-Modified-Since is in the future */
    check(cond_evaluate(&req, &res, 0, &why) == COND_PROCEED, "nulls",
          "now 0", NULL, 0, 0);
}

int main(void)
{
    apr_initialize();
    test_evaluate();
    test_family();
    test_of_version();
    test_if_match_version();
    test_if_range();
    test_lists();
    test_etagc();
    test_dates();
    test_write_precondition();
    test_why_str();
    test_hostile();
    test_nulls();
    apr_terminate();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
