// The inbox side of the client: the unread count (from `connected`, `status`
// and new notifications, the same in every tab) and the inbox API calls
// (URLs, methods, bodies, credentials, error mapping) against a fake fetch.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { NotificationApiError } from '../static/notify-client.js';
import {
  UNREAD_CAP,
  apiBaseFromStreamUrl,
  historyQueryString,
  incrementUnread,
  toSeq,
  unreadLabel,
  unreadOf,
} from '../static/notify-client-core.js';
import { FakeBrowser, FakeClock, connected, fakeFetch, sendNotification, settle, status } from './fakes.js';
import { fakeBrowser, openTab, singleClient, twoTabs, unread } from './setup.js';

// ---- the pure helpers --------------------------------------------------------

test('core: unreadOf, incrementUnread and unreadLabel follow the server’s "exact to 99, then 99+"', () => {
  assert.equal(UNREAD_CAP, 99);
  assert.deepEqual(unreadOf({ unreadCount: 3, hasMore: false }), { count: 3, hasMore: false });
  assert.deepEqual(unreadOf({ unreadCount: 99, hasMore: true }), { count: 99, hasMore: true });
  assert.deepEqual(unreadOf({ unreadCount: null }), { count: null, hasMore: false }, 'the server could not say');
  assert.equal(unreadOf({ replay: 'truncated' }), undefined, 'a status about something else');
  assert.equal(unreadOf({ unreadCount: -1 }), undefined);
  assert.equal(unreadOf({ unreadCount: '3' }), undefined);
  assert.equal(unreadOf(null), undefined);

  assert.deepEqual(incrementUnread({ count: 0, hasMore: false }), { count: 1, hasMore: false });
  assert.deepEqual(incrementUnread({ count: 98, hasMore: false }), { count: 99, hasMore: false });
  assert.deepEqual(incrementUnread({ count: 99, hasMore: false }), { count: 99, hasMore: true });
  assert.deepEqual(incrementUnread({ count: 99, hasMore: true }), { count: 99, hasMore: true });
  assert.deepEqual(incrementUnread({ count: null, hasMore: false }), { count: null, hasMore: false });

  assert.equal(unreadLabel(7, false), '7');
  assert.equal(unreadLabel(99, true), '99+');
  assert.equal(unreadLabel(null, false), '');
});

test('core: the API base, the history query string and read-all seqs', () => {
  assert.equal(apiBaseFromStreamUrl('/api/notifications/ws'), '/api/notifications');
  assert.equal(apiBaseFromStreamUrl('https://n.example/api/notifications/ws?x=1#f'), 'https://n.example/api/notifications');
  assert.equal(apiBaseFromStreamUrl('/api/notifications/ws/'), '/api/notifications');
  assert.equal(apiBaseFromStreamUrl('/custom/stream'), '/custom/stream');

  assert.equal(historyQueryString(), '');
  assert.equal(historyQueryString({ before: 23, limit: 20, unread: true, module: 'orders & co', severity: 'high' }),
    'before=23&limit=20&unread=true&module=orders+%26+co&severity=high');
  assert.equal(historyQueryString({ unread: false, module: '', before: null }), '');
  assert.throws(() => historyQueryString({ limit: 101 }), TypeError);
  assert.throws(() => historyQueryString({ limit: 0 }), TypeError);
  assert.throws(() => historyQueryString({ before: 0 }), TypeError);
  assert.throws(() => historyQueryString({ before: 1.5 }), TypeError);
  // @ts-ignore a wrong type at run time
  assert.throws(() => historyQueryString({ unread: 'yes' }), TypeError);

  assert.equal(toSeq('42'), 42);
  assert.equal(toSeq(0), 0);
  assert.equal(toSeq(null), null);
  assert.throws(() => toSeq('4x'), TypeError);
  assert.throws(() => toSeq(-1), TypeError);
});

// ---- the count on one stream -------------------------------------------------

