// The React hook of the original design, on top of notify-client.js.
//
// React is the app's and there is no bundler, so this module never imports
// 'react' itself. Two ways in:
//
//   // 1. with the app's React in hand (an import map mapping 'react', a bundler, …):
//   import * as React from 'react';
//   import { createUseNotificationSSE } from '/static/use-notification-sse.js';
//   const useNotificationSSE = createUseNotificationSSE(React);
//
//   // 2. with React loaded as a global (UMD build, window.React):
//   import { useNotificationSSE } from '/static/use-notification-sse.js';
//
//   function Bell() {
//     const { isConnected, unreadCount, unreadHasMore, markAllRead } = useNotificationSSE({
//       onNotification: (m) => toast(m.data.message),
//     });
//     …
//   }
//
// The unread count comes with every render (from the client's snapshot); the
// inbox calls (markRead, markAllRead, fetchHistory, setMutedModules …) are
// functions stable across renders that use the current client.
//
// Callbacks are held in refs: changing them does not reconnect. One client per
// mounted component, created in an effect and closed in its cleanup, so
// StrictMode's mount → unmount → mount ends with exactly one open client. The
// client is re-created only when a connection setting (url, withCredentials,
// backoff numbers, …) changes value, or `enabled` toggles; injected
// dependencies (EventSource, timers, …) are read when it is created.
//
// Types: use-notification-sse.d.ts.

import { createNotificationClient } from './notify-client.js';
import { emptyConnectionInfo } from './client/received.js';

/** @typedef {import('./use-notification-sse.js').ReactLike} ReactLike */
/** @typedef {import('./use-notification-sse.js').UseNotificationSSE} UseNotificationSSE */
/** @typedef {import('./use-notification-sse.js').UseNotificationSSEOptions} UseNotificationSSEOptions */
/** @typedef {import('./use-notification-sse.js').UseNotificationSSEResult} UseNotificationSSEResult */
/** @typedef {import('./notify-client.js').NotificationClient} NotificationClient */
/** @typedef {import('./notify-client.js').NotificationClientSnapshot} NotificationClientSnapshot */
/** @typedef {import('./notify-client.js').NotificationClientOptions} NotificationClientOptions */
/**
 * @typedef {Pick<UseNotificationSSEResult, 'reconnect' | 'markRead' | 'markUnread' | 'markAllRead' |
 *   'fetchHistory' | 'fetchUnreadCount' | 'getPreferences' | 'setMutedModules' | 'markSeen' | 'archive' |
 *   'unarchive' | 'snooze' | 'interact'>} HookActions
 */

/**
 * @param {import('./notify-client.js').ConnectionState} state
 * @returns {NotificationClientSnapshot}
 */
function initialSnapshot(state) {
  return Object.freeze({
    state,
    isConnected: false,
    lastEventId: null,
    connectionInfo: Object.freeze(emptyConnectionInfo()),
    notifications: Object.freeze([]),
    duplicatesSuppressed: 0,
    unreadCount: null,
    unreadHasMore: false,
  });
}

/** What the inbox calls reject with while no client runs (disabled, or before the first effect). */
function notRunning() {
  return Promise.reject(new Error('useNotificationSSE: no client is running (enabled is false, or the component is not mounted)'));
}

// Stable objects: useSyncExternalStore requires getSnapshot to be pure.
const BEFORE_CONNECT = initialSnapshot('connecting');
const DISABLED = initialSnapshot('closed');

/**
 * The settings whose change re-creates the client (values, not identities).
 * @param {NotificationClientOptions} o
 */
function clientKey(o) {
  const b = o.backoff || {};
  return JSON.stringify([
    o.url ?? null,
    o.withCredentials ?? null,
    o.maxNotifications ?? null,
    o.heartbeatTimeoutMs ?? null,
    b.initialMs ?? null,
    b.maxMs ?? null,
    b.resetAfterMs ?? null,
    o.dedupeSize ?? null,
    o.shareAcrossTabs ?? null,
    o.lockName ?? null,
    o.leaderTimeoutMs ?? null,
    o.pingTimeoutMs ?? null,
  ]);
}

/** @type {WeakMap<object, UseNotificationSSE>} */
const hooks = new WeakMap();

/**
 * Builds the hook for the app's React (>= 18; 16.8+ works without useSyncExternalStore).
 * @param {ReactLike} React
 * @returns {UseNotificationSSE}
 */
