// The notifyd browser client: one self-healing notification stream per browser.
//
//   import { createNotificationClient } from '/static/notify-client.js';
//   const client = createNotificationClient({ onNotification: (m) => show(m.data) });
//
// This module is the public facade: it reads the options, holds what the app
// observes (state, last event id, notifications, connection info, unread
// count), routes each stream message, and wires the parts, each in its own
// module under client/ (types: notify-client.d.ts):
//
// - client/transport.js: the EventSource, replaced after every error with
//   backoff and full jitter, resuming with `?lastEventId=`; heartbeat watchdog.
// - client/leader.js: tabs of one origin elect a leader with Web Locks; it
//   holds the stream and relays every message over a BroadcastChannel.
// - client/unread.js: the unread count and its settling against replays and
//   races between the server's counts and new notifications.
// - client/inbox-api.js: markRead, markUnread, markAllRead, markSeen,
//   archive, unarchive, snooze, interact, fetchHistory, fetchUnreadCount,
//   getPreferences, setMutedModules.
// - client/page.js: online/offline and the page becoming visible.
// - client/errors.js: NotificationStreamError, NotificationApiError.
// - client/backoff.js, client/watchdog.js, client/messages.js,
//   client/received.js: the pure logic (re-exported by notify-client-core.js).

import { NotificationApiError, NotificationStreamError, reportCallbackError, safeCall } from './client/errors.js';
import { createInboxApi, inboxApiBase } from './client/inbox-api.js';
import { TabElection } from './client/leader.js';
import { parseMessage, resumePositionOf, routeMessage } from './client/messages.js';
import { resolveOptions } from './client/options.js';
import { watchPage } from './client/page.js';
import { Deduplicator, emptyConnectionInfo, prependBounded } from './client/received.js';
import { StreamTransport } from './client/transport.js';
import { UnreadCounter } from './client/unread.js';
import { DEFAULT_HEARTBEAT_INTERVAL_MS, watchdogTimeout } from './client/watchdog.js';

export { NotificationApiError, NotificationStreamError };

/** @typedef {import('./notify-client.js').ConnectionState} ConnectionState */
/** @typedef {import('./notify-client.js').ConnectionInfo} ConnectionInfo */
/** @typedef {import('./notify-client.js').NotificationClient} NotificationClient */
/** @typedef {import('./notify-client.js').NotificationClientOptions} NotificationClientOptions */
/** @typedef {import('./notify-client.js').NotificationClientSnapshot} NotificationClientSnapshot */
/** @typedef {import('./notify-client.js').NotificationMessage} NotificationMessage */
/** @typedef {import('./notify-client.js').ConnectedMessage} ConnectedMessage */
/** @typedef {import('./notify-client.js').StatusMessage} StatusMessage */
/** @typedef {import('./notify-client.js').NotificationErrorKind} NotificationErrorKind */
/** @typedef {import('./client/leader.js').TabMessage} TabMessage */

function randomId() {
  const c = /** @type {{crypto?: {randomUUID?: () => string}}} */ (globalThis).crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  return Math.random().toString(36).slice(2) + Date.now().toString(36);
}

/**
 * Creates the client and starts connecting (or joins the tabs' election).
 * @param {NotificationClientOptions} [options]
 * @returns {NotificationClient}
 */
