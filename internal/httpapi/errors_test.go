package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/issuer"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
)

// badCase is one request that must be refused.
type badCase struct {
	name   string
	method string
	path   string
	header http.Header
	body   string
	status int
	words  []string // the error message mentions each, ignoring case
}

// validBody would create a notification if the request got that far.
const validBody = `{"message":"must not be stored","targetUserId":"user-1","severity":"high"}`

// TestBadInputIsRefusedAndWritesNothing sends every kind of bad request and
// checks the status, the JSON error body and its message, and that neither
// notify.notifications nor notify.queue_items gained a row.
func TestBadInputIsRefusedAndWritesNothing(t *testing.T) {
	t.Parallel()
	s := setup(t)
	var cases []badCase
	cases = append(cases, authCases(t, s)...)
	cases = append(cases, resumeCases(s)...)
	cases = append(cases, bodyCases(s, "/api/notifications", "")...)
	cases = append(cases, bodyCases(s, "/api/notifications/ws", "create-and-notify")...)
	cases = append(cases, actionCases(s)...)
	cases = append(cases, routeCases(s)...)

	// A row that exists already, so that a write would show even where a
	// table's emptiness could hide it.
	s.publish(t, map[string]any{"message": "baseline", "idempotencyKey": "taken"})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := s.counts(t)
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			r := s.do(t, tc.method, tc.path, tc.header, body)
			msg := r.errorMessage(t, tc.status)
			if !contains(msg, tc.words...) {
				t.Errorf("error %q should mention %q", msg, tc.words)
			}
			if tc.status == http.StatusUnauthorized {
				if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("WWW-Authenticate %q, want a Bearer challenge", got)
				}
			}
			if after := s.counts(t); after != before {
				t.Errorf("rows changed from %+v to %+v", before, after)
			}
		})
	}
}

