// The stream itself: one EventSource at a time, replaced after every failure.
//
// A browser's EventSource retries by itself, but gives up for good on
// answers it dislikes (non-200, wrong content type), cannot send
// Last-Event-ID on a new object, and never notices a silent dead connection.
// So this module closes the EventSource on every error and opens a NEW one,
// resuming with `?lastEventId=`, after an exponential backoff with full
// jitter (forgotten once a connection stays open for resetAfterMs), with a
// heartbeat watchdog and no spinning while the browser is offline. It knows
// nothing of tabs or messages: the client says when it may connect and gets
// told, through hooks, what happened.

import { Backoff, fullJitterDelay } from './backoff.js';
import { Watchdog } from './watchdog.js';

/** @typedef {import('../notify-client.js').EventSourceLike} EventSourceLike */
/** @typedef {import('../notify-client.js').EventSourceConstructorLike} EventSourceConstructorLike */
/** @typedef {import('../notify-client.js').NotificationErrorKind} NotificationErrorKind */

const CLOSED = 2; // EventSource.CLOSED

/**
 * @typedef {{
 *   mayConnect: () => boolean,
 *   closed: () => void,
 *   opened: () => void,
 *   healthy: () => void,
 *   message: (data: unknown, eventId: string) => void,
 *   retrying: (attempt: number) => void,
 *   failed: (kind: NotificationErrorKind, message: string, details: {retryInMs: number, cause?: unknown}) => void,
 *   closing: () => void,
 * }} TransportHooks
 * mayConnect: this tab holds the stream and the client is neither stopped nor
 * closed. closed: a stream was closed (or replaced). opened: the EventSource
 * opened. healthy: a connection stayed open long enough to forget past
 * failures. message: one SSE message. retrying: the stream failed, attempt
 * number `attempt` is scheduled. failed: what to tell onError about it.
 * closing: the server ended the stream but wants the client back.
 */

/**
 * @typedef {{
 *   url: string,
 *   withCredentials: boolean,
 *   EventSource: EventSourceConstructorLike,
 *   setTimeout: (fn: () => void, ms: number) => unknown,
 *   clearTimeout: (handle: any) => void,
 *   now: () => number,
 *   random: () => number,
 *   initialMs: number,
 *   maxMs: number,
 *   resetAfterMs: number,
 *   online: boolean,
 *   resumeFrom: () => string | null,
 *   watchdogTimeoutMs: () => number,
 *   hooks: TransportHooks,
 * }} TransportOptions
 */

/**
 * The stream URL carrying the resume point as the `lastEventId` query
 * parameter (a new EventSource cannot send the Last-Event-ID header).
 * Works on relative and absolute URLs; replaces an existing lastEventId.
 * @param {string} url
 * @param {string | null | undefined} lastEventId
 * @returns {string}
 */
export function buildStreamUrl(url, lastEventId) {
  let base = String(url);
  let hash = '';
  const h = base.indexOf('#');
  if (h >= 0) {
    hash = base.slice(h);
    base = base.slice(0, h);
  }
  let query = '';
  const q = base.indexOf('?');
  if (q >= 0) {
    query = base.slice(q + 1);
    base = base.slice(0, q);
  }
  const params = query
    .split('&')
    .filter((p) => p !== '' && decodeURIComponent(p.split('=')[0].replace(/\+/g, ' ')) !== 'lastEventId');
  if (lastEventId !== null && lastEventId !== undefined && lastEventId !== '') {
    params.push('lastEventId=' + encodeURIComponent(String(lastEventId)));
  }
  return base + (params.length ? '?' + params.join('&') : '') + hash;
}

export class StreamTransport {
  /** @param {TransportOptions} options */
  constructor(options) {
    this.o = options;
    const { initialMs, maxMs, resetAfterMs, random, setTimeout, clearTimeout, now } = options;
    this.backoff = new Backoff({ initialMs, maxMs, resetAfterMs, random });
    /** False while the browser says it is offline: retries wait maxMs. */
    this.online = options.online;
    /** @type {EventSourceLike | null} */
    this.es = null;
    this.esOpened = false;
    /** @type {unknown} */
    this.retryTimer = null;
    /** @type {unknown} */
    this.healthyTimer = null;
    this.watchdog = new Watchdog({
      setTimeout,
      clearTimeout,
      now,
      onExpire: () => {
        if (!this.es || !this.o.hooks.mayConnect()) return;
        const ms = this.o.watchdogTimeoutMs();
        this.fail('heartbeat', `no message for ${ms} ms: the connection is considered dead`);
      },
    });
  }

  /** Consecutive failures not yet forgiven. */
  get attempt() {
    return this.backoff.attempt;
  }

