package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/notifyd/notifyd/internal/inboxsync"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/wire"
)

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func (a *API) inbox() (*postgres.Inbox, error) {
	if a.deps.Inbox == nil {
		return nil, errorf(http.StatusNotFound, "the inbox is not enabled on this server")
	}
	return a.deps.Inbox, nil
}

// history serves GET /api/notifications: the caller's notifications, newest
// first, a page at a time (cursor: nextCursor → ?before=).
func (a *API) history(c *gin.Context) error {
	inbox, err := a.inbox()
	if err != nil {
		return err
	}
	q := postgres.HistoryQuery{Limit: 20, Module: c.Query("module"), Severity: notify.Severity(c.Query("severity"))}
	if v := c.Query("before"); v != "" {
		if q.Before, err = strconv.ParseInt(v, 10, 64); err != nil || q.Before < 1 {
			return fmt.Errorf("%w: before must be a positive seq (the nextCursor of the previous page)", notify.ErrInvalid)
		}
	}
	if v := c.Query("limit"); v != "" {
		if q.Limit, err = strconv.Atoi(v); err != nil || q.Limit < 1 || q.Limit > 100 {
			return fmt.Errorf("%w: limit must be between 1 and 100", notify.ErrInvalid)
		}
	}
	switch v := c.Query("unread"); v {
	case "", "false":
	case "true":
		q.UnreadOnly = true
	default:
		return fmt.Errorf("%w: unread must be true or false", notify.ErrInvalid)
	}
	switch v := c.Query("archived"); v {
	case "", "false":
	case "true":
		q.Archived = postgres.ArchivedInclude
	case "only":
		q.Archived = postgres.ArchivedOnly
	default:
		return fmt.Errorf("%w: archived must be true, false or only", notify.ErrInvalid)
	}
	if q.Severity != "" && !q.Severity.Valid() {
		return fmt.Errorf("%w: severity must be one of low, medium, high, critical", notify.ErrInvalid)
	}
	if len(q.Module) > notify.MaxLabelBytes {
		return fmt.Errorf("%w: module is too long", notify.ErrInvalid)
	}
	items, more, err := inbox.History(c.Request.Context(), identity(c), q)
	if err != nil {
		return err
	}
	out := make([]historyItem, 0, len(items))
	for _, it := range items {
		out = append(out, historyItemOf(it))
	}
	var next any
	if more && len(items) > 0 {
		next = items[len(items)-1].Seq
	}
	c.JSON(http.StatusOK, gin.H{"notifications": out, "nextCursor": next})
	return nil
}

// historyItem is one notification of a history page: the stream's
// notification data and the user's state of it.
type historyItem struct {
	wire.Notification
	Read         bool       `json:"read"`
	ReadAt       *time.Time `json:"readAt"`
	Seen         bool       `json:"seen"`
	Archived     bool       `json:"archived"`
	ArchivedAt   *time.Time `json:"archivedAt"`
	Interaction  *string    `json:"interaction"`
	InteractedAt *time.Time `json:"interactedAt"`
}

func historyItemOf(it postgres.InboxItem) historyItem {
	h := historyItem{Notification: wire.NotificationOf(it.Notification), Read: it.Read, Seen: it.Seen,
		Archived: !it.ArchivedAt.IsZero()}
	if it.Read && !it.ReadAt.IsZero() {
		h.ReadAt = &it.ReadAt
	}
	if h.Archived {
		h.ArchivedAt = &it.ArchivedAt
	}
	if it.Interaction != "" {
		h.Interaction, h.InteractedAt = &it.Interaction, &it.InteractedAt
	}
	return h
}

// unreadCount serves GET /api/notifications/unread-count.
func (a *API) unreadCount(c *gin.Context) error {
	inbox, err := a.inbox()
	if err != nil {
		return err
	}
	u, err := inbox.Unread(c.Request.Context(), identity(c))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"count": u.Count, "hasMore": u.HasMore, "countedThrough": u.Through,
		"unseen": u.Unseen, "unseenHasMore": u.UnseenHasMore})
	return nil
}

