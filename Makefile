# cutover - one non-recursive GNU Makefile.
#   make            build build/cutover (installs missing Debian packages first)
#   make test       unit + integration tests; ends with "N passed, M failed"
#   make test SAN=1 the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make demo       a real blue/green switch on loopback
#   make bench      side-by-side benchmarks (see bench/README.md)

SAN ?= 0
ifeq ($(SAN),1)
BUILD := build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT := -O1
else
BUILD := build
SANFLAGS :=
OPT := -O2
endif

CC ?= cc
PKGS := libevent libevent_pthreads libevent_openssl openssl libnghttp2 jansson libmaxminddb
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS := -std=c17 -D_GNU_SOURCE $(OPT) -g -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
          -Wno-missing-field-initializers -pthread -MMD -MP $(SANFLAGS) $(EXTRA_CFLAGS)
LDFLAGS := -pthread $(SANFLAGS)

LIB_SRC := $(filter-out proxy/main.c,$(wildcard proxy/*.c)) $(wildcard config/*.c) \
           $(filter-out control/cutoverctl.c,$(wildcard control/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/%.o)

.PHONY: all deps deps-test deps-bench test unit integration demo bench bench-smoke clean format
all: $(BUILD)/cutover $(BUILD)/cutoverctl

deps:
	@scripts/deps.sh build
deps-test:
	@scripts/deps.sh test
deps-bench:
	@scripts/deps.sh bench

$(BUILD)/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(BUILD)/libcutover.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/cutover: $(BUILD)/proxy/main.o $(BUILD)/libcutover.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# cutoverctl takes from the library only what it uses (the HTTP/1.1 response parser and the
# admin API endpoint parser); OpenSSL comes with PKG_LIBS.
$(BUILD)/cutoverctl: $(BUILD)/control/cutoverctl.o $(BUILD)/libcutover.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/unit_tests: $(UNIT_OBJ) $(BUILD)/libcutover.a | deps-test
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lcriterion

$(BUILD)/tests/unit/%.o: tests/unit/%.c | deps-test
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

test: deps-test $(BUILD)/cutover $(BUILD)/cutoverctl $(BUILD)/unit_tests
	@BUILD=$(BUILD) SAN=$(SAN) scripts/run-tests.sh

unit: $(BUILD)/unit_tests
	$(BUILD)/unit_tests

integration: deps-test $(BUILD)/cutover $(BUILD)/cutoverctl
	@BUILD=$(BUILD) SAN=$(SAN) ONLY=integration scripts/run-tests.sh

$(BUILD)/bench/origin: bench/origin.c | deps
	@mkdir -p $(dir $@)
	$(CC) -std=c17 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o $@ $< -lnghttp2

demo: deps-test $(BUILD)/cutover $(BUILD)/cutoverctl $(BUILD)/bench/origin
	@BUILD=$(BUILD) python3 scripts/demo.py

bench: deps-bench $(BUILD)/cutover
	@BUILD=$(BUILD) bench/run.sh

bench-smoke: deps-bench $(BUILD)/cutover
	@BUILD=$(BUILD) SMOKE=1 bench/run.sh

format:
	clang-format -i proxy/*.[ch] config/*.[ch] control/*.[ch] tests/unit/*.c

clean:
	rm -rf build build-san

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
