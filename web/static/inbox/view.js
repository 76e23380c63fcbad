// The <notify-inbox> element's DOM: the shadow root's skeleton, one list
// item, a toast, the empty and error states. Builders only: they take plain
// data and return elements; the element wires behaviour by delegation on
// `data-act` attributes (read, snooze, snooze-choice, archive, action,
// retry, mark-all, toast-close, toast-open), so re-rendering needs no
// listeners per item. Text goes in with textContent, never as HTML.

import { relativeTime, snoozeChoices } from './time.js';

/** @typedef {import('../notify-client.js').InboxNotification} InboxItem */
/** @typedef {import('../notify-client.js').NotificationData} NotificationData */

/** Icons (static markup, 24×24 stroke icons). */
const ICONS = {
  bell: '<path d="M6 8a6 6 0 1 1 12 0c0 7 3 9 3 9H3s3-2 3-9"/><path d="M10.3 21a1.94 1.94 0 0 0 3.4 0"/>',
  check: '<path d="M20 6 9 17l-5-5"/>',
  mail: '<rect x="3" y="5" width="18" height="14" rx="2"/><path d="m3 7 9 6 9-6"/>',
  clock: '<circle cx="12" cy="13" r="8"/><path d="M12 9v4l2 2M5 3 2 6M22 6l-3-3"/>',
  archive: '<rect x="2" y="3" width="20" height="5" rx="1"/><path d="M4 8v11a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8M10 12h4"/>',
  close: '<path d="M18 6 6 18M6 6l12 12"/>',
  inbox: '<path d="M22 12h-6l-2 3h-4l-2-3H2"/><path d="M5.45 5.11 2 12v6a2 2 0 0 0 2 2h16a2 2 0 0 0 2-2v-6l-3.45-6.89A2 2 0 0 0 16.76 4H7.24a2 2 0 0 0-1.79 1.11z"/>',
  alert: '<circle cx="12" cy="12" r="10"/><path d="M12 8v4M12 16h.01"/>',
};

/**
 * An inline SVG icon, hidden from assistive technology.
 * @param {keyof typeof ICONS} name
 */
export function icon(name) {
  const span = document.createElement('span');
  span.setAttribute('aria-hidden', 'true');
  span.className = 'icon';
  span.innerHTML = `<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" focusable="false">${ICONS[name]}</svg>`;
  return span;
}

/**
 * An element with attributes (null/false ones left out) and children.
 * @param {string} tag
 * @param {Record<string, string | number | boolean | null | undefined>} [attrs]
 * @param {...(Node | string | null | undefined | false)} children
 */
