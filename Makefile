# notifyd: see README.md. `make help` lists the targets. `make run` starts a
# server with development sign-in; `make test` runs vet and every test (race
# detector on) against the local PostgreSQL (TEST_DATABASE_URL to use
# another); `make check` is its quick subset for the edit-test loop.
#
# A target's `##` comment is its line in `make help`.

GO ?= go
export GOFLAGS ?= -buildvcs=false

.PHONY: help run build vet check test test-go test-web test-browser web-deps clean

run: ## start a server on the local PostgreSQL with development sign-in
	NOTIFY_DEV_AUTH=1 $(GO) run ./cmd/notifyd serve

help: ## list the targets
	@awk -F':.*## ' '/^[a-z][a-z-]*:.*## / { printf "  make %-20s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

build: ## build bin/notifyd and bin/notifyd-bench
	$(GO) build -o bin/notifyd ./cmd/notifyd
	$(GO) build -o bin/notifyd-bench ./cmd/notifyd-bench

vet: ## go vet every package
	$(GO) vet ./...

# The edit-test loop: vet, the Go tests without the race detector and
# without the slow ones (-short: every test over ~2 s, the private clusters,
# Hydra, nginx, the process clusters), and the browser client's unit tests.
# Under two minutes on a 2-core machine; `make test` runs everything.
check: vet web-deps ## quick: vet, the fast Go tests (-short), the client's unit tests
	$(GO) test -short -count=1 -timeout 5m ./...
	cd web && npm test

test: vet test-go test-web test-browser ## everything CI runs: vet, all Go tests with -race, web, browser

test-go: ## every Go test, race detector on
	$(GO) test -race -count=1 -timeout 20m ./...

web-deps:
	cd web && npm ci --no-audit --no-fund --loglevel=error

# The browser client: unit tests (Node's test runner) and a type check.
test-web: web-deps ## the browser client's unit tests and type check
	cd web && npm test && npx tsc -p .

# The monitoring page /test-notifications and the client in a real browser:
# Debian's Chromium (/usr/bin/chromium) driven by playwright-core, against a
# notifyd built once and a fresh database per test (web/e2e). Screenshots and
# logs go to test-artifacts/browser/.
test-browser: web-deps ## the monitoring page and the client in Chromium (web/e2e)
	cd web && npm run e2e

# Benchmarks. Each rule below runs one group of cmd/notifyd-bench's phases
# (`go run ./cmd/notifyd-bench -h` lists every phase, its flags and sizes)
# on fresh databases of the local PostgreSQL; the *_ARGS variables pass
# further flags. None runs in `make test`.
BENCH = $(GO) run ./cmd/notifyd-bench
.PHONY: bench bench-inbox

# The default phases: the in-process throughput/latency/producer figures,
# then notifyd as separate processes: 15,000 streams on one node, a
# broadcast to 10,000, a resume 10,000 behind, 3 nodes under load with a
# node killed; first the inbox reads (bench-inbox). About 4 minutes. Not
# included: lived, storm, rolling, snapshot, churn and versus (below).
bench: bench-inbox ## the default bench phases and the inbox reads (~4 minutes)
	$(BENCH)

# Inbox reads and state changes (count, pages, archive, snooze, seen) for a
# user with 500,000 of a table's 1,000,000 notifications (p50/p99 per
# operation), a Go benchmark of internal/postgres. Seeding takes a minute or
# two; INBOX_BENCH_ROWS=200000 for a quick run.
bench-inbox: ## inbox reads and changes at 1,000,000 notifications
	$(GO) test -run '^$$' -bench BenchmarkInbox -benchtime 300x -timeout 30m ./internal/postgres

