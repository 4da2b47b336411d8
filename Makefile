# durachord: a persistent Chord DHT node.
GO          ?= go
BIN         := bin
TOOLS       := $(CURDIR)/$(BIN)/tools
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)
# The fuzz smoke run per target (CI); longer runs: make fuzz FUZZTIME=5m
FUZZTIME    ?= 10s

.PHONY: all build test race lint fmt bench sim fuzz e2e demo clean

all: build

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/dhtd ./cmd/dhtctl

test:
	$(GO) test -count=1 ./...

race:
	$(GO) test -race -count=1 ./...

$(STATICCHECK):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(TOOLS)/staticcheck $(STATICCHECK)

lint: $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	@$(GO) mod tidy -diff >/dev/null || { echo "go mod tidy would change go.mod/go.sum:"; $(GO) mod tidy -diff; exit 1; }

fmt:
	gofmt -w $$(git ls-files '*.go')

# Fuzz smoke: every fuzz target for FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# End-to-end tests: real dhtd processes with real TLS on 127.x addresses.
# `make test` runs the package too, but its tests skip without DURACHORD_E2E=1.
# End-to-end tests: real dhtd processes with real TLS on 127.x addresses.
# `make test` runs the package too, but its tests skip without DURACHORD_E2E=1.
e2e:
	DURACHORD_E2E=1 $(GO) test -count=1 -timeout 15m ./e2e/

# Ring simulation on the in-memory network (virtual time): hops and correct
# lookups for N = 64..4096, cold, warm and under churn. SIMFLAGS adds flags.
sim:
	$(GO) run ./chord/chordtest/sim $(SIMFLAGS)

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./store/

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
