// Types of /static/notify-inbox.js, the <notify-inbox> custom element.

import type {
  InboxNotification,
  NotificationAction,
  NotificationClient,
  NotificationMessage,
} from './notify-client.js';

export type { InboxNotification, NotificationAction, NotificationClient, NotificationMessage } from './notify-client.js';

/** `detail` of `notify-unread`: the badge's numbers (null until the server has said). */
export interface NotifyInboxUnreadDetail {
  count: number | null;
  hasMore: boolean;
  unseen: number | null;
  unseenHasMore: boolean;
}

/** `detail` of `notify-action` (cancelable: the default follows `action.url`). */
export interface NotifyInboxActionDetail {
  notification: InboxNotification;
  action: NotificationAction;
}

export interface NotifyInboxEventMap extends HTMLElementEventMap {
  'notify-open': CustomEvent<Record<string, never>>;
  'notify-close': CustomEvent<Record<string, never>>;
  /** A live notification (once per notificationId). */
  'notify-notification': CustomEvent<{ message: NotificationMessage }>;
  'notify-action': CustomEvent<NotifyInboxActionDetail>;
  /** A history page or an inbox call failed. */
  'notify-error': CustomEvent<{ error: unknown }>;
  'notify-unread': CustomEvent<NotifyInboxUnreadDetail>;
}

/**
 * `<notify-inbox>`: bell, unread badge, popover inbox and toasts.
 *
 * Attributes: `url` (the stream, default `/api/notifications/ws`), `api` (the inbox API, default
 * `url` without `/ws`), `with-credentials` (send cookies cross-origin), `theme` (`light` or `dark`;
 * default: the browser's `prefers-color-scheme`), `align="start"` (the popover opens to the right),
 * `page-size` (1–100, default 20), `no-toasts`.
 * Reflected for styling and tests: `data-unread`, `data-unseen`.
 * Theming: the `--notify-inbox-*` custom properties (bg, fg, muted, border, hover, unread-bg, accent,
 * accent-fg, badge-bg, badge-fg, badge-seen-bg, badge-ring, high, critical, bell-color, bell-hover, shadow, radius, width,
 * max-height, z-index, font) and the parts `bell`, `badge`, `panel`, `item`, `toasts`, `toast`,
 * `empty`, `error`.
 */
export declare class NotifyInboxElement extends HTMLElement {
  static readonly observedAttributes: string[];
  /**
   * The client in use; assign a page's client (before the element is connected, or it restarts on it)
   * to share it. The element closes only a client it made itself.
   */
  client: NotificationClient | null;
  readonly url: string;
  readonly api: string | undefined;
  readonly withCredentials: boolean;
  readonly pageSize: number;
  /** Whether the popover is open. */
  readonly isOpen: boolean;
  /** Opens the popover (loads the first page, marks what it shows seen). */
  open(): void;
  /** Closes the popover; focus returns to the bell unless `restoreFocus` is false. */
  close(restoreFocus?: boolean): void;
  /** Marks everything up to the newest known notification read. */
  markAllRead(): Promise<void>;
  addEventListener<K extends keyof NotifyInboxEventMap>(
    type: K,
    listener: (this: NotifyInboxElement, ev: NotifyInboxEventMap[K]) => any,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof NotifyInboxEventMap>(
    type: K,
    listener: (this: NotifyInboxElement, ev: NotifyInboxEventMap[K]) => any,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | EventListenerOptions): void;
}

declare global {
  interface HTMLElementTagNameMap {
    'notify-inbox': NotifyInboxElement;
  }
}
