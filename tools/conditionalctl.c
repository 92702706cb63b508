/*
 * conditionalctl - inspect and fix mod_conditional's version store.
 *
 *   conditionalctl [-s sqlite:PATH | -s PATH | -s dbd:PARAMS] list [PREFIX]
 *   conditionalctl [-s ...] show KEY
 *   conditionalctl [-s ...] bump KEY
 *   conditionalctl [-s ...] forget KEY
 *   conditionalctl [-s ...] id
 *
 * For backends whose data changes out of band: "bump" gives a key a new
 * version, so every ETag handed out for it stops matching. Uses the same
 * provider registry and spec parsing as the module (store.c); never
 * creates a store.
 *
 * Exit status: 0 done, 1 no such key, 2 usage or store error.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_getopt.h>
#include <apr_file_info.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "store.h"

#define CTL_DEFAULT_STORE "/var/lib/apache2/conditional/conditional.db"
#define CTL_OK            0
#define CTL_NOTFOUND      1
#define CTL_ERROR         2

typedef struct {
    const cond_store_provider *pv;
    cond_store *s;
    const char *path;
    apr_pool_t *p;
} ctl_ctx;

static void ctl_usage(FILE *f)
{
    fprintf(f,
        "usage: conditionalctl [-s STORE] COMMAND\n"
        "\n"
        "  list [PREFIX]   keys (starting with PREFIX): version, presence,\n"
        "                  last modification, write claim\n"
        "  show KEY        everything about KEY, with the ETag clients see\n"
        "  bump KEY        give KEY a new version (its data changed out of\n"
        "                  band): every ETag handed out for it stops "
        "matching\n"
        "  forget KEY      remove KEY from the store\n"
        "  id              print the store identity\n"
        "\n"
        "  -s STORE        the ConditionalStore in use: sqlite:PATH or PATH\n"
        "                  (default: %s), or dbd:PARAMS with the\n"
        "                  server's DBDParams string\n"
        "\n"
        "Exit status: 0 done, 1 no such key, 2 usage or store error.\n",
        CTL_DEFAULT_STORE);
}

static int ctl_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int ctl_fail(const char *fmt, ...)
{
    va_list ap;

    fputs("conditionalctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CTL_ERROR;
}

static const char *ctl_strerror_plain(apr_status_t rv, apr_pool_t *p);

/* What a store status means to someone at a shell, with the store's own
 * words when it gave any. */
static const char *ctl_strerror(apr_status_t rv, apr_pool_t *p)
{
    const char *own = cond_store_error(p);
    const char *msg = ctl_strerror_plain(rv, p);

    return own ? apr_pstrcat(p, msg, " (", own, ")", NULL) : msg;
}

static const char *ctl_strerror_plain(apr_status_t rv, apr_pool_t *p)
{
    char buf[256];

    switch (rv) {
    case APR_TIMEUP:
        return "the store stayed locked by another writer; try again";
    case APR_EACCES:
        return "permission denied (the store is read-only for this user; "
               "run as root or as the User httpd runs as)";
    case APR_ENOENT:
        return "no such store";
    case APR_EGENERAL:
        return "not a usable store (corrupt, not an SQLite database, or "
               "written by a newer mod_conditional)";
    }
    return apr_pstrdup(p, apr_strerror(rv, buf, sizeof(buf)));
}

/* Keys are decoded URL paths: show control and non-ASCII bytes escaped so
 * a key can neither garble the terminal nor hide a look-alike. */
static const char *ctl_escape(const char *s, apr_pool_t *p)
{
    apr_size_t n = strlen(s), i, o = 0;
    char *out = apr_palloc(p, n * 4 + 1);

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '\\') {
            apr_snprintf(out + o, 5, "\\x%02x", c);
            o += 4;
        }
        else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return out;
}

static const char *ctl_date(apr_time_t t, apr_pool_t *p)
{
    char *buf;

    if (!t) {
        return "-";
    }
    buf = apr_palloc(p, APR_RFC822_DATE_LEN);
    apr_rfc822_date(buf, t);
    return buf;
}

