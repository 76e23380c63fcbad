package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
)

// api calls the JSON API with a bearer token and decodes the answer.
func api(t *testing.T, method, url, token, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, url, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

type historyPage struct {
	Notifications []struct {
		ID       string  `json:"id"`
		Seq      int64   `json:"seq"`
		Message  string  `json:"message"`
		Module   *string `json:"module"`
		Severity string  `json:"severity"`
		Read     bool    `json:"read"`
		ReadAt   *string `json:"readAt"`
	} `json:"notifications"`
	NextCursor *int64 `json:"nextCursor"`
}

type unread struct {
	Count   int  `json:"count"`
	HasMore bool `json:"hasMore"`
}

// inboxEnv starts a server and publishes notifications by SQL, waiting
// until they are published.
type inboxEnv struct {
	t   *testing.T
	env *apptest.Env
	url string
}

func newInboxEnv(t *testing.T) *inboxEnv {
	env, srv := apptest.NewNode(t)
	return &inboxEnv{t: t, env: env, url: srv.URL()}
}

func (e *inboxEnv) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.env.DB.Pool.Exec(context.Background(), sql, args...); err != nil {
		e.t.Fatal(err)
	}
}

func (e *inboxEnv) waitPublished() int64 {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var pending int
		var head int64
		if err := e.env.DB.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM notify.notifications WHERE seq IS NULL),
			(SELECT last_seq FROM notify.stream_head)`).Scan(&pending, &head); err != nil {
			e.t.Fatal(err)
		}
		if pending == 0 {
			return head
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d notifications still unpublished", pending)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestInboxHistoryPaginationAndFilters(t *testing.T) {
	t.Parallel()
	e := newInboxEnv(t)
	e.exec(`INSERT INTO notify.notifications (message, target_user_id, target_roles, module, severity)
		SELECT 'm' || g, CASE WHEN g % 3 = 0 THEN 'alice' WHEN g % 3 = 1 THEN 'bob' END,
		       CASE WHEN g % 3 = 1 THEN '{SALES}'::text[] END,
		       CASE WHEN g % 2 = 0 THEN 'orders' ELSE 'billing' END,
		       CASE WHEN g % 5 = 0 THEN 'high' ELSE 'low' END
		FROM generate_series(1, 45) g`)
	e.waitPublished()
	// alice (no roles) sees g%3==0 (hers) and g%3==2 (everyone): 30 notifications.
	tok := e.env.Token("alice")
	var all []string
	var seqs []int64
	url := e.url + "/api/notifications?limit=7"
	for pages := 0; ; pages++ {
		var p historyPage
		if code := api(t, "GET", url, tok, "", &p); code != 200 {
			t.Fatalf("history: %d", code)
		}
		for _, n := range p.Notifications {
			all = append(all, n.Message)
			seqs = append(seqs, n.Seq)
		}
		if p.NextCursor == nil {
			break
		}
		url = fmt.Sprintf("%s/api/notifications?limit=7&before=%d", e.url, *p.NextCursor)
		if pages > 10 {
			t.Fatal("too many pages")
		}
	}
	if len(all) != 30 {
		t.Fatalf("alice's history has %d notifications, want 30: %v", len(all), all)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] >= seqs[i-1] {
			t.Fatalf("not newest first: %v", seqs)
		}
	}
	for _, m := range all {
		var g int
		fmt.Sscanf(m, "m%d", &g)
		if g%3 == 1 {
			t.Errorf("alice sees bob's %s", m)
		}
	}
	var p historyPage
	api(t, "GET", e.url+"/api/notifications?module=orders&severity=high&limit=100", tok, "", &p)
	for _, n := range p.Notifications {
		if *n.Module != "orders" || n.Severity != "high" {
			t.Errorf("filter leaked %+v", n)
		}
	}
	// orders+high is g in {10, 20, 30, 40}; 10 and 40 are bob's, so alice sees 20 and 30.
	if len(p.Notifications) != 2 {
		t.Errorf("module+severity filter: %d results, want 2", len(p.Notifications))
	}
	for _, bad := range []string{"?limit=0", "?limit=101", "?before=x", "?before=-3", "?unread=maybe", "?severity=urgent"} {
		if code := api(t, "GET", e.url+"/api/notifications"+bad, tok, "", nil); code != 400 {
			t.Errorf("%s: %d, want 400", bad, code)
		}
	}
}

func TestInboxReadStateAndUnreadCount(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	e := newInboxEnv(t)
	tok := e.env.Token("carol", "SALES")
	// Mixed targets: 2 to carol, 3 to SALES, 4 to everyone, 5 to others.
	e.exec(`INSERT INTO notify.notifications (message, target_user_id, target_roles) VALUES
		('u1','carol',NULL),('u2','carol',NULL),
		('r1',NULL,'{SALES}'),('r2',NULL,'{SALES,OPS}'),('r3','dave','{SALES}'),
		('e1',NULL,NULL),('e2',NULL,NULL),('e3',NULL,NULL),('e4',NULL,NULL),
		('x1','dave',NULL),('x2',NULL,'{OPS}'),('x3','erin','{HR}'),('x4','dave',NULL),('x5',NULL,'{HR}')`)
	head := e.waitPublished()
	count := func() unread {
		var u unread
		if code := api(t, "GET", e.url+"/api/notifications/unread-count", tok, "", &u); code != 200 {
			t.Fatalf("unread-count: %d", code)
		}
		return u
	}
	if u := count(); u.Count != 9 || u.HasMore {
		t.Fatalf("unread %+v, want 9", u)
	}
	var p historyPage
	api(t, "GET", e.url+"/api/notifications?limit=100", tok, "", &p)
	idOf := map[string]string{}
	for _, n := range p.Notifications {
		idOf[n.Message] = n.ID
	}
	mark := func(msg, how string, want int) {
		t.Helper()
		if code := api(t, "POST", e.url+"/api/notifications/"+idOf[msg]+"/"+how, tok, "", nil); code != want {
			t.Fatalf("%s %s: %d, want %d", how, msg, code, want)
		}
	}
	mark("u1", "read", 204)
	mark("u1", "read", 204) // idempotent
	mark("e1", "read", 204)
	if u := count(); u.Count != 7 {
		t.Fatalf("after two reads: %+v", u)
	}
	mark("u1", "unread", 204)
	if u := count(); u.Count != 8 {
		t.Fatalf("after unread: %+v", u)
	}
	// Another user's notification, an unknown id, and a malformed one: 404.
	var xID string
	e.env.DB.Pool.QueryRow(context.Background(), `SELECT id FROM notify.notifications WHERE message = 'x1'`).Scan(&xID)
	for _, id := range []string{xID, "00000000-0000-0000-0000-000000000000", "not-a-uuid"} {
		if code := api(t, "POST", e.url+"/api/notifications/"+id+"/read", tok, "", nil); code != 404 {
			t.Errorf("read %s: %d, want 404", id, code)
		}
	}
	// read-all up to the head the user saw; a notification arriving during
	// the click stays unread, and an upTo past the head is capped.
	e.exec(`INSERT INTO notify.notifications (message) VALUES ('late')`)
	e.waitPublished()
	if code := api(t, "POST", e.url+"/api/notifications/read-all", tok, fmt.Sprintf(`{"upTo": %d}`, head), nil); code != 204 {
		t.Fatalf("read-all: %d", code)
	}
	if u := count(); u.Count != 1 {
		t.Fatalf("after read-all up to %d: %+v, want only the late one", head, u)
	}
	mark("u2", "unread", 204) // below the watermark: an exception
	if u := count(); u.Count != 2 {
		t.Fatalf("after unread below the watermark: %+v", u)
	}
	var unreadOnly historyPage
	api(t, "GET", e.url+"/api/notifications?unread=true", tok, "", &unreadOnly)
	if len(unreadOnly.Notifications) != 2 || unreadOnly.Notifications[0].Message != "late" || unreadOnly.Notifications[1].Message != "u2" {
		t.Errorf("unread filter: %+v", unreadOnly.Notifications)
	}
	if code := api(t, "POST", e.url+"/api/notifications/read-all", tok, `{"upTo": 999999999}`, nil); code != 204 {
		t.Fatal(code)
	}
	if u := count(); u.Count != 0 {
		t.Fatalf("after read-all: %+v", u)
	}
	e.exec(`INSERT INTO notify.notifications (message) VALUES ('after the big upTo')`)
	e.waitPublished()
	if u := count(); u.Count != 1 {
		t.Fatalf("a notification after read-all with a huge upTo must be unread: %+v", u)
	}
	var read historyPage
	api(t, "GET", e.url+"/api/notifications?limit=3", tok, "", &read)
	if read.Notifications[0].Read || !read.Notifications[1].Read || read.Notifications[1].ReadAt == nil {
		t.Errorf("read flags: %+v", read.Notifications)
	}
	for _, bad := range []string{`{}`, `{"upTo": -1}`, `{"upTo": "x"}`} {
		if code := api(t, "POST", e.url+"/api/notifications/read-all", tok, bad, nil); code != 400 {
			t.Errorf("read-all %s: %d", bad, code)
		}
	}
}

func TestUnreadCountCapsAt99(t *testing.T) {
	t.Parallel()
	e := newInboxEnv(t)
	e.exec(`INSERT INTO notify.notifications (message) SELECT 'n' || g FROM generate_series(1, 150) g`)
	e.waitPublished()
	var u unread
	api(t, "GET", e.url+"/api/notifications/unread-count", e.env.Token("zoe"), "", &u)
	if u.Count != 99 || !u.HasMore {
		t.Fatalf("%+v, want 99 and hasMore", u)
	}
}

// TestBroadcastWritesNoPerUserRows: read state costs rows only for what
// users do. A broadcast to an audience of 100,000 users writes one
// notification and one queue item, nothing per user.
func TestBroadcastWritesNoPerUserRows(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	e := newInboxEnv(t)
	rows := func() (n int64) {
		e.env.DB.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM notify.notifications) + (SELECT count(*) FROM notify.queue_items)
			+ (SELECT count(*) FROM notify.read_cursors) + (SELECT count(*) FROM notify.read_marks) + (SELECT count(*) FROM notify.preferences)`).Scan(&n)
		return n
	}
	before := rows()
	e.exec(`INSERT INTO notify.notifications (message, target_roles) VALUES ('to all 100,000 employees', '{EMPLOYEE}')`)
	e.waitPublished()
	if got := rows() - before; got != 2 {
		t.Fatalf("the broadcast wrote %d rows, want 2 (the notification and its queue item)", got)
	}
	// 100,000 synthetic users each see it unread, computed, not stored.
	for _, user := range []string{"u000001", "u050000", "u100000"} {
		var u unread
		api(t, "GET", e.url+"/api/notifications/unread-count", e.env.Token(user, "EMPLOYEE"), "", &u)
		if u.Count != 1 {
			t.Errorf("%s unread %+v", user, u)
		}
	}
	if got := rows() - before; got != 2 {
		t.Fatalf("reading counts wrote rows: %d", got)
	}
	// Marking it read costs one row for that user only.
	var p historyPage
	api(t, "GET", e.url+"/api/notifications", e.env.Token("u000001", "EMPLOYEE"), "", &p)
	api(t, "POST", e.url+"/api/notifications/"+p.Notifications[0].ID+"/read", e.env.Token("u000001", "EMPLOYEE"), "", nil)
	if got := rows() - before; got > 4 {
		t.Fatalf("one mark-read wrote %d rows", got-2)
	}
}

