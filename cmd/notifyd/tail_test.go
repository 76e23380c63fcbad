package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
	"github.com/notifyd/notifyd/internal/wire"
)

// lines returns the complete lines written so far.
func lines(s string) []string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.Split(s[:i], "\n")
	}
	return nil
}

// tailedMessage is one line of tail --json: the stream message, with its
// data decoded as a notification.
type tailedMessage struct {
	wire.Received
	Data wire.Notification
}

func decodeLines(t *testing.T, out string) []tailedMessage {
	t.Helper()
	var ms []tailedMessage
	for _, l := range lines(out) {
		r, err := wire.Decode(wire.Event{Data: []byte(l)})
		var m tailedMessage
		if err == nil {
			m.Received = r
			m.Data, err = r.Notification()
		}
		if err != nil {
			t.Fatalf("tail --json line %q: %v", l, err)
		}
		ms = append(ms, m)
	}
	return ms
}

func TestTailDB(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	c := newCLI(t)
	c.startWorker()
	c.exec(`INSERT INTO notify.notifications (message) VALUES ('before the tail')`)
	testkit.Eventually(t, 20*time.Second, "the first notification to be published", func() bool {
		return c.count(`SELECT last_seq FROM notify.stream_head`) == 1
	})

	t.Run("from now, stopping after --count", func(t *testing.T) {
		tail := startCommand(t, c.env(), "tail", "--db", "--count", "3")
		// The tail reads the head (on its notifyd-tail session) before it
		// connects its listener, notifyd-tail-listener: once that
		// connection is there, "now" is fixed. (Waiting for the session's
		// name instead raced the head read.)
		testkit.Eventually(t, 20*time.Second, "the tail's listener", func() bool {
			if tail.finished() {
				t.Fatalf("tail ended early: %v\n%s", tail.wait(t, time.Second), tail.errOut.String())
			}
			return c.count(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'notifyd-tail-listener'`) > 0
		})
		// One at a time: a worker that claims several in one batch may
		// publish a critical one first, and the lines below name seqs.
		for i, insert := range []string{
			`INSERT INTO notify.notifications (message, severity, target_user_id) VALUES ('first', 'high', 'alice')`,
			`INSERT INTO notify.notifications (message, target_roles, module, action_type) VALUES ('second', '{ADMIN,SALES}', 'orders', 'new')`,
			`INSERT INTO notify.notifications (message, severity) VALUES (E'third\nline', 'critical')`,
		} {
			c.exec(insert)
			testkit.Eventually(t, 20*time.Second, fmt.Sprintf("notification %d to be published", i+2), func() bool {
				return c.count(`SELECT last_seq FROM notify.stream_head`) == int64(i+2)
			})
		}
		if err := tail.wait(t, 30*time.Second); err != nil {
			t.Fatalf("tail: %v\n%s", err, tail.errOut.String())
		}
		got := lines(tail.out.String())
		want := []string{
			`^2\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}  high\s+user:alice\s+first$`,
			`^3\s+\S+ \S+  medium\s+roles:ADMIN,SALES\s+\[orders/new\] second$`,
			`^4\s+\S+ \S+  critical\s+everyone\s+third line$`,
		}
		if len(got) != len(want) {
			t.Fatalf("tail printed %d lines, want %d:\n%s", len(got), len(want), tail.out.String())
		}
		for i := range want {
			if !regexp.MustCompile(want[i]).MatchString(got[i]) {
				t.Errorf("line %d is %q, want it to match %s", i+1, got[i], want[i])
			}
		}
	})

	t.Run("from a seq, as JSON", func(t *testing.T) {
		tail := startCommand(t, c.env(), "tail", "--db", "--from", "0", "--count", "2", "--json")
		if err := tail.wait(t, 30*time.Second); err != nil {
			t.Fatalf("tail: %v\n%s", err, tail.errOut.String())
		}
		ms := decodeLines(t, tail.out.String())
		if len(ms) != 2 || ms[0].Data.Seq != 1 || ms[1].Data.Seq != 2 || ms[0].Data.Message != "before the tail" ||
			ms[0].Type != "notification" || ms[0].NotificationID != ms[0].Data.ID || ms[0].Timestamp == 0 ||
			string(ms[0].Data.Data) != "{}" || ms[1].Data.TargetUserID == nil || *ms[1].Data.TargetUserID != "alice" {
			t.Errorf("tail --from 0 --json:\n%s", tail.out.String())
		}
	})

	t.Run("stops on cancellation", func(t *testing.T) {
		connections := func(name string) int64 {
			return c.count(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = '` + name + `'`)
		}
		listeners := func() int64 { return connections("notifyd-tail-listener") }
		testkit.Eventually(t, 20*time.Second, "the earlier tails' connections to close", func() bool {
			return listeners() == 0 && connections("notifyd-tail") == 0
		})
		tail := startCommand(t, c.env(), "tail", "--db")
		testkit.Eventually(t, 20*time.Second, "the tail's listener", func() bool { return listeners() > 0 })
		tail.cancel()
		if err := tail.wait(t, 20*time.Second); err != nil {
			t.Errorf("tail after Ctrl-C: %v", err)
		}
	})
}

