package inboxsync

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
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
	if !s.hub.HasUser(ch.UserID) {
		return
	}
	var back *wire.Notification
	switch ch.Action {
	case ActionPreferences:
		s.reloadMutes(ch.UserID)
	case ActionUnsnooze:
		if back = s.woken(&ch); back == nil {
			return
		}
	}
	s.hub.SendToUser(ch.UserID, statusFrame(ch, back, time.Now()))
}

// woken reads what an unsnooze brings back, too large for the announcement
// itself: the notification, and the user's counts with it (read with the
// identity of one of the user's streams here, the waker knowing no roles).
// nil when the notification cannot be shown any more.
func (s *Sync) woken(ch *Change) *wire.Notification {
	ctx, cancel := context.WithTimeout(context.Background(), muteReloadTimeout)
	defer cancel()
	id, ok := s.hub.UserIdentity(ch.UserID)
	if !ok {
		return nil
	}
	n, err := s.inbox.Woke(ctx, postgres.Woken{UserID: ch.UserID, Seq: ch.Seq})
	if err == nil {
		var u postgres.Unread
		if u, err = s.inbox.Unread(ctx, id); err == nil {
			ch.UnreadCount, ch.HasMore, ch.CountedThrough = u.Count, u.HasMore, u.Through
			ch.Unseen, ch.UnseenHasMore = u.Unseen, u.UnseenHasMore
			ch.NotificationID = n.ID
		}
	}
	if err != nil {
		if !errors.Is(err, notify.ErrNotFound) {
			s.log.Warn("read a notification back from snooze", "user_id", ch.UserID, "seq", ch.Seq, "err", err)
		}
		return nil
	}
	d := wire.NotificationOf(n)
	return &d
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
// data.unreadCount, hasMore, countedThrough, unseenCount and unseenHasMore
// as the publishing node read them, data.notification for an unsnooze,
// and data.change, the action with the notification's id and seq
// when it has them.
func statusFrame(ch Change, back *wire.Notification, now time.Time) hub.Frame {
	return hub.Frame{Data: wire.StatusEvent(now, wire.Status{
		UnreadCount: new(ch.UnreadCount), HasMore: new(ch.HasMore), CountedThrough: new(ch.CountedThrough),
		UnseenCount: new(ch.Unseen), UnseenHasMore: new(ch.UnseenHasMore), Notification: back,
		Change: &wire.Change{Action: ch.Action, NotificationID: ch.NotificationID, Seq: ch.Seq}})}
}
