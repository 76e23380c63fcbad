import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  Backoff,
  BoundedSet,
  Deduplicator,
  Watchdog,
  backoffCeiling,
  buildStreamUrl,
  fullJitterDelay,
  parseMessage,
  prependBounded,
  routeMessage,
  watchdogTimeout,
} from '../static/notify-client-core.js';
import { FakeClock } from './fakes.js';

test('backoff ceiling grows exponentially from initialMs and is capped at maxMs', () => {
  const ceilings = [0, 1, 2, 3, 4, 5, 6, 10, 100, 5000].map((a) => backoffCeiling(a, 1000, 30000));
  assert.deepEqual(ceilings, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000, 30000]);
});

test('full jitter draws the delay uniformly between 0 and the ceiling', () => {
  assert.equal(fullJitterDelay(3, 1000, 30000, () => 0), 0);
  assert.equal(fullJitterDelay(3, 1000, 30000, () => 0.5), 4000);
  assert.equal(fullJitterDelay(3, 1000, 30000, () => 0.999999), 7999);
  assert.equal(fullJitterDelay(20, 1000, 30000, () => 0.999999), 29999);
  // Many draws with the real Math.random stay within bounds and spread out.
  const draws = Array.from({ length: 2000 }, () => fullJitterDelay(2, 1000, 30000, Math.random));
  assert.ok(draws.every((d) => d >= 0 && d <= 4000));
  assert.ok(Math.min(...draws) < 400 && Math.max(...draws) > 3600, 'the whole range is used');
});

test('Backoff counts consecutive failures and grows until the cap', () => {
  const b = new Backoff({ initialMs: 100, maxMs: 1000, resetAfterMs: 5000, random: () => 0.999 });
  const delays = Array.from({ length: 7 }, (_, i) => b.failed(i));
  assert.deepEqual(delays, [99, 199, 399, 799, 999, 999, 999]);
  assert.equal(b.attempt, 7);
});

test('Backoff forgets failures once a connection stayed healthy for resetAfterMs', () => {
  const b = new Backoff({ initialMs: 100, maxMs: 10000, resetAfterMs: 5000, random: () => 0.999 });
  b.failed(0);
  b.failed(1);
  b.failed(2);
  assert.equal(b.attempt, 3);

  // Open for less than resetAfterMs: still backing off.
  b.opened(1000);
  assert.equal(b.checkHealthy(5999), false);
  assert.equal(b.failed(5999), 799);
  assert.equal(b.attempt, 4);

  // Open for resetAfterMs: the next failure starts again from initialMs.
  b.opened(10000);
  assert.equal(b.failed(15000), 99);
  assert.equal(b.attempt, 1);

  // checkHealthy() resets without a failure (used to show reconnectAttempts = 0).
  b.opened(20000);
  assert.equal(b.checkHealthy(25000), true);
  assert.equal(b.attempt, 0);
});

test('BoundedSet keeps at most max keys, oldest evicted first', () => {
  const s = new BoundedSet(3);
  assert.equal(s.add('a'), true);
  assert.equal(s.add('b'), true);
  assert.equal(s.add('a'), false);
  s.add('c');
  s.add('d');
  assert.equal(s.size, 3);
  assert.equal(s.has('a'), false);
  assert.deepEqual([...s.set], ['b', 'c', 'd']);
  assert.throws(() => new BoundedSet(0), RangeError);
});

test('Deduplicator accepts each id once, counts duplicates, memory is bounded', () => {
  const d = new Deduplicator(100);
  for (let i = 0; i < 1000; i++) assert.equal(d.accept(`id-${i}`), true);
  assert.equal(d.seen.size, 100);
  assert.equal(d.accept('id-999'), false);
  assert.equal(d.accept('id-950'), false);
  assert.equal(d.duplicates, 2);
  // Forgotten beyond the bound.
  assert.equal(d.accept('id-0'), true);
  // No id: never suppressed.
  assert.equal(d.accept(null), true);
  assert.equal(d.accept(undefined), true);
  assert.equal(d.duplicates, 2);
});

test('buildStreamUrl puts the resume point in the lastEventId query parameter', () => {
  assert.equal(buildStreamUrl('/api/notifications/ws', null), '/api/notifications/ws');
  assert.equal(buildStreamUrl('/api/notifications/ws', ''), '/api/notifications/ws');
  assert.equal(buildStreamUrl('/api/notifications/ws', '42'), '/api/notifications/ws?lastEventId=42');
  assert.equal(buildStreamUrl('/ws?a=1&b=2', '42'), '/ws?a=1&b=2&lastEventId=42');
  assert.equal(buildStreamUrl('/ws?lastEventId=7&a=1', '42'), '/ws?a=1&lastEventId=42');
  assert.equal(buildStreamUrl('/ws?lastEventId=7', null), '/ws');
  assert.equal(
    buildStreamUrl('https://n.example.com/api/notifications/ws#x', '9'),
    'https://n.example.com/api/notifications/ws?lastEventId=9#x',
  );
  assert.equal(buildStreamUrl('/ws', 'a b&c'), '/ws?lastEventId=a%20b%26c');
});

