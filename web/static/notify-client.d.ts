// Types of /static/notify-client.js, the notifyd browser client.
// The message shapes follow CONTRACT.md ("The stream").

/** The client's connection state. */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export type Severity = 'low' | 'medium' | 'high' | 'critical';

/** `data` of a notification message: the notification as the server stores it. */
export interface NotificationData {
  /** The notificationId (uuid). */
  id: string;
  /** Position in the stream; also the SSE event id. */
  seq: number;
  message: string;
  severity: Severity;
  module: string | null;
  actionType: string | null;
  details: string | null;
  /** The free payload (`notify.notifications.data`). */
  data: Record<string, unknown>;
  targetUserId: string | null;
  targetRoles: string[] | null;
  /** RFC 3339 time. */
  createdAt: string;
  /** A newer notification with the same key (and targets) supersedes this one in the inbox. */
  collapseKey?: string;
  /** RFC 3339 time after which it is neither delivered, listed nor counted. */
  expiresAt?: string;
  /** Buttons to show (1 to 5); a click is recorded with `interact(id, action.id)`. */
  actions?: NotificationAction[];
}

/** A button of a notification. */
export interface NotificationAction {
  id: string;
  label: string;
  /** Where the button leads, if anywhere. */
  url?: string;
}

interface MessageBase {
  userId?: string;
  userRole?: string;
  /** Milliseconds since the epoch (server clock). */
  timestamp: number;
}

/** A notification; what `onNotification` receives, once per `notificationId`. */
export interface NotificationMessage extends MessageBase {
  type: 'notification';
  notificationId: string;
  data: NotificationData;
  /**
   * Set on a notification brought back by the end of the user's snooze of it
   * (a status message with `data.change.action` "unsnooze"): shown again,
   * unread. onNotification gets it although it was delivered before.
   */
  fromSnooze?: boolean;
}

/** The first message of every stream. */
export interface ConnectedMessage extends MessageBase {
  type: 'connected';
  data: {
    connectionId: number | string;
    roles: string[] | null;
    /** The resume point the server used, or null for a fresh stream. */
    resumeFrom: number | null;
    /** The server's heartbeat interval in milliseconds. */
    heartbeatInterval: number;
    /** The user's unread count when the stream opened (exact up to 99); null if the server could not say. */
    unreadCount?: number | null;
    /** More unread than `unreadCount` (which is then 99): show "99+". */
    hasMore?: boolean;
    [key: string]: unknown;
  };
}

export interface HeartbeatMessage extends MessageBase {
  type: 'heartbeat';
  data?: unknown;
}

/** Why the server is ending a stream (`status` message, `data.closing`). */
export type ClosingReason = 'shutdown' | 'slow' | 'expired' | 'logout' | (string & {});

export interface StatusData {
  /** Present when the server is ending this stream. `expired` and `logout` mean: sign in again. */
  closing?: ClosingReason;
  message?: string;
  /**
   * `truncated`: the resume point was older than the retained history; `ahead`: newer than the server's;
   * `lost`: it was numbered on a history the database no longer has (a restore, a failover): the client
   * saw notifications that are gone; it resumes from `lastSeq`, the next seq being `nextSeq`.
   */
  replay?: 'truncated' | 'ahead' | 'lost' | (string & {});
  resumeFrom?: number;
  oldestAvailable?: number;
  /** With `ahead` and `lost`: the position to resume from (the client library takes it as its last event id). */
  lastSeq?: number;
  /** With `lost`: the first seq of the database's new history. */
  nextSeq?: number;
  /** With `lost`: sent on a live stream (its node met the new history after a failover), not in answer to a resume. */
  live?: boolean;
  /** Sent to a user's streams when their inbox (read state, seen, archive, snooze, mutes) changes: the unread count now (exact up to 99). */
  unreadCount?: number;
  /** More unread than `unreadCount` (99): "99+". */
  hasMore?: boolean;
  /** Unread ones above the user's seen mark (exact up to 99). */
  unseenCount?: number;
  /** More unseen than `unseenCount` (99). */
  unseenHasMore?: boolean;
  /** The seq the counts run through. */
  countedThrough?: number;
  /** With `change.action` `unsnooze`: the notification back from its snooze, as a notification message's `data`. */
  notification?: NotificationData;
  /** What changed (with `unreadCount`). */
  change?: InboxChange;
  [key: string]: unknown;
}