// onNotification serves POST /api/notifications/{id}/<action>: change
// applies the caller's action to the notification (returning its seq), and
// the caller's other streams hear of it. 204; 404 for a notification the
// caller may not see.
func (a *API) onNotification(action string, change func(c *gin.Context, inbox *postgres.Inbox, id notify.Identity, nid string) (int64, error)) func(*gin.Context) error {
	return func(c *gin.Context) error {
		inbox, err := a.inbox()
		if err != nil {
			return err
		}
		nid := c.Param("id")
		if !uuidPattern.MatchString(nid) {
			return fmt.Errorf("%w: no notification %q for you", notify.ErrNotFound, truncate(nid, 40))
		}
		id := identity(c)
		seq, err := change(c, inbox, id, nid)
		if err != nil {
			if errors.Is(err, notify.ErrNotFound) {
				return fmt.Errorf("%w: no notification %s for you", notify.ErrNotFound, nid)
			}
			return err
		}
		a.announce(c, id, inboxsync.Change{Action: action, NotificationID: nid, Seq: seq})
		c.Status(http.StatusNoContent)
		return nil
	}
}

// markRead serves POST /api/notifications/{id}/read and /unread.
func (a *API) markRead(read bool) func(*gin.Context) error {
	action := inboxsync.ActionRead
	if !read {
		action = inboxsync.ActionUnread
	}
	return a.onNotification(action, func(c *gin.Context, inbox *postgres.Inbox, id notify.Identity, nid string) (int64, error) {
		return inbox.SetRead(c.Request.Context(), id, nid, read)
	})
}

// archive serves POST /api/notifications/{id}/archive and /unarchive.
func (a *API) archive(archived bool) func(*gin.Context) error {
	action := inboxsync.ActionArchive
	if !archived {
		action = inboxsync.ActionUnarchive
	}
	return a.onNotification(action, func(c *gin.Context, inbox *postgres.Inbox, id notify.Identity, nid string) (int64, error) {
		return inbox.SetArchived(c.Request.Context(), id, nid, archived)
	})
}

// maxSnooze is how far ahead a snooze may go.
const maxSnooze = 366 * 24 * time.Hour

// snooze serves POST /api/notifications/{id}/snooze {"until": RFC 3339}.
func (a *API) snooze(c *gin.Context) error {
	return a.onNotification(inboxsync.ActionSnooze, func(c *gin.Context, inbox *postgres.Inbox, id notify.Identity, nid string) (int64, error) {
		var body struct {
			Until *time.Time `json:"until"`
		}
		if err := a.decodeJSON(c, &body); err != nil {
			return 0, err
		}
		now := a.cfg.Clock()
		switch {
		case body.Until == nil:
			return 0, fmt.Errorf("%w: until is required: the RFC 3339 moment the notification comes back", notify.ErrInvalid)
		case !body.Until.After(now):
			return 0, fmt.Errorf("%w: until is in the past: snooze to a later moment", notify.ErrInvalid)
		case body.Until.Sub(now) > maxSnooze:
			return 0, fmt.Errorf("%w: until is more than a year ahead", notify.ErrInvalid)
		}
		return inbox.Snooze(c.Request.Context(), id, nid, *body.Until)
	})(c)
}

// interact serves POST /api/notifications/{id}/interact {"action": id}.
func (a *API) interact(c *gin.Context) error {
	return a.onNotification(inboxsync.ActionInteract, func(c *gin.Context, inbox *postgres.Inbox, id notify.Identity, nid string) (int64, error) {
		var body struct {
			Action string `json:"action"`
		}
		if err := a.decodeJSON(c, &body); err != nil {
			return 0, err
		}
		if body.Action == "" {
			return 0, fmt.Errorf("%w: action is required: the id of one of the notification's actions", notify.ErrInvalid)
		}
		return inbox.Interact(c.Request.Context(), id, nid, truncate(body.Action, 64))
	})(c)
}

