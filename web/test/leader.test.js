// One stream per browser: tabs elect a leader with Web Locks and relay the
// stream over BroadcastChannel (both faked in fakes.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { FakeBrowser, FakeClock, connected, heartbeat, sendNotification, settle, status } from './fakes.js';
import { clientInTab, fakeBrowser, LOCK, openTab, seqs, twoTabs } from './setup.js';

test('two tabs: one leader holds the only stream, the follower gets every message relayed', async () => {
  const { browser, a, b } = await twoTabs();

  assert.equal(a.client.connectionInfo.isLeader, true);
  assert.equal(b.client.connectionInfo.isLeader, false);
  assert.equal(a.ES.instances.length, 1, 'the leader opened the stream');
  assert.equal(b.ES.instances.length, 0, 'the follower opened none');
  assert.equal(browser.holder(LOCK), a.tab.id);

  const es = a.ES.last.open();
  es.send(connected({ connectionId: 99 }));
  for (let seq = 1; seq <= 5; seq++) sendNotification(es, seq);
  es.send(status({ unreadCount: 2 }));
  await settle();

  assert.deepEqual(seqs(a.calls), [1, 2, 3, 4, 5]);
  assert.deepEqual(seqs(b.calls), [1, 2, 3, 4, 5]);
  assert.equal(b.client.state, 'open', 'the follower mirrors the leader state');
  assert.equal(b.client.lastEventId, '5', 'the follower tracks the last event id');
  assert.equal(b.client.connectionInfo.connectionId, 99);
  assert.equal(b.calls.connected.length, 1);
  assert.equal(b.calls.statuses.length, 1);
  assert.deepEqual(
    b.client.notifications.map((m) => m.data.seq),
    [5, 4, 3, 2, 1],
  );

  a.client.close();
  b.client.close();
});

test('a follower joining later learns the current state from the leader', async () => {
  const { browser, clock, open } = fakeBrowser();
  const a = await open();
  const es = a.ES.last.open();
  sendNotification(es, 10);
  await settle();
  const b = openTab(browser, clock);
  assert.equal(b.client.state, 'connecting');
  await settle();
  assert.equal(b.client.state, 'open');
  assert.equal(b.client.lastEventId, '10');
  a.client.close();
  b.client.close();
});

test('the leader tab closes: the follower takes over from the last id, nothing lost, overlap de-duplicated', async () => {
  const { browser, a, b } = await twoTabs();

  const es = a.ES.last.open();
  es.send(connected());
  for (let seq = 1; seq <= 3; seq++) sendNotification(es, seq);
  await settle();
  assert.equal(b.client.lastEventId, '3');

  // The tab goes away without running any code: the browser releases its
  // lock and closes its channel and stream.
  a.tab.kill();
  es.close();
  await settle();

  assert.equal(b.client.connectionInfo.isLeader, true);
  assert.equal(browser.holder(LOCK), b.tab.id);
  assert.equal(b.ES.instances.length, 1);
  assert.equal(b.ES.last.url, '/api/notifications/ws?lastEventId=3', 'resumes from the last relayed id');

  // The server replays after 3; suppose the old leader had also relayed
  // something twice: de-duplication hides it.
  const es2 = b.ES.last.open();
  es2.send(connected());
  sendNotification(es2, 3);
  sendNotification(es2, 4);
  sendNotification(es2, 5);
  assert.deepEqual(seqs(b.calls), [1, 2, 3, 4, 5], 'every notification exactly once, in order');
  assert.equal(b.client.duplicatesSuppressed, 1);
  assert.equal(b.client.state, 'open');
  b.client.close();
});

test('leader close() (component unmount) hands over the same way; a third tab keeps following', async () => {
  const { browser, clock, open } = fakeBrowser();
  const a = await open();
  const b = openTab(browser, clock);
  const c = await open();
  const es = a.ES.last.open();
  sendNotification(es, 1);
  sendNotification(es, 2);
  await settle();

  a.client.close();
  assert.equal(es.closed, true);
  await settle();
  const leaders = [b, c].filter((t) => t.client.connectionInfo.isLeader);
  assert.equal(leaders.length, 1);
  const [next] = leaders;
  const other = next === b ? c : b;
  assert.equal(next.ES.last.url, '/api/notifications/ws?lastEventId=2');
  assert.equal(other.ES.instances.length, 0);

  const es2 = next.ES.last.open();
  sendNotification(es2, 3);
  await settle();
  assert.deepEqual(seqs(b.calls), [1, 2, 3]);
  assert.deepEqual(seqs(c.calls), [1, 2, 3]);
  assert.equal(other.client.state, 'open');
  b.client.close();
  c.client.close();
});

test('errors and backoff state are relayed; a follower reconnect() asks the leader', async () => {
  const { a, b } = await twoTabs();
  const es = a.ES.last.open();
  sendNotification(es, 4);
  es.fail();
  await settle();
  assert.equal(b.client.state, 'reconnecting');
  assert.equal(b.calls.errors.length, 1);
  assert.equal(b.calls.errors[0].kind, 'network');
  assert.equal(b.client.connectionInfo.reconnectAttempts, 1);

  b.client.reconnect();
  await settle();
  assert.equal(a.ES.instances.length, 2, 'the leader reconnected at once');
  assert.equal(a.ES.last.url, '/api/notifications/ws?lastEventId=4');
  assert.equal(b.ES.instances.length, 0);
  a.client.close();
  b.client.close();
});