test('count: null until connected, then from connected, +1 per new notification, set by status', () => {
  const { client, ES } = singleClient();
  assert.deepEqual(unread(client), [null, false]);
  assert.equal(client.getSnapshot().unreadCount, null);

  const es = ES.last.open();
  es.send(connected({ unreadCount: 3 }));
  assert.deepEqual(unread(client), [3, false]);
  const s1 = client.getSnapshot();
  assert.equal(s1.unreadCount, 3);
  assert.equal(s1.unreadHasMore, false);

  sendNotification(es, 10);
  sendNotification(es, 11);
  assert.deepEqual(unread(client), [5, false], 'each new live notification counts');
  sendNotification(es, 11);
  assert.deepEqual(unread(client), [5, false], 'a duplicate does not');
  assert.notEqual(client.getSnapshot(), s1);
  assert.equal(client.getSnapshot().unreadCount, 5);

  // The server's word replaces the local count (read on another device).
  es.send(status({ unreadCount: 1, hasMore: false, change: { action: 'read', notificationId: 'n-10', seq: 10 } }));
  assert.deepEqual(unread(client), [1, false]);
  es.send(status({ replay: 'truncated', resumeFrom: 1, oldestAvailable: 5 }));
  assert.deepEqual(unread(client), [1, false], 'a status without a count changes nothing');
  es.send(status({ unreadCount: 0, change: { action: 'read-all', seq: 11 } }));
  assert.deepEqual(unread(client), [0, false]);
  client.close();
});

test('count: "99+" from the server stays 99+ as notifications arrive; 98 + 2 becomes 99+', () => {
  const { client, ES } = singleClient();
  const es = ES.last.open();
  es.send(connected({ unreadCount: 99, hasMore: true }));
  assert.deepEqual(unread(client), [99, true]);
  sendNotification(es, 1);
  assert.deepEqual(unread(client), [99, true]);
  es.send(status({ unreadCount: 98, hasMore: false }));
  sendNotification(es, 2);
  assert.deepEqual(unread(client), [99, false]);
  sendNotification(es, 3);
  assert.deepEqual(unread(client), [99, true]);
  client.close();
});

test('count: unknown (null) when the server could not say, until a status says', () => {
  const { client, ES } = singleClient();
  const es = ES.last.open();
  es.send(connected({ unreadCount: null }));
  sendNotification(es, 1);
  assert.deepEqual(unread(client), [null, false]);
  es.send(status({ unreadCount: 4 }));
  assert.deepEqual(unread(client), [4, false]);
  client.close();
});

test('count: listeners hear every change of the count', () => {
  const { client, ES } = singleClient();
  const es = ES.last.open();
  es.send(connected({ unreadCount: 0 }));
  const seen = [];
  client.subscribe(() => seen.push(client.getSnapshot().unreadCount));
  sendNotification(es, 1);
  es.send(status({ unreadCount: 0 }));
  assert.deepEqual(seen, [1, 0]);
  client.close();
});

test('count: a resumed stream does not count the replay twice; it recounts once the replay is over', async () => {
  const fetch = fakeFetch((url) => (url.endsWith('/unread-count') ? { json: { count: 6, hasMore: false } } : undefined));
  const { client, ES, clock } = singleClient({ fetch });
  let es = ES.last.open();
  es.send(connected({ unreadCount: 2 }));
  sendNotification(es, 1);
  sendNotification(es, 2);
  assert.deepEqual(unread(client), [4, false]);

  // The stream breaks; the next one resumes from 2. The server's count in
  // `connected` already includes the 4 notifications it then replays.
  es.fail();
  clock.advance(1000);
  es = ES.last.open();
  assert.match(es.url, /lastEventId=2$/);
  es.send(connected({ unreadCount: 6, resumeFrom: 2 }));
  for (let seq = 3; seq <= 6; seq++) sendNotification(es, seq);
  assert.deepEqual(unread(client), [6, false], 'replayed notifications are not counted again');
  assert.equal(fetch.calls.length, 0);
  clock.advance(300);
  await settle();
  assert.deepEqual(fetch.calls.map((c) => `${c.method} ${c.url}`), ['GET /api/notifications/unread-count']);
  assert.deepEqual(unread(client), [6, false]);

  // Live again: counted.
  sendNotification(es, 7);
  assert.deepEqual(unread(client), [7, false]);
  client.close();
});

test('count: a resumed stream with nothing to replay keeps the connected count, no extra request', async () => {
  const { client, ES, clock, fetch } = singleClient();
  let es = ES.last.open();
  es.send(connected({ unreadCount: 0 }));
  sendNotification(es, 1);
  client.reconnect();
  es = ES.last.open();
  es.send(connected({ unreadCount: 1, resumeFrom: 1 }));
  clock.advance(5000);
  await settle();
  assert.equal(fetch.calls.length, 0);
  sendNotification(es, 2);
  assert.deepEqual(unread(client), [2, false]);
  client.close();
});

