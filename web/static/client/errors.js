// The client's two error classes and the guard around the app's callbacks.
//
// They live apart from the facade because every part of the client reports
// through them: the transport and the tab relay build NotificationStreamError,
// the inbox calls reject with NotificationApiError, and a throwing callback of
// the app must never break the stream (safeCall reports it and goes on).
// notify-client.js re-exports both classes: that is their public URL.

/** @typedef {import('../notify-client.js').NotificationErrorKind} NotificationErrorKind */

/** What the inbox API calls (markRead, fetchHistory …) reject with. */
export class NotificationApiError extends Error {
  /** @override @type {'NotificationApiError'} */
  name = 'NotificationApiError';

  /**
   * @param {string} message the server's `error`, or what went wrong
   * @param {{status?: number, method?: string, url?: string, body?: unknown, cause?: unknown}} [details]
   */
  constructor(message, { status = 0, method = '', url = '', body = null, cause } = {}) {
    super(message);
    this.status = status;
    this.method = method;
    this.url = url;
    this.body = body;
    if (cause !== undefined) this.cause = cause;
  }
}

/** What onError receives: a stream failure, its kind and whether retrying is pointless. */
export class NotificationStreamError extends Error {
  /** @override @type {'NotificationStreamError'} */
  name = 'NotificationStreamError';

  /**
   * @param {NotificationErrorKind} kind
   * @param {string} message
   * @param {{fatal?: boolean, retryInMs?: number | null, reason?: string, cause?: unknown}} [details]
   */
  constructor(kind, message, { fatal = false, retryInMs = null, reason, cause } = {}) {
    super(message);
    this.kind = kind;
    this.fatal = fatal;
    this.retryInMs = retryInMs;
    if (reason !== undefined) this.reason = reason;
    if (cause !== undefined) this.cause = cause;
  }
}

/**
 * Reports an error thrown by one of the app's callbacks the way the browser
 * reports an uncaught one, without unwinding the client.
 * @param {unknown} error
 */
export function reportCallbackError(error) {
  const g = /** @type {{reportError?: (e: unknown) => void}} */ (globalThis);
  if (typeof g.reportError === 'function') g.reportError(error);
  else console.error('notify-client: a callback threw', error);
}

/**
 * Calls an optional callback of the app; what it throws is reported, not rethrown.
 * @template T
 * @param {((arg: T) => void) | undefined} fn
 * @param {T} arg
 */
export function safeCall(fn, arg) {
  if (typeof fn !== 'function') return;
  try {
    fn(arg);
  } catch (e) {
    reportCallbackError(e);
  }
}
