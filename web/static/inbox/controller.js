// What the <notify-inbox> element does, without its DOM: one user's inbox
// list and counts kept in step with a notification client.
//
// It listens to the client's stream (live notifications, `status` messages
// about changes made anywhere), loads history pages, and carries out the
// user's actions optimistically: the list changes at once and is put back
// if the server refuses. The element (notify-inbox.js) renders what this
// holds and turns its hooks into DOM events and toasts; the pure list rules
// are in state.js. Tested in node against a fake client
// (web/test/inbox-controller.test.js).

import { incrementUnread } from '../client/unread.js';
import {
  applyStatus,
  isExpired,
  markUpTo,
  mergeItems,
  newestSeq,
  setRead,
  supersededBy,
  unseenOf,
  visibleItems,
  withoutItem,
} from './state.js';

/** @typedef {import('../notify-client.js').NotificationClient} NotificationClient */
/** @typedef {import('../notify-client.js').InboxNotification} InboxItem */
/** @typedef {import('../notify-client.js').NotificationData} NotificationData */
/** @typedef {import('../notify-client.js').NotificationAction} NotificationAction */
/** @typedef {import('../notify-client.js').NotificationMessage} NotificationMessage */
/** @typedef {import('../notify-client.js').StatusMessage} StatusMessage */

/**
 * @typedef {{
 *   changed: () => void,
 *   toast: (n: NotificationData) => void,
 *   notification: (m: NotificationMessage) => void,
 *   replaced: (ids: string[], by: string) => void,
 *   failed: (what: string, error: unknown, quiet: boolean) => void,
 * }} ControllerHooks
 * changed: something shown changed (render); toast: a live or returning
 * notification that is high or critical; replaced: list items superseded by a newer one of their
 * collapse key; failed: a call the server refused or a page that did not
 * load (quiet: a background call the user did not ask for).
 */

/** @param {unknown} e */
function messageOf(e) {
  return e instanceof Error ? e.message : String(e);
}

export class InboxController {
  /**
   * @param {{client: NotificationClient, pageSize: number, hooks: ControllerHooks, now?: () => number}} deps
   */
  constructor({ client, pageSize, hooks, now = () => Date.now() }) {
    this.client = client;
    this.pageSize = pageSize;
    this.hooks = hooks;
    this.now = now;
    /** @type {InboxItem[]} newest first, unexpired */
    this.items = [];
    /** @type {number | null} the next (older) history page */
    this.nextCursor = null;
    this.loaded = false;
    this.loading = false;
    /** @type {string | null} why the last page did not load */
    this.loadError = null;
    /** Bumped by every reload and by stop(), so an older page answer is dropped. */
    this.loadGen = 0;
    /** @type {{count: number | null, hasMore: boolean}} */
    this.unseen = { count: null, hasMore: false };
    /** The seen mark last posted. */
    this.seenUpTo = 0;
    /** The popover is open: what arrives is seen at once. */
    this.isOpen = false;
    /** @type {(() => void)[]} */
    this.cleanups = [];
    this.stopped = false;
  }

  /** Starts listening to the client and asks for the counts. */
  start() {
    const c = this.client;
    this.cleanups.push(
      c.listen({
        onNotification: (m) => this.onNotification(m),
        onStatus: (m) => this.onStatus(m),
        onConnected: () => this.refreshCounts(),
      }),
      c.subscribe(() => this.hooks.changed()),
    );
    this.refreshCounts();
  }

  /** Stops listening; answers still on their way are dropped. */
  stop() {
    for (const f of this.cleanups.splice(0)) f();
    this.loadGen++;
    this.stopped = true;
  }

  /** The unread count: the client's (the same in every tab). */
  get unread() {
    return { count: this.client.unreadCount, hasMore: this.client.unreadHasMore };
  }

  /** The popover opened: load the first page if needed, mark everything seen. */
  open() {
    this.isOpen = true;
    if (!this.loaded && !this.loading) void this.load(true);
    this.markSeen();
  }

  close() {
    this.isOpen = false;
  }

  /** The items to show now (expired ones dropped). */
  visible() {
    this.items = visibleItems(this.items, this.now());
    return this.items;
  }

  /** The newest seq this browser knows of: the list's or the stream's. */
  newest() {
    return Math.max(newestSeq(this.items) ?? 0, Number(this.client.lastEventId) || 0);
  }

  /** Everything up to the newest known notification is seen (POST …/seen, in the background). */
  markSeen() {
    const upTo = this.newest();
    if (upTo <= 0 || upTo <= this.seenUpTo) return;
    this.seenUpTo = upTo;
    this.items = markUpTo(this.items, 'seen', upTo);
    this.unseen = { count: 0, hasMore: false };
    this.hooks.changed();
    this.client.markSeen(upTo).catch((e) => this.hooks.failed('mark as seen', e, true));
  }

  /** Whether scrolling to the end should load another page. */
  hasMore() {
    return this.loaded && !this.loading && this.loadError === null && this.nextCursor !== null;
  }

