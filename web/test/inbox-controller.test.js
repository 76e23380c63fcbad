// The <notify-inbox> element's logic without its DOM (static/inbox/controller.js),
// on a real client over the fake EventSource and fetch: opening loads the
// first page and marks it seen, live notifications and status messages
// change the list and the counts, paging follows nextCursor, and the user's
// actions change the list at once and are undone when the server refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { InboxController } from '../static/inbox/controller.js';
import { connected, fakeFetch, notification, sendNotification, settle, status } from './fakes.js';
import { singleClient } from './setup.js';

/** A history item as GET /api/notifications answers it. */
function hist(seq, extra = {}) {
  return { ...notification(seq).data, read: false, readAt: null, seen: false, archived: false, ...extra };
}

/**
 * A controller on a client whose server holds `inbox` (newest first, pages
 * of `pageSize`); `fail(call)` returns a status to refuse a call with.
 */
function setup({ inbox = [], pageSize = 2, unseen = 0, fail = () => 0 } = {}) {
  const fetch = fakeFetch((url, init, call) => {
    const refuse = fail(call);
    if (refuse) return { status: refuse, json: { error: `refused (${refuse})` } };
    const u = new URL(url, 'http://x');
    if (call.method === 'GET' && u.pathname === '/api/notifications/unread-count') {
      return { json: { count: inbox.filter((n) => !n.read).length, hasMore: false, unseen, unseenHasMore: false } };
    }
    if (call.method === 'GET' && u.pathname === '/api/notifications') {
      const before = Number(u.searchParams.get('before')) || Infinity;
      const limit = Number(u.searchParams.get('limit')) || 20;
      const page = inbox.filter((n) => n.seq < before).slice(0, limit);
      const more = inbox.filter((n) => n.seq < before).length > limit;
      return { json: { notifications: page, nextCursor: more ? page[page.length - 1].seq : null } };
    }
    return undefined;
  });
  const { client, ES } = singleClient({ fetch });
  const log = { changed: 0, toasts: [], notifications: [], replaced: [], failed: [] };
  const ctl = new InboxController({
    client,
    pageSize,
    now: () => Date.parse('2026-12-07T12:00:00Z'),
    hooks: {
      changed: () => log.changed++,
      toast: (n) => log.toasts.push(n.id),
      notification: (m) => log.notifications.push(m.data.id),
      replaced: (ids, by) => log.replaced.push([ids, by]),
      failed: (what, e, quiet) => log.failed.push([what, e.status, quiet]),
    },
  });
  ctl.start();
  const es = ES.last;
  es.open();
  es.send(connected({ unreadCount: inbox.filter((n) => !n.read).length }));
  const calls = () => fetch.calls.filter((c) => !c.url.endsWith('/unread-count')).map((c) => [c.method, c.url, c.body]);
  return { ctl, client, es, fetch, log, calls };
}

const ids = (ctl) => ctl.visible().map((i) => i.id);

test('controller: opening loads the first page and marks everything seen; arrivals count unseen while closed, are seen at once while open', async () => {
  const { ctl, es, log, calls, client } = setup({ inbox: [hist(3), hist(2), hist(1)], unseen: 3 });
  await settle();
  assert.deepEqual(ctl.unseen, { count: 3, hasMore: false }, 'from GET …/unread-count');
  assert.deepEqual(ctl.unread, { count: 3, hasMore: false }, 'the client’s count');

  ctl.open();
  await settle();
  assert.deepEqual(ids(ctl), ['n-3', 'n-2']);
  assert.equal(ctl.nextCursor, 2);
  assert.deepEqual(ctl.unseen, { count: 0, hasMore: false });
  assert.deepEqual(calls(), [
    ['GET', '/api/notifications?limit=2', undefined],
    ['POST', '/api/notifications/seen', { upTo: 3 }],
  ]);
  assert.ok(ctl.visible().every((i) => i.seen));

  sendNotification(es, 4, { severity: 'high' });
  await settle();
  assert.deepEqual(ids(ctl), ['n-4', 'n-3', 'n-2']);
  assert.deepEqual(calls().at(-1), ['POST', '/api/notifications/seen', { upTo: 4 }], 'seen at once while open');
  assert.deepEqual(log.toasts, ['n-4']);
  assert.deepEqual(log.notifications, ['n-4']);

  ctl.close();
  sendNotification(es, 5);
  sendNotification(es, 6, { severity: 'low' });
  await settle();
  assert.deepEqual(ctl.unseen, { count: 2, hasMore: false });
  assert.deepEqual(log.toasts, ['n-4'], 'no toast below high');
  assert.equal(client.unreadCount, 6);
  ctl.open();
  await settle();
  assert.deepEqual(calls().at(-1), ['POST', '/api/notifications/seen', { upTo: 6 }]);
  assert.equal(calls().filter((c) => c[0] === 'GET').length, 1, 'the list is loaded once');
  ctl.stop();
  client.close();
});

