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
//
// This module is the element: attributes, lifecycle, focus, keyboard, events
// and rendering. What it shows and how the stream and the user's actions
// change it is inbox/controller.js (list rules in inbox/state.js); the DOM
// builders are inbox/view.js, the style inbox/styles.js.
//
// Events (bubbling, composed): notify-open, notify-close,
// notify-notification {message}, notify-action {notification, action}
// (cancelable: the default follows the action's url), notify-error {error},
// notify-unread {count, hasMore, unseen, unseenHasMore}.
// Types: notify-inbox.d.ts.

import { createNotificationClient } from './notify-client.js';
import { unreadLabel } from './client/unread.js';
import { InboxController } from './inbox/controller.js';
import { nextExpiryIn } from './inbox/state.js';
import { adoptStyles } from './inbox/styles.js';
import { snoozeChoices } from './inbox/time.js';
import { emptyView, errorView, h, itemView, safeUrl, skeleton, toastView } from './inbox/view.js';

/** @typedef {import('./notify-client.js').NotificationClient} NotificationClient */
/** @typedef {import('./notify-client.js').NotificationData} NotificationData */

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
/** Keys that move focus in the list (or the snooze menu), and by how much. */
const MOVES = { ArrowDown: 1, ArrowUp: -1, Home: -Infinity, End: Infinity };

