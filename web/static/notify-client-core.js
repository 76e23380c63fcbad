// The pure logic of the notifyd browser client (no DOM, no globals, no I/O),
// at the URL apps and the monitoring page import it from. It lives in the
// modules under client/, each beside the part of the client that uses it;
// this module gathers their pure exports so /static/notify-client-core.js
// keeps every name it always had (web/test/core.test.js tests them here).

export { Backoff, backoffCeiling, fullJitterDelay } from './client/backoff.js';
export { DEFAULT_HEARTBEAT_INTERVAL_MS, Watchdog, watchdogTimeout } from './client/watchdog.js';
export { TERMINAL_CLOSING, parseMessage, resumePositionOf, routeMessage } from './client/messages.js';
export { BoundedSet, Deduplicator, emptyConnectionInfo, prependBounded } from './client/received.js';
export { buildStreamUrl } from './client/transport.js';
export { UNREAD_CAP, incrementUnread, unreadLabel, unreadOf } from './client/unread.js';
export { apiBaseFromStreamUrl, historyQueryString, toSeq } from './client/inbox-api.js';
