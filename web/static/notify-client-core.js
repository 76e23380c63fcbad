// The pure logic of the notifyd browser client: no DOM, no globals, no I/O.
// Everything here takes its clock, timers and randomness as arguments so it
// can be unit tested in Node (web/test/core.test.js).

/** Closing reasons after which reconnecting is pointless until the user signs in again. */
export const TERMINAL_CLOSING = Object.freeze(['expired', 'logout']);

/** The contract's default heartbeat interval, used until a `connected` message says otherwise. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 15000;

/**
 * The ceiling of the backoff delay before attempt `attempt` (0-based):
 * min(maxMs, initialMs * 2^attempt).
 * @param {number} attempt
 * @param {number} initialMs
 * @param {number} maxMs
 * @returns {number}
 */
export function backoffCeiling(attempt, initialMs, maxMs) {
  const a = Math.max(0, Math.floor(attempt));
  return Math.max(0, Math.min(maxMs, initialMs * 2 ** a));
}

/**
 * "Full jitter" backoff: a delay drawn uniformly from [0, ceiling(attempt)]
 * (the ceiling itself only if random() returns 1).
 * @param {number} attempt 0-based number of consecutive failures before this one
 * @param {number} initialMs
 * @param {number} maxMs
 * @param {() => number} random returns a number in [0, 1), like Math.random
 * @returns {number} whole milliseconds
 */
export function fullJitterDelay(attempt, initialMs, maxMs, random) {
  const r = Math.min(Math.max(Number(random()) || 0, 0), 1);
  return Math.floor(r * backoffCeiling(attempt, initialMs, maxMs));
}

/**
 * Exponential backoff with full jitter that forgets past failures once a
 * connection has stayed healthy for `resetAfterMs`.
 */
export class Backoff {
  /**
   * @param {{initialMs?: number, maxMs?: number, resetAfterMs?: number, random?: () => number}} [options]
   */
  constructor({ initialMs = 1000, maxMs = 30000, resetAfterMs = 60000, random = Math.random } = {}) {
    if (!(initialMs >= 0) || !(maxMs >= 0)) throw new RangeError('backoff delays must be non-negative');
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.resetAfterMs = resetAfterMs;
    this.random = random;
    /** Consecutive failures not yet forgiven by a healthy period. */
    this.attempt = 0;
    /** @type {number | null} when the current connection opened */
    this.openedAt = null;
  }

  /** The current connection is open (healthy) since `now`. @param {number} now */
  opened(now) {
    this.openedAt = now;
  }

  /**
   * Forgets past failures if the current connection has been open for
   * resetAfterMs by `now`. Returns whether it did.
   * @param {number} now
   */
  checkHealthy(now) {
    if (this.openedAt !== null && now - this.openedAt >= this.resetAfterMs && this.attempt !== 0) {
      this.attempt = 0;
      return true;
    }
    return false;
  }

  /**
   * The connection failed (or an attempt did) at `now`: the delay before the
   * next attempt. Counts the failure.
   * @param {number} now
   * @returns {number}
   */
  failed(now) {
    this.checkHealthy(now);
    this.openedAt = null;
    const delay = fullJitterDelay(this.attempt, this.initialMs, this.maxMs, this.random);
    this.attempt += 1;
    return delay;
  }

  /** Forget every failure (explicit reconnect, network back). */
  reset() {
    this.attempt = 0;
  }
}

/**
 * A set that remembers at most `max` keys, forgetting the oldest inserted first.
 * @template T
 */
export class BoundedSet {
  /** @param {number} max */
  constructor(max) {
    if (!(max >= 1)) throw new RangeError('BoundedSet size must be at least 1');
    this.max = Math.floor(max);
    /** @type {Set<T>} */
    this.set = new Set();
  }

  /** @param {T} key */
  has(key) {
    return this.set.has(key);
  }

  /**
   * Adds key; returns false if it was already present (a duplicate).
   * @param {T} key
   * @returns {boolean}
   */
  add(key) {
    if (this.set.has(key)) return false;
    this.set.add(key);
    while (this.set.size > this.max) {
      const oldest = this.set.values().next().value;
      this.set.delete(/** @type {T} */ (oldest));
    }
    return true;
  }

