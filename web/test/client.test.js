// The client with one stream per tab (shareAcrossTabs: false), driven by
// fake timers and a fake EventSource.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { NotificationStreamError } from '../static/notify-client.js';
import { connected, heartbeat, notification, sendNotification, status } from './fakes.js';
import { singleClient } from './setup.js';

/** Time until the next EventSource is created, by stepping the clock 1 ms at a time (up to limit). */
function timeToNextConnect(clock, ES, limit = 120000) {
  const before = ES.instances.length;
  for (let waited = 0; waited <= limit; waited++) {
    clock.advance(waited === 0 ? 0 : 1);
    if (ES.instances.length > before) return waited;
  }
  return Infinity;
}

test('connects to the default URL with credentials, no resume point at first', () => {
  const { client, ES, calls } = singleClient();
  assert.equal(ES.instances.length, 1);
  assert.equal(ES.last.url, '/api/notifications/ws');
  assert.equal(ES.last.withCredentials, true);
  assert.equal(client.state, 'connecting');
  ES.last.open();
  assert.equal(client.state, 'open');
  ES.last.send(connected({ connectionId: 12, roles: ['ADMIN', 'USER'] }));
  assert.equal(calls.connected.length, 1);
  assert.deepEqual(
    { ...client.connectionInfo },
    {
      connectionId: 12,
      userId: 'alice',
      roles: ['ADMIN', 'USER'],
      connectedAt: 1_700_000_000_000,
      reconnectAttempts: 0,
      isLeader: true,
      heartbeatInterval: 15000,
    },
  );
  client.close();
});

test('delivers each notification once, newest first, tracking the last event id', () => {
  const { client, ES, calls } = singleClient();
  const es = ES.last.open();
  es.send(connected());
  sendNotification(es, 1);
  sendNotification(es, 2);
  es.send(heartbeat());
  assert.equal(client.lastEventId, '2');
  assert.deepEqual(
    calls.notifications.map((m) => m.data.seq),
    [1, 2],
  );
  assert.deepEqual(
    client.notifications.map((m) => m.notificationId),
    ['n-2', 'n-1'],
  );
  assert.equal(client.duplicatesSuppressed, 0);
  client.close();
});

test('keeps at most maxNotifications, newest first', () => {
  const { client, ES, calls } = singleClient({ maxNotifications: 3 });
  const es = ES.last.open();
  for (let seq = 1; seq <= 10; seq++) sendNotification(es, seq);
  assert.equal(calls.notifications.length, 10, 'every notification reaches onNotification');
  assert.deepEqual(
    client.notifications.map((m) => m.data.seq),
    [10, 9, 8],
  );
  client.close();
});

test('suppresses duplicates by notificationId and counts them; memory bounded by dedupeSize', () => {
  const { client, ES, calls } = singleClient({ dedupeSize: 3 });
  const es = ES.last.open();
  sendNotification(es, 1);
  sendNotification(es, 2);
  sendNotification(es, 1);
  sendNotification(es, 2);
  assert.equal(calls.notifications.length, 2);
  assert.equal(client.duplicatesSuppressed, 2);
  assert.equal(client.getSnapshot().duplicatesSuppressed, 2);
  // Only the last 3 ids are remembered: n-1 is forgotten after 3 newer ids.
  sendNotification(es, 3);
  sendNotification(es, 4);
  sendNotification(es, 1);
  assert.equal(calls.notifications.length, 5);
  client.close();
});

test('on error it closes the EventSource and reconnects with a NEW one carrying ?lastEventId', () => {
  const { client, clock, ES, calls } = singleClient();
  const first = ES.last.open();
  first.send(connected());
  sendNotification(first, 41);
  sendNotification(first, 42);

  first.fail(); // the browser would reconnect this object by itself: the client does not let it
  assert.equal(first.closed, true);
  assert.equal(client.state, 'reconnecting');
  assert.equal(calls.errors.length, 1);
  assert.ok(calls.errors[0] instanceof NotificationStreamError);
  assert.equal(calls.errors[0].kind, 'network');
  assert.equal(calls.errors[0].fatal, false);
  assert.equal(calls.errors[0].retryInMs, 500, 'random 0.5 × ceiling 1000');
  assert.equal(ES.instances.length, 1, 'waits for the backoff delay');

  clock.advance(500);
  assert.equal(ES.instances.length, 2);
  const second = ES.last;
  assert.notEqual(second, first);
  assert.equal(second.url, '/api/notifications/ws?lastEventId=42');
  second.open();
  sendNotification(second, 43);
  second.fail({ gaveUp: true });
  clock.advance(2000);
  assert.equal(ES.last.url, '/api/notifications/ws?lastEventId=43');
  assert.equal(ES.open.length, 1, 'never more than one open EventSource');
  client.close();
});