# The long-lived table: notify.notifications seeded with published history
# to 100,000, 1,000,000 and 10,000,000 rows (100,000 users, 200 roles), and
# at each size a sparse user's (20 notifications) and a dense user's stream
# opening, resume, unread count and history page timed over HTTP against
# one node (p50/p99, ratio to 100,000 rows, the targets), with EXPLAIN
# (ANALYZE, BUFFERS) of the sparse user's statements. CPU- and disk-heavy:
# ~4 minutes on a quiet 2-core machine (3 of them seeding, ~50,000 rows/s)
# and ~4.5 GB of database at the end; LIVED_SIZES=20000,100000 for a quick run.
LIVED_SIZES ?= 100000,1000000,10000000
.PHONY: bench-lived
bench-lived: ## a lived-in table of 10^5..10^7 rows: opening, resume, counts
	$(BENCH) -phases lived -lived-sizes $(LIVED_SIZES)

# Reconnect storm on a lived-in table: notify.notifications seeded with
# 10,000,000 published rows (the lived seed), 3 nodes, 10,000 streams on the
# node that is SIGKILLed and 2,000 on each other node, 200 notifications/s
# each to one of 200 roles in turn (every stream gets one a second). Its
# clients reconnect as the browser client does (full-jitter backoff from
# 1 s), with Last-Event-ID, to the survivors. Reports, for the 10,000
# re-homed streams, kill -> first notification committed after the kill
# (target: all within 3 s), the survivors' commit -> receipt p99 in the 10 s
# after the kill (target <= 250 ms), the worker's publish rate and lag, the
# feed's lag, and the exactly-once check. CPU- and disk-heavy: ~4.5
# minutes on a 2-core machine, 3 of them seeding (~54,000 rows/s; 2.3 GB
# of notifications with their indexes); STORM_ROWS=100000 and
# STORM_ARGS='-storm-victim-streams 2000 -storm-survivor-streams 500' for a
# quick run.
STORM_ROWS ?= 10000000
STORM_ARGS ?=
.PHONY: bench-storm
bench-storm: ## a node with 10,000 streams killed on a 10,000,000-row table
	$(BENCH) -phases storm -storm-rows $(STORM_ROWS) $(STORM_ARGS)

# The storm without and with a read replica (DATABASE_REPLICA_URL): the
# storm's seed (STORM_ROWS) in a PostgreSQL cluster of the bench's own
# (initdb, pg_stat_statements preloaded, autovacuum off as at 5432) and a
# pg_basebackup standby of it; the storm runs 4 times on it, alternately
# without and with the standby as every node's replica, its streams first
# opening 20,000 seqs behind the head (older than any node's window: a
# cold start of every node, each opening replays from the table). Reports
# the primary's and the standby's CPU (/proc) and statements
# (pg_stat_statements, by kind) over the openings, the 10 s before the
# kill and the 10 s after it, and where the nodes' reads ran
# (notifyd_replica_reads_total). ~11 minutes at 10,000,000 rows (4 of
# them seeding, 20 s copying); docs/SCALING.md section 8. STORM_ROWS=100000
# STORM_ARGS='-storm-victim-streams 2000 -storm-survivor-streams 500
# -storm-behind 2000' for a quick run.
.PHONY: bench-storm-replica
bench-storm-replica: ## the storm without and with a read replica
	$(BENCH) -phases storm -storm-rows $(STORM_ROWS) -storm-replica 4 -storm-behind 20000 $(STORM_ARGS)

# Rolling restart: 3 nodes holding 9,000 streams (3,000 users) under 1,000
# notifications/s (90% to one user, 10% to one of 300 roles); each node in
# turn is taken out of rotation, stopped with SIGTERM (it hands its streams
# back at NOTIFY_DRAIN_RATE, within NOTIFY_SHUTDOWN_TIMEOUT=30s, Kubernetes'
# default grace period), started again on its address, and put back once
# /readyz answers 200, then the next. Reports
# commit -> receipt over every delivery (target p99 <= 1 s), split into
# notifications committed during a restart and between, and the
# exactly-once check. About two minutes; ROLLING_ARGS='-rolling-rows 1000000'
# to run it on a seeded table, '-rolling-pause 10s' to wait between nodes.
ROLLING_ARGS ?=
.PHONY: bench-rolling
bench-rolling: ## a rolling restart of 3 nodes under load
	$(BENCH) -phases rolling $(ROLLING_ARGS)

