# kumo — build, test and benchmark targets. Everything is standard-library Go;
# test-only tools (memcached, libmemcached-tools, pymemcache, pylibmc, Cache::Memcached, tokyocabinet) are
# installed by scripts/install-test-tools.sh when a target needs them.

GO       ?= go
BIN      ?= bin
CMDS     := $(notdir $(wildcard cmd/*))
export CGO_ENABLED := 0

.PHONY: all build test test-short vet cross bench bench-store bench-rpc bench-memcache run clean tools

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -o $(BIN)/ ./cmd/...

vet:
	$(GO) vet ./...

# The full suite: vet, then every package with the race detector, including
# integration tests that start the real binaries on 127.0.0.1; then the
# packages whose socket calls are raw only without the race detector (see
# internal/rawio) once more without it.
test: vet
	CGO_ENABLED=1 $(GO) test -race -timeout 18m ./...
	$(GO) test ./internal/rawio ./proto/rpc

# Linux first, nothing that stops other Unixes later: the binaries and
# packages must build for FreeBSD, macOS, OpenBSD and NetBSD too (CI runs
# this; the tests may stay Linux-only: network namespaces, Pdeathsig).
cross:
	GOOS=freebsd $(GO) build ./...
	GOOS=darwin $(GO) build ./...
	GOOS=openbsd $(GO) build ./...
	GOOS=netbsd $(GO) build ./...

test-short: vet
	$(GO) test -short ./...

tools:
	./scripts/install-test-tools.sh

# Benchmarks are never tests: they run side by side with their anchor and
# report ratios. See BENCHMARKS.md for the recorded figures.
bench: bench-store bench-rpc bench-memcache

bench-store: build
	./scripts/bench-store.sh

bench-rpc:
	$(GO) test -run '^$$' -bench 'RPC' -benchmem ./proto/rpc/

bench-memcache:
	$(GO) test -run '^$$' -bench . -benchmem ./proto/memcache/

run: build
	$(BIN)/kumo-local

clean:
	rm -rf $(BIN)

# The rebalancing and recovery scenarios (kumofs's rt/01-09) in their long
# form: 20 loops each, under load, with the end-of-scenario checks.
CHAOS_LOOPS ?= 20
.PHONY: chaos
chaos:
	KUMO_CHAOS_LOOPS=$(CHAOS_LOOPS) $(GO) test -count=1 -timeout 90m -v -run 'TestScenarios' ./kumo/integration/ 2>&1 | tee chaos.log | grep -E '^\s*(---|ok|FAIL|PASS)|scenario_test'

# The differential scripts against memcached while servers are added,
# killed and detached under them, for 10 seeds. Not part of make test: now
# and then memcached itself answers an incr or decr "non-numeric" under
# load where kumo gives a number (README "Known gaps").
.PHONY: test-rebalance-diff
test-rebalance-diff:
	KUMO_REBALANCE_DIFF=1 KUMO_DIFF_SEEDS="$(or $(SEEDS),1 2 3 4 5 6 7 8 9 10)" $(GO) test -count=1 -timeout 30m -v -run 'TestDifferentialDuringRebalance' ./kumo/integration/ 2>&1 | grep -vE '^\s+[0-9]{4}-' 

# The manager's status page rendered in headless Chromium (installs Debian's
# chromium when missing); run by CI after make test.
.PHONY: test-ui
test-ui:
	./scripts/test-ui.sh

# memcached, a 1-server and a 3-server kumo cluster under the same kumo-bench
# loads, alternating; prints medians and ratios (see BENCHMARKS.md).
.PHONY: bench-cluster
bench-cluster:
	./scripts/bench-cluster.sh

# Memory per stored item of one server at 1M items, next to memcached.
.PHONY: memory
memory: build
	./scripts/memory.sh

# CPU cost per request of gateway and servers (docs/capacity.md).
.PHONY: capacity
capacity:
	./scripts/capacity.sh

# The hostile-conditions tests (partitions in network namespaces, clock
# skew, connection floods, RPC parameter fuzzing, bad input at every port).
# They also run in make test; this target runs just them, verbosely.
.PHONY: test-hostile
test-hostile:
	$(GO) test -count=1 -v -run 'TestPartition|TestFencing|TestClockSkew|TestConnectionFloods|TestRPCParameterFuzz|TestBadInputEverywhere|TestMultiHost|TestDiskFull' ./kumo/integration/ ./store/

# Every fuzz target in the tree for FUZZTIME each (about 30 targets: half an
# hour at the default). make test runs only their seed corpora; this searches
# further. A failing input is written to the package's testdata/fuzz/ and
# stops the run; commit it with the fix, as a regression case.
FUZZTIME ?= 1m
.PHONY: fuzz
fuzz:
	@for p in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$p | grep '^Fuzz'); do \
			echo "== $$p $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$p || exit 1; \
		done; \
	done
