// Package stream serves GET /api/notifications/ws: one Server-Sent Events
// stream per request, fed by the hub and, on resume, by a replay from the
// database.
//
// Resume without a race: the stream subscribes to the hub first, then replays
// from the table every notification for its user after the resume point, then
// passes live frames through only above the last replayed seq. Seqs become
// visible in commit order, so the replay sees a prefix of the stream and the
// live feed covers the rest: nothing is skipped and nothing repeats. A
// resume point among the hub's recent events is answered from them instead
// of the table, the same way (recent.go).
//
// Every write has its own deadline; a stream with no successful write for
// ConnTimeout is closed by the sweep; a stream whose hub queue overflows is
// closed (see package hub) and the client resumes with its Last-Event-ID.
//
// Once its headers are out, a stream leaves net/http (detach.go) and opens
// in one goroutine of its own; once open it is parked (park.go): no
// goroutine while it has nothing to write, its connection watched by the
// server's one poller. An idle stream costs its connection, its writer and
// its hub subscriber, 7–12 KiB, not a handler's stack and buffers; what a
// burst of openings leaves behind is released once it subsides
// (release.go). Opening streams do their database work a few
// at a time (Config.MaxOpening), so a reconnect storm cannot take the pool
// the worker and the feed need; they write to their clients between those
// turns, and the whole opening, replay included, has one deadline
// (Config.OpeningTimeout), so a slow reader holds neither for long.
package stream

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/wire"
)

// Config tunes the streams.
type Config struct {
	// HeartbeatInterval between heartbeat messages (NOTIFY_HEARTBEAT_INTERVAL). Default 15s.
	HeartbeatInterval time.Duration
	// ConnTimeout closes a stream with no successful write for this long (NOTIFY_CONN_TIMEOUT). Default 60s.
	ConnTimeout time.Duration
	// CleanupInterval between sweeps for such streams (NOTIFY_CLEANUP_INTERVAL). Default 30s.
	CleanupInterval time.Duration
	// WriteTimeout is the deadline of each write to a client. Default 10s.
	WriteTimeout time.Duration
	// Retry is the reconnect delay announced to EventSource. Default 2s.
	Retry time.Duration
	// ReplayPage is how many notifications a replay reads per query. Default 1000.
	ReplayPage int
	// MaxOpening is how many streams may do their opening database work
	// (the inbox state, a page of replay) at once; the others wait their
	// turn. A turn covers database reads only: a stream writes to its client
	// between turns, so a slow reader never holds one.
	// When a node dies, its clients all reconnect to the others at once:
	// without a bound their queries take every pooled connection and the
	// worker and the feed, which share the pool, stall until the storm has
	// passed. Default 4 (the pool has 10).
	MaxOpening int
	// OpeningTimeout bounds a stream's whole opening, counted from its
	// first turn at the database (MaxOpening): its database reads and the
	// writing of its connected message and whole replay. Each write has its
	// own WriteTimeout, so without this bound a client that reads a long
	// replay slowly, but steadily enough for every write to make progress,
	// would keep opening, and holding what an opening holds, for as long as
	// it liked. When it passes, the stream is closed (reason
	// opening_timeout); the client resumes with the Last-Event-ID it got to,
	// so nothing is lost and a long replay still moves on with every
	// reconnect. Default 10s.
	OpeningTimeout time.Duration
	// ReconnectSpread is the shortest a node that shuts down takes to hand
	// its streams back (Drain): each stays live until its own moment within
	// the drain and is then told to reconnect at once, so a rolling restart
	// does not send every client to the next node in the same instant.
	// Default 3s.
	ReconnectSpread time.Duration
	// DrainRate is how many streams a second, at most, a node that shuts
	// down hands back to the others (Drain; drain.go says why), as long as
	// its shutdown's deadline allows. Default 200.
	DrainRate int
	// DeferUnreadCount: every stream resuming from the hub's window opens
	// with no database turn of its own (its user's mutes are read in a
	// batch with the other streams opening then) and a connected message
	// without unreadCount; the count follows in a status message
	// (data.unreadCount, hasMore, countedThrough) once read, a few at a
	// time after the openings (see unread.go). Off (the default), such a
	// stream does so only when no turn is free as it opens — in a
	// reconnect storm — and otherwise reads the count in its turn and
	// sends it in the connected message.
	DeferUnreadCount bool
	// ReleaseAfter is how many streams must have opened since the last
	// release for the server to release memory (two collections that
	// return free pages to the OS) once their burst has subsided; see
	// release.go. Negative: never. Default 1000.
	ReleaseAfter int
	// Logger receives one line per stream opened and closed. Default slog.Default().
	Logger *slog.Logger
	// Observer is told about stream activity (metrics). Optional.
	Observer Observer
}

// Observer receives stream events; every field is optional.
type Observer struct {
	Opened   func()
	Closed   func(reason hub.Reason, open time.Duration)
	Written  func(events int)
	Replayed func(events int)
	// Resumed is called once per stream opened with a resume point, with
	// where its catch-up came from: ResumeFromMemory (the hub's window, no
	// query) or ResumeFromDatabase.
	Resumed func(source string)
	// Delivered is called after each live write that carried notifications,
	// with the creation time of the oldest one (end-to-end latency).
	Delivered func(oldestCreated time.Time)
}

