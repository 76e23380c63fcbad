// One stream per browser: tabs elect a leader that holds the stream and
// relays it; when the leader tab closes another takes over from the last
// event id, losing nothing.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { assertExactlyOnceInOrder, setup, shown, signIn, useBrowser, waitFor, waitOpen, waitShown } from './harness.js';

const browser = useBrowser();

/**
 * Signs in in one tab, opens a second in the same browser context, and
 * waits for both to show an open stream.
 * @param {Awaited<ReturnType<typeof setup>>} env
 */
async function twoTabs(env) {
  const first = await env.newPage();
  await signIn(first, env.server.url, { user: 'alice', roles: ['ADMIN'] });
  const second = await env.newPage();
  await second.goto(env.server.url + '/test-notifications');
  await waitOpen(second);
  return [first, second];
}

/**
 * @param {import('playwright-core').Page} page
 * @returns {Promise<boolean>}
 */
async function isLeader(page) {
  return (await page.getAttribute('#leader', 'data-leader')) === 'true';
}

/** The streams_open gauge. @param {string} base */
async function streamsOpen(base) {
  const text = await (await fetch(base + '/metrics')).text();
  const m = /^notifyd_streams_open (\d+)/m.exec(text);
  return m ? Number(m[1]) : NaN;
}

test('two tabs share one stream and both show every notification', async (t) => {
  const env = await setup(t, browser());
  const [first, second] = await twoTabs(env);
  assert.equal(await isLeader(first), true);
  assert.equal(await isLeader(second), false);

  // Ask the server, several times while the tabs settle: one stream, alice's.
  for (let i = 0; i < 8; i++) {
    const status = await env.status();
    assert.equal(status.connections.total, 1, 'streams on the server: ' + JSON.stringify(status.connections.streams));
    assert.equal(status.connections.streams[0].userId, 'alice');
    assert.equal(await streamsOpen(env.server.url), 1);
    await new Promise((r) => setTimeout(r, 100));
  }
  // The second tab's client never opened an EventSource of its own.
  assert.equal(await second.evaluate(() => window.notifydTestPage.attempts.length), 0);

  const messages = ['one', 'two', 'three', 'four', 'five'];
  await env.insert(messages.slice(0, 2).map((message) => ({ message })));
  await env.insert(messages.slice(2).map((message) => ({ message })));
  for (const page of [first, second]) {
    assertExactlyOnceInOrder(assert, await waitShown(page, 5), messages);
  }
  // The follower tracks the resume point too.
  const lastId = await first.textContent('#last-event-id');
  await second.waitForFunction((id) => document.getElementById('last-event-id')?.textContent === id, lastId, { polling: 50 });

  // A test notification sent from the follower reaches both.
  await second.click('#form-test button[type=submit]');
  for (const page of [first, second]) {
    const items = await waitShown(page, 6);
    assert.equal(items[0].message, 'Test notification');
  }
  assert.equal((await env.status()).connections.total, 1);
  assert.deepEqual(env.consoleErrors(), []);
});

test('closing the leader tab: the other tab takes over with nothing lost', async (t) => {
  const env = await setup(t, browser());
  const [leader, survivor] = await twoTabs(env);
  assert.equal(await isLeader(leader), true);
  const before = (await env.status()).connections.streams[0].id;

  const all = ['a1', 'a2', 'a3'];
  await env.insert(all.map((message) => ({ message })));
  await waitShown(survivor, 3);

  // Notifications committed just before, during and after the close.
  const around = ['b1', 'b2', 'b3'];
  const afterClose = ['c1', 'c2', 'c3', 'c4'];
  await Promise.all([env.insert(around.map((message) => ({ message }))), leader.close()]);
  await env.insert(afterClose.slice(0, 2).map((message) => ({ message })));
  await survivor.waitForSelector('#leader[data-leader="true"]', { timeout: 10000 });
  await env.insert(afterClose.slice(2).map((message) => ({ message })));
  all.push(...around, ...afterClose);

  assertExactlyOnceInOrder(assert, await waitShown(survivor, all.length), all);
  await waitOpen(survivor);
  // It resumed from the last id it had seen, on a stream of its own.
  const url = await survivor.evaluate(() => window.notifydTestPage.attempts[0]?.url ?? '');
  assert.match(url, /[?&]lastEventId=\d+$/);
  const status = await waitFor(
    async () => {
      const s = await env.status();
      return s.connections.total === 1 && s.connections.streams[0].id !== before && s;
    },
    { what: 'one stream, the new leader’s' },
  );
  assert.equal(status.connections.streams[0].userId, 'alice');

  // Still live afterwards, and nothing shown twice.
  await env.insert([{ message: 'd1' }]);
  all.push('d1');
  assertExactlyOnceInOrder(assert, await waitShown(survivor, all.length), all);
  assert.equal((await shown(survivor)).length, all.length);
  assert.deepEqual(env.consoleErrors(), []);
});