test('count: a status arriving during the recount wins over the recount’s older answer', async () => {
  let answer;
  const fetch = fakeFetch((url) => (url.endsWith('/unread-count') ? new Promise((r) => (answer = r)) : undefined));
  const { client, ES, clock } = singleClient({ fetch });
  const es = ES.last.open();
  es.send(connected({ unreadCount: 5, resumeFrom: 1 }));
  sendNotification(es, 2);
  clock.advance(300);
  assert.equal(fetch.calls.length, 1);
  es.send(status({ unreadCount: 0, change: { action: 'read-all', seq: 2 } }));
  answer({ json: { count: 5, hasMore: false } });
  await settle();
  await settle();
  assert.deepEqual(unread(client), [0, false]);
  client.close();
});

test('count: a status and a notification arriving close together (either may include the other): one recount settles it', async () => {
  let serverCount = 1;
  const fetch = fakeFetch((url) => (url.endsWith('/unread-count') ? { json: { count: serverCount, hasMore: false } } : undefined));
  const { client, ES, clock } = singleClient({ fetch });
  const es = ES.last.open();
  es.send(connected({ unreadCount: 0 }));
  clock.advance(5000);

  // Read-all elsewhere; the server counted notification 1 (published just
  // before its count) but the status overtook it on the way here.
  es.send(status({ unreadCount: 1, change: { action: 'read-all', seq: 0 } }));
  clock.advance(5);
  sendNotification(es, 1);
  assert.deepEqual(unread(client), [2, false], 'counted twice for now');
  clock.advance(500);
  await settle();
  assert.deepEqual(fetch.calls.map((c) => c.url), ['/api/notifications/unread-count']);
  assert.deepEqual(unread(client), [1, false], 'the recount corrects it');
  clock.advance(10000);
  await settle();
  assert.equal(fetch.calls.length, 1, 'nothing arrived after the question: no second recount');

  // The other order: the notification first, then a status counted before it was published.
  sendNotification(es, 2);
  serverCount = 2;
  clock.advance(20);
  es.send(status({ unreadCount: 1, change: { action: 'read', notificationId: 'x', seq: 1 } }));
  assert.deepEqual(unread(client), [1, false]);
  clock.advance(500);
  await settle();
  assert.equal(fetch.calls.length, 2);
  assert.deepEqual(unread(client), [2, false]);

  // Far apart: no question.
  clock.advance(5000);
  sendNotification(es, 3);
  clock.advance(5000);
  es.send(status({ unreadCount: 3 }));
  clock.advance(5000);
  await settle();
  assert.equal(fetch.calls.length, 2);
  client.close();
});

test('count: recounts stop after a few in a busy stream; each server message renews them', async () => {
  const fetch = fakeFetch((url) => (url.endsWith('/unread-count') ? { json: { count: 5, hasMore: false } } : undefined));
  const { client, ES, clock } = singleClient({ fetch });
  const es = ES.last.open();
  es.send(connected({ unreadCount: 0 }));
  // A notification every 100 ms for 10 s, keeping every answer ambiguous.
  for (let seq = 1; seq <= 100; seq++) {
    sendNotification(es, seq);
    clock.advance(100);
    await settle();
  }
  assert.equal(fetch.calls.length, 3, 'at most three recounts per server message');
  client.close();
});

// ---- the count across tabs ---------------------------------------------------

test('tabs: the follower shows the leader’s count: connected, new notifications, status', async () => {
  const { a, b } = await twoTabs();
  assert.equal(a.client.connectionInfo.isLeader, true);
  assert.deepEqual(unread(b.client), [null, false]);

  const es = a.ES.last.open();
  es.send(connected({ unreadCount: 4 }));
  await settle();
  assert.deepEqual(unread(a.client), [4, false]);
  assert.deepEqual(unread(b.client), [4, false]);

  for (let seq = 1; seq <= 3; seq++) sendNotification(es, seq);
  await settle();
  assert.deepEqual(unread(a.client), [7, false]);
  assert.deepEqual(unread(b.client), [7, false], 'counted once, by the leader, not again by the follower');
  assert.equal(b.client.getSnapshot().unreadCount, 7);

  es.send(status({ unreadCount: 6, change: { action: 'read', notificationId: 'n-2', seq: 2 } }));
  await settle();
  assert.deepEqual(unread(b.client), [6, false]);
  es.send(status({ unreadCount: 99, hasMore: true, change: { action: 'unread' } }));
  await settle();
  assert.deepEqual(unread(b.client), [99, true]);

  a.client.close();
  b.client.close();
});

