/* etcd_codec.h - the encodings of etcd v3's HTTP/JSON gateway (pure; any thread): keys and values
 * travel as base64, 64-bit integers (revisions, lease IDs) as decimal strings, and a prefix is
 * watched or read as the range [prefix, etcd_codec_prefix_end(prefix)). The client is etcd.h.
 */
#ifndef CUT_ETCD_CODEC_H
#define CUT_ETCD_CODEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Base64 (standard alphabet, padded) of n bytes: malloc'd, NUL-terminated; NULL if out of
 * memory. */
char *etcd_codec_b64(const void *data, size_t n);

/* Decodes base64 text s: *out malloc'd and NUL-terminated (the NUL not counted in *len).
 * Returns 0, CUT_EINVAL (not base64) or CUT_ENOMEM. */
int etcd_codec_unb64(const char *s, char **out, size_t *len);

/* The end of the range of every key that starts with prefix (prefix with its last byte
 * incremented, dropping trailing 0xff bytes), malloc'd; "\0" (the whole keyspace) when prefix
 * is empty or all 0xff. NULL if out of memory. */
char *etcd_codec_prefix_end(const char *prefix);

/* A 64-bit integer member of o that the gateway writes as a decimal string (or, from other
 * encoders, as a JSON integer); absent means 0. Returns 0 or CUT_EINVAL (present but not a
 * non-negative integer). */
int etcd_codec_int(const json_t *o, const char *key, int64_t *out);

#endif