  /** Opens a new EventSource resuming from the last event id (closing the current one). */
  connect() {
    this.clearRetry();
    this.close();
    const { hooks, now } = this.o;
    if (!hooks.mayConnect()) return;
    /** @type {EventSourceLike} */
    let source;
    try {
      source = new this.o.EventSource(buildStreamUrl(this.o.url, this.o.resumeFrom()), { withCredentials: this.o.withCredentials });
    } catch (e) {
      this.fail('network', 'could not create the EventSource: ' + String(e), e);
      return;
    }
    this.es = source;
    source.onopen = () => {
      if (this.es !== source) return;
      this.esOpened = true;
      this.watchdog.touch();
      this.backoff.opened(now());
      this.healthyTimer = this.o.setTimeout(() => {
        this.healthyTimer = null;
        if (this.backoff.checkHealthy(now())) hooks.healthy();
      }, this.o.resetAfterMs);
      hooks.opened();
    };
    source.onmessage = (/** @type {{data: unknown, lastEventId?: string}} */ ev) => {
      if (this.es !== source) return;
      this.watchdog.touch();
      hooks.message(ev.data, typeof ev.lastEventId === 'string' ? ev.lastEventId : '');
    };
    source.onerror = (/** @type {unknown} */ ev) => {
      if (this.es !== source) return;
      const gaveUp = source.readyState === CLOSED && !this.esOpened;
      this.fail(
        gaveUp ? 'rejected' : 'network',
        gaveUp
          ? 'the server refused the stream (not signed in, unavailable, or not an event stream)'
          : 'the stream was interrupted',
        ev,
      );
    };
    this.watchdog.start(this.o.watchdogTimeoutMs());
  }

  /** Closes the current EventSource, if any, and its timers (not a pending retry). */
  close() {
    this.watchdog.stop();
    this.o.hooks.closed();
    if (this.healthyTimer !== null) {
      this.o.clearTimeout(this.healthyTimer);
      this.healthyTimer = null;
    }
    const old = this.es;
    this.es = null;
    this.esOpened = false;
    if (old) {
      old.onopen = old.onmessage = old.onerror = null;
      try {
        old.close();
      } catch {
        // already gone
      }
    }
  }

  /** Cancels a scheduled reconnect. */
  clearRetry() {
    if (this.retryTimer !== null) {
      this.o.clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
  }

  /**
   * The stream failed: close it and retry after the backoff delay.
   * @param {NotificationErrorKind} kind
   * @param {string} message
   * @param {unknown} [cause]
   */
  fail(kind, message, cause) {
    this.close();
    const { hooks, now, maxMs } = this.o;
    if (!hooks.mayConnect()) return;
    const delay = this.backoff.failed(now());
    hooks.retrying(this.backoff.attempt);
    // Offline: no spinning; 'online' reconnects at once. A slow attempt at
    // maxMs still runs in case the browser's offline signal is wrong.
    const wait = this.online ? delay : maxMs;
    this.retryIn(wait);
    hooks.failed(kind, this.online ? message : message + ' (offline)', { retryInMs: wait, cause });
  }

  /**
   * The server is ending the stream but wants us back: reconnect promptly,
   * or after the delay it asked for (a node shutting down spreads its
   * clients' reconnects so they do not all reach the next node at once).
   * @param {number | null} [reconnectAfter]
   */
  reconnectAfterClosing(reconnectAfter) {
    this.close();
    const { hooks, initialMs, maxMs, random } = this.o;
    if (!hooks.mayConnect()) return;
    hooks.closing();
    this.clearRetry();
    const jitter = fullJitterDelay(0, initialMs, maxMs, random);
    this.retryIn(!this.online ? maxMs : reconnectAfter != null ? reconnectAfter : jitter);
  }

  /** Forgets every failure (explicit reconnect, network back). */
  resetBackoff() {
    this.backoff.reset();
  }

  /** Expires the stream now if the watchdog's time has passed (a page waking up). */
  checkAlive() {
    this.watchdog.check();
  }

  /** Waiting for a retry while online: go now. */
  connectIfWaiting() {
    if (!this.es && this.online) this.connect();
  }

  /** The heartbeat interval changed: the watchdog's timeout follows. */
  heartbeatChanged() {
    this.watchdog.setTimeoutMs(this.o.watchdogTimeoutMs());
  }

  /** The browser went offline: a pending retry waits maxMs ('online' brings us back at once). */
  wentOffline() {
    this.online = false;
    if (!this.o.hooks.mayConnect()) return;
    if (this.retryTimer !== null) {
      this.clearRetry();
      this.retryIn(this.o.maxMs);
    }
  }

  /** @private @param {number} ms */
  retryIn(ms) {
    this.retryTimer = this.o.setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, ms);
  }
}
