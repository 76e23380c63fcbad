package wire

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// The fields of Connected and Status are in the order of their JSON names,
// the order the server wrote them in when it built them as maps, so the
// bytes on the wire did not change when they became types. A pointer field
// is one whose zero must still be written (an unread count of 0, a resume
// point of 0): nil leaves the field out.

// Connected is the data of the connected message, the first of every
// connection.
type Connected struct {
	// ConnectionID names the connection in the server's logs.
	ConnectionID uint64 `json:"connectionId"`
	// HasMore: there are more unread notifications than UnreadCount.
	HasMore *bool `json:"hasMore,omitempty"`
	// HeartbeatInterval is how often heartbeats come, in milliseconds.
	HeartbeatInterval int64 `json:"heartbeatInterval"`
	// ResumeFrom is the resume point the request gave (null: none).
	ResumeFrom *int64 `json:"resumeFrom"`
	// Roles are the roles the stream was opened with.
	Roles []string `json:"roles"`
	// UnreadCount is left out when the server keeps no inbox or the count
	// follows in a status message, and null when it could not be read (a
	// client then shows it as unknown; decoding gives nil for both).
	UnreadCount *Count `json:"unreadCount,omitempty"`
}

// Count is an unread count the server may have failed to read: it is
// written as null then.
type Count struct {
	N     int
	Known bool
}

// MarshalJSON writes the count, or null when it is not known.
func (c Count) MarshalJSON() ([]byte, error) {
	if !c.Known {
		return []byte("null"), nil
	}
	return strconv.AppendInt(nil, int64(c.N), 10), nil
}

// UnmarshalJSON reads a count or null.
func (c *Count) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*c = Count{}
		return nil
	}
	if err := json.Unmarshal(b, &c.N); err != nil {
		return err
	}
	c.Known = true
	return nil
}

// Status is the data of a status message. Which fields are set says what
// it reports:
//
//   - a replay that could not be exact: Replay "truncated" (retention removed
//     what followed ResumeFrom: OldestAvailable is the first seq left),
//     "lost" (the database lost what this stream had been sent, after a
//     failover or a restore: LastSeq is the last seq it still has, NextSeq
//     the next one; Live when the stream was live rather than resuming), or
//     "ahead" (ResumeFrom is beyond the newest seq, LastSeq);
//   - the unread count: UnreadCount, HasMore and CountedThrough (the last
//     seq the count covers), with Change when it changed because the user
//     read, unread or muted something on another stream;
//   - the end of the stream: Closing (the reason), Message (for a person),
//     and on shutdown ReconnectAfter (milliseconds to wait);
//   - Error: an event the server could not encode.
type Status struct {
	Change         *Change `json:"change,omitempty"`
	Closing        string  `json:"closing,omitempty"`
	CountedThrough *int64  `json:"countedThrough,omitempty"`
	Error          string  `json:"error,omitempty"`
	HasMore        *bool   `json:"hasMore,omitempty"`
	LastSeq        *int64  `json:"lastSeq,omitempty"`
	Live           bool    `json:"live,omitempty"`
	Message        string  `json:"message,omitempty"`
	NextSeq        *int64  `json:"nextSeq,omitempty"`
	// Notification is the notification a Change of action "unsnooze"
	// brings back (shown again, unread).
	Notification    *Notification `json:"notification,omitempty"`
	OldestAvailable *int64        `json:"oldestAvailable,omitempty"`
	ReconnectAfter  *int64        `json:"reconnectAfter,omitempty"`
	Replay          string        `json:"replay,omitempty"`
	ResumeFrom      *int64        `json:"resumeFrom,omitempty"`
	UnreadCount     *int          `json:"unreadCount,omitempty"`
	// UnseenCount and UnseenHasMore: the unread ones above the user's seen
	// mark, sent with UnreadCount after an inbox change.
	UnseenCount   *int  `json:"unseenCount,omitempty"`
	UnseenHasMore *bool `json:"unseenHasMore,omitempty"`
}

// The values of Status.Replay.
const (
	ReplayTruncated = "truncated"
	ReplayLost      = "lost"
	ReplayAhead     = "ahead"
)

// Change is what changed the user's inbox: Action is read, unread,
// read-all, preferences, seen, archive, unarchive, snooze, unsnooze or
// interact (inboxsync's actions); NotificationID or Seq name what it
// applied to.
type Change struct {
	Action         string `json:"action"`
	NotificationID string `json:"notificationId,omitempty"`
	Seq            int64  `json:"seq,omitempty"`
}
