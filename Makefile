# tenantgate — the two commands that matter: `make run` and `make test`.
GO        ?= go
BIN       := bin/tenantgate
PKGS      := ./...

.PHONY: all build run test bench lint clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/tenantgate

## run: the quickstart (init, demo tenants, gateway on :8080, ops on 127.0.0.1:9090)
run: build
	./$(BIN) dev

## test: the whole suite against the local PostgreSQL and Redis
test:
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

## bench: micro-benchmarks and the gateway-vs-bare load benchmark
bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s -count 1 -timeout 30m $(PKGS)

## lint: formatting, vet and staticcheck
lint:
	@test -z "$$(gofmt -l .)" || (echo "gofmt would change:"; gofmt -l .; exit 1)
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

clean:
	rm -rf bin
