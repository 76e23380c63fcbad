// The notifyd browser client: one self-healing notification stream per browser.
//
//   import { createNotificationClient } from '/static/notify-client.js';
//   const client = createNotificationClient({ onNotification: (m) => show(m.data) });
//
// - It owns reconnection: on any error it closes the EventSource and opens a
//   NEW one after an exponential backoff with full jitter, resuming with
//   `?lastEventId=<last id>` (a new EventSource cannot send Last-Event-ID).
// - It de-duplicates notifications by notificationId (bounded memory).
// - A heartbeat watchdog treats a silent stream as dead.
// - It reacts to online/offline and to the page becoming visible.
// - Tabs of one origin share one stream: a leader elected with the Web Locks
//   API holds the EventSource and relays every message over a
//   BroadcastChannel; when it goes away another tab takes over from the last
//   event id it has seen.
// - The inbox: `unreadCount` (from `connected`, every `status` that carries
//   one, +1 per new notification; the leader's count in every tab) and the
//   API calls markRead, markUnread, markAllRead, fetchHistory,
//   fetchUnreadCount, getPreferences, setMutedModules (fetch, with cookies
//   per withCredentials; failures are NotificationApiError).
//
// Types: notify-client.d.ts. Pure logic: notify-client-core.js.

import {
  Backoff,
  Deduplicator,
  Watchdog,
  apiBaseFromStreamUrl,
  buildStreamUrl,
  fullJitterDelay,
  historyQueryString,
  incrementUnread,
  parseMessage,
  prependBounded,
  resumePositionOf,
  routeMessage,
  toSeq,
  unreadOf,
  watchdogTimeout,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
} from './notify-client-core.js';

/** @typedef {import('./notify-client.js').ConnectionState} ConnectionState */
/** @typedef {import('./notify-client.js').ConnectionInfo} ConnectionInfo */
/** @typedef {import('./notify-client.js').NotificationClient} NotificationClient */
/** @typedef {import('./notify-client.js').NotificationClientOptions} NotificationClientOptions */
/** @typedef {import('./notify-client.js').NotificationClientSnapshot} NotificationClientSnapshot */
/** @typedef {import('./notify-client.js').NotificationMessage} NotificationMessage */
/** @typedef {import('./notify-client.js').ConnectedMessage} ConnectedMessage */
/** @typedef {import('./notify-client.js').StatusMessage} StatusMessage */
/** @typedef {import('./notify-client.js').NotificationErrorKind} NotificationErrorKind */
/** @typedef {import('./notify-client.js').EventSourceLike} EventSourceLike */
/** @typedef {import('./notify-client.js').BroadcastChannelLike} BroadcastChannelLike */
/** @typedef {import('./notify-client.js').FetchLike} FetchLike */
/** @typedef {import('./notify-client.js').HistoryQuery} HistoryQuery */
/** @typedef {import('./notify-client.js').HistoryPage} HistoryPage */
/** @typedef {import('./notify-client.js').UnreadCount} UnreadCount */
/** @typedef {import('./notify-client.js').Preferences} Preferences */

/**
 * Messages between tabs. Only the leader sends `event`, `state` and `error`.
 * The unread count is the leader's: followers take it from `state`, which
 * the leader sends whenever it changes, so every tab shows the same number.
 * @typedef {(
 *   | {v: 1, from: string, kind: 'event', data: unknown, lastEventId: string}
 *   | {v: 1, from: string, kind: 'state', state: ConnectionState, lastEventId: string | null, heartbeatInterval: number | null, reconnectAttempts: number, unreadCount?: number | null, unreadHasMore?: boolean}
 *   | {v: 1, from: string, kind: 'error', error: {kind: NotificationErrorKind, message: string, fatal: boolean, retryInMs: number | null, reason?: string}}
 *   | {v: 1, from: string, kind: 'hello' | 'ping' | 'reconnect' | 'wake'}
 * )} TabMessage
 */

const CLOSED = 2; // EventSource.CLOSED

/**
 * After a resumed stream's `connected` message (whose unread count already
 * includes what the server is about to replay), replayed notifications are
 * not counted: once the stream has been quiet this long (at most
 * SETTLE_MAX_MS), the count is fetched again if anything was replayed.
 */
const SETTLE_QUIET_MS = 300;
const SETTLE_MAX_MS = 3000;
/**
 * A server count (status, connected, a recount) and a new notification this
 * close together are ambiguous: the count may or may not include it (the
 * server sends read-state changes straight away but reads new notifications
 * from the table, so either can overtake the other). The client then asks
 * for the count RECOUNT_DELAY_MS later, at most RECOUNT_BUDGET times per
 * server message.
 */
const AMBIGUOUS_MS = 1000;
const RECOUNT_DELAY_MS = 500;
const RECOUNT_BUDGET = 3;

