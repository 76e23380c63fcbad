// Package inboxsync carries a change to a user's inbox (a notification
// marked read or unread, archived, snoozed or acted on, everything read or
// seen up to a seq, new mutes, a snooze that ended) to that user's open
// streams on every node, so a badge cleared on one device
// clears on the others without them asking.
//
// How it works: the node that served the change calls Sync.Publish once the
// change has committed. Publish reads the user's unread count as it now
// stands and sends the change with that count as one NOTIFY on Channel (a
// JSON Change, far below NOTIFY's 8,000 bytes). Every node, the publishing
// one included, hears it on its one LISTEN connection (internal/listener)
// and hands the payload to Sync.Receive. Receive reloads the user's muted
// modules into the user's subscribers here when the mutes changed, then
// queues a status message (data.unreadCount, hasMore, countedThrough and
// data.change) on each of the user's streams in this node's hub. The count
// travels in the payload so that one click costs one count, not one per
// node.
//
// Why NOTIFY: the node that changes an inbox does not know which nodes hold
// the user's streams; NOTIFY reaches them all through the database they
// already share, with no broker to run.
//
// What it promises: at most once, best effort. The database stays the
// truth; an announcement only spares the other devices a request.
//   - The NOTIFY is a statement of its own after the change committed, not
//     part of its transaction: if it fails, or the node stops between the
//     two, the change is stored but announced to no one. Publish returns
//     the error; the caller logs it and keeps the change.
//   - NOTIFY keeps nothing: a node whose listener is disconnected when an
//     announcement is sent never hears it, and nothing catches up when the
//     listener reconnects (unlike the feed and the workers, there is no
//     table to read a backlog from). That node's streams of the user keep
//     their count, and their old mutes, until the user's next change or
//     until they reopen: every stream opening reads both from the database.
//   - Delivery never blocks: a stream whose queue is full is closed as slow
//     (see hub) and reads the count afresh when it reopens.
//   - Two changes made at the same moment may be announced in either
//     order, each with the count read just after its own write: a stream
//     may show the older count until the next change or opening.
package inboxsync

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
)

// Channel is the NOTIFY channel that carries inbox changes to every node.
const Channel = "notify_inbox"

// The actions a Change announces; a stream's status message repeats them
// as data.change.action.
const (
	ActionRead        = "read"        // one notification marked read
	ActionUnread      = "unread"      // one notification marked unread
	ActionReadAll     = "read-all"    // everything up to a seq marked read
	ActionPreferences = "preferences" // the muted modules changed
	ActionSeen        = "seen"        // everything up to a seq seen (the inbox was opened)
	ActionArchive     = "archive"     // one notification archived
	ActionUnarchive   = "unarchive"   // one notification taken out of the archive
	ActionSnooze      = "snooze"      // one notification hidden until a moment
	ActionUnsnooze    = "unsnooze"    // that moment came: the notification is back, unread
	ActionInteract    = "interact"    // one of a notification's actions clicked (and it is read)
)

// Change is the payload announced on Channel. Its JSON keys are short: it
// is sent to every node for every click.
type Change struct {
	UserID         string `json:"u"`
	Action         string `json:"a"`
	NotificationID string `json:"id,omitempty"` // read and unread
	Seq            int64  `json:"s,omitempty"`  // read and unread: the notification's; read-all: the new mark
	// UnreadCount, HasMore and CountedThrough are the user's unread count
	// as Publish read it (postgres.Unread).
	UnreadCount    int   `json:"c"`
	HasMore        bool  `json:"m,omitempty"`
	CountedThrough int64 `json:"t"`
	// Unseen and UnseenHasMore are the unread ones above the seen mark.
	Unseen        int  `json:"n"`
	UnseenHasMore bool `json:"nm,omitempty"`
}

// Sync publishes this node's inbox changes and delivers every node's to
// the streams here.
type Sync struct {
	inbox *postgres.Inbox
	hub   *hub.Hub
	log   *slog.Logger
}

// New returns the inbox sync of one node: it counts, announces and reloads
// mutes through inbox, and delivers to hub's streams. log receives what
// Receive could not do.
func New(inbox *postgres.Inbox, h *hub.Hub, log *slog.Logger) *Sync {
	return &Sync{inbox: inbox, hub: h, log: log}
}

// Publish announces ch, a change to id's inbox that has committed, to every
// node, with id's unread count as it now stands. An error means no node
// will hear of it; the change itself stands.
func (s *Sync) Publish(ctx context.Context, id notify.Identity, ch Change) error {
	ch.UserID = id.UserID
	u, err := s.inbox.Unread(ctx, id)
	if err != nil {
		return err
	}
	ch.UnreadCount, ch.HasMore, ch.CountedThrough = u.Count, u.HasMore, u.Through
	ch.Unseen, ch.UnseenHasMore = u.Unseen, u.UnseenHasMore
	payload, err := json.Marshal(ch)
	if err != nil {
		return fmt.Errorf("encode inbox change: %w", err)
	}
	return s.inbox.Announce(ctx, Channel, payload)
}

// wakeBatch is how many ended snoozes one pass of RunWaker announces.
const wakeBatch = 100

// WakeInterval is how often a node looks for snoozes that ended: a
// snoozed notification comes back on the user's streams within it. One
// look is an index probe of the few snoozes due.
const WakeInterval = time.Second

// RunWaker ends snoozes as their moment passes, every interval until ctx
// ends, and announces each (action unsnooze) so the user's open streams
// show the notification again. Every node runs it; each snooze is ended by
// one (postgres.Inbox.WakeSnoozed). The announcement carries no count: the
// waker does not know the user's roles, so each node that holds the user's
// streams reads the notification and the count with a stream's identity
// (deliver). A failed pass is logged and tried again at the next tick.
func (s *Sync) RunWaker(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			woken, err := s.inbox.WakeSnoozed(ctx, wakeBatch)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("end due snoozes", "err", err)
				}
				break
			}
			for _, w := range woken {
				payload, _ := json.Marshal(Change{UserID: w.UserID, Action: ActionUnsnooze, Seq: w.Seq})
				if err := s.inbox.Announce(ctx, Channel, payload); err != nil && ctx.Err() == nil {
					s.log.Warn("announce an ended snooze", "user_id", w.UserID, "seq", w.Seq, "err", err)
				}
			}
			if len(woken) < wakeBatch {
				break
			}
		}
	}
}
