// The unread count, as held by the tab that has the stream.
//
// The count has three sources that can disagree for a moment: the server's
// counts (`connected`, every `status` that carries one, an explicit recount),
// and +1 per notification that arrives on the stream. Two races make a plain
// "take the last number" wrong, and this module is where they are settled:
//
// - A resumed stream's `connected` count already includes what the server then
//   replays: replayed notifications are not counted; once the stream has been
//   quiet SETTLE_QUIET_MS (at most SETTLE_MAX_MS) the count is fetched again if
//   anything was replayed.
// - A server count and a new notification less than AMBIGUOUS_MS apart are
//   ambiguous (the server sends read-state changes at once but reads new
//   notifications from the table, so either can overtake the other): the
//   count is fetched RECOUNT_DELAY_MS later, at most RECOUNT_BUDGET times per
//   server message. A newer server count always wins over an older recount.
//
// Followers never count: they adopt the leader's number (adopt()).

/** The server counts unread notifications exactly up to this, then answers `hasMore` ("99+"). */
export const UNREAD_CAP = 99;

/**
 * The unread count a `connected` or `status` message carries, or undefined
 * when it carries none (a status about something else). `null` count: the
 * server could not say (its database was unavailable when the stream opened).
 * @param {unknown} data the message's `data`
 * @returns {{count: number | null, hasMore: boolean} | undefined}
 */
export function unreadOf(data) {
  if (!data || typeof data !== 'object' || !('unreadCount' in data)) return undefined;
  const d = /** @type {{unreadCount?: unknown, hasMore?: unknown}} */ (data);
  const n = d.unreadCount;
  if (n === null) return { count: null, hasMore: false };
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return undefined;
  return { count: Math.floor(n), hasMore: d.hasMore === true };
}

/**
 * The count after one more unread notification: exact up to UNREAD_CAP, then
 * "UNREAD_CAP and more", as the server says it. An unknown count stays unknown.
 * @param {{count: number | null, hasMore: boolean}} unread
 * @returns {{count: number | null, hasMore: boolean}}
 */
export function incrementUnread({ count, hasMore }) {
  if (count === null) return { count, hasMore };
  if (hasMore || count + 1 > UNREAD_CAP) return { count: Math.min(count, UNREAD_CAP), hasMore: true };
  return { count: count + 1, hasMore: false };
}

/**
 * The badge text for a count: "" when unknown, "99+" past the cap.
 * @param {number | null} count
 * @param {boolean} hasMore
 */
export function unreadLabel(count, hasMore) {
  if (count === null) return '';
  return hasMore ? `${count}+` : String(count);
}

/** A resumed stream's replay is over once the stream has been quiet this long… */
export const SETTLE_QUIET_MS = 300;
/** …or this long after its `connected` message at the latest. */
export const SETTLE_MAX_MS = 3000;
/** A server count and a new notification closer than this are ambiguous. */
export const AMBIGUOUS_MS = 1000;
/** How long after an ambiguity the count is asked for. */
export const RECOUNT_DELAY_MS = 500;
/** Recounts allowed per server message (a busy stream must not poll). */
export const RECOUNT_BUDGET = 3;

/**
 * @typedef {{
 *   now: () => number,
 *   setTimeout: (fn: () => void, ms: number) => unknown,
 *   clearTimeout: (handle: any) => void,
 *   fetchCount: () => Promise<{count?: unknown, hasMore?: unknown} | null | undefined>,
 *   active: () => boolean,
 *   onChange: (announce: boolean) => void,
 * }} UnreadDeps
 * active: this tab holds the stream and the client is not closed (only then
 * is a recount asked for or taken). onChange(announce): the count changed;
 * announce false means the caller will tell the subscribers itself.
 */

export class UnreadCounter {
  /** @param {UnreadDeps} deps */
  constructor(deps) {
    this.deps = deps;
    /** null until the server has said. @type {number | null} */
    this.count = null;
    this.hasMore = false;
    /** A resumed stream is replaying: don't count, recount when it is quiet. */
    this.settling = false;
    this.settleReplayed = 0;
    this.settleStartedAt = 0;
    /** @type {unknown} */
    this.settleTimer = null;
    /** Bumped by every authoritative count, so an older recount answer is dropped. */
    this.gen = 0;
    this.lastArrivalAt = -Infinity;
    this.lastCountAt = -Infinity;
    this.budget = RECOUNT_BUDGET;
    /** @type {unknown} */
    this.recountTimer = null;
  }