test('controller: paging follows nextCursor to the end; a failed page can be retried', async () => {
  let failNext = false;
  const { ctl, calls, log, client } = setup({
    inbox: [hist(5), hist(4), hist(3), hist(2), hist(1)],
    fail: (c) => (failNext && c.method === 'GET' && c.url.includes('before=') ? ((failNext = false), 503) : 0),
  });
  ctl.open();
  await settle();
  assert.equal(ctl.hasMore(), true);
  failNext = true;
  await ctl.load(false);
  assert.equal(ctl.loadError, 'refused (503)');
  assert.deepEqual(log.failed, [['load notifications', 503, true]]);
  assert.equal(ctl.hasMore(), false, 'no automatic retry of a failed page');
  await ctl.retry();
  await ctl.load(false);
  assert.deepEqual(ids(ctl), ['n-5', 'n-4', 'n-3', 'n-2', 'n-1']);
  assert.equal(ctl.nextCursor, null);
  assert.equal(ctl.hasMore(), false);
  await ctl.load(false);
  assert.deepEqual(calls().filter((c) => c[0] === 'GET').map((c) => c[1]), [
    '/api/notifications?limit=2',
    '/api/notifications?before=4&limit=2',
    '/api/notifications?before=4&limit=2',
    '/api/notifications?before=2&limit=2',
  ]);
  ctl.stop();
  client.close();
});

test('controller: status messages from other tabs and devices change the list and the counts', async () => {
  const { ctl, es, log, calls, client } = setup({ inbox: [hist(3), hist(2), hist(1)], pageSize: 10 });
  ctl.open();
  await settle();
  es.send(status({ unreadCount: 2, hasMore: false, unseenCount: 0, unseenHasMore: false, change: { action: 'archive', notificationId: 'n-2', seq: 2 } }));
  assert.deepEqual(ids(ctl), ['n-3', 'n-1']);
  assert.equal(client.unreadCount, 2);
  es.send(status({ unreadCount: 1, hasMore: false, unseenCount: 5, change: { action: 'snooze', notificationId: 'n-3', seq: 3 } }));
  assert.deepEqual(ids(ctl), ['n-1']);
  assert.deepEqual(ctl.unseen, { count: 5, hasMore: false });

  // The snooze ends: the notification comes back unread, with a toast if it is high or critical.
  es.send(status({
    unreadCount: 2, hasMore: false, change: { action: 'unsnooze', notificationId: 'n-3', seq: 3 },
    notification: { ...notification(3).data, severity: 'critical' },
  }));
  assert.deepEqual(ids(ctl), ['n-3', 'n-1']);
  assert.equal(ctl.visible()[0].read, false);
  assert.deepEqual(log.toasts, ['n-3']);

  // Unarchived elsewhere: the message does not carry it, the first page is fetched again.
  const before = calls().length;
  es.send(status({ unreadCount: 3, hasMore: false, change: { action: 'unarchive', notificationId: 'n-2', seq: 2 } }));
  await settle();
  assert.deepEqual(calls().slice(before)[0], ['GET', '/api/notifications?limit=10', undefined]);
  assert.deepEqual(ids(ctl), ['n-3', 'n-2', 'n-1']);

  // A replacement by collapse key tells the element which item went.
  es.send({ ...notification(7), data: { ...notification(7).data, collapseKey: 'k' } }, 7);
  es.send({ ...notification(8), data: { ...notification(8).data, collapseKey: 'k' } }, 8);
  assert.deepEqual(ids(ctl), ['n-8', 'n-3', 'n-2', 'n-1']);
  assert.deepEqual(log.replaced, [[['n-7'], 'n-8']]);

  // An expired notification on the stream is not shown.
  es.send({ ...notification(9), data: { ...notification(9).data, expiresAt: '2026-12-07T11:00:00Z' } }, 9);
  assert.deepEqual(ids(ctl), ['n-8', 'n-3', 'n-2', 'n-1']);
  ctl.stop();
  client.close();
});