/** `data.change` of a status message: a read-state or mute change made on any of the user's devices. */
export interface InboxChange {
  action:
    | 'read'
    | 'unread'
    | 'read-all'
    | 'preferences'
    | 'seen'
    | 'archive'
    | 'unarchive'
    | 'snooze'
    | 'unsnooze'
    | 'interact'
    | (string & {});
  /** For the changes of one notification (read, unread, archive, unarchive, snooze, unsnooze, interact). */
  notificationId?: string;
  /** The notification's seq; read-all and seen: the watermark now in force (everything up to it is read, or seen). */
  seq?: number;
}

export interface StatusMessage extends MessageBase {
  type: 'status';
  data: StatusData;
}

/** Any message of the stream. */
export type StreamMessage = NotificationMessage | ConnectedMessage | HeartbeatMessage | StatusMessage;

export interface ConnectionInfo {
  /** The server's id of the stream (shared by every tab when one tab holds it). */
  connectionId: number | string | null;
  userId: string | null;
  roles: string[];
  /** When the current stream's `connected` message was sent (ms since the epoch), or null. */
  connectedAt: number | null;
  /** Consecutive failed attempts not yet forgiven by a healthy period. */
  reconnectAttempts: number;
  /** Whether this tab holds the stream (always true without tab sharing). */
  isLeader: boolean;
  /** The server's heartbeat interval (ms), once known. */
  heartbeatInterval: number | null;
}

export type NotificationErrorKind =
  /** The stream broke (network loss, server gone) after having opened, or an attempt failed. */
  | 'network'
  /** EventSource gave up without opening: a non-200 answer (401, 403, 503 …), a wrong content type, CORS. */
  | 'rejected'
  /** No message for the heartbeat timeout: the connection is considered dead. */
  | 'heartbeat'
  /** The server said the session ended (`closing`: `expired` or `logout`): the client stopped. */
  | 'auth'
  /** A message that is not a notifyd message. */
  | 'protocol';

/** What `onError` receives. */
export declare class NotificationStreamError extends Error {
  constructor(
    kind: NotificationErrorKind,
    message: string,
    details?: { fatal?: boolean; retryInMs?: number | null; reason?: string; cause?: unknown },
  );
  readonly name: 'NotificationStreamError';
  readonly kind: NotificationErrorKind;
  /** True when the client has stopped (state `closed`) and will not retry by itself. */
  readonly fatal: boolean;
  /** When the next attempt is due, or null (stopped, offline, or no retry involved). */
  readonly retryInMs: number | null;
  /** The server's `closing` reason, for kind `auth`. */
  readonly reason?: string;
  readonly cause?: unknown;
}

/** What the inbox API calls (markRead, fetchHistory …) reject with. */
export declare class NotificationApiError extends Error {
  constructor(message: string, details?: { status?: number; method?: string; url?: string; body?: unknown; cause?: unknown });
  readonly name: 'NotificationApiError';
  /** The HTTP status (400, 401, 403, 404 …), or 0 when the server could not be reached. */
  readonly status: number;
  readonly method: string;
  readonly url: string;
  /** The server's JSON answer (`{"error": …}`), if any. */
  readonly body: unknown;
  readonly cause?: unknown;
}

/** A notification of the user's inbox (GET /api/notifications). */
export interface InboxNotification extends NotificationData {
  read: boolean;
  /** RFC 3339 time it was read, or null. */
  readAt: string | null;
  /** At or below the user's seen mark. */
  seen?: boolean;
  archived?: boolean;
  archivedAt?: string | null;
  /** When one of its actions was clicked, and which. */
  interactedAt?: string | null;
  interaction?: string | null;
}

/** Filters and cursor of `fetchHistory`. */
export interface HistoryQuery {
  /** Only notifications older than this seq: the previous page's `nextCursor`. */
  before?: number | null;
  /** Page size, 1 to 100. Server default 20. */
  limit?: number;
  /** Only unread ones. */
  unread?: boolean;
  module?: string;
  severity?: Severity;
  /** true: archived ones too; 'only': only archived ones. Default: archived ones are left out. */
  archived?: boolean | 'only';
}

export interface HistoryPage {
  /** Newest first. */
  notifications: InboxNotification[];
  /** Pass as `before` for the next (older) page; null on the last page. */
  nextCursor: number | null;
}

export interface UnreadCount {
  /** Exact up to 99. */
  count: number;
  /** More than 99 ("99+"). */
  hasMore: boolean;
  /** Unread ones above the seen mark, exact up to 99 (servers with the seen mark). */
  unseen?: number;
  unseenHasMore?: boolean;
  /** The seq the counts run through. */
  countedThrough?: number;
}