/** What the inbox API calls (markRead, fetchHistory …) reject with. */
export class NotificationApiError extends Error {
  /** @override @type {'NotificationApiError'} */
  name = 'NotificationApiError';

  /**
   * @param {string} message the server's `error`, or what went wrong
   * @param {{status?: number, method?: string, url?: string, body?: unknown, cause?: unknown}} [details]
   */
  constructor(message, { status = 0, method = '', url = '', body = null, cause } = {}) {
    super(message);
    this.status = status;
    this.method = method;
    this.url = url;
    this.body = body;
    if (cause !== undefined) this.cause = cause;
  }
}

export class NotificationStreamError extends Error {
  /** @override @type {'NotificationStreamError'} */
  name = 'NotificationStreamError';

  /**
   * @param {NotificationErrorKind} kind
   * @param {string} message
   * @param {{fatal?: boolean, retryInMs?: number | null, reason?: string, cause?: unknown}} [details]
   */
  constructor(kind, message, { fatal = false, retryInMs = null, reason, cause } = {}) {
    super(message);
    this.kind = kind;
    this.fatal = fatal;
    this.retryInMs = retryInMs;
    if (reason !== undefined) this.reason = reason;
    if (cause !== undefined) this.cause = cause;
  }
}

/** @param {unknown} error */
function reportCallbackError(error) {
  const g = /** @type {{reportError?: (e: unknown) => void}} */ (globalThis);
  if (typeof g.reportError === 'function') g.reportError(error);
  else console.error('notify-client: a callback threw', error);
}

/**
 * @template T
 * @param {((arg: T) => void) | undefined} fn
 * @param {T} arg
 */
function call(fn, arg) {
  if (typeof fn !== 'function') return;
  try {
    fn(arg);
  } catch (e) {
    reportCallbackError(e);
  }
}

function randomId() {
  const c = /** @type {{crypto?: {randomUUID?: () => string}}} */ (globalThis).crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  return Math.random().toString(36).slice(2) + Date.now().toString(36);
}

/** @param {string} url */
function absoluteUrl(url) {
  try {
    const loc = /** @type {{location?: {href?: string}}} */ (globalThis).location;
    return new URL(url, loc && loc.href ? loc.href : undefined).href;
  } catch {
    return url;
  }
}

/**
 * Creates the client and starts connecting (or joins the tabs' election).
 * @param {NotificationClientOptions} [options]
 * @returns {NotificationClient}
 */
