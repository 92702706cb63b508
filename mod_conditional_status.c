/*
 * mod_conditional_status.c - what the module decided: the r->notes value
 * of every request, counters shared by all children, and mod_status.
 */
#include "mod_conditional_private.h"

#include "apr_atomic.h"
#include "apr_shm.h"
#include "mod_status.h"

/* Decisions counted across all children for mod_status, since the last
 * (re)start. Each is recognised by the start of its r->notes value, so the
 * note is the one place a decision is recorded. */
#define COND_COUNTER(note, key, label) { note, sizeof(note) - 1, key, label }
static const struct {
    const char *note;        /* prefix of the note */
    apr_size_t len;          /* its length */
    const char *key;         /* ?auto name */
    const char *label;
} conditional_counters[] = {
    COND_COUNTER("304",           "NotModified",
                 "304 Not Modified, backend not run"),
    /* Counted besides "304": never the start of a note. */
    COND_COUNTER("quick",         "QuickNotModified",
                 "of which answered before access control "
                 "(ConditionalQuickHandler)"),
    COND_COUNTER("412-",          "Failed",       "412 Precondition Failed"),
    COND_COUNTER("428",           "Required",     "428 Precondition Required"),
    COND_COUNTER("409-",          "Busy",
                 "409, another write in flight"),
    COND_COUNTER("503-",          "Unavailable",
                 "503, store unusable for a write"),
    COND_COUNTER("pass-",         "PassedThrough",
                 "reads passed through, store unusable"),
    COND_COUNTER("tag ",          "Tagged",       "200s tagged"),
    COND_COUNTER("untagged",      "Untagged",
                 "200s left untagged (a write ran)"),
    COND_COUNTER("commit ",       "Committed",    "writes committed"),
    COND_COUNTER("release ",      "Refused",
                 "writes refused by the backend (4xx)"),
    COND_COUNTER("invalidate ",   "Invalidated",
                 "writes ended 3xx/5xx, version moved"),
    COND_COUNTER("pending ",      "Pending",
                 "writes ended unseen, claim kept"),
    COND_COUNTER("claim-lost",    "ClaimLost",
                 "writes whose lease ran out"),
    COND_COUNTER("commit-failed", "CommitFailed", "commits the store refused"),
    COND_COUNTER("absent",        "Absent",
                 "resources found gone (404/410)"),
    COND_COUNTER("broken",        "ClaimsBroken", "expired claims broken"),
};
#undef COND_COUNTER
#define COND_NCOUNTERS \
    (sizeof(conditional_counters) / sizeof(conditional_counters[0]))
static volatile apr_uint64_t *conditional_counts;   /* shared, or NULL */

/* Anonymous shared memory, made before the fork so every child of this
 * generation counts into the same place. Without it there are no counts,
 * nothing else changes. */
void conditional_counters_create(apr_pool_t *pconf, server_rec *s)
{
    apr_shm_t *shm;
    apr_status_t rv;

    conditional_counts = NULL;
    rv = apr_shm_create(&shm, COND_NCOUNTERS * sizeof(apr_uint64_t), NULL,
                        pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, "COND00018: no shared "
                     "memory for the counters shown by mod_status");
        return;
    }
    conditional_counts = apr_shm_baseaddr_get(shm);
    memset((void *)conditional_counts, 0,
           COND_NCOUNTERS * sizeof(apr_uint64_t));
}

void conditional_count(const char *decision)
{
    apr_size_t i;

    if (!conditional_counts) {
        return;
    }
    for (i = 0; i < COND_NCOUNTERS; i++) {
        const char *n = conditional_counters[i].note;
        if (n[0] == decision[0]
            && !strncmp(decision, n, conditional_counters[i].len)) {
            apr_atomic_inc64(&conditional_counts[i]);
            return;
        }
    }
}

void conditional_note(request_rec *r, const char *decision)
{
    apr_table_setn(r->notes, "conditional", decision);
    conditional_count(decision);
}

int conditional_status(request_rec *r, int flags)
{
    apr_size_t i;
    int j;

    if (!conditional_counts || !conditional_stores) {
        return OK;
    }
    if (flags & AP_STATUS_SHORT) {
        for (i = 0; i < COND_NCOUNTERS; i++) {
            ap_rprintf(r, "Conditional%s: %" APR_UINT64_T_FMT "\n",
                       conditional_counters[i].key,
                       (apr_uint64_t)conditional_counts[i]);
        }
        return OK;
    }
    ap_rputs("<hr />\n<h2>mod_conditional</h2>\n<dl>", r);
    for (j = 0; j < conditional_stores->nelts; j++) {
        conditional_store_inst *inst =
            APR_ARRAY_IDX(conditional_stores, j, conditional_store_inst *);
        const char *prefix = conditional_tag_prefix(inst, r->pool);

        /* The prefix is "\"<identity>-" */
        ap_rprintf(r, "<dt>Store %s%s%s: %s</dt>\n",
                   ap_escape_html(r->pool, inst->spec),
                   inst->server ? " for " : "",
                   inst->server ? ap_escape_html(r->pool,
                                                 inst->server->server_hostname)
                                : "",
                   prefix ? apr_pstrcat(r->pool, "identity ",
                                        apr_pstrmemdup(r->pool, prefix + 1,
                                                       strlen(prefix) - 2),
                                        NULL)
                          : "<b>not usable</b>");
    }
    ap_rputs("</dl>\n<table>\n", r);
    for (i = 0; i < COND_NCOUNTERS; i++) {
        ap_rprintf(r, "<tr><td>%s</td><td align=\"right\">%"
                   APR_UINT64_T_FMT "</td></tr>\n",
                   conditional_counters[i].label,
                   (apr_uint64_t)conditional_counts[i]);
    }
    ap_rputs("</table>\n", r);
    return OK;
}