/** Callbacks of `listen()`: the same as the options' callbacks. */
export interface ClientListeners {
  onNotification?: (message: NotificationMessage) => void;
  onConnected?: (message: ConnectedMessage) => void;
  onError?: (error: NotificationStreamError) => void;
  onStatus?: (message: StatusMessage) => void;
}

export interface Preferences {
  /** Modules whose notifications (except critical ones) are not pushed live nor counted unread. */
  mutedModules: string[];
}

/** The parts of `fetch` the client uses. */
export type FetchLike = (
  url: string,
  init: { method: string; credentials: 'include' | 'same-origin'; headers: Record<string, string>; body?: string },
) => Promise<{
  readonly ok: boolean;
  readonly status: number;
  readonly statusText?: string;
  json(): Promise<any>;
}>;

export interface BackoffOptions {
  /** First ceiling of the full-jitter delay. Default 1000. */
  initialMs?: number;
  /** Largest ceiling. Default 30000. */
  maxMs?: number;
  /** Failures are forgotten once a connection stays open this long. Default 60000. */
  resetAfterMs?: number;
}

/** The parts of an `EventSource` the client uses. */
export interface EventSourceLike {
  readonly readyState: number;
  onopen: ((event: any) => any) | null;
  onmessage: ((event: any) => any) | null;
  onerror: ((event: any) => any) | null;
  close(): void;
}

export type EventSourceConstructorLike = new (url: string, init?: { withCredentials?: boolean }) => EventSourceLike;

/** The parts of the Web Locks API the client uses (`navigator.locks`). */
export interface LockManagerLike {
  request(
    name: string,
    options: { signal?: AbortSignal; steal?: boolean; mode?: 'exclusive' | 'shared'; ifAvailable?: boolean },
    callback: (lock: any) => any,
  ): Promise<any>;
}

export interface BroadcastChannelLike {
  onmessage: ((event: any) => any) | null;
  postMessage(message: any): void;
  close(): void;
}

export type BroadcastChannelConstructorLike = new (name: string) => BroadcastChannelLike;

/** A `window`-like target for `online`, `offline` and `pageshow`. */
export interface EventTargetLike {
  addEventListener(type: string, listener: (event: any) => void): void;
  removeEventListener(type: string, listener: (event: any) => void): void;
}

/** A `document`-like target for `visibilitychange`. */
export interface DocumentLike extends EventTargetLike {
  readonly visibilityState?: string;
}

export interface NavigatorLike {
  readonly onLine?: boolean;
  readonly locks?: LockManagerLike;
}

export interface NotificationClientOptions {
  /** The stream. Default `/api/notifications/ws`. */
  url?: string;
  /** The inbox API (history, read state, preferences). Default: `url` without its `/ws` and query, `/api/notifications`. */
  apiUrl?: string;
  /** Send cookies cross-origin (the server must list the origin), on the stream and the inbox calls (fetch `credentials: 'include'`, else `'same-origin'`). Default true. */
  withCredentials?: boolean;
  /** Each notification, once per `notificationId` (per tab). */
  onNotification?: (message: NotificationMessage) => void;
  /** Each `connected` message (every (re)connection of the shared stream). */
  onConnected?: (message: ConnectedMessage) => void;
  /** Connection problems; `error.fatal` when the client stopped (sign-in needed). */
  onError?: (error: NotificationStreamError) => void;
  /** Every `status` message (closing, replay truncated, unread count …). */
  onStatus?: (message: StatusMessage) => void;
  /** How many received notifications `notifications` keeps (newest first). Default 100. */
  maxNotifications?: number;
  /** Dead-connection timeout; default twice the server's heartbeat interval (30 s before it is known). */
  heartbeatTimeoutMs?: number;
  backoff?: BackoffOptions;
  /** How many notification ids are remembered for de-duplication. Default 1000. */
  dedupeSize?: number;
  /** One stream per browser: tabs elect a leader (Web Locks + BroadcastChannel). Default true. */
  shareAcrossTabs?: boolean;
  /** Name of the Web Lock and BroadcastChannel. Default `notifyd:` + the absolute stream URL. */
  lockName?: string;
  /** A follower pings the leader after hearing nothing from it this long. Default heartbeat timeout + one interval. */
  leaderTimeoutMs?: number;
  /** A follower takes the lock over (steal) when a ping stays unanswered this long. Default 3000. */
  pingTimeoutMs?: number;

