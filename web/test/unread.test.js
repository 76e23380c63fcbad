// The unread counter on its own (static/client/unread.js): which counts it
// takes, what it announces, and when it asks the server again, with a fake
// clock and a fake count request instead of a whole client.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { AMBIGUOUS_MS, RECOUNT_BUDGET, RECOUNT_DELAY_MS, SETTLE_MAX_MS, SETTLE_QUIET_MS, UnreadCounter } from '../static/client/unread.js';
import { FakeClock, settle } from './fakes.js';

/** A counter on fake time; `answers` are what successive recounts get (unless fetchCount is given). */
function counterSetup({ active = true, answers = [], fetchCount } = {}) {
  const clock = new FakeClock();
  const changes = [];
  let asked = 0;
  const state = { active };
  const counter = new UnreadCounter({
    now: clock.now,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    fetchCount: fetchCount ?? (async () => answers[asked++] ?? { count: 0, hasMore: false }),
    active: () => state.active,
    onChange: (announce) => changes.push(announce),
  });
  return { clock, counter, changes, state, asked: () => asked };
}

const unreadOfCounter = (c) => [c.count, c.hasMore];

test('unread counter: connected is taken quietly, status announced, arrivals counted to "99+"', () => {
  const { counter, changes } = counterSetup();
  assert.deepEqual(unreadOfCounter(counter), [null, false], 'unknown until the server says');
  counter.connected({ unreadCount: 98, hasMore: false }, false);
  assert.deepEqual(unreadOfCounter(counter), [98, false]);
  assert.deepEqual(changes, [false], 'the caller announces connected itself');
  assert.equal(counter.status({ unreadCount: 98, hasMore: false }), false, 'same count: no change');
  assert.equal(counter.status({ change: { action: 'muted' } }), false, 'a status without a count');
  assert.equal(counter.status({ unreadCount: 97 }), true);
  assert.deepEqual(changes, [false, true]);
  counter.arrival();
  counter.arrival();
  counter.arrival();
  assert.deepEqual(unreadOfCounter(counter), [99, true], '97 → 98 → 99 → "99+"');
  assert.deepEqual(changes, [false, true, false, false, false], 'arrivals change quietly');
  counter.arrival();
  assert.equal(changes.length, 5, 'past the cap nothing changes');
});

test('unread counter: a follower adopts only null or a non-negative number', () => {
  const { counter, changes } = counterSetup();
  counter.adopt(5, true);
  assert.deepEqual(unreadOfCounter(counter), [5, true]);
  counter.adopt(-1, false);
  counter.adopt('7', false);
  counter.adopt(undefined, false);
  assert.deepEqual(unreadOfCounter(counter), [5, true]);
  counter.adopt(null, undefined);
  assert.deepEqual(unreadOfCounter(counter), [null, false]);
  assert.deepEqual(changes, [], 'adopting never announces (the state message does)');
});

test('unread counter: a resumed stream does not count its replay, and recounts once it is quiet', async () => {
  const { clock, counter, asked } = counterSetup({ answers: [{ count: 9, hasMore: false }] });
  counter.connected({ unreadCount: 4 }, true);
  counter.arrival();
  clock.advance(SETTLE_QUIET_MS - 1);
  counter.arrival();
  assert.deepEqual(unreadOfCounter(counter), [4, false], 'replayed notifications are in the connected count');
  assert.equal(asked(), 0);
  clock.advance(SETTLE_QUIET_MS);
  await settle();
  assert.equal(asked(), 1, 'asked once the replay was quiet');
  assert.deepEqual(unreadOfCounter(counter), [9, false]);
  counter.arrival();
  assert.deepEqual(unreadOfCounter(counter), [10, false], 'live notifications count again');
});

test('unread counter: a replay that never goes quiet settles after SETTLE_MAX_MS; one without replay asks nothing', async () => {
  const busy = counterSetup();
  busy.counter.connected({ unreadCount: 1 }, true);
  for (let t = 0; t < SETTLE_MAX_MS; t += 100) {
    busy.counter.arrival();
    busy.clock.advance(100);
  }
  await settle();
  assert.equal(busy.asked(), 1);

  const quiet = counterSetup();
  quiet.counter.connected({ unreadCount: 1 }, true);
  quiet.clock.advance(SETTLE_MAX_MS);
  await settle();
  assert.equal(quiet.asked(), 0, 'nothing replayed: the connected count stands');
});

test('unread counter: a count and an arrival close together are checked, within the budget per server message', async () => {
  const { clock, counter, asked } = counterSetup();
  counter.status({ unreadCount: 2 });
  clock.advance(AMBIGUOUS_MS - 1);
  counter.arrival();
  clock.advance(RECOUNT_DELAY_MS);
  await settle();
  assert.equal(asked(), 1);
  for (let i = 0; i < 5; i++) {
    counter.arrival();
    clock.advance(RECOUNT_DELAY_MS);
    await settle();
  }
  assert.equal(asked(), RECOUNT_BUDGET, 'at most RECOUNT_BUDGET recounts');
  counter.status({ unreadCount: 1 });
  counter.arrival();
  clock.advance(RECOUNT_DELAY_MS);
  await settle();
  assert.equal(asked(), RECOUNT_BUDGET + 1, 'a new server count renews the budget');

  clock.advance(AMBIGUOUS_MS);
  counter.arrival();
  clock.advance(RECOUNT_DELAY_MS);
  await settle();
  assert.equal(asked(), RECOUNT_BUDGET + 1, 'an arrival long after the count is not ambiguous');
});

test('unread counter: an older recount answer loses to a newer server count; nothing is asked when inactive', async () => {
  let release;
  const { clock, counter } = counterSetup({ fetchCount: () => new Promise((resolve) => (release = resolve)) });
  counter.status({ unreadCount: 2 });
  counter.arrival();
  clock.advance(RECOUNT_DELAY_MS);
  assert.equal(typeof release, 'function', 'recount asked');
  counter.status({ unreadCount: 7 });
  release({ count: 3, hasMore: false });
  await settle();
  assert.deepEqual(unreadOfCounter(counter), [7, false]);

  const idle = counterSetup({ active: false });
  idle.counter.status({ unreadCount: 2 });
  idle.counter.arrival();
  idle.clock.advance(RECOUNT_DELAY_MS);
  await settle();
  assert.equal(idle.asked(), 0, 'a tab without the stream never recounts');
});

test('unread counter: stop() between streams forgets a pending recount and past arrivals', async () => {
  const { clock, counter, asked } = counterSetup();
  counter.status({ unreadCount: 2 });
  counter.arrival();
  counter.stop();
  clock.advance(RECOUNT_DELAY_MS);
  await settle();
  assert.equal(asked(), 0);
  assert.deepEqual(clock.pending(), []);
  counter.connected({ unreadCount: 3 }, false);
  clock.advance(RECOUNT_DELAY_MS);
  await settle();
  assert.equal(asked(), 0, 'the next stream’s count is taken after the old arrivals');
});