// authCases are requests whose credentials are missing or do not verify.
// Each carries a body that would otherwise be published.
func authCases(t *testing.T, s *server) []badCase {
	now := time.Now()
	claims := func(change func(map[string]any)) string {
		c := map[string]any{"iss": s.env.Issuer.URL(), "aud": apptest.Audience, "sub": "admin-1",
			"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(), "roles": []string{"ADMIN"}}
		change(c)
		tok, err := s.env.Issuer.Sign(c)
		if err != nil {
			t.Fatalf("sign: %v", err)
		}
		return tok
	}
	expired := claims(func(c map[string]any) {
		c["iat"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
	})
	wrongAudience := claims(func(c map[string]any) { c["aud"] = "another-client" })
	wrongIssuer := claims(func(c map[string]any) { c["iss"] = "http://127.0.0.1:1/elsewhere" })
	noSubject := claims(func(c map[string]any) { delete(c, "sub") })
	// The same issuer URL and audience, but another key: a forged token.
	forger, err := issuer.New(issuer.Config{URL: s.env.Issuer.URL(), ClientID: apptest.Audience})
	if err != nil {
		t.Fatalf("start forger: %v", err)
	}
	forged, err := forger.Token("admin-1", []string{"ADMIN"}, time.Hour)
	if err != nil {
		t.Fatalf("forge: %v", err)
	}
	// A real token with its signature swapped for another's.
	head, _, _ := strings.Cut(s.admin, ".")
	_, sig, _ := strings.Cut(forged[strings.Index(forged, ".")+1:], ".")
	payload := strings.Split(s.admin, ".")[1]
	spliced := head + "." + payload + "." + sig

	post := func(name string, h http.Header, words ...string) badCase {
		h.Set("Content-Type", "application/json")
		return badCase{name: "auth/" + name, method: http.MethodPost, path: "/api/notifications", header: h,
			body: validBody, status: http.StatusUnauthorized, words: words}
	}
	return []badCase{
		post("missing Authorization", hdr(), "Authorization"),
		post("garbage token", hdr("Authorization", "Bearer garbage"), "malformed"),
		post("garbage token with dots", hdr("Authorization", "Bearer a.b.c"), "malformed"),
		post("empty bearer", hdr("Authorization", "Bearer "), "Bearer"),
		post("Basic scheme", hdr("Authorization", "Basic YWRtaW46YWRtaW4="), "Bearer"),
		post("token without scheme", hdr("Authorization", s.admin), "Bearer"),
		post("expired token", bearer(expired), "expired"),
		post("wrong audience", bearer(wrongAudience), "audience"),
		post("wrong issuer", bearer(wrongIssuer), "issuer"),
		post("another issuer's key", bearer(forged), "signature"),
		post("spliced signature", bearer(spliced), "signature"),
		post("no subject", bearer(noSubject), "subject"),
		post("oversized Authorization", hdr("Authorization", "Bearer "+strings.Repeat("a", 20<<10)), "too"),
		{name: "auth/stream without Authorization", method: http.MethodGet, path: "/api/notifications/ws",
			header: hdr(), status: http.StatusUnauthorized, words: []string{"Authorization"}},
		{name: "auth/stream with expired token", method: http.MethodGet, path: "/api/notifications/ws",
			header: bearer(expired), status: http.StatusUnauthorized, words: []string{"expired"}},
		{name: "auth/action without Authorization", method: http.MethodPost, path: "/api/notifications/ws",
			header: hdr("Content-Type", "application/json"),
			body:   `{"action":"create-and-notify","message":"x"}`, status: http.StatusUnauthorized,
			words: []string{"Authorization"}},
	}
}

// badResumeIDs are resume points that are not non-negative integers.
var badResumeIDs = []struct{ name, id string }{
	{"letters", "abc"},
	{"negative", "-1"},
	{"fraction", "1.5"},
	{"beyond int64", "99999999999999999999"},
	{"int64 max plus one", "9223372036854775808"},
	{"exponent", "1e3"},
	{"plus sign", "+1"},
	{"hex", "0x10"},
	{"inner space", "1 2"},
	{"21 digits", "000000000000000000001"},
	{"10 KB of digits", strings.Repeat("9", 10<<10)},
	{"10 KB of letters", strings.Repeat("x", 10<<10)},
}

// resumeCases are streams asked to resume from a malformed point, in the
// header and in the query.
func resumeCases(s *server) []badCase {
	var out []badCase
	for _, b := range badResumeIDs {
		name, id := b.name, b.id
		out = append(out,
			badCase{name: "resume header/" + name, method: http.MethodGet, path: "/api/notifications/ws",
				header: bearer(s.user, "Last-Event-ID", id), status: http.StatusBadRequest,
				words: []string{"Last-Event-ID"}},
			badCase{name: "resume query/" + name, method: http.MethodGet,
				path:   "/api/notifications/ws?lastEventId=" + url.QueryEscape(id),
				header: bearer(s.user), status: http.StatusBadRequest, words: []string{"lastEventId"}})
	}
	// The header wins over the query: a bad header is refused even with a
	// good query, and named.
	out = append(out, badCase{name: "resume header bad, query good", method: http.MethodGet,
		path: "/api/notifications/ws?lastEventId=5", header: bearer(s.user, "Last-Event-ID", "abc"),
		status: http.StatusBadRequest, words: []string{"Last-Event-ID"}})
	return out
}

// bodyCases are malformed or invalid bodies for a publishing endpoint; for
// POST /api/notifications/ws, action is added to each object.
func bodyCases(s *server, path, action string) []badCase {
	obj := func(fields string) string {
		if action == "" {
			return "{" + fields + "}"
		}
		if fields == "" {
			return fmt.Sprintf(`{"action":%q}`, action)
		}
		return fmt.Sprintf(`{"action":%q,%s}`, action, fields)
	}
	str := func(v string) string { b, _ := json.Marshal(v); return string(b) }
	roles := func(n int) string {
		rs := make([]string, n)
		for i := range rs {
			rs[i] = fmt.Sprintf("R%d", i)
		}
		b, _ := json.Marshal(rs)
		return string(b)
	}
	bigData := `{"k":` + str(strings.Repeat("d", 33<<10)) + `}`
	// Under 32 KiB as sent, over it as the database stores it (jsonb text
	// adds a space after each colon and comma): refused by the database's
	// own limit, with the rule's name.
	keys := make([]string, 3000)
	for i := range keys {
		keys[i] = fmt.Sprintf(`"k%04d":1`, i)
	}
	expandingData := "{" + strings.Join(keys, ",") + "}"

	c := func(name, contentType, body string, status int, words ...string) badCase {
		h := bearer(s.admin)
		if contentType != "" {
			h.Set("Content-Type", contentType)
		}
		return badCase{name: path + "/" + name, method: http.MethodPost, path: path, header: h,
			body: body, status: status, words: words}
	}
	j := func(name, body string, status int, words ...string) badCase {
		return c(name, "application/json", body, status, words...)
	}
	cases := []badCase{
		c("text/plain", "text/plain", obj(`"message":"x"`), http.StatusUnsupportedMediaType, "application/json"),
		c("form", "application/x-www-form-urlencoded", "message=x", http.StatusUnsupportedMediaType, "application/json"),
		c("missing content type", "", obj(`"message":"x"`), http.StatusUnsupportedMediaType, "application/json"),
		c("unparsable content type", "application/json; =", obj(`"message":"x"`), http.StatusUnsupportedMediaType, "application/json"),
		j("empty body", "", http.StatusBadRequest, "empty"),
		j("truncated JSON", obj(`"message":"x"`)[:12], http.StatusBadRequest, "JSON"),
		j("syntax error", `{"message" "x"}`, http.StatusBadRequest, "JSON"),
		j("not JSON", `message=x`, http.StatusBadRequest, "JSON"),
		j("array", "["+obj(`"message":"x"`)+"]", http.StatusBadRequest, "object"),
		j("string", `"x"`, http.StatusBadRequest, "object"),
		j("null", `null`, http.StatusBadRequest),
		j("trailing object", obj(`"message":"x"`)+obj(`"message":"y"`), http.StatusBadRequest, "nothing after"),
		j("trailing garbage", obj(`"message":"x"`)+"garbage", http.StatusBadRequest),
		j("trailing comma", obj(`"message":"x"`)+",", http.StatusBadRequest),
		j("message a number", obj(`"message":5`), http.StatusBadRequest, "message"),
		j("targetRoles a string", obj(`"message":"x","targetRoles":"ADMIN"`), http.StatusBadRequest, "targetRoles"),
		j("targetRoles of numbers", obj(`"message":"x","targetRoles":[1]`), http.StatusBadRequest, "targetRoles"),
		j("targetUserId a number", obj(`"message":"x","targetUserId":7`), http.StatusBadRequest, "targetUserId"),
		j("severity a number", obj(`"message":"x","severity":3`), http.StatusBadRequest, "severity"),
		j("data an array", obj(`"message":"x","data":[1]`), http.StatusBadRequest, "data"),
		j("data a string", obj(`"message":"x","data":"x"`), http.StatusBadRequest, "data"),
		j("data a number", obj(`"message":"x","data":5`), http.StatusBadRequest, "data"),
		j("body over 64 KiB", obj(`"message":`+str(strings.Repeat("m", 70<<10))), http.StatusRequestEntityTooLarge, "65536"),
		j("padding over 64 KiB", obj(`"message":"x"`)+strings.Repeat(" ", 70<<10), http.StatusRequestEntityTooLarge, "65536"),
		j("message missing", obj(`"severity":"low"`), http.StatusBadRequest, "message"),
		j("message empty", obj(`"message":""`), http.StatusBadRequest, "message"),
		j("message whitespace", obj(`"message":" \t\n "`), http.StatusBadRequest, "message"),
		j("bad severity", obj(`"message":"x","severity":"urgent"`), http.StatusBadRequest, "severity"),
		j("severity in capitals", obj(`"message":"x","severity":"HIGH"`), http.StatusBadRequest, "severity"),
		j("NUL in message", obj(`"message":"a\u0000b"`), http.StatusBadRequest, "message", "NUL"),
		j("NUL in details", obj(`"message":"x","details":"\u0000"`), http.StatusBadRequest, "details", "NUL"),
		j("NUL in a role", obj(`"message":"x","targetRoles":["A\u0000"]`), http.StatusBadRequest, "targetRoles", "NUL"),
		j("NUL in data", obj(`"message":"x","data":{"k":"a\u0000"}`), http.StatusBadRequest, "data", "NUL"),
		j("NUL in a data key", obj(`"message":"x","data":{"\u0000":1}`), http.StatusBadRequest, "data", "NUL"),
		j("NUL after an escaped backslash", obj(`"message":"x","data":{"k":"\\\u0000"}`), http.StatusBadRequest, "data", "NUL"),
		j("invalid UTF-8 in data", obj("\"message\":\"x\",\"data\":{\"k\":\"\xff\"}"), http.StatusBadRequest, "data", "UTF-8"),
		j("too many roles", obj(`"message":"x","targetRoles":`+roles(65)), http.StatusBadRequest, "targetRoles", "64"),
		j("empty role", obj(`"message":"x","targetRoles":["A",""]`), http.StatusBadRequest, "targetRoles[1]"),
		j("long role", obj(`"message":"x","targetRoles":[`+str(strings.Repeat("r", 201))+`]`), http.StatusBadRequest, "targetRoles[0]"),
		j("long message", obj(`"message":`+str(strings.Repeat("m", 4<<10+1))), http.StatusBadRequest, "message"),
		j("long details", obj(`"message":"x","details":`+str(strings.Repeat("d", 16<<10+1))), http.StatusBadRequest, "details"),
		j("long module", obj(`"message":"x","module":`+str(strings.Repeat("m", 201))), http.StatusBadRequest, "module"),
		j("long actionType", obj(`"message":"x","actionType":`+str(strings.Repeat("a", 201))), http.StatusBadRequest, "actionType"),
		j("long targetUserId", obj(`"message":"x","targetUserId":`+str(strings.Repeat("u", 201))), http.StatusBadRequest, "targetUserId"),
		j("long idempotencyKey", obj(`"message":"x","idempotencyKey":`+str(strings.Repeat("k", 201))), http.StatusBadRequest, "idempotencyKey"),
		j("data over 32 KiB", obj(`"message":"x","data":`+bigData), http.StatusBadRequest, "data"),
		j("data over 32 KiB as stored", obj(`"message":"x","data":`+expandingData), http.StatusBadRequest, "notifications_data_size_check"),
		j("blank targetUserId", obj(`"message":"x","targetUserId":" \t"`), http.StatusBadRequest, "targetUserId"),
		j("blank role", obj(`"message":"x","targetRoles":["A"," "]`), http.StatusBadRequest, "targetRoles[1]"),
		j("key reused for another message", obj(`"message":"not the baseline","idempotencyKey":"taken"`), http.StatusConflict, "idempotency"),
	}
	if action == "" {
		long := bearer(s.admin, "Content-Type", "application/json", "Idempotency-Key", strings.Repeat("k", 201))
		cases = append(cases,
			badCase{name: path + "/long Idempotency-Key header", method: http.MethodPost, path: path, header: long,
				body: obj(`"message":"x"`), status: http.StatusBadRequest, words: []string{"idempotencyKey"}},
			badCase{name: path + "/Idempotency-Key header and field differ", method: http.MethodPost, path: path,
				header: bearer(s.admin, "Content-Type", "application/json", "Idempotency-Key", "a"),
				body:   obj(`"message":"x","idempotencyKey":"b"`), status: http.StatusBadRequest,
				words: []string{"Idempotency-Key"}},
			badCase{name: path + "/Idempotency-Key reused for another message", method: http.MethodPost, path: path,
				header: bearer(s.admin, "Content-Type", "application/json", "Idempotency-Key", "taken"),
				body:   obj(`"message":"something else"`), status: http.StatusConflict, words: []string{"idempotency"}},
		)
	}
	return cases
}

// actionCases are bad actions and publishing attempts without an admin role.
func actionCases(s *server) []badCase {
	ws := func(name, token, body string, status int, words ...string) badCase {
		return badCase{name: "action/" + name, method: http.MethodPost, path: "/api/notifications/ws",
			header: jsonBody(token), body: body, status: status, words: words}
	}
	return []badCase{
		ws("unknown action", s.user, `{"action":"explode"}`, http.StatusBadRequest, "unknown action", "explode"),
		ws("missing action", s.user, `{}`, http.StatusBadRequest, "action is required"),
		ws("empty action", s.user, `{"action":""}`, http.StatusBadRequest, "action is required"),
		ws("action a number", s.user, `{"action":1}`, http.StatusBadRequest, "action"),
		ws("test with bad severity", s.user, `{"action":"test","severity":"urgent"}`, http.StatusBadRequest, "severity"),
		ws("test with NUL", s.user, `{"action":"test","message":"\u0000"}`, http.StatusBadRequest, "NUL"),
		ws("test with data array", s.user, `{"action":"test","data":[]}`, http.StatusBadRequest, "data"),
		ws("broadcast by plain user", s.user, `{"action":"broadcast","message":"hi all"}`, http.StatusForbidden, "ADMIN"),
		ws("create-and-notify by plain user", s.user,
			`{"action":"create-and-notify","message":"hi","targetUserId":"user-2"}`, http.StatusForbidden, "ADMIN"),
		ws("create-and-notify by plain user to itself", s.user,
			`{"action":"create-and-notify","message":"hi","targetUserId":"user-1"}`, http.StatusForbidden, "ADMIN"),
		// Authorization comes before validation: an invalid body from a
		// plain user is still 403, so nothing is learnt about the rules.
		ws("invalid broadcast by plain user", s.user, `{"action":"broadcast","message":""}`, http.StatusForbidden, "ADMIN"),
		{name: "action/POST /api/notifications by plain user", method: http.MethodPost, path: "/api/notifications",
			header: jsonBody(s.user), body: validBody, status: http.StatusForbidden, words: []string{"ADMIN"}},
	}
}

// routeCases are requests for no route, or a route with another method.
func routeCases(s *server) []badCase {
	return []badCase{
		{name: "route/unknown path", method: http.MethodGet, path: "/no-such-endpoint", header: hdr(),
			status: http.StatusNotFound, words: []string{"no such endpoint"}},
		{name: "route/unknown api path with token", method: http.MethodGet, path: "/api/no-such-thing",
			header: bearer(s.admin), status: http.StatusNotFound, words: []string{"no such endpoint"}},
		{name: "route/unknown path POST", method: http.MethodPost, path: "/no-such-endpoint",
			header: jsonBody(s.admin), body: validBody, status: http.StatusNotFound, words: []string{"no such endpoint"}},
		{name: "route/DELETE stream", method: http.MethodDelete, path: "/api/notifications/ws",
			header: bearer(s.admin), status: http.StatusMethodNotAllowed, words: []string{"method"}},
		{name: "route/PUT stream", method: http.MethodPut, path: "/api/notifications/ws",
			header: jsonBody(s.admin), body: `{"action":"create-and-notify","message":"x"}`,
			status: http.StatusMethodNotAllowed, words: []string{"method"}},
		{name: "route/PATCH healthz", method: http.MethodPatch, path: "/healthz", header: hdr(),
			status: http.StatusMethodNotAllowed, words: []string{"method"}},
	}
}