# A held snapshot: 1,000 single-row autocommit INSERTs a second for 10
# minutes while another session holds one REPEATABLE READ snapshot (what a
# forgotten psql session, a long report or pg_dump does), so vacuum removes
# nothing; commit -> receipt per minute, notify's dead tuples, and the target
# (the last minute's p99 <= 1.5 x the first's and <= 25 ms). About 11
# minutes; SNAPSHOT_ARGS='-snapshot-duration 2m -snapshot-window 20s' for a
# quick run.
SNAPSHOT_ARGS ?=
.PHONY: bench-snapshot
bench-snapshot: ## 10 minutes of inserts under a held snapshot
	$(BENCH) -phases snapshot $(SNAPSHOT_ARGS)

# Churn: the claim and publish, the feed's read and a retention batch timed
# on a fresh database, then again after 10,000,000 notifications passed
# through it (queued by the trigger, claimed and published, read, deleted by
# retention down to the newest 100,000, -churn-keep) with autovacuum as
# configured (target: each within 1.5 x).
# About 10 minutes; CHURN_ROWS=500000 for a quick run.
CHURN_ROWS ?= 10000000
.PHONY: bench-churn
bench-churn: ## claim, publish, feed and retention before and after 10^7 rows
	$(BENCH) -phases churn -churn-rows $(CHURN_ROWS)

# Versus (issue 15): notifyd beside Centrifugo v6.9.1 (memory broker,
# uni_sse), built from the Go module proxy through the module that
# cmd/notifyd-bench/centrifugo/go.mod pins (the first build takes minutes),
# each system read by the same SSE client in the bench. Interleaved rounds
# (notifyd, Centrifugo, ...; medians of 3): 100 streams at 200 messages/s
# for 10 s, p50/p99 commit -> receipt (notifyd) and publish -> receipt
# (Centrifugo); then 1,000 streams at saturation, deliveries/s and RSS per
# stream. Prints the ratios notifyd/Centrifugo against the targets (p50 and
# p99 <= 1.0x, deliveries/s >= 1.5x). About 3 minutes after the build;
# VERSUS_ARGS='-centrifugo-bin /path/to/centrifugo' skips the build.
VERSUS_ARGS ?=
.PHONY: bench-versus
bench-versus: ## notifyd beside Centrifugo v6.9.1, interleaved
	$(BENCH) -phases versus $(VERSUS_ARGS)

# Burst (issue 15): one node, 8,000 then 100,000 streams opened as fast as
# the client processes can (every stream one user's, then 10 a user), the
# node's RSS per stream and where it goes (heap, stacks, pages kept) right
# after the burst and after 60 s idle, heartbeats over the idle minute, then
# 5 broadcasts to every stream (commit -> receipt p99) and CPU per stream.
# Targets: <= 12 KiB a stream after 8,000, <= 10 KiB at 100,000, broadcast
# p99 <= 2 s at 100,000. Raises the open-files limit (needs root beyond the
# hard limit). About 15 minutes; BURST_ARGS='-burst-streams 8000
# -burst-rounds 3' for the small size only.
BURST_ARGS ?=
.PHONY: bench-burst
bench-burst: ## streams opened all at once: memory after, heartbeats, broadcast (8,000 and 100,000)
	$(BENCH) -phases burst $(BURST_ARGS)

# The long fault runs: 3 nodes, 3,000 streams, 2,000 notifications/s for
# 60 s with random resumes and a node SIGKILLed (every stream checked
# exactly once against the database), and 15,000 streams held on one node
# (memory and heartbeats). Fails on any correctness or target miss.
.PHONY: soak
soak: ## the long fault runs; fails on any correctness or target miss
	$(BENCH) -phases streams,cluster -strict

clean: ## remove bin/ and test-artifacts/
	rm -rf bin test-artifacts