  get size() {
    return this.set.size;
  }

  clear() {
    this.set.clear();
  }
}

/**
 * Remembers notification ids to suppress duplicates, with bounded memory.
 */
export class Deduplicator {
  /** @param {number} [size] */
  constructor(size = 1000) {
    /** @type {BoundedSet<string>} */
    this.seen = new BoundedSet(size);
    this.duplicates = 0;
  }

  /**
   * True the first time an id is seen; false (and counted) afterwards.
   * A message without an id is always new.
   * @param {string | null | undefined} id
   */
  accept(id) {
    if (id === null || id === undefined || id === '') return true;
    if (this.seen.add(String(id))) return true;
    this.duplicates += 1;
    return false;
  }
}

/**
 * The stream URL carrying the resume point as the `lastEventId` query
 * parameter (a new EventSource cannot send the Last-Event-ID header).
 * Works on relative and absolute URLs; replaces an existing lastEventId.
 * @param {string} url
 * @param {string | null | undefined} lastEventId
 * @returns {string}
 */
export function buildStreamUrl(url, lastEventId) {
  let base = String(url);
  let hash = '';
  const h = base.indexOf('#');
  if (h >= 0) {
    hash = base.slice(h);
    base = base.slice(0, h);
  }
  let query = '';
  const q = base.indexOf('?');
  if (q >= 0) {
    query = base.slice(q + 1);
    base = base.slice(0, q);
  }
  const params = query
    .split('&')
    .filter((p) => p !== '' && decodeURIComponent(p.split('=')[0].replace(/\+/g, ' ')) !== 'lastEventId');
  if (lastEventId !== null && lastEventId !== undefined && lastEventId !== '') {
    params.push('lastEventId=' + encodeURIComponent(String(lastEventId)));
  }
  return base + (params.length ? '?' + params.join('&') : '') + hash;
}

/**
 * The heartbeat watchdog's timeout: heartbeatTimeoutMs if given, else twice
 * the server's heartbeat interval (or the contract's default interval).
 * @param {{heartbeatTimeoutMs?: number | null, heartbeatInterval?: number | null}} options
 * @returns {number}
 */
export function watchdogTimeout({ heartbeatTimeoutMs, heartbeatInterval }) {
  if (typeof heartbeatTimeoutMs === 'number' && heartbeatTimeoutMs > 0) return heartbeatTimeoutMs;
  const interval =
    typeof heartbeatInterval === 'number' && heartbeatInterval > 0 ? heartbeatInterval : DEFAULT_HEARTBEAT_INTERVAL_MS;
  return 2 * interval;
}

/**
 * Fires `onExpire` when `touch()` has not been called for `timeoutMs`.
 * Rather than re-arming a timer on every message it checks the elapsed time
 * when its timer fires and sleeps again for the remainder, so a late
 * (throttled) timer never expires a connection that kept receiving.
 */
export class Watchdog {
  /**
   * @param {{
   *   setTimeout: (fn: () => void, ms: number) => unknown,
   *   clearTimeout: (handle: any) => void,
   *   now: () => number,
   *   onExpire: () => void,
   * }} deps
   */
  constructor({ setTimeout, clearTimeout, now, onExpire }) {
    this.setTimer = setTimeout;
    this.clearTimer = clearTimeout;
    this.now = now;
    this.onExpire = onExpire;
    /** @type {unknown} */
    this.handle = null;
    this.timeoutMs = 0;
    this.last = 0;
    this.running = false;
  }

  /** Starts (or restarts) watching, counting from now. @param {number} timeoutMs */
  start(timeoutMs) {
    this.stop();
    this.timeoutMs = timeoutMs;
    this.last = this.now();
    this.running = true;
    this.arm(timeoutMs);
  }

  /** Changes the timeout without resetting the last activity. @param {number} timeoutMs */
  setTimeoutMs(timeoutMs) {
    this.timeoutMs = timeoutMs;
    if (this.running) {
      this.disarm();
      this.check();
    }
  }