test('controller: actions change the list at once and are undone when the server refuses', async () => {
  let refuse = 0;
  const { ctl, log, calls, client } = setup({
    inbox: [hist(3, { actions: [{ id: 'ok', label: 'OK' }] }), hist(2), hist(1, { read: true, readAt: 'then' })],
    pageSize: 10,
    fail: (c) => (c.method === 'POST' && !c.url.endsWith('/seen') ? refuse : 0),
  });
  ctl.open();
  await settle();

  refuse = 404;
  const archived = ctl.remove('n-2', 'archive');
  assert.deepEqual(ids(ctl), ['n-3', 'n-1'], 'gone at once');
  assert.equal(await archived, false);
  assert.deepEqual(ids(ctl), ['n-3', 'n-2', 'n-1'], 'back when refused');
  assert.deepEqual(log.failed.at(-1), ['archive', 404, false]);

  assert.equal(await ctl.toggleRead('n-2'), false);
  assert.equal(ctl.visible()[1].read, false);
  assert.equal(await ctl.markAllRead(), false);
  assert.deepEqual(ctl.visible().map((i) => i.read), [false, false, true]);
  const refused = await ctl.interact('n-3', 'ok');
  assert.equal(refused?.action.id, 'ok', 'the click is still the user’s: the element may follow its url');
  assert.equal(ctl.visible()[0].interaction, null);

  refuse = 0;
  assert.equal(await ctl.remove('n-1', 'snooze', new Date('2026-12-08T09:00:00Z')), true);
  assert.deepEqual(ids(ctl), ['n-3', 'n-2']);
  assert.equal(await ctl.toggleRead('n-2'), true);
  const clicked = await ctl.interact('n-3', 'ok');
  assert.deepEqual([clicked?.item.id, ctl.visible()[0].read, ctl.visible()[0].interaction], ['n-3', true, 'ok']);
  assert.equal(await ctl.interact('n-3', 'nope'), null, 'no such action: nothing sent');
  assert.equal(await ctl.markAllRead(), true);
  assert.deepEqual(calls().filter((c) => c[0] === 'POST' && !c[1].endsWith('/seen')).slice(-4), [
    ['POST', '/api/notifications/n-1/snooze', { until: '2026-12-08T09:00:00.000Z' }],
    ['POST', '/api/notifications/n-2/read', undefined],
    ['POST', '/api/notifications/n-3/interact', { action: 'ok' }],
    ['POST', '/api/notifications/read-all', { upTo: 3 }],
  ]);
  ctl.stop();
  client.close();
});

test('controller: after stop, answers still on their way change nothing', async () => {
  const { ctl, log, client } = setup({ inbox: [hist(1)] });
  ctl.open();
  ctl.stop();
  const changed = log.changed;
  await settle();
  assert.deepEqual(ids(ctl), []);
  assert.deepEqual(ctl.unseen, { count: null, hasMore: false });
  assert.equal(log.changed, changed);
  client.close();
});
