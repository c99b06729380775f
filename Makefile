# cutover - one non-recursive GNU Makefile.
#   make            build build/cutover (installs missing Debian packages first)
#   make test       unit + integration tests; ends with "N passed, M failed"
#   make test SAN=1 the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make test SAN=thread
#                   ThreadSanitizer build (build-tsan/) and the integration tests that exercise
#                   reloads, control changes, certificate rotation and health checks
#   make fuzz       libFuzzer harnesses (clang, ASan + UBSan) into build-fuzz/
#   make fuzz-run   each harness (or those in FUZZ_ONLY) for FUZZ_SECONDS (30) from a copy of its
#                   seed corpus; reproducers under build-fuzz/run/<harness>/artifacts/
#                   (docs/testing.md)
#   make demo       a real blue/green switch on loopback
#   make bench      side-by-side benchmarks (see bench/README.md)
#   make bench-fleet
#                   fleet propagation: a change on one replica -> every replica serves it, with
#                   the etcd fleet store vs. today's fan-out (bench/fleet_propagation.py)
#   make bench-fleet-rollback
#                   fleet plan rollback: green fails mid-shift -> every replica of 3 back on
#                   blue, from the first failing request (bench/fleet_rollback.py)
#   make demo-fleet three replicas sharing their state through etcd (scripts/demo_fleet.py)
#   make image      the container image cutover:$(VERSION) (Dockerfile; needs a Docker daemon)

SAN ?= 0
ifeq ($(SAN),1)
BUILD := build-san
# float-cast-overflow: gcc leaves it out of "undefined" (clang does not); a double converted to
# an integer it does not fit is undefined behaviour cutover must never reach.
SANFLAGS := -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined,float-cast-overflow
OPT := -O1
else ifeq ($(SAN),thread)
BUILD := build-tsan
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
OPT := -O1
else
BUILD := build
SANFLAGS :=
OPT := -O2
endif

CC ?= cc
PKGS := libevent libevent_pthreads libevent_openssl openssl libnghttp2 jansson libmaxminddb libcurl
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# -I.: every include names its file from the repository root ("proxy/http/http.h").
CFLAGS := -std=c17 -D_GNU_SOURCE -I. $(OPT) -g -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
          -Wno-missing-field-initializers -pthread -MMD -MP $(SANFLAGS) $(EXTRA_CFLAGS)
# EXTRA_CFLAGS reach the link line too, so a sanitizer given there (-fsanitize=...) links its
# runtime; EXTRA_LDFLAGS are for the link line only.
LDFLAGS := -pthread $(SANFLAGS) $(EXTRA_CFLAGS) $(EXTRA_LDFLAGS)

# The allocator of cutover itself: tcmalloc (gperftools' thread-caching malloc, Debian's
# libtcmalloc-minimal4) outside the sanitizer builds, which bring their own. Every request makes
# 10-35 small allocations in libraries cutover cannot pool (nghttp2's streams and header tables,
# libevent's buffers, OpenSSL's records); glibc's malloc spends 150-250 instructions on each
# (bench/RESULTS.md), tcmalloc's per-thread caches a fraction of that. MALLOC=libc keeps glibc's.
MALLOC ?= tcmalloc
ifeq ($(strip $(SANFLAGS))$(MALLOC),tcmalloc)
MALLOC_LIBS := -l:libtcmalloc_minimal.so.4
endif

