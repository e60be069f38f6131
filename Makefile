# Targets: test (installs the database servers the integration tests start, if missing), bench,
# fuzz, quickstart.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go

.PHONY: test bench fuzz quickstart

test:
	bash testdata/ensure-servers.sh
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 25m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./... | tee bench.txt

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseDSN -fuzztime 60s .

quickstart:
	cd examples && $(GO) run ./quickstart
