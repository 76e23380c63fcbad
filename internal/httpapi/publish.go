package httpapi

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/wire"
)

// notificationRequest is the body of POST /api/notifications and of the
// publishing actions of POST /api/notifications/ws.
type notificationRequest struct {
	Action         string          `json:"action"`
	TargetRoles    []string        `json:"targetRoles"`
	TargetUserID   string          `json:"targetUserId"`
	Module         string          `json:"module"`
	ActionType     string          `json:"actionType"`
	Message        string          `json:"message"`
	Details        string          `json:"details"`
	Severity       string          `json:"severity"`
	Data           json.RawMessage `json:"data"`
	IdempotencyKey string          `json:"idempotencyKey"`
	CollapseKey    string          `json:"collapseKey"`
	ExpiresAt      *time.Time      `json:"expiresAt"`
	Actions        json.RawMessage `json:"actions"`
}

func (r notificationRequest) notification() (notify.Notification, error) {
	actions, err := notify.DecodeActions(r.Actions)
	return notify.Notification{
		Target: notify.Target{UserID: r.TargetUserID, Roles: r.TargetRoles},
		Module: r.Module, ActionType: r.ActionType, Details: r.Details, Message: r.Message,
		Severity: notify.Severity(r.Severity), Data: r.Data, IdempotencyKey: r.IdempotencyKey,
		CollapseKey: r.CollapseKey, ExpiresAt: derefTime(r.ExpiresAt), Actions: actions,
	}, err
}

func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// create serves POST /api/notifications: admin roles publish to anyone; the
// Idempotency-Key header (or idempotencyKey field) makes retries safe.
func (a *API) create(c *gin.Context) error {
	var req notificationRequest
	if err := a.decodeJSON(c, &req); err != nil {
		return err
	}
	if key := c.GetHeader("Idempotency-Key"); key != "" {
		if req.IdempotencyKey != "" && req.IdempotencyKey != key {
			return fmt.Errorf("%w: Idempotency-Key header and idempotencyKey field differ", notify.ErrInvalid)
		}
		req.IdempotencyKey = key
	}
	n, err := req.notification()
	if err != nil {
		return err
	}
	n, created, err := a.publish(c, n)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
		c.Header("Idempotent-Replayed", "true")
	}
	c.JSON(status, gin.H{"success": true, "notification": wire.NotificationOf(n)})
	return nil
}

// takePublishToken applies the caller's publish rate: the admin one for
// callers holding an admin role (services publishing for an application),
// the per-user one for everyone else.
func (a *API) takePublishToken(c *gin.Context) error {
	id := identity(c)
	limiter, rate, burst := a.publishRate, a.cfg.PublishRate, a.cfg.PublishBurst
	if a.isAdmin(id) {
		limiter, rate, burst = a.adminPublishRate, a.cfg.AdminPublishRate, a.cfg.AdminPublishBurst
	}
	ok, wait := limiter.allow(id.UserID, a.cfg.Clock())
	if ok {
		return nil
	}
	secs := max(1, int(math.Ceil(wait.Seconds())))
	return &httpError{status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": strconv.Itoa(secs)},
		msg: fmt.Sprintf("publishing too fast: at most %g notifications a second (bursts of %d); retry in %ds", rate, burst, secs)}
}

// publish checks that the caller may send n, validates it and sends it
// born published (one commit: stored and numbered, no worker between).
func (a *API) publish(c *gin.Context, n notify.Notification) (notify.Notification, bool, error) {
	if !a.isAdmin(identity(c)) {
		return notify.Notification{}, false, fmt.Errorf("%w: publishing needs one of the roles %v", notify.ErrForbidden, a.cfg.AdminRoles)
	}
	if err := n.Validate(); err != nil {
		return notify.Notification{}, false, err
	}
	if n.Expired(a.cfg.Clock()) {
		return notify.Notification{}, false, fmt.Errorf("%w: expiresAt is in the past: the notification would never be shown", notify.ErrInvalid)
	}
	if err := a.takePublishToken(c); err != nil {
		return notify.Notification{}, false, err
	}
	return a.send(c, n)
}

// send stores n born published and, once it is committed, hands it to
// Deps.Sent: this node's streams need not wait for the NOTIFY and the
// feed's read to bring it back.
func (a *API) send(c *gin.Context, n notify.Notification) (notify.Notification, bool, error) {
	stored, created, err := a.deps.Notifications.Send(c.Request.Context(), n)
	if err == nil && created && stored.Seq > 0 && a.deps.Sent != nil {
		a.deps.Sent(stored)
	}
	return stored, created, err
}
