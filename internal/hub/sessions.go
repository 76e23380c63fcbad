package hub

import (
	"context"
	"fmt"
	"slices"

	"github.com/notifyd/notifyd/internal/notify"
)

// Why sessions here: a browser's streams carry its session id
// (notify.Identity.SessionID), and a session can end on any node or in the
// database itself. The database announces ended sessions (package
// listener); each node closes its own streams of them. An announcement made
// while a node's LISTEN connection was down reaches no one, so after each
// reconnect the node asks the database about every session it still serves
// (CloseEndedSessions). A session's roles can change while it lives (a
// refresh at the issuer); its streams were opened with the old ones and
// would go on receiving a removed role's notifications, so they are closed
// and reconnect with the new (CloseChangedSessions).

// SessionIDs returns the distinct session ids of the open subscribers; bearer
// token streams have none.
func (h *Hub) SessionIDs() []string {
	h.rlock()
	defer h.mu.RUnlock()
	seen := map[string]struct{}{}
	var ids []string
	for s := range h.all {
		sid := s.identity.SessionID
		if _, dup := seen[sid]; sid == "" || dup {
			continue
		}
		seen[sid] = struct{}{}
		ids = append(ids, sid)
	}
	return ids
}

// CloseSessions closes, with reason, the subscribers of the sessions in ids
// and returns how many it closed.
func (h *Hub) CloseSessions(ids []string, reason Reason) int {
	if len(ids) == 0 {
		return 0
	}
	set := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		if id != "" { // "" is every bearer stream's: never a session
			set[id] = struct{}{}
		}
	}
	h.rlock()
	defer h.mu.RUnlock()
	n := 0
	for s := range h.all {
		if _, ok := set[s.identity.SessionID]; ok && s.Close(reason) {
			n++
		}
	}
	return n
}

// CloseEndedSessions asks live, once for all of them, which of the sessions
// of the open subscribers still exist, and closes the subscribers of the
// others with ReasonLogout. It returns how many it closed. A subscriber that
// arrives meanwhile is not checked: its session was checked when its
// request was authenticated.
func (h *Hub) CloseEndedSessions(ctx context.Context, live func(context.Context, []string) ([]string, error)) (int, error) {
	ids := h.SessionIDs()
	if len(ids) == 0 {
		return 0, nil
	}
	alive, err := live(ctx, ids)
	if err != nil {
		return 0, fmt.Errorf("check the sessions of open streams: %w", err)
	}
	keep := make(map[string]struct{}, len(alive))
	for _, id := range alive {
		keep[id] = struct{}{}
	}
	ended := ids[:0]
	for _, id := range ids {
		if _, ok := keep[id]; !ok {
			ended = append(ended, id)
		}
	}
	return h.CloseSessions(ended, ReasonLogout), nil
}

// CloseChangedSessions closes with ReasonSessionChanged the subscribers of
// those of ids (every open session when ids is nil) whose user or roles
// differ from what current says the database holds now; roles are compared
// as sets. Only ids with subscribers here are asked about, all in one call,
// and none when there are none. A session current does not return (ended)
// is left to the logout path. It returns how many it closed.
func (h *Hub) CloseChangedSessions(ctx context.Context, ids []string, current func(context.Context, []string) (map[string]notify.Identity, error)) (int, error) {
	open := h.SessionIDs()
	if ids != nil {
		open = slices.DeleteFunc(open, func(id string) bool { return !slices.Contains(ids, id) })
	}
	if len(open) == 0 {
		return 0, nil
	}
	now, err := current(ctx, open)
	if err != nil {
		return 0, fmt.Errorf("check the roles of open sessions: %w", err)
	}
	return h.CloseWhere(func(id notify.Identity) bool {
		cur, ok := now[id.SessionID]
		return ok && id.SessionID != "" && (cur.UserID != id.UserID || !sameSet(cur.Roles, id.Roles))
	}, ReasonSessionChanged), nil
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			return false
		}
	}
	return true
}
