// The client's options with their defaults filled in.
//
// createNotificationClient takes about thirty options, half of them browser
// APIs injected for tests and other environments (EventSource, timers, Web
// Locks, BroadcastChannel, fetch, window, document). Finding the globals they
// default to, and each default value, is done once here (the defaults are
// documented in notify-client.d.ts), so the facade reads plain values.

/** @typedef {import('../notify-client.js').NotificationClientOptions} NotificationClientOptions */
/** @typedef {import('../notify-client.js').EventSourceConstructorLike} EventSourceConstructorLike */

/**
 * The URL made absolute against the page's location (the default lock name
 * must be the same in every tab of an origin whatever their paths).
 * @param {string} url
 */
function absoluteUrl(url) {
  try {
    const loc = /** @type {{location?: {href?: string}}} */ (globalThis).location;
    return new URL(url, loc && loc.href ? loc.href : undefined).href;
  } catch {
    return url;
  }
}

/**
 * Fills in every default; throws a TypeError when there is no EventSource.
 * @param {NotificationClientOptions} options
 */
export function resolveOptions(options) {
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
    setTimeout = (/** @type {() => void} */ fn, /** @type {number} */ ms) => g.setTimeout(fn, ms),
    clearTimeout = (/** @type {any} */ h) => g.clearTimeout(h),
    random = Math.random,
    now = () => Date.now(),
    window = g.window ?? (typeof g.addEventListener === 'function' ? g : null),
    document = (window && /** @type {any} */ (window).document) ?? g.document ?? null,
    navigator = g.navigator ?? null,
    locks = (navigator && navigator.locks) ?? null,
    BroadcastChannel = g.BroadcastChannel ?? null,
    fetch = typeof g.fetch === 'function' ? (/** @type {any} */ input, /** @type {any} */ init) => g.fetch(input, init) : null,
  } = options;

  if (typeof ES !== 'function') {
    throw new TypeError('notify-client: EventSource is not available; pass options.EventSource');
  }
  return {
    url,
    apiUrl,
    withCredentials,
    onNotification,
    onConnected,
    onError,
    onStatus,
    maxNotifications,
    heartbeatTimeoutMs,
    initialMs,
    maxMs,
    resetAfterMs,
    dedupeSize,
    shareAcrossTabs,
    lockName,
    leaderTimeoutMs,
    pingTimeoutMs,
    EventSource: /** @type {EventSourceConstructorLike} */ (ES),
    /** The client's clock and timers, handed to every part that waits. */
    timers: { setTimeout, clearTimeout, now },
    random,
    window,
    document,
    navigator,
    locks,
    BroadcastChannel,
    fetch,
    /** The browser says it is offline (only believed with a window and navigator). */
    startsOffline: Boolean(window && navigator && navigator.onLine === false),
  };
}
