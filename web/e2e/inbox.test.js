// The inbox in a real browser: the unread badge agrees across two tabs of
// one user (new notifications, a mark-read in one tab, mark all read with a
// notification arriving right after), the history pages through older
// notifications, and mute switches keep a module's notifications from
// arriving live (critical ones still do). Screenshots at 1280 and 390 px.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { screenshot, setup, shown, signIn, useBrowser, waitFor, waitOpen, waitShown } from './harness.js';

const browser = useBrowser();

/**
 * Signs in in one tab, opens a second in the same browser context (a
 * follower of the first's stream), and waits for both to be open.
 * @param {Awaited<ReturnType<typeof setup>>} env
 * @param {string} [query]
 */
async function twoTabs(env, query = '') {
  const a = await env.newPage();
  await signIn(a, env.server.url, { user: 'alice', roles: ['USER'], query });
  const b = await env.newPage();
  await b.goto(env.server.url + '/test-notifications' + query);
  await waitOpen(b);
  return [a, b];
}

/** @param {import('playwright-core').Page} page */
function badge(page) {
  return page.textContent('#unread-badge');
}

/**
 * Waits until the page's badge shows text; returns how long it took.
 * @param {import('playwright-core').Page} page
 * @param {string} text
 * @param {number} [timeout]
 */
async function waitBadge(page, text, timeout = 5000) {
  const t0 = Date.now();
  try {
    await page.waitForFunction((t) => document.getElementById('unread-badge')?.textContent === t, text, { polling: 25, timeout });
  } catch (e) {
    throw new Error(`badge never showed ${JSON.stringify(text)} within ${timeout} ms (shows ${JSON.stringify(await badge(page))})`, { cause: e });
  }
  return Date.now() - t0;
}

/**
 * The server's unread count for this browser's user.
 * @param {Awaited<ReturnType<typeof setup>>} env
 */
async function serverCount(env) {
  const res = await env.context.request.get(env.server.url + '/api/notifications/unread-count');
  assert.equal(res.status(), 200);
  const { count, hasMore, countedThrough } = await res.json();
  assert.equal(typeof countedThrough, 'number', 'the count says which seq it runs through');
  return { count, hasMore };
}

/**
 * The history list: id, seq, message, read.
 * @param {import('playwright-core').Page} page
 */
function historyShown(page) {
  return page.$$eval('#history > li', (lis) =>
    lis.map((li) => ({
      id: li.getAttribute('data-id') ?? '',
      seq: Number(li.getAttribute('data-seq')),
      message: li.querySelector('.message')?.textContent ?? '',
      read: li.getAttribute('data-read') === 'true',
      module: li.getAttribute('data-module') ?? '',
      muted: li.classList.contains('is-muted'),
    })),
  );
}

/**
 * @param {import('playwright-core').Page} page
 * @param {string} id
 * @param {boolean} read
 * @param {string} [list]
 */
async function waitRead(page, id, read, list = '#notifications') {
  await page.waitForSelector(`${list} > li[data-id="${id}"][data-read="${read}"]`, { timeout: 5000 });
}

test('unread badge: two tabs show the same count; a new notification counts in both; a mark-read in one tab reaches the other', async (t) => {
  const env = await setup(t, browser());
  // Waiting before sign-in: the count comes with the stream's connected message.
  await env.insert([{ message: 'overnight 1' }, { message: 'overnight 2' }, { message: 'overnight 3', targetRoles: ['USER'] }]);
  const [a, b] = await twoTabs(env);
  assert.equal(await a.getAttribute('#leader', 'data-leader'), 'true');
  assert.equal(await b.getAttribute('#leader', 'data-leader'), 'false');
  await waitBadge(a, '3');
  await waitBadge(b, '3');
  // The history shows the three, unread.
  await b.waitForFunction(() => document.querySelectorAll('#history > li').length === 3, null, { polling: 50 });
  assert.deepEqual((await historyShown(b)).map((h) => [h.message, h.read]), [
    ['overnight 3', false],
    ['overnight 2', false],
    ['overnight 1', false],
  ]);

  const [id] = await env.insert([{ message: 'Order #77 paid', module: 'orders', actionType: 'paid' }]);
  await waitShown(a, 1);
  await waitShown(b, 1);
  await waitBadge(a, '4');
  await waitBadge(b, '4');
  assert.equal(await a.getAttribute(`#notifications > li[data-id="${id}"]`, 'data-read'), 'false');

  // Tab A: click the notification → read; tab B's badge and item follow.
  await a.click(`#notifications > li[data-id="${id}"] .message`);
  const tookMs = await waitBadge(b, '3', 2000);
  t.diagnostic(`tab B's badge followed tab A's mark-read after ${tookMs} ms`);
  await waitBadge(a, '3');
  await waitRead(b, id, true);
  await waitRead(b, id, true, '#history');
  assert.deepEqual(await serverCount(env), { count: 3, hasMore: false });

  // Tab B: mark it unread again with its button; tab A follows.
  await b.click(`#notifications > li[data-id="${id}"] .n-toggle`);
  await waitBadge(a, '4', 2000);
  await waitBadge(b, '4');
  await waitRead(a, id, false);

  // Read one of the overnight ones from the history in tab B.
  const overnight = (await historyShown(b)).find((h) => h.message === 'overnight 2');
  assert.ok(overnight);
  await b.click(`#history > li[data-id="${overnight.id}"] .message`);
  await waitBadge(a, '3', 2000);
  await waitRead(a, overnight.id, true, '#history');
  assert.deepEqual(await serverCount(env), { count: 3, hasMore: false });

  // Both tabs have one stream between them and agree to the end.
  assert.equal((await env.status()).connections.mine, 1);
  assert.equal(await badge(a), await badge(b));
  assert.deepEqual(env.consoleErrors(), []);
});