static const char *ctl_claim(const cond_state *st, apr_pool_t *p)
{
    apr_interval_time_t left = st->claim_left;

    if (!st->claim_owner) {
        return "-";
    }
    if (left > 0) {
        return apr_psprintf(p, "%s (%" APR_TIME_T_FMT " s left)",
                            ctl_escape(st->claim_owner, p),
                            apr_time_sec(left + APR_USEC_PER_SEC - 1));
    }
    return apr_psprintf(p, "%s (expired %" APR_TIME_T_FMT " s ago)",
                        ctl_escape(st->claim_owner, p), apr_time_sec(-left));
}

/* For display: the store's identity, "?" when it cannot be read now. */
static const char *ctl_identity(ctl_ctx *c)
{
    const char *id = c->pv->identity(c->s, c->p);

    return id ? id : "?";
}

static const char *ctl_version(apr_int64_t v, apr_pool_t *p)
{
    return apr_psprintf(p, "%" APR_UINT64_T_HEX_FMT, (apr_uint64_t)v);
}

/* Only httpd creates an sqlite store (and hands it to its User): a typo
 * here must not leave a root-owned empty one behind. */
static int ctl_check_file(ctl_ctx *c, const char *path)
{
    apr_finfo_t fi;
    apr_status_t rv;

    rv = apr_stat(&fi, path, APR_FINFO_TYPE | APR_FINFO_SIZE, c->p);
    if (rv != APR_SUCCESS) {
        return ctl_fail("no store at %s (%s)", path,
                        APR_STATUS_IS_ENOENT(rv)
                        ? "httpd creates it when it starts with "
                          "mod_conditional loaded"
                        : ctl_strerror(rv, c->p));
    }
    if (fi.filetype != APR_REG || fi.size == 0) {
        return ctl_fail("%s is not a store file", path);
    }
    return CTL_OK;
}

/* A spec as ConditionalStore takes it, or a bare PATH; a relative path is
 * taken from the current directory, for convenience at the shell. */
static int ctl_open(ctl_ctx *c, const char *spec)
{
    const char *arg, *err;
    apr_status_t rv;
    int rc;

    err = cond_store_parse(spec, NULL, 1, &c->pv, &arg, c->p);
    if (err) {
        return ctl_fail("%s", err);
    }
    if (c->pv->per_server && !arg) {
        /* The module takes these settings from its server's config. */
        return ctl_fail("give the connection settings: -s %s:PARAMS, with "
                        "PARAMS as in the server's DBDParams", c->pv->name);
    }
    c->path = arg ? arg : spec;
    err = c->pv->create(&c->s, arg, c->p);
    if (err) {
        return ctl_fail("%s", err);
    }
    if (c->pv == &cond_sqlite_store
        && (rc = ctl_check_file(c, arg)) != CTL_OK) {
        return rc;
    }
    rv = c->pv->init(c->s, c->p);
    if (rv == APR_SUCCESS) {
        rv = c->pv->child_init(c->s, c->p);
    }
    if (rv != APR_SUCCESS) {
        return ctl_fail("cannot open store %s: %s", c->path,
                        ctl_strerror(rv, c->p));
    }
    return CTL_OK;
}

/* ------------------------------------------------------------------ */
/* Commands                                                             */

typedef struct {
    const char *key;
    cond_state st;
} ctl_row;

static int ctl_collect(void *baton, const char *key, const cond_state *st)
{
    apr_array_header_t *rows = baton;
    ctl_row *row = apr_array_push(rows);

    row->key = key;
    row->st = *st;
    return 0;
}

