package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Received is a message as a client reads it off the stream: the envelope
// decoded, Data left as it came, to decode by Type with Notification,
// Connected or Status.
type Received struct {
	// EventID is the event's id field: a notification's seq ("" for the
	// other messages).
	EventID string `json:"-"`
	// Retry is the last retry field the stream had sent when this message
	// arrived.
	Retry          time.Duration   `json:"-"`
	Type           string          `json:"type"`
	UserID         string          `json:"userId"`
	UserRole       string          `json:"userRole"`
	Data           json.RawMessage `json:"data"`
	Timestamp      int64           `json:"timestamp"`
	NotificationID string          `json:"notificationId"`
}

// Decode reads the message of ev.
func Decode(ev Event) (Received, error) {
	var m Received
	if err := json.Unmarshal(ev.Data, &m); err != nil {
		return Received{}, fmt.Errorf("undecodable event %.200q: %w", ev.Data, err)
	}
	m.EventID = ev.ID
	return m, nil
}

// Notification decodes the data of a notification message.
func (m Received) Notification() (Notification, error) { return decodeData[Notification](m) }

// Connected decodes the data of a connected message.
func (m Received) Connected() (Connected, error) { return decodeData[Connected](m) }

// Status decodes the data of a status message.
func (m Received) Status() (Status, error) { return decodeData[Status](m) }

func decodeData[T any](m Received) (T, error) {
	var v T
	if err := json.Unmarshal(m.Data, &v); err != nil {
		var zero T
		return zero, fmt.Errorf("decode the data of a %s message: %w", m.Type, err)
	}
	return v, nil
}

// ScanNotification checks a notification event and returns its seq and
// notification id without decoding it: a client process holding thousands
// of streams (the bench, the cluster tests) would spend most of its CPU
// decoding. The event id, the type, the notification id and data.seq must
// agree. It relies on what encode writes: "type" first, data's "id" then
// "seq" first inside "data", "notificationId" last; JSON escapes quotes
// inside strings, so `"seq":` can only be a key.
func ScanNotification(ev Event) (seq int64, id string, err error) {
	bad := func(why string) (int64, string, error) {
		return 0, "", fmt.Errorf("malformed notification event (%s): id %q, data %.200q", why, ev.ID, ev.Data)
	}
	seq, err = strconv.ParseInt(ev.ID, 10, 64)
	if err != nil || seq <= 0 {
		return bad("id")
	}
	d := ev.Data
	if !bytes.HasPrefix(d, []byte(`{"type":"notification",`)) || !bytes.HasSuffix(d, []byte(`"}`)) {
		return bad("type")
	}
	i := bytes.Index(d, []byte(`"seq":`))
	if i < 0 {
		return bad("no data.seq")
	}
	rest := d[i+len(`"seq":`):]
	j := bytes.IndexAny(rest, ",}")
	if j < 0 || !bytes.Equal(rest[:j], []byte(ev.ID)) {
		return bad("data.seq differs from the id")
	}
	const key = `"notificationId":"`
	k := bytes.LastIndex(d, []byte(key))
	if k < 0 || len(d)-k-len(key)-2 < 1 {
		return bad("no notificationId")
	}
	return seq, string(d[k+len(key) : len(d)-2]), nil
}
