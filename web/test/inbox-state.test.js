// The <notify-inbox> list logic (static/inbox/state.js, time.js): merging
// history pages with live notifications, replacement by collapseKey,
// expiry, every status change of the inbox spec, and the snooze menu's times.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  applyStatus,
  collapseGroup,
  isExpired,
  markUpTo,
  mergeItems,
  newestSeq,
  nextExpiryIn,
  setRead,
  supersededBy,
  toItem,
  unseenOf,
  visibleItems,
} from '../static/inbox/state.js';
import { relativeTime, snoozeChoices } from '../static/inbox/time.js';
import { safeUrl } from '../static/inbox/view.js';
import { notification } from './fakes.js';

/** A notification's data as the stream sends it. */
function data(seq, extra = {}) {
  return { ...notification(seq).data, createdAt: '2026-12-07T10:00:00Z', ...extra };
}

/** A history item: data with read state. */
function hist(seq, extra = {}) {
  return { ...data(seq), read: false, readAt: null, seen: false, archived: false, ...extra };
}

const ids = (items) => items.map((i) => i.id);

test('inbox state: pages and live notifications merge into one list, newest first, each id once', () => {
  let items = mergeItems([], [hist(9), hist(8), hist(7)]);
  assert.deepEqual(ids(items), ['n-9', 'n-8', 'n-7']);
  // A live one arriving while the next page is on its way, then the page.
  items = mergeItems(items, [data(10)], { live: true });
  items = mergeItems(items, [hist(6), hist(5)]);
  assert.deepEqual(ids(items), ['n-10', 'n-9', 'n-8', 'n-7', 'n-6', 'n-5']);
  assert.equal(items[0].read, false, 'a live notification is unread');
  assert.equal(items[0].seen, false);
  assert.equal(newestSeq(items), 10);
  assert.equal(newestSeq([]), null);

  // A history item replaces what the list knew (it is the server's state)…
  items = mergeItems(items, [hist(9, { read: true, readAt: '2026-12-07T10:01:00Z' })]);
  assert.equal(items.find((i) => i.id === 'n-9').read, true);
  // …but a replayed live copy does not undo a read.
  items = mergeItems(items, [data(9)], { live: true });
  assert.equal(items.find((i) => i.id === 'n-9').read, true);
  assert.equal(items.length, 6);

  // Junk is ignored.
  assert.deepEqual(ids(mergeItems(items, [null, { id: 'x' }, { seq: 3 }])), ids(items));
});

test('inbox state: a newer notification with the same collapseKey and targets replaces older ones', () => {
  const orders = (seq, n, extra = {}) => data(seq, { collapseKey: 'orders', message: `${n} new orders`, ...extra });
  let items = mergeItems([], [hist(2), orders(1, 3)]);
  assert.deepEqual(supersededBy(items, orders(5, 4)), ['n-1']);
  items = mergeItems(items, [orders(5, 4)], { live: true });
  assert.deepEqual(items.map((i) => i.message), ['4 new orders', 'message 2']);

  // An older page bringing an older member of the group does not bring it back.
  items = mergeItems(items, [orders(0, 2)]);
  assert.deepEqual(ids(items), ['n-5', 'n-2']);

  // Same key, other audience: another group.
  items = mergeItems(items, [orders(6, 1, { targetUserId: null, targetRoles: ['OPS', 'ADMIN'] })], { live: true });
  assert.deepEqual(ids(items), ['n-6', 'n-5', 'n-2']);
  assert.equal(collapseGroup({ collapseKey: 'k', targetRoles: ['B', 'A'] }), collapseGroup({ collapseKey: 'k', targetRoles: ['A', 'B'] }));
  assert.equal(collapseGroup({ collapseKey: '' }), null);
  assert.equal(collapseGroup({}), null);
  assert.deepEqual(supersededBy(items, data(7)), [], 'no key, nothing replaced');
});

test('inbox state: expired notifications are hidden, and the next expiry is known', () => {
  const now = Date.parse('2026-12-07T12:00:00Z');
  const items = mergeItems([], [
    hist(3, { expiresAt: '2026-12-07T12:00:30Z' }),
    hist(2, { expiresAt: '2026-12-07T11:59:59Z' }),
    hist(1),
  ]);
  assert.equal(isExpired(items[1], now), true);
  assert.equal(isExpired(items[2], now), false);
  assert.equal(isExpired({ expiresAt: 'not a time' }, now), false);
  assert.deepEqual(ids(visibleItems(items, now)), ['n-3', 'n-1']);
  assert.equal(nextExpiryIn(items, now), 30_000);
  assert.deepEqual(ids(visibleItems(items, now + 30_000)), ['n-1']);
  assert.equal(nextExpiryIn(items, now + 30_000), null);
});