// TestReadStateSyncsAcrossNodes: a mark-read through one node reaches the
// user's stream on another node as a status message with the unread count.
func TestReadStateSyncsAcrossNodes(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env := apptest.NewEnv(t)
	one := env.Start(env.Config())
	two := env.Start(env.Config())
	tok := env.Token("ann")
	other := apptest.Open(t, two.URL(), tok, "")
	m, ok := other.NextOfType("connected", 10*time.Second)
	if !ok || !strings.Contains(string(m.Data), `"unreadCount":0`) {
		t.Fatalf("connected message without unreadCount: %s", m.Data)
	}
	if _, err := env.DB.Pool.Exec(context.Background(), `INSERT INTO notify.notifications (message, target_user_id) VALUES ('a','ann'),('b','ann')`); err != nil {
		t.Fatal(err)
	}
	got := other.Notifications(2, 10*time.Second)
	start := time.Now()
	if code := api(t, "POST", one.URL()+"/api/notifications/"+got[0].NotificationID+"/read", tok, "", nil); code != 204 {
		t.Fatalf("read: %d", code)
	}
	st, ok := other.NextOfType("status", 5*time.Second)
	if !ok {
		t.Fatal("no status message on the other node's stream")
	}
	var data struct {
		UnreadCount int `json:"unreadCount"`
		Change      struct {
			Action         string `json:"action"`
			NotificationID string `json:"notificationId"`
		} `json:"change"`
	}
	json.Unmarshal(st.Data, &data)
	if data.UnreadCount != 1 || data.Change.Action != "read" || data.Change.NotificationID != got[0].NotificationID {
		t.Errorf("status %s", st.Data)
	}
	if took := time.Since(start); took > time.Second {
		t.Logf("sync took %v (over a second; the machine may be loaded)", took)
	}
}

