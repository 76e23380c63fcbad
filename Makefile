# notifyd: see README.md. `make run` starts a server with development sign-in;
# `make test` runs vet and every test (race detector on) against the local
# PostgreSQL (TEST_DATABASE_URL to use another).

GO ?= go
export GOFLAGS ?= -buildvcs=false

.PHONY: run test vet unit bench build clean

run:
	NOTIFY_DEV_AUTH=1 $(GO) run ./cmd/notifyd serve

build:
	$(GO) build -o bin/notifyd ./cmd/notifyd
	$(GO) build -o bin/notifyd-bench ./cmd/notifyd-bench

vet:
	$(GO) vet ./...

test: vet
	$(GO) test -race -count=1 -timeout 20m ./...

bench:
	$(GO) run ./cmd/notifyd-bench

clean:
	rm -rf bin test-artifacts