export function createNotificationClient(options = {}) {
  const g = /** @type {any} */ (globalThis);
  const {
    url = '/api/notifications/ws',
    apiUrl,
    withCredentials = true,
    onNotification,
    onConnected,
    onError,
    onStatus,
    maxNotifications = 100,
    heartbeatTimeoutMs,
    backoff: { initialMs = 1000, maxMs = 30000, resetAfterMs = 60000 } = {},
    dedupeSize = 1000,
    shareAcrossTabs = true,
    lockName = 'notifyd:' + absoluteUrl(url),
    leaderTimeoutMs,
    pingTimeoutMs = 3000,
    EventSource: ES = g.EventSource,
    setTimeout: setTimer = (/** @type {() => void} */ fn, /** @type {number} */ ms) => g.setTimeout(fn, ms),
    clearTimeout: clearTimer = (/** @type {any} */ h) => g.clearTimeout(h),
    random = Math.random,
    now = () => Date.now(),
    window: win = g.window ?? (typeof g.addEventListener === 'function' ? g : null),
    document: doc = (win && /** @type {any} */ (win).document) ?? g.document ?? null,
    navigator: nav = g.navigator ?? null,
    locks = (nav && nav.locks) ?? null,
    BroadcastChannel: BC = g.BroadcastChannel ?? null,
    fetch: fetchFn = typeof g.fetch === 'function' ? (/** @type {any} */ input, /** @type {any} */ init) => g.fetch(input, init) : null,
  } = options;

  if (typeof ES !== 'function') {
    throw new TypeError('notify-client: EventSource is not available; pass options.EventSource');
  }

  const tabId = randomId();
  const bo = new Backoff({ initialMs, maxMs, resetAfterMs, random });
  const dedupe = new Deduplicator(dedupeSize);

  /** @type {ConnectionState} */
  let state = 'connecting';
  /** @type {string | null} */
  let lastEventId = null;
  /** @type {NotificationMessage[]} */
  let notifications = [];
  /** @type {number | null} */
  let heartbeatInterval = null;
  /** @type {ConnectionInfo} */
  let info = {
    connectionId: null,
    userId: null,
    roles: [],
    connectedAt: null,
    reconnectAttempts: 0,
    isLeader: false,
    heartbeatInterval: null,
  };
  let isLeader = false;
  /** Stopped because sign-in is needed; reconnect() (or a leader coming back) revives. */
  let stopped = false;
  /** close() was called: final. */
  let disposed = false;
  let online = !(win && nav && nav.onLine === false);

  // ---- the inbox -----------------------------------------------------------
  const apiBase = typeof apiUrl === 'string' && apiUrl !== '' ? apiUrl.replace(/\/+$/, '') : apiBaseFromStreamUrl(url);
  /** null until the server has said. */
  /** @type {number | null} */
  let unreadCount = null;
  let unreadHasMore = false;
  /** A resumed stream is replaying: don't count, recount when it is quiet. */
  let settling = false;
  let settleReplayed = 0;
  let settleStartedAt = 0;
  /** @type {unknown} */
  let settleTimer = null;
  /** Bumped by every authoritative count, so an older recount answer is dropped. */
  let unreadGen = 0;
  let lastArrivalAt = -Infinity;
  let lastCountAt = -Infinity;
  let recountBudget = RECOUNT_BUDGET;
  /** @type {unknown} */
  let recountTimer = null;

  /** @type {EventSourceLike | null} */
  let es = null;
  let esOpened = false;
  /** @type {unknown} */
  let retryTimer = null;
  /** @type {unknown} */
  let healthyTimer = null;
  /** @type {unknown} */
  let pingTimer = null;

  /** @type {Set<() => void>} */
  const listeners = new Set();
  /** @type {NotificationClientSnapshot | null} */
  let snapshot = null;

  // ---- tab sharing -------------------------------------------------------
  let shared = Boolean(shareAcrossTabs && locks && typeof locks.request === 'function' && typeof BC === 'function');
  /** @type {BroadcastChannelLike | null} */
  let channel = null;
  /** @type {AbortController | null} */
  let lockAbort = null;
  /** @type {(() => void) | null} */
  let releaseLock = null;
  let lockGen = 0;

  const watchdog = new Watchdog({
    setTimeout: setTimer,
    clearTimeout: clearTimer,
    now,
    onExpire: () => {
      if (!isLeader || !es) return;
      const ms = currentWatchdogTimeout();
      failure('heartbeat', `no message for ${ms} ms: the connection is considered dead`);
    },
  });

  const leaderWatch = new Watchdog({
    setTimeout: setTimer,
    clearTimeout: clearTimer,
    now,
    onExpire: pingLeader,
  });

  function currentWatchdogTimeout() {
    return watchdogTimeout({ heartbeatTimeoutMs, heartbeatInterval });
  }

  function currentLeaderTimeout() {
    if (typeof leaderTimeoutMs === 'number' && leaderTimeoutMs > 0) return leaderTimeoutMs;
    return currentWatchdogTimeout() + (heartbeatInterval ?? DEFAULT_HEARTBEAT_INTERVAL_MS);
  }

  // ---- observable state --------------------------------------------------

  function changed() {
    snapshot = null;
    for (const l of [...listeners]) {
      try {
        l();
      } catch (e) {
        reportCallbackError(e);
      }
    }
  }

  /** @param {Partial<ConnectionInfo>} patch */
  function setInfo(patch) {
    info = { ...info, ...patch };
  }

  /** @param {ConnectionState} next */
  function setState(next) {
    if (state === next) return;
    publish(next);
  }

  /**
   * Announces a change (of state, attempts …) to subscribers and, from the
   * leader, to the other tabs.
   * @param {ConnectionState} [next]
   */
  function publish(next = state) {
    state = next;
    changed();
    if (isLeader) postState();
  }

  // ---- errors ------------------------------------------------------------

  /**
   * @param {NotificationErrorKind} kind
   * @param {string} message
   * @param {{fatal?: boolean, retryInMs?: number | null, reason?: string, cause?: unknown}} [details]
   */
  function reportError(kind, message, details = {}) {
    const err = new NotificationStreamError(kind, message, details);
    if (isLeader && channel && !details.fatal) {
      post({
        v: 1,
        from: tabId,
        kind: 'error',
        error: { kind, message, fatal: false, retryInMs: err.retryInMs, reason: details.reason },
      });
    }
    call(onError, err);
  }

  // ---- the stream (leader only) ------------------------------------------

  function clearRetry() {
    if (retryTimer !== null) {
      clearTimer(retryTimer);
      retryTimer = null;
    }
  }

  function closeStream() {
    watchdog.stop();
    stopSettling();
    if (healthyTimer !== null) {
      clearTimer(healthyTimer);
      healthyTimer = null;
    }
    const old = es;
    es = null;
    esOpened = false;
    if (old) {
      old.onopen = old.onmessage = old.onerror = null;
      try {
        old.close();
      } catch {
        // already gone
      }
    }
  }

  /** Opens a new EventSource resuming from lastEventId. */
  function connectNow() {
    clearRetry();
    closeStream();
    if (!isLeader || stopped || disposed) return;
    /** @type {EventSourceLike} */
    let source;
    try {
      source = new ES(buildStreamUrl(url, lastEventId), { withCredentials });
    } catch (e) {
      failure('network', 'could not create the EventSource: ' + String(e), e);
      return;
    }
    es = source;
    source.onopen = () => {
      if (es !== source) return;
      esOpened = true;
      watchdog.touch();
      bo.opened(now());
      healthyTimer = setTimer(() => {
        healthyTimer = null;
        if (bo.checkHealthy(now())) {
          setInfo({ reconnectAttempts: 0 });
          publish();
        }
      }, resetAfterMs);
      setState('open');
    };
    source.onmessage = (/** @type {{data: unknown, lastEventId?: string}} */ ev) => {
      if (es !== source) return;
      watchdog.touch();
      const id = typeof ev.lastEventId === 'string' ? ev.lastEventId : '';
      if (channel) post({ v: 1, from: tabId, kind: 'event', data: ev.data, lastEventId: id });
      handleEvent(ev.data, id, true);
    };
    source.onerror = (/** @type {unknown} */ ev) => {
      if (es !== source) return;
      const gaveUp = source.readyState === CLOSED && !esOpened;
      failure(
        gaveUp ? 'rejected' : 'network',
        gaveUp
          ? 'the server refused the stream (not signed in, unavailable, or not an event stream)'
          : 'the stream was interrupted',
        ev,
      );
    };
    watchdog.start(currentWatchdogTimeout());
  }

  /**
   * The stream failed: close it and retry after the backoff delay.
   * @param {NotificationErrorKind} kind
   * @param {string} message
   * @param {unknown} [cause]
   */
  function failure(kind, message, cause) {
    closeStream();
    if (stopped || disposed || !isLeader) return;
    const delay = bo.failed(now());
    setInfo({ reconnectAttempts: bo.attempt });
    publish('reconnecting');
    // Offline: no spinning; 'online' reconnects at once. A slow attempt at
    // maxMs still runs in case the browser's offline signal is wrong.
    const wait = online ? delay : maxMs;
    retryTimer = setTimer(() => {
      retryTimer = null;
      connectNow();
    }, wait);
    reportError(kind, online ? message : message + ' (offline)', { retryInMs: wait, cause });
  }

  /**
   * The server is ending the stream but wants us back: reconnect promptly,
   * or after the delay it asked for (a node shutting down spreads its
   * clients' reconnects so they do not all reach the next node at once).
   * @param {number | null} [reconnectAfter]
   */
  function closingReconnect(reconnectAfter) {
    closeStream();
    if (stopped || disposed || !isLeader) return;
    setState('reconnecting');
    clearRetry();
    const jitter = fullJitterDelay(0, initialMs, maxMs, random);
    const wait = !online ? maxMs : reconnectAfter != null ? reconnectAfter : jitter;
    retryTimer = setTimer(() => {
      retryTimer = null;
      connectNow();
    }, wait);
  }

  /**
   * Sign-in needed: stop without retrying.
   * @param {string} reason
   * @param {string} message
   */
  function stop(reason, message) {
    if (stopped || disposed) return;
    stopped = true;
    clearRetry();
    closeStream();
    leaveElection();
    setState('closed');
    call(onError, new NotificationStreamError('auth', message + ' — sign in again to receive notifications', { fatal: true, reason }));
  }

  // ---- messages ----------------------------------------------------------

  /**
   * One message of the stream, received by this tab (local) or relayed by the leader.
   * @param {unknown} raw
   * @param {string} eventId
   * @param {boolean} local
   */
  function handleEvent(raw, eventId, local) {
    let dirty = false;
    if (eventId && (local || !isLeader) && eventId !== lastEventId) {
      lastEventId = eventId;
      dirty = true;
    }
    const parsed = parseMessage(raw);
    if (!parsed.ok) {
      if (dirty) changed();
      if (local) reportError('protocol', parsed.error.message, { cause: parsed.error });
      return;
    }
    const message = parsed.message;
    const route = routeMessage(message);
    switch (route.kind) {
      case 'notification': {
        const n = /** @type {NotificationMessage} */ (message);
        if (dedupe.accept(route.id)) {
          notifications = prependBounded(notifications, n, maxNotifications);
          // The server pushes only what counts as unread (not muted, or
          // critical); the holder of the stream counts it.
          if (local) countArrival();
          changed();
          call(onNotification, n);
        } else {
          changed();
        }
        return;
      }
      case 'connected': {
        if (!local && isLeader) return; // a late relay from the previous leader
        const m = /** @type {ConnectedMessage} */ (message);
        if (route.heartbeatInterval !== null) heartbeatInterval = route.heartbeatInterval;
        const data = m.data || {};
        setInfo({
          connectionId: data.connectionId ?? null,
          userId: m.userId ?? null,
          roles: Array.isArray(data.roles) ? data.roles.slice() : m.userRole ? [m.userRole] : [],
          connectedAt: typeof m.timestamp === 'number' ? m.timestamp : now(),
          heartbeatInterval,
        });
        if (local) watchdog.setTimeoutMs(currentWatchdogTimeout());
        if (leaderWatch.running) leaderWatch.setTimeoutMs(currentLeaderTimeout());
        if (local) {
          const unread = unreadOf(data);
          stopSettling();
          recountBudget = RECOUNT_BUDGET;
          if (unread) setUnread(unread.count, unread.hasMore, false);
          if (data.resumeFrom !== null && data.resumeFrom !== undefined) startSettling();
        }
        changed();
        call(onConnected, m);
        return;
      }
      case 'status': {
        // The server's history does not hold the resume point (the database
        // was reset or restored, or a replica was promoted): it names the
        // position to resume from instead, and the stream continues from
        // there; a reconnect before the next notification must use it too.
        const position = local ? resumePositionOf(message.data) : null;
        if (position !== null && position !== lastEventId) {
          lastEventId = position;
          dirty = true;
        }
        const unread = local ? unreadOf(message.data) : undefined;
        if (unread) recountBudget = RECOUNT_BUDGET;
        const did = unread ? setUnread(unread.count, unread.hasMore) : false;
        if (dirty && !did) changed();
        call(onStatus, /** @type {StatusMessage} */ (message));
        const closing = route.closing;
        if (closing) {
          if (closing.terminal) stop(closing.reason, closing.message);
          else if (local && isLeader) closingReconnect(closing.reconnectAfter);
        }
        return;
      }
      default:
        if (dirty) changed();
    }
  }

  // ---- the unread count (held by the tab with the stream) -----------------

  /**
   * An authoritative count (connected, status, a recount).
   * @param {number | null} count
   * @param {boolean} hasMore
   * @param {boolean} [announce] call the listeners if it changed (false: the caller will)
   * @param {number} [since] notifications that arrived since then may or may not be in the count
   * @returns {boolean} whether it changed
   */
  function setUnread(count, hasMore, announce = true, since) {
    unreadGen++;
    lastCountAt = now();
    if (lastArrivalAt > (since ?? lastCountAt - AMBIGUOUS_MS)) scheduleRecount();
    if (count === unreadCount && hasMore === unreadHasMore) return false;
    unreadCount = count;
    unreadHasMore = hasMore;
    if (isLeader) postState();
    if (announce) changed();
    return true;
  }

  /** A new notification arrived on this tab's stream (the caller calls changed()). */
  function countArrival() {
    if (settling) {
      settleReplayed++;
      armSettle();
      return;
    }
    lastArrivalAt = now();
    if (lastArrivalAt - lastCountAt < AMBIGUOUS_MS) scheduleRecount();
    const next = incrementUnread({ count: unreadCount, hasMore: unreadHasMore });
    if (next.count === unreadCount && next.hasMore === unreadHasMore) return;
    unreadCount = next.count;
    unreadHasMore = next.hasMore;
    if (isLeader) postState();
  }

  function startSettling() {
    settling = true;
    settleReplayed = 0;
    settleStartedAt = now();
    armSettle();
  }

  function armSettle() {
    if (settleTimer !== null) clearTimer(settleTimer);
    const left = settleStartedAt + SETTLE_MAX_MS - now();
    settleTimer = setTimer(endSettling, Math.max(0, Math.min(SETTLE_QUIET_MS, left)));
  }

  /**
   * Between streams: forgets a pending recount and past arrivals (the next
   * stream's `connected` count is taken after them).
   */
  function stopSettling() {
    if (settleTimer !== null) clearTimer(settleTimer);
    settleTimer = null;
    settling = false;
    if (recountTimer !== null) clearTimer(recountTimer);
    recountTimer = null;
    lastArrivalAt = -Infinity;
  }

  function endSettling() {
    settleTimer = null;
    settling = false;
    if (settleReplayed > 0) recount();
  }

  /** A recount soon (one pending at a time, within the budget). */
  function scheduleRecount() {
    if (recountTimer !== null || recountBudget <= 0 || !isLeader || disposed) return;
    recountTimer = setTimer(() => {
      recountTimer = null;
      if (recountBudget <= 0 || settling) return;
      recountBudget--;
      recount();
    }, RECOUNT_DELAY_MS);
  }

  /** Asks the server for the count; a newer authoritative count wins. */
  function recount() {
    const gen = ++unreadGen;
    const sentAt = now();
    fetchUnreadCount().then(
      (u) => {
        if (gen !== unreadGen || disposed || !isLeader) return;
        // What arrived before the question is in the answer.
        if (u && typeof u.count === 'number') setUnread(u.count, u.hasMore === true, true, sentAt);
      },
      () => {
        // The next status or connected message brings the count.
      },
    );
  }

  // ---- the inbox API -------------------------------------------------------

  /**
   * One request to the inbox API: the JSON answer (null for 204), or a
   * NotificationApiError with the server's message and status.
   * @param {'GET' | 'POST' | 'PUT'} method
   * @param {string} path after the API base, starting with '/' (or '')
   * @param {unknown} [body] sent as JSON
   * @returns {Promise<any>}
   */
  async function request(method, path, body) {
    const target = apiBase + path;
    if (typeof fetchFn !== 'function') {
      throw new NotificationApiError('fetch is not available; pass options.fetch', { method, url: target });
    }
    /** @type {Record<string, string>} */
    const headers = { Accept: 'application/json' };
    /** @type {{method: string, credentials: 'include' | 'same-origin', headers: Record<string, string>, body?: string}} */
    const init = { method, credentials: withCredentials ? 'include' : 'same-origin', headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    /** @type {any} */
    let res;
    try {
      res = await fetchFn(target, init);
    } catch (e) {
      throw new NotificationApiError(`${method} ${target}: the server cannot be reached`, { method, url: target, cause: e });
    }
    const status = Number(res.status);
    if (status === 204) return null;
    /** @type {any} */
    let json = null;
    try {
      json = await res.json();
    } catch {
      // not JSON: the status says it
    }
    if (!res.ok) {
      const message =
        json && typeof json.error === 'string' && json.error !== ''
          ? json.error
          : `${method} ${target}: ${status} ${res.statusText ?? ''}`.trim();
      throw new NotificationApiError(message, { status, method, url: target, body: json });
    }
    return json;
  }

  /** @returns {Promise<UnreadCount>} */
  function fetchUnreadCount() {
    return request('GET', '/unread-count');
  }

  /**
   * @param {'read' | 'unread'} what
   * @param {string} id
   */
  async function mark(what, id) {
    if (typeof id !== 'string' || id === '') throw new TypeError(`mark ${what}: the notification id must be a non-empty string`);
    await request('POST', '/' + encodeURIComponent(id) + '/' + what);
  }

  /**
   * @param {HistoryQuery} [query]
   * @returns {Promise<HistoryPage>}
   */
  async function fetchHistory(query) {
    const qs = historyQueryString(query);
    const page = await request('GET', qs ? '?' + qs : '');
    return {
      notifications: Array.isArray(page && page.notifications) ? page.notifications : [],
      nextCursor: page && typeof page.nextCursor === 'number' ? page.nextCursor : null,
    };
  }

  /**
   * @param {number | string | null} [upTo]
   * @returns {Promise<number | null>}
   */
  async function markAllRead(upTo) {
    let seq = toSeq(upTo === undefined ? lastEventId : upTo);
    if (seq === null && upTo === undefined) {
      // Nothing received on this stream yet: everything the inbox holds now.
      const page = await fetchHistory({ limit: 1 });
      const newest = page.notifications[0];
      seq = newest && typeof newest.seq === 'number' ? newest.seq : null;
    }
    if (seq === null) return null;
    await request('POST', '/read-all', { upTo: seq });
    return seq;
  }

  /** @param {any} answer @returns {Preferences} */
  function preferencesOf(answer) {
    const mods = answer && Array.isArray(answer.mutedModules) ? answer.mutedModules : [];
    return { mutedModules: mods.filter((/** @type {unknown} */ m) => typeof m === 'string') };
  }

  // ---- leader election ---------------------------------------------------

  /** @param {TabMessage} m */
  function post(m) {
    if (!channel) return;
    try {
      channel.postMessage(m);
    } catch {
      // closed channel, or data that cannot be cloned
    }
  }

  function postState() {
    post({
      v: 1,
      from: tabId,
      kind: 'state',
      state,
      lastEventId,
      heartbeatInterval,
      reconnectAttempts: info.reconnectAttempts,
      unreadCount,
      unreadHasMore,
    });
  }

  /** @param {{steal?: boolean}} [how] */
  function requestLock({ steal = false } = {}) {
    if (!locks) return;
    const gen = ++lockGen;
    if (lockAbort) lockAbort.abort();
    lockAbort = null;
    const ac = !steal && typeof AbortController === 'function' ? new AbortController() : null;
    lockAbort = ac;
    let granted = false;
    /** @type {{signal?: AbortSignal, steal?: boolean}} */
    const opts = steal ? { steal: true } : ac ? { signal: ac.signal } : {};
    let p;
    try {
      p = locks.request(lockName, opts, () => {
        if (gen !== lockGen || stopped || disposed) return undefined;
        granted = true;
        if (lockAbort === ac) lockAbort = null;
        return new Promise((resolve) => {
          releaseLock = () => resolve(undefined);
          becomeLeader();
        });
      });
    } catch (e) {
      fallBackToOwnStream();
      return;
    }
    Promise.resolve(p).then(
      () => {},
      (/** @type {any} */ err) => {
        if (gen !== lockGen || disposed) return;
        if (granted) {
          // Another tab stole the lock (it found this one unresponsive).
          if (isLeader) demote();
        } else if (!err || err.name !== 'AbortError') {
          // Web Locks unusable here (opaque origin, sandbox …).
          fallBackToOwnStream();
        }
      },
    );
  }

  function leaveElection() {
    lockGen++;
    if (lockAbort) lockAbort.abort();
    lockAbort = null;
    leaderWatch.stop();
    clearPing();
    if (releaseLock) releaseLock();
    releaseLock = null;
    if (isLeader && shared) {
      isLeader = false;
      setInfo({ isLeader: false });
    }
  }

  function becomeLeader() {
    if (stopped || disposed) return;
    isLeader = true;
    leaderWatch.stop();
    clearPing();
    setInfo({ isLeader: true });
    if (state === 'open') state = 'reconnecting';
    changed();
    postState();
    connectNow();
  }

  /** This tab lost the lock (stolen): hand over and follow. */
  function demote() {
    clearRetry();
    closeStream();
    isLeader = false;
    if (releaseLock) releaseLock(); // the lock is gone already; end its callback
    releaseLock = null;
    setInfo({ isLeader: false });
    changed();
    startFollowing();
  }

  function fallBackToOwnStream() {
    if (disposed || stopped) return;
    shared = false;
    leaderWatch.stop();
    clearPing();
    if (channel) {
      channel.onmessage = null;
      try {
        channel.close();
      } catch {
        // ignore
      }
      channel = null;
    }
    if (!isLeader) {
      isLeader = true;
      setInfo({ isLeader: true });
      changed();
      connectNow();
    }
  }

  function startFollowing() {
    leaderWatch.start(currentLeaderTimeout());
    post({ v: 1, from: tabId, kind: 'hello' });
    requestLock();
  }

  function clearPing() {
    if (pingTimer !== null) {
      clearTimer(pingTimer);
      pingTimer = null;
    }
  }

  /** Nothing heard from the leader for a while: is it there? */
  function pingLeader() {
    if (isLeader || stopped || disposed || !shared) return;
    post({ v: 1, from: tabId, kind: 'ping' });
    clearPing();
    pingTimer = setTimer(() => {
      pingTimer = null;
      if (isLeader || stopped || disposed || !shared) return;
      // The lock holder is frozen or hung: take the stream over.
      requestLock({ steal: true });
    }, pingTimeoutMs);
  }

  function leaderHeard() {
    clearPing();
    if (isLeader || stopped || disposed) return;
    if (leaderWatch.running) leaderWatch.touch();
    else leaderWatch.start(currentLeaderTimeout());
  }

  /** @param {{data: unknown}} ev */
  function onTabMessage(ev) {
    const m = /** @type {TabMessage} */ (ev && ev.data);
    if (!m || m.v !== 1 || m.from === tabId || disposed) return;
    switch (m.kind) {
      case 'event':
        if (stopped) return;
        leaderHeard();
        handleEvent(m.data, m.lastEventId, false);
        return;
      case 'state':
        if (stopped) {
          // Someone signed in again: follow the new leader.
          if (m.state === 'open') revive();
          else return;
        }
        if (isLeader) return;
        leaderHeard();
        if (typeof m.lastEventId === 'string' && m.lastEventId !== lastEventId) lastEventId = m.lastEventId;
        if (typeof m.heartbeatInterval === 'number' && m.heartbeatInterval > 0) heartbeatInterval = m.heartbeatInterval;
        if (m.unreadCount === null || (typeof m.unreadCount === 'number' && m.unreadCount >= 0)) {
          unreadCount = m.unreadCount;
          unreadHasMore = m.unreadHasMore === true;
        }
        setInfo({ reconnectAttempts: m.reconnectAttempts ?? 0, heartbeatInterval });
        if (state === m.state) changed();
        else setState(m.state === 'closed' ? 'reconnecting' : m.state);
        return;
      case 'error':
        if (stopped || isLeader) return;
        leaderHeard();
        call(
          onError,
          new NotificationStreamError(m.error.kind, m.error.message, {
            retryInMs: m.error.retryInMs,
            reason: m.error.reason,
          }),
        );
        return;
      case 'hello':
      case 'ping':
        if (isLeader && !stopped) postState();
        return;
      case 'reconnect':
        if (isLeader && !stopped) explicitReconnect();
        return;
      case 'wake':
        if (isLeader && !stopped) wake();
        return;
    }
  }

  // ---- network and page lifecycle ----------------------------------------

  /** Reconnect at once if the stream is down, or check it is alive. */
  function wake() {
    if (!isLeader || stopped || disposed) return;
    if (state === 'open') watchdog.check();
    else if (!es && online) connectNow(); // waiting for a retry: go now
  }

  function onOnline() {
    online = true;
    if (!isLeader || stopped || disposed) return;
    if (state === 'open') {
      watchdog.check();
      return;
    }
    bo.reset();
    setInfo({ reconnectAttempts: 0 });
    connectNow();
  }

  function onOffline() {
    online = false;
    if (!isLeader || stopped || disposed) return;
    if (retryTimer !== null) {
      // Don't spin while offline; 'online' brings us back at once.
      clearRetry();
      retryTimer = setTimer(() => {
        retryTimer = null;
        connectNow();
      }, maxMs);
    }
  }

  function onVisibility() {
    if (doc && doc.visibilityState !== undefined && doc.visibilityState !== 'visible') return;
    if (stopped || disposed) return;
    if (isLeader) wake();
    else {
      post({ v: 1, from: tabId, kind: 'wake' });
      leaderWatch.check();
    }
  }

  /** @param {{persisted?: boolean}} ev */
  function onPageShow(ev) {
    if (ev && ev.persisted) onVisibility();
  }

  function explicitReconnect() {
    bo.reset();
    setInfo({ reconnectAttempts: 0 });
    publish(state === 'connecting' ? 'connecting' : 'reconnecting');
    connectNow();
  }

  function revive() {
    if (!stopped || disposed) return;
    stopped = false;
    setState('connecting');
    if (shared) startFollowing();
    else connectNow();
  }

  // ---- start -------------------------------------------------------------

  if (win) {
    win.addEventListener('online', onOnline);
    win.addEventListener('offline', onOffline);
    win.addEventListener('pageshow', onPageShow);
  }
  if (doc) doc.addEventListener('visibilitychange', onVisibility);

  if (shared) {
    try {
      channel = new /** @type {import('./notify-client.js').BroadcastChannelConstructorLike} */ (BC)(lockName);
      channel.onmessage = onTabMessage;
    } catch {
      channel = null;
      shared = false;
    }
  }
  if (shared) {
    startFollowing();
  } else {
    isLeader = true;
    setInfo({ isLeader: true });
    connectNow();
  }

  /** @type {NotificationClient} */
  const client = {
    get state() {
      return state;
    },
    get lastEventId() {
      return lastEventId;
    },
    get connectionInfo() {
      return info;
    },
    get notifications() {
      return notifications;
    },
    get duplicatesSuppressed() {
      return dedupe.duplicates;
    },
    get unreadCount() {
      return unreadCount;
    },
    get unreadHasMore() {
      return unreadHasMore;
    },
    markRead: (id) => mark('read', id),
    markUnread: (id) => mark('unread', id),
    markAllRead,
    fetchHistory,
    fetchUnreadCount,
    getPreferences: async () => preferencesOf(await request('GET', '/preferences')),
    setMutedModules: async (modules) => {
      if (!Array.isArray(modules) || modules.some((m) => typeof m !== 'string')) {
        throw new TypeError('setMutedModules: pass an array of module names');
      }
      return preferencesOf(await request('PUT', '/preferences', { mutedModules: [...modules] }));
    },
    reconnect() {
      if (disposed) return;
      if (stopped) revive();
      else if (isLeader) explicitReconnect();
      else {
        post({ v: 1, from: tabId, kind: 'reconnect' });
        leaderWatch.check();
      }
    },
    close() {
      if (disposed) return;
      clearRetry();
      stopSettling();
      closeStream();
      leaveElection();
      disposed = true;
      if (win) {
        win.removeEventListener('online', onOnline);
        win.removeEventListener('offline', onOffline);
        win.removeEventListener('pageshow', onPageShow);
      }
      if (doc) doc.removeEventListener('visibilitychange', onVisibility);
      if (channel) {
        channel.onmessage = null;
        try {
          channel.close();
        } catch {
          // ignore
        }
        channel = null;
      }
      isLeader = false;
      setInfo({ isLeader: false });
      state = 'closed';
      changed();
      listeners.clear();
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    getSnapshot() {
      if (!snapshot) {
        snapshot = Object.freeze({
          state,
          isConnected: state === 'open',
          lastEventId,
          connectionInfo: info,
          notifications,
          duplicatesSuppressed: dedupe.duplicates,
          unreadCount,
          unreadHasMore,
        });
      }
      return snapshot;
    },
  };
  return client;
}