test('tabs: a tab opened later gets the current count at once; the count survives a leader change', async () => {
  const { clock, open } = fakeBrowser();
  const a = await open();
  const es = a.ES.last.open();
  es.send(connected({ unreadCount: 2 }));
  sendNotification(es, 5);
  await settle();

  const b = await open();
  assert.deepEqual(unread(b.client), [3, false], 'from the leader’s state, without waiting for a message');
  const c = await open();
  assert.deepEqual(unread(c.client), [3, false]);

  // The leader tab goes; b takes over, resuming from 5.
  a.tab.kill();
  es.close();
  await settle();
  assert.equal(b.client.connectionInfo.isLeader, true);
  assert.deepEqual(unread(b.client), [3, false], 'kept while reconnecting');
  const es2 = b.ES.last.open();
  es2.send(connected({ unreadCount: 1, resumeFrom: 5 }));
  await settle();
  assert.deepEqual(unread(b.client), [1, false]);
  assert.deepEqual(unread(c.client), [1, false]);
  sendNotification(es2, 6);
  await settle();
  clock.advance(300);
  await settle();
  // 6 came during the settle window after a resume: the new leader recounts.
  assert.equal(b.fetch.calls.at(-1)?.url, '/api/notifications/unread-count');
  assert.equal(c.fetch.calls.length, 0, 'followers never ask');
  b.client.close();
  c.client.close();
});

// ---- the API -----------------------------------------------------------------

test('API: mark read / unread / read-all: URLs, methods, bodies, credentials', async () => {
  const { client, ES, fetch } = singleClient();
  const es = ES.last.open();
  es.send(connected({ unreadCount: 0 }));
  sendNotification(es, 41);
  sendNotification(es, 42);

  assert.equal(await client.markRead('0b9e2c58-6a43-4b8e-9c1e-5f1d0a7c1a10'), undefined);
  await client.markUnread('0b9e2c58-6a43-4b8e-9c1e-5f1d0a7c1a10');
  assert.equal(await client.markAllRead(), 42, 'default: the last event id');
  assert.equal(await client.markAllRead(17), 17);
  assert.equal(await client.markAllRead('18'), 18);
  await client.markRead('a/b?c');

  assert.deepEqual(
    fetch.calls.map((c) => [c.method, c.url, c.body]),
    [
      ['POST', '/api/notifications/0b9e2c58-6a43-4b8e-9c1e-5f1d0a7c1a10/read', undefined],
      ['POST', '/api/notifications/0b9e2c58-6a43-4b8e-9c1e-5f1d0a7c1a10/unread', undefined],
      ['POST', '/api/notifications/read-all', { upTo: 42 }],
      ['POST', '/api/notifications/read-all', { upTo: 17 }],
      ['POST', '/api/notifications/read-all', { upTo: 18 }],
      ['POST', '/api/notifications/a%2Fb%3Fc/read', undefined],
    ],
  );
  for (const c of fetch.calls) {
    assert.equal(c.credentials, 'include', 'withCredentials (default true): cookies go along');
    assert.equal(c.headers.Accept, 'application/json');
  }
  assert.equal(fetch.calls[2].headers['Content-Type'], 'application/json');
  assert.equal(fetch.calls[0].headers['Content-Type'], undefined, 'no body, no content type');

  await assert.rejects(client.markRead(''), TypeError);
  await assert.rejects(client.markAllRead(-1), TypeError);
  await assert.rejects(client.markAllRead('latest'), TypeError);
  assert.equal(fetch.calls.length, 6, 'invalid arguments send nothing');
  client.close();
});

