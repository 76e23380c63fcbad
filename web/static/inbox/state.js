// The inbox list's state, apart from the DOM: which notifications the
// <notify-inbox> popover shows and how each server message changes them.
//
// Three sources feed one list: history pages (GET /api/notifications, newest
// first, paged with nextCursor), live notifications from the stream, and
// `status` messages about changes made in any tab or device (read, seen,
// archive, snooze …). They can arrive in any order (a live notification
// during a page fetch, a page answer older than a status message), so every
// update here is a merge by id that keeps the list sorted by seq and applies
// the two rules of the inbox spec (notes/inbox-api.md): a newer notification
// with the same collapseKey and targets supersedes older ones, and one past
// its expiresAt is not shown. Pure functions on arrays (web/test/inbox-state.test.js).

/** @typedef {import('../notify-client.js').InboxNotification} InboxItem */
/** @typedef {import('../notify-client.js').NotificationData} NotificationData */
/** @typedef {import('../notify-client.js').StatusData} StatusData */

/**
 * The group a notification replaces others in: its collapseKey with its
 * targets (the same key for another audience is another group), or null.
 * @param {Partial<NotificationData>} n
 * @returns {string | null}
 */
export function collapseGroup(n) {
  if (typeof n.collapseKey !== 'string' || n.collapseKey === '') return null;
  const roles = Array.isArray(n.targetRoles) ? [...n.targetRoles].sort() : [];
  return JSON.stringify([n.collapseKey, n.targetUserId ?? null, roles]);
}

/**
 * A list item from a history item or a stream notification's data (which
 * has no read state: a live one is unread and unseen).
 * @param {NotificationData | InboxItem} data
 * @returns {InboxItem}
 */
export function toItem(data) {
  const d = /** @type {Partial<InboxItem>} */ (data);
  return {
    ...data,
    read: d.read === true,
    readAt: d.readAt ?? null,
    seen: d.seen === true,
    archived: d.archived === true,
    archivedAt: d.archivedAt ?? null,
    interactedAt: d.interactedAt ?? null,
    interaction: d.interaction ?? null,
  };
}

/**
 * Whether n has expired at `now` (ms since the epoch).
 * @param {{expiresAt?: string}} n
 * @param {number} now
 */
export function isExpired(n, now) {
  if (!n.expiresAt) return false;
  const t = Date.parse(n.expiresAt);
  return Number.isFinite(t) && t <= now;
}

/**
 * The list with `incoming` merged in: one item per id, newest (highest seq)
 * first, and only the newest of each collapse group. An item already in the
 * list is replaced by a history item (the server's state is newer than what
 * the list knew) but not by a live copy of itself (a replayed notification
 * must not undo a read).
 * @param {readonly InboxItem[]} items
 * @param {readonly (NotificationData | InboxItem)[]} incoming
 * @param {{live?: boolean}} [opts] live: incoming came from the stream
 * @returns {InboxItem[]}
 */
export function mergeItems(items, incoming, { live = false } = {}) {
  /** @type {Map<string, InboxItem>} */
  const byId = new Map(items.map((i) => [i.id, i]));
  for (const data of incoming) {
    if (!data || typeof data.id !== 'string' || typeof data.seq !== 'number') continue;
    if (live && byId.has(data.id)) continue;
    byId.set(data.id, toItem(data));
  }
  const sorted = [...byId.values()].sort((a, b) => b.seq - a.seq);
  const groups = new Set();
  return sorted.filter((i) => {
    const g = collapseGroup(i);
    if (g === null) return true;
    if (groups.has(g)) return false;
    groups.add(g);
    return true;
  });
}

/**
 * The items a group's newest member replaced: which ids leave the list when
 * `data` arrives (for the element to say so, e.g. to a screen reader).
 * @param {readonly InboxItem[]} items
 * @param {Partial<NotificationData>} data
 */
export function supersededBy(items, data) {
  const g = collapseGroup(data);
  if (g === null || typeof data.seq !== 'number') return [];
  const seq = data.seq;
  return items.filter((i) => i.id !== data.id && i.seq < seq && collapseGroup(i) === g).map((i) => i.id);
}

/**
 * The items to show at `now`: the unexpired ones.
 * @param {readonly InboxItem[]} items
 * @param {number} now
 */
export function visibleItems(items, now) {
  return items.filter((i) => !isExpired(i, now));
}

/**
 * Milliseconds until the next item expires (to re-render then), or null.
 * @param {readonly InboxItem[]} items
 * @param {number} now
 */