test('mark all read: the badge goes to 0 in both tabs; a notification inserted right after stays unread', async (t) => {
  const env = await setup(t, browser());
  const [a, b] = await twoTabs(env);
  const first = await env.insert(Array.from({ length: 5 }, (_, i) => ({ message: `before ${i + 1}` })));
  await waitShown(a, 5);
  await waitShown(b, 5);
  await waitBadge(a, '5');
  await waitBadge(b, '5');

  // Mark all read in the follower tab, and insert a notification at once:
  // the click covers up to the last id the tab had seen, not the newcomer.
  await b.click('#mark-all-read');
  const [late] = await env.insert([{ message: 'arrived during the click' }]);
  await waitShown(a, 6);
  await waitShown(b, 6);
  for (const page of [a, b]) {
    await waitBadge(page, '1');
    await waitRead(page, late, false);
    for (const id of first) await waitRead(page, id, true);
  }
  // It stays so (past the client's recount of a status and a notification
  // arriving close together), and the server agrees.
  await new Promise((r) => setTimeout(r, 1200));
  assert.equal(await badge(a), '1');
  assert.equal(await badge(b), '1');
  assert.deepEqual(await serverCount(env), { count: 1, hasMore: false });
  const history = await historyShown(a);
  assert.deepEqual(history.map((h) => [h.message, h.read]), [
    ['arrived during the click', false],
    ...[5, 4, 3, 2, 1].map((i) => [`before ${i}`, true]),
  ]);

  // Mark all read from tab A: both at 0.
  await a.click('#mark-all-read');
  await waitBadge(a, '0', 2000);
  await waitBadge(b, '0', 2000);
  assert.deepEqual(await serverCount(env), { count: 0, hasMore: false });
  assert.deepEqual(env.consoleErrors(), []);
});