test('API: read-all before any event uses the newest notification of the inbox (or does nothing)', async () => {
  let pages = [{ notifications: [{ id: 'x', seq: 9, read: false, readAt: null }], nextCursor: 3 }, { notifications: [], nextCursor: null }];
  const fetch = fakeFetch((url, init) => (init.method === 'GET' ? { json: pages.shift() } : undefined));
  const { client } = singleClient({ fetch });
  assert.equal(client.lastEventId, null);
  assert.equal(await client.markAllRead(), 9);
  assert.equal(await client.markAllRead(), null);
  assert.equal(await client.markAllRead(null), null);
  assert.deepEqual(
    fetch.calls.map((c) => [c.method, c.url, c.body]),
    [
      ['GET', '/api/notifications?limit=1', undefined],
      ['POST', '/api/notifications/read-all', { upTo: 9 }],
      ['GET', '/api/notifications?limit=1', undefined],
    ],
  );
  client.close();
});

test('API: history, unread count and preferences', async () => {
  const page = {
    notifications: [
      { id: 'b', seq: 30, message: 'newer', read: false, readAt: null },
      { id: 'a', seq: 23, message: 'older', read: true, readAt: '2024-01-01T00:00:00Z' },
    ],
    nextCursor: 23,
  };
  const fetch = fakeFetch((url, init) => {
    if (url.startsWith('/api/notifications?') || url === '/api/notifications') return { json: page };
    if (url.endsWith('/unread-count')) return { json: { count: 99, hasMore: true } };
    if (url.endsWith('/preferences')) {
      return { json: { mutedModules: init.method === 'PUT' ? JSON.parse(init.body).mutedModules.filter((m, i, all) => all.indexOf(m) === i) : ['billing'] } };
    }
    return undefined;
  });
  const { client } = singleClient({ fetch });

  assert.deepEqual(await client.fetchHistory(), page);
  assert.deepEqual(await client.fetchHistory({ before: 23, limit: 50, unread: true, module: 'orders', severity: 'critical' }), page);
  assert.deepEqual(await client.fetchUnreadCount(), { count: 99, hasMore: true });
  assert.equal(client.unreadCount, null, 'fetchUnreadCount does not change the stream’s count');
  assert.deepEqual(await client.getPreferences(), { mutedModules: ['billing'] });
  assert.deepEqual(await client.setMutedModules(['orders', 'orders', 'billing']), { mutedModules: ['orders', 'billing'] }, 'the server’s answer');
  await assert.rejects(client.fetchHistory({ limit: 500 }), TypeError);
  // @ts-ignore a wrong type at run time
  await assert.rejects(client.setMutedModules('orders'), TypeError);

  assert.deepEqual(
    fetch.calls.map((c) => [c.method, c.url, c.body]),
    [
      ['GET', '/api/notifications', undefined],
      ['GET', '/api/notifications?before=23&limit=50&unread=true&module=orders&severity=critical', undefined],
      ['GET', '/api/notifications/unread-count', undefined],
      ['GET', '/api/notifications/preferences', undefined],
      ['PUT', '/api/notifications/preferences', { mutedModules: ['orders', 'orders', 'billing'] }],
    ],
  );
  client.close();
});

test('API: the base follows url (or apiUrl); withCredentials false keeps cookies same-origin', async () => {
  const fetch = fakeFetch();
  const { client } = singleClient({ fetch, url: 'https://n.example/api/notifications/ws?tenant=a', withCredentials: false });
  await client.markRead('id-1');
  await client.getPreferences();
  assert.deepEqual(
    fetch.calls.map((c) => [c.url, c.credentials]),
    [
      ['https://n.example/api/notifications/id-1/read', 'same-origin'],
      ['https://n.example/api/notifications/preferences', 'same-origin'],
    ],
  );
  client.close();

  const other = singleClient({ fetch: fakeFetch(), apiUrl: '/inbox/' });
  await other.client.fetchUnreadCount();
  assert.equal(other.fetch.calls[0].url, '/inbox/unread-count');
  other.client.close();
});

