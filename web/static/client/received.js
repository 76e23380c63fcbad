// What the client keeps of what it received: the ids it has seen (to drop
// the duplicates a resume or a leader change replays), the newest
// notifications, and the connection info before any connection.
//
// Memory stays bounded however long a page stays open: both the id set and
// the list forget their oldest entries. Pure (web/test/core.test.js).

/**
 * A set that remembers at most `max` keys, forgetting the oldest inserted first.
 * @template T
 */
export class BoundedSet {
  /** @param {number} max */
  constructor(max) {
    if (!(max >= 1)) throw new RangeError('BoundedSet size must be at least 1');
    this.max = Math.floor(max);
    /** @type {Set<T>} */
    this.set = new Set();
  }

  /** @param {T} key */
  has(key) {
    return this.set.has(key);
  }

  /**
   * Adds key; returns false if it was already present (a duplicate).
   * @param {T} key
   * @returns {boolean}
   */
  add(key) {
    if (this.set.has(key)) return false;
    this.set.add(key);
    while (this.set.size > this.max) {
      const oldest = this.set.values().next().value;
      this.set.delete(/** @type {T} */ (oldest));
    }
    return true;
  }

  get size() {
    return this.set.size;
  }

  clear() {
    this.set.clear();
  }
}

/**
 * Remembers notification ids to suppress duplicates, with bounded memory.
 */
export class Deduplicator {
  /** @param {number} [size] */
  constructor(size = 1000) {
    /** @type {BoundedSet<string>} */
    this.seen = new BoundedSet(size);
    this.duplicates = 0;
  }

  /**
   * True the first time an id is seen; false (and counted) afterwards.
   * A message without an id is always new.
   * @param {string | null | undefined} id
   */
  accept(id) {
    if (id === null || id === undefined || id === '') return true;
    if (this.seen.add(String(id))) return true;
    this.duplicates += 1;
    return false;
  }
}

/**
 * The connection info before any connection: what a client's
 * `connectionInfo` starts as (and the React hook's while no client runs).
 * @returns {import('../notify-client.js').ConnectionInfo}
 */
export function emptyConnectionInfo() {
  return {
    connectionId: null,
    userId: null,
    roles: [],
    connectedAt: null,
    reconnectAttempts: 0,
    isLeader: false,
    heartbeatInterval: null,
  };
}

/**
 * Keeps the newest `max` items first.
 * @template T
 * @param {readonly T[]} list newest first
 * @param {T} item
 * @param {number} max
 * @returns {T[]}
 */
export function prependBounded(list, item, max) {
  if (max <= 0) return [];
  const next = [item, ...list];
  if (next.length > max) next.length = max;
  return next;
}