  /** Something arrived. */
  touch() {
    this.last = this.now();
  }

  /** Milliseconds since the last activity. */
  idleMs() {
    return this.now() - this.last;
  }

  /** Expires now if the timeout has passed, else sleeps for the remainder. */
  check() {
    if (!this.running) return;
    const remaining = this.timeoutMs - (this.now() - this.last);
    if (remaining <= 0) {
      this.stop();
      this.onExpire();
      return;
    }
    this.disarm();
    this.arm(remaining);
  }

  stop() {
    this.running = false;
    this.disarm();
  }

  /** @private @param {number} ms */
  arm(ms) {
    this.handle = this.setTimer(() => {
      this.handle = null;
      this.check();
    }, ms);
  }

  /** @private */
  disarm() {
    if (this.handle !== null) {
      this.clearTimer(this.handle);
      this.handle = null;
    }
  }
}

/**
 * Parses one SSE `data:` payload.
 * @param {unknown} raw
 * @returns {{ok: true, message: import('./notify-client.js').StreamMessage} | {ok: false, error: Error}}
 */
export function parseMessage(raw) {
  if (typeof raw !== 'string') return { ok: false, error: new TypeError('event data is not text') };
  let value;
  try {
    value = JSON.parse(raw);
  } catch (e) {
    return { ok: false, error: new SyntaxError('event data is not JSON: ' + /** @type {Error} */ (e).message) };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || typeof value.type !== 'string') {
    return { ok: false, error: new TypeError('event data is not a notifyd message') };
  }
  return { ok: true, message: value };
}

/**
 * @typedef {(
 *   | {kind: 'notification', id: string | null}
 *   | {kind: 'connected', heartbeatInterval: number | null}
 *   | {kind: 'heartbeat'}
 *   | {kind: 'status', closing: null | {reason: string, terminal: boolean, message: string, reconnectAfter: number | null}}
 *   | {kind: 'unknown'}
 * )} Route
 */

/**
 * What a message asks the client to do.
 * @param {import('./notify-client.js').StreamMessage} message
 * @returns {Route}
 */
export function routeMessage(message) {
  const data = message.data && typeof message.data === 'object' ? /** @type {Record<string, any>} */ (message.data) : null;
  switch (message.type) {
    case 'notification': {
      let id = message.notificationId ?? (data && data.id) ?? null;
      if (id !== null && typeof id !== 'string') id = String(id);
      return { kind: 'notification', id };
    }
    case 'connected': {
      const hb = data && Number(data.heartbeatInterval);
      return { kind: 'connected', heartbeatInterval: hb && hb > 0 ? hb : null };
    }
    case 'heartbeat':
      return { kind: 'heartbeat' };
    case 'status': {
      if (data && data.closing !== undefined && data.closing !== null && data.closing !== '') {
        const reason = String(data.closing);
        return {
          kind: 'status',
          closing: {
            reason,
            terminal: TERMINAL_CLOSING.includes(reason),
            message: typeof data.message === 'string' ? data.message : 'the server closed the stream: ' + reason,
            reconnectAfter: Number.isFinite(data.reconnectAfter) && data.reconnectAfter >= 0
              ? Math.min(data.reconnectAfter, 60000) : null,
          },
        };
      }
      return { kind: 'status', closing: null };
    }
    default:
      return { kind: 'unknown' };
  }
}

/**
 * The position a `status` message tells the client to resume from: with
 * `replay: "ahead"` (its resume point is beyond the database's history) or
 * `replay: "lost"` (its resume point was numbered on a history the database
 * no longer has, after a restore or a failover), `lastSeq`; otherwise null.
 * @param {unknown} data
 * @returns {string | null}
 */
export function resumePositionOf(data) {
  if (!data || typeof data !== 'object') return null;
  const d = /** @type {Record<string, unknown>} */ (data);
  if (d.replay !== 'ahead' && d.replay !== 'lost') return null;
  const seq = d.lastSeq;
  return typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 0 ? String(seq) : null;
}