test('inbox state: status changes from any tab or device update the list', () => {
  const at = '2026-12-07T12:00:00Z';
  const base = mergeItems([], [hist(4), hist(3), hist(2), hist(1)]);
  const change = (c, extra = {}) => applyStatus(base, { unreadCount: 1, hasMore: false, change: c, ...extra }, at);

  let r = change({ action: 'read', notificationId: 'n-3', seq: 3 });
  assert.deepEqual(r.items.map((i) => i.read), [false, true, false, false]);
  assert.equal(r.items[1].readAt, at);
  r = applyStatus(r.items, { change: { action: 'unread', notificationId: 'n-3', seq: 3 } }, at);
  assert.equal(r.items[1].read, false);
  assert.equal(r.items[1].readAt, null);

  r = change({ action: 'read-all', seq: 3 });
  assert.deepEqual(r.items.map((i) => i.read), [false, true, true, true]);
  r = change({ action: 'seen', seq: 2 });
  assert.deepEqual(r.items.map((i) => i.seen), [false, false, true, true]);
  assert.deepEqual(r.items.map((i) => i.read), [false, false, false, false], 'seen is not read');

  assert.deepEqual(ids(change({ action: 'archive', notificationId: 'n-2' }).items), ['n-4', 'n-3', 'n-1']);
  assert.deepEqual(ids(change({ action: 'snooze', notificationId: 'n-4' }).items), ['n-3', 'n-2', 'n-1']);
  r = change({ action: 'unarchive', notificationId: 'n-9' });
  assert.equal(r.reload, true, 'an unarchived notification is not in the message: fetch the list again');

  // A snoozed one comes back, unread, in its place by seq.
  const snoozed = applyStatus(base, { change: { action: 'snooze', notificationId: 'n-3' } }).items;
  r = applyStatus(snoozed, {
    change: { action: 'unsnooze', notificationId: 'n-3', seq: 3 },
    notification: { ...data(3), severity: 'high' },
  });
  assert.deepEqual(ids(r.items), ['n-4', 'n-3', 'n-2', 'n-1']);
  assert.equal(r.items[1].read, false);
  assert.equal(r.returned?.id, 'n-3');
  assert.equal(r.returned?.severity, 'high');
  // Without its data: fetch again.
  assert.equal(applyStatus(snoozed, { change: { action: 'unsnooze', notificationId: 'n-3' } }).reload, true);

  r = change({ action: 'interact', notificationId: 'n-1', seq: 1 });
  assert.equal(r.items[3].read, true);
  assert.equal(r.items[3].interactedAt, at);

  for (const other of [{ action: 'preferences' }, { action: 'something-new' }, undefined]) {
    r = applyStatus(base, { unreadCount: 0, change: other });
    assert.deepEqual(ids(r.items), ids(base));
    assert.equal(r.reload, false);
  }
  assert.deepEqual(ids(change({ action: 'read-all' }).items), ids(base), 'read-all without a seq changes nothing');
});

test('inbox state: local changes (read, read-all up to a seq) and the unseen count of answers', () => {
  let items = mergeItems([], [hist(3), hist(2, { read: true, readAt: 'then' })]);
  items = setRead(items, 'n-3', true, 'now');
  assert.equal(items[0].readAt, 'now');
  items = setRead(items, 'n-2', true, 'later');
  assert.equal(items[1].readAt, 'then', 'a read keeps its first time');
  items = markUpTo(setRead(items, 'n-3', false), 'read', 2, 'x');
  assert.deepEqual(items.map((i) => i.read), [false, true], 'what arrived after the mark stays unread');

  assert.deepEqual(unseenOf({ unreadCount: 4, unseenCount: 2, unseenHasMore: false }), { count: 2, hasMore: false });
  assert.deepEqual(unseenOf({ count: 120, hasMore: true, unseen: 99, unseenHasMore: true }), { count: 99, hasMore: true });
  assert.equal(unseenOf({ count: 3, hasMore: false }), undefined, 'a server without the seen mark');
  assert.equal(unseenOf({ unseenCount: -1 }), undefined);
  assert.equal(unseenOf(null), undefined);

  const item = toItem(data(1));
  assert.deepEqual([item.read, item.seen, item.archived, item.readAt, item.interaction], [false, false, false, null, null]);
});

test('inbox time: the snooze menu offers an hour, tomorrow 9:00 and next Monday 9:00 (local time)', () => {
  const wednesday = new Date(2026, 11, 9, 16, 45).getTime();
  const [hour, tomorrow, week] = snoozeChoices(wednesday);
  assert.equal(hour.until.getTime() - wednesday, 3600_000);
  assert.deepEqual([tomorrow.until.getDate(), tomorrow.until.getHours(), tomorrow.until.getMinutes()], [10, 9, 0]);
  assert.deepEqual([week.until.getDay(), week.until.getDate(), week.until.getHours()], [1, 14, 9]);
  const monday = new Date(2026, 11, 14, 8, 0).getTime();
  assert.equal(snoozeChoices(monday)[2].until.getDate(), 21, 'on a Monday: the next one');
  const sunday = new Date(2026, 11, 13, 23, 0).getTime();
  assert.equal(snoozeChoices(sunday)[2].until.getDate(), 14);
  for (const c of snoozeChoices(wednesday)) assert.ok(c.until.getTime() > wednesday && c.label);

  const now = Date.parse('2026-12-07T12:00:00Z');
  assert.equal(relativeTime(now - 5_000, now, 'en'), 'now');
  assert.equal(relativeTime(now - 5 * 60_000, now, 'en'), '5 min. ago');
  assert.equal(relativeTime('2026-12-07T09:00:00Z', now, 'en'), '3 hr. ago');
  assert.equal(relativeTime(now - 86_400_000, now, 'en'), 'yesterday');
  assert.equal(relativeTime('garbage', now, 'en'), '');
});

test('inbox view: only web addresses become action links', () => {
  const base = 'https://app.example/page';
  assert.equal(safeUrl('/orders/7', base), 'https://app.example/orders/7');
  assert.equal(safeUrl('https://other.example/x', base), 'https://other.example/x');
  assert.equal(safeUrl('javascript:alert(1)', base), null);
  assert.equal(safeUrl('data:text/html,hi', base), null);
  assert.equal(safeUrl('', base), null);
  assert.equal(safeUrl(undefined, base), null);
});