test('an answer EventSource gives up on (non-200, wrong type) is retried with backoff', () => {
  const { client, clock, ES, calls } = singleClient({ random: () => 0.999 });
  const delays = [];
  for (let i = 0; i < 8; i++) {
    ES.last.fail({ gaveUp: true }); // readyState CLOSED, never opened
    delays.push(timeToNextConnect(clock, ES));
  }
  assert.deepEqual(delays, [999, 1998, 3996, 7992, 15984, 29970, 29970, 29970]);
  assert.ok(calls.errors.every((e) => e.kind === 'rejected' && !e.fatal));
  assert.deepEqual(
    calls.errors.map((e) => e.retryInMs),
    delays,
  );
  assert.equal(client.connectionInfo.reconnectAttempts, 8);
  assert.equal(client.state, 'reconnecting');
  client.close();
});

test('full jitter: the delay is random(0, ceiling) with the injected random', () => {
  const draws = [0, 0.25, 0.75, 0.1];
  const { client, clock, ES } = singleClient({ random: () => draws.shift() ?? 0, backoff: { initialMs: 1000, maxMs: 3000 } });
  const delays = [];
  for (let i = 0; i < 4; i++) {
    ES.last.fail();
    delays.push(timeToNextConnect(clock, ES));
  }
  // ceilings 1000, 2000, 3000 (capped), 3000
  assert.deepEqual(delays, [0, 500, 2250, 300]);
  client.close();
});

test('backoff is reset after the connection has been healthy for resetAfterMs', () => {
  const { client, clock, ES } = singleClient({
    random: () => 0.999,
    backoff: { initialMs: 1000, maxMs: 30000, resetAfterMs: 60000 },
  });
  for (let i = 0; i < 4; i++) {
    ES.last.fail();
    timeToNextConnect(clock, ES);
  }
  assert.equal(client.connectionInfo.reconnectAttempts, 4);

  // A short-lived connection does not reset the backoff.
  let es = ES.last.open();
  es.send(connected({ heartbeatInterval: 15000 }));
  clock.advance(10000);
  es.fail();
  assert.equal(timeToNextConnect(clock, ES), 15984);
  assert.equal(client.connectionInfo.reconnectAttempts, 5);

  // Healthy for a minute: the attempts are forgotten…
  es = ES.last.open();
  es.send(connected({ heartbeatInterval: 15000 }));
  for (let t = 0; t < 60000; t += 15000) {
    clock.advance(15000);
    es.send(heartbeat());
  }
  assert.equal(client.connectionInfo.reconnectAttempts, 0);
  assert.equal(client.state, 'open');
  // …so the next failure starts from initialMs again.
  es.fail();
  assert.equal(timeToNextConnect(clock, ES), 999);
  client.close();
});

test('heartbeat watchdog: no message for twice the interval means a dead connection', () => {
  const { client, clock, ES, calls } = singleClient();
  const es = ES.last.open();
  es.send(connected({ heartbeatInterval: 1000 }));
  sendNotification(es, 5);
  // Heartbeats (or any message) keep it alive.
  for (let i = 0; i < 30; i++) {
    clock.advance(1000);
    es.send(i % 2 ? heartbeat() : status({ unreadCount: i }));
  }
  assert.equal(es.closed, false);
  assert.equal(ES.instances.length, 1);
  // Silence for 2 × 1000 ms.
  clock.advance(1999);
  assert.equal(es.closed, false);
  clock.advance(1);
  assert.equal(es.closed, true);
  assert.equal(client.state, 'reconnecting');
  assert.equal(calls.errors.at(-1)?.kind, 'heartbeat');
  clock.advance(500);
  assert.equal(ES.instances.length, 2);
  assert.equal(ES.last.url, '/api/notifications/ws?lastEventId=5');
  client.close();
});

