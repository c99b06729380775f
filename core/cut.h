/* cut.h - project-wide conventions: error codes, slices, assertions.
 *
 * Return-value convention (STYLE.md rule 4): functions return int, 0 on success or a negative
 * CUT_E* code on failure. Parsers return the number of bytes consumed (> 0), CUT_EAGAIN when
 * they need more input, or CUT_EPROTO on malformed input. cut_strerror() names a code.
 */
#ifndef CUT_CUT_H
#define CUT_CUT_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

enum {
    CUT_OK = 0,
    CUT_EAGAIN = -1,   /* need more input / try later */
    CUT_EPROTO = -2,   /* malformed protocol input */
    CUT_ENOMEM = -3,   /* allocation failed */
    CUT_ELIMIT = -4,   /* a configured limit was exceeded */
    CUT_EINVAL = -5,   /* invalid argument or configuration */
    CUT_EIO = -6,      /* system call failed (errno tells more) */
    CUT_ENOENT = -7,   /* no such object (route, pool, endpoint) */
    CUT_ETIMEDOUT = -8,
    CUT_ECONN = -9,    /* connection refused, reset or closed */
    CUT_EUNAVAIL = -10, /* no endpoint available */
    CUT_ETLS = -11      /* TLS handshake or certificate verification failed */
};

/* Returns a static, human-readable name for a CUT_E* code. Any thread. */
const char *cut_strerror(int code);

/* A borrowed, non-NUL-terminated view into someone else's memory. */
struct cut_slice {
    const char *p;
    size_t n;
};

#define CUT_SLICE_LIT(s) ((struct cut_slice){(s), sizeof(s) - 1})

/* Invariant checks that stay on in release builds (HAProxy's BUG_ON). */
#define CUT_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (__builtin_expect(!(cond), 0)) {                                                        \
            fprintf(stderr, "cutover: assertion failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define CUT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Header fields one message may carry, at most: the bound of every field array on the data
 * path; the configuration's limits.max_headers can never be larger (config/cfg_parse.c). */
#define CUT_MAX_FIELDS 1024

/* Does s equal lower (a NUL-terminated lower-case ASCII text), ignoring ASCII case in s? */
int cut_slice_ieq(struct cut_slice s, const char *lower);

/* Copies src[0..n) to dst with ASCII A-Z lowered (other bytes as they are), eight bytes at a
 * time: header names on their way to HTTP/2. */
void cut_lower_copy(char *dst, const char *src, size_t n);

/* Significant digits of every real in the JSON cutover writes (audit records, control replies,
 * LEEF): a value given with at most 15 significant digits (every weight, percentage and
 * threshold) is written back exactly as given (97.21, not 97.209999999999994). Use with
 * jansson's JSON_REAL_PRECISION() or "%.*g". */
#define CUT_JSON_REAL_DIGITS 15

#endif
