package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"

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
	out := make([]gin.H, 0, len(items))
	for _, it := range items {
		var readAt any
		if it.Read && !it.ReadAt.IsZero() {
			readAt = it.ReadAt
		}
		d := wire.NotificationOf(it.Notification)
		out = append(out, gin.H{"id": d.ID, "seq": d.Seq, "message": d.Message, "severity": d.Severity,
			"module": d.Module, "actionType": d.ActionType, "details": d.Details, "data": d.Data,
			"targetUserId": d.TargetUserID, "targetRoles": d.TargetRoles, "createdAt": d.CreatedAt,
			"read": it.Read, "readAt": readAt})
	}
	var next any
	if more && len(items) > 0 {
		next = items[len(items)-1].Seq
	}
	c.JSON(http.StatusOK, gin.H{"notifications": out, "nextCursor": next})
	return nil
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
	c.JSON(http.StatusOK, gin.H{"count": u.Count, "hasMore": u.HasMore, "countedThrough": u.Through})
	return nil
}

// markRead serves POST /api/notifications/{id}/read and /unread.
func (a *API) markRead(read bool) func(*gin.Context) error {
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
		seq, err := inbox.SetRead(c.Request.Context(), id, nid, read)
		if err != nil {
			if errors.Is(err, notify.ErrNotFound) {
				return fmt.Errorf("%w: no notification %s for you", notify.ErrNotFound, nid)
			}
			return err
		}
		action := inboxsync.ActionRead
		if !read {
			action = inboxsync.ActionUnread
		}
		a.announce(c, id, inboxsync.Change{Action: action, NotificationID: nid, Seq: seq})
		c.Status(http.StatusNoContent)
		return nil
	}
}

// readAll serves POST /api/notifications/read-all {"upTo": seq}.
func (a *API) readAll(c *gin.Context) error {
	inbox, err := a.inbox()
	if err != nil {
		return err
	}
	var body struct {
		UpTo *int64 `json:"upTo"`
	}
	if err := a.decodeJSON(c, &body); err != nil {
		return err
	}
	if body.UpTo == nil || *body.UpTo < 0 {
		return fmt.Errorf("%w: upTo is required: the seq of the newest notification the user has seen", notify.ErrInvalid)
	}
	id := identity(c)
	mark, err := inbox.ReadAll(c.Request.Context(), id, *body.UpTo)
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
