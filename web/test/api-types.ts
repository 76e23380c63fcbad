// Compile-time checks of the public types (run by `npx tsc -p web`); never executed.
import {
  createNotificationClient,
  type ConnectionState,
  type NotificationClient,
  type NotificationMessage,
  type NotificationStreamError,
} from '@notifyd/client';
import defaultHook, { createUseNotificationSSE, useNotificationSSE } from '@notifyd/client/react';
import * as React from 'react';

// The browser's own classes satisfy the injected-dependency types.
const client: NotificationClient = createNotificationClient({
  url: '/api/notifications/ws',
  withCredentials: true,
  onNotification: (m: NotificationMessage) => {
    const sev: 'low' | 'medium' | 'high' | 'critical' = m.data.severity;
    const id: string = m.notificationId;
    const seq: number = m.data.seq;
    void [sev, id, seq];
  },
  onConnected: (m) => void (m.data.heartbeatInterval satisfies number),
  onError: (e: NotificationStreamError) => void (e.fatal satisfies boolean),
  onStatus: (m) => void (m.data.closing satisfies string | undefined),
  maxNotifications: 50,
  heartbeatTimeoutMs: 30000,
  backoff: { initialMs: 500, maxMs: 10000, resetAfterMs: 30000 },
  dedupeSize: 500,
  shareAcrossTabs: true,
  EventSource,
  BroadcastChannel,
  locks: navigator.locks,
  navigator,
  window,
  document,
  setTimeout: (fn, ms) => window.setTimeout(fn, ms),
  clearTimeout: (h) => window.clearTimeout(h),
  random: Math.random,
  now: Date.now,
});
const state: ConnectionState = client.state;
const last: string | null = client.lastEventId;
const leader: boolean = client.connectionInfo.isLeader;
const n: number = client.duplicatesSuppressed + client.notifications.length;
client.reconnect();
client.close();
void [state, last, leader, n];

// @ts-expect-error state is read-only
client.state = 'open';
// @ts-expect-error unknown option
createNotificationClient({ urll: '/x' });

// The hook accepts the real React module.
const useSSE = createUseNotificationSSE(React);
function Bell() {
  const { isConnected, connectionInfo, reconnect, notifications, state, lastEventId } = useSSE({
    onNotification: (m) => void m.data.message,
  });
  const ok: boolean = isConnected && state === 'open' && connectionInfo.roles.length >= 0;
  void [ok, reconnect satisfies () => void, notifications[0]?.data.id, lastEventId];
  return null;
}
void Bell;
void [useNotificationSSE satisfies typeof defaultHook];
