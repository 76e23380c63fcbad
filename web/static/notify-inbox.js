// <notify-inbox>: a drop-in notification inbox for any page.
//
//   <script type="module" src="/static/notify-inbox.js"></script>
//   <notify-inbox></notify-inbox>
//
// A bell with the unread badge (red while some are unseen), a popover with
// the user's inbox (infinite scroll, mark read/unread, mark all read,
// archive, snooze, action buttons) and toasts for live `high` and `critical`
// notifications. Opening the popover marks everything up to the newest
// notification seen (POST …/seen).
//
// The stream is the client's (notify-client.js): one stream per browser
// through its tab leadership, de-duplicated and resumed. The element makes
// its own client from its attributes (`url`, `api`, `with-credentials`), or
// uses a page's one assigned to its `client` property before it connects
// (the monitoring page does, so the page and its bell share one client).
// Every change made anywhere (another tab, device or node) comes back as a
// `status` message and updates the badge and the list; the list logic is in
// inbox/state.js, the DOM in inbox/view.js, the style in inbox/styles.js.
//
// Events (bubbling, composed): notify-open, notify-close,
// notify-notification {message}, notify-action {notification, action}
// (cancelable: the default follows the action's url), notify-error {error},
// notify-unread {count, hasMore, unseen, unseenHasMore}.
// Types: notify-inbox.d.ts.

import { createNotificationClient } from './notify-client.js';
import { incrementUnread, unreadLabel } from './client/unread.js';
import {
  applyStatus,
  isExpired,
  markUpTo,
  mergeItems,
  newestSeq,
  nextExpiryIn,
  setRead,
  supersededBy,
  unseenOf,
  visibleItems,
  withoutItem,
} from './inbox/state.js';
import { STYLES } from './inbox/styles.js';
import { snoozeChoices } from './inbox/time.js';
import { emptyView, errorView, h, itemView, safeUrl, skeleton, toastView } from './inbox/view.js';

/** @typedef {import('./notify-client.js').NotificationClient} NotificationClient */
/** @typedef {import('./notify-client.js').InboxNotification} InboxItem */
/** @typedef {import('./notify-client.js').NotificationData} NotificationData */
/** @typedef {import('./notify-client.js').NotificationMessage} NotificationMessage */
/** @typedef {import('./notify-client.js').StatusMessage} StatusMessage */

/** History page size (the server's limit is 100). */
const DEFAULT_PAGE_SIZE = 20;
/** A high toast stays this long; a critical one until dismissed. */
const TOAST_MS = 8000;
/** At most this many toasts at once (the oldest goes). */
const MAX_TOASTS = 3;
/** Start loading the next page this close to the list's end (px). */
const SCROLL_SLACK_PX = 120;
/** An action's error stays this long in the popover. */
const ALERT_MS = 6000;
/** Relative times are refreshed this often while the popover is open. */
const TICK_MS = 60000;
/** setTimeout's limit (ms): a later expiry is checked again then. */
const MAX_TIMEOUT = 2 ** 31 - 1;

let instances = 0;

/**
 * @param {unknown} e
 * @returns {string}
 */
function messageOf(e) {
  return e instanceof Error ? e.message : String(e);
}

/**
 * What the element shows, forgotten when it changes client.
 */
function freshView() {
  return {
    /** @type {InboxItem[]} newest first */
    items: [],
    /** @type {number | null} the history's next (older) page */
    nextCursor: /** @type {number | null} */ (null),
    loaded: false,
    loading: false,
    /** @type {string | null} */
    loadError: /** @type {string | null} */ (null),
    /** @type {{count: number | null, hasMore: boolean}} */
    unseen: { count: /** @type {number | null} */ (null), hasMore: false },
    /** @type {string | null} the item keyboard focus is on */
    activeId: /** @type {string | null} */ (null),
    /** @type {string | null} the item whose snooze menu is open */
    snoozeFor: /** @type {string | null} */ (null),
    /** The seen mark this element last posted. */
    seenUpTo: 0,
  };
}

/** @type {CSSStyleSheet | null} one sheet shared by every instance */
let sheet = null;

/**
 * Styles the shadow root with a constructed style sheet, which a page's
 * Content-Security-Policy without 'unsafe-inline' (notifyd's own pages)
 * allows, unlike a <style> element; a <style> element where constructed
 * sheets are not supported.
 * @param {ShadowRoot} root
 */
