// The inbox's REST calls: read state, seen, archive, snooze, actions,
// history, unread count, preferences.
//
// They are plain request/answer calls that share nothing with the stream but
// the base URL, the credentials setting and the last event id (the default
// watermark of markAllRead), so they live apart from the stream's state:
// one place maps an HTTP answer to JSON or to a NotificationApiError.

import { NotificationApiError } from './errors.js';

/** @typedef {import('../notify-client.js').FetchLike} FetchLike */
/** @typedef {import('../notify-client.js').HistoryQuery} HistoryQuery */
/** @typedef {import('../notify-client.js').HistoryPage} HistoryPage */
/** @typedef {import('../notify-client.js').UnreadCount} UnreadCount */
/** @typedef {import('../notify-client.js').Preferences} Preferences */

/**
 * The inbox API's base URL derived from the stream URL: the stream is
 * `<base>/ws`, the inbox `<base>` (query and fragment dropped), so
 * `/api/notifications/ws` → `/api/notifications`.
 * @param {string} streamUrl
 * @returns {string}
 */
export function apiBaseFromStreamUrl(streamUrl) {
  let base = String(streamUrl).replace(/[?#].*$/, '');
  base = base.replace(/\/ws\/?$/, '');
  return base.replace(/\/+$/, '');
}

/**
 * The query string of a history request (`before`, `limit`, `unread`,
 * `module`, `severity`, `archived`, in that order; empty values left out),
 * without '?'.
 * Throws a TypeError for a value the server would refuse.
 * @param {import('../notify-client.js').HistoryQuery} [q]
 * @returns {string}
 */
export function historyQueryString(q = {}) {
  const p = new URLSearchParams();
  const { before, limit, unread, module, severity, archived } = q;
  if (before !== undefined && before !== null) {
    if (!Number.isSafeInteger(before) || before < 1) throw new TypeError('fetchHistory: before must be a positive seq (a nextCursor)');
    p.set('before', String(before));
  }
  if (limit !== undefined && limit !== null) {
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 100) throw new TypeError('fetchHistory: limit must be between 1 and 100');
    p.set('limit', String(limit));
  }
  if (unread !== undefined && unread !== null && unread !== false) {
    if (unread !== true) throw new TypeError('fetchHistory: unread must be a boolean');
    p.set('unread', 'true');
  }
  if (module !== undefined && module !== null && module !== '') p.set('module', String(module));
  if (severity !== undefined && severity !== null && String(severity) !== '') p.set('severity', String(severity));
  if (archived !== undefined && archived !== null && archived !== false) {
    if (archived !== true && archived !== 'only') throw new TypeError("fetchHistory: archived must be a boolean or 'only'");
    p.set('archived', String(archived));
  }
  return p.toString();
}

/**
 * A read-all watermark: a non-negative integer from a number or an event id.
 * @param {unknown} value
 * @returns {number | null} null when there is none (no event seen yet)
 */
export function toSeq(value) {
  if (value === null || value === undefined || value === '') return null;
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw new TypeError('markAllRead: upTo must be a non-negative integer seq, not ' + JSON.stringify(value));
  return n;
}

/**
 * The inbox API's base: `apiUrl` without trailing slashes, or else the
 * stream URL without `/ws` (`/api/notifications/ws` → `/api/notifications`).
 * @param {string} streamUrl
 * @param {string | undefined} apiUrl
 */
export function inboxApiBase(streamUrl, apiUrl) {
  return typeof apiUrl === 'string' && apiUrl !== '' ? apiUrl.replace(/\/+$/, '') : apiBaseFromStreamUrl(streamUrl);
}

/**
 * The inbox calls of one client.
 * @param {{
 *   apiBase: string,
 *   withCredentials: boolean,
 *   fetch: FetchLike | null,
 *   lastEventId: () => string | null,
 * }} deps lastEventId: markAllRead's default watermark
 */
export function createInboxApi({ apiBase, withCredentials, fetch: fetchFn, lastEventId }) {
  /**
   * One request to the inbox API: the JSON answer (null for 204), or a
   * NotificationApiError with the server's message and status.
   * @param {'GET' | 'POST' | 'PUT'} method
   * @param {string} path after the API base, starting with '/' (or '')
   * @param {unknown} [body] sent as JSON
   * @returns {Promise<any>}
   */
  async function request(method, path, body) {
    const target = apiBase + path;
    if (typeof fetchFn !== 'function') {
      throw new NotificationApiError('fetch is not available; pass options.fetch', { method, url: target });
    }
    /** @type {Record<string, string>} */
    const headers = { Accept: 'application/json' };
    /** @type {{method: string, credentials: 'include' | 'same-origin', headers: Record<string, string>, body?: string}} */
    const init = { method, credentials: withCredentials ? 'include' : 'same-origin', headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    /** @type {any} */
    let res;
    try {
      res = await fetchFn(target, init);
    } catch (e) {
      throw new NotificationApiError(`${method} ${target}: the server cannot be reached`, { method, url: target, cause: e });
    }
    const status = Number(res.status);
    if (status === 204) return null;
    /** @type {any} */
    let json = null;
    try {
      json = await res.json();
    } catch {
      // not JSON: the status says it
    }
    if (!res.ok) {
      const message =
        json && typeof json.error === 'string' && json.error !== ''
          ? json.error
          : `${method} ${target}: ${status} ${res.statusText ?? ''}`.trim();
      throw new NotificationApiError(message, { status, method, url: target, body: json });
    }
    return json;
  }

  /** @returns {Promise<UnreadCount>} */
  function fetchUnreadCount() {
    return request('GET', '/unread-count');
  }

  /**
   * POST …/{id}/<what>, with a body for snooze and interact.
   * @param {'read' | 'unread' | 'archive' | 'unarchive' | 'snooze' | 'interact'} what
   * @param {string} id
   * @param {unknown} [body]
   */
  async function mark(what, id, body) {
    if (typeof id !== 'string' || id === '') throw new TypeError(`${what}: the notification id must be a non-empty string`);
    await request('POST', '/' + encodeURIComponent(id) + '/' + what, body);
  }

  /**
   * @param {HistoryQuery} [query]
   * @returns {Promise<HistoryPage>}
   */
  async function fetchHistory(query) {
    const qs = historyQueryString(query);
    const page = await request('GET', qs ? '?' + qs : '');
    return {
      notifications: Array.isArray(page && page.notifications) ? page.notifications : [],
      nextCursor: page && typeof page.nextCursor === 'number' ? page.nextCursor : null,
    };
  }

  /**
   * @param {number | string | null} [upTo]
   * @returns {Promise<number | null>}
   */
  async function markAllRead(upTo) {
    let seq = toSeq(upTo === undefined ? lastEventId() : upTo);
    if (seq === null && upTo === undefined) {
      // Nothing received on this stream yet: everything the inbox holds now.
      const page = await fetchHistory({ limit: 1 });
      const newest = page.notifications[0];
      seq = newest && typeof newest.seq === 'number' ? newest.seq : null;
    }
    if (seq === null) return null;
    await request('POST', '/read-all', { upTo: seq });
    return seq;
  }

  return {
    fetchUnreadCount,
    fetchHistory,
    markAllRead,
    /** @param {string} id */
    markRead: (id) => mark('read', id),
    /** @param {string} id */
    markUnread: (id) => mark('unread', id),
    /**
     * Everything up to upTo is seen (the badge's unseen count resets).
     * @param {number | string} upTo
     */
    markSeen: async (upTo) => {
      const seq = toSeq(upTo);
      if (seq === null) throw new TypeError('markSeen: upTo must be a seq');
      await request('POST', '/seen', { upTo: seq });
    },
    /** @param {string} id */
    archive: (id) => mark('archive', id),
    /** @param {string} id */
    unarchive: (id) => mark('unarchive', id),
    /**
     * Hidden until `until` (a Date or an RFC 3339 string), then back as unread.
     * @param {string} id
     * @param {Date | string} until
     */
    snooze: (id, until) => {
      const t = until instanceof Date ? until : new Date(String(until));
      if (Number.isNaN(t.getTime())) return Promise.reject(new TypeError('snooze: until must be a Date or an RFC 3339 time'));
      return mark('snooze', id, { until: t.toISOString() });
    },
    /**
     * Records a click on one of the notification's actions (and marks it read).
     * @param {string} id
     * @param {string} action the action's id
     */
    interact: (id, action) => {
      if (typeof action !== 'string' || action === '') return Promise.reject(new TypeError('interact: the action id must be a non-empty string'));
      return mark('interact', id, { action });
    },
    /** @returns {Promise<Preferences>} */
    getPreferences: async () => preferencesOf(await request('GET', '/preferences')),
    /**
     * @param {string[]} modules
     * @returns {Promise<Preferences>}
     */
    setMutedModules: async (modules) => {
      if (!Array.isArray(modules) || modules.some((m) => typeof m !== 'string')) {
        throw new TypeError('setMutedModules: pass an array of module names');
      }
      return preferencesOf(await request('PUT', '/preferences', { mutedModules: [...modules] }));
    },
  };
}

/** @param {any} answer @returns {Preferences} */
function preferencesOf(answer) {
  const mods = answer && Array.isArray(answer.mutedModules) ? answer.mutedModules : [];
  return { mutedModules: mods.filter((/** @type {unknown} */ m) => typeof m === 'string') };
}