export function createUseNotificationSSE(React) {
  if (!React || typeof React.useEffect !== 'function' || typeof React.useRef !== 'function' || typeof React.useState !== 'function') {
    throw new TypeError('createUseNotificationSSE: pass the React module (with useEffect, useRef and useState)');
  }
  const cached = hooks.get(React);
  if (cached) return cached;

  const { useEffect, useRef, useState, useSyncExternalStore } = React;
  const useCallbackRefUpdate = React.useInsertionEffect ?? React.useLayoutEffect ?? useEffect;

  /**
   * @param {NotificationClient | null} client
   * @param {NotificationClientSnapshot} fallback
   * @returns {NotificationClientSnapshot}
   */
  function useClientSnapshot(client, fallback) {
    if (typeof useSyncExternalStore === 'function') {
      // Memoised per client so React does not resubscribe on every render.
      const fns = useRef(/** @type {{client: NotificationClient | null, fallback: NotificationClientSnapshot, subscribe: (cb: () => void) => () => void, get: () => NotificationClientSnapshot} | null} */ (null));
      if (!fns.current || fns.current.client !== client || fns.current.fallback !== fallback) {
        fns.current = {
          client,
          fallback,
          subscribe: client ? (cb) => client.subscribe(cb) : () => () => {},
          get: client ? () => client.getSnapshot() : () => fallback,
        };
      }
      return useSyncExternalStore(fns.current.subscribe, fns.current.get, fns.current.get);
    }
    const [, setTick] = useState(0);
    useEffect(() => {
      if (!client) return undefined;
      const unsubscribe = client.subscribe(() => setTick((n) => n + 1));
      setTick((n) => n + 1); // catch up with changes made before subscribing
      return unsubscribe;
    }, [client]);
    return client ? client.getSnapshot() : fallback;
  }

  /**
   * @param {UseNotificationSSEOptions} [options]
   * @returns {UseNotificationSSEResult}
   */
  function useNotificationSSE(options = {}) {
    const { onNotification, onConnected, onError, onStatus, enabled = true, ...clientOptions } = options;

    const callbacks = useRef({ onNotification, onConnected, onError, onStatus });
    useCallbackRefUpdate(() => {
      callbacks.current = { onNotification, onConnected, onError, onStatus };
    });
    const latestOptions = useRef(clientOptions);
    latestOptions.current = clientOptions;

    const key = enabled ? clientKey(clientOptions) : null;
    const [client, setClient] = useState(/** @type {NotificationClient | null} */ (null));
    const clientRef = useRef(/** @type {NotificationClient | null} */ (null));

    useEffect(() => {
      if (key === null) return undefined;
      const c = createNotificationClient({
        ...latestOptions.current,
        onNotification: (m) => callbacks.current.onNotification?.(m),
        onConnected: (m) => callbacks.current.onConnected?.(m),
        onError: (e) => callbacks.current.onError?.(e),
        onStatus: (m) => callbacks.current.onStatus?.(m),
      });
      clientRef.current = c;
      setClient(c);
      return () => {
        c.close();
        if (clientRef.current === c) clientRef.current = null;
        setClient((current) => (current === c ? null : current));
      };
    }, [key]);

    const snapshot = useClientSnapshot(client, enabled ? BEFORE_CONNECT : DISABLED);

    // Functions stable across renders: they call whichever client is current.
    const actionsRef = useRef(/** @type {HookActions | null} */ (null));
    if (!actionsRef.current) {
      const current = () => clientRef.current;
      actionsRef.current = {
        reconnect: () => current()?.reconnect(),
        markRead: (id) => current()?.markRead(id) ?? notRunning(),
        markUnread: (id) => current()?.markUnread(id) ?? notRunning(),
        markAllRead: (upTo) => current()?.markAllRead(upTo) ?? notRunning(),
        fetchHistory: (query) => current()?.fetchHistory(query) ?? notRunning(),
        fetchUnreadCount: () => current()?.fetchUnreadCount() ?? notRunning(),
        getPreferences: () => current()?.getPreferences() ?? notRunning(),
        setMutedModules: (modules) => current()?.setMutedModules(modules) ?? notRunning(),
        markSeen: (upTo) => current()?.markSeen(upTo) ?? notRunning(),
        archive: (id) => current()?.archive(id) ?? notRunning(),
        unarchive: (id) => current()?.unarchive(id) ?? notRunning(),
        snooze: (id, until) => current()?.snooze(id, until) ?? notRunning(),
        interact: (id, action) => current()?.interact(id, action) ?? notRunning(),
      };
    }
    const actions = actionsRef.current;

    return {
      isConnected: snapshot.state === 'open',
      connectionInfo: snapshot.connectionInfo,
      reconnect: actions.reconnect,
      notifications: snapshot.notifications,
      state: snapshot.state,
      lastEventId: snapshot.lastEventId,
      duplicatesSuppressed: snapshot.duplicatesSuppressed,
      unreadCount: snapshot.unreadCount,
      unreadHasMore: snapshot.unreadHasMore,
      markRead: actions.markRead,
      markUnread: actions.markUnread,
      markAllRead: actions.markAllRead,
      fetchHistory: actions.fetchHistory,
      fetchUnreadCount: actions.fetchUnreadCount,
      getPreferences: actions.getPreferences,
      setMutedModules: actions.setMutedModules,
      markSeen: actions.markSeen,
      archive: actions.archive,
      unarchive: actions.unarchive,
      snooze: actions.snooze,
      interact: actions.interact,
    };
  }

  hooks.set(React, useNotificationSSE);
  return useNotificationSSE;
}

/**
 * The hook bound to `globalThis.React` (looked up at call time). Apps that
 * import React as a module use createUseNotificationSSE(React) instead.
 * @param {UseNotificationSSEOptions} [options]
 * @returns {UseNotificationSSEResult}
 */
export function useNotificationSSE(options) {
  const React = /** @type {{React?: ReactLike}} */ (globalThis).React;
  if (!React) {
    throw new Error(
      'useNotificationSSE: globalThis.React is not set; use createUseNotificationSSE(React) with the app\'s React',
    );
  }
  return createUseNotificationSSE(React)(options);
}

export default useNotificationSSE;