test('history loads older pages; mute switches keep a module’s notifications from arriving live, critical ones still do; screenshots', async (t) => {
  const env = await setup(t, browser());
  const modules = ['orders', 'billing'];
  await env.insert(
    Array.from({ length: 25 }, (_, i) => ({
      message: `history ${String(i + 1).padStart(2, '0')}`,
      module: modules[i % 2],
      severity: ['low', 'medium', 'high'][i % 3],
      actionType: 'event',
    })),
  );
  const page = await env.newPage();
  await signIn(page, env.server.url, { user: 'carol', roles: ['USER'], query: '?historyLimit=10' });
  await waitBadge(page, '25');

  // Pages of 10, newest first: 10, 20, then the last 5; then no more.
  await page.waitForFunction(() => document.querySelectorAll('#history > li').length === 10, null, { polling: 50 });
  assert.equal(await page.textContent('#history-count'), '10+');
  for (const n of [20, 25]) {
    await page.click('#history-more');
    await page.waitForFunction((n) => document.querySelectorAll('#history > li').length === n, n, { polling: 50 });
  }
  await page.waitForSelector('#history-more', { state: 'hidden' });
  assert.equal(await page.textContent('#history-status'), 'that is all');
  assert.equal(await page.textContent('#history-count'), '25');
  let history = await historyShown(page);
  assert.deepEqual(history.map((h) => h.message), Array.from({ length: 25 }, (_, i) => `history ${String(25 - i).padStart(2, '0')}`));
  assert.equal(new Set(history.map((h) => h.id)).size, 25);
  for (let i = 1; i < history.length; i++) assert.ok(history[i - 1].seq > history[i].seq);

  // Unread only: read two, filter, and they are gone from the list.
  await page.click(`#history > li[data-id="${history[0].id}"] .message`);
  await page.click(`#history > li[data-id="${history[1].id}"] .n-toggle`);
  await waitBadge(page, '23');
  await page.check('#history-unread');
  await page.waitForFunction(() => document.querySelectorAll('#history > li').length === 10 && !document.querySelector('#history > li[data-read="true"]'), null, { polling: 50 });
  assert.equal((await historyShown(page))[0].message, 'history 23');
  await page.uncheck('#history-unread');
  await page.waitForFunction(() => document.querySelector('#history > li .message')?.textContent === 'history 25', null, { polling: 50 });

  // The mute switches: the modules seen in the history.
  await page.waitForSelector('#mute-list input[data-module="billing"]:not([disabled])');
  assert.deepEqual(await page.$$eval('#mute-list input', (is) => is.map((i) => [i.getAttribute('data-module'), /** @type {HTMLInputElement} */ (i).checked])), [
    ['billing', false],
    ['orders', false],
  ]);
  // Mute billing (12 of the 25; 'history 24', read, is one): the badge drops
  // to the 12 unread of orders.
  await page.click('#mute-list li[data-module="billing"] .switch-track');
  await page.waitForSelector('#mute-list li.on[data-module="billing"] input:checked');
  assert.equal(await page.textContent('#mute-status'), 'muted: billing');
  await waitBadge(page, '12');
  const prefs = await env.context.request.get(env.server.url + '/api/notifications/preferences');
  assert.deepEqual(await prefs.json(), { mutedModules: ['billing'] });
  // Add one through the text field.
  await page.fill('#mute-new', 'shipping');
  await page.click('#mute-form button[type=submit]');
  await page.waitForSelector('#mute-list li.on[data-module="shipping"] input:checked');
  assert.equal(await page.inputValue('#mute-new'), '');
  assert.equal(await page.textContent('#mute-status'), 'muted: billing, shipping');
  // History items of a muted module say so.
  history = await historyShown(page);
  assert.ok(history.length >= 10);
  for (const h of history) assert.equal(h.muted, h.module === 'billing', `${h.message} (${h.module}) marked muted or not`);

  // Live: muted billing stays away unless critical; orders arrives.
  await env.insert([
    { message: 'invoice ready', module: 'billing', severity: 'medium' },
    { message: 'payment failed', module: 'billing', severity: 'critical' },
    { message: 'order shipped', module: 'orders', severity: 'low' },
    { message: 'parcel left', module: 'shipping', severity: 'high' },
  ]);
  await waitShown(page, 2);
  await new Promise((r) => setTimeout(r, 700)); // anything else would have come by now
  assert.deepEqual((await shown(page)).map((n) => n.message), ['order shipped', 'payment failed']);
  await waitBadge(page, '14');
  assert.deepEqual(await serverCount(env), { count: 14, hasMore: false });

  // Unmute billing: switch off, the server's answer shows.
  await page.click('#mute-list li[data-module="billing"] .switch-track');
  await page.waitForSelector('#mute-list li[data-module="billing"]:not(.on) input:not(:checked)');
  assert.equal(await page.textContent('#mute-status'), 'muted: shipping');
  // 12 + 1 (order shipped) of orders, 11 + 2 (invoice ready, payment failed) of billing.
  await waitBadge(page, '26');
  await env.insert([{ message: 'refund issued', module: 'billing' }]);
  await waitShown(page, 3);
  assert.equal((await shown(page))[0].message, 'refund issued');
  await waitBadge(page, '27');

  // The history shows everything, muted or not, with read state.
  await page.click('#history-refresh');
  await page.waitForFunction(() => document.querySelector('#history > li .message')?.textContent === 'refund issued', null, { polling: 50 });
  history = await historyShown(page);
  assert.deepEqual(history.slice(0, 5).map((h) => h.message), ['refund issued', 'parcel left', 'order shipped', 'payment failed', 'invoice ready']);
  assert.equal(history.find((h) => h.message === 'parcel left')?.muted, true);

  // Mark one received read so the screenshot shows both states.
  const [latest] = await shown(page);
  await page.click(`#notifications > li[data-id="${latest.id}"] .message`);
  await waitBadge(page, '26');

  const noOverflow = () => document.documentElement.scrollWidth <= document.documentElement.clientWidth;
  assert.ok(await page.evaluate(noOverflow), 'no sideways scrolling at 1280 px');
  await page.evaluate(() => window.scrollTo(0, 0));
  t.diagnostic('screenshot: ' + (await screenshot(page, 'inbox-laptop')));
  await page.setViewportSize({ width: 390, height: 844 });
  await waitFor(() => page.evaluate(noOverflow), { what: 'no sideways scrolling at 390 px', timeout: 3000 });
  for (const sel of ['#mark-all-read', '#unread', '#history-refresh', '#mute-form button', '#reconnect', '#signout']) {
    const box = await page.locator(sel).boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= 390, `${sel} fits the phone's width`);
  }
  t.diagnostic('screenshot: ' + (await screenshot(page, 'inbox-phone')));
  await page.evaluate(() => window.scrollTo(0, 0));
  t.diagnostic('screenshot: ' + (await screenshot(page, 'inbox-phone-top', { fullPage: false })));

  assert.deepEqual(env.consoleErrors(), []);
});