test('watchdogTimeout is twice the heartbeat interval unless given', () => {
  assert.equal(watchdogTimeout({}), 30000);
  assert.equal(watchdogTimeout({ heartbeatInterval: 1000 }), 2000);
  assert.equal(watchdogTimeout({ heartbeatInterval: 1000, heartbeatTimeoutMs: 500 }), 500);
  assert.equal(watchdogTimeout({ heartbeatInterval: 0 }), 30000);
});

test('Watchdog expires after timeoutMs of silence; touches keep it alive', () => {
  const clock = new FakeClock();
  let expired = 0;
  const w = new Watchdog({ ...clock, onExpire: () => expired++ });
  w.start(2000);
  for (let i = 0; i < 20; i++) {
    clock.advance(1500);
    w.touch();
  }
  assert.equal(expired, 0, 'a message every 1.5 s keeps a 2 s watchdog alive');
  assert.equal(clock.timers.size, 1, 'one timer, not one per message');
  clock.advance(1999);
  assert.equal(expired, 0);
  clock.advance(1);
  assert.equal(expired, 1);
  assert.equal(w.running, false);
  clock.advance(10000);
  assert.equal(expired, 1, 'expires once');
});

test('Watchdog: a late timer does not expire a connection that kept receiving', () => {
  const clock = new FakeClock();
  let expired = 0;
  const w = new Watchdog({ ...clock, onExpire: () => expired++ });
  w.start(1000);
  // Activity arrives, then the (throttled) timer fires late.
  clock.t += 900;
  w.touch();
  clock.t += 500;
  w.check();
  assert.equal(expired, 0);
  w.setTimeoutMs(100);
  assert.equal(expired, 1, 'shortening the timeout below the idle time expires at once');
  w.stop();
});

test('parseMessage accepts notifyd messages only', () => {
  assert.equal(parseMessage('{"type":"heartbeat","timestamp":1}').ok, true);
  assert.equal(parseMessage('not json').ok, false);
  assert.equal(parseMessage('[1]').ok, false);
  assert.equal(parseMessage('{"no":"type"}').ok, false);
  assert.equal(parseMessage(42).ok, false);
});

test('routeMessage says what each message asks for', () => {
  assert.deepEqual(routeMessage({ type: 'notification', notificationId: 'x', timestamp: 1, data: /** @type {any} */ ({ id: 'y' }) }), {
    kind: 'notification',
    id: 'x',
  });
  assert.deepEqual(routeMessage(/** @type {any} */ ({ type: 'notification', timestamp: 1, data: { id: 'y' } })), {
    kind: 'notification',
    id: 'y',
  });
  assert.deepEqual(routeMessage(/** @type {any} */ ({ type: 'connected', timestamp: 1, data: { heartbeatInterval: 5000 } })), {
    kind: 'connected',
    heartbeatInterval: 5000,
  });
  assert.deepEqual(routeMessage({ type: 'heartbeat', timestamp: 1 }), { kind: 'heartbeat' });
  assert.deepEqual(routeMessage({ type: 'status', timestamp: 1, data: { unreadCount: 3 } }), { kind: 'status', closing: null });
  assert.deepEqual(routeMessage({ type: 'status', timestamp: 1, data: { closing: 'shutdown', message: 'bye' } }), {
    kind: 'status',
    closing: { reason: 'shutdown', terminal: false, message: 'bye', reconnectAfter: null },
  });
  assert.deepEqual(
    routeMessage({ type: 'status', timestamp: 1, data: { closing: 'shutdown', message: 'bye', reconnectAfter: 1234 } }),
    { kind: 'status', closing: { reason: 'shutdown', terminal: false, message: 'bye', reconnectAfter: 1234 } },
  );
  for (const bad of [-1, 'soon', null, Infinity]) {
    const r = routeMessage({ type: 'status', timestamp: 1, data: { closing: 'shutdown', reconnectAfter: bad } });
    assert.equal(r.kind === 'status' && r.closing?.reconnectAfter, null, String(bad));
  }
  for (const reason of ['expired', 'logout']) {
    const r = routeMessage({ type: 'status', timestamp: 1, data: { closing: reason } });
    assert.equal(r.kind === 'status' && r.closing?.terminal, true, reason);
  }
  assert.deepEqual(routeMessage(/** @type {any} */ ({ type: 'something-new', timestamp: 1 })), { kind: 'unknown' });
});

test('prependBounded keeps the newest max items first', () => {
  let list = /** @type {number[]} */ ([]);
  for (let i = 1; i <= 5; i++) list = prependBounded(list, i, 3);
  assert.deepEqual(list, [5, 4, 3]);
  assert.deepEqual(prependBounded([1], 2, 0), []);
});
