package app_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
	"github.com/notifyd/notifyd/internal/wire"
)

// cookieStream is a browser's stream read in the background.
type cookieStream struct {
	s      *wire.Stream
	events chan wire.Event
	done   chan struct{}
	err    error
}

func openCookieStream(t *testing.T, b *browser, base string) *cookieStream {
	t.Helper()
	// b's cookies, without b's timeout on the whole answer.
	client := &http.Client{Jar: b.client.Jar}
	s, err := wire.Open(context.Background(), client, base+"/api/notifications/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	cs := &cookieStream{s: s, events: make(chan wire.Event, 1000), done: make(chan struct{})}
	go func() {
		defer close(cs.done)
		for {
			ev, err := s.Next()
			if err != nil {
				cs.err = err
				return
			}
			cs.events <- ev
		}
	}()
	t.Cleanup(func() { s.Close(); <-cs.done })
	cs.next(t, `"type":"connected"`, 10*time.Second)
	return cs
}

// next waits for an event whose data contains want.
func (cs *cookieStream) next(t *testing.T, want string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev := <-cs.events:
			if strings.Contains(string(ev.Data), want) {
				return
			}
		case <-cs.done:
			for len(cs.events) > 0 { // what came before the end
				if ev := <-cs.events; strings.Contains(string(ev.Data), want) {
					return
				}
			}
			t.Fatalf("the stream ended (%v) before an event with %s", cs.err, want)
		case <-deadline:
			t.Fatalf("no event with %s within %s", want, within)
		}
	}
}

// closedForLogout checks that the stream says it is signed out, then ends.
func (cs *cookieStream) closedForLogout(t *testing.T, within time.Duration) {
	t.Helper()
	cs.next(t, `"closing":"logout"`, within)
	select {
	case <-cs.done:
		if !errors.Is(cs.err, io.EOF) {
			t.Fatalf("the stream ended with %v, want its end", cs.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream stayed open after saying it was signed out")
	}
}

// signInSession signs b in as user and returns the new session's id.
func signInSession(t *testing.T, env *apptest.Env, b *browser, base, user string) string {
	t.Helper()
	var before int
	ctx := context.Background()
	if err := env.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM notify.sessions`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	if resp, body := b.finish(b.startSignIn(base, "/", user)); resp.StatusCode != http.StatusFound {
		t.Fatalf("sign in %s: %d %s", user, resp.StatusCode, body)
	}
	var sid string
	if err := env.DB.Pool.QueryRow(ctx, `SELECT id::text FROM notify.sessions WHERE user_id = $1
		ORDER BY created_at DESC LIMIT 1`, user).Scan(&sid); err != nil {
		t.Fatal(err)
	}
	return sid
}

// TestDeletingSessionRowClosesItsStreams: deleting a row of notify.sessions
// with plain SQL, the documented way to sign a browser out everywhere,
// closes that session's streams on every node at once; the same user's
// other session keeps its stream, and the deleted session's cookie no
// longer opens one.
func TestDeletingSessionRowClosesItsStreams(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env := apptest.NewEnv(t)
	node1, base1 := startWithSignIn(t, env, env.Config())
	node2, base2 := startWithSignIn(t, env, env.Config())
	gone, kept := newBrowser(t), newBrowser(t)
	sid := signInSession(t, env, gone, base1, "kim")
	signInSession(t, env, kept, base2, "kim")
	s1 := openCookieStream(t, gone, node1.URL())
	s2 := openCookieStream(t, gone, node2.URL()) // the cookie works on every node
	other := openCookieStream(t, kept, node2.URL())

	ctx := context.Background()
	if _, err := env.DB.Pool.Exec(ctx, `DELETE FROM notify.sessions WHERE id = $1`, sid); err != nil {
		t.Fatal(err)
	}
	s1.closedForLogout(t, 5*time.Second)
	s2.closedForLogout(t, 5*time.Second)
	if _, err := env.DB.Pool.Exec(ctx, `INSERT INTO notify.notifications (target_user_id, message) VALUES ('kim', 'still here')`); err != nil {
		t.Fatal(err)
	}
	other.next(t, `"message":"still here"`, 10*time.Second)
	if _, err := gone.openStream(node2.URL()); err == nil || err.(*wire.StatusError).Status != http.StatusUnauthorized {
		t.Fatalf("the deleted session's cookie opened a stream: %v", err)
	}
}

// TestSessionDeletedWhileListenerDown: a session deleted while the node's
// LISTEN connection is down (its NOTIFY reaches no one) still has its stream
// closed, once the listener is back; other streams stay open.
func TestSessionDeletedWhileListenerDown(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env := apptest.NewEnv(t)
	srv, base := startWithSignIn(t, env, env.Config())
	gone, kept := newBrowser(t), newBrowser(t)
	sid := signInSession(t, env, gone, base, "lou")
	signInSession(t, env, kept, base, "lou")
	s := openCookieStream(t, gone, srv.URL())
	other := openCookieStream(t, kept, srv.URL())
	bearer := apptest.Open(t, srv.URL(), env.Token("lou"), "")

	// In one transaction: terminate the listener's backend, wait for it to
	// exit, and delete the session. The table is locked first, so the
	// reconnected listener's re-check reads it only after the delete has
	// committed, however fast it comes back. The delete announces nothing
	// (triggers off for this transaction): a notification committed while
	// no one listened may still reach the next listener while it sits in
	// PostgreSQL's queue, but nothing guarantees it, and this test is about
	// what happens when it does not.
	ctx := context.Background()
	tx, err := env.DB.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `LOCK TABLE notify.sessions IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	var killed int
	if err := tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'notifyd-listener'`).Scan(&killed); err != nil || killed == 0 {
		t.Fatalf("terminate the listener: killed %d, err %v", killed, err)
	}
	if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
		t.Fatal(err)
	}
	if tag, err := tx.Exec(ctx, `DELETE FROM notify.sessions WHERE id = $1`, sid); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("delete the session: %v %v", tag, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	s.closedForLogout(t, 10*time.Second)
	if _, err := env.DB.Pool.Exec(ctx, `INSERT INTO notify.notifications (target_user_id, message) VALUES ('lou', 'still here')`); err != nil {
		t.Fatal(err)
	}
	other.next(t, `"message":"still here"`, 10*time.Second)
	if m, ok := bearer.NextOfType("notification", 10*time.Second); !ok || m.Notification().Message != "still here" {
		t.Fatalf("the bearer stream: %+v, %v", m, bearer.Err())
	}
}