// TestMutes: a muted module is kept in the history but not pushed live nor
// counted unread, except critical notifications.
func TestMutes(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env, srv := apptest.NewNode(t)
	tok := env.Token("max")
	var prefs struct {
		MutedModules []string `json:"mutedModules"`
	}
	if code := api(t, "PUT", srv.URL()+"/api/notifications/preferences", tok, `{"mutedModules":["billing","billing"]}`, &prefs); code != 200 || len(prefs.MutedModules) != 1 {
		t.Fatalf("set preferences: %d %+v", code, prefs)
	}
	for _, bad := range []string{`{}`, `{"mutedModules":"billing"}`, `{"mutedModules":[""]}`, `{"mutedModules":[1]}`} {
		if code := api(t, "PUT", srv.URL()+"/api/notifications/preferences", tok, bad, nil); code != 400 {
			t.Errorf("%s: %d", bad, code)
		}
	}
	r := apptest.Open(t, srv.URL(), tok, "")
	if _, err := env.DB.Pool.Exec(context.Background(), `INSERT INTO notify.notifications (message, module, severity, target_user_id) VALUES
		('invoice', 'billing', 'low', 'max'), ('outage', 'billing', 'critical', 'max'), ('order', 'orders', 'low', 'max')`); err != nil {
		t.Fatal(err)
	}
	got := r.Notifications(2, 10*time.Second)
	if got[0].Notification().Message != "outage" || got[1].Notification().Message != "order" {
		t.Fatalf("live: %q %q, want the critical one and the other module", got[0].Notification().Message, got[1].Notification().Message)
	}
	var u unread
	api(t, "GET", srv.URL()+"/api/notifications/unread-count", tok, "", &u)
	if u.Count != 2 {
		t.Errorf("unread %d, want 2 (the muted low one does not count)", u.Count)
	}
	var p historyPage
	api(t, "GET", srv.URL()+"/api/notifications", tok, "", &p)
	if len(p.Notifications) != 3 {
		t.Errorf("history has %d, want all 3", len(p.Notifications))
	}
	// A resume does not replay the muted one either.
	resumed := apptest.Open(t, srv.URL(), tok, "0")
	rg := resumed.Notifications(2, 10*time.Second)
	if rg[0].Notification().Message != "outage" || rg[1].Notification().Message != "order" {
		t.Errorf("replay: %q %q", rg[0].Notification().Message, rg[1].Notification().Message)
	}
	// Unmuting takes effect on the open stream.
	api(t, "PUT", srv.URL()+"/api/notifications/preferences", tok, `{"mutedModules":[]}`, nil)
	if _, ok := r.NextOfType("status", 5*time.Second); !ok {
		t.Fatal("no status after the preferences changed")
	}
	env.DB.Pool.Exec(context.Background(), `INSERT INTO notify.notifications (message, module, target_user_id) VALUES ('invoice 2', 'billing', 'max')`)
	if m := r.Notifications(1, 10*time.Second)[0]; m.Notification().Message != "invoice 2" {
		t.Errorf("after unmuting got %q", m.Notification().Message)
	}
}
