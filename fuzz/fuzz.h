/*
 * fuzz.h - what every libFuzzer target in fuzz/ shares: a check that
 * aborts with a message (libFuzzer then keeps the input as a crash), and a
 * way to cut the input into NUL-terminated parts.
 */
#ifndef COND_FUZZ_H
#define COND_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "invariant broken at %s:%d: %s\n", __FILE__, \
                    __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

/* Split data at '\n' into at most n strings (copies, NUL-terminated, in
 * one buffer the caller frees); parts not present are "". Returns the
 * buffer. A NUL byte inside a part ends that string early, as a C header
 * value would. */
static inline char *fuzz_split(const uint8_t *data, size_t size, char **parts,
                               int n)
{
    char *buf = malloc(size + 1), *at;
    int i;

    if (!buf) {
        abort();
    }
    memcpy(buf, data, size);
    buf[size] = '\0';
    at = buf;
    for (i = 0; i < n; i++) {
        char *nl = i < n - 1 ? memchr(at, '\n', (size_t)(buf + size - at))
                             : NULL;
        parts[i] = at;
        if (nl) {
            *nl = '\0';
            at = nl + 1;
        }
        else {
            at = buf + size;   /* the rest are "" */
        }
    }
    return buf;
}

#endif
