# Ingot's build. `make test` is the test command CI runs (.ci/run);
# `make demo` is the quickstart. Both install what they need first.

GO            ?= go
BIN           := bin
STATICCHECK   := honnef.co/go/tools/cmd/staticcheck@v0.8.2
PROTOC_GEN_GO := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.11
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
TOOLS         := $(CURDIR)/$(BIN)/tools
DEMO_DIR      := .demo

.PHONY: all build test test-short bench lint proto initramfs e2e demo demo-down setup setup-demo clean

all: build

setup:
	@scripts/setup.sh test

setup-demo:
	@scripts/setup.sh demo

build:
	$(GO) build -o $(BIN)/ ./coordinator ./agent ./e2e/load ./e2e/vbmc/cmd/vbmc

# The whole suite: unit tests, integration tests against real redis-server
# processes, and the baremetal CLI against a real coordinator. Missing
# tools fail the run instead of skipping tests.
test: setup
	INGOT_REQUIRE_REDIS=1 INGOT_REQUIRE_TOOLS=1 $(GO) test -race -count=1 -timeout 40m ./...

# Without root or installed tools: skips what needs them.
test-short:
	$(GO) test -short ./...

# Go micro-benchmarks, then the load tool against a real coordinator with
# its embedded redis-server (figures recorded in docs/benchmarks.md).
bench: setup build
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./pkg/... ./coordinator/...
	INGOT_REQUIRE_REDIS=1 $(GO) test -run '^$$' -bench PowerSync -benchtime 5x -count 3 ./e2e/power
	INGOT_REQUIRE_TOOLS=1 $(GO) test -run '^$$' -bench BootStorm -benchtime 1x -timeout 30m ./e2e/bootstorm
	scripts/bench.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Regenerates the agent <-> coordinator gRPC code (committed) with pinned
# generators and Debian's protoc.
proto:
	@scripts/setup.sh proto
	GOBIN=$(TOOLS) $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(TOOLS) $(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH=$(TOOLS):$$PATH protoc --go_out=. --go_opt=module=github.com/ingot/ingot \
		--go-grpc_out=. --go-grpc_opt=module=github.com/ingot/ingot proto/agent.proto

# The agent ramdisk: build/initramfs/vmlinuz and initramfs.cpio.gz (the
# Debian cloud kernel, fetched once, and a u-root initramfs with the
# agent as /init); initramfs/README.md has the details.
initramfs:
	initramfs/build.sh

# Only the QEMU end-to-end scenarios (make test runs them too).
e2e: setup initramfs
	INGOT_REQUIRE_REDIS=1 INGOT_REQUIRE_TOOLS=1 $(GO) test -count=1 -timeout 40m -v ./e2e/scenarios

# The quickstart: provisions one QEMU machine through IPMI, PXE and the
# agent, and leaves it all running; `make demo-down` stops it.
demo: setup-demo build initramfs
	@scripts/demo.sh

demo-down:
	@scripts/demo.sh down

clean:
	rm -rf $(BIN) $(DEMO_DIR)