function adoptStyles(root) {
  if ('adoptedStyleSheets' in root && typeof CSSStyleSheet === 'function' && 'replaceSync' in CSSStyleSheet.prototype) {
    if (!sheet) {
      sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLES);
    }
    root.adoptedStyleSheets = [sheet];
    return;
  }
  const style = document.createElement('style');
  style.textContent = STYLES;
  /** @type {ShadowRoot} */ (root).prepend(style);
}

/** HTMLElement, or a stand-in outside browsers (the module can then be imported, e.g. by node tests of the React wrapper). */
const ElementBase = /** @type {typeof HTMLElement} */ (globalThis.HTMLElement ?? class {});

export class NotifyInboxElement extends ElementBase {
  static observedAttributes = ['url', 'api', 'with-credentials'];

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    const parts = skeleton(`notify-inbox-${++instances}`);
    root.append(parts.bell, parts.panel, parts.toasts);
    adoptStyles(root);
    this.parts = parts;
    /** @type {NotificationClient | null} the page's client (not closed by the element) */
    this.external = null;
    /** @type {NotificationClient | null} */
    this.running = null;
    /** @type {(() => void)[]} */
    this.cleanups = [];
    this.v = freshView();
    /** Bumped by every reload, so an older page answer is dropped. */
    this.loadGen = 0;
    this.isOpen = false;
    /** @type {any} */
    this.expiryTimer = null;
    /** @type {any} */
    this.tickTimer = null;
    /** @type {any} */
    this.alertTimer = null;
    this.renderQueued = false;
    /** A re-render is putting focus back where it was (not a user's move). */
    this.restoringFocus = false;
    /** The badge's numbers last announced (notify-unread). */
    this.lastBadge = '';