let instances = 0;

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
    /** @type {InboxController | null} */
    this.ctl = null;
    /** @type {(() => void) | null} closes a client the element made */
    this.closeOwn = null;
    /** @type {string | null} the item keyboard focus is on (the list's one tab stop) */
    this.activeId = null;
    /** @type {string | null} the item whose snooze menu is open */
    this.snoozeFor = null;
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
    parts.bell.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && this.isOpen) this.close();
    });
    root.addEventListener('click', (ev) => this.onClick(/** @type {MouseEvent} */ (ev)));
    parts.panel.addEventListener('keydown', (ev) => this.onKey(ev));
    parts.list.addEventListener('scroll', () => this.maybeLoadMore(), { passive: true });
    parts.list.addEventListener('focusin', (ev) => {
      if (this.restoringFocus) return;
      const li = /** @type {HTMLElement} */ (ev.target).closest('li.item');
      if (li) this.activeId = li.getAttribute('data-id');
    });
    this.onDocPointer = (/** @type {Event} */ ev) => {
      if (this.isOpen && !ev.composedPath().includes(this)) this.close(false);
    };
  }

  // ---- configuration --------------------------------------------------------

  /** The client the element uses: a page's one, or its own (made from the attributes). */
  get client() {
    return this.ctl?.client ?? this.external;
  }

  /** Share a page's client (set it before the element connects, or it restarts on it). */
  set client(c) {
    this.external = c ?? null;
    if (this.ctl) {
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

  get isOpen() {
    return this.ctl?.isOpen ?? false;
  }

  connectedCallback() {
    document.addEventListener('pointerdown', this.onDocPointer, true);
    // A microtask later, so a page can assign `client` right after creating
    // or upgrading the element.
    queueMicrotask(() => {
      if (this.isConnected && !this.ctl) this.start();
    });
  }

  disconnectedCallback() {
    document.removeEventListener('pointerdown', this.onDocPointer, true);
    this.stop();
  }

  /** @param {string} _name @param {string | null} old @param {string | null} value */
  attributeChangedCallback(_name, old, value) {
    if (old === value || !this.ctl || this.external) return;
    this.stop();
    this.start();
  }

  start() {
    const client = this.external ?? createNotificationClient({ url: this.url, apiUrl: this.api, withCredentials: this.withCredentials });
    this.closeOwn = client === this.external ? null : () => client.close();
    this.ctl = new InboxController({
      client,
      pageSize: this.pageSize,
      hooks: {
        changed: () => this.render(),
        toast: (n) => this.toast(n),
        notification: (message) => this.fire('notify-notification', { message }),
        replaced: (ids, by) => {
          if (ids.includes(this.activeId ?? '')) this.activeId = by;
        },
        failed: (what, error, quiet) => this.failed(what, error, quiet),
      },
    });
    this.ctl.start();
    this.render();
  }

  stop() {
    if (this.isOpen) this.close(false);
    this.ctl?.stop();
    this.ctl = null;
    this.closeOwn?.();
    this.closeOwn = null;
    clearTimeout(this.expiryTimer);
    clearTimeout(this.alertTimer);
    this.activeId = null;
    this.snoozeFor = null;
  }

  // ---- opening and closing ------------------------------------------------------

  /** Opens the popover, loads the first page if needed and marks what it shows seen. */
  open() {
    const ctl = this.ctl;
    if (!ctl || ctl.isOpen) return;
    ctl.open();
    this.parts.panel.hidden = false;
    this.parts.bell.setAttribute('aria-expanded', 'true');
    this.renderNow();
    this.focusActive() || this.parts.panel.focus();
    this.tickTimer = setInterval(() => this.render(), TICK_MS);
    this.fire('notify-open');
  }

  /**
   * Closes the popover; focus goes back to the bell unless the user clicked elsewhere.
   * @param {boolean} [restoreFocus]
   */
  close(restoreFocus = true) {
    if (!this.ctl?.isOpen) return;
    this.ctl.close();
    this.snoozeFor = null;
    clearInterval(this.tickTimer);
    this.parts.panel.hidden = true;
    this.parts.bell.setAttribute('aria-expanded', 'false');
    if (restoreFocus) this.parts.bell.focus();
    this.fire('notify-close');
  }

  /** Marks everything up to the newest known notification read. */
  async markAllRead() {
    await this.ctl?.markAllRead();
  }

  /** Loads the next page when the list is scrolled near its end (or does not fill the popover). */
  maybeLoadMore() {
    const list = this.parts.list;
    if (!this.isOpen || !this.ctl?.hasMore()) return;
    if (list.scrollTop + list.clientHeight >= list.scrollHeight - SCROLL_SLACK_PX) void this.ctl.load(false);
  }

  // ---- user actions -------------------------------------------------------------------

  /** @param {MouseEvent} ev */
  onClick(ev) {
    const button = /** @type {HTMLElement} */ (ev.target).closest('[data-act]');
    const ctl = this.ctl;
    if (!button || !ctl) return;
    const id = button.closest('li.item')?.getAttribute('data-id') ?? '';
    switch (button.getAttribute('data-act')) {
      case 'read':
        return void ctl.toggleRead(id);
      case 'archive':
        return this.removeItem(id, 'archive');
      case 'snooze':
        this.snoozeFor = this.snoozeFor === id ? null : id;
        this.renderNow();
        if (this.snoozeFor) this.focusIn(id, '[role=menuitem]');
        return;
      case 'snooze-choice': {
        const choice = snoozeChoices(Date.now()).find((c) => c.id === button.getAttribute('data-choice'));
        this.snoozeFor = null;
        if (choice) this.removeItem(id, 'snooze', choice.until);
        return;
      }
      case 'action':
        return void this.interact(id, button.getAttribute('data-action') ?? '');
      case 'mark-all':
        return void ctl.markAllRead();
      case 'retry':
        return void ctl.retry();
      case 'toast-close':
        return button.closest('.toast')?.remove();
      case 'toast-open':
        button.closest('.toast')?.remove();
        return this.open();
    }
  }

  /**
   * Archives or snoozes an item; keyboard focus moves to its neighbour.
   * @param {string} id
   * @param {'archive' | 'snooze'} what
   * @param {Date} [until]
   */
  removeItem(id, what, until) {
    const ctl = /** @type {InboxController} */ (this.ctl);
    const shown = ctl.visible();
    const pos = shown.findIndex((i) => i.id === id);
    this.activeId = (shown[pos + 1] ?? shown[pos - 1])?.id ?? null;
    void ctl.remove(id, what, until);
    this.renderNow();
    if (!this.focusActive()) this.parts.panel.focus();
  }

  /**
   * @param {string} id
   * @param {string} actionId
   */
  async interact(id, actionId) {
    const clicked = await this.ctl?.interact(id, actionId);
    if (!clicked) return;
    const go = this.fire('notify-action', { notification: clicked.item, action: clicked.action }, true);
    const href = safeUrl(clicked.action.url, location.href);
    if (go && href) location.assign(href);
  }

  /**
   * A call that failed: said in the popover (unless quiet) and as notify-error.
   * @param {string} what
   * @param {unknown} error
   * @param {boolean} quiet
   */
  failed(what, error, quiet) {
    if (!quiet) {
      const alert = /** @type {HTMLElement} */ (this.parts.panel.querySelector('.alert'));
      alert.textContent = `Couldn’t ${what}: ${error instanceof Error ? error.message : String(error)}`;
      clearTimeout(this.alertTimer);
      this.alertTimer = setTimeout(() => (alert.textContent = ''), ALERT_MS);
    }
    this.fire('notify-error', { error });
  }

  /** @param {KeyboardEvent} ev */
  onKey(ev) {
    const target = /** @type {HTMLElement} */ (ev.target);
    if (ev.key === 'Escape') {
      ev.preventDefault();
      const id = this.snoozeFor;
      if (id === null) return this.close();
      this.snoozeFor = null;
      this.renderNow();
      return this.focusIn(id, '[data-act=snooze]');
    }
    const li = target.closest('li.item');
    if (!li) return;
    if (!(ev.key in MOVES)) {
      if ((ev.key === 'Enter' || ev.key === ' ') && target === li && li.getAttribute('data-read') === 'false') {
        ev.preventDefault();
        void this.ctl?.toggleRead(li.getAttribute('data-id') ?? '');
      }
      return;
    }
    ev.preventDefault();
    const step = MOVES[/** @type {keyof typeof MOVES} */ (ev.key)];
    const menuItem = target.closest('[role=menuitem]');
    const within = [...(menuItem ? li.querySelectorAll('[role=menuitem]') : this.parts.list.querySelectorAll('li.item'))];
    const from = within.indexOf(menuItem ?? li);
    const to = Math.max(0, Math.min(within.length - 1, Number.isFinite(step) ? from + step : step < 0 ? 0 : within.length - 1));
    const next = /** @type {HTMLElement} */ (within[to]);
    if (menuItem) return next.focus();
    this.activeId = next.getAttribute('data-id');
    this.renderNow();
    this.focusIn(this.activeId ?? '', null);
  }

  /**
   * Focuses an item (control null) or a control inside it.
   * @param {string} id
   * @param {string | null} control
   */
  focusIn(id, control) {
    const li = this.parts.list.querySelector(`li[data-id="${CSS.escape(id)}"]`);
    /** @type {HTMLElement | null | undefined} */ (control ? li?.querySelector(control) : li)?.focus();
  }

  /** Focuses the active item; false when there is none. */
  focusActive() {
    const li = /** @type {HTMLElement | null} */ (this.parts.list.querySelector('li.item[tabindex="0"]'));
    li?.focus();
    return li !== null;
  }

  /** @param {NotificationData} n */
  toast(n) {
    if (this.hasAttribute('no-toasts')) return;
    const region = this.parts.toasts;
    while (region.children.length >= MAX_TOASTS) region.firstElementChild?.remove();
    const t = toastView(n);
    region.append(t);
    if (n.severity !== 'critical') setTimeout(() => t.remove(), TOAST_MS);
  }

  /**
   * Dispatches a bubbling, composed event; false when a listener cancelled it.
   * @param {string} type
   * @param {Record<string, unknown>} [detail]
   * @param {boolean} [cancelable]
   */
  fire(type, detail = {}, cancelable = false) {
    return this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true, cancelable }));
  }

  // ---- rendering ---------------------------------------------------------------------

  render() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    queueMicrotask(() => this.renderNow());
  }

  renderNow() {
    this.renderQueued = false;
    if (!this.ctl) return;
    this.renderBadge(this.ctl);
    this.renderList(this.ctl);
  }

  /** @param {InboxController} ctl */
  renderBadge(ctl) {
    const { count, hasMore } = ctl.unread;
    const unseen = ctl.unseen;
    const { bell } = this.parts;
    const badge = /** @type {HTMLElement} */ (bell.querySelector('.badge'));
    const text = count ? unreadLabel(count, hasMore) : '';
    badge.textContent = text;
    badge.hidden = text === '';
    bell.toggleAttribute('data-unread', text !== '');
    bell.toggleAttribute('data-unseen', (unseen.count ?? 0) > 0);
    this.setAttribute('data-unread', count === null ? '' : String(count));
    this.setAttribute('data-unseen', unseen.count === null ? '' : String(unseen.count));
    const label = ['Notifications'];
    if (text) label.push(`${text} unread`);
    if (unseen.count) label.push(`${unreadLabel(unseen.count, unseen.hasMore)} new`);
    /** @type {HTMLElement} */ (bell.querySelector('.bell-label')).textContent = label.join(', ');
    const key = [count, hasMore, unseen.count, unseen.hasMore].join();
    if (key !== this.lastBadge) {
      this.lastBadge = key;
      this.fire('notify-unread', { count, hasMore, unseen: unseen.count, unseenHasMore: unseen.hasMore });
    }
  }

  /** @param {InboxController} ctl */
  renderList(ctl) {
    const { list, panel } = this.parts;
    const now = Date.now();
    const shown = ctl.visible();
    this.scheduleExpiry(now, ctl);
    if (!ctl.isOpen) return;
    if (!shown.some((i) => i.id === this.activeId)) this.activeId = shown[0]?.id ?? null;
    if (!shown.some((i) => i.id === this.snoozeFor)) this.snoozeFor = null;
    // Keep focus on the same control across the re-render.
    const focused = /** @type {HTMLElement | null} */ (this.shadowRoot?.activeElement ?? null);
    const focusLi = focused?.closest('li.item')?.getAttribute('data-id');
    const focusKey = focused?.getAttribute('data-focus');
    const size = ctl.nextCursor === null ? shown.length : -1;
    list.replaceChildren(
      ...shown.map((n, index) => itemView(n, { now, index, size, active: n.id === this.activeId, snoozeOpen: n.id === this.snoozeFor })),
    );
    if (focusLi && focusKey) {
      this.restoringFocus = true;
      this.focusIn(focusLi, focusKey === 'item' ? null : `[data-focus="${CSS.escape(focusKey)}"]`);
      this.restoringFocus = false;
    }
    list.setAttribute('aria-busy', String(ctl.loading));
    list.hidden = shown.length === 0;
    const box = /** @type {HTMLElement} */ (panel.querySelector('.state-box'));
    if (ctl.loadError && shown.length === 0) box.replaceChildren(errorView(ctl.loadError));
    else if (ctl.loaded && shown.length === 0 && !ctl.loading) box.replaceChildren(emptyView());
    else box.replaceChildren();
    const foot = /** @type {HTMLElement} */ (panel.querySelector('.foot'));
    if (ctl.loading) foot.textContent = 'Loading…';
    else if (ctl.loadError && shown.length > 0) {
      foot.replaceChildren(`Couldn’t load more: ${ctl.loadError} `, h('button', { class: 'text-button', type: 'button', 'data-act': 'retry' }, 'Try again'));
    } else foot.textContent = '';
    /** @type {HTMLButtonElement} */ (panel.querySelector('[data-act=mark-all]')).disabled = !shown.some((i) => !i.read);
    const state = ctl.client.state;
    /** @type {HTMLElement} */ (panel.querySelector('.conn')).textContent = state === 'reconnecting' ? 'reconnecting…' : state === 'closed' ? 'offline' : '';
    // A page that does not fill the popover: the next one now.
    if (!ctl.loading) queueMicrotask(() => this.maybeLoadMore());
  }

  /**
   * Re-renders when the next item expires.
   * @param {number} now
   * @param {InboxController} ctl
   */
  scheduleExpiry(now, ctl) {
    clearTimeout(this.expiryTimer);
    const wait = nextExpiryIn(ctl.items, now);
    if (wait !== null) this.expiryTimer = setTimeout(() => this.render(), Math.min(wait + 50, MAX_TIMEOUT));
  }
}

if (typeof customElements !== 'undefined' && !customElements.get('notify-inbox')) {
  customElements.define('notify-inbox', NotifyInboxElement);
}