static int ctl_list(ctl_ctx *c, const char *prefix)
{
    apr_array_header_t *rows = apr_array_make(c->p, 64, sizeof(ctl_row));
    apr_status_t rv;
    int i, kw = 3, vw = 7;

    rv = c->pv->list(c->s, prefix, ctl_collect, rows, c->p);
    if (rv != APR_SUCCESS) {
        return ctl_fail("cannot list keys: %s", ctl_strerror(rv, c->p));
    }
    for (i = 0; i < rows->nelts; i++) {
        ctl_row *row = &APR_ARRAY_IDX(rows, i, ctl_row);
        int n;

        row->key = ctl_escape(row->key, c->p);
        n = (int)strlen(row->key);
        kw = n > kw ? (n > 60 ? 60 : n) : kw;
        n = (int)strlen(ctl_version(row->st.version, c->p));
        vw = n > vw ? n : vw;
    }
    printf("%-*s  %-*s  %-7s  %-29s  %s\n", kw, "KEY", vw, "VERSION",
           "STATE", "LAST-MODIFIED", "CLAIM");
    for (i = 0; i < rows->nelts; i++) {
        const ctl_row *row = &APR_ARRAY_IDX(rows, i, ctl_row);

        printf("%-*s  %-*s  %-7s  %-29s  %s\n", kw, row->key, vw,
               ctl_version(row->st.version, c->p),
               row->st.exists ? "present" : "absent",
               ctl_date(row->st.mtime, c->p),
               ctl_claim(&row->st, c->p));
    }
    return CTL_OK;
}

static int ctl_lookup(ctl_ctx *c, const char *key, cond_state *st)
{
    apr_status_t rv = c->pv->lookup(c->s, key, st, c->p);

    if (rv == APR_NOTFOUND) {
        fprintf(stderr, "conditionalctl: no key '%s' in the store\n",
                ctl_escape(key, c->p));
        return CTL_NOTFOUND;
    }
    if (rv != APR_SUCCESS) {
        return ctl_fail("cannot read the store: %s", ctl_strerror(rv, c->p));
    }
    return CTL_OK;
}

static void ctl_print_meta(const char *meta, apr_pool_t *p)
{
    char *copy, *line, *state;
    const char *label = "meta";

    if (!meta || !*meta) {
        printf("%-15s-\n", label);
        return;
    }
    copy = apr_pstrdup(p, meta);
    for (line = apr_strtok(copy, "\n", &state); line;
         line = apr_strtok(NULL, "\n", &state)) {
        printf("%-15s%s\n", label, line);
        label = "";
    }
}

static int ctl_show(ctl_ctx *c, const char *key)
{
    apr_time_t now = apr_time_now();
    const char *etag;
    cond_state st;
    int rc = ctl_lookup(c, key, &st);

    if (rc != CTL_OK) {
        return rc;
    }
    if (st.version == 0) {
        etag = "- (never written)";
    }
    else {
        etag = apr_psprintf(c->p, "\"%s-%s\"%s", ctl_identity(c),
                            ctl_version(st.version, c->p),
                            st.exists ? "" : " (not served: absent)");
    }
    printf("%-15s%s\n", "key", ctl_escape(key, c->p));
    printf("%-15s%s\n", "etag", etag);
    printf("%-15s%s (%" APR_INT64_T_FMT ")\n", "version",
           ctl_version(st.version, c->p), st.version);
    printf("%-15s%s\n", "state", st.exists ? "present" : "absent");
    printf("%-15s%s\n", "last-modified", ctl_date(st.mtime, c->p));
    printf("%-15s%s\n", "claim", ctl_claim(&st, c->p));
    if (st.claim_owner) {
        printf("%-15s%s\n", "lease-until",
               ctl_date(now + st.claim_left, c->p));
    }
    ctl_print_meta(st.meta, c->p);
    return CTL_OK;
}

/* Only a key the store knows: bumping a typo would invent a present
 * resource that "If-Match: *" then matches. */
static int ctl_bump(ctl_ctx *c, const char *key)
{
    apr_int64_t v = 0;
    cond_state st;
    apr_status_t rv;
    int rc = ctl_lookup(c, key, &st);

    if (rc != CTL_OK) {
        return rc;
    }
    rv = c->pv->bump(c->s, key, apr_time_now(), &v, c->p);
    if (rv != APR_SUCCESS) {
        return ctl_fail("cannot bump: %s", ctl_strerror(rv, c->p));
    }
    printf("%s: version %s -> %s, ETag \"%s-%s\"\n", ctl_escape(key, c->p),
           ctl_version(st.version, c->p), ctl_version(v, c->p),
           ctl_identity(c), ctl_version(v, c->p));
    return CTL_OK;
}

