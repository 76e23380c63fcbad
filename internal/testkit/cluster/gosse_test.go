package cluster_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sse "github.com/tmaxmax/go-sse"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/wire"
)

// TestGoSSEReconnectsAcrossARestart: a third-party Go SSE client,
// tmaxmax/go-sse, with its default settings (it reconnects after any end of
// a stream, clean or not, with its own backoff, and sends Last-Event-ID),
// reads a user's stream; notifyd is killed (SIGKILL) or stopped (SIGTERM),
// notifications are inserted while it is down, and it is started again on
// the same address. The library reconnects by itself and ends with every
// notification for the user exactly once, in seq order, nothing foreign,
// and no empty event from the stream's retry: field.
func TestGoSSEReconnectsAcrossARestart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		signal string
		stop   func(*cluster.Node) error
	}{
		{"SIGKILL", func(n *cluster.Node) error { return n.Kill() }},
		{"SIGTERM", func(n *cluster.Node) error { return n.Stop(15 * time.Second) }},
	} {
		t.Run(tc.signal, func(t *testing.T) {
			t.Parallel()
			goSSEAcrossARestart(t, tc.stop)
		})
	}
}

func goSSEAcrossARestart(t *testing.T, stop func(*cluster.Node) error) {
	f := setup(t, 1, nil)
	node := f.nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	insert := func(user string, messages ...string) {
		t.Helper()
		for _, m := range messages {
			if _, err := f.env.DB.Pool.Exec(ctx, `INSERT INTO notify.notifications (target_user_id, message) VALUES ($1, $2)`, user, m); err != nil {
				t.Fatalf("insert %q: %v", m, err)
			}
		}
	}

	// The client as a user of the library writes it: a request with the
	// bearer token, a Client with its defaults. The transport only watches
	// what the library sends (the resume point of each attempt) and how
	// each attempt went.
	// changed is signalled on every event and every attempt.
	changed := make(chan struct{}, 1)
	signal := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	rec := &recordingTransport{next: http.DefaultTransport.(*http.Transport).Clone(), changed: signal}
	t.Cleanup(rec.next.CloseIdleConnections)
	var mu sync.Mutex
	var events []sse.Event
	var retries []string
	client := &sse.Client{
		HTTPClient: &http.Client{Transport: rec},
		OnRetry: func(err error, d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			retries = append(retries, err.Error()+" (next attempt in "+d.Round(time.Millisecond).String()+")")
		},
	}
	sctx, stopStream := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, node.URL()+cluster.StreamPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.env.Token("alice", "USER"))
	conn := client.NewConnection(req)
	conn.SubscribeMessages(func(e sse.Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
		signal()
	})
	connected := make(chan error, 1)
	go func() { connected <- conn.Connect() }()
	defer func() {
		stopStream()
		if err := <-connected; !errors.Is(err, context.Canceled) {
			t.Errorf("Connect returned %v before the test ended it: the library gave up", err)
		}
	}()

	received := func() []streamMessage {
		mu.Lock()
		defer mu.Unlock()
		out := make([]streamMessage, 0, len(events))
		for _, e := range events {
			m := streamMessage{Raw: e.Data}
			r, err := wire.Decode(wire.Event{ID: e.LastEventID, Data: []byte(e.Data)})
			if err == nil && r.Type == wire.TypeNotification {
				m.Data, err = r.Notification()
			}
			m.Received = r
			if err != nil {
				m.Type = "unparsable"
			}
			out = append(out, m)
		}
		return out
	}
	notifications := func() []streamMessage {
		return slices.DeleteFunc(received(), func(m streamMessage) bool { return m.Type != "notification" })
	}
	// until waits for cond, checked on every event and attempt, with a
	// deadline against hanging.
	until := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.NewTimer(30 * time.Second)
		defer deadline.Stop()
		for !cond() {
			select {
			case <-changed:
			case <-deadline.C:
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("%s: not after 30 s; received %d events (%s), attempts %v, retries %q", what, len(events), eventsSummary(events), rec.attempts(), retries)
			}
		}
	}
	waitFor := func(message string) {
		t.Helper()
		until("notification "+strconv.Quote(message), func() bool {
			return slices.ContainsFunc(notifications(), func(m streamMessage) bool { return m.Data.Message == message })
		})
	}

	// A stream opened without Last-Event-ID is live from its connected
	// message: what was published before it is in the inbox, not in the
	// stream, so the test sends only once the library has that message.
	until("the connected message", func() bool {
		return slices.ContainsFunc(received(), func(m streamMessage) bool { return m.Type == wire.TypeConnected })
	})
	insert("alice", "before 1", "before 2", "before 3")
	// All three: a worker that claims them in one batch may number them
	// in any order, so "before 3" need not be the last to arrive.
	for _, m := range []string{"before 1", "before 2", "before 3"} {
		waitFor(m)
	}
	lastBefore := notifications()[len(notifications())-1].Data.Seq
	attemptsBefore := len(rec.attempts())

	if err := stop(node); err != nil && !isKilled(err) {
		t.Fatalf("stop the node: %v", err)
	}
	// The library finds it gone by itself: an attempt refused.
	until("an attempt while the node is down", func() bool {
		return slices.ContainsFunc(rec.attempts()[attemptsBefore:], func(a attempt) bool { return a.err != "" })
	})
	insert("alice", "while down 1", "while down 2", "while down 3", "while down 4", "while down 5")
	insert("bob", "for bob, not alice")

	restarted, err := node.Restart(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := restarted.Stop(15 * time.Second); err != nil {
			t.Errorf("restarted node: %v", err)
		}
	})
	insert("alice", "back 1", "back 2")
	waitFor("back 2")
	// Live again, published over HTTP as a service would.
	admin := f.env.Token("publisher", "ADMIN")
	for _, m := range []string{"live 1", "live 2"} {
		body := `{"targetUserId":"alice","module":"test","actionType":"live","message":"` + m + `"}`
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, restarted.URL()+"/api/notifications", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("publish %q: %s", m, resp.Status)
		}
	}
	// A last one: anything sent twice would have come before it.
	insert("alice", "last")
	waitFor("last")

	// Every notification for alice once, in seq order, nothing else:
	// against the database.
	type row struct {
		ID      string
		Seq     int64
		Message string
	}
	var want []row
	rows, err := f.env.DB.Pool.Query(ctx, `SELECT id::text, seq, message FROM notify.notifications WHERE target_user_id = 'alice' ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.ID, &r.Seq, &r.Message); err != nil {
			t.Fatal(err)
		}
		want = append(want, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(want) != 13 {
		t.Fatalf("the database holds %d notifications for alice, want 13", len(want))
	}
	var got []row
	for _, m := range notifications() {
		got = append(got, row{ID: m.NotificationID, Seq: m.Data.Seq, Message: m.Data.Message})
		if m.EventID != strconv.FormatInt(m.Data.Seq, 10) {
			t.Errorf("notification %d came with the event id %q, want its seq", m.Data.Seq, m.EventID)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("received\n%v\nwant every notification for alice once, in seq order:\n%v", got, want)
	}

	// The stream's retry: field rides on an event with data: the library
	// dispatched no empty event, and every event is one of the stream's
	// JSON messages.
	var connects int
	for _, m := range received() {
		switch m.Type {
		case "connected":
			connects++
		case "notification", "heartbeat", "status":
		case "unparsable":
			if m.Raw == "" {
				t.Errorf("an empty event (a retry: field in a block of its own?)")
				continue
			}
			fallthrough
		default:
			t.Errorf("an event that is not one of the stream's messages: %q", m.Raw)
		}
	}
	if connects != 2 {
		t.Errorf("%d connected messages, want 2 (one per stream)", connects)
	}
	// The reconnect was the library's own, with Last-Event-ID: the stream
	// after the restart resumed from the last seq received before the stop.
	var opened []attempt
	for _, a := range rec.attempts() {
		if a.status == http.StatusOK {
			opened = append(opened, a)
		}
	}
	if len(opened) != 2 || opened[0].lastEventID != "" || opened[1].lastEventID != strconv.FormatInt(lastBefore, 10) {
		t.Errorf("streams opened with Last-Event-ID %v, want one without and one resuming from %d (attempts %v)", opened, lastBefore, rec.attempts())
	}
	mu.Lock()
	t.Logf("the library's retries: %q", retries)
	mu.Unlock()
}

// streamMessage is one event as the test reads it: the library's last event
// id and data, decoded as the stream's message (Data: a notification's).
// eventsSummary names each event by its id and the start of its data, for
// a failure's message.
func eventsSummary(events []sse.Event) string {
	parts := make([]string, len(events))
	for i, e := range events {
		parts[i] = "id " + strconv.Quote(e.LastEventID) + ": " + e.Data[:min(len(e.Data), 40)]
	}
	return strings.Join(parts, "; ")
}

type streamMessage struct {
	wire.Received
	Raw  string
	Data wire.Notification
}

// attempt is one request the library made: the resume point it sent, and
// its answer or the error that ended it.
type attempt struct {
	lastEventID string
	status      int
	err         string
}

// recordingTransport passes requests on unchanged and records each.
type recordingTransport struct {
	next    *http.Transport
	changed func()
	mu      sync.Mutex
	log     []attempt
}

func (rt *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.next.RoundTrip(req)
	a := attempt{lastEventID: req.Header.Get("Last-Event-ID")}
	if err != nil {
		a.err = err.Error()
	} else {
		a.status = resp.StatusCode
	}
	rt.mu.Lock()
	rt.log = append(rt.log, a)
	rt.mu.Unlock()
	rt.changed()
	return resp, err
}

func (rt *recordingTransport) attempts() []attempt {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return slices.Clone(rt.log)
}