export function createNotificationClient(options = {}) {
  const o = resolveOptions(options);

  const tabId = randomId();
  const dedupe = new Deduplicator(o.dedupeSize);

  /** @type {ConnectionState} */
  let state = 'connecting';
  /** @type {string | null} */
  let lastEventId = null;
  /** @type {NotificationMessage[]} */
  let notifications = [];
  /** @type {number | null} */
  let heartbeatInterval = null;
  /** @type {ConnectionInfo} */
  let info = emptyConnectionInfo();
  /** Stopped because sign-in is needed; reconnect() (or a leader coming back) revives. */
  let stopped = false;
  /** close() was called: final. */
  let disposed = false;

  /** @type {Set<() => void>} */
  const listeners = new Set();
  /**
   * Callbacks added with listen(): more parts of a page (an inbox element
   * beside the page's own code) hear the one client's messages.
   * @type {Set<import('./notify-client.js').ClientListeners>}
   */
  const messageListeners = new Set(o.onNotification || o.onConnected || o.onError || o.onStatus
    ? [{ onNotification: o.onNotification, onConnected: o.onConnected, onError: o.onError, onStatus: o.onStatus }]
    : []);

  /**
   * Calls one kind of callback of every listener.
   * @template {keyof import('./notify-client.js').ClientListeners} K
   * @param {K} kind
   * @param {Parameters<NonNullable<import('./notify-client.js').ClientListeners[K]>>[0]} arg
   */
  function emit(kind, arg) {
    for (const l of [...messageListeners]) safeCall(/** @type {any} */ (l[kind]), arg);
  }
  /** @type {NotificationClientSnapshot | null} */
  let snapshot = null;

  const api = createInboxApi({
    apiBase: inboxApiBase(o.url, o.apiUrl),
    withCredentials: o.withCredentials,
    fetch: o.fetch,
    lastEventId: () => lastEventId,
  });

  /** This tab holds the stream and is neither stopped nor closed. */
  const mayConnect = () => election.isLeader && !stopped && !disposed;

  const unread = new UnreadCounter({
    ...o.timers,
    fetchCount: api.fetchUnreadCount,
    active: () => election.isLeader && !disposed,
    onChange: (announce) => {
      if (election.isLeader) postState();
      if (announce) changed();
    },
  });

  const transport = new StreamTransport({
    url: o.url,
    withCredentials: o.withCredentials,
    EventSource: o.EventSource,
    ...o.timers,
    random: o.random,
    initialMs: o.initialMs,
    maxMs: o.maxMs,
    resetAfterMs: o.resetAfterMs,
    online: !o.startsOffline,
    resumeFrom: () => lastEventId,
    watchdogTimeoutMs: currentWatchdogTimeout,
    hooks: {
      mayConnect,
      closed: () => unread.stop(),
      opened: () => setState('open'),
      healthy: () => {
        setInfo({ reconnectAttempts: 0 });
        publish();
      },
      message: (data, id) => {
        election.post({ v: 1, from: tabId, kind: 'event', data, lastEventId: id });
        handleEvent(data, id, true);
      },
      retrying: (attempt) => {
        setInfo({ reconnectAttempts: attempt });
        publish('reconnecting');
      },
      failed: (kind, message, details) => reportError(kind, message, details),
      closing: () => setState('reconnecting'),
    },
  });

  const election = new TabElection({
    tabId,
    lockName: o.lockName,
    locks: o.locks,
    BroadcastChannel: o.BroadcastChannel,
    share: o.shareAcrossTabs,
    ...o.timers,
    pingTimeoutMs: o.pingTimeoutMs,
    leaderTimeoutMs: currentLeaderTimeout,
    hooks: {
      halted: () => stopped || disposed,
      disposed: () => disposed,
      elected: () => {
        setInfo({ isLeader: true });
        if (state === 'open') state = 'reconnecting';
        changed();
        postState();
        transport.connect();
      },
      deposed: () => {
        transport.clearRetry();
        transport.close();
        setInfo({ isLeader: false });
        changed();
      },
      fellBack: () => {
        setInfo({ isLeader: true });
        changed();
        transport.connect();
      },
      message: onTabMessage,
    },
  });

  function currentWatchdogTimeout() {
    return watchdogTimeout({ heartbeatTimeoutMs: o.heartbeatTimeoutMs, heartbeatInterval });
  }

  function currentLeaderTimeout() {
    if (typeof o.leaderTimeoutMs === 'number' && o.leaderTimeoutMs > 0) return o.leaderTimeoutMs;
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
    if (election.isLeader) postState();
  }

  function postState() {
    election.post({
      v: 1,
      from: tabId,
      kind: 'state',
      state,
      lastEventId,
      heartbeatInterval,
      reconnectAttempts: info.reconnectAttempts,
      unreadCount: unread.count,
      unreadHasMore: unread.hasMore,
    });
  }

  /**
   * @param {NotificationErrorKind} kind
   * @param {string} message
   * @param {{fatal?: boolean, retryInMs?: number | null, reason?: string, cause?: unknown}} [details]
   */
  function reportError(kind, message, details = {}) {
    const err = new NotificationStreamError(kind, message, details);
    if (election.isLeader && !details.fatal) {
      election.post({
        v: 1,
        from: tabId,
        kind: 'error',
        error: { kind, message, fatal: false, retryInMs: err.retryInMs, reason: details.reason },
      });
    }
    emit('onError', err);
  }

  /**
   * Sign-in needed: stop without retrying.
   * @param {string} reason
   * @param {string} message
   */
  function stop(reason, message) {
    if (stopped || disposed) return;
    stopped = true;
    transport.clearRetry();
    transport.close();
    if (election.leave()) setInfo({ isLeader: false });
    setState('closed');
    emit('onError', new NotificationStreamError('auth', message + ' — sign in again to receive notifications', { fatal: true, reason }));
  }

  // ---- messages ----------------------------------------------------------

  /**
   * One message of the stream, received by this tab (local) or relayed by the leader.
   * @param {unknown} raw
   * @param {string} eventId
   * @param {boolean} local
   */
  function handleEvent(raw, eventId, local) {
    const isLeader = election.isLeader;
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
          notifications = prependBounded(notifications, n, o.maxNotifications);
          // The server pushes only what counts as unread (not muted, or
          // critical); the holder of the stream counts it.
          if (local) unread.arrival();
          changed();
          emit('onNotification', n);
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
          connectedAt: typeof m.timestamp === 'number' ? m.timestamp : o.timers.now(),
          heartbeatInterval,
        });
        if (local) transport.heartbeatChanged();
        election.leaderTimeoutChanged();
        if (local) unread.connected(data, data.resumeFrom !== null && data.resumeFrom !== undefined);
        changed();
        emit('onConnected', m);
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
        const did = local ? unread.status(message.data) : false;
        const back = resurfaced(/** @type {StatusMessage} */ (message));
        if (back) notifications = prependBounded(notifications.filter((n) => n.notificationId !== back.notificationId), back, o.maxNotifications);
        if ((dirty && !did) || back) changed();
        emit('onStatus', /** @type {StatusMessage} */ (message));
        // A snooze that ended: the notification is back, unread, as a
        // notification again (it was delivered before, so the de-duplication
        // would drop it; it is not a repeat). The unread count came with the
        // status message.
        if (back) emit('onNotification', back);
        const closing = route.closing;
        if (closing) {
          if (closing.terminal) stop(closing.reason, closing.message);
          else if (local && election.isLeader) transport.reconnectAfterClosing(closing.reconnectAfter);
        }
        return;
      }
      default:
        if (dirty) changed();
    }
  }

  /** A message from another tab of this client (see TabMessage). @param {TabMessage} m */
  function onTabMessage(m) {
    const isLeader = election.isLeader;
    switch (m.kind) {
      case 'event':
        if (stopped) return;
        election.heard();
        handleEvent(m.data, m.lastEventId, false);
        return;
      case 'state':
        if (stopped) {
          // Someone signed in again: follow the new leader.
          if (m.state === 'open') revive();
          else return;
        }
        if (election.isLeader) return;
        election.heard();
        if (typeof m.lastEventId === 'string' && m.lastEventId !== lastEventId) lastEventId = m.lastEventId;
        if (typeof m.heartbeatInterval === 'number' && m.heartbeatInterval > 0) heartbeatInterval = m.heartbeatInterval;
        unread.adopt(m.unreadCount, m.unreadHasMore);
        setInfo({ reconnectAttempts: m.reconnectAttempts ?? 0, heartbeatInterval });
        if (state === m.state) changed();
        else setState(m.state === 'closed' ? 'reconnecting' : m.state);
        return;
      case 'error':
        if (stopped || isLeader) return;
        election.heard();
        emit(
          'onError',
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
    if (!mayConnect()) return;
    if (state === 'open') transport.checkAlive();
    else transport.connectIfWaiting(); // waiting for a retry: go now
  }

  function onOnline() {
    transport.online = true;
    if (!mayConnect()) return;
    if (state === 'open') {
      transport.checkAlive();
      return;
    }
    transport.resetBackoff();
    setInfo({ reconnectAttempts: 0 });
    transport.connect();
  }

  function onVisible() {
    if (stopped || disposed) return;
    if (election.isLeader) wake();
    else {
      election.post({ v: 1, from: tabId, kind: 'wake' });
      election.checkLeader();
    }
  }

  function explicitReconnect() {
    transport.resetBackoff();
    setInfo({ reconnectAttempts: 0 });
    publish(state === 'connecting' ? 'connecting' : 'reconnecting');
    transport.connect();
  }

  function revive() {
    if (!stopped || disposed) return;
    stopped = false;
    setState('connecting');
    if (election.shared) election.follow();
    else transport.connect();
  }

  // ---- start -------------------------------------------------------------

  const unwatchPage = watchPage({
    window: o.window,
    document: o.document,
    online: onOnline,
    offline: () => transport.wentOffline(),
    visible: onVisible,
  });

  if (election.shared) {
    election.follow();
  } else {
    election.leadAlone();
    setInfo({ isLeader: true });
    transport.connect();
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
      return unread.count;
    },
    get unreadHasMore() {
      return unread.hasMore;
    },
    markRead: api.markRead,
    markUnread: api.markUnread,
    markAllRead: api.markAllRead,
    markSeen: api.markSeen,
    archive: api.archive,
    unarchive: api.unarchive,
    snooze: api.snooze,
    interact: api.interact,
    fetchHistory: api.fetchHistory,
    fetchUnreadCount: api.fetchUnreadCount,
    getPreferences: api.getPreferences,
    setMutedModules: api.setMutedModules,
    reconnect() {
      if (disposed) return;
      if (stopped) revive();
      else if (election.isLeader) explicitReconnect();
      else {
        election.post({ v: 1, from: tabId, kind: 'reconnect' });
        election.checkLeader();
      }
    },
    close() {
      if (disposed) return;
      transport.clearRetry();
      unread.stop();
      transport.close();
      if (election.leave()) setInfo({ isLeader: false });
      disposed = true;
      unwatchPage();
      election.close();
      setInfo({ isLeader: false });
      state = 'closed';
      changed();
      listeners.clear();
      messageListeners.clear();
    },
    listen(callbacks) {
      const entry = { ...callbacks };
      messageListeners.add(entry);
      return () => {
        messageListeners.delete(entry);
      };
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
          unreadCount: unread.count,
          unreadHasMore: unread.hasMore,
        });
      }
      return snapshot;
    },
  };
  return client;
}

/**
 * The notification a status message brings back when the user's snooze of
 * it ended (data.change.action "unsnooze", data.notification), as a
 * notification message marked fromSnooze; null for any other status.
 * @param {StatusMessage} m
 * @returns {NotificationMessage | null}
 */
function resurfaced(m) {
  const d = m.data;
  const n = d && d.change && d.change.action === 'unsnooze' ? d.notification : null;
  if (!n || typeof n !== 'object' || typeof n.id !== 'string') return null;
  return { type: 'notification', notificationId: n.id, data: n, timestamp: m.timestamp, fromSnooze: true };
}