test('a follower that becomes visible wakes a leader waiting on its backoff', async () => {
  const { clock, a, b } = await twoTabs({ leader: { random: () => 0.999 } });
  for (let i = 0; i < 5; i++) {
    a.ES.last.fail();
    for (let t = 0; t < 40; t++) {
      clock.advance(1000);
      await settle();
    }
  }
  a.ES.last.fail();
  await settle();
  assert.ok(a.calls.errors.at(-1).retryInMs > 10000, 'a long backoff is pending');
  assert.equal(a.client.connectionInfo.isLeader, true);
  const n = a.ES.instances.length;
  b.tab.document.setVisibility('hidden');
  b.tab.document.setVisibility('visible');
  await settle();
  assert.equal(a.ES.instances.length, n + 1);
  a.client.close();
  b.client.close();
});

test('a frozen leader (lock held, silent) is replaced: the follower pings, then steals the lock', async () => {
  const { browser, clock, a, b } = await twoTabs();
  const es = a.ES.last.open();
  es.send(connected({ heartbeatInterval: 1000 }));
  sendNotification(es, 1);
  await settle();

  // Heartbeats relayed: the follower is content.
  for (let i = 0; i < 10; i++) {
    clock.advance(1000);
    es.send(heartbeat());
    await settle();
  }
  assert.equal(b.client.connectionInfo.isLeader, false);

  a.tab.freeze();
  // The follower waits heartbeat timeout + one interval (3 s), pings, waits 3 s, steals.
  clock.advance(3000);
  await settle();
  assert.equal(browser.requests.filter((r) => r.options.steal).length, 0);
  clock.advance(3000);
  await settle();
  assert.equal(browser.requests.filter((r) => r.options.steal).length, 1);
  assert.equal(b.client.connectionInfo.isLeader, true);
  assert.equal(b.ES.last.url, '/api/notifications/ws?lastEventId=1');

  // The old leader learns it lost the lock and gives its stream up.
  a.tab.unfreeze();
  await settle();
  assert.equal(a.client.connectionInfo.isLeader, false);
  assert.equal(a.ES.open.length, 0);
  const es2 = b.ES.last.open();
  sendNotification(es2, 2);
  await settle();
  assert.deepEqual(seqs(a.calls), [1, 2], 'the old leader now follows');
  a.client.close();
  b.client.close();
});

test('a live leader answers pings: no steal while it is merely reconnecting', async () => {
  const { browser, clock, a, b } = await twoTabs({ leader: { random: () => 0.999 } });
  // The server is down for ten minutes: the leader backs off, relays nothing.
  for (let t = 0; t < 600; t++) {
    if (a.ES.last.readyState !== 2 && !a.ES.last.closed) a.ES.last.fail({ gaveUp: true });
    clock.advance(1000);
    await settle();
  }
  assert.equal(browser.requests.filter((r) => r.options.steal).length, 0);
  assert.equal(a.client.connectionInfo.isLeader, true);
  assert.equal(b.ES.instances.length, 0);
  a.client.close();
  b.client.close();
});

test('sign-in needed: every tab stops; none hammers the server', async () => {
  const { browser, clock, a, b } = await twoTabs();
  const es = a.ES.last.open();
  sendNotification(es, 1);
  es.send(status({ closing: 'logout', message: 'signed out' }));
  await settle();
  assert.equal(a.client.state, 'closed');
  assert.equal(b.client.state, 'closed');
  assert.equal(a.calls.errors.at(-1)?.fatal, true);
  assert.equal(b.calls.errors.at(-1)?.fatal, true);
  clock.advance(10 * 60 * 1000);
  await settle();
  assert.equal(a.ES.instances.length + b.ES.instances.length, 1);
  assert.equal(browser.holder(LOCK), null, 'nobody holds or waits for the lock');

  // Signed in again in tab b: it leads, and tab a follows again by itself.
  b.client.reconnect();
  await settle();
  assert.equal(b.client.connectionInfo.isLeader, true);
  assert.equal(b.ES.last.url, '/api/notifications/ws?lastEventId=1');
  b.ES.last.open();
  await settle();
  assert.equal(a.client.state, 'open');
  sendNotification(b.ES.last, 2);
  await settle();
  assert.deepEqual(seqs(a.calls), [1, 2]);
  a.client.close();
  b.client.close();
});

test('a client created and closed at once (StrictMode) leaves one stream for the next', async () => {
  const browser = new FakeBrowser();
  const clock = new FakeClock();
  const first = openTab(browser, clock);
  first.client.close();
  const { ES: tab2ES, client: second } = clientInTab(first.tab, clock);
  await settle();
  assert.equal(first.ES.instances.length, 0, 'the closed client never opened a stream');
  assert.equal(tab2ES.instances.length, 1);
  assert.equal(second.connectionInfo.isLeader, true);
  second.close();
});

test('without Web Locks or BroadcastChannel each tab falls back to its own stream', async () => {
  const browser = new FakeBrowser();
  const clock = new FakeClock();
  const noLocks = openTab(browser, clock, { locks: null, navigator: { onLine: true } });
  const noChannel = openTab(browser, clock, { BroadcastChannel: null });
  const optedOut = openTab(browser, clock, { shareAcrossTabs: false });
  await settle();
  for (const t of [noLocks, noChannel, optedOut]) {
    assert.equal(t.ES.instances.length, 1);
    assert.equal(t.client.connectionInfo.isLeader, true);
  }
  assert.equal(browser.requests.length, 0);
  noLocks.client.close();
  noChannel.client.close();
  optedOut.client.close();
});

test('Web Locks refusing the request (opaque origin) falls back to an own stream', async () => {
  const browser = new FakeBrowser();
  const clock = new FakeClock();
  const refusing = {
    request: () => Promise.reject(Object.assign(new Error('SecurityError'), { name: 'SecurityError' })),
  };
  const t = openTab(browser, clock, { locks: refusing });
  await settle();
  assert.equal(t.ES.instances.length, 1);
  assert.equal(t.client.connectionInfo.isLeader, true);
  t.client.close();
});