  // Injected dependencies (tests, workers, other environments). Default to the globals.
  EventSource?: EventSourceConstructorLike;
  setTimeout?: (callback: () => void, ms: number) => unknown;
  clearTimeout?: (handle: any) => void;
  /** A number in [0, 1). Default Math.random. */
  random?: () => number;
  /** Milliseconds. Default Date.now. */
  now?: () => number;
  window?: EventTargetLike | null;
  document?: DocumentLike | null;
  navigator?: NavigatorLike | null;
  /** Default `navigator.locks`. */
  locks?: LockManagerLike | null;
  BroadcastChannel?: BroadcastChannelConstructorLike | null;
  /** For the inbox calls. Default the global `fetch`. */
  fetch?: FetchLike | null;
}

/** An immutable view of the client, replaced on every change (for useSyncExternalStore). */
export interface NotificationClientSnapshot {
  readonly state: ConnectionState;
  readonly isConnected: boolean;
  readonly lastEventId: string | null;
  readonly connectionInfo: Readonly<ConnectionInfo>;
  readonly notifications: readonly NotificationMessage[];
  readonly duplicatesSuppressed: number;
  readonly unreadCount: number | null;
  readonly unreadHasMore: boolean;
}

export interface NotificationClient {
  readonly state: ConnectionState;
  /** The id of the last notification received: where the next stream resumes. */
  readonly lastEventId: string | null;
  readonly connectionInfo: Readonly<ConnectionInfo>;
  /** The last `maxNotifications` notifications received, newest first. */
  readonly notifications: readonly NotificationMessage[];
  readonly duplicatesSuppressed: number;
  /**
   * The user's unread count (exact up to 99), null until the server has said. From the
   * `connected` message, every `status` message that carries one, plus one per new live
   * notification; every tab of the browser shows the leader's count.
   */
  readonly unreadCount: number | null;
  /** More than `unreadCount` (99) unread: show "99+". */
  readonly unreadHasMore: boolean;
  /** POST …/{id}/read. Rejects with NotificationApiError (404: not a notification of this user). */
  markRead(id: string): Promise<void>;
  /** POST …/{id}/unread. */
  markUnread(id: string): Promise<void>;
  /**
   * POST …/read-all up to `upTo` (default: `lastEventId`, or, before any event, the newest
   * notification of the inbox), so what arrives meanwhile stays unread. Resolves to the seq used
   * (null: nothing to mark).
   */
  markAllRead(upTo?: number | string | null): Promise<number | null>;
  /** POST …/seen: everything up to `upTo` is seen (resets the unseen badge). */
  markSeen(upTo: number | string): Promise<void>;
  /** POST …/{id}/archive: out of the default history, never unread or unseen. */
  archive(id: string): Promise<void>;
  /** POST …/{id}/unarchive. */
  unarchive(id: string): Promise<void>;
  /** POST …/{id}/snooze: hidden until `until`, then back as unread (a `status` message with `unsnooze`). */
  snooze(id: string, until: Date | string): Promise<void>;
  /** POST …/{id}/interact: records a click on the action `action` (an id of its `actions`) and marks it read. */
  interact(id: string, action: string): Promise<void>;
  /** GET the inbox, newest first; page with `before: page.nextCursor`. */
  fetchHistory(query?: HistoryQuery): Promise<HistoryPage>;
  /** GET …/unread-count (does not change `unreadCount`). */
  fetchUnreadCount(): Promise<UnreadCount>;
  getPreferences(): Promise<Preferences>;
  /** PUT the muted modules (all of them: [] unmutes all); resolves to what the server stored. */
  setMutedModules(modules: readonly string[]): Promise<Preferences>;
  /** Reconnect now (forgetting past failures); restarts a client stopped for sign-in. In a follower tab, asks the leader. */
  reconnect(): void;
  /** Close the stream for good and release the tab leadership. */
  close(): void;
  /**
   * More callbacks for the messages (beside the options' ones), e.g. an inbox element sharing the
   * page's client. Returns the function that removes them.
   */
  listen(callbacks: ClientListeners): () => void;
  /** Called after every change of the snapshot. Returns the unsubscribe function. */
  subscribe(listener: () => void): () => void;
  getSnapshot(): NotificationClientSnapshot;
}

export declare function createNotificationClient(options?: NotificationClientOptions): NotificationClient;
