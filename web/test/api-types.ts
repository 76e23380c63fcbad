// Compile-time checks of the public types (run by `npx tsc -p web`); never executed.
import {
  createNotificationClient,
  NotificationApiError,
  type ConnectionState,
  type HistoryPage,
  type InboxNotification,
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

// The inbox: the count and the calls.
const count: number | null = client.unreadCount;
const more: boolean = client.getSnapshot().unreadHasMore;
void [count, more];
async function inbox(): Promise<void> {
  await client.markRead('id');
  await client.markUnread('id');
  const upTo: number | null = await client.markAllRead();
  await client.markAllRead(42);
  const page: HistoryPage = await client.fetchHistory({ before: 23, limit: 20, unread: true, module: 'orders', severity: 'high' });
  const first: InboxNotification | undefined = page.notifications[0];
  const read: boolean | undefined = first?.read;
  const cursor: number | null = page.nextCursor;
  const { count: c, hasMore } = await client.fetchUnreadCount();
  const muted: string[] = (await client.setMutedModules(['billing'])).mutedModules;
  (await client.getPreferences()).mutedModules satisfies string[];
  // @ts-expect-error severity must be one of the four
  await client.fetchHistory({ severity: 'urgent' });
  void [upTo, read, cursor, c, hasMore, muted];
  try {
    await client.markRead('x');
  } catch (e) {
    if (e instanceof NotificationApiError) void (e.status satisfies number);
  }
}
void inbox;
createNotificationClient({ apiUrl: '/api/notifications', fetch: (url, init) => window.fetch(url, init) });
createNotificationClient({ onStatus: (m) => void (m.data.change?.action satisfies string | undefined) });

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
  const { unreadCount, unreadHasMore, markRead, markAllRead, fetchHistory, setMutedModules } = useSSE();
  const badge: string = unreadCount === null ? '' : unreadHasMore ? `${unreadCount}+` : String(unreadCount);
  void [badge, markRead('x') satisfies Promise<void>, markAllRead() satisfies Promise<number | null>, fetchHistory({ limit: 5 }), setMutedModules([])];
  return null;
}
void Bell;
void [useNotificationSSE satisfies typeof defaultHook];
