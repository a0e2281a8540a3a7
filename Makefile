# The Makefile is the interface: CI (.ci/run) calls `make test`; README's
# first lines are `make run` and `make test`.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN      := bin/teamflow
export CGO_ENABLED ?= 0

.PHONY: run build ui ui-check deps test test-go test-e2e test-ui test-fuzz figures clean-results lint fmt-check vet staticcheck bench soak clean

## run: build the UI and the binary, then serve on 127.0.0.1:8080 with data in ./data
run: ui build
	$(BIN) serve --addr 127.0.0.1:8080 --data ./data

## build: the teamflow binary (embeds ui/dist)
build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/teamflow

## ui: install the UI's locked dependencies and build ui/dist
ui:
	cd ui && npm ci --no-audit --no-fund && npm run build

## deps: what the tests need on a fresh Debian machine (browser for UI tests)
deps:
	./scripts/install-test-deps.sh

## test: every test — lint, unit, end-to-end against the real binary, fault
## tests, UI in a real browser
test: clean-results deps lint ui-check test-go test-e2e test-ui test-fuzz figures

clean-results:
	rm -rf results

## ui-check: the committed ui/dist must be what its source builds
ui-check: ui
	git diff --exit-code --stat -- ui/dist || (echo "ui/dist is stale: run make ui and commit it" && exit 1)

test-go:
	$(GO) test -count=1 ./...
	# the race detector needs cgo (gcc and libc6-dev come from make deps)
	CGO_ENABLED=1 $(GO) test -count=1 -race -run 'RateLimit|LocalLog|Parallel|Concurren' ./httpapi/ ./storage/ ./engine/

## test-e2e: the real binary as separate processes (API, crash safety); one package at a time
test-e2e:
	$(GO) test -count=1 -p 1 -tags e2e -timeout 20m ./cmd/teamflow/...

## test-fuzz: 4 native fuzz targets, rotating per commit (RELIABILITY F2)
test-fuzz:
	./scripts/fuzz-rotate.sh

## figures: print every reliability figure the run wrote to results/
figures:
	@cat results/*.json 2>/dev/null | grep '"line"' | sed 's/.*"line": "\(.*\)".*/\1/' || true

test-ui: build
	cd ui && npm test && TEAMFLOW_BIN=$(CURDIR)/$(BIN) npm run e2e

lint: fmt-check vet staticcheck

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) tool staticcheck ./...
	$(GO) tool staticcheck -tags e2e ./cmd/...

## bench: start a throwaway cloud-mode server and load it (see docs/BENCHMARKS.md)
bench: build
	./scripts/bench.sh

## soak: the long fault and fuzz runs, by hand (see docs/RELIABILITY.md)
soak:
	./scripts/soak.sh

clean:
	rm -rf bin
