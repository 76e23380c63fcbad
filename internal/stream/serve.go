package stream

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/wire"
)

// Resume is where a reconnecting client left off.
type Resume struct {
	Seq int64
	Set bool
	// live is the feed's position when the stream subscribed (-1 when
	// unknown); set by Serve.
	live int64
}

// Serve streams to id until the client leaves, ctx ends, the credentials
// expire or the hub closes the subscriber. The caller has authenticated the
// request and validated resume. An error (hub.ErrFull, hub.ErrUserLimit)
// means the stream was refused and nothing was written.
//
// Serve writes the headers itself; then, when the connection can be taken
// over (see detach), it hands the stream to a goroutine of its own, which
// writes the connected message and any replay and then parks the stream
// (park.go: no goroutine while it is idle), and returns at once, so the
// request's goroutine and buffers are released while the stream opens and
// lives on. Otherwise it opens and serves the
// stream itself and returns when the stream ends.
func (s *Server) Serve(ctx context.Context, w http.ResponseWriter, id notify.Identity, resume Resume) error {
	// Read before subscribing: everything the feed hands to the hub after
	// this position either reaches the subscriber or was handed over
	// before it subscribed, and then lies within what a replay from here
	// reads (see startReplay).
	resume.live = -1
	if s.livePosition != nil {
		resume.live = s.livePosition()
	}
	sub, err := s.hub.Subscribe(id)
	if err != nil {
		return err
	}
	// Counted from here, while net/http still tracks the request: a
	// shutdown's Run then waits for this stream even once it is detached.
	s.streams.Add(1)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("X-Accel-Buffering", "no")
	h.Set("Connection", "keep-alive")

	opened := time.Now()
	if s.cfg.Observer.Opened != nil {
		s.cfg.Observer.Opened()
	}
	log := loggerFrom(ctx, s.cfg.Logger)
	log.InfoContext(ctx, "stream opened", "stream_id", sub.ID(), "user_id", id.UserID, "resume_from", resume.Seq, "resume", resume.Set)
	wr := &writer{timeout: s.cfg.WriteTimeout}
	chunked := chunkingFrom(ctx)
	conn, detached, derr := detach(w, chunked)
	cancel := context.CancelFunc(func() {})
	var watch *clientWatch
	if detached {
		// The request's context no longer follows the connection (and ends
		// when Serve returns): the stream's own does, through watchClient
		// while it opens. It is a new one, not derived from the request's:
		// what the stream needs of that (the logger, chunking) is read
		// above, and a derived one would keep the request's whole chain of
		// contexts (net/http's, the request deadline's timer, gin's values)
		// for the stream's life, about 0.9 KiB a stream.
		ctx, cancel = context.WithCancel(context.Background())
		wr.conn, wr.chunked = conn, chunked
		watch = watchClient(conn, cancel)
	} else {
		w.WriteHeader(http.StatusOK)
		wr.w, wr.rc = w, http.NewResponseController(w)
	}
	end := func() {
		defer s.streams.Done()
		cancel()
		if detached {
			wr.finish()
			_ = conn.Close()
		}
		s.hub.Unsubscribe(sub)
		reason := sub.Reason()
		if s.cfg.Observer.Closed != nil {
			s.cfg.Observer.Closed(reason, time.Since(opened))
		}
		log.InfoContext(ctx, "stream closed", "stream_id", sub.ID(), "user_id", id.UserID, "reason", reason,
			"duration", time.Since(opened).Round(time.Millisecond), "events", sub.Written())
	}
	if derr != nil { // the client went away before the headers were out
		end()
		return nil
	}
	sub.OnAbort(wr.abort)
	if !detached {
		last, ok := s.begin(ctx, wr, sub, resume, log)
		s.release.noteOpened()
		if ok {
			s.live(ctx, wr, sub, last)
		}
		end()
		return nil
	}
	// The opening too leaves the handler: a stream waiting for its turn at
	// the database (in a burst, thousands wait) then holds a small goroutine, not the handler's grown stack,
	// net/http's buffers, the request and gin's context.
	go func() {
		last, ok := s.begin(ctx, wr, sub, resume, log)
		s.release.noteOpened()
		if ok && !watch.stop() { // stop: the client may have left as the opening ended
			if s.park(wr, conn, sub, last, end) {
				return // no goroutine while it is idle; end runs when it ends
			}
			s.liveConn(wr, conn, sub, last)
		}
		end()
	}()
	return nil
}

