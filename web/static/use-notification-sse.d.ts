// Types of /static/use-notification-sse.js, the React hook of the original design.

import type {
  ConnectionInfo,
  ConnectionState,
  HistoryPage,
  HistoryQuery,
  NotificationClientOptions,
  NotificationMessage,
  Preferences,
  UnreadCount,
} from './notify-client.js';

export type {
  ConnectedMessage,
  ConnectionInfo,
  ConnectionState,
  HistoryPage,
  HistoryQuery,
  InboxChange,
  InboxNotification,
  NotificationApiError,
  NotificationClientOptions,
  NotificationMessage,
  NotificationStreamError,
  Preferences,
  StatusMessage,
  UnreadCount,
} from './notify-client.js';

/** The parts of React the hook uses; the `react` module (>= 18) satisfies it. */
export interface ReactLike {
  useEffect(effect: () => void | (() => void), deps?: readonly unknown[]): void;
  useRef<T>(initialValue: T): { current: T };
  useState<S>(initialState: S | (() => S)): [S, (value: S | ((previous: S) => S)) => void];
  useSyncExternalStore?<T>(
    subscribe: (onStoreChange: () => void) => () => void,
    getSnapshot: () => T,
    getServerSnapshot?: () => T,
  ): T;
  useLayoutEffect?(effect: () => void | (() => void), deps?: readonly unknown[]): void;
  useInsertionEffect?(effect: () => void | (() => void), deps?: readonly unknown[]): void;
}

export interface UseNotificationSSEOptions extends NotificationClientOptions {
  /** False: no client (e.g. not signed in yet); state `closed`. Default true. */
  enabled?: boolean;
}

export interface UseNotificationSSEResult {
  /** `state === 'open'`. */
  isConnected: boolean;
  connectionInfo: Readonly<ConnectionInfo>;
  /** Reconnect now; stable across renders. */
  reconnect: () => void;
  /** The last `maxNotifications` notifications received, newest first. */
  notifications: readonly NotificationMessage[];
  state: ConnectionState;
  lastEventId: string | null;
  duplicatesSuppressed: number;
  /** The user's unread count (exact up to 99), null until known; the same in every tab. */
  unreadCount: number | null;
  /** More than 99 unread: show "99+". */
  unreadHasMore: boolean;
  // The inbox calls: stable across renders; they reject while no client runs (enabled: false).
  markRead: (id: string) => Promise<void>;
  markUnread: (id: string) => Promise<void>;
  /** Up to `upTo`, default the last event id seen. Resolves to the seq used (null: nothing to mark). */
  markAllRead: (upTo?: number | string | null) => Promise<number | null>;
  fetchHistory: (query?: HistoryQuery) => Promise<HistoryPage>;
  fetchUnreadCount: () => Promise<UnreadCount>;
  getPreferences: () => Promise<Preferences>;
  setMutedModules: (modules: readonly string[]) => Promise<Preferences>;
  /** Everything up to `upTo` seen (resets the unseen badge). */
  markSeen: (upTo: number | string) => Promise<void>;
  archive: (id: string) => Promise<void>;
  unarchive: (id: string) => Promise<void>;
  /** Hidden until `until`, then back as unread. */
  snooze: (id: string, until: Date | string) => Promise<void>;
  /** A click on one of the notification's actions (marks it read). */
  interact: (id: string, action: string) => Promise<void>;
}

export type UseNotificationSSE = (options?: UseNotificationSSEOptions) => UseNotificationSSEResult;

/** The hook bound to the given React (cached per React object). */
export declare function createUseNotificationSSE(React: ReactLike): UseNotificationSSE;

/** The hook bound to `globalThis.React`; throws if it is not set. */
export declare function useNotificationSSE(options?: UseNotificationSSEOptions): UseNotificationSSEResult;

export default useNotificationSSE;
