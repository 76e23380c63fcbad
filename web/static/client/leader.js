// Leader election between the tabs of one origin: one stream per browser.
//
// Every tab runs a client, but only one should hold an EventSource (a browser
// allows few connections per origin, and the server would count each tab).
// The tabs queue for a Web Lock; the holder is the leader and relays the
// stream over a BroadcastChannel of the same name. When the leader's tab
// closes, the browser hands the lock to the next tab in line. A frozen or hung
// leader keeps its lock, so followers watch it: silence for the leader
// timeout → a ping; no answer within pingTimeoutMs → steal the lock. Without
// Web Locks or BroadcastChannel (or when they fail) each tab leads alone.
//
// This module decides who leads and carries tab messages; what the messages
// mean is the client's business (hooks.message).

import { Watchdog } from './watchdog.js';

/** @typedef {import('../notify-client.js').ConnectionState} ConnectionState */
/** @typedef {import('../notify-client.js').NotificationErrorKind} NotificationErrorKind */
/** @typedef {import('../notify-client.js').BroadcastChannelLike} BroadcastChannelLike */
/** @typedef {import('../notify-client.js').BroadcastChannelConstructorLike} BroadcastChannelConstructorLike */
/** @typedef {import('../notify-client.js').LockManagerLike} LockManagerLike */

/**
 * Messages between tabs. Only the leader sends `event`, `state` and `error`.
 * The unread count is the leader's: followers take it from `state`, which
 * the leader sends whenever it changes, so every tab shows the same number.
 * @typedef {(
 *   | {v: 1, from: string, kind: 'event', data: unknown, lastEventId: string}
 *   | {v: 1, from: string, kind: 'state', state: ConnectionState, lastEventId: string | null, heartbeatInterval: number | null, reconnectAttempts: number, unreadCount?: number | null, unreadHasMore?: boolean}
 *   | {v: 1, from: string, kind: 'error', error: {kind: NotificationErrorKind, message: string, fatal: boolean, retryInMs: number | null, reason?: string}}
 *   | {v: 1, from: string, kind: 'hello' | 'ping' | 'reconnect' | 'wake'}
 * )} TabMessage
 */

/**
 * @typedef {{
 *   halted: () => boolean,
 *   disposed: () => boolean,
 *   elected: () => void,
 *   deposed: () => void,
 *   fellBack: () => void,
 *   message: (m: TabMessage) => void,
 * }} ElectionHooks
 * halted: the client is stopped (sign-in needed) or closed; disposed: closed.
 * elected: this tab got the lock. deposed: another tab stole it (this one
 * seemed frozen). fellBack: tab sharing turned out unusable and this tab now
 * leads alone. message: a tab message from another tab of this client.
 */

/**
 * @typedef {{
 *   tabId: string,
 *   lockName: string,
 *   locks: LockManagerLike | null,
 *   BroadcastChannel: BroadcastChannelConstructorLike | null,
 *   share: boolean,
 *   setTimeout: (fn: () => void, ms: number) => unknown,
 *   clearTimeout: (handle: any) => void,
 *   now: () => number,
 *   pingTimeoutMs: number,
 *   leaderTimeoutMs: () => number,
 *   hooks: ElectionHooks,
 * }} ElectionOptions
 */

export class TabElection {
  /** @param {ElectionOptions} options */
  constructor(options) {
    this.o = options;
    const { share, locks, BroadcastChannel: BC, setTimeout, clearTimeout, now } = options;
    this.isLeader = false;
    /** Tabs share one stream (Web Locks and BroadcastChannel usable). */
    this.shared = Boolean(share && locks && typeof locks.request === 'function' && typeof BC === 'function');
    /** @type {BroadcastChannelLike | null} */
    this.channel = null;
    /** @type {AbortController | null} */
    this.lockAbort = null;
    /** @type {(() => void) | null} */
    this.releaseLock = null;
    /** Bumped by every request and by leave(), so stale lock callbacks do nothing. */
    this.lockGen = 0;
    /** @type {unknown} */
    this.pingTimer = null;
    /** A follower's watch on the leader: silence → ping. */
    this.leaderWatch = new Watchdog({ setTimeout, clearTimeout, now, onExpire: () => this.pingLeader() });
    if (this.shared) {
      try {
        this.channel = new /** @type {BroadcastChannelConstructorLike} */ (BC)(options.lockName);
        this.channel.onmessage = (ev) => this.receive(ev);
      } catch {
        this.channel = null;
        this.shared = false;
      }
    }
  }

  /** Without tab sharing: this tab leads alone from the start. */
  leadAlone() {
    this.isLeader = true;
  }

  /** @param {TabMessage} m */
  post(m) {
    if (!this.channel) return;
    try {
      this.channel.postMessage(m);
    } catch {
      // closed channel, or data that cannot be cloned
    }
  }