// begin writes the retry line and the connected message, then replays from
// the resume point. It returns the seq from which live frames are new, or
// false when the stream cannot go on.
//
// The database reads take turns (see turn.go); the whole opening, from the
// first turn to the last byte of the replay, has Config.OpeningTimeout. The
// first turn is waited for without that deadline: in a reconnect storm
// streams queue for it, and the hub's bounded queue and the ConnTimeout sweep
// bound that wait.
func (s *Server) begin(ctx context.Context, wr *writer, sub *hub.Subscriber, resume Resume, log *slog.Logger) (int64, bool) {
	id := sub.Identity()
	// A resume the window holds waits for no turn of its own (recent.go):
	// always with DeferUnreadCount, else when no turn is free now, so an
	// unloaded node still puts the count in the connected message.
	turned := false
	if resume.Set && s.inbox != nil && s.hub.Covers(resume.Seq) {
		turned = !s.cfg.DeferUnreadCount && s.tryTurn()
		if !turned {
			if last, ok, done := s.beginFromMemory(ctx, wr, sub, resume, log); done {
				return last, ok
			}
		}
	}
	if !turned {
		if err := s.takeTurn(ctx, sub); err != nil {
			return 0, errors.Is(err, errClosed) // closed while waiting: live says why
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpeningTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	wr.limit = deadline
	defer func() { wr.limit = time.Time{} }()

	info := s.connectedInfo(sub, resume)
	head, muted := s.addInbox(ctx, sub, info, log)
	var rp *replay
	var recent []hub.Frame
	var through int64
	var fromMemory bool
	var err error
	if resume.Set {
		// From the hub's window when it holds everything after the resume
		// point and the mutes it must apply are known (see recent.go);
		// else from the table, the first page in the same turn: most
		// replays have one.
		if muted && head != nil && resume.Seq >= head.TruncatedBefore && !inHole(head, resume.Seq) {
			recent, through, fromMemory = s.hub.Since(sub, resume.Seq, nil)
		}
		if !fromMemory {
			rp, err = s.startReplay(ctx, id, resume, head)
		}
		s.resumed(fromMemory)
	}
	s.endTurn()
	if err != nil {
		return 0, s.openingFailed(ctx, sub, deadline, err, log)
	}
	if err := s.writeConnected(wr, sub, info); err != nil {
		return 0, s.openingFailed(ctx, sub, deadline, err, log)
	}
	if fromMemory {
		if err := s.writeRecent(wr, sub, recent); err != nil {
			return 0, s.openingFailed(ctx, sub, deadline, err, log)
		}
		return through, true
	}
	if rp == nil {
		return 0, true
	}
	last, err := s.writeReplay(ctx, wr, sub, rp)
	switch {
	case err == nil:
		return last, true
	case errors.Is(err, errClosed): // everything up to last is written: live says why
		return last, true
	default:
		return 0, s.openingFailed(ctx, sub, deadline, err, log)
	}
}

// connectedInfo is the connected message's data, without the inbox state.
func (s *Server) connectedInfo(sub *hub.Subscriber, resume Resume) *wire.Connected {
	return &wire.Connected{ConnectionID: sub.ID(), Roles: sub.Identity().Roles, ResumeFrom: resumeValue(resume),
		HeartbeatInterval: s.cfg.HeartbeatInterval.Milliseconds()}
}

// writeConnected writes the retry line and the connected message.
func (s *Server) writeConnected(wr *writer, sub *hub.Subscriber, info *wire.Connected) error {
	id := sub.Identity()
	wr.add(wire.RetryField(s.cfg.Retry))
	wr.add(wire.MessageEvent(wire.Message{Type: wire.TypeConnected, UserID: id.UserID, UserRole: firstRole(id.Roles),
		Timestamp: time.Now().UnixMilli(), Data: info}))
	if err := wr.flush(); err != nil {
		return err
	}
	sub.Wrote(time.Now(), 0)
	return nil
}

// openingFailed logs why an opening failed, closing the subscriber with
// reason opening_timeout when its deadline passed, and returns false: the
// stream ends without another word, since a write may have stopped in the
// middle of an event, and the client resumes with its Last-Event-ID.
func (s *Server) openingFailed(ctx context.Context, sub *hub.Subscriber, deadline time.Time, err error, log *slog.Logger) bool {
	attrs := []any{"stream_id", sub.ID(), "user_id", sub.Identity().UserID, "events", sub.Written(), "err", err}
	switch {
	case errors.Is(ctx.Err(), context.Canceled), sub.Reason() != "":
		// The client left, or the stream was closed (slow, shutdown): end says why.
	case !time.Now().Before(deadline):
		sub.Close(hub.ReasonOpeningTimeout)
		log.InfoContext(ctx, "stream opening outlasted the opening timeout; closed so the client resumes from what it got",
			append(attrs, "timeout", s.cfg.OpeningTimeout)...)
	default:
		log.WarnContext(ctx, "stream opening failed; closing the stream so the client resumes", attrs...)
	}
	return false
}

// addInbox loads the user's mutes into the subscriber (after subscribing,
// so a change announced meanwhile is not missed) and puts the unread count
// in the connected message, in one statement that also reads the stream
// head, which it returns for the replay (nil when it could not be read).
// Without the database the stream still opens: unmuted, with unreadCount
// null. muted reports whether the subscriber holds the user's mutes (or
// the server keeps no inbox, so there are none to hold).
func (s *Server) addInbox(ctx context.Context, sub *hub.Subscriber, info *wire.Connected, log *slog.Logger) (head *postgres.Head, muted bool) {
	if s.inbox == nil {
		return nil, true
	}
	id := sub.Identity()
	o, err := s.inbox.Opening(ctx, id)
	if err != nil {
		info.UnreadCount = &wire.Count{} // unknown
		log.WarnContext(ctx, "stream opened without inbox state", "stream_id", sub.ID(), "user_id", id.UserID, "err", err)
		return nil, false
	}
	sub.SetMuted(o.Muted)
	info.UnreadCount, info.HasMore = &wire.Count{N: o.Unread.Count, Known: true}, new(o.Unread.HasMore)
	return &o.Head, true
}

func firstRole(roles []string) string {
	if len(roles) == 0 {
		return ""
	}
	return roles[0]
}

func resumeValue(r Resume) *int64 {
	if !r.Set {
		return nil
	}
	return new(r.Seq)
}

// live writes the hub's frames above last until the stream ends.
func (s *Server) live(ctx context.Context, wr *writer, sub *hub.Subscriber, last int64) {
	var expiry <-chan time.Time
	if exp := sub.Identity().ExpiresAt; !exp.IsZero() {
		t := time.NewTimer(time.Until(exp))
		defer t.Stop()
		expiry = t.C
	}
	var frames []hub.Frame
	for {
		select {
		case <-ctx.Done():
			return
		case <-expiry:
			sub.Close(hub.ReasonExpired)
		case <-sub.Done():
			s.farewell(wr, sub.Reason())
			return
		case <-sub.Ready():
			var ok bool
			if frames, last, ok = s.writeFrames(wr, sub, sub.Take(frames), last); !ok {
				return
			}
		}
	}
}

// writeFrames writes the frames above last (those at or below it were
// replayed) as one batch and returns the storage for the next Take, the
// new last seq, and false when the write failed.
func (s *Server) writeFrames(wr *writer, sub *hub.Subscriber, frames []hub.Frame, last int64) ([]hub.Frame, int64, bool) {
	events, oldest := 0, int64(0)
	for _, f := range frames {
		if f.Seq > 0 {
			if f.Seq <= last {
				continue // already replayed
			}
			last = f.Seq
			events++
			if oldest == 0 || (f.Created > 0 && f.Created < oldest) {
				oldest = f.Created
			}
		}
		wr.add(f.Data)
	}
	if cap(frames) > 64 { // a burst is over: do not keep its memory
		frames = nil
	} else {
		clear(frames) // drop references to the frames' bytes
	}
	// A flush without waiting may leave part of the batch to the stream's
	// own goroutine (park.go), which writes it before anything else.
	if err := wr.flush(); err != nil && !errors.Is(err, errWouldBlock) {
		return frames, last, false
	}
	sub.Wrote(time.Now(), events)
	if events > 0 {
		if s.cfg.Observer.Written != nil {
			s.cfg.Observer.Written(events)
		}
		if s.cfg.Observer.Delivered != nil && oldest > 0 {
			s.cfg.Observer.Delivered(time.Unix(0, oldest))
		}
	}
	return frames, last, true
}

// closingRetryFloor is the shortest SSE retry a closing status sends. The
// field sets an EventSource's reconnection time for every attempt until the
// next stream's connected message sets it again, and EventSource has no
// backoff of its own: with "retry: 0" a client whose server is restarting
// (a single node, no other behind the address) tries again every few
// milliseconds until it is back (the npm eventsource package made ~500
// attempts a second). notifyd's own client waits data.reconnectAfter, which
// stays exact.
const closingRetryFloor = 250 * time.Millisecond

// farewell tells the client why its stream ends, when it can still listen.
func (s *Server) farewell(wr *writer, reason hub.Reason) {
	msg := map[hub.Reason]string{
		hub.ReasonSlow:     "the stream fell behind; reconnect with Last-Event-ID to resume",
		hub.ReasonExpired:  "credentials expired; sign in again",
		hub.ReasonLogout:   "signed out",
		hub.ReasonShutdown: "server shutting down; reconnect to resume",

		// Not terminal: the same cookie opens the next stream, with the new roles.
		hub.ReasonSessionChanged: "your roles changed; reconnect to continue with them",
	}[reason]
	if msg == "" {
		return
	}
	wr.timeout = min(wr.timeout, time.Second)
	data := wire.Status{Closing: string(reason), Message: msg}
	if reason == hub.ReasonShutdown {
		// Spread the reconnects of this node's clients over ReconnectSpread,
		// unless Drain spreads the closes themselves.
		after := time.Duration(0)
		if !s.draining.Load() {
			after = time.Duration(rand.Int64N(int64(s.cfg.ReconnectSpread)))
		}
		data.ReconnectAfter = new(after.Milliseconds())
		wr.add(wire.RetryField(max(after, closingRetryFloor)))
	}
	wr.add(wire.StatusEvent(time.Now(), data))
	_ = wr.flush()
}

type loggerKey struct{}

// WithLogger lets the caller give a stream its request's logger (with the
// request id), so the open and close lines can be matched to the request.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

func loggerFrom(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return fallback
}

// inHole reports whether seq lies in one of head's holes: numbered on a
// history this database does not have, so the table's replay must say so.
func inHole(head *postgres.Head, seq int64) bool {
	_, lost := head.Holes.Lost(seq)
	return lost
}