  /**
   * Loads the next page of history, or the first one again (reset: the list
   * is replaced by the server's, keeping what arrived live meanwhile).
   * @param {boolean} reset
   */
  async load(reset) {
    if ((!reset && !this.hasMore() && this.loaded) || (this.loading && !reset)) return;
    const gen = reset ? ++this.loadGen : this.loadGen;
    this.loading = true;
    this.loadError = null;
    this.hooks.changed();
    try {
      const page = await this.client.fetchHistory({ before: reset ? null : this.nextCursor, limit: this.pageSize });
      if (gen !== this.loadGen) return;
      const top = page.notifications[0]?.seq ?? Infinity;
      this.items = mergeItems(reset ? this.items.filter((i) => i.seq > top) : this.items, page.notifications);
      this.nextCursor = page.nextCursor;
      this.loaded = true;
    } catch (e) {
      if (gen !== this.loadGen) return;
      this.loadError = messageOf(e);
      this.hooks.failed('load notifications', e, true);
    }
    this.loading = false;
    if (this.isOpen) this.markSeen();
    this.hooks.changed();
  }

  /** "Try again" after a page failed to load. */
  retry() {
    this.loadError = null;
    return this.load(!this.loaded);
  }

  /** The unseen count from the server (the unread one is the client's). */
  refreshCounts() {
    const gen = this.loadGen;
    this.client.fetchUnreadCount().then(
      (c) => {
        const u = unseenOf(c);
        if (!u || gen !== this.loadGen || this.stopped) return;
        this.unseen = this.isOpen ? { count: 0, hasMore: false } : u;
        this.hooks.changed();
      },
      () => {}, // the next status message brings the counts
    );
  }

  /** @param {NotificationMessage} m */
  onNotification(m) {
    if (m.fromSnooze) return; // onStatus brought it back, with the counts
    const d = m.data;
    if (!d || typeof d.id !== 'string' || isExpired(d, this.now())) return;
    const replaced = supersededBy(this.items, d);
    this.items = mergeItems(this.items, [d], { live: true });
    if (replaced.length > 0) this.hooks.replaced(replaced, d.id);
    if (this.isOpen) this.markSeen();
    else this.unseen = incrementUnread(this.unseen);
    this.toast(d);
    this.hooks.notification(m);
    this.hooks.changed();
  }

  /** @param {NotificationData} n */
  toast(n) {
    if (n.severity === 'high' || n.severity === 'critical') this.hooks.toast(n);
  }

  /** @param {StatusMessage} m */
  onStatus(m) {
    const data = m.data;
    if (!data) return;
    const u = unseenOf(data);
    if (u) this.unseen = u;
    if (data.change) {
      const r = applyStatus(this.items, data);
      this.items = r.items;
      if (r.returned) {
        this.toast(r.returned);
        if (this.isOpen) this.markSeen();
      }
      if (r.reload && this.loaded) void this.load(true);
    }
    this.hooks.changed();
  }

  /**
   * Changes the list at once, calls the server, and puts the list back if it refuses.
   * @param {string} what for the error message
   * @param {(items: InboxItem[]) => InboxItem[]} change
   * @param {() => Promise<unknown>} call
   * @param {(items: InboxItem[], before: InboxItem[]) => InboxItem[]} undo
   */
  async optimistic(what, change, call, undo) {
    const before = this.items;
    this.items = change(this.items);
    this.hooks.changed();
    try {
      await call();
      return true;
    } catch (e) {
      this.items = undo(this.items, before);
      this.hooks.failed(what, e, false);
      this.hooks.changed();
      return false;
    }
  }

  /** @param {string} id */
  toggleRead(id) {
    const item = this.items.find((i) => i.id === id);
    if (!item) return Promise.resolve(false);
    const read = !item.read;
    return this.optimistic(
      read ? 'mark as read' : 'mark as unread',
      (items) => setRead(items, id, read),
      () => (read ? this.client.markRead(id) : this.client.markUnread(id)),
      (items) => setRead(items, id, !read),
    );
  }

  /**
   * Removes an item (archive or snooze); it comes back if the server refuses.
   * @param {string} id
   * @param {'archive' | 'snooze'} what
   * @param {Date} [until] for snooze
   */
  remove(id, what, until) {
    const item = this.items.find((i) => i.id === id);
    if (!item) return Promise.resolve(false);
    return this.optimistic(
      what,
      (items) => withoutItem(items, id),
      () => (what === 'archive' ? this.client.archive(id) : this.client.snooze(id, until ?? new Date(this.now() + 3600_000))),
      (items) => mergeItems(items, [item]),
    );
  }

  /**
   * A click on one of an item's actions: read at once, recorded on the server.
   * @param {string} id
   * @param {string} actionId
   * @returns {Promise<{item: InboxItem, action: NotificationAction} | null>} null: no such item or action
   */
  async interact(id, actionId) {
    const item = this.items.find((i) => i.id === id);
    const action = item?.actions?.find((a) => a.id === actionId);
    if (!item || !action) return null;
    const at = new Date(this.now()).toISOString();
    await this.optimistic(
      'record the click',
      (items) => setRead(items, id, true, at).map((i) => (i.id === id ? { ...i, interactedAt: at, interaction: actionId } : i)),
      () => this.client.interact(id, actionId),
      (items) => items.map((i) => (i.id === id ? item : i)),
    );
    return { item, action };
  }

  /** Everything up to the newest known notification read. */
  markAllRead() {
    const upTo = this.newest();
    if (upTo <= 0) return Promise.resolve(false);
    return this.optimistic(
      'mark all read',
      (items) => markUpTo(items, 'read', upTo),
      () => this.client.markAllRead(upTo),
      (_items, before) => before,
    );
  }
}