// seen serves POST /api/notifications/seen {"upTo": seq}: the inbox was
// opened, so the badge's unseen count starts again above upTo.
func (a *API) seen(c *gin.Context) error {
	inbox, err := a.inbox()
	if err != nil {
		return err
	}
	upTo, err := a.upTo(c)
	if err != nil {
		return err
	}
	id := identity(c)
	mark, err := inbox.Seen(c.Request.Context(), id, upTo)
	if err != nil {
		return err
	}
	a.announce(c, id, inboxsync.Change{Action: inboxsync.ActionSeen, Seq: mark})
	c.Status(http.StatusNoContent)
	return nil
}

// upTo reads the body {"upTo": seq} of read-all and seen.
func (a *API) upTo(c *gin.Context) (int64, error) {
	var body struct {
		UpTo *int64 `json:"upTo"`
	}
	if err := a.decodeJSON(c, &body); err != nil {
		return 0, err
	}
	if body.UpTo == nil || *body.UpTo < 0 {
		return 0, fmt.Errorf("%w: upTo is required: the seq of the newest notification the user has seen", notify.ErrInvalid)
	}
	return *body.UpTo, nil
}

// readAll serves POST /api/notifications/read-all {"upTo": seq}.
func (a *API) readAll(c *gin.Context) error {
	inbox, err := a.inbox()
	if err != nil {
		return err
	}
	upTo, err := a.upTo(c)
	if err != nil {
		return err
	}
	id := identity(c)
	mark, err := inbox.ReadAll(c.Request.Context(), id, upTo)
	if err != nil {
		return err
	}
	a.announce(c, id, inboxsync.Change{Action: inboxsync.ActionReadAll, Seq: mark})
	c.Status(http.StatusNoContent)
	return nil
}

// preferences serves GET and PUT /api/notifications/preferences.
func (a *API) preferences(c *gin.Context) error {
	inbox, err := a.inbox()
	if err != nil {
		return err
	}
	id := identity(c)
	if c.Request.Method == http.MethodPut {
		var body struct {
			MutedModules *[]string `json:"mutedModules"`
		}
		if err := a.decodeJSON(c, &body); err != nil {
			return err
		}
		if body.MutedModules == nil {
			return fmt.Errorf("%w: mutedModules is required (an array of module names; [] unmutes all)", notify.ErrInvalid)
		}
		mods, err := cleanModules(*body.MutedModules)
		if err != nil {
			return err
		}
		if err := inbox.SetMutedModules(c.Request.Context(), id.UserID, mods); err != nil {
			return err
		}
		a.announce(c, id, inboxsync.Change{Action: inboxsync.ActionPreferences})
	}
	mods, err := inbox.MutedModules(c.Request.Context(), id.UserID)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"mutedModules": mods})
	return nil
}

func cleanModules(in []string) ([]string, error) {
	if len(in) > 100 {
		return nil, fmt.Errorf("%w: at most 100 muted modules", notify.ErrInvalid)
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(in))
	for i, m := range in {
		if m == "" || len(m) > notify.MaxLabelBytes {
			return nil, fmt.Errorf("%w: mutedModules[%d] must be a non-empty name of at most %d bytes", notify.ErrInvalid, i, notify.MaxLabelBytes)
		}
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out, nil
}

// announce tells every node about a committed change to the caller's
// inbox (inboxsync), so the user's other streams update their badges. A
// failure here does not undo the change: it is logged, and the other
// devices catch up at their next count.
func (a *API) announce(c *gin.Context, id notify.Identity, ch inboxsync.Change) {
	ctx := c.Request.Context()
	if err := a.deps.InboxSync.Publish(ctx, id, ch); err != nil {
		a.logger(c).WarnContext(ctx, "announce inbox change", "err", err)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
