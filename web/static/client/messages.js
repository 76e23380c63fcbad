// Reading the stream's messages: parsing one SSE payload and saying what it
// asks the client to do.
//
// The wire format (CONTRACT.md, "The stream") is decoded here and only here,
// so the facade switches on a small route (notification id, heartbeat
// interval, whether a closing is terminal and when to come back) instead of
// probing raw JSON. Pure (web/test/core.test.js).

/** Closing reasons after which reconnecting is pointless until the user signs in again. */
export const TERMINAL_CLOSING = Object.freeze(['expired', 'logout']);

/**
 * Parses one SSE `data:` payload.
 * @param {unknown} raw
 * @returns {{ok: true, message: import('../notify-client.js').StreamMessage} | {ok: false, error: Error}}
 */
export function parseMessage(raw) {
  if (typeof raw !== 'string') return { ok: false, error: new TypeError('event data is not text') };
  let value;
  try {
    value = JSON.parse(raw);
  } catch (e) {
    return { ok: false, error: new SyntaxError('event data is not JSON: ' + /** @type {Error} */ (e).message) };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || typeof value.type !== 'string') {
    return { ok: false, error: new TypeError('event data is not a notifyd message') };
  }
  return { ok: true, message: value };
}

/**
 * @typedef {(
 *   | {kind: 'notification', id: string | null}
 *   | {kind: 'connected', heartbeatInterval: number | null}
 *   | {kind: 'heartbeat'}
 *   | {kind: 'status', closing: null | {reason: string, terminal: boolean, message: string, reconnectAfter: number | null}}
 *   | {kind: 'unknown'}
 * )} Route
 */

/**
 * What a message asks the client to do.
 * @param {import('../notify-client.js').StreamMessage} message
 * @returns {Route}
 */
export function routeMessage(message) {
  const data = message.data && typeof message.data === 'object' ? /** @type {Record<string, any>} */ (message.data) : null;
  switch (message.type) {
    case 'notification': {
      let id = message.notificationId ?? (data && data.id) ?? null;
      if (id !== null && typeof id !== 'string') id = String(id);
      return { kind: 'notification', id };
    }
    case 'connected': {
      const hb = data && Number(data.heartbeatInterval);
      return { kind: 'connected', heartbeatInterval: hb && hb > 0 ? hb : null };
    }
    case 'heartbeat':
      return { kind: 'heartbeat' };
    case 'status': {
      if (data && data.closing !== undefined && data.closing !== null && data.closing !== '') {
        const reason = String(data.closing);
        return {
          kind: 'status',
          closing: {
            reason,
            terminal: TERMINAL_CLOSING.includes(reason),
            message: typeof data.message === 'string' ? data.message : 'the server closed the stream: ' + reason,
            reconnectAfter: Number.isFinite(data.reconnectAfter) && data.reconnectAfter >= 0
              ? Math.min(data.reconnectAfter, 60000) : null,
          },
        };
      }
      return { kind: 'status', closing: null };
    }
    default:
      return { kind: 'unknown' };
  }
}

/**
 * The position a `status` message tells the client to resume from: with
 * `replay: "ahead"` (its resume point is beyond the database's history) or
 * `replay: "lost"` (its resume point was numbered on a history the database
 * no longer has, after a restore or a failover), `lastSeq`; otherwise null.
 * @param {unknown} data
 * @returns {string | null}
 */
export function resumePositionOf(data) {
  if (!data || typeof data !== 'object') return null;
  const d = /** @type {Record<string, unknown>} */ (data);
  if (d.replay !== 'ahead' && d.replay !== 'lost') return null;
  const seq = d.lastSeq;
  return typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 0 ? String(seq) : null;
}
