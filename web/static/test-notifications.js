// The monitoring and test page, /test-notifications (web/pages/test-notifications.html).
//
// It shows this tab's stream (through the browser client, so one stream per
// browser however many tabs are open), the notifications received, and,
// from the `status` action polled every 2 s while the page is visible, the
// server's streams and queue. Its forms call the `test`, `broadcast` and
// `create-and-notify` actions.
//
// The inbox: the header's unread badge is the client's count (the same in
// every tab: the server's `connected` and `status` messages, plus one per new
// notification). Clicking a notification marks it read (its button toggles);
// "Mark all read" marks up to the newest notification this tab has seen; the
// History panel pages through GET /api/notifications ("Load older"); the
// mute switches PUT the preferences. Read-state changes made anywhere arrive
// as `status` messages (data.change) and update every list. The header also
// holds the <notify-inbox> element (notify-inbox.js), sharing this page's
// client: its bell, popover inbox (archive, snooze, actions) and toasts.
//
// Everything that comes from the server is put into the page with
// textContent or attributes, never as markup: a message such as
// `<img src=x onerror=alert(1)>` shows as those characters.
//
// Query parameters tune the client for tests and demonstrations:
// `backoffInitialMs`, `backoffMaxMs` (the reconnect backoff),
// `maxNotifications` and `historyLimit` (the history's page size). For the browser tests the page exposes
// `window.notifydTestPage`: the client, every stream attempt (`attempts`:
// {at, url}) and every error (`errors`: {at, kind, message, retryInMs,
// reconnectAttempts, fatal}).

import { createNotificationClient } from './notify-client.js';
import { unreadLabel } from './notify-client-core.js';
import './notify-inbox.js';

/** @typedef {import('./notify-client.js').NotificationMessage} NotificationMessage */
/** @typedef {import('./notify-client.js').NotificationData} NotificationData */
/** @typedef {import('./notify-client.js').InboxNotification} InboxNotification */
/** @typedef {import('./notify-client.js').StatusMessage} StatusMessage */
/** @typedef {import('./notify-client.js').NotificationClient} NotificationClient */
/** @typedef {import('./notify-client.js').NotificationStreamError} NotificationStreamError */

/**
 * The answer of the `status` action (see internal/httpapi/actions.go).
 * @typedef {{id: number, userId: string, roles: string[] | null, openedAt: string, lastWriteAt: string, events: number}} StreamInfo
 * @typedef {{id: number, notificationId: string, status: string, attempts: number, maxAttempts: number,
 *   lastError: string, nextAttemptAt: string, updatedAt: string, message: string}} QueueItem
 * @typedef {{
 *   userId: string, roles: string[] | null, isAdmin: boolean, timestamp: number,
 *   connections: {node?: string, total?: number, mine: number, streams: StreamInfo[] | null},
 *   queue?: {pending: number, processing: number, sent: number, failed: number,
 *     oldestPendingAgeSeconds: number | null, recent: QueueItem[] | null},
 *   stream?: {lastSeq: number, truncatedBefore: number},
 * }} StatusAnswer
 */

const ACTIONS_URL = '/api/notifications/ws';
const LOGIN_URL = '/auth/login?redirect=' + encodeURIComponent(location.pathname + location.search);
const POLL_MS = 2000;
const SEVERITIES = ['low', 'medium', 'high', 'critical'];

// ---- small helpers ---------------------------------------------------------

/**
 * @param {string} id
 * @returns {HTMLElement}
 */
function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error('test-notifications: the page has no #' + id);
  return el;
}

/**
 * An element with text content (never markup) and optional class.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string} [className]
 * @param {string | number | null} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

/**
 * A positive integer query parameter within [min, max], or the fallback.
 * @param {string} name
 * @param {number} min
 * @param {number} max
 * @param {number} fallback
 */
function queryNumber(name, min, max, fallback) {
  const raw = new URLSearchParams(location.search).get(name);
  const n = raw === null ? NaN : Number(raw);
  return Number.isFinite(n) ? Math.min(max, Math.max(min, Math.round(n))) : fallback;
}

const timeOnly = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dateTime = new Intl.DateTimeFormat(undefined, {
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});
const fullDate = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'long' });

/**
 * A <time> element: the time of day for today, else the date and time.
 * @param {string | number | null | undefined} value RFC 3339 text or ms since the epoch
 * @returns {HTMLElement}
 */
function timeElement(value) {
  const d = value === null || value === undefined || value === '' ? null : new Date(value);
  if (!d || Number.isNaN(d.getTime()) || d.getTime() <= 0) return el('span', 'muted', '–');
  const t = el('time');
  t.dateTime = d.toISOString();
  const today = new Date();
  t.textContent = d.toDateString() === today.toDateString() ? timeOnly.format(d) : dateTime.format(d);
  t.title = fullDate.format(d);
  return t;
}

