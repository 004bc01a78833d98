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

## bench: every benchmark of BENCHMARKS.md, one at a time, then the report (about 25 minutes; not in CI)
BENCH_OUT := bench.out
BENCH     := $(GO) test -run '^$$' -count 1 -p 1 -timeout 30m
bench:
	@date +%s > bench-start.out; : > $(BENCH_OUT)
	$(call bench_run,$(BENCH) -bench . -skip 'AuditFleet|Export|Import' -benchtime 1s ./tenancy/...)
	$(call bench_run,TENANTGATE_BENCH_AUDIT_DATABASES=1000 $(BENCH) -bench AuditFleet -benchtime 1x ./tenancy/audit/)
	$(call bench_run,TENANTGATE_BENCH_ARCHIVE_ROWS=100000 $(BENCH) -bench 'Export$$|Import$$' -benchtime 3x ./tenancy/archive/)
	$(call bench_run,$(BENCH) -bench ExportMillion -benchtime 1x ./tenancy/archive/)
	$(call bench_run,$(BENCH) -bench 'LoadGatewayVsBare|AddedLatency|ThousandTenants|NoisyNeighbour|MeteringOverhead' -benchtime 1x ./router/)
	$(call bench_run,$(BENCH) -bench Provision -benchtime 20x ./provisioner/)
	$(call bench_run,$(BENCH) -bench 'EnterpriseCreate|UpgradeToDedicated' -benchtime 1x ./provisioner/)
	$(call bench_run,TENANTGATE_BENCH_FLEET_TENANTS=1000 $(BENCH) -bench FleetCreate -benchtime 1x ./provisioner/)
	$(call bench_run,$(BENCH) -bench Fanout -benchtime 1x ./provisioner/fanout/)
	$(call bench_run,$(BENCH) -bench Move100k -benchtime 1x ./provisioner/move/)
	$(GO) run ./cmd/benchreport -in $(BENCH_OUT) -out BENCHMARKS.md -started $$(cat bench-start.out)

# bench_run runs one command of `make bench`, appending to $(BENCH_OUT) the
# load average before it, the command, its output, and a FAIL line if it
# fails (cmd/benchreport reports those).
bench_run = @echo "load: $$(cat /proc/loadavg 2>/dev/null)" >> $(BENCH_OUT); echo "command: $(1)" | tee -a $(BENCH_OUT); \
	{ $(1) 2>&1 || echo "FAIL	make bench: exit status $$? from: $(1)"; } | tee -a $(BENCH_OUT)

## lint: formatting, vet and staticcheck
lint:
	@test -z "$$(gofmt -l .)" || (echo "gofmt would change:"; gofmt -l .; exit 1)
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

clean:
	rm -rf bin
