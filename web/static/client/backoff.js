// Exponential backoff with full jitter: how long the client waits before
// opening a new stream after a failure.
//
// Full jitter (a delay drawn uniformly from zero to the ceiling) spreads the
// reconnects of many clients that lost their server at the same moment, so
// they do not all arrive at the next node together; failures are forgotten
// once a connection has stayed healthy. Pure: randomness and the clock are
// arguments (web/test/core.test.js).

/**
 * The ceiling of the backoff delay before attempt `attempt` (0-based):
 * min(maxMs, initialMs * 2^attempt).
 * @param {number} attempt
 * @param {number} initialMs
 * @param {number} maxMs
 * @returns {number}
 */
export function backoffCeiling(attempt, initialMs, maxMs) {
  const a = Math.max(0, Math.floor(attempt));
  return Math.max(0, Math.min(maxMs, initialMs * 2 ** a));
}

/**
 * "Full jitter" backoff: a delay drawn uniformly from [0, ceiling(attempt)]
 * (the ceiling itself only if random() returns 1).
 * @param {number} attempt 0-based number of consecutive failures before this one
 * @param {number} initialMs
 * @param {number} maxMs
 * @param {() => number} random returns a number in [0, 1), like Math.random
 * @returns {number} whole milliseconds
 */
export function fullJitterDelay(attempt, initialMs, maxMs, random) {
  const r = Math.min(Math.max(Number(random()) || 0, 0), 1);
  return Math.floor(r * backoffCeiling(attempt, initialMs, maxMs));
}

/**
 * Exponential backoff with full jitter that forgets past failures once a
 * connection has stayed healthy for `resetAfterMs`.
 */
export class Backoff {
  /**
   * @param {{initialMs?: number, maxMs?: number, resetAfterMs?: number, random?: () => number}} [options]
   */
  constructor({ initialMs = 1000, maxMs = 30000, resetAfterMs = 60000, random = Math.random } = {}) {
    if (!(initialMs >= 0) || !(maxMs >= 0)) throw new RangeError('backoff delays must be non-negative');
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.resetAfterMs = resetAfterMs;
    this.random = random;
    /** Consecutive failures not yet forgiven by a healthy period. */
    this.attempt = 0;
    /** @type {number | null} when the current connection opened */
    this.openedAt = null;
  }

  /** The current connection is open (healthy) since `now`. @param {number} now */
  opened(now) {
    this.openedAt = now;
  }

  /**
   * Forgets past failures if the current connection has been open for
   * resetAfterMs by `now`. Returns whether it did.
   * @param {number} now
   */
  checkHealthy(now) {
    if (this.openedAt !== null && now - this.openedAt >= this.resetAfterMs && this.attempt !== 0) {
      this.attempt = 0;
      return true;
    }
    return false;
  }

  /**
   * The connection failed (or an attempt did) at `now`: the delay before the
   * next attempt. Counts the failure.
   * @param {number} now
   * @returns {number}
   */
  failed(now) {
    this.checkHealthy(now);
    this.openedAt = null;
    const delay = fullJitterDelay(this.attempt, this.initialMs, this.maxMs, this.random);
    this.attempt += 1;
    return delay;
  }

  /** Forget every failure (explicit reconnect, network back). */
  reset() {
    this.attempt = 0;
  }
}