/**
 * "3 s ago", "4 min ago" …
 * @param {number} ms
 */
function ago(ms) {
  if (!Number.isFinite(ms)) return '–';
  return duration(Math.max(0, ms)) + ' ago';
}

/** @param {number} ms */
function duration(ms) {
  const s = ms / 1000;
  if (s < 10) return s.toFixed(1) + ' s';
  if (s < 90) return Math.round(s) + ' s';
  if (s < 5400) return Math.round(s / 60) + ' min';
  if (s < 172800) return (s / 3600).toFixed(1) + ' h';
  return Math.round(s / 86400) + ' d';
}

/** @param {string} text */
function splitList(text) {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

// ---- the API ---------------------------------------------------------------

class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * POSTs an action and returns its JSON answer; a failure is an ApiError with
 * the server's message.
 * @param {Record<string, unknown>} body
 * @returns {Promise<any>}
 */
async function action(body) {
  let res;
  try {
    res = await fetch(ACTIONS_URL, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'the server cannot be reached');
  }
  /** @type {any} */
  let json = null;
  try {
    json = await res.json();
  } catch {
    // not JSON: use the status text below
  }
  if (!res.ok) {
    const msg = json && typeof json.error === 'string' ? json.error : `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, msg);
  }
  return json;
}

// ---- page state ------------------------------------------------------------

/** @type {{at: number, url: string}[]} */
const attempts = [];
/** @type {{at: number, kind: string, message: string, retryInMs: number | null, reconnectAttempts: number, fatal: boolean}[]} */
const errors = [];

/**
 * The browser's EventSource, noting each attempt (for the page and the tests).
 */
class TrackedEventSource extends EventSource {
  /**
   * @param {string | URL} url
   * @param {EventSourceInit} [init]
   */
  constructor(url, init) {
    super(url, init);
    attempts.push({ at: Date.now(), url: String(url) });
  }
}

let signedOut = false;
/** The sign-out request is under way: the session it ends may close the
 * stream (a "logout" closing status) or fail a status poll before the
 * request answers, and that is the sign-out, not a session that ended. */
let signingOut = false;

/** @param {string} why */
function sessionEnded(why) {
  return signedOut || signingOut ? 'Signed out.' : 'Your session ended: ' + why + '.';
}
/** @type {boolean | null} null until the first status answer */
let isAdmin = null;
/** @type {string | null} */
let connNote = null;

/** @type {NotificationClient | null} */
let client = null;
client = createNotificationClient({
  maxNotifications: queryNumber('maxNotifications', 1, 1000, 200),
  backoff: {
    initialMs: queryNumber('backoffInitialMs', 50, 60000, 1000),
    maxMs: queryNumber('backoffMaxMs', 50, 300000, 30000),
  },
  EventSource: TrackedEventSource,
  onConnected: (m) => {
    connNote = null;
    showUser(m.userId ?? null, Array.isArray(m.data?.roles) ? m.data.roles : []);
    scheduleRender();
  },
  onError: (e) => onStreamError(e),
  onNotification: (m) => onLiveNotification(m),
  onStatus: (m) => onStatusMessage(m),
});
const theClient = client;
// Before the element starts (a microtask after it connected): it shares this client and its stream.
const inboxElement = document.querySelector('notify-inbox');
if (inboxElement) inboxElement.client = theClient;

/** @type {any} */ (window).notifydTestPage = { client: theClient, attempts, errors };

/** @param {NotificationStreamError} e */
function onStreamError(e) {
  errors.push({
    at: Date.now(),
    kind: e.kind,
    message: e.message,
    retryInMs: e.retryInMs,
    reconnectAttempts: client ? client.connectionInfo.reconnectAttempts : 0,
    fatal: e.fatal,
  });
  if (e.fatal) {
    stopPolling();
    showBanner(sessionEnded(e.message), true);
    connNote = null;
  } else if (e.kind !== 'protocol') {
    connNote = e.retryInMs !== null ? `${e.message}; next attempt in ${duration(e.retryInMs)}` : e.message;
  }
  scheduleRender();
}

// ---- rendering: this tab ---------------------------------------------------

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  queueMicrotask(() => {
    renderQueued = false;
    render();
  });
}

const STATE_TEXT = { connecting: 'connecting', open: 'open', reconnecting: 'reconnecting', closed: 'closed' };

function render() {
  const c = theClient;
  const info = c.connectionInfo;
  const state = c.state;
  for (const id of ['conn-state', 'conn-pill']) {
    const e = byId(id);
    e.dataset.state = state;
    e.textContent = STATE_TEXT[state] ?? state;
  }
  document.body.dataset.state = state;
  byId('leader').textContent = info.isLeader
    ? 'this tab holds the stream (leader)'
    : 'shared from another tab (follower)';
  byId('leader').dataset.leader = String(info.isLeader);
  byId('last-event-id').textContent = c.lastEventId ?? 'none';
  byId('attempts').textContent = String(info.reconnectAttempts);
  byId('heartbeat').textContent = info.heartbeatInterval ? 'every ' + duration(info.heartbeatInterval) : '–';
  byId('connected-at').replaceChildren(timeElement(state === 'open' ? info.connectedAt : null));
  byId('conn-note').textContent = state === 'open' ? '' : connNote ?? '';
  if (info.userId) showUser(info.userId, info.roles);
  renderNotifications(c.notifications);
  byId('received-hint').hidden = c.notifications.length === 0;
  byId('duplicates').textContent = String(c.duplicatesSuppressed);
  renderUnread();
  renderHistory();
  renderMutes();
  refreshReadStates();
}

/**
 * @param {string | null} userId
 * @param {readonly string[]} roles
 */
function showUser(userId, roles) {
  if (signedOut) return;
  if (userId) byId('user').textContent = userId;
  const box = byId('user-roles');
  box.replaceChildren(...roles.map((r) => el('span', 'role', r)));
}

/** One list item per notification message, made once. @type {WeakMap<NotificationMessage, HTMLElement>} */
const items = new WeakMap();

/** @param {readonly NotificationMessage[]} list newest first */
function renderNotifications(list) {
  const ol = byId('notifications');
  const want = list.map(itemFor);
  const have = ol.children;
  let same = have.length === want.length;
  for (let i = 0; same && i < want.length; i++) same = have[i] === want[i];
  if (!same) ol.replaceChildren(...want);
  byId('received-count').textContent = String(list.length);
  byId('received-empty').hidden = list.length > 0;
}

/**
 * @param {NotificationMessage} m
 * @returns {HTMLElement}
 */
function itemFor(m) {
  let li = items.get(m);
  if (li) return li;
  const d = m.data || /** @type {Partial<NotificationData>} */ ({});
  li = buildItem(d, String(m.notificationId ?? d.id ?? ''), m.timestamp);
  items.set(m, li);
  return li;
}

/**
 * A notification as a list item (received or history): text only. Its
 * read state (class, data-read, the toggle's label) is set by applyRead.
 * @param {Partial<NotificationData>} d
 * @param {string} id
 * @param {number} [fallbackTime]
 * @returns {HTMLElement}
 */
function buildItem(d, id, fallbackTime) {
  const severity = SEVERITIES.includes(String(d.severity)) ? String(d.severity) : 'unknown';
  const li = el('li', 'notification sev-' + severity);
  li.dataset.id = id;
  if (d.seq !== undefined) li.dataset.seq = String(d.seq);
  if (typeof d.module === 'string' && d.module !== '') li.dataset.module = d.module;
  li.tabIndex = 0;

  const head = el('div', 'n-head');
  head.append(el('span', 'badge sev-' + severity, d.severity ?? 'unknown'));
  head.append(timeElement(d.createdAt ?? fallbackTime));
  const what = [d.module, d.actionType].filter((s) => typeof s === 'string' && s !== '').join(' · ');
  if (what) head.append(el('span', 'module', what));
  head.append(el('span', 'target', targetText(d)));
  head.append(el('span', 'muted-tag', 'muted'));
  if (d.seq !== undefined) head.append(el('span', 'seq', '#' + d.seq));
  li.append(head);
  const body = el('div', 'n-body');
  const text = el('div', 'n-text');
  text.append(el('p', 'message', d.message ?? ''));
  if (d.details) text.append(el('p', 'details', d.details));
  const toggle = el('button', 'n-toggle link');
  toggle.type = 'button';
  body.append(text, el('span', 'n-state visually-hidden'), toggle);
  li.append(body);
  if (id && typeof d.seq === 'number') seqs.set(id, d.seq);
  applyRead(li);
  return li;
}

/** @param {Partial<NotificationData>} d */
function targetText(d) {
  const parts = [];
  if (d.targetUserId) parts.push(d.targetUserId);
  if (Array.isArray(d.targetRoles) && d.targetRoles.length) parts.push('roles ' + d.targetRoles.join(', '));
  return parts.length ? 'to ' + parts.join(' + ') : 'to everyone';
}

// ---- the inbox: read state, badge, history, mutes ---------------------------

const HISTORY_LIMIT = queryNumber('historyLimit', 1, 100, 20);
const BASE_TITLE = document.title;

/** Read state this page knows: id → read (history answers, clicks here, status changes from anywhere). */
/** @type {Map<string, boolean>} */
const readState = new Map();
/** The seq of every notification shown. @type {Map<string, number>} */
const seqs = new Map();
/** Everything up to this seq is read ("mark all read", here or on another device). */
let readAllMark = 0;
/** The newest seq this tab has seen, on the stream or in the history. */
let newestSeen = 0;

/** @param {string} id */
function isRead(id) {
  const r = readState.get(id);
  if (r !== undefined) return r;
  const seq = seqs.get(id);
  return seq !== undefined && seq <= readAllMark;
}

/** @param {number} seq */
function sawSeq(seq) {
  if (Number.isSafeInteger(seq) && seq > newestSeen) newestSeen = seq;
}

/**
 * Everything up to mark is read, and the server dropped its per-notification
 * exceptions at or below it: so do we.
 * @param {number} mark
 */
function applyReadAll(mark) {
  if (mark > readAllMark) readAllMark = mark;
  for (const [id, seq] of seqs) if (seq <= mark) readState.delete(id);
}

/** @param {HTMLElement} li */
function isMutedItem(li) {
  const m = li.dataset.module;
  return Boolean(m && mutes.server && mutes.server.includes(m) && !li.classList.contains('sev-critical'));
}

/**
 * Shows an item's read state: its class, data-read, the state text and the toggle's label.
 * @param {HTMLElement} li
 */
function applyRead(li) {
  const id = li.dataset.id ?? '';
  const read = isRead(id);
  const muted = isMutedItem(li);
  if (li.dataset.read !== String(read)) {
    li.dataset.read = String(read);
    li.classList.toggle('is-read', read);
    li.classList.toggle('is-unread', !read);
    const state = li.querySelector('.n-state');
    if (state) state.textContent = read ? 'read' : 'unread';
    const toggle = li.querySelector('.n-toggle');
    if (toggle) toggle.textContent = read ? 'Mark unread' : 'Mark read';
    li.setAttribute('aria-label', (read ? 'read: ' : 'unread: ') + (li.querySelector('.message')?.textContent ?? ''));
  }
  li.classList.toggle('is-muted', muted);
}

function refreshReadStates() {
  for (const li of document.querySelectorAll('#notifications > li, #history > li')) applyRead(/** @type {HTMLElement} */ (li));
}

/** @type {ReturnType<typeof setTimeout> | null} */
let inboxErrorTimer = null;
/** @param {string} text */
function showInboxError(text) {
  const box = byId('inbox-error');
  box.textContent = text;
  box.hidden = false;
  if (inboxErrorTimer !== null) clearTimeout(inboxErrorTimer);
  inboxErrorTimer = setTimeout(() => {
    box.hidden = true;
    inboxErrorTimer = null;
  }, 8000);
}

/** Mark requests go one after another, so the server sees them in click order. */
let markQueue = Promise.resolve();

/**
 * Marks one notification read or unread: shown at once, undone if the server refuses.
 * @param {string} id
 * @param {boolean} read
 */
function setRead(id, read) {
  const before = readState.get(id);
  readState.set(id, read);
  scheduleRender();
  markQueue = markQueue.then(async () => {
    try {
      await (read ? theClient.markRead(id) : theClient.markUnread(id));
    } catch (e) {
      if (readState.get(id) === read) {
        if (before === undefined) readState.delete(id);
        else readState.set(id, before);
      }
      showInboxError(`Could not mark the notification ${read ? 'read' : 'unread'}: ${/** @type {Error} */ (e).message}`);
      scheduleRender();
    }
  });
}

/**
 * Clicking a notification marks it read; its button toggles read/unread.
 * @param {Event} ev
 */
function onItemClick(ev) {
  const target = /** @type {HTMLElement} */ (ev.target);
  const li = /** @type {HTMLElement | null} */ (target.closest('li.notification'));
  const id = li?.dataset.id;
  if (!li || !id || target.closest('a')) return;
  if (target.closest('.n-toggle')) {
    setRead(id, !isRead(id));
    return;
  }
  if (String(window.getSelection?.() ?? '') !== '') return; // selecting text, not clicking
  if (!isRead(id)) setRead(id, true);
}

/** @param {KeyboardEvent} ev */
function onItemKey(ev) {
  const li = /** @type {HTMLElement} */ (ev.target);
  if ((ev.key !== 'Enter' && ev.key !== ' ') || !li.matches('li.notification')) return;
  ev.preventDefault();
  const id = li.dataset.id;
  if (id && !isRead(id)) setRead(id, true);
}

for (const id of ['notifications', 'history']) {
  byId(id).addEventListener('click', onItemClick);
  byId(id).addEventListener('keydown', onItemKey);
}

/** @param {NotificationMessage} m */
function onLiveNotification(m) {
  const d = m.data;
  if (d && typeof d.seq === 'number') {
    sawSeq(d.seq);
    noteModule(d.module);
    // New notifications are unread: they join the top of the history too.
    addHistoryItem({ ...d, read: false, readAt: null });
  }
  scheduleRender();
}

/**
 * A read-state or mute change, made in this tab or on any other device.
 * @param {StatusMessage} m
 */
function onStatusMessage(m) {
  const ch = m.data && m.data.change;
  if (!ch || typeof ch !== 'object') return;
  switch (ch.action) {
    case 'read':
    case 'unread':
      if (typeof ch.notificationId === 'string') {
        readState.set(ch.notificationId, ch.action === 'read');
        if (typeof ch.seq === 'number') seqs.set(ch.notificationId, ch.seq);
      }
      break;
    case 'read-all':
      if (typeof ch.seq === 'number') applyReadAll(ch.seq);
      break;
    case 'preferences':
      void loadPreferences();
      break;
  }
  scheduleRender();
}

function renderUnread() {
  const count = theClient.unreadCount;
  const more = theClient.unreadHasMore;
  const text = count === null ? '–' : unreadLabel(count, more);
  const badge = byId('unread-badge');
  if (badge.textContent !== text) badge.textContent = text;
  const box = byId('unread');
  box.dataset.count = count === null ? '' : String(count);
  box.dataset.hasMore = String(more);
  box.classList.toggle('zero', count === 0);
  box.title = count === null ? 'Unread notifications: not known yet' : `${text} unread notification${text === '1' ? '' : 's'} (all your devices)`;
  const title = count ? `(${text}) ${BASE_TITLE}` : BASE_TITLE;
  if (document.title !== title) document.title = title;
}

byId('mark-all-read').addEventListener('click', async () => {
  const button = /** @type {HTMLButtonElement} */ (byId('mark-all-read'));
  button.disabled = true;
  try {
    const last = Number(theClient.lastEventId ?? 0);
    const upTo = Math.max(newestSeen, Number.isSafeInteger(last) ? last : 0);
    // Nothing seen yet: the client takes the newest notification of the inbox.
    const mark = await theClient.markAllRead(upTo > 0 ? upTo : undefined);
    if (mark !== null) applyReadAll(mark);
  } catch (e) {
    showInboxError('Mark all read: ' + /** @type {Error} */ (e).message);
  } finally {
    button.disabled = false;
    scheduleRender();
  }
});

// ---- history ---------------------------------------------------------------

const history = {
  /** Newest first. @type {InboxNotification[]} */
  items: [],
  /** @type {Set<string>} */
  ids: new Set(),
  /** @type {number | null} */
  nextCursor: null,
  loaded: false,
  loading: false,
  /** Bumped by every reload: older answers are dropped. */
  gen: 0,
  unreadOnly: false,
  error: '',
  dirty: true,
};
/** @type {Map<string, HTMLElement>} */
const historyLis = new Map();

/** @param {InboxNotification} n */
function addHistoryItem(n) {
  if (!n || typeof n.id !== 'string' || history.ids.has(n.id)) return;
  history.ids.add(n.id);
  let i = history.items.length;
  while (i > 0 && history.items[i - 1].seq < n.seq) i--;
  history.items.splice(i, 0, n);
  history.dirty = true;
}

/**
 * Loads the first page (reset) or the next older one.
 * @param {boolean} reset
 */
async function loadHistory(reset) {
  if (!reset && (history.loading || history.nextCursor === null)) return;
  if (reset) {
    history.gen++;
    history.items = [];
    history.ids.clear();
    historyLis.clear();
    history.nextCursor = null;
    history.loaded = false;
  }
  const gen = history.gen;
  const before = reset ? undefined : history.nextCursor ?? undefined;
  history.loading = true;
  history.dirty = true;
  scheduleRender();
  try {
    const page = await theClient.fetchHistory({ limit: HISTORY_LIMIT, before, unread: history.unreadOnly });
    if (gen !== history.gen) return;
    for (const n of page.notifications) {
      readState.set(n.id, n.read);
      sawSeq(n.seq);
      noteModule(n.module);
      addHistoryItem(n);
    }
    history.nextCursor = page.nextCursor;
    history.loaded = true;
    history.error = '';
  } catch (e) {
    if (gen !== history.gen) return;
    history.error = 'History: ' + /** @type {Error} */ (e).message;
  } finally {
    if (gen === history.gen) {
      history.loading = false;
      history.dirty = true;
      scheduleRender();
    }
  }
}

function renderHistory() {
  if (!history.dirty) return;
  history.dirty = false;
  const want = history.items.map((n) => {
    let li = historyLis.get(n.id);
    if (!li) {
      li = buildItem(n, n.id);
      historyLis.set(n.id, li);
    }
    return li;
  });
  const ol = byId('history');
  const have = ol.children;
  let same = have.length === want.length;
  for (let i = 0; same && i < want.length; i++) same = have[i] === want[i];
  if (!same) ol.replaceChildren(...want);
  ol.setAttribute('aria-busy', String(history.loading));
  byId('history-count').textContent = String(history.items.length) + (history.nextCursor !== null ? '+' : '');
  byId('history-empty').hidden = !(history.loaded && history.items.length === 0);
  byId('history-empty').textContent = history.unreadOnly ? 'No unread notifications.' : 'No notifications.';
  const more = /** @type {HTMLButtonElement} */ (byId('history-more'));
  more.hidden = history.nextCursor === null;
  more.disabled = history.loading;
  byId('history-status').textContent = history.loading
    ? 'loading…'
    : history.loaded && history.nextCursor === null && history.items.length > 0
      ? 'that is all'
      : '';
  const err = byId('history-error');
  err.textContent = history.error;
  err.hidden = history.error === '';
}

byId('history-more').addEventListener('click', () => void loadHistory(false));
byId('history-refresh').addEventListener('click', () => void loadHistory(true));
byId('history-unread').addEventListener('change', (ev) => {
  history.unreadOnly = /** @type {HTMLInputElement} */ (ev.target).checked;
  void loadHistory(true);
});

// ---- muted modules -----------------------------------------------------------

const mutes = {
  /** What the server says is muted; null until known. @type {string[] | null} */
  server: null,
  /** Every module seen (history, received, muted, added). @type {Set<string>} */
  known: new Set(),
  saving: false,
  status: '',
  error: false,
  dirty: true,
};
/** @type {Map<string, HTMLElement>} */
const muteLis = new Map();

/** @param {unknown} m */
function noteModule(m) {
  if (typeof m === 'string' && m !== '' && !mutes.known.has(m)) {
    mutes.known.add(m);
    mutes.dirty = true;
  }
}

async function loadPreferences() {
  try {
    const p = await theClient.getPreferences();
    mutes.server = p.mutedModules;
    for (const m of p.mutedModules) noteModule(m);
  } catch (e) {
    mutes.status = 'Preferences: ' + /** @type {Error} */ (e).message;
    mutes.error = true;
  }
  mutes.dirty = true;
  scheduleRender();
}

/** @param {string[]} next every muted module */
async function saveMutes(next) {
  mutes.saving = true;
  mutes.status = 'saving…';
  mutes.error = false;
  mutes.dirty = true;
  scheduleRender();
  try {
    const p = await theClient.setMutedModules(next);
    mutes.server = p.mutedModules;
    for (const m of p.mutedModules) noteModule(m);
    mutes.status = p.mutedModules.length ? 'muted: ' + p.mutedModules.join(', ') : 'nothing muted';
    return true;
  } catch (e) {
    mutes.status = 'Not saved: ' + /** @type {Error} */ (e).message;
    mutes.error = true;
    return false;
  } finally {
    mutes.saving = false;
    mutes.dirty = true;
    scheduleRender();
  }
}

/**
 * @param {string} module
 * @param {boolean} muted
 */
function withMute(module, muted) {
  const set = new Set(mutes.server ?? []);
  if (muted) set.add(module);
  else set.delete(module);
  return [...set];
}

function renderMutes() {
  if (!mutes.dirty) return;
  mutes.dirty = false;
  const modules = [...mutes.known].sort((a, b) => a.localeCompare(b));
  const want = modules.map((m) => {
    let li = muteLis.get(m);
    if (!li) {
      li = el('li', 'mute');
      const label = el('label', 'switch');
      const input = el('input');
      input.type = 'checkbox';
      input.setAttribute('role', 'switch');
      input.dataset.module = m;
      input.addEventListener('change', () => void saveMutes(withMute(m, input.checked)));
      label.append(input, el('span', 'switch-track'), el('span', 'switch-name', m));
      li.append(label);
      li.dataset.module = m;
      muteLis.set(m, li);
    }
    const input = /** @type {HTMLInputElement} */ (li.querySelector('input'));
    const on = Boolean(mutes.server && mutes.server.includes(m));
    input.checked = on;
    input.disabled = mutes.saving || mutes.server === null;
    li.classList.toggle('on', on);
    return li;
  });
  const ul = byId('mute-list');
  const have = ul.children;
  let same = have.length === want.length;
  for (let i = 0; same && i < want.length; i++) same = have[i] === want[i];
  if (!same) ul.replaceChildren(...want);
  byId('mute-empty').hidden = modules.length > 0;
  const out = byId('mute-status');
  out.textContent = mutes.status;
  out.className = 'form-result' + (mutes.error ? ' error-text' : mutes.status && !mutes.saving ? ' ok' : '');
  /** @type {HTMLButtonElement} */ (byId('mute-form').querySelector('button')).disabled = mutes.saving;
}

byId('mute-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const input = /** @type {HTMLInputElement} */ (byId('mute-new'));
  const m = input.value.trim();
  if (m === '') {
    mutes.status = 'Type the name of a module.';
    mutes.error = true;
    mutes.dirty = true;
    scheduleRender();
    return;
  }
  noteModule(m);
  if (await saveMutes(withMute(m, true))) input.value = '';
});

// ---- the server (status action) ----------------------------------------------

/** @type {ReturnType<typeof setTimeout> | null} */
let pollTimer = null;
let polling = false;
let pollStopped = false;

async function poll() {
  pollTimer = null;
  if (pollStopped || polling) return;
  polling = true;
  try {
    /** @type {StatusAnswer} */
    const s = await action({ action: 'status' });
    if (pollStopped) return;
    renderServer(s);
    byId('server-error').hidden = true;
  } catch (e) {
    if (pollStopped) return;
    const err = /** @type {ApiError} */ (e);
    const box = byId('server-error');
    box.textContent = 'Status: ' + err.message;
    box.hidden = false;
    if (err.status === 401) {
      stopPolling();
      showBanner(sessionEnded(err.message), true);
    }
  } finally {
    polling = false;
    schedulePoll();
  }
}

function schedulePoll() {
  if (pollStopped || pollTimer !== null || document.visibilityState !== 'visible') return;
  pollTimer = setTimeout(poll, POLL_MS);
}

function stopPolling() {
  pollStopped = true;
  if (pollTimer !== null) clearTimeout(pollTimer);
  pollTimer = null;
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState !== 'visible') {
    if (pollTimer !== null) clearTimeout(pollTimer);
    pollTimer = null;
  } else if (!polling && pollTimer === null) {
    void poll();
  }
});

/** @param {StatusAnswer} s */
function renderServer(s) {
  isAdmin = Boolean(s.isAdmin);
  showUser(s.userId, s.roles ?? []);
  for (const f of document.querySelectorAll('.admin-only')) /** @type {HTMLElement} */ (f).hidden = !isAdmin;
  byId('server-updated').replaceChildren(document.createTextNode('updated '), timeElement(s.timestamp));
  const now = s.timestamp || Date.now();
  const mine = s.connections.mine;
  byId('mine').textContent = `Your streams on this node: ${mine}` + (mine === 1 ? ' (shared by this browser’s tabs)' : '');
  const admin = byId('admin');
  admin.hidden = !isAdmin;
  if (!isAdmin) return;

  const q = s.queue;
  if (q) {
    byId('q-pending').textContent = String(q.pending);
    byId('q-processing').textContent = String(q.processing);
    byId('q-sent').textContent = String(q.sent);
    byId('q-failed').textContent = String(q.failed);
    byId('q-failed').classList.toggle('bad', q.failed > 0);
    byId('q-oldest').textContent =
      q.oldestPendingAgeSeconds === null || q.oldestPendingAgeSeconds === undefined
        ? 'none'
        : duration(q.oldestPendingAgeSeconds * 1000);
    renderRecent(q.recent ?? [], now);
  }
  byId('q-lastseq').textContent = s.stream ? String(s.stream.lastSeq) : '–';
  byId('node').textContent = s.connections.node || 'this node';
  byId('streams-total').textContent = String(s.connections.total ?? 0);
  renderStreams(s.connections.streams ?? [], now);
}

/** Columns that hold free text: a line of their own on a phone. */
const WIDE_COLUMNS = new Set(['message', 'last error']);

/**
 * A table row; each cell is labelled with its column's heading, which the
 * phone layout shows above the value (the heading row is hidden there).
 * @param {HTMLElement} table
 * @param {(string | Node | null)[]} cells null: no value (a dash; left out on a phone)
 * @returns {HTMLTableRowElement}
 */
function row(table, cells) {
  const labels = [...table.querySelectorAll('thead th')].map((th) => th.textContent ?? '');
  const tr = el('tr');
  cells.forEach((c, i) => {
    const td = el('td');
    const label = labels[i] ?? '';
    td.dataset.label = label;
    if (WIDE_COLUMNS.has(label)) td.classList.add('wide');
    if (c === null) {
      td.classList.add('none');
      td.append(span('–', 'muted'));
    } else {
      td.append(c);
    }
    tr.append(td);
  });
  return tr;
}

/**
 * @param {string} text
 * @param {string} className
 * @param {string} [title]
 */
function span(text, className, title) {
  const s = el('span', className, text);
  if (title) s.title = title;
  return s;
}

/**
 * @param {StreamInfo[]} streams
 * @param {number} now
 */
function renderStreams(streams, now) {
  const table = byId('streams');
  const body = /** @type {HTMLElement} */ (table.querySelector('tbody'));
  const rows = streams
    .slice()
    .sort((a, b) => a.id - b.id)
    .map((st) =>
      row(table, [
        String(st.id),
        st.userId,
        (st.roles ?? []).join(', ') || '–',
        timeElement(st.openedAt),
        span(ago(now - Date.parse(st.lastWriteAt)), 'muted', st.lastWriteAt),
        String(st.events),
      ]),
    );
  if (rows.length === 0) rows.push(emptyRow(6, 'no streams'));
  body.replaceChildren(...rows);
}

/**
 * @param {QueueItem[]} recent
 * @param {number} now
 */
function renderRecent(recent, now) {
  const table = byId('recent');
  const body = /** @type {HTMLElement} */ (table.querySelector('tbody'));
  const rows = recent.map((it) => {
    const status = el('div');
    status.append(span(it.status, 'status st-' + (['pending', 'processing', 'sent', 'failed'].includes(it.status) ? it.status : 'unknown')));
    if (it.status === 'pending') {
      status.append(span('next ' + relative(Date.parse(it.nextAttemptAt) - now), 'next muted', it.nextAttemptAt));
    }
    const tr = row(table, [
      String(it.id),
      span(it.notificationId.slice(0, 8), 'mono', it.notificationId),
      status,
      `${it.attempts}/${it.maxAttempts}`,
      span(it.message, 'clip', it.message),
      it.lastError ? span(it.lastError, 'clip error-text', it.lastError) : null,
      span(ago(now - Date.parse(it.updatedAt)), 'muted', it.updatedAt),
    ]);
    tr.dataset.status = it.status;
    return tr;
  });
  if (rows.length === 0) rows.push(emptyRow(7, 'the queue is empty'));
  body.replaceChildren(...rows);
}

/** @param {number} ms until the time, negative if past */
function relative(ms) {
  if (!Number.isFinite(ms)) return '–';
  return ms > 500 ? 'in ' + duration(ms) : 'due';
}

/**
 * @param {number} columns
 * @param {string} text
 */
function emptyRow(columns, text) {
  const tr = el('tr', 'empty-row');
  const td = el('td', 'muted', text);
  td.colSpan = columns;
  tr.append(td);
  return tr;
}

// ---- forms -----------------------------------------------------------------

/**
 * Wires a form: build(fields) gives the action's body, or throws an Error
 * whose message is shown.
 * @param {string} id
 * @param {(f: (name: string) => string) => Record<string, unknown>} build
 */
function wireForm(id, build) {
  const form = /** @type {HTMLFormElement} */ (byId(id));
  const out = /** @type {HTMLOutputElement} */ (form.querySelector('.form-result'));
  const button = /** @type {HTMLButtonElement} */ (form.querySelector('button[type=submit]'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const field = (/** @type {string} */ name) => String(data.get(name) ?? '').trim();
    out.className = 'form-result';
    out.textContent = 'sending…';
    button.disabled = true;
    try {
      const answer = await action(build(field));
      const nid = answer && answer.notification && answer.notification.id;
      out.textContent = nid ? 'sent · ' + String(nid).slice(0, 8) : 'sent';
      out.classList.add('ok');
    } catch (e) {
      out.textContent = /** @type {Error} */ (e).message;
      out.classList.add('error-text');
    } finally {
      button.disabled = false;
    }
  });
}

wireForm('form-test', (f) => {
  /** @type {Record<string, unknown>} */
  const body = { action: 'test', severity: f('severity') };
  if (f('message')) body.message = f('message');
  return body;
});

wireForm('form-broadcast', (f) => {
  /** @type {Record<string, unknown>} */
  const body = { action: 'broadcast', message: f('message') };
  const roles = splitList(f('roles'));
  if (roles.length) body.targetRoles = roles;
  return body;
});

wireForm('form-targeted', (f) => {
  /** @type {Record<string, unknown>} */
  const body = {
    action: 'create-and-notify',
    module: f('module'),
    actionType: f('actionType'),
    message: f('message'),
    details: f('details'),
    severity: f('severity'),
  };
  const roles = splitList(f('roles'));
  if (roles.length) body.targetRoles = roles;
  if (f('user')) body.targetUserId = f('user');
  return body;
});

// ---- buttons and banners ---------------------------------------------------

/**
 * @param {string} text
 * @param {boolean} signIn offer a sign-in link
 */
function showBanner(text, signIn) {
  const b = byId('banner');
  b.replaceChildren(document.createTextNode(text + ' '));
  if (signIn) {
    const a = el('a', '', 'Sign in again');
    a.href = LOGIN_URL;
    b.append(a);
  }
  b.hidden = false;
}

byId('reconnect').addEventListener('click', () => {
  connNote = null;
  theClient.reconnect();
  scheduleRender();
});

byId('signout').addEventListener('click', async () => {
  const button = /** @type {HTMLButtonElement} */ (byId('signout'));
  button.disabled = true;
  signingOut = true;
  try {
    const res = await fetch('/auth/logout', { method: 'POST', credentials: 'same-origin' });
    if (!res.ok && res.status !== 204) throw new Error(`sign-out failed: ${res.status} ${res.statusText}`);
    signedOut = true;
    stopPolling();
    theClient.close();
    byId('user').textContent = 'signed out';
    byId('user-roles').replaceChildren();
    for (const f of document.querySelectorAll('.admin-only')) /** @type {HTMLElement} */ (f).hidden = true;
    byId('admin').hidden = true;
    showBanner('Signed out.', true);
    render();
  } catch (e) {
    showBanner(/** @type {Error} */ (e).message, false);
    button.disabled = false;
  } finally {
    signingOut = false;
  }
});

theClient.subscribe(scheduleRender);
render();
void poll();
void loadHistory(true);
void loadPreferences();
