/* fuzz_leef.c - libFuzzer harness for the LEEF 2.0 / RFC 5424 encoder (proxy/leef.h): any JSON
 * text as an audit record or a security event. Whatever the record holds, the message must stay
 * one well-formed line the SIEM parses the way we mean: at most LEEF_MAX_MESSAGE bytes and
 * NUL-terminated at its length, no control character except a tab delimiter, seven non-empty
 * RFC 5424 header fields then "- LEEF:2.0|", in the LEEF message exactly the six '|' of its
 * header (no value adds a field), and after it only delimiter-separated
 * "key=value" attributes whose keys are [A-Za-z0-9_.-] (no value adds an attribute). abort()
 * otherwise.
 *
 * Input: byte 0 picks the kind (bit 0) and the delimiter (bits 1-4, one of those the
 * configuration allows), byte 1 the facility (modulo 24); the rest is the JSON record.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cut.h"
#include "proxy/log/leef.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *msg)
{
    fprintf(stderr, "\n==FUZZ CHECK FAILED== leef: %s\n%s\n", what, msg ? msg : "");
    abort();
}

static int key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const char delims[] = "\t^~`!#$%&*;?@+";
    struct leef_opts o = {
        .vendor = "Bank",
        .product = "cutover",
        .version = "0.2.0",
        .hostname = "edge-1.example",
        .pid = 4242,
        .facility = data[1] % 24,
        .delimiter = delims[(data[0] >> 1) % (sizeof delims - 1)],
    };
    enum leef_kind kind = (data[0] & 1) ? LEEF_SECURITY : LEEF_AUDIT;
    static char out[LEEF_MAX_MESSAGE + 1];
    int n = leef_encode(&o, kind, (const char *)data + 2, size - 2, out, sizeof out);
    if (n < 0) {
        if (n != CUT_EINVAL && n != CUT_ENOMEM)
            fail("an error code outside the contract", NULL);
        return 0;
    }
    if (n == 0 || n > LEEF_MAX_MESSAGE || out[n] != '\0' || strlen(out) != (size_t)n)
        fail("length, terminator or an embedded NUL", out);
    if (out[0] != '<')
        fail("no PRI", out);
    for (int i = 0; i < n; i++) {
        unsigned char c = (unsigned char)out[i];
        if ((c < 0x20 && !(c == '\t' && o.delimiter == '\t')) || c == 0x7f)
            fail("a control character in the message", out);
    }
    /* RFC 5424: "<PRI>1 TIMESTAMP HOSTNAME APP PROCID MSGID - " then the LEEF message; the
     * header fields are printable and never empty (NILVALUE "-"), so seven spaces end it. */
    const char *msg = out;
    for (int field = 0; field < 7; field++) {
        const char *sp = strchr(msg, ' ');
        if (!sp || sp == msg)
            fail("an RFC 5424 header field missing or empty", out);
        msg = sp + 1;
    }
    if (strncmp(msg - 2, "- LEEF:2.0|", 11) != 0)
        fail("no \"- LEEF:2.0|\" after the RFC 5424 header", out);
    int bars = 0;
    const char *attrs = NULL;
    for (const char *p = msg; *p; p++)
        if (*p == '|' && ++bars == 6)
            attrs = p + 1;
    if (bars != 6 || !attrs)
        fail("the LEEF message does not have exactly the six '|' of its header", out);
    /* Attributes: key=value separated by the delimiter. */
    const char *p = attrs;
    while (*p) {
        const char *end = strchr(p, o.delimiter);
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq || eq == p)
            fail("an attribute without key=", out);
        for (const char *k = p; k < eq; k++)
            if (!key_char(*k))
                fail("an attribute key with a character outside [A-Za-z0-9_.-]", out);
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}
