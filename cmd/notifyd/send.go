package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
)

const sendHelp = `usage: notifyd send --message TEXT [flags]

Sends one notification born published, as SELECT notify.send(...) does: one
commit stores it and numbers it, and every running server's streams of the
users it targets get it, with no worker between. When another publisher holds
the publish turn at that instant it is queued instead, as an INSERT into
notify.notifications is, and a running worker (notifyd serve or notifyd
worker) publishes it. Prints the new notification's id.

Without --user or --roles the notification goes to every signed-in user.
With both, it goes to the user and to everyone holding one of the roles.
A repeated --idempotency-key creates nothing new: the earlier notification's
id is printed again and "already sent" is reported on stderr.

examples:
  notifyd send --message "Deploy finished"
  notifyd send --message "New order #123" --roles ADMIN,SALES --severity high \
      --module orders --action-type new_order --data '{"orderId":123}'
  notifyd send --message "Your export is ready" --user alice --idempotency-key export-42
  notifyd send --message "4 new orders" --user alice --collapse-key new-orders \
      --expires-at 2026-12-31T00:00:00Z --actions '[{"id":"open","label":"Open","url":"/orders"}]'

flags (a flag marked "env" can also be set by that environment variable):
`

func runSend(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c common
	var n notify.Notification
	var severity, data, expires, actions string
	s := newSettings("send", getenv, stderr)
	c.bind(s)
	quietByDefault(s, &c)
	s.String(&n.Message, "message", "", "", "the `TEXT` shown to the user; required")
	s.String(&n.Target.UserID, "user", "", "", "deliver to this user `ID` (the token's sub)")
	s.List(&n.Target.Roles, "roles", "", "", "deliver to users holding any of these `ROLES`")
	s.String(&severity, "severity", "", "medium", "urgency `LEVEL`: low, medium, high or critical")
	s.String(&n.Module, "module", "", "", "the `AREA` of the application it comes from, e.g. orders")
	s.String(&n.ActionType, "action-type", "", "", "what happened, an `ACTION` name such as new_order")
	s.String(&n.Details, "details", "", "", "longer `TEXT` shown with the message")
	s.String(&data, "data", "", "", "free payload for the client, a `JSON` object such as '{\"orderId\":123}'")
	s.String(&n.IdempotencyKey, "idempotency-key", "", "", "a unique `KEY`: sending again with the same key creates nothing new")
	s.String(&n.CollapseKey, "collapse-key", "", "", "a `KEY`: this notification replaces the older ones with the same key and targets in the inbox")
	s.String(&expires, "expires-at", "", "", "an RFC 3339 `TIME` after which it is not delivered, listed or counted")
	s.String(&actions, "actions", "", "", "buttons, a `JSON` array such as '[{\"id\":\"open\",\"label\":\"Open\",\"url\":\"/orders\"}]'")
	s.fs.Usage = func() {
		fmt.Fprint(stderr, sendHelp)
		s.fs.PrintDefaults()
	}
	if err := s.parseNoArgs(args); err != nil {
		return helpOK(err)
	}
	n.Severity = notify.Severity(strings.ToLower(strings.TrimSpace(severity)))
	if !n.Severity.Valid() {
		return usageError{fmt.Sprintf("--severity %q: want low, medium, high or critical (nothing was sent)", severity)}
	}
	if strings.TrimSpace(data) != "" {
		if !json.Valid([]byte(data)) {
			return usageError{fmt.Sprintf(`--data is not valid JSON: %q (give an object, e.g. --data '{"orderId":123}'; nothing was sent)`, data)}
		}
		n.Data = json.RawMessage(data)
	}
	if strings.TrimSpace(expires) != "" {
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(expires))
		if err != nil {
			return usageError{fmt.Sprintf("--expires-at %q: want an RFC 3339 time such as 2026-12-31T18:00:00Z (nothing was sent)", expires)}
		}
		if !t.After(time.Now()) {
			return usageError{fmt.Sprintf("--expires-at %s is in the past: the notification would never be shown (nothing was sent)", expires)}
		}
		n.ExpiresAt = t
	}
	var err error
	if n.Actions, err = notify.DecodeActions(json.RawMessage(actions)); err != nil {
		return usageError{fmt.Sprintf("%s (see notifyd send -h; nothing was sent)", flagNames(err))}
	}
	if err := n.Validate(); err != nil {
		return usageError{fmt.Sprintf("%s (see notifyd send -h; nothing was sent)", flagNames(err))}
	}
	sess, err := openSession(ctx, &c, stderr, "send")
	if err != nil {
		return err
	}
	defer sess.Close(ctx)
	stored, created, err := postgres.NewNotifications(sess.pool).Send(ctx, n)
	switch {
	case errors.Is(err, notify.ErrConflict):
		return fmt.Errorf("idempotency key %q was already used by notification %s, which says something else or targets someone else; "+
			"nothing was sent (use a new key to send this one)", n.IdempotencyKey, stored.ID)
	case errors.Is(err, notify.ErrInvalid):
		return usageError{fmt.Sprintf("%v (nothing was sent)", err)}
	case err != nil:
		return explainDB(err)
	}
	fmt.Fprintln(stdout, stored.ID)
	switch {
	case created && stored.Seq > 0:
		fmt.Fprintf(stderr, "published as seq %d\n", stored.Seq)
	case created:
		fmt.Fprintln(stderr, "queued: another publisher held the publish turn; a running worker publishes it")
	}
	if !created {
		fmt.Fprintf(stderr, "already sent: idempotency key %q was used by notification %s at %s; nothing new was created\n",
			n.IdempotencyKey, stored.ID, stored.CreatedAt.Format("2006-01-02 15:04:05Z07:00"))
	}
	return nil
}

// flagNames rewrites notify.Validate's field names as this command's flags.
func flagNames(err error) string {
	msg := strings.TrimPrefix(err.Error(), notify.ErrInvalid.Error()+": ")
	for field, flag := range map[string]string{
		"message": "--message", "details": "--details", "module": "--module", "actionType": "--action-type",
		"targetUserId": "--user", "targetRoles": "--roles", "idempotencyKey": "--idempotency-key",
		"severity": "--severity", "data": "--data", "collapseKey": "--collapse-key", "actions": "--actions",
	} {
		if strings.HasPrefix(msg, field+" ") || strings.HasPrefix(msg, field+"[") {
			return flag + strings.TrimPrefix(msg, field)
		}
	}
	return msg
}