  /** Queues for the lock as a follower, watching the current leader. */
  follow() {
    this.leaderWatch.start(this.o.leaderTimeoutMs());
    this.post({ v: 1, from: this.o.tabId, kind: 'hello' });
    this.requestLock();
  }

  /**
   * Leaves the queue (or releases the lock).
   * @returns {boolean} whether this tab stopped leading
   */
  leave() {
    this.lockGen++;
    if (this.lockAbort) this.lockAbort.abort();
    this.lockAbort = null;
    this.leaderWatch.stop();
    this.clearPing();
    if (this.releaseLock) this.releaseLock();
    this.releaseLock = null;
    if (this.isLeader && this.shared) {
      this.isLeader = false;
      return true;
    }
    return false;
  }

  /** The client is closed: no more tab messages. */
  close() {
    this.closeChannel();
    this.isLeader = false;
  }

  /** The leader was heard from: it is alive. */
  heard() {
    this.clearPing();
    if (this.isLeader || this.o.hooks.halted()) return;
    if (this.leaderWatch.running) this.leaderWatch.touch();
    else this.leaderWatch.start(this.o.leaderTimeoutMs());
  }

  /** Pings the leader now if it has been silent too long (a page waking up). */
  checkLeader() {
    this.leaderWatch.check();
  }

  /** The heartbeat interval changed: so does the follower's patience. */
  leaderTimeoutChanged() {
    if (this.leaderWatch.running) this.leaderWatch.setTimeoutMs(this.o.leaderTimeoutMs());
  }

  /** @private @param {{steal?: boolean}} [how] */
  requestLock({ steal = false } = {}) {
    const { locks, lockName, hooks } = this.o;
    if (!locks) return;
    const gen = ++this.lockGen;
    if (this.lockAbort) this.lockAbort.abort();
    this.lockAbort = null;
    const ac = !steal && typeof AbortController === 'function' ? new AbortController() : null;
    this.lockAbort = ac;
    let granted = false;
    /** @type {{signal?: AbortSignal, steal?: boolean}} */
    const opts = steal ? { steal: true } : ac ? { signal: ac.signal } : {};
    let p;
    try {
      p = locks.request(lockName, opts, () => {
        if (gen !== this.lockGen || hooks.halted()) return undefined;
        granted = true;
        if (this.lockAbort === ac) this.lockAbort = null;
        return new Promise((resolve) => {
          this.releaseLock = () => resolve(undefined);
          this.becomeLeader();
        });
      });
    } catch (e) {
      this.fallBack();
      return;
    }
    Promise.resolve(p).then(
      () => {},
      (/** @type {any} */ err) => {
        if (gen !== this.lockGen || hooks.disposed()) return;
        if (granted) {
          // Another tab stole the lock (it found this one unresponsive).
          if (this.isLeader) this.demote();
        } else if (!err || err.name !== 'AbortError') {
          // Web Locks unusable here (opaque origin, sandbox …).
          this.fallBack();
        }
      },
    );
  }

  /** @private */
  becomeLeader() {
    if (this.o.hooks.halted()) return;
    this.isLeader = true;
    this.leaderWatch.stop();
    this.clearPing();
    this.o.hooks.elected();
  }

  /** This tab lost the lock (stolen): hand over and follow. @private */
  demote() {
    this.isLeader = false;
    if (this.releaseLock) this.releaseLock(); // the lock is gone already; end its callback
    this.releaseLock = null;
    this.o.hooks.deposed();
    this.follow();
  }

  /** @private */
  fallBack() {
    if (this.o.hooks.halted()) return;
    this.shared = false;
    this.leaderWatch.stop();
    this.clearPing();
    this.closeChannel();
    if (!this.isLeader) {
      this.isLeader = true;
      this.o.hooks.fellBack();
    }
  }

  /** @private */
  closeChannel() {
    if (!this.channel) return;
    this.channel.onmessage = null;
    try {
      this.channel.close();
    } catch {
      // ignore
    }
    this.channel = null;
  }

  /** @private */
  clearPing() {
    if (this.pingTimer !== null) {
      this.o.clearTimeout(this.pingTimer);
      this.pingTimer = null;
    }
  }

  /** Nothing heard from the leader for a while: is it there? @private */
  pingLeader() {
    const { hooks, tabId, pingTimeoutMs } = this.o;
    if (this.isLeader || hooks.halted() || !this.shared) return;
    this.post({ v: 1, from: tabId, kind: 'ping' });
    this.clearPing();
    this.pingTimer = this.o.setTimeout(() => {
      this.pingTimer = null;
      if (this.isLeader || hooks.halted() || !this.shared) return;
      // The lock holder is frozen or hung: take the stream over.
      this.requestLock({ steal: true });
    }, pingTimeoutMs);
  }

  /** @private @param {{data: unknown}} ev */
  receive(ev) {
    const m = /** @type {TabMessage} */ (ev && ev.data);
    if (!m || m.v !== 1 || m.from === this.o.tabId || this.o.hooks.disposed()) return;
    this.o.hooks.message(m);
  }
}
