package httpapi

import (
	"cmp"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/wire"
)

// action serves POST /api/notifications/ws, the original design's actions.
func (a *API) action(c *gin.Context) error {
	var req notificationRequest
	if err := a.decodeJSON(c, &req); err != nil {
		return err
	}
	switch req.Action {
	case "status":
		return a.status(c)
	case "test":
		return a.test(c, req)
	case "broadcast", "create-and-notify":
		n, err := req.notification()
		if err != nil {
			return err
		}
		n, _, err = a.publish(c, n)
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, gin.H{"success": true, "notification": wire.NotificationOf(n)})
		return nil
	case "":
		return fmt.Errorf("%w: action is required (status, test, broadcast, create-and-notify)", notify.ErrInvalid)
	}
	return fmt.Errorf("%w: unknown action %q (status, test, broadcast, create-and-notify)", notify.ErrInvalid, req.Action)
}

// test sends a notification to the caller only; any signed-in user may.
func (a *API) test(c *gin.Context, req notificationRequest) error {
	id := identity(c)
	n := notify.Notification{
		Target:     notify.Target{UserID: id.UserID},
		Module:     cmp.Or(req.Module, notify.DefaultTestModule),
		ActionType: cmp.Or(req.ActionType, "test"),
		Message:    cmp.Or(req.Message, "Test notification"),
		Details:    req.Details,
		Severity:   notify.Severity(cmp.Or(req.Severity, string(notify.SeverityLow))),
		Data:       req.Data,
	}
	if err := n.Validate(); err != nil {
		return err
	}
	if err := a.takePublishToken(c); err != nil {
		return err
	}
	stored, _, err := a.send(c, n)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"success": true, "notification": wire.NotificationOf(stored)})
	return nil
}

// recentQueueItems is how many of the last changed queue items the admin
// status shows (the monitoring page's queue table).
const recentQueueItems = 20

// status reports connections and the queue. A plain user sees only its own
// streams; admin roles see every stream of this node and the queue: counts
// by status, the oldest pending age and the items changed last.
func (a *API) status(c *gin.Context) error {
	id := identity(c)
	streams := a.deps.Streams.Hub().Snapshot()
	mine := make([]hub.Info, 0)
	for _, s := range streams {
		if s.UserID == id.UserID {
			mine = append(mine, s)
		}
	}
	out := gin.H{"success": true, "userId": id.UserID, "roles": id.Roles, "isAdmin": a.isAdmin(id),
		"timestamp":   time.Now().UnixMilli(),
		"connections": gin.H{"mine": len(mine), "streams": mine}}
	if a.isAdmin(id) {
		ctx := c.Request.Context()
		counts, err := a.deps.Queue.Counts(ctx)
		if err != nil {
			return err
		}
		head, err := a.deps.Notifications.Head(ctx)
		if err != nil {
			return err
		}
		recent, err := a.deps.Queue.Recent(ctx, recentQueueItems)
		if err != nil {
			return err
		}
		var oldest any
		if !counts.OldestPending.IsZero() {
			oldest = time.Since(counts.OldestPending).Seconds()
		}
		out["connections"] = gin.H{"node": a.cfg.NodeID, "total": len(streams), "mine": len(mine), "streams": streams}
		out["queue"] = gin.H{"pending": counts.Pending, "processing": counts.Processing, "sent": counts.Sent,
			"failed": counts.Failed, "oldestPendingAgeSeconds": oldest, "recent": recent}
		out["stream"] = gin.H{"lastSeq": head.LastSeq, "truncatedBefore": head.TruncatedBefore}
	}
	c.JSON(http.StatusOK, out)
	return nil
}