// recordingProxy forwards to a server and remembers each request's
// Last-Event-ID, so a test can cut connections and see how the client resumes.
type recordingProxy struct {
	*httptest.Server
	mu      sync.Mutex
	resumes []string
}

func newRecordingProxy(t *testing.T, target string) *recordingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.resumes = append(p.resumes, r.Header.Get("Last-Event-ID"))
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *recordingProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.resumes...)
}

func TestTailURL(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env, a := apptest.NewNode(t)
	proxy := newRecordingProxy(t, a.URL())
	run := func(args ...string) *background {
		return startCommand(t, envOf(map[string]string{"NOTIFY_LOG_LEVEL": "warn"}), args...)
	}
	insert := func(msg, user string) {
		t.Helper()
		if _, err := env.DB.Pool.Exec(context.Background(), `INSERT INTO notify.notifications (message, target_user_id) VALUES ($1, $2)`, msg, user); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("receives the user's notifications and resumes after a disconnect", func(t *testing.T) {
		tail := run("tail", "--url", proxy.URL, "--token", env.Token("alice", "USER"), "--count", "2", "--json")
		testkit.Eventually(t, 20*time.Second, "the tail's stream", func() bool {
			if tail.finished() {
				t.Fatalf("tail ended early: %v\n%s", tail.wait(t, time.Second), tail.errOut.String())
			}
			return a.OpenStreams() == 1
		})
		insert("for bob", "bob")
		insert("for alice 1", "alice")
		testkit.Eventually(t, 20*time.Second, "alice's first notification", func() bool { return len(lines(tail.out.String())) == 1 })
		proxy.CloseClientConnections()
		insert("for alice 2", "alice")
		if err := tail.wait(t, 30*time.Second); err != nil {
			t.Fatalf("tail: %v\n%s", err, tail.errOut.String())
		}
		ms := decodeLines(t, tail.out.String())
		if len(ms) != 2 || ms[0].Data.Message != "for alice 1" || ms[1].Data.Message != "for alice 2" || ms[1].Data.Seq <= ms[0].Data.Seq {
			t.Fatalf("tail printed:\n%s", tail.out.String())
		}
		reqs := proxy.requests()
		if len(reqs) < 2 || reqs[len(reqs)-1] != fmt.Sprint(ms[0].Data.Seq) {
			t.Errorf("Last-Event-ID of the requests: %q; want the last one to resume from %d", reqs, ms[0].Data.Seq)
		}
		if !strings.Contains(tail.errOut.String(), "reconnecting") {
			t.Errorf("no word of the reconnect on stderr:\n%s", tail.errOut.String())
		}
	})

	t.Run("replays from a seq as text", func(t *testing.T) {
		tail := run("tail", "--url", a.URL(), "--token", env.Token("alice"), "--from", "0", "--count", "2")
		if err := tail.wait(t, 30*time.Second); err != nil {
			t.Fatalf("tail: %v\n%s", err, tail.errOut.String())
		}
		got := lines(tail.out.String())
		if len(got) != 2 || !regexp.MustCompile(`^2\s+.*user:alice\s+for alice 1$`).MatchString(got[0]) ||
			!regexp.MustCompile(`^3\s+.*user:alice\s+for alice 2$`).MatchString(got[1]) {
			t.Errorf("tail --from 0 printed:\n%s", tail.out.String())
		}
	})

	t.Run("a bad token stops it with advice", func(t *testing.T) {
		tail := run("tail", "--url", a.URL(), "--token", "not-a-token")
		err := tail.wait(t, 30*time.Second)
		if err == nil || !strings.Contains(err.Error(), "refused the token (401") || !strings.Contains(err.Error(), "dev-token") {
			t.Errorf("got %v, want a refusal that says how to get a token", err)
		}
	})
}
