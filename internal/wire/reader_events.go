package wire

import (
	"errors"
	"maps"
	"time"
)

// ReaderStats counts what happened to a reader.
type ReaderStats struct {
	Open          bool  `json:"open"`
	Received      int   `json:"received"`
	LastSeq       int64 `json:"last_seq"`
	Connects      int   `json:"connects"`
	ConnectErrors int   `json:"connect_errors"`
	// ConnectFailures counts the failed attempts by why they failed
	// (FailureKind): a storm's refused connections, timeouts and 503s call
	// for different remedies.
	ConnectFailures map[string]int `json:"connect_failures,omitempty"`
	Resumes         int            `json:"resumes"` // connections ended on purpose (Reconnect)
	Drops           int            `json:"drops"`   // connections ended by the server or the network
	CloseReasons    map[string]int `json:"close_reasons,omitempty"`
	// Heartbeats counts heartbeats since the last MarkHeartbeats, and
	// MaxBeatGapMs is the longest wait for one since then (from the mark or
	// a connect to the first, then between consecutive ones).
	Heartbeats     int   `json:"heartbeats"`
	MaxBeatGapMs   int64 `json:"max_beat_gap_ms"`
	ProtocolErrors int   `json:"protocol_errors"`
	// FirstError describes the first protocol error (a malformed event).
	FirstError string `json:"first_error,omitempty"`
}

// Stats returns the reader's counters.
func (r *Reader) Stats() ReaderStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.LastSeq = r.last
	s.CloseReasons = maps.Clone(r.stats.CloseReasons)
	s.ConnectFailures = maps.Clone(r.stats.ConnectFailures)
	return s
}

// MarkHeartbeats restarts the heartbeat count and the longest gap.
func (r *Reader) MarkHeartbeats() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Heartbeats, r.stats.MaxBeatGapMs = 0, 0
	r.beatPrev = time.Now()
}

// errNoEventID is a notification message without its seq as the event id.
var errNoEventID = errors.New("a notification without its seq as the event id")

// handle accounts for one event and hands it to the callbacks. retry is the
// stream's retry field when the event arrived.
func (r *Reader) handle(ev Event, retry time.Duration) error {
	now := time.Now()
	if ev.ID != "" {
		seq, id, err := ScanNotification(ev)
		if err != nil {
			return r.malformed(err)
		}
		r.mu.Lock()
		r.last = seq
		r.stats.Received++
		r.mu.Unlock()
		if r.cfg.OnNotification != nil {
			if err := r.cfg.OnNotification(Delivery{Seq: seq, ID: id, At: now, Event: ev}); err != nil {
				return stopError{err}
			}
		}
		return nil
	}
	m, err := Decode(ev)
	if err != nil {
		return r.malformed(err)
	}
	m.Retry = retry
	switch m.Type {
	case TypeNotification:
		return r.malformed(errNoEventID)
	case TypeHeartbeat:
		r.mu.Lock()
		r.stats.Heartbeats++
		r.stats.MaxBeatGapMs = max(r.stats.MaxBeatGapMs, now.Sub(r.beatPrev).Milliseconds())
		r.beatPrev = now
		r.mu.Unlock()
	case TypeStatus:
		st, err := m.Status()
		if err != nil {
			return r.malformed(err)
		}
		r.mu.Lock()
		r.retry = retry
		if st.Closing != "" {
			if r.stats.CloseReasons == nil {
				r.stats.CloseReasons = map[string]int{}
			}
			r.stats.CloseReasons[st.Closing]++
		}
		r.mu.Unlock()
	}
	if r.cfg.OnMessage != nil {
		if err := r.cfg.OnMessage(m); err != nil {
			return stopError{err}
		}
	}
	return nil
}

// malformed counts a protocol error and asks OnMalformed whether to go on.
func (r *Reader) malformed(err error) error {
	r.mu.Lock()
	r.stats.ProtocolErrors++
	if r.stats.FirstError == "" {
		r.stats.FirstError = err.Error()
	}
	r.mu.Unlock()
	if r.cfg.OnMalformed != nil {
		if err := r.cfg.OnMalformed(err); err != nil {
			return stopError{err}
		}
	}
	return nil
}
