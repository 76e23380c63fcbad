// Types of /static/notify-inbox-react.js, the React wrapper of <notify-inbox>.

import type { NotificationClient, NotificationMessage } from './notify-client.js';
import type { NotifyInboxActionDetail, NotifyInboxUnreadDetail } from './notify-inbox.js';

export type { NotifyInboxActionDetail, NotifyInboxUnreadDetail } from './notify-inbox.js';

/** The parts of React the wrapper uses; the `react` module (>= 18) satisfies it. */
export interface ReactLike {
  createElement(type: string, props: Record<string, unknown> | null, ...children: unknown[]): unknown;
  useRef<T>(initialValue: T): { current: T };
  useEffect(effect: () => void | (() => void), deps?: readonly unknown[]): void;
  useLayoutEffect?(effect: () => void | (() => void), deps?: readonly unknown[]): void;
}

export interface NotifyInboxProps {
  /** The stream. Default `/api/notifications/ws`. */
  url?: string;
  /** The inbox API. Default `url` without `/ws`. */
  api?: string;
  /** Send cookies cross-origin. */
  withCredentials?: boolean;
  /** Default: the browser's `prefers-color-scheme`. */
  theme?: 'light' | 'dark';
  /** `start`: the popover opens to the right of the bell. Default `end`. */
  align?: 'start' | 'end';
  /** History page size, 1–100 (default 20). */
  pageSize?: number;
  /** False: no toasts for high and critical notifications. Default true. */
  toasts?: boolean;
  /** A client the app already has (the element then does not make its own nor close it). */
  client?: NotificationClient | null;
  id?: string;
  className?: string;
  /** Set `--notify-inbox-*` custom properties here to theme it. */
  style?: Record<string, string | number>;
  onOpen?: (detail: Record<string, never>, event: CustomEvent) => void;
  onClose?: (detail: Record<string, never>, event: CustomEvent) => void;
  onNotification?: (detail: { message: NotificationMessage }, event: CustomEvent) => void;
  /** An action button was clicked; `event.preventDefault()` keeps the element from following `action.url`. */
  onAction?: (detail: NotifyInboxActionDetail, event: CustomEvent) => void;
  onError?: (detail: { error: unknown }, event: CustomEvent) => void;
  onUnreadChange?: (detail: NotifyInboxUnreadDetail, event: CustomEvent) => void;
}

/** The element's events and the props that hear them. */
export declare const EVENT_PROPS: Readonly<Record<string, keyof NotifyInboxProps>>;

/** The element's attributes for these props. */
export declare function inboxAttributes(props: NotifyInboxProps): Record<string, string | undefined>;

/** The component bound to the given React (cached per React object). */
export declare function createNotifyInbox(React: ReactLike): (props: NotifyInboxProps) => unknown;

/** The component bound to `globalThis.React`; throws if it is not set. */
export declare function NotifyInbox(props: NotifyInboxProps): unknown;

export default NotifyInbox;