test('heartbeatTimeoutMs overrides twice the interval; the watchdog also covers a connect that hangs', () => {
  const { client, clock, ES } = singleClient({ heartbeatTimeoutMs: 5000 });
  // Never opens: after 5 s it is abandoned.
  clock.advance(4999);
  assert.equal(ES.last.closed, false);
  clock.advance(1);
  assert.equal(ES.instances[0].closed, true);
  clock.advance(500);
  const es = ES.last.open();
  es.send(connected({ heartbeatInterval: 1000 }));
  clock.advance(4000);
  assert.equal(es.closed, false, 'not 2 s: heartbeatTimeoutMs wins');
  clock.advance(1000);
  assert.equal(es.closed, true);
  client.close();

  // Without either, a stream that never says anything is abandoned after 30 s.
  const s2 = singleClient();
  s2.ES.last.open();
  s2.clock.advance(29999);
  assert.equal(s2.ES.last.closed, false);
  s2.clock.advance(1);
  assert.equal(s2.ES.last.closed, true);
  s2.client.close();
});

test('offline: no spinning; online: reconnect at once', () => {
  const { client, clock, ES, window, navigator } = singleClient({ random: () => 0.999 });
  const es = ES.last.open();
  sendNotification(es, 8);
  navigator.onLine = false;
  window.emit('offline');
  es.fail();
  assert.equal(client.state, 'reconnecting');
  clock.advance(29000);
  assert.equal(ES.instances.length, 1, 'no attempt while offline (only a slow check at maxMs)');
  navigator.onLine = true;
  window.emit('online');
  assert.equal(ES.instances.length, 2, 'back online: reconnect now');
  assert.equal(ES.last.url, '/api/notifications/ws?lastEventId=8');
  assert.equal(client.connectionInfo.reconnectAttempts, 0);

  // Going offline while a retry is pending cancels the quick retry.
  ES.last.fail();
  assert.equal(clock.pending().includes(999), true);
  window.emit('offline');
  clock.advance(10000);
  assert.equal(ES.instances.length, 2);
  window.emit('online');
  assert.equal(ES.instances.length, 3);
  client.close();
});

test('offline for long: one slow attempt per maxMs, not a loop', () => {
  const { client, clock, ES, window } = singleClient({ random: () => 0.999 });
  window.emit('offline');
  for (let i = 0; i < 5; i++) {
    ES.last.fail();
    assert.equal(timeToNextConnect(clock, ES), 30000);
  }
  client.close();
});

test('a hidden page that becomes visible reconnects now if the stream is down', () => {
  const { client, clock, ES, document } = singleClient({ random: () => 0.999 });
  for (let i = 0; i < 5; i++) {
    ES.last.fail();
    timeToNextConnect(clock, ES);
  }
  document.setVisibility('hidden');
  ES.last.fail();
  assert.equal(clock.pending()[0] > 10000, true, 'a long backoff is pending');
  const before = ES.instances.length;
  document.setVisibility('hidden');
  assert.equal(ES.instances.length, before);
  document.setVisibility('visible');
  assert.equal(ES.instances.length, before + 1, 'visible: reconnect now');

  // Visible again while open: nothing happens if the stream is alive…
  const es = ES.last.open();
  es.send(connected({ heartbeatInterval: 1000 }));
  document.setVisibility('hidden');
  clock.advance(500);
  document.setVisibility('visible');
  assert.equal(es.closed, false);
  client.close();
});

test('visible again after a sleep: a silent stream is detected at once', () => {
  const { client, clock, ES, document } = singleClient();
  const es = ES.last.open();
  es.send(connected({ heartbeatInterval: 1000 }));
  document.setVisibility('hidden');
  clock.t += 60000; // the laptop slept: no timer ran
  document.setVisibility('visible');
  assert.equal(es.closed, true);
  assert.equal(client.state, 'reconnecting');
  client.close();
});

