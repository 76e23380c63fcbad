// The stream survives the server going away: the page resumes from its last
// event id when notifyd comes back (nothing lost, nothing twice), and while
// it is down the client retries with a growing, capped, jittered backoff.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { assertExactlyOnceInOrder, setup, signIn, useBrowser, waitOpen, waitShown } from './harness.js';

const browser = useBrowser();

test('stop the server, insert 20 notifications, start it again: the page shows all 20 exactly once, in order', async (t) => {
  const env = await setup(t, browser());
  const page = await env.newPage();
  // A shorter backoff ceiling than the default 30 s keeps the wait short;
  // the resume is the same.
  await signIn(page, env.server.url, { user: 'alice', roles: ['ADMIN'], query: '?backoffMaxMs=2000' });

  const live = ['live 1', 'live 2'];
  await env.insert(live.map((message) => ({ message })));
  const seen = await waitShown(page, 2);

  const stoppedAt = Date.now();
  await env.stopServer();
  await page.waitForSelector('#conn-state:not([data-state="open"])');
  // Let the client find the server gone: a failed attempt, a retry scheduled.
  await page.waitForFunction((t) => window.notifydTestPage.errors.some((e) => e.at >= t && e.retryInMs !== null), stoppedAt, {
    polling: 50,
    timeout: 10000,
  });
  const offline = Array.from({ length: 20 }, (_, i) => `offline ${String(i + 1).padStart(2, '0')}`);
  await env.insert(offline.map((message, i) => ({ message, severity: ['low', 'medium', 'high', 'critical'][i % 4] })));
  await env.startServer();

  const all = [...live, ...offline];
  assertExactlyOnceInOrder(assert, await waitShown(page, all.length, 20000), all);
  await waitOpen(page);
  assert.equal(await page.textContent('#duplicates'), '0', 'the server sent nothing twice');
  // The stream that got them resumed from the last id seen before the stop.
  const urls = await page.evaluate(() => window.notifydTestPage.attempts.map((a) => a.url));
  assert.ok(urls.at(-1)?.endsWith(`lastEventId=${seen[0].seq}`), 'resumed from ' + seen[0].seq + ': ' + urls.at(-1));

  // The unread badge counts each once: the resumed stream's connected count
  // already holds the 20 it then replays (the client recounts after a replay).
  const badgeIs = (/** @type {string} */ text) =>
    page.waitForFunction((t) => document.getElementById('unread-badge')?.textContent === t, text, { polling: 50, timeout: 5000 });
  await badgeIs('22');
  await new Promise((r) => setTimeout(r, 800));
  assert.equal(await page.textContent('#unread-badge'), '22');

  // And live again.
  await env.insert([{ message: 'after restart' }]);
  all.push('after restart');
  assertExactlyOnceInOrder(assert, await waitShown(page, all.length), all);
  await badgeIs('23');
  assert.deepEqual(env.consoleErrors(), []);
});

test('while the server is down the reconnect delay grows, with full jitter, up to its cap', async (t) => {
  const env = await setup(t, browser());
  const page = await env.newPage();
  const initialMs = 100;
  const maxMs = 1600;
  await signIn(page, env.server.url, { user: 'alice', roles: ['ADMIN'], query: `?backoffInitialMs=${initialMs}&backoffMaxMs=${maxMs}` });
  await env.insert([{ message: 'before the outage' }]);
  await waitShown(page, 1);

  const stoppedAt = Date.now();
  await env.stopServer();
  const wanted = 11;
  await page.waitForFunction((n) => window.notifydTestPage.errors.filter((e) => e.retryInMs !== null).length >= n, wanted, {
    timeout: 30000,
    polling: 50,
  });
  // The page tells the user what is going on.
  assert.match((await page.textContent('#conn-note')) ?? '', /next attempt in/);
  assert.ok(Number(await page.textContent('#attempts')) >= wanted);
  const { attempts, errors } = await page.evaluate(() => ({
    attempts: window.notifydTestPage.attempts.map((a) => a.at),
    errors: window.notifydTestPage.errors,
  }));
  const failures = errors.filter((e) => e.at >= stoppedAt && e.retryInMs !== null).slice(0, wanted);

  const ceiling = (/** @type {number} */ n) => Math.min(maxMs, initialMs * 2 ** (n - 1));
  /** Observed delay: from a failure to the next stream attempt. */
  const observed = [];
  failures.forEach((f, i) => {
    // Consecutive failures, counted.
    assert.equal(f.reconnectAttempts, i + 1, `failure ${i + 1} is attempt ${f.reconnectAttempts}`);
    // Full jitter: the delay drawn is within [0, min(max, initial·2^(n-1))].
    assert.ok(f.retryInMs >= 0 && f.retryInMs <= ceiling(i + 1), `delay ${i + 1}: ${f.retryInMs} ms ≤ ${ceiling(i + 1)} ms`);
    // …and that is how long the page actually waited before the next attempt.
    const next = attempts.find((at) => at >= f.at);
    if (next !== undefined && i < failures.length - 1) {
      const gap = next - f.at;
      assert.ok(gap >= f.retryInMs - 20 && gap <= f.retryInMs + 1000, `attempt ${i + 2} came ${gap} ms after failure ${i + 1} (drawn ${f.retryInMs} ms)`);
      observed.push(gap);
    }
  });
  const capped = failures.slice(4).map((f) => f.retryInMs); // attempts 5..: ceiling = maxMs
  const early = observed.slice(0, 3).reduce((a, b) => a + b, 0);
  const late = observed.slice(4).reduce((a, b) => a + b, 0);
  t.diagnostic(`observed delays (ms): ${observed.join(', ')}; first three sum ${early}, from the fifth on sum ${late}`);
  // Growth, robust to jitter: the first three delays add up to at most
  // 100+200+400 ms (plus scheduling); six draws from [0, 1600] adding up to
  // less than that has a probability of about 1e-5.
  assert.ok(late > early, `later delays (sum ${late} ms) exceed the first ones (sum ${early} ms)`);
  assert.ok(Math.max(...capped) <= maxMs, 'capped at maxMs');
  assert.ok(Math.max(...observed) <= maxMs + 1000, 'no observed delay beyond the cap');

  // The server comes back: the next attempt succeeds and resumes.
  await env.insert([{ message: 'during the outage' }]);
  await env.startServer();
  await waitOpen(page, 10000);
  const items = await waitShown(page, 2);
  assertExactlyOnceInOrder(assert, items, ['before the outage', 'during the outage']);
  assert.deepEqual(env.consoleErrors(), []);
});