// WithDefaults returns c with every unset field defaulted.
func (c Config) WithDefaults() Config {
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, 15*time.Second)
	c.ConnTimeout = cmp.Or(c.ConnTimeout, 60*time.Second)
	c.CleanupInterval = cmp.Or(c.CleanupInterval, 30*time.Second)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, 10*time.Second)
	c.Retry = cmp.Or(c.Retry, 2*time.Second)
	c.ReplayPage = cmp.Or(c.ReplayPage, 1000)
	c.MaxOpening = cmp.Or(c.MaxOpening, 4)
	c.OpeningTimeout = cmp.Or(c.OpeningTimeout, 10*time.Second)
	c.ReconnectSpread = cmp.Or(c.ReconnectSpread, 3*time.Second)
	c.DrainRate = cmp.Or(c.DrainRate, 200)
	c.ReleaseAfter = cmp.Or(c.ReleaseAfter, 1000)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.HeartbeatInterval < 10*time.Millisecond:
		return fmt.Errorf("stream: HeartbeatInterval %s is too short", c.HeartbeatInterval)
	case c.ConnTimeout <= c.HeartbeatInterval:
		return fmt.Errorf("stream: ConnTimeout %s must be longer than HeartbeatInterval %s", c.ConnTimeout, c.HeartbeatInterval)
	case c.CleanupInterval < 10*time.Millisecond:
		return fmt.Errorf("stream: CleanupInterval %s is too short", c.CleanupInterval)
	case c.ReplayPage < 1:
		return fmt.Errorf("stream: ReplayPage %d must be positive", c.ReplayPage)
	case c.MaxOpening < 1:
		return fmt.Errorf("stream: MaxOpening %d must be positive", c.MaxOpening)
	case c.OpeningTimeout <= 0:
		return fmt.Errorf("stream: OpeningTimeout %s must be positive", c.OpeningTimeout)
	case c.ReconnectSpread < 0:
		return fmt.Errorf("stream: ReconnectSpread %s must not be negative", c.ReconnectSpread)
	case c.DrainRate < 1:
		return fmt.Errorf("stream: DrainRate %d must be positive (streams a second)", c.DrainRate)
	}
	return nil
}

// Server serves streams.
type Server struct {
	cfg   Config
	hub   *hub.Hub
	store *postgres.Notifications
	inbox *postgres.Inbox
	// livePosition is the feed's position: everything above it reaches the
	// hub from now on (nil: unknown).
	livePosition func() int64
	// opening holds a token per stream taking a turn at the database
	// while it opens (see turn.go).
	opening chan struct{}
	// mutes batches the mute reads of streams resuming from memory (mutes.go).
	mutes muteLoader
	// counting holds a token per deferred unread count being read (unread.go).
	counting chan struct{}
	// streams counts the streams being served, some by goroutines of their
	// own that outlive their requests (see Serve): Run waits for them.
	streams sync.WaitGroup
	// draining: Drain is closing the streams at their own moments, so
	// each is told to come back at once (see drain.go).
	draining atomic.Bool
	// release frees what a burst of openings left behind (release.go).
	release releaser
	// poller watches the connections of parked streams (park.go).
	poller poller
	// writers serve the wakes of parked streams (park.go).
	writers writerPool
	// tookFrames, when set (by tests only), is called by a parked stream's
	// goroutine each time it has taken what was queued, with how many
	// frames, before it writes them.
	tookFrames func(n int)
}

// NewServer returns a stream server over hub and store.
func NewServer(h *hub.Hub, store *postgres.Notifications, cfg Config) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, hub: h, store: store, opening: make(chan struct{}, cfg.MaxOpening),
		counting: make(chan struct{}, max(1, cfg.MaxOpening/2)), release: releaser{after: int64(cfg.ReleaseAfter)}}, nil
}

// WithLivePosition tells the server where the live feed stands (the last
// seq it handed to the hub): a resume point beyond the database's history
// is then answered from there, so that what was published while the
// stream was opening is replayed rather than lost.
func (s *Server) WithLivePosition(position func() int64) *Server {
	s.livePosition = position
	return s
}

// WithInbox makes streams load the user's mutes and start with the unread
// count in their connected message.
func (s *Server) WithInbox(inbox *postgres.Inbox) *Server {
	s.inbox = inbox
	return s
}

// Hub is the hub the server's streams subscribe to.
func (s *Server) Hub() *hub.Hub { return s.hub }

// Run sends heartbeats and sweeps dead streams until ctx ends. Then it
// closes every stream still open (reason shutdown: each is told to come
// back) and waits for them to say so, at most WriteTimeout: some outlive
// their requests (see Serve), so the HTTP server's shutdown does not wait
// for them.
func (s *Server) Run(ctx context.Context) {
	heartbeat := time.NewTicker(s.cfg.HeartbeatInterval)
	defer heartbeat.Stop()
	sweep := time.NewTicker(s.cfg.CleanupInterval)
	defer sweep.Stop()
	release := time.NewTicker(time.Second)
	defer release.Stop()
	for {
		select {
		case <-ctx.Done():
			s.hub.CloseWhere(func(notify.Identity) bool { return true }, hub.ReasonShutdown)
			done := make(chan struct{})
			go func() { s.streams.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(s.cfg.WriteTimeout):
				s.cfg.Logger.Warn("streams still writing their last message at shutdown", "timeout", s.cfg.WriteTimeout)
			}
			return
		case now := <-heartbeat.C:
			s.hub.Broadcast(hub.Frame{Data: wire.HeartbeatEvent(now)})
		case now := <-release.C:
			s.release.tick(now, func(streams int64, took time.Duration) {
				s.cfg.Logger.InfoContext(ctx, "released memory after a burst of openings", "streams_opened", streams, "took", took)
			})
		case now := <-sweep.C:
			if n := s.hub.CloseStale(now.Add(-s.cfg.ConnTimeout)); n > 0 {
				s.cfg.Logger.InfoContext(ctx, "closed streams with no successful write", "streams", n, "timeout", s.cfg.ConnTimeout)
			}
		}
	}
}
