/* fuzz_cfg.c - libFuzzer harness for the configuration parser (config/cfg.h): cfg_parse() on
 * the input as a JSON document, then the dump round trip of config/cfg_dump.c. For every
 * accepted configuration x, dump(parse(x)) must parse again and dump to the same text:
 * dump(parse(x)) == dump(parse(dump(parse(x)))). A refused one must come with at least one
 * error, each with a path and a message. abort() otherwise.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg.h"
#include "core/cut.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *a, const char *b)
{
    fprintf(stderr, "\n==FUZZ CHECK FAILED== cfg: %s\n--- first\n%s\n--- second\n%s\n", what,
            a ? a : "(null)", b ? b : "(null)");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cfg *cfg = NULL;
    struct cfg_errors errs;
    int rc = cfg_parse((const char *)data, size, &cfg, &errs);
    if (rc < 0) {
        if (cfg != NULL || errs.n == 0)
            fail("a refusal without errors, or with a configuration", NULL, NULL);
        for (size_t i = 0; i < errs.n; i++)
            if (errs.v[i].path == NULL || errs.v[i].message == NULL || !errs.v[i].message[0])
                fail("an error without path or message", NULL, NULL);
        cfg_errors_dispose(&errs);
        return 0;
    }
    if (cfg == NULL || errs.n != 0)
        fail("accepted without a configuration, or with errors", NULL, NULL);
    cfg_errors_dispose(&errs);

    char *d1 = cfg_dump(cfg);
    if (d1 == NULL)
        fail("cfg_dump failed", NULL, NULL);
    struct cfg *again = NULL;
    if (cfg_parse(d1, strlen(d1), &again, &errs) < 0) {
        cfg_errors_print(&errs, "dump", stderr);
        fail("the dump of an accepted configuration is refused", d1, NULL);
    }
    cfg_errors_dispose(&errs);
    char *d2 = cfg_dump(again);
    if (d2 == NULL || strcmp(d1, d2) != 0)
        fail("dump(parse(x)) != dump(parse(dump(parse(x))))", d1, d2);
    free(d1);
    free(d2);
    cfg_free(again);
    cfg_free(cfg);
    return 0;
}
