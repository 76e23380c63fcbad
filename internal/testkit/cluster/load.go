package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/notify"
)

// Population is a set of users with roles, the identities of a load test.
type Population struct {
	Users []notify.Identity
	Roles []string
}

// NewPopulation makes users named prefix0, prefix1, … each holding between
// 1 and maxRoles of roles distinct roles named R0, R1, …, drawn with rnd.
func NewPopulation(rnd *rand.Rand, prefix string, users, roles, maxRoles int) Population {
	p := Population{Roles: make([]string, roles)}
	for i := range roles {
		p.Roles[i] = fmt.Sprintf("R%d", i)
	}
	for i := range users {
		id := notify.Identity{UserID: fmt.Sprintf("%s%d", prefix, i)}
		k := 1 + rnd.IntN(max(1, min(maxRoles, roles)))
		for _, j := range rnd.Perm(roles)[:k] {
			id.Roles = append(id.Roles, p.Roles[j])
		}
		p.Users = append(p.Users, id)
	}
	return p
}

// Mix is the share of each kind of target among the notifications a load
// test sends; the rest go to one user.
type Mix struct {
	Role       float64 `json:"role"`         // one role
	UserOrRole float64 `json:"user_or_role"` // one user and one role (the user, and everyone holding it)
	Everyone   float64 `json:"everyone"`     // both targets empty: every signed-in user
}

// ParseMix reads a Mix written as "role=0.08,user+role=0.02,everyone=0.001"
// (kinds left out have no share), as load tests take it in a flag.
func ParseMix(s string) (Mix, error) {
	var m Mix
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		x, err := strconv.ParseFloat(v, 64)
		if !ok || err != nil || x < 0 {
			return Mix{}, fmt.Errorf("%q: want kind=share", part)
		}
		switch k {
		case "role":
			m.Role = x
		case "user+role":
			m.UserOrRole = x
		case "everyone":
			m.Everyone = x
		default:
			return Mix{}, fmt.Errorf("%q: kinds are role, user+role and everyone", k)
		}
	}
	if m.Role+m.UserOrRole+m.Everyone > 1 {
		return Mix{}, fmt.Errorf("%q: shares add up to more than 1", s)
	}
	return m, nil
}

// Target draws a target from p with mix.
func (p Population) Target(rnd *rand.Rand, mix Mix) notify.Target {
	x := rnd.Float64()
	user := func() string { return p.Users[rnd.IntN(len(p.Users))].UserID }
	role := func() string { return p.Roles[rnd.IntN(len(p.Roles))] }
	switch {
	case x < mix.Everyone:
		return notify.Target{}
	case x < mix.Everyone+mix.Role:
		return notify.Target{Roles: []string{role()}}
	case x < mix.Everyone+mix.Role+mix.UserOrRole:
		return notify.Target{UserID: user(), Roles: []string{role()}}
	}
	return notify.Target{UserID: user()}
}

// insertMany inserts one notification per element of $1 (a JSON array of
// {"u": user, "r": [roles]}) in one statement.
const insertMany = `INSERT INTO notify.notifications (target_user_id, target_roles, module, message, data)
	SELECT NULLIF(x->>'u', ''),
	       CASE WHEN jsonb_array_length(x->'r') > 0 THEN ARRAY(SELECT jsonb_array_elements_text(x->'r')) END,
	       'load', $2, jsonb_build_object('pad', $3::text)
	FROM jsonb_array_elements($1::jsonb) AS x
	RETURNING id::text`

type wireTarget struct {
	U string   `json:"u"`
	R []string `json:"r"`
}

// Insert sends one notification per target in one INSERT statement (one
// transaction) and returns their ids once it has committed. pad is put in
// each notification's data, to make events bigger.
func Insert(ctx context.Context, pool *pgxpool.Pool, targets []notify.Target, message, pad string) ([]string, error) {
	w := make([]wireTarget, len(targets))
	for i, t := range targets {
		w[i] = wireTarget{U: t.UserID, R: t.Roles}
		if w[i].R == nil {
			w[i].R = []string{}
		}
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, insertMany, b, message, pad)
	if err != nil {
		return nil, fmt.Errorf("insert notifications: %w", err)
	}
	defer rows.Close()
	ids := make([]string, 0, len(targets))
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("insert notifications: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("insert notifications: %w", err)
	}
	return ids, nil
}

// Post publishes one notification through POST /api/notifications with an
// admin token. key is its Idempotency-Key: after a failure whose outcome is
// unknown (the node died mid-request), posting again with the same key, to
// any node, creates it at most once. It returns the notification's id.
func Post(ctx context.Context, client *http.Client, baseURL, token string, t notify.Target, message, key string) (string, error) {
	body, err := json.Marshal(map[string]any{"targetUserId": t.UserID, "targetRoles": t.Roles, "module": "load",
		"actionType": "post", "message": message, "severity": "low"})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/api/notifications", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("post notification: %d %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	var out struct {
		Notification struct {
			ID string `json:"id"`
		} `json:"notification"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Notification.ID == "" {
		return "", fmt.Errorf("post notification: unexpected answer %q", b)
	}
	return out.Notification.ID, nil
}