test('status messages go to onStatus; closing "shutdown"/"slow" reconnects promptly from the last id', () => {
  const { client, clock, ES, calls } = singleClient({ random: () => 0.999 });
  // Some failures first: a closing reconnect is still prompt.
  for (let i = 0; i < 4; i++) {
    ES.last.fail();
    timeToNextConnect(clock, ES);
  }
  for (const reason of ['shutdown', 'slow']) {
    const es = ES.last.open();
    es.send(connected());
    sendNotification(es, reason === 'shutdown' ? 100 : 101);
    es.send(status({ unreadCount: 3 }));
    es.send(status({ closing: reason, message: 'reconnect to resume' }));
    assert.equal(es.closed, true, 'closed by the client, not left to EventSource');
    assert.equal(client.state, 'reconnecting');
    const wait = timeToNextConnect(clock, ES);
    assert.ok(wait <= 1000, `prompt: ${wait} ms`);
    assert.equal(ES.last.url, `/api/notifications/ws?lastEventId=${reason === 'shutdown' ? 100 : 101}`);
  }
  assert.deepEqual(
    calls.statuses.map((m) => m.data.closing ?? m.data.unreadCount),
    [3, 'shutdown', 3, 'slow'],
  );
  client.close();
});

test('a status naming another position (replay "ahead" or "lost") moves the resume point there', () => {
  const { client, clock, ES, calls } = singleClient({ random: () => 0 });
  let es = ES.last.open();
  es.send(connected());
  sendNotification(es, 48);
  // The database was restored: 48 lies beyond (ahead) or inside a lost
  // history's hole; the server says where the stream goes on from.
  es.send(status({ replay: 'lost', resumeFrom: 48, lastSeq: 39, nextSeq: 2000000000 }));
  assert.equal(client.lastEventId, '39');
  es.fail();
  timeToNextConnect(clock, ES);
  assert.equal(ES.last.url, '/api/notifications/ws?lastEventId=39', 'reconnects from the position the server named');
  es = ES.last.open();
  es.send(connected());
  es.send(status({ replay: 'ahead', resumeFrom: 39, lastSeq: 12 }));
  assert.equal(client.lastEventId, '12');
  // Other statuses leave it alone.
  es.send(status({ replay: 'truncated', resumeFrom: 12, oldestAvailable: 20 }));
  es.send(status({ unreadCount: 1 }));
  assert.equal(client.lastEventId, '12');
  assert.deepEqual(calls.statuses.map((m) => m.data.replay ?? m.data.unreadCount), ['lost', 'ahead', 'truncated', 1]);
  client.close();
});

test('closing "shutdown" with reconnectAfter waits exactly that long, so a node spreads its clients', () => {
  const { client, clock, ES } = singleClient({ random: () => 0 });
  for (const after of [2500, 40, 0]) {
    const es = ES.last.open();
    es.send(connected());
    sendNotification(es, 7);
    es.send(status({ closing: 'shutdown', message: 'server shutting down; reconnect to resume', reconnectAfter: after }));
    assert.equal(client.state, 'reconnecting');
    assert.equal(timeToNextConnect(clock, ES), after);
    assert.equal(ES.last.url, '/api/notifications/ws?lastEventId=7');
  }
  client.close();
});

test('closing "expired" or "logout" stops the client: state closed, onError says sign in, no retries', () => {
  for (const reason of ['expired', 'logout']) {
    const { client, clock, ES, calls } = singleClient();
    const es = ES.last.open();
    es.send(connected());
    sendNotification(es, 3);
    es.send(status({ closing: reason, message: 'credentials expired; sign in again' }));
    assert.equal(client.state, 'closed');
    assert.equal(es.closed, true);
    const err = calls.errors.at(-1);
    assert.equal(err?.kind, 'auth');
    assert.equal(err?.fatal, true);
    assert.equal(err?.reason, reason);
    assert.match(String(err?.message), /sign in/);
    clock.advance(10 * 60 * 1000);
    assert.equal(ES.instances.length, 1, 'the server is not hammered');
    assert.equal(clock.timers.size, 0);

    // After signing in again, reconnect() starts over from the last id.
    client.reconnect();
    assert.equal(ES.instances.length, 2);
    assert.equal(ES.last.url, '/api/notifications/ws?lastEventId=3');
    ES.last.open();
    assert.equal(client.state, 'open');
    client.close();
  }
});

test('reconnect() reconnects now with the last id and forgets past failures', () => {
  const { client, clock, ES } = singleClient({ random: () => 0.999 });
  const es = ES.last.open();
  sendNotification(es, 77);
  for (let i = 0; i < 3; i++) {
    ES.last.fail();
    timeToNextConnect(clock, ES);
  }
  ES.last.fail();
  const n = ES.instances.length;
  client.reconnect();
  assert.equal(ES.instances.length, n + 1);
  assert.equal(ES.last.url, '/api/notifications/ws?lastEventId=77');
  assert.equal(client.connectionInfo.reconnectAttempts, 0);
  assert.equal(ES.open.length, 1);
  // Also while open: a fresh stream replaces the current one.
  ES.last.open();
  client.reconnect();
  assert.equal(ES.open.length, 1);
  assert.equal(ES.instances.length, n + 2);
  client.close();
});

