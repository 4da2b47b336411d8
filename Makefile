# durachord: a persistent Chord DHT node.
GO          ?= go
BIN         := bin
TOOLS       := $(CURDIR)/$(BIN)/tools
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)
GOTESTSUM_VERSION := v1.13.0
GOTESTSUM   := $(TOOLS)/gotestsum-$(GOTESTSUM_VERSION)
# Every package but e2e, whose real-process tests run with `make e2e`.
UNIT_PKGS    = $$($(GO) list ./... | grep -v '/e2e$$')
# The fuzz run per target, as CI runs it (9 targets: about 5 minutes with
# their builds); longer runs: make fuzz FUZZTIME=5m
FUZZTIME    ?= 30s

.PHONY: all build test race lint fmt bench sim fuzz e2e demo clean monitoring-check

all: build

# What --version prints: the nearest tag (or the commit) and the commit.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BUILDINFO := github.com/durachord/durachord/internal/buildinfo
LDFLAGS := -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).commit=$(COMMIT)

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/dhtd ./cmd/dhtctl

# The unit tests. A test that needs a tool the machine lacks skips with its
# reason (go test -v shows it); with CI=true such a skip fails instead.
test:
	$(GO) test -count=1 $(UNIT_PKGS)

race:
	$(GO) test -race -count=1 $(UNIT_PKGS)

$(STATICCHECK):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(TOOLS)/staticcheck $(STATICCHECK)

$(GOTESTSUM):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install gotest.tools/gotestsum@$(GOTESTSUM_VERSION)
	mv $(TOOLS)/gotestsum $(GOTESTSUM)

lint: $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	@$(GO) mod tidy -diff >/dev/null || { echo "go mod tidy would change go.mod/go.sum:"; $(GO) mod tidy -diff; exit 1; }

fmt:
	gofmt -w $$(git ls-files '*.go')

# Fuzz: every fuzz target for FUZZTIME each (scripts/fuzz.sh says how it
# tells the fuzzing engine's deadline race from a finding).
fuzz:
	GO=$(GO) scripts/fuzz.sh $(FUZZTIME)

# The Prometheus rules in deploy/monitoring: their syntax, and their unit
# tests (each alert on synthetic series). Needs promtool (Debian: prometheus).
PROMTOOL ?= promtool
monitoring-check:
	@command -v $(PROMTOOL) >/dev/null 2>&1 || { echo "monitoring-check: $(PROMTOOL) not found: install it (apt-get install prometheus) or set PROMTOOL=/path/to/promtool"; exit 1; }
	$(PROMTOOL) check rules deploy/monitoring/durachord.rules.yml
	$(PROMTOOL) test rules deploy/monitoring/durachord.rules.test.yml

# End-to-end tests: real dhtd processes with real TLS on 127.x addresses, and
# (as root) separate hosts in network namespaces and the install test. Every
# test's result is printed as it ends; the summary lists each skipped test with
# its reason and closes with the counts. E2EFLAGS adds go test flags
# (E2EFLAGS='-run TestPutGet').
E2EFLAGS ?=
e2e: $(GOTESTSUM)
	DURACHORD_E2E=1 $(GOTESTSUM) --format testname -- -count=1 -timeout 15m $(E2EFLAGS) ./e2e/

# Ring simulation on the in-memory network (virtual time): hops and correct
# lookups for N = 64..4096, cold, warm and under churn; calls per GET and PUT;
# ring maintenance calls per node per minute. SIMFLAGS adds flags.
sim:
	$(GO) run ./chord/chordtest/sim $(SIMFLAGS)

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./store/

# Side by side on this machine, on the same load: a ring of ours (dhtctl
# devnet), OpenDHT (dhtnode, as root) and etcd where installed, through
# ../shared/bench, and the bare server; one table of ops/s, p50 and p99 with
# the ratios. NODES, CONC (clients), VALUE_SIZE (bytes), OPS (per phase),
# REPLICATION, REPS (runs; medians), PEERS (opendht,etcd,bare or a subset);
# BENCHRINGFLAGS adds flags (-json FILE, -etcd-members N, -timeout D).
NODES       ?= 4
CONC        ?= 32
VALUE_SIZE  ?= 100
OPS         ?= 5000
REPLICATION ?= 3
REPS        ?= 1
PEERS       ?= opendht,etcd,bare
BENCHRINGFLAGS ?=
.PHONY: bench-ring
bench-ring: build
	$(GO) build -o $(BIN)/bench-ring ./scripts/bench-ring
	$(BIN)/bench-ring -dhtctl $(BIN)/dhtctl -shared ../shared/bench -nodes $(NODES) -c $(CONC) \
	  -value-size $(VALUE_SIZE) -ops $(OPS) -replication $(REPLICATION) -reps $(REPS) -peers '$(PEERS)' $(BENCHRINGFLAGS)

# A 4-node ring on 127.0.0.1 with a put and a get; Ctrl-C stops it.
demo: build
	$(BIN)/dhtctl devnet --nodes 4 --demo

clean:
	rm -rf $(BIN)

# Container image: FROM scratch with the static binaries of `make build`, so it
# builds with no registry. The build context is a staging folder, not the repo.
IMAGE         ?= durachord:latest
IMAGE_CONTEXT := $(BIN)/image
.PHONY: image compose-test
image: build
	rm -rf $(IMAGE_CONTEXT)
	mkdir -p $(IMAGE_CONTEXT)/rootfs/data $(IMAGE_CONTEXT)/rootfs/certs $(IMAGE_CONTEXT)/rootfs/ca
	chmod 0700 $(IMAGE_CONTEXT)/rootfs/data $(IMAGE_CONTEXT)/rootfs/certs $(IMAGE_CONTEXT)/rootfs/ca
	cp $(BIN)/dhtd $(BIN)/dhtctl $(IMAGE_CONTEXT)/
	DOCKER_BUILDKIT=$${DOCKER_BUILDKIT:-0} docker build --pull=false -f deploy/Dockerfile -t $(IMAGE) $(IMAGE_CONTEXT)

# A 4-node ring in Docker Compose: up, put and get through the published API
# port, always down -v. Skips (exit 0, one line) where no Docker engine answers.
compose-test:
	IMAGE=$(IMAGE) deploy/compose-test.sh
