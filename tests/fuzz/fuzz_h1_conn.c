/* fuzz_h1_conn.c - libFuzzer harness for the HTTP/1.1 server connection (proxy/h1.c) end to end:
 * the same set-up as fuzz_h2_server.c (a worker, a control thread, a checking upstream) with the
 * input sent as it is, from its second byte, instead of after the HTTP/2 preface. Requests are
 * parsed, routed, forwarded (the upstream checks every forwarded head with the project's parser)
 * and answered, with pipelining, bodies, Expect: 100-continue and upgrades.
 */
#define FUZZ_H1 1
#include "tests/fuzz/fuzz_h2_server.c"