/**
 * Keeps the newest `max` items first.
 * @template T
 * @param {readonly T[]} list newest first
 * @param {T} item
 * @param {number} max
 * @returns {T[]}
 */
export function prependBounded(list, item, max) {
  if (max <= 0) return [];
  const next = [item, ...list];
  if (next.length > max) next.length = max;
  return next;
}

// ---- the inbox: unread count and API URLs ------------------------------------

/** The server counts unread notifications exactly up to this, then answers `hasMore` ("99+"). */
export const UNREAD_CAP = 99;

/**
 * The unread count a `connected` or `status` message carries, or undefined
 * when it carries none (a status about something else). `null` count: the
 * server could not say (its database was unavailable when the stream opened).
 * @param {unknown} data the message's `data`
 * @returns {{count: number | null, hasMore: boolean} | undefined}
 */
export function unreadOf(data) {
  if (!data || typeof data !== 'object' || !('unreadCount' in data)) return undefined;
  const d = /** @type {{unreadCount?: unknown, hasMore?: unknown}} */ (data);
  const n = d.unreadCount;
  if (n === null) return { count: null, hasMore: false };
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return undefined;
  return { count: Math.floor(n), hasMore: d.hasMore === true };
}

/**
 * The count after one more unread notification: exact up to UNREAD_CAP, then
 * "UNREAD_CAP and more", as the server says it. An unknown count stays unknown.
 * @param {{count: number | null, hasMore: boolean}} unread
 * @returns {{count: number | null, hasMore: boolean}}
 */
export function incrementUnread({ count, hasMore }) {
  if (count === null) return { count, hasMore };
  if (hasMore || count + 1 > UNREAD_CAP) return { count: Math.min(count, UNREAD_CAP), hasMore: true };
  return { count: count + 1, hasMore: false };
}

/**
 * The badge text for a count: "" when unknown, "99+" past the cap.
 * @param {number | null} count
 * @param {boolean} hasMore
 */
export function unreadLabel(count, hasMore) {
  if (count === null) return '';
  return hasMore ? `${count}+` : String(count);
}

/**
 * The inbox API's base URL derived from the stream URL: the stream is
 * `<base>/ws`, the inbox `<base>` (query and fragment dropped), so
 * `/api/notifications/ws` → `/api/notifications`.
 * @param {string} streamUrl
 * @returns {string}
 */
export function apiBaseFromStreamUrl(streamUrl) {
  let base = String(streamUrl).replace(/[?#].*$/, '');
  base = base.replace(/\/ws\/?$/, '');
  return base.replace(/\/+$/, '');
}

/**
 * The query string of a history request (`before`, `limit`, `unread`,
 * `module`, `severity`, in that order; empty values left out), without '?'.
 * Throws a TypeError for a value the server would refuse.
 * @param {import('./notify-client.js').HistoryQuery} [q]
 * @returns {string}
 */
export function historyQueryString(q = {}) {
  const p = new URLSearchParams();
  const { before, limit, unread, module, severity } = q;
  if (before !== undefined && before !== null) {
    if (!Number.isSafeInteger(before) || before < 1) throw new TypeError('fetchHistory: before must be a positive seq (a nextCursor)');
    p.set('before', String(before));
  }
  if (limit !== undefined && limit !== null) {
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 100) throw new TypeError('fetchHistory: limit must be between 1 and 100');
    p.set('limit', String(limit));
  }
  if (unread !== undefined && unread !== null && unread !== false) {
    if (unread !== true) throw new TypeError('fetchHistory: unread must be a boolean');
    p.set('unread', 'true');
  }
  if (module !== undefined && module !== null && module !== '') p.set('module', String(module));
  if (severity !== undefined && severity !== null && String(severity) !== '') p.set('severity', String(severity));
  return p.toString();
}

/**
 * A read-all watermark: a non-negative integer from a number or an event id.
 * @param {unknown} value
 * @returns {number | null} null when there is none (no event seen yet)
 */
export function toSeq(value) {
  if (value === null || value === undefined || value === '') return null;
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw new TypeError('markAllRead: upTo must be a non-negative integer seq, not ' + JSON.stringify(value));
  return n;
}
