package inboxsync

import (
	"context"
	"encoding/json"
	"time"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/wire"
)

// muteReloadTimeout bounds the read of a user's mutes after an
// announcement; past it the streams keep their old mutes (see the package
// doc: they read them again when they reopen).
const muteReloadTimeout = 5 * time.Second

// Receive is the listener's handler for Channel. It returns at once (a
// handler runs on the listener's goroutine) and delivers payload to this
// node's streams in a goroutine of its own, since new mutes are read from
// the database first.
func (s *Sync) Receive(payload string) { go s.deliver(payload) }

// deliver relays one announced change to its user's streams on this node:
// new mutes take effect, and a status message carries the unread count and
// what changed. A malformed payload is logged and dropped.
func (s *Sync) deliver(payload string) {
	var ch Change
	if err := json.Unmarshal([]byte(payload), &ch); err != nil || ch.UserID == "" {
		s.log.Warn("ignoring a malformed inbox announcement", "err", err)
		return
	}
	if ch.Action == ActionPreferences && s.hub.HasUser(ch.UserID) {
		s.reloadMutes(ch.UserID)
	}
	s.hub.SendToUser(ch.UserID, statusFrame(ch, time.Now()))
}

// reloadMutes gives the user's subscribers here the muted modules the
// database holds now.
func (s *Sync) reloadMutes(userID string) {
	ctx, cancel := context.WithTimeout(context.Background(), muteReloadTimeout)
	defer cancel()
	mods, err := s.inbox.MutedModules(ctx, userID)
	if err != nil {
		s.log.Warn("reload muted modules", "user_id", userID, "err", err)
		return
	}
	s.hub.SetMuted(userID, mods)
}

// statusFrame is the status message that tells a stream of ch's change:
// data.unreadCount, hasMore and countedThrough as the publishing node read
// them, and data.change, the action with the notification's id and seq
// when it has them.
func statusFrame(ch Change, now time.Time) hub.Frame {
	return hub.Frame{Data: wire.StatusEvent(now, wire.Status{
		UnreadCount: new(ch.UnreadCount), HasMore: new(ch.HasMore), CountedThrough: new(ch.CountedThrough),
		Change: &wire.Change{Action: ch.Action, NotificationID: ch.NotificationID, Seq: ch.Seq}})}
}
