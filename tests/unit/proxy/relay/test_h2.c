/* The pure part of the HTTP/2 server side: preface detection. (The request head collector and
 * the connection-specific field rule are tested with proxy/http/fields.c in test_fields.c.) */
#include <criterion/criterion.h>
#include <string.h>

#include "proxy/relay/h2.h"

Test(h2, preface)
{
    cr_assert_eq(h2_preface_match(H2_PREFACE, H2_PREFACE_LEN), 1);
    cr_assert_eq(h2_preface_match(H2_PREFACE "\0\0\0\4", H2_PREFACE_LEN + 4), 1);
    cr_assert_eq(h2_preface_match("PRI * HT", 8), 0);
    cr_assert_eq(h2_preface_match("P", 1), 0);
    cr_assert_eq(h2_preface_match("GET / HTTP/1.1\r\n", 16), -1);
    cr_assert_eq(h2_preface_match("PRI * HTTP/2.0\r\n\r\n", 18), 0);
    cr_assert_eq(h2_preface_match("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", 24), -1);
}