static int ctl_forget(ctl_ctx *c, const char *key)
{
    apr_status_t rv = c->pv->forget(c->s, key, c->p);

    if (rv == APR_NOTFOUND) {
        fprintf(stderr, "conditionalctl: no key '%s' in the store\n",
                ctl_escape(key, c->p));
        return CTL_NOTFOUND;
    }
    if (rv != APR_SUCCESS) {
        return ctl_fail("cannot forget: %s", ctl_strerror(rv, c->p));
    }
    printf("%s: forgotten\n", ctl_escape(key, c->p));
    return CTL_OK;
}

/* ------------------------------------------------------------------ */

static int ctl_run(ctl_ctx *c, const char *spec, int argc,
                   const char *const *argv)
{
    const char *cmd = argc > 0 ? argv[0] : NULL;
    const char *id;
    int need, rc;

    if (!cmd) {
        ctl_usage(stderr);
        return CTL_ERROR;
    }
    if (!strcmp(cmd, "list")) {
        need = argc <= 2;
    }
    else if (!strcmp(cmd, "show") || !strcmp(cmd, "bump")
             || !strcmp(cmd, "forget")) {
        need = argc == 2;
    }
    else if (!strcmp(cmd, "id")) {
        need = argc == 1;
    }
    else {
        return ctl_fail("unknown command '%s' (try -h)", cmd);
    }
    if (!need) {
        return ctl_fail("wrong arguments for '%s' (try -h)", cmd);
    }
    if ((rc = ctl_open(c, spec)) != CTL_OK) {
        return rc;
    }
    if (!strcmp(cmd, "list")) {
        return ctl_list(c, argc == 2 ? argv[1] : "");
    }
    if (!strcmp(cmd, "show")) {
        return ctl_show(c, argv[1]);
    }
    if (!strcmp(cmd, "bump")) {
        return ctl_bump(c, argv[1]);
    }
    if (!strcmp(cmd, "forget")) {
        return ctl_forget(c, argv[1]);
    }
    id = c->pv->identity(c->s, c->p);
    if (!id) {
        return ctl_fail("cannot read the store identity%s%s",
                        cond_store_error(c->p) ? ": " : "",
                        cond_store_error(c->p) ? cond_store_error(c->p) : "");
    }
    printf("%s\n", id);
    return CTL_OK;
}

int main(int argc, const char *const *argv)
{
    static const apr_getopt_option_t opts[] = {
        { "store", 's', 1, "store" },
        { "help", 'h', 0, "help" },
        { NULL, 0, 0, NULL }
    };
    const char *spec = "sqlite:" CTL_DEFAULT_STORE;
    ctl_ctx c;
    apr_getopt_t *os;
    const char *arg;
    apr_status_t rv;
    int opt, rc;

    if (apr_app_initialize(&argc, &argv, NULL) != APR_SUCCESS) {
        fprintf(stderr, "conditionalctl: cannot initialise APR\n");
        return CTL_ERROR;
    }
    memset(&c, 0, sizeof(c));
    apr_pool_create(&c.p, NULL);
    apr_getopt_init(&os, c.p, argc, argv);
    while ((rv = apr_getopt_long(os, opts, &opt, &arg)) == APR_SUCCESS) {
        if (opt == 's') {
            spec = arg;
        }
        else {
            ctl_usage(stdout);
            apr_terminate();
            return CTL_OK;
        }
    }
    if (rv != APR_EOF) {
        ctl_usage(stderr);
        apr_terminate();
        return CTL_ERROR;
    }
    rc = ctl_run(&c, spec, os->argc - os->ind, os->argv + os->ind);
    apr_pool_destroy(c.p);
    apr_terminate();
    return rc;
}
