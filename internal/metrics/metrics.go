// Package metrics defines notifyd's Prometheus metrics in one registry per
// process (no global registry, so tests can run several servers at once).
// Labels never carry a user id: cardinality stays bounded by routes,
// statuses and reasons.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/notifyd/notifyd/internal/postgres"
)

// Metrics holds every metric notifyd exports.
type Metrics struct {
	Registry *prometheus.Registry

	StreamsOpen        prometheus.Gauge
	StreamsOpened      prometheus.Counter
	StreamsClosed      *prometheus.CounterVec // reason
	SlowStreamsDropped prometheus.Counter
	Published          prometheus.Counter
	Delivered          prometheus.Counter
	Replayed           prometheus.Counter
	StreamResumes      *prometheus.CounterVec // source: memory, database
	PublishFailures    *prometheus.CounterVec // outcome: retry, failed
	SetAside           *prometheus.CounterVec // stage: publish, feed
	ClaimBatch         prometheus.Histogram
	PublishBatch       prometheus.Histogram
	PublishLatency     prometheus.Histogram
	EndToEndLatency    prometheus.Histogram
	ListenerReconnects prometheus.Counter
	ReplicaReads       *prometheus.CounterVec // read: replay, history; source: replica, primary; reason
	HTTPRequests       *prometheus.CounterVec // route template, method (a fixed set), code
	HTTPDuration       *prometheus.HistogramVec
}

// QueueReader reads the queue's state at scrape time.
type QueueReader interface {
	QueueGauges(ctx context.Context) (depth map[string]int64, oldestPending time.Duration, err error)
}

const ns = "notifyd"

// New creates the metrics and registers them, with the Go runtime and
// process collectors, and the queue gauges read through q at scrape time.
func New(q QueueReader) *Metrics {
	reg := prometheus.NewRegistry()
	batch := prometheus.ExponentialBuckets(1, 2, 12) // 1 … 2048
	latency := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m := &Metrics{
		Registry:           reg,
		StreamsOpen:        prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "streams_open", Help: "Event streams open on this node."}),
		StreamsOpened:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "streams_opened_total", Help: "Event streams opened."}),
		StreamsClosed:      prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "streams_closed_total", Help: "Event streams closed, by reason (closed, slow, timeout, opening_timeout, expired, logout, session_changed, shutdown)."}, []string{"reason"}),
		SlowStreamsDropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "slow_streams_dropped_total", Help: "Streams closed because their buffer overflowed."}),
		Published:          prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "notifications_published_total", Help: "Notifications published by this node's workers (not those their producer's own commit published: notify.send, or an INSERT published at commit)."}),
		Delivered:          prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "notifications_delivered_total", Help: "Notification events written to streams (one per stream)."}),
		Replayed:           prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "notifications_replayed_total", Help: "Notification events written by resume replays."}),
		StreamResumes:      prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "stream_resumes_total", Help: "Streams opened with a resume point, by where their catch-up came from (memory: the hub's window of recent notifications, no query; database: a replay from the table)."}, []string{"source"}),
		PublishFailures:    prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "publish_failures_total", Help: "Failed publish attempts, by outcome (pending: will retry, failed: gave up)."}, []string{"outcome"}),
		SetAside:           prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "notifications_set_aside_total", Help: "Notifications whose rows cannot be delivered consistently (they slipped past the table's constraints), failed with the reason instead of stopping delivery, by stage (publish: by a worker, feed: read back by this node)."}, []string{"stage"}),
		ClaimBatch:         prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "claim_batch_size", Help: "Queue items per claim.", Buckets: batch}),
		PublishBatch:       prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "publish_batch_size", Help: "Notifications per publish transaction.", Buckets: batch}),
		PublishLatency:     prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "publish_duration_seconds", Help: "Duration of one publish transaction.", Buckets: latency}),
		EndToEndLatency:    prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "end_to_end_latency_seconds", Help: "From a notification's created_at to its write on a stream (the oldest event of each write).", Buckets: latency}),
		ListenerReconnects: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "listener_reconnects_total", Help: "Reconnects of the LISTEN connection."}),
		ReplicaReads:       prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "replica_reads_total", Help: "Reads a read replica (DATABASE_REPLICA_URL) may answer, by read (replay, history), where they ran (source: replica, primary) and why (reason: caught_up, waited: the replica had replayed past the read's fence, at once or within NOTIFY_REPLICA_WAIT; lagging, down, untrusted, error, unfenced: read from the primary instead). Not counted without a replica."}, []string{"read", "source", "reason"}),
		HTTPRequests:       prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "http_requests_total", Help: "HTTP requests by route template (unmatched: none), method (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, other) and status code."}, []string{"route", "method", "code"}),
		HTTPDuration:       prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "http_request_duration_seconds", Help: "HTTP request duration by route (streams excluded).", Buckets: latency}, []string{"route"}),
	}
	reg.MustRegister(m.StreamsOpen, m.StreamsOpened, m.StreamsClosed, m.SlowStreamsDropped, m.Published, m.Delivered,
		m.Replayed, m.StreamResumes, m.PublishFailures, m.SetAside, m.ClaimBatch, m.PublishBatch, m.PublishLatency, m.EndToEndLatency,
		m.ListenerReconnects, m.ReplicaReads, m.HTTPRequests, m.HTTPDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if sr, ok := q.(SnapshotReader); ok {
		reg.MustRegister(&snapshotCollector{r: sr, age: prometheus.NewDesc(ns+"_db_oldest_snapshot_age_seconds",
			"Age of the oldest transaction snapshot open in notifyd's database (0 when none): while it is open, vacuum cannot remove dead rows.", nil, nil)})
	}
	if q != nil {
		reg.MustRegister(&queueCollector{q: q,
			depth:  prometheus.NewDesc(ns+"_queue_items", "Queue items waiting or stuck, by status (pending, processing, failed).", []string{"status"}, nil),
			oldest: prometheus.NewDesc(ns+"_queue_oldest_pending_age_seconds", "Age of the oldest pending queue item (0 when none).", nil, nil),
		})
	}
	return m
}

// SnapshotReader finds the oldest snapshot open in the database.
type SnapshotReader interface {
	OldestSnapshot(ctx context.Context) (postgres.Snapshot, error)
}

// snapshotCollector reads the oldest snapshot's age at scrape time.
type snapshotCollector struct {
	r   SnapshotReader
	age *prometheus.Desc
}

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.age }

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := c.r.OldestSnapshot(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.age, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, s.Age.Seconds())
}

// queueCollector reads the queue when Prometheus scrapes, so the gauges are
// never stale and cost nothing between scrapes.
type queueCollector struct {
	q             QueueReader
	depth, oldest *prometheus.Desc
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.depth; ch <- c.oldest }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	depth, oldest, err := c.q.QueueGauges(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.depth, err)
		return
	}
	for status, n := range depth {
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(n), status)
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, oldest.Seconds())
}
