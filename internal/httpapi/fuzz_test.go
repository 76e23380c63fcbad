package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/notifyd/notifyd/internal/app"
	"github.com/notifyd/notifyd/internal/testkit"
)

// FuzzCreateBody posts arbitrary bytes as the body of POST /api/notifications
// with an admin token, to one server per fuzz process. Whatever the body,
// the answer is 201 (one new row and queue item), 200 (an idempotent repeat,
// nothing new) or a 400/409/413 JSON error that wrote nothing; never a 500.
// (429 is tolerated like a 4xx, but the limit is off here.)
func FuzzCreateBody(f *testing.F) {
	testkit.Slow(f)
	seeds := []string{
		`{"message":"hello"}`,
		`{"message":"to a user","targetUserId":"user-1","severity":"high","module":"m","actionType":"a","details":"d"}`,
		`{"message":"to roles","targetRoles":["ADMIN","USER"],"data":{"k":[1,2,{"x":null}]}}`,
		`{"message":"keyed","idempotencyKey":"k1"}`,
		`{"message":"keyed","idempotencyKey":"k1"}`,
		`{"message":"keyed differently","idempotencyKey":"k1"}`,
		`{"message":"x","data":null}`,
		`{"message":"x","data":{}}`,
		`{"message":"x","data":[1]}`,
		`{"message":"x","data":"s"}`,
		`{"message":"x","data":{"k":"\u0000"}}`,
		`{"message":"x","data":{"k":"\\u0000"}}`,
		"{\"message\":\"x\",\"data\":{\"k\":\"\xff\xfe\"}}",
		"{\"message\":\"\xff\"}",
		`{"message":"x","data":{"k":"\ud800"}}`,
		`{"message":"\ud800\udc00"}`,
		`{"message":"x","data":{"k":1e999999}}`,
		`{"message":"x","data":{"k":-0.0000000000000000000000000001}}`,
		`{"message":"x","data":{"a":1,"a":2}}`,
		`{"message":"x","data":{"a":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}}`,
		`{"message":"a\u0000b"}`,
		`{"message":""}`,
		`{"message":"   "}`,
		`{"message":5}`,
		`{"message":"x","targetRoles":"ADMIN"}`,
		`{"message":"x","targetRoles":[""]}`,
		`{"message":"x","targetRoles":null,"targetUserId":null}`,
		`{"message":"x","severity":"urgent"}`,
		`{"MESSAGE":"case-insensitive keys","SEVERITY":"low"}`,
		`{"message":"x","unknown":"field"}`,
		`{"message":"x"} {"message":"y"}`,
		`{"message":"x"}garbage`,
		`[{"message":"x"}]`,
		`null`,
		`true`,
		`"message"`,
		``,
		` `,
		`{`,
		`{"message":"x"`,
		`{"message":"x",}`,
		`{"message":` + `"` + strings.Repeat("m", 4097) + `"}`,
		`{"message":` + `"` + strings.Repeat("m", 70<<10) + `"}`,
		`{"message":"x"}` + strings.Repeat(" ", 70<<10),
		"\xef\xbb\xbf{\"message\":\"BOM\"}",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	// No publish rate limit (negative: none), so every input reaches
	// validation and the database rather than a 429.
	s := setup(f, func(c *app.Config) { c.PublishRate = -1 })
	f.Fuzz(func(t *testing.T, body []byte) {
		before := s.counts(t)
		r := s.do(t, http.MethodPost, "/api/notifications", jsonBody(s.admin), body)
		after := s.counts(t)
		switch r.status {
		case http.StatusCreated:
			if after.notifications != before.notifications+1 || after.queueItems != before.queueItems+1 {
				t.Errorf("201, but rows went from %+v to %+v", before, after)
			}
			var c created
			r.decode(t, http.StatusCreated, &c)
			if !c.Success || !uuidRE.MatchString(c.Notification.ID) {
				t.Errorf("201 with body %s", r.body)
			}
		case http.StatusOK:
			if r.header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("200 that is not an idempotent repeat: %s", r.body)
			}
			if after != before {
				t.Errorf("idempotent repeat changed rows from %+v to %+v", before, after)
			}
		case http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
			r.errorMessage(t, r.status)
			if after != before {
				t.Errorf("%d, but rows went from %+v to %+v; body %q", r.status, before, after, body)
			}
		default:
			t.Errorf("status %d for body %q: %s", r.status, body, r.body)
		}
	})
}