    parts.bell.addEventListener('click', () => (this.isOpen ? this.close() : this.open()));
    root.addEventListener('click', (ev) => this.onClick(/** @type {MouseEvent} */ (ev)));
    parts.panel.addEventListener('keydown', (ev) => this.onKey(ev));
    parts.bell.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && this.isOpen) this.close();
    });
    parts.list.addEventListener('scroll', () => this.maybeLoadMore(), { passive: true });
    parts.list.addEventListener('focusin', (ev) => {
      if (this.restoringFocus) return;
      const li = /** @type {HTMLElement} */ (ev.target).closest('li.item');
      if (li) this.v.activeId = li.getAttribute('data-id');
    });
    this.onDocPointer = (/** @type {Event} */ ev) => {
      if (this.isOpen && !ev.composedPath().includes(this)) this.close(false);
    };
  }

  // ---- configuration --------------------------------------------------------

  /** The client the element uses: a page's one, or its own (made from the attributes). */
  get client() {
    return this.running ?? this.external;
  }

  /** Share a page's client (call before the element connects, or it restarts on it). */
  set client(c) {
    this.external = c ?? null;
    if (this.running) {
      this.stop();
      this.start();
    }
  }

  get url() {
    return this.getAttribute('url') || '/api/notifications/ws';
  }

  get api() {
    return this.getAttribute('api') || undefined;
  }

  get withCredentials() {
    const v = this.getAttribute('with-credentials');
    return v !== null && v !== 'false';
  }

  get pageSize() {
    const n = Number(this.getAttribute('page-size'));
    return Number.isInteger(n) && n >= 1 && n <= 100 ? n : DEFAULT_PAGE_SIZE;
  }

  connectedCallback() {
    document.addEventListener('pointerdown', this.onDocPointer, true);
    // A microtask later, so a page can assign `client` right after creating
    // or upgrading the element.
    queueMicrotask(() => {
      if (this.isConnected && !this.running) this.start();
    });
  }

  disconnectedCallback() {
    document.removeEventListener('pointerdown', this.onDocPointer, true);
    this.stop();
  }

  /** @param {string} _name @param {string | null} old @param {string | null} value */
  attributeChangedCallback(_name, old, value) {
    if (old === value || !this.running || this.external) return;
    this.stop();
    this.start();
  }

  start() {
    const client = this.external ?? createNotificationClient({ url: this.url, apiUrl: this.api, withCredentials: this.withCredentials });
    this.running = client;
    const own = client !== this.external;
    this.cleanups.push(
      client.listen({
        onNotification: (m) => this.onNotification(m),
        onStatus: (m) => this.onStatus(m),
        onConnected: () => this.refreshCounts(),
      }),
      client.subscribe(() => this.render()),
      () => {
        if (own) client.close();
      },
    );
    this.refreshCounts();
    this.render();
  }

  stop() {
    for (const c of this.cleanups.splice(0)) c();
    clearTimeout(this.expiryTimer);
    clearTimeout(this.alertTimer);
    clearInterval(this.tickTimer);
    this.running = null;
    this.v = freshView();
    this.loadGen++;
    this.isOpen = false;
    this.parts.panel.hidden = true;
    this.parts.bell.setAttribute('aria-expanded', 'false');
  }

  // ---- opening and closing ------------------------------------------------------

  /** Opens the popover, loads the first page if needed and marks what it shows seen. */
  open() {
    if (this.isOpen || !this.running) return;
    this.isOpen = true;
    this.parts.panel.hidden = false;
    this.parts.bell.setAttribute('aria-expanded', 'true');
    this.renderNow();
    this.focusActive() || this.parts.panel.focus();
    if (!this.v.loaded) void this.load(true);
    this.markSeen();
    this.tickTimer = setInterval(() => this.render(), TICK_MS);
    this.fire('notify-open');
  }

  /**
   * Closes the popover; focus goes back to the bell unless the user clicked elsewhere.
   * @param {boolean} [restoreFocus]
   */
  close(restoreFocus = true) {
    if (!this.isOpen) return;
    this.isOpen = false;
    this.v.snoozeFor = null;
    clearInterval(this.tickTimer);
    this.parts.panel.hidden = true;
    this.parts.bell.setAttribute('aria-expanded', 'false');
    if (restoreFocus) this.parts.bell.focus();
    this.fire('notify-close');
  }

  /** Everything up to the newest notification this browser knows of is seen. */
  markSeen() {
    const client = this.running;
    if (!client) return;
    const upTo = Math.max(newestSeq(this.v.items) ?? 0, Number(client.lastEventId) || 0);
    if (upTo <= 0 || upTo <= this.v.seenUpTo) return;
    this.v.seenUpTo = upTo;
    this.v.items = markUpTo(this.v.items, 'seen', upTo);
    this.v.unseen = { count: 0, hasMore: false };
    this.render();
    // In the background: a failure is an event, not a message to the user.
    client.markSeen(upTo).catch((e) => this.fire('notify-error', { error: e }));
  }

  // ---- loading ---------------------------------------------------------------------

  /**
   * Loads the next page of history, or the first one again (reset).
   * @param {boolean} reset
   */
  async load(reset) {
    const client = this.running;
    if (!client || (this.v.loading && !reset) || (!reset && this.v.loaded && this.v.nextCursor === null)) return;
    const gen = reset ? ++this.loadGen : this.loadGen;
    this.v.loading = true;
    this.v.loadError = null;
    this.render();
    try {
      const page = await client.fetchHistory({ before: reset ? null : this.v.nextCursor, limit: this.pageSize });
      if (gen !== this.loadGen || client !== this.running) return;
      this.v.items = mergeItems(reset ? this.v.items.filter((i) => i.seq > (page.notifications[0]?.seq ?? Infinity)) : this.v.items, page.notifications);
      this.v.nextCursor = page.nextCursor;
      this.v.loaded = true;
    } catch (e) {
      if (gen !== this.loadGen || client !== this.running) return;
      this.v.loadError = messageOf(e);
      this.fire('notify-error', { error: e });
    } finally {
      if (gen === this.loadGen && client === this.running) {
        this.v.loading = false;
        this.renderNow();
      }
    }
    if (this.isOpen) {
      this.markSeen();
      this.maybeLoadMore();
    }
  }

  /** Loads the next page when the list is scrolled near its end (or does not fill the popover). */
  maybeLoadMore() {
    const list = this.parts.list;
    if (!this.isOpen || !this.v.loaded || this.v.loading || this.v.loadError || this.v.nextCursor === null) return;
    if (list.scrollTop + list.clientHeight >= list.scrollHeight - SCROLL_SLACK_PX) void this.load(false);
  }

  /** The counts from the server: the unseen count (the unread one is the client's). */
  refreshCounts() {
    const client = this.running;
    if (!client) return;
    client.fetchUnreadCount().then(
      (c) => {
        const u = unseenOf(c);
        if (u && client === this.running) {
          this.v.unseen = this.isOpen ? { count: 0, hasMore: false } : u;
          this.render();
        }
      },
      () => {}, // the next status message brings the counts
    );
  }

  // ---- the stream -------------------------------------------------------------------

  /** @param {NotificationMessage} m */
  onNotification(m) {
    const d = m.data;
    if (!d || typeof d.id !== 'string' || isExpired(d, Date.now())) return;
    const replaced = supersededBy(this.v.items, d);
    this.v.items = mergeItems(this.v.items, [d], { live: true });
    if (replaced.includes(this.v.activeId ?? '')) this.v.activeId = d.id;
    if (this.isOpen) this.markSeen();
    else this.v.unseen = incrementUnread(this.v.unseen);
    this.toast(d);
    this.fire('notify-notification', { message: m });
    this.render();
  }

  /** @param {StatusMessage} m */
  onStatus(m) {
    const data = m.data;
    if (!data) return;
    const u = unseenOf(data);
    if (u) this.v.unseen = u;
    if (data.change) {
      const r = applyStatus(this.v.items, data);
      this.v.items = r.items;
      if (r.returned) this.toast(r.returned);
      if (r.reload && this.v.loaded) void this.load(true);
      if (this.isOpen && r.returned) this.markSeen();
    }
    this.render();
  }

  // ---- user actions -------------------------------------------------------------------

  /** @param {MouseEvent} ev */
  onClick(ev) {
    const target = /** @type {HTMLElement} */ (ev.target);
    const button = target.closest('[data-act]');
    if (!button) return;
    const act = button.getAttribute('data-act');
    const li = button.closest('li.item');
    const id = li?.getAttribute('data-id') ?? '';
    switch (act) {
      case 'read':
        return void this.toggleRead(id);
      case 'archive':
        return void this.change(id, 'archive', (c) => c.archive(id));
      case 'snooze':
        this.v.snoozeFor = this.v.snoozeFor === id ? null : id;
        this.renderNow();
        if (this.v.snoozeFor) /** @type {HTMLElement | null} */ (this.parts.list.querySelector(`li[data-id="${CSS.escape(id)}"] [role=menuitem]`))?.focus();
        return;
      case 'snooze-choice': {
        const choice = snoozeChoices(Date.now()).find((c) => c.id === button.getAttribute('data-choice'));
        this.v.snoozeFor = null;
        if (choice) void this.change(id, 'snooze', (c) => c.snooze(id, choice.until));
        return;
      }
      case 'action':
        return void this.interact(id, button.getAttribute('data-action') ?? '');
      case 'mark-all':
        return void this.markAllRead();
      case 'retry':
        return void this.load(!this.v.loaded);
      case 'toast-close':
        return button.closest('.toast')?.remove();
      case 'toast-open':
        button.closest('.toast')?.remove();
        return this.open();
    }
  }

  /** @param {string} id */
  async toggleRead(id) {
    const item = this.v.items.find((i) => i.id === id);
    const client = this.running;
    if (!item || !client) return;
    const read = !item.read;
    this.v.items = setRead(this.v.items, id, read);
    this.renderNow();
    try {
      await (read ? client.markRead(id) : client.markUnread(id));
    } catch (e) {
      this.v.items = setRead(this.v.items, id, !read);
      this.failed(read ? 'mark as read' : 'mark as unread', e);
    }
  }

  /**
   * Removes an item at once (archive, snooze) and puts it back if the server refuses.
   * @param {string} id
   * @param {string} what
   * @param {(c: NotificationClient) => Promise<void>} call
   */
  async change(id, what, call) {
    const client = this.running;
    const index = this.v.items.findIndex((i) => i.id === id);
    if (!client || index < 0) return;
    const removed = this.v.items[index];
    const shown = visibleItems(this.v.items, Date.now());
    const pos = shown.findIndex((i) => i.id === id);
    this.v.activeId = (shown[pos + 1] ?? shown[pos - 1])?.id ?? null;
    this.v.items = withoutItem(this.v.items, id);
    this.renderNow();
    if (!this.focusActive()) this.parts.panel.focus();
    try {
      await call(client);
    } catch (e) {
      this.v.items = mergeItems(this.v.items, [removed]);
      this.failed(what, e);
    }
  }

  /**
   * @param {string} id
   * @param {string} actionId
   */
  async interact(id, actionId) {
    const client = this.running;
    const item = this.v.items.find((i) => i.id === id);
    const action = item?.actions?.find((a) => a.id === actionId);
    if (!client || !item || !action) return;
    const before = this.v.items;
    const at = new Date().toISOString();
    this.v.items = setRead(this.v.items, id, true, at).map((i) => (i.id === id ? { ...i, interactedAt: at, interaction: actionId } : i));
    this.renderNow();
    try {
      await client.interact(id, actionId);
    } catch (e) {
      this.v.items = before;
      this.failed('record the click', e);
    }
    const go = this.fire('notify-action', { notification: item, action }, true);
    const href = safeUrl(action.url, location.href);
    if (go && href) location.assign(href);
  }

  async markAllRead() {
    const client = this.running;
    if (!client) return;
    const upTo = Math.max(newestSeq(this.v.items) ?? 0, Number(client.lastEventId) || 0);
    if (upTo <= 0) return;
    const before = this.v.items;
    this.v.items = markUpTo(this.v.items, 'read', upTo);
    this.renderNow();
    try {
      await client.markAllRead(upTo);
    } catch (e) {
      this.v.items = before;
      this.failed('mark all read', e);
    }
  }

  /**
   * An action the server refused: said in the popover and as notify-error.
   * @param {string} what
   * @param {unknown} e
   */
  failed(what, e) {
    const alert = /** @type {HTMLElement} */ (this.parts.panel.querySelector('.alert'));
    alert.textContent = `Couldn’t ${what}: ${messageOf(e)}`;
    clearTimeout(this.alertTimer);
    this.alertTimer = setTimeout(() => (alert.textContent = ''), ALERT_MS);
    this.fire('notify-error', { error: e });
    this.render();
  }

  /** @param {KeyboardEvent} ev */
  onKey(ev) {
    const target = /** @type {HTMLElement} */ (ev.target);
    if (ev.key === 'Escape') {
      ev.preventDefault();
      if (this.v.snoozeFor) {
        const id = this.v.snoozeFor;
        this.v.snoozeFor = null;
        this.renderNow();
        /** @type {HTMLElement | null} */ (this.parts.list.querySelector(`li[data-id="${CSS.escape(id)}"] [data-act=snooze]`))?.focus();
      } else this.close();
      return;
    }
    const menuItem = target.closest('[role=menuitem]');
    const li = target.closest('li.item');
    const moves = { ArrowDown: 1, ArrowUp: -1, Home: -Infinity, End: Infinity };
    if (!(ev.key in moves) || !li) {
      if ((ev.key === 'Enter' || ev.key === ' ') && target === li && li.getAttribute('data-read') === 'false') {
        ev.preventDefault();
        void this.toggleRead(li.getAttribute('data-id') ?? '');
      }
      return;
    }
    ev.preventDefault();
    const step = moves[/** @type {keyof typeof moves} */ (ev.key)];
    const within = menuItem ? [...li.querySelectorAll('[role=menuitem]')] : [...this.parts.list.querySelectorAll('li.item')];
    const from = within.indexOf(menuItem ?? li);
    const to = Math.max(0, Math.min(within.length - 1, Number.isFinite(step) ? from + step : step < 0 ? 0 : within.length - 1));
    const next = /** @type {HTMLElement} */ (within[to]);
    if (menuItem) {
      next.focus();
      return;
    }
    const id = next.getAttribute('data-id');
    this.v.activeId = id;
    this.renderNow();
    /** @type {HTMLElement | null} */ (this.parts.list.querySelector(`li[data-id="${CSS.escape(id ?? '')}"]`))?.focus();
  }

  /** Focuses the active item; false when there is none. */
  focusActive() {
    const li = /** @type {HTMLElement | null} */ (this.parts.list.querySelector('li.item[tabindex="0"]'));
    li?.focus();
    return li !== null;
  }

  // ---- toasts ---------------------------------------------------------------------

  /** @param {NotificationData} n */
  toast(n) {
    if ((n.severity !== 'high' && n.severity !== 'critical') || this.hasAttribute('no-toasts')) return;
    const region = this.parts.toasts;
    while (region.children.length >= MAX_TOASTS) region.firstElementChild?.remove();
    const t = toastView(n);
    region.append(t);
    if (n.severity !== 'critical') setTimeout(() => t.remove(), TOAST_MS);
  }

  // ---- rendering ---------------------------------------------------------------------

  /**
   * Dispatches a bubbling, composed event; false when a listener cancelled it.
   * @param {string} type
   * @param {Record<string, unknown>} [detail]
   * @param {boolean} [cancelable]
   */
  fire(type, detail = {}, cancelable = false) {
    return this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true, cancelable }));
  }

  render() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    queueMicrotask(() => this.renderNow());
  }

  renderNow() {
    this.renderQueued = false;
    this.renderBadge();
    this.renderList();
  }

  renderBadge() {
    const client = this.running;
    const count = client ? client.unreadCount : null;
    const hasMore = client ? client.unreadHasMore : false;
    const { bell } = this.parts;
    const badge = /** @type {HTMLElement} */ (bell.querySelector('.badge'));
    const text = count ? unreadLabel(count, hasMore) : '';
    const unseen = this.v.unseen.count ?? 0;
    badge.textContent = text;
    badge.hidden = text === '';
    bell.toggleAttribute('data-unread', text !== '');
    bell.toggleAttribute('data-unseen', unseen > 0);
    this.setAttribute('data-unread', count === null ? '' : String(count));
    this.setAttribute('data-unseen', this.v.unseen.count === null ? '' : String(unseen));
    const label = ['Notifications'];
    if (text) label.push(`${text} unread`);
    if (unseen > 0) label.push(`${unreadLabel(unseen, this.v.unseen.hasMore)} new`);
    /** @type {HTMLElement} */ (bell.querySelector('.bell-label')).textContent = label.join(', ');
    const key = [count, hasMore, this.v.unseen.count, this.v.unseen.hasMore].join();
    if (key !== this.lastBadge) {
      this.lastBadge = key;
      this.fire('notify-unread', { count, hasMore, unseen: this.v.unseen.count, unseenHasMore: this.v.unseen.hasMore });
    }
  }

  renderList() {
    const { list, panel } = this.parts;
    const now = Date.now();
    this.v.items = visibleItems(this.v.items, now);
    this.scheduleExpiry(now);
    if (!this.isOpen) return;
    const shown = this.v.items;
    if (!shown.some((i) => i.id === this.v.activeId)) this.v.activeId = shown[0]?.id ?? null;
    if (!shown.some((i) => i.id === this.v.snoozeFor)) this.v.snoozeFor = null;
    // Keep focus on the same control across the re-render.
    const focused = /** @type {HTMLElement | null} */ (this.shadowRoot?.activeElement ?? null);
    const focusLi = focused?.closest('li.item')?.getAttribute('data-id');
    const focusKey = focused?.getAttribute('data-focus');
    list.replaceChildren(
      ...shown.map((n, index) =>
        itemView(n, { now, index, size: this.v.nextCursor === null ? shown.length : -1, active: n.id === this.v.activeId, snoozeOpen: n.id === this.v.snoozeFor }),
      ),
    );
    if (focusLi && focusKey) {
      const li = list.querySelector(`li[data-id="${CSS.escape(focusLi)}"]`);
      const el = focusKey === 'item' ? li : li?.querySelector(`[data-focus="${CSS.escape(focusKey)}"]`);
      this.restoringFocus = true;
      /** @type {HTMLElement | null | undefined} */ (el)?.focus();
      this.restoringFocus = false;
    }
    list.setAttribute('aria-busy', String(this.v.loading));
    list.hidden = shown.length === 0;
    const box = /** @type {HTMLElement} */ (panel.querySelector('.state-box'));
    if (this.v.loadError && shown.length === 0) box.replaceChildren(errorView(this.v.loadError));
    else if (this.v.loaded && shown.length === 0 && !this.v.loading) box.replaceChildren(emptyView());
    else box.replaceChildren();
    const foot = /** @type {HTMLElement} */ (panel.querySelector('.foot'));
    if (this.v.loading) foot.textContent = 'Loading…';
    else if (this.v.loadError && shown.length > 0) {
      foot.replaceChildren(`Couldn’t load more: ${this.v.loadError} `, h('button', { class: 'text-button', type: 'button', 'data-act': 'retry' }, 'Try again'));
    } else foot.textContent = '';
    const markAll = /** @type {HTMLButtonElement} */ (panel.querySelector('[data-act=mark-all]'));
    markAll.disabled = !shown.some((i) => !i.read);
    const state = this.running?.state;
    /** @type {HTMLElement} */ (panel.querySelector('.conn')).textContent = state && state !== 'open' ? state === 'closed' ? 'offline' : 'reconnecting…' : '';
  }

  /** @param {number} now */
  scheduleExpiry(now) {
    clearTimeout(this.expiryTimer);
    const wait = nextExpiryIn(this.v.items, now);
    if (wait !== null) this.expiryTimer = setTimeout(() => this.render(), Math.min(wait + 50, MAX_TIMEOUT));
  }
}

if (typeof customElements !== 'undefined' && !customElements.get('notify-inbox')) {
  customElements.define('notify-inbox', NotifyInboxElement);
}
