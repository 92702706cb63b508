/*
 * store.c - the provider registry and store spec parsing (see store.h),
 * shared by the module and conditionalctl so both accept the same
 * ConditionalStore values. No httpd.
 */

#include <stdarg.h>
#include <string.h>

#include <apr_file_info.h>
#include <apr_strings.h>

#include "store.h"

/* The providers built in. */
static const cond_store_provider *const store_providers[] = {
    &cond_sqlite_store,
    &cond_dbd_store,
    NULL
};

#define STORE_ERROR_KEY "cond_store_error"

const cond_store_provider *cond_store_provider_get(const char *name)
{
    int i;

    for (i = 0; store_providers[i]; i++) {
        if (!strcmp(store_providers[i]->name, name)) {
            return store_providers[i];
        }
    }
    return NULL;
}

const char *cond_store_provider_names(apr_pool_t *p)
{
    const char *names = NULL;
    int i;

    for (i = 0; store_providers[i]; i++) {
        names = names ? apr_pstrcat(p, names, ", ",
                                    store_providers[i]->name, NULL)
                      : store_providers[i]->name;
    }
    return names;
}

/* A relative sqlite path is taken from base (or the current directory). */
static const char *store_parse_path(const char *spec, const char *path,
                                    const char *base, const char **arg,
                                    apr_pool_t *p)
{
    char *abs;

    if (!*path) {
        return apr_psprintf(p, "empty store path in '%s'", spec);
    }
    if (apr_filepath_merge(&abs, base, path, 0,
                           p) != APR_SUCCESS) {
        return apr_psprintf(p, "invalid path in '%s'", spec);
    }
    *arg = abs;
    return NULL;
}

const char *cond_store_parse(const char *spec, const char *base,
                             int bare_path, const cond_store_provider **pv,
                             const char **arg, apr_pool_t *p)
{
    const char *colon = strchr(spec, ':');
    const char *name;

    *arg = NULL;
    name = colon ? apr_pstrmemdup(p, spec, colon - spec) : spec;
    *pv = cond_store_provider_get(name);
    if (!*pv && !colon && bare_path && *spec) {
        *pv = &cond_sqlite_store;
        return store_parse_path(spec, spec, base, arg, p);
    }
    if (!*pv) {
        return colon || !*spec
               ? apr_psprintf(p, "unknown store type '%s' in '%s' (this "
                              "build knows: %s)", name, spec,
                              cond_store_provider_names(p))
               : apr_psprintf(p, "'%s' is not a store: give sqlite:PATH or "
                              "one of: %s", spec,
                              cond_store_provider_names(p));
    }
    if (!colon) {
        return NULL;
    }
    if (*pv == &cond_sqlite_store) {
        return store_parse_path(spec, colon + 1, base, arg, p);
    }
    *arg = colon + 1;
    return NULL;
}

char *cond_store_prefix_end(const char *prefix, apr_pool_t *p)
{
    char *end = apr_pstrdup(p, prefix);
    apr_size_t n = strlen(end);

    while (n > 0 && (unsigned char)end[n - 1] == 0xff) {
        end[--n] = '\0';
    }
    if (n == 0) {
        return NULL;
    }
    end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
    return end;
}

const char *cond_store_error(apr_pool_t *p)
{
    void *msg = NULL;

    apr_pool_userdata_get(&msg, STORE_ERROR_KEY, p);
    return msg;
}

void cond_store_set_error(apr_pool_t *p, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = apr_pvsprintf(p, fmt, ap);
    va_end(ap);
    apr_pool_userdata_setn(msg, STORE_ERROR_KEY, NULL, p);
}