test('close() ends everything: stream, timers, listeners', () => {
  const { client, clock, ES, window, document } = singleClient();
  const es = ES.last.open();
  es.send(connected());
  es.fail();
  assert.ok(clock.timers.size > 0);
  let changes = 0;
  client.subscribe(() => changes++);
  client.close();
  assert.equal(client.state, 'closed');
  assert.equal(changes, 1);
  assert.equal(clock.timers.size, 0);
  assert.equal(window.listenerCount, 0);
  assert.equal(document.listenerCount, 0);
  clock.advance(120000);
  window.emit('online');
  document.setVisibility('visible');
  client.reconnect();
  assert.equal(ES.instances.length, 1);
  assert.equal(ES.open.length, 0);
});

test('a throwing callback does not break the stream; malformed data is reported', (t) => {
  const logged = [];
  t.mock.method(console, 'error', (...args) => logged.push(args));
  let n = 0;
  const { client, ES, calls } = singleClient({
    onNotification: () => {
      n++;
      throw new Error('app bug');
    },
  });
  const es = ES.last.open();
  sendNotification(es, 1);
  es.send('{not json');
  sendNotification(es, 2);
  assert.equal(n, 2);
  assert.equal(logged.length, 2);
  assert.equal(client.lastEventId, '2');
  assert.equal(calls.errors.length, 1);
  assert.equal(calls.errors[0].kind, 'protocol');
  assert.equal(client.state, 'open');
  client.close();
});

test('subscribe/getSnapshot: a stable snapshot replaced on every change', () => {
  const { client, ES } = singleClient();
  const s0 = client.getSnapshot();
  assert.equal(client.getSnapshot(), s0);
  let changes = 0;
  const off = client.subscribe(() => changes++);
  const es = ES.last.open();
  const s1 = client.getSnapshot();
  assert.notEqual(s1, s0);
  assert.equal(s1.isConnected, true);
  sendNotification(es, 1);
  const s2 = client.getSnapshot();
  assert.equal(s2.notifications.length, 1);
  assert.equal(s2.lastEventId, '1');
  assert.ok(Object.isFrozen(s2));
  assert.ok(changes >= 2);
  off();
  const c = changes;
  sendNotification(es, 2);
  assert.equal(changes, c);
  client.close();
});

test('a custom URL keeps its query; the option names of the contract are honoured', () => {
  const { client, clock, ES } = singleClient({ url: 'https://n.example.com/api/notifications/ws?tenant=a', withCredentials: false });
  assert.equal(ES.last.url, 'https://n.example.com/api/notifications/ws?tenant=a');
  assert.equal(ES.last.withCredentials, false);
  sendNotification(ES.last.open(), 9);
  ES.last.fail();
  clock.advance(1000);
  assert.equal(ES.last.url, 'https://n.example.com/api/notifications/ws?tenant=a&lastEventId=9');
  client.close();
});

test('notification() fixture matches the contract shape', () => {
  const m = notification(1);
  assert.equal(m.type, 'notification');
  assert.equal(m.notificationId, m.data.id);
});

test('a snooze that ended brings its notification back through onNotification, once, past the de-duplication', () => {
  const { client, ES, calls } = singleClient();
  const es = ES.last.open();
  es.send(connected({ unreadCount: 0 }));
  sendNotification(es, 7);
  const n = notification(7).data;
  es.send(status({ unreadCount: 1, countedThrough: 7, change: { action: 'unsnooze', notificationId: n.id, seq: 7 }, notification: n }));
  es.send(status({ unreadCount: 1, change: { action: 'read', notificationId: n.id, seq: 7 } }));
  assert.deepEqual(
    calls.notifications.map((m) => [m.data.seq, m.fromSnooze === true]),
    [
      [7, false],
      [7, true],
    ],
  );
  assert.equal(client.unreadCount, 1, 'the count is the status message’s');
  assert.equal(client.notifications.filter((m) => m.notificationId === n.id).length, 1, 'listed once');
  client.close();
});
