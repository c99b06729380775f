/* fuzz_state.c - libFuzzer harness for the durable state file loader (control/state.h):
 * state_from_json() on the input; whatever it accepts must be written by state_to_json() as
 * text that loads again (state_from_json()) into a state that writes the same text, and
 * state_copy() must give the same text too. abort() otherwise.
 *
 * A state file carries a SHA-256 checksum, which random bytes never match. So byte 0 chooses:
 * bit 0 clear: the rest is loaded as it is (the JSON reader and the format/checksum checks);
 * bit 0 set: the rest is read as JSON, its "checksum" is replaced by the right one (computed as
 * control/state.c does: SHA-256 of the compact sorted-key text of everything else) and the
 * result is loaded, so the fuzzer reaches the validation of routes, pools and weights.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/state.h"
#include "core/cut.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *a, const char *b)
{
    fprintf(stderr, "\n==FUZZ CHECK FAILED== state: %s\n--- first\n%s\n--- second\n%s\n", what,
            a ? a : "(null)", b ? b : "(null)");
    abort();
}

/* The input with its checksum made right; NULL when it is not a JSON object. */
static char *with_checksum(const char *text, size_t len)
{
    json_t *root = json_loadb(text, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return NULL;
    }
    json_object_del(root, "checksum");
    char *canon = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[65];
    char *out = NULL;
    if (canon && EVP_Digest(canon, strlen(canon), md, &mdlen, EVP_sha256(), NULL) && mdlen == 32) {
        for (unsigned i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
        if (json_object_set_new(root, "checksum", json_string(hex)) == 0)
            out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    }
    free(canon);
    json_decref(root);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    char *fixed = NULL;
    if (data[0] & 1) {
        fixed = with_checksum(text, len);
        if (!fixed)
            return 0;
        text = fixed;
        len = strlen(fixed);
    }
    struct state st;
    char err[1024];
    int rc = state_from_json(text, len, &st, err, sizeof err);
    if (rc != 0) {
        if (rc != CUT_EINVAL && rc != CUT_ENOMEM)
            fail("an error code outside the contract", err, NULL);
        if (!err[0])
            fail("refused without a message", NULL, NULL);
        if (st.nroutes != 0 || st.routes != NULL)
            fail("refused but not left empty", err, NULL);
        free(fixed);
        return 0;
    }
    char *t1 = state_to_json(&st);
    if (!t1)
        fail("state_to_json failed", NULL, NULL);
    struct state back;
    if (state_from_json(t1, strlen(t1), &back, err, sizeof err) != 0)
        fail("what state_to_json wrote does not load", t1, err);
    char *t2 = state_to_json(&back);
    if (!t2 || strcmp(t1, t2) != 0)
        fail("state_to_json(state_from_json(t)) != t", t1, t2);
    struct state copy;
    if (state_copy(&copy, &st) != 0)
        fail("state_copy failed", NULL, NULL);
    char *t3 = state_to_json(&copy);
    if (!t3 || strcmp(t1, t3) != 0)
        fail("a copy writes different text", t1, t3);
    free(t1);
    free(t2);
    free(t3);
    state_dispose(&st);
    state_dispose(&back);
    state_dispose(&copy);
    free(fixed);
    return 0;
}
