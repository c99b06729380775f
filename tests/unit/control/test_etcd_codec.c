/* Unit tests for control/etcd_codec.c, the gateway's encodings: base64, prefix range ends and
 * decimal-string integers. The client itself runs against a real etcd in
 * tests/integration/control/test_etcd_client.py. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "control/etcd_codec.h"
#include "core/cut.h"

static void round_trip(const char *data, size_t n, const char *want)
{
    char *b = etcd_codec_b64(data, n);
    cr_assert_not_null(b);
    cr_assert_str_eq(b, want);
    char *out;
    size_t len;
    cr_assert_eq(etcd_codec_unb64(b, &out, &len), 0, "decoding %s", b);
    cr_assert_eq(len, n);
    cr_assert(memcmp(out, data, n) == 0);
    cr_assert_eq(out[len], '\0');
    free(out);
    free(b);
}

Test(etcd_codec, b64_known_vectors)
{
    /* RFC 4648 section 10 */
    round_trip("", 0, "");
    round_trip("f", 1, "Zg==");
    round_trip("fo", 2, "Zm8=");
    round_trip("foo", 3, "Zm9v");
    round_trip("foob", 4, "Zm9vYg==");
    round_trip("fooba", 5, "Zm9vYmE=");
    round_trip("foobar", 6, "Zm9vYmFy");
    round_trip("\xff\xfe\x00\x01", 4, "//4AAQ==");
    round_trip("\0", 1, "AA==");
}

Test(etcd_codec, b64_every_byte_and_length)
{
    unsigned char data[300];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 7 + 3);
    for (size_t n = 0; n <= sizeof data; n++) {
        char *b = etcd_codec_b64(data, n);
        cr_assert_eq(strlen(b), (n + 2) / 3 * 4);
        char *out;
        size_t len;
        cr_assert_eq(etcd_codec_unb64(b, &out, &len), 0);
        cr_assert_eq(len, n);
        cr_assert(memcmp(out, data, n) == 0, "length %zu", n);
        free(out);
        free(b);
    }
}

Test(etcd_codec, b64_bad_refused)
{
    const char *bad[] = {"Z",     "Zg=",   "Zg",   "Z===",  "Zm9v!A==", "Zg==Zg==",
                         "=Zg=",  "Zm 9v", "Zm9-", "Zm9_",  "Zg=a",     "Zm9vY\n==",
                         "====",  "Z=g="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out = (char *)1;
        size_t len = 99;
        cr_assert_eq(etcd_codec_unb64(bad[i], &out, &len), CUT_EINVAL, "accepted \"%s\"", bad[i]);
        cr_assert_null(out);
    }
}

Test(etcd_codec, prefix_end)
{
    char *s = etcd_codec_prefix_end("a/");
    cr_assert_str_eq(s, "a0");
    free(s);
    s = etcd_codec_prefix_end("a\xff");
    cr_assert_str_eq(s, "b");
    free(s);
    s = etcd_codec_prefix_end("a\xff\xff");
    cr_assert_str_eq(s, "b");
    free(s);
    s = etcd_codec_prefix_end("/cutover/x");
    cr_assert_str_eq(s, "/cutover/y");
    free(s);
    s = etcd_codec_prefix_end("");
    cr_assert_not_null(s);
    cr_assert_eq(s[0], '\0');
    free(s);
    s = etcd_codec_prefix_end("\xff\xff");
    cr_assert_eq(s[0], '\0');
    free(s);
}

Test(etcd_codec, int_member)
{
    json_t *o = json_loads("{\"s\":\"9223372036854775807\",\"i\":42,\"z\":\"0\",\"neg\":\"-1\","
                           "\"ni\":-3,\"big\":\"9223372036854775808\",\"x\":\"12a\",\"e\":\"\","
                           "\"f\":1.5,\"n\":null,\"t\":true}",
                           0, NULL);
    cr_assert_not_null(o);
    int64_t v = -1;
    cr_assert_eq(etcd_codec_int(o, "s", &v), 0);
    cr_assert_eq(v, INT64_MAX);
    cr_assert_eq(etcd_codec_int(o, "i", &v), 0);
    cr_assert_eq(v, 42);
    cr_assert_eq(etcd_codec_int(o, "z", &v), 0);
    cr_assert_eq(v, 0);
    v = 7;
    cr_assert_eq(etcd_codec_int(o, "absent", &v), 0);
    cr_assert_eq(v, 0);
    const char *bad[] = {"neg", "ni", "big", "x", "e", "f", "n", "t"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(etcd_codec_int(o, bad[i], &v), CUT_EINVAL, "accepted %s", bad[i]);
    json_decref(o);
}
