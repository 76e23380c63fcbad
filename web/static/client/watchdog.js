// The heartbeat watchdog: a silent stream is a dead stream.
//
// A connection can die without an error (a proxy, a sleeping laptop, a
// network switch), and EventSource would wait forever. The server sends a
// heartbeat every interval, so the client treats silence for twice that as
// death; the tabs' leader election reuses the same watch on the leader. Pure:
// timers and the clock are arguments (web/test/core.test.js).

/** The contract's default heartbeat interval, used until a `connected` message says otherwise. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 15000;

/**
 * The heartbeat watchdog's timeout: heartbeatTimeoutMs if given, else twice
 * the server's heartbeat interval (or the contract's default interval).
 * @param {{heartbeatTimeoutMs?: number | null, heartbeatInterval?: number | null}} options
 * @returns {number}
 */
export function watchdogTimeout({ heartbeatTimeoutMs, heartbeatInterval }) {
  if (typeof heartbeatTimeoutMs === 'number' && heartbeatTimeoutMs > 0) return heartbeatTimeoutMs;
  const interval =
    typeof heartbeatInterval === 'number' && heartbeatInterval > 0 ? heartbeatInterval : DEFAULT_HEARTBEAT_INTERVAL_MS;
  return 2 * interval;
}

/**
 * Fires `onExpire` when `touch()` has not been called for `timeoutMs`.
 * Rather than re-arming a timer on every message it checks the elapsed time
 * when its timer fires and sleeps again for the remainder, so a late
 * (throttled) timer never expires a connection that kept receiving.
 */
export class Watchdog {
  /**
   * @param {{
   *   setTimeout: (fn: () => void, ms: number) => unknown,
   *   clearTimeout: (handle: any) => void,
   *   now: () => number,
   *   onExpire: () => void,
   * }} deps
   */
  constructor({ setTimeout, clearTimeout, now, onExpire }) {
    this.setTimer = setTimeout;
    this.clearTimer = clearTimeout;
    this.now = now;
    this.onExpire = onExpire;
    /** @type {unknown} */
    this.handle = null;
    this.timeoutMs = 0;
    this.last = 0;
    this.running = false;
  }

  /** Starts (or restarts) watching, counting from now. @param {number} timeoutMs */
  start(timeoutMs) {
    this.stop();
    this.timeoutMs = timeoutMs;
    this.last = this.now();
    this.running = true;
    this.arm(timeoutMs);
  }

  /** Changes the timeout without resetting the last activity. @param {number} timeoutMs */
  setTimeoutMs(timeoutMs) {
    this.timeoutMs = timeoutMs;
    if (this.running) {
      this.disarm();
      this.check();
    }
  }

  /** Something arrived. */
  touch() {
    this.last = this.now();
  }

  /** Milliseconds since the last activity. */
  idleMs() {
    return this.now() - this.last;
  }

  /** Expires now if the timeout has passed, else sleeps for the remainder. */
  check() {
    if (!this.running) return;
    const remaining = this.timeoutMs - (this.now() - this.last);
    if (remaining <= 0) {
      this.stop();
      this.onExpire();
      return;
    }
    this.disarm();
    this.arm(remaining);
  }

  stop() {
    this.running = false;
    this.disarm();
  }

  /** @private @param {number} ms */
  arm(ms) {
    this.handle = this.setTimer(() => {
      this.handle = null;
      this.check();
    }, ms);
  }

  /** @private */
  disarm() {
    if (this.handle !== null) {
      this.clearTimer(this.handle);
      this.handle = null;
    }
  }
}