test('API: errors carry the server’s message and status; network failures status 0', async () => {
  const fetch = fakeFetch((url) => {
    if (url.includes('/missing/')) return { status: 404, json: { error: 'not found: no notification missing for you' } };
    if (url.endsWith('/read-all')) return { status: 403, json: { error: 'forbidden: cross-origin request' } };
    if (url.endsWith('/unread-count')) return { status: 502, statusText: 'Bad Gateway' }; // a proxy's HTML page
    if (url.endsWith('/preferences')) throw new TypeError('Failed to fetch');
    return undefined;
  });
  const { client } = singleClient({ fetch });

  const e404 = await client.markRead('missing').then(() => null, (e) => e);
  assert.ok(e404 instanceof NotificationApiError);
  assert.ok(e404 instanceof Error);
  assert.equal(e404.name, 'NotificationApiError');
  assert.equal(e404.status, 404);
  assert.equal(e404.message, 'not found: no notification missing for you');
  assert.equal(e404.method, 'POST');
  assert.equal(e404.url, '/api/notifications/missing/read');
  assert.deepEqual(e404.body, { error: 'not found: no notification missing for you' });

  await assert.rejects(client.markAllRead(3), { name: 'NotificationApiError', status: 403, message: 'forbidden: cross-origin request' });
  await assert.rejects(client.fetchUnreadCount(), { status: 502, message: 'GET /api/notifications/unread-count: 502 Bad Gateway' });
  const net = await client.getPreferences().then(() => null, (e) => e);
  assert.equal(net.status, 0);
  assert.match(net.message, /cannot be reached/);
  assert.ok(net.cause instanceof TypeError);

  const none = singleClient({ fetch: null });
  await assert.rejects(none.client.markRead('x'), /fetch is not available/);
  none.client.close();
  client.close();
});

// ---- issue 17: seen, archive, snooze, actions, and more listeners ---------------------------

test('inbox calls: seen, archive, unarchive, snooze, interact and the archived history filter', async () => {
  const { client, fetch } = singleClient();
  await client.markSeen(42);
  await client.markSeen('43');
  await client.archive('a b');
  await client.unarchive('n1');
  await client.snooze('n1', new Date('2026-12-08T09:00:00Z'));
  await client.snooze('n2', '2026-12-08T10:00:00+01:00');
  await client.interact('n1', 'approve');
  await client.fetchHistory({ archived: true, limit: 5 });
  await client.fetchHistory({ archived: 'only' });
  assert.deepEqual(fetch.calls.map((c) => [c.method, c.url, c.body]), [
    ['POST', '/api/notifications/seen', { upTo: 42 }],
    ['POST', '/api/notifications/seen', { upTo: 43 }],
    ['POST', '/api/notifications/a%20b/archive', undefined],
    ['POST', '/api/notifications/n1/unarchive', undefined],
    ['POST', '/api/notifications/n1/snooze', { until: '2026-12-08T09:00:00.000Z' }],
    ['POST', '/api/notifications/n2/snooze', { until: '2026-12-08T09:00:00.000Z' }],
    ['POST', '/api/notifications/n1/interact', { action: 'approve' }],
    ['GET', '/api/notifications?limit=5&archived=true', undefined],
    ['GET', '/api/notifications?archived=only', undefined],
  ]);
  await assert.rejects(client.markSeen(-1), TypeError);
  await assert.rejects(client.snooze('n1', 'next tuesday'), TypeError);
  await assert.rejects(client.interact('n1', ''), TypeError);
  await assert.rejects(client.archive(''), TypeError);
  await assert.rejects(client.fetchHistory({ archived: 'yes' }), TypeError);
  assert.equal(fetch.calls.length, 9, 'nothing sent for a bad argument');
  client.close();
});

test('inbox calls: a 400 for an unknown action rejects with the server’s message', async () => {
  const fetch = fakeFetch((url) => (url.endsWith('/interact') ? { status: 400, json: { error: 'no such action: nope' } } : undefined));
  const { client } = singleClient({ fetch });
  await assert.rejects(client.interact('n1', 'nope'), (e) => e instanceof NotificationApiError && e.status === 400 && e.message === 'no such action: nope');
  client.close();
});

test('listen: more callbacks hear every message beside the options’ ones, until removed', async () => {
  const { client, ES, calls } = singleClient();
  const heard = [];
  const stop = client.listen({
    onNotification: (m) => heard.push('n' + m.data.seq),
    onStatus: (m) => heard.push('s' + m.data.unreadCount),
    onConnected: () => heard.push('c'),
  });
  const throwing = client.listen({ onNotification: () => { throw new Error('a bad listener'); } });
  const es = ES.last;
  es.open();
  es.send(connected());
  sendNotification(es, 1);
  es.send(status({ unreadCount: 4, hasMore: false, change: { action: 'archive', notificationId: 'n-1' } }));
  stop();
  sendNotification(es, 2);
  assert.deepEqual(heard, ['c', 'n1', 's4']);
  assert.deepEqual(calls.notifications.map((m) => m.data.seq), [1, 2], 'the options’ callback still hears everything');
  throwing();
  client.close();
});