export function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = String(v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

/**
 * The shadow root's skeleton: the bell, the popover and the toast region.
 * @param {string} panelId
 */
export function skeleton(panelId) {
  const bell = h(
    'button',
    { class: 'bell', type: 'button', part: 'bell', 'aria-haspopup': 'dialog', 'aria-expanded': 'false', 'aria-controls': panelId },
    icon('bell'),
    h('span', { class: 'badge', part: 'badge', 'aria-hidden': 'true', hidden: true }),
    h('span', { class: 'unseen-dot', 'aria-hidden': 'true' }),
    h('span', { class: 'sr-only bell-label' }, 'Notifications'),
  );
  const list = h('ul', { class: 'list', 'aria-labelledby': panelId + '-title', 'aria-busy': 'false' });
  const panel = h(
    'div',
    { class: 'panel', part: 'panel', id: panelId, role: 'dialog', 'aria-labelledby': panelId + '-title', tabindex: '-1', hidden: true },
    h(
      'div',
      { class: 'head' },
      h('h2', { id: panelId + '-title' }, 'Notifications'),
      h('span', { class: 'conn', 'aria-live': 'polite' }),
      h('button', { class: 'text-button', type: 'button', 'data-act': 'mark-all' }, 'Mark all read'),
    ),
    h('p', { class: 'alert', role: 'alert' }),
    list,
    h('div', { class: 'state-box' }),
    h('div', { class: 'foot', 'aria-live': 'polite' }),
  );
  const toasts = h('section', { class: 'toasts', part: 'toasts', 'aria-label': 'New notifications', 'aria-live': 'polite' });
  return { bell, panel, list, toasts };
}

/** @param {string} severity */
function severityLabel(severity) {
  return h('span', { class: `sev sev-${severity}` }, severity);
}

/**
 * The href of an action's url if it is a web address (http, https, or
 * relative to the page), else null: a `javascript:` url never becomes a link.
 * @param {unknown} url
 * @param {string} base
 */
export function safeUrl(url, base) {
  if (typeof url !== 'string' || url === '') return null;
  try {
    const u = new URL(url, base);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  } catch {
    return null;
  }
}

/**
 * One notification of the list.
 * @param {InboxItem} n
 * @param {{now: number, active: boolean, snoozeOpen: boolean, index: number, size: number, locale?: string}} ctx
 */
export function itemView(n, ctx) {
  const sev = n.severity || 'medium';
  const when = relativeTime(n.createdAt, ctx.now, ctx.locale);
  const meta = h(
    'p',
    { class: 'meta' },
    sev === 'high' || sev === 'critical' ? severityLabel(sev) : null,
    n.module ? h('span', { class: 'module' }, n.module) : null,
    h('time', { datetime: n.createdAt, title: new Date(n.createdAt).toLocaleString(ctx.locale) }, when),
  );
  const actions = Array.isArray(n.actions) && n.actions.length > 0
    ? h(
      'div',
      { class: 'actions' },
      ...n.actions.map((a) =>
        h('button', {
          class: 'action',
          type: 'button',
          'data-act': 'action',
          'data-action': a.id,
          'data-focus': 'action:' + a.id,
          'data-chosen': n.interaction === a.id,
        }, a.label),
      ),
    )
    : null;
  const label = n.read ? 'Mark as unread' : 'Mark as read';
  const menuId = `snooze-${n.id}`;
  const tools = h(
    'div',
    { class: 'tools' },
    h('button', { class: 'icon-button', type: 'button', 'data-act': 'read', 'data-focus': 'read', 'aria-label': label, title: label },
      icon(n.read ? 'mail' : 'check')),
    h('button', {
      class: 'icon-button', type: 'button', 'data-act': 'snooze', 'data-focus': 'snooze', 'aria-label': 'Snooze', title: 'Snooze',
      'aria-haspopup': 'menu', 'aria-expanded': String(ctx.snoozeOpen), 'aria-controls': menuId,
    }, icon('clock')),
    h('button', { class: 'icon-button', type: 'button', 'data-act': 'archive', 'data-focus': 'archive', 'aria-label': 'Archive', title: 'Archive' },
      icon('archive')),
  );
  const menu = h(
    'div',
    { class: 'menu', role: 'menu', id: menuId, 'aria-label': 'Snooze until', hidden: !ctx.snoozeOpen },
    ...snoozeChoices(ctx.now).map((c) =>
      h('button', {
        type: 'button', role: 'menuitem', tabindex: '-1', 'data-act': 'snooze-choice', 'data-choice': c.id, 'data-focus': 'menu:' + c.id,
        title: c.until.toLocaleString(ctx.locale),
      }, c.label),
    ),
  );
  return h(
    'li',
    {
      class: 'item',
      part: 'item',
      'data-id': n.id,
      'data-seq': n.seq,
      'data-read': String(n.read),
      'data-seen': String(n.seen === true),
      'data-severity': sev,
      'data-collapse-key': n.collapseKey ?? null,
      'data-focus': 'item',
      tabindex: ctx.active ? '0' : '-1',
      'aria-setsize': ctx.size,
      'aria-posinset': ctx.index + 1,
      'aria-label': `${n.read ? '' : 'Unread: '}${n.message}`,
    },
    h('span', { class: 'dot', 'aria-hidden': 'true' }),
    h('div', { class: 'body' }, h('p', { class: 'message' }, n.message), n.details ? h('p', { class: 'details' }, n.details) : null, meta, actions),
    tools,
    menu,
  );
}

/**
 * The list's empty state.
 * @param {boolean} archivedOnly
 */
export function emptyView(archivedOnly = false) {
  return h('div', { class: 'state empty', part: 'empty' }, icon('inbox'),
    h('strong', {}, archivedOnly ? 'Nothing archived' : 'You’re all caught up'),
    h('p', {}, 'New notifications will show up here.'));
}

/**
 * The list's error state, with a retry button.
 * @param {string} message
 */
export function errorView(message) {
  return h('div', { class: 'state error', part: 'error', role: 'alert' }, icon('alert'),
    h('strong', {}, 'Couldn’t load notifications'),
    h('p', {}, message),
    h('button', { class: 'text-button retry', type: 'button', 'data-act': 'retry' }, 'Try again'));
}

/**
 * A toast for a live high or critical notification.
 * @param {NotificationData} n
 */
export function toastView(n) {
  return h(
    'div',
    { class: 'toast', part: 'toast', 'data-id': n.id, 'data-severity': n.severity, role: n.severity === 'critical' ? 'alert' : null },
    h('div', {}, severityLabel(n.severity), h('p', { class: 'message' }, n.message), n.details ? h('p', { class: 'details' }, n.details) : null),
    h('button', { class: 'icon-button', type: 'button', 'data-act': 'toast-close', 'aria-label': 'Dismiss' }, icon('close')),
    h('button', { class: 'text-button open', type: 'button', 'data-act': 'toast-open' }, 'Show in inbox'),
  );
}