# Sources by folder (docs/architecture.md): core/ (libc only), config/, proxy/<part>/, control/.
LIB_SRC := $(wildcard core/*.c) $(wildcard config/*.c) $(wildcard proxy/*/*.c) \
           $(wildcard control/*.c)
# cutoverctl (control/cli/): its own objects, not in the library; main.c apart so that the unit
# tests can link the rest.
CLI_SRC := $(filter-out control/cli/main.c,$(wildcard control/cli/*.c))
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(shell find tests/unit -name '*.c' 2>/dev/null | sort) # quiet where tests/ is absent (the image build)
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/%.o)

.PHONY: all deps deps-test deps-bench deps-fuzz test unit integration demo bench bench-smoke \
        bench-fleet bench-fleet-rollback demo-fleet clean format fuzz fuzz-run image
all: $(BUILD)/cutover $(BUILD)/cutoverctl

deps:
	@scripts/deps.sh build
deps-test:
	@scripts/deps.sh test
deps-bench:
	@scripts/deps.sh bench
deps-fuzz:
	@scripts/deps.sh fuzz

$(BUILD)/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(BUILD)/libcutover.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/cutover: $(BUILD)/proxy/main.o $(BUILD)/libcutover.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(MALLOC_LIBS)

# cutoverctl takes from the library only what it uses (the operation table, the HTTP/1.1
# response parser and the admin API endpoint parser); OpenSSL comes with PKG_LIBS.
$(BUILD)/cutoverctl: $(BUILD)/control/cli/main.o $(CLI_OBJ) $(BUILD)/libcutover.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# The unit tests link cutoverctl's objects too (not its main.c) for tests/unit/control/cli/.
$(BUILD)/unit_tests: $(UNIT_OBJ) $(CLI_OBJ) $(BUILD)/libcutover.a | deps-test
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lcriterion

$(BUILD)/tests/unit/%.o: tests/unit/%.c | deps-test
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

# Test tools the integration tests run (tests/tools/): etcd_probe drives control/etcd.c against
# a real etcd (tests/integration/control/test_etcd_client.py).
TEST_TOOLS := $(BUILD)/etcd_probe

$(BUILD)/etcd_probe: $(BUILD)/tests/tools/etcd_probe.o $(BUILD)/libcutover.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# Under SAN=thread only the integration tests run (Criterion cannot run under TSan).
test: deps-test $(BUILD)/cutover $(BUILD)/cutoverctl $(TEST_TOOLS) $(if $(filter thread,$(SAN)),,$(BUILD)/unit_tests)
	@BUILD=$(BUILD) SAN=$(SAN) scripts/run-tests.sh

unit: $(BUILD)/unit_tests
	$(BUILD)/unit_tests

integration: deps-test $(BUILD)/cutover $(BUILD)/cutoverctl $(TEST_TOOLS)
	@BUILD=$(BUILD) SAN=$(SAN) ONLY=integration scripts/run-tests.sh

# ---- fuzzing (tests/fuzz/, docs/testing.md) -----------------------------------------------------
# Its own build directory and compiler whatever BUILD and SAN say: the library is compiled with
# libFuzzer's coverage instrumentation, ASan and UBSan, each harness links it with the fuzzer.
FUZZ_BUILD ?= build-fuzz
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 30
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=c17 -D_GNU_SOURCE -I. -O1 -g -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
               -Wno-missing-field-initializers -pthread -MMD -MP -fsanitize=fuzzer-no-link \
               $(FUZZ_SAN)
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
# Harnesses that run a control thread (and a worker) link the shared set-up and resolve
# endpoint names without DNS (tests/fuzz/support/fuzz_ctl.c wraps getaddrinfo).
FUZZ_CTL := commands h2_server h1_conn
FUZZ_CTL_BINS := $(FUZZ_CTL:%=$(FUZZ_BUILD)/fuzz_%)

fuzz: deps-fuzz $(FUZZ_BINS)

fuzz-run: fuzz
	@FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh $(FUZZ_ONLY)

$(FUZZ_BUILD)/%.o: %.c | deps-fuzz
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(FUZZ_BUILD)/libcutover.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_CTL_BINS): $(FUZZ_BUILD)/tests/fuzz/support/fuzz_ctl.o
$(FUZZ_CTL_BINS): FUZZ_LDEXTRA := -Wl,--wrap=getaddrinfo

.SECONDARY: $(FUZZ_NAMES:%=$(FUZZ_BUILD)/tests/fuzz/fuzz_%.o)
$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_BUILD)/libcutover.a
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -pthread $(FUZZ_LDEXTRA) -o $@ \
	    $(filter %.o,$^) $(FUZZ_BUILD)/libcutover.a $(PKG_LIBS)

$(BUILD)/bench/origin: bench/origin.c | deps
	@mkdir -p $(dir $@)
	$(CC) -std=c17 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o $@ $< -lnghttp2

demo: deps-test $(BUILD)/cutover $(BUILD)/cutoverctl $(BUILD)/bench/origin
	@BUILD=$(BUILD) python3 scripts/demo.py

demo-fleet: deps-test $(BUILD)/cutover $(BUILD)/cutoverctl $(BUILD)/bench/origin
	@BUILD=$(BUILD) python3 scripts/demo_fleet.py

bench: deps-bench $(BUILD)/cutover
	@BUILD=$(BUILD) bench/run.sh

bench-smoke: deps-bench $(BUILD)/cutover
	@BUILD=$(BUILD) SMOKE=1 bench/run.sh

# N=changes per mode (1000), SMOKE=1 for 50 (nothing recorded); see bench/README.md.
bench-fleet: deps-bench deps-test $(BUILD)/cutover $(BUILD)/bench/origin
	@BUILD=$(BUILD) python3 bench/fleet_propagation.py

bench-fleet-rollback: deps-bench deps-test $(BUILD)/cutover $(BUILD)/bench/origin
	@BUILD=$(BUILD) python3 bench/fleet_rollback.py

# The version core/version.h writes (the image tag).
VERSION := $(shell sed -n 's/^\#define CUTOVER_VERSION "\(.*\)"/\1/p' core/version.h)

# The Docker build itself compiles (the Dockerfile's build stage); here only the daemon is needed.
image:
	@command -v docker >/dev/null 2>&1 || { \
	    echo "make image: no docker client on this machine (install docker.io, or build the" \
	         "Dockerfile with another OCI builder)" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { \
	    echo "make image: no Docker daemon answers (docker info failed): start one, or point" \
	         "DOCKER_HOST at one; nothing was built" >&2; exit 1; }
	docker build --build-arg VERSION=$(VERSION) -t cutover:$(VERSION) .

format:
	clang-format -i $$(find core proxy config control tests/unit tests/fuzz -name '*.[ch]')

clean:
	rm -rf build build-san build-tsan $(FUZZ_BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
ifneq ($(filter fuzz fuzz-run $(FUZZ_BUILD)/%,$(MAKECMDGOALS)),)
-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
endif
