package wire_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/wire"
)

// TestScanNotificationReadsRealEvents: ScanNotification agrees with the events
// the server builds, including text that
// looks like the fields it looks for.
func TestScanNotificationReadsRealEvents(t *testing.T) {
	for _, n := range []notify.Notification{
		{ID: "0b3f7c1e-0000-4000-8000-000000000001", Seq: 7, Message: "plain", Severity: notify.SeverityLow},
		{ID: "0b3f7c1e-0000-4000-8000-000000000002", Seq: 1234567, Message: `tricky "seq":1, "notificationId":"x"`,
			Details: `{"seq":2}`, Data: json.RawMessage(`{"seq": 3, "type": "notification"}`), Severity: notify.SeverityHigh,
			Target: notify.Target{UserID: "alice", Roles: []string{"OPS"}}},
	} {
		n.CreatedAt = time.Now()
		f := wire.NotificationEvent(n)
		s := strings.TrimSuffix(string(f), "\n\n")
		id, data, ok := strings.Cut(s, "\n")
		if !ok {
			t.Fatalf("frame %q", f)
		}
		ev := wire.Event{ID: strings.TrimPrefix(id, "id: "), Data: []byte(strings.TrimPrefix(data, "data: "))}
		seq, nid, err := wire.ScanNotification(ev)
		if err != nil || seq != n.Seq || nid != n.ID {
			t.Errorf("ScanNotification(%q) = %d, %q, %v; want %d, %q", ev.Data, seq, nid, err, n.Seq, n.ID)
		}
		ev.ID = "8"
		if _, _, err := wire.ScanNotification(ev); err == nil {
			t.Errorf("an id that differs from data.seq was accepted: %q", ev.Data)
		}
	}
}