  /**
   * An authoritative count (connected, status, a recount).
   * @param {number | null} count
   * @param {boolean} hasMore
   * @param {boolean} [announce] passed on to onChange
   * @param {number} [since] notifications that arrived since then may or may not be in the count
   * @returns {boolean} whether it changed
   */
  set(count, hasMore, announce = true, since) {
    this.gen++;
    this.lastCountAt = this.deps.now();
    if (this.lastArrivalAt > (since ?? this.lastCountAt - AMBIGUOUS_MS)) this.scheduleRecount();
    if (count === this.count && hasMore === this.hasMore) return false;
    this.count = count;
    this.hasMore = hasMore;
    this.deps.onChange(announce);
    return true;
  }

  /**
   * A stream's `connected` message: its count (if any), taken without
   * announcing; a resumed stream then settles its replay.
   * @param {unknown} data the message's data
   * @param {boolean} resumed
   */
  connected(data, resumed) {
    const unread = unreadOf(data);
    this.stop();
    this.budget = RECOUNT_BUDGET;
    if (unread) this.set(unread.count, unread.hasMore, false);
    if (resumed) this.startSettling();
  }

  /**
   * A `status` message: its count if it carries one.
   * @param {unknown} data the message's data
   * @returns {boolean} whether the count changed (and was announced)
   */
  status(data) {
    const unread = unreadOf(data);
    if (!unread) return false;
    this.budget = RECOUNT_BUDGET;
    return this.set(unread.count, unread.hasMore);
  }

  /** A new notification arrived on this tab's stream (the caller announces). */
  arrival() {
    if (this.settling) {
      this.settleReplayed++;
      this.armSettle();
      return;
    }
    this.lastArrivalAt = this.deps.now();
    if (this.lastArrivalAt - this.lastCountAt < AMBIGUOUS_MS) this.scheduleRecount();
    const next = incrementUnread({ count: this.count, hasMore: this.hasMore });
    if (next.count === this.count && next.hasMore === this.hasMore) return;
    this.count = next.count;
    this.hasMore = next.hasMore;
    this.deps.onChange(false);
  }

  /**
   * A follower takes the leader's count (ignored unless it is null or a
   * non-negative number).
   * @param {unknown} count
   * @param {unknown} hasMore
   */
  adopt(count, hasMore) {
    if (count === null || (typeof count === 'number' && count >= 0)) {
      this.count = count;
      this.hasMore = hasMore === true;
    }
  }

  /**
   * Between streams: forgets a pending recount and past arrivals (the next
   * stream's `connected` count is taken after them).
   */
  stop() {
    const { clearTimeout } = this.deps;
    if (this.settleTimer !== null) clearTimeout(this.settleTimer);
    this.settleTimer = null;
    this.settling = false;
    if (this.recountTimer !== null) clearTimeout(this.recountTimer);
    this.recountTimer = null;
    this.lastArrivalAt = -Infinity;
  }

  /** @private */
  startSettling() {
    this.settling = true;
    this.settleReplayed = 0;
    this.settleStartedAt = this.deps.now();
    this.armSettle();
  }

  /** @private */
  armSettle() {
    const { setTimeout, clearTimeout, now } = this.deps;
    if (this.settleTimer !== null) clearTimeout(this.settleTimer);
    const left = this.settleStartedAt + SETTLE_MAX_MS - now();
    this.settleTimer = setTimeout(() => this.endSettling(), Math.max(0, Math.min(SETTLE_QUIET_MS, left)));
  }

  /** @private */
  endSettling() {
    this.settleTimer = null;
    this.settling = false;
    if (this.settleReplayed > 0) this.recount();
  }

  /** A recount soon (one pending at a time, within the budget). @private */
  scheduleRecount() {
    if (this.recountTimer !== null || this.budget <= 0 || !this.deps.active()) return;
    this.recountTimer = this.deps.setTimeout(() => {
      this.recountTimer = null;
      if (this.budget <= 0 || this.settling) return;
      this.budget--;
      this.recount();
    }, RECOUNT_DELAY_MS);
  }

  /** Asks the server for the count; a newer authoritative count wins. @private */
  recount() {
    const gen = ++this.gen;
    const sentAt = this.deps.now();
    this.deps.fetchCount().then(
      (u) => {
        if (gen !== this.gen || !this.deps.active()) return;
        // What arrived before the question is in the answer.
        if (u && typeof u.count === 'number') this.set(u.count, u.hasMore === true, true, sentAt);
      },
      () => {
        // The next status or connected message brings the count.
      },
    );
  }
}