export function nextExpiryIn(items, now) {
  let next = Infinity;
  for (const i of items) {
    if (!i.expiresAt) continue;
    const t = Date.parse(i.expiresAt);
    if (Number.isFinite(t) && t > now && t < next) next = t;
  }
  return next === Infinity ? null : next - now;
}

/**
 * The highest seq in the list, or null when it is empty.
 * @param {readonly InboxItem[]} items
 */
export function newestSeq(items) {
  let max = null;
  for (const i of items) if (max === null || i.seq > max) max = i.seq;
  return max;
}

/**
 * @param {readonly InboxItem[]} items
 * @param {string | undefined} id
 * @param {(i: InboxItem) => InboxItem} patch
 */
function patchItem(items, id, patch) {
  return items.map((i) => (i.id === id ? patch(i) : i));
}

/**
 * Marks one item read or unread (an optimistic change of the element, or a
 * status message).
 * @param {readonly InboxItem[]} items
 * @param {string} id
 * @param {boolean} read
 * @param {string} [at] RFC 3339
 */
export function setRead(items, id, read, at = new Date().toISOString()) {
  return patchItem(items, id, (i) => ({ ...i, read, readAt: read ? i.readAt ?? at : null }));
}

/**
 * Every item up to `upTo` marked read (read-all) or seen.
 * @param {readonly InboxItem[]} items
 * @param {'read' | 'seen'} what
 * @param {number} upTo
 * @param {string} [at]
 */
export function markUpTo(items, what, upTo, at = new Date().toISOString()) {
  return items.map((i) => {
    if (i.seq > upTo || i[what]) return i;
    return what === 'read' ? { ...i, read: true, readAt: at } : { ...i, seen: true };
  });
}

/**
 * Without the item of this id (archived or snoozed).
 * @param {readonly InboxItem[]} items
 * @param {string} id
 */
export function withoutItem(items, id) {
  return items.filter((i) => i.id !== id);
}

/**
 * What a `status` message's `change` does to the list. `reload`: the list
 * cannot be patched from the message (an unarchived notification's data is
 * not in it) and should be fetched again.
 * @param {readonly InboxItem[]} items
 * @param {StatusData} data the status message's data
 * @param {string} [at] the time to record for read changes (RFC 3339)
 * @returns {{items: InboxItem[], reload: boolean, returned: InboxItem | null}}
 *   returned: the notification back from its snooze
 */
export function applyStatus(items, data, at = new Date().toISOString()) {
  const change = data && data.change;
  const list = [...items];
  if (!change || typeof change !== 'object') return { items: list, reload: false, returned: null };
  const { action, notificationId: id, seq } = change;
  switch (action) {
    case 'read':
    case 'unread':
      return { items: id ? setRead(list, id, action === 'read', at) : list, reload: false, returned: null };
    case 'read-all':
    case 'seen':
      if (typeof seq !== 'number') return { items: list, reload: false, returned: null };
      return { items: markUpTo(list, action === 'read-all' ? 'read' : 'seen', seq, at), reload: false, returned: null };
    case 'archive':
    case 'snooze':
      return { items: id ? withoutItem(list, id) : list, reload: false, returned: null };
    case 'unarchive':
      return { items: list, reload: true, returned: null };
    case 'unsnooze': {
      const n = data.notification;
      if (!n || typeof n.id !== 'string' || typeof n.seq !== 'number') return { items: list, reload: true, returned: null };
      const back = toItem({ ...n, read: false, readAt: null, seen: false });
      return { items: mergeItems(withoutItem(list, back.id), [back]), reload: false, returned: back };
    }
    case 'interact':
      return {
        items: id ? patchItem(list, id, (i) => ({ ...i, read: true, readAt: i.readAt ?? at, interactedAt: i.interactedAt ?? at })) : list,
        reload: false,
        returned: null,
      };
    default:
      return { items: list, reload: false, returned: null };
  }
}

/**
 * The unseen count a status message or an unread-count answer carries, or
 * undefined when it carries none (a server before the seen mark).
 * @param {unknown} data a status message's data ({unseenCount, unseenHasMore})
 *   or an unread-count answer ({unseen, unseenHasMore})
 * @returns {{count: number, hasMore: boolean} | undefined}
 */
export function unseenOf(data) {
  if (!data || typeof data !== 'object') return undefined;
  const d = /** @type {Record<string, unknown>} */ (data);
  const n = 'unseenCount' in d ? d.unseenCount : d.unseen;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return undefined;
  return { count: Math.floor(n), hasMore: d.unseenHasMore === true };
}

