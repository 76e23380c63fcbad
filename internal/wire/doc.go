// Package wire is the format of notifyd's event stream, both ends of it:
// the messages as Go types, the server's encoder, a Server-Sent Events
// parser, the client-side decoding of a message, and a Reader that follows
// one user's stream across connections the way a browser's EventSource
// does. The server (feed, stream, app) writes with it; `notifyd tail`, the
// test harnesses and the bench read with it, so the format is written down
// once. The normative text is the "The stream" section of CONTRACT.md; what
// follows is a reader's summary.
//
// The stream is text/event-stream. Every event has no event: field (so a
// browser's onmessage gets them all) and one data: line of JSON, a
// [Message]: {"type", "userId"?, "userRole"?, "data"?, "timestamp",
// "notificationId"?}, with timestamp in milliseconds since the epoch. JSON
// escapes newlines, so the data is always a single line and no field of a
// notification can forge an event.
//
//   - A connection starts with a retry: field (the reconnect delay a client
//     should use) on the first line of a "connected" message, whose data is
//     [Connected]: the connection id, the roles, the resume point, the
//     heartbeat interval and the unread count.
//   - A "notification" message carries the notification's seq as the event's
//     id: field, its id as notificationId, and [Notification] as data. Only
//     notifications carry an id, so the last id a client saw is its resume
//     point: it reconnects with Last-Event-ID and gets what followed.
//   - A "heartbeat" message, with no data, comes every heartbeat interval.
//   - A "status" message reports something about the stream in its data,
//     [Status]: a replay that could not be exact (replay "truncated", "lost"
//     or "ahead"), the unread count (unreadCount, hasMore, countedThrough;
//     with change, unseenCount and unseenHasMore when the user changed their
//     inbox elsewhere, and notification when a snooze ended), or why the
//     server is closing the stream (closing, message, reconnectAfter).
package wire
