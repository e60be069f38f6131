# make test       every test, with -race, in every module (installs the database servers the
#                 integration tests start, if missing), then the drivers' own test suites run
#                 through hasql (internal/peersuite; fails on a difference not in expected.txt)
# make quickstart the quickstart on an embedded SQLite database
# make bench      the benchmark comparison tables (testdata/bench/ratios.sh)
# make fuzz       each fuzz target for FUZZTIME (default 60s)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
FUZZTIME ?= 60s
# Nested modules: their dependencies (SQLite, peer wrappers) stay out of hasql's go.mod.
MODULES := examples benchcmp otel compat cmd/hasql

.PHONY: test bench fuzz quickstart

test:
	bash testdata/ensure-servers.sh
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 45m ./...
	$(GO) run ./internal/peersuite
	for m in $(MODULES); do (cd $$m && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 10m ./...); done

bench:
	bash testdata/bench/ratios.sh

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseDSN$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzDSNPasswordNeverInError$$' -fuzztime $(FUZZTIME) .

quickstart:
	cd examples && $(GO) run ./quickstart
