// Types of /static/use-notification-sse.js, the React hook of the original design.

import type {
  ConnectionInfo,
  ConnectionState,
  NotificationClientOptions,
  NotificationMessage,
} from './notify-client.js';

export type {
  ConnectedMessage,
  ConnectionInfo,
  ConnectionState,
  NotificationClientOptions,
  NotificationMessage,
  NotificationStreamError,
  StatusMessage,
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
}

export type UseNotificationSSE = (options?: UseNotificationSSEOptions) => UseNotificationSSEResult;

/** The hook bound to the given React (cached per React object). */
export declare function createUseNotificationSSE(React: ReactLike): UseNotificationSSE;

/** The hook bound to `globalThis.React`; throws if it is not set. */
export declare function useNotificationSSE(options?: UseNotificationSSEOptions): UseNotificationSSEResult;

export default useNotificationSSE;
